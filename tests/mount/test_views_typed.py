"""test_views_typed.py - issue 4: typed raw segments (the IDL SHMMAP model).
setfattr user.shmfs.type / .shape / .offset on a raw POSIX object or System V
segment makes NAME.fits appear; numpy's and IDL's type names; layouts that do
not fit refused with EINVAL; POSIX layouts kept in the backing file (and so
across remounts), System V layouts for the life of the mount; what getfattr
shows of every kind of segment."""

import errno
import os
import re
import subprocess
import sys
import unittest

import numpy as np
from astropy.io import fits

from harness import MountTestCase, wait_until
import isio

NOFIT = r'layout does not fit, no view'


def attrs_of(text):
    """{name: value} from `getfattr -d` output."""
    return dict(re.findall(r'^(user\.[^=\n]+)="(.*)"$', text, re.M))


class TypedCase(MountTestCase, isio.ViewChecks):

    def setfattr(self, path, name, value):
        return self.check(['setfattr', '-n', f'user.shmfs.{name}', '-v', str(value), path])

    def setfattr_fails(self, path, name, value, err=errno.EINVAL):
        return self.check_fails(['setfattr', '-n', f'user.shmfs.{name}', '-v', str(value), path],
                                err=err)

    def getfattr(self, path):
        return attrs_of(self.check(['getfattr', '-d', '-m', 'user.shmfs', path]))

    def raw_object(self, name, a, offset=0, size=None, where=None):
        """SOURCE/NAME (or WHERE): random filler with the pixels of A at OFFSET."""
        data = bytearray(os.urandom(size if size is not None else offset + a.nbytes + 123))
        data[offset:offset + a.nbytes] = a.tobytes()
        path = where or self.s(name)
        with open(path, 'wb') as f:
            f.write(data)
        return bytes(data)


