"""test_passthrough.py - issue 3: raw files in FUSE passthrough mode (the
kernel serves read, write and mmap from the backing file), the same bytes
with passthrough on and off, coherent mmap through the mount, a clean ENODEV
without passthrough, and no descriptor or backing-id leaks."""

import errno
import mmap
import os
import random
import re
import struct
import subprocess
import time
import unittest

from harness import MountTestCase, fuse_connection_dir, wait_until
import isio

ISIO_WAIT = os.environ.get('SHMFS_ISIO_WAIT', '')


def meminfo_kib(field):
    with open('/proc/meminfo') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise KeyError(field)


O_PATH = 0o10000000


def settled_fd_count(pid, timeout=5.0):
    """fd_count once it has stopped changing: RELEASE follows close()
    asynchronously, so descriptors of files just closed may still be open."""
    deadline = time.monotonic() + timeout
    last, same = fd_count(pid), 0
    while same < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
        now = fd_count(pid)
        same = same + 1 if now == last else 0
        last = now
    return last


def fd_count(pid):
    """Open descriptors of PID, leaving out FUSE device clones (one per worker
    thread of the multithreaded loop, which come and go with the load) and
    O_PATH descriptors (one per inode the kernel caches, dropped when it
    forgets the inode)."""
    count = 0
    for fd in os.listdir(f'/proc/{pid}/fd'):
        try:
            if os.readlink(f'/proc/{pid}/fd/{fd}') == '/dev/fuse':
                continue
            with open(f'/proc/{pid}/fdinfo/{fd}') as f:
                flags = int(next(l for l in f if l.startswith('flags:')).split()[1], 8)
        except (FileNotFoundError, StopIteration):
            continue
        if not flags & O_PATH:
            count += 1
    return count


