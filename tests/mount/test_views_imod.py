"""test_views_imod.py - issue 4: IMOD shared-memory files IMODShrMem_KB_NAME
(IMOD's in-memory MRC header in bytes 0-2047, data from 2048) shown as
NAME.mrc (a clean MRC2014 file that mrcfile validates) and NAME.fits; data
written through the .mrc going back into the object; objects that are not
IMOD images showing no view."""

import errno
import io
import os
import re
import struct
import unittest

import mrcfile
import numpy as np

from harness import MountTestCase
import isio

IMOD_STAMP = 1146047817
HEADER_AREA = 2048
NOVIEW = r'no MRC image in this IMOD file, no view'

# MRC mode: numpy dtype of the data (mode 0 by IMOD's rule: see imod_header)
MODES = {0: 'uint8', 1: 'int16', 2: 'float32', 4: 'complex64', 6: 'uint16', 12: 'float16'}


def imod_header(nx, ny, nz, mode, labels=(), signed=False, stamp=True, nlabl=None, **fields):
    """IMOD's in-memory header (2048 bytes): the MRC header words, then the
    10 labels at a stride of 81 bytes. SIGNED (with STAMP): mode 0 is int8.
    FIELDS override words by name (dmin, dmax, dmean, rms, ispg, mz, ...)."""
    h = bytearray(HEADER_AREA)
    struct.pack_into('<4i', h, 0, nx, ny, nz, mode)
    struct.pack_into('<3i', h, 28, fields.get('mx', nx), fields.get('my', ny),
                     fields.get('mz', nz))
    struct.pack_into('<3f', h, 40, 1.5 * nx, 1.5 * ny, 1.5 * nz)          # cella
    struct.pack_into('<3f', h, 52, 90, 90, 90)                            # cellb
    struct.pack_into('<3i', h, 64, *fields.get('map', (1, 2, 3)))
    struct.pack_into('<3f', h, 76, fields.get('dmin', -5.0), fields.get('dmax', 5.0),
                     fields.get('dmean', 0.25))                           # real-looking stats
    struct.pack_into('<i', h, 88, fields.get('ispg', 0))
    struct.pack_into('<i', h, 92, fields.get('nsymbt', 0))
    struct.pack_into('<i', h, 108, 20140)
    if stamp:
        struct.pack_into('<ii', h, 152, IMOD_STAMP, 1 if signed else 0)
    struct.pack_into('<3f', h, 196, 10.0, 20.0, 30.0)                     # origin
    h[208:212] = b'MAP '
    h[212:216] = b'\x44\x44\x00\x00'
    struct.pack_into('<f', h, 216, fields.get('rms', 2.0))
    struct.pack_into('<i', h, 220, len(labels) if nlabl is None else nlabl)
    for i, text in enumerate(labels):
        at = 224 + 81 * i
        h[at:at + 80] = text.encode().ljust(80, b'\0')[:80]
    return bytes(h)


def sample(mode, shape, signed=False, seed=0):
    """Pixels of MODE with numpy SHAPE (nz, ny, nx)."""
    dt = 'int8' if mode == 0 and signed else MODES[mode]
    dims = tuple(reversed(shape))
    a = isio.sample_pixels(dt, dims, seed)
    if mode in (2, 4, 12):                 # finite values: statistics stay meaningful
        comp = np.float16 if mode == 12 else np.float32
        v = a.view(comp)
        v[~np.isfinite(v)] = 7
    return a


class ImodCase(MountTestCase, isio.ViewChecks):

    def imod(self, name, a, mode, kb=None, labels=('made by test_views_imod',), signed=False,
             **kw):
        """Make SOURCE/IMODShrMem_KB_NAME with pixels A (numpy (nz, ny, nx)) as
        IMOD's shared memory holds them; returns the object's name."""
        nz, ny, nx = a.shape
        need = HEADER_AREA + a.nbytes
        kb = kb if kb is not None else (need + 1023) // 1024 + 1
        obj = f'IMODShrMem_{kb}_{name}'
        with open(self.s(obj), 'wb') as f:
            f.write(imod_header(nx, ny, nz, mode, labels, signed=signed, **kw))
            f.write(a.tobytes())
            f.truncate(kb * 1024)
        return obj

    def validate(self, path):
        out = io.StringIO()
        ok = mrcfile.validate(path, print_file=out)
        self.assertTrue(ok, f'mrcfile.validate {path}:\n{out.getvalue()}')


