/* cfshm.c - CFITSIO's shared-memory files: the global table, the slot
 * segments and CFITSIO's lock file; see cfshm.h. Everything in the table and
 * the segments is untrusted: it is copied out (never kept attached) and
 * checked against the kernel's own idea of each segment. */
#define _GNU_SOURCE
#include "cfshm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* One entry of the global table (CFITSIO's SHARED_GTAB). */
#define ENTRY_SIZE 28
#define ENTRY_KEY 8
#define ENTRY_HANDLE 12
#define ENTRY_SIZE_FIELD 16
#define TABLE_SIZE_OVERHEAD 16 /* the table's size = FITS bytes + 16 */
#define KEY_FREE (-1)

/* The front of a slot segment: BLKHEAD (8 bytes), then DAL_SHM_SEGHEAD. */
#define SEG_ID 0          /* 'J', 'B' */
#define SEG_FLAG 2        /* 1: shared */
#define SEG_HANDLE 4
#define SEG_HEAD_ID 8     /* 0x19630114 */
#define SEG_H 12
#define SEG_FLAG_SHARED 1
#define SEG_HEAD_MAGIC 0x19630114

#define LOCK_FILE_FORMAT "/tmp/.shmem-lockfile.%d.%d"

_Static_assert(CFSHM_HEADER == 24, "8-byte block head + 16-byte segment head");

static int32_t get_i32(const unsigned char *p, size_t off)
{
	int32_t v;
	memcpy(&v, p + off, 4);
	return v;
}

/* An integer from the environment as CFITSIO reads it (atoi), or 0. */
static long env_long(const char *name)
{
	const char *s = getenv(name);
	if (!s)
		return 0;
	long v = strtol(s, NULL, 10);
	return v < INT_MIN || v > INT_MAX ? 0 : v;
}

key_t cfshm_keybase(void)
{
	long v = env_long("SHMEM_LIB_KEYBASE");
	return v ? (key_t)v : CFSHM_DEFAULT_KEYBASE;
}

int cfshm_maxseg(void)
{
	long v = env_long("SHMEM_LIB_MAXSEG");
	return v > 0 ? (int)v : CFSHM_DEFAULT_MAXSEG;
}

int cfshm_parse_entry(const void *table, size_t len, int index, struct cfshm_slot *slot)
{
	if (index < 0 || (size_t)index >= len / ENTRY_SIZE)
		return -ERANGE;
	const unsigned char *e = (const unsigned char *)table + (size_t)index * ENTRY_SIZE;
	int32_t key = get_i32(e, ENTRY_KEY);
	int32_t handle = get_i32(e, ENTRY_HANDLE);
	int32_t size = get_i32(e, ENTRY_SIZE_FIELD);
	if (key == KEY_FREE)
		return -ENOENT;
	if (key == IPC_PRIVATE || handle < 0 || size < TABLE_SIZE_OVERHEAD)
		return -EINVAL;
	*slot = (struct cfshm_slot){ .index = index, .key = (key_t)key, .shmid = handle,
				     .fits_size = (uint64_t)(size - TABLE_SIZE_OVERHEAD) };
	return 0;
}

int cfshm_parse_table(const void *table, size_t len, int maxseg, struct cfshm_slot *slots,
		      int max)
{
	int count = 0;
	size_t whole = len / ENTRY_SIZE;
	for (int i = 0; i < maxseg && (size_t)i < whole && count < max; i++)
		if (cfshm_parse_entry(table, len, i, &slots[count]) == 0)
			count++;
	return count;
}

int cfshm_check_segment(const void *buf, size_t buflen, int index)
{
	const unsigned char *p = buf;
	if (buflen < CFSHM_HEADER)
		return -EINVAL;
	if (p[SEG_ID] != 'J' || p[SEG_ID + 1] != 'B' || p[SEG_FLAG] != SEG_FLAG_SHARED)
		return -EINVAL;
	if (get_i32(p, SEG_HEAD_ID) != SEG_HEAD_MAGIC || get_i32(p, SEG_HANDLE) != index ||
	    get_i32(p, SEG_H) != index)
		return -EINVAL;
	return 0;
}

static int valid_maxseg(int maxseg)
{
	return maxseg >= 1 && maxseg <= CFSHM_MAXSEG_LIMIT;
}

/* Copy the global table (at most MAXSEG entries) into a new buffer.
 * Returns 0, -ENOENT when there is no table, or -errno. */
static int copy_table(key_t keybase, int maxseg, unsigned char **table, size_t *len)
{
	int id = shmget(keybase, 0, 0);
	if (id < 0)
		return -errno;
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return -errno;
	size_t want = (size_t)maxseg * ENTRY_SIZE;
	size_t n = ds.shm_segsz < want ? ds.shm_segsz : want;
	unsigned char *copy = malloc(n ? n : 1);
	if (!copy)
		return -ENOMEM;
	void *at = shmat(id, NULL, SHM_RDONLY);
	if (at == (void *)-1) {
		int rc = -errno;
		free(copy);
		return rc;
	}
	memcpy(copy, at, n);
	shmdt(at);
	*table = copy;
	*len = n;
	return 0;
}

/* Does SLOT's segment exist, carry SLOT's key, hold 24 + fits_size bytes?
 * Returns 0, -ENOENT when it is gone or another, -EINVAL when it is too
 * small, or -errno. */
