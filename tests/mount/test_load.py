"""test_load.py - issue 5: loading by copying. `cp image.fits MOUNT/X.fits`
creates stream X as ImageStreamIO's own create leaves it, updates it in
place as one frame (a process that had it mapped sees the frame, a reader
blocked on a semaphore wakes), or replaces it when the shape or type
differs; malformed or truncated copies fail the close and leave SOURCE byte
for byte as it was. `cp vol.mrc MOUNT/IMODShrMem_KB_N.mrc` fills the IMOD
file. Files are written by astropy, fpack and mrcfile, read back from
SOURCE directly and through the views."""

import errno
import io
import os
import signal
import struct
import subprocess
import sys
import time
import unittest

import mrcfile
import numpy as np
from astropy.io import fits

from harness import MountTestCase, wait_until
import isio


# numpy dtype written by astropy -> (ImageStreamIO datatype code, BITPIX, BZERO)
TYPES = {
    'uint8': (1, 8, None), 'int8': (2, 8, -128), 'uint16': (3, 16, 32768),
    'int16': (4, 16, None), 'uint32': (5, 32, 2147483648), 'int32': (6, 32, None),
    'uint64': (7, 64, 9223372036854775808), 'int64': (8, 64, None),
    'float32': (9, -32, None), 'float64': (10, -64, None),
}
SHAPES = [(7,), (5, 3), (4, 3, 2)]   # numpy shapes: NAXIS1 last


def card(key, value=None, comment=''):
    """One 80-character header card; VALUE already in FITS notation."""
    if value is None:
        return key.ljust(80)[:80]
    text = f'{key:<8}= {value:>20}'
    if comment:
        text += f' / {comment}'
    return text.ljust(80)[:80]


