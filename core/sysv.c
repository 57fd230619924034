/* sysv.c - System V shared-memory segments as named objects; see sysv.h. */
#define _GNU_SOURCE
#include "sysv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <stdlib.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <unistd.h>

const char sysv_name_rule[] =
	"System V segment names are 0xKKKKKKKK (the key as 8 lowercase hex digits, "
	"not 0x00000000) or id-N (a segment with the IPC_PRIVATE key, by shmid; "
	"these cannot be created by name)";

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

enum sysv_name_kind sysv_name_parse(const char *name, key_t *key, int *shmid)
{
	if (name[0] == '0' && name[1] == 'x') {
		uint32_t v = 0;
		for (int i = 0; i < 8; i++) {
			int d = hexval(name[2 + i]);
			if (d < 0)
				return SYSV_NAME_INVALID;
			v = v << 4 | (uint32_t)d;
		}
		if (name[10] != '\0' || v == 0)
			return SYSV_NAME_INVALID;
		if (key)
			*key = (key_t)v;
		return SYSV_NAME_KEY;
	}
	if (strncmp(name, "id-", 3) == 0) {
		const char *p = name + 3;
		long long v = 0;
		if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] != '\0'))
			return SYSV_NAME_INVALID;
		for (; *p; p++) {
			if (*p < '0' || *p > '9')
				return SYSV_NAME_INVALID;
			v = v * 10 + (*p - '0');
			if (v > INT32_MAX)
				return SYSV_NAME_INVALID;
		}
		if (shmid)
			*shmid = (int)v;
		return SYSV_NAME_ID;
	}
	return SYSV_NAME_INVALID;
}

void sysv_name_format(char *buf, key_t key, int shmid)
{
	if (key == IPC_PRIVATE)
		snprintf(buf, SYSV_NAME_MAX, "id-%d", shmid);
	else
		snprintf(buf, SYSV_NAME_MAX, "0x%08x", (uint32_t)key);
}

int sysv_foreach(int (*fn)(const struct sysv_seg *seg, void *arg), void *arg)
{
	struct shm_info info;
	int maxidx = shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&info);
	if (maxidx < 0)
		return -errno;
	for (int idx = 0; idx <= maxidx; idx++) {
		struct sysv_seg seg;
		/* SHM_STAT_ANY skips the read-permission check SHM_STAT makes, so
		 * the listing does not depend on who asks (the mount checks access
		 * at open). */
		seg.shmid = shmctl(idx, SHM_STAT_ANY, &seg.ds);
		if (seg.shmid < 0 && errno == EINVAL)
			continue; /* free index */
		if (seg.shmid < 0) {
			seg.shmid = shmctl(idx, SHM_STAT, &seg.ds);
			if (seg.shmid < 0)
				continue;
		}
		if (seg.ds.shm_perm.mode & SHM_DEST)
			continue;
		int rc = fn(&seg, arg);
		if (rc)
			return rc;
	}
	return 0;
}

int sysv_stat(struct sysv_seg *seg)
{
	if (shmctl(seg->shmid, IPC_STAT, &seg->ds) < 0)
		return errno == EINVAL ? -ENOENT : -errno;
	if (seg->ds.shm_perm.mode & SHM_DEST)
		return -ENOENT;
	return 0;
}

int sysv_lookup(const char *name, struct sysv_seg *seg)
{
	key_t key = 0;
	int shmid = -1;
	switch (sysv_name_parse(name, &key, &shmid)) {
	case SYSV_NAME_KEY:
		shmid = shmget(key, 0, 0);
		if (shmid < 0)
			return errno == EACCES ? -EACCES : -ENOENT;
		break;
	case SYSV_NAME_ID:
		break;
	default:
		return -EINVAL;
	}
	seg->shmid = shmid;
	int rc = sysv_stat(seg);
	if (rc < 0)
		return rc;
	/* id-N names only segments without a key, and a keyed segment found by
	 * its key must still carry it. */
	if (seg->ds.shm_perm.__key != key)
		return -ENOENT;
	return 0;
}

ino_t sysv_ino(int shmid)
{
	/* tmpfs numbers its inodes from 1 upwards; keep clear of that range. */
	return (ino_t)(0x5359535600000000ull | (uint32_t)shmid);
}

void sysv_fill_stat(const struct sysv_seg *seg, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = sysv_ino(seg->shmid);
	st->st_mode = S_IFREG | (seg->ds.shm_perm.mode & 0777);
	st->st_nlink = 1;
	st->st_uid = seg->ds.shm_perm.uid;
	st->st_gid = seg->ds.shm_perm.gid;
	st->st_size = (off_t)seg->ds.shm_segsz;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((seg->ds.shm_segsz + 511) / 512);
	st->st_atim.tv_sec = seg->ds.shm_atime;
	st->st_mtim.tv_sec = seg->ds.shm_ctime;
	st->st_ctim.tv_sec = seg->ds.shm_ctime;
}

/* shmget as UID/GID: the kernel records the creator (cuid, cgid) from the
 * effective ids of the calling thread. The raw setres[ug]id system calls
 * change only the calling thread (glibc's wrappers would change every thread
 * of the process), and the real and saved ids stay 0, so the thread gets its
 * root identity and capabilities back afterwards. Returns the shmid or -errno;
 * -EPERM if the thread could not take those ids. */
