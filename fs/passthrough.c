/* passthrough.c - FUSE passthrough on libfuse 3.14 through
 * fuse_session_custom_io(): the read hook sees every request the kernel
 * sends, the writev hook every reply the daemon sends, on whichever (cloned)
 * device descriptor the worker thread uses.
 *
 * Protocol fields touched (include/uapi/linux/fuse.h, protocol 7.40+):
 * - INIT request: fuse_in_header (40 bytes: len, opcode=26, unique, nodeid,
 *   uid, gid, pid, total_extlen, padding), then fuse_init_in: major @0,
 *   minor @4, max_readahead @8, flags @12, flags2 @16. The kernel offers
 *   passthrough with FUSE_INIT_EXT (bit 30 of flags) and FUSE_PASSTHROUGH
 *   (bit 37 of the 64-bit flags = bit 5 of flags2), from minor 40.
 * - INIT reply: fuse_out_header (16 bytes: len, error, unique), then
 *   fuse_init_out: flags @12, flags2 @32, max_stack_depth @36 (the first
 *   "unused" word in libfuse 3.14's copy of the struct). We set FUSE_INIT_EXT,
 *   FUSE_PASSTHROUGH, max_stack_depth = 1 (backing files are on tmpfs or the
 *   shm mount, depth 0) and make sure FUSE_WRITEBACK_CACHE is clear: the
 *   kernel ignores passthrough otherwise.
 * - FUSE_HANDLE_KILLPRIV_V2 (bit 28 of flags), in every mode, when the kernel
 *   offers it (libfuse 3.14 never asks for it): the daemon clears set-id
 *   bits itself, as the backing filesystem would for the caller. The kernel
 *   then marks the mount SB_NOSEC (no GETXATTR of security.capability before
 *   every passthrough write: measured, one per write without it) and says in
 *   each request whether the caller lacks CAP_FSETID: FUSE_WRITE_KILL_SUIDGID
 *   (bit 2 of fuse_write_in.write_flags @20), FUSE_OPEN_KILL_SUIDGID (bit 0
 *   of fuse_open_in.open_flags @4, fuse_create_in.open_flags @12) and
 *   FATTR_KILL_SUIDGID in SETATTR (libfuse passes that one on, as
 *   FUSE_SET_ATTR_KILL_SUID). libfuse 3.14 drops the first two, so the read
 *   hook keeps them for the thread that serves the request (the thread that
 *   read a request is the one that handles it). A passthrough write runs in
 *   the kernel with the credentials of whoever registered the backing file
 *   (the FUSE_DEV_IOC_BACKING_OPEN caller's, prepare_creds()): backing files
 *   are registered without CAP_FSETID, so those writes clear set-id bits as
 *   for an unprivileged writer (posix.c keeps root's writes to set-id files
 *   off passthrough).
 * - OPEN and CREATE replies end with fuse_open_out (16 bytes): fh @0,
 *   open_flags @8, backing_id @12 (libfuse 3.14 calls it padding and sends 0).
 *   A passthrough reply has FOPEN_PASSTHROUGH (bit 7) and the backing id.
 * - Backing ids come from ioctl(FUSE_DEV_IOC_BACKING_OPEN = _IOW(229, 1,
 *   struct {int32 fd; uint32 flags; uint64 padding;})) on the device and go
 *   with FUSE_DEV_IOC_BACKING_CLOSE (_IOW(229, 2, uint32)); both need
 *   CAP_SYS_ADMIN.
 *
 * Threads: the multithreaded loop calls the hooks concurrently, each worker
 * on its own cloned descriptor. The hooks keep no shared state but the
 * negotiated flags (written once, at INIT, before the kernel sends anything
 * else), a per-thread armed reply (an op arms it right before it replies,
 * and the reply is written by the same thread inside fuse_reply_*()) and the
 * per-thread flags of the request being served. */
#define _GNU_SOURCE
#include "passthrough.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "creds.h"
#include "log.h"

#define FUSE_OPCODE_OPEN 14
#define FUSE_OPCODE_WRITE 16
#define FUSE_OPCODE_INIT 26
#define FUSE_OPCODE_CREATE 35
#define FUSE_WRITE_KILL_SUIDGID_FLAG (1u << 2)
#define FUSE_OPEN_KILL_SUIDGID_FLAG (1u << 0)
#define FUSE_IN_HEADER_SIZE 40
#define FUSE_OUT_HEADER_SIZE 16
#define FUSE_INIT_EXT_FLAG (1u << 30)
#define FUSE_WRITEBACK_CACHE_FLAG (1u << 16)
#define FUSE_HANDLE_KILLPRIV_V2_FLAG (1u << 28)
#define FUSE_PASSTHROUGH_FLAG2 (1u << (37 - 32))
#define FUSE_PASSTHROUGH_MIN_MINOR 40
#define FOPEN_PASSTHROUGH_FLAG (1u << 7)
#define OPEN_OUT_SIZE 16

