"""test_views_cfitsio.py - issue 4: CFITSIO shared-memory files (shmem://hN,
made here by CFITSIO's own driver through tests/mount/cfshm_make) shown as
MOUNT/sysv/0xKEY.fits with MOUNT/sysv/hN.fits a link to it: the bytes CFITSIO
stored, byte-identical to what `imcopy shmem://hN` writes, read under
CFITSIO's lock; read-only; gone with the file."""

import errno
import os
import re
import subprocess
import sys
import time
import unittest

import numpy as np

from harness import MountTestCase, wait_until
import isio

CFSHM_MAKE = os.environ.get('SHMFS_CFSHM_MAKE', '')
KEYBASE = 14011963
MAXSEG = 16


def ramp(nx, ny, bitpix):
    """What cfshm_make writes: pixel i = i mod a prime below the type's range."""
    wrap = 251 if bitpix == 8 else 30011 if bitpix == 16 else 1000003
    dtype = {8: np.uint8, 16: np.int16, 32: np.int32, 64: np.int64, -32: np.float32,
             -64: np.float64}[bitpix]
    return (np.arange(nx * ny) % wrap).astype(dtype).reshape(ny, nx)


class CfitsioCase(MountTestCase, isio.ViewChecks):

    def setUp(self):
        super().setUp()
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)

    def make(self, slot, nx, ny, bitpix=-32, env=None):
        """shmem://hSLOT holding an NX x NY ramp; returns the key's name 0x%08x."""
        if not CFSHM_MAKE:
            self.fail('SHMFS_CFSHM_MAKE must name tests/mount/cfshm_make (run through ctest)')
        return self.check([CFSHM_MAKE, slot, nx, ny, bitpix], env=env).strip()

    def imcopy(self, slot, env=None):
        out = os.path.join(self.workdir, f'h{slot}-imcopy.fits')
        if os.path.exists(out):
            os.unlink(out)
        self.check(['imcopy', f'shmem://h{slot}', out], env=env)
        with open(out, 'rb') as f:
            return f.read()


