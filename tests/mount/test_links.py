"""test_links.py - stream links: the symlinks between X.im.shm streams that
milk and cacao follow, made and removed with real commands in the mount.
`ln -s imcam.im.shm wfsim.im.shm` and `ln -s imcam.fits wfsim.fits` both make
SOURCE/wfsim.im.shm -> imcam.im.shm, and MOUNT/wfsim.fits then shows as a
link to imcam.fits; `ln -sf` replaces a link, `rm` removes the link (never
its target), readlink shows the target; a target given as a path in the
mount is stored relative to the link so it resolves in SOURCE too (where
ImageStreamIO programs open streams); a dangling link shows no view; cacao's
own `rm; ln -s` sequence works; rm of a stream's or an IMOD file's view
removes that object. Every link is followed both through the mount and in
SOURCE."""

import errno
import os
import re
import stat
import struct
import unittest

import numpy as np

from harness import MountTestCase, ensure_user, wait_until
import isio
from test_views_imod import imod_header, HEADER_AREA

USER_A = 'shmfs-test-user'
USER_B = 'shmfs-test-user2'
CRASH = r'AddressSanitizer|LeakSanitizer|runtime error:|Segmentation fault|SUMMARY:'


class LinkCase(MountTestCase, isio.ViewChecks):
    """SOURCE holds two streams: imcam (float32 8x8) and imcam2 (uint16 6x4)."""

    def prepare_source(self, source):
        self.pix = {}
        for name, datatype, dims, seed in (('imcam', 9, (8, 8), 1), ('imcam2', 3, (6, 4), 2)):
            a = isio.sample_pixels(datatype, dims, seed)
            isio.make_stream(os.path.join(source, name + '.im.shm'), name, datatype, dims,
                             data=a.tobytes(), cnt0=seed)
            self.pix[name] = a

    def tearDown(self):
        # Checked before the teardown stops the daemon (which checks again).
        if self.daemon is not None:
            self.assert_not_log(CRASH)
        super().tearDown()

    # -- helpers ----------------------------------------------------------

    def sh(self, script, **kw):
        """Run SCRIPT with sh -c (set -e); returns stdout."""
        return self.check(['sh', '-ec', script], **kw)

    def listing(self, *sub):
        return set(os.listdir(self.m(*sub)))

    def source_listing(self, *sub):
        """SOURCE's names once the objects rm set aside are gone (an rm of
        a view sets its object aside until rm exits: see test_load_replace)."""
        def settled():
            names = set(os.listdir(self.s(*sub)))
            return None if any('.shmfs-unlinked-' in n for n in names) else names
        return wait_until(settled, 5) or set(os.listdir(self.s(*sub)))

    def readlink_cmd(self, path, **kw):
        return self.check(['readlink', path], **kw).rstrip('\n')

    def ftype(self, path, **kw):
        """stat's %F of PATH (not followed)."""
        return self.check(['stat', '-c', '%F', path], **kw).strip()

    def assert_stream_link(self, link, target, where=()):
        """SOURCE/WHERE/LINK.im.shm is a symlink holding TARGET.im.shm (exact
        text), and MOUNT/WHERE/LINK.fits a symlink to TARGET.fits (a plain
        stream name: both are in WHERE; else TARGET is the exact text)."""
        src = self.s(*where, link + '.im.shm')
        self.assertTrue(stat.S_ISLNK(os.lstat(src).st_mode), f'{src} is no symlink')
        self.assertEqual(os.readlink(src), target + '.im.shm')
        self.assertFalse(os.path.lexists(self.s(*where, link + '.fits')),
                         'no .fits file is made in SOURCE')
        # Through the mount: both spellings are symlinks, readlink gives each
        # its own target, ls lists both.
        mnt_obj, mnt_view = self.m(*where, link + '.im.shm'), self.m(*where, link + '.fits')
        self.assertEqual(self.readlink_cmd(mnt_obj), target + '.im.shm')
        self.assertEqual(self.readlink_cmd(mnt_view), target + '.fits')
        self.assertEqual(self.ftype(mnt_obj), 'symbolic link')
        self.assertEqual(self.ftype(mnt_view), 'symbolic link')
        self.assertIn(link + '.im.shm', self.listing(*where))
        self.assertIn(link + '.fits', self.listing(*where))
        out = self.check(['ls', '-l', self.m(*where)])
        self.assertRegex(out, re.compile(rf'^l.* {re.escape(link)}\.fits -> '
                                         rf'{re.escape(target)}\.fits$', re.M), out)
        self.assertRegex(out, re.compile(rf'^l.* {re.escape(link)}\.im\.shm -> '
                                         rf'{re.escape(target)}\.im\.shm$', re.M), out)

    def assert_follows(self, link, stream, where=()):
        """LINK (in WHERE) reads as stream STREAM (in the root), in SOURCE
        and through the mount, raw and as FITS."""
        raw = self.read(self.s(stream + '.im.shm'))
        self.assertEqual(self.read(self.s(*where, link + '.im.shm')), raw,
                         'SOURCE link reads as its stream')
        self.assertEqual(self.read(self.m(*where, link + '.im.shm')), raw,
                         'mount link reads as its stream')
        self.check(['cmp', self.m(*where, link + '.fits'), self.m(stream + '.fits')])
        self.assertEqual(self.read(self.m(*where, link + '.fits')),
                         self.read(self.m(stream + '.fits')))
        self.assertEqual(os.stat(self.m(*where, link + '.fits')).st_size,
                         os.stat(self.m(stream + '.fits')).st_size)
        # What ImageStreamIO sees opening SOURCE/LINK.im.shm.
        o = isio.stream_layout(self.s(*where, link + '.im.shm'))
        self.assertEqual(isio.read_pixels(self.s(*where, link + '.im.shm'), o),
                         self.pix[stream].tobytes())
        self.assert_astropy_pixels(self.m(*where, link + '.fits'), self.pix[stream],
                                   {'SHMNAME': stream})


