"""test_views_files.py - issue 11: every open of a view is a real file. The
frame taken at open is a file of its own that programs map: DS9 (under Xvfb)
opens a stream's view, a typed System V segment's and a CFITSIO file's;
mmap.mmap, numpy.memmap, mrcfile.mmap and astropy (its default memmap, and
update mode) read them, and writable opens map them read-write, their
changes going back as one frame at close. A writable open beside a reader of
the same frame gets a file of its own. With passthrough and without."""

import errno
import mmap
import os
import subprocess
import time
import unittest

import mrcfile
import numpy as np
from astropy.io import fits

from harness import MountTestCase, with_variants, wait_until
import isio
from test_views_imod import HEADER_AREA, imod_header

CFSHM_MAKE = os.environ.get('SHMFS_CFSHM_MAKE', '')


class ViewFilesTest(MountTestCase, isio.ViewChecks):
    """Views mapped and opened by programs that map files."""

    def stream(self, name, a, **kw):
        dims = tuple(reversed(a.shape))
        code = [c for c, (n, _) in isio.DATATYPES.items() if n == a.dtype.name][0]
        return isio.make_stream(self.s(name + '.im.shm'), name, code, dims, data=a.tobytes(),
                                **kw)

    def mapped(self, path, prot=mmap.PROT_READ, flags=os.O_RDONLY):
        """The bytes of PATH through a MAP_SHARED mapping of it."""
        fd = os.open(path, flags)
        try:
            with mmap.mmap(fd, 0, mmap.MAP_SHARED, prot) as m:
                return bytes(m)
        finally:
            os.close(fd)

    def test_every_view_maps_read_only(self):
        a = np.arange(30 * 20, dtype=np.float32).reshape(20, 30)
        self.stream('cam', a, cnt0=3)
        with open(self.s('obj'), 'wb') as f:
            f.write(a.tobytes())
        os.setxattr(self.m('obj'), 'user.shmfs.type', b'float32')
        os.setxattr(self.m('obj'), 'user.shmfs.shape', b'30,20')
        b = np.arange(4 * 6 * 2, dtype=np.int16).reshape(2, 6, 4)
        with open(self.s('IMODShrMem_8_vol'), 'wb') as f:
            f.write(imod_header(4, 6, 2, 1) + b.tobytes())
            f.truncate(8 * 1024)
        for view in ('cam.fits', 'obj.fits', 'IMODShrMem_8_vol.mrc', 'IMODShrMem_8_vol.fits'):
            with self.subTest(view=view):
                path = self.m(view)
                self.assertEqual(self.mapped(path), self.read(path))
                # Read-only opens map read-only only.
                fd = os.open(path, os.O_RDONLY)
                try:
                    with self.assertRaises(PermissionError):
                        mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
                finally:
                    os.close(fd)
        with fits.open(self.m('cam.fits')) as h:          # astropy's default: memmap
            self.assertTrue(np.array_equal(h[0].data, a))
        mm = np.memmap(self.m('obj.fits'), dtype='>f4', mode='r', offset=2880, shape=(20, 30))
        self.assertTrue(np.array_equal(mm, a))
        del mm
        with mrcfile.mmap(self.m('IMODShrMem_8_vol.mrc'), mode='r') as m:
            self.assertTrue(np.array_equal(m.data, b))

    def test_numpy_memmap_writes_one_frame(self):
        a = np.zeros((16, 16), np.float32)
        o = self.stream('cam', a, cnt0=7)
        view = self.m('cam.fits')
        hlen = isio.fits_header_cards(self.read(view))[0]
        mm = np.memmap(view, dtype='>f4', mode='r+', offset=hlen, shape=(16, 16))
        mm[3, :] = 42.0
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 7, 'not before close')
        del mm
        want = a.copy()
        want[3, :] = 42.0
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o), want.tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 8, 'one frame')
        # mmap.mmap read-write, the same.
        fd = os.open(view, os.O_RDWR)
        with mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE) as m:
            m[hlen:hlen + 4] = np.array([-1.5], '>f4').tobytes()
        os.close(fd)
        want[0, 0] = -1.5
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o), want.tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 9)
        # An open for writing that changes nothing makes no frame.
        with open(view, 'r+b') as f:
            f.read()
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 9)

    def test_astropy_update_mode(self):
        a = np.arange(8 * 8, dtype=np.int16).reshape(8, 8)
        o = self.stream('cam', a, cnt0=1)
        with fits.open(self.m('cam.fits'), mode='update') as h:
            h[0].data[0, :] = -5
        want = a.copy()
        want[0, :] = -5
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o), want.tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 2)
        with fits.open(self.m('cam.fits')) as h:
            self.assertTrue(np.array_equal(h[0].data, want))
            self.assertEqual(h[0].header['CNT0'], 2)

    def test_mrcfile_mmap_read_and_r_plus(self):
        b = np.arange(5 * 7 * 3, dtype=np.float32).reshape(3, 7, 5)
        obj = 'IMODShrMem_8_tomo'
        with open(self.s(obj), 'wb') as f:
            f.write(imod_header(5, 7, 3, 2) + b.tobytes())
            f.truncate(8 * 1024)
        view = self.m(obj + '.mrc')
        with mrcfile.mmap(view, mode='r') as m:
            self.assertTrue(np.array_equal(m.data, b))
        with mrcfile.mmap(view, mode='r+') as m:
            m.data[1] = 9.0
        want = b.copy()
        want[1] = 9.0
        with open(self.s(obj), 'rb') as f:
            f.seek(HEADER_AREA)
            self.assertEqual(f.read(b.nbytes), want.tobytes())
        with mrcfile.open(view) as m:
            self.assertTrue(np.array_equal(m.data, want))

    def test_writable_open_beside_a_reader_of_the_frame(self):
        a = np.full((8, 8), 1.0, np.float32)
        o = self.stream('cam', a, cnt0=4)
        view = self.m('cam.fits')
        reader = open(view, 'rb')
        try:
            first = reader.read()
            hlen = isio.fits_header_cards(first)[0]
            with mmap.mmap(reader.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ) as rm:
                # The writer gets a file of its own: it maps it read-write.
                fd = os.open(view, os.O_RDWR)
                with mmap.mmap(fd, 0, mmap.MAP_SHARED,
                               mmap.PROT_READ | mmap.PROT_WRITE) as wm:
                    wm[hlen:hlen + 256] = np.full(64, 2.0, '>f4').tobytes()
                    self.assertEqual(bytes(rm), first, 'the reader saw the writer')
                os.close(fd)
                self.assertEqual(bytes(rm), first, 'the reader\'s frame changed')
            reader.seek(0)
            self.assertEqual(reader.read(), first)
        finally:
            reader.close()
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o),
                         np.full(64, 2.0, np.float32).tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 5)

    def test_frames_are_files_that_never_change(self):
        # Each open holds its frame; a new frame is a new file, found by the
        # next open; the old one stays as it was for who has it open or
        # mapped.
        a = np.full((32, 32), 1.0, np.float32)
        self.stream('cam', a, cnt0=1)
        view = self.m('cam.fits')
        opens = []
        w = isio.Writer(self.s('cam.im.shm'))
        try:
            for value in range(2, 6):
                f = open(view, 'rb')
                opens.append((f, mmap.mmap(f.fileno(), 0, mmap.MAP_SHARED, mmap.PROT_READ)))
                w.frame(np.full(32 * 32, value, np.float32).tobytes())
        finally:
            w.close()
        for i, (f, m) in enumerate(opens):
            hlen, cards = isio.fits_header_cards(bytes(m))
            pix = np.frombuffer(bytes(m), '>f4', 32 * 32, hlen)
            self.assertTrue((pix == i + 1).all(), f'open {i}')
            self.assertEqual(int(cards['CNT0']), i + 1)
            f.seek(0)
            self.assertEqual(f.read(), bytes(m))
            m.close()
            f.close()
        with fits.open(view) as h:
            self.assertEqual(h[0].header['CNT0'], 5)


