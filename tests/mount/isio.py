"""isio.py - ImageStreamIO "2.00" stream files for the tests, written exactly
as ../shared/formats/imagestreamio.md lays them out (little-endian, 64-bit,
CPU location, no circular buffer), and a writer that follows the stream's
update protocol. The tests write their own streams: no milk needed."""

import contextlib
import ctypes
import errno
import mmap
import os
import struct
import subprocess
import sys
import time

METADATA_SIZE = 384
KEYWORD_SIZE = 128
SEM_SIZE = 32
PROCTRACE = 10

# datatype code: (name, bytes per element)
DATATYPES = {1: ('uint8', 1), 2: ('int8', 1), 3: ('uint16', 2), 4: ('int16', 2),
             5: ('uint32', 4), 6: ('int32', 4), 7: ('uint64', 8), 8: ('int64', 8),
             9: ('float32', 4), 10: ('float64', 8), 11: ('complex64', 8),
             12: ('complex128', 16), 13: ('float16', 2)}

OFF_VERSION, OFF_NAME, OFF_NAXIS, OFF_SIZE, OFF_NELEMENT = 0, 32, 112, 116, 128
OFF_DATATYPE, OFF_IMAGETYPE, OFF_CREATIONTIME, OFF_WRITETIME = 136, 144, 152, 200
OFF_ATIME = 184
OFF_CREATORPID, OFF_OWNERPID, OFF_SHARED, OFF_INODE = 216, 220, 224, 232
OFF_LOCATION, OFF_SEM, OFF_NBPROCTRACE, OFF_CNT0, OFF_CNT1 = 240, 258, 260, 264, 272
OFF_WRITE, OFF_NBKW, OFF_CBSIZE, OFF_IMDATAMEMSIZE = 288, 290, 292, 312


def r8(n):
    return (n + 7) // 8 * 8


def layout(datatype, dims, nbkw=0, nsem=10):
    """Offsets of the regions and the file size: dict with data, keywords,
    sems, semlog, pids, proctrace, size."""
    nelement = 1
    for d in dims:
        nelement *= d
    datasize = DATATYPES[datatype][1] * nelement
    o = {'data': METADATA_SIZE, 'datasize': datasize, 'nelement': nelement}
    o['keywords'] = o['data'] + r8(datasize)
    o['sems'] = o['keywords'] + r8(KEYWORD_SIZE * nbkw)
    o['semlog'] = o['sems'] + r8(SEM_SIZE * nsem)
    o['pids'] = o['semlog'] + SEM_SIZE
    o['proctrace'] = o['pids'] + 4 * r8(4 * nsem)
    o['size'] = o['proctrace'] + r8(64 * PROCTRACE)
    return o


KEYWORD_TYPES = ('L', 'D', 'S')


def pack_keyword(name, kind, value, comment='', cnt=0):
    """One 128-byte keyword slot: NAME (< 16 bytes), KIND 'L' (int64), 'D'
    (double), 'S' (string, < 16 bytes) or 'N' (unused), VALUE, COMMENT."""
    slot = bytearray(KEYWORD_SIZE)
    struct.pack_into('16s', slot, 0, name.encode()[:15])
    slot[16] = ord(kind)
    if kind == 'L':
        struct.pack_into('q', slot, 24, value)
    elif kind == 'D':
        struct.pack_into('d', slot, 24, value)
    elif kind == 'S':
        struct.pack_into('16s', slot, 24, value.encode()[:15])
    struct.pack_into('q', slot, 40, cnt)
    struct.pack_into('80s', slot, 48, comment.encode()[:79])
    return bytes(slot)


