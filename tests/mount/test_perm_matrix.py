"""test_perm_matrix.py - the permission matrix: every operation a user can
try on an object, done once directly (on SOURCE, or with shmget/shmat/shmctl
for System V segments) and once through the mount with allow_other, by an
owner, a group member and another user (and root where set-id bits are
concerned), over the mode bits; the outcomes (success or the errno, and the
resulting mode and owner) must be identical.

Root lays out two identical trees in SOURCE, "direct" and "viamount"; each
user's operations run in one process per side (permcheck, a compiled
helper), on SOURCE/direct and on MOUNT/viamount. System V segments come in
pairs the same way. Users are numeric ids that need no passwd entry
(setpriv). What differs on purpose is listed in DIFFERENCES and checked too.
"""

import os
import subprocess
import unittest

import harness
from harness import COMMAND_ENV, MountTestCase

PERMCHECK = os.environ.get('SHMFS_PERMCHECK', '')

GROUP = 61100    # the objects' group: OWNER and MEMBER belong to it
FOREIGN = 61200  # a group nobody here belongs to
# name: (uid, gid, supplementary groups)
USERS = {
    'owner': (61001, 61001, [GROUP]),
    'member': (61002, 61002, [GROUP]),
    'other': (61003, 61003, []),
    'root': (0, 0, []),
}
# The owner again, as the creator of segments it gives away: its process's
# group, which System V records as the creator's (cgid), is GROUP.
CREATOR = (61001, GROUP, [GROUP])
OWNER_UID = USERS['owner'][0]
SCRIPT = b'#!/bin/sh\nexit 0\n'


def run_permcheck(user, lines):
    """Run permcheck as USER over LINES; returns its output lines."""
    uid, gid, groups = CREATOR if user == 'creator' else USERS[user]
    prefix = []
    if uid != 0:
        prefix = ['setpriv', f'--reuid={uid}', f'--regid={gid}',
                  f'--groups={",".join(map(str, groups))}' if groups else '--clear-groups',
                  '--']
    r = subprocess.run(prefix + [PERMCHECK], input='\n'.join(lines) + '\n', text=True,
                       capture_output=True, env=COMMAND_ENV, cwd='/', timeout=600)
    if r.returncode != 0:
        raise AssertionError(f'permcheck as {user} failed: {r.stderr}')
    out = r.stdout.splitlines()
    if len(out) != len(lines):
        raise AssertionError(f'permcheck as {user}: {len(out)} answers to {len(lines)} lines')
    return out


class Matrix:
    """Operations to run per user and side, with labels to report."""

    def __init__(self):
        self.ops = {}  # (user, side) -> [(label, line)]

    def add(self, user, label, direct, mount):
        self.ops.setdefault((user, 'direct'), []).append((label, direct))
        self.ops.setdefault((user, 'mount'), []).append((label, mount))

    def run(self):
        """{label: {side: answer}} for every operation."""
        answers = {}
        for (user, side), ops in sorted(self.ops.items()):
            out = run_permcheck(user, [line for _, line in ops])
            for (label, line), answer in zip(ops, out):
                answers.setdefault(label, {})[side] = (line, answer)
        return answers