class CfitsioViewTest(CfitsioCase):

    def test_view_and_link(self):
        key = self.make(2, 100, 50)
        sysv = self.m('sysv')
        names = os.listdir(sysv)
        self.assertIn(key, names)                 # the raw segment
        self.assertIn(key + '.fits', names)
        self.assertIn('h2.fits', names)
        self.assertEqual(os.readlink(os.path.join(sysv, 'h2.fits')), key + '.fits')
        self.assertTrue(os.path.islink(os.path.join(sysv, 'h2.fits')))
        view = os.path.join(sysv, key + '.fits')
        data = self.read(view)
        self.assertEqual(len(data) % 2880, 0)
        self.assertEqual(os.stat(view).st_size, len(data))
        self.assertEqual(data, self.imcopy(2), 'not what imcopy shmem://h2 writes')
        self.assertEqual(self.read(os.path.join(sysv, 'h2.fits')), data)
        self.assertEqual(self.check(['cat', os.path.join(sysv, 'h2.fits')], text=False), data)
        self.assert_fitsverify(view, os.path.join(sysv, 'h2.fits'))
        hdr = self.assert_astropy_pixels(view, ramp(100, 50, -32))
        self.assertEqual(hdr['OBJECT'], 'ramp')
        self.assertEqual(hdr['SLOT'], 2)
        self.assert_cfitsio_pixels(view, ramp(100, 50, -32))
        # The same bytes as the segment holds after its 24-byte header.
        seg = self.read(os.path.join(sysv, key))
        self.assertEqual(seg[:2], b'JB')
        self.assertEqual(seg[24:24 + len(data)], data)

    def test_every_bitpix_and_several_slots(self):
        made = {}
        for slot, bitpix in ((0, 8), (1, 16), (3, 32), (4, 64), (5, -32), (15, -64)):
            made[slot] = (self.make(slot, 37, 11, bitpix), bitpix)
        names = set(os.listdir(self.m('sysv')))
        for slot, (key, bitpix) in made.items():
            with self.subTest(slot=slot, bitpix=bitpix):
                self.assertIn(f'h{slot}.fits', names)
                self.assertIn(f'{key}.fits', names)
                self.assertEqual(os.readlink(self.m('sysv', f'h{slot}.fits')), f'{key}.fits')
                view = self.m('sysv', f'{key}.fits')
                data = self.read(view)
                if bitpix != 64:   # imcopy itself cannot copy BITPIX 64 (status 410)
                    self.assertEqual(data, self.imcopy(slot))
                self.assertEqual(self.read(self.m('sysv', key))[24:24 + len(data)], data)
                self.assert_astropy_pixels(view, ramp(37, 11, bitpix))
        self.assert_fitsverify(*[self.m('sysv', f'h{slot}.fits') for slot in made])
        # Names that are no slot.
        for name in ('h2.fits', 'h16.fits', 'h01.fits', 'h.fits', 'h1.fit', 'H1.fits'):
            self.assertFalse(os.path.lexists(self.m('sysv', name)), name)

    def test_grown_file_moves_to_a_new_key(self):
        # Past its 16 KiB granule a CFITSIO file moves to a new segment and key.
        key = self.make(6, 200, 200)            # 160000 bytes of data
        self.assertEqual(os.readlink(self.m('sysv', 'h6.fits')), key + '.fits')
        self.assertEqual(self.read(self.m('sysv', 'h6.fits')), self.imcopy(6))
        self.assert_astropy_pixels(self.m('sysv', 'h6.fits'), ramp(200, 200, -32))
        names = os.listdir(self.m('sysv'))
        self.assertEqual(len([n for n in names if n.endswith('.fits') and n.startswith('0x')]), 1)

    def test_read_only(self):
        key = self.make(2, 10, 10)
        view = self.m('sysv', key + '.fits')
        self.assert_errno(errno.EROFS, os.open, view, os.O_RDWR)
        self.assert_errno(errno.EROFS, os.open, view, os.O_WRONLY)
        self.assertEqual(self.read(view), self.imcopy(2))

    def test_deleted_file_has_no_view(self):
        key = self.make(2, 10, 10)
        self.assertTrue(os.path.exists(self.m('sysv', key + '.fits')))
        self.check([CFSHM_MAKE, '-d', 2])
        self.assertTrue(wait_until(lambda: not os.path.lexists(self.m('sysv', 'h2.fits')), 3))
        self.assertTrue(wait_until(lambda: not os.path.exists(self.m('sysv', key + '.fits')), 3))
        self.assertNotIn('h2.fits', os.listdir(self.m('sysv')))

    def test_getfattr(self):
        key = self.make(3, 10, 10)
        out = self.check(['getfattr', '-d', '-m', 'user.shmfs', self.m('sysv', key)])
        attrs = dict(re.findall(r'^(user\.shmfs\.[^=]+)="(.*)"$', out, re.M))
        self.assertEqual(attrs.get('user.shmfs.format'), 'cfitsio', out)
        self.assertEqual(attrs.get('user.shmfs.cfitsio'), 'shmem://h3', out)

    def test_writer_holding_the_lock_is_not_read_half_done(self):
        # CFITSIO's writers hold F_WRLCK on byte N of its lock file from open
        # to close. A view must not return the file meanwhile.
        key = self.make(4, 20, 20)
        lockfile = f'/tmp/.shmem-lockfile.{KEYBASE}.{MAXSEG}'
        self.assertTrue(os.path.exists(lockfile))
        holder = subprocess.Popen(
            [sys.executable, '-c',
             'import fcntl, os, sys\n'
             'fd = os.open(sys.argv[1], os.O_RDWR)\n'
             'fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]))\n'
             'print("locked", flush=True)\n'
             'sys.stdin.read()\n', lockfile, '4'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), 'locked')
            start = time.monotonic()
            with self.assertRaises(OSError) as cm:
                self.read(self.m('sysv', key + '.fits'))
            self.assertEqual(cm.exception.errno, errno.EAGAIN, cm.exception)
            self.assertLess(time.monotonic() - start, 5)
            # Other slots are not locked.
            other = self.make(5, 4, 4)
            self.read(self.m('sysv', other + '.fits'))
        finally:
            holder.stdin.close()
            holder.wait(timeout=10)
            holder.stdout.close()
        self.assertEqual(self.read(self.m('sysv', key + '.fits')), self.imcopy(4))

    def test_keybase_from_the_environment(self):
        env = {'SHMEM_LIB_KEYBASE': '12345678'}
        key = self.make(1, 8, 8, env=env)
        self.assertFalse(os.path.lexists(self.m('sysv', 'h1.fits')),
                         'a table at another key base shown')
        old = os.environ.get('SHMEM_LIB_KEYBASE')
        os.environ['SHMEM_LIB_KEYBASE'] = '12345678'
        try:
            self.remount()
        finally:
            if old is None:
                del os.environ['SHMEM_LIB_KEYBASE']
            else:
                os.environ['SHMEM_LIB_KEYBASE'] = old
        self.assertEqual(os.readlink(self.m('sysv', 'h1.fits')), key + '.fits')
        self.assertEqual(self.read(self.m('sysv', 'h1.fits')), self.imcopy(1, env=env))

    def test_damaged_table_and_segments(self):
        key = self.make(2, 10, 10)
        good = self.read(self.m('sysv', key + '.fits'))
        table = self.m('sysv', f'0x{KEYBASE:08x}')
        orig = self.read(table)
        # Every entry's fields at their extremes: no crash, no view of garbage.
        for value in (b'\xff\xff\xff\xff', b'\x00\x00\x00\x00', b'\xff\xff\xff\x7f',
                      b'\x00\x00\x00\x80'):
            for field in (8, 12, 16):
                damaged = bytearray(orig)
                for i in range(MAXSEG):
                    damaged[28 * i + field:28 * i + field + 4] = value
                with open(table, 'r+b', buffering=0) as f:
                    f.write(damaged)
                for name in os.listdir(self.m('sysv')):
                    if name.endswith('.fits'):
                        try:
                            self.read(self.m('sysv', name))
                        except OSError:
                            pass
        with open(table, 'r+b', buffering=0) as f:
            f.write(orig)
        # A segment whose header is damaged shows no view.
        seg = self.m('sysv', key)
        with open(seg, 'r+b', buffering=0) as f:
            f.write(b'XX')
        self.assertTrue(wait_until(lambda: not os.path.exists(self.m('sysv', key + '.fits')), 3))
        with open(seg, 'r+b', buffering=0) as f:
            f.write(b'JB')
        self.assertTrue(wait_until(lambda: os.path.exists(self.m('sysv', key + '.fits')), 3))
        self.assertEqual(self.read(self.m('sysv', key + '.fits')), good)
        self.assert_daemon_alive()


if __name__ == '__main__':
    unittest.main()
