"""test_cli.py - the daemon as a command: --help, --version, argument errors,
mounting through mount(8) (mount.fuse3 runs `shmfs SOURCE MOUNTPOINT -o ...`)
and in the background, mount options, the multithreaded loop under parallel
readers, and reads and writes of 4 MiB (requests of up to 1 MiB)."""

import glob
import hashlib
import os
import re
import subprocess
import sys
import unittest

import harness
from harness import MountTestCase, SHMFS_BIN, daemon_pids, is_mounted, mountinfo, wait_until

MIB = 1 << 20


def pattern(size, seed=0):
    block = hashlib.sha256(str(seed).encode()).digest() * 128          # 4 KiB
    block = bytes(b ^ (i & 0xff) for i, b in enumerate(block))
    out = bytearray()
    for i in range(size // len(block) + 1):
        out += block[i % 7:] + block[:i % 7]
    return bytes(out[:size])


class CommandLineTest(MountTestCase):
    auto_mount = False

    def test_help(self):
        for flag in ('--help', '-h'):
            with self.subTest(flag=flag):
                r = self.run_cmd([SHMFS_BIN, flag], timeout=10)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r'(?i)usage: \S*shmfs')
                for word in ('MOUNTPOINT', 'SOURCE', '-f', 'sysvdir=', 'allow_other'):
                    self.assertIn(word, r.stdout)

    def test_version(self):
        for flag in ('--version', '-V'):
            with self.subTest(flag=flag):
                r = self.run_cmd([SHMFS_BIN, flag], timeout=10)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r'^shmfs \d+\.\d+(\.\d+)?\b')

    def test_no_mount_point(self):
        for args in ([], ['-f'], ['-o', 'allow_other']):
            with self.subTest(args=args):
                r = self.run_cmd([SHMFS_BIN, *args], timeout=10)
                self.assertNotEqual(r.returncode, 0)
                self.assertRegex(r.stderr, r'(?i)mount ?point')
        self.assertFalse(is_mounted(self.mnt, fstype=None))

    def test_bad_source(self):
        r = self.run_cmd([SHMFS_BIN, '-f', '/nonexistent/shmfs-source', self.mnt], timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('/nonexistent/shmfs-source', r.stderr)
        self.assertFalse(is_mounted(self.mnt, fstype=None))

    def test_bad_sysvdir(self):
        for name in ('a/b', '.', '..', ''):
            with self.subTest(name=name):
                r = self.run_cmd([SHMFS_BIN, '-f', '-o', f'sysvdir={name}', self.source, self.mnt],
                                 timeout=10)
                self.assertNotEqual(r.returncode, 0)
                self.assertIn('sysvdir', r.stderr)
                self.assertFalse(is_mounted(self.mnt, fstype=None))

    def test_too_many_arguments(self):
        r = self.run_cmd([SHMFS_BIN, '-f', self.source, self.mnt, self.workdir], timeout=10)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(is_mounted(self.mnt, fstype=None))


class ExternalMountTest(MountTestCase):
    """Mounts made without the harness's foreground daemon: mount(8) and a
    plain background `shmfs SOURCE MOUNTPOINT`. Their stderr is gone once
    they daemonize, so sanitizer reports go to files (ASAN_OPTIONS log_path)."""

    auto_mount = False

    def setUp(self):
        super().setUp()
        self.put_shmfs_on_default_path()
        self.write(self.s('object'), b'seen through mount(8)')
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)
        self.sysvtool('create', '0x00000e0e', '64')
        self.asan_prefix = os.path.join(self.workdir, 'sanitizer')
        self.env = {
            'PATH': os.path.dirname(SHMFS_BIN) + ':' + os.environ.get('PATH', '/usr/bin:/bin'),
            'ASAN_OPTIONS': f'detect_leaks=1:log_path={self.asan_prefix}',
            'UBSAN_OPTIONS': f'print_stacktrace=1:log_path={self.asan_prefix}',
        }
        self.defer(self._force_unmount)

    def put_shmfs_on_default_path(self):
        """mount(8) runs its helper without PATH, so mount.fuse3's /bin/sh
        looks for `shmfs` in the shell's default path only. Put the build's
        shmfs in the first directory of it, as an install would: a directory
        bind-mounted over /usr/local/sbin (or /usr/local/bin), seen only in
        this test's private mount namespace."""
        target = next((d for d in ('/usr/local/sbin', '/usr/local/bin') if os.path.isdir(d)),
                      None)
        if target is None:
            self.fail('neither /usr/local/sbin nor /usr/local/bin exists')
        shadow = os.path.join(self.workdir, 'bin')
        os.mkdir(shadow)
        os.symlink(SHMFS_BIN, os.path.join(shadow, 'shmfs'))
        self.check(['mount', '--bind', shadow, target])
        self.defer(lambda: subprocess.run(['umount', target], check=True, capture_output=True))

    def _force_unmount(self):
        if is_mounted(self.mnt, fstype=None):
            subprocess.run(['umount', '-l', self.mnt], capture_output=True)

    def wait_mounted(self):
        self.assertTrue(wait_until(lambda: is_mounted(self.mnt), harness.READY_TIMEOUT),
                        f'no fuse.shmfs mount at {self.mnt}')
        pids = daemon_pids(self.mnt)
        self.assertEqual(len(pids), 1, f'daemon processes: {pids}')
        # Its sanitizer reports (if any) go where unmount_and_wait looks.
        with open(f'/proc/{pids[0]}/environ', 'rb') as f:
            environ = f.read().split(b'\0')
        self.assertIn(os.fsencode(self.env['ASAN_OPTIONS']),
                      [e.partition(b'=')[2] for e in environ if e.startswith(b'ASAN_OPTIONS=')])
        return pids[0]

    def unmount_and_wait(self, pid, cmd):
        self.check(cmd)
        self.assertFalse(is_mounted(self.mnt, fstype=None))
        gone = wait_until(lambda: not os.path.exists(f'/proc/{pid}'), harness.EXIT_TIMEOUT)
        self.assertTrue(gone, f'daemon {pid} still runs after {cmd}')
        reports = glob.glob(self.asan_prefix + '*')
        texts = ''.join(open(p, errors='replace').read() for p in reports)
        self.assertEqual(reports, [], 'sanitizer reports:\n' + texts)

    def check_mount_works(self, sysvdir='sysv'):
        self.assertEqual(self.read(self.m('object')), b'seen through mount(8)')
        self.assertEqual(os.listdir(self.m(sysvdir)), ['0x00000e0e'])
        info = mountinfo(self.mnt)
        self.assertEqual(info['fstype'], 'fuse.shmfs')
        self.assertEqual(info['source'], os.path.realpath(self.source))
        self.assertIn('default_permissions', info['super_options'].split(','))
        return info

    def test_mount_t_fuse_shmfs(self):
        self.check(['mount', '-t', 'fuse.shmfs', self.source, self.mnt], env=self.env)
        pid = self.wait_mounted()
        info = self.check_mount_works()
        self.assertNotIn('allow_other', info['super_options'].split(','))
        self.unmount_and_wait(pid, ['umount', self.mnt])

    def test_mount_t_with_options(self):
        self.check(['mount', '-t', 'fuse.shmfs', '-o', 'allow_other,sysvdir=ipc',
                    self.source, self.mnt], env=self.env)
        pid = self.wait_mounted()
        info = self.check_mount_works(sysvdir='ipc')
        self.assertIn('allow_other', info['super_options'].split(','))
        self.assertFalse(os.path.exists(self.m('sysv')))
        self.unmount_and_wait(pid, ['umount', self.mnt])

    def test_background_daemon(self):
        r = self.run_cmd([SHMFS_BIN, self.source, self.mnt], env=self.env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = self.wait_mounted()
        self.check_mount_works()
        self.unmount_and_wait(pid, ['fusermount3', '-u', self.mnt])

    def test_default_source_is_dev_shm(self):
        r = self.run_cmd([SHMFS_BIN, '-o', 'ro', self.mnt], env=self.env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        pid = self.wait_mounted()
        self.assertEqual(mountinfo(self.mnt)['source'], '/dev/shm')
        self.assertIn(os.path.basename(self.source), os.listdir(self.mnt))
        self.unmount_and_wait(pid, ['fusermount3', '-u', self.mnt])


    def private_fstab(self, lines):
        """An /etc/fstab of LINES, bind-mounted over the real one in this
        test's private mount namespace only."""
        fstab = os.path.join(self.workdir, 'fstab')
        with open(fstab, 'w') as f:
            f.write('# made by test_cli.py\n' + ''.join(line + '\n' for line in lines))
        self.check(['mount', '--bind', fstab, '/etc/fstab'])
        self.defer(lambda: subprocess.run(['umount', '/etc/fstab'], check=True,
                                          capture_output=True))

    def test_fstab_line(self):
        # The line the README gives, with this test's SOURCE and mount point.
        self.private_fstab([f'{self.source} {self.mnt} fuse.shmfs allow_other 0 0'])
        self.check(['mount', self.mnt], env=self.env)
        pid = self.wait_mounted()
        info = self.check_mount_works()
        self.assertIn('allow_other', info['super_options'].split(','))
        self.unmount_and_wait(pid, ['umount', self.mnt])
        self.check(['mount', '-a'], env=self.env)
        pid = self.wait_mounted()
        self.check_mount_works()
        self.check(['mount', '-a'], env=self.env)     # already mounted: nothing more
        self.assertEqual(daemon_pids(self.mnt), [pid])
        self.unmount_and_wait(pid, ['umount', self.mnt])

    def test_fstab_line_for_systemd(self):
        # The form whose source is not a path under /dev, which systemd would
        # take for a device to wait for (README: From boot).
        self.private_fstab([f'shmfs#{self.source} {self.mnt} fuse allow_other,noauto 0 0'])
        self.check(['mount', '-a'], env=self.env)     # noauto: not mounted
        self.assertFalse(is_mounted(self.mnt, fstype=None))
        self.check(['mount', self.mnt], env=self.env)
        pid = self.wait_mounted()
        self.check_mount_works()
        self.unmount_and_wait(pid, ['umount', self.mnt])

    def test_background_daemon_logs_to_syslog(self):
        """Without -f the daemon's lines go to syslog as "shmfs[PID]", facility
        daemon: caught on a /dev/log of the test's own (a tmpfs on /dev in a
        mount namespace nested in the test's)."""
        code = r'''
import os, socket, subprocess, sys, time
shmfs, source, mnt = sys.argv[1:4]
log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
log.bind('/dev/log')
log.settimeout(10)
r = subprocess.run([shmfs, source, mnt])
if r.returncode != 0:
    sys.exit('shmfs exited with %d' % r.returncode)
lines = []
try:
    while len(lines) < 2:
        lines.append(log.recv(4096).decode())
    try:
        os.close(os.open(os.path.join(mnt, 'sysv', 'not-a-key'), os.O_CREAT | os.O_WRONLY))
    except OSError:
        pass
    lines.append(log.recv(4096).decode())
finally:
    subprocess.run(['fusermount3', '-u', mnt])
print('\n'.join(lines))
'''
        source = os.path.join(self.workdir, 'source')    # /dev/shm is hidden there
        os.mkdir(source)
        setup = ('mount -t tmpfs -o mode=0755 devlog /dev && mknod -m 666 /dev/null c 1 3 && '
                 'mknod -m 666 /dev/fuse c 10 229 && exec "$@"')
        r = self.run_cmd(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', setup,
                          'sh', sys.executable, '-c', code, SHMFS_BIN, source, self.mnt],
                         env=self.env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(len(lines), 3, lines)
        # RFC 3164 as glibc sends it: <PRI>TIMESTAMP TAG[PID]: text; PRI =
        # facility daemon (3) * 8 + severity
        got = [re.fullmatch(r'<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d shmfs\[(\d+)\]: (.*)', line)
               for line in lines]
        self.assertTrue(all(got), lines)
        self.assertEqual(len({m.group(2) for m in got}), 1, lines)       # one daemon
        self.assertEqual(got[0].group(1), str(3 * 8 + 6))                 # info
        self.assertEqual(got[0].group(3),
                         f'serving {os.path.realpath(source)} at {self.mnt}')
        self.assertIn('not-a-key', got[2].group(3))
        self.assertIn(int(got[2].group(1)) - 3 * 8, (3, 4))               # err or warning
        reports = glob.glob(self.asan_prefix + '*')
        self.assertEqual(reports, [], ''.join(open(p).read() for p in reports))


class MountOptionsTest(MountTestCase):
    mount_options = ['-o', 'allow_other']

    def test_default_permissions_always_and_allow_other(self):
        opts = mountinfo(self.mnt)['super_options'].split(',')
        self.assertIn('default_permissions', opts)
        self.assertIn('allow_other', opts)
        self.assertIn(f'max_read={MIB}', opts)
        self.remount(options=[])
        opts = mountinfo(self.mnt)['super_options'].split(',')
        self.assertIn('default_permissions', opts)
        self.assertNotIn('allow_other', opts)


class ParallelReadTest(MountTestCase):
    SIZE = 64 * MIB

    def prepare_source(self, source):
        self.data = pattern(self.SIZE, seed=1)
        self.write(os.path.join(source, 'big'), self.data)

    def test_parallel_readers_agree(self):
        want = hashlib.sha256(self.data).hexdigest()
        procs = [subprocess.Popen(['sh', '-c', f'dd if="$1" bs=1M status=none | sha256sum',
                                   'sh', self.m('big')],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(8)]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            results.append((p.returncode, out.split()[0] if out else '', err))
        for rc, digest, err in results:
            self.assertEqual((rc, err), (0, ''))
            self.assertEqual(digest, want)
        self.assert_daemon_alive()

    def test_parallel_readers_and_writers(self):
        """Writers fill disjoint 8 MiB stripes while readers read the whole
        object: every stripe ends as its writer wrote it."""
        stripes = 8
        stripe = self.SIZE // stripes
        srcs = []
        for i in range(stripes):
            path = os.path.join(self.workdir, f'stripe{i}')
            self.write(path, bytes([i + 1]) * stripe)
            srcs.append(path)
        writers = [subprocess.Popen(['dd', f'if={srcs[i]}', f'of={self.m("big")}', 'bs=1M',
                                     f'seek={i * stripe // MIB}', 'conv=notrunc', 'status=none'],
                                    stderr=subprocess.PIPE, text=True)
                   for i in range(stripes)]
        readers = [subprocess.Popen(['dd', f'if={self.m("big")}', 'of=/dev/null', 'bs=1M',
                                     'status=none'], stderr=subprocess.PIPE, text=True)
                   for _ in range(4)]
        for p in writers + readers:
            _, err = p.communicate(timeout=120)
            self.assertEqual((p.returncode, err), (0, ''))
        data = self.read(self.s('big'))
        for i in range(stripes):
            self.assertEqual(data[i * stripe:(i + 1) * stripe], bytes([i + 1]) * stripe,
                             f'stripe {i}')
        self.assert_daemon_alive()


class LargeRequestTest(MountTestCase):
    """dd bs=4M reads and writes 4 MiB in one call; the kernel splits it into
    requests of up to 1 MiB (max_read, max_write). With -d the daemon traces
    every request, so the sizes that reached it can be checked."""

    mount_options = ['-d']
    SIZE = 4 * MIB

    def prepare_source(self, source):
        self.data = pattern(self.SIZE, seed=2)
        self.write(os.path.join(source, 'four'), self.data)

    def dd(self, src, dst):
        r = self.run_cmd(['dd', f'if={src}', f'of={dst}', 'bs=4M', 'count=1'])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('1+0 records in\n1+0 records out', r.stderr)

    def request_sizes(self, opcode):
        """Payload sizes of the READ replies or WRITE requests in the trace."""
        log = self.log_text()
        uniques = set(re.findall(rf'unique: (\d+), opcode: {opcode} \(', log))
        if opcode == 'WRITE':
            sizes = [int(s) - 80 for u, s in re.findall(
                r'unique: (\d+), opcode: WRITE \(\d+\), nodeid: \d+, insize: (\d+)', log)]
        else:
            sizes = [int(s) - 16 for u, s in re.findall(
                r'unique: (\d+), success, outsize: (\d+)', log) if u in uniques]
        return sizes

    def daemon_serves_all(self):
        """Whether every read and write reaches the daemon (no passthrough)."""
        return 'passthrough=off' in self.mount_options

    def check_request_sizes(self):
        """Requests that reached the daemon were of 1 MiB at most, and the
        4 MiB transfers came as 1 MiB requests. With passthrough the kernel
        serves some of them itself; then only what arrived is checked."""
        for opcode in ('READ', 'WRITE'):
            sizes = self.request_sizes(opcode)
            if sizes or self.daemon_serves_all():
                self.assertEqual(max(sizes, default=0), MIB, f'{opcode} sizes: {sizes}')
                self.assertEqual(sizes.count(MIB), 4, f'{opcode} sizes: {sizes}')

    def test_posix_4m_read_and_write(self):
        out = os.path.join(self.workdir, 'out')
        self.dd(self.m('four'), out)
        self.assertEqual(self.read(out), self.data)
        self.dd(out, self.m('copy'))
        self.assertEqual(self.read(self.s('copy')), self.data)
        self.check_request_sizes()

    def test_sysv_4m_read_and_write(self):
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)
        self.sysvtool('create', '0x00004444', str(self.SIZE), '0600')
        self.dd(self.s('four'), self.m('sysv', '0x00004444'))
        self.assertEqual(self.sysvtool('read', '0x00004444', '0', str(self.SIZE), text=False),
                         self.data)
        out = os.path.join(self.workdir, 'out')
        self.dd(self.m('sysv', '0x00004444'), out)
        self.assertEqual(self.read(out), self.data)
        self.check_request_sizes()


# Parallel and large transfers once more with the daemon serving them itself.
if 'passthrough=' in harness.daemon_help():
    harness.with_variants(globals(), [ParallelReadTest, LargeRequestTest], 'NoPassthrough',
                          ['-o', 'passthrough=off'],
                          'daemon-served reads and writes: -o passthrough=off')


if __name__ == '__main__':
    unittest.main(verbosity=2)
