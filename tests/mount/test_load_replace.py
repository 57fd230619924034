"""test_load_replace.py - issue 11: every common way of replacing a file
loads its view's stream in place (same inode, CNT0 + 1, a reader blocked on
the stream's semaphore wakes): cp and dd (O_TRUNC), astropy's
writeto(overwrite=True) and CFITSIO's "!name" (unlink, then create by the
same program), rsync and mv (rename of a file onto the view name); rm alone
still removes the stream; bad files are refused with SOURCE byte for byte
as it was; eight copies at once each load on their own content, every frame
whole; programs reading the view as fast as they can meanwhile, or while
another program writes it through a read-write open, are never turned away. Real programs throughout: cp, dd, astropy, a CFITSIO program, rsync,
mv."""

import errno
import os
import shutil
import subprocess
import sys
import threading
import unittest

import numpy as np
from astropy.io import fits

import harness
from harness import wait_until
import isio
from test_load import LoadCase, source_snapshot

FITS_CREATE = os.environ.get('SHMFS_FITS_CREATE', '')

# A program that replaces a file the way astropy does, with bytes of ours:
# unlink, then create and write (argv: view, file whose bytes to write).
REPLACE = r'''
import os, sys
os.unlink(sys.argv[1])
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
os.write(fd, open(sys.argv[2], 'rb').read())
try:
    os.close(fd)
except OSError as e:
    print(e.strerror)
    sys.exit(3)
'''

# Unlink argv[1], print "unlinked", then wait for a line on stdin and exit:
# a program that removes a view and stays.
UNLINK_AND_STAY = r'''
import os, sys
os.unlink(sys.argv[1])
print('unlinked', flush=True)
sys.stdin.readline()
'''


class ReplaceCase(LoadCase):

    def stream(self, name, a, cnt0=41):
        """Stream NAME in SOURCE holding float32 array A; its inode."""
        isio.make_stream(self.s(name + '.im.shm'), name, 9, tuple(reversed(a.shape)),
                         data=np.ascontiguousarray(a, np.float32).tobytes(), cnt0=cnt0)
        return os.stat(self.s(name + '.im.shm')).st_ino

    def assert_loaded_in_place(self, name, ino, cnt0, a):
        path = self.s(name + '.im.shm')
        self.assertEqual(os.stat(path).st_ino, ino, 'the same inode: loaded in place')
        self.assertEqual(isio.read_state(path)['cnt0'], cnt0, 'CNT0 + 1: one load')
        o = isio.stream_layout(path)
        self.assertEqual(isio.read_pixels(path, o), np.ascontiguousarray(a, np.float32).tobytes())
        self.assert_source_settled()

    def assert_source_settled(self):
        """No object set aside is left in SOURCE, nor shown in the mount."""
        self.assertTrue(wait_until(lambda: not any('.shmfs-unlinked-' in n
                                                   for n in os.listdir(self.source)), 5),
                        os.listdir(self.source))
        self.assertFalse(any('.shmfs-unlinked-' in n for n in os.listdir(self.mnt)))

    def replace_waking(self, name, action):
        """Stream NAME (8x8 float, CNT0 41), a reader blocked on its
        semaphore 3, ACTION(new array): the reader wakes with CNT0 42, the
        stream is the same inode holding the new array."""
        ino = self.stream(name, np.zeros((8, 8), np.float32))
        new = np.arange(64, dtype=np.float32).reshape(8, 8) + 100
        with isio.waiting(self.s(name + '.im.shm'), 3, 20) as waiter:
            action(new)
            out, err = waiter.communicate(timeout=15)
        self.assertEqual(waiter.returncode, 0, f'{out} {err}')
        self.assertEqual(out.split(), ['woken', '42'])
        self.assert_loaded_in_place(name, ino, 42, new)
        self.assert_astropy_pixels(self.m(name + '.fits'), new)