static int check_kernel_segment(const struct cfshm_slot *slot)
{
	struct shmid_ds ds;
	if (shmctl(slot->shmid, IPC_STAT, &ds) < 0)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
	if (ds.shm_perm.__key != slot->key || (ds.shm_perm.mode & SHM_DEST))
		return -ENOENT;
	if (ds.shm_segsz < CFSHM_HEADER || ds.shm_segsz - CFSHM_HEADER < slot->fits_size)
		return -EINVAL;
	return 0;
}

/* Attach SLOT's segment read-only, check its header and copy FITS_SIZE bytes
 * of the stream (or none when OUT is NULL), and detach. Returns 0 or -errno. */
static int copy_segment(const struct cfshm_slot *slot, unsigned char *out)
{
	int rc = check_kernel_segment(slot);
	if (rc < 0)
		return rc;
	const unsigned char *at = shmat(slot->shmid, NULL, SHM_RDONLY);
	if (at == (void *)-1)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
	rc = cfshm_check_segment(at, CFSHM_HEADER, slot->index);
	if (rc == 0 && out)
		memcpy(out, at + CFSHM_HEADER, slot->fits_size);
	shmdt(at);
	return rc;
}

int cfshm_slots(key_t keybase, int maxseg, struct cfshm_slot *slots, int max)
{
	if (!valid_maxseg(maxseg))
		return -EINVAL;
	unsigned char *table;
	size_t len;
	int rc = copy_table(keybase, maxseg, &table, &len);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	int count = 0;
	for (int i = 0; i < maxseg && count < max; i++) {
		struct cfshm_slot slot;
		if (cfshm_parse_entry(table, len, i, &slot) == 0 && copy_segment(&slot, NULL) == 0)
			slots[count++] = slot;
	}
	free(table);
	return count;
}

int cfshm_find_key(key_t keybase, int maxseg, key_t key, struct cfshm_slot *slot)
{
	if (!valid_maxseg(maxseg))
		return -EINVAL;
	struct cfshm_slot *all = calloc((size_t)maxseg, sizeof *all);
	if (!all)
		return -ENOMEM;
	int n = cfshm_slots(keybase, maxseg, all, maxseg);
	int rc = n < 0 ? n : -ENOENT;
	for (int i = 0; i < n; i++)
		if (all[i].key == key) {
			*slot = all[i];
			rc = 0;
			break;
		}
	free(all);
	return rc;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Open-file-description locks conflict with CFITSIO's classic fcntl locks
 * just the same, but belong to our descriptor, not to the process: two
 * threads of the daemon each hold their own, and closing one descriptor
 * does not drop the other's lock (as closing any descriptor of the file drops
 * all of a process's classic locks). Kernels without them get classic ones. */
static int try_read_lock(int fd, int index)
{
	struct flock fl = { .l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = index,
			    .l_len = 1 };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EINVAL && fcntl(fd, F_SETLK, &fl) == 0)
		return 0;
	return -errno;
}

int cfshm_lock_read(key_t keybase, int maxseg, int index, int timeout_ms)
{
	if (!valid_maxseg(maxseg) || index < 0 || index >= maxseg)
		return -EINVAL;
	char path[64];
	snprintf(path, sizeof path, LOCK_FILE_FORMAT, (int)keybase, maxseg);
	/* /tmp is anyone's: no symlink, no FIFO to hang on, a regular file. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EACCES;
	}
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	unsigned pause_us = 200;
	for (;;) {
		int rc = try_read_lock(fd, index);
		if (rc == 0)
			return fd;
		if ((rc != -EAGAIN && rc != -EACCES) || now_ms() >= deadline) {
			close(fd);
			return rc == -EACCES ? -EAGAIN : rc;
		}
		usleep(pause_us);
		if (pause_us < 10000)
			pause_us *= 2;
	}
}

void cfshm_unlock(int lockfd)
{
	if (lockfd >= 0)
		close(lockfd);
}

int cfshm_read_fits(key_t keybase, int maxseg, const struct cfshm_slot *slot,
		    int timeout_ms, unsigned char **out, uint64_t *len)
{
	int lockfd = cfshm_lock_read(keybase, maxseg, slot->index, timeout_ms);
	if (lockfd < 0 && lockfd != -ENOENT)
		return lockfd;
	/* Under the lock (or with no CFITSIO process to hold one): the entry
	 * now, since a writer may have grown the file meanwhile. */
	unsigned char *table = NULL, *fits = NULL;
	size_t tablelen;
	struct cfshm_slot now;
	int rc = copy_table(keybase, maxseg, &table, &tablelen);
	if (rc < 0)
		goto out_unlock;
	rc = cfshm_parse_entry(table, tablelen, slot->index, &now);
	if (rc < 0 || now.key != slot->key) {
		rc = rc == -EINVAL ? -EINVAL : -ENOENT; /* gone, or moved to another key */
		goto out_free_table;
	}
	fits = malloc(now.fits_size ? (size_t)now.fits_size : 1);
	if (!fits) {
		rc = -ENOMEM;
		goto out_free_table;
	}
	rc = copy_segment(&now, fits);
	if (rc < 0) {
		free(fits);
		goto out_free_table;
	}
	*out = fits;
	*len = now.fits_size;
out_free_table:
	free(table);
out_unlock:
	cfshm_unlock(lockfd);
	return rc;
}