class PassthroughOn(MountTestCase):
    mount_options = ['-o', 'passthrough=on']

    def test_negotiated(self):
        os.listdir(self.mnt)  # the first request waits for INIT to be answered
        self.assert_log(r'passthrough on')

    def test_no_read_or_write_reaches_the_daemon(self):
        self.remount(options=['-d', '-o', 'passthrough=on'])
        data = os.urandom(3 << 20)
        with open(self.s('f'), 'wb') as f:
            f.write(data)
        self.check(['dd', f'if={self.m("f")}', 'of=/dev/null', 'bs=1M'])
        self.check(['dd', 'if=/dev/zero', f'of={self.m("f")}', 'bs=1M', 'count=2',
                    'conv=notrunc'])
        with open(self.s('f'), 'rb') as f:
            self.assertEqual(f.read(), bytes(2 << 20) + data[2 << 20:])
        log = self.log_text()
        self.assertRegex(log, r'opcode: OPEN')
        self.assertNotRegex(log, r'opcode: (READ|WRITE) ')

    def test_mmap_is_coherent_with_source(self):
        with open(self.s('seg'), 'wb') as f:
            f.truncate(1 << 16)
        fd = os.open(self.m('seg'), os.O_RDWR)
        mine = mmap.mmap(fd, 1 << 16, mmap.MAP_SHARED)
        sfd = os.open(self.s('seg'), os.O_RDWR)
        theirs = mmap.mmap(sfd, 1 << 16, mmap.MAP_SHARED)
        try:
            mine[100:105] = b'mount'          # store through the mount ...
            self.assertEqual(theirs[100:105], b'mount')      # ... seen in SOURCE
            self.assertEqual(os.pread(sfd, 5, 100), b'mount')
            theirs[60000:60006] = b'direct'   # and the other way round
            self.assertEqual(mine[60000:60006], b'direct')
            os.pwrite(sfd, b'pwrite', 7)
            self.assertEqual(mine[7:13], b'pwrite')
        finally:
            mine.close()
            theirs.close()
            os.close(fd)
            os.close(sfd)

    def test_mmap_of_a_segment_is_coherent(self):
        self.sysvtool('create', '0x5e9', '65536', '0666')
        path = self.m('sysv', '0x000005e9')
        fd = os.open(path, os.O_RDWR)
        m = mmap.mmap(fd, 65536, mmap.MAP_SHARED)
        try:
            m[10:14] = b'AOAO'
            self.assertEqual(self.sysvtool('read', '0x5e9', '10', '4'), 'AOAO')
            self.sysvtool('write', '0x5e9', '40000', 'cacao')
            self.assertEqual(m[40000:40005], b'cacao')
        finally:
            m.close()
            os.close(fd)
        # Read-only opens of a segment are served by the kernel too.
        fd = os.open(path, os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 5, 40000), b'cacao')
        finally:
            os.close(fd)

    def test_segment_size_stays_fixed(self):
        self.sysvtool('create', '0x5ea', '4096', '0666')
        path = self.m('sysv', '0x000005ea')
        fd = os.open(path, os.O_WRONLY)
        try:
            self.assertEqual(os.pwrite(fd, b'ab', 4094), 2)
            self.assert_errno(errno.ENOSPC, os.pwrite, fd, b'c', 4096)
        finally:
            os.close(fd)
        self.assertEqual(os.stat(path).st_size, 4096)

    def test_file_removed_while_mapped_stays_usable(self):
        with open(self.s('gone'), 'wb') as f:
            f.write(b'x' * 8192)
        fd = os.open(self.m('gone'), os.O_RDWR)
        m = mmap.mmap(fd, 8192, mmap.MAP_SHARED)
        os.close(fd)
        os.unlink(self.m('gone'))
        self.assertFalse(os.path.exists(self.s('gone')))
        m[0:4] = b'kept'
        self.assertEqual(m[0:4], b'kept')
        self.assertEqual(m[8191:8192], b'x')
        m.close()
        self.assert_daemon_alive()

    def test_no_descriptor_or_backing_leak(self):
        pid = self.daemon.proc.pid
        self.sysvtool('create', '0x1ea4', '1048576', '0666')
        with open(self.s('f'), 'wb') as f:
            f.write(b'y' * 4096)
        seg = self.m('sysv', '0x00001ea4')
        # Warm up: the inode table holds an O_PATH descriptor per inode the
        # kernel caches, and the loop starts its worker threads.
        for i in range(100):
            os.close(os.open(seg if i % 2 else self.m('f'), os.O_RDWR))
        before = settled_fd_count(pid)
        for i in range(10000):
            path = seg if i % 4 == 3 else self.m('f')
            fd = os.open(path, os.O_RDWR if i % 2 else os.O_RDONLY)
            if i % 500 == 0:
                m = mmap.mmap(fd, 4096, mmap.MAP_SHARED,
                              mmap.PROT_READ | (mmap.PROT_WRITE if i % 2 else 0))
                m.close()
            os.pread(fd, 16, 0)
            os.close(fd)
        # RELEASE follows close() asynchronously: allow the last ones to land.
        self.assertEqual(settled_fd_count(pid), before)
        # A leaked backing id would pin the file: removed objects must free
        # their memory once nobody has them open. Measured on a private
        # tmpfs, so nothing else on the machine can disturb the figure.
        tmp = self.tmpfs_dir('512m')
        self.remount(options=self.mount_options, source=tmp)
        big = 256 << 20
        with open(os.path.join(tmp, 'big'), 'wb') as f:
            f.truncate(big)
        for i in range(50):
            fd = os.open(self.m('big'), os.O_RDWR)
            if i == 0:
                os.pwrite(fd, b'z' * big, 0)
            os.close(fd)
        def used():
            st = os.statvfs(tmp)
            return (st.f_blocks - st.f_bfree) * st.f_frsize
        self.assertGreaterEqual(used(), big)
        os.unlink(self.m('big'))
        # The kernel tells the daemon to forget the inode (and so close the
        # node's O_PATH descriptor) asynchronously: give it a moment.
        freed = wait_until(lambda: used() < big // 4, 5)
        self.assertTrue(freed, 'removing the object did not free its memory')

    def test_removed_segment_memory_is_freed(self):
        size = 256 << 20
        self.sysvtool('create', '0x5eb', str(size), '0666')
        path = self.m('sysv', '0x000005eb')
        fd = os.open(path, os.O_RDWR)
        m = mmap.mmap(fd, size, mmap.MAP_SHARED)
        m[:] = b'\1' * size
        m.close()
        os.close(fd)
        for _ in range(20):
            os.close(os.open(path, os.O_RDONLY))
        with_segment = meminfo_kib('Shmem')
        self.check(['rm', path])
        freed = wait_until(lambda: with_segment - meminfo_kib('Shmem') > (size >> 10) * 3 // 4, 5)
        self.assertTrue(freed, "the daemon's hold kept a removed segment's memory")

    @unittest.skipUnless(ISIO_WAIT, 'SHMFS_ISIO_WAIT not set')
    def test_stream_reader_through_the_mount_sees_writer_on_source(self):
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (16, 16))
        frames = 20
        reader = subprocess.Popen([ISIO_WAIT, self.m('cam.im.shm'), str(frames), '20'],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertTrue(reader.stdout.readline().startswith('ready'))
            writer = isio.Writer(self.s('cam.im.shm'))
            for k in range(1, frames + 1):
                cnt0 = writer.frame(struct.pack('<f', float(k)) * 256)
                self.assertEqual(reader.stdout.readline().split(),
                                 [str(cnt0), str(k)])
            writer.close()
            self.assertEqual(reader.wait(timeout=20), 0, reader.stderr.read())
        finally:
            if reader.poll() is None:
                reader.kill()
                reader.wait()


class PassthroughOff(MountTestCase):
    mount_options = ['-o', 'passthrough=off']

    def test_mmap_fails_cleanly(self):
        with open(self.s('f'), 'wb') as f:
            f.write(b'q' * 4096)
        fd = os.open(self.m('f'), os.O_RDWR)
        try:
            with self.assertRaises(OSError) as cm:
                mmap.mmap(fd, 4096, mmap.MAP_SHARED)
            self.assertEqual(cm.exception.errno, errno.ENODEV)
        finally:
            os.close(fd)
        self.assert_log(r'passthrough off.*ENODEV')
        # reads and writes still work, through the daemon
        with open(self.m('f'), 'r+b') as f:
            f.write(b'daemon')
        with open(self.s('f'), 'rb') as f:
            self.assertEqual(f.read(6), b'daemon')


class ExitWithOpenFiles(MountTestCase):
    """Handles the kernel never released (the connection went away with
    files open) are freed at exit: the sanitizer build reports no leak."""

    def test_abort_with_open_files(self):
        with open(self.s('f'), 'wb') as f:
            f.write(b'abc' * 1000)
        self.sysvtool('create', '0xab0', '4096', '0666')
        fds = [os.open(self.m('f'), os.O_RDONLY), os.open(self.m('f'), os.O_RDWR),
               os.open(self.m('sysv', '0x00000ab0'), os.O_RDWR),
               os.open(self.mnt, os.O_RDONLY | os.O_DIRECTORY)]
        os.pread(fds[0], 10, 0)
        # fusectl, mounted here (a private namespace) if the machine has not
        conn = fuse_connection_dir(self.daemon.dev)
        with open(os.path.join(conn, 'abort'), 'w') as f:
            f.write('1')
        try:
            self.assertEqual(self.daemon.proc.wait(timeout=10), 0, self.log_text())
        finally:
            for fd in fds:
                try:
                    os.close(fd)
                except OSError as e:   # the flush of an aborted connection
                    self.assertEqual(e.errno, errno.ENOTCONN)


class SameBytes(MountTestCase):
    """Every read and write pattern gives the same bytes and results with
    passthrough on and off."""
    auto_mount = False

    def patterns(self, path):
        rnd = random.Random(1234)
        out = []
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            out.append(os.write(fd, rnd.randbytes(1 << 20)))
            out.append(os.pwrite(fd, rnd.randbytes(7), 4093))
            out.append(os.pwrite(fd, rnd.randbytes(4097), (1 << 20) - 10))
            out.append(os.pwrite(fd, rnd.randbytes(100), 3 << 20))  # leaves a hole
            size = os.fstat(fd).st_size
            for length in (1, 4095, 4096, 4097, 131072, 1 << 20, 3 << 20):
                for off in (0, 1, 4095, (1 << 20) + 5, size - 3, size, size + 10):
                    out.append(os.pread(fd, length, off))
            os.ftruncate(fd, 5000)
            out.append(os.pread(fd, 10000, 4990))
            os.ftruncate(fd, 70000)
            out.append(os.pread(fd, 70000, 0))
            for _ in range(200):
                off = rnd.randrange(0, 80000)
                if rnd.random() < 0.5:
                    out.append(os.pwrite(fd, rnd.randbytes(rnd.randrange(1, 9000)), off))
                else:
                    out.append(os.pread(fd, rnd.randrange(1, 9000), off))
        finally:
            os.close(fd)
        afd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            out.append(os.write(afd, b'appended'))
        finally:
            os.close(afd)
        with open(path, 'rb') as f:
            out.append(f.read())
        return out

    def test_on_and_off_agree(self):
        self.mount(options=['-o', 'passthrough=on'])
        os.listdir(self.mnt)
        self.assert_log(r'passthrough on')
        on = self.patterns(self.m('on'))
        self.remount(options=['-o', 'passthrough=off'])
        off = self.patterns(self.m('off'))
        self.assertEqual(len(on), len(off))
        for i, (a, b) in enumerate(zip(on, off)):
            self.assertEqual(a, b, f'pattern step {i} differs')
        with open(self.s('on'), 'rb') as f1, open(self.s('off'), 'rb') as f2:
            self.assertEqual(f1.read(), f2.read())


if __name__ == '__main__':
    unittest.main()