class PosixTypedTest(TypedCase):

    # (object, type name given, numpy dtype, shape text (axis 1 first), offset)
    CASES = [
        ('f32', 'float32', 'float32', '16,8', None),
        ('idl_int', 'INT', 'int16', '10', None),
        ('idl_byte', 'BYTE', 'uint8', '5,4,3', None),
        ('u16off', 'uint16', 'uint16', '6,5,4', 64),
        ('idl_dcomplex', 'DCOMPLEX', 'complex128', '3,2', None),
        ('idl_complex', 'complex', 'complex64', '4', 8),
        ('idl_ulong64', 'ULONG64', 'uint64', '4,4', 8),
        ('idl_long', 'LONG', 'int32', '7,3', 4),
        ('idl_ulong', 'ULONG', 'uint32', '2,2,2,2', None),
        ('idl_long64', 'LONG64', 'int64', '3', None),
        ('idl_uint', 'UINT', 'uint16', '9', 2),
        ('idl_float', 'FLOAT', 'float32', '1,1', None),
        ('idl_double', 'DOUBLE', 'float64', '5,5', 16),
        ('i8', 'int8', 'int8', '11,2', 1),
        ('half', 'float16', 'float16', '8,2', 6),
        ('big', 'float32', 'float32', '512,300', 4096),
    ]

    def test_types_and_shapes(self):
        made = []
        for i, (obj, tname, dtype, shape, offset) in enumerate(self.CASES):
            dims = tuple(int(x) for x in shape.split(','))
            a = isio.sample_pixels(dtype, dims, seed=i)
            self.raw_object(obj, a, offset or 0)
            self.assertFalse(os.path.exists(self.m(obj + '.fits')))
            self.setfattr(self.m(obj), 'type', tname)
            # A type alone is no layout yet.
            self.assertFalse(os.path.exists(self.m(obj + '.fits')), obj)
            if offset is not None:
                self.setfattr(self.m(obj), 'offset', offset)
            self.setfattr(self.m(obj), 'shape', shape)
            made.append((obj, tname, dtype, shape, offset, a))
        listing = set(os.listdir(self.mnt))
        for obj, tname, dtype, shape, offset, a in made:
            with self.subTest(object=obj, type=tname, shape=shape):
                view = self.m(obj + '.fits')
                self.assertIn(obj, listing)
                self.assertIn(obj + '.fits', listing)
                data = self.read(view)
                hlen = isio.fits_header_cards(data)[0]
                want = isio.fits_data_bytes(a)
                self.assertEqual(len(data), isio.fits_size(hlen, len(want)))
                self.assertEqual(os.stat(view).st_size, len(data))
                self.assertEqual(data[hlen:hlen + len(want)], want)
                self.assert_astropy_pixels(view, a)
                self.assert_cfitsio_pixels(view, a)
                attrs = self.getfattr(self.m(obj))
                self.assertEqual(attrs.get('user.shmfs.format'), 'typed', attrs)
                self.assertIn(attrs.get('user.shmfs.type'), (tname, dtype), attrs)
                self.assertEqual(attrs.get('user.shmfs.shape'), shape, attrs)
                if offset is not None:
                    self.assertEqual(attrs.get('user.shmfs.offset'), str(offset), attrs)
        self.assert_fitsverify(*[self.m(m[0] + '.fits') for m in made])

    def test_layouts_that_do_not_fit_are_refused(self):
        self.raw_object('seg', np.zeros(0, np.uint8), size=4096)
        p = self.m('seg')
        self.setfattr_fails(p, 'type', 'float128')
        self.setfattr_fails(p, 'type', 'quaternion')
        self.setfattr(p, 'type', 'float32')
        self.setfattr_fails(p, 'shape', '1025')              # 4100 bytes > 4096
        self.setfattr_fails(p, 'shape', '33,32')
        self.setfattr_fails(p, 'shape', '0,5')
        self.setfattr_fails(p, 'shape', '5,-1')
        self.setfattr_fails(p, 'shape', 'abc')
        self.setfattr_fails(p, 'shape', '1,1,1,1,1,1,1,1,1')  # 9 axes
        self.setfattr_fails(p, 'shape', '4294967296,4294967296,4294967296')  # overflows
        self.assertFalse(os.path.exists(self.m('seg.fits')))
        self.setfattr(p, 'shape', '1024')                     # exactly fits
        self.assertTrue(os.path.exists(self.m('seg.fits')))
        self.setfattr_fails(p, 'offset', '4')                 # then it would not
        self.setfattr_fails(p, 'offset', '-4')
        self.setfattr_fails(p, 'type', 'float64')             # 8192 bytes
        self.setfattr_fails(p, 'type', 'DCOMPLEX')
        # Nothing refused was stored: the backing file has the last good layout.
        stored = attrs_of(self.check(['getfattr', '-d', '-m', 'user.shmfs', self.s('seg')]))
        self.assertEqual(stored, {'user.shmfs.type': 'float32', 'user.shmfs.shape': '1024'})
        self.assertEqual(os.stat(self.m('seg.fits')).st_size, isio.fits_size(2880, 4096))
        self.assert_log(r'refused')

    def test_layout_persists_in_the_backing_file(self):
        a = isio.sample_pixels('int16', (6, 4), seed=3)
        self.raw_object('seg', a, 32)
        self.setfattr(self.m('seg'), 'type', 'INT')
        self.setfattr(self.m('seg'), 'shape', '6,4')
        self.setfattr(self.m('seg'), 'offset', '32')
        stored = attrs_of(self.check(['getfattr', '-d', self.s('seg')]))
        self.assertEqual(stored, {'user.shmfs.type': 'INT', 'user.shmfs.shape': '6,4',
                                  'user.shmfs.offset': '32'})
        self.remount()
        self.assertIn('seg.fits', os.listdir(self.mnt))
        self.assert_astropy_pixels(self.m('seg.fits'), a)
        # Typed directly on SOURCE (before or without the mount): the same.
        b = isio.sample_pixels('float64', (3, 3), seed=4)
        self.raw_object('other', b)
        self.check(['setfattr', '-n', 'user.shmfs.type', '-v', 'double', self.s('other')])
        self.check(['setfattr', '-n', 'user.shmfs.shape', '-v', '3,3', self.s('other')])
        self.assert_astropy_pixels(self.m('other.fits'), b)
        # Removing an attribute removes the view.
        self.check(['setfattr', '-x', 'user.shmfs.shape', self.m('seg')])
        self.assertNotIn('user.shmfs.shape',
                         attrs_of(self.check(['getfattr', '-d', self.s('seg')])))
        self.assertTrue(wait_until(lambda: not os.path.exists(self.m('seg.fits')), 3))
        # A copy with attributes keeps its layout: cp --preserve=xattr.
        self.check(['cp', '--preserve=xattr', self.m('other'), self.m('copy')])
        self.assert_astropy_pixels(self.m('copy.fits'), b)

    def test_object_shrunk_under_its_layout(self):
        a = isio.sample_pixels('float32', (16, 16), seed=1)
        self.raw_object('seg', a, size=a.nbytes)
        self.setfattr(self.m('seg'), 'type', 'float32')
        self.setfattr(self.m('seg'), 'shape', '16,16')
        self.assertTrue(os.path.exists(self.m('seg.fits')))
        os.truncate(self.s('seg'), 100)
        self.assertTrue(wait_until(lambda: not os.path.exists(self.m('seg.fits')), 3))
        for _ in range(3):
            self.assertNotIn('seg.fits', os.listdir(self.mnt))
        lines = [l for l in self.log_text().splitlines() if f'seg: its user.shmfs {NOFIT}' in l]
        self.assertEqual(len(lines), 1, self.log_text())
        self.assertEqual(self.read(self.m('seg')), a.tobytes()[:100])
        os.truncate(self.s('seg'), a.nbytes)
        self.assertTrue(wait_until(lambda: os.path.exists(self.m('seg.fits')), 3))
        self.assert_daemon_alive()

    def test_write_through_typed_view(self):
        a = isio.sample_pixels('uint16', (8, 4), seed=2)
        raw = self.raw_object('seg', a, 16, size=16 + a.nbytes + 16)
        self.setfattr(self.m('seg'), 'type', 'UINT')
        self.setfattr(self.m('seg'), 'shape', '8,4')
        self.setfattr(self.m('seg'), 'offset', '16')
        view = self.m('seg.fits')
        hlen = isio.fits_header_cards(self.read(view))[0]
        new = (a ^ 0x5a5a).astype(np.uint16)
        # A header changed too: the file is not the object's; the close
        # refuses it, all of it.
        fd = os.open(view, os.O_RDWR)
        os.pwrite(fd, isio.fits_data_bytes(new), hlen)
        os.pwrite(fd, b'Q', 0)
        self.assert_errno(errno.EPERM, os.close, fd)
        self.assertEqual(self.read(self.s('seg')), raw)
        self.assert_log(r'seg: the header of its view is made from the object')
        with open(view, 'r+b', buffering=0) as f:
            f.seek(hlen)
            f.write(isio.fits_data_bytes(new))
        got = self.read(self.s('seg'))
        self.assertEqual(got[16:16 + a.nbytes], new.tobytes())
        self.assertEqual(got[:16], raw[:16], 'bytes before the layout untouched')
        self.assertEqual(got[16 + a.nbytes:], raw[16 + a.nbytes:], 'bytes after untouched')

    def test_edited_copy_goes_back_with_cp(self):
        # cp the view out, change pixels, cp it back (O_TRUNC): the pixels
        # go into the object; a file with another header is refused.
        a = isio.sample_pixels('float32', (6, 5), seed=3)
        self.raw_object('seg', a)
        self.setfattr(self.m('seg'), 'type', 'float32')
        self.setfattr(self.m('seg'), 'shape', '6,5')
        copy = os.path.join(self.workdir, 'seg.fits')
        self.check(['cp', self.m('seg.fits'), copy])
        with fits.open(copy, mode='update') as h:
            h[0].data[:] = 2.5
        self.check(['cp', copy, self.m('seg.fits')])
        self.assertEqual(self.read(self.s('seg'))[:a.nbytes], np.full((5, 6), 2.5, np.float32).tobytes())
        with fits.open(copy, mode='update') as h:
            h[0].header['EXTRA'] = 1
            h[0].data[:] = 7
        self.check_fails(['cp', copy, self.m('seg.fits')], errno.EPERM)
        self.assertEqual(self.read(self.s('seg'))[:a.nbytes], np.full((5, 6), 2.5, np.float32).tobytes())

    def test_real_fits_file_wins(self):
        a = isio.sample_pixels('uint8', (4,))
        self.raw_object('seg', a)
        self.setfattr(self.m('seg'), 'type', 'uint8')
        self.setfattr(self.m('seg'), 'shape', '4')
        self.assertEqual(self.read(self.m('seg.fits'))[:6], b'SIMPLE')
        with open(self.s('seg.fits'), 'wb') as f:
            f.write(b'real')
        self.assertTrue(wait_until(lambda: self.read(self.m('seg.fits')) == b'real', 3))
        self.assertEqual(os.listdir(self.mnt).count('seg.fits'), 1)

    def test_getfattr_of_every_kind(self):
        # raw
        with open(self.s('raw'), 'wb') as f:
            f.write(b'\0' * 100)
        self.assertEqual(self.getfattr(self.m('raw')), {'user.shmfs.format': 'raw'})
        self.assertEqual(self.check(['getfattr', '--only-values', '-n', 'user.shmfs.format',
                                     self.m('raw')]), 'raw')
        self.check_fails(['getfattr', '-n', 'user.shmfs.type', self.m('raw')])
        # typed
        self.setfattr(self.m('raw'), 'type', 'float32')
        self.setfattr(self.m('raw'), 'shape', '5,5')
        attrs = self.getfattr(self.m('raw'))
        self.assertEqual(attrs.get('user.shmfs.format'), 'typed', attrs)
        self.assertEqual(attrs.get('user.shmfs.type'), 'float32', attrs)
        self.assertEqual(attrs.get('user.shmfs.shape'), '5,5', attrs)
        # stream (see also test_views_stream.py)
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (4, 2), cnt0=9,
                         keywords=[('EXPTIME', 'D', 0.25)])
        attrs = self.getfattr(self.m('cam.im.shm'))
        self.assertEqual({k: attrs.get(k) for k in ('user.shmfs.format', 'user.shmfs.type',
                                                     'user.shmfs.shape', 'user.shmfs.cnt0',
                                                     'user.shmfs.name')},
                         {'user.shmfs.format': 'stream', 'user.shmfs.type': 'float32',
                          'user.shmfs.shape': '4,2', 'user.shmfs.cnt0': '9',
                          'user.shmfs.name': 'cam'})
        self.assertEqual(float(attrs.get('user.shmfs.keyword.EXPTIME')), 0.25)
        # an invalid stream is raw
        isio.make_stream(self.s('old.im.shm'), 'old', version=b'1.05')
        self.assertEqual(self.getfattr(self.m('old.im.shm')).get('user.shmfs.format'), 'raw')
        # other user attributes are the backing file's, beside ours
        self.check(['setfattr', '-n', 'user.note', '-v', 'hello', self.m('raw')])
        self.assertEqual(attrs_of(self.check(['getfattr', '-d', self.s('raw')])).get(
            'user.note'), 'hello')
        self.assertEqual(attrs_of(self.check(['getfattr', '-d', self.m('raw')])).get(
            'user.note'), 'hello')

    def test_small_writes_are_not_slowed_by_xattrs(self):
        # DESIGN.md: a filesystem with getxattr makes the kernel ask for
        # security.capability before writes it sends to the daemon. Writes
        # to raw files and views must not: none reaches the daemon as GETXATTR.
        for options in (['-d'], ['-d', '-o', 'passthrough=off']):
            with self.subTest(options=options):
                self.remount(options=options)
                with open(self.s('obj'), 'wb') as f:
                    f.write(bytes(1 << 16))
                self.setfattr(self.m('obj'), 'type', 'uint8')
                self.setfattr(self.m('obj'), 'shape', '65536')
                for path in (self.m('obj'), self.m('obj.fits')):
                    fd = os.open(path, os.O_WRONLY)
                    try:
                        for i in range(100):
                            os.pwrite(fd, b'x' * 4096, 2880 + (i % 16) * 4096)
                    finally:
                        os.close(fd)
                requests = re.findall(r'opcode: (\w+)', self.log_text())
                after = requests[len(requests) - requests[::-1].index('SETXATTR'):]
                passthrough = 'passthrough=off' not in options
                # Through passthrough no write reaches the daemon; without,
                # the raw file's 100 and the view's 100 do.
                if passthrough:
                    self.assertEqual(after.count('WRITE'), 0)
                else:
                    self.assertGreaterEqual(after.count('WRITE'), 200)
                # (once per file, before the kernel marks it S_NOSEC, is fine:
                # HANDLE_KILLPRIV_V2 is negotiated in both modes, so a view's
                # page-cache writes without passthrough ask no more than that)
                gets = after.count('GETXATTR')
                self.assertLessEqual(gets, 2, f'200 writes asked the daemon for extended '
                                     f'attributes {gets} times')
                os.unlink(self.s('obj'))

    def test_shown_attributes_are_not_stored(self):
        # user.shmfs.format, .cnt0, .name, .keyword.* are what shmfs reads
        # from the segment: setting one must not freeze it (cp -a and
        # cp --preserve=xattr copy every attribute getfattr lists).
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (4, 2), cnt0=9,
                         keywords=[('EXPTIME', 'D', 0.25)])
        self.run_cmd(['setfattr', '-n', 'user.shmfs.cnt0', '-v', '5', self.m('cam.im.shm')])
        self.run_cmd(['setfattr', '-n', 'user.shmfs.format', '-v', 'raw', self.m('cam.im.shm')])
        w = isio.Writer(self.s('cam.im.shm'))
        w.frame(bytes(32))
        w.close()
        with self.subTest('setfattr of a shown attribute'):
            attrs = self.getfattr(self.m('cam.im.shm'))
            self.assertEqual(attrs.get('user.shmfs.cnt0'), '10', attrs)
            self.assertEqual(attrs.get('user.shmfs.format'), 'stream', attrs)
        with self.subTest('cp -a of a stream'):
            # A copy of a stream is a stream of its own, with its own CNT0.
            isio.make_stream(self.s('cam2.im.shm'), 'cam2', 9, (4, 2), cnt0=9)
            self.check(['cp', '-a', self.m('cam2.im.shm'), self.m('copy.im.shm')])
            w = isio.Writer(self.s('copy.im.shm'))
            w.frame(bytes(32))
            w.frame(bytes(32))
            w.close()
            attrs = self.getfattr(self.m('copy.im.shm'))
            self.assertEqual(attrs.get('user.shmfs.cnt0'), '11', attrs)
        with self.subTest('cp --preserve=xattr of a typed object'):
            # A copy of a typed object that is then cut short is raw, not 'typed'.
            with open(self.s('t'), 'wb') as f:
                f.write(bytes(64))
            self.setfattr(self.m('t'), 'type', 'uint8')
            self.setfattr(self.m('t'), 'shape', '64')
            self.check(['cp', '--preserve=xattr', self.m('t'), self.m('t2')])
            self.assertEqual(self.getfattr(self.m('t2')).get('user.shmfs.format'), 'typed')
            os.truncate(self.s('t2'), 10)
            self.assertEqual(self.getfattr(self.m('t2')).get('user.shmfs.format'), 'raw')