class EveryWayTest(ReplaceCase):
    """Each common way of replacing a file: one in-place load that wakes a
    waiting reader."""

    def test_cp(self):
        self.replace_waking('cam', lambda a: self.cp(self.write_fits('a.fits', a), 'cam.fits'))

    def test_dd(self):
        self.replace_waking('cam', lambda a: self.check(
            ['dd', f'if={self.write_fits("a.fits", a)}', f'of={self.m("cam.fits")}', 'bs=4096',
             'status=none']))

    def test_astropy_writeto_overwrite(self):
        def overwrite(a):
            code = ('import sys, numpy as np; from astropy.io import fits; '
                    'fits.writeto(sys.argv[1], np.load(sys.argv[2]), overwrite=True)')
            np.save(os.path.join(self.workdir, 'a.npy'), a)
            self.check([sys.executable, '-c', code, self.m('cam.fits'),
                        os.path.join(self.workdir, 'a.npy')])
        self.replace_waking('cam', overwrite)
        self.assert_log(r'cam\.fits: removed and created again by one program')

    def test_astropy_in_this_process(self):
        """The same in one long-lived Python program, several times."""
        ino = self.stream('cam', np.zeros((8, 8), np.float32))
        for i in range(3):
            a = np.full((8, 8), i, np.float32)
            fits.writeto(self.m('cam.fits'), a, overwrite=True)
            self.assert_loaded_in_place('cam', ino, 42 + i, a)

    def test_cfitsio_bang(self):
        def bang(a):
            self.check([FITS_CREATE, self.m('cam.fits'), '8', '8', '100'])
        self.replace_waking('cam', bang)

    def test_rsync(self):
        def rsync(a):
            # -I: copy even if size and time match; rsync writes a
            # temporary beside the name and renames it onto the view.
            self.check(['rsync', '-I', self.write_fits('a.fits', a), self.m('cam.fits')])
        self.replace_waking('cam', rsync)
        self.assert_log(r'cam\.fits \(renamed from \.cam\.fits\.\w+\): loaded')

    def test_mv_within_the_mount(self):
        def mv(a):
            self.cp(self.write_fits('a.fits', a), 'cam.fits.part')
            self.check(['mv', self.m('cam.fits.part'), self.m('cam.fits')])
            self.assertFalse(os.path.exists(self.s('cam.fits.part')), 'the file is gone')
        self.replace_waking('cam', mv)

    def test_mv_from_elsewhere(self):
        self.replace_waking('cam', lambda a: self.check(
            ['mv', self.write_fits('a.fits', a), self.m('cam.fits')]))

    def test_rename_onto_a_new_name_creates_the_stream(self):
        a = np.arange(12, dtype=np.int16).reshape(3, 4)
        self.check(['rsync', self.write_fits('a.fits', a), self.m('new.fits')])
        self.assert_stream('new', a, 4)
        self.assertEqual(sorted(os.listdir(self.source)), ['new.im.shm'])
        # The kernel is told the renamed name is the view now (2880 bytes
        # of header, 2880 of data and padding), not the file renamed.
        self.assertTrue(wait_until(lambda: os.stat(self.m('new.fits')).st_size == 5760, 5))

    def test_unpadded_file_loads_once(self):
        """A FITS file without its final padding (not the standard's, but
        written by some programs) is loaded when the copy ends, once."""
        ino = self.stream('cam', np.zeros((8, 8), np.float32))
        a = np.arange(64, dtype=np.float32).reshape(8, 8)
        path = self.write_fits('a.fits', a)
        with open(path, 'rb') as f:
            data = f.read()[:2880 + a.nbytes]
        with open(path, 'wb') as f:
            f.write(data)
        self.cp(path, 'cam.fits')
        self.assertTrue(wait_until(lambda: isio.read_state(self.s('cam.im.shm'))['cnt0'] == 42, 5))
        self.assert_loaded_in_place('cam', ino, 42, a)

    def test_mrc_renamed_onto_an_imod_view(self):
        import mrcfile
        name = 'IMODShrMem_64_vol'
        path = os.path.join(self.workdir, 'vol.mrc')
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(np.zeros((2, 8, 8), np.float32))
        self.cp(path, name + '.mrc')
        ino = os.stat(self.s(name)).st_ino
        b = np.arange(128, dtype=np.float32).reshape(2, 8, 8)
        with mrcfile.new(path, overwrite=True) as m:
            m.set_data(b)
        self.cp(path, 'vol.part')
        self.check(['mv', self.m('vol.part'), self.m(name + '.mrc')])
        self.assertEqual(os.stat(self.s(name)).st_ino, ino, 'filled in place')
        with mrcfile.open(self.m(name + '.mrc')) as m:
            self.assertTrue(np.array_equal(m.data, b))
        self.assertEqual(sorted(os.listdir(self.source)), [name])

    def test_other_shape_replaces_the_file(self):
        ino = self.stream('cam', np.zeros((8, 8), np.float32))
        a = np.ones((4, 16), np.int32)
        fits.writeto(self.m('cam.fits'), a, overwrite=True)
        self.assertNotEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assert_stream('cam', a, 6)
        self.assert_source_settled()

    def test_stream_link_loads_its_target(self):
        ino = self.stream('imcam', np.zeros((4, 4), np.float32))
        os.symlink('imcam.im.shm', self.s('wfsim.im.shm'))
        a = np.full((4, 4), 7, np.float32)
        fits.writeto(self.m('wfsim.fits'), a, overwrite=True)
        self.assertEqual(os.readlink(self.s('wfsim.im.shm')), 'imcam.im.shm')
        self.assert_loaded_in_place('imcam', ino, 42, a)


