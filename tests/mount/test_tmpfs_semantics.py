"""test_tmpfs_semantics.py - a file in the mount behaves as the same file in
SOURCE (tmpfs) does, for every user: each case runs the same steps, as the
same user, in a directory of SOURCE used directly and in one used through
the mount, and compares what they leave. The umask is the caller's alone;
writes, truncates, O_TRUNC opens and fallocate by a user without CAP_FSETID
clear set-id bits (root's do not); a user's new object keeps S_ISUID and
gets a set-gid directory's group; FIFOs, sockets and device nodes are made
(devices by root only); fallocate has tmpfs's modes; a huge truncate makes
a sparse file (a reservation only with -o reserve); the link sysv/hN.fits
has the length of its text as its size. Users are numeric ids (setpriv)."""

import errno
import os
import socket
import stat
import subprocess
import sys
import threading
import unittest

import harness
from harness import COMMAND_ENV, MountTestCase

CFSHM_MAKE = os.environ.get('SHMFS_CFSHM_MAKE', '')
SHARED = 61110                  # a group USER_A and MEMBER are in
USER_A = (61011, 61011, [SHARED])
USER_B = (61012, 61012, [])     # in no group of anyone's
MEMBER = (61013, 61013, [SHARED])
ROOT = (0, 0, [])


def as_user(user):
    uid, gid, groups = user
    if uid == 0:
        return []
    return ['setpriv', f'--reuid={uid}', f'--regid={gid}',
            f'--groups={",".join(map(str, groups))}' if groups else '--clear-groups', '--']


class SemanticsCase(MountTestCase):
    mount_options = ['-o', 'allow_other']

    def setUp(self):
        super().setUp()
        for tree in ('direct', 'viamount'):
            os.mkdir(self.s(tree))
            os.chmod(self.s(tree), 0o777)

    def both(self, *parts):
        """(direct path, mount path) of PARTS in the two trees."""
        return self.s('direct', *parts), self.m('viamount', *parts)

    def run_as(self, user, cmd, input=None):
        return subprocess.run(as_user(user) + [str(a) for a in cmd], capture_output=True,
                              text=True, env=COMMAND_ENV, cwd='/', input=input, timeout=60)

    def outcome(self, user, cmd):
        """0, or the errno named on stderr, of CMD run as USER."""
        r = self.run_as(user, cmd)
        if r.returncode == 0:
            return 0
        for code in (errno.EPERM, errno.EACCES, errno.EOPNOTSUPP, errno.ENOSPC, errno.EFBIG,
                     errno.EINVAL, errno.EEXIST):
            if os.strerror(code) in r.stderr:
                return code
        self.fail(f'{cmd} as {user}: unexpected failure {r.stderr!r}')

    def py(self, user, code, *args):
        """Run Python CODE as USER (args in sys.argv[1:]); its stdout."""
        r = self.run_as(user, ['/usr/bin/python3', '-c', code, *args])
        if r.returncode != 0:
            self.fail(f'python as {user} failed: {r.stderr}')
        return r.stdout

    def same(self, path_pair, what=None):
        """lstat of the two paths agree on type, mode, owner, group, size,
        blocks (and rdev); returns the direct one."""
        d, m = (os.lstat(p) for p in path_pair)
        for f in ('st_mode', 'st_uid', 'st_gid', 'st_size', 'st_blocks', 'st_rdev'):
            self.assertEqual(getattr(m, f), getattr(d, f),
                             f'{what or path_pair[1]}: {f} differs (direct '
                             f'{getattr(d, f):o}, mount {getattr(m, f):o})')
        # What the mount says is what SOURCE has.
        real = os.lstat(path_pair[1].replace(self.mnt, self.source, 1))
        self.assertEqual(m.st_mode, real.st_mode)
        return d

    def make_file(self, name, mode, uid=0, gid=0, size=16):
        for p in self.both(name):
            with open(p.replace(self.mnt, self.source, 1), 'wb') as f:
                f.write(b'x' * size)
            os.chown(p.replace(self.mnt, self.source, 1), uid, gid)
            os.chmod(p.replace(self.mnt, self.source, 1), mode)


