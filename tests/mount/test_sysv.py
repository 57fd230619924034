"""test_sysv.py - System V segments in MOUNT/sysv/, checked against a real
shmget/shmat client (sysvtool): listing and attributes, reads and writes,
creating by truncate and by cp, the fixed size (ENOSPC, EINVAL, O_TRUNC
ignored), rm, chmod/chown, rename (EXDEV, so mv copies), bad names, and the
System V directory's name colliding with an entry of SOURCE."""

import errno
import re
import os
import stat
import subprocess
import unittest

import harness
from harness import MountTestCase, wait_until


def pattern(size, seed=0):
    block = bytes((i * 37 + seed * 11 + (i >> 8)) & 0xff for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


class SysvTestCase(MountTestCase):
    """Each test starts and ends with no segment in its IPC namespace."""

    sysvdir = 'sysv'

    def setUp(self):
        super().setUp()
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)

    def seg(self, name):
        return self.m(self.sysvdir, name)

    def create(self, key, size, mode='0600', user=None):
        return int(self.sysvtool('create', key, str(size), mode, user=user))

    def seg_read(self, name, off, length):
        return self.sysvtool('read', name, str(off), str(length), text=False)


class ListingTest(SysvTestCase):
    def test_names_by_key_and_by_id(self):
        keyed = self.create('0x1234abcd', 1000, '0640')
        self.create('0xabcdef', 10, '0600')
        self.create('0xfedcba98', 4096, '0666')   # a key with the top bit set
        priv = int(self.sysvtool('private', '4096', '0600'))
        want = sorted(['0x1234abcd', '0x00abcdef', '0xfedcba98', f'id-{priv}'])
        self.assertEqual(sorted(os.listdir(self.m('sysv'))), want)
        out = self.check(['ls', '-l', self.m('sysv')])
        for name in want:
            self.assertIn(name, out)
        # Names are exact: other spellings of a key are not the segment.
        for alias in ('0x1234ABCD', '0x1234abcd0', '0X1234abcd', '305441741', 'id-0x1',
                      f'id-{keyed}', f'id-0{priv}', f'id-{priv} '):
            self.assertFalse(os.path.lexists(self.seg(alias)), alias)

    def test_attributes_from_shm_perm(self):
        self.create('0x00001001', 1000, '0640')
        self.sysvtool('set', '0x00001001', '0604', '1234', '5678')
        priv = int(self.sysvtool('private', '12345', '0660'))
        for name in ('0x00001001', f'id-{priv}'):
            with self.subTest(name=name):
                real = self.sysv_stat(name)
                st = os.stat(self.seg(name))
                self.assertTrue(stat.S_ISREG(st.st_mode))
                self.assertEqual(st.st_size, real['size'])
                self.assertEqual(stat.S_IMODE(st.st_mode), real['mode'])
                self.assertEqual(st.st_uid, real['uid'])
                self.assertEqual(st.st_gid, real['gid'])
                self.assertEqual(st.st_nlink, 1)
        st = os.stat(self.seg('0x00001001'))
        self.assertEqual((st.st_size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid),
                         (1000, 0o604, 1234, 5678))
        self.assertEqual(self.check(['stat', '-c', '%s %a %u %g', self.seg(f'id-{priv}')]),
                         '12345 660 0 0\n')

    def test_times_from_shm_times(self):
        self.create('0x00001002', 100)
        self.sysvtool('read', '0x00001002', '0', '1')   # sets shm_atime
        atime, _dtime, ctime = (int(x) for x in self.sysvtool('times', '0x00001002').split())
        self.assertNotEqual(atime, 0)
        st = os.stat(self.seg('0x00001002'))
        self.assertEqual(int(st.st_atime), atime)
        self.assertEqual(int(st.st_mtime), ctime)
        self.assertEqual(int(st.st_ctime), ctime)

    def test_segment_marked_for_destruction_is_not_listed(self):
        shmid = self.create('0x00000dea', 4096)
        holder = subprocess.Popen([os.environ['SHMFS_SYSVTOOL'], 'hold', '0x00000dea'],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            self.assertEqual(holder.stdout.readline(), b'attached\n')
            self.sysvtool('rm', '0x00000dea')     # attached: only marked
            # The kernel still has it (attached), marked SHM_DEST.
            self.assertEqual(self.sysvtool('stat', f'id-{shmid}').split()[0], str(shmid))
            names = os.listdir(self.m('sysv'))
            self.assertNotIn('0x00000dea', names)
            self.assertNotIn(f'id-{shmid}', names)
            self.assertEqual(names, [])
            self.assertFalse(os.path.lexists(self.seg('0x00000dea')))
            self.assertFalse(os.path.lexists(self.seg(f'id-{shmid}')))
        finally:
            holder.stdin.close()
            holder.wait(timeout=10)
            holder.stdout.close()

    def test_listing_follows_the_namespace(self):
        self.assertEqual(os.listdir(self.m('sysv')), [])
        self.create('0x00000abc', 10)
        self.assertEqual(os.listdir(self.m('sysv')), ['0x00000abc'])
        self.sysvtool('rm', '0x00000abc')
        self.assertEqual(os.listdir(self.m('sysv')), [])
        # The kernel may keep the removed name's attributes for -o timeout
        # (1 s), as for a POSIX object another process removes.
        self.assertTrue(wait_until(lambda: not os.path.lexists(self.seg('0x00000abc')), 3))
        st = os.stat(self.m('sysv'))
        self.assertTrue(stat.S_ISDIR(st.st_mode))


class ReadWriteTest(SysvTestCase):
    def test_reads_see_segment(self):
        self.create('0x00001111', 8192)
        self.sysvtool('write', '0x00001111', '100', 'hello')
        self.sysvtool('write', '0x00001111', '8187', 'tail!')
        data = self.read(self.seg('0x00001111'))
        self.assertEqual(len(data), 8192)
        self.assertEqual(data[100:105], b'hello')
        self.assertEqual(data[8187:], b'tail!')
        self.assertEqual(data, self.seg_read('0x00001111', 0, 8192))
        out = os.path.join(self.workdir, 'out')
        self.check(['dd', f'if={self.seg("0x00001111")}', f'of={out}', 'bs=50', 'skip=2',
                    'count=1', 'status=none'])
        self.assertEqual(self.read(out)[:5], b'hello')

    def test_writes_land_in_segment(self):
        self.create('0x00002222', 10000)
        patch = os.path.join(self.workdir, 'patch')
        self.write(patch, b'W' * 300)
        self.check(['dd', f'if={patch}', f'of={self.seg("0x00002222")}', 'bs=300', 'seek=3',
                    'conv=notrunc', 'status=none'])
        self.assertEqual(self.seg_read('0x00002222', 900, 300), b'W' * 300)
        self.assertEqual(self.seg_read('0x00002222', 0, 900), bytes(900))
        with open(self.seg('0x00002222'), 'r+b', buffering=0) as f:
            f.seek(9990)
            self.assertEqual(f.write(b'0123456789'), 10)
        self.assertEqual(self.seg_read('0x00002222', 9990, 10), b'0123456789')

    def test_private_segment_read_write(self):
        shmid = int(self.sysvtool('private', '4096', '0600'))
        name = f'id-{shmid}'
        self.sysvtool('write', name, '0', 'private data')
        self.assertEqual(self.read(self.seg(name), size=12), b'private data')
        with open(self.seg(name), 'r+b', buffering=0) as f:
            f.seek(2000)
            f.write(b'from the mount')
        self.assertEqual(self.seg_read(name, 2000, 14), b'from the mount')

    def test_live_read_on_open_file(self):
        self.create('0x00003333', 4096)
        fd = os.open(self.seg('0x00003333'), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 4, 10), bytes(4))
            self.sysvtool('write', '0x00003333', '10', 'live')
            self.assertEqual(os.pread(fd, 4, 10), b'live')
            self.assertEqual(os.pread(fd, 100, 4090), bytes(6))
            self.assertEqual(os.pread(fd, 100, 4096), b'')
        finally:
            os.close(fd)


    def test_removed_while_open(self):
        shmid = self.create('0x00003334', 4096)
        self.sysvtool('write', '0x00003334', '0', 'before')
        fd = os.open(self.seg('0x00003334'), os.O_RDWR)
        try:
            self.sysvtool('rm', '0x00003334')     # another process removes it
            # (its name's attributes may stay cached for -o timeout)
            self.assertTrue(wait_until(lambda: not os.path.lexists(self.seg('0x00003334')), 3))
            self.assertNotIn(f'id-{shmid}', os.listdir(self.m('sysv')))
            # The open file keeps working on what it had, as on tmpfs.
            self.assertEqual(os.pread(fd, 6, 0), b'before')
            self.assertEqual(os.pwrite(fd, b'after!', 0), 6)
            self.assertEqual(os.pread(fd, 6, 0), b'after!')
        finally:
            os.close(fd)
        self.assertIsNone(self.sysv_stat(f'id-{shmid}'))
        self.assert_daemon_alive()


