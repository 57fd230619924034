"""harness.py - the fixture every mount test builds on: a real shmfs daemon
over a fresh SOURCE directory under /dev/shm, mounted on a temporary mount
point, and helpers to drive it with real commands.

A test class derives from MountTestCase and may set:
    mount_options   extra daemon arguments, e.g. ['-o', 'allow_other']
    prepare_source  a method that fills SOURCE before the mount
    auto_mount      False to get SOURCE and the mount point but no daemon
Each test gets its own daemon; remount() restarts it (other options, other
SOURCE) inside a test. Teardown (also after a failure) unmounts, waits for
the daemon, removes what was made, and fails the test if the daemon crashed,
exited non-zero, or logged a sanitizer report.

The tests run as root inside private IPC and mount namespaces (see
CMakeLists.txt), so a segment or mount a failed test leaves cannot leak out.
"""

import errno
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

SHMFS_BIN = os.environ.get('SHMFS_BIN', '')
SYSVTOOL = os.environ.get('SHMFS_SYSVTOOL', '')

READY_TIMEOUT = 10.0   # seconds for the mount to appear
EXIT_TIMEOUT = 10.0    # seconds for the daemon to exit after unmount
UNMOUNT_BUSY_TIMEOUT = 5.0   # seconds an unmount may find the mount busy
COMMAND_TIMEOUT = 60.0

# What a sanitizer or a crash leaves in the daemon's stderr.
CRASH_PATTERNS = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:',
                  'Segmentation fault', 'SUMMARY:')

# Commands print C-locale messages, so errno texts can be matched.
COMMAND_ENV = dict(os.environ, LC_ALL='C', LANG='C')
COMMAND_ENV.pop('LANGUAGE', None)


def _unescape_mountinfo(field):
    return re.sub(r'\\([0-7]{3})', lambda m: chr(int(m.group(1), 8)), field)


def mountinfo(path):
    """The last /proc/self/mountinfo entry whose mount point is PATH, as a
    dict (mount_id, dev, fstype, source, options, super_options), or None."""
    found = None
    with open('/proc/self/mountinfo') as f:
        for line in f:
            left, _, right = line.rstrip('\n').partition(' - ')
            fields = left.split(' ')
            rfields = right.split(' ')
            if len(fields) < 6 or len(rfields) < 3:
                continue
            if _unescape_mountinfo(fields[4]) != path:
                continue
            found = {'mount_id': fields[0], 'dev': fields[2], 'options': fields[5],
                     'fstype': rfields[0], 'source': _unescape_mountinfo(rfields[1]),
                     'super_options': rfields[2]}
    return found


def is_mounted(path, fstype='fuse.shmfs'):
    info = mountinfo(path)
    return info is not None and (fstype is None or info['fstype'] == fstype)


