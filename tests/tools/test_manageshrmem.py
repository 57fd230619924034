"""test_manageshrmem.py - manageshrmem, the drop-in for IMOD's program: which
/dev/shm/IMODShrMem_* objects exist while each command runs (the default
chain, -need, -keep), -remove, -try, -test, PIP-style abbreviations and
-StandardInput, cleanup on SIGTERM/SIGINT, failing commands, bad input, and
the example of IMOD's manual page. Runs in a private IPC namespace with a
fresh 1 GiB tmpfs on /dev/shm (see private), so every object seen is ours."""

import io
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import mrcfile
import numpy as np

PROG = os.path.join(os.environ.get('SHMFS_TOOLS', '../../build/tools'), 'manageshrmem')
SHM = '/dev/shm'
PREFIX = 'IMODShrMem_'

A, B, C, D = ('/IMODShrMem_10_a', '/IMODShrMem_20_b', '/IMODShrMem_30_c',
              '/IMODShrMem_40_d')


def objects():
    """The IMOD objects that exist now, as their /NAME."""
    return sorted('/' + n for n in os.listdir(SHM) if n.startswith(PREFIX))


def make_object(name, data=b'x'):
    with open(SHM + name, 'wb') as f:
        f.write(data)


def default_signals():
    """For the child: SIGINT as a terminal would give it, whatever ours is."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Case(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='manageshrmem-')
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.addCleanup(self.nothing_left)
        self.assertEqual(objects(), [], 'an earlier test left objects behind')

    def nothing_left(self):
        left = objects()
        for name in left:
            os.unlink(SHM + name)
        self.assertEqual(left, [], 'objects left behind')

    def path(self, name):
        return os.path.join(self.tmp, name)

    def run_tool(self, *args, stdin=None, preexec_fn=default_signals):
        return subprocess.run([PROG, *args], input=stdin, capture_output=True, text=True,
                              cwd=self.tmp, timeout=120, preexec_fn=preexec_fn)

    def snap(self, n):
        """A command that records the objects existing while it runs."""
        return f'ls {SHM} > {self.path(f"out.{n}")}'

    def seen(self, n):
        """The objects command N saw (None: it did not run)."""
        try:
            with open(self.path(f'out.{n}')) as f:
                return sorted('/' + n for n in f.read().split() if n.startswith(PREFIX))
        except FileNotFoundError:
            return None

    def marker(self, n):
        return f'touch {self.path(f"ran.{n}")}'

    def ran(self, n):
        return os.path.exists(self.path(f'ran.{n}'))

    def assertOk(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, '')

    def assertFails(self, r, pattern):
        """Exit status 1 and one line on stderr saying PATTERN."""
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith('manageshrmem: '), lines[0])
        self.assertRegex(lines[0], pattern)


class TestSequence(Case):
    def test_default_chain(self):
        # Three files, four commands: file i is needed by commands i and i+1.
        r = self.run_tool('-f', A, '-f', B, '-f', C,
                          '-c', self.snap(1), '-c', self.snap(2), '-c', self.snap(3),
                          '-c', self.snap(4))
        self.assertOk(r)
        self.assertIn('All commands succeeded', r.stdout)
        self.assertEqual(self.seen(1), [A])
        self.assertEqual(self.seen(2), [A, B])
        self.assertEqual(self.seen(3), [B, C])
        self.assertEqual(self.seen(4), [C])
        self.assertEqual(objects(), [])

    def test_size_mode_and_contents(self):
        # Size KB * 1024, mode 0600 (as IMOD makes them) under any umask, zero-filled.
        out = self.path('stat')
        r = self.run_tool('-f', '/IMODShrMem_3_x', '-f', '/IMODShrMem_262146_big',
                          '-c', 'true', '-c', f'stat -c "%n %s %a" {SHM}/{PREFIX}* > {out}',
                          '-c', f'cmp -n 262146 /dev/zero {SHM}/IMODShrMem_262146_big',
                          preexec_fn=lambda: (default_signals(), os.umask(0o277)))
        self.assertOk(r)
        with open(out) as f:
            self.assertEqual(f.read().splitlines(),
                             [f'{SHM}/IMODShrMem_262146_big {262146 * 1024} 600',
                              f'{SHM}/IMODShrMem_3_x 3072 600'])

    def test_replaces_leftover_object(self):
        make_object(A, b'stale contents')
        os.chmod(SHM + A, 0o644)
        out = self.path('stat')
        r = self.run_tool('-f', A, '-c', f'stat -c "%s %a" {SHM}{A} > {out}; '
                          f'cmp -n 10240 /dev/zero {SHM}{A}', '-n', '1')
        self.assertOk(r)
        with open(out) as f:
            self.assertEqual(f.read().split(), ['10240', '600'])

    def test_need_lists(self):
        # File 1 is used by commands 3-4, file 2 by 1-3, file 3 by 4; 0 is none.
        r = self.run_tool('-f', A, '-f', B, '-f', C,
                          '-c', self.snap(1), '-n', '2',
                          '-c', self.snap(2), '-n', '0',
                          '-c', self.snap(3), '-n', '1,2',
                          '-c', self.snap(4), '-n', '3 1',
                          '-c', self.snap(5), '-n', '0')
        self.assertOk(r)
        self.assertEqual([self.seen(i) for i in range(1, 6)],
                         [[B], [B], [A, B], [A, C], []])

    def test_need_may_repeat_a_file(self):
        r = self.run_tool('-f', A, '-c', self.snap(1), '-n', '1,1', '-c', self.snap(2),
                          '-n', '0')
        self.assertOk(r)
        self.assertEqual([self.seen(1), self.seen(2)], [[A], []])

    def test_single_command(self):
        r = self.run_tool('-f', A, '-c', self.snap(1), '-n', '1')
        self.assertOk(r)
        self.assertEqual(self.seen(1), [A])


class TestKeepRemove(Case):
    def test_keep_ranges_then_remove(self):
        r = self.run_tool('-f', A, '-f', B, '-f', C, '-f', D,
                          '-c', self.snap(1), '-n', '1,2',
                          '-c', self.snap(2), '-n', '3',
                          '-c', self.snap(3), '-n', '4',
                          '-k', '1-2,4')
        self.assertOk(r)
        # Kept files stay after their last use; the others go.
        self.assertEqual(self.seen(1), [A, B])
        self.assertEqual(self.seen(2), [A, B, C])
        self.assertEqual(self.seen(3), [A, B, D])
        self.assertEqual(objects(), [A, B, D])
        r = self.run_tool('-f', A, '-f', B, '-f', C, '-f', D, '-r')
        self.assertOk(r)
        self.assertEqual(objects(), [])

    def test_keep_with_default_chain(self):
        r = self.run_tool('-f', A, '-f', B, '-c', self.snap(1), '-c', self.snap(2),
                          '-c', self.snap(3), '-keep', '1')
        self.assertOk(r)
        self.assertEqual([self.seen(1), self.seen(2), self.seen(3)], [[A], [A, B], [A, B]])
        self.assertEqual(objects(), [A])
        os.unlink(SHM + A)

    def test_keep_downward_range_and_blanks(self):
        r = self.run_tool('-f', A, '-f', B, '-f', C, '-c', self.snap(1), '-n', '1,2,3',
                          '-k', '3-2 1')
        self.assertOk(r)
        self.assertEqual(objects(), [A, B, C])
        self.assertOk(self.run_tool('-f', A, '-f', B, '-f', C, '-r'))

    def test_kept_file_no_command_needs(self):
        # Made before the first command, left for later programs.
        r = self.run_tool('-f', A, '-f', B, '-c', self.snap(1), '-n', '1',
                          '-c', self.snap(2), '-n', '1', '-k', '2')
        self.assertOk(r)
        self.assertEqual([self.seen(1), self.seen(2)], [[A, B], [A, B]])
        self.assertEqual(objects(), [B])
        os.unlink(SHM + B)

    def test_remove_ignores_other_options(self):
        make_object(A)
        make_object(C)
        # B does not exist; the bad -need and -try would be errors otherwise.
        r = self.run_tool('-f', A, '-f', B, '-f', C, '-c', self.marker(1), '-n', '9',
                          '-tr', 'x', '-k', 'junk', '-remove')
        self.assertOk(r)
        self.assertEqual(objects(), [])
        self.assertFalse(self.ran(1))

    def test_remove_needs_files(self):
        self.assertFails(self.run_tool('-r'), 'at least one')

    def test_remove_checks_names(self):
        make_object('/IMODShrMem_x')
        self.assertFails(self.run_tool('-f', '/IMODShrMem_x', '-r'), 'not a shared-memory')
        os.unlink(SHM + '/IMODShrMem_x')


class TestTrySizes(Case):
    def test_try_only(self):
        # Peak: commands 2 and 3 hold 20+30 KB, more than A+B (30 KB).
        r = self.run_tool('-f', A, '-f', B, '-f', C, '-c', self.marker(1), '-c', self.marker(2),
                          '-c', self.marker(3), '-c', self.marker(4), '-n', '1', '-n', '1,2',
                          '-n', '2,3', '-n', '0', '-try', '-1')
        self.assertOk(r)
        self.assertIn('50 KB', r.stdout)
        self.assertFalse(self.ran(1))
        self.assertEqual(objects(), [])

    def test_try_counts_kept_files(self):
        # Without -keep the peak is file 1 alone; kept, it is still there with
        # file 3 during the last command.
        args = ['-f', '/IMODShrMem_100_a', '-f', B, '-f', C, '-c', 'true', '-n', '1',
                '-c', 'true', '-n', '2', '-c', 'true', '-n', '3', '-tr', '-1']
        r = self.run_tool(*args)
        self.assertOk(r)
        self.assertIn(' 100 KB', r.stdout)
        r = self.run_tool(*args, '-k', '1')
        self.assertOk(r)
        self.assertIn(' 130 KB', r.stdout)

    def test_try_then_run(self):
        r = self.run_tool('-f', A, '-f', B, '-c', self.snap(1), '-c', self.snap(2),
                          '-c', self.snap(3), '-TrySizesFirst', '1')
        self.assertOk(r)
        self.assertIn('30 KB', r.stdout)
        # The trial files were removed; each is made again only when needed.
        self.assertEqual([self.seen(1), self.seen(2), self.seen(3)], [[A], [A, B], [B]])
        self.assertEqual(objects(), [])

    def test_try_too_big(self):
        # 600 MiB each, both needed by command 2: more than the 1 GiB tmpfs.
        a, b = '/IMODShrMem_614400_a', '/IMODShrMem_614400_b'
        r = self.run_tool('-f', a, '-f', b, '-c', self.marker(1), '-c', self.marker(2),
                          '-c', self.marker(3), '-tr', '1')
        self.assertFails(r, r'-try: cannot create file 2.*No space left')
        self.assertFalse(self.ran(1))

    def test_creation_fails_mid_run(self):
        # Without -try the shortage shows when file 2 is made, after command 1.
        a, b = '/IMODShrMem_614400_a', '/IMODShrMem_614400_b'
        r = self.run_tool('-f', a, '-f', b, '-c', self.marker(1), '-c', self.marker(2),
                          '-c', self.marker(3))
        self.assertFails(r, r'cannot create file 2, /IMODShrMem_614400_b: No space left')
        self.assertTrue(self.ran(1))
        self.assertFalse(self.ran(2))

    def test_test_sizes(self):
        r = self.run_tool('-te', '100,200 300')
        self.assertOk(r)
        self.assertIn('All 3 test files, 600 KB', r.stdout)
        self.assertEqual(objects(), [])

    def test_test_overrides_everything(self):
        r = self.run_tool('-f', A, '-c', self.marker(1), '-n', '1', '-r',
                          '-TestSizesInKilobytes', '10')
        self.assertOk(r)
        self.assertFalse(self.ran(1))

    def test_test_too_big(self):
        r = self.run_tool('-test', '500000,600000')
        self.assertFails(r, r'cannot create test file 2 of 600000 KB.*No space left')

    def test_test_bad_sizes(self):
        self.assertFails(self.run_tool('-te', '10,0'), 'must be positive')
        self.assertFails(self.run_tool('-te', '10,x'), 'bad value for -test')
        self.assertFails(self.run_tool('-te', ' , '), 'no numbers')


class TestOptions(Case):
    def chain(self, f, c, n):
        """A two-file run with -need written as F, C, N."""
        return self.run_tool(f, A, f, B, c, self.snap(1), n, '1', c, self.snap(2),
                             n, '1,2', c, self.snap(3), n, '2')

    def test_option_forms(self):
        for f, c, n in [('-f', '-c', '-n'), ('-file', '-command', '-need'),
                        ('-FileToCreate', '-CommandToRun', '-NeedFilesForCommand'),
                        ('--fi', '--comm', '--ne'), ('-F', '-C', '-N'),
                        ('-FileTo', '-Com', '-Need')]:
            with self.subTest(forms=(f, c, n)):
                for i in (1, 2, 3):
                    if os.path.exists(self.path(f'out.{i}')):
                        os.unlink(self.path(f'out.{i}'))
                self.assertOk(self.chain(f, c, n))
                self.assertEqual([self.seen(1), self.seen(2), self.seen(3)],
                                 [[A], [A, B], [B]])

    def test_keep_forms(self):
        for k in ('-k', '-keep', '-ke', '-L', '-ListOfFilesToKeep', '--List'):
            with self.subTest(keep=k):
                self.assertOk(self.run_tool('-f', A, '-c', 'true', '-n', '1', k, '1'))
                self.assertEqual(objects(), [A])
                os.unlink(SHM + A)

    def test_remove_and_try_forms(self):
        for r in ('-r', '-remove', '-J', '-JustRemoveFiles', '--rem'):
            with self.subTest(remove=r):
                make_object(A)
                self.assertOk(self.run_tool('-f', A, r))
                self.assertEqual(objects(), [])
        for t in ('-tr', '-try', '-Try', '-TrySizesFirst'):
            with self.subTest(tryopt=t):
                r = self.run_tool('-f', A, '-c', self.marker(1), '-n', '1', t, '-1')
                self.assertOk(r)
                self.assertIn('10 KB', r.stdout)
        for t in ('-te', '-test', '-Te', '-TestSizesInKilobytes'):
            with self.subTest(test=t):
                self.assertOk(self.run_tool(t, '5'))
        self.assertFalse(self.ran(1))

    def test_help(self):
        for args in (['-help'], ['-h'], ['-Usage'], ['--U'], [],
                     ['-f', A, '-c', 'touch ran', '-n', '1', '-help']):
            with self.subTest(args=args):
                r = self.run_tool(*args)
                self.assertOk(r)
                self.assertTrue(r.stdout.startswith('Usage: manageshrmem'), r.stdout)
                for name in ('-file (-f) OR -FileToCreate', '-command (-c) OR -CommandToRun',
                             '-need (-n) OR -NeedFilesForCommand',
                             '-try (-tr) OR -TrySizesFirst',
                             '-test (-te) OR -TestSizesInKilobytes',
                             '-keep (-k) OR -ListOfFilesToKeep',
                             '-remove (-r) OR -JustRemoveFiles', '-help (-h) OR -Usage',
                             '-StandardInput'):
                    self.assertIn(name, r.stdout)
        self.assertFalse(os.path.exists(self.path('ran')))

    def test_last_single_entry_wins(self):
        r = self.run_tool('-f', A, '-c', 'true', '-n', '1', '-tr', '-1', '-tr', '0',
                          '-k', '1', '-k', '0-0')
        # -k 0-0 is out of range: the later entry replaced the good one.
        self.assertFails(r, 'file 0 to keep is out of range 1-1')
        r = self.run_tool('-f', A, '-c', self.marker(1), '-n', '1', '-tr', '1', '-tr', '-1')
        self.assertOk(r)
        self.assertFalse(self.ran(1))


class TestStandardInput(Case):
    def test_entries_from_stdin(self):
        rest = self.path('rest')
        entries = textwrap.dedent(f"""\
            # a comment line, then a blank one

            FileToCreate {A}
              f={B}    # trailing comment
            command = {self.snap(2)}
            Comm  {self.snap(3)}
            need 1
            NeedFilesForCommand 1,2
            n = 2 # file B
            n 0
            ListOfFilesToKeep 2
            EndInput
            c this line is left for the commands
            """)
        r = self.run_tool('-c', self.snap(1), '-StandardInput', '-c', f'cat > {rest}',
                          stdin=entries)
        self.assertOk(r)
        # Entries keep their order: the command line's first, stdin's, then the last.
        self.assertEqual([self.seen(1), self.seen(2), self.seen(3)], [[A], [A, B], [B]])
        self.assertEqual(objects(), [B])
        with open(rest) as f:
            self.assertEqual(f.read(), 'c this line is left for the commands\n')
        os.unlink(SHM + B)

    def test_prefixes_of_standard_input(self):
        for s in ('-S', '-Stand', '--StandardInput'):
            with self.subTest(option=s):
                r = self.run_tool(s, stdin=f'f {A}\nc {self.snap(1)}\nn 1\n')
                self.assertOk(r)
                self.assertEqual(self.seen(1), [A])

    def test_boolean_lines(self):
        make_object(A)
        r = self.run_tool('-S', stdin=f'JustRemoveFiles 0\nf {A}\nr\n')
        self.assertOk(r)
        self.assertEqual(objects(), [])
        make_object(A)
        # Set, then cleared: not a removal, so the missing commands are an error.
        r = self.run_tool('-f', A, '-r', '-S', stdin='JustRemoveFiles = off\n')
        self.assertFails(r, 'at least one command')
        self.assertEqual(objects(), [A])
        os.unlink(SHM + A)
        r = self.run_tool('-S', stdin='Usage\n')
        self.assertOk(r)
        self.assertIn('Usage: manageshrmem', r.stdout)

    def test_stdin_errors(self):
        cases = [('f /IMODShrMem_10_a\nbogus 3\n', 'standard input line 2: unknown option: bogus'),
                 ('t 1\n', 'standard input line 1: ambiguous option: t'),
                 ('\n# c\nf\n', 'standard input line 3: f needs a value'),
                 ('f = = x\n', "two '='"),
                 (f'f {A}\nremove maybe\n', r'bad value for -remove: maybe'),
                 ('StandardInput\n', 'unknown option: StandardInput')]
        for text, pattern in cases:
            with self.subTest(stdin=text):
                self.assertFails(self.run_tool('-S', stdin=text), pattern)

    def test_empty_stdin_prints_help(self):
        r = self.run_tool('-S', stdin='# nothing\n')
        self.assertOk(r)
        self.assertTrue(r.stdout.startswith('Usage:'))


class TestSignals(Case):
    def start(self, keep=True, preexec_fn=default_signals):
        """manageshrmem with its second command running (holding A and B)."""
        args = [PROG, '-f', A, '-f', B, '-c', 'true',
                '-c', f'echo $$ > {self.path("pid")}; exec sleep 60',
                '-c', self.marker(3)] + (['-k', '1-2'] if keep else [])
        p = subprocess.Popen(args, cwd=self.tmp, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=preexec_fn)
        self.addCleanup(p.kill)
        deadline = time.monotonic() + 30
        while True:
            try:
                with open(self.path('pid')) as f:
                    pid = f.read()
                if pid.endswith('\n'):
                    return p, int(pid)
            except FileNotFoundError:
                pass
            if p.poll() is not None:
                self.fail(f'manageshrmem ended early: {p.stderr.read()}')
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.02)

    def command_gone(self, pid):
        """Whether PID has ended (gone, or a zombie nobody reaped yet)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with open(f'/proc/{pid}/stat') as f:
                    if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                        return True
            except FileNotFoundError:
                return True
            time.sleep(0.02)
        return False

    def test_sigterm_and_sigint_clean_up(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            with self.subTest(signal=sig.name):
                if os.path.exists(self.path('pid')):
                    os.unlink(self.path('pid'))
                p, command = self.start()
                self.assertEqual(objects(), [A, B])
                p.send_signal(sig)
                out, err = p.communicate(timeout=30)
                # Dies by the same signal (a shell says 128 + N), kept files too
                # removed, the running command stopped, the next one not run.
                self.assertEqual(p.returncode, -sig, err)
                self.assertEqual(err, '')
                self.assertEqual(objects(), [])
                self.assertTrue(self.command_gone(command))
                self.assertFalse(self.ran(3))

    def test_shell_status(self):
        # Through a shell, the usual 128 + N.
        script = (f'{PROG} -f {A} -c "echo \\$\\$ > {self.path("pid")}; exec sleep 60" -n 1 & '
                  f'while [ ! -s {self.path("pid")} ]; do sleep 0.02; done; '
                  f'kill -TERM $!; wait $!; echo status=$?')
        r = subprocess.run(['sh', '-c', script], capture_output=True, text=True, timeout=60)
        self.assertIn('status=143', r.stdout)
        self.assertEqual(objects(), [])

    def test_ignored_sigint_stays_ignored(self):
        # As for a background job: SIGINT ignored at the start is not acted on.
        p, command = self.start(keep=False,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        p.send_signal(signal.SIGINT)
        time.sleep(0.3)
        self.assertIsNone(p.poll())
        self.assertEqual(objects(), [A, B])
        p.send_signal(signal.SIGTERM)
        p.communicate(timeout=30)
        self.assertEqual(p.returncode, -signal.SIGTERM)
        self.assertEqual(objects(), [])
        self.assertTrue(self.command_gone(command))


class TestFailures(Case):
    def test_failing_command_stops_the_sequence(self):
        r = self.run_tool('-f', A, '-f', B, '-c', self.marker(1), '-c', 'exit 3',
                          '-c', self.marker(3), '-k', '1')
        self.assertFails(r, r'^manageshrmem: command 2 exited with status 3: exit 3$')
        self.assertTrue(self.ran(1))
        self.assertFalse(self.ran(3))
        self.assertNotIn('succeeded', r.stdout)
        self.assertEqual(objects(), [])   # the kept file too

    def test_killed_command(self):
        r = self.run_tool('-f', A, '-c', 'kill -KILL $$', '-n', '1')
        self.assertFails(r, r'command 1 was killed by signal 9')

    def test_missing_program(self):
        r = self.run_tool('-f', A, '-c', 'exec 2>/dev/null; no-such-program-here', '-n', '1')
        self.assertFails(r, r'command 1 exited with status 127')

    def test_bad_input(self):
        f2 = ['-f', A, '-f', B]
        c3 = ['-c', self.marker(1), '-c', self.marker(2), '-c', self.marker(3)]
        cases = [
            (['-c', 'true'], 'enter at least one shared-memory file'),
            (['-f', 'IMODShrMem_10_a', '-c', 'true', '-n', '1'], 'not a shared-memory'),
            (['-f', '/IMODShrMem_2_a', '-c', 'true', '-n', '1'], r'\(KB > 2\)'),
            (['-f', '/IMODShrMem_x_a', '-c', 'true', '-n', '1'], 'not a shared-memory'),
            (['-f', '/IMODShrMem_10_', '-c', 'true', '-n', '1'], 'not a shared-memory'),
            (['-f', '/IMODShrMem_10_a/b', '-c', 'true', '-n', '1'], 'not a shared-memory'),
            (['-f', '/tmp/file', '-c', 'true', '-n', '1'], 'not a shared-memory'),
            (['-f', '/IMODShrMem_99999999999999999999_a', '-c', 'true', '-n', '1'],
             'not a shared-memory'),
            (['-f', '/IMODShrMem_10_' + 'n' * 250, '-c', 'true', '-n', '1'],
             'not a shared-memory'),
            (['-f', A, '-f', A] + c3, 'file 2 repeats file 1'),
            (f2, 'at least one command'),
            (f2 + c3[:4], '2 files and 2 commands: without -need'),
            (f2 + c3 + ['-n', '1', '-n', '2'], '-need was entered 2 times for 3 commands'),
            (f2 + c3 + ['-n', '1', '-n', '3', '-n', '2'], 'file 3 needed by command 2 is out of range'),
            (f2 + c3 + ['-n', '1', '-n', '-1', '-n', '2'], 'file -1 needed by command 2'),
            (f2 + c3 + ['-n', '1', '-n', 'a', '-n', '2'], 'bad value for -need: a'),
            (f2 + c3 + ['-n', '1', '-n', '1', '-n', '1'], r'file 2, /IMODShrMem_20_b, is needed by no command'),
            (f2 + c3 + ['-k', '3'], 'file 3 to keep is out of range 1-2'),
            (f2 + c3 + ['-k', '1-x'], 'bad value for -keep: 1-x'),
            (f2 + c3 + ['-tr', 'x'], 'bad value for -try: x'),
            (f2 + c3 + ['-tr', '1.5'], 'bad value for -try'),
            (f2 + c3 + ['-t', '1'], 'ambiguous option: -t'),
            (f2 + c3 + ['-T', '1'], 'ambiguous option: -T'),
            (f2 + c3 + ['-x'], r'unknown option: -x \(try -help\)'),
            (f2 + c3 + ['-files', 'x'], 'unknown option: -files'),
            (f2 + c3 + ['-FILE', 'x'], 'unknown option: -FILE'),
            (f2 + c3 + ['stray'], 'unexpected argument: stray'),
            (f2 + c3 + ['-'], 'illegal argument: -$'),
            (f2 + c3 + ['--'], 'illegal argument: --$'),
            (f2 + c3 + ['-c'], 'option -c needs a value'),
        ]
        for args, pattern in cases:
            with self.subTest(args=args):
                self.assertFails(self.run_tool(*args), pattern)
                self.assertEqual(objects(), [])
                self.assertFalse(self.ran(1))


NEWSTACK = '''\
"""A small newstack stand-in: -mode M -mult SCALE,ADD IN OUT, where IN and OUT
are MRC files or IMOD shared-memory files (/IMODShrMem_..., which must exist)."""
import struct, sys
import mrcfile, numpy as np

args = sys.argv[1:]
mode = int(args[args.index('-mode') + 1])
scale, add = (float(v) for v in args[args.index('-mult') + 1].split(','))
src, dst = args[-2:]
dtypes = {1: np.int16, 2: np.float32}

if src.startswith('/IMODShrMem_'):
    with open('/dev/shm' + src, 'rb') as f:
        head = f.read(2048)
        nx, ny, nz, m = struct.unpack_from('<4i', head)
        data = np.frombuffer(f.read(nx * ny * nz * 4 if m == 2 else nx * ny * nz * 2),
                             dtype=dtypes[m]).reshape(nz, ny, nx)
else:
    with mrcfile.open(src, permissive=True) as m:
        data = m.data.copy()
out = data.astype(np.float32) * scale + add
out = np.rint(out).astype(np.int16) if mode == 1 else out.astype(np.float32)

if dst.startswith('/IMODShrMem_'):
    capacity = int(dst.split('_')[1]) * 1024
    head = bytearray(2048)     # IMOD's in-memory header: MRC words, labels at 81 bytes
    nz, ny, nx = out.shape
    struct.pack_into('<4i', head, 0, nx, ny, nz, mode)
    struct.pack_into('<3i', head, 28, nx, ny, nz)
    head[208:216] = b'MAP \\x44\\x44\\x00\\x00'
    with open('/dev/shm' + dst, 'r+b') as f:    # not 'w': the object must exist
        if f.seek(0, 2) != capacity or 2048 + out.nbytes > capacity:
            sys.exit('wrong object size')
        f.seek(0)
        f.write(head)
        f.write(out.tobytes())
else:
    with mrcfile.new(dst, overwrite=True) as m:
        m.set_data(out)
'''


class TestManualExample(Case):
    def test_example(self):
        # IMOD's example with newstack replaced by the stand-in above, on a
        # smaller stack than the 1K tutorial's (the file keeps its size).
        script = self.path('newstack.py')
        with open(script, 'w') as f:
            f.write(NEWSTACK)
        newstack = f'{sys.executable} {script}'
        rng = np.random.default_rng(1)
        stack = rng.integers(-300, 300, size=(4, 48, 64), dtype=np.int16)
        with mrcfile.new(self.path('BBa.st')) as m:
            m.set_data(stack)
        r = self.run_tool(
            '-file', '/IMODShrMem_262146_BBa.st',
            '-com', f'{newstack} -mode 2 -mult 100,0 BBa.st /IMODShrMem_262146_BBa.st',
            '-com', f'{newstack} -mode 1 -mult .02,0 /IMODShrMem_262146_BBa.st junk.mrc')
        self.assertOk(r)
        self.assertEqual(objects(), [])
        report = io.StringIO()
        self.assertTrue(mrcfile.validate(self.path('junk.mrc'), print_file=report),
                        report.getvalue())
        with mrcfile.open(self.path('junk.mrc')) as m:
            self.assertEqual(m.header.mode, 1)
            np.testing.assert_array_equal(m.data, stack * 2)


if __name__ == '__main__':
    unittest.main()