def raw_fits(cards, data=b'', end=True, pad=True):
    """A FITS file made by hand from CARDS (texts) and DATA bytes: for the
    headers no writer library would produce."""
    head = ''.join(cards) + (card('END') if end else '')
    head = head.ljust((len(head) + 2879) // 2880 * 2880)
    if pad and data:
        data = data + bytes(-len(data) % 2880)
    return head.encode('ascii') + data


def compressed(values):
    """A GZIP tile-compressed FITS file (an 8 x 8 int16 image) with the
    values of its table's header cards named in VALUES (texts) replaced."""
    out = io.BytesIO()
    image = np.arange(64, dtype='>i2').reshape(8, 8)
    fits.HDUList([fits.PrimaryHDU(),
                  fits.CompImageHDU(image, compression_type='GZIP_1')]).writeto(out)
    data = bytearray(out.getvalue())
    for key, value in values.items():
        at = data.index(f'{key:<8}= '.encode(), 2880)
        data[at:at + 80] = card(key, value).encode()
    return bytes(data)


def stream_keywords(path, o, nbkw):
    """{name: (type, value, comment)} of the keyword slots of a stream file."""
    out = {}
    with open(path, 'rb') as f:
        f.seek(o['keywords'])
        raw = f.read(nbkw * isio.KEYWORD_SIZE)
    for i in range(nbkw):
        slot = raw[i * 128:(i + 1) * 128]
        name = slot[:16].split(b'\0')[0].decode()
        kind = chr(slot[16])
        if kind == 'L':
            value = struct.unpack_from('q', slot, 24)[0]
        elif kind == 'D':
            value = struct.unpack_from('d', slot, 24)[0]
        elif kind == 'S':
            value = slot[24:40].split(b'\0')[0].decode()
        else:
            continue
        out[name] = (kind, value, slot[48:128].split(b'\0')[0].decode())
    return out


def meta(path):
    with open(path, 'rb') as f:
        return f.read(isio.METADATA_SIZE)


def source_snapshot(path):
    """Everything in directory PATH: {name: (inode, mode, bytes or link target)}."""
    snap = {}
    for name in sorted(os.listdir(path)):
        p = os.path.join(path, name)
        st = os.lstat(p)
        if os.path.islink(p):
            snap[name] = (st.st_ino, st.st_mode, os.readlink(p))
        else:
            with open(p, 'rb') as f:
                snap[name] = (st.st_ino, st.st_mode, f.read())
    return snap


class LoadCase(MountTestCase, isio.ViewChecks):

    def write_fits(self, name, data, header=None, hdus=None):
        """Write DATA (or the HDUList HDUS) with astropy into the work dir."""
        path = os.path.join(self.workdir, name)
        if hdus is None:
            hdu = fits.PrimaryHDU(data)
            for k, v in (header or {}).items():
                hdu.header[k] = v
            hdus = fits.HDUList([hdu])
        hdus.writeto(path, overwrite=True)
        return path

    def cp(self, src, name):
        self.check(['cp', src, self.m(name)])

    def assert_stream(self, name, a, dtype_code):
        """SOURCE/NAME.im.shm is a stream as ImageStreamIO's create leaves it,
        holding native array A (numpy shape reversed = size[])."""
        path = self.s(name + '.im.shm')
        st = os.stat(path)
        m = meta(path)
        dims = tuple(reversed(a.shape))
        nbkw = struct.unpack_from('H', m, isio.OFF_NBKW)[0]
        o = isio.layout(dtype_code, dims, nbkw)
        self.assertEqual(m[:32].rstrip(b'\0'), b'2.00')
        self.assertEqual(m[32:112].split(b'\0')[0].decode(), name)
        self.assertEqual(m[isio.OFF_NAXIS], len(dims))
        self.assertEqual(struct.unpack_from('3I', m, isio.OFF_SIZE)[:len(dims)], dims)
        self.assertEqual(struct.unpack_from('Q', m, isio.OFF_NELEMENT)[0], a.size)
        self.assertEqual(m[isio.OFF_DATATYPE], dtype_code)
        self.assertEqual(struct.unpack_from('Q', m, isio.OFF_IMDATAMEMSIZE)[0], a.nbytes)
        self.assertEqual(struct.unpack_from('b', m, isio.OFF_LOCATION)[0], -1)
        self.assertEqual(m[isio.OFF_SHARED], 1)
        self.assertEqual(struct.unpack_from('H', m, isio.OFF_SEM)[0], 10)
        self.assertEqual(struct.unpack_from('H', m, isio.OFF_NBPROCTRACE)[0], 10)
        self.assertEqual(struct.unpack_from('Q', m, isio.OFF_INODE)[0], st.st_ino)
        self.assertEqual(st.st_size, o['size'], 'the size the fields imply')
        self.assertEqual(st.st_mode & 0o777, 0o666)
        for off in (isio.OFF_CREATIONTIME, isio.OFF_WRITETIME):
            sec = struct.unpack_from('q', m, off)[0]
            self.assertLess(abs(sec - time.time()), 600, 'times are now')
        self.assertGreater(struct.unpack_from('i', m, isio.OFF_CREATORPID)[0], 0)
        self.assertEqual(isio.read_pixels(path, o), np.ascontiguousarray(a).tobytes())
        s = isio.Stream(path, o)   # every semaphore initialised: sem_getvalue works
        try:
            self.assertEqual(len(s.sems), 10)
            for sem in s.sems:
                self.assertGreaterEqual(sem.value(), 0)
        finally:
            s.close()
        return o, nbkw


class RoundTripTest(LoadCase):
    """Every BITPIX/BZERO combination, 1-3 axes: astropy writes, cp loads,
    SOURCE holds the stream, the view reads back the same data."""

    def test_every_type_and_axis_count(self):
        for tname, (code, bitpix, bzero) in TYPES.items():
            for shape in SHAPES:
                name = f'{tname}_{len(shape)}'
                with self.subTest(type=tname, naxis=len(shape)):
                    a = isio.sample_pixels(code, tuple(reversed(shape)), seed=len(shape))
                    a = np.nan_to_num(a) if a.dtype.kind == 'f' else a
                    path = self.write_fits(name + '.fits', a)
                    with fits.open(path) as h:   # astropy wrote what we mean
                        self.assertEqual(h[0].header['BITPIX'], bitpix)
                        self.assertEqual(h[0].header.get('BZERO'), bzero)
                    self.cp(path, name + '.fits')
                    o, nbkw = self.assert_stream(name, a, code)
                    self.assertEqual(isio.read_state(self.s(name + '.im.shm'))['cnt0'], 1)
                    self.assert_astropy_pixels(self.m(name + '.fits'), a)
                    self.assert_fitsverify(self.m(name + '.fits'))

    def test_scaled_integers_become_float(self):
        raw = np.arange(12, dtype='>i2').reshape(3, 4)
        path = os.path.join(self.workdir, 'scaled.fits')
        with open(path, 'wb') as f:
            f.write(raw_fits([card('SIMPLE', 'T'), card('BITPIX', '16'), card('NAXIS', '2'),
                              card('NAXIS1', '4'), card('NAXIS2', '3'),
                              card('BSCALE', '0.5'), card('BZERO', '10.0')], raw.tobytes()))
        self.cp(path, 'scaled.fits')
        want = (raw.astype(np.float32) * 0.5 + 10).astype(np.float32)
        self.assert_stream('scaled', want, 9)
        self.assert_astropy_pixels(self.m('scaled.fits'), want)

    def test_keywords(self):
        a = np.arange(6, dtype=np.float32).reshape(2, 3)
        long = 'a string longer than fifteen characters'
        path = self.write_fits('kw.fits', a, {
            'EXPTIME': (0.25, 'exposure in seconds'), 'GAIN': (3, 'e-/ADU'),
            'OBSERVER': ('short', 'who'), 'FILTER': long, 'FLAG': True, 'NOFLAG': False})
        self.cp(path, 'kw.fits')
        o, nbkw = self.assert_stream('kw', a, 9)
        kw = stream_keywords(self.s('kw.im.shm'), o, nbkw)
        self.assertEqual(kw['EXPTIME'][:2], ('D', 0.25))
        self.assertEqual(kw['EXPTIME'][2], 'exposure in seconds')
        self.assertEqual(kw['GAIN'][:2], ('L', 3))
        self.assertEqual(kw['OBSERVER'][:2], ('S', 'short'))
        self.assertEqual(kw['FLAG'][:2], ('L', 1))
        self.assertEqual(kw['NOFLAG'][:2], ('L', 0))
        # A string over 15 characters: its start in the value, whole in the comment.
        self.assertEqual(kw['FILTER'][0], 'S')
        self.assertEqual(kw['FILTER'][1], long[:15])
        self.assertIn(long, kw['FILTER'][2])
        for structural in ('SIMPLE', 'BITPIX', 'NAXIS', 'NAXIS1', 'NAXIS2', 'EXTEND', 'END'):
            self.assertNotIn(structural, kw)
        # The view shows them as cards again.
        with fits.open(self.m('kw.fits')) as h:
            self.assertEqual(h[0].header['EXPTIME'], 0.25)
            self.assertEqual(h[0].header['GAIN'], 3)
            self.assertEqual(h[0].header['OBSERVER'], 'short')

    def test_first_extension_when_primary_is_empty(self):
        a = np.arange(20, dtype=np.int16).reshape(4, 5)
        path = self.write_fits('ext.fits', None,
                               hdus=fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(a)]))
        self.cp(path, 'ext.fits')
        self.assert_stream('ext', a, 4)

    def test_tile_compressed_file_loads(self):
        a = (np.arange(64 * 48) % 1000).astype(np.int16).reshape(48, 64)
        path = self.write_fits('comp.fits', a)
        self.check(['fpack', path])
        self.assertTrue(os.path.exists(path + '.fz'))
        self.cp(path + '.fz', 'comp.fits')
        self.assert_stream('comp', a, 4)
        self.assert_astropy_pixels(self.m('comp.fits'), a)

    def test_dd_and_shell_redirection_load_too(self):
        a = np.arange(30, dtype=np.uint16).reshape(5, 6)
        path = self.write_fits('dd.fits', a)
        self.check(['dd', f'if={path}', f'of={self.m("dd.fits")}', 'bs=1000', 'status=none'])
        self.assert_stream('dd', a, 3)
        b = a[::-1].copy()
        path = self.write_fits('dd2.fits', b)
        self.check(['sh', '-c', f'cat {path} > {self.m("dd.fits")}'])
        self.assert_stream('dd', b, 3)

