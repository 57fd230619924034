/* passthrough.h - FUSE passthrough on libfuse 3.14, which has no API for it:
 * the kernel serves read, write and mmap of a passthrough file straight from
 * a backing file the daemon registered. See passthrough.c for the protocol. */
#ifndef SHMFS_PASSTHROUGH_H
#define SHMFS_PASSTHROUGH_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>
#include <stddef.h>

enum passthrough_mode { PASSTHROUGH_AUTO, PASSTHROUGH_ON, PASSTHROUGH_OFF };

/* Parse "auto", "on" or "off". Returns 0 or -1. */
int passthrough_parse_mode(const char *s, enum passthrough_mode *mode);

/* Before mounting: whether this kernel and these privileges can have it.
 * Returns 1, or 0 with a reason in WHY (a sentence for the log). */
int passthrough_possible(char *why, size_t whylen);

/* After mounting, before the loop, in every mode: route the session's device
 * I/O through the hooks that negotiate passthrough (unless MODE is off) and
 * HANDLE_KILLPRIV_V2 at INIT, and keep the kill flags of each request. MODE
 * on makes the daemon quit if the kernel does not offer passthrough.
 * Returns 0 or -1. */
int passthrough_install(struct fuse_session *se, enum passthrough_mode mode);

/* Whether the WRITE, OPEN or CREATE this thread is serving asks the daemon
 * to clear set-id bits (the caller lacks CAP_FSETID): FUSE_WRITE_KILL_SUIDGID
 * or FUSE_OPEN_KILL_SUIDGID, which libfuse 3.14 does not pass on. */
int passthrough_request_kills_suidgid(void);

/* Whether INIT turned passthrough on. */
int passthrough_enabled(void);

/* Register FD as a backing file, with the daemon's credentials less
 * CAP_FSETID (passthrough writes then clear set-id bits). Returns a backing
 * id (> 0) or -errno. */
int passthrough_backing_open(int fd);
/* Release a backing id. */
void passthrough_backing_close(int backing_id);

/* Make the next open or create reply sent by this thread a passthrough one
 * with BACKING_ID, adding EXTRA_OPEN_FLAGS (FOPEN_DIRECT_IO, say). */
void passthrough_arm_reply(int backing_id, unsigned extra_open_flags);
/* Forget an armed reply that was not sent. */
void passthrough_disarm_reply(void);

#define SHMFS_FOPEN_DIRECT_IO (1u << 0)

#endif
