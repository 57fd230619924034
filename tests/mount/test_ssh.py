"""test_ssh.py - the mount reached from another host over SSH, the way the
people at an instrument reach the real-time computer: sshd on 127.0.0.1
(tests/mount/sshd.py) serves the test's mount, and the clients are scp,
sftp, rsync, sshfs and DS9. Copying a view out (scp host:/shm/X.fits .)
saves one whole frame, also under a busy writer; scp, rsync and rsync
--inplace of a FITS file onto a stream's view load it in place (a reader
waiting on the stream wakes), to a new name make the stream, and a bad file
changes nothing; sftp lists the mount; sshfs shows the mount's files,
reads raw files byte for byte, and each open of a view through sshfs gives
the frame the stream holds then, to astropy, CFITSIO and DS9 (under Xvfb)."""

import os
import signal
import subprocess
import time

import numpy as np

import isio
from harness import MountTestCase
from isio import ViewChecks
from sshd import SSHServer


class SSHCase(MountTestCase, ViewChecks):

    def setUp(self):
        super().setUp()
        self.host = SSHServer(self.workdir)
        self.addCleanup(self.host.stop)   # before the mount's teardown (LIFO)
        self.host.start()
        self.local = os.path.join(self.workdir, 'local')
        os.mkdir(self.local)

    def stream(self, name='cam', dims=(64, 48), value=None, **kw):
        """Stream NAME in SOURCE holding float32 pixels (a ramp, or VALUE
        everywhere); returns the array."""
        a = np.arange(dims[0] * dims[1], dtype=np.float32).reshape(dims[::-1])
        if value is not None:
            a[:] = value
        isio.make_stream(self.s(name + '.im.shm'), name, 9, dims, data=a.tobytes(), **kw)
        return a

    def frame(self, name, a):
        w = isio.Writer(self.s(name + '.im.shm'))
        try:
            return w.frame(a.tobytes())
        finally:
            w.close()


class CopyOutTest(SSHCase):

    def test_scp_saves_one_frame(self):
        a = self.stream('cam', cnt0=4)
        out = os.path.join(self.local, 'cam.fits')
        self.host.check(self.host.scp(f'host:{self.m("cam.fits")}', out))
        self.assertEqual(os.path.getsize(out), os.path.getsize(self.m('cam.fits')))
        self.assert_fitsverify(out)
        self.assert_astropy_pixels(out, a, {'SHMNAME': 'cam', 'CNT0': 4})
        # a raw file too, byte for byte
        raw = os.path.join(self.local, 'cam.im.shm')
        self.host.check(self.host.scp(f'host:{self.m("cam.im.shm")}', raw))
        self.assertEqual(self.read(raw), self.read(self.s('cam.im.shm')))

    def test_scp_under_a_writer_gets_whole_frames(self):
        # Whole frames, or (a writer flat out leaving no gap a frame fits
        # in) the frame as it stands with the SHMTORN card: never refused.
        dims = (256, 256)
        self.stream('fast', dims, value=0)
        from astropy.io import fits
        with isio.busy_writer(self.s('fast.im.shm'), dims):
            for i in range(5):
                out = os.path.join(self.local, f'f{i}.fits')
                self.host.check(self.host.scp(f'host:{self.m("fast.fits")}', out))
                with fits.open(out, memmap=False) as hdul:
                    data, header = hdul[0].data, hdul[0].header
                if 'SHMTORN' in header:
                    self.assertRegex(header['SHMTORN'], r'writer (left no gap|stopped mid-frame)')
                    continue
                self.assertTrue((data == data.flat[0]).all(), f'copy {i}: torn, no SHMTORN')
                self.assertEqual(int(data.flat[0]), header['CNT0'], f'copy {i}')

    def test_sftp_lists_the_mount(self):
        self.stream('cam')
        self.write(self.s('raw'), b'r' * 100)
        self.sysvtool('create', '0x00005150', '4096')
        self.addCleanup(self.remove_all_segments)
        out = self.host.check(self.host.sftp(f'ls -l {self.mnt}\nls -1 {self.m("sysv")}'))
        names = {line.split()[-1].rsplit('/', 1)[-1]: line.split()
                 for line in out.splitlines() if line and not line.startswith('sftp>')}
        for name in ('cam.im.shm', 'cam.fits', 'raw', 'sysv', '0x00005150'):
            self.assertIn(name, names, out)
        self.assertEqual(names['raw'][4], '100')
        self.assertEqual(int(names['cam.fits'][4]), os.path.getsize(self.m('cam.fits')))
        self.assertTrue(names['sysv'][0].startswith('d'), out)


