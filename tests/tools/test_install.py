"""test_install.py - `cmake --install` puts the daemon, the three tools,
their four man pages and the systemd unit shm.mount in place, and each page
is clean roff (groff -ww)."""

import os
import subprocess
import tempfile
import unittest

BUILD = os.path.dirname(os.environ.get('SHMFS_TOOLS', '').rstrip('/'))
PROGRAMS = ['shmfs', 'shmtool', 'manageshrmem', 'fits2shm']


class InstallTest(unittest.TestCase):

    def test_programs_and_man_pages_are_installed(self):
        self.assertTrue(BUILD, 'run through ctest (SHMFS_TOOLS)')
        with tempfile.TemporaryDirectory(prefix='shmfs-install-') as prefix:
            r = subprocess.run(['cmake', '--install', BUILD, '--prefix', prefix],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            for name in PROGRAMS:
                with self.subTest(program=name):
                    exe = os.path.join(prefix, 'bin', name)
                    self.assertTrue(os.access(exe, os.X_OK), exe)
                    page = os.path.join(prefix, 'share', 'man', 'man1', name + '.1')
                    self.assertTrue(os.path.isfile(page), page)
                    g = subprocess.run(['groff', '-man', '-ww', '-z', page],
                                       capture_output=True, text=True)
                    self.assertEqual((g.returncode, g.stderr), (0, ''), page)
                    with open(page) as f:
                        self.assertIn(f'.TH {name.upper()} 1', f.read())
            unit = os.path.join(prefix, 'lib', 'systemd', 'system', 'shm.mount')
            with open(unit) as f:
                self.assertIn('\nWhere=/shm\n', f.read())

    def test_every_program_answers_help(self):
        for name in PROGRAMS[1:]:
            with self.subTest(program=name):
                r = subprocess.run([os.path.join(BUILD, 'tools', name), '--help'],
                                   capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertIn(name, r.stdout + r.stderr)


if __name__ == '__main__':
    unittest.main()