static int shmget_as(key_t key, size_t size, int flags, uid_t uid, gid_t gid)
{
	if (syscall(SYS_setresgid, (gid_t)-1, gid, (gid_t)-1) < 0)
		return -EPERM;
	if (syscall(SYS_setresuid, (uid_t)-1, uid, (uid_t)-1) < 0) {
		syscall(SYS_setresgid, (gid_t)-1, (gid_t)0, (gid_t)-1);
		return -EPERM;
	}
	int shmid = shmget(key, size, flags);
	int err = errno;
	if (syscall(SYS_setresuid, (uid_t)-1, (uid_t)0, (uid_t)-1) < 0 ||
	    syscall(SYS_setresgid, (gid_t)-1, (gid_t)0, (gid_t)-1) < 0)
		abort(); /* a thread stuck with another user's ids must not go on */
	return shmid < 0 ? -err : shmid;
}

int sysv_create(key_t key, size_t size, mode_t mode, uid_t uid, gid_t gid)
{
	if (key == IPC_PRIVATE || size == 0)
		return -EINVAL;
	int flags = IPC_CREAT | IPC_EXCL | (int)(mode & 0777);
	if (geteuid() == 0 && getuid() == 0 && (uid != 0 || gid != 0)) {
		int shmid = shmget_as(key, size, flags, uid, gid);
		if (shmid != -EPERM)
			return shmid;
	}
	int shmid = shmget(key, size, flags);
	if (shmid < 0)
		return -errno;
	if (uid == geteuid() && gid == getegid())
		return shmid; /* shmget made the caller the owner already */
	int rc = sysv_set(shmid, (mode_t)-1, uid, gid);
	if (rc < 0) {
		shmctl(shmid, IPC_RMID, NULL);
		return rc;
	}
	return shmid;
}

int sysv_remove(int shmid)
{
	if (shmctl(shmid, IPC_RMID, NULL) < 0)
		return errno == EINVAL ? -ENOENT : -errno;
	return 0;
}

struct find_ctx {
	int shmid;
	struct shmid_ds *ds;
};

static int find_one(const struct sysv_seg *seg, void *arg)
{
	struct find_ctx *fc = arg;
	if (seg->shmid != fc->shmid)
		return 0;
	*fc->ds = seg->ds;
	return 1;
}

int sysv_set(int shmid, mode_t mode, uid_t uid, gid_t gid)
{
	struct shmid_ds ds;
	/* IPC_SET takes the whole permission block; IPC_STAT needs read
	 * permission, which an owner may have taken away from itself, so fall
	 * back to the listing (SHM_STAT_ANY), which does not. */
	if (shmctl(shmid, IPC_STAT, &ds) < 0) {
		if (errno != EACCES)
			return errno == EINVAL ? -ENOENT : -errno;
		struct find_ctx fc = {shmid, &ds};
		if (sysv_foreach(find_one, &fc) != 1)
			return -EACCES;
	}
	if (mode != (mode_t)-1)
		ds.shm_perm.mode = (ds.shm_perm.mode & ~0777u) | (mode & 0777);
	if (uid != (uid_t)-1)
		ds.shm_perm.uid = uid;
	if (gid != (gid_t)-1)
		ds.shm_perm.gid = gid;
	if (shmctl(shmid, IPC_SET, &ds) < 0)
		return errno == EINVAL ? -ENOENT : -errno;
	return 0;
}

int sysv_attach(int shmid, int writable, void **addr, size_t *size)
{
	struct shmid_ds ds;
	if (shmctl(shmid, IPC_STAT, &ds) < 0)
		return errno == EINVAL ? -ENOENT : -errno;
	void *p = shmat(shmid, NULL, writable ? 0 : SHM_RDONLY);
	if (p == (void *)-1)
		return errno == EINVAL ? -ENOENT : -errno;
	*addr = p;
	*size = ds.shm_segsz;
	return 0;
}

void sysv_detach(void *addr)
{
	if (addr)
		shmdt(addr);
}

int sysv_open_file(int shmid)
{
	void *addr;
	size_t size;
	char path[96];
	int rc = sysv_attach(shmid, 1, &addr, &size);
	if (rc < 0)
		return rc;
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t start = (uintptr_t)addr;
	uintptr_t end = start + ((size + (size_t)page - 1) & ~((size_t)page - 1));
	snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", (unsigned long)start,
		 (unsigned long)end);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	rc = fd < 0 ? -errno : fd;
	sysv_detach(addr);
	return rc;
}

static int in_groups(gid_t g, gid_t gid, const gid_t *groups, int ngroups)
{
	if (g == gid)
		return 1;
	for (int i = 0; i < ngroups; i++)
		if (groups[i] == g)
			return 1;
	return 0;
}

int sysv_is_owner(const struct shmid_ds *ds, uid_t uid)
{
	return uid == 0 || uid == ds->shm_perm.uid || uid == ds->shm_perm.cuid;
}

int sysv_access(const struct shmid_ds *ds, uid_t uid, gid_t gid, const gid_t *groups,
		int ngroups, int want)
{
	unsigned mode = ds->shm_perm.mode & 0777;
	unsigned granted;
	if (uid == 0)
		return 0;
	if (uid == ds->shm_perm.uid || uid == ds->shm_perm.cuid)
		granted = mode >> 6;
	else if (in_groups(ds->shm_perm.gid, gid, groups, ngroups) ||
		 in_groups(ds->shm_perm.cgid, gid, groups, ngroups))
		granted = mode >> 3;
	else
		granted = mode;
	return ((unsigned)want & ~granted & 7) ? -EACCES : 0;
}