class CopyInTest(SSHCase):

    def test_scp_makes_a_new_stream(self):
        from astropy.io import fits
        a = (np.arange(32 * 24, dtype=np.float32) / 3).reshape(24, 32)
        src = os.path.join(self.local, 'dark.fits')
        fits.PrimaryHDU(a, header=fits.Header([('EXPTIME', 0.5)])).writeto(src)
        self.host.check(self.host.scp(src, f'host:{self.m("dark.fits")}'))
        state = isio.read_state(self.s('dark.im.shm'))
        self.assertEqual(state['cnt0'], 1)
        self.assertEqual(isio.read_pixels(self.s('dark.im.shm'),
                                          isio.stream_layout(self.s('dark.im.shm'))),
                         a.tobytes())
        self.assert_astropy_pixels(self.m('dark.fits'), a, {'EXPTIME': 0.5})


    def replace_waking(self, copy):
        """Stream cam (64x48 float, CNT0 41) with a reader blocked on its
        semaphore 3; COPY(local FITS file of a new frame) sends it over SSH
        onto host:/shm/cam.fits. The copy loads in place: the reader wakes
        with CNT0 42, the stream is the same inode and holds the new frame,
        and nothing else is left in SOURCE."""
        from astropy.io import fits
        self.stream('cam', value=0, cnt0=41)
        ino = os.stat(self.s('cam.im.shm')).st_ino
        new = (np.arange(64 * 48, dtype=np.float32) / 7).reshape(48, 64)
        src = os.path.join(self.local, 'frame.fits')
        fits.PrimaryHDU(new).writeto(src, overwrite=True)
        # A file made earlier: rsync skips a file whose size and mtime (to
        # the second) match, and a frame of the same shape has the same size.
        os.utime(src, (time.time() - 3600, time.time() - 3600))
        with isio.waiting(self.s('cam.im.shm'), 3, 20) as waiter:
            self.host.check(copy(src))
            out, err = waiter.communicate(timeout=15)
        self.assertEqual(waiter.returncode, 0, f'{out} {err}')
        self.assertEqual(out.split(), ['woken', '42'])
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino, 'loaded in place')
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 42)
        self.assert_astropy_pixels(self.m('cam.fits'), new, {'CNT0': 42})
        self.assertEqual(sorted(os.listdir(self.source)), ['cam.im.shm'])

    def test_scp_onto_a_stream_loads_it_in_place(self):
        # OpenSSH's SFTP server opens without O_TRUNC, writes from offset
        # 0, then sets the size: a writable open of the view whose header
        # changed, loaded at close.
        self.replace_waking(lambda src: self.host.scp(src, f'host:{self.m("cam.fits")}'))

    def test_rsync_onto_a_stream_loads_it_in_place(self):
        # rsync writes a temporary file beside the name and renames it.
        self.replace_waking(lambda src: self.host.rsync(src, f'host:{self.m("cam.fits")}'))

    def test_rsync_inplace_onto_a_stream_loads_it_in_place(self):
        # --inplace: the view itself is rewritten, then cut to size.
        self.replace_waking(lambda src: self.host.rsync('--inplace', '--no-whole-file', src,
                                                        f'host:{self.m("cam.fits")}'))

    def test_rsync_to_a_new_name_makes_a_stream(self):
        from astropy.io import fits
        a = (np.arange(32 * 24, dtype=np.float32) / 3).reshape(24, 32)
        src = os.path.join(self.local, 'flat.fits')
        fits.PrimaryHDU(a).writeto(src)
        self.host.check(self.host.rsync(src, f'host:{self.m("flat.fits")}'))
        self.assertEqual(isio.read_state(self.s('flat.im.shm'))['cnt0'], 1)
        self.assert_astropy_pixels(self.m('flat.fits'), a)
        self.assertEqual(sorted(os.listdir(self.source)), ['flat.im.shm'])

    def test_a_bad_file_is_refused_and_changes_nothing(self):
        a = self.stream('cam', cnt0=7)
        before = self.read(self.s('cam.im.shm'))
        bad = os.path.join(self.local, 'bad.fits')
        self.write(bad, b'SIMPLE  =                    T' + b' ' * 50 + b'not a FITS file' * 40)
        for copy in (lambda: self.host.scp(bad, f'host:{self.m("cam.fits")}'),
                     lambda: self.host.rsync(bad, f'host:{self.m("cam.fits")}')):
            r = copy()
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertEqual(self.read(self.s('cam.im.shm')), before)
            self.assertEqual(sorted(os.listdir(self.source)), ['cam.im.shm'])
        self.assert_astropy_pixels(self.m('cam.fits'), a, {'CNT0': 7})


