"""test_views_stream.py - issues 4 and 11: the FITS view X.fits of an
ImageStreamIO stream X.im.shm. Every datatype and axis count checked by
fitsverify, astropy and CFITSIO against the pixels the test wrote; the header
cards; frames under writers (tests/mount/isio_writer, paced, flat out, dying
mid-frame, and a Python one): never refused, whole unless the SHMTORN card
says why; one frame per open; pixels written through the view going back as
one frame that wakes a waiting reader; a changed header loaded at close (or
refused, with the stream as it was); invalid streams showing no view."""

import errno
import os
import re
import struct
import subprocess
import sys
import time
import unittest
from datetime import datetime, timezone

import numpy as np
from astropy.io import fits

from harness import MountTestCase, wait_until
import isio

HERE = os.path.dirname(os.path.abspath(__file__))
ISIO_WRITER = os.environ.get('SHMFS_ISIO_WRITER', '')
SHMTOOL = os.environ.get('SHMFS_SHMTOOL', '')
SHAPES = [(7,), (5, 3), (4, 3, 2)]   # size[], x first
NOVIEW = r'not a valid ImageStreamIO stream, no view'


def iso(ts):
    """The DATE text of a (sec, nsec) time: UTC, microseconds."""
    sec, nsec = ts
    return datetime.fromtimestamp(sec, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S') + \
        f'.{nsec // 1000:06d}'


class StreamViewCase(MountTestCase, isio.ViewChecks):

    def stream(self, name, datatype, dims, seed=0, **kw):
        """Make SOURCE/NAME.im.shm holding sample pixels; returns (pixels, layout)."""
        a = isio.sample_pixels(datatype, dims, seed)
        o = isio.make_stream(self.s(name + '.im.shm'), name, datatype, dims,
                             data=a.tobytes(), **kw)
        return a, o

    def shmtool(self):
        if not SHMTOOL:
            self.fail('SHMFS_SHMTOOL must name shmtool (run through ctest)')
        return SHMTOOL

    def header_len(self, path):
        with open(path, 'rb') as f:
            return isio.fits_header_cards(f.read(2880 * 4))[0]

    def python(self, code, *args):
        """A Popen of the system Python running CODE with isio importable."""
        return subprocess.Popen([sys.executable, '-c', code, *map(str, args)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, PYTHONPATH=HERE))


class DatatypesTest(StreamViewCase):
    """All 13 datatypes as 1-, 2- and 3-axis streams."""

    def test_every_datatype_and_axis_count(self):
        made = {}
        for code in sorted(isio.DATATYPES):
            for dims in SHAPES:
                name = f'{isio.DATATYPES[code][0]}_{len(dims)}d'
                made[name] = code, self.stream(name, code, dims, seed=len(dims), cnt0=code)[0]
        listing = set(os.listdir(self.mnt))
        views = []
        for name, (code, a) in made.items():
            with self.subTest(stream=name):
                self.assertIn(name + '.im.shm', listing)
                self.assertIn(name + '.fits', listing)
                view = self.m(name + '.fits')
                views.append(view)
                data = self.read(view)
                hlen, cards = isio.fits_header_cards(data)
                self.assertEqual(hlen % 2880, 0)
                want = isio.fits_data_bytes(a)
                self.assertEqual(len(data), isio.fits_size(hlen, len(want)))
                self.assertEqual(os.stat(view).st_size, len(data))
                self.assertEqual(data[hlen:hlen + len(want)], want, 'FITS data bytes')
                self.assertEqual(data[hlen + len(want):], bytes(len(data) - hlen - len(want)),
                                 'data padding is zeros')
                # The raw stream is still the stream, byte for byte.
                self.assertEqual(self.read(self.m(name + '.im.shm')),
                                 self.read(self.s(name + '.im.shm')))
                header = {'BITPIX': isio.FITS_BITPIX[a.dtype.name],
                          'NAXIS': len(isio.fits_naxes(a)), 'SHMNAME': name, 'CNT0': code}
                for i, n in enumerate(isio.fits_naxes(a)):
                    header[f'NAXIS{i + 1}'] = n
                if a.dtype.name in isio.FITS_BZERO:
                    header['BZERO'] = isio.FITS_BZERO[a.dtype.name]
                if a.dtype.kind == 'c':
                    header['CTYPE1'] = 'COMPLEX'
                hdr = self.assert_astropy_pixels(view, a, header)
                if a.dtype.name not in isio.FITS_BZERO:
                    self.assertEqual(hdr.get('BZERO', 0), 0)
                if a.dtype.kind != 'c':
                    self.assertNotIn('CTYPE1', hdr)
                self.assert_cfitsio_pixels(view, a)
        self.assert_fitsverify(*views)
        self.assert_not_log(NOVIEW)

    def test_large_stream_read_in_many_requests(self):
        # Several FUSE read requests per file, data not a multiple of 2880.
        a, _ = self.stream('big', 9, (513, 301), seed=5)
        b, _ = self.stream('wide', 7, (1001, 37, 3), seed=6)
        for name, arr in (('big', a), ('wide', b)):
            view = self.m(name + '.fits')
            copy = os.path.join(self.workdir, name + '.fits')
            self.check(['cp', view, copy])
            self.assertEqual(self.read(copy), self.read(view))
            hlen = self.header_len(copy)
            want = isio.fits_data_bytes(arr)
            with open(copy, 'rb') as f:
                f.seek(hlen)
                self.assertEqual(f.read(len(want)), want)
            self.assert_fitsverify(view)
            self.assert_astropy_pixels(view, arr)
        # Reads at odd offsets and sizes see the same bytes.
        whole = self.read(self.m('big.fits'))
        with open(self.m('big.fits'), 'rb', buffering=0) as f:
            for off, size in ((0, 1), (2879, 2), (2880 + 7, 100003), (len(whole) - 5, 100)):
                f.seek(off)
                self.assertEqual(f.read(size), whole[off:off + size], (off, size))


class HeaderTest(StreamViewCase):

    def test_header_cards(self):
        wt, at = (1790000000, 123456789), (1789999999, 5000)
        keywords = [('EXPTIME', 'D', 0.125, 'exposure time'),
                    ('NFRAMES', 'L', -(2 ** 62) - 7, 'a large int64'),
                    ('FILTER', 'S', "it's H", 'a quote inside'),
                    ('_PRIVATE', 'L', 5, 'names with _ are left out'),
                    ('gain', 'D', 3.5, 'lower case name'),
                    ('unused', 'N', 0, ''),
                    ('PI', 'D', 3.141592653589793, ''),
                    ('BITPIX', 'L', 99, 'must not replace the real BITPIX'),
                    ('CNT0', 'L', 12345, 'must not replace the real CNT0'),
                    ('TOOLONGKEYWORD', 'L', 1, 'not a FITS name as it is')]
        a, o = self.stream('cam', 3, (16, 8), keywords=keywords, cnt0=41, cnt1=3,
                           writetime=wt, atime=at)
        view = self.m('cam.fits')
        self.assert_fitsverify(view)
        hdr = self.assert_astropy_pixels(view, a)
        self.assertEqual(hdr['SHMNAME'], 'cam')
        self.assertEqual(hdr['CNT0'], 41)
        self.assertEqual(hdr['CNT1'], 3)
        self.assertEqual(hdr['BITPIX'], 16)
        self.assertEqual(hdr['BZERO'], 32768)
        self.assertEqual(hdr['DATE'], iso(wt))
        self.assertEqual(hdr['DATE-OBS'], iso(at))
        self.assertEqual(hdr['EXPTIME'], 0.125)
        self.assertEqual(hdr.comments['EXPTIME'], 'exposure time')
        self.assertEqual(hdr['NFRAMES'], -(2 ** 62) - 7)
        self.assertIsInstance(hdr['NFRAMES'], int)
        self.assertEqual(hdr['FILTER'], "it's H")
        self.assertEqual(hdr['GAIN'], 3.5)
        self.assertAlmostEqual(hdr['PI'], 3.141592653589793, delta=1e-13)
        self.assertIsInstance(hdr['PI'], float)
        self.assertNotIn('_PRIVATE', hdr)
        self.assertNotIn('UNUSED', hdr)
        self.assertEqual(list(hdr.keys())[:3], ['SIMPLE', 'BITPIX', 'NAXIS'])
        self.assertEqual(len([k for k in hdr.keys() if k == 'BITPIX']), 1)
        self.assertEqual(len([k for k in hdr.keys() if k == 'CNT0']), 1)
        # Every card is printable ASCII, the header a whole number of blocks.
        raw = self.read(view)
        hlen = self.header_len(view)
        self.assertTrue(all(0x20 <= c <= 0x7e for c in raw[:hlen]))
        # CFITSIO reads the same cards.
        got = self.fits_read(view, 'SHMNAME', 'CNT0', 'EXPTIME', 'FILTER')
        self.assertEqual(got['keys']['SHMNAME'].strip("' "), 'cam')
        self.assertEqual(int(got['keys']['CNT0']), 41)
        self.assertEqual(float(got['keys']['EXPTIME']), 0.125)
        # Strings are padded to 8 characters inside the quotes (FITS fixed format).
        self.assertRegex(got['keys']['FILTER'], r"^'it''s H *'$")

    def test_no_times_no_date_obs(self):
        a, _ = self.stream('fresh', 9, (4, 4))
        hdr = self.assert_astropy_pixels(self.m('fresh.fits'), a,
                                         {'SHMNAME': 'fresh', 'CNT0': 0, 'CNT1': 0})
        self.assertNotIn('DATE-OBS', hdr)
        self.assert_fitsverify(self.m('fresh.fits'))

    def test_header_follows_keywords_and_frames(self):
        kws = [('K%d' % i, 'S', 'x' * 15, 'c' * 60) for i in range(40)]
        a, o = self.stream('kw', 9, (4, 4), keywords=kws, nbkw=80)
        view = self.m('kw.fits')
        size40 = os.stat(view).st_size
        self.assertEqual(self.read(view)[:9], b'SIMPLE  =')
        # Add 40 more keywords in place: the header grows by whole blocks.
        with open(self.s('kw.im.shm'), 'r+b') as f:
            for i in range(40, 80):
                f.seek(o['keywords'] + i * isio.KEYWORD_SIZE)
                f.write(isio.pack_keyword('K%d' % i, 'L', i, 'more'))
        size80 = os.stat(view).st_size
        self.assertGreater(size80, size40)
        self.assertEqual(len(self.read(view)), size80)
        hdr = self.assert_astropy_pixels(view, a, {'K79': 79})
        self.assertEqual(hdr['K0'], 'x' * 15)
        w = isio.Writer(self.s('kw.im.shm'))
        try:
            w.frame(np.full(16, 2.5, np.float32).tobytes())
        finally:
            w.close()
        self.assert_astropy_pixels(view, np.full((4, 4), 2.5, np.float32), {'CNT0': 1})
        self.assert_fitsverify(view)

    def test_hostile_keywords_in_attributes(self):
        # Keyword names and values are untrusted bytes: they must not make
        # up attributes, hide others, or give names that are not text.
        _, o = self.stream('cam', 9, (4, 4), nbkw=6)
        slots = [isio.pack_keyword('OK', 'S', 'v\nfake2=1'),
                 isio.pack_keyword('x=y', 'L', 5),
                 b'\xff' * 16 + b'L' + bytes(111),
                 isio.pack_keyword('A\nfake', 'L', 1),
                 isio.pack_keyword('LAST', 'L', 7)]
        with open(self.s('cam.im.shm'), 'r+b') as f:
            f.seek(o['keywords'])
            f.write(b''.join(slots))
        names = os.listxattr(self.m('cam.im.shm'))
        self.assertNotIn('user.shmfs.fake2', names, 'a keyword value made up an attribute')
        self.assertNotIn('user.shmfs.fake', names)
        self.assertIn('user.shmfs.keyword.LAST', names, f'attributes hidden: {names}')
        for n in names:
            self.assertRegex(n, r'^[!-~]+$', 'an attribute name that is not printable ASCII')
        self.assertEqual(os.getxattr(self.m('cam.im.shm'), 'user.shmfs.keyword.LAST'), b'7')
        self.assertNotEqual(os.getxattr(self.m('cam.im.shm'), 'user.shmfs.keyword.OK'), b'v')
        self.assert_fitsverify(self.m('cam.fits'))

    def test_getfattr_shows_stream_state(self):
        self.stream('cam', 4, (6, 5, 2), cnt0=77,
                    keywords=[('EXPTIME', 'D', 0.5), ('FILTER', 'S', 'H'), ('N', 'L', -3)])
        out = self.check(['getfattr', '-d', '-m', 'user.shmfs', self.m('cam.im.shm')])
        attrs = dict(re.findall(r'^(user\.shmfs\.[^=]+)="(.*)"$', out, re.M))
        self.assertEqual(attrs.get('user.shmfs.format'), 'stream', out)
        self.assertEqual(attrs.get('user.shmfs.type'), 'int16', out)
        self.assertEqual(attrs.get('user.shmfs.shape'), '6,5,2', out)
        self.assertEqual(attrs.get('user.shmfs.cnt0'), '77', out)
        self.assertEqual(attrs.get('user.shmfs.name'), 'cam', out)
        self.assertEqual(float(attrs.get('user.shmfs.keyword.EXPTIME')), 0.5, out)
        self.assertEqual(attrs.get('user.shmfs.keyword.FILTER'), 'H', out)
        self.assertEqual(attrs.get('user.shmfs.keyword.N'), '-3', out)
        # One attribute by name follows the stream.
        w = isio.Writer(self.s('cam.im.shm'))
        w.frame(bytes(120))
        w.close()
        out = self.check(['getfattr', '--only-values', '-n', 'user.shmfs.cnt0',
                          self.m('cam.im.shm')])
        self.assertEqual(out, '78')


class FrameTest(StreamViewCase):
    """A view gives whole frames; one that is not whole says so (SHMTORN)."""

    WRITER = r'''
import os, struct, sys, time
import isio
path, dims = sys.argv[1], int(sys.argv[2])
w = isio.Writer(path)
deadline = time.monotonic() + float(sys.argv[3])
print('running', flush=True)
frames = 0
while time.monotonic() < deadline:
    for _ in range(50):
        n = struct.unpack_from('Q', w.map, isio.OFF_CNT0)[0] + 1
        w.frame(struct.pack('<i', n) * dims)   # every pixel = the CNT0 it gets
        frames += 1
print(frames, flush=True)
w.close()
'''

    def check_frame(self, data, npix, dtype='>i4'):
        """(cnt0, torn) of one copy of the view: a frame without the SHMTORN
        card must be whole (every pixel = its CNT0); one with it says why."""
        hlen, cards = isio.fits_header_cards(data)
        self.assertEqual(len(data), isio.fits_size(hlen, 4 * npix))
        # int32 pixels: a float32 one could not tell CNT0 2^24 + 1 from 2^24.
        pix = np.frombuffer(data, dtype, npix, hlen)
        cnt0 = int(cards['CNT0'])
        if 'SHMTORN' in cards:
            self.assertRegex(cards['SHMTORN'], r'writer (left no gap|stopped mid-frame)')
            return cnt0, True
        self.assertTrue((pix == pix[0]).all(), f'torn frame without a card: {np.unique(pix)[:10]}')
        self.assertEqual(int(pix[0]), cnt0, 'CNT0 card and pixels from different frames')
        return cnt0, False

    def writer(self, name, nx, ny, kind, hz, seconds, die=False):
        """tests/mount/isio_writer making stream NAME and writing it; returns
        the Popen once the stream exists."""
        if not ISIO_WRITER:
            self.fail('SHMFS_ISIO_WRITER must name tests/mount/isio_writer (run through ctest)')
        p = subprocess.Popen([ISIO_WRITER, self.s(name + '.im.shm'), str(nx), str(ny), kind,
                              str(hz), str(seconds)] + (['die'] if die else []),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.communicate()))
        self.assertEqual(p.stdout.readline().strip(), 'ready', p.stderr.read() if p.poll() else '')
        return p

    def test_copies_under_a_tight_writer_are_whole_frames(self):
        npix = 64 * 64
        self.stream('loop', 6, (64, 64))
        w = isio.Writer(self.s('loop.im.shm'))
        w.frame(struct.pack('<i', 1) * npix)
        w.close()
        writer = self.python(self.WRITER, self.s('loop.im.shm'), npix, 60)
        try:
            self.assertEqual(writer.stdout.readline().strip(), 'running')
            seen, torn = set(), 0
            view = self.m('loop.fits')
            for i in range(1000):
                with open(view, 'rb', buffering=0) as f:   # never refused
                    cnt0, t = self.check_frame(f.read(), npix)
                seen.add(cnt0)
                torn += t
            # And with cp, a real copy program.
            for i in range(50):
                copy = os.path.join(self.workdir, 'copy.fits')
                self.check(['cp', view, copy])
                with open(copy, 'rb') as f:
                    cnt0, t = self.check_frame(f.read(), npix)
                seen.add(cnt0)
                torn += t
        finally:
            writer.terminate()
            out, err = writer.communicate(timeout=30)
        self.assertGreater(len(seen), 20, f'the writer hardly ran: {len(seen)} frames seen '
                           f'({err})')
        # A Python writer leaves gaps between its frames: nearly all whole.
        self.assertLess(torn, 100, f'{torn} of 1050 frames not whole')
        self.assert_daemon_alive()

    def test_paced_writer_gives_whole_unmarked_frames(self):
        # A 256x256 float camera at 2 kHz that posts its semaphores: every
        # open is woken right after a frame, in the gap. astropy, fitscopy
        # and cat each get 100 of 100 whole frames, none marked.
        npix = 256 * 256
        self.writer('cam', 256, 256, 'float', 2000, 120)
        view = self.m('cam.fits')
        seen = set()
        for i in range(100):
            with fits.open(view) as h:
                data = h[0].data
                self.assertNotIn('SHMTORN', h[0].header, f'astropy open {i}')
                self.assertTrue((data == data[0, 0]).all(), f'astropy open {i}: torn')
                self.assertEqual(float(data[0, 0]), float(h[0].header['CNT0']))
                seen.add(h[0].header['CNT0'])
        copy = os.path.join(self.workdir, 'copy.fits')
        for tool in ('fitscopy', 'cat'):
            for i in range(100):
                if os.path.exists(copy):
                    os.unlink(copy)
                if tool == 'cat':
                    with open(copy, 'wb') as out:
                        subprocess.run(['cat', view], stdout=out, check=True)
                else:
                    self.check(['fitscopy', view, copy])
                with open(copy, 'rb') as f:
                    cnt0, torn = self.check_frame(f.read(), npix, '>f4')
                self.assertFalse(torn, f'{tool} copy {i} carries SHMTORN\n{self.log_text()}')
                seen.add(cnt0)
        self.assertGreater(len(seen), 100, "the frames did not move")
        self.assert_not_log('SHMTORN')

    def test_flat_out_writer_never_refused(self):
        # A writer that never leaves a gap: every open succeeds within a
        # second; a frame that is not whole says so in its header.
        npix = 256 * 256
        self.writer('fast', 256, 256, 'int32', 0, 120)
        view = self.m('fast.fits')
        torn = 0
        for i in range(100):
            start = time.monotonic()
            with open(view, 'rb') as f:
                data = f.read()
            self.assertLess(time.monotonic() - start, 1.0, f'open {i} took too long')
            cnt0, t = self.check_frame(data, npix)
            torn += t
        if torn:
            self.assert_log(r'fast.im.shm: CNT0 \d+ served with card SHMTORN')
        self.assert_daemon_alive()

    def test_writer_killed_mid_frame(self):
        # A camera program killed (SIGKILL) inside a frame leaves the write
        # flag up: opens still succeed at once, the header says why.
        npix = 64 * 64
        p = self.writer('dead', 64, 64, 'int32', 1000, 0.2, die=True)
        p.wait(timeout=30)
        self.assertEqual(isio.read_state(self.s('dead.im.shm'))['write'], 1)
        view = self.m('dead.fits')
        for tool in ('python', 'astropy', 'fitscopy'):
            start = time.monotonic()
            if tool == 'python':
                with open(view, 'rb') as f:
                    cards = isio.fits_header_cards(f.read())[1]
                why = cards['SHMTORN']
            elif tool == 'astropy':
                with fits.open(view) as h:
                    why = h[0].header['SHMTORN']
                    self.assertEqual(h[0].data.shape, (64, 64))
            else:
                got = self.fits_read(view, 'SHMTORN')
                why = got['keys']['SHMTORN'].strip("' ")
            self.assertLess(time.monotonic() - start, 1.0, f'{tool}: the open waited')
            self.assertIn('writer stopped mid-frame', why, tool)
        self.assert_log(r'dead.im.shm: CNT0 \d+ served with card SHMTORN.*no writer is alive')
        # shmtool save follows the same rule.
        out = os.path.join(self.workdir, 'saved.fits')
        r = self.run_cmd([self.shmtool(), 'save', '--dir', self.source, 'dead', out])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('SHMTORN', r.stderr)
        with fits.open(out) as h:
            self.assertIn('stopped mid-frame', h[0].header['SHMTORN'])

    def test_read_only_open_keeps_its_frame(self):
        npix = 100 * 100
        self.stream('cam', 9, (100, 100))
        w = isio.Writer(self.s('cam.im.shm'))
        try:
            w.frame(np.full(npix, 1, np.float32).tobytes())
            with open(self.m('cam.fits'), 'rb', buffering=0) as f:
                first = f.read(2880 * 3)
                w.frame(np.full(npix, 2, np.float32).tobytes())
                w.frame(np.full(npix, 3, np.float32).tobytes())
                rest = f.read()
                # A second open meanwhile sees the newest frame.
                with open(self.m('cam.fits'), 'rb') as g:
                    self.assertEqual(self.check_cnt_value(g.read(), npix), 3)
                f.seek(0)
                again = f.read()
            self.assertEqual(first + rest, again)
            self.assertEqual(self.check_cnt_value(again, npix), 1)
            with open(self.m('cam.fits'), 'rb') as f:
                self.assertEqual(self.check_cnt_value(f.read(), npix), 3)
        finally:
            w.close()

    def check_cnt_value(self, data, npix):
        hlen, cards = isio.fits_header_cards(data)
        pix = np.frombuffer(data, '>f4', npix, hlen)
        self.assertTrue((pix == pix[0]).all())
        self.assertEqual(int(cards['CNT0']), int(pix[0]))
        return int(pix[0])

    def test_stuck_writer_gives_the_frame_marked_and_a_log_line(self):
        # The write flag up and a writer that may be alive (this process
        # made the stream): the open waits for a gap, briefly, then serves
        # the frame as it stands, marked.
        a, _ = self.stream('stuck', 9, (8, 8))
        with open(self.s('stuck.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_WRITE)
            f.write(b'\1')
        start = time.monotonic()
        data = self.read(self.m('stuck.fits'))
        self.assertLess(time.monotonic() - start, 1, 'the reader was blocked for long')
        hlen, cards = isio.fits_header_cards(data)
        self.assertIn('writer left no gap', cards['SHMTORN'])
        self.assertEqual(data[hlen:hlen + a.nbytes], isio.fits_data_bytes(a))
        self.assert_log(r'stuck.im.shm: CNT0 0 served with card SHMTORN.*no gap')
        with fits.open(self.m('stuck.fits')) as h:
            self.assertIn('SHMTORN', h[0].header)
        self.assert_fitsverify(self.m('stuck.fits'))
        with open(self.s('stuck.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_WRITE)
            f.write(b'\0')
        w = isio.Writer(self.s('stuck.im.shm'))
        w.frame(a.tobytes())
        w.close()
        self.assertNotIn('SHMTORN', isio.fits_header_cards(self.read(self.m('stuck.fits')))[1])


class WriteTest(StreamViewCase):
    """Pixels written into a view go back into the stream as one frame."""


    def sem_values(self, name, o):
        s = isio.Stream(self.s(name), o)
        try:
            return [sem.value() for sem in s.sems]
        finally:
            s.close()

    def test_write_pixels_of_every_datatype(self):
        for code in sorted(isio.DATATYPES):
            dt = isio.dtype_of(code)
            name = dt.name
            with self.subTest(datatype=name):
                a, o = self.stream(name, code, (6, 4), cnt0=10)
                before = isio.read_state(self.s(name + '.im.shm'))
                new = isio.sample_pixels(code, (6, 4), seed=99)[::-1].copy()
                view = self.m(name + '.fits')
                hlen = self.header_len(view)
                t0 = time.time()
                with open(view, 'r+b', buffering=0) as f:
                    f.seek(hlen)
                    self.assertEqual(f.write(isio.fits_data_bytes(new)), 24 * (
                        4 if name == 'float16' else dt.itemsize))
                after = isio.read_state(self.s(name + '.im.shm'))
                self.assertEqual(isio.read_pixels(self.s(name + '.im.shm'), o), new.tobytes())
                self.assertEqual(after['cnt0'], before['cnt0'] + 1, 'CNT0 + 1, once')
                self.assertEqual(after['write'], 0)
                self.assertGreaterEqual(after['writetime'][0] + after['writetime'][1] / 1e9,
                                        t0 - 1)
                self.assertEqual(self.sem_values(name + '.im.shm', o), [1] * 10,
                                 'every semaphore posted once')
                # The view now shows the new frame.
                self.assert_astropy_pixels(view, new, {'CNT0': before['cnt0'] + 1})

    def test_partial_write_and_float16_rounding(self):
        a, o = self.stream('half', 13, (8, 2))
        view = self.m('half.fits')
        hlen = self.header_len(view)
        values = np.array([1 / 3, 65504.0, 1e-7, -2.5], dtype=np.float32)
        with open(view, 'r+b', buffering=0) as f:
            f.seek(hlen + 4 * 5)              # pixels 5..8 of row 0
            f.write(values.astype('>f4').tobytes())
        want = a.copy().ravel()
        want[5:9] = values.astype(np.float16)   # numpy rounds to nearest even
        self.assertEqual(isio.read_pixels(self.s('half.im.shm'), o), want.tobytes())
        # A write that is not element-aligned lands byte for byte.
        b, o2 = self.stream('u16', 3, (5,))
        hlen = self.header_len(self.m('u16.fits'))
        data = bytearray(isio.fits_data_bytes(b))
        with open(self.m('u16.fits'), 'r+b', buffering=0) as f:
            f.seek(hlen + 3)
            f.write(b'\x80\x80\x07')          # low byte of pixel 1, all of pixel 2
        data[3:6] = b'\x80\x80\x07'
        want = isio.from_fits_data_bytes(bytes(data), np.uint16, (5,))
        self.assertEqual(isio.read_pixels(self.s('u16.im.shm'), o2), want.tobytes())
        self.assertEqual(int(want[2]), 7)

    def test_whole_file_written_back(self):
        a, o = self.stream('cam', 6, (10, 10), cnt0=5)
        view = self.m('cam.fits')
        image = bytearray(self.read(view))
        hlen = self.header_len(view)
        new = (a + 1000).astype(np.int32)
        image[hlen:hlen + 400] = isio.fits_data_bytes(new)
        with open(view, 'r+b', buffering=0) as f:   # header bytes as they are: allowed
            self.assertEqual(f.write(image), len(image))
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o), new.tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 6)
        # dd over the data part only, as a shell user would.
        src = os.path.join(self.workdir, 'pix')
        with open(src, 'wb') as f:
            f.write(isio.fits_data_bytes(a))
        self.check(['dd', f'if={src}', f'of={view}', 'bs=400', f'seek={hlen}',
                    'oflag=seek_bytes', 'conv=notrunc', 'status=none'])
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o), a.tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 7)

    def test_cfitsio_program_writes_through_view(self):
        a, o = self.stream('cf', 4, (7, 3), cnt0=2)
        if not isio.FITS_READ:
            self.fail('SHMFS_FITS_READ must name tests/mount/fits_read')
        self.check([isio.FITS_READ, '-w', self.m('cf.fits'), '-123'])
        self.assertEqual(isio.read_pixels(self.s('cf.im.shm'), o),
                         np.full(21, -123, np.int16).tobytes())
        self.assertEqual(isio.read_state(self.s('cf.im.shm'))['cnt0'], 3)
        self.assert_fitsverify(self.m('cf.fits'))

    def test_close_wakes_a_reader_waiting_on_a_semaphore(self):
        a, o = self.stream('wake', 9, (8, 8), cnt0=20)
        with isio.waiting(self.s('wake.im.shm'), 3, 20) as waiter:
            view = self.m('wake.fits')
            hlen = self.header_len(view)
            with open(view, 'r+b', buffering=0) as f:
                f.seek(hlen)
                f.write(isio.fits_data_bytes(np.full((8, 8), 4.5, np.float32)))
                time.sleep(0.2)
                self.assertIsNone(waiter.poll(), 'woken before the view was closed')
            out, err = waiter.communicate(timeout=10)
        self.assertEqual(waiter.returncode, 0, f'{out} {err}')
        self.assertEqual(out.split(), ['woken', '21'])

    def test_changed_header_loads_the_file_at_close(self):
        a, o = self.stream('cam', 9, (10, 10), cnt0=3, nbkw=20)
        view = self.m('cam.fits')
        image = self.read(view)
        ino = os.stat(self.s('cam.im.shm')).st_ino
        # Bytes that make no FITS file: written into the open's own copy;
        # the close refuses it, and the stream is as it was.
        fd = os.open(view, os.O_RDWR)
        self.assertEqual(os.pwrite(fd, b'X', 0), 1)
        self.assertEqual(os.pread(fd, 6, 0), b'XIMPLE')
        self.assert_errno(errno.EINVAL, os.close, fd)
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o), a.tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 3)
        self.assertEqual(self.read(view), image)
        self.assert_log(r'cam.fits: not loaded')
        self.assertEqual(self.log_text().count('not loaded'), 1, 'one close, one try')
        # astropy's update mode with a new card: the whole file is loaded
        # in place (same inode, one frame more), the card a keyword.
        new = (a * 2).astype(np.float32)
        with fits.open(view, mode='update') as h:
            h[0].header['NEWKEY'] = (5, 'added through the view')
            h[0].data[:] = new
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assertEqual(isio.read_pixels(self.s('cam.im.shm'), o), new.tobytes())
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 4)
        self.assertEqual(os.getxattr(self.m('cam.im.shm'), 'user.shmfs.keyword.NEWKEY'), b'5')
        with fits.open(view) as h:
            self.assertEqual(h[0].header['NEWKEY'], 5)

    def test_whole_file_written_without_truncating_then_sized(self):
        # OpenSSH's SFTP server (scp) opens without O_TRUNC, writes the new
        # file from offset 0, then sets its size: one load at close.
        self.stream('cam', 9, (10, 10), cnt0=3)
        b = np.arange(20 * 30, dtype=np.float64).reshape(30, 20)
        src = os.path.join(self.workdir, 'new.fits')
        fits.writeto(src, b)
        with open(src, 'rb') as f:
            data = f.read()
        for size_first in (False, True):
            fd = os.open(self.m('cam.fits'), os.O_WRONLY)
            if size_first:
                os.ftruncate(fd, 0)
            for off in range(0, len(data), 32768):
                os.pwrite(fd, data[off:off + 32768], off)
            os.ftruncate(fd, len(data))
            self.assertEqual(os.fstat(fd).st_size, len(data))
            os.close(fd)
            with fits.open(self.m('cam.fits')) as h:
                self.assertEqual(h[0].data.shape, (30, 20))
                self.assertTrue(np.array_equal(h[0].data, b))
            self.assertEqual(isio.stream_layout(self.s('cam.im.shm'))['nelement'], 600)

    def test_refusals_are_logged_with_the_name(self):
        # DESIGN.md: every refusal the user can cause is logged once with the
        # path and the reason.
        self.stream('named', 9, (4, 4))
        fd = os.open(self.m('named.fits'), os.O_RDWR)
        os.pwrite(fd, b'BITPIX  = 7', 80)
        self.assert_errno(errno.EINVAL, os.close, fd)
        lines = [l for l in self.log_text().splitlines() if 'not loaded' in l]
        self.assertTrue(lines, f'no log line:\n{self.log_text()}')
        self.assertTrue(any('named' in l for l in lines), f'the log line does not name the file: {lines}')

    def test_view_has_the_stream_mode_and_owner(self):
        self.stream('cam', 9, (4, 4))
        os.chmod(self.s('cam.im.shm'), 0o640)
        os.chown(self.s('cam.im.shm'), 12345, 23456)
        st = os.stat(self.m('cam.fits'))
        self.assertEqual((st.st_mode & 0o7777, st.st_uid, st.st_gid), (0o640, 12345, 23456))
        self.assertNotEqual(st.st_ino, os.stat(self.m('cam.im.shm')).st_ino)


