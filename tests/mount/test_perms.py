"""test_perms.py - with allow_other, the daemon (root) lets nobody do through
the mount what the kernel would refuse them directly: 0600 objects and
segments of another user give EACCES, System V modes are honoured (the
creator counts as an owner), and only an owner removes a segment. Commands
run as unprivileged users through setpriv."""

import errno
import os
import stat
import unittest

import harness
from harness import MountTestCase, ensure_user

USER_A = 'shmfs-test-user'
USER_B = 'shmfs-test-user2'
STRANGER = 'nobody'


class PermissionsTest(MountTestCase):
    mount_options = ['-o', 'allow_other']

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a = ensure_user(USER_A)
        cls.b = ensure_user(USER_B)
        cls.stranger = ensure_user(STRANGER)

    def setUp(self):
        super().setUp()
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)

    def prepare_source(self, source):
        self.write(os.path.join(source, 'secret'), b'root only')
        os.chmod(os.path.join(source, 'secret'), 0o600)
        self.write(os.path.join(source, 'public'), b'for everyone')
        os.chmod(os.path.join(source, 'public'), 0o644)

    def seg(self, name):
        return self.m('sysv', name)

    # -- POSIX objects ----------------------------------------------------

    def test_private_object_of_root(self):
        self.check_fails(['cat', self.m('secret')], errno.EACCES, user=self.a)
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.m("secret")}', 'count=1',
                          'conv=notrunc'], errno.EACCES, user=self.a)
        # The kernel refuses the same directly: the mount adds nothing.
        self.check_fails(['cat', self.s('secret')], errno.EACCES, user=self.a)
        r = self.python_as(self.a, 'import os,sys; print(os.access(sys.argv[1], os.R_OK))',
                           self.m('secret'))
        self.assertEqual(r.stdout, 'False\n', r.stderr)
        self.assertEqual(self.read(self.s('secret')), b'root only')

    def test_public_object_of_root(self):
        self.assertEqual(self.check(['cat', self.m('public')], user=self.a), 'for everyone')
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.m("public")}', 'count=1',
                          'conv=notrunc'], errno.EACCES, user=self.a)
        self.check_fails(['chmod', '666', self.m('public')], errno.EPERM, user=self.a)
        self.check_fails(['rm', '-f', self.m('public')], errno.EACCES, user=self.a)
        self.check_fails(['touch', self.m('mine')], errno.EACCES, user=self.a)
        self.assertEqual(self.read(self.s('public')), b'for everyone')
        self.assertEqual(stat.S_IMODE(os.stat(self.s('public')).st_mode), 0o644)

    def test_user_creates_own_objects(self):
        uid, gid = self.a
        os.mkdir(self.s('home'))
        os.chown(self.s('home'), uid, gid)
        self.check(['sh', '-c', f'echo mine > {self.m("home/mine")}'], user=self.a)
        st = os.stat(self.s('home/mine'))
        self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
        self.assertEqual(self.read(self.s('home/mine')), b'mine\n')
        self.check(['mkdir', self.m('home/sub')], user=self.a)
        self.assertEqual(os.stat(self.s('home/sub')).st_uid, uid)
        self.check(['ln', '-s', 'mine', self.m('home/link')], user=self.a)
        self.assertEqual(os.lstat(self.s('home/link')).st_uid, uid)
        self.check(['chmod', '600', self.m('home/mine')], user=self.a)
        self.check_fails(['cat', self.m('home/mine')], errno.EACCES, user=self.b)
        self.assertEqual(self.check(['cat', self.m('home/mine')], user=self.a), 'mine\n')

    # -- System V segments ------------------------------------------------

    def test_private_segment_of_root(self):
        self.sysvtool('create', '0x00001600', '4096', '0600')
        self.sysvtool('write', '0x00001600', '0', 'root segment')
        self.check_fails(['cat', self.seg('0x00001600')], errno.EACCES, user=self.a)
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.seg("0x00001600")}', 'count=1',
                          'conv=notrunc'], errno.EACCES, user=self.a)
        # The kernel refuses the same directly.
        r = self.sysvtool('read', '0x00001600', '0', '4', user=self.a, check=False)
        self.assertNotEqual(r.returncode, 0)
        # Attributes are visible to everyone, as ipcs shows them.
        self.assertIn('0x00001600', self.check(['ls', self.m('sysv')], user=self.a))
        self.assertIn('4096', self.check(['stat', '-c', '%s %a', self.seg('0x00001600')],
                                         user=self.a))

    def test_public_segment_of_root(self):
        self.sysvtool('create', '0x00001644', '4096', '0644')
        self.sysvtool('write', '0x00001644', '0', 'readable')
        out = self.run_cmd(['dd', f'if={self.seg("0x00001644")}', 'bs=8', 'count=1',
                            'status=none'], user=self.a)
        self.assertEqual((out.returncode, out.stdout), (0, 'readable'), out.stderr)
        self.check_fails(['dd', 'if=/dev/zero', f'of={self.seg("0x00001644")}', 'count=1',
                          'conv=notrunc'], errno.EACCES, user=self.a)
        self.assertEqual(self.sysvtool('read', '0x00001644', '0', '8'), 'readable')

    def test_group_and_other_bits(self):
        uid, gid = self.a
        self.sysvtool('create', '0x00001640', '100', '0640')
        self.sysvtool('set', '0x00001640', '-1', '-1', str(gid))
        self.check(['cat', self.seg('0x00001640')], user=self.a)
        self.check_fails(['cat', self.seg('0x00001640')], errno.EACCES, user=self.b)
        self.sysvtool('create', '0x00001606', '100', '0606')
        self.check_fails(['cat', self.seg('0x00001606')], errno.EACCES,
                         user=(uid, 0))   # group root: group bits (none) apply
        self.check(['cat', self.seg('0x00001606')], user=self.b)

    def test_cannot_remove_or_chmod_segment_of_another_user(self):
        self.sysvtool('create', '0x00001666', '100', '0666')
        self.check_fails(['rm', '-f', self.seg('0x00001666')], errno.EPERM, user=self.a)
        self.assertIsNotNone(self.sysv_stat('0x00001666'))
        self.check_fails(['chmod', '600', self.seg('0x00001666')], errno.EPERM, user=self.a)
        self.assertEqual(self.sysv_stat('0x00001666')['mode'], 0o666)
        # A segment of user B: A cannot remove it, B can.
        self.sysvtool('create', '0x0000b666', '100', '0666', user=self.b)
        self.check_fails(['rm', '-f', self.seg('0x0000b666')], errno.EPERM, user=self.a)
        self.assertIsNotNone(self.sysv_stat('0x0000b666'))
        self.check(['rm', self.seg('0x0000b666')], user=self.b)
        self.assertIsNone(self.sysv_stat('0x0000b666'))

    def test_creator_counts_as_owner(self):
        a_uid, _ = self.a
        b_uid, b_gid = self.b
        self.sysvtool('create', '0x00000c0c', '4096', '0600', user=self.a)
        self.sysvtool('write', '0x00000c0c', '0', 'made by A', user=self.a)
        self.sysvtool('set', '0x00000c0c', '-1', str(b_uid), str(b_gid))
        real = self.sysv_stat('0x00000c0c')
        self.assertEqual((real['uid'], real['cuid'], real['mode']), (b_uid, a_uid, 0o600))
        # The kernel lets A (the creator) read it directly...
        self.assertEqual(self.sysvtool('read', '0x00000c0c', '0', '9', user=self.a), 'made by A')
        # ...and so does the mount.
        self.assertEqual(self.check(['head', '-c', '9', self.seg('0x00000c0c')], user=self.a),
                         'made by A')
        self.check(['dd', f'of={self.seg("0x00000c0c")}', 'bs=1', 'seek=100', 'conv=notrunc',
                    'status=none'], user=self.a, input='written by A')
        self.assertEqual(self.sysvtool('read', '0x00000c0c', '100', '12'), 'written by A')
        # B is the owner now; a stranger is neither.
        self.assertEqual(self.check(['head', '-c', '9', self.seg('0x00000c0c')], user=self.b),
                         'made by A')
        self.check_fails(['cat', self.seg('0x00000c0c')], errno.EACCES, user=self.stranger)
        # The creator may change and remove it too, as with shmctl.
        self.check(['chmod', '640', self.seg('0x00000c0c')], user=self.a)
        self.assertEqual(self.sysv_stat('0x00000c0c')['mode'], 0o640)
        self.check(['rm', self.seg('0x00000c0c')], user=self.a)
        self.assertIsNone(self.sysv_stat('0x00000c0c'))

    def test_user_creates_segment(self):
        uid, gid = self.a
        self.check(['truncate', '-s', '256', self.seg('0x0000a001')], user=self.a)
        real = self.sysv_stat('0x0000a001')
        self.assertIsNotNone(real)
        self.assertEqual((real['size'], real['uid'], real['gid'], real['mode']),
                         (256, uid, gid, 0o644))
        self.check(['dd', f'of={self.seg("0x0000a001")}', 'conv=notrunc', 'status=none'],
                   user=self.a, input='hello')
        self.assertEqual(self.sysvtool('read', '0x0000a001', '0', '5'), 'hello')
        self.check_fails(['dd', f'of={self.seg("0x0000a001")}', 'conv=notrunc'],
                         errno.EACCES, user=self.b, input='intrude')
        # Everyone, root included, sees the owner shm_perm has.
        self.sysvtool('create', '0x0000a002', '16', '0644', user=self.a)
        self.check(['truncate', '-s', '16', self.seg('0x0000a003')], user=self.a)
        for name in ('0x0000a001', '0x0000a002', '0x0000a003'):
            for viewer in (self.b, None):
                with self.subTest(name=name, viewer=viewer or 'root'):
                    out = self.check(['stat', '-c', '%u %g', self.seg(name)], user=viewer)
                    self.assertEqual(out, f'{uid} {gid}\n')
        self.check(['rm', self.seg('0x0000a001')], user=self.a)
        self.assertIsNone(self.sysv_stat('0x0000a001'))


# The same tests with the daemon serving reads and writes itself instead of
# FUSE passthrough.
if 'passthrough=' in harness.daemon_help():
    harness.with_variants(globals(), [PermissionsTest],
                          'NoPassthrough', ['-o', 'passthrough=off'],
                          'daemon-served reads and writes: -o passthrough=off')


if __name__ == '__main__':
    unittest.main(verbosity=2)