class UmaskTest(SemanticsCase):
    """The caller's umask, applied once: the daemon's own adds nothing."""

    MAKE = ('import os, socket, sys\n'
            'os.umask(int(sys.argv[2], 8)); d = sys.argv[1]\n'
            'os.close(os.open(d + "/f666", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))\n'
            'os.close(os.open(d + "/f777", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o777))\n'
            'os.mkdir(d + "/d777", 0o777)\n'
            'os.mkfifo(d + "/p666", 0o666)\n'
            'os.mknod(d + "/n644", 0o644 | 0o100000)\n'
            's = socket.socket(socket.AF_UNIX); s.bind(d + "/sock")\n')

    def test_umask_is_the_callers_alone(self):
        for user in (ROOT, USER_A):
            for umask in (0, 0o022, 0o077, 0o027):
                with self.subTest(user=user[0], umask=oct(umask)):
                    sub = f'u{user[0]}-{umask:03o}'
                    for p in self.both(sub):
                        os.mkdir(p.replace(self.mnt, self.source, 1))
                        os.chmod(p.replace(self.mnt, self.source, 1), 0o777)
                        self.py(user, self.MAKE, p, f'{umask:o}')
                    for name, mode in (('f666', 0o666), ('f777', 0o777), ('d777', 0o777),
                                       ('p666', 0o666), ('n644', 0o644), ('sock', 0o777)):
                        st = self.same(self.both(sub, name))
                        self.assertEqual(stat.S_IMODE(st.st_mode), mode & ~umask, name)

    def test_stream_made_with_umask_0_opens_read_write_for_another_user(self):
        """ImageStreamIO makes a stream with umask(0) and open(O_RDWR |
        O_CREAT | O_EXCL | O_TRUNC, 0666); another user's ImageStreamIO_openIm
        opens it read-write and maps it."""
        create = ('import os, sys\n'
                  'os.umask(0)\n'
                  'fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_TRUNC, 0o666)\n'
                  'os.ftruncate(fd, 8192); os.pwrite(fd, b"stream", 0); os.close(fd)\n')
        open_rw = ('import mmap, os, sys\n'
                   'fd = os.open(sys.argv[1], os.O_RDWR)\n'
                   'if sys.argv[2] == "map":\n'
                   '    m = mmap.mmap(fd, 8192, mmap.MAP_SHARED); m[100:105] = b"other"; m.close()\n'
                   'else:\n'
                   '    os.pwrite(fd, b"other", 100)\n'
                   'print(os.pread(fd, 6, 0).decode())\n')
        mapping = 'map' if self.passthrough_on() else 'write'
        for p in self.both('cam.im.shm'):
            self.py(USER_A, create, p)
            self.assertEqual(self.py(USER_B, open_rw, p, mapping), 'stream\n')
        st = self.same(self.both('cam.im.shm'))
        self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid), (0o666, USER_A[0]))
        self.assertEqual(self.read(self.s('viamount', 'cam.im.shm'), 100, 5), b'other')

    def passthrough_on(self):
        return 'passthrough on' in self.log_text()