class MakeLinkTest(LinkCase):

    def test_ln_s_im_shm(self):
        self.check(['ln', '-s', 'imcam.im.shm', self.m('wfsim.im.shm')])
        self.assert_stream_link('wfsim', 'imcam')
        self.assert_follows('wfsim', 'imcam')
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})
        # stat -L of the view is the target's view.
        self.assertEqual(self.check(['stat', '-L', '-c', '%F %s', self.m('wfsim.fits')]),
                         self.check(['stat', '-c', '%F %s', self.m('imcam.fits')]))
        # The view link's own size is its target's length, as for a symlink.
        self.assertEqual(os.lstat(self.m('wfsim.fits')).st_size, len('imcam.fits'))
        self.assertNotEqual(os.lstat(self.m('wfsim.fits')).st_ino,
                            os.lstat(self.m('wfsim.im.shm')).st_ino)
        self.assert_daemon_alive()

    def test_ln_s_fits_makes_the_stream_link(self):
        self.check(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')])
        self.assert_stream_link('wfsim', 'imcam')
        self.assert_follows('wfsim', 'imcam')
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})
        # The link follows the stream as frames arrive.
        w = isio.Writer(self.s('imcam.im.shm'))
        try:
            new = np.ascontiguousarray(self.pix['imcam'][::-1, ::-1])
            w.frame(new.tobytes())
        finally:
            w.close()
        self.pix['imcam'] = new
        self.assert_follows('wfsim', 'imcam')
        self.assertEqual(self.fits_read(self.m('wfsim.fits'), 'CNT0')['keys']['CNT0'].strip(),
                         '2')
        # Pixels written through the link view reach the stream.
        hlen = isio.fits_header_cards(self.read(self.m('wfsim.fits')))[0]
        newer = np.ascontiguousarray(new.T)
        with open(self.m('wfsim.fits'), 'r+b', buffering=0) as f:
            f.seek(hlen)
            f.write(isio.fits_data_bytes(newer))
        o = isio.stream_layout(self.s('imcam.im.shm'))
        self.assertEqual(isio.read_pixels(self.s('imcam.im.shm'), o), newer.tobytes())

    def test_ln_s_fits_to_another_type(self):
        self.check(['ln', '-s', 'imcam2.fits', self.m('dm.fits')])
        self.assert_stream_link('dm', 'imcam2')
        self.assert_follows('dm', 'imcam2')
        self.assert_fitsverify(self.m('dm.fits'))

    def test_ln_s_onto_an_existing_view_is_eexist(self):
        self.check_fails(['ln', '-s', 'imcam2.fits', self.m('imcam.fits')], errno.EEXIST)
        self.check_fails(['ln', '-s', 'imcam2.im.shm', self.m('imcam.im.shm')], errno.EEXIST)
        self.assertFalse(os.path.islink(self.s('imcam.im.shm')))
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm'})

    def test_real_fits_file_target_is_a_plain_link(self):
        # A .fits that is a real file of SOURCE is linked as itself.
        self.write(self.s('real.fits'), b'SIMPLE')
        self.check(['ln', '-s', 'real.fits', self.m('other.fits')])
        self.assertEqual(os.readlink(self.s('other.fits')), 'real.fits')
        self.assertFalse(os.path.lexists(self.s('other.im.shm')))
        self.assertEqual(self.read(self.m('other.fits')), b'SIMPLE')
        # A link not named .fits to a view is a plain link too.
        self.check(['ln', '-s', 'imcam.fits', self.m('plain')])
        self.assertEqual(os.readlink(self.s('plain')), 'imcam.fits')
        self.check(['cmp', self.m('plain'), self.m('imcam.fits')])

    def test_chain_of_links(self):
        self.check(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')])
        self.check(['ln', '-s', 'wfsim.fits', self.m('wfsim2.fits')])
        self.assert_stream_link('wfsim2', 'wfsim')
        self.assert_follows('wfsim2', 'imcam')
        self.assertEqual(self.check(['readlink', '-f', self.m('wfsim2.fits')]).strip(),
                         self.m('imcam.fits'))


class ReplaceLinkTest(LinkCase):

    def assert_no_leftovers(self, want):
        self.assertEqual(self.source_listing(), want, 'no temporary link left in SOURCE')
        self.assertEqual({n for n in self.listing() if not n.endswith('.fits')} - {'sysv'},
                         want)

    def test_ln_sf_fits_spelling(self):
        self.check(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')])
        ino = os.lstat(self.s('wfsim.im.shm')).st_ino
        self.check(['ln', '-sf', 'imcam2.fits', self.m('wfsim.fits')])
        self.assert_stream_link('wfsim', 'imcam2')
        self.assert_follows('wfsim', 'imcam2')
        self.assertNotEqual(os.lstat(self.s('wfsim.im.shm')).st_ino, ino, 'a new link')
        self.assert_no_leftovers({'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})
        # Both streams are untouched.
        self.assertEqual(isio.read_pixels(self.s('imcam.im.shm'),
                                          isio.stream_layout(self.s('imcam.im.shm'))),
                         self.pix['imcam'].tobytes())
        # And back, several times (the kernel's cached names must follow).
        for i in range(4):
            target = ('imcam', 'imcam2')[i % 2]
            self.check(['ln', '-sf', target + '.fits', self.m('wfsim.fits')])
            self.assertEqual(os.readlink(self.s('wfsim.im.shm')), target + '.im.shm')
            self.assertEqual(self.readlink_cmd(self.m('wfsim.fits')), target + '.fits')
            self.check(['cmp', self.m('wfsim.fits'), self.m(target + '.fits')])
        self.assert_no_leftovers({'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})

    def test_ln_sf_im_shm_spelling(self):
        self.check(['ln', '-s', 'imcam.im.shm', self.m('wfsim.im.shm')])
        self.check(['ln', '-sf', 'imcam2.im.shm', self.m('wfsim.im.shm')])
        self.assert_stream_link('wfsim', 'imcam2')
        self.assert_follows('wfsim', 'imcam2')
        self.assert_no_leftovers({'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})

    def test_ln_sf_mixed_spellings(self):
        self.check(['ln', '-s', 'imcam.im.shm', self.m('wfsim.im.shm')])
        self.check(['ln', '-sf', 'imcam2.fits', self.m('wfsim.fits')])
        self.assert_stream_link('wfsim', 'imcam2')
        self.check(['ln', '-sf', 'imcam.im.shm', self.m('wfsim.im.shm')])
        self.assert_stream_link('wfsim', 'imcam')
        self.assert_follows('wfsim', 'imcam')
        self.assert_no_leftovers({'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})

    def test_ln_sf_absolute_mount_target(self):
        self.check(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')])
        self.check(['ln', '-sf', self.m('imcam2.fits'), self.m('wfsim.fits')])
        self.assert_stream_link('wfsim', 'imcam2')
        self.assert_follows('wfsim', 'imcam2')
        self.check(['ln', '-sf', self.m('imcam.im.shm'), self.m('wfsim.im.shm')])
        self.assert_stream_link('wfsim', 'imcam')
        self.assert_no_leftovers({'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})

    def test_ln_sf_over_a_stream_view(self):
        # Like rm then ln -s: the stream wfsim becomes a link to imcam.
        isio.make_stream(self.s('wfsim.im.shm'), 'wfsim', 9, (2, 2))
        self.assertEqual(self.ftype(self.m('wfsim.fits')), 'regular file')
        self.check(['ln', '-sf', 'imcam.fits', self.m('wfsim.fits')])
        self.assert_stream_link('wfsim', 'imcam')
        self.assert_follows('wfsim', 'imcam')
        self.assert_no_leftovers({'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})


class RemoveLinkTest(LinkCase):

    def test_rm_fits_removes_only_the_link(self):
        raw = self.read(self.s('imcam.im.shm'))
        view = self.read(self.m('imcam.fits'))
        self.check(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')])
        self.check(['rm', self.m('wfsim.fits')])
        self.assertFalse(os.path.lexists(self.s('wfsim.im.shm')))
        self.assertFalse(os.path.lexists(self.m('wfsim.fits')))
        self.assertFalse(os.path.lexists(self.m('wfsim.im.shm')))
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm'})
        self.assertEqual(self.read(self.s('imcam.im.shm')), raw, 'the target is untouched')
        self.assertEqual(self.read(self.m('imcam.fits')), view)
        self.assertNotIn('wfsim.fits', self.listing())

    def test_rm_im_shm_removes_only_the_link(self):
        raw = self.read(self.s('imcam.im.shm'))
        self.check(['ln', '-s', 'imcam.im.shm', self.m('wfsim.im.shm')])
        self.check(['rm', self.m('wfsim.im.shm')])
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm'})
        self.assertEqual(self.read(self.s('imcam.im.shm')), raw)
        self.assertEqual(self.listing(), {'imcam.im.shm', 'imcam2.im.shm', 'imcam.fits',
                                          'imcam2.fits', 'sysv'})

    def test_rm_just_after_ln_sf(self):
        self.check(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')])
        self.check(['ln', '-sf', 'imcam2.fits', self.m('wfsim.fits')])
        self.check(['rm', self.m('wfsim.fits')])
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm'})
        self.assertFalse(os.path.lexists(self.m('wfsim.fits')))
        self.assertTrue(os.path.isfile(self.s('imcam2.im.shm')))

    def test_cached_names_follow_changes_through_the_other_spelling(self):
        # The kernel caches names for a second: every command here runs
        # right after the one before, with both spellings just looked up.
        self.check(['ln', '-s', 'imcam.im.shm', self.m('wfsim.im.shm')])
        self.assertEqual(os.lstat(self.m('wfsim.im.shm')).st_size, len('imcam.im.shm'))
        self.assertEqual(os.lstat(self.m('wfsim.fits')).st_size, len('imcam.fits'))
        # rm through the view: the .im.shm name goes too.
        self.check(['rm', self.m('wfsim.fits')])
        self.assertFalse(os.path.lexists(self.m('wfsim.im.shm')))
        self.assertFalse(os.path.lexists(self.m('wfsim.fits')))
        # A new link at once, with the other spelling, to the other stream.
        self.check(['ln', '-s', 'imcam2.im.shm', self.m('wfsim.im.shm')])
        self.assertEqual(os.readlink(self.m('wfsim.fits')), 'imcam2.fits')
        self.assertEqual(os.lstat(self.m('wfsim.fits')).st_size, len('imcam2.fits'))
        self.check(['cmp', self.m('wfsim.fits'), self.m('imcam2.fits')])
        # Replaced through the view: the .im.shm name follows at once.
        self.check(['ln', '-sf', 'imcam.fits', self.m('wfsim.fits')])
        self.assertEqual(os.readlink(self.m('wfsim.im.shm')), 'imcam.im.shm')
        self.assertEqual(os.lstat(self.m('wfsim.im.shm')).st_size, len('imcam.im.shm'))
        self.assertEqual(os.lstat(self.m('wfsim.fits')).st_size, len('imcam.fits'))
        self.assertEqual(self.read(self.m('wfsim.im.shm')), self.read(self.s('imcam.im.shm')))
        self.check(['cmp', self.m('wfsim.fits'), self.m('imcam.fits')])
        # Removed through the raw name: the view goes at once.
        self.check(['rm', self.m('wfsim.im.shm')])
        self.assertFalse(os.path.lexists(self.m('wfsim.fits')))
        self.check_fails(['readlink', '-v', self.m('wfsim.fits')], errno.ENOENT)
        # Changed in SOURCE by another program: the same.
        os.symlink('imcam2.im.shm', self.s('wfsim.im.shm'))
        self.assertEqual(os.readlink(self.m('wfsim.fits')), 'imcam2.fits')
        os.unlink(self.s('wfsim.im.shm'))
        os.symlink('imcam.im.shm', self.s('wfsim.im.shm'))
        self.assertEqual(os.readlink(self.m('wfsim.fits')), 'imcam.fits')
        self.assertEqual(os.readlink(self.m('wfsim.im.shm')), 'imcam.im.shm')
        self.check(['cmp', self.m('wfsim.fits'), self.m('imcam.fits')])
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm', 'wfsim.im.shm'})

    def test_rm_of_link_in_subdirectory_to_parent_stream(self):
        os.mkdir(self.s('sub'))
        self.check(['ln', '-s', self.m('imcam.fits'), self.m('sub', 'x.fits')])
        self.assertEqual(os.readlink(self.s('sub', 'x.im.shm')), '../imcam.im.shm')
        self.check(['rm', self.m('sub', 'x.fits')])
        self.assertEqual(self.source_listing('sub'), set())
        self.assertTrue(os.path.isfile(self.s('imcam.im.shm')))

    def test_readlink_variants(self):
        self.check(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')])
        self.assertEqual(self.readlink_cmd(self.m('wfsim.fits')), 'imcam.fits')
        self.assertEqual(self.readlink_cmd(self.m('wfsim.im.shm')), 'imcam.im.shm')
        self.assertEqual(os.readlink(self.m('wfsim.fits')), 'imcam.fits')
        self.assertEqual(self.check(['readlink', '-e', self.m('wfsim.fits')]).strip(),
                         self.m('imcam.fits'))
        self.assertEqual(self.check(['stat', '-c', '%N', self.m('wfsim.fits')]).strip(),
                         f"'{self.m('wfsim.fits')}' -> 'imcam.fits'")
        # readlink of a view that is no link fails as for a regular file.
        self.check_fails(['readlink', '-v', self.m('imcam.fits')], errno.EINVAL)


class StoredTargetTest(LinkCase):

    def test_absolute_mount_target_in_root(self):
        self.check(['ln', '-s', self.m('imcam.im.shm'), self.m('x.im.shm')])
        self.assert_stream_link('x', 'imcam')
        self.assert_follows('x', 'imcam')
        self.check(['ln', '-s', self.m('imcam2.fits'), self.m('y.fits')])
        self.assert_stream_link('y', 'imcam2')
        self.assert_follows('y', 'imcam2')

    def test_absolute_mount_target_in_subdirectories(self):
        self.check(['mkdir', '-p', self.m('sub', 'deeper')])
        self.check(['ln', '-s', self.m('imcam.im.shm'), self.m('sub', 'x.im.shm')])
        self.assert_stream_link('x', '../imcam', where=('sub',))
        self.assert_follows('x', 'imcam', where=('sub',))
        self.check(['ln', '-s', self.m('imcam2.fits'), self.m('sub', 'deeper', 'y.fits')])
        self.assert_stream_link('y', '../../imcam2', where=('sub', 'deeper'))
        self.assert_follows('y', 'imcam2', where=('sub', 'deeper'))
        # Into a subdirectory from the root, and across.
        self.check(['ln', '-s', self.m('sub', 'x.im.shm'), self.m('z.im.shm')])
        self.assertEqual(os.readlink(self.s('z.im.shm')), 'sub/x.im.shm')
        self.assert_follows('z', 'imcam')
        self.check(['ln', '-s', self.m('sub', 'deeper', 'y.fits'), self.m('sub', 'w.fits')])
        self.assertEqual(os.readlink(self.s('sub', 'w.im.shm')), '../sub/deeper/y.im.shm')
        self.assert_follows('w', 'imcam2', where=('sub',))

    def test_mount_point_itself_and_near_misses(self):
        os.mkdir(self.s('sub'))
        self.check(['ln', '-s', self.mnt, self.m('top')])
        self.assertEqual(os.readlink(self.s('top')), '.')
        self.check(['ln', '-s', self.mnt + '/', self.m('sub', 'up')])
        self.assertEqual(os.readlink(self.s('sub', 'up')), '..')
        self.assertTrue(os.path.samefile(self.s('sub', 'up'), self.source))
        self.assertIn('imcam.fits', os.listdir(self.m('sub', 'up')))
        # A path that only starts with the mount point's text is not in it.
        other = self.mnt + 'x/imcam.im.shm'
        self.check(['ln', '-s', other, self.m('far.im.shm')])
        self.assertEqual(os.readlink(self.s('far.im.shm')), other)
        self.assertNotIn('far.fits', self.listing())
        # Relative targets are stored as given.
        self.check(['ln', '-s', './imcam.im.shm', self.m('dot.im.shm')])
        self.assertEqual(os.readlink(self.s('dot.im.shm')), './imcam.im.shm')
        self.assertEqual(self.readlink_cmd(self.m('dot.fits')), './imcam.fits')
        self.assert_follows('dot', 'imcam')

    def test_absolute_source_target_is_kept(self):
        src_target = self.s('imcam.im.shm')
        self.check(['ln', '-s', src_target, self.m('z.im.shm')])
        self.assertEqual(os.readlink(self.s('z.im.shm')), src_target)
        self.assertEqual(self.readlink_cmd(self.m('z.im.shm')), src_target)
        # The view link points into the mount, where the view is.
        self.assertEqual(self.readlink_cmd(self.m('z.fits')), self.m('imcam.fits'))
        self.assertEqual(self.ftype(self.m('z.fits')), 'symbolic link')
        self.assertIn('z.fits', self.listing())
        self.assert_follows('z', 'imcam')
        # Spelled with .fits.
        self.check(['ln', '-s', self.s('imcam2.fits'), self.m('z2.fits')])
        self.assertEqual(os.readlink(self.s('z2.im.shm')), self.s('imcam2.im.shm'))
        self.assertEqual(self.readlink_cmd(self.m('z2.fits')), self.m('imcam2.fits'))
        self.assert_follows('z2', 'imcam2')


class DanglingLinkTest(LinkCase):

    def test_dangling_link_has_no_view(self):
        self.check(['ln', '-s', 'nothere.im.shm', self.m('d.im.shm')])
        self.assertEqual(os.readlink(self.s('d.im.shm')), 'nothere.im.shm')
        self.assertEqual(self.readlink_cmd(self.m('d.im.shm')), 'nothere.im.shm')
        self.assertEqual(self.ftype(self.m('d.im.shm')), 'symbolic link')
        self.assertIn('d.im.shm', self.listing())
        self.assertNotIn('d.fits', self.listing())
        self.assertFalse(os.path.lexists(self.m('d.fits')))
        self.check_fails(['cat', self.m('d.im.shm')], errno.ENOENT)
        out = self.check(['ls', '-l', self.mnt])
        self.assertRegex(out, re.compile(r'^l.* d\.im\.shm -> nothere\.im\.shm$', re.M))
        self.assertNotIn('d.fits', out)
        self.check(['rm', '-f', self.m('d.fits')])   # nothing there: no error
        self.assertTrue(os.path.islink(self.s('d.im.shm')))

    def test_fits_spelling_to_missing_stream_then_it_appears(self):
        self.check(['ln', '-s', 'later.fits', self.m('d.fits')])
        self.assertEqual(os.readlink(self.s('d.im.shm')), 'later.im.shm')
        self.assertFalse(os.path.lexists(self.s('d.fits')))
        self.assertNotIn('d.fits', self.listing())
        # The stream appears: so does the view link.
        a = isio.sample_pixels(10, (3, 3), 7)
        isio.make_stream(self.s('later.im.shm'), 'later', 10, (3, 3), data=a.tobytes())
        self.pix['later'] = a
        self.assertIn('d.fits', self.listing())
        self.assert_stream_link('d', 'later')
        self.assert_follows('d', 'later')
        # And goes again with it.
        os.unlink(self.s('later.im.shm'))
        self.assertNotIn('d.fits', self.listing())
        self.assertIn('d.im.shm', self.listing())
        self.check_fails(['cat', self.m('d.fits')], errno.ENOENT)

    def test_link_to_something_not_a_stream_has_no_view(self):
        self.write(self.s('junk.im.shm'), b'not a stream' * 100)
        self.check(['ln', '-s', 'junk.im.shm', self.m('j.im.shm')])
        self.check(['ln', '-s', 'imcam.im.shm', self.m('notstreamname')])
        self.assertNotIn('j.fits', self.listing())
        self.assertNotIn('notstreamname.fits', self.listing())
        self.assertFalse(os.path.lexists(self.m('j.fits')))
        self.assertEqual(self.read(self.m('j.im.shm')), b'not a stream' * 100)


class SourceLinksTest(LinkCase):
    """Links made in SOURCE directly, by programs that never see the mount:
    the daemon follows them without looking anything up through its own
    mount (with -s a request to itself would hang it for good)."""
    mount_options = ['-s']

    def test_link_in_source_naming_a_path_in_the_mount(self):
        os.symlink(self.m('imcam.im.shm'), self.s('x.im.shm'))
        os.mkdir(self.s('sub'))
        os.symlink(self.m('sub', 'y.im.shm'), self.s('hop.im.shm'))   # -> the mount again
        os.symlink('../imcam2.im.shm', self.s('sub', 'y.im.shm'))
        alias = os.path.join(self.workdir, 'alias')
        os.symlink(self.mnt, alias)                                    # into it sideways
        os.symlink(os.path.join(alias, 'imcam.im.shm'), self.s('side.im.shm'))
        out = self.check(['ls', '-l', self.mnt], timeout=20)
        for name, target in (('x', self.m('imcam')), ('hop', self.m('sub', 'y')),
                             ('side', os.path.join(alias, 'imcam'))):
            self.assertRegex(out, re.compile(rf' {name}\.fits -> {re.escape(target)}\.fits$',
                                             re.M), out)
        self.assertEqual(self.readlink_cmd(self.m('x.fits')), self.m('imcam.fits'))
        self.check(['cmp', self.m('x.fits'), self.m('imcam.fits')], timeout=20)
        self.check(['cmp', self.m('hop.fits'), self.m('imcam2.fits')], timeout=20)
        self.check(['cmp', self.m('side.fits'), self.m('imcam.fits')], timeout=20)
        self.assert_daemon_alive()

    def test_loops_and_odd_targets_show_no_view(self):
        os.symlink('b.im.shm', self.s('a.im.shm'))
        os.symlink('a.im.shm', self.s('b.im.shm'))
        os.symlink('self.im.shm', self.s('self.im.shm'))
        os.symlink(self.m('mloop.im.shm'), self.s('mloop.im.shm'))
        os.symlink('/dev/null.im.shm', self.s('devnull.im.shm'))
        os.mkfifo(self.s('fifo.im.shm.real'))
        os.symlink('fifo.im.shm.real/../fifo.im.shm', self.s('fifo.im.shm'))
        os.symlink('/proc/self/fd/0/x.im.shm', self.s('proc.im.shm'))
        names = self.listing()
        for n in ('a', 'b', 'self', 'mloop', 'devnull', 'fifo', 'proc'):
            self.assertIn(n + '.im.shm', names)
            self.assertNotIn(n + '.fits', names)
            self.assertFalse(os.path.lexists(self.m(n + '.fits')), n)
        self.assert_daemon_alive()


class SourceLinksMtTest(SourceLinksTest):
    mount_options = []


class CacaoTest(LinkCase):

    def cacao_link(self, name, target):
        # As cacao's scripts do it: from another directory, absolute paths.
        self.sh(f'rm {self.m(name + ".im.shm")}; '
                f'ln -s {self.m(target + ".im.shm")} {self.m(name + ".im.shm")}', cwd='/')

    def test_rm_then_ln_s(self):
        isio.make_stream(self.s('aol8_wfsim.im.shm'), 'aol8_wfsim', 9, (8, 8))
        # The stream's view is known to the kernel before the switch.
        self.assertEqual(self.ftype(self.m('aol8_wfsim.fits')), 'regular file')
        self.read(self.m('aol8_wfsim.fits'))
        self.cacao_link('aol8_wfsim', 'imcam')
        self.assertEqual(os.readlink(self.s('aol8_wfsim.im.shm')), 'imcam.im.shm')
        self.check(['cmp', self.m('aol8_wfsim.fits'), self.m('imcam.fits')])
        self.assert_stream_link('aol8_wfsim', 'imcam')
        self.assert_follows('aol8_wfsim', 'imcam')
        # Again, to the other stream and back (cacao relinks on every run).
        self.cacao_link('aol8_wfsim', 'imcam2')
        self.check(['cmp', self.m('aol8_wfsim.fits'), self.m('imcam2.fits')])
        self.assert_stream_link('aol8_wfsim', 'imcam2')
        self.assert_follows('aol8_wfsim', 'imcam2')
        self.cacao_link('aol8_wfsim', 'imcam')
        self.assert_follows('aol8_wfsim', 'imcam')
        self.assertEqual(self.source_listing(),
                         {'imcam.im.shm', 'imcam2.im.shm', 'aol8_wfsim.im.shm'})
        self.assert_daemon_alive()

    def test_rm_of_missing_then_ln_s(self):
        # First run: nothing to remove (rm -f), then the link.
        self.sh(f'rm -f {self.m("aol8_dmC.im.shm")}; '
                f'ln -s {self.m("imcam2.im.shm")} {self.m("aol8_dmC.im.shm")}', cwd='/')
        self.assert_stream_link('aol8_dmC', 'imcam2')
        self.assert_follows('aol8_dmC', 'imcam2')


class RemoveViewTest(LinkCase):

    def imod(self, name):
        a = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
        obj = f'IMODShrMem_8_{name}'
        with open(self.s(obj), 'wb') as f:
            f.write(imod_header(4, 3, 2, 2))
            f.write(a.tobytes())
            f.truncate(8 * 1024)
        self.assertEqual(len(imod_header(4, 3, 2, 2)), HEADER_AREA)
        return obj

    def test_rm_stream_view_removes_the_stream(self):
        self.assertIn('imcam2.fits', self.listing())
        self.check(['rm', self.m('imcam2.fits')])
        self.assertFalse(os.path.lexists(self.s('imcam2.im.shm')))
        self.assertNotIn('imcam2.fits', self.listing())
        self.assertNotIn('imcam2.im.shm', self.listing())
        self.assertEqual(self.source_listing(), {'imcam.im.shm'})

    def test_rm_stream_view_leaves_links_to_it_dangling(self):
        self.check(['ln', '-s', 'imcam2.fits', self.m('dm.fits')])
        self.check(['rm', self.m('imcam2.fits')])
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'dm.im.shm'})
        self.assertNotIn('dm.fits', self.listing())
        self.assertIn('dm.im.shm', self.listing())

    def test_rm_imod_views(self):
        mrc = self.imod('vol')
        fits = self.imod('vol2')
        self.assertIn(mrc + '.mrc', self.listing())
        self.assertIn(fits + '.fits', self.listing())
        self.check(['rm', self.m(mrc + '.mrc')])
        self.assertFalse(os.path.lexists(self.s(mrc)))
        self.check(['rm', self.m(fits + '.fits')])
        self.assertFalse(os.path.lexists(self.s(fits)))
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm'})

    def test_real_fits_file_wins_over_the_view(self):
        self.write(self.s('imcam.fits'), b'real')
        self.check(['rm', self.m('imcam.fits')])
        self.assertFalse(os.path.lexists(self.s('imcam.fits')))
        self.assertTrue(os.path.isfile(self.s('imcam.im.shm')), 'the stream stays')
        self.assertIn('imcam.fits', self.listing())   # the view shows again

    def test_rm_of_nothing(self):
        self.check_fails(['rm', self.m('nothing.fits')], errno.ENOENT)
        self.check_fails(['rm', self.m('IMODShrMem_8_none.mrc')], errno.ENOENT)
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm'})


class UserLinksTest(LinkCase):
    mount_options = ['-o', 'allow_other']

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.a = ensure_user(USER_A)
        cls.b = ensure_user(USER_B)

    def test_links_belong_to_their_maker(self):
        uid, gid = self.a
        os.mkdir(self.s('home'))
        os.chown(self.s('home'), uid, gid)
        self.check(['ln', '-s', '../imcam.fits', self.m('home', 'wfsim.fits')], user=self.a)
        self.check(['ln', '-s', self.m('imcam2.im.shm'), self.m('home', 'dm.im.shm')],
                   user=self.a)
        for name, target in (('wfsim', '../imcam'), ('dm', '../imcam2')):
            st = os.lstat(self.s('home', name + '.im.shm'))
            self.assertEqual((st.st_uid, st.st_gid), (uid, gid), name)
            self.assertEqual(os.readlink(self.s('home', name + '.im.shm')),
                             target + '.im.shm')
            out = self.check(['stat', '-c', '%u %g', self.m('home', name + '.fits')])
            self.assertEqual(out.split(), [str(uid), str(gid)])
        self.assert_follows('wfsim', 'imcam', where=('home',))
        self.assertEqual(self.check(['cmp', self.m('home', 'dm.fits'), self.m('imcam2.fits')],
                                    user=self.a), '')
        # ln -sf by the user: the new link is the user's too.
        self.check(['ln', '-sf', '../imcam2.fits', self.m('home', 'wfsim.fits')], user=self.a)
        st = os.lstat(self.s('home', 'wfsim.im.shm'))
        self.assertEqual((st.st_uid, st.st_gid), (uid, gid))
        self.assertEqual(os.readlink(self.s('home', 'wfsim.im.shm')), '../imcam2.im.shm')
        self.assertEqual(sorted(os.listdir(self.s('home'))), ['dm.im.shm', 'wfsim.im.shm'])
        # Another user may not touch them; the owner removes them.
        self.check_fails(['rm', '-f', self.m('home', 'wfsim.fits')], errno.EACCES, user=self.b)
        self.check_fails(['ln', '-sf', '../imcam.fits', self.m('home', 'wfsim.fits')],
                         errno.EACCES, user=self.b)
        self.assertEqual(os.readlink(self.s('home', 'wfsim.im.shm')), '../imcam2.im.shm')
        self.check(['rm', self.m('home', 'wfsim.fits'), self.m('home', 'dm.im.shm')],
                   user=self.a)
        self.assertEqual(self.source_listing('home'), set())
        self.assertTrue(os.path.isfile(self.s('imcam.im.shm')))
        self.assertTrue(os.path.isfile(self.s('imcam2.im.shm')))

    def test_sticky_directory_like_dev_shm(self):
        os.mkdir(self.s('shared'))
        os.chmod(self.s('shared'), 0o1777)
        self.check(['ln', '-s', self.m('imcam.fits'), self.m('shared', 'a.fits')], user=self.a)
        st = os.lstat(self.s('shared', 'a.im.shm'))
        self.assertEqual(st.st_uid, self.a[0])
        self.assertEqual(os.readlink(self.s('shared', 'a.im.shm')), '../imcam.im.shm')
        # B may not remove or replace A's link in a sticky directory.
        self.check_fails(['rm', '-f', self.m('shared', 'a.fits')], errno.EPERM, user=self.b)
        self.check_fails(['rm', '-f', self.m('shared', 'a.im.shm')], errno.EPERM, user=self.b)
        self.check_fails(['ln', '-sf', '../imcam2.fits', self.m('shared', 'a.fits')],
                         errno.EPERM, user=self.b)
        self.assertEqual(os.listdir(self.s('shared')), ['a.im.shm'], 'no temporary link left')
        self.assertEqual(os.readlink(self.s('shared', 'a.im.shm')), '../imcam.im.shm')
        # B makes its own.
        self.check(['ln', '-s', 'a.fits', self.m('shared', 'b.fits')], user=self.b)
        self.assertEqual(os.lstat(self.s('shared', 'b.im.shm')).st_uid, self.b[0])
        self.assertEqual(self.check(['cat', self.m('shared', 'b.fits')], user=self.b,
                                    text=False), self.read(self.m('imcam.fits')))
        self.check(['rm', self.m('shared', 'a.fits')], user=self.a)
        self.assertEqual(self.source_listing('shared'), {'b.im.shm'})
        self.assertNotIn('b.fits', self.listing('shared'))   # dangling now

    def test_user_cannot_link_where_they_may_not_write(self):
        self.check_fails(['ln', '-s', 'imcam.fits', self.m('wfsim.fits')], errno.EACCES,
                         user=self.a)
        self.check_fails(['rm', '-f', self.m('imcam.fits')], errno.EACCES, user=self.a)
        self.assertEqual(self.source_listing(), {'imcam.im.shm', 'imcam2.im.shm'})


if __name__ == '__main__':
    unittest.main()
