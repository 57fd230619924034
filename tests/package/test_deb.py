"""test_deb.py - the Debian package, made and used as an admin would, without
changing this machine: a fresh minimal bookworm root (mmdebstrap) installs
the Build-Depends debian/control declares (apt-get build-dep ./) and runs
dpkg-buildpackage -us -uc -b on a copy of this tree, lintian checks the
result (no error allowed), and a second fresh root installs it with apt-get
install ./shmfs_*.deb, which must pull in fuse3 and the libraries. There:
the programs and man pages are in place, shm.mount passes systemd-analyze
verify and is not enabled, the fstab lines mount with mount /shm and
mount -a, and systemd booted in the root (systemd-nspawn) mounts /shm when
the unit is enabled, at once and at the next boot, logs the daemon's lines
to the journal under "shmfs", and mounts the boot form of the fstab line.

Everything happens under one temporary directory in /var/tmp and in this
test's private mount namespace (ctest runs it under unshare --mount), where
a tmpfs covers /run for systemd-nspawn's own files; all of it is removed at
the end. It needs the network (apt) and takes a few minutes."""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get('SHMFS_SOURCE_DIR', '')
PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
PROGRAMS = ('shmfs', 'shmtool', 'manageshrmem', 'fits2shm')


def log(text):
    sys.stderr.write(text.rstrip('\n') + '\n')
    sys.stderr.flush()


def run(cmd, timeout=900, check=True, **kw):
    """Run CMD on this machine; its output goes to the test's log."""
    t = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    log(f'$ {" ".join(cmd)[:200]}  [{time.monotonic() - t:.1f} s, status {r.returncode}]')
    if check and r.returncode != 0:
        raise AssertionError(f'{cmd} failed ({r.returncode}):\n{r.stdout[-4000:]}\n'
                             f'{r.stderr[-4000:]}')
    return r


def apt_sources():
    """This machine's Debian sources, as fresh roots should use them."""
    found = sorted(glob.glob('/etc/apt/sources.list.d/*.sources'))
    return found[0] if found else '/etc/apt/sources.list'


def in_private_mount_namespace():
    try:
        return os.readlink('/proc/self/ns/mnt') != os.readlink(f'/proc/{os.getppid()}/ns/mnt')
    except OSError:
        return False


def tree_files(top):
    """The files of the tree at TOP a clone would hold, as they are now
    (tracked and new files git does not ignore); every file outside git."""
    r = subprocess.run(['git', '-C', top, 'ls-files', '-z', '--cached', '--others',
                        '--exclude-standard'], capture_output=True)
    if r.returncode != 0:
        return None
    return [p for p in r.stdout.decode().split('\0') if p and os.path.lexists(
        os.path.join(top, p))]


class Root:
    """A bookworm root unpacked from TARBALL at PATH, with /proc, /dev (and
    a private tmpfs on its /dev/shm) mounted in this mount namespace."""

    def __init__(self, tarball, path):
        self.path = path
        os.mkdir(path)
        run(['tar', '-xf', tarball, '-C', path])
        shutil.copy('/etc/resolv.conf', os.path.join(path, 'etc/resolv.conf'))
        self.mounted = []
        self.mount_all()
        self.sh('apt-get update -q')   # mmdebstrap leaves no package lists

    def mount_all(self):
        """What commands run in the root need (systemd-nspawn wants none of it)."""
        self.mount(['-t', 'proc', 'proc'], 'proc')
        self.mount(['--rbind', '/dev'], 'dev')
        run(['mount', '--make-rslave', os.path.join(self.path, 'dev')])
        self.mount(['-t', 'tmpfs', '-o', 'mode=1777', 'shm'], 'dev/shm')

    def mount(self, how, where):
        target = os.path.join(self.path, where)
        run(['mount', *how, target])
        self.mounted.append(target)

    def sh(self, script, timeout=900, check=True):
        """Run SCRIPT with sh -e inside the root, as root, with a clean
        environment."""
        return run(['chroot', self.path, '/usr/bin/env', '-i', f'PATH={PATH}', 'HOME=/root',
                    'LC_ALL=C.UTF-8', 'DEBIAN_FRONTEND=noninteractive', 'TERM=dumb',
                    'sh', '-ec', script], timeout=timeout, check=check)

    def file(self, rel):
        return os.path.join(self.path, rel.lstrip('/'))

    def write(self, rel, text, mode=0o644):
        with open(self.file(rel), 'w') as f:
            f.write(text)
        os.chmod(self.file(rel), mode)

    def unmount_all(self):
        for target in reversed(self.mounted):
            subprocess.run(['umount', '-R', '-l', target], capture_output=True)
        self.mounted = []