class SetIdTest(SemanticsCase):
    """Set-id bits: cleared by a write, truncate, O_TRUNC open or fallocate
    of a caller without CAP_FSETID (S_ISGID without group execute only for
    a caller outside the file's group), kept by root's; kept on a new file
    of a user; set-gid directories hand down their group."""

    OPS = {
        'write': ['dd', 'of={p}', 'bs=1', 'count=1', 'seek=3', 'conv=notrunc', 'status=none'],
        'truncate': ['truncate', '-s', '8', '{p}'],
        'o_trunc': ['sh', '-c', ': > "$1"', 'sh', '{p}'],
        'fallocate': ['fallocate', '-l', '8192', '{p}'],
        'append': ['sh', '-c', 'echo more >> "$1"', 'sh', '{p}'],
    }

    def test_cleared_as_tmpfs_clears_them(self):
        cases = []
        for mode, gid in ((0o6777, 0), (0o4755, 0), (0o2777, 0), (0o2767, SHARED),
                          (0o6766, SHARED)):
            for who, user in (('other', USER_B), ('member', MEMBER), ('root', ROOT)):
                if mode & 0o002 == 0 and who != 'root':
                    continue
                for op in self.OPS:
                    name = f'{op}-{mode:o}-{who}'
                    self.make_file(name, mode, uid=0, gid=gid)
                    cases.append((name, user, op))
        for name, user, op in cases:
            for p in self.both(name):
                cmd = [a.format(p=p) for a in self.OPS[op]]
                r = self.run_as(user, cmd, input='y')
                self.assertEqual(r.returncode, 0, f'{name}: {r.stderr}')
            with self.subTest(name):
                self.same(self.both(name))
        # The rules themselves, as tmpfs applies them.
        mode = lambda name: stat.S_IMODE(os.stat(self.m('viamount', name)).st_mode)
        self.assertEqual(mode('write-6777-other'), 0o777)
        self.assertEqual(mode('truncate-6777-other'), 0o777)
        self.assertEqual(mode('o_trunc-6777-other'), 0o777)
        self.assertEqual(mode('fallocate-6777-other'), 0o777)
        self.assertEqual(mode('write-6777-root'), 0o6777)
        self.assertEqual(mode('truncate-6777-root'), 0o6777)
        self.assertEqual(mode('write-2767-member'), 0o2767)   # no group execute, in the group
        self.assertEqual(mode('write-2767-other'), 0o767)     # ... outside it

    def test_a_users_new_file_keeps_setuid(self):
        code = ('import os, sys\n'
                'os.umask(0)\n'
                'for name, mode in (("suid", 0o4755), ("sgid", 0o2755), ("both", 0o6775)):\n'
                '    os.close(os.open(sys.argv[1] + "/" + name, os.O_CREAT | os.O_WRONLY, mode))\n')
        for p in self.both():
            self.py(USER_A, code, p)
        for name, want in (('suid', 0o4755), ('sgid', 0o2755), ('both', 0o6775)):
            st = self.same(self.both(name))
            self.assertEqual((stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid),
                             (want, USER_A[0], USER_A[1]), name)

    def test_setgid_directory(self):
        code = ('import os, sys\n'
                'os.umask(0); d = sys.argv[1]\n'
                'os.close(os.open(d + "/file", os.O_CREAT | os.O_WRONLY, 0o666))\n'
                'os.close(os.open(d + "/sgidfile", os.O_CREAT | os.O_WRONLY, 0o2775))\n'
                'os.mkdir(d + "/sub", 0o777)\n'
                'os.mkdir(d + "/sub/deeper", 0o755)\n')
        for who, user in (('outsider', USER_B), ('member', MEMBER)):
            for p in self.both(who):
                real = p.replace(self.mnt, self.source, 1)
                os.mkdir(real)
                os.chown(real, 0, SHARED)
                os.chmod(real, 0o2777)
                self.py(user, code, p)
            for name in ('file', 'sgidfile', 'sub', 'sub/deeper'):
                st = self.same(self.both(who, name))
                self.assertEqual(st.st_gid, SHARED, f'{who}/{name} has the directory\'s group')
            self.assertTrue(os.stat(self.m('viamount', who, 'sub')).st_mode & stat.S_ISGID)
            self.assertTrue(os.stat(self.m('viamount', who, 'sub/deeper')).st_mode & stat.S_ISGID)
            sgid = os.stat(self.m('viamount', who, 'sgidfile')).st_mode & stat.S_ISGID
            self.assertEqual(bool(sgid), who == 'member',
                             'S_ISGID on a new file only for a member of the group')


class SpecialFilesTest(SemanticsCase):
    """FIFOs, sockets and device nodes, made in SOURCE as tmpfs makes them."""

    def test_made_in_source(self):
        for p in self.both():
            self.assertEqual(self.outcome(USER_A, ['mkfifo', '-m', '640', p + '/fifo']), 0)
            self.assertEqual(self.outcome(ROOT, ['mknod', '-m', '600', p + '/null', 'c', '1', '3']), 0)
            self.assertEqual(self.outcome(ROOT, ['mknod', p + '/blk', 'b', '7', '200']), 0)
            self.assertEqual(self.outcome(USER_A, ['mknod', p + '/dev', 'c', '1', '3']),
                             errno.EPERM)
            self.py(USER_A, 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
                    p + '/sock')
        for name, kind in (('fifo', stat.S_ISFIFO), ('null', stat.S_ISCHR),
                           ('blk', stat.S_ISBLK), ('sock', stat.S_ISSOCK)):
            st = self.same(self.both(name))
            self.assertTrue(kind(st.st_mode), name)
        self.assertEqual(os.lstat(self.s('viamount', 'fifo')).st_uid, USER_A[0])
        self.assertEqual(os.major(os.lstat(self.s('viamount', 'blk')).st_rdev), 7)
        self.assertFalse(os.path.lexists(self.s('viamount', 'dev')))
        self.assertIn('fifo', os.listdir(self.m('viamount')))

    def test_fifo_and_socket_work_through_the_mount(self):
        fifo = self.m('viamount', 'fifo')
        os.mkfifo(fifo)
        got = []
        reader = threading.Thread(target=lambda: got.append(self.read(fifo)))
        reader.start()
        self.write(fifo, b'through the fifo')
        reader.join(10)
        self.assertEqual(got, [b'through the fifo'])

        path = self.m('viamount', 'sock')
        server = socket.socket(socket.AF_UNIX)
        server.bind(path)
        server.listen(1)
        client = socket.socket(socket.AF_UNIX)
        client.connect(path)
        conn, _ = server.accept()
        client.sendall(b'ping')
        self.assertEqual(conn.recv(4), b'ping')
        for s in (conn, client, server):
            s.close()
        self.assertTrue(stat.S_ISSOCK(os.lstat(self.s('viamount', 'sock')).st_mode))


