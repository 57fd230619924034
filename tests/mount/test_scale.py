"""test_scale.py - what a big SOURCE costs the daemon: a listing of 50,000
objects with the daemon held to 1024 descriptors (it holds none per name the
kernel caches: only what is open or in use), opens and creates afterwards,
a clean exit; nodes a listing made, reached after their objects were renamed
inside or outside the mount; another filesystem mounted inside SOURCE; a
SOURCE without file handles."""

import errno
import os
import subprocess
import time

from harness import MountTestCase

MANY = 50_000
FD_LIMIT = 1024
# What the daemon may hold at most, whatever it has listed: the device, the
# session, SOURCE, the log, the kept directories and the opens of one reader.
FD_BOUND = 64


def fd_count(pid):
    return len(os.listdir(f'/proc/{pid}/fd'))


def nofile_limits(pid):
    """(soft, hard) RLIMIT_NOFILE of process PID."""
    with open(f'/proc/{pid}/limits') as f:
        for line in f:
            if line.startswith('Max open files'):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError('no "Max open files" in /proc/PID/limits')


class ManyObjectsTest(MountTestCase):
    def prepare_source(self, source):
        many = os.path.join(source, 'many')
        os.mkdir(many)
        for i in range(MANY):
            os.mknod(os.path.join(many, f'obj{i:06d}'), 0o644)
        with open(os.path.join(many, 'obj000007'), 'wb') as f:
            f.write(b'seven')

    def list_watching(self, path):
        """ls -l PATH through the mount while the daemon's descriptors are
        counted: (lines of output, the most descriptors seen)."""
        pid = self.daemon.proc.pid
        out = os.path.join(self.workdir, 'ls.out')
        with open(out, 'wb') as f:
            ls = subprocess.Popen(['ls', '-l', path], stdout=f, stderr=subprocess.PIPE)
            most = fd_count(pid)
            while ls.poll() is None:
                most = max(most, fd_count(pid))
                time.sleep(0.005)
            err = ls.stderr.read().decode()
            ls.stderr.close()
        self.assertEqual(ls.returncode, 0, err)
        with open(out, 'rb') as f:
            lines = f.read().count(b'\n')
        return lines, most

    def test_listing_with_few_descriptors(self):
        pid = self.daemon.proc.pid
        subprocess.run(['prlimit', f'--pid={pid}', f'--nofile={FD_LIMIT}:{FD_LIMIT}'],
                       check=True)
        lines, most = self.list_watching(self.m('many'))
        self.assertEqual(lines, MANY + 1)   # and "total"
        self.assertLessEqual(most, FD_BOUND, 'descriptors held while listing')
        self.assertLessEqual(fd_count(pid), FD_BOUND, 'descriptors held after the listing')
        # Every name the kernel now caches is usable: open, read, create, remove.
        with open(self.m('many', 'obj000007'), 'rb') as f:
            self.assertEqual(f.read(), b'seven')
        with open(self.m('many', 'new'), 'wb') as f:
            f.write(b'made after the listing')
        with open(self.s('many', 'new'), 'rb') as f:
            self.assertEqual(f.read(), b'made after the listing')
        self.check(['cat', self.m('many', 'obj049999')])
        os.unlink(self.m('many', 'new'))
        self.assertFalse(os.path.exists(self.s('many', 'new')))
        lines, most = self.list_watching(self.m('many'))   # again, names cached
        self.assertEqual(lines, MANY + 1)
        self.assertLessEqual(most, FD_BOUND)
        # It never had to go past the limit it was given.
        self.assertEqual(nofile_limits(pid), (FD_LIMIT, FD_LIMIT))
        # What thread cancellation needs at exit is there before it.
        with open(f'/proc/{pid}/maps') as f:
            self.assertIn('libgcc_s', f.read())
        self.unmount()   # fails unless the daemon exits 0, with no sanitizer report

    def open_many(self, count):
        """Open COUNT objects through the mount and keep them open: the
        files, and the errno of the first open that failed (or None)."""
        files = []
        for i in range(count):
            try:
                files.append(open(self.m('many', f'obj{i:06d}'), 'rb'))
            except OSError as e:
                return files, e.errno
        return files, None

    def test_limit_raised_when_reached(self):
        """Files open at once through the mount need a descriptor each in
        the daemon: at its soft limit it raises it to the hard one itself,
        and every open succeeds."""
        pid = self.daemon.proc.pid
        low = fd_count(pid) + 8
        subprocess.run(['prlimit', f'--pid={pid}', f'--nofile={low}:{low + 200}'], check=True)
        files, err = self.open_many(64)
        try:
            self.assertIsNone(err, os.strerror(err or 0))
            self.assertEqual(nofile_limits(pid), (low + 200, low + 200))
        finally:
            for f in files:
                f.close()
        self.unmount()

    def test_no_descriptor_left_fails_that_request_alone(self):
        """At a hard limit it may not raise (a root without CAP_SYS_RESOURCE,
        as where these tests run), an open that would leave the daemon too
        few descriptors for other requests fails with EMFILE, and one line
        says so; everything else goes on: open files read, names list and
        stat, and opens work again once files close. With CAP_SYS_RESOURCE
        the daemon raises the limit (to fs.nr_open) instead, and every open
        succeeds."""
        pid = self.daemon.proc.pid
        with open(f'/proc/{pid}/status') as f:
            caps = int(next(line for line in f if line.startswith('CapEff:')).split()[1], 16)
        can_raise = bool(caps & (1 << 24))   # CAP_SYS_RESOURCE
        low = fd_count(pid) + 40
        subprocess.run(['prlimit', f'--pid={pid}', f'--nofile={low}:{low}'], check=True)
        files, err = self.open_many(64)
        try:
            if can_raise:
                self.assertIsNone(err, os.strerror(err or 0))
                self.assertGreater(nofile_limits(pid)[0], low)
            else:
                self.assertEqual(err, errno.EMFILE)
                self.assertGreater(len(files), 0)
                self.assertEqual(files[0].read(), b'')
                self.assertIn('obj000007', os.listdir(self.m('many')))
                self.assertEqual(os.stat(self.m('many', 'obj000007')).st_size, 5)
                self.check(['ls', '-l', self.m('many')])
                # A worker thread of libfuse that ended leaves a hole among
                # the daemon's descriptors (its clone of /dev/fuse), where a
                # file fits after all: creates kept open fill such holes
                # until none is left, and then a create fails.
                for k in range(16):
                    try:
                        files.append(open(self.m('many', f'new{k}'), 'xb'))
                    except OSError as e:
                        self.assertEqual(e.errno, errno.EMFILE, os.strerror(e.errno))
                        self.assertFalse(os.path.exists(self.s('many', f'new{k}')),
                                         'a failed create made nothing')
                        break
                else:
                    self.fail('creates never ran out of descriptors')
                self.assertEqual(self.log_text().count('no descriptor left'), 2, self.log_text())
        finally:
            for f in files:
                f.close()
        with open(self.m('many', 'obj000007'), 'rb') as f:   # descriptors back: opens work
            self.assertEqual(f.read(), b'seven')
        self.unmount()

    def test_exit_with_no_descriptor_free(self):
        """At unmount, libfuse cancels its worker threads, which needs
        libgcc_s: loaded at start, so a daemon that cannot open a single
        file more still exits 0."""
        pid = self.daemon.proc.pid
        procs = [subprocess.Popen(['cat', self.m('many', 'obj000007')], stdout=subprocess.DEVNULL)
                 for _ in range(8)]
        for p in procs:
            p.wait()
        self.check(['ls', self.m('many')])
        used = {int(fd) for fd in os.listdir(f'/proc/{pid}/fd')}
        lowest_free = min(set(range(len(used) + 1)) - used)
        subprocess.run(['prlimit', f'--pid={pid}', f'--nofile={lowest_free}:{lowest_free}'],
                       check=True)
        self.unmount()