class Ds9Test(MountTestCase, isio.ViewChecks):
    """SAOImage DS9 opens views directly (DS9 maps the files it opens)."""

    def setUp(self):
        super().setUp()
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)

    def ds9_export(self, path):
        """The image DS9 shows of PATH, exported as PNG, as 8-bit gray
        (numpy rows); DS9 runs under Xvfb."""
        out = os.path.join(self.workdir, 'ds9.png')
        if os.path.exists(out):
            os.unlink(out)
        r = self.run_cmd(['xvfb-run', '-a', 'ds9', path, '-export', 'png', out, '-exit'],
                         timeout=120)
        self.assertEqual(r.returncode, 0, f'ds9 {path}: {r.stderr}')
        self.assertTrue(os.path.exists(out), f'ds9 did not load {path}: {r.stderr}')
        size = self.check(['identify', '-format', '%w %h', out]).split()
        w, h = int(size[0]), int(size[1])
        gray = self.run_cmd(['convert', out, '-depth', '8', 'gray:-'], text=False).stdout
        return np.frombuffer(gray, np.uint8).reshape(h, w)

    def same_as_plain_copy(self, view):
        """DS9 shows VIEW exactly as it shows a plain copy of it."""
        got = self.ds9_export(view)
        copy = os.path.join(self.workdir, 'plain.fits')
        with open(copy, 'wb') as f:
            f.write(self.read(view))
        want = self.ds9_export(copy)
        self.assertEqual(got.shape, want.shape)
        self.assertTrue(np.array_equal(got, want), f'DS9 shows {view} otherwise')
        self.assertGreater(int(got.max()) - int(got.min()), 100, 'a blank image')
        return got

    def test_stream_typed_segment_and_cfitsio_file(self):
        y, x = np.mgrid[0:60, 0:90]
        a = (x * 3 + y).astype(np.float32)
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (90, 60), data=a.tobytes())
        self.assertEqual(self.same_as_plain_copy(self.m('cam.fits')).shape, (60, 90))
        # A typed System V segment.
        self.sysvtool('create', '0x00005678', str(a.nbytes), '0644')
        seg = self.m('sysv', '0x00005678')
        self.assertTrue(wait_until(lambda: os.path.exists(seg), 3))
        with open(seg, 'r+b', buffering=0) as f:
            f.write(a.tobytes())
        os.setxattr(seg, 'user.shmfs.type', b'FLOAT')
        os.setxattr(seg, 'user.shmfs.shape', b'90,60')
        self.assertEqual(self.same_as_plain_copy(seg + '.fits').shape, (60, 90))
        # A CFITSIO shmem:// file.
        if not CFSHM_MAKE:
            self.fail('SHMFS_CFSHM_MAKE must name tests/mount/cfshm_make (run through ctest)')
        key = self.check([CFSHM_MAKE, '3', '70', '40', '-32']).strip()
        self.assertEqual(self.same_as_plain_copy(self.m('sysv', key + '.fits')).shape, (40, 70))


with_variants(globals(), [ViewFilesTest, Ds9Test], 'NoPassthrough', ['-o', 'passthrough=off'],
              'passthrough off: the daemon serves views through the page cache')

if __name__ == '__main__':
    unittest.main()