struct backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
#define BACKING_OPEN_IOCTL _IOW(229, 1, struct backing_map)
#define BACKING_CLOSE_IOCTL _IOW(229, 2, uint32_t)

static enum passthrough_mode pt_mode;
static int pt_dev_fd = -1;            /* the session's device (ioctls) */
static struct fuse_session *pt_session;
static atomic_int pt_enabled;         /* set at INIT */
static _Atomic uint64_t pt_init_unique; /* the INIT request being answered */
static atomic_int pt_offered;         /* the kernel offered passthrough */
static atomic_int pt_killpriv;        /* the kernel offered HANDLE_KILLPRIV_V2 */

static __thread int armed_backing_id;
static __thread unsigned armed_extra_flags;
static __thread int request_kills_suidgid; /* of the request this thread serves */

int passthrough_parse_mode(const char *s, enum passthrough_mode *mode)
{
	if (!strcmp(s, "auto"))
		*mode = PASSTHROUGH_AUTO;
	else if (!strcmp(s, "on"))
		*mode = PASSTHROUGH_ON;
	else if (!strcmp(s, "off"))
		*mode = PASSTHROUGH_OFF;
	else
		return -1;
	return 0;
}

static int has_cap_sys_admin(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long eff = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			break;
	fclose(f);
	return (eff >> 21) & 1; /* CAP_SYS_ADMIN */
}

int passthrough_possible(char *why, size_t whylen)
{
	struct utsname u;
	int major = 0, minor = 0;
	if (uname(&u) == 0)
		sscanf(u.release, "%d.%d", &major, &minor);
	if (major < 6 || (major == 6 && minor < 9)) {
		snprintf(why, whylen, "kernel %s is older than 6.9", u.release);
		return 0;
	}
	if (!has_cap_sys_admin()) {
		snprintf(why, whylen, "the daemon lacks CAP_SYS_ADMIN (run it as root)");
		return 0;
	}
	return 1;
}

int passthrough_enabled(void) { return atomic_load(&pt_enabled); }

static uint32_t get32(const char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}
static void put32(char *p, uint32_t v) { memcpy(p, &v, 4); }

/* The kill flag of a request's fixed part IN (LEN bytes), by opcode. */
static int kills_suidgid(uint32_t opcode, const char *in, ssize_t len)
{
	switch (opcode) {
	case FUSE_OPCODE_WRITE:
		return len >= 24 && (get32(in + 20) & FUSE_WRITE_KILL_SUIDGID_FLAG);
	case FUSE_OPCODE_OPEN:
		return len >= 8 && (get32(in + 4) & FUSE_OPEN_KILL_SUIDGID_FLAG);
	case FUSE_OPCODE_CREATE:
		return len >= 16 && (get32(in + 12) & FUSE_OPEN_KILL_SUIDGID_FLAG);
	default:
		return 0;
	}
}

int passthrough_request_kills_suidgid(void) { return request_kills_suidgid; }

static ssize_t hook_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	ssize_t res = read(fd, buf, len);
	request_kills_suidgid = 0;
	if (res < FUSE_IN_HEADER_SIZE)
		return res;
	const char *in = (const char *)buf + FUSE_IN_HEADER_SIZE;
	uint32_t opcode = get32((char *)buf + 4);
	if (opcode != FUSE_OPCODE_INIT) {
		request_kills_suidgid = kills_suidgid(opcode, in, res - FUSE_IN_HEADER_SIZE);
		return res;
	}
	if (res < FUSE_IN_HEADER_SIZE + 20)
		return res;
	uint32_t kminor = get32(in + 4), flags = get32(in + 12);
	uint32_t flags2 = (flags & FUSE_INIT_EXT_FLAG) && res >= FUSE_IN_HEADER_SIZE + 20
				  ? get32(in + 16) : 0;
	uint64_t unique;
	memcpy(&unique, (char *)buf + 8, 8);
	int offered = kminor >= FUSE_PASSTHROUGH_MIN_MINOR && (flags2 & FUSE_PASSTHROUGH_FLAG2);
	atomic_store(&pt_offered, offered);
	atomic_store(&pt_killpriv, (flags & FUSE_HANDLE_KILLPRIV_V2_FLAG) != 0);
	atomic_store(&pt_init_unique, unique);
	if (pt_mode == PASSTHROUGH_OFF) {
		/* main() has said so already. */
	} else if (offered) {
		atomic_store(&pt_enabled, 1);
		shm_log(SHM_LOG_INFO, "passthrough on: raw files are served by the kernel "
				      "(protocol 7.%u)", kminor);
	} else if (pt_mode == PASSTHROUGH_ON) {
		shm_log(SHM_LOG_ERR, "passthrough=on, but the kernel does not offer it "
				     "(protocol 7.%u, needs 7.%d and CONFIG_FUSE_PASSTHROUGH)",
			kminor, FUSE_PASSTHROUGH_MIN_MINOR);
	} else {
		shm_log(SHM_LOG_INFO, "passthrough off: the kernel does not offer it (protocol "
				      "7.%u); reads and writes go through the daemon and "
				      "mmap(MAP_SHARED) of files in the mount fails with ENODEV",
			kminor);
	}
	return res;
}

