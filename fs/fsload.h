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
/* OPEN with O_TRUNC of a stream or IMOD .mrc view: a handle staging the copy.
 * Replies and returns 0, or returns -errno without replying. */
int load_open_trunc(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
/* Load the FITS file (IMOD: the MRC file) in descriptor FD, its whole size,
 * into OBJECT of directory DIRFD (a stream name without ".im.shm", or an
 * IMOD file name), as a copy closed with these bytes does: all or nothing,
 * in place when type and shape match. UID/GID own what is created (-1: the
 * daemon's). NAME (the name written in the mount) is for the log. Returns 0
 * or the error a close reports (-EINVAL, -EIO, -ENOSPC, ...); logged. */
int load_from_fd(int dirfd, const char *object, int imod, int fd, uid_t uid, gid_t gid,
		 const char *name);
/* Attributes of a node being created by a copy. */
void load_stat(struct node *n, struct stat *st);
void load_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void load_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off);
int load_truncate(struct handle *h, off_t size);
/* Load what was written (the close's error: EINVAL, EIO, ENOSPC, ...). */
int load_flush(struct handle *h);
void load_release(struct shmfs *fs, struct handle *h);
void load_node_free(struct node *n);

#endif
