"""test_shmtool.py - shmtool against real segments: POSIX objects in a fresh
/dev/shm (streams, links, IMOD files, typed and raw objects, semaphores),
System V segments of a private IPC namespace, and CFITSIO files made by
CFITSIO itself (cfshm_make). Saved files are checked with fitsverify,
astropy and mrcfile; terminal output through a pseudo-terminal."""

import ctypes
import json
import mmap
import os
import pty
import select
import shutil
import struct
import subprocess
import tempfile
import unittest

import numpy as np

import isio

TOOLS = os.environ.get('SHMFS_TOOLS', '')
SHMTOOL = os.path.join(TOOLS, 'shmtool')
SYSVTOOL = os.environ.get('SHMFS_SYSVTOOL', '')
CFSHM_MAKE = os.environ.get('SHMFS_CFSHM_MAKE', '')
SHM = '/dev/shm'

# CFITSIO's lock file lives in the real /tmp, shared with every other test:
# a key base of our own gives us our own lock file and keys.
KEYBASE = 30000000 + (os.getpid() % 100000) * 64
ENV = dict(os.environ, LC_ALL='C', LANG='C', SHMEM_LIB_KEYBASE=str(KEYBASE))
ENV.pop('SHMTOOL_PROGRESS_AFTER', None)
CRASH = ('AddressSanitizer', 'LeakSanitizer', 'runtime error:', 'SUMMARY:')

IPC_CREAT, IPC_RMID = 0o1000, 0
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.shmat.restype = ctypes.c_void_p
LIBC.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
LIBC.shmdt.argtypes = [ctypes.c_void_p]


def tearDownModule():
    for name in (f'/tmp/.shmem-lockfile.{KEYBASE}.16',):
        if os.path.exists(name):
            os.unlink(name)


def shm_create(key, size, data=b''):
    """A System V segment made by this (living) process, holding DATA."""
    shmid = LIBC.shmget(key, size, IPC_CREAT | 0o600)
    if shmid < 0:
        raise OSError(ctypes.get_errno(), 'shmget')
    if data:
        addr = LIBC.shmat(shmid, None, 0)
        ctypes.memmove(addr, data, len(data))
        LIBC.shmdt(addr)
    return shmid


def make_imod(name, a, kb=None):
    """An IMOD shared-memory file /dev/shm/IMODShrMem_KB_NAME holding the
    (nz, ny, nx) array A, as IMOD lays it out: the in-memory MRC header,
    labels at a stride of 81, the data from byte 2048."""
    mode = {'int16': 1, 'float32': 2, 'uint16': 6, 'uint8': 0}[a.dtype.name]
    nz, ny, nx = a.shape
    head = bytearray(2048)
    struct.pack_into('4i', head, 0, nx, ny, nz, mode)
    struct.pack_into('3i', head, 28, nx, ny, nz)
    struct.pack_into('6f', head, 40, nx, ny, nz, 90, 90, 90)
    struct.pack_into('3i', head, 64, 1, 2, 3)
    head[208:216] = b'MAP DD\0\0'
    struct.pack_into('i', head, 220, 1)
    head[224:224 + 16] = b'made by the test'
    kb = kb or (2048 + a.nbytes) // 1024 + 2
    objname = f'IMODShrMem_{kb}_{name}'
    with open(os.path.join(SHM, objname), 'wb') as f:
        f.write(bytes(head) + a.tobytes())
        f.truncate(kb * 1024)
    return objname