class FallocateTest(SemanticsCase):
    """fallocate(2) with the modes tmpfs has; the others refused as tmpfs
    refuses them."""

    def test_modes(self):
        steps = (
            (['fallocate', '-l', '1M'], 0),                          # allocate, grows
            (['fallocate', '-n', '-o', '1M', '-l', '1M'], 0),        # KEEP_SIZE
            (['fallocate', '-p', '-o', '4096', '-l', '8192'], 0),    # PUNCH_HOLE
            (['fallocate', '-z', '-o', '0', '-l', '4096'], errno.EOPNOTSUPP),  # ZERO_RANGE
            (['fallocate', '-c', '-o', '0', '-l', '4096'], errno.EOPNOTSUPP),  # COLLAPSE
        )
        for p in self.both('f'):
            with open(p, 'wb') as f:
                f.write(b'\x01' * 65536)
        for cmd, want in steps:
            with self.subTest(' '.join(cmd)):
                for p in self.both('f'):
                    self.assertEqual(self.outcome(ROOT, cmd + [p]), want)
                self.same(self.both('f'))
        d, m = (self.read(p) for p in self.both('f'))
        self.assertEqual(m, d)
        self.assertEqual(m[4096:12288], bytes(8192))
        self.assertEqual(os.stat(self.m('viamount', 'f')).st_size, 1 << 20)

    def test_segment_within_its_size(self):
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)
        self.sysvtool('create', '0x0000fa11', '65536', '0600')
        seg = self.m('sysv', '0x0000fa11')
        self.assertEqual(self.outcome(ROOT, ['fallocate', '-n', '-l', '65536', seg]), 0)
        self.assertEqual(self.outcome(ROOT, ['fallocate', '-n', '-l', '65537', seg]),
                         errno.ENOSPC)
        self.assertEqual(os.stat(seg).st_size, 65536)


class TruncateTest(SemanticsCase):
    """Growing by truncate leaves a hole, as on tmpfs, however large."""

    HUGE = 999999999999999

    def test_huge_truncate_is_sparse(self):
        for p in self.both('huge'):
            self.check(['truncate', '-s', self.HUGE, p])
        st = self.same(self.both('huge'))
        self.assertEqual((st.st_size, st.st_blocks), (self.HUGE, 0))
        self.assertEqual(self.read(self.m('viamount', 'huge'), self.HUGE - 10), bytes(10))
        # Written at the far end, and read back (too large to map).
        with open(self.m('viamount', 'huge'), 'r+b', buffering=0) as f:
            f.seek(self.HUGE - 4)
            f.write(b'tail')
        self.assertEqual(self.read(self.m('viamount', 'huge'), self.HUGE - 6), b'\0\0tail')
        self.assertEqual(os.stat(self.m('viamount', 'huge')).st_size, self.HUGE)


class ReserveTest(SemanticsCase):
    """-o reserve: growing by truncate reserves the memory (ENOSPC then)."""

    mount_options = ['-o', 'allow_other,reserve']

    def test_truncate_reserves(self):
        self.check(['truncate', '-s', '4M', self.m('viamount', 'r')])
        self.assertGreaterEqual(os.stat(self.s('viamount', 'r')).st_blocks, (4 << 20) // 512)
        self.check_fails(['truncate', '-s', TruncateTest.HUGE, self.m('viamount', 'r')],
                         errno.ENOSPC)
        self.assertEqual(os.stat(self.s('viamount', 'r')).st_size, 4 << 20)


class SysvLinkTest(SemanticsCase):
    """lstat of the link sysv/hN.fits: its size is the length of its text."""

    def test_link_size_is_its_length(self):
        if not CFSHM_MAKE:
            self.fail('SHMFS_CFSHM_MAKE must name tests/mount/cfshm_make (run through ctest)')
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)
        self.check([CFSHM_MAKE, 3, 16, 16, -32])
        link = self.m('sysv', 'h3.fits')
        st = os.lstat(link)
        self.assertTrue(stat.S_ISLNK(st.st_mode))
        self.assertEqual(st.st_size, len(os.readlink(link)))
        self.assertEqual(st.st_blocks, 0)
        self.assertNotEqual(os.stat(link).st_size, st.st_size)   # the view behind it
        self.assertEqual(self.check(['stat', '-c', '%s', link]), f'{len(os.readlink(link))}\n')


# The same with the daemon serving reads and writes itself.
if 'passthrough=' in harness.daemon_help():
    harness.with_variants(globals(), [UmaskTest, SetIdTest, SpecialFilesTest, FallocateTest,
                                      TruncateTest],
                          'NoPassthrough', ['-o', 'passthrough=off'],
                          'daemon-served reads and writes: -o passthrough=off')


if __name__ == '__main__':
    unittest.main(verbosity=2)
