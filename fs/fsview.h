/* view.h - FITS and MRC views of segments in the mount (see view.c). */
#ifndef SHMFS_FSVIEW_H
#define SHMFS_FSVIEW_H

#include "fs.h"
#include "typed.h"
#include "view.h"

/* Which view of which kind of segment a view node is (node->variant). */
enum view_kind {
	VK_NONE = 0,
	VK_STREAM_FITS,  /* X.im.shm -> X.fits */
	VK_IMOD_MRC,     /* IMODShrMem_KB_N -> IMODShrMem_KB_N.mrc */
	VK_IMOD_FITS,    /* IMODShrMem_KB_N -> IMODShrMem_KB_N.fits */
	VK_TYPED_FITS,   /* any object with user.shmfs.type/shape -> NAME.fits */
	VK_CFITSIO_FITS, /* sysv/0xKEY of a CFITSIO shmem file -> sysv/0xKEY.fits */
	VK_CFITSIO_LINK, /* sysv/hN.fits -> 0xKEY.fits (a symlink) */
	VK_SYSV_TYPED_FITS, /* a System V segment typed by the user -> sysv/NAME.fits */
	VK_STREAM_LINK,  /* X.im.shm -> Y.im.shm, a symlink -> X.fits -> Y.fits */
};

/* sysvview.c: views in the System V directory. */
/* The entry of view or link NAME there, with a kernel reference; -ENOENT. */
int sysvview_entry(struct shmfs *fs, const char *name, struct fuse_entry_param *e);
/* Add the views and links of the System V directory to SNAPSHOT. */
int sysvview_list(struct shmfs *fs, void *snapshot);
/* The stat of a System V view or link node; 0 or -errno. */
int sysvview_stat(struct shmfs *fs, struct node *n, struct stat *st);
/* The text of the link hN.fits to the view of the segment with KEY, into
 * BUF; returns its length (what lstat reports as the link's size). */
off_t sysvview_link_text(key_t key, char *buf, size_t len);
/* The target of a link node. */
int sysvview_readlink(struct shmfs *fs, struct node *n, char *buf, size_t len);
/* The user's layout of a segment (typed_parse's returns). */
int sysvview_layout(struct shmfs *fs, int shmid, uint64_t segsz, struct typed_layout *l,
		    char *why, size_t whylen);
/* Extended attributes of segments: the typed layout lives in the daemon. */
void sysvview_getxattr(fuse_req_t req, struct node *n, const char *name, size_t size);
void sysvview_setxattr(fuse_req_t req, struct node *n, const char *name, const char *value,
		       size_t size);
void sysvview_listxattr(fuse_req_t req, struct node *n, size_t size);
void sysvview_removexattr(fuse_req_t req, struct node *n, const char *name);
/* Forget every layout (at exit). */
void sysvview_free_all(struct shmfs *fs);
/* Forget the layout of a removed segment. */
void sysvview_forget_segment(struct shmfs *fs, int shmid);

/* The entry of the view NAME in POSIX directory DIR, with a kernel
 * reference. Returns 0, or -ENOENT when NAME is no view of anything there. */
int view_entry(struct shmfs *fs, struct node *dir, const char *name, struct fuse_entry_param *e);

/* Add to SNAPSHOT the views of the objects of DIR, whose real entries are
 * already in it (a view never hides a real file of the same name). */
int view_list(struct shmfs *fs, struct node *dir, void *snapshot);
/* The typed view of regular object I of SNAPSHOT (one of SOURCE's own
 * entries of DIR; ST its attributes if known): added at the end of SNAPSHOT
 * when the object has one and no entry has its name. Asked as the listing
 * is read, where the object's attributes are at hand: an empty object (most
 * of a big directory, sem.* files) has none, and costs no system call.
 * Returns 0 or -ENOMEM. */
int view_list_typed(struct shmfs *fs, struct node *dir, void *snapshot, size_t i,
		    const struct stat *st);

/* A copy onto view node N (an O_TRUNC open that loads, load.c) is staged on
 * N itself: the open empties the kernel's inode for every open of it, so N
 * must be nobody else's. N is taken out of the lookup path (later lookups
 * make a fresh node); returns 0 when no other open reads it, -ESTALE when
 * others do and it was current (the kernel's retry finds a fresh node), or
 * -EBUSY. */
int viewgen_take_for_copy(struct shmfs *fs, struct node *n);

void view_getattr(fuse_req_t req, struct node *n);
/* The attributes of view node N; 0 or -errno. */
int view_node_stat(struct shmfs *fs, struct node *n, struct stat *st);
/* The object of view node N (a POSIX object) opened with FLAGS (and
 * O_NONBLOCK): a descriptor, or -errno (-ESTALE once it is gone). */
int view_object_open(struct shmfs *fs, struct node *n, int flags);
/* Free what a frame view node holds (inode.c, when the node goes). */
void viewgen_node_free(struct node *n);

/* viewopen.c: opens of views (each one the file of one frame). */
void view_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
/* What a writable open of view N by name does first: give the thread's
 * next lookup of the name a node of N's object of its own (see viewopen.c).
 * Returns -ESTALE when it did, else 0 (serve the open on N). */
int view_writer_redirect(fuse_req_t req, struct node *n);
void view_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void view_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off);
/* SETATTR of the size through a writable open: its own copy changes;
 * -EPERM for other opens. */
int view_truncate(struct handle *h, off_t size);
/* Put what a writable open wrote back into the object (FLUSH, FSYNC):
 * 0 or the error the close reports. */
int view_flush(struct shmfs *fs, struct handle *h);
void view_release(struct shmfs *fs, struct handle *h);
/* The counter of the frame open handle H holds; *STREAM 0 when its view has
 * none. */
uint64_t view_handle_cnt0(struct handle *h, int *stream);

/* viewpoll.c: POLL of an open view (see there). */
void view_poll(fuse_req_t req, struct handle *h, struct fuse_pollhandle *ph);
/* Forget the poll of handle H (at release). */
void viewpoll_forget(struct handle *h);
/* Stop every stream watch (at exit, after every handle is closed). */
void viewpoll_stop_all(void);
/* viewspare.c: stop the worker that makes snapshot files ahead. */
void viewspare_stop(void);
/* At exit, after every handle is closed and while the device is still
 * open: stop the watches and the worker, let go of idle snapshots (and the
 * backing ids kept for them). */
void view_stop_all(void);

#endif