class CreateTest(SysvTestCase):
    def test_create_by_truncate(self):
        self.check(['truncate', '-s', '12345', self.seg('0x00c0ffee')])
        real = self.sysv_stat('0x00c0ffee')
        self.assertIsNotNone(real, 'truncate -s did not create the segment')
        self.assertEqual(real['size'], 12345)
        self.assertEqual(real['mode'], 0o644)    # 0666 & ~umask 022
        self.assertEqual((real['uid'], real['gid']), (0, 0))
        self.assertEqual(self.seg_read('0x00c0ffee', 0, 12345), bytes(12345))
        self.assertIn('0x00c0ffee', os.listdir(self.m('sysv')))
        self.assertEqual(os.stat(self.seg('0x00c0ffee')).st_size, 12345)

    def test_create_key_with_top_bit(self):
        self.check(['truncate', '-s', '10', self.seg('0xfedcba99')])
        real = self.sysv_stat('0xfedcba99')
        self.assertIsNotNone(real)
        self.assertEqual(real['size'], 10)
        self.assertIn('0xfedcba99', os.listdir(self.m('sysv')))

    def test_create_by_cp(self):
        src = os.path.join(self.workdir, 'src')
        self.write(src, pattern(5000))
        os.chmod(src, 0o640)
        self.check(['cp', src, self.seg('0x0000beef')])
        real = self.sysv_stat('0x0000beef')
        self.assertIsNotNone(real, 'cp did not create the segment')
        self.assertEqual(real['size'], 5000)
        self.assertEqual(real['mode'], 0o640)
        self.assertEqual(self.seg_read('0x0000beef', 0, 5000), pattern(5000))
        self.assertEqual(self.read(self.seg('0x0000beef')), pattern(5000))
        self.assertEqual(os.stat(self.seg('0x0000beef')).st_size, 5000)

    def test_create_by_writing(self):
        data = pattern(3 * 1024 * 1024 + 17, seed=2)   # several 1 MiB requests
        self.write(self.seg('0x00000077'), data)
        self.assertEqual(self.sysv_stat('0x00000077')['size'], len(data))
        self.assertEqual(self.read(self.seg('0x00000077')), data)

    def test_create_by_name_o_excl(self):
        fd = os.open(self.seg('0x00000078'), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, b'excl')
        finally:
            os.close(fd)
        self.assertEqual(self.sysv_stat('0x00000078')['size'], 4)
        self.assert_errno(errno.EEXIST, os.open, self.seg('0x00000078'),
                          os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        self.create('0x00000079', 10)
        self.assert_errno(errno.EEXIST, os.open, self.seg('0x00000079'),
                          os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)


class FixedSizeTest(SysvTestCase):
    SIZE = 4096

    def setUp(self):
        super().setUp()
        self.shmid = self.create('0x0000f1ed', self.SIZE, '0644')
        self.sysvtool('write', '0x0000f1ed', '0', 'original')

    def test_write_past_end_is_enospc(self):
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.seg("0x0000f1ed")}', 'bs=1',
                          'count=1', f'seek={self.SIZE}', 'conv=notrunc'], errno.ENOSPC)
        fd = os.open(self.seg('0x0000f1ed'), os.O_WRONLY)
        try:
            self.assert_errno(errno.ENOSPC, os.pwrite, fd, b'x', self.SIZE)
            self.assert_errno(errno.ENOSPC, os.pwrite, fd, b'x', self.SIZE * 10)
            # Straddling the end: what fits is written (as on a block device),
            # the rest is refused.
            try:
                n = os.pwrite(fd, b'0123456789', self.SIZE - 5)
                self.assertEqual(n, 5)
                self.assertEqual(self.seg_read('0x0000f1ed', self.SIZE - 5, 5), b'01234')
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
        finally:
            os.close(fd)
        src = os.path.join(self.workdir, 'big')
        self.write(src, b'B' * (self.SIZE + 1))
        self.check_fails(['cp', src, self.seg('0x0000f1ed')], errno.ENOSPC)
        self.assertEqual(self.sysv_stat('0x0000f1ed')['size'], self.SIZE)
        self.assertEqual(self.sysv_stat('0x0000f1ed')['shmid'], self.shmid)

    def test_truncate_to_other_size_is_einval(self):
        for size in ('0', '100', str(self.SIZE + 1), '1M'):
            with self.subTest(size=size):
                self.check_fails(['truncate', '-s', size, self.seg('0x0000f1ed')], errno.EINVAL)
        fd = os.open(self.seg('0x0000f1ed'), os.O_RDWR)
        try:
            self.assert_errno(errno.EINVAL, os.ftruncate, fd, 1)
        finally:
            os.close(fd)
        # The same size is no change, so it is fine.
        self.check(['truncate', '-s', str(self.SIZE), self.seg('0x0000f1ed')])
        real = self.sysv_stat('0x0000f1ed')
        self.assertEqual((real['shmid'], real['size']), (self.shmid, self.SIZE))
        self.assertEqual(self.seg_read('0x0000f1ed', 0, 8), b'original')

    def test_o_trunc_is_ignored(self):
        fd = os.open(self.seg('0x0000f1ed'), os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
        self.assertEqual(self.sysv_stat('0x0000f1ed')['size'], self.SIZE)
        self.assertEqual(self.seg_read('0x0000f1ed', 0, 8), b'original')
        # cp onto an existing segment of the same size replaces the content.
        src = os.path.join(self.workdir, 'same')
        self.write(src, pattern(self.SIZE, seed=5))
        self.check(['cp', src, self.seg('0x0000f1ed')])
        real = self.sysv_stat('0x0000f1ed')
        self.assertEqual((real['shmid'], real['size']), (self.shmid, self.SIZE))
        self.assertEqual(self.seg_read('0x0000f1ed', 0, self.SIZE), pattern(self.SIZE, seed=5))
        # A shorter file overwrites its own length only.
        self.write(src, b'short')
        self.check(['cp', src, self.seg('0x0000f1ed')])
        self.assertEqual(self.seg_read('0x0000f1ed', 0, 8), b'short' + pattern(self.SIZE, seed=5)[5:8])
        self.assertEqual(self.sysv_stat('0x0000f1ed')['size'], self.SIZE)
        # Shell redirection (O_TRUNC too).
        self.check(['sh', '-c', f'printf xyz > {self.seg("0x0000f1ed")}'])
        self.assertEqual(self.seg_read('0x0000f1ed', 0, 5), b'xyzrt')
        self.assertEqual(self.sysv_stat('0x0000f1ed')['shmid'], self.shmid)


class RemoveAndMetadataTest(SysvTestCase):
    def test_rm_removes_segment(self):
        self.create('0x00005555', 100)
        priv = int(self.sysvtool('private', '100'))
        self.check(['rm', self.seg('0x00005555')])
        self.assertIsNone(self.sysv_stat('0x00005555'))
        self.check(['rm', self.seg(f'id-{priv}')])
        self.assertIsNone(self.sysv_stat(f'id-{priv}'))
        self.assertEqual(os.listdir(self.m('sysv')), [])
        self.check_fails(['rm', self.seg('0x00005555')], errno.ENOENT)

    def test_chmod_sets_shm_perm(self):
        self.create('0x00006666', 100, '0600')
        self.check(['chmod', '0604', self.seg('0x00006666')])
        self.assertEqual(self.sysv_stat('0x00006666')['mode'], 0o604)
        self.assertEqual(stat.S_IMODE(os.stat(self.seg('0x00006666')).st_mode), 0o604)
        self.check(['chmod', 'g+rw', self.seg('0x00006666')])
        self.assertEqual(self.sysv_stat('0x00006666')['mode'], 0o664)

    def test_chown_sets_shm_perm(self):
        self.create('0x00007777', 100, '0600')
        self.check(['chown', '1234:5678', self.seg('0x00007777')])
        real = self.sysv_stat('0x00007777')
        self.assertEqual((real['uid'], real['gid'], real['cuid']), (1234, 5678, 0))
        self.check(['chgrp', '99', self.seg('0x00007777')])
        self.assertEqual(self.sysv_stat('0x00007777')['gid'], 99)
        # What the mount shows follows shm_perm, for root (the creator) too.
        st = os.stat(self.seg('0x00007777'))
        self.assertEqual((st.st_uid, st.st_gid), (1234, 99))
        self.assertIn(' 1234 99 ', self.check(['ls', '-ln', self.seg('0x00007777')]))


class RenameTest(SysvTestCase):
    def test_rename_is_exdev(self):
        self.create('0x0000000a', 100)
        self.write(self.s('plain'), b'plain')
        self.assert_errno(errno.EXDEV, os.rename, self.seg('0x0000000a'), self.seg('0x0000000b'))
        self.assert_errno(errno.EXDEV, os.rename, self.seg('0x0000000a'), self.m('out'))
        self.assert_errno(errno.EXDEV, os.rename, self.m('plain'), self.seg('0x0000000c'))
        self.assertIsNotNone(self.sysv_stat('0x0000000a'))
        self.assertTrue(os.path.exists(self.s('plain')))

    def test_mv_between_segments_copies(self):
        self.create('0x0000000a', 3000, '0640')
        self.sysvtool('write', '0x0000000a', '0', 'moving segment')
        self.check(['mv', self.seg('0x0000000a'), self.seg('0x0000000b')])
        self.assertIsNone(self.sysv_stat('0x0000000a'))
        real = self.sysv_stat('0x0000000b')
        self.assertIsNotNone(real)
        self.assertEqual(real['size'], 3000)
        self.assertEqual(real['mode'], 0o640)
        self.assertEqual(self.seg_read('0x0000000b', 0, 14), b'moving segment')
        self.assertEqual(sorted(os.listdir(self.m('sysv'))), ['0x0000000b'])

    def test_mv_segment_out(self):
        self.create('0x0000000d', 2000)
        self.sysvtool('write', '0x0000000d', '1990', 'last bytes')
        self.check(['mv', self.seg('0x0000000d'), self.m('saved')])
        self.assertIsNone(self.sysv_stat('0x0000000d'))
        data = self.read(self.s('saved'))
        self.assertEqual(len(data), 2000)
        self.assertEqual(data[1990:], b'last bytes')

    def test_mv_file_in(self):
        self.write(self.s('incoming'), pattern(7000, seed=4))
        self.check(['mv', self.m('incoming'), self.seg('0x0000000e')])
        self.assertFalse(os.path.exists(self.s('incoming')))
        real = self.sysv_stat('0x0000000e')
        self.assertIsNotNone(real)
        self.assertEqual(real['size'], 7000)
        self.assertEqual(self.seg_read('0x0000000e', 0, 7000), pattern(7000, seed=4))


class BadNameTest(SysvTestCase):
    def test_bad_names_are_einval_and_logged(self):
        src = os.path.join(self.workdir, 'src')
        self.write(src, b'data')
        cases = [
            (['touch'], 'hello'),
            (['cp', src], '0x1234'),            # too few digits
            (['cp', src], '0xABCDEF12'),        # upper case
            (['cp', src], '0x000000001'),       # too many digits
            (['cp', src], '0x00000000'),        # IPC_PRIVATE is not a key
            (['cp', src], 'id-5'),              # ids are given by the kernel
            (['truncate', '-s', '100'], 'segment.bin'),
        ]
        for cmd, name in cases:
            with self.subTest(name=name):
                self.check_fails(cmd + [self.seg(name)], errno.EINVAL)
                self.assertFalse(os.path.lexists(self.seg(name)))
                # The log names the file and says which names are valid.
                self.assert_log(rf'^shmfs: \w+: .*sysv/{re.escape(name)}\b.*0x.*id-')
        self.assert_errno(errno.EINVAL, os.open, self.seg('bad'),
                          os.O_CREAT | os.O_WRONLY, 0o600)
        self.assertEqual(os.listdir(self.m('sysv')), [])
        self.assertEqual(self.check(['ipcs', '-m']).count('0x'), 0)


class SysvdirCollisionTest(SysvTestCase):
    """SOURCE has its own entry named sysv: the real entry is shown."""

    def prepare_source(self, source):
        os.mkdir(os.path.join(source, 'sysv'))
        self.write(os.path.join(source, 'sysv', 'real-file'), b'I am real')

    def test_real_entry_wins_and_log_says_so(self):
        self.create('0x00008888', 100)
        self.assertEqual(os.listdir(self.m('sysv')), ['real-file'])
        self.assertEqual(self.read(self.m('sysv', 'real-file')), b'I am real')
        self.assertFalse(os.path.lexists(self.m('sysv', '0x00008888')))
        # The log says the real entry is shown and how to name the System V directory.
        self.assert_log(r'sysv.*sysvdir=')
        # Writes go to the real directory.
        self.write(self.m('sysv', 'made'), b'new')
        self.assertEqual(self.read(self.s('sysv', 'made')), b'new')

    def test_sysvdir_option_names_the_directory(self):
        self.create('0x00008888', 100)
        self.remount(options=['-o', 'sysvdir=ipc'])
        self.assertEqual(os.listdir(self.m('ipc')), ['0x00008888'])
        self.assertEqual(os.stat(self.m('ipc', '0x00008888')).st_size, 100)
        self.assertEqual(os.listdir(self.m('sysv')), ['real-file'])
        self.assertEqual(sorted(os.listdir(self.mnt)), ['ipc', 'sysv'])
        self.check(['truncate', '-s', '64', self.m('ipc', '0x00009999')])
        self.assertEqual(self.sysv_stat('0x00009999')['size'], 64)

    def test_real_file_named_sysv(self):
        os.rename(self.s('sysv'), self.s('was-sysv'))
        self.write(self.s('sysv'), b'a plain file')
        self.assertTrue(stat.S_ISREG(os.stat(self.m('sysv')).st_mode))
        self.assertEqual(self.read(self.m('sysv')), b'a plain file')


class SysvdirOptionTest(SysvTestCase):
    mount_options = ['-o', 'sysvdir=ipc']

    def test_segments_under_other_name(self):
        self.create('0x00004444', 10)
        self.assertIn('ipc', os.listdir(self.mnt))
        self.assertNotIn('sysv', os.listdir(self.mnt))
        self.assertEqual(os.listdir(self.m('ipc')), ['0x00004444'])
        self.assertFalse(os.path.lexists(self.m('sysv')))


# The same tests with the daemon serving reads and writes itself instead of
# FUSE passthrough.
if 'passthrough=' in harness.daemon_help():
    harness.with_variants(globals(), [ReadWriteTest, CreateTest, FixedSizeTest, RenameTest],
                          'NoPassthrough', ['-o', 'passthrough=off'],
                          'daemon-served reads and writes: -o passthrough=off')


if __name__ == '__main__':
    unittest.main(verbosity=2)
