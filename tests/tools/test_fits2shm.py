"""test_fits2shm.py - fits2shm, the drop-in for cacao's Fits2shm: a file named
on the command line or in ./conf/shmim_STREAM.name.txt (-c) loaded into
$MILK_SHM_DIR/PREFIXSTREAM.im.shm, skipped when neither the file nor the
stream changed, -f and -r, and the bookkeeping files cacao's scripts read.
The stream is checked byte by byte from its file (isio.py), not through
fits2shm's own library."""

import os
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np
from astropy.io import fits

import isio

TOOLS = os.environ.get('SHMFS_TOOLS', '')
FITS2SHM = os.path.join(TOOLS, 'fits2shm')


def write_fits(path, data, cards=()):
    """Write the numpy array DATA as the primary image of PATH, with CARDS
    (keyword, value, comment) in its header."""
    hdu = fits.PrimaryHDU(data)
    for key, value, comment in cards:
        hdu.header[key] = (value, comment)
    hdu.writeto(path, overwrite=True)


def read_stream(path):
    """Everything in a stream file: name, dims, datatype, cnt0, inode field,
    pixels (numpy, shape reversed(dims)) and keywords {name: (type, value)}."""
    with open(path, 'rb') as f:
        raw = f.read()
    o = isio.stream_layout(path)
    naxis = raw[isio.OFF_NAXIS]
    dims = struct.unpack_from('3I', raw, isio.OFF_SIZE)[:naxis]
    datatype = raw[isio.OFF_DATATYPE]
    pixels = np.frombuffer(raw[o['data']:o['data'] + o['datasize']],
                           dtype=isio.dtype_of(datatype)).reshape(tuple(reversed(dims)))
    keywords = {}
    nbkw = struct.unpack_from('H', raw, isio.OFF_NBKW)[0]
    for i in range(nbkw):
        slot = raw[o['keywords'] + i * isio.KEYWORD_SIZE:][:isio.KEYWORD_SIZE]
        kind = chr(slot[16])
        name = slot[:16].split(b'\0')[0].decode()
        if kind == 'L':
            keywords[name] = ('L', struct.unpack_from('q', slot, 24)[0])
        elif kind == 'D':
            keywords[name] = ('D', struct.unpack_from('d', slot, 24)[0])
        elif kind == 'S':
            keywords[name] = ('S', slot[24:40].split(b'\0')[0].decode())
    return {'version': raw[:32].rstrip(b'\0'),
            'name': raw[isio.OFF_NAME:isio.OFF_NAME + 80].split(b'\0')[0].decode(),
            'dims': dims, 'datatype': datatype,
            'cnt0': struct.unpack_from('Q', raw, isio.OFF_CNT0)[0],
            'write': raw[isio.OFF_WRITE],
            'inode': struct.unpack_from('Q', raw, isio.OFF_INODE)[0],
            'size': len(raw), 'layout_size': o['size'],
            'pixels': pixels, 'keywords': keywords, 'raw': raw}


