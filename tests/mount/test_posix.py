"""test_posix.py - POSIX shared-memory objects (the files of SOURCE) through
the mount, driven with real commands: attributes, reads and writes at
offsets, live reads, create/truncate/unlink/rename/link/mkdir, chmod/chown/
utimens, symlinks, statfs, fsync/access, objects shrunk or removed while
open, and a full backing filesystem (ENOSPC)."""

import errno
import os
import stat
import threading
import time
import unittest

import harness
from harness import MountTestCase, wait_until

STAT_FIELDS = ('st_mode', 'st_size', 'st_uid', 'st_gid', 'st_nlink',
               'st_atime_ns', 'st_mtime_ns', 'st_ctime_ns')


def pattern(size, seed=0):
    """SIZE deterministic, non-repeating-looking bytes."""
    block = bytes((i * 131 + seed * 7 + (i >> 8) * 17) & 0xff for i in range(4096))
    return (block * (size // 4096 + 1))[:size]


class AttributesTest(MountTestCase):
    def prepare_source(self, source):
        self.write(os.path.join(source, 'obj'), pattern(10000))
        os.chmod(os.path.join(source, 'obj'), 0o640)
        os.chown(os.path.join(source, 'obj'), 1234, 5678)
        os.utime(os.path.join(source, 'obj'), ns=(1_000_000_123_456_789, 999_000_000_987_654_321))
        self.write(os.path.join(source, 'linked'), b'two names')
        os.link(os.path.join(source, 'linked'), os.path.join(source, 'linked2'))
        os.symlink('obj', os.path.join(source, 'link'))
        os.mkdir(os.path.join(source, 'dir'), 0o750)
        self.write(os.path.join(source, 'dir', 'inner'), b'inside')
        self.write(os.path.join(source, 'empty'), b'')

    def assert_same_attributes(self, name):
        mine = os.lstat(self.m(name))
        real = os.lstat(self.s(name))
        for field in STAT_FIELDS:
            self.assertEqual(getattr(mine, field), getattr(real, field), f'{name}: {field}')

    def test_stat_matches_backing_file(self):
        for name in ('obj', 'linked', 'linked2', 'link', 'dir', 'dir/inner', 'empty'):
            with self.subTest(name=name):
                self.assert_same_attributes(name)
        self.assertEqual(os.lstat(self.m('linked')).st_nlink, 2)
        self.assertTrue(stat.S_ISLNK(os.lstat(self.m('link')).st_mode))
        self.assertTrue(stat.S_ISDIR(os.lstat(self.m('dir')).st_mode))

    def test_root_matches_source(self):
        mine, real = os.stat(self.mnt), os.stat(self.source)
        for field in ('st_mode', 'st_uid', 'st_gid', 'st_mtime_ns', 'st_ctime_ns'):
            self.assertEqual(getattr(mine, field), getattr(real, field), field)

    def test_many_entries_and_odd_names(self):
        names = {f'object-{i:05d}-' + 'x' * 100 for i in range(3000)}
        names |= {'with space', 'new\nline', 'ünïcödé-名前', 'n' * 255, '-dash', '.hidden',
                  "quote'\"", 'back\\slash'}
        for name in names:
            with open(self.s(name), 'wb'):
                pass
        listed = set(os.listdir(self.mnt))
        self.assertEqual(listed - {'sysv'}, set(os.listdir(self.source)))
        self.assertTrue(names <= listed)
        for name in ('with space', 'new\nline', 'ünïcödé-名前', 'n' * 255):
            self.write(self.m(name), name.encode())
            self.assertEqual(self.read(self.s(name)), name.encode())
        self.check_fails(['touch', self.m('n' * 256)], errno.ENAMETOOLONG)

    def test_stat_command_matches(self):
        fmt = '%s %f %u %g %h %X %Y %Z %F'
        for name in ('obj', 'linked', 'link', 'dir', 'dir/inner'):
            with self.subTest(name=name):
                self.assertEqual(self.check(['stat', '-c', fmt, self.m(name)]),
                                 self.check(['stat', '-c', fmt, self.s(name)]))

    def test_ls_l_matches(self):
        def listing(path):
            out = self.check(['ls', '-lna', '--time-style=full-iso', path])
            lines = [' '.join(ln.split()) for ln in out.splitlines()
                     if not ln.startswith('total') and not ln.endswith(' ..')
                     and not ln.endswith(' sysv')]
            return sorted(lines)
        self.assertEqual(listing(self.mnt), listing(self.source))
        self.assertEqual(listing(self.m('dir')), listing(self.s('dir')))
        self.assertIn('link -> obj', self.check(['ls', '-l', self.m('link')]))
        self.assertEqual(sorted(os.listdir(self.mnt)),
                         sorted(os.listdir(self.source) + ['sysv']))

    def test_content_matches(self):
        self.assertEqual(self.read(self.m('obj')), pattern(10000))
        self.assertEqual(self.check(['cat', self.m('dir/inner')]), 'inside')
        self.assertEqual(self.read(self.m('link')), pattern(10000))
        self.assertEqual(self.read(self.m('empty')), b'')

    def test_changes_from_outside_show(self):
        os.chmod(self.s('obj'), 0o604)
        os.chown(self.s('obj'), 42, 43)
        self.write(self.s('obj'), b'x' * 77, mode='ab')
        self.write(self.s('new-outside'), b'new')
        self.assert_same_attributes('obj')
        self.assertEqual(os.stat(self.m('obj')).st_size, 10077)
        # New objects show at once (negative entries are never cached) ...
        self.assertEqual(self.read(self.m('new-outside')), b'new')
        os.unlink(self.s('new-outside'))
        # ... a removal within the entry timeout (-o timeout, 1 s by default).
        self.assertTrue(wait_until(lambda: not os.path.exists(self.m('new-outside')), 3))


class ReadWriteTest(MountTestCase):
    SIZE = 1 << 20

    def prepare_source(self, source):
        self.write(os.path.join(source, 'obj'), pattern(self.SIZE))

    def test_dd_skip_reads_at_offset(self):
        out = os.path.join(self.workdir, 'out')
        self.check(['dd', f'if={self.m("obj")}', f'of={out}', 'bs=4096', 'skip=10', 'count=3',
                    'status=none'])
        self.assertEqual(self.read(out), pattern(self.SIZE)[40960:40960 + 3 * 4096])
        # An odd block size and an offset not on a page boundary.
        self.check(['dd', f'if={self.m("obj")}', f'of={out}', 'bs=999', 'skip=77', 'count=5',
                    'status=none'])
        self.assertEqual(self.read(out), pattern(self.SIZE)[999 * 77:999 * 82])

    def test_dd_seek_writes_at_offset(self):
        patch = os.path.join(self.workdir, 'patch')
        self.write(patch, b'P' * 1000)
        self.check(['dd', f'if={patch}', f'of={self.m("obj")}', 'bs=1000', 'seek=7',
                    'conv=notrunc', 'status=none'])
        want = bytearray(pattern(self.SIZE))
        want[7000:8000] = b'P' * 1000
        self.assertEqual(self.read(self.s('obj')), bytes(want))
        self.assertEqual(self.read(self.m('obj')), bytes(want))

    def test_write_past_end_grows(self):
        patch = os.path.join(self.workdir, 'patch')
        self.write(patch, b'TAIL')
        self.check(['dd', f'if={patch}', f'of={self.m("obj")}', 'bs=1', f'seek={self.SIZE + 5000}',
                    'conv=notrunc', 'status=none'])
        data = self.read(self.s('obj'))
        self.assertEqual(len(data), self.SIZE + 5004)
        self.assertEqual(data[:self.SIZE], pattern(self.SIZE))
        self.assertEqual(data[self.SIZE:self.SIZE + 5000], bytes(5000))
        self.assertEqual(data[-4:], b'TAIL')
        self.assertEqual(os.stat(self.m('obj')).st_size, self.SIZE + 5004)

    def test_pread_pwrite_any_offset(self):
        fd = os.open(self.m('obj'), os.O_RDWR)
        try:
            self.assertEqual(os.pread(fd, 5, 4093), pattern(self.SIZE)[4093:4098])
            self.assertEqual(os.pwrite(fd, b'abcdef', 4093), 6)
            self.assertEqual(os.pread(fd, 6, 4093), b'abcdef')
            # Read across the end is short; at or past the end is empty.
            self.assertEqual(os.pread(fd, 100, self.SIZE - 10), pattern(self.SIZE)[-10:])
            self.assertEqual(os.pread(fd, 100, self.SIZE), b'')
            self.assertEqual(os.pread(fd, 100, self.SIZE * 4), b'')
        finally:
            os.close(fd)
        with open(self.s('obj'), 'rb') as f:
            f.seek(4093)
            self.assertEqual(f.read(6), b'abcdef')

    def test_append(self):
        with open(self.m('obj'), 'ab', buffering=0) as f:
            f.write(b'appended')
        self.assertEqual(self.read(self.s('obj'))[-8:], b'appended')
        self.assertEqual(os.stat(self.s('obj')).st_size, self.SIZE + 8)

    def test_live_read_on_open_file(self):
        fd = os.open(self.m('obj'), os.O_RDONLY)
        try:
            before = os.pread(fd, 16, 100)
            self.assertEqual(before, pattern(self.SIZE)[100:116])
            # Another process stores one byte straight into the backing object.
            self.check(['dd', f'of={self.s("obj")}', 'bs=1', 'seek=105', 'count=1',
                        'conv=notrunc', 'status=none'], input='Z')
            after = os.pread(fd, 16, 100)
            self.assertEqual(after, before[:5] + b'Z' + before[6:])
            # And through a stream read on the same descriptor.
            os.lseek(fd, 105, os.SEEK_SET)
            self.assertEqual(os.read(fd, 1), b'Z')
        finally:
            os.close(fd)

    def test_live_read_sees_growth(self):
        fd = os.open(self.m('obj'), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 10, self.SIZE), b'')
            self.write(self.s('obj'), b'more bytes', mode='ab')
            self.assertEqual(os.pread(fd, 10, self.SIZE), b'more bytes')
        finally:
            os.close(fd)

    def test_write_seen_by_direct_reader(self):
        fd_backing = os.open(self.s('obj'), os.O_RDONLY)
        try:
            self.write(self.m('obj'), b'', mode='ab')
            with open(self.m('obj'), 'r+b', buffering=0) as f:
                f.seek(12345)
                f.write(b'through the mount')
                self.assertEqual(os.pread(fd_backing, 17, 12345), b'through the mount')
        finally:
            os.close(fd_backing)


class CreateRemoveTest(MountTestCase):
    def test_cp_creates(self):
        src = os.path.join(self.workdir, 'src')
        self.write(src, pattern(70000, seed=3))
        self.check(['cp', src, self.m('copied')])
        self.assertEqual(self.read(self.s('copied')), pattern(70000, seed=3))
        self.assertEqual(self.read(self.m('copied')), pattern(70000, seed=3))
        # cp over an existing object replaces its content (O_TRUNC).
        self.write(src, b'short')
        self.check(['cp', src, self.m('copied')])
        self.assertEqual(self.read(self.s('copied')), b'short')

    def test_touch_creates_and_updates(self):
        self.check(['touch', self.m('touched')])
        st = os.stat(self.s('touched'))
        self.assertTrue(stat.S_ISREG(st.st_mode))
        self.assertEqual(st.st_size, 0)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o644)
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        os.utime(self.s('touched'), (1000, 1000))
        self.check(['touch', self.m('touched')])
        self.assertGreater(os.stat(self.s('touched')).st_mtime, time.time() - 600)

    def test_o_creat_o_excl(self):
        fd = os.open(self.m('excl'), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640)
        try:
            os.write(fd, b'first')
        finally:
            os.close(fd)
        self.assertEqual(stat.S_IMODE(os.stat(self.s('excl')).st_mode), 0o640)
        self.assertEqual(self.read(self.s('excl')), b'first')
        self.assert_errno(errno.EEXIST, os.open, self.m('excl'),
                          os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        self.write(self.s('made-outside'), b'x')
        self.assert_errno(errno.EEXIST, os.open, self.m('made-outside'),
                          os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        self.assertEqual(self.read(self.s('excl')), b'first')

    def test_rm(self):
        self.write(self.s('doomed'), b'bye')
        self.check(['rm', self.m('doomed')])
        self.assertFalse(os.path.lexists(self.s('doomed')))
        self.assertFalse(os.path.lexists(self.m('doomed')))
        self.check_fails(['rm', self.m('doomed')], errno.ENOENT)
        self.assert_errno(errno.ENOENT, os.stat, self.m('doomed'))

    def test_mv_renames(self):
        self.write(self.s('a'), b'content of a')
        self.write(self.s('b'), b'content of b')
        os.mkdir(self.s('sub'))
        self.check(['mv', self.m('a'), self.m('renamed')])
        self.assertFalse(os.path.exists(self.s('a')))
        self.assertEqual(self.read(self.s('renamed')), b'content of a')
        # Onto an existing name: replaced.
        self.check(['mv', '-f', self.m('renamed'), self.m('b')])
        self.assertEqual(self.read(self.s('b')), b'content of a')
        self.assertFalse(os.path.exists(self.s('renamed')))
        # Into a subdirectory, and os.rename directly.
        self.check(['mv', self.m('b'), self.m('sub/')])
        self.assertEqual(self.read(self.s('sub/b')), b'content of a')
        os.rename(self.m('sub/b'), self.m('back'))
        self.assertEqual(self.read(self.s('back')), b'content of a')
        self.assertEqual(os.listdir(self.s('sub')), [])

    def test_hard_link(self):
        self.write(self.s('orig'), b'linked content')
        self.check(['ln', self.m('orig'), self.m('hard')])
        self.assertEqual(os.stat(self.s('orig')).st_ino, os.stat(self.s('hard')).st_ino)
        self.assertEqual(os.stat(self.s('orig')).st_nlink, 2)
        self.assertEqual(os.stat(self.m('orig')).st_nlink, 2)
        self.assertEqual(os.stat(self.m('hard')).st_nlink, 2)
        self.assertEqual(os.stat(self.m('orig')).st_ino, os.stat(self.m('hard')).st_ino)
        with open(self.m('hard'), 'r+b', buffering=0) as f:
            f.write(b'LINKED')
        self.assertEqual(self.read(self.m('orig')), b'LINKED content')
        self.check(['rm', self.m('orig')])
        self.assertEqual(os.stat(self.m('hard')).st_nlink, 1)
        self.assertEqual(self.read(self.m('hard')), b'LINKED content')
        self.check_fails(['ln', self.m('hard'), self.m('hard')], errno.EEXIST)

    def test_mkdir_rmdir(self):
        self.check(['mkdir', self.m('d')])
        st = os.stat(self.s('d'))
        self.assertTrue(stat.S_ISDIR(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o755)
        self.check(['mkdir', '-m', '0700', self.m('d/e')])
        self.assertEqual(stat.S_IMODE(os.stat(self.s('d/e')).st_mode), 0o700)
        self.write(self.m('d/e/f'), b'deep')
        self.assertEqual(self.read(self.s('d/e/f')), b'deep')
        self.check_fails(['rmdir', self.m('d')], errno.ENOTEMPTY)
        self.check_fails(['mkdir', self.m('d')], errno.EEXIST)
        self.check(['rm', self.m('d/e/f')])
        self.check(['rmdir', self.m('d/e')])
        self.check(['rmdir', self.m('d')])
        self.assertFalse(os.path.exists(self.s('d')))
        self.check_fails(['rmdir', self.m('d')], errno.ENOENT)


class TruncateTest(MountTestCase):
    def prepare_source(self, source):
        self.write(os.path.join(source, 'obj'), pattern(50000))

    def test_truncate_grow_and_shrink(self):
        self.check(['truncate', '-s', '200000', self.m('obj')])
        data = self.read(self.s('obj'))
        self.assertEqual(len(data), 200000)
        self.assertEqual(data[:50000], pattern(50000))
        self.assertEqual(data[50000:], bytes(150000))
        self.assertEqual(os.stat(self.m('obj')).st_size, 200000)
        self.check(['truncate', '-s', '1000', self.m('obj')])
        self.assertEqual(self.read(self.s('obj')), pattern(1000))
        self.assertEqual(self.read(self.m('obj')), pattern(1000))
        self.check(['truncate', '-s', '0', self.m('obj')])
        self.assertEqual(os.stat(self.s('obj')).st_size, 0)

    def test_truncate_creates(self):
        self.check(['truncate', '-s', '4096', self.m('fresh')])
        self.assertEqual(self.read(self.s('fresh')), bytes(4096))

    def test_ftruncate_both_ways(self):
        fd = os.open(self.m('obj'), os.O_RDWR)
        try:
            os.ftruncate(fd, 123456)
            self.assertEqual(os.fstat(fd).st_size, 123456)
            self.assertEqual(os.stat(self.s('obj')).st_size, 123456)
            self.assertEqual(os.pread(fd, 10, 123440), bytes(10)[:10])
            os.ftruncate(fd, 10)
            self.assertEqual(os.stat(self.s('obj')).st_size, 10)
            self.assertEqual(os.pread(fd, 100, 0), pattern(10))
            self.assertEqual(os.pread(fd, 100, 5000), b'')
        finally:
            os.close(fd)

    def test_open_o_trunc(self):
        fd = os.open(self.m('obj'), os.O_WRONLY | os.O_TRUNC)
        os.close(fd)
        self.assertEqual(os.stat(self.s('obj')).st_size, 0)


class MetadataTest(MountTestCase):
    def prepare_source(self, source):
        self.write(os.path.join(source, 'obj'), b'metadata')
        os.symlink('obj', os.path.join(source, 'link'))

    def test_chmod(self):
        self.check(['chmod', '600', self.m('obj')])
        self.assertEqual(stat.S_IMODE(os.stat(self.s('obj')).st_mode), 0o600)
        self.check(['chmod', 'g+r,o+r', self.m('obj')])
        self.assertEqual(stat.S_IMODE(os.stat(self.s('obj')).st_mode), 0o644)
        self.check(['chmod', '4755', self.m('obj')])
        self.assertEqual(stat.S_IMODE(os.stat(self.s('obj')).st_mode), 0o4755)
        self.assertEqual(stat.S_IMODE(os.stat(self.m('obj')).st_mode), 0o4755)

    def test_chown(self):
        self.check(['chown', '1234:5678', self.m('obj')])
        st = os.stat(self.s('obj'))
        self.assertEqual((st.st_uid, st.st_gid), (1234, 5678))
        self.check(['chgrp', '99', self.m('obj')])
        st = os.stat(self.s('obj'))
        self.assertEqual((st.st_uid, st.st_gid), (1234, 99))
        # chown -h changes the link itself, not its target.
        self.check(['chown', '-h', '4321:8765', self.m('link')])
        self.assertEqual((os.lstat(self.s('link')).st_uid, os.lstat(self.s('link')).st_gid),
                         (4321, 8765))
        self.assertEqual(os.stat(self.s('obj')).st_uid, 1234)

    def test_utimens(self):
        self.check(['touch', '-m', '-d', '2001-02-03 04:05:06.123456789 UTC', self.m('obj')])
        st = os.stat(self.s('obj'))
        self.assertEqual(st.st_mtime_ns, 981173106_123456789)
        self.check(['touch', '-a', '-d', '1999-12-31 23:59:59 UTC', self.m('obj')])
        st = os.stat(self.s('obj'))
        self.assertEqual(st.st_atime_ns, 946684799_000000000)
        self.assertEqual(st.st_mtime_ns, 981173106_123456789)
        os.utime(self.m('obj'), ns=(5_000_000_001, 6_000_000_002))
        st = os.stat(self.s('obj'))
        self.assertEqual((st.st_atime_ns, st.st_mtime_ns), (5_000_000_001, 6_000_000_002))
        self.assertEqual(os.stat(self.m('obj')).st_mtime_ns, 6_000_000_002)
        before = time.time()
        self.check(['touch', self.m('obj')])
        self.assertGreaterEqual(os.stat(self.s('obj')).st_mtime, before - 1)

    def test_directory_metadata(self):
        os.mkdir(self.s('dir'))
        self.check(['chmod', '0711', self.m('dir')])
        self.assertEqual(stat.S_IMODE(os.stat(self.s('dir')).st_mode), 0o711)
        self.check(['chown', '1234:5678', self.m('dir')])
        self.assertEqual(os.stat(self.s('dir')).st_uid, 1234)
        self.check(['touch', '-d', '2002-03-04 05:06:07 UTC', self.m('dir')])
        self.assertEqual(os.stat(self.s('dir')).st_mtime, 1015218367)
        self.assertEqual(os.stat(self.m('dir')).st_mtime, 1015218367)

    def test_utimens_on_symlink(self):
        """touch -h sets the times of the link itself, as on a local filesystem."""
        self.check(['touch', '-h', '-d', '2003-04-05 06:07:08 UTC', self.m('link')])
        self.assertEqual(os.lstat(self.s('link')).st_mtime, 1049522828)
        self.assertEqual(os.lstat(self.m('link')).st_mtime, 1049522828)
        self.assertNotEqual(os.stat(self.s('obj')).st_mtime, 1049522828)

    def test_statfs_equals_source(self):
        fields = ('f_bsize', 'f_frsize', 'f_blocks', 'f_files', 'f_namemax')
        mine, real = os.statvfs(self.mnt), os.statvfs(self.source)
        for f in fields:
            self.assertEqual(getattr(mine, f), getattr(real, f), f)

    def test_fsync(self):
        fd = os.open(self.m('obj'), os.O_RDWR)
        try:
            os.pwrite(fd, b'M', 0)
            os.fsync(fd)
            os.fdatasync(fd)
        finally:
            os.close(fd)
        self.check(['dd', 'if=/dev/zero', f'of={self.m("obj")}', 'bs=1', 'count=1', 'seek=1',
                    'conv=notrunc,fsync', 'status=none'])
        self.assertEqual(self.read(self.s('obj')), b'M\0tadata')
        dfd = os.open(self.mnt, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def test_access(self):
        self.assertTrue(os.access(self.m('obj'), os.F_OK))
        self.assertTrue(os.access(self.m('obj'), os.R_OK | os.W_OK))
        # Root needs an execute bit somewhere to execute.
        self.assertFalse(os.access(self.m('obj'), os.X_OK))
        os.chmod(self.s('obj'), 0o744)
        self.assertTrue(os.access(self.m('obj'), os.X_OK))
        self.assertFalse(os.access(self.m('missing'), os.F_OK))
        self.check(['test', '-r', self.m('obj')])
        self.check(['test', '-w', self.m('obj')])


class SymlinkTest(MountTestCase):
    def prepare_source(self, source):
        self.write(os.path.join(source, 'target'), b'the target')
        self.write(os.path.join(source, 'other'), b'the other')

    def test_ln_s_makes_real_symlink(self):
        self.check(['ln', '-s', 'target', self.m('link')])
        self.assertTrue(os.path.islink(self.s('link')))
        self.assertEqual(os.readlink(self.s('link')), 'target')
        self.assertEqual(self.check(['readlink', self.m('link')]), 'target\n')
        self.assertEqual(os.readlink(self.m('link')), 'target')
        self.assertIn('link -> target', self.check(['ls', '-l', self.m('link')]))
        self.assertEqual(self.check(['cat', self.m('link')]), 'the target')
        self.assertEqual(os.lstat(self.m('link')).st_size, len('target'))

    def test_target_text_kept_exactly(self):
        for target in ('/nonexistent/dangling target', '../up/./x', 'sysv/0x00001234',
                       'a' * 1000):
            with self.subTest(target=target[:40]):
                self.check(['ln', '-s', target, self.m('t')])
                self.assertEqual(os.readlink(self.s('t')), target)
                self.assertEqual(os.readlink(self.m('t')), target)
                self.check(['rm', self.m('t')])
        self.check_fails(['cat', self.m('dangling')], errno.ENOENT)

    def test_ln_sf_replaces(self):
        self.check(['ln', '-s', 'target', self.m('link')])
        self.check_fails(['ln', '-s', 'other', self.m('link')], errno.EEXIST)
        self.check(['ln', '-sf', 'other', self.m('link')])
        self.assertEqual(os.readlink(self.s('link')), 'other')
        self.assertEqual(self.check(['readlink', self.m('link')]), 'other\n')
        self.assertEqual(self.read(self.m('link')), b'the other')
        # ln -sf over a regular file replaces it too, as on a local filesystem.
        self.write(self.s('plain'), b'plain')
        self.check(['ln', '-sf', 'target', self.m('plain')])
        self.assertEqual(os.readlink(self.s('plain')), 'target')

    def test_rm_link_keeps_target(self):
        self.check(['ln', '-s', 'target', self.m('link')])
        self.check(['rm', self.m('link')])
        self.assertFalse(os.path.lexists(self.s('link')))
        self.assertEqual(self.read(self.s('target')), b'the target')
        self.assertEqual(self.read(self.m('target')), b'the target')

    def test_link_made_outside(self):
        os.symlink('other', self.s('outside'))
        self.assertEqual(os.readlink(self.m('outside')), 'other')
        self.assertEqual(self.read(self.m('outside')), b'the other')
        self.assertEqual(self.check(['readlink', '-f', self.m('outside')]),
                         self.m('other') + '\n')

    def test_readlink_of_non_link(self):
        self.assert_errno(errno.EINVAL, os.readlink, self.m('target'))


class ChangedWhileOpenTest(MountTestCase):
    SIZE = 1 << 20

    def prepare_source(self, source):
        self.write(os.path.join(source, 'obj'), pattern(self.SIZE))

    def test_shrink_while_open(self):
        fd = os.open(self.m('obj'), os.O_RDONLY)
        try:
            self.assertEqual(os.pread(fd, 4096, self.SIZE // 2),
                             pattern(self.SIZE)[self.SIZE // 2:self.SIZE // 2 + 4096])
            os.truncate(self.s('obj'), 4096)       # another process shrinks it
            self.assertEqual(os.pread(fd, 4096, self.SIZE // 2), b'')
            self.assertEqual(os.pread(fd, 8192, 0), pattern(4096))
            self.assertEqual(os.pread(fd, 1000, 4000), pattern(4096)[4000:])
            self.assertEqual(os.pread(fd, 100, 4096), b'')
            self.assertEqual(os.fstat(fd).st_size, 4096)
            os.truncate(self.s('obj'), 0)
            self.assertEqual(os.pread(fd, 4096, 0), b'')
            # Grown again from outside: the new bytes are zeros.
            os.truncate(self.s('obj'), 2 * self.SIZE)
            self.assertEqual(os.pread(fd, 4096, self.SIZE + 4096), bytes(4096))
        finally:
            os.close(fd)
        self.assert_daemon_alive()

    def test_shrink_while_writer_open(self):
        fd = os.open(self.m('obj'), os.O_RDWR)
        try:
            os.truncate(self.s('obj'), 100)
            self.assertEqual(os.pwrite(fd, b'after', 200), 5)
            self.assertEqual(os.pread(fd, 300, 0), pattern(100) + bytes(100) + b'after')
        finally:
            os.close(fd)
        self.assert_daemon_alive()

    def test_shrink_and_grow_under_readers(self):
        """Another process shrinks and grows the object while readers read:
        the daemon survives and no read fails or returns more than was there."""
        stop = threading.Event()
        errors = []

        def reshape():
            sizes = [0, 4096, self.SIZE, 1, 300000, self.SIZE // 2 + 1]
            i = 0
            while not stop.is_set():
                os.truncate(self.s('obj'), sizes[i % len(sizes)])
                i += 1

        def reader():
            fd = os.open(self.m('obj'), os.O_RDONLY)
            try:
                while not stop.is_set():
                    for off in (0, 4096, self.SIZE // 2, self.SIZE - 4096):
                        try:
                            os.pread(fd, 65536, off)
                        except OSError as e:
                            errors.append(f'pread at {off}: {e}')
                            return
            finally:
                os.close(fd)

        threads = [threading.Thread(target=reshape)] + \
                  [threading.Thread(target=reader) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(2.0)   # duration of the stress, not a readiness wait
        stop.set()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assert_daemon_alive()

    def test_removed_while_open(self):
        fd = os.open(self.m('obj'), os.O_RDWR)
        try:
            os.unlink(self.s('obj'))              # another process removes it
            # The kernel may answer from its cache for up to -o timeout (1 s).
            self.assertTrue(wait_until(lambda: not os.path.lexists(self.m('obj')), 3),
                            'a removed object still shows after the timeout')
            self.assert_errno(errno.ENOENT, os.stat, self.m('obj'))
            self.assertEqual(os.pread(fd, 100, 1000), pattern(self.SIZE)[1000:1100])
            self.assertEqual(os.pwrite(fd, b'still here', 0), 10)
            self.assertEqual(os.pread(fd, 10, 0), b'still here')
            self.assertEqual(os.fstat(fd).st_size, self.SIZE)
            # A new object of that name is a different one.
            self.write(self.s('obj'), b'newcomer')
            self.assertEqual(self.read(self.m('obj')), b'newcomer')
            self.assertEqual(os.pread(fd, 10, 0), b'still here')
        finally:
            os.close(fd)
        self.assert_daemon_alive()


    def test_recreated_object_is_found_at_once(self):
        # What ImageStreamIO does when a stream is re-created: unlink, then
        # create the same name. Opening through the mount finds the new
        # object straight away, even with the old name cached.
        self.assertEqual(self.read(self.m('obj'), 0, 4), pattern(self.SIZE)[:4])
        os.unlink(self.s('obj'))
        self.write(self.s('obj'), b'second incarnation')
        self.assertEqual(self.read(self.m('obj')), b'second incarnation')
        self.assertEqual(os.stat(self.m('obj')).st_size, 18)


class StrictMetadataTest(MountTestCase):
    """With -o timeout=0 nothing is cached: what another process does to
    names and attributes in SOURCE shows at once."""
    mount_options = ['-o', 'timeout=0']

    def test_external_changes_show_at_once(self):
        self.write(self.s('obj'), b'12345')
        self.assertEqual(os.stat(self.m('obj')).st_size, 5)
        os.truncate(self.s('obj'), 3)
        self.assertEqual(os.stat(self.m('obj')).st_size, 3)
        os.chmod(self.s('obj'), 0o600)
        self.assertEqual(os.stat(self.m('obj')).st_mode & 0o777, 0o600)
        os.unlink(self.s('obj'))
        self.assert_errno(errno.ENOENT, os.stat, self.m('obj'))


class FullFilesystemTest(MountTestCase):
    """SOURCE on a 1 MiB tmpfs: a write that does not fit fails with ENOSPC,
    and what is there stays intact; a growing truncate makes a hole, as on
    tmpfs, unless -o reserve (then ENOSPC too)."""

    KEEP = pattern(100000, seed=9)

    def setUp(self):
        super().setUp()
        small = self.tmpfs_dir('1m')
        self.write(os.path.join(small, 'keep'), self.KEEP)
        self.remount(source=small)

    def assert_keep_intact(self):
        self.assertEqual(os.stat(self.s('keep')).st_size, len(self.KEEP))
        self.assertEqual(self.read(self.s('keep')), self.KEEP)
        self.assertEqual(self.read(self.m('keep')), self.KEEP)

    def test_enospc(self):
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.m("fill")}', 'bs=64k'], errno.ENOSPC)
        self.assert_keep_intact()
        # A further write fails too.
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.m("fill")}', 'bs=4k', 'count=1',
                          'oflag=append', 'conv=notrunc'], errno.ENOSPC)
        fd = os.open(self.m('fill'), os.O_WRONLY | os.O_APPEND)
        try:
            self.assert_errno(errno.ENOSPC, os.write, fd, b'x' * 65536)
        finally:
            os.close(fd)
        # Once there is room again, writes work.
        self.check(['rm', self.m('fill')])
        self.check(['dd', 'if=/dev/zero', f'of={self.m("fill")}', 'bs=4k', 'count=4',
                    'status=none'])
        self.assertEqual(os.stat(self.s('fill')).st_size, 16384)
        self.assert_keep_intact()
        self.assert_daemon_alive()

    def test_truncate_beyond_capacity_is_sparse(self):
        """As on tmpfs: the size is set, no memory is taken."""
        self.check(['truncate', '-s', '10M', self.m('new')])
        st = os.stat(self.s('new'))
        self.assertEqual((st.st_size, st.st_blocks), (10 << 20, 0))
        self.check(['truncate', '-s', '10M', self.s('direct')])   # tmpfs itself agrees
        self.assertEqual(os.stat(self.s('direct')).st_size, 10 << 20)

    def test_truncate_beyond_capacity_with_reserve(self):
        """-o reserve: a growing truncate reserves the memory, so it fails
        with ENOSPC now, leaving size and content alone, rather than a store
        raising SIGBUS later."""
        self.remount(options=['-o', 'reserve'])
        self.check_fails(['truncate', '-s', '10M', self.m('keep')], errno.ENOSPC)
        self.assert_keep_intact()
        fd = os.open(self.m('keep'), os.O_RDWR)
        try:
            self.assert_errno(errno.ENOSPC, os.ftruncate, fd, 10 << 20)
        finally:
            os.close(fd)
        self.assert_keep_intact()
        self.check_fails(['truncate', '-s', '10M', self.m('new')], errno.ENOSPC)
        if os.path.exists(self.s('new')):
            self.assertEqual(os.stat(self.s('new')).st_size, 0)
        self.check(['truncate', '-s', '300K', self.m('new')])
        self.assertGreaterEqual(os.stat(self.s('new')).st_blocks, 600)

    def test_sparse_object_on_full_filesystem(self):
        """Holes of a sparse object on a full tmpfs read as zeros (reading
        must not need new pages), and writing into a hole fails with ENOSPC."""
        self.write(self.s('sparse'), b'')
        os.truncate(self.s('sparse'), 10 << 20)      # made outside: no pages
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.m("fill")}', 'bs=64k'], errno.ENOSPC)
        self.assertEqual(self.read(self.m('sparse'), offset=5 << 20, size=65536), bytes(65536))
        out = self.check(['sh', '-c', f'dd if="$1" bs=1M status=none | wc -c', 'sh',
                          self.m('sparse')])
        self.assertEqual(int(out), 10 << 20)
        self.assertEqual(os.stat(self.s('sparse')).st_blocks, 0)
        fd = os.open(self.m('sparse'), os.O_WRONLY)
        try:
            self.assert_errno(errno.ENOSPC, os.pwrite, fd, b'x' * 65536, 3 << 20)
        finally:
            os.close(fd)
        self.assertEqual(os.stat(self.s('sparse')).st_size, 10 << 20)
        self.assert_keep_intact()
        self.assert_daemon_alive()

    def test_statfs_is_capacity_of_source(self):
        mine, real = os.statvfs(self.mnt), os.statvfs(self.source)
        self.assertEqual(mine.f_frsize * mine.f_blocks, 1 << 20)
        for f in ('f_bsize', 'f_frsize', 'f_blocks', 'f_bfree', 'f_bavail', 'f_files',
                  'f_ffree', 'f_namemax'):
            self.assertEqual(getattr(mine, f), getattr(real, f), f)
        fmt = '%b %f %a %S %c %d %l'
        self.assertEqual(self.check(['stat', '-f', '-c', fmt, self.mnt]),
                         self.check(['stat', '-f', '-c', fmt, self.source]))
        df = self.check(['df', '-B1', '--output=size,used,avail', self.mnt]).splitlines()[1]
        self.assertEqual(df, self.check(['df', '-B1', '--output=size,used,avail',
                                         self.source]).splitlines()[1])
        self.assertEqual(int(df.split()[0]), 1 << 20)


# Every test once more with the daemon serving reads and writes itself (its
# own mapping of each object) instead of FUSE passthrough, which hands them
# to the kernel where it is available.
if 'passthrough=' in harness.daemon_help():
    harness.with_variants(globals(), [AttributesTest, ReadWriteTest, CreateRemoveTest,
                                      TruncateTest, MetadataTest, SymlinkTest,
                                      ChangedWhileOpenTest, FullFilesystemTest],
                          'NoPassthrough', ['-o', 'passthrough=off'],
                          'daemon-served reads and writes: -o passthrough=off')


if __name__ == '__main__':
    unittest.main(verbosity=2)