class RefusedTest(ReplaceCase):
    """A bad file, whichever way it comes: the program is told, the log says
    why, SOURCE is byte for byte as it was."""

    def bad_file(self):
        path = os.path.join(self.workdir, 'bad.fits')
        with open(path, 'wb') as f:
            f.write(b'SIMPLE  =                    T' + b' ' * 50 + b'not a header' * 300)
        return path

    def test_every_way(self):
        self.stream('cam', np.arange(64, dtype=np.float32).reshape(8, 8))
        bad = self.bad_file()
        before = source_snapshot(self.source)
        ways = {
            'cp': lambda: self.check_fails(['cp', bad, self.m('cam.fits')]),
            'unlink and create': lambda: self.check_fails(
                [sys.executable, '-c', REPLACE, self.m('cam.fits'), bad]),
            'rsync': lambda: self.check_fails(['rsync', '-I', bad, self.m('cam.fits')]),
            'mv': lambda: self.check_fails(['mv', bad, self.m('cam.fits')]),
        }
        for way, run in ways.items():
            with self.subTest(way=way):
                r = run()
                err = errno.EBADMSG if way == 'rsync' else errno.EINVAL
                self.assertIn(os.strerror(err), r.stdout + r.stderr)
                self.assert_source_settled()
                self.assertEqual(source_snapshot(self.source), before, 'SOURCE changed')
                self.assertTrue(os.path.exists(self.m('cam.fits')))
        self.assert_log(r'cam\.fits: not loaded, the stream left as it was')
        self.assert_log(r'cam\.fits \(renamed from \.cam\.fits\.\w+\): not loaded')

    def test_mv_within_the_mount_leaves_the_file(self):
        self.stream('cam', np.zeros((4, 4), np.float32))
        with open(self.bad_file(), 'rb') as f, open(self.s('cam.part'), 'wb') as g:
            g.write(f.read())
        before = source_snapshot(self.source)
        # Not EINVAL, which rename(2) gives for a directory moved into itself
        # (mv says so).
        r = self.check_fails(['mv', self.m('cam.part'), self.m('cam.fits')], errno.EBADMSG)
        self.assertIn('cam.part', r.stderr)
        self.assertEqual(source_snapshot(self.source), before, 'the file stays where it was')


