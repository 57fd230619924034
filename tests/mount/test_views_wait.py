"""test_views_wait.py - issue 11: waiting for frames through the file. poll,
select and epoll on an open stream view say readable (POLLIN | POLLPRI) once
a frame newer than the open's is posted, and not before, whether the writer
posts the stream's semaphores or not; a view's mtime is its frame's write
time (stat, ls -lt, find -newer, make); shmtool wait waits for the next frame
from a shell. With passthrough and without."""

import os
import select
import subprocess
import threading
import time
import unittest

import numpy as np

from harness import MountTestCase, with_variants
import isio

SHMTOOL = os.environ.get('SHMFS_SHMTOOL', '')


class WaitTest(MountTestCase):

    def make(self, name='cam', cnt0=1, writetime=1700000000.25):
        return isio.make_stream(self.s(name + '.im.shm'), name, 9, (16, 16), cnt0=cnt0,
                                writetime=writetime)

    def frame_later(self, delay, post=True, name='cam'):
        """Post one frame of stream NAME after DELAY seconds (a thread)."""
        def run():
            time.sleep(delay)
            w = isio.Writer(self.s(name + '.im.shm'), post=post)
            try:
                w.frame(np.full(256, 7, np.float32).tobytes())
            finally:
                w.close()
        t = threading.Thread(target=run)
        t.start()
        self.addCleanup(t.join)
        return t

    def test_poll_wakes_on_a_newer_frame_and_not_before(self):
        self.make()
        for post in (True, False):   # a writer that posts its semaphores, and one that does not
            with self.subTest(post=post), open(self.m('cam.fits'), 'rb') as f:
                p = select.poll()
                p.register(f, select.POLLIN | select.POLLPRI)
                self.assertEqual(p.poll(300), [], 'readable before any new frame')
                start = time.monotonic()
                t = self.frame_later(0.3, post)
                events = p.poll(10000)
                took = time.monotonic() - start
                t.join()
                self.assertTrue(events, 'no wake-up for a new frame')
                self.assertEqual(events[0][1] & (select.POLLIN | select.POLLPRI),
                                 select.POLLIN | select.POLLPRI)
                self.assertGreater(took, 0.25, 'woken before the frame')
                self.assertLess(took, 3, 'woken late')
                # The open still holds its frame: still readable.
                self.assertTrue(p.poll(0))
                # A new open holds the new frame: not readable.
                with open(self.m('cam.fits'), 'rb') as g:
                    q = select.poll()
                    q.register(g, select.POLLIN | select.POLLPRI)
                    self.assertEqual(q.poll(200), [])

    def test_select_and_epoll(self):
        self.make()
        with open(self.m('cam.fits'), 'rb') as f:
            self.assertEqual(select.select([f], [], [], 0.2)[0], [])
            self.frame_later(0.2)
            r, _, _ = select.select([f], [], [], 10)
            self.assertEqual(r, [f])
        with open(self.m('cam.fits'), 'rb') as f:
            ep = select.epoll()
            try:
                ep.register(f.fileno(), select.EPOLLIN | select.EPOLLPRI)
                self.assertEqual(ep.poll(0.2), [])
                self.frame_later(0.2)
                events = ep.poll(10)
                self.assertEqual(len(events), 1)
                self.assertTrue(events[0][1] & select.EPOLLIN)
            finally:
                ep.close()

    def test_removed_stream_hangs_up(self):
        self.make()
        with open(self.m('cam.fits'), 'rb') as f:
            p = select.poll()
            p.register(f, select.POLLIN | select.POLLPRI)
            self.assertEqual(p.poll(200), [])
            os.unlink(self.s('cam.im.shm'))
            events = p.poll(5000)
            self.assertTrue(events, 'no wake-up when the stream went')
            self.assertTrue(events[0][1] & select.POLLHUP, events)

    def test_other_files_are_always_ready(self):
        with open(self.s('raw'), 'wb') as f:
            f.write(b'x' * 100)
        with open(self.m('raw'), 'rb') as f:
            p = select.poll()
            p.register(f, select.POLLIN | select.POLLOUT)
            events = p.poll(1000)
            self.assertTrue(events and events[0][1] & select.POLLIN)

    def test_mtime_is_the_frame_write_time(self):
        self.make(writetime=(1700000000, 250000000))
        st = os.stat(self.m('cam.fits'))
        self.assertEqual(st.st_mtime_ns, 1700000000250000000)
        ref = os.path.join(self.workdir, 'ref')
        with open(ref, 'w'):
            pass
        find = ['find', self.mnt, '-maxdepth', '1', '-name', '*.fits', '-newer', ref]
        self.assertEqual(self.check(find).split(), [])
        # ls -lt puts the most recently written stream first.
        self.make('old', writetime=1600000000)
        time.sleep(0.01)
        w = isio.Writer(self.s('cam.im.shm'))
        before = time.time()
        w.frame(bytes(1024))
        w.close()
        st = os.stat(self.m('cam.fits'))
        self.assertGreaterEqual(st.st_mtime, before - 1)
        self.assertEqual(self.check(find).split(), [self.m('cam.fits')])
        names = [n for n in self.check(['ls', '-t', self.mnt]).split() if n.endswith('.fits')]
        self.assertEqual(names, ['cam.fits', 'old.fits'])
        # make sees the frame move.
        with open(os.path.join(self.workdir, 'Makefile'), 'w') as f:
            f.write(f'copy.fits: {self.m("cam.fits")}\n\tcp $< $@\n')
        self.assertIn('cp', self.check(['make']))
        self.assertIn('up to date', self.check(['make']))
        time.sleep(0.01)
        w = isio.Writer(self.s('cam.im.shm'))
        w.frame(bytes(1024))
        w.close()
        self.assertIn('cp', self.check(['make']))

    def test_shmtool_wait(self):
        if not SHMTOOL:
            self.fail('SHMFS_SHMTOOL must name shmtool (run through ctest)')
        self.make(cnt0=41)
        start = time.monotonic()
        r = self.run_cmd([SHMTOOL, 'wait', '--dir', self.source, '--timeout', '0.3', 'cam'])
        self.assertEqual(r.returncode, 1, r)
        self.assertIn('no new frame', r.stderr)
        self.assertLess(time.monotonic() - start, 5)
        for post in (True, False):
            with self.subTest(post=post):
                cnt0 = isio.read_state(self.s('cam.im.shm'))['cnt0']
                self.frame_later(0.3, post)
                r = self.run_cmd([SHMTOOL, 'wait', '--dir', self.source, '--timeout', '10',
                                  'cam.im.shm'])
                self.assertEqual(r.returncode, 0, r)
                self.assertEqual(r.stdout.strip(), str(cnt0 + 1))
        r = self.run_cmd([SHMTOOL, 'wait', '--dir', self.source, 'nosuch'])
        self.assertEqual(r.returncode, 1)


with_variants(globals(), [WaitTest], 'NoPassthrough', ['-o', 'passthrough=off'],
              'passthrough off')

if __name__ == '__main__':
    unittest.main()