class ShmtoolCase(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='shmtool-test.')

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        for name in os.listdir(SHM):
            os.unlink(os.path.join(SHM, name))
        subprocess.run(['ipcrm', '--all'], check=False, capture_output=True)

    def run_tool(self, *args, ok=True, env=None):
        r = subprocess.run([SHMTOOL, *args], capture_output=True, text=True, timeout=120,
                           env=env or ENV)
        for pattern in CRASH:
            self.assertNotIn(pattern, r.stderr, f'shmtool {args}: sanitizer:\n{r.stderr}')
        if ok:
            self.assertEqual(r.returncode, 0, f'shmtool {args} failed:\n{r.stderr}')
            self.assertEqual(r.stderr, '', f'shmtool {args}: stderr')
        return r

    def fails(self, *args, name, status=1):
        """shmtool ARGS fails with one line "shmtool: NAME: ..." on stderr."""
        r = self.run_tool(*args, ok=False)
        self.assertEqual(r.returncode, status, f'shmtool {args}: {r.stderr}')
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(f'shmtool: {name}: '), r.stderr)
        return lines[0]

    def helper(self, *args):
        return subprocess.run(list(args), capture_output=True, text=True, check=True,
                              env=ENV).stdout.strip()

    def ls_json(self, *args):
        out = self.run_tool('ls', '--json', *args).stdout
        return {o['name']: o for o in map(json.loads, out.splitlines())}

    def on_tty(self, args, env=None):
        """Run shmtool with stdout and stderr on a pseudo-terminal: its output."""
        master, slave = pty.openpty()
        p = subprocess.Popen([SHMTOOL, *args], stdout=slave, stderr=slave, env=env or ENV)
        os.close(slave)
        out = b''
        while True:
            ready, _, _ = select.select([master], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(p.wait(timeout=60), 0)
        return out.decode(errors='replace')

    def stream(self, name='cam', datatype=9, dims=(64, 48), **kw):
        a = isio.sample_pixels(datatype, dims, seed=len(name))
        o = isio.make_stream(os.path.join(SHM, name + '.im.shm'), name, datatype, dims,
                             data=a.tobytes(), **kw)
        return a, o

    def fits_data(self, path, header=None):
        self.assertIn(f'verification OK: {path}',
                      subprocess.run(['fitsverify', '-q', path], capture_output=True,
                                     text=True).stdout)
        from astropy.io import fits
        with fits.open(path, memmap=False) as hdul:
            self.assertEqual(len(hdul), 1)
            hdr = hdul[0].header.copy()
            data = hdul[0].data
        for key, value in (header or {}).items():
            self.assertEqual(hdr[key], value, key)
        return hdr, data


class HelpTest(ShmtoolCase):

    def test_every_command_has_help(self):
        for cmd in ('ls', 'info', 'top', 'load', 'save', 'link', 'rm', 'clean'):
            r = self.run_tool(cmd, '--help')
            self.assertTrue(r.stdout.startswith(f'usage: shmtool {cmd}'), r.stdout)
        self.assertIn('shmtool clean', self.run_tool('--help').stdout)

    def test_usage_errors(self):
        self.fails('frobnicate', name='frobnicate', status=2)
        self.fails('ls', '--bogus', name='ls', status=2)
        self.fails('info', name='info', status=2)
        self.fails('save', 'cam', name='save', status=2)
        self.fails('save', '--shape', '4', 'x', 'y.fits', name='save', status=2)
        self.fails('info', 'nosuch', name='nosuch')
        self.fails('info', '0x0000abcd', name='0x0000abcd')
        self.fails('info', 'h7', name='h7')
        self.fails('info', 'shmem://x', name='shmem://x')


class ListTest(ShmtoolCase):

    def make_everything(self):
        self.stream('cam', 9, (64, 48), cnt0=7)
        busy, _ = self.stream('busy', 3, (16,))
        with open(os.path.join(SHM, 'busy.im.shm'), 'r+b') as f:
            f.seek(isio.OFF_WRITE)
            f.write(b'\1')                  # a writer in the middle of a frame
        os.symlink('cam.im.shm', os.path.join(SHM, 'alias.im.shm'))
        self.imod = make_imod('vol', np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4))
        with open(os.path.join(SHM, 'typed'), 'wb') as f:
            f.write(bytes(4096))
        os.setxattr(os.path.join(SHM, 'typed'), 'user.shmfs.type', b'uint16')
        os.setxattr(os.path.join(SHM, 'typed'), 'user.shmfs.shape', b'32,16')
        with open(os.path.join(SHM, 'bytes'), 'wb') as f:
            f.write(b'x' * 100)
        with open(os.path.join(SHM, 'bad.im.shm'), 'wb') as f:
            f.write(b'not a stream')
        self.helper(SYSVTOOL, 'create', '0x1234', '4096')
        self.private = int(self.helper(SYSVTOOL, 'private', '8192'))
        self.mine = shm_create(0x5678, 1000)
        self.cfkey = self.helper(CFSHM_MAKE, '2', '10', '20', '16')

    def test_json(self):
        self.make_everything()
        objs = self.ls_json()
        self.assertEqual(objs['cam.im.shm']['format'], 'stream')
        self.assertEqual(objs['cam.im.shm']['type'], 'float32')
        self.assertEqual(objs['cam.im.shm']['shape'], [64, 48])
        self.assertEqual(objs['cam.im.shm']['cnt0'], 7)
        self.assertFalse(objs['cam.im.shm']['writing'])
        self.assertTrue(objs['busy.im.shm']['writing'])
        self.assertEqual(objs['busy.im.shm']['type'], 'uint16')
        self.assertEqual(objs['alias.im.shm']['format'], 'link')
        self.assertEqual(objs['alias.im.shm']['target'], 'cam.im.shm')
        self.assertEqual(objs['alias.im.shm']['shape'], [64, 48])
        self.assertEqual(objs[self.imod]['format'], 'imod')
        self.assertEqual(objs[self.imod]['type'], 'int16')
        self.assertEqual(objs[self.imod]['shape'], [4, 3, 2])
        self.assertEqual(objs['typed']['format'], 'typed')
        self.assertEqual(objs['typed']['shape'], [32, 16])
        self.assertEqual(objs['bytes']['format'], 'raw')
        self.assertIsNone(objs['bytes']['type'])
        self.assertEqual(objs['bad.im.shm']['format'], 'raw')
        self.assertIn('not a valid stream', objs['bad.im.shm']['note'])
        self.assertEqual(objs['bytes']['mode'], '0644')
        self.assertEqual(objs['bytes']['owner'], 'root')
        self.assertEqual(objs['bytes']['size'], 100)
        seg = objs['0x00001234']
        self.assertEqual((seg['backend'], seg['format'], seg['size']), ('sysv', 'raw', 4096))
        self.assertFalse(seg['cpid_alive'])     # sysvtool has exited
        self.assertEqual(seg['nattch'], 0)
        self.assertTrue(objs['0x00005678']['cpid_alive'])
        self.assertEqual(objs['0x00005678']['cpid'], os.getpid())
        self.assertEqual(objs[f'id-{self.private}']['size'], 8192)
        cf = objs[self.cfkey]
        self.assertEqual(cf['format'], 'cfitsio')
        self.assertEqual(cf['cfitsio'], 'shmem://h2')
        self.assertEqual((cf['type'], cf['shape']), ('int16', [10, 20]))
        self.assertEqual(objs[f'0x{KEYBASE:08x}']['format'], 'cfitsio-table')
        # nattch follows attachments
        hold = subprocess.Popen([SYSVTOOL, 'hold', '0x1234'], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(hold.stdout.readline().strip(), 'attached')
            self.assertEqual(self.ls_json()['0x00001234']['nattch'], 1)
        finally:
            hold.stdin.close()
            hold.wait()
            hold.stdout.close()

    def test_pipe_is_tab_separated(self):
        self.make_everything()
        lines = self.run_tool('ls').stdout.splitlines()
        rows = {line.split('\t')[0]: line.split('\t') for line in lines}
        self.assertNotIn('NAME', rows)
        for fields in rows.values():
            self.assertEqual(len(fields), 11, fields)   # ... DETAILS, HZ, PROCESSES
        self.assertEqual(rows['cam.im.shm'][1:8],
                         ['posix', 'stream', 'float32', '64,48', str(os.path.getsize(
                             os.path.join(SHM, 'cam.im.shm'))), 'root', '0666'])
        self.assertEqual(rows['cam.im.shm'][8], 'cnt0=7')
        self.assertEqual(rows['busy.im.shm'][8], 'cnt0=0 writing')
        self.assertEqual(rows['0x00001234'][8][-len('(gone)'):], '(gone)')
        self.assertNotIn('(gone)', rows['0x00005678'][8])
        self.assertTrue(rows[self.cfkey][8].startswith('shmem://h2 nattch=0'))
        # posix objects by name first, then segments
        names = [line.split('\t')[0] for line in lines]
        posix = [n for n in names if rows[n][1] == 'posix']
        self.assertEqual(names[:len(posix)], sorted(posix))
        long_rows = [line.split('\t') for line in self.run_tool('ls', '-l').stdout.splitlines()]
        for fields in long_rows:
            self.assertEqual(len(fields), 13, fields)
        cam = next(f for f in long_rows if f[0] == 'cam.im.shm')
        self.assertEqual(cam[7], 'root')
        self.assertRegex(cam[9], r'^\d{4}-\d\d-\d\d \d\d:\d\d$')
        self.assertIn('name=cam', cam[10])

    def test_terminal_is_aligned(self):
        self.make_everything()
        lines = [l for l in self.on_tty(['ls']).split('\r\n') if l]
        self.assertTrue(lines[0].startswith('NAME'), lines)
        at = lines[0].index('BACKEND')
        for line in lines[1:]:
            self.assertIn(line[at:at + 5], ('posix', 'sysv '), line)
        fmt = lines[0].index('FORMAT')
        self.assertTrue(all(line[fmt - 2:fmt] == '  ' for line in lines), lines)

    def test_other_directory(self):
        d = os.path.join(self.tmp, 'streams')
        os.mkdir(d)
        isio.make_stream(os.path.join(d, 'x.im.shm'), 'x', 9, (4, 4))
        objs = self.ls_json(d)
        self.assertEqual(objs['x.im.shm']['path'], os.path.join(d, 'x.im.shm'))
        self.assertEqual(self.run_tool('info', '--dir', d, 'x').stdout.split('\n')[0].split(),
                         ['name:', 'x.im.shm'])
        self.fails('ls', os.path.join(self.tmp, 'file-not-dir'), 'x', name='ls', status=2)


class InfoTest(ShmtoolCase):

    def test_stream(self):
        self.stream('cam', 9, (8, 6), cnt0=3, cnt1=1, writetime=(1700000000, 5000),
                    keywords=[('EXPTIME', 'D', 0.25, 'seconds'), ('GAIN', 'L', 4),
                              ('FILTER', 'S', 'H', 'band')])
        text = self.run_tool('info', 'cam').stdout
        self.assertIn('keyword.EXPTIME:   0.25 (D) / seconds', text)
        self.assertIn('keyword.FILTER:    H (S) / band', text)
        self.assertIn('writetime:         2023-11-14T22:13:20.000005Z', text)
        info = json.loads(self.run_tool('info', '--json', 'cam.im.shm').stdout)
        self.assertEqual(info['cnt0'], 3)
        self.assertEqual(info['cnt1'], 1)
        self.assertEqual(info['nsem'], 10)
        self.assertEqual(len(info['semaphores']), 10)
        self.assertEqual({k['name']: k['value'] for k in info['keywords']},
                         {'EXPTIME': 0.25, 'GAIN': 4, 'FILTER': 'H'})
        self.assertEqual(info['creator_pid'], os.getpid())
        self.assertTrue(info['creator_alive'])
        # a semaphore posted and claimed shows
        s = isio.Stream(os.path.join(SHM, 'cam.im.shm'), isio.stream_layout(
            os.path.join(SHM, 'cam.im.shm')))
        try:
            s.claim(2)
            s.sems[2].post()
            info = json.loads(self.run_tool('info', '--json', 'cam').stdout)
            self.assertEqual(info['semaphores'][2], {'value': 1, 'reader_pid': os.getpid(),
                                                     'writer_pid': 0})
        finally:
            s.close()

    def test_segments_and_cfitsio(self):
        key = self.helper(CFSHM_MAKE, '3', '5', '4')
        by_key = json.loads(self.run_tool('info', '--json', key).stdout)
        for name in ('h3', 'shmem://h3'):
            self.assertEqual(json.loads(self.run_tool('info', '--json', name).stdout)['shmid'],
                             by_key['shmid'])
        self.assertEqual(by_key['header'][0][:30], 'SIMPLE  =                    T')
        self.assertIn("OBJECT  = 'ramp    '           / made by cfshm_make", by_key['header'])
        self.assertEqual(by_key['header'][-1], 'END')
        private = int(self.helper(SYSVTOOL, 'private', '100'))
        info = json.loads(self.run_tool('info', '--json', f'id-{private}').stdout)
        self.assertEqual((info['size'], info['key'], info['format']), (100, '0x00000000', 'raw'))
        self.assertEqual(info['creator_user'], 'root')

    def test_imod(self):
        name = make_imod('labels', np.zeros((1, 2, 2), np.float32))
        info = json.loads(self.run_tool('info', '--json', name).stdout)
        self.assertEqual(info['labels'], ['made by the test'])
        self.assertEqual(info['mrc_mode'], 2)


class SaveTest(ShmtoolCase):

    def test_stream_types(self):
        for datatype in sorted(isio.DATATYPES):
            name = isio.DATATYPES[datatype][0]
            with self.subTest(name):
                a, _ = self.stream(f's{datatype}', datatype, (5, 3, 2), cnt0=11,
                                   keywords=[('EXPTIME', 'D', 2.5, 'sec'), ('_HIDE', 'L', 1)])
                out = os.path.join(self.tmp, f'{name}.fits')
                self.run_tool('save', f's{datatype}', out)
                hdr, data = self.fits_data(out, {'CNT0': 11, 'EXPTIME': 2.5,
                                                 'SHMNAME': f's{datatype}'})
                self.assertNotIn('_HIDE', hdr)
                want = isio.astropy_expected(a)
                self.assertEqual(data.shape, want.shape)
                self.assertTrue(np.array_equal(data, want, equal_nan=True))
        self.assertEqual(sorted(os.listdir(self.tmp)),
                         sorted(f'{isio.DATATYPES[d][0]}.fits' for d in isio.DATATYPES))

    def test_link_and_replace(self):
        a, _ = self.stream('cam', 9, (4, 4))
        os.symlink('cam.im.shm', os.path.join(SHM, 'alias.im.shm'))
        out = os.path.join(self.tmp, 'o.fits')
        with open(out, 'w') as f:
            f.write('old')
        self.run_tool('save', 'alias', out)
        self.assertTrue(np.array_equal(self.fits_data(out)[1], a, equal_nan=True))
        self.fails('save', 'cam', os.path.join(self.tmp, 'nodir', 'x.fits'), name='cam')
        self.fails('save', 'cam', os.path.join(self.tmp, 'x.mrc'), name='cam')

    def test_consistent_frames_under_a_writer(self):
        # A writer flat out may leave no gap a frame fits in: then the frame
        # is saved as it stands, never refused, and says so (the SHMTORN
        # card, one note on stderr). A frame without the card is whole.
        dims = (256, 256)
        self.stream('fast', 9, dims)
        with isio.busy_writer(os.path.join(SHM, 'fast.im.shm'), dims):
            for i in range(8):
                out = os.path.join(self.tmp, f'f{i}.fits')
                r = self.run_tool('save', 'fast', out, ok=False)
                self.assertEqual(r.returncode, 0, f'shmtool save failed:\n{r.stderr}')
                for pattern in CRASH:
                    self.assertNotIn(pattern, r.stderr)
                hdr, data = self.fits_data(out)
                if 'SHMTORN' in hdr:
                    self.assertRegex(hdr['SHMTORN'], r'writer (left no gap|stopped mid-frame)')
                    self.assertRegex(r.stderr, r'^shmtool: fast: not one whole frame')
                    continue
                self.assertEqual(r.stderr, '', f'frame {i}: a note without SHMTORN')
                self.assertTrue((data == data.flat[0]).all(), f'frame {i} torn, no SHMTORN')
                self.assertEqual(hdr['CNT0'], int(data.flat[0]))
        # Once the writer stops, a save is whole and unmarked.
        out = os.path.join(self.tmp, 'after.fits')
        self.run_tool('save', 'fast', out)
        hdr, data = self.fits_data(out)
        self.assertNotIn('SHMTORN', hdr)
        self.assertEqual(hdr['CNT0'], int(data.flat[0]))

    def test_imod(self):
        import mrcfile
        a = (np.arange(3 * 4 * 5, dtype=np.float32) / 7).reshape(3, 4, 5)
        name = make_imod('vol', a)
        out = os.path.join(self.tmp, 'vol.mrc')
        self.run_tool('save', name, out)
        self.assertTrue(mrcfile.validate(out))
        with mrcfile.open(out) as m:
            self.assertTrue(np.array_equal(m.data, a))
        fits_out = os.path.join(self.tmp, 'vol.fits')
        self.run_tool('save', name, fits_out)
        _, data = self.fits_data(fits_out, {'ORIGIN': 'IMOD shared memory'})
        self.assertTrue(np.array_equal(data, a))

    def test_typed_and_layouts(self):
        a = isio.sample_pixels('uint16', (6, 5))
        with open(os.path.join(SHM, 'typed'), 'wb') as f:
            f.write(bytes(16) + a.tobytes())
        os.setxattr(os.path.join(SHM, 'typed'), 'user.shmfs.type', b'UINT')
        os.setxattr(os.path.join(SHM, 'typed'), 'user.shmfs.shape', b'6,5')
        os.setxattr(os.path.join(SHM, 'typed'), 'user.shmfs.offset', b'16')
        out = os.path.join(self.tmp, 't.fits')
        self.run_tool('save', 'typed', out)
        self.assertTrue(np.array_equal(self.fits_data(out)[1], a))
        # a raw System V segment, read with a layout from the command line
        b = isio.sample_pixels('float64', (3, 7))
        shm_create(0x4242, 4096, bytes(8) + b.tobytes())
        self.fails('save', '0x00004242', out, name='0x00004242')
        self.run_tool('save', '--type', 'float64', '--shape', '3,7', '--offset', '8',
                      '0x00004242', out)
        self.assertTrue(np.array_equal(self.fits_data(out)[1], b, equal_nan=True))
        line = self.fails('save', '--type', 'float64', '--shape', '3000,7', '0x00004242', out,
                          name='0x00004242')
        self.assertIn('needs more than the 4096 bytes', line)

    def test_cfitsio(self):
        self.helper(CFSHM_MAKE, '4', '30', '20', '32')
        out = os.path.join(self.tmp, 'h4.fits')
        self.run_tool('save', 'shmem://h4', out)
        hdr, data = self.fits_data(out, {'OBJECT': 'ramp', 'SLOT': 4})
        self.assertTrue(np.array_equal(data.ravel(), np.arange(600) % 1000003))

    def test_progress_on_a_terminal(self):
        self.stream('big', 9, (1024, 1024))
        out = os.path.join(self.tmp, 'big.fits')
        text = self.on_tty(['save', 'big', out], env=dict(ENV, SHMTOOL_PROGRESS_AFTER='0'))
        self.assertIn('saving big.im.shm [', text)
        self.assertIn('MiB', text)
        self.assertEqual(self.run_tool('save', 'big', out).stderr, '')   # not a terminal
        quick = self.on_tty(['save', 'big', out])                          # under a second
        self.assertNotIn('[', quick)


class LoadTest(ShmtoolCase):

    def write_fits(self, a, **cards):
        from astropy.io import fits
        path = os.path.join(self.tmp, f'in{len(os.listdir(self.tmp))}.fits')
        hdu = fits.PrimaryHDU(a)
        for k, v in cards.items():
            hdu.header[k] = v
        hdu.writeto(path)
        return path

    def test_create_update_replace(self):
        a = np.arange(12, dtype=np.float32).reshape(3, 4)
        path = self.write_fits(a, EXPTIME=3.0)
        self.assertEqual(self.run_tool('load', path, 'new').stdout, 'new.im.shm: created\n')
        o = isio.stream_layout(os.path.join(SHM, 'new.im.shm'))
        got = np.frombuffer(isio.read_pixels(os.path.join(SHM, 'new.im.shm'), o), np.float32)
        self.assertTrue(np.array_equal(got.reshape(3, 4), a))
        info = json.loads(self.run_tool('info', '--json', 'new').stdout)
        self.assertEqual({k['name']: k['value'] for k in info['keywords']}.get('EXPTIME'), 3.0)
        cnt0 = info['cnt0']
        self.assertEqual(self.run_tool('load', self.write_fits(a + 1), 'new.im.shm').stdout,
                         'new.im.shm: updated\n')
        self.assertEqual(isio.read_state(os.path.join(SHM, 'new.im.shm'))['cnt0'], cnt0 + 1)
        self.assertEqual(self.run_tool('load', self.write_fits(np.zeros((2, 2), np.int16)),
                                       'new').stdout, 'new.im.shm: replaced\n')
        self.assertEqual(self.ls_json()['new.im.shm']['type'], 'int16')
        # round trip through save
        out = os.path.join(self.tmp, 'back.fits')
        self.run_tool('save', 'new', out)
        self.assertTrue(np.array_equal(self.fits_data(out)[1], np.zeros((2, 2), np.int16)))

    def test_mrc_into_imod(self):
        import mrcfile
        a = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
        path = os.path.join(self.tmp, 'v.mrc')
        with mrcfile.new(path) as m:
            m.set_data(a)
        self.assertEqual(self.run_tool('load', path, 'IMODShrMem_64_v').stdout,
                         'IMODShrMem_64_v: created\n')
        objs = self.ls_json()
        self.assertEqual((objs['IMODShrMem_64_v']['format'], objs['IMODShrMem_64_v']['shape']),
                         ('imod', [4, 3, 2]))
        out = os.path.join(self.tmp, 'back.mrc')
        self.run_tool('save', 'IMODShrMem_64_v', out)
        with mrcfile.open(out) as m:
            self.assertTrue(np.array_equal(m.data, a))

    def test_refusals(self):
        path = self.write_fits(np.zeros(4, np.float32))
        self.fails('load', path, '0x00001234', name='0x00001234')
        self.fails('load', path, 'h1', name='h1')
        self.fails('load', path, 'IMODShrMem_64_x', name='IMODShrMem_64_x')
        self.fails('load', os.path.join(self.tmp, 'missing.fits'), 'x',
                   name=os.path.join(self.tmp, 'missing.fits'))
        junk = os.path.join(self.tmp, 'junk.fits')
        with open(junk, 'wb') as f:
            f.write(b'hello' * 1000)
        self.fails('load', junk, 'x', name='x')
        self.assertEqual(os.listdir(SHM), [])


class LinkRmTest(ShmtoolCase):

    def test_link(self):
        self.stream('cam')
        self.stream('cam2')
        self.run_tool('link', 'cam', 'live')
        self.assertEqual(os.readlink(os.path.join(SHM, 'live.im.shm')), 'cam.im.shm')
        self.run_tool('link', 'cam2.im.shm', 'live.im.shm')       # replaced
        self.assertEqual(os.readlink(os.path.join(SHM, 'live.im.shm')), 'cam2.im.shm')
        self.fails('link', 'cam', 'cam2', name='cam2')             # a real stream stays
        self.fails('link', 'nosuch', 'x', name='nosuch')
        self.fails('link', 'cam', 'cam', name='cam')
        self.assertEqual(sorted(os.listdir(SHM)), ['cam.im.shm', 'cam2.im.shm', 'live.im.shm'])

    def test_rm(self):
        self.stream('cam')
        os.symlink('cam.im.shm', os.path.join(SHM, 'alias.im.shm'))
        with open(os.path.join(SHM, 'plain'), 'w') as f:
            f.write('x')
        self.helper(SYSVTOOL, 'create', '0x1234', '4096')
        private = int(self.helper(SYSVTOOL, 'private', '4096'))
        self.helper(CFSHM_MAKE, '5', '4', '4')
        self.run_tool('rm', 'alias', 'plain', '0x00001234', f'id-{private}', 'h5')
        self.assertEqual(os.listdir(SHM), ['cam.im.shm'])
        objs = self.ls_json()
        self.assertEqual([o['format'] for o in objs.values()], ['stream', 'cfitsio-table'])
        # the slot is free again for CFITSIO
        self.helper(CFSHM_MAKE, '5', '4', '4')
        r = self.run_tool('rm', 'nosuch', 'cam', ok=False)
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr, 'shmtool: nosuch: no such shared-memory object\n')
        self.assertFalse(os.path.exists(os.path.join(SHM, 'cam.im.shm')))