# A oneshot unit that runs /root/check.sh once the machine is up, then
# powers it off: how the test drives a booted root.
CHECK_UNIT = '''[Unit]
Description=shmfs package test
After=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c '/root/check.sh >/root/check.out 2>&1'
ExecStartPost=/bin/systemctl --no-block poweroff
[Install]
WantedBy=multi-user.target
'''


class PackageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if not SOURCE_DIR:
            raise AssertionError('SHMFS_SOURCE_DIR must name the source tree (run through '
                                 'ctest)')
        if os.getuid() != 0 or not in_private_mount_namespace():
            raise AssertionError('run as root in a private mount namespace (ctest does: '
                                 'unshare --mount --propagation private)')
        cls.started = time.monotonic()
        cls.tmp = tempfile.mkdtemp(prefix='shmfs-package-', dir='/var/tmp')
        cls.roots = []
        try:
            cls.build()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def build(cls):
        # the fresh roots: one minimal bookworm made once, unpacked twice
        base = os.path.join(cls.tmp, 'base.tar')
        run(['mmdebstrap', '--quiet', '--variant=minbase', 'bookworm', base, apt_sources()],
            timeout=1200)
        cls.builder = cls.new_root(base, 'build')
        cls.target = cls.new_root(base, 'install')

        # this tree, as a clone of it would be, into the build root
        src = cls.builder.file('/build/shmfs')
        os.makedirs(src)
        files = tree_files(SOURCE_DIR)
        if files is None:
            shutil.copytree(SOURCE_DIR, src, dirs_exist_ok=True, symlinks=True,
                            ignore=shutil.ignore_patterns('build*', 'obj-*', '.git'))
        else:
            for rel in files:
                os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                shutil.copy2(os.path.join(SOURCE_DIR, rel), os.path.join(src, rel),
                             follow_symlinks=False)

        t = time.monotonic()
        cls.build_dep = cls.builder.sh('cd /build/shmfs && apt-get build-dep -y -q ./',
                                       check=False)
        cls.dpkg_build = cls.builder.sh('cd /build/shmfs && DEB_BUILD_OPTIONS=parallel=2 '
                                        'dpkg-buildpackage -us -uc -b', check=False)
        cls.build_seconds = time.monotonic() - t
        cls.debs = sorted(os.path.basename(p) for p in glob.glob(cls.builder.file('/build/*.deb')))
        log(f'built: {cls.debs} in {cls.build_seconds:.0f} s')
        cls.lintian = None
        if cls.dpkg_build.returncode == 0:
            cls.builder.sh('apt-get install -y -q --no-install-recommends lintian')
            # lintian reads the .changes: the .deb, the .buildinfo; every tag
            # shown (info and pedantic too), errors fail the test
            cls.lintian = cls.builder.sh('cd /build && setpriv --reuid=nobody --regid=nogroup '
                                         '--clear-groups env HOME=/tmp lintian --info '
                                         '--pedantic --display-experimental --fail-on error '
                                         'shmfs_*.changes 2>&1', check=False)
            log('lintian:\n' + (cls.lintian.stdout or '(no tags)\n'))

        # the package, installed as an admin would, into the other root
        cls.install = None
        deb = next((d for d in cls.debs if re.match(r'shmfs_[^_]+_[^_]+\.deb$', d)), None)
        if deb:
            shutil.copy(cls.builder.file('/build/' + deb), cls.target.file('/root/' + deb))
            cls.before = set(cls.target.sh("dpkg-query -W -f='${Package}\\n'").stdout.split())
            cls.install = cls.target.sh(f'apt-get install -y -q /root/{deb}', check=False)
            cls.after = set(cls.target.sh("dpkg-query -W -f='${Package}\\n'").stdout.split())

    @classmethod
    def new_root(cls, tarball, name):
        root = Root(tarball, os.path.join(cls.tmp, name))
        cls.roots.append(root)
        return root

    @classmethod
    def tearDownClass(cls):
        for root in getattr(cls, 'roots', []):
            root.unmount_all()
        if getattr(cls, 'tmp', None):
            subprocess.run(['rm', '-rf', '--one-file-system', cls.tmp], capture_output=True)
        if getattr(cls, 'started', None):
            log(f'package tests: {time.monotonic() - cls.started:.0f} s in all')

    # -- the build ------------------------------------------------------------

    def test_1_build(self):
        self.assertEqual(self.build_dep.returncode, 0,
                         self.build_dep.stdout[-3000:] + self.build_dep.stderr[-3000:])
        self.assertEqual(self.dpkg_build.returncode, 0,
                         self.dpkg_build.stdout[-5000:] + self.dpkg_build.stderr[-5000:])
        self.assertIn('shmfs_0.1.0_amd64.deb', self.debs)
        # built without the tests' tools: neither Criterion nor clang came in
        have = self.builder.sh("dpkg-query -W -f='${Package} ${Status}\\n' libcriterion-dev "
                               "clang python3 2>/dev/null || true").stdout
        self.assertNotIn('install ok installed', have)
        # built with the hardening flags dpkg-buildflags gives
        self.assertIn('-D_FORTIFY_SOURCE=2', self.dpkg_build.stdout)

    def test_2_lintian(self):
        self.assertIsNotNone(self.lintian, 'no package to check')
        self.assertEqual(self.lintian.returncode, 0, self.lintian.stdout)
        self.assertNotRegex(self.lintian.stdout, r'(?m)^E: ', self.lintian.stdout)

    # -- the installed package ------------------------------------------------

    def installed(self):
        self.assertIsNotNone(self.install, 'no package was built')
        self.assertEqual(self.install.returncode, 0,
                         self.install.stdout[-3000:] + self.install.stderr[-3000:])

    def test_3_install_pulls_in_what_it_needs(self):
        self.installed()
        new = self.after - self.before
        log(f'apt-get install ./{self.debs[-1]} installed: {" ".join(sorted(new))}')
        for pkg in ('shmfs', 'fuse3', 'libfuse3-3', 'libcfitsio10'):
            self.assertIn(pkg, new, f'installed: {sorted(new)}')
        for name in PROGRAMS:
            self.assertTrue(os.access(self.target.file(f'/usr/bin/{name}'), os.X_OK), name)
            self.assertTrue(os.path.isfile(self.target.file(f'/usr/share/man/man1/{name}.1.gz')),
                            name)
        out = self.target.sh('shmfs --version; shmtool --help; manageshrmem --help; '
                             'fits2shm --help').stdout
        self.assertRegex(out, r'^shmfs 0\.1\.0 \(libfuse 3\.')
        # mount(8) finds mount.fuse3 for fuse.* types, and it finds shmfs
        self.assertTrue(os.path.exists(self.target.file('/sbin/mount.fuse3')))
        self.assertTrue(os.path.exists(self.target.file('/lib/systemd/system/shm.mount')))

    def test_4_unit(self):
        self.installed()
        self.target.sh('apt-get install -y -q systemd systemd-sysv man-db')
        r = self.target.sh('systemd-analyze verify /lib/systemd/system/shm.mount 2>&1',
                           check=False)
        log('systemd-analyze verify: status %d, output %r' % (r.returncode, r.stdout))
        self.assertEqual((r.returncode, r.stdout), (0, ''))
        r = self.target.sh('systemctl is-enabled shm.mount', check=False)
        self.assertEqual(r.stdout.strip(), 'disabled')
        with open(self.target.file('/lib/systemd/system/shm.mount')) as f:
            unit = f.read()
        # systemd waits for a device for any source under /dev: not ours
        what = re.search(r'(?m)^What=(.*)$', unit).group(1)
        self.assertFalse(what.startswith('/dev/'), what)
        self.boots()

    def boot(self, script):
        """Boot the install root with systemd (systemd-nspawn), run SCRIPT
        once it is up, power off; SCRIPT's output."""
        root = self.target
        root.write('/root/check.sh', '#!/bin/sh\nset -x\n' + script, 0o755)
        root.write('/etc/systemd/system/shmfs-check.service', CHECK_UNIT)
        root.sh('systemctl enable shmfs-check.service >/dev/null 2>&1')
        root.unmount_all()
        try:
            r = run(['systemd-nspawn', '--quiet', f'--directory={root.path}', '--register=no',
                     '--keep-unit', '--private-network', '--bind=/dev/fuse', '--boot',
                     '--console=pipe'], timeout=300, check=False)
        finally:
            root.mount_all()
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        self.assertTrue(os.path.exists(root.file('/root/check.out')),
                        'the check did not run:\n' + r.stdout[-5000:])
        with open(root.file('/root/check.out')) as f:
            out = f.read()
        log(f'boot: status {r.returncode}\n{out}')
        os.unlink(root.file('/root/check.out'))
        root.sh('systemctl disable shmfs-check.service >/dev/null 2>&1')
        return out

    def boots(self):
        if not os.path.ismount('/run') or not os.path.exists('/run/.shmfs-package-test'):
            # systemd-nspawn keeps files in /run/systemd/nspawn: in a tmpfs
            # of this namespace, not in the machine's /run
            run(['mount', '-t', 'tmpfs', '-o', 'mode=0755', 'shmfs-package-run', '/run'])
            open('/run/.shmfs-package-test', 'w').close()
        # 1: not mounted until enabled; enable --now mounts it
        out = self.boot('systemctl is-enabled shm.mount || true\n'
                        'systemctl is-active shm.mount || true\n'
                        'systemctl enable --now shm.mount\n'
                        'findmnt --noheadings -o SOURCE,FSTYPE /shm\n'
                        'echo through the mount >/dev/shm/probe\n'
                        'cat /shm/probe\n'
                        'ls -d /shm/sysv\n'
                        'journalctl -b --no-pager -o short -t shmfs\n')
        self.assertIn('\ndisabled\n', out)
        self.assertIn('\ninactive\n', out)
        self.assertRegex(out, r'\n/dev/shm +fuse\.shmfs\n')
        self.assertIn('\nthrough the mount\n', out)
        self.assertIn('\n/shm/sysv\n', out)
        # the daemon's own lines, in the journal under its name
        self.assertRegex(out, r'shmfs\[\d+\]: serving /dev/shm at /shm\n')
        # 2: enabled, it is mounted at boot
        out = self.boot('systemctl is-active shm.mount\n'
                        'findmnt --noheadings -o SOURCE,FSTYPE,OPTIONS /shm\n'
                        'systemctl disable shm.mount\n')
        self.assertIn('\nactive\n', out)
        self.assertRegex(out, r'\n/dev/shm +fuse\.shmfs +\S*allow_other')
        # 3: the fstab line for boot: mounted by systemd's fstab generator
        self.target.write('/etc/fstab', 'shmfs#/dev/shm /shm fuse allow_other 0 0\n')
        try:
            out = self.boot('systemctl is-active shm.mount\n'
                            'systemctl show -P SourcePath shm.mount\n'
                            'findmnt --noheadings -o SOURCE,FSTYPE /shm\n')
        finally:
            self.target.write('/etc/fstab', '')
        self.assertIn('\nactive\n', out)
        self.assertIn('\n/etc/fstab\n', out)
        self.assertRegex(out, r'\n/dev/shm +fuse\.shmfs\n')

    def test_5_fstab(self):
        """mount /shm and mount -a with the fstab lines of the README, in the
        installed root (mount(8) -> /sbin/mount.fuse -> shmfs)."""
        self.installed()
        root = self.target
        os.makedirs(root.file('/shm'), exist_ok=True)
        with open(root.file('/dev/shm/probe'), 'w') as f:
            f.write('fstab\n')
        for line in ('/dev/shm /shm fuse.shmfs allow_other 0 0',
                     'shmfs#/dev/shm /shm fuse allow_other 0 0'):
            with self.subTest(line=line):
                root.write('/etc/fstab', line + '\n')
                try:
                    for how in ('mount /shm', 'mount -a'):
                        out = root.sh(f'{how}\nfindmnt --noheadings -o SOURCE,FSTYPE,OPTIONS '
                                      '/shm\ncat /shm/probe\numount /shm').stdout
                        self.assertRegex(out, r'^/dev/shm +fuse\.shmfs +\S*allow_other', how)
                        self.assertIn('\nfstab\n', out, how)
                finally:
                    root.sh('umount /shm 2>/dev/null || true')
                    root.write('/etc/fstab', '')


if __name__ == '__main__':
    unittest.main()