class ListedNodesTest(MountTestCase):
    """A listing (READDIRPLUS) names its nodes by directory and name until
    they are first used: a node whose object moved meanwhile is found again
    by the kernel's lookup, never lost, never another object."""

    def prepare_source(self, source):
        os.mkdir(os.path.join(source, 'd'))
        os.mkdir(os.path.join(source, 'd', 'sub'))
        for name in ('a', 'b', 'c', 'sub/x'):
            with open(os.path.join(source, 'd', name), 'w') as f:
                f.write(name)

    def read(self, *parts):
        with open(self.m(*parts)) as f:
            return f.read()

    def test_renamed_through_the_mount_after_listing(self):
        self.check(['ls', '-lR', self.m('d')])
        os.rename(self.m('d', 'a'), self.m('d', 'a2'))
        os.rename(self.m('d', 'sub'), self.m('d', 'sub2'))
        self.assertEqual(self.read('d', 'a2'), 'a')
        self.assertEqual(self.read('d', 'sub2', 'x'), 'sub/x')
        self.assertEqual(os.stat(self.m('d', 'a2')).st_ino, os.stat(self.s('d', 'a2')).st_ino)

    def test_renamed_in_source_after_listing(self):
        self.check(['ls', '-lR', self.m('d')])
        os.rename(self.s('d', 'b'), self.s('d', 'b2'))
        os.rename(self.s('d', 'sub'), self.s('d', 'sub2'))
        self.assertEqual(self.read('d', 'b2'), 'b')
        self.assertEqual(self.read('d', 'sub2', 'x'), 'sub/x')
        with open(self.m('d', 'b2'), 'a') as f:
            f.write('+')
        with open(self.s('d', 'b2')) as f:
            self.assertEqual(f.read(), 'b+')

    def test_replaced_in_source_after_listing(self):
        """The old name now holds another object: the listing's node of the
        old one never reaches it."""
        self.check(['ls', '-l', self.m('d')])
        os.unlink(self.s('d', 'c'))
        with open(self.s('d', 'c'), 'w') as f:
            f.write('new c')
        deadline = time.monotonic() + 5
        while True:   # the kernel may keep the old name's entry for -o timeout
            try:
                text = self.read('d', 'c')
            except OSError as e:
                self.assertIn(e.errno, (errno.ENOENT, errno.ESTALE))
                text = None
            if text == 'new c' or time.monotonic() > deadline:
                break
            self.assertIsNone(text, 'read something else than the new object')
            time.sleep(0.05)
        self.assertEqual(text, 'new c')
        self.assertEqual(os.stat(self.m('d', 'c')).st_ino, os.stat(self.s('d', 'c')).st_ino)

    def test_open_file_outlives_its_name(self):
        self.check(['ls', '-l', self.m('d')])
        fd = os.open(self.m('d', 'a'), os.O_RDWR)
        try:
            os.unlink(self.m('d', 'a'))
            self.assertFalse(os.path.exists(self.s('d', 'a')))
            self.assertEqual(os.fstat(fd).st_nlink, 0)
            self.assertEqual(os.pread(fd, 1, 0), b'a')
        finally:
            os.close(fd)