class ModesTest(ImodCase):

    def test_every_mode_validates_and_reads_back(self):
        cases = []
        for mode in sorted(MODES):
            for shape in ((3, 5, 7), (1, 16, 16)):
                cases.append((f'm{mode}_{shape[0]}', mode, shape, False))
        cases.append(('m0_signed', 0, (2, 4, 6), True))
        cases.append(('m0_nostamp', 0, (2, 4, 6), None))
        made = []
        for name, mode, shape, signed in cases:
            a = sample(mode, shape, bool(signed), seed=len(made))
            if signed is None:   # no IMOD stamp: IMOD reads mode 0 as unsigned
                obj = self.imod(name, a, mode, stamp=False)
            else:
                obj = self.imod(name, a, mode, signed=signed)
            made.append((obj, mode, a))
        listing = set(os.listdir(self.mnt))
        for obj, mode, a in made:
            with self.subTest(object=obj):
                self.assertIn(obj, listing)
                self.assertIn(obj + '.mrc', listing)
                self.assertIn(obj + '.fits', listing)
                mrc = self.m(obj + '.mrc')
                self.assertEqual(os.stat(mrc).st_size, 1024 + a.nbytes)
                self.validate(mrc)
                with mrcfile.open(mrc, permissive=False) as m:
                    h = m.header
                    self.assertEqual((int(h.nx), int(h.ny), int(h.nz), int(h.mode)),
                                     (a.shape[2], a.shape[1], a.shape[0], mode))
                    self.assertEqual(np.ascontiguousarray(m.data).tobytes(), a.tobytes())
                    self.assertEqual(bytes(h.map), b'MAP ')
                    self.assertEqual(int(h.nsymbt), 0)
                    self.assertEqual(int(h.nversion), 20140)
                    self.assertEqual(list(h.cella.tolist()),
                                     [1.5 * a.shape[2], 1.5 * a.shape[1], 1.5 * a.shape[0]])
                    self.assertEqual(list(h.origin.tolist()), [10.0, 20.0, 30.0])
                    # Statistics marked undetermined.
                    self.assertLess(float(h.dmax), float(h.dmin))
                    self.assertLess(float(h.dmean), min(float(h.dmin), float(h.dmax)))
                    self.assertLess(float(h.rms), 0)
                    self.assertEqual(int(h.nlabl), 1)
                    self.assertEqual(bytes(h.label[0]).rstrip(), b'made by test_views_imod')
                # The header words as they are in the file.
                raw = self.read(mrc, 0, 1024)
                self.assertEqual(raw[212:214], b'\x44\x44')
                stamp, flags = struct.unpack_from('<ii', raw, 152)
                self.assertEqual(stamp, IMOD_STAMP)
                self.assertEqual(bool(flags & 1), a.dtype == np.int8, 'IMOD signed-bytes flag')
                self.assertEqual(self.read(mrc, 1024), a.tobytes())
                # The FITS view of the same data (a single section: 2 axes).
                f = a[0] if a.shape[0] == 1 else a
                self.assert_astropy_pixels(self.m(obj + '.fits'), f)
                self.assert_cfitsio_pixels(self.m(obj + '.fits'), f)
                # The object itself is still there, byte for byte.
                self.assertEqual(self.read(self.m(obj)), self.read(self.s(obj)))
        self.assert_fitsverify(*[self.m(obj + '.fits') for obj, _, _ in made])
        r = self.run_cmd(['mrcfile-validate', *[self.m(obj + '.mrc') for obj, _, _ in made]])
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assert_not_log(NOVIEW)

    def test_labels_repacked_from_81_byte_stride(self):
        labels = ['first label: ' + 'x' * 60, '', 'third, after a blank one',
                  'L' * 80]    # a full 80-character label, its NUL in byte 81
        a = sample(2, (2, 3, 4))
        obj = self.imod('labels', a, 2, labels=labels)
        mrc = self.m(obj + '.mrc')
        self.validate(mrc)
        with mrcfile.open(mrc) as m:
            got = [bytes(l).decode() for l in m.header.label]
            n = int(m.header.nlabl)
        texts = [l for l in labels if l]
        self.assertEqual(n, len(texts))
        self.assertEqual([g.rstrip() for g in got[:n]], texts)
        self.assertTrue(all(g.strip() == '' for g in got[n:]))
        # Labels are 80 bytes at 224 + 80 i in the file.
        raw = self.read(mrc, 0, 1024)
        self.assertEqual(raw[224 + 80 * 2:224 + 80 * 3], b'L' * 80)

    def test_odd_header_words_still_give_a_valid_file(self):
        # What SerialEM or an old program may leave: no sampling, zero cell,
        # a map permutation that is not one, a volume stack nz does not fill,
        # nonsense statistics, nlabl larger than 10.
        a = sample(1, (5, 4, 3))
        obj = self.imod('odd', a, 1, mx=0, my=-1, mz=0, map=(0, 7, 1), ispg=401,
                        dmin=float('nan'), dmax=float('inf'), rms=float('nan'), nlabl=99,
                        labels=['only one'])
        mrc = self.m(obj + '.mrc')
        self.validate(mrc)
        with mrcfile.open(mrc) as m:
            self.assertEqual(np.ascontiguousarray(m.data).tobytes(), a.tobytes())
        self.assert_fitsverify(self.m(obj + '.fits'))

    def test_getfattr_shows_imod_image(self):
        a = sample(6, (3, 4, 5))
        obj = self.imod('attrs', a, 6)
        out = self.check(['getfattr', '-d', '-m', 'user.shmfs', self.m(obj)])
        attrs = dict(re.findall(r'^(user\.shmfs\.[^=]+)="(.*)"$', out, re.M))
        self.assertEqual(attrs.get('user.shmfs.format'), 'imod', out)
        self.assertEqual(attrs.get('user.shmfs.type'), 'uint16', out)
        self.assertEqual(attrs.get('user.shmfs.shape'), '5,4,3', out)


