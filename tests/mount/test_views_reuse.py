"""test_views_reuse.py - issue 11: the files of large views' frames are
reused (fs/viewspare.c) only once nobody else has them. A frame's file that
a program still has open, or mapped after its close (also in a forked
child), keeps its frame while newer frames are opened and read; once
everyone has let go, the next frames reuse it instead of making new files,
so the daemon holds a bounded number of them. With passthrough and without."""

import ctypes
import hashlib
import mmap
import os
import subprocess
import sys
import time
import unittest

import numpy as np

from harness import MountTestCase, daemon_pids, with_variants
import isio

# Frames above 4 MiB are converted into files of the pool, and from 16 MiB
# with stores that bypass the caches (core/view.c): 16 MiB here.
NX, NY = 2048, 2048


LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.mmap.restype = ctypes.c_void_p
LIBC.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                      ctypes.c_int, ctypes.c_long]
LIBC.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


class Mapping:
    """A read-only MAP_SHARED mapping of PATH that holds no descriptor (as a
    C program's after close(): Python's mmap keeps a dup of the file)."""

    def __init__(self, path):
        fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(fd).st_size
            self.addr = LIBC.mmap(None, self.size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        finally:
            os.close(fd)
        if self.addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), 'mmap')

    def bytes(self):
        return ctypes.string_at(self.addr, self.size)

    def close(self):
        if self.addr is not None:
            LIBC.munmap(self.addr, self.size)
            self.addr = None


def frame(value):
    """Pixels of frame VALUE: a ramp that differs from frame to frame."""
    return (np.arange(NX * NY, dtype=np.float32) + np.float32(value)).tobytes()


class ViewReuseTest(MountTestCase, isio.ViewChecks):
    """Files of large views' frames are reused only once unshared."""

    def setUp(self):
        super().setUp()
        isio.make_stream(self.s('big.im.shm'), 'big', 9, (NX, NY), data=frame(1), cnt0=1)
        self.view = self.m('big.fits')
        self.writer = isio.Writer(self.s('big.im.shm'))
        self.addCleanup(self.writer.close)

    def check_frame(self, data, value):
        """DATA is the whole view of frame VALUE (its pixels and CNT0)."""
        hlen, cards = isio.fits_header_cards(data)
        self.assertEqual(int(cards['CNT0']), value)
        pix = np.frombuffer(data, '>f4', NX * NY, hlen)
        self.assertTrue(np.array_equal(pix, np.frombuffer(frame(value), np.float32)),
                        f'pixels of frame {value}')

    def next_frame(self):
        """Post the next frame and read it whole through a fresh open."""
        cnt0 = self.writer.frame(frame(self.writer_cnt0() + 1))
        self.check_frame(self.read(self.view), cnt0)
        return cnt0

    def writer_cnt0(self):
        return int.from_bytes(self.writer.map[isio.OFF_CNT0:isio.OFF_CNT0 + 8], 'little')

    def daemon_view_files(self):
        """The inode numbers of the view files (memfds) the daemon holds."""
        found = set()
        for pid in daemon_pids(self.mnt):
            fds = f'/proc/{pid}/fd'
            for fd in os.listdir(fds):
                try:
                    if os.readlink(f'{fds}/{fd}').startswith('/memfd:shmfs-view'):
                        found.add(os.stat(f'{fds}/{fd}').st_ino)
                except OSError:
                    pass
        return found

    def test_mapping_after_close_keeps_its_frame(self):
        m = Mapping(self.view)
        try:
            for _ in range(6):
                self.next_frame()
            self.check_frame(m.bytes(), 1)
        finally:
            m.close()
        # Let go of, the file serves the frames to come.
        for _ in range(3):
            self.next_frame()

    def test_open_file_keeps_its_frame(self):
        with open(self.view, 'rb') as held:
            for _ in range(6):
                self.next_frame()
            self.check_frame(held.read(), 1)

    def test_mapping_in_a_forked_child_keeps_its_frame(self):
        # The child inherits the mapping; the parent unmaps and closes.
        child = subprocess.Popen(
            [sys.executable, '-c', CHILD, self.view, os.path.abspath(__file__)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(child.stdout.close)
        self.addCleanup(child.stdin.close)
        self.addCleanup(child.kill)
        self.assertEqual(child.stdout.readline().strip(), 'mapped')
        first = self.read(self.view)   # still frame 1: the file the child maps
        self.check_frame(first, 1)
        for _ in range(6):
            self.next_frame()
        child.stdin.write('check\n')
        child.stdin.flush()
        self.assertEqual(child.stdout.readline().strip(), hashlib.sha256(first).hexdigest())
        child.wait(30)

    def test_files_are_reused_once_let_go(self):
        seen = set()
        for _ in range(12):
            self.next_frame()
            seen |= self.daemon_view_files()
            time.sleep(0.05)   # past the grace after a close (viewint.h)
        # Each frame read and closed before the next: one or two files go
        # round, where a file per frame would be twelve.
        self.assertLessEqual(len(seen), 3, f'{len(seen)} view files for 12 frames')


class NoReuseTest(ViewReuseTest):
    """-o noreuse: a file once served is never written again."""

    def setUp(self):
        super().setUp()
        self.remount(options=['-o', 'noreuse'])

    def test_files_are_reused_once_let_go(self):
        seen = set()
        for _ in range(6):
            self.next_frame()
            seen |= self.daemon_view_files()
            time.sleep(0.05)
        self.assertGreaterEqual(len(seen), 6, f'{len(seen)} view files for 6 frames')


# The child: maps the view (no descriptor kept), forks (the grandchild keeps
# the mapping) and unmaps; the grandchild sends the hash of what its mapping
# shows when asked, which the child prints.
CHILD = r'''
import hashlib, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[2]))
from test_views_reuse import Mapping
m = Mapping(sys.argv[1])
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    sys.stdin.readline()
    os.write(w, hashlib.sha256(m.bytes()).hexdigest().encode() + b'\n')
    os._exit(0)
m.close()
os.close(w)
print('mapped', flush=True)
print(os.read(r, 100).decode().strip(), flush=True)
os.waitpid(pid, 0)
'''


with_variants(globals(), [ViewReuseTest], 'NoPassthrough', ['-o', 'passthrough=off'],
              'passthrough off: the daemon serves views through the page cache')

if __name__ == '__main__':
    unittest.main()