class UserTest(LoadCase):
    mount_options = ['-o', 'allow_other']

    def test_loaded_by_a_user_belongs_to_the_user(self):
        from harness import ensure_user
        uid, gid = ensure_user('shmfs-test1')
        a = np.arange(4, dtype=np.float32)
        path = self.write_fits('user.fits', a)
        os.chmod(path, 0o644)
        os.chmod(self.workdir, 0o755)
        os.chmod(self.source, 0o1777)
        self.check(['cp', path, self.m('user.fits')], user='shmfs-test1')
        st = os.stat(self.s('user.im.shm'))
        self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
        self.assertEqual(st.st_mode & 0o777, 0o666)


class ViewAttributesTest(LoadCase):
    mount_options = ['-o', 'allow_other']

    def test_chmod_and_chown_of_a_view_change_its_object(self):
        from harness import ensure_user
        uid, gid = ensure_user('shmfs-test1')
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (4, 4))
        self.check(['chmod', '640', self.m('cam.fits')])
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_mode & 0o777, 0o640)
        self.assertEqual(os.stat(self.m('cam.fits')).st_mode & 0o777, 0o640)
        self.check(['chown', f'{uid}:{gid}', self.m('cam.fits')])
        st = os.stat(self.s('cam.im.shm'))
        self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
        # The owner may chmod; anyone else may not (the kernel checks).
        self.check(['chmod', '600', self.m('cam.fits')], user='shmfs-test1')
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_mode & 0o777, 0o600)
        self.check_fails(['chmod', '666', self.m('cam.fits')], errno.EPERM, user='nobody')
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_mode & 0o777, 0o600)