class RemoveTest(ReplaceCase):
    """rm alone removes the stream; a program that removes a view and does
    not create it again removes it too, once its grace is over."""

    def unlink_and_stay(self, view):
        """A program that has unlinked VIEW and runs on (end it with
        p.communicate('\\n'))."""
        p = subprocess.Popen([sys.executable, '-c', UNLINK_AND_STAY, view], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        self.defer(lambda: p.poll() is not None or (p.kill(), p.communicate()))
        self.assertEqual(p.stdout.readline().strip(), 'unlinked')
        return p

    def test_rm_removes_at_once(self):
        self.stream('cam', np.zeros((4, 4), np.float32))
        self.check(['rm', self.m('cam.fits')])
        self.assertFalse(os.path.exists(self.s('cam.im.shm')))
        self.assertFalse(os.path.exists(self.m('cam.fits')))
        self.assertNotIn('cam.im.shm', os.listdir(self.mnt))
        # rm has exited: what it removed is gone from SOURCE too.
        self.assert_source_settled()
        self.assertEqual(os.listdir(self.source), [])

    def test_rm_then_cp_makes_a_new_stream(self):
        ino = self.stream('cam', np.zeros((4, 4), np.float32))
        self.check(['rm', self.m('cam.fits')])
        a = np.ones((4, 4), np.float32)
        self.cp(self.write_fits('a.fits', a), 'cam.fits')
        self.assertNotEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 1)
        self.assert_source_settled()

    def test_a_program_that_stays(self):
        ino = self.stream('cam', np.zeros((4, 4), np.float32))
        p = self.unlink_and_stay(self.m('cam.fits'))
        # Gone for everyone at once: the mount and the name in SOURCE.
        self.assertFalse(os.path.exists(self.s('cam.im.shm')))
        self.assertNotIn('cam.fits', os.listdir(self.mnt))
        self.assertEqual([n for n in os.listdir(self.mnt) if n.startswith('.')], [])
        self.check_fails(['stat', self.m('cam.im.shm')], errno.ENOENT)
        # Another program's copy makes a new stream.
        a = np.ones((4, 4), np.float32)
        self.cp(self.write_fits('a.fits', a), 'cam.fits')
        self.assertNotEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 1)
        # The grace (1 s) is over while the program still runs.
        self.assert_source_settled()
        self.assertEqual(os.listdir(self.source), ['cam.im.shm'])
        p.communicate('\n', timeout=10)
        self.assertEqual(p.returncode, 0)

    def test_unmount_removes_what_waits(self):
        self.stream('cam', np.zeros((4, 4), np.float32))
        self.remount(options=['-o', 'unlink_grace=3600'])
        p = self.unlink_and_stay(self.m('cam.fits'))
        self.assertEqual(len(os.listdir(self.source)), 1)   # set aside
        p.communicate('\n', timeout=10)
        self.assert_source_settled()                         # it exited
        self.stream('cam', np.zeros((4, 4), np.float32))
        p = self.unlink_and_stay(self.m('cam.fits'))
        self.unmount()
        self.assertEqual(os.listdir(self.source), [], 'removed at unmount')

    def test_rm_r_of_a_directory(self):
        os.mkdir(self.s('sub'))
        isio.make_stream(self.s('sub', 'cam.im.shm'), 'cam', 9, (4, 4))
        self.check(['rm', self.m('sub', 'cam.fits')])
        self.check(['rmdir', self.m('sub')])
        self.assertEqual(os.listdir(self.source), [])

    def test_grace_zero_removes_at_once(self):
        self.remount(options=['-o', 'unlink_grace=0'])
        self.stream('cam', np.zeros((4, 4), np.float32))
        fits.writeto(self.m('cam.fits'), np.ones((4, 4), np.float32), overwrite=True)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 1, 'a new stream')

    def test_the_other_spelling_is_gone_at_once(self):
        # The kernel has X.im.shm (and a link's) name and attributes
        # cached when the view is removed; the object waits its grace set
        # aside (this program unlinked it and runs on). Right after the
        # unlink, before the kernel can have been told to forget the name,
        # neither opens nor shows the object set aside. Many rounds: the
        # window is short.
        ino = self.stream('imcam', np.zeros((4, 4), np.float32))
        for i in range(100):
            self.stream(f'cam{i}', np.zeros((4, 4), np.float32))
            os.symlink('imcam.im.shm', self.s(f'link{i}.im.shm'))
            for name in (f'cam{i}.im.shm', f'link{i}.im.shm', f'link{i}.fits'):
                os.lstat(self.m(name))
            os.unlink(self.m(f'cam{i}.fits'))
            with self.assertRaises(FileNotFoundError, msg=f'round {i}'):
                os.close(os.open(self.m(f'cam{i}.im.shm'), os.O_RDONLY))
            os.unlink(self.m(f'link{i}.fits'))
            self.assertFalse(os.path.lexists(self.m(f'link{i}.im.shm')), f'round {i}')
            self.assertFalse(os.path.lexists(self.m(f'link{i}.fits')), f'round {i}')
        self.assert_source_settled()
        self.assertEqual(os.listdir(self.source), ['imcam.im.shm'])
        self.assertEqual(os.stat(self.s('imcam.im.shm')).st_ino, ino)

    def test_rm_of_a_link_view_removes_only_the_link(self):
        ino = self.stream('imcam', np.zeros((4, 4), np.float32))
        os.symlink('imcam.im.shm', self.s('wfsim.im.shm'))
        self.check(['rm', self.m('wfsim.fits')])
        self.assert_source_settled()
        self.assertEqual(os.listdir(self.source), ['imcam.im.shm'])
        self.assertEqual(os.stat(self.s('imcam.im.shm')).st_ino, ino)