class PermissionMatrixTest(MountTestCase):
    mount_options = ['-o', 'allow_other']

    def setUp(self):
        super().setUp()
        if not PERMCHECK or not os.access(PERMCHECK, os.X_OK):
            self.fail('SHMFS_PERMCHECK must name tests/mount/permcheck (run through ctest)')
        self.remove_all_segments()
        self.addCleanup(self.remove_all_segments)
        for tree in ('direct', 'viamount'):
            os.mkdir(self.s(tree))
            os.chmod(self.s(tree), 0o755)

    def paths(self, *parts):
        """The direct and the mount path of PARTS inside the two trees."""
        return self.s('direct', *parts), self.m('viamount', *parts)

    def make_file(self, name, mode, uid=OWNER_UID, gid=GROUP, content=b''):
        for tree in ('direct', 'viamount'):
            p = self.s(tree, name)
            with open(p, 'wb') as f:
                f.write(content)
            os.chown(p, uid, gid)
            os.chmod(p, mode)

    def make_dir(self, name, mode, uid=OWNER_UID, gid=GROUP):
        for tree in ('direct', 'viamount'):
            p = self.s(tree, name)
            os.mkdir(p)
            os.chown(p, uid, gid)
            os.chmod(p, mode)

    def compare(self, answers, allowed=None):
        """Every label's two answers agree, or differ exactly as ALLOWED
        (label -> (direct answer prefix, mount answer prefix)) says."""
        allowed = allowed or {}
        wrong = []
        for label, sides in sorted(answers.items()):
            (dline, d), (mline, m) = sides['direct'], sides['mount']
            if label in allowed:
                want_d, want_m = allowed[label]
                if not (d.startswith(want_d) and m.startswith(want_m)):
                    wrong.append(f'{label}: expected the documented difference '
                                 f'{want_d!r} / {want_m!r}, got {d!r} / {m!r}')
            elif d != m:
                wrong.append(f'{label}: direct {d!r} ({dline}), mount {m!r} ({mline})')
        if wrong:
            self.fail(f'{len(wrong)} of {len(answers)} outcomes differ:\n  ' +
                      '\n  '.join(wrong[:40]) + '\n' + self.log_text()[-3000:])

    def compare_trees(self):
        """What root sees afterwards in SOURCE is the same in both trees."""
        def state(tree):
            out = {}
            for dirpath, dirnames, filenames in os.walk(self.s(tree)):
                for name in dirnames + filenames:
                    p = os.path.join(dirpath, name)
                    st = os.lstat(p)
                    out[os.path.relpath(p, self.s(tree))] = (
                        oct(st.st_mode), st.st_uid, st.st_gid,
                        st.st_size if not os.path.isdir(p) else 0)
            return out
        d, m = state('direct'), state('viamount')
        wrong = [f'{k}: direct {d.get(k)}, mount {m.get(k)}'
                 for k in sorted(set(d) | set(m)) if d.get(k) != m.get(k)]
        if wrong:
            self.fail(f'{len(wrong)} objects differ afterwards:\n  ' +
                      '\n  '.join(wrong[:40]))

    # -- POSIX objects ----------------------------------------------------

    def test_read_write_truncate_exec_every_mode(self):
        """All 512 permission modes: read, read-write, write, truncate and
        O_TRUNC by the owner, a group member and another user; execution
        over the 64 modes of read and execute bits (write bits play no part
        in it)."""
        mx = Matrix()
        for mode in range(0o1000):
            self.make_file(f'w{mode:03o}', mode, content=b'0123456789')
            if mode & 0o222 == 0:
                self.make_file(f'x{mode:03o}', mode, content=SCRIPT)
        for user in ('owner', 'member', 'other'):
            for mode in range(0o1000):
                d, m = self.paths(f'w{mode:03o}')
                for op in ('read', 'rdwr', 'write', 'trunc', 'otrunc'):
                    arg = ' 4' if op == 'trunc' else ''
                    mx.add(user, f'{op} {mode:03o} by {user}', f'{op} {d}{arg}', f'{op} {m}{arg}')
                if mode & 0o222 == 0:
                    d, m = self.paths(f'x{mode:03o}')
                    mx.add(user, f'exec {mode:03o} by {user}', f'exec {d}', f'exec {m}')
        self.compare(mx.run())
        self.compare_trees()

    def test_setid_bits_chmod_chown(self):
        """Files with set-id and sticky bits: what a write, truncate,
        O_TRUNC or fallocate leaves of them, and chmod and chown (to the
        file's group, to a group the owner is not in, to another user), by
        each user and by root, on files of the owner's group and of a
        foreign one."""
        bases = (0o777, 0o755, 0o710, 0o700, 0o666, 0o646, 0o070, 0o007)
        specials = (0o4000, 0o2000, 0o6000, 0o1000)
        ops = {
            'write': 'write {p}',
            'trunc': 'trunc {p} 3',
            'otrunc': 'otrunc {p}',
            'falloc': 'falloc {p}',
            'chmod-same': 'chmod {p} {mode:o}',
            'chmod-2755': 'chmod {p} 2755',
            'chown-group': f'chown {{p}} -1 {GROUP}',
            'chown-foreign': f'chown {{p}} -1 {FOREIGN}',
            'chown-user': 'chown {p} 61003 -1',
        }
        mx = Matrix()
        for base in bases:
            for special in specials:
                mode = base | special
                for gid in (GROUP, FOREIGN):
                    for user in USERS:
                        for op, line in ops.items():
                            name = f'{op}-{mode:04o}-{gid}-{user}'
                            self.make_file(name, mode, gid=gid, content=b'0123456789')
                            d, m = self.paths(name)
                            mx.add(user, name, line.format(p=d, mode=mode),
                                   line.format(p=m, mode=mode))
        self.compare(mx.run())
        self.compare_trees()

    def test_unlink_rename_rmdir_in_every_directory_mode(self):
        """unlink, rename and rmdir in directories of every write/execute
        combination, sticky or not, of objects owned by the directory's
        owner, another user or root."""
        mx = Matrix()
        owners = {'owner': OWNER_UID, 'other': USERS['other'][0], 'root': 0}
        for wx in range(0o1000):
            if wx & 0o444:
                continue  # read bits play no part: all set below
            for sticky in (0, 0o1000):
                mode = 0o444 | wx | sticky
                for owner, ouid in owners.items():
                    for user in ('owner', 'member', 'other'):
                        for op in ('unlink', 'rename', 'rmdir'):
                            dname = f'{op}-{mode:04o}-{owner}-{user}'
                            self.make_dir(dname, 0o755)
                            if op == 'rmdir':
                                for tree in ('direct', 'viamount'):
                                    os.mkdir(self.s(tree, dname, 'obj'))
                                    os.chown(self.s(tree, dname, 'obj'), ouid, GROUP)
                            else:
                                for tree in ('direct', 'viamount'):
                                    p = self.s(tree, dname, 'obj')
                                    with open(p, 'wb'):
                                        pass
                                    os.chown(p, ouid, GROUP)
                                    os.chmod(p, 0o644)
                            for tree in ('direct', 'viamount'):
                                os.chmod(self.s(tree, dname), mode)
                            d, m = self.paths(dname, 'obj')
                            if op == 'rename':
                                dl, ml = f'rename {d} {d}.new', f'rename {m} {m}.new'
                            else:
                                dl, ml = f'{op} {d}', f'{op} {m}'
                            mx.add(user, dname, dl, ml)
        self.compare(mx.run())
        self.compare_trees()

    def test_create_owner_group_and_mode(self):
        """Objects made by each user under three umasks, in a plain
        directory, in a set-gid one of a group the users share and in a
        set-gid one of a foreign group: owner, group and mode bits (S_ISUID
        kept, S_ISGID kept or dropped, set-gid directories inherited)."""
        dirs = {'plain': (0o777, 0), 'sgid': (0o2777, GROUP), 'sgid-foreign': (0o2777, FOREIGN)}
        for name, (mode, gid) in dirs.items():
            self.make_dir(name, mode, uid=0, gid=gid)
        creations = {
            'file-0666': 'create {p} 666', 'file-4755': 'create {p} 4755',
            'file-2755': 'create {p} 2755', 'file-6777': 'create {p} 6777',
            'file-2745': 'create {p} 2745', 'dir-0777': 'mkdir {p} 777',
            'dir-2777': 'mkdir {p} 2777', 'dir-1777': 'mkdir {p} 1777',
            'fifo': 'mkfifo {p} 666', 'chardev': 'mknod {p} 20666 1 3',
            'link': 'symlink target {p}',
        }
        mx = Matrix()
        for user in USERS:
            for umask in (0, 0o022, 0o077):
                mx.add(user, f'umask {umask:03o} {user}', f'umask {umask:o}', f'umask {umask:o}')
                for dname in dirs:
                    for what, line in creations.items():
                        d, m = self.paths(dname, f'{what}-{umask:03o}-{user}')
                        mx.add(user, f'{what} in {dname} umask {umask:03o} by {user}',
                               line.format(p=d), line.format(p=m))
        self.compare(mx.run())
        self.compare_trees()

    # -- System V segments ------------------------------------------------

    next_key = 0x51000000

    def make_segments(self, specs):
        """Pairs of segments (direct, mount), one per (MODE, UID, GID,
        CREATOR) of SPECS, holding SCRIPT; CREATOR (a user name) makes them,
        else root. Returns the pairs of keys, in order."""
        pairs = []
        made = {}  # creator -> lines
        finish = []
        for mode, uid, gid, creator in specs:
            keys = []
            for _ in range(2):
                key = PermissionMatrixTest.next_key
                PermissionMatrixTest.next_key += 1
                keys.append(key)
                made.setdefault(creator or 'root', []).append(f'shm-create {key:#x} 4096 600')
                finish += [f'shm-script {key:#x}', f'shm-chown {key:#x} {uid} {gid}',
                           f'shm-chmod {key:#x} {mode:o}']
            pairs.append(tuple(keys))
        for creator, lines in made.items():
            out = run_permcheck(creator, lines)
            self.assertTrue(all(a.startswith('0 ') for a in out), out[:5])
        out = run_permcheck('root', finish)
        self.assertTrue(all(a.startswith('0 ') for a in out), out[:5])
        return pairs

    def sysv_answers(self, mx):
        """Run MX; the mount's answers carry the per-caller owner a System
        V creator is shown as (see sysv.c), so only outcome and mode are
        compared here, and shm_perm itself afterwards (sysv_state)."""
        answers = mx.run()
        for sides in answers.values():
            for side, (line, answer) in sides.items():
                sides[side] = (line, ' '.join(answer.split()[:2]))
        return answers

    def sysv_state(self, pairs):
        """Mode, owner and group of each pair of segments as root sees them:
        the two must agree."""
        labels = sorted(pairs)
        out = run_permcheck('root', [f'shm-stat {key:#x}' for label in labels
                                     for key in pairs[label]])
        # A removed segment: shmget fails (ENOENT), and no attributes.
        state = [answer.split(' ', 1)[1] for answer in out]
        return [f'{label}: direct {state[2 * i]!r}, mount {state[2 * i + 1]!r}'
                for i, label in enumerate(labels) if state[2 * i] != state[2 * i + 1]]

    def test_segments_read_write_exec_every_mode(self):
        """All 512 modes of segments owned by OWNER:GROUP and made by root:
        attaching read-only, read-write and for execution directly, against
        reading, writing (a read-write open, as an attachment is) and
        executing through the mount; and the 64 read/write modes of
        segments whose creator (OWNER, group GROUP) gave them to another
        user and a foreign group, where System V still counts the creator
        as an owner and its group's members as the group."""
        mx = Matrix()
        pairs = self.make_segments([(mode, OWNER_UID, GROUP, None) for mode in range(0o1000)])
        for mode, (dkey, mkey) in zip(range(0o1000), pairs):
            for user in ('owner', 'member', 'other'):
                dm = self.m('sysv', f'{mkey:#010x}')
                for dop, mop in (('shm-read', 'read'), ('shm-rw', 'rdwr'),
                                 ('shm-exec', 'exec')):
                    if dop == 'shm-exec' and mode & 0o222:
                        continue
                    mx.add(user, f'{mop} segment {mode:03o} by {user}',
                           f'{dop} {dkey:#x}', f'{mop} {dm}')
        modes = [mode for mode in range(0o1000) if not mode & 0o111]
        pairs = self.make_segments([(mode, 61009, FOREIGN, 'creator') for mode in modes])
        for mode, (dkey, mkey) in zip(modes, pairs):
            dm = self.m('sysv', f'{mkey:#010x}')
            for user in ('owner', 'member', 'other'):
                for dop, mop in (('shm-read', 'read'), ('shm-rw', 'rdwr')):
                    mx.add(user, f'{mop} segment {mode:03o} of creator by {user}',
                           f'{dop} {dkey:#x}', f'{mop} {dm}')
        self.compare(self.sysv_answers(mx))

    def test_segments_chmod_chown_remove(self):
        """chmod (set-id bits included: a segment has none), chown to the
        owner's group, to a foreign group and to another user, and removal,
        by each user and root, directly (IPC_SET, IPC_RMID) and through the
        mount (chmod, chown, rm); also by the creator of a segment it gave
        away. Through the mount chown follows file rules, which the kernel
        checks before the daemon sees it: only root gives a segment to
        another user or to a group its owner is not in (IPC_SET lets the
        owner or creator do both): the documented difference."""
        modes = (0o600, 0o660, 0o606, 0o666, 0o000, 0o777, 0o640, 0o604)
        ops = {
            'chmod': ('shm-chmod {k} 6755', 'chmod {p} 6755'),
            'chown-group': (f'shm-chown {{k}} {OWNER_UID} {GROUP}', f'chown {{p}} -1 {GROUP}'),
            'chown-foreign': (f'shm-chown {{k}} {OWNER_UID} {FOREIGN}',
                              f'chown {{p}} -1 {FOREIGN}'),
            'chown-user': (f'shm-chown {{k}} 61003 {GROUP}', 'chown {p} 61003 -1'),
            'remove': ('shm-rmid {k}', 'unlink {p}'),
        }
        mx = Matrix()
        cases = [(mode, given_away, user, op) for mode in modes
                 for given_away in (False, True) for user in USERS for op in ops
                 if not given_away or op in ('chmod', 'remove')]
        keys = self.make_segments([(mode, 61009, FOREIGN, 'creator') if given_away
                                   else (mode, OWNER_UID, GROUP, None)
                                   for mode, given_away, _, _ in cases])
        pairs = {}
        allowed = {}
        for (mode, given_away, user, op), (dkey, mkey) in zip(cases, keys):
            dline, mline = ops[op]
            label = (f'{op} segment {mode:03o}'
                     f'{" given away" if given_away else ""} by {user}')
            pairs[label] = (dkey, mkey)
            mx.add(user, label, dline.format(k=f'{dkey:#x}'),
                   mline.format(p=self.m('sysv', f'{mkey:#010x}')))
            if user == 'owner' and op in ('chown-foreign', 'chown-user'):
                allowed[label] = ('0 ', 'EPERM ')
        self.compare(self.sysv_answers(mx), allowed)
        wrong = [w for w in self.sysv_state(pairs)
                 if not any(w.startswith(label + ':') for label in allowed)]
        if wrong:
            self.fail('segments differ afterwards:\n  ' + '\n  '.join(wrong[:40]))

    def test_segments_truncate_and_rename_follow_the_rules(self):
        """No direct counterpart: truncating a segment through the mount
        needs write permission, as opening it for writing does, and
        succeeds only to its own size (EINVAL otherwise); renaming needs
        ownership (the System V directory is sticky) and then fails with
        EXDEV (mv copies instead)."""
        mx = Matrix()
        expected = {}
        modes = (0o600, 0o660, 0o606, 0o666, 0o000, 0o444, 0o222)
        pairs = self.make_segments([(mode, OWNER_UID, GROUP, None) for mode in modes])
        for mode, (_, mkey) in zip(modes, pairs):
            p = self.m('sysv', f'{mkey:#010x}')
            for user, shift in (('owner', 6), ('member', 3), ('other', 0)):
                writable = (mode >> shift) & 2
                for op, line, want in (
                        ('trunc-same', f'trunc {p} 4096', '0' if writable else 'EACCES'),
                        ('trunc-other', f'trunc {p} 100', 'EINVAL' if writable else 'EACCES'),
                        ('rename', f'rename {p} {p.replace("/0x51", "/0x5f")}',
                         'EXDEV' if user == 'owner' else 'EPERM')):
                    label = f'{op} segment {mode:03o} by {user}'
                    mx.add(user, label, 'umask 22', line)
                    expected[label] = want
        answers = mx.run()
        wrong = [f'{label}: {answers[label]["mount"][1]!r}, expected {want}'
                 for label, want in expected.items()
                 if answers[label]['mount'][1].split()[0] != want]
        if wrong:
            self.fail('\n  '.join(wrong))


# The same matrix with the daemon serving reads and writes itself.
if 'passthrough=' in harness.daemon_help():
    harness.with_variants(globals(), [PermissionMatrixTest],
                          'NoPassthrough', ['-o', 'passthrough=off'],
                          'daemon-served reads and writes: -o passthrough=off')


if __name__ == '__main__':
    unittest.main(verbosity=2)
