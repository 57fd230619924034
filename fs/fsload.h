/* fsload.h - loading by copying into the mount (see load.c). */
#ifndef SHMFS_FSLOAD_H
#define SHMFS_FSLOAD_H

#include <sys/stat.h>

#include "fs.h"

/* Whether NAME is one a copy loads: X.fits (stream X: OBJECT "X", *IMOD 0)
 * or IMODShrMem_KB_N.mrc (OBJECT the IMOD file, *IMOD 1). */
int load_target(const char *name, char *object, size_t len, int *imod);
/* CREATE of such a NAME in PARENT where nothing of that name exists: a node
 * and handle staging the copy. Replies. */
void load_create(fuse_req_t req, struct node *parent, const char *name, const char *object,
		 int imod, mode_t mode, struct fuse_file_info *fi);
/* OPEN with O_TRUNC of a stream or IMOD .mrc view: a handle staging the copy
 * (with passthrough on, on a node of the copy's own: the open is answered
 * ESTALE and the thread's next lookup of the name gets that node). Replies
 * and returns 0, or returns -errno without replying. */
int load_open_trunc(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
/* Give thread TID's next lookups of NAME in directory DIR (its device and
 * inode) node N (a copy's or a writable open's own), for a few seconds or
 * until load_redirect_take, adopting N's reference. Returns 1; 0 when TID
 * was given a node for that name already and did not take it (it came back
 * another way: serve the open where it is); or -EAGAIN (no free slot). On
 * 0 and -EAGAIN, N's reference is dropped. */
int load_redirect(struct shmfs *fs, pid_t tid, const struct stat *dir, const char *name,
		  struct node *n);
/* Whether N is the node thread TID was given (the open that follows the
 * redirected lookup): it is then taken out of the list. */
int load_redirect_take(struct shmfs *fs, struct node *n, pid_t tid);
/* The redirect of load_open_trunc alone, for a copy's open that reached
 * another node than the view N (a file renamed onto the view, whose entry
 * the kernel still had): -ESTALE when the thread's next lookup gets the
 * copy's own node, else 0 or -errno. */
int load_trunc_redirect(fuse_req_t req, struct node *n);
/* LOOKUP of NAME in PARENT by a thread given a node of its own for it:
 * reply with that node and return 1; else return 0 (no reply). */
int load_lookup(fuse_req_t req, struct node *parent, const char *name);
/* OPEN of a copy's node (NODE_LOAD): the redirected copy's open, served
 * by passthrough. Replies and returns 0, or returns -errno (ESTALE for any
 * other open) without replying. */
int load_open_redirected(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
/* Load the FITS file (IMOD: the MRC file) in descriptor FD, its whole size,
 * into OBJECT of directory DIRFD (a stream name without ".im.shm", or an
 * IMOD file name), as a copy closed with these bytes does: all or nothing,
 * in place when type and shape match. UID/GID own what is created (-1: the
 * daemon's). NAME (the name written in the mount) is for the log. The file
 * is read through a mapping: nobody may shrink it during the call (a memfd
 * of the caller's own, say). Loads of one daemon are written one at a
 * time. Returns 0 or the error a close reports (-EINVAL, -EIO, -ENOSPC,
 * ...); logged. */
int load_from_fd(int dirfd, const char *object, int imod, int fd, uid_t uid, gid_t gid,
		 const char *name);
/* The owner of what a load for REQ's caller creates: the caller, or -1
 * (the daemon's own) for root. */
void load_owner(fuse_req_t req, uid_t *uid, gid_t *gid);
/* Attributes of a node being created by a copy. */
void load_stat(struct node *n, struct stat *st);
/* SETATTR of node N (being created by a copy, or a view copied onto)
 * through H, the copy's handle (or NULL): its size may change; times, mode
 * and owner (cp -p) are the object's to set, and are ignored. Replies. */
void load_setattr(fuse_req_t req, struct node *n, struct handle *h, struct stat *attr,
		  int to_set);
void load_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void load_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off);
/* Load what was written (the close's error: EINVAL, EIO, ENOSPC, ...). */
int load_flush(struct handle *h);
void load_release(struct shmfs *fs, struct handle *h);
void load_node_free(struct node *n);

/* replace.c: unlink + create and rename onto a view name, as loads. */
/* Start the worker (at mount, fs->se set): objects unlinked through their
 * views wait up to GRACE seconds (0: removed at once), while the program
 * that unlinked them runs, for it to create them again. */
int replace_init(struct shmfs *fs, double grace);
/* Stop it and remove every object still waiting (at unmount). */
void replace_finish(struct shmfs *fs);
/* UNLINK of NAME in PARENT: if NAME is the view of a stream, stream link or
 * IMOD file (and no real file), set its object aside, reply and return 1;
 * else return 0 without replying. */
int replace_unlink(fuse_req_t req, struct node *parent, const char *name);
/* CREATE of view name NAME in PARENT, before it is staged: the object the
 * same program unlinked as NAME within the grace is put back, so the copy
 * loads it in place. */
void replace_reclaim(fuse_req_t req, struct node *parent, const char *name);
/* RENAME of a regular file onto view name NEWNAME (no real file of that
 * name): load the file into its object, remove it, reply and return 1 (the
 * loader's error fails the rename, EBADMSG for its EINVAL; the file
 * stays). Else return 0. */
int replace_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		   const char *newname, unsigned int flags);
/* RMDIR of NAME in PARENT: remove at once the objects set aside in it. */
void replace_rmdir(struct shmfs *fs, struct node *parent, const char *name);
/* Whether NAME in directory DIR is an object set aside (not shown). */
int replace_hidden(struct shmfs *fs, struct node *dir, const char *name);
/* Whether the object of ST (its device and inode) waits set aside for its
 * grace: gone from the mount, as if removed, unless its program creates
 * the view again. */
int replace_set_aside(struct shmfs *fs, const struct stat *st);
/* An open of POSIX node N (FLAGS) that is answered ESTALE, its object
 * gone: if that was a file renamed onto a view name just now (the kernel
 * keeps the file's node under that name until told to forget it) and the
 * open writes, the thread's next lookup of the name is given the node the
 * open would get at the view (a copy's, or a writable open's own), so the
 * kernel's one retry succeeds. */
void replace_moved_open(fuse_req_t req, struct node *n, int flags);
/* Drop the objects set aside in DIR from listing SNAPSHOT. */
void replace_filter(struct shmfs *fs, struct node *dir, void *snapshot);

#endif