class RemoveTest(LoadCase):
    """rm of a view name removes its object only when the view exists."""

    def test_rm_of_a_name_with_no_view_removes_nothing(self):
        with open(self.s('junk.im.shm'), 'wb') as f:   # not a valid stream: no view
            f.write(b'\0' * 1000)
        self.check_fails(['rm', self.m('junk.fits')], errno.ENOENT)
        self.check(['rm', '-f', self.m('junk.fits')])
        self.assertTrue(os.path.exists(self.s('junk.im.shm')))
        with open(self.s('IMODShrMem_64_x'), 'wb') as f:   # no MRC header: no view
            f.write(b'\0' * 100)
        self.check_fails(['rm', self.m('IMODShrMem_64_x.mrc')], errno.ENOENT)
        self.assertTrue(os.path.exists(self.s('IMODShrMem_64_x')))

    def test_rm_of_a_stream_view_and_of_a_typed_view(self):
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (4, 4))
        self.check(['rm', self.m('cam.fits')])
        self.assertFalse(os.path.exists(self.s('cam.im.shm')))
        with open(self.s('img'), 'wb') as f:
            f.write(b'\0' * 64)
        self.check(['setfattr', '-n', 'user.shmfs.type', '-v', 'float32', self.m('img')])
        self.check(['setfattr', '-n', 'user.shmfs.shape', '-v', '4,4', self.m('img')])
        self.assertTrue(os.path.exists(self.m('img.fits')))
        self.check_fails(['rm', self.m('img.fits')], errno.EPERM)
        self.assertTrue(os.path.exists(self.s('img')))
        self.assert_log(r'img\.fits: a typed view is removed with its object')


class UpdateTest(LoadCase):
    """A stream that exists: same shape and type, one frame in place;
    otherwise a new file."""

    def test_in_place_update_seen_by_a_mapping_and_wakes_a_reader(self):
        first = np.zeros((8, 8), np.float32)
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (8, 8), data=first.tobytes(),
                         cnt0=41)
        ino = os.stat(self.s('cam.im.shm')).st_ino
        o = isio.stream_layout(self.s('cam.im.shm'))
        # A reader mapped the stream before the copy, through the mount.
        fd = os.open(self.m('cam.im.shm'), os.O_RDONLY)
        import mmap
        mapped = mmap.mmap(fd, o['size'], mmap.MAP_SHARED, mmap.PROT_READ)
        with isio.waiting(self.s('cam.im.shm'), 2, 20) as waiter:
            new = np.arange(64, dtype=np.float32).reshape(8, 8)
            self.cp(self.write_fits('new.fits', new), 'cam.fits')
            out, err = waiter.communicate(timeout=10)
        self.assertEqual(waiter.returncode, 0, f'{out} {err}')
        self.assertEqual(out.split(), ['woken', '42'])
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino, 'same inode')
        self.assertEqual(mapped[o['data']:o['data'] + o['datasize']], new.tobytes())
        self.assertEqual(struct.unpack_from('Q', mapped, isio.OFF_CNT0)[0], 42)
        self.assertEqual(mapped[isio.OFF_WRITE], 0)
        mapped.close()
        os.close(fd)
        self.assert_astropy_pixels(self.m('cam.fits'), new)

    def test_other_shape_or_type_replaces_the_file(self):
        isio.make_stream(self.s('cam.im.shm'), 'cam', 9, (8, 8), cnt0=5)
        ino = os.stat(self.s('cam.im.shm')).st_ino
        for a, code in ((np.ones((4, 16), np.float32), 9), (np.ones((4, 16), np.int32), 6)):
            self.cp(self.write_fits('other.fits', a), 'cam.fits')
            self.assertNotEqual(os.stat(self.s('cam.im.shm')).st_ino, ino, 'a new file')
            ino = os.stat(self.s('cam.im.shm')).st_ino
            self.assert_stream('cam', a, code)
            self.assert_astropy_pixels(self.m('cam.fits'), a)
        self.assertEqual(sorted(os.listdir(self.source)), ['cam.im.shm'], 'no leftovers')

    def test_copy_through_a_stream_link_loads_its_target(self):
        isio.make_stream(self.s('imcam.im.shm'), 'imcam', 9, (4, 4))
        os.symlink('imcam.im.shm', self.s('wfsim.im.shm'))
        ino = os.stat(self.s('imcam.im.shm')).st_ino
        a = np.full((4, 4), 7, np.float32)
        self.cp(self.write_fits('a.fits', a), 'wfsim.fits')
        self.assertEqual(os.readlink(self.s('wfsim.im.shm')), 'imcam.im.shm')
        self.assertEqual(os.stat(self.s('imcam.im.shm')).st_ino, ino)
        self.assert_astropy_pixels(self.m('imcam.fits'), a)