class WriteTest(ImodCase):

    def test_write_data_through_mrc(self):
        a = sample(2, (2, 8, 8))
        obj = self.imod('w', a, 2)
        header = self.read(self.s(obj), 0, HEADER_AREA)
        new = (a * 2 + 1).astype(np.float32)
        with open(self.m(obj + '.mrc'), 'r+b', buffering=0) as f:
            f.seek(1024 + 4 * 10)
            f.write(new.ravel()[10:].tobytes())
            f.seek(1024)
            f.write(new.ravel()[:10].tobytes())
        self.assertEqual(self.read(self.s(obj), HEADER_AREA, a.nbytes), new.tobytes())
        self.assertEqual(self.read(self.s(obj), 0, HEADER_AREA), header, 'header untouched')
        with mrcfile.open(self.m(obj + '.mrc')) as m:
            self.assertTrue(np.array_equal(m.data, new))
        # With mrcfile itself, in place (it truncates the file to the length
        # it wrote on close: the view's own size).
        with mrcfile.open(self.m(obj + '.mrc'), mode='r+') as m:
            m.data[1, 2, 3] = -42.0
        new[1, 2, 3] = -42.0
        self.assertEqual(self.read(self.s(obj), HEADER_AREA, a.nbytes), new.tobytes())

    def test_write_data_through_fits(self):
        a = sample(1, (1, 4, 6))
        obj = self.imod('wf', a, 1)
        view = self.m(obj + '.fits')
        with open(view, 'rb') as f:
            hlen = isio.fits_header_cards(f.read(2880 * 2))[0]
        new = (a - 7).astype(np.int16)
        with open(view, 'r+b', buffering=0) as f:
            f.seek(hlen)
            f.write(isio.fits_data_bytes(new))
        self.assertEqual(self.read(self.s(obj), HEADER_AREA, a.nbytes), new.tobytes())

    def test_changed_header_is_loaded_or_refused_at_close(self):
        a = sample(0, (1, 4, 4))
        obj = self.imod('h', a, 0)
        mrc = self.m(obj + '.mrc')
        image = self.read(mrc)
        # The same header bytes: nothing to load.
        with open(mrc, 'r+b', buffering=0) as f:
            self.assertEqual(os.pwrite(f.fileno(), image[:1024], 0), 1024)
        for change in ((0, b'\x05'), (208, b'XXXX')):     # nx, the MAP stamp
            fd = os.open(mrc, os.O_RDWR)
            os.pwrite(fd, change[1], change[0])
            with self.assertRaises(OSError) as cm:
                os.close(fd)
            self.assertIn(cm.exception.errno, (errno.EINVAL, errno.EIO), cm.exception)
            self.assertEqual(self.read(mrc), image)
            self.assertEqual(self.read(self.s(obj), HEADER_AREA, a.nbytes), a.tobytes())