class UserTest(ReplaceCase):
    """A user who may replace names in a directory but may not write a
    stream: a rename onto its view is refused, and after removing its view
    the user's copy makes a stream of the user's own; the one removed is
    never written."""

    mount_options = ['-o', 'allow_other']

    def test_no_write_permission(self):
        from harness import ensure_user
        uid, gid = ensure_user('shmfs-test1')
        os.chmod(self.source, 0o777)   # anyone may replace names; no sticky bit
        os.chmod(self.workdir, 0o755)
        ino = self.stream('cam', np.zeros((4, 4), np.float32))
        os.chmod(self.s('cam.im.shm'), 0o644)
        with open(self.s('cam.im.shm'), 'rb') as f:   # kept open: seen after its removal
            before = f.read()
        old = os.open(self.s('cam.im.shm'), os.O_RDONLY)
        self.defer(lambda: os.close(old))
        a = self.write_fits('a.fits', np.ones((4, 4), np.float32))
        os.chmod(a, 0o644)
        self.check(['cp', a, self.m('cam.part')], user='shmfs-test1')
        self.check_fails(['mv', self.m('cam.part'), self.m('cam.fits')], errno.EACCES,
                         user='shmfs-test1')
        self.assertTrue(os.path.exists(self.s('cam.part')))
        self.assert_log(r'cam\.fits \(renamed from cam\.part\): not loaded: the caller may not '
                        r'write cam\.im\.shm')
        code = ('import sys; from astropy.io import fits; '
                'fits.writeto(sys.argv[1], fits.getdata(sys.argv[2]), overwrite=True)')
        self.check([sys.executable, '-c', code, self.m('cam.fits'), a], user='shmfs-test1')
        st = os.stat(self.s('cam.im.shm'))
        self.assertNotEqual(st.st_ino, ino, 'a stream of the user\'s own')
        self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
        self.assert_source_settled()
        self.assertEqual(sorted(os.listdir(self.source)), ['cam.im.shm', 'cam.part'])
        self.assertEqual(os.pread(old, len(before) + 1, 0), before,
                         'the stream the user could not write was removed unwritten')
        self.assertEqual(os.fstat(old).st_nlink, 0)