class RefusalTest(LoadCase):
    """Bad copies: the close fails, one log line names the file, SOURCE is
    byte for byte as before, and nothing temporary is left."""

    GOOD = [card('SIMPLE', 'T'), card('BITPIX', '-32'), card('NAXIS', '2'),
            card('NAXIS1', '4'), card('NAXIS2', '4')]
    DATA = np.ones(16, '>f4').tobytes()

    def bad_inputs(self):
        g = self.GOOD
        return {
            'bad card': raw_fits(g[:2] + [card('NAXIS', "'two'")] + g[3:], self.DATA),
            'BITPIX 12': raw_fits([g[0], card('BITPIX', '12')] + g[2:], self.DATA),
            'NAXIS 0': raw_fits([g[0], g[1], card('NAXIS', '0')]),
            'NAXIS 4': raw_fits([g[0], g[1], card('NAXIS', '4')] + g[3:] +
                                [card('NAXIS3', '1'), card('NAXIS4', '1')], self.DATA),
            'overflowing sizes': raw_fits([g[0], g[1], card('NAXIS', '3'),
                                           card('NAXIS1', '4294967296'),
                                           card('NAXIS2', '4294967296'),
                                           card('NAXIS3', '4294967296')], self.DATA),
            'no END': raw_fits(g, self.DATA, end=False),
            'short data': raw_fits(g, self.DATA, pad=False)[:2880 + 40],
            'not FITS at all': b'hello world\n' * 500,
            'empty': b'',
            # what fuzz_load found: one '-' in the compressed image's table's
            # NAXIS1 made CFITSIO allocate by an unread TFIELDS (gigabytes)
            'table NAXIS1 not an integer': compressed({'NAXIS1': '-' + ' ' * 18 + '8'}),
            'TFIELDS over 999': compressed({'TFIELDS': '1000'}),
            # a few KB claiming tiles of 2^25 pixels: EFBIG
            'tiles too large': compressed({'ZNAXIS1': '8192', 'ZTILE1': '8192',
                                           'ZNAXIS2': '4096', 'ZTILE2': '4096'}),
        }

    def assert_refused(self, name, content, existing):
        before = source_snapshot(self.source)
        path = os.path.join(self.workdir, 'bad.fits')
        with open(path, 'wb') as f:
            f.write(content)
        r = self.check_fails(['cp', path, self.m(name + '.fits')])
        self.assertTrue(any(os.strerror(e) in r.stderr
                            for e in (errno.EINVAL, errno.EIO, errno.EFBIG)), r.stderr)
        self.assertEqual(source_snapshot(self.source), before, 'SOURCE changed')
        self.assert_log(rf'{name}\.fits: not loaded')
        if not existing:
            self.assertFalse(os.path.exists(self.m(name + '.fits')))

    def test_malformed_input_creates_nothing(self):
        for what, content in self.bad_inputs().items():
            with self.subTest(what=what):
                self.assert_refused('new', content, existing=False)

    def test_malformed_input_keeps_the_old_stream(self):
        a = isio.sample_pixels(9, (4, 4))
        isio.make_stream(self.s('old.im.shm'), 'old', 9, (4, 4), data=a.tobytes(), cnt0=7)
        for what, content in self.bad_inputs().items():
            with self.subTest(what=what):
                self.assert_refused('old', content, existing=True)
                self.assertEqual(isio.read_state(self.s('old.im.shm'))['cnt0'], 7)

    KILLED = r'''
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
data = open(sys.argv[2], 'rb').read()
os.write(fd, data[:len(data) // 2])
print('half', flush=True)
sys.stdin.readline()
'''

    def test_copy_killed_midway(self):
        a = np.arange(256 * 256, dtype=np.float32).reshape(256, 256)
        src = self.write_fits('big.fits', a)
        for existing in (False, True):
            with self.subTest(existing=existing):
                if existing:
                    isio.make_stream(self.s('k.im.shm'), 'k', 9, (256, 256), cnt0=3)
                before = source_snapshot(self.source)
                p = subprocess.Popen([sys.executable, '-c', self.KILLED, self.m('k.fits'), src],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                self.assertEqual(p.stdout.readline().strip(), 'half')
                # Readers meanwhile see the old frame, or no stream.
                self.assertEqual(source_snapshot(self.source), before)
                p.send_signal(signal.SIGKILL)
                p.wait()
                self.assertTrue(wait_until(lambda: 'k.fits: not loaded' in self.log_text(), 5),
                                self.log_text())
                self.assertEqual(source_snapshot(self.source), before, 'SOURCE changed')

    def test_full_dev_shm_is_enospc_and_keeps_everything(self):
        small = self.tmpfs_dir('64k')
        self.remount(source=small)
        a = np.zeros((128, 128), np.float32)   # 64 KiB of pixels: cannot fit
        before = source_snapshot(small)
        r = self.check_fails(['cp', self.write_fits('full.fits', a), self.m('full.fits')])
        self.assertIn(os.strerror(errno.ENOSPC), r.stderr)
        self.assertEqual(source_snapshot(small), before)


def mrc_write(path, data, mode_dtype=None):
    with mrcfile.new(path, overwrite=True) as m:
        m.set_data(data if mode_dtype is None else data.astype(mode_dtype))
        m.voxel_size = 1.5


class MrcTest(LoadCase):

    def test_mrc_creates_and_fills_imod_files(self):
        for dtype in (np.float32, np.int16, np.uint8, np.uint16):
            with self.subTest(dtype=np.dtype(dtype).name):
                name = f'IMODShrMem_64_{np.dtype(dtype).name}'
                a = (np.arange(4 * 10 * 12) % 200).astype(dtype).reshape(4, 10, 12)
                path = os.path.join(self.workdir, 'vol.mrc')
                mrc_write(path, a)
                self.cp(path, name + '.mrc')
                st = os.stat(self.s(name))
                self.assertEqual(st.st_size, 64 * 1024, 'capacity from the name')
                with mrcfile.open(path) as m:   # mrcfile may widen uint8 to uint16
                    stored = m.data.copy()
                with open(self.s(name), 'rb') as f:
                    raw = f.read()
                nx, ny, nz = struct.unpack_from('3i', raw, 0)
                self.assertEqual((nx, ny, nz), (12, 10, 4))
                self.assertEqual(raw[2048:2048 + stored.nbytes], stored.tobytes())
                with mrcfile.open(self.m(name + '.mrc')) as m:
                    self.assertTrue(np.array_equal(m.data, stored))
                # Loaded again in place: the same file.
                b = a[::-1].copy()
                mrc_write(path, b)
                self.cp(path, name + '.mrc')
                self.assertEqual(os.stat(self.s(name)).st_ino, st.st_ino)
                with mrcfile.open(self.m(name + '.mrc')) as m:
                    self.assertTrue(np.array_equal(m.data, b))

    def test_mrc_too_big_is_enospc(self):
        a = np.zeros((4, 64, 64), np.float32)   # 64 KiB of data + 2 KiB of header
        path = os.path.join(self.workdir, 'vol.mrc')
        mrc_write(path, a)
        r = self.check_fails(['cp', path, self.m('IMODShrMem_64_big.mrc')])
        self.assertIn(os.strerror(errno.ENOSPC), r.stderr)
        self.assert_log(r'IMODShrMem_64_big.*66 ?K')
        self.assertEqual(os.listdir(self.source), [])

    def test_not_an_mrc_is_einval(self):
        path = os.path.join(self.workdir, 'junk.mrc')
        with open(path, 'wb') as f:
            f.write(b'\1' * 4000)
        r = self.check_fails(['cp', path, self.m('IMODShrMem_64_junk.mrc')])
        self.assertIn(os.strerror(errno.EINVAL), r.stderr)
        self.assertEqual(os.listdir(self.source), [])


if __name__ == '__main__':
    unittest.main()
