/* cfshm.c - CFITSIO's shared-memory files: the global table, the slot
 * segments and CFITSIO's lock file; see cfshm.h. Everything in the table and
 * the segments is untrusted: it is copied out (never kept attached, except
 * the table while an entry is changed under the slot's lock) and checked
 * against the kernel's own idea of each segment. */
#define _GNU_SOURCE
#include "cfshm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"

/* One entry of the global table (CFITSIO's SHARED_GTAB): int sem, semkey,
 * key, handle, size, nprocdebug; char attr. */
#define ENTRY_SIZE 28
#define ENTRY_SEM 0
#define ENTRY_SEMKEY 4
#define ENTRY_KEY 8
#define ENTRY_HANDLE 12
#define ENTRY_SIZE_FIELD 16
#define ENTRY_NPROC 20
#define ENTRY_ATTR 24
#define TABLE_SIZE_OVERHEAD 16 /* the table's size = FITS bytes + 16 */
#define KEY_FREE (-1)
#define INVALID (-1) /* what CFITSIO writes into the ints of a freed entry */

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

int cfshm_raw_entry(const void *table, size_t len, int index, struct cfshm_entry *e)
{
	if (index < 0 || (size_t)index >= len / ENTRY_SIZE)
		return -ERANGE;
	const unsigned char *p = (const unsigned char *)table + (size_t)index * ENTRY_SIZE;
	*e = (struct cfshm_entry){ .index = index, .sem = get_i32(p, ENTRY_SEM),
				   .semkey = get_i32(p, ENTRY_SEMKEY), .key = get_i32(p, ENTRY_KEY),
				   .handle = get_i32(p, ENTRY_HANDLE),
				   .size = get_i32(p, ENTRY_SIZE_FIELD) };
	return 0;
}

int cfshm_parse_entry(const void *table, size_t len, int index, struct cfshm_slot *slot)
{
	struct cfshm_entry e;
	int rc = cfshm_raw_entry(table, len, index, &e);
	if (rc < 0)
		return rc;
	if (e.key == KEY_FREE)
		return -ENOENT;
	if (e.key == IPC_PRIVATE || e.handle < 0 || e.size < TABLE_SIZE_OVERHEAD)
		return -EINVAL;
	*slot = (struct cfshm_slot){ .index = index, .key = (key_t)e.key, .shmid = e.handle,
				     .fits_size = (uint64_t)(e.size - TABLE_SIZE_OVERHEAD) };
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

/* Attach the global table (read-write when WRITABLE) at *AT; *LEN is how
 * many of its bytes the first MAXSEG entries may use. Returns 0, -ENOENT
 * when there is no table, or -errno. */
static int attach_table(key_t keybase, int maxseg, int writable, unsigned char **at,
			size_t *len)
{
	int id = shmget(keybase, 0, 0);
	if (id < 0)
		return -errno;
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return -errno;
	void *p = shmat(id, NULL, writable ? 0 : SHM_RDONLY);
	if (p == (void *)-1)
		return -errno;
	size_t want = (size_t)maxseg * ENTRY_SIZE;
	*len = ds.shm_segsz < want ? ds.shm_segsz : want;
	*at = p;
	return 0;
}

/* Copy the global table (at most MAXSEG entries) into a new buffer.
 * Returns 0, -ENOENT when there is no table, or -errno. */
static int copy_table(key_t keybase, int maxseg, unsigned char **table, size_t *len)
{
	unsigned char *at = NULL; /* set when attach_table returns 0 */
	size_t n = 0;
	int rc = attach_table(keybase, maxseg, 0, &at, &n);
	if (rc < 0)
		return rc;
	unsigned char *copy = malloc(n ? n : 1);
	if (copy)
		memcpy(copy, at, n);
	shmdt(at);
	if (!copy)
		return -ENOMEM;
	*table = copy;
	*len = n;
	return 0;
}

/* Is segment SHMID there with key KEY, not marked for removal? Fills DS.
 * Returns 0, -ENOENT when it is gone or another, or -errno. */
static int stat_live_segment(int shmid, key_t key, struct shmid_ds *ds)
{
	if (shmctl(shmid, IPC_STAT, ds) < 0)
		return errno == EINVAL || errno == EIDRM ? -ENOENT : -errno;
	if (ds->shm_perm.__key != key || (ds->shm_perm.mode & SHM_DEST))
		return -ENOENT;
	return 0;
}

/* Copy the table for MAXSEG slots (as copy_table). Returns 1, 0 when there
 * is no table, -EINVAL for MAXSEG, or -errno. */
static int copy_table_if_any(key_t keybase, int maxseg, unsigned char **table, size_t *len)
{
	if (!valid_maxseg(maxseg))
		return -EINVAL;
	int rc = copy_table(keybase, maxseg, table, len);
	return rc == -ENOENT ? 0 : rc < 0 ? rc : 1;
}

/* Does SLOT's segment exist, carry SLOT's key, hold 24 + fits_size bytes?
 * Returns 0, -ENOENT when it is gone or another, -EINVAL when it is too
 * small, or -errno. */
static int check_kernel_segment(const struct cfshm_slot *slot)
{
	struct shmid_ds ds;
	int rc = stat_live_segment(slot->shmid, slot->key, &ds);
	if (rc < 0)
		return rc;
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
	unsigned char *table;
	size_t len;
	int rc = copy_table_if_any(keybase, maxseg, &table, &len);
	if (rc <= 0)
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
static int try_lock(int fd, int index, short type)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET, .l_start = index, .l_len = 1 };
	if (fcntl(fd, F_OFD_SETLK, &fl) == 0)
		return 0;
	if (errno == EINVAL && fcntl(fd, F_SETLK, &fl) == 0)
		return 0;
	return -errno;
}