class ConcurrentTest(ReplaceCase):
    """Eight copies onto one name at once, again and again: each succeeds on
    its own content, the last to close wins, every frame stays whole."""

    N = 8
    ROUNDS = 6
    TIGHT_ROUNDS = 100
    SHAPE = (128, 256)

    def files(self):
        return [self.write_fits(f'c{i}.fits', np.full(self.SHAPE, i + 1, np.float32))
                for i in range(self.N)]

    def frame_values(self, name):
        path = self.s(name + '.im.shm')
        o = isio.stream_layout(path)
        return set(np.frombuffer(isio.read_pixels(path, o), np.float32).tolist())

    def test_eight_cp_onto_an_existing_stream(self):
        files = self.files()
        ino = self.stream('cam', np.zeros(self.SHAPE, np.float32), cnt0=0)
        # A reader through the mount all along: every open succeeds, every
        # frame it reads is whole.
        reader = subprocess.Popen([sys.executable, '-c', VIEW_READER, self.m('cam.fits')],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.defer(lambda: (reader.kill(), reader.wait()))
        self.assertEqual(reader.stdout.readline().strip(), 'ready')
        for r in range(self.ROUNDS):
            procs = [subprocess.Popen(['cp', f, self.m('cam.fits')], stderr=subprocess.PIPE,
                                      text=True, env=dict(os.environ, LC_ALL='C'))
                     for f in files]
            errors = [p.communicate()[1] for p in procs]
            self.assertEqual([p.returncode for p in procs], [0] * self.N, errors)
            self.assertEqual(len(self.frame_values('cam')), 1, 'a whole frame')
            self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], (r + 1) * self.N)
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        out, err = reader.communicate(input='\n', timeout=30)
        self.assertEqual(reader.returncode, 0, err)
        reads, mixed, failed = (int(x) for x in out.split())
        self.assertGreater(reads, 0)
        self.assertEqual((mixed, failed), (0, 0), out + err)

    def tight_readers(self, view, count=3, how=()):
        """COUNT programs reading VIEW in TIGHT_READER's loop, started (the
        first len(HOW) with those arguments)."""
        readers = []
        for i in range(count):
            reader = subprocess.Popen(
                [sys.executable, '-c', TIGHT_READER, self.m(view),
                 str(self.SHAPE[0] * self.SHAPE[1] * 4), *how[i:i + 1]],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            self.defer(lambda reader=reader: (reader.kill(), reader.wait()))
            self.assertEqual(reader.stdout.readline().strip(), 'ready')
            readers.append(reader)
        return readers

    def assert_read_whole(self, readers):
        """Stop READERS: each read, every open succeeded, every frame whole."""
        for reader in readers:
            out, err = reader.communicate(input='\n', timeout=30)
            reads, *bad = out.split()
            self.assertGreater(int(reads), 0)
            self.assertEqual(bad, [], err)

    def test_tight_readers_while_eight_cp_load(self):
        """Three programs open, read and close the view as fast as they can
        while the copies load: each open gets a whole frame. An open may
        reach a node whose frame another lookup superseded (it gets the
        frame the stream holds then, never ESTALE), and a reader may close
        the file while the thread that replied to its last read is still
        in the reply (which holds the frame's mapping until it returns)."""
        files = self.files()
        ino = self.stream('cam', np.zeros(self.SHAPE, np.float32), cnt0=0)
        readers = self.tight_readers('cam.fits')
        for r in range(self.TIGHT_ROUNDS):
            procs = [subprocess.Popen(['cp', f, self.m('cam.fits')]) for f in files]
            self.assertEqual([p.wait() for p in procs], [0] * self.N)
        self.assert_read_whole(readers)
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'],
                         self.TIGHT_ROUNDS * self.N)

    def test_tight_readers_while_a_program_writes_the_view(self):
        """A program opens the view read-write (as astropy's update mode and
        mrcfile's r+ do), writes a frame and closes it, again and again,
        while three programs open and read it: every open of both succeeds
        (the writer's open is given a node of its own, which no reader's
        lookup can reach), and every write lands as one frame."""
        ino = self.stream('cam', np.zeros(self.SHAPE, np.float32), cnt0=0)
        size = self.SHAPE[0] * self.SHAPE[1] * 4
        readers = self.tight_readers('cam.fits')
        w = subprocess.run([sys.executable, '-c', FRAME_WRITER, self.m('cam.fits'), str(size),
                            str(self.TIGHT_ROUNDS)], capture_output=True, text=True, timeout=120)
        self.assertEqual((w.returncode, w.stdout.strip()), (0, ''), w.stderr)
        self.assert_read_whole(readers)
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], self.TIGHT_ROUNDS)
        self.assertEqual(self.frame_values('cam'), {float(self.TIGHT_ROUNDS - 1 + 100)})

    def test_tight_readers_while_files_are_renamed_onto_the_view(self):
        """rsync and mv replace a file by renaming another onto it: each
        rename loads the stream in place while three programs read the
        view; every open succeeds (the renamed file's node, which the
        kernel forgets right after, is not touched after the reply)."""
        files = self.files()
        ino = self.stream('cam', np.zeros(self.SHAPE, np.float32), cnt0=0)
        readers = self.tight_readers('cam.fits')
        for r in range(self.TIGHT_ROUNDS):
            tmp = self.m('.cam.fits.part')
            shutil.copyfile(files[r % self.N], tmp)
            os.rename(tmp, self.m('cam.fits'))
        self.assert_read_whole(readers)
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], self.TIGHT_ROUNDS)
        self.assertEqual(sorted(os.listdir(self.source)), ['cam.im.shm'])

    def test_every_way_at_once(self):
        """While three programs read the view (one through mappings), one
        writes it through read-write opens, one renames files onto it and
        four copy onto it at once, again and again: every open, rename and
        copy succeeds and every frame is whole. The frames written back and
        those loaded take turns (they mixed before); an open that reaches
        the file just renamed onto the name (the kernel keeps its entry
        until told to forget it) is sent where an open of the view would
        go, so the kernel's one retry finds it."""
        files = self.files()
        size = self.SHAPE[0] * self.SHAPE[1] * 4
        ino = self.stream('cam', np.zeros(self.SHAPE, np.float32), cnt0=0)
        readers = self.tight_readers('cam.fits', how=('mmap',))
        writer = subprocess.Popen([sys.executable, '-c', FRAME_WRITER, self.m('cam.fits'),
                                   str(size), str(self.TIGHT_ROUNDS)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.defer(lambda: (writer.kill(), writer.wait()))
        failed = []

        def rename_onto_view():
            for r in range(self.TIGHT_ROUNDS):
                tmp = self.m('.cam.fits.part')
                shutil.copyfile(files[r % self.N], tmp)
                try:
                    os.rename(tmp, self.m('cam.fits'))
                except OSError as e:
                    failed.append(('rename', r, e.strerror))

        renamer = threading.Thread(target=rename_onto_view)
        renamer.start()
        for r in range(self.TIGHT_ROUNDS // 4):
            procs = [subprocess.Popen(['cp', f, self.m('cam.fits')], stderr=subprocess.PIPE,
                                      text=True) for f in files[:4]]
            failed += [('cp', r, p.communicate()[1]) for p in procs if p.wait()]
        renamer.join()
        out, err = writer.communicate(timeout=120)
        self.assertEqual((writer.returncode, out.strip()), (0, ''), err)
        self.assertEqual(failed, [])
        self.assert_read_whole(readers)
        self.assertEqual(os.stat(self.s('cam.im.shm')).st_ino, ino)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'],
                         self.TIGHT_ROUNDS * 2 + self.TIGHT_ROUNDS // 4 * 4)

    def test_eight_writers_onto_a_new_name(self):
        """Opened with O_CREAT | O_TRUNC (no O_EXCL, which cp adds for a name
        it found missing and which fails on any filesystem when another
        created the name meanwhile)."""
        files = self.files()
        code = ('import sys; f = open(sys.argv[1], "wb"); '
                'f.write(open(sys.argv[2], "rb").read()); f.close()')
        for r in range(self.ROUNDS):
            procs = [subprocess.Popen([sys.executable, '-c', code, self.m('new.fits'), f],
                                      stderr=subprocess.PIPE, text=True) for f in files]
            errors = [p.communicate()[1] for p in procs]
            self.assertEqual([p.returncode for p in procs], [0] * self.N, errors)
            self.assertEqual(len(self.frame_values('new')), 1)
            self.assertEqual(isio.read_state(self.s('new.im.shm'))['cnt0'], self.N)
            self.assertEqual(sorted(os.listdir(self.source)), ['new.im.shm'])
            os.unlink(self.s('new.im.shm'))


# Read view argv[1] with astropy until a line comes on stdin; print the
# reads, the reads whose pixels were not all one value, and the failures.
VIEW_READER = r'''
import os, select, sys
import numpy as np
from astropy.io import fits
reads = mixed = failed = 0
fits.getdata(sys.argv[1])
print('ready', flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    try:
        with fits.open(sys.argv[1], memmap=False) as h:
            d = h[0].data
        reads += 1
        mixed += len(np.unique(d)) != 1
    except Exception as e:
        failed += 1
        print(repr(e), file=sys.stderr)
print(reads, mixed, failed)
'''


# Open, read whole (argv[3] "mmap": through a mapping) and close view
# argv[1] (a float image of argv[2] data bytes, all one value) until a line
# comes on stdin; print the reads, then what went wrong (an errno, or
# "mixed").
TIGHT_READER = r'''
import mmap, select, sys
n, size, bad = 0, int(sys.argv[2]), []
print('ready', flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:
    try:
        with open(sys.argv[1], 'rb') as f:
            if sys.argv[3:] == ['mmap']:
                with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as m:
                    b = m[:]
            else:
                b = f.read()
    except OSError as e:
        print(e, file=sys.stderr)
        bad.append(str(e.errno))
        continue
    n += 1
    h = 0
    while h < len(b) and (b[h:h + 3] != b'END' or b[h + 3:h + 80].strip()):
        h += 80
    d = b[(h // 2880 + 1) * 2880:][:size]
    if len(d) != size or d != d[:4] * (size // 4):
        bad.append('mixed')
print(n, *bad)
'''

# Open view argv[1] (argv[2] bytes of big-endian floats) read-write argv[3]
# times; each time write the pixels all 100 + the round, and close. Print
# what failed.
FRAME_WRITER = r'''
import os, sys
path, size, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import numpy as np
for i in range(rounds):
    try:
        fd = os.open(path, os.O_RDWR)
        data = os.fstat(fd).st_size - size
        data -= data % 2880
        os.pwrite(fd, np.full(size // 4, i + 100, '>f4').tobytes(), data)
        os.close(fd)
    except OSError as e:
        print(i, e)
'''

class PassthroughStagingTest(ReplaceCase):
    """With passthrough, the kernel writes a copy's staging file itself: no
    WRITE reaches the daemon, and the close still gets the load's error."""

    mount_options = ['-d']

    def test_writes_do_not_reach_the_daemon(self):
        os.stat(self.mnt)   # INIT has been answered once any request is
        if 'passthrough on' not in self.log_text():
            self.fail('this machine gives no FUSE passthrough: ' + self.log_text()[-300:])
        self.stream('cam', np.zeros((64, 64), np.float32))
        a = np.ones((64, 64), np.float32)
        before = self.log_text().count('opcode: WRITE')
        self.cp(self.write_fits('a.fits', a), 'cam.fits')          # onto a view
        self.cp(self.write_fits('b.fits', a), 'new.fits')          # a new name
        self.assertEqual(self.log_text().count('opcode: WRITE'), before)
        self.assertEqual(isio.read_state(self.s('cam.im.shm'))['cnt0'], 42)
        self.assert_stream('new', a, 9)
        bad = os.path.join(self.workdir, 'bad.fits')
        with open(bad, 'wb') as f:
            f.write(b'x' * 5000)
        r = self.check_fails(['cp', bad, self.m('cam.fits')], errno.EINVAL)
        self.assertIn('failed to close', r.stderr)


# The same ways and copies with every write served by the daemon (the
# staging file written by it, not by the kernel).
harness.with_variants(globals(), [EveryWayTest, RefusedTest, ConcurrentTest], 'NoPassthrough',
                      ['-o', 'passthrough=off'], 'copies staged by the daemon: -o passthrough=off')


if __name__ == '__main__':
    unittest.main()