class Fits2shmTest(unittest.TestCase):

    def setUp(self):
        if not os.path.exists(FITS2SHM):
            self.fail(f'no fits2shm at {FITS2SHM!r}: set SHMFS_TOOLS (run through ctest)')
        self.work = tempfile.mkdtemp(prefix='fits2shm-work-')
        self.addCleanup(shutil.rmtree, self.work, ignore_errors=True)
        self.shm = tempfile.mkdtemp(prefix='fits2shm-', dir='/dev/shm')
        self.addCleanup(shutil.rmtree, self.shm, ignore_errors=True)
        self.env = dict(os.environ, MILK_SHM_DIR=self.shm)
        self.image = np.arange(16 * 8, dtype=np.float32).reshape(8, 16) * 0.5 - 3.0
        self.cards = [('EXPTIME', 1.5, 'exposure [s]'), ('NFRAMES', 12, 'frames'),
                      ('OBJECT', 'star', 'target')]

    # -- helpers --

    def w(self, *parts):
        return os.path.join(self.work, *parts)

    def run_tool(self, *args, env=None, ok=True):
        r = subprocess.run([FITS2SHM, *args], cwd=self.work, env=env or self.env,
                           capture_output=True, text=True, timeout=60)
        if ok:
            self.assertEqual(r.returncode, 0, f'fits2shm {args}: {r.stderr}')
            self.assertEqual(r.stderr, '', f'fits2shm {args} wrote to stderr')
        return r

    def assert_one_line_error(self, r, *words):
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertTrue(r.stderr.startswith('fits2shm: '), r.stderr)
        self.assertEqual(r.stderr.count('\n'), 1, r.stderr)
        for word in words:
            self.assertIn(word, r.stderr)

    def stat_line(self, path):
        """cacao's record of a file: coreutils `stat -L --format "%n %s %y"`."""
        r = subprocess.run(['stat', '-L', '--format', '%n %s %y', path], cwd=self.work,
                           capture_output=True, text=True, check=True)
        return r.stdout

    def read(self, *parts):
        with open(self.w(*parts)) as f:
            return f.read()

    def markers(self, stream):
        """The marker files of STREAM present in ./loadedSM/."""
        names = ('new', 'kept', 'missing', 'FITSsame', 'FITSchanged', 'SMsame', 'SMchanged')
        return {m for m in names if os.path.exists(self.w('loadedSM', f'{stream}.{m}'))}

    def stream_path(self, name):
        return os.path.join(self.shm, name + '.im.shm')

    def bump_mtime(self, path, seconds=1):
        """Move PATH's modification time on, as a later write would (the
        kernel's clock is too coarse for two writes in a row to differ)."""
        st = os.stat(path)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1000000000))

    def assert_stream(self, name, image, cards=None):
        s = read_stream(self.stream_path(name))
        self.assertEqual(s['version'], b'2.00')
        self.assertEqual(s['name'], name)
        self.assertEqual(s['size'], s['layout_size'])
        self.assertEqual(s['dims'], tuple(reversed(image.shape)))
        self.assertEqual(s['pixels'].dtype, image.dtype)
        self.assertTrue(np.array_equal(s['pixels'], image), s['pixels'])
        self.assertEqual(s['write'], 0)
        self.assertEqual(s['inode'], os.stat(self.stream_path(name)).st_ino)
        for key, value, _ in (cards or []):
            self.assertIn(key, s['keywords'])
            kind = {int: 'L', float: 'D', str: 'S'}[type(value)]
            self.assertEqual(s['keywords'][key], (kind, value), key)
        for key in ('SIMPLE', 'BITPIX', 'NAXIS', 'NAXIS1', 'NAXIS2', 'EXTEND'):
            self.assertNotIn(key, s['keywords'])
        return s

    def load_first(self, stream='wfsref', fname='img.fits'):
        write_fits(self.w(fname), self.image, self.cards)
        self.run_tool(fname, stream)
        return read_stream(self.stream_path(stream))

    # -- option A: the file on the command line --

    def test_option_a_first_load(self):
        write_fits(self.w('img.fits'), self.image, self.cards)
        r = self.run_tool('img.fits', 'wfsref')
        self.assertEqual(r.stdout, '')
        s = self.assert_stream('wfsref', self.image, self.cards)
        self.assertEqual(s['datatype'], 9)
        self.assertEqual(s['cnt0'], 1)
        self.assertEqual(os.stat(self.stream_path('wfsref')).st_mode & 0o777, 0o666)

        self.assertEqual(self.read('conf', 'shmim_wfsref.name.txt'), 'img.fits\n')
        self.assertEqual(self.read('loadedSM', 'wfsref.FITSinfo'), self.stat_line('img.fits'))
        self.assertEqual(self.read('loadedSM', 'wfsref.SMinfo'),
                         self.stat_line(self.stream_path('wfsref')))
        self.assertFalse(os.path.exists(self.w('loadedSM', 'wfsref.FITSinfo.old')))
        self.assertFalse(os.path.exists(self.w('loadedSM', 'wfsref.SMinfo.old')))
        self.assertEqual(self.markers('wfsref'), {'new', 'missing', 'FITSchanged', 'SMchanged'})
        self.assertEqual(self.read('loadedSM', 'wfsref.imsize'), '16 8 \n')
        self.assertEqual(self.read('conf', 'shmim_wfsref.imsize.txt'), '16 8 \n')
        link = self.w('conf', 'shmim_wfsref.fits')
        self.assertTrue(os.path.islink(link))
        self.assertTrue(os.path.isabs(os.readlink(link)))
        self.assertTrue(os.path.samefile(link, self.w('img.fits')))

    def test_second_run_keeps_stream(self):
        first = self.load_first()
        st = os.stat(self.stream_path('wfsref'))
        fitsinfo = self.read('loadedSM', 'wfsref.FITSinfo')
        sminfo = self.read('loadedSM', 'wfsref.SMinfo')
        self.run_tool('img.fits', 'wfsref')
        second = read_stream(self.stream_path('wfsref'))
        st2 = os.stat(self.stream_path('wfsref'))
        self.assertEqual(st2.st_ino, st.st_ino)
        self.assertEqual(st2.st_mtime_ns, st.st_mtime_ns)
        self.assertEqual(second['cnt0'], first['cnt0'])
        self.assertEqual(second['raw'], first['raw'])
        self.assertEqual(self.markers('wfsref'), {'kept', 'FITSsame', 'SMsame'})
        self.assertEqual(self.read('loadedSM', 'wfsref.FITSinfo'), fitsinfo)
        self.assertEqual(self.read('loadedSM', 'wfsref.FITSinfo.old'), fitsinfo)
        self.assertEqual(self.read('loadedSM', 'wfsref.SMinfo'), sminfo)
        self.assertEqual(self.read('loadedSM', 'wfsref.SMinfo.old'), sminfo)
        self.assertEqual(self.read('conf', 'shmim_wfsref.imsize.txt'), '16 8 \n')

    def test_touched_file_reloads_in_place(self):
        first = self.load_first()
        ino = os.stat(self.stream_path('wfsref')).st_ino
        old_info = self.read('loadedSM', 'wfsref.FITSinfo')
        self.bump_mtime(self.w('img.fits'))
        self.run_tool('img.fits', 'wfsref')
        s = self.assert_stream('wfsref', self.image, self.cards)
        self.assertEqual(os.stat(self.stream_path('wfsref')).st_ino, ino)
        self.assertEqual(s['cnt0'], first['cnt0'] + 1)
        self.assertEqual(self.markers('wfsref'), {'new', 'FITSchanged', 'SMsame'})
        self.assertEqual(self.read('loadedSM', 'wfsref.FITSinfo.old'), old_info)
        self.assertEqual(self.read('loadedSM', 'wfsref.FITSinfo'), self.stat_line('img.fits'))

    def test_changed_pixels_reload(self):
        first = self.load_first()
        ino = os.stat(self.stream_path('wfsref')).st_ino
        image2 = (self.image * -2.0 + 7.0).astype(np.float32)
        cards2 = [('EXPTIME', 0.25, 'shorter'), ('NFRAMES', -3, 'frames'),
                  ('OBJECT', 'flat', 'target')]
        write_fits(self.w('img.fits'), image2, cards2)
        self.bump_mtime(self.w('img.fits'))
        self.run_tool('img.fits', 'wfsref')
        s = self.assert_stream('wfsref', image2, cards2)
        self.assertEqual(os.stat(self.stream_path('wfsref')).st_ino, ino)
        self.assertEqual(s['cnt0'], first['cnt0'] + 1)
        self.assertIn('new', self.markers('wfsref'))

    def test_new_shape_replaces_stream(self):
        self.load_first()
        ino = os.stat(self.stream_path('wfsref')).st_ino
        cube = (np.arange(5 * 4 * 3, dtype=np.uint16) * 1000 + 1).reshape(3, 4, 5)
        write_fits(self.w('img.fits'), cube)
        self.bump_mtime(self.w('img.fits'))
        self.run_tool('img.fits', 'wfsref')
        s = self.assert_stream('wfsref', cube)
        self.assertEqual(s['datatype'], 3)
        self.assertNotEqual(os.stat(self.stream_path('wfsref')).st_ino, ino)
        self.assertEqual(self.read('loadedSM', 'wfsref.imsize'), '5 4 3 \n')
        self.assertEqual(self.read('conf', 'shmim_wfsref.imsize.txt'), '5 4 3 \n')
        self.assertEqual(self.markers('wfsref'), {'new', 'FITSchanged', 'SMsame'})

    def test_other_file_name_reloads(self):
        self.load_first()
        shutil.copy2(self.w('img.fits'), self.w('copy.fits'))
        self.run_tool('copy.fits', 'wfsref')
        self.assertIn('FITSchanged', self.markers('wfsref'))
        self.assertIn('new', self.markers('wfsref'))
        self.assertEqual(self.read('conf', 'shmim_wfsref.name.txt'), 'copy.fits\n')
        self.assertTrue(os.path.samefile(self.w('conf', 'shmim_wfsref.fits'),
                                         self.w('copy.fits')))

    def test_load_through_the_fits_link(self):
        self.load_first()
        self.bump_mtime(self.w('img.fits'))
        self.run_tool('conf/shmim_wfsref.fits', 'wfsref')
        self.assertIn('new', self.markers('wfsref'))
        link = self.w('conf', 'shmim_wfsref.fits')
        self.assertTrue(os.path.islink(link))
        self.assertTrue(os.path.samefile(link, self.w('img.fits')))
        self.assertEqual(self.read('conf', 'shmim_wfsref.name.txt'), 'conf/shmim_wfsref.fits\n')
        self.run_tool('-r', 'conf/shmim_wfsref.fits', 'wfsref')
        self.assertTrue(os.path.samefile(link, self.w('img.fits')))
        self.assert_stream('wfsref', self.image, self.cards)

    def test_force(self):
        first = self.load_first()
        ino = os.stat(self.stream_path('wfsref')).st_ino
        self.run_tool('-f', 'img.fits', 'wfsref')
        s = self.assert_stream('wfsref', self.image, self.cards)
        self.assertEqual(s['cnt0'], first['cnt0'] + 1)
        self.assertEqual(os.stat(self.stream_path('wfsref')).st_ino, ino)
        self.assertEqual(self.markers('wfsref'), {'new', 'FITSsame', 'SMsame'})

    def test_remove_and_reload(self):
        self.load_first()
        ino = os.stat(self.stream_path('wfsref')).st_ino
        # Hold the old stream open: its inode cannot be handed out again.
        with open(self.stream_path('wfsref'), 'rb'):
            self.run_tool('-r', 'img.fits', 'wfsref')
        s = self.assert_stream('wfsref', self.image, self.cards)
        self.assertNotEqual(os.stat(self.stream_path('wfsref')).st_ino, ino)
        self.assertEqual(s['cnt0'], 1)
        # Everything kept about the stream was cleared: as on a first load.
        self.assertEqual(self.markers('wfsref'), {'new', 'missing', 'FITSchanged', 'SMchanged'})
        self.assertFalse(os.path.exists(self.w('loadedSM', 'wfsref.FITSinfo.old')))
        self.assertEqual(self.read('loadedSM', 'wfsref.imsize'), '16 8 \n')
        self.assertEqual(self.read('conf', 'shmim_wfsref.name.txt'), 'img.fits\n')

    def test_remove_with_bad_file_keeps_stream(self):
        first = self.load_first()
        with open(self.w('bad.fits'), 'wb') as f:
            f.write(b'not a FITS file at all' * 200)
        r = self.run_tool('-r', 'bad.fits', 'wfsref', ok=False)
        self.assert_one_line_error(r, 'bad.fits')
        self.assertEqual(read_stream(self.stream_path('wfsref'))['raw'], first['raw'])
        self.assertEqual(self.read('conf', 'shmim_wfsref.name.txt'), 'img.fits\n')

    # -- option B: the file name from ./conf --

    def test_option_b_with_prefix(self):
        os.mkdir(self.w('wfsref0'))
        write_fits(self.w('wfsref0', 'wfsref0_today.fits'), self.image, self.cards)
        os.mkdir(self.w('conf'))
        with open(self.w('conf', 'shmim_wfsref0.name.txt'), 'w') as f:
            f.write('./wfsref0/wfsref0_today.fits\n')
        self.run_tool('-c', '-p', 'aol8_', 'wfsref0')
        s = self.assert_stream('aol8_wfsref0', self.image, self.cards)
        self.assertFalse(os.path.exists(self.stream_path('wfsref0')))
        self.assertEqual(sorted(os.listdir(self.shm)), ['aol8_wfsref0.im.shm'])
        # The name file is the user's; the records go by the bare stream name.
        self.assertEqual(self.read('conf', 'shmim_wfsref0.name.txt'),
                         './wfsref0/wfsref0_today.fits\n')
        self.assertEqual(self.read('loadedSM', 'wfsref0.FITSinfo'),
                         self.stat_line('./wfsref0/wfsref0_today.fits'))
        self.assertEqual(self.read('loadedSM', 'wfsref0.SMinfo'),
                         self.stat_line(self.stream_path('aol8_wfsref0')))
        self.assertEqual(self.markers('wfsref0'), {'new', 'missing', 'FITSchanged', 'SMchanged'})
        self.assertEqual(self.read('conf', 'shmim_wfsref0.imsize.txt'), '16 8 \n')
        self.assertTrue(os.path.samefile(self.w('conf', 'shmim_wfsref0.fits'),
                                         self.w('wfsref0', 'wfsref0_today.fits')))
        self.assertFalse(any(n.startswith('aol8_') for n in os.listdir(self.w('loadedSM'))))

        self.run_tool('-c', '-p', 'aol8_', 'wfsref0')
        again = read_stream(self.stream_path('aol8_wfsref0'))
        self.assertEqual(again['cnt0'], s['cnt0'])
        self.assertEqual(self.markers('wfsref0'), {'kept', 'FITSsame', 'SMsame'})

        # Option B picks up a new name written into the name file.
        image2 = np.full((8, 16), 42.0, dtype=np.float32)
        write_fits(self.w('wfsref0', 'tomorrow.fits'), image2)
        with open(self.w('conf', 'shmim_wfsref0.name.txt'), 'w') as f:
            f.write('wfsref0/tomorrow.fits\n')
        self.run_tool('-c', '-p', 'aol8_', 'wfsref0')
        self.assert_stream('aol8_wfsref0', image2)
        self.assertIn('new', self.markers('wfsref0'))
        self.assertTrue(os.path.samefile(self.w('conf', 'shmim_wfsref0.fits'),
                                         self.w('wfsref0', 'tomorrow.fits')))

    def test_option_b_without_name_file(self):
        r = self.run_tool('-c', 'nostream', ok=False)
        self.assert_one_line_error(r, 'conf/shmim_nostream.name.txt')
        os.makedirs(self.w('conf'), exist_ok=True)
        with open(self.w('conf', 'shmim_nostream.name.txt'), 'w') as f:
            f.write('\n')
        r = self.run_tool('-c', 'nostream', ok=False)
        self.assert_one_line_error(r, 'conf/shmim_nostream.name.txt')
        self.assertEqual(os.listdir(self.shm), [])

    # -- the stream side --

    def test_missing_stream_is_recreated(self):
        self.load_first()
        os.unlink(self.stream_path('wfsref'))
        self.run_tool('img.fits', 'wfsref')
        s = self.assert_stream('wfsref', self.image, self.cards)
        self.assertEqual(s['cnt0'], 1)
        self.assertEqual(self.markers('wfsref'), {'new', 'missing', 'FITSsame', 'SMchanged'})
        # .missing goes once the stream was found again.
        self.run_tool('img.fits', 'wfsref')
        self.assertEqual(self.markers('wfsref'), {'kept', 'FITSsame', 'SMsame'})

    def test_stream_replaced_by_someone_else(self):
        self.load_first()
        os.unlink(self.stream_path('wfsref'))
        isio.make_stream(self.stream_path('wfsref'), 'wfsref', datatype=10, dims=(3, 3))
        self.run_tool('img.fits', 'wfsref')
        self.assert_stream('wfsref', self.image, self.cards)
        self.assertEqual(self.markers('wfsref'), {'new', 'FITSsame', 'SMchanged'})

    def test_missing_fits_file(self):
        r = self.run_tool('nothere.fits', 'wfsref', ok=False)
        self.assert_one_line_error(r, 'nothere.fits')
        self.assertEqual(os.listdir(self.shm), [])
        self.assertFalse(os.path.exists(self.w('loadedSM', 'wfsref.FITSinfo')))
        # A stream already loaded stays as it was, and so do its records.
        first = self.load_first()
        info = self.read('loadedSM', 'wfsref.FITSinfo')
        os.unlink(self.w('img.fits'))
        r = self.run_tool('img.fits', 'wfsref', ok=False)
        self.assert_one_line_error(r, 'img.fits')
        self.assertEqual(read_stream(self.stream_path('wfsref'))['raw'], first['raw'])
        self.assertEqual(self.read('loadedSM', 'wfsref.FITSinfo'), info)

    def test_shm_dir_fallback(self):
        if os.path.isdir('/milk/shm'):
            self.skipTest('/milk/shm exists: the fallback would go there')
        name = 'f2s%d' % os.getpid()
        path = f'/tmp/{name}.im.shm'
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        write_fits(self.w('img.fits'), self.image)
        env = dict(self.env, MILK_SHM_DIR=os.path.join(self.shm, 'does-not-exist'))
        self.run_tool('img.fits', name, env=env)
        self.assertEqual(read_stream(path)['name'], name)
        self.assertEqual(self.read('loadedSM', f'{name}.SMinfo'), self.stat_line(path))

    # -- the command line --

    def test_usage(self):
        for args in ([], ['only-one'], ['-c'], ['-c', 'a', 'b'], ['a', 'b', 'c'], ['-x', 'a', 'b']):
            with self.subTest(args=args):
                r = self.run_tool(*args, ok=False)
                self.assertEqual(r.returncode, 2, r.stderr)
                self.assertIn('usage: fits2shm', r.stderr)
        r = self.run_tool('-h')
        self.assertIn('usage: fits2shm', r.stdout)
        for args in (['img.fits', 'a/b'], ['img.fits', ''], ['-p', 'x/', 'img.fits', 's'],
                     ['img.fits', 'x' * 80]):
            with self.subTest(args=args):
                r = self.run_tool(*args, ok=False)
                self.assert_one_line_error(r)
        self.assertEqual(os.listdir(self.shm), [])

    def test_verbose(self):
        write_fits(self.w('img.fits'), self.image)
        r = self.run_tool('-v', 'img.fits', 'wfsref')
        self.assertIn('created', r.stdout)
        r = self.run_tool('-v', 'img.fits', 'wfsref')
        self.assertIn('kept', r.stdout)


if __name__ == '__main__':
    unittest.main()
