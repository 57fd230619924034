/* creds.h - system calls made with the credentials of the user who asked.
 *
 * The daemon runs as root. A request that creates or changes an object on
 * a user's behalf is carried out, in the worker thread that serves it, with
 * that user's filesystem identity, so the backing filesystem applies its own
 * rules exactly as it would to the user directly: the owner and group of a
 * new object (set-gid directories included), which mode bits survive (S_ISUID
 * on create, S_ISGID for a non-member), which set-id bits a chown clears,
 * who may make a device node. See creds.c for how. */
#ifndef SHMFS_CREDS_H
#define SHMFS_CREDS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>

/* Record the daemon's own identity (at start, before any worker thread):
 * what creds_leave() returns a thread to. Returns 0 or -errno. */
int creds_init(void);

/* Make the calling thread act, on the filesystem, as the caller of REQ:
 * its fsuid, fsgid and supplementary groups (fuse_req_getgroups). For a
 * caller other than root, the filesystem capabilities (CAP_CHOWN,
 * CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_MKNOD, ...) leave the
 * thread's effective set with the change of fsuid, as the kernel does for
 * any process, so the thread has exactly that user's powers over files.
 * Only this thread changes (raw system calls: glibc's wrappers would change
 * every thread). A daemon that is not root changes nothing (it can act only
 * as itself). Returns 0, or -errno with nothing changed.
 *
 * Between creds_enter() and creds_leave() do only the system calls that act
 * for the user: nothing that needs root (open_by_handle_at,
 * /proc/self/map_files, the passthrough ioctls) and no reply to the kernel.
 * Scopes do not nest. */
int creds_enter(fuse_req_t req);
/* Back to the daemon's identity. Aborts if that fails: a thread left with a
 * user's identity must not serve anyone else. */
void creds_leave(void);

/* Drop CAP_FSETID from the calling thread's effective capabilities, and
 * raise it again. Without it, the backing filesystem clears set-id bits on
 * write and truncate as it does for an unprivileged writer (the kernel asks
 * for that with FUSE_WRITE_KILL_SUIDGID, FATTR_KILL_SUIDGID and
 * FUSE_OPEN_KILL_SUIDGID when the caller lacks CAP_FSETID). Only this
 * thread changes. creds_drop_fsetid() returns 0 or -errno (nothing changed);
 * creds_raise_fsetid() aborts on failure. */
int creds_drop_fsetid(void);
void creds_raise_fsetid(void);

#endif