class NotImodTest(ImodCase):

    def test_objects_that_are_not_imod_images(self):
        a = sample(2, (2, 8, 8))
        bad = {}
        # Names without IMOD's form: no view at all (and no log line).
        for name in ('IMODShrMem_x_n', 'IMODShrMem_100_', 'IMODShrMem_2_tiny', 'IMODShrMem_n',
                     'imodshrmem_100_n', 'IMODShrMem_-5_n'):
            with open(self.s(name), 'wb') as f:
                f.write(imod_header(8, 8, 2, 2) + a.tobytes())
                f.truncate(100 * 1024)
        # Good names, headers that are no image: no view, one log line each.
        bad[self.imod('mode3', a, 3)] = 'mode 3'
        bad[self.imod('mode16', a, 16)] = 'mode 16'
        bad[self.imod('modeneg', a, -1)] = 'mode -1'
        obj = self.imod('zero', a, 2)
        with open(self.s(obj), 'r+b') as f:
            f.write(struct.pack('<i', 0))                       # nx = 0
        bad[obj] = r'not positive'
        obj = self.imod('negz', a, 2)
        with open(self.s(obj), 'r+b') as f:
            f.seek(8)
            f.write(struct.pack('<i', -3))
        bad[obj] = r'not positive'
        bad[self.imod('small', sample(2, (5, 8, 8)), 2, kb=3)] = r'needs'   # capacity too small
        obj = self.imod('short', a, 2)
        os.truncate(self.s(obj), HEADER_AREA + 100)             # object smaller than the data
        bad[obj] = r'needs'
        obj = self.imod('huge', a, 2)
        with open(self.s(obj), 'r+b') as f:
            f.write(struct.pack('<3i', 0x7fffffff, 0x7fffffff, 0x7fffffff))
        bad[obj] = r'.'
        with open(self.s('IMODShrMem_50_random'), 'wb') as f:
            f.write(os.urandom(50 * 1024))
        bad['IMODShrMem_50_random'] = r'.'
        with open(self.s('IMODShrMem_50_stub'), 'wb') as f:
            f.write(b'\0' * 100)                                 # shorter than a header
        bad['IMODShrMem_50_stub'] = r'.'
        good = self.imod('good', a, 2)
        for _ in range(3):
            listing = set(os.listdir(self.mnt))
            for name in list(bad) + ['IMODShrMem_x_n']:
                for ext in ('.mrc', '.fits'):
                    self.assertFalse(os.path.exists(self.m(name + ext)), name + ext)
        self.assertIn(good + '.mrc', listing)
        for name in ('IMODShrMem_x_n', 'IMODShrMem_100_', 'IMODShrMem_2_tiny', 'IMODShrMem_n',
                     'imodshrmem_100_n', 'IMODShrMem_-5_n'):
            self.assertIn(name, listing)
            self.assertNotIn(name + '.mrc', listing)
            self.assertNotIn(name + '.fits', listing)
        log = self.log_text().splitlines()
        for name, why in bad.items():
            with self.subTest(object=name):
                self.assertIn(name, listing)
                self.assertNotIn(name + '.mrc', listing)
                self.assertNotIn(name + '.fits', listing)
                self.assertEqual(self.read(self.m(name)), self.read(self.s(name)))
                lines = [l for l in log if f'{name}: {NOVIEW}' in l]
                self.assertEqual(len(lines), 1, f'one log line for {name}:\n{self.log_text()}')
                self.assertRegex(lines[0], why)
        self.assert_daemon_alive()

    def test_real_mrc_file_wins(self):
        a = sample(2, (1, 4, 4))
        obj = self.imod('cam', a, 2)
        with open(self.s(obj + '.mrc'), 'wb') as f:
            f.write(b'real')
        self.assertEqual(self.read(self.m(obj + '.mrc')), b'real')
        self.assertEqual(sorted(n for n in os.listdir(self.mnt) if n.startswith(obj)),
                         [obj, obj + '.fits', obj + '.mrc'])


if __name__ == '__main__':
    unittest.main()