/* The iovec holding byte AT of the message, and the offset in it. */
static char *iov_at(struct iovec *iov, int count, size_t at, size_t need)
{
	for (int i = 0; i < count; i++) {
		if (at + need <= iov[i].iov_len)
			return (char *)iov[i].iov_base + at;
		if (at < iov[i].iov_len)
			return NULL; /* straddles two iovecs: libfuse never does that */
		at -= iov[i].iov_len;
	}
	return NULL;
}

static ssize_t hook_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	size_t total = 0;
	for (int i = 0; i < count; i++)
		total += iov[i].iov_len;
	char *hdr = iov_at(iov, count, 0, FUSE_OUT_HEADER_SIZE);
	int32_t error = hdr ? (int32_t)get32(hdr + 4) : -1;

	int backing_id = armed_backing_id;
	unsigned extra = armed_extra_flags;
	armed_backing_id = 0;
	armed_extra_flags = 0;
	if (backing_id > 0 && error == 0 && total >= FUSE_OUT_HEADER_SIZE + OPEN_OUT_SIZE) {
		char *open_out = iov_at(iov, count, total - OPEN_OUT_SIZE, OPEN_OUT_SIZE);
		if (open_out) {
			put32(open_out + 8, get32(open_out + 8) | FOPEN_PASSTHROUGH_FLAG | extra);
			put32(open_out + 12, (uint32_t)backing_id);
		}
	}

	uint64_t unique = 0;
	if (hdr)
		memcpy(&unique, hdr + 8, 8);
	if (hdr && unique && unique == atomic_load(&pt_init_unique)) {
		atomic_store(&pt_init_unique, 0);
		char *init_out = iov_at(iov, count, FUSE_OUT_HEADER_SIZE, 40);
		if (error == 0 && init_out && atomic_load(&pt_killpriv))
			put32(init_out + 12, get32(init_out + 12) | FUSE_HANDLE_KILLPRIV_V2_FLAG);
		if (error == 0 && init_out && atomic_load(&pt_enabled)) {
			uint32_t flags = get32(init_out + 12);
			flags |= FUSE_INIT_EXT_FLAG;
			flags &= ~FUSE_WRITEBACK_CACHE_FLAG;
			put32(init_out + 12, flags);
			put32(init_out + 32, get32(init_out + 32) | FUSE_PASSTHROUGH_FLAG2);
			put32(init_out + 36, 1); /* max_stack_depth */
		} else if (pt_mode == PASSTHROUGH_ON && !atomic_load(&pt_enabled)) {
			fuse_session_exit(pt_session);
		}
	}
	return writev(fd, iov, count);
}

int passthrough_install(struct fuse_session *se, enum passthrough_mode mode)
{
	static const struct fuse_custom_io io = {.read = hook_read, .writev = hook_writev};
	pt_mode = mode;
	pt_session = se;
	pt_dev_fd = fuse_session_fd(se);
	return fuse_session_custom_io(se, &io, pt_dev_fd) == 0 ? 0 : -1;
}

int passthrough_backing_open(int fd)
{
	struct backing_map map = {.fd = fd};
	/* The backing file's writes will run with the credentials this ioctl
	 * is made with: without CAP_FSETID, so they clear set-id bits. */
	int rc = creds_drop_fsetid();
	if (rc < 0)
		return rc;
	int id = ioctl(pt_dev_fd, BACKING_OPEN_IOCTL, &map);
	int err = errno;
	creds_raise_fsetid();
	return id < 0 ? -err : id;
}

void passthrough_backing_close(int backing_id)
{
	uint32_t id = (uint32_t)backing_id;
	if (backing_id > 0 && ioctl(pt_dev_fd, BACKING_CLOSE_IOCTL, &id) < 0)
		shm_log(SHM_LOG_WARN, "releasing backing id %d: %s", backing_id, strerror(errno));
}

void passthrough_arm_reply(int backing_id, unsigned extra_open_flags)
{
	armed_backing_id = backing_id;
	armed_extra_flags = extra_open_flags;
}

void passthrough_disarm_reply(void)
{
	armed_backing_id = 0;
	armed_extra_flags = 0;
}