def ensure_user(name):
    """(uid, gid) of system user NAME, created (no home, no login) if missing."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(['useradd', '--system', '--user-group', '--no-create-home',
                        '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name],
                       check=False, capture_output=True)
        pw = pwd.getpwnam(name)   # KeyError here: useradd failed
    return pw.pw_uid, pw.pw_gid


def as_user(user):
    """Command prefix that runs as USER: a name, a uid, or a (uid, gid) pair."""
    if isinstance(user, str):
        uid, gid = ensure_user(user)
    elif isinstance(user, int):
        uid, gid = user, pwd.getpwuid(user).pw_gid
    else:
        uid, gid = user
    return ['setpriv', f'--reuid={uid}', f'--regid={gid}', '--clear-groups', '--']


def daemon_pids(mountpoint):
    """Pids of processes whose command line names MOUNTPOINT as an argument
    (how a daemon started by mount(8) is found: temp paths are unique)."""
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open(f'/proc/{entry}/cmdline', 'rb') as f:
                args = f.read().split(b'\0')
        except OSError:
            continue
        if os.fsencode(mountpoint) in args and int(entry) != os.getpid():
            pids.append(int(entry))
    return pids


def in_private_namespaces():
    """Whether this process runs in IPC and mount namespaces of its own:
    those tests/private made (it names them in SHMFS_PRIVATE_NS), or ones
    that differ from an ancestor's (as under `unshare --ipc --mount`)."""
    def ns(pid, kind):
        try:
            return os.readlink(f'/proc/{pid}/ns/{kind}')
        except OSError:
            return None
    mine = (ns('self', 'ipc'), ns('self', 'mnt'))
    if os.environ.get('SHMFS_PRIVATE_NS', '').split() == list(mine):
        return True
    private = [False, False]
    pid = os.getppid()
    while pid > 1 and not all(private):
        theirs = (ns(pid, 'ipc'), ns(pid, 'mnt'))
        if None in theirs:
            break
        private = [p or a != b for p, a, b in zip(private, mine, theirs)]
        try:
            with open(f'/proc/{pid}/stat') as f:
                pid = int(f.read().rpartition(')')[2].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return all(private)


FUSECTL = '/sys/fs/fuse/connections'


def fuse_connection_dir(dev):
    """The fusectl directory of the FUSE connection of a mount whose device
    is DEV ('major:minor', as mountinfo gives it). fusectl is mounted at
    /sys/fs/fuse/connections here if it is not yet: the tests run in a
    mount namespace of their own (in_private_namespaces), so the mount is
    theirs and goes with them."""
    if mountinfo(FUSECTL) is None:
        subprocess.run(['mount', '-t', 'fusectl', 'fusectl', FUSECTL],
                       check=True, capture_output=True)
    major, minor = (int(x) for x in dev.split(':'))
    return os.path.join(FUSECTL, str(os.makedev(major, minor)))


def mount_holders(path):
    """What keeps the mount at PATH busy, as far as this process can see:
    'PID COMMAND (cwd|root|fd N)' for each process with a file, directory or
    root in it."""
    found = []
    for pid in filter(str.isdigit, os.listdir('/proc')):
        uses = []
        for what in ('cwd', 'root'):
            try:
                if os.readlink(f'/proc/{pid}/{what}').startswith(path):
                    uses.append(what)
            except OSError:
                pass
        try:
            for fd in os.listdir(f'/proc/{pid}/fd'):
                try:
                    if os.readlink(f'/proc/{pid}/fd/{fd}').startswith(path):
                        uses.append(f'fd {fd}')
                except OSError:
                    pass
        except OSError:
            pass
        if uses:
            try:
                with open(f'/proc/{pid}/cmdline', 'rb') as f:
                    cmd = f.read().replace(b'\0', b' ').decode('utf-8', 'replace')[:80]
            except OSError:
                cmd = '?'
            found.append(f'{pid} {cmd.strip()} ({", ".join(uses)})')
    return found


def wait_until(predicate, timeout, interval=0.01):
    """Poll PREDICATE until true or TIMEOUT seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
        interval = min(interval * 2, 0.1)


class Daemon:
    """One shmfs process serving SOURCE at MOUNTPOINT, stderr to LOG_PATH."""

    def __init__(self, source, mountpoint, options, log_path):
        self.source = source
        self.mountpoint = mountpoint
        self.options = list(options)
        self.log_path = log_path
        self.argv = [SHMFS_BIN, '-f', *self.options, source, mountpoint]
        self.proc = None
        self.dev = None

    def start(self):
        env = dict(os.environ)
        # Sanitizer reports go to stderr (the log) and leaks are checked at exit.
        env.setdefault('ASAN_OPTIONS', 'detect_leaks=1')
        env.setdefault('UBSAN_OPTIONS', 'print_stacktrace=1')
        with open(self.log_path, 'ab') as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log, env=env)

    def wait_ready(self):
        """Wait until the mount appears; returns None or an error text."""
        def ready():
            return is_mounted(self.mountpoint) or self.proc.poll() is not None
        wait_until(ready, READY_TIMEOUT)
        if self.proc.poll() is not None:
            return f'the daemon exited with status {self.proc.returncode} before mounting'
        info = mountinfo(self.mountpoint)
        if info is None or info['fstype'] != 'fuse.shmfs':
            return f'no fuse.shmfs mount at {self.mountpoint} after {READY_TIMEOUT} s'
        self.dev = info['dev']
        return None

    def log(self):
        try:
            with open(self.log_path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def stop(self):
        """Unmount and wait for the daemon. Returns a list of problems."""
        problems = []
        if is_mounted(self.mountpoint):
            # A process of the machine that looks into every process's files
            # (lsof, a monitor walking /proc/PID/fd) can hold a file of the
            # mount for a moment: busy is retried for a while, and only a
            # holder that stays is the test's fault.
            def unmounted():
                r = subprocess.run(['fusermount3', '-u', self.mountpoint],
                                   capture_output=True, text=True, env=COMMAND_ENV)
                return r if r.returncode == 0 or 'busy' not in r.stderr else None
            r = wait_until(unmounted, UNMOUNT_BUSY_TIMEOUT, interval=0.05)
            if r is None or r.returncode != 0:
                why = r.stderr.strip() if r else f'busy for {UNMOUNT_BUSY_TIMEOUT} s'
                holders = '; '.join(mount_holders(self.mountpoint)) or 'none seen'
                problems.append(f'fusermount3 -u failed: {why} (held by: {holders}); '
                                'used umount -l')
                subprocess.run(['umount', '-l', self.mountpoint], capture_output=True)
        if self.proc is None:
            return problems
        try:
            self.proc.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            problems.append(f'the daemon did not exit within {EXIT_TIMEOUT} s of the unmount')
            self._abort_connection()
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        if rc < 0:
            problems.append(f'the daemon died of signal {signal.Signals(-rc).name}')
        elif rc > 0:
            problems.append(f'the daemon exited with status {rc}')
        text = self.log()
        for pattern in CRASH_PATTERNS:
            if pattern in text:
                problems.append(f'the daemon log contains {pattern!r}')
        return problems

    def _abort_connection(self):
        if not self.dev or not in_private_namespaces():
            return
        try:
            with open(os.path.join(fuse_connection_dir(self.dev), 'abort'), 'w') as f:
                f.write('1')
        except (OSError, subprocess.CalledProcessError):
            pass


class MountTestCase(unittest.TestCase):
    """A test with its own shmfs mount: self.source (SOURCE), self.mnt (the
    mount point), self.daemon (the running Daemon)."""

    mount_options = []   # extra daemon arguments for every test of the class
    auto_mount = True    # mount in setUp (False: the test calls mount() itself)

    def prepare_source(self, source):
        """Fill SOURCE before the first mount (override)."""

    # -- fixture ----------------------------------------------------------

    def setUp(self):
        super().setUp()
        if not SHMFS_BIN or not os.access(SHMFS_BIN, os.X_OK):
            self.fail('SHMFS_BIN must name the shmfs daemon (run the tests through ctest)')
        if not in_private_namespaces():
            self.fail('mount tests must run in private IPC and mount namespaces '
                      '(ctest does this: unshare --ipc --mount --propagation private)')
        self._old_umask = os.umask(0o022)
        self._daemon = None
        self._logs = []           # logs of the daemons already stopped
        self._late_cleanups = []  # run after the daemon has stopped (LIFO)
        self.workdir = tempfile.mkdtemp(prefix='shmfs-work-')
        self.source = self._own_source = tempfile.mkdtemp(prefix='shmfs-test-', dir='/dev/shm')
        self.mnt = tempfile.mkdtemp(prefix='shmfs-mnt-', dir='/tmp')
        # Other users must be able to reach the mount and SOURCE (allow_other tests).
        os.chmod(self.source, 0o755)
        os.chmod(self.mnt, 0o755)
        self.addCleanup(self._teardown)
        self.prepare_source(self.source)
        if self.auto_mount:
            self.mount()

    def _teardown(self):
        problems = []
        if self._daemon is not None:
            problems += self._stop_daemon()
        while self._late_cleanups:
            fn = self._late_cleanups.pop()
            try:
                fn()
            except Exception as e:  # keep cleaning; report at the end
                problems.append(f'cleanup {fn!r} failed: {e}')
        if is_mounted(self.mnt, fstype=None):
            problems.append(f'something is still mounted at {self.mnt}; used umount -l')
            subprocess.run(['umount', '-l', self.mnt], capture_output=True)
        try:
            os.rmdir(self.mnt)
        except OSError as e:
            problems.append(f'cannot remove mount point {self.mnt}: {e}')
        # The SOURCE made in setUp (a test may have mounted another one).
        shutil.rmtree(self._own_source, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        os.umask(self._old_umask)
        if problems:
            self.fail('teardown trouble:\n  ' + '\n  '.join(problems) + '\n' + self.all_logs())

    def _stop_daemon(self):
        d = self._daemon
        self._daemon = None
        problems = d.stop()
        self._logs.append(d.log())
        return problems

    def mount(self, options=None, source=None):
        """Start a daemon on self.mnt over SOURCE (default self.source) with
        OPTIONS (default the class's mount_options); wait until it is ready."""
        self.assertIsNone(self._daemon, 'already mounted: unmount() first')
        if source is not None:
            self.source = source
        opts = self.mount_options if options is None else options
        log_path = os.path.join(self.workdir, f'daemon-{len(self._logs)}.log')
        self._daemon = Daemon(self.source, self.mnt, opts, log_path)
        self._daemon.start()
        error = self._daemon.wait_ready()
        if error:
            problems = self._stop_daemon()
            self.fail(f'{error}\n  ' + '\n  '.join(problems) + '\n' + self.all_logs())

    def unmount(self):
        """Stop the daemon now; fail if it misbehaved."""
        problems = self._stop_daemon()
        if problems:
            self.fail('daemon trouble:\n  ' + '\n  '.join(problems) + '\n' + self.all_logs())

    def remount(self, options=None, source=None):
        self.unmount()
        self.mount(options=options, source=source)

    @property
    def daemon(self):
        return self._daemon

    def defer(self, fn):
        """Run FN at teardown, after the daemon has stopped."""
        self._late_cleanups.append(fn)

    def tmpfs_dir(self, size):
        """A fresh tmpfs of SIZE (mount(8) syntax, e.g. '1m'), mode 0755;
        unmounted at teardown after the daemon has stopped."""
        path = tempfile.mkdtemp(prefix='shmfs-tmpfs-', dir=self.workdir)
        self.check(['mount', '-t', 'tmpfs', '-o', f'size={size},mode=0755', 'tmpfs', path])
        self.defer(lambda: subprocess.run(['umount', path], check=True, capture_output=True))
        return path

    def assert_daemon_alive(self):
        """The daemon still runs and still answers."""
        self.assertIsNotNone(self._daemon)
        self.assertIsNone(self._daemon.proc.poll(),
                          'the daemon has exited\n' + self.log_text())
        os.stat(self.mnt)
        os.listdir(self.mnt)

    # -- paths and logs ---------------------------------------------------

    def m(self, *parts):
        """A path in the mount."""
        return os.path.join(self.mnt, *parts)

    def s(self, *parts):
        """A path in SOURCE."""
        return os.path.join(self.source, *parts)

    def log_text(self):
        """The running daemon's log (stderr) so far."""
        return self._daemon.log() if self._daemon else ''

    def all_logs(self):
        logs = self._logs + ([self._daemon.log()] if self._daemon else [])
        return '\n'.join(f'--- daemon log {i} ---\n{text}' for i, text in enumerate(logs))

    def assert_log(self, regex, msg=None):
        """The running daemon's log has a line matching REGEX."""
        text = self.log_text()
        self.assertRegex(text, re.compile(regex, re.MULTILINE), msg or 'daemon log:\n' + text)

    def assert_not_log(self, regex):
        text = self.log_text()
        self.assertNotRegex(text, re.compile(regex, re.MULTILINE), 'daemon log:\n' + text)

    # -- commands ---------------------------------------------------------

    def run_cmd(self, cmd, user=None, input=None, env=None, timeout=COMMAND_TIMEOUT,
                text=True, cwd=None):
        """Run CMD (a list), as USER if given; returns the CompletedProcess."""
        argv = (as_user(user) if user is not None else []) + [str(a) for a in cmd]
        full_env = dict(COMMAND_ENV, **(env or {}))
        if isinstance(input, str) and not text:
            input = input.encode()
        return subprocess.run(argv, input=input, capture_output=True, env=full_env,
                              timeout=timeout, text=text,
                              cwd=cwd or ('/' if user is not None else self.workdir))

    def check(self, cmd, **kw):
        """Run CMD and assert it succeeds; returns its stdout."""
        r = self.run_cmd(cmd, **kw)
        if r.returncode != 0:
            self.fail(f'{_show(cmd)} failed with status {r.returncode}:\n'
                      f'stdout: {r.stdout!r}\nstderr: {r.stderr!r}\n{self.log_text()}')
        return r.stdout

    def check_fails(self, cmd, err=None, **kw):
        """Run CMD and assert it fails, with the message of errno ERR on
        stderr when ERR is given; returns the CompletedProcess."""
        r = self.run_cmd(cmd, **kw)
        self.assertNotEqual(r.returncode, 0,
                            f'{_show(cmd)} should have failed\nstdout: {r.stdout!r}')
        if err is not None:
            stderr = r.stderr if isinstance(r.stderr, str) else r.stderr.decode('utf-8', 'replace')
            self.assertIn(os.strerror(err), stderr,
                          f'{_show(cmd)} should fail with {errno.errorcode[err]}')
        return r

    def assert_errno(self, err, fn, *args, **kw):
        """FN(*ARGS) raises OSError with errno ERR."""
        with self.assertRaises(OSError) as cm:
            fn(*args, **kw)
        self.assertEqual(cm.exception.errno, err,
                         f'expected {errno.errorcode[err]}, got {cm.exception!r}')
        return cm.exception

    def python_as(self, user, code, *args):
        """Run Python CODE as USER (args in sys.argv[1:]); returns the CompletedProcess."""
        return self.run_cmd([sys.executable, '-c', code, *args], user=user)

    def sysvtool(self, *args, user=None, check=True, text=True):
        """Run sysvtool ARGS (as USER); returns stdout, or the CompletedProcess
        when CHECK is false."""
        if not SYSVTOOL:
            self.fail('SHMFS_SYSVTOOL must name tests/mount/sysvtool')
        cmd = [SYSVTOOL, *args]
        if not check:
            return self.run_cmd(cmd, user=user, text=text)
        r = self.run_cmd(cmd, user=user, text=text)
        if r.returncode != 0:
            self.fail(f'{_show(cmd)} failed: {r.stderr!r}')
        return r.stdout

    def remove_all_segments(self):
        """IPC_RMID every System V segment of this (private) IPC namespace."""
        self.check(['ipcrm', '--all=shm'])

    def sysv_stat(self, name, user=None):
        """sysvtool stat NAME as a dict, or None if there is no such segment."""
        r = self.sysvtool('stat', name, user=user, check=False)
        if r.returncode != 0:
            return None
        shmid, size, mode, uid, gid, cuid = r.stdout.split()
        return {'shmid': int(shmid), 'size': int(size), 'mode': int(mode, 8),
                'uid': int(uid), 'gid': int(gid), 'cuid': int(cuid)}

    # -- files ------------------------------------------------------------

    @staticmethod
    def read(path, offset=0, size=-1):
        with open(path, 'rb', buffering=0) as f:
            if offset:
                f.seek(offset)
            return f.read() if size < 0 else f.read(size)

    @staticmethod
    def write(path, data, mode='wb'):
        if isinstance(data, str):
            data = data.encode()
        with open(path, mode, buffering=0) as f:
            f.write(data)


_help_text = None


def daemon_help():
    """The daemon's --help text (cached), to find which options it has."""
    global _help_text
    if _help_text is None:
        try:
            r = subprocess.run([SHMFS_BIN, '--help'], capture_output=True, text=True,
                               timeout=COMMAND_TIMEOUT, env=COMMAND_ENV)
            _help_text = r.stdout + r.stderr
        except OSError:
            _help_text = ''
    return _help_text


def with_variants(namespace, classes, suffix, options, doc):
    """Add to NAMESPACE (a module's globals()) a subclass of each of CLASSES
    named NAME+SUFFIX whose mounts also get OPTIONS: the same tests, another
    mode of the daemon."""
    for cls in classes:
        name = cls.__name__ + suffix
        namespace[name] = type(name, (cls,), {
            'mount_options': list(cls.mount_options) + list(options),
            '__doc__': f'{cls.__doc__ or cls.__name__}\n({doc})',
            '__module__': namespace['__name__'],
        })


def _show(cmd):
    return ' '.join(str(a) for a in cmd)