class InvalidStreamTest(StreamViewCase):
    """Streams the library would refuse show no view; their raw file stays."""

    def make_bad(self):
        good = isio.layout(9, (8, 8))
        bad = {}
        isio.make_stream(self.s('v105.im.shm'), 'v105', version=b'1.05')
        bad['v105'] = r"version '1\.05'"
        isio.make_stream(self.s('gpu.im.shm'), 'gpu', location=0)
        bad['gpu'] = r'GPU'
        isio.make_stream(self.s('plus8.im.shm'), 'plus8', extra=8)
        bad['plus8'] = rf"{good['size'] + 8}"
        isio.make_stream(self.s('minus8.im.shm'), 'minus8', extra=-8)
        bad['minus8'] = rf"{good['size'] - 8}"
        with open(self.s('random.im.shm'), 'wb') as f:
            f.write(os.urandom(good['size']))
        bad['random'] = r'version'
        isio.make_stream(self.s('trunc.im.shm'), 'trunc')
        os.truncate(self.s('trunc.im.shm'), 200)
        bad['trunc'] = r'384'
        open(self.s('empty.im.shm'), 'wb').close()
        bad['empty'] = r'384'
        isio.make_stream(self.s('cut.im.shm'), 'cut')
        os.truncate(self.s('cut.im.shm'), good['data'] + 100)   # metadata whole, data cut
        bad['cut'] = rf"{good['data'] + 100}"
        isio.make_stream(self.s('nelem.im.shm'), 'nelem')
        with open(self.s('nelem.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_NELEMENT)
            f.write(struct.pack('Q', 65))
        bad['nelem'] = r'nelement'
        isio.make_stream(self.s('naxis0.im.shm'), 'naxis0')
        with open(self.s('naxis0.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_NAXIS)
            f.write(b'\0')
        bad['naxis0'] = r'naxis'
        isio.make_stream(self.s('dtype.im.shm'), 'dtype')
        with open(self.s('dtype.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_DATATYPE)
            f.write(b'\x0e')
        bad['dtype'] = r'datatype'
        isio.make_stream(self.s('huge.im.shm'), 'huge')   # sizes that overflow
        with open(self.s('huge.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_SIZE)
            f.write(struct.pack('3I', 0xffffffff, 0xffffffff, 0xffffffff))
            f.seek(isio.OFF_NAXIS)
            f.write(b'\3')
        bad['huge'] = r'.'
        return bad

    def test_invalid_streams_show_no_view(self):
        bad = self.make_bad()
        self.stream('good', 9, (8, 8))
        raw = {n: self.read(self.s(n + '.im.shm')) for n in bad}
        for _ in range(3):   # several lookups and listings: still one log line each
            listing = set(os.listdir(self.mnt))
            for name in bad:
                self.assertFalse(os.path.exists(self.m(name + '.fits')), name)
        for name, why in bad.items():
            with self.subTest(stream=name):
                self.assertIn(name + '.im.shm', listing)
                self.assertNotIn(name + '.fits', listing)
                self.assert_errno(errno.ENOENT, os.stat, self.m(name + '.fits'))
                self.assertEqual(self.read(self.m(name + '.im.shm')), raw[name])
                lines = [l for l in self.log_text().splitlines()
                         if f'{name}.im.shm: {NOVIEW}' in l]
                self.assertEqual(len(lines), 1, f'one log line for {name}:\n{self.log_text()}')
                self.assertRegex(lines[0], why)
        self.assertIn('good.fits', listing)
        self.assert_daemon_alive()

    FIELDS = [('naxis', isio.OFF_NAXIS, 'B'), ('size0', isio.OFF_SIZE, 'I'),
              ('size1', isio.OFF_SIZE + 4, 'I'), ('size2', isio.OFF_SIZE + 8, 'I'),
              ('nelement', isio.OFF_NELEMENT, 'Q'), ('datatype', isio.OFF_DATATYPE, 'B'),
              ('imagetype', isio.OFF_IMAGETYPE, 'Q'), ('location', isio.OFF_LOCATION, 'B'),
              ('sem', isio.OFF_SEM, 'H'), ('nbproctrace', isio.OFF_NBPROCTRACE, 'H'),
              ('nbkw', isio.OFF_NBKW, 'H'), ('cbsize', isio.OFF_CBSIZE, 'I'),
              ('imdatamemsize', isio.OFF_IMDATAMEMSIZE, 'Q'), ('cnt0', isio.OFF_CNT0, 'Q'),
              ('cnt1', isio.OFF_CNT1, 'Q'),
              ('wt_sec', isio.OFF_WRITETIME, 'q'), ('wt_nsec', isio.OFF_WRITETIME + 8, 'q'),
              ('at_sec', isio.OFF_ATIME, 'q'), ('at_nsec', isio.OFF_ATIME + 8, 'q')]

    def test_hostile_header_fields(self):
        # Every metadata field at its extremes, and hostile keyword slots:
        # no crash, no read outside the file (ASan), and any view that is
        # shown is legal FITS.
        made = []
        for field, off, fmt in self.FIELDS:
            bits = struct.calcsize(fmt) * 8
            values = [0, (1 << bits) - 1, 1 << (bits - 1), (1 << (bits - 1)) - 1, 3]
            if fmt == 'q':
                values = [0, -1, -(1 << 63), (1 << 63) - 1, 1 << 40, 300000000000,
                          2000000000]
            for i, v in enumerate(values):
                name = f'{field}_{i}'
                self.stream(name, 3, (5, 4, 3), nbkw=2, keywords=[('K', 'L', 1)])
                with open(self.s(name + '.im.shm'), 'r+b') as f:
                    f.seek(off)
                    f.write(struct.pack('<' + fmt, v))
                made.append(name)
        hostile = [(b'\xff' * 16, b'S', b'\x01\x7f\xfe' * 5 + b'x', b'\x1b[31m' * 13 + b'abc'),
                   (b'A' * 16, b'D', struct.pack('<d', float('nan')).ljust(16, b'\0'), b'c'),
                   (b'B' * 16, b'D', struct.pack('<d', float('inf')).ljust(16, b'\0'), b''),
                   (b'C', b'D', struct.pack('<d', -1e308).ljust(16, b'\0'), b"'" * 80),
                   (b'DATE-OBS', b'S', b"x'y", b'/' * 80),
                   (b'END', b'L', struct.pack('<q', -1).ljust(16, b'\0'), b''),
                   (b'SIMPLE', b'S', b'F'.ljust(16, b'\0'), b''),
                   (b'COMMENT', b'S', b'x' * 16, b'y' * 80),
                   (b'', b'L', bytes(16), b'no name'),
                   (b'a b', b'L', bytes(16), b''),
                   (b'KW', b'Z', bytes(16), b'unknown type')]
        slots = []
        for kname, kind, value, comment in hostile:
            slot = bytearray(isio.KEYWORD_SIZE)
            slot[0:len(kname)] = kname
            slot[16:17] = kind
            slot[24:40] = value
            slot[48:48 + len(comment)] = comment
            slots.append(bytes(slot))
        _, o = self.stream('hostile_kw', 9, (3, 3), nbkw=len(slots))
        with open(self.s('hostile_kw.im.shm'), 'r+b') as f:
            f.seek(o['keywords'])
            f.write(b''.join(slots))
        with open(self.s('hostile_kw.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_NAME)
            f.write(bytes(range(1, 81)))          # a name without its NUL, control bytes
        made.append('hostile_kw')
        listing = set(os.listdir(self.mnt))
        views = []
        for name in made:
            view = self.m(name + '.fits')
            try:
                data = self.read(view)
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOENT, f'{name}: {e}')
                self.assertNotIn(name + '.fits', listing)
                continue
            self.assertIn(name + '.fits', listing)
            self.assertEqual(len(data), os.stat(view).st_size)
            views.append(view)
            self.assertTrue(all(0x20 <= c <= 0x7e for c in data[:isio.fits_header_cards(data)[0]]),
                            f'{name}: a header byte that is not printable ASCII')
            self.check(['getfattr', '-d', '-m', 'user.shmfs', self.m(name + '.im.shm')],
                       text=False)
        self.assertIn(self.m('hostile_kw.fits'), views)
        self.assert_fitsverify(*views)
        with fits.open(self.m('hostile_kw.fits')) as h:
            self.assertEqual(h[0].header['BITPIX'], -32)
            self.assertEqual(h[0].header['NAXIS'], 2)
        self.assert_daemon_alive()

    def test_stream_turning_invalid_and_back(self):
        a, o = self.stream('cam', 9, (8, 8))
        self.assertTrue(os.path.exists(self.m('cam.fits')))
        with open(self.s('cam.im.shm'), 'r+b') as f:
            f.write(b'1.05')
        self.assertNotIn('cam.fits', os.listdir(self.mnt))
        self.assertFalse(os.path.exists(self.m('cam.fits')))
        with open(self.s('cam.im.shm'), 'r+b') as f:
            f.write(b'2.00')
        self.assertIn('cam.fits', os.listdir(self.mnt))
        self.assert_astropy_pixels(self.m('cam.fits'), a)

    def test_real_fits_file_wins(self):
        self.stream('cam', 9, (8, 8))
        with open(self.s('cam.fits'), 'wb') as f:
            f.write(b'a real file')
        self.assertEqual(sorted(os.listdir(self.mnt)), ['cam.fits', 'cam.im.shm', 'sysv'])
        self.assertEqual(self.read(self.m('cam.fits')), b'a real file')
        os.unlink(self.s('cam.fits'))
        self.assertEqual(self.read(self.m('cam.fits'))[:6], b'SIMPLE')

    def test_view_goes_with_its_stream(self):
        a, _ = self.stream('cam', 9, (8, 8))
        self.assert_astropy_pixels(self.m('cam.fits'), a)
        os.unlink(self.s('cam.im.shm'))
        # The kernel may answer from its cache for up to -o timeout (1 s).
        self.assertTrue(wait_until(lambda: not os.path.exists(self.m('cam.fits')), 3))
        self.assertNotIn('cam.fits', os.listdir(self.mnt))
        # An open view keeps its frame when the stream goes.
        b, _ = self.stream('cam', 10, (30, 20))
        # (test_recreated_stream_is_found_at_once: should not need a wait)
        self.assertTrue(wait_until(lambda: os.path.exists(self.m('cam.fits')), 3))
        with open(self.m('cam.fits'), 'rb') as f:
            head = f.read(2880)
            os.unlink(self.s('cam.im.shm'))
            data = head + f.read()
        self.assertEqual(isio.fits_header_cards(data)[1]['BITPIX'], '-64')
        self.assertEqual(data[2880:2880 + 4800], isio.fits_data_bytes(b))

    def test_recreated_stream_is_found_at_once(self):
        # ImageStreamIO re-creates a stream (a camera changing its region of
        # interest): unlink, then create the same name. As for raw files
        # (test_posix.py test_recreated_object_is_found_at_once), an open
        # through the mount finds the new stream straight away, even with
        # the name cached.
        a, _ = self.stream('cam', 9, (8, 8))
        size = os.stat(self.m('cam.fits')).st_size
        self.assert_astropy_pixels(self.m('cam.fits'), a)
        os.unlink(self.s('cam.im.shm'))
        b, _ = self.stream('cam', 10, (300, 20))
        self.assertEqual(self.read(self.m('cam.im.shm'))[:4], b'2.00')   # raw: at once
        self.assert_astropy_pixels(self.m('cam.fits'), b)
        self.assertNotEqual(os.stat(self.m('cam.fits')).st_size, size)

if __name__ == '__main__':
    unittest.main()