class SSHFSTest(SSHCase):

    def setUp(self):
        super().setUp()
        self.remote = os.path.join(self.workdir, 'rtc')
        os.mkdir(self.remote)

    def test_lists_and_reads_raw_files(self):
        data = os.urandom(3 * 65536 + 17)
        self.write(self.s('raw'), data)
        self.stream('cam')
        self.host.sshfs(self.mnt, self.remote)
        self.assertEqual(sorted(os.listdir(self.remote)),
                         sorted(['raw', 'cam.im.shm', 'cam.fits', 'sysv']))
        self.assertEqual(self.read(os.path.join(self.remote, 'raw')), data)
        self.assertEqual(self.read(os.path.join(self.remote, 'cam.im.shm')),
                         self.read(self.s('cam.im.shm')))
        # what another process stores shows at the next open
        with open(self.s('raw'), 'r+b') as f:
            f.write(b'changed')
        self.assertEqual(self.read(os.path.join(self.remote, 'raw'))[:7], b'changed')

    def test_each_open_of_a_view_gives_the_frame_of_then(self):
        a = self.stream('cam', value=1)
        self.host.sshfs(self.mnt, self.remote)
        view = os.path.join(self.remote, 'cam.fits')
        self.assert_astropy_pixels(view, a)
        self.assert_fitsverify(view)
        for n in (2, 3):
            a[:] = n
            cnt0 = self.frame('cam', a)
            self.assert_astropy_pixels(view, a, {'CNT0': cnt0})
        self.assert_cfitsio_pixels(view, a)


class DS9Test(SSHCase):
    """ds9 /mnt/rtc/X.fits with /mnt/rtc an sshfs mount of the host's mount:
    each start of DS9 loads the frame the stream holds then. What DS9 loaded
    is what it saves with -save fits; it runs under Xvfb (xvfb-run)."""

    def ds9_load(self, path):
        """Start DS9 on PATH, save what it loaded, exit; the saved array."""
        out = os.path.join(self.local, 'ds9-saved.fits')
        if os.path.exists(out):
            os.unlink(out)
        p = subprocess.Popen(['xvfb-run', '--auto-servernum', '--server-args',
                              '-screen 0 1280x1024x24', 'ds9', path, '-save', 'fits', out,
                              '-exit'], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True,
                             env=dict(os.environ, HOME=self.local))  # its preferences
        try:
            stdout, stderr = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # DS9 waits in an error dialog nobody sees: stop it and Xvfb
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.communicate()
            self.fail(f'ds9 {path} did not finish within 60 s')
        self.assertEqual(p.returncode, 0, stderr)
        from astropy.io import fits
        with fits.open(out, memmap=False) as hdul:
            return hdul[0].data

    def test_ds9_shows_the_frame_of_each_open(self):
        a = self.stream('cam', value=0)
        a[:] = np.arange(a.size, dtype=np.float32).reshape(a.shape)
        self.frame('cam', a)
        rtc = os.path.join(self.workdir, 'rtc')
        os.mkdir(rtc)
        self.host.sshfs(self.mnt, rtc)
        view = os.path.join(rtc, 'cam.fits')
        self.assertTrue(np.array_equal(self.ds9_load(view), a))
        b = a[::-1].copy()
        self.frame('cam', b)
        self.assertTrue(np.array_equal(self.ds9_load(view), b))


if __name__ == '__main__':
    import unittest
    unittest.main()