class SysvTypedTest(TypedCase):
    """Typed System V segments: layouts live in the daemon for the mount."""

    def setUp(self):
        super().setUp()
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)

    def make_segment(self, key, a, offset=0, size=None):
        size = size or offset + a.nbytes + 100
        self.sysvtool('create', key, str(size), '0644')
        path = self.m('sysv', key)
        # A key just removed and created again may take -o timeout to show.
        self.assertTrue(wait_until(lambda: os.path.exists(path), 3))
        data = bytearray(os.urandom(size))
        data[offset:offset + a.nbytes] = a.tobytes()
        path = self.m('sysv', key)
        with open(path, 'r+b', buffering=0) as f:
            f.write(data)
        return path

    def test_typed_segment(self):
        a = isio.sample_pixels('int32', (12, 10), seed=7)
        seg = self.make_segment('0x00001234', a, 40)
        self.assertFalse(os.path.exists(seg + '.fits'))
        self.setfattr(seg, 'type', 'LONG')
        self.setfattr(seg, 'offset', '40')
        self.setfattr(seg, 'shape', '12,10')
        self.assertIn('0x00001234.fits', os.listdir(self.m('sysv')))
        self.assert_fitsverify(seg + '.fits')
        self.assert_astropy_pixels(seg + '.fits', a)
        self.assert_cfitsio_pixels(seg + '.fits', a)
        attrs = self.getfattr(seg)
        self.assertEqual(attrs.get('user.shmfs.format'), 'typed', attrs)
        self.assertEqual(attrs.get('user.shmfs.type'), 'int32', attrs)
        self.assertEqual(attrs.get('user.shmfs.shape'), '12,10', attrs)
        # Writes through the view land in the segment.
        hlen = isio.fits_header_cards(self.read(seg + '.fits'))[0]
        new = (a // 3).astype(np.int32)
        with open(seg + '.fits', 'r+b', buffering=0) as f:
            f.seek(hlen)
            f.write(isio.fits_data_bytes(new))
        self.assertEqual(self.sysvtool('read', '0x00001234', '40', str(a.nbytes), text=False),
                         new.tobytes())
        # A private segment, by id.
        b = isio.sample_pixels('complex64', (3, 3), seed=8)
        shmid = int(self.sysvtool('private', str(b.nbytes), '0600'))
        with open(self.m('sysv', f'id-{shmid}'), 'r+b', buffering=0) as f:
            f.write(b.tobytes())
        self.setfattr(self.m('sysv', f'id-{shmid}'), 'type', 'COMPLEX')
        self.setfattr(self.m('sysv', f'id-{shmid}'), 'shape', '3,3')
        self.assert_astropy_pixels(self.m('sysv', f'id-{shmid}.fits'), b)
        self.assert_fitsverify(self.m('sysv', f'id-{shmid}.fits'))

    def test_refused_layouts_and_life_of_the_mount(self):
        a = isio.sample_pixels('uint8', (100,))
        seg = self.make_segment('0x00004321', a, size=100)
        self.assertEqual(self.getfattr(seg).get('user.shmfs.format'), 'raw')
        self.setfattr_fails(seg, 'type', 'nonsense')
        self.setfattr(seg, 'type', 'uint8')
        self.setfattr_fails(seg, 'shape', '101')
        self.setfattr_fails(seg, 'shape', '10,11')
        self.assertFalse(os.path.exists(seg + '.fits'))
        self.setfattr(seg, 'shape', '10,10')
        self.assert_astropy_pixels(seg + '.fits', a.reshape(10, 10))
        self.setfattr_fails(seg, 'offset', '1')
        # The layout lives as long as the mount: gone after a remount.
        self.remount()
        self.assertFalse(os.path.exists(seg + '.fits'))
        self.assertEqual(self.getfattr(seg).get('user.shmfs.format'), 'raw')
        self.assertNotIn('0x00004321.fits', os.listdir(self.m('sysv')))
        # ... and as long as the segment.
        self.setfattr(seg, 'type', 'uint8')
        self.setfattr(seg, 'shape', '100')
        self.assertTrue(os.path.exists(seg + '.fits'))
        self.sysvtool('rm', '0x00004321')
        self.assertTrue(wait_until(lambda: not os.path.exists(seg + '.fits'), 3))
        self.make_segment('0x00004321', a, size=100)      # a new segment, same key
        self.assertFalse(os.path.exists(seg + '.fits'), 'a new segment has no layout')

    def test_writable_opens_while_programs_read_the_view(self):
        """A program writes the view of a typed segment through read-write
        opens while three programs open and read it as fast as they can:
        every open of all of them succeeds (the writer's open is given a
        node of its own, under the segment's one name, as for POSIX
        views). A segment has no frame counter: what a reader copies while
        a frame is written back may be part old, part new."""
        a = np.zeros((128, 256), np.float32)
        seg = self.make_segment('0x00001234', a, 0, a.nbytes)
        self.setfattr(seg, 'type', 'FLOAT')
        self.setfattr(seg, 'shape', '256,128')
        view = seg + '.fits'
        readers = []
        for _ in range(3):
            reader = subprocess.Popen([sys.executable, '-c', READER, view], text=True,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self.defer(lambda reader=reader: (reader.kill(), reader.wait()))
            self.assertEqual(reader.stdout.readline().strip(), 'ready')
            readers.append(reader)
        hlen = isio.fits_header_cards(self.read(view))[0]
        failed = []
        for i in range(100):
            try:
                with open(view, 'r+b', buffering=0) as f:
                    f.seek(hlen)
                    f.write(np.full(a.shape, i, '>f4').tobytes())
            except OSError as e:
                failed.append((i, e.strerror))
        self.assertEqual(failed, [])
        for reader in readers:
            reads, *bad = reader.communicate(input='\n', timeout=30)[0].split()
            self.assertGreater(int(reads), 0)
            self.assertEqual(bad, [])
        self.assertEqual(self.sysvtool('read', '0x00001234', '0', str(a.nbytes), text=False),
                         np.full(a.shape, 99, np.float32).tobytes())


# Open, read whole and close argv[1] until a line comes on stdin; print the
# reads, then the errnos of the opens and reads that failed.
READER = r'''
import select, sys
n, bad = 0, []
print('ready', flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    try:
        with open(sys.argv[1], 'rb') as f:
            f.read()
        n += 1
    except OSError as e:
        bad.append(str(e.errno))
print(n, *bad)
'''


if __name__ == '__main__':
    unittest.main()