class OtherFilesystemInsideTest(MountTestCase):
    """A filesystem mounted inside SOURCE: its objects keep a descriptor
    each (file handles are decoded on SOURCE's own filesystem), and say so
    in the log, once."""

    def prepare_source(self, source):
        inner = os.path.join(source, 'inner')
        os.mkdir(inner)
        self.check(['mount', '-t', 'tmpfs', '-o', 'size=1m,mode=0755', 'tmpfs', inner])
        self.defer(lambda: subprocess.run(['umount', inner], check=True, capture_output=True))
        for i in range(20):
            with open(os.path.join(inner, f'f{i}'), 'w') as f:
                f.write(str(i))

    def test_reads_writes_and_lists(self):
        self.assertEqual(sorted(os.listdir(self.m('inner'))), sorted(f'f{i}' for i in range(20)))
        self.check(['ls', '-l', self.m('inner')])
        with open(self.m('inner', 'f3')) as f:
            self.assertEqual(f.read(), '3')
        with open(self.m('inner', 'new'), 'w') as f:
            f.write('made')
        with open(self.s('inner', 'new')) as f:
            self.assertEqual(f.read(), 'made')
        self.assertEqual(os.stat(self.m('inner', 'f5')).st_ino, os.stat(self.s('inner', 'f5')).st_ino)
        os.unlink(self.m('inner', 'new'))
        self.assertEqual(self.log_text().count('another filesystem is mounted inside SOURCE'), 1,
                         self.log_text())


class NoFileHandlesTest(MountTestCase):
    """A SOURCE whose filesystem has no file handles (ramfs): every name
    keeps a descriptor, as before, the log says so once, and all works."""

    auto_mount = False

    def test_ramfs_source(self):
        path = os.path.join(self.workdir, 'ramfs')
        os.mkdir(path)
        self.check(['mount', '-t', 'ramfs', '-o', 'mode=0755', 'ramfs', path])
        self.defer(lambda: subprocess.run(['umount', path], check=True, capture_output=True))
        os.mkdir(os.path.join(path, 'd'))
        for i in range(100):
            with open(os.path.join(path, 'd', f'f{i}'), 'w') as f:
                f.write(str(i))
        self.mount(source=path)
        self.assertIn('file handles cannot be used on SOURCE', self.log_text())
        self.check(['ls', '-l', self.m('d')])
        self.assertGreaterEqual(fd_count(self.daemon.proc.pid), 100, 'a descriptor per name')
        with open(self.m('d', 'f7')) as f:
            self.assertEqual(f.read(), '7')
        with open(self.m('d', 'new'), 'w') as f:
            f.write('made')
        os.rename(self.m('d', 'new'), self.m('d', 'new2'))
        with open(self.s('d', 'new2')) as f:
            self.assertEqual(f.read(), 'made')
        os.unlink(self.m('d', 'new2'))
        self.unmount()