def timespec(t):
    """(sec, nsec) of a time in seconds (a float) or a (sec, nsec) pair."""
    if isinstance(t, tuple):
        return t
    sec = int(t // 1)
    return sec, int(round((t - sec) * 1e9)) % 1000000000


def make_stream(path, name, datatype=9, dims=(8, 8), nbkw=0, nsem=10, data=b'',
                keywords=(), cnt0=0, cnt1=0, writetime=None, atime=None,
                version=b'2.00', location=-1, extra=0, init_sems=True):
    """Write a stream file at PATH (mode 0666) and return its layout.
    KEYWORDS: (name, kind, value[, comment]) tuples, in the first slots
    (NBKW is raised to hold them). WRITETIME/ATIME: seconds or (sec, nsec).
    The semaphores are sem_init(ptr, 1, 0) (INIT_SEMS). VERSION, LOCATION
    and EXTRA (bytes added to or, negative, cut from the end) make streams
    the library would refuse."""
    nbkw = max(nbkw, len(keywords))
    o = layout(datatype, dims, nbkw, nsem)
    buf = bytearray(o['size'])
    struct.pack_into('80s', buf, OFF_NAME, name.encode()[:79])
    struct.pack_into('B', buf, OFF_NAXIS, len(dims))
    struct.pack_into('3I', buf, OFF_SIZE, *(list(dims) + [0] * (3 - len(dims))))
    struct.pack_into('Q', buf, OFF_NELEMENT, o['nelement'])
    struct.pack_into('B', buf, OFF_DATATYPE, datatype)
    struct.pack_into('Q', buf, OFF_IMAGETYPE, 0x2)
    now = time.time()
    struct.pack_into('qq', buf, OFF_CREATIONTIME, *timespec(now))
    if writetime is not None:
        struct.pack_into('qq', buf, OFF_WRITETIME, *timespec(writetime))
    if atime is not None:
        struct.pack_into('qq', buf, OFF_ATIME, *timespec(atime))
    struct.pack_into('ii', buf, OFF_CREATORPID, os.getpid(), os.getpid())
    struct.pack_into('B', buf, OFF_SHARED, 1)
    struct.pack_into('b', buf, OFF_LOCATION, location)
    struct.pack_into('H', buf, OFF_SEM, nsem)
    struct.pack_into('H', buf, OFF_NBPROCTRACE, PROCTRACE)
    struct.pack_into('Q', buf, OFF_CNT0, cnt0)
    struct.pack_into('Q', buf, OFF_CNT1, cnt1)
    struct.pack_into('H', buf, OFF_NBKW, nbkw)
    struct.pack_into('Q', buf, OFF_IMDATAMEMSIZE, o['datasize'])
    buf[o['data']:o['data'] + len(data)] = data
    for i, kw in enumerate(keywords):
        at = o['keywords'] + i * KEYWORD_SIZE
        buf[at:at + KEYWORD_SIZE] = pack_keyword(*kw)
    if extra > 0:
        buf += bytes(extra)
    elif extra < 0:
        del buf[extra:]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.fchmod(fd, 0o666)
        os.write(fd, bytes(buf))
        if init_sems and extra >= 0:
            with mmap.mmap(fd, len(buf), mmap.MAP_SHARED) as m:
                for i in range(nsem):
                    sem = Semaphore(m, o['sems'] + i * SEM_SIZE)
                    if _libc().sem_init(sem.ptr, 1, 0) != 0:
                        raise OSError(ctypes.get_errno(), 'sem_init')
                    sem.release()
        os.pwrite(fd, struct.pack('Q', os.fstat(fd).st_ino), OFF_INODE)
        os.pwrite(fd, version.ljust(32, b'\0'), OFF_VERSION)  # written last
    finally:
        os.close(fd)
    return o


def read_state(path):
    """cnt0, cnt1, write flag, writetime and atime (sec, nsec) of a stream."""
    with open(path, 'rb') as f:
        meta = f.read(METADATA_SIZE)
    return {'cnt0': struct.unpack_from('Q', meta, OFF_CNT0)[0],
            'cnt1': struct.unpack_from('Q', meta, OFF_CNT1)[0],
            'write': meta[OFF_WRITE],
            'writetime': struct.unpack_from('qq', meta, OFF_WRITETIME),
            'atime': struct.unpack_from('qq', meta, OFF_ATIME)}


def read_pixels(path, o):
    """The pixel bytes of a stream of layout O (from make_stream)."""
    with open(path, 'rb') as f:
        f.seek(o['data'])
        return f.read(o['datasize'])


# -- process-shared semaphores inside a mapping (glibc's sem_t, via ctypes) --

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        for fn in ('sem_init', 'sem_post', 'sem_getvalue', 'sem_timedwait', 'sem_trywait'):
            getattr(_LIBC, fn).restype = ctypes.c_int
    return _LIBC


class _Timespec(ctypes.Structure):
    _fields_ = [('tv_sec', ctypes.c_long), ('tv_nsec', ctypes.c_long)]


class Semaphore:
    """The sem_t at OFFSET of mmap M. release() before closing M."""

    def __init__(self, m, offset):
        self._anchor = ctypes.c_char.from_buffer(m, offset)
        self.ptr = ctypes.c_void_p(ctypes.addressof(self._anchor))

    def value(self):
        v = ctypes.c_int(0)
        if _libc().sem_getvalue(self.ptr, ctypes.byref(v)) != 0:
            raise OSError(ctypes.get_errno(), 'sem_getvalue')
        return v.value

    def post(self):
        if _libc().sem_post(self.ptr) != 0:
            raise OSError(ctypes.get_errno(), 'sem_post')

    def drain(self):
        while _libc().sem_trywait(self.ptr) == 0:
            pass

    def timedwait(self, seconds):
        """True if posted within SECONDS (CLOCK_REALTIME deadline), False on timeout."""
        sec, nsec = timespec(time.time() + seconds)
        ts = _Timespec(sec, nsec)
        while True:
            if _libc().sem_timedwait(self.ptr, ctypes.byref(ts)) == 0:
                return True
            err = ctypes.get_errno()
            if err == errno.EINTR:
                continue
            if err == errno.ETIMEDOUT:
                return False
            raise OSError(err, 'sem_timedwait')

    def release(self):
        self.ptr = None
        self._anchor = None


class Stream:
    """A stream file mapped shared, for reading its semaphores and PIDs."""

    def __init__(self, path, o):
        self.o = o
        self.fd = os.open(path, os.O_RDWR)
        self.map = mmap.mmap(self.fd, os.fstat(self.fd).st_size, mmap.MAP_SHARED)
        self.nsem = struct.unpack_from('H', self.map, OFF_SEM)[0]
        self.sems = [Semaphore(self.map, o['sems'] + i * SEM_SIZE) for i in range(self.nsem)]

    def claim(self, i):
        """Claim semaphore slot I as a waiting reader does: PID into semReadPID[i]."""
        struct.pack_into('i', self.map, self.o['pids'] + 4 * i, os.getpid())

    def close(self):
        for sem in self.sems:
            sem.release()
        self.sems = []
        self.map.close()
        os.close(self.fd)


class Writer:
    """Updates a stream the way ImageStreamIO's writers do: write = 1, pixels,
    write time, cnt0 + 1, write = 0, and (POST) every semaphore whose value
    is below 10 posted."""

    def __init__(self, path, post=False):
        self.fd = os.open(path, os.O_RDWR)
        self.map = mmap.mmap(self.fd, os.fstat(self.fd).st_size, mmap.MAP_SHARED)
        self.sems = []
        if post:
            m = self.map
            datasize = struct.unpack_from('Q', m, OFF_IMDATAMEMSIZE)[0]
            nbkw = struct.unpack_from('H', m, OFF_NBKW)[0]
            nsem = struct.unpack_from('H', m, OFF_SEM)[0]
            sems = METADATA_SIZE + r8(datasize) + r8(KEYWORD_SIZE * nbkw)
            self.sems = [Semaphore(m, sems + i * SEM_SIZE) for i in range(nsem)]

    def frame(self, pixels, cnt1=None):
        m = self.map
        struct.pack_into('B', m, OFF_WRITE, 1)
        m[METADATA_SIZE:METADATA_SIZE + len(pixels)] = pixels
        now = time.time()
        struct.pack_into('qq', m, OFF_WRITETIME, int(now), int(now % 1 * 1e9))
        if cnt1 is not None:
            struct.pack_into('Q', m, OFF_CNT1, cnt1)
        cnt0 = struct.unpack_from('Q', m, OFF_CNT0)[0] + 1
        struct.pack_into('Q', m, OFF_CNT0, cnt0)
        struct.pack_into('B', m, OFF_WRITE, 0)
        for sem in self.sems:
            if sem.value() < 10:
                sem.post()
        return cnt0

    def close(self):
        for sem in self.sems:
            sem.release()
        self.sems = []
        self.map.close()
        os.close(self.fd)


@contextlib.contextmanager
def busy_writer(path, dims):
    """A thread writing float32 frames of shape DIMS (axis 1 first) into the
    stream at PATH as fast as it can, frame N holding N in every pixel, until
    the block ends: a reader that gets a torn frame sees mixed values, and a
    whole frame's pixels equal its CNT0 (for a stream that starts at 0)."""
    import threading
    w = Writer(path)
    stop = threading.Event()
    pixels = [bytes(4 * dims[0] * (dims[1] if len(dims) > 1 else 1))]

    def write():
        n = 0
        while not stop.is_set():
            n += 1
            w.frame(struct.pack('f', n) * (len(pixels[0]) // 4))

    t = threading.Thread(target=write)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()
        w.close()


def stream_layout(path):
    """The layout (as make_stream returns it) of the stream file at PATH,
    from its own metadata."""
    with open(path, 'rb') as f:
        meta = f.read(METADATA_SIZE)
    naxis = meta[OFF_NAXIS]
    dims = struct.unpack_from('3I', meta, OFF_SIZE)[:naxis]
    return layout(meta[OFF_DATATYPE], dims, struct.unpack_from('H', meta, OFF_NBKW)[0],
                  struct.unpack_from('H', meta, OFF_SEM)[0])


# -- pixels, and what a FITS view of them must hold (for test_views_*.py) --
#
# numpy is imported lazily: test_passthrough.py uses this module without it.

# FITS BZERO of the types stored with their top bit flipped.
FITS_BZERO = {'int8': -128, 'uint16': 32768, 'uint32': 2147483648,
              'uint64': 9223372036854775808}
FITS_BITPIX = {'uint8': 8, 'int8': 8, 'uint16': 16, 'int16': 16, 'uint32': 32, 'int32': 32,
               'uint64': 64, 'int64': 64, 'float32': -32, 'float64': -64,
               'complex64': -32, 'complex128': -64, 'float16': -32}


def dtype_of(datatype):
    """numpy dtype of an ImageStreamIO datatype code (or a numpy name)."""
    import numpy as np
    return np.dtype(DATATYPES[datatype][0] if isinstance(datatype, int) else datatype)


def sample_pixels(datatype, dims, seed=0):
    """Pixels of DATATYPE for size[] DIMS (x first) as a numpy array of shape
    reversed(DIMS): random values with the type's extremes in front (min,
    max, 0, -1 / 1; for floats inf, -inf, -0.0, the largest and smallest
    subnormal and a NaN)."""
    import numpy as np
    dt = dtype_of(datatype)
    rng = np.random.default_rng(seed + 1000 * dt.num)
    n = 1
    for d in dims:
        n *= d
    if dt.kind in 'ui':
        info = np.iinfo(dt)
        a = rng.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
        special = [info.min, info.max, 0, 1, info.max // 2 + 1]
        if dt.kind == 'i':
            special += [-1, info.min + 1]
    else:
        comp = np.dtype('float32') if dt == np.complex64 else \
            np.dtype('float64') if dt == np.complex128 else dt
        parts = 2 if dt.kind == 'c' else 1
        finfo = np.finfo(comp)
        scale = 1000.0 if comp.itemsize > 2 else 100.0
        real = (rng.standard_normal(n * parts) * scale).astype(comp)
        special = [np.inf, -np.inf, -0.0, finfo.max, finfo.smallest_subnormal,
                   -finfo.smallest_normal, 1.0 / 3.0, np.nan]
        special = np.array(special, dtype=comp)
        k = min(len(special), n * parts)
        real[:k] = special[:k]
        a = real.view(dt) if parts == 2 else real
        special = []
    a = np.array(a, dtype=dt)
    k = min(len(special), n)
    if k:
        a[:k] = np.array(special[:k], dtype=dt)
    return a.reshape(tuple(reversed(dims)))


def fits_data_bytes(a):
    """The FITS data bytes (unpadded) of native array A: big-endian, top bit
    flipped for BZERO types, float16 widened to float32, complex as {re, im}
    pairs of the component type."""
    import numpy as np
    a = np.ascontiguousarray(a)
    name = a.dtype.name
    if name == 'float16':
        return a.astype('>f4').tobytes()
    if a.dtype.kind == 'c':
        comp = 'f4' if name == 'complex64' else 'f8'
        return a.view(comp).astype('>' + comp).tobytes()
    be = np.frombuffer(a.astype(a.dtype.newbyteorder('>')).tobytes(), dtype=np.uint8).copy()
    if name in FITS_BZERO:
        be[0::a.dtype.itemsize] ^= 0x80
    return be.tobytes()


def from_fits_data_bytes(data, dtype, shape):
    """The inverse of fits_data_bytes: native pixels of DTYPE and SHAPE from
    FITS data bytes (float16 rounded from float32 by numpy)."""
    import numpy as np
    dt = np.dtype(dtype)
    n = 1
    for d in shape:
        n *= d
    if dt.name == 'float16':
        return np.frombuffer(data, '>f4', n).astype(np.float16).reshape(shape)
    if dt.kind == 'c':
        comp = 'f4' if dt.name == 'complex64' else 'f8'
        return np.frombuffer(data, '>' + comp, 2 * n).astype(comp).view(dt).reshape(shape)
    be = np.frombuffer(data, np.uint8, n * dt.itemsize).copy()
    if dt.name in FITS_BZERO:
        be[0::dt.itemsize] ^= 0x80
    return be.view(dt.newbyteorder('>')).astype(dt).reshape(shape)


def astropy_expected(a):
    """What astropy's fits.open(...)[0].data must equal for native array A:
    the same array, float16 as float32, complex as a trailing numpy axis of
    2 (FITS's leading axis)."""
    import numpy as np
    if a.dtype.name == 'float16':
        return a.astype(np.float32)
    if a.dtype.kind == 'c':
        comp = np.float32 if a.dtype.name == 'complex64' else np.float64
        return np.ascontiguousarray(a).view(comp).reshape(a.shape + (2,))
    return a


def fits_naxes(a):
    """NAXIS1..n of the FITS view of native array A (numpy shape reversed,
    complex with a leading axis of 2)."""
    axes = list(reversed(a.shape))
    return [2] + axes if a.dtype.kind == 'c' else axes


def fits_size(header_len, data_len):
    """Size of a FITS file with a header of HEADER_LEN bytes (a multiple of
    2880) and DATA_LEN data bytes."""
    return header_len + (data_len + 2879) // 2880 * 2880


def fits_header_cards(data):
    """(header length, {keyword: value text}) of the primary header at the
    front of the bytes DATA; the first card of each keyword wins."""
    cards = {}
    for i in range(0, len(data) - 79, 80):
        card = data[i:i + 80].decode('ascii')
        key = card[:8].rstrip()
        if key == 'END':
            return (i + 80 + 2879) // 2880 * 2880, cards
        if card[8:10] == '= ' and key not in cards:
            value = card[10:]
            if value.lstrip().startswith("'"):
                v = value.lstrip()[1:]
                out, j = [], 0
                while j < len(v):
                    if v[j] == "'":
                        if v[j + 1:j + 2] == "'":
                            out.append("'")
                            j += 2
                            continue
                        break
                    out.append(v[j])
                    j += 1
                cards[key] = ''.join(out).rstrip()
            else:
                cards[key] = value.split('/')[0].strip()
    raise ValueError('no END card')


FITS_READ = os.environ.get('SHMFS_FITS_READ', '')


class ViewChecks:
    """Assertions on FITS views, for MountTestCase subclasses: fitsverify,
    astropy and CFITSIO (tests/mount/fits_read) against the pixels written."""

    def assert_fitsverify(self, *paths):
        """`fitsverify -q` says OK for every path (exit status 0)."""
        r = self.run_cmd(['fitsverify', '-q', *paths])
        bad = [p for p in paths if f'verification OK: {p}' not in r.stdout]
        if bad or r.returncode != 0:
            detail = self.run_cmd(['fitsverify', *(bad or paths)]).stdout
            self.fail(f'fitsverify failed (status {r.returncode}) for {bad}:\n{r.stdout}\n'
                      f'{detail}')

    def assert_astropy_pixels(self, path, a, header=None):
        """astropy reads native array A from the FITS file PATH (see
        astropy_expected); HEADER: cards that must have these values."""
        import numpy as np
        from astropy.io import fits
        with fits.open(path, memmap=False) as hdul:
            self.assertEqual(len(hdul), 1, f'{path}: one HDU')
            hdr = hdul[0].header.copy()   # before the data: astropy drops BZERO then
            data = hdul[0].data
            want = astropy_expected(a)
            self.assertIsNotNone(data, f'{path}: no data')
            self.assertEqual(data.dtype.newbyteorder('='), want.dtype.newbyteorder('='),
                             f'{path}: astropy dtype')
            self.assertEqual(data.shape, want.shape, f'{path}: astropy shape')
            self.assertTrue(np.array_equal(data, want, equal_nan=want.dtype.kind == 'f'),
                            f'{path}: astropy pixels differ:\n{data!r}\nwant\n{want!r}')
            if want.dtype.kind == 'f':   # -0.0 and 0.0 compare equal: check signs too
                self.assertTrue(np.array_equal(np.signbit(data), np.signbit(want)),
                                f'{path}: sign bits differ')
            for key, value in (header or {}).items():
                self.assertIn(key, hdr, f'{path}: no {key} card')
                self.assertEqual(hdr[key], value, f'{path}: card {key}')
            return hdr

    def fits_read(self, path, *keys):
        """Run CFITSIO's reader on PATH: dict bitpix, equiv, naxes, keys,
        values (the pixel texts)."""
        if not FITS_READ:
            self.fail('SHMFS_FITS_READ must name tests/mount/fits_read (run through ctest)')
        r = self.run_cmd([FITS_READ, path, *keys])
        if r.returncode != 0:
            self.fail(f'fits_read {path} failed:\n{r.stderr}')
        lines = r.stdout.split('\n')
        head = [int(x) for x in lines[0].split()]
        got = {'bitpix': head[0], 'equiv': head[1], 'naxes': head[3:3 + head[2]], 'keys': {}}
        i = 1
        while lines[i] != 'DATA':
            k, _, v = lines[i].partition(' ')
            got['keys'][k] = v
            i += 1
        got['values'] = [v for v in lines[i + 1:] if v]
        return got

    def assert_cfitsio_pixels(self, path, a):
        """CFITSIO, opening PATH with fits_open_file, reads native array A."""
        import numpy as np
        got = self.fits_read(path)
        self.assertEqual(got['bitpix'], FITS_BITPIX[a.dtype.name], f'{path}: CFITSIO BITPIX')
        self.assertEqual(got['naxes'], fits_naxes(a), f'{path}: CFITSIO axes')
        flat = np.ascontiguousarray(a).ravel()
        if a.dtype.kind in 'ui':
            self.assertEqual([int(v) for v in got['values']], [int(x) for x in flat],
                             f'{path}: CFITSIO pixels')
            return
        if a.dtype.kind == 'c':
            flat = flat.view(np.float32 if a.dtype.name == 'complex64' else np.float64)
        want = flat.astype(np.float64)
        have = np.array([float(v) for v in got['values']], dtype=np.float64)
        self.assertEqual(have.shape, want.shape, f'{path}: CFITSIO pixel count')
        self.assertTrue(np.array_equal(have, want, equal_nan=True) and
                        np.array_equal(np.signbit(have), np.signbit(want)),
                        f'{path}: CFITSIO pixels differ:\n{have!r}\nwant\n{want!r}')


# A reader that claims semaphore slot argv[2] of stream argv[1], drains it,
# prints "ready", waits up to argv[3] seconds, then prints "woken CNT0" (exit
# 0) or "timeout CNT0" (exit 1). Run with PYTHONPATH holding this directory.
WAITER = r'''
import sys
import isio
path, slot, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = isio.Stream(path, isio.stream_layout(path))
s.claim(slot)
s.sems[slot].drain()
print('ready', flush=True)
ok = s.sems[slot].timedwait(timeout)
print('woken' if ok else 'timeout', isio.read_state(path)['cnt0'], flush=True)
s.close()
sys.exit(0 if ok else 1)
'''


@contextlib.contextmanager
def waiting(path, slot, timeout):
    """A WAITER process on semaphore SLOT of stream PATH, already blocked in
    its wait (it printed "ready" and did not return within 0.2 s); killed on
    the way out if it is still running."""
    p = subprocess.Popen([sys.executable, '-c', WAITER, path, str(slot), str(timeout)],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.abspath(__file__))))
    try:
        line = p.stdout.readline().strip()
        if line != 'ready':
            raise AssertionError(f'the waiter did not start: {line!r} {p.stderr.read()}')
        time.sleep(0.2)   # let it block in sem_timedwait
        if p.poll() is not None:
            raise AssertionError('the waiter did not wait')
        yield p
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