/* Open CFITSIO's lock file with FLAGS (O_RDONLY or O_RDWR), never creating
 * it. Returns a descriptor, -ENOENT when there is none, -EACCES when it is
 * not a regular file, or -errno. */
static int open_lock_file(key_t keybase, int maxseg, int flags)
{
	char path[64];
	snprintf(path, sizeof path, LOCK_FILE_FORMAT, (int)keybase, maxseg);
	/* /tmp is anyone's: no symlink, no FIFO to hang on, a regular file. */
	int fd = open(path, flags | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EACCES;
	}
	return fd;
}

int cfshm_lock_read(key_t keybase, int maxseg, int index, int timeout_ms)
{
	if (!valid_maxseg(maxseg) || index < 0 || index >= maxseg)
		return -EINVAL;
	int fd = open_lock_file(keybase, maxseg, O_RDONLY);
	if (fd < 0)
		return fd;
	int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	unsigned pause_us = 200;
	for (;;) {
		int rc = try_lock(fd, index, F_RDLCK);
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

/* ---- changing the table ---- */

int cfshm_entries(key_t keybase, int maxseg, struct cfshm_entry **entries)
{
	*entries = NULL;
	unsigned char *table;
	size_t len;
	int rc = copy_table_if_any(keybase, maxseg, &table, &len);
	if (rc <= 0)
		return rc;
	int count = (int)(len / ENTRY_SIZE);
	if (count) {
		*entries = calloc((size_t)count, sizeof **entries);
		if (!*entries)
			count = -ENOMEM;
	}
	for (int i = 0; i < count; i++)
		cfshm_raw_entry(table, len, i, &(*entries)[i]);
	free(table);
	return count;
}

int cfshm_entry_gone(const struct cfshm_entry *e)
{
	struct shmid_ds ds;
	if (e->key == KEY_FREE || e->handle < 0)
		return 0;
	return stat_live_segment(e->handle, (key_t)e->key, &ds) == -ENOENT;
}

/* CFITSIO's write lock on slot INDEX, not waiting. Returns a descriptor
 * for cfshm_unlock, -ENOENT when there is no lock file, -EBUSY when another
 * holds the slot, or -errno. */
static int lock_write(key_t keybase, int maxseg, int index)
{
	int fd = open_lock_file(keybase, maxseg, O_RDWR);
	if (fd < 0)
		return fd;
	int rc = try_lock(fd, index, F_WRLCK);
	if (rc == 0)
		return fd;
	close(fd);
	return rc == -EAGAIN || rc == -EACCES ? -EBUSY : rc;
}

/* A slot being changed: the table attached read-write, the slot's lock (a
 * negative descriptor when there is no lock file) and its entry as read
 * under that lock. */
struct open_slot {
	unsigned char *table;
	size_t len;
	int lockfd;
	struct cfshm_entry entry;
};

/* Attach the table, lock slot INDEX and read its entry. Returns 0 or -errno
 * (-ENOENT: no table, or INDEX is outside it; -EBUSY: locked). */
static int open_slot(key_t keybase, int maxseg, int index, struct open_slot *s)
{
	if (!valid_maxseg(maxseg))
		return -EINVAL;
	int rc = attach_table(keybase, maxseg, 1, &s->table, &s->len);
	if (rc < 0)
		return rc;
	if (index < 0 || (size_t)index >= s->len / ENTRY_SIZE) {
		rc = -ENOENT;
		goto out_detach;
	}
	s->lockfd = lock_write(keybase, maxseg, index);
	if (s->lockfd < 0 && s->lockfd != -ENOENT) {
		rc = s->lockfd;
		goto out_detach;
	}
	cfshm_raw_entry(s->table, s->len, index, &s->entry);
	return 0;
out_detach:
	shmdt(s->table);
	return rc;
}

static void close_slot(struct open_slot *s)
{
	cfshm_unlock(s->lockfd);
	shmdt(s->table);
}

/* The slot's semaphore, if it is still the one entry E names: its id, or -1. */
static int slot_semaphore(const struct cfshm_entry *e)
{
	struct semid_ds ds;
	union { int val; struct semid_ds *buf; } arg = { .buf = &ds };
	if (e->sem < 0 || semctl(e->sem, 0, IPC_STAT, arg) < 0)
		return -1;
	return ds.sem_perm.__key == e->semkey ? e->sem : -1;
}

/* Remove the slot's semaphore SEM (if any) and free its entry, writing
 * what CFITSIO's shared_clear_entry writes. */
static void free_slot(struct open_slot *s, int sem)
{
	if (sem >= 0)
		semctl(sem, 0, IPC_RMID);
	unsigned char *p = s->table + (size_t)s->entry.index * ENTRY_SIZE;
	put_i32(p, ENTRY_KEY, INVALID);
	put_i32(p, ENTRY_HANDLE, INVALID);
	put_i32(p, ENTRY_SEM, INVALID);
	put_i32(p, ENTRY_SEMKEY, INVALID);
	put_i32(p, ENTRY_NPROC, 0);
	put_i32(p, ENTRY_SIZE_FIELD, 0);
	p[ENTRY_ATTR] = 0;
}

/* Remove the segment of the open slot S if it is there and is the slot's
 * file by its header (the table is anyone's to write: it could name any
 * segment). Returns 0 (removed, or gone), -EINVAL, or -errno. */
static int remove_file_segment(const struct open_slot *s)
{
	struct cfshm_slot slot;
	if (!cfshm_entry_gone(&s->entry)) {
		if (cfshm_parse_entry(s->table, s->len, s->entry.index, &slot) < 0)
			return -EINVAL;
		int rc = copy_segment(&slot, NULL);
		if (rc == -ENOENT)
			return 0;
		if (rc < 0)
			return rc;
		if (shmctl(slot.shmid, IPC_RMID, NULL) < 0 && errno != EINVAL && errno != EIDRM)
			return -errno;
	}
	return 0;
}

int cfshm_delete(key_t keybase, int maxseg, int index)
{
	struct open_slot s;
	int rc = open_slot(keybase, maxseg, index, &s);
	if (rc < 0)
		return rc;
	rc = s.entry.key == KEY_FREE ? -ENOENT : remove_file_segment(&s);
	if (rc == 0)
		free_slot(&s, slot_semaphore(&s.entry));
	close_slot(&s);
	return rc;
}

int cfshm_clear_stale(key_t keybase, int maxseg, int index)
{
	struct open_slot s;
	int rc = open_slot(keybase, maxseg, index, &s);
	if (rc < 0)
		return rc;
	int sem = slot_semaphore(&s.entry);
	if (s.entry.key == KEY_FREE)
		rc = -ENOENT;
	else if (!cfshm_entry_gone(&s.entry))
		rc = -EEXIST;
	else if (sem >= 0 && semctl(sem, 0, GETVAL) > 0)
		rc = -EBUSY; /* a process still counts itself attached */
	else
		free_slot(&s, sem);
	close_slot(&s);
	return rc;
}

/* ---- the image in a FITS primary header ---- */

#define CARD 80
#define VALUE_COLUMN 10   /* a value card: "NAME    = " and the value */
#define AXIS_MAX 9e15     /* the largest NAXISn taken: a double holds it exactly */
#define EXPONENT_MAX 400  /* beyond any double's */

/* The keywords read, and where their values go. */
enum { KEY_BITPIX, KEY_NAXIS, KEY_BZERO, KEY_BSCALE, KEY_AXIS1,
       KEY_COUNT = KEY_AXIS1 + CFSHM_IMAGE_MAX_AXES };

/* Which keyword read here CARD is, by its 8-byte name, or -1. */
static int image_keyword(const char *card)
{
	static const char *const names[] = { "BITPIX  ", "NAXIS   ", "BZERO   ", "BSCALE  " };
	for (int i = 0; i < KEY_AXIS1; i++)
		if (memcmp(card, names[i], 8) == 0)
			return i;
	if (memcmp(card, "NAXIS", 5) == 0 && card[5] >= '1' &&
	    card[5] < '1' + CFSHM_IMAGE_MAX_AXES && card[6] == ' ' && card[7] == ' ')
		return KEY_AXIS1 + card[5] - '1';
	return -1;
}

/* The number in the value field of CARD (columns 11-80) in FITS's syntax,
 * [sign] digits [. digits] [E|D [sign] digits], with blanks around it and
 * then the end or a comment. By hand, as strtod follows the locale and takes
 * hex, inf and nan. Digits past 19 only scale the value. Returns 0 or
 * -EINVAL. */
static int card_number(const char *card, double *value)
{
	static const double pow10[] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
					1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
					1e19, 1e20, 1e21, 1e22 };
	const int step = 22;
	const char *p = card + VALUE_COLUMN, *end = card + CARD;
	int negative = 0, digits = 0, exponent = 0, fraction = 0;
	uint64_t mantissa = 0;
	while (p < end && *p == ' ')
		p++;
	if (p < end && (*p == '+' || *p == '-'))
		negative = *p++ == '-';
	for (; p < end; p++) {
		if (*p == '.' && !fraction) {
			fraction = 1;
			continue;
		}
		if (*p < '0' || *p > '9')
			break;
		digits++;
		if (mantissa <= (UINT64_MAX - 9) / 10) {
			mantissa = mantissa * 10 + (uint64_t)(*p - '0');
			exponent -= fraction;
		} else {
			exponent += !fraction;
		}
	}
	if (!digits)
		return -EINVAL;
	if (p < end && (*p == 'E' || *p == 'D' || *p == 'e' || *p == 'd')) {
		int sign = 1, edigits = 0, e = 0;
		if (++p < end && (*p == '+' || *p == '-'))
			sign = *p++ == '-' ? -1 : 1;
		for (; p < end && *p >= '0' && *p <= '9'; p++, edigits++)
			if (e < 10 * EXPONENT_MAX)
				e = e * 10 + (*p - '0');
		if (!edigits)
			return -EINVAL;
		exponent += sign * e;
	}
	while (p < end && *p == ' ')
		p++;
	if (p < end && *p != '/')
		return -EINVAL;
	double v = (double)mantissa;
	if (exponent > EXPONENT_MAX)
		exponent = EXPONENT_MAX;  /* inf, or 0 */
	if (exponent < -EXPONENT_MAX)
		exponent = -EXPONENT_MAX; /* 0 */
	for (; exponent > step; exponent -= step)
		v *= pow10[step];
	for (; exponent < -step; exponent += step)
		v /= pow10[step];
	v = exponent >= 0 ? v * pow10[exponent] : v / pow10[-exponent];
	*value = negative ? -v : v;
	return 0;
}

/* V as an integer of LO .. HI, or -EINVAL. */
static int integral(double v, double lo, double hi, int64_t *out)
{
	if (!(v >= lo && v <= hi) || v != (double)(int64_t)v)
		return -EINVAL;
	*out = (int64_t)v;
	return 0;
}

/* The element type of BITPIX with BZERO and BSCALE. Returns 0 or -EINVAL. */
static int image_type(int64_t bitpix, double bzero, double bscale, enum elem_type *type)
{
	static const struct {
		int bitpix;
		enum elem_type plain, offset; /* BZERO 0, and BZERO OFFSET */
		double bzero;
	} integers[] = {
		{ 8, ELEM_U8, ELEM_I8, -128.0 },
		{ 16, ELEM_I16, ELEM_U16, 32768.0 },
		{ 32, ELEM_I32, ELEM_U32, 2147483648.0 },
		{ 64, ELEM_I64, ELEM_U64, 9223372036854775808.0 },
	};
	if (bitpix == -32 || bitpix == -64) {
		*type = bitpix == -32 ? ELEM_F32 : ELEM_F64;
		return 0;
	}
	for (size_t i = 0; i < sizeof integers / sizeof *integers; i++) {
		if (integers[i].bitpix != bitpix)
			continue;
		if (bscale != 1)
			*type = ELEM_F32;
		else
			*type = bzero == 0 ? integers[i].plain
			      : bzero == integers[i].bzero ? integers[i].offset : ELEM_F32;
		return 0;
	}
	return -EINVAL;
}

int cfshm_image_info(const void *buf, size_t len, enum elem_type *type, int *naxis,
		     uint64_t *dims)
{
	const char *p = buf;
	double value[KEY_COUNT];
	int seen[KEY_COUNT] = { 0 };
	if (len < CARD || memcmp(p, "SIMPLE  = ", VALUE_COLUMN) != 0)
		return -EINVAL;
	for (size_t off = 0;; off += CARD) {
		if (len - off < CARD)
			return -EINVAL; /* no END */
		const char *card = p + off;
		if (memcmp(card, "END     ", 8) == 0)
			break;
		int k = image_keyword(card);
		if (k < 0 || seen[k] || card[8] != '=' || card[9] != ' ')
			continue;
		if (card_number(card, &value[k]) < 0)
			return -EINVAL;
		seen[k] = 1;
	}
	int64_t bitpix, count, axes[CFSHM_IMAGE_MAX_AXES];
	if (!seen[KEY_BITPIX] || !seen[KEY_NAXIS] ||
	    integral(value[KEY_BITPIX], -64, 64, &bitpix) < 0 ||
	    integral(value[KEY_NAXIS], 1, CFSHM_IMAGE_MAX_AXES, &count) < 0)
		return -EINVAL;
	for (int i = 0; i < count; i++)
		if (!seen[KEY_AXIS1 + i] || integral(value[KEY_AXIS1 + i], 1, AXIS_MAX, &axes[i]) < 0)
			return -EINVAL;
	enum elem_type t;
	if (image_type(bitpix, seen[KEY_BZERO] ? value[KEY_BZERO] : 0,
		       seen[KEY_BSCALE] ? value[KEY_BSCALE] : 1, &t) < 0)
		return -EINVAL;
	*type = t;
	*naxis = (int)count;
	for (int i = 0; i < count; i++)
		dims[i] = (uint64_t)axes[i];
	return 0;
}
