/* cfslot.c - CFITSIO's global table changed as its driver changes it; see
 * cfslot.h and ../../shared/formats/cfitsio-shmem.md. Nothing here exists in
 * core: the mount only reads CFITSIO files. */
#define _GNU_SOURCE
#include "cfslot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>

#include "cfshm.h"

/* One entry of the table: int sem, semkey, key, handle, size, nprocdebug;
 * char attr; 28 bytes. */
#define ENTRY_SIZE 28
#define ENTRY_SEM 0
#define ENTRY_SEMKEY 4
#define ENTRY_KEY 8
#define ENTRY_HANDLE 12
#define ENTRY_SIZE_FIELD 16
#define ENTRY_NPROC 20
#define ENTRY_ATTR 24
#define INVALID (-1)

static int32_t get_i32(const unsigned char *p, size_t off)
{
	int32_t v;
	memcpy(&v, p + off, 4);
	return v;
}

static void put_i32(unsigned char *p, size_t off, int32_t v)
{
	memcpy(p + off, &v, 4);
}

/* Attach the table (read-write for WRITABLE). Returns 0 and its address
 * and the number of whole entries within the slot count, or -errno. */
static int attach_table(int writable, unsigned char **table, int *count)
{
	int id = shmget(cfshm_keybase(), 0, 0);
	if (id < 0)
		return -errno;
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return -errno;
	void *at = shmat(id, NULL, writable ? 0 : SHM_RDONLY);
	if (at == (void *)-1)
		return -errno;
	size_t whole = ds.shm_segsz / ENTRY_SIZE;
	int maxseg = cfshm_maxseg();
	*count = whole < (size_t)maxseg ? (int)whole : maxseg;
	*table = at;
	return 0;
}

static void read_entry(const unsigned char *table, int index, struct cfslot_entry *e)
{
	const unsigned char *p = table + (size_t)index * ENTRY_SIZE;
	e->index = index;
	e->sem = get_i32(p, ENTRY_SEM);
	e->semkey = get_i32(p, ENTRY_SEMKEY);
	e->key = get_i32(p, ENTRY_KEY);
	e->handle = get_i32(p, ENTRY_HANDLE);
	e->size = get_i32(p, ENTRY_SIZE_FIELD);
}

int cfslot_read_table(struct cfslot_entry **entries)
{
	unsigned char *table;
	int count;
	int rc = attach_table(0, &table, &count);
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	*entries = calloc(count ? (size_t)count : 1, sizeof **entries);
	if (!*entries) {
		shmdt(table);
		return -ENOMEM;
	}
	for (int i = 0; i < count; i++)
		read_entry(table, i, &(*entries)[i]);
	shmdt(table);
	return count;
}

int cfslot_segment_gone(const struct cfslot_entry *e)
{
	struct shmid_ds ds;
	if (e->key == INVALID || e->handle < 0)
		return 0;
	if (shmctl(e->handle, IPC_STAT, &ds) < 0)
		return errno == EINVAL || errno == EIDRM;
	return ds.shm_perm.__key != e->key || (ds.shm_perm.mode & SHM_DEST);
}

/* CFITSIO's write lock on byte INDEX of its lock file, not waiting.
 * Returns the descriptor, -1 when there is no lock file (no CFITSIO process
 * holds any lock), -EBUSY, or another -errno. */
static int lock_slot(int index)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/.shmem-lockfile.%d.%d", (int)cfshm_keybase(),
		 cfshm_maxseg());
	int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? -1 : -errno;
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = index, .l_len = 1};
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return fd;
	int err = errno;
	close(fd);
	return err == EAGAIN || err == EACCES ? -EBUSY : -err;
}

static void unlock_slot(int fd)
{
	if (fd >= 0)
		close(fd);
}

/* The slot's semaphore, if it is still the one the entry names: its id,
 * or -1. */
static int slot_semaphore(const struct cfslot_entry *e)
{
	struct semid_ds ds;
	union { int val; struct semid_ds *buf; } arg = {.buf = &ds};
	if (e->sem < 0 || semctl(e->sem, 0, IPC_STAT, arg) < 0)
		return -1;
	return ds.sem_perm.__key == e->semkey ? e->sem : -1;
}

static void clear_entry(unsigned char *table, int index)
{
	unsigned char *p = table + (size_t)index * ENTRY_SIZE;
	put_i32(p, ENTRY_KEY, INVALID);
	put_i32(p, ENTRY_HANDLE, INVALID);
	put_i32(p, ENTRY_SEM, INVALID);
	put_i32(p, ENTRY_SEMKEY, INVALID);
	put_i32(p, ENTRY_NPROC, 0);
	put_i32(p, ENTRY_SIZE_FIELD, 0);
	p[ENTRY_ATTR] = 0;
}

/* Lock slot INDEX, attach the table for writing and read the entry. */
static int open_slot(int index, int *lockfd, unsigned char **table, struct cfslot_entry *e)
{
	int count;
	int rc = attach_table(1, table, &count);
	if (rc < 0)
		return rc;
	if (index < 0 || index >= count) {
		shmdt(*table);
		return -ENOENT;
	}
	*lockfd = lock_slot(index);
	if (*lockfd < -1) {
		shmdt(*table);
		return *lockfd;
	}
	read_entry(*table, index, e);
	return 0;
}

int cfslot_delete(int index)
{
	unsigned char *table;
	struct cfslot_entry e;
	int lockfd;
	int rc = open_slot(index, &lockfd, &table, &e);
	if (rc < 0)
		return rc;
	if (e.key == INVALID) {
		rc = -ENOENT;
		goto out;
	}
	if (!cfslot_segment_gone(&e) && shmctl(e.handle, IPC_RMID, NULL) < 0 && errno != EINVAL) {
		rc = -errno;
		goto out;
	}
	int sem = slot_semaphore(&e);
	if (sem >= 0)
		semctl(sem, 0, IPC_RMID);
	clear_entry(table, index);
out:
	unlock_slot(lockfd);
	shmdt(table);
	return rc;
}

int cfslot_clear_stale(int index)
{
	unsigned char *table;
	struct cfslot_entry e;
	int lockfd;
	int rc = open_slot(index, &lockfd, &table, &e);
	if (rc < 0)
		return rc;
	if (e.key == INVALID)
		rc = -ENOENT;
	else if (!cfslot_segment_gone(&e))
		rc = -EEXIST;
	if (rc < 0)
		goto out;
	int sem = slot_semaphore(&e);
	if (sem >= 0 && semctl(sem, 0, GETVAL) > 0) {
		rc = -EBUSY; /* a process still counts itself attached */
		goto out;
	}
	if (sem >= 0)
		semctl(sem, 0, IPC_RMID);
	clear_entry(table, index);
out:
	unlock_slot(lockfd);
	shmdt(table);
	return rc;
}
