/* links.h - stream links made in the mount (see links.c). */
#ifndef SHMFS_LINKS_H
#define SHMFS_LINKS_H

#include <sys/stat.h>

#include "fs.h"

/* SYMLINK: a target in the mount stored relative to the link; NAME X.fits
 * with a .fits target makes the stream link X.im.shm. Replies. */
void links_symlink(fuse_req_t req, const char *target, struct node *parent, const char *name);
/* RENAME of a link spelled with .fits onto a view name (ln -sf): replies
 * and returns 1; returns 0 (no reply) for any other rename. */
int links_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		 const char *newname, unsigned int flags);
/* UNLINK of a view name: the stream (or the link, for a link's view) or the
 * IMOD file goes. Replies and returns 1; 0 (no reply) when NAME is no view. */
int links_unlink(fuse_req_t req, struct node *parent, const char *name);
/* Whether OBJECT of DIRFD is a symlink ending in .im.shm that names a valid
 * stream; *LST gets the link's own attributes. */
int links_stream_link(struct shmfs *fs, int dirfd, const char *object, struct stat *lst);
/* Symlinks of SOURCE change behind the kernel's back (links_rename and
 * links_unlink replace or remove X.im.shm when asked about X.fits, other
 * programs relink streams), so their attributes are never cached: a stale
 * name is found at the next stat, and looked up again.
 * LOOKUP of NAME in PARENT: if it is a symlink, replies with its entry (no
 * attribute caching) and returns 1; else 0, no reply. */
int links_lookup(fuse_req_t req, struct node *parent, const char *name);
/* GETATTR (by path, no open file) of POSIX node N: if it is a symlink,
 * replies with its attributes (not to be cached), or ESTALE when it has been
 * removed or replaced, and returns 1; else 0, no reply. */
int links_getattr(fuse_req_t req, struct node *n);
/* Whether node N (a POSIX node or a link view) is a symlink that has been
 * removed or replaced in SOURCE: a name the kernel still caches after a
 * change made behind its back (links_rename, links_unlink, or another
 * process). Its readlink and attributes answer ESTALE, so that the kernel
 * looks the name up again. */
int links_stale_symlink(struct shmfs *fs, struct node *n);
/* The target a link view shows: the link's, with .fits for .im.shm and the
 * mount point for SOURCE. 0 or -errno. */
int links_view_target(struct shmfs *fs, struct node *n, char *out, size_t len);
/* The entry of the view of stream link OBJECT (X.im.shm) of DIR, valid or
 * dangling, with a kernel reference and no caching. 0 or -errno. */
int links_view_entry(struct shmfs *fs, struct node *dir, const char *object,
		     struct fuse_entry_param *e);
/* The attributes of link view N: the link's own, the size its shown target's.
 * -ESTALE once the link was removed or replaced. */
int links_view_stat(struct shmfs *fs, struct node *n, struct stat *st);

#endif