class CleanTest(ShmtoolCase):

    def test_clean(self):
        self.helper(SYSVTOOL, 'create', '0x1111', '4096')          # orphan
        self.helper(SYSVTOOL, 'create', '0x2222', '4096')          # held below
        shm_create(0x3333, 4096)                                   # creator alive
        self.helper(CFSHM_MAKE, '2', '4', '4')                     # CFITSIO file: spared
        stale = self.helper(CFSHM_MAKE, '3', '4', '4')
        self.helper(SYSVTOOL, 'rm', stale)                         # h3's segment vanishes
        self.stream('cam')
        for name in ('sem.gone_sem00', 'sem.cam_sem01', 'sem..milk.shm.other_sem02',
                     'sem.mapped_sem00', 'sem.unrelated'):
            with open(os.path.join(SHM, name), 'wb') as f:
                f.write(bytes(32))
        fd = os.open(os.path.join(SHM, 'sem.mapped_sem00'), os.O_RDWR)
        mapping = mmap.mmap(fd, 32)
        hold = subprocess.Popen([SYSVTOOL, 'hold', '0x2222'], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(hold.stdout.readline().strip(), 'attached')
            want = {'0x00001111', 'h3', 'sem.gone_sem00', 'sem..milk.shm.other_sem02'}
            for args in ((), ('--dry-run',), ('--dry-run', '--yes')):
                lines = self.run_tool('clean', *args).stdout.splitlines()
                self.assertEqual({l.split(':')[0].split(' ')[-1] for l in lines}, want, lines)
                self.assertTrue(all(l.startswith('would remove ') for l in lines), lines)
            self.assertIn('nobody attached, creator PID',
                          self.run_tool('clean').stdout)
            lines = self.run_tool('clean', '--yes').stdout.splitlines()
            self.assertEqual({l.split(':')[0] for l in lines}, {'removed ' + n for n in want})
            self.assertEqual(self.run_tool('clean').stdout, '')
            objs = self.ls_json()
            self.assertNotIn('0x00001111', objs)
            for key in ('0x00002222', '0x00003333'):
                self.assertIn(key, objs)
            self.assertIn('shmem://h2', [o.get('cfitsio') for o in objs.values()])
            self.assertEqual(sorted(n for n in os.listdir(SHM) if n.startswith('sem.')),
                             ['sem.cam_sem01', 'sem.mapped_sem00', 'sem.unrelated'])
            self.helper(CFSHM_MAKE, '3', '4', '4')                 # slot 3 usable again
        finally:
            hold.stdin.close()
            hold.wait()
            hold.stdout.close()
            mapping.close()
            os.close(fd)


if __name__ == '__main__':
    unittest.main()
