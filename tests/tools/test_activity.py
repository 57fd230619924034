"""test_activity.py - who uses what, and how fast: `shmtool ls`, `info` and
`top` name the processes that have each object mapped or open (and System V
segments attached), and give each stream's frame rate. The test starts its
own writers (50 Hz and 5 Hz, each named with prctl), a reader that maps a
stream read-only, a process that only holds a stream open, and a process
attached to a System V segment, and checks the PID, command and rate
columns against them; top's terminal screen through a pseudo-terminal."""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
import unittest

import isio

TOOLS = os.environ.get('SHMFS_TOOLS', '')
SHMTOOL = os.path.join(TOOLS, 'shmtool')
SYSVTOOL = os.environ.get('SHMFS_SYSVTOOL', '')
SHM = '/dev/shm'
ENV = dict(os.environ, LC_ALL='C', LANG='C')
CRASH = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:', 'SUMMARY:')

# A process that names itself NAME (prctl PR_SET_NAME, what /proc/PID/comm
# shows) and then: "write PATH HZ" (frames of a stream at HZ, on absolute
# deadlines, as a camera loop does), "map PATH" (a read-only shared mapping,
# no descriptor kept) or "open PATH" (a descriptor only). It prints "ready"
# once it holds what it holds, and runs until killed.
ACTOR = r'''
import ctypes, mmap, os, sys, time
import isio
name, what, path = sys.argv[1:4]
ctypes.CDLL(None).prctl(15, name.encode(), 0, 0, 0)
if what == 'write':
    hz = float(sys.argv[4])
    w = isio.Writer(path)
    pixels = bytes(isio.stream_layout(path)['datasize'])
    w.frame(pixels)
    print('ready', flush=True)
    t = time.monotonic()
    while True:
        t += 1 / hz
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        w.frame(pixels)
elif what == 'map':
    fd = os.open(path, os.O_RDONLY)
    m = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
    os.close(fd)   # mmap keeps a descriptor of its own: close that too
    for link in os.listdir('/proc/self/fd'):
        try:
            if os.path.realpath('/proc/self/fd/' + link) == os.path.realpath(path):
                os.close(int(link))
        except OSError:
            pass
    print('ready', flush=True)
    time.sleep(3600)
else:
    fd = os.open(path, os.O_RDONLY)
    print('ready', flush=True)
    time.sleep(3600)
'''


class ActivityTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.procs = []
        try:
            for name in ('fast', 'slow', 'still'):
                isio.make_stream(os.path.join(SHM, name + '.im.shm'), name, 9, (32, 32))
            with open(os.path.join(SHM, 'plain'), 'wb') as f:
                f.write(b'x' * 4096)
            cls.fast = cls.actor('fastwriter', 'write', 'fast.im.shm', '50')
            cls.slow = cls.actor('slowwriter', 'write', 'slow.im.shm', '5')
            cls.reader = cls.actor('reader', 'map', 'fast.im.shm')
            cls.holder = cls.actor('holder', 'open', 'slow.im.shm')
            shmid = subprocess.run([SYSVTOOL, 'create', '0x4242', '4096'], check=True,
                                   capture_output=True, text=True).stdout.strip()
            cls.shmid = int(shmid)
            cls.attached = subprocess.Popen([SYSVTOOL, 'hold', '0x4242'], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, text=True)
            cls.procs.append(cls.attached)
            assert cls.attached.stdout.readline().strip() == 'attached'
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def actor(cls, name, what, obj, *args):
        p = subprocess.Popen([sys.executable, '-c', ACTOR, name, what,
                              os.path.join(SHM, obj), *args],
                             stdout=subprocess.PIPE, text=True, env=ENV)
        cls.procs.append(p)
        line = p.stdout.readline().strip()
        assert line == 'ready', f'{name}: {line!r}'
        return p

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            if p.stdin:
                p.stdin.close()     # sysvtool hold detaches and exits
            else:
                p.kill()
            p.wait()
            p.stdout.close()
        subprocess.run(['ipcrm', '--all'], check=False, capture_output=True)
        for name in os.listdir(SHM):
            os.unlink(os.path.join(SHM, name))

    def run_tool(self, *args, user=None, status=0):
        cmd = [SHMTOOL, *args]
        if user:
            cmd = ['setpriv', f'--reuid={user}', '--regid=nogroup', '--clear-groups', *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=ENV)
        for pattern in CRASH:
            self.assertNotIn(pattern, r.stderr, f'shmtool {args}: sanitizer:\n{r.stderr}')
        self.assertEqual(r.returncode, status, f'shmtool {args}:\n{r.stderr}')
        if status == 0:
            self.assertEqual(r.stderr, '', f'shmtool {args}: stderr')
        return r

    def ls_json(self, *args, **kw):
        out = self.run_tool('ls', '--json', *args, **kw).stdout
        return {o['name']: o for o in map(json.loads, out.splitlines())}

    def procs_of(self, obj):
        return {p['pid']: p for p in obj['processes']}

    def check_users(self, objs):
        fast = self.procs_of(objs['fast.im.shm'])
        self.assertEqual(set(fast), {self.fast.pid, self.reader.pid}, fast)
        self.assertEqual(fast[self.fast.pid], {'pid': self.fast.pid, 'command': 'fastwriter',
                                               'mapped': True, 'writable': True,
                                               'open': True})
        self.assertEqual(fast[self.reader.pid], {'pid': self.reader.pid, 'command': 'reader',
                                                 'mapped': True, 'writable': False,
                                                 'open': False})
        slow = self.procs_of(objs['slow.im.shm'])
        self.assertEqual(set(slow), {self.slow.pid, self.holder.pid}, slow)
        self.assertEqual(slow[self.holder.pid]['command'], 'holder')
        self.assertEqual((slow[self.holder.pid]['mapped'], slow[self.holder.pid]['open']),
                         (False, True))
        self.assertEqual(objs['still.im.shm']['processes'], [])
        self.assertEqual(objs['plain']['processes'], [])
        seg = self.procs_of(objs['0x00004242'])
        self.assertEqual(set(seg), {self.attached.pid}, seg)
        self.assertEqual(seg[self.attached.pid]['command'], 'sysvtool')
        self.assertTrue(seg[self.attached.pid]['mapped'])
        self.assertEqual(objs['0x00004242']['nattch'], 1)

    def check_rates(self, objs):
        fast, slow, still = (objs[n + '.im.shm'] for n in ('fast', 'slow', 'still'))
        # 50 and 5 Hz, within what a shared machine lets a Python loop keep
        self.assertTrue(35 <= fast['rate_hz'] <= 65, fast['rate_hz'])
        self.assertTrue(3 <= slow['rate_hz'] <= 7, slow['rate_hz'])
        self.assertEqual(fast['rate_clock'], 'writetime')
        self.assertEqual(still['rate_hz'], 0)
        self.assertEqual(still['rate_clock'], 'window')
        for name in ('plain', '0x00004242'):
            self.assertIsNone(objs[name]['rate_hz'])
            self.assertIsNone(objs[name]['rate_clock'])

    def test_ls_json(self):
        objs = self.ls_json()
        self.check_users(objs)
        self.check_rates(objs)

    def test_ls_columns(self):
        rows = {line.split('\t')[0]: line.split('\t')
                for line in self.run_tool('ls').stdout.splitlines()}
        for row in rows.values():
            self.assertEqual(len(row), 11, row)
        hz, procs = rows['fast.im.shm'][9:11]
        self.assertTrue(35 <= float(hz) <= 65, hz)
        self.assertEqual(sorted(procs.split(' ')),
                         sorted([f'{self.fast.pid}/fastwriter', f'{self.reader.pid}/reader']))
        self.assertEqual(rows['still.im.shm'][9:11], ['0.00', '-'])
        self.assertEqual(rows['plain'][9:11], ['-', '-'])
        self.assertEqual(rows['0x00004242'][10], f'{self.attached.pid}/sysvtool')
        long_rows = [line.split('\t') for line in self.run_tool('ls', '-l').stdout.splitlines()]
        slow = next(r for r in long_rows if r[0] == 'slow.im.shm')
        self.assertEqual(len(slow), 13)
        self.assertIn(f'{self.holder.pid}/holder', slow[12])

    def test_no_wait_without_rates(self):
        t = time.monotonic()
        objs = self.ls_json('-i', '0')
        self.assertLess(time.monotonic() - t, 0.9)
        self.assertIsNone(objs['fast.im.shm']['rate_hz'])
        self.check_users(objs)
        t = time.monotonic()
        objs = self.ls_json('--interval', '0.3')
        self.assertGreaterEqual(time.monotonic() - t, 0.3)
        self.assertTrue(25 <= objs['fast.im.shm']['rate_hz'] <= 75, objs['fast.im.shm'])
        for bad in ('-1', 'x', '3601', 'nan', ''):
            r = self.run_tool('ls', '-i', bad, status=2)
            self.assertIn('-i takes seconds', r.stderr)

    def test_info(self):
        info = json.loads(self.run_tool('info', '--json', 'fast').stdout)
        self.assertTrue(35 <= info['rate_hz'] <= 65, info['rate_hz'])
        self.assertEqual(set(self.procs_of(info)), {self.fast.pid, self.reader.pid})
        self.assertEqual(info['nsem'], 10)          # and everything info had before
        text = self.run_tool('info', 'slow').stdout
        self.assertIn(f'process:           {self.slow.pid} slowwriter (mapped writable, open)\n',
                      text)
        self.assertIn(f'process:           {self.holder.pid} holder (open)\n', text)
        self.assertRegex(text, r'\nrate_hz: +[0-9.]+\nrate_clock: +(writetime|window)\n')
        seg = json.loads(self.run_tool('info', '--json', '-i', '0', '0x00004242').stdout)
        self.assertEqual([p['pid'] for p in seg['processes']], [self.attached.pid])

    def test_other_users_see_their_own(self):
        objs = self.ls_json('-i', '0.2', user='nobody')
        self.assertEqual(objs['fast.im.shm']['processes'], [])
        self.assertTrue(objs['fast.im.shm']['rate_hz'] > 0)

    def test_top_in_a_pipe(self):
        t = time.monotonic()
        lines = self.run_tool('top').stdout.splitlines()
        self.assertGreaterEqual(time.monotonic() - t, 1.0)  # one interval, one snapshot
        rows = [line.split('\t') for line in lines]
        self.assertEqual({len(r) for r in rows}, {8})
        names = [r[1] for r in rows]
        self.assertEqual(names[:3], ['fast.im.shm', 'slow.im.shm', 'still.im.shm'])
        self.assertEqual(sorted(names[3:]), ['0x00004242', 'plain'])
        self.assertEqual([r[0] for r in rows[3:]], ['-', '-'])
        fast = rows[0]
        self.assertTrue(35 <= float(fast[0]) <= 65, fast)
        self.assertEqual(fast[2:6], ['posix', 'stream', 'float32', '32,32'])
        self.assertGreater(int(fast[6]), 0)
        self.assertIn(f'{self.fast.pid}/fastwriter', fast[7])
        snaps = self.run_tool('top', '--json', '-n', '2', '-i', '0.3').stdout.splitlines()
        self.assertEqual(len(snaps), 10)
        objs = [json.loads(line) for line in snaps]
        self.assertEqual([o['name'] for o in objs[:2]], ['fast.im.shm', 'slow.im.shm'])
        self.assertEqual(objs[5]['name'], 'fast.im.shm')
        self.check_users({o['name']: o for o in objs[:5]})
        r = self.run_tool('top', '-i', '0', status=2)
        self.assertIn('interval', r.stderr)
        r = self.run_tool('top', '-n', '0', status=2)
        self.assertIn('-n takes', r.stderr)

    def drain(self, master, p):
        """What top writes until it exits (read on, so it never blocks)."""
        out = b''
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:   # EIO: the terminal's last user has gone
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        return out

    def test_top_on_a_terminal(self):
        master, slave = pty.openpty()
        p = subprocess.Popen([SHMTOOL, 'top', '-i', '0.3'], stdin=slave, stdout=slave,
                             stderr=slave, env=dict(ENV, TERM='xterm'))
        os.close(slave)
        out = b''
        try:
            deadline = time.monotonic() + 30
            while out.count(b'shmtool top - ') < 2 and time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 1)
                if ready:
                    out += os.read(master, 65536)
            self.assertGreaterEqual(out.count(b'shmtool top - '), 2, out)
            os.write(master, b'q')
            out += self.drain(master, p)
            self.assertEqual(p.wait(timeout=1), 0)
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                p.wait()
            os.close(master)
        text = out.decode(errors='replace')
        self.assertTrue(text.startswith('\x1b[?1049h'), text[:40])   # alternate screen
        self.assertTrue(text.rstrip('\r\n').endswith('\x1b[?1049l'), text[-40:])  # put back
        screen = text[text.rindex('shmtool top - '):]
        lines = [line.replace('\x1b[K', '') for line in screen.split('\r\n')]
        self.assertIn('5 objects, 3 streams; every 0.3 s; q quits', lines[0])
        at = next(i for i, line in enumerate(lines) if line.lstrip().startswith('HZ '))
        self.assertEqual(lines[at].split(), ['HZ', 'NAME', 'BACKEND', 'FORMAT', 'TYPE',
                                             'SHAPE', 'CNT0', 'PROCESSES'])
        self.assertIn('fast.im.shm', lines[at + 1])
        self.assertIn(f'{self.fast.pid}/fastwriter', lines[at + 1])
        self.assertIn('slow.im.shm', lines[at + 2])
        # SIGTERM ends it as q does, with the terminal put back
        master, slave = pty.openpty()
        p = subprocess.Popen([SHMTOOL, 'top'], stdin=slave, stdout=slave, stderr=slave,
                             env=dict(ENV, TERM='xterm'))
        os.close(slave)
        try:
            out = b''
            while b'shmtool top - ' not in out:
                ready, _, _ = select.select([master], [], [], 30)
                self.assertTrue(ready, out)
                out += os.read(master, 65536)
            p.terminate()
            self.drain(master, p)
            self.assertEqual(p.wait(timeout=1), 0)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)


if __name__ == '__main__':
    unittest.main()
