/* creds.c - per-thread credentials for the system calls made on a user's
 * behalf (see creds.h).
 *
 * How: setfsuid(2), setfsgid(2) and setgroups(2) as raw system calls change
 * the calling thread only (glibc's setgroups() changes every thread of the
 * process). The real, effective and saved ids stay root's, so the thread can
 * always come back. Changing the fsuid from 0 to another id clears the
 * filesystem capabilities from the effective set, and changing it back to 0
 * raises them again from the permitted set (capabilities(7), "Effect of user
 * ID changes on capabilities"): while in a user's scope the thread has no
 * CAP_DAC_OVERRIDE, CAP_FOWNER, CAP_FSETID, CAP_CHOWN or CAP_MKNOD, as the
 * user has none. CAP_FSETID alone is dropped and raised with capset(2) on
 * the thread. */
#define _GNU_SOURCE
#include "creds.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"

#define GROUPS_ON_STACK 256

/* The daemon's own identity; written once by creds_init(). A daemon that
 * is not root can act as nobody but itself (and serves only itself, without
 * allow_other): its scopes change nothing. */
static int can_switch;
static uid_t own_uid;
static gid_t own_gid;
static gid_t *own_groups;
static int own_ngroups;

int creds_init(void)
{
	own_uid = geteuid();
	own_gid = getegid();
	can_switch = own_uid == 0;
	int n = getgroups(0, NULL);
	if (n < 0)
		return -errno;
	own_groups = calloc((size_t)n + 1, sizeof *own_groups);
	if (!own_groups)
		return -ENOMEM;
	n = getgroups(n, own_groups);
	if (n < 0)
		return -errno;
	own_ngroups = n;
	return 0;
}

static long set_groups(int n, const gid_t *list)
{
	return syscall(SYS_setgroups, (size_t)n, list);
}

/* setfsuid/setfsgid report no error: the id is read back (an invalid id
 * changes nothing and returns the current one). */
static int set_fsuid(uid_t uid)
{
	syscall(SYS_setfsuid, uid);
	return (uid_t)syscall(SYS_setfsuid, (uid_t)-1) == uid ? 0 : -EPERM;
}

static int set_fsgid(gid_t gid)
{
	syscall(SYS_setfsgid, gid);
	return (gid_t)syscall(SYS_setfsgid, (gid_t)-1) == gid ? 0 : -EPERM;
}

int creds_enter(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t stack[GROUPS_ON_STACK], *groups = stack;
	int n = 0;
	if (!can_switch)
		return 0;
	/* Root passes every check whatever its groups: no need to read them. */
	if (ctx->uid != 0) {
		n = fuse_req_getgroups(req, GROUPS_ON_STACK, stack);
		if (n > GROUPS_ON_STACK) {
			groups = calloc((size_t)n, sizeof *groups);
			if (!groups)
				return -ENOMEM;
			n = fuse_req_getgroups(req, n, groups);
		}
		if (n < 0) {
			/* The caller has gone, or /proc hides it: its primary
			 * group alone (fewer rights, never more). */
			shm_log_once(SHM_LOG_WARN, "cannot read the groups of process %d (%s): "
						   "acting with its primary group only",
				     (int)ctx->pid, strerror(-n));
			n = 0;
		}
	}
	int rc = 0;
	if (ctx->uid != 0 && set_groups(n, groups) < 0)
		rc = -errno;
	if (groups != stack)
		free(groups);
	if (rc == 0)
		rc = set_fsgid(ctx->gid);
	if (rc == 0)
		rc = set_fsuid(ctx->uid);
	if (rc < 0)
		creds_leave();
	return rc;
}

void creds_leave(void)
{
	if (!can_switch)
		return;
	if (set_fsuid(own_uid) < 0 || set_fsgid(own_gid) < 0 ||
	    set_groups(own_ngroups, own_groups) < 0) {
		shm_log(SHM_LOG_ERR, "cannot take the daemon's own credentials back: %s",
			strerror(errno));
		abort();
	}
}

static int capabilities(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	return syscall(SYS_capget, &hdr, data) < 0 ? -errno : 0;
}

static int set_capabilities(struct __user_cap_data_struct data[2])
{
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3};
	return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

int creds_drop_fsetid(void)
{
	struct __user_cap_data_struct data[2];
	int rc = capabilities(data);
	if (rc < 0)
		return rc;
	data[CAP_TO_INDEX(CAP_FSETID)].effective &= ~CAP_TO_MASK(CAP_FSETID);
	return set_capabilities(data);
}

void creds_raise_fsetid(void)
{
	struct __user_cap_data_struct data[2];
	int rc = capabilities(data);
	if (rc == 0) {
		data[CAP_TO_INDEX(CAP_FSETID)].effective |=
			data[CAP_TO_INDEX(CAP_FSETID)].permitted & CAP_TO_MASK(CAP_FSETID);
		rc = set_capabilities(data);
	}
	if (rc < 0) {
		shm_log(SHM_LOG_ERR, "cannot raise CAP_FSETID again: %s", strerror(-rc));
		abort();
	}
}
