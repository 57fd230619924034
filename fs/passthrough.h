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

/* After mounting, before the loop: route the session's device I/O through the
 * hooks that negotiate passthrough at INIT. MODE on makes the daemon quit if
 * the kernel does not offer it. Returns 0 or -1. */
int passthrough_install(struct fuse_session *se, enum passthrough_mode mode);

/* Whether INIT turned passthrough on. */
int passthrough_enabled(void);

/* Register FD as a backing file. Returns a backing id (> 0) or -errno. */
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
