/* test_cfshm.c - unit tests of core/cfshm: files made by CFITSIO's own
 * shmem:// driver read back byte for byte as `imcopy` gives them, CFITSIO's
 * lock honoured, hand-made hostile tables and segments refused, files
 * deleted and stale slots cleared as CFITSIO's driver does it, and the image
 * read from FITS headers, CFITSIO's and hand-made hostile ones. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <fitsio.h>
#include <limits.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfshm.h"
#include "unit_files.h"

#define ENTRY 28
#define TIMEOUT_MS 5000

/* Each test: a private IPC namespace (Criterion forks per test) and a key
 * base of its own, so CFITSIO's lock file (in /tmp, shared with everyone)
 * is the test's own too; it is removed at the end. */
static key_t keybase;
static char lockpath[96];
static char dir[64];

static void setup(void)
{
	cr_assert_eq(unshare(CLONE_NEWIPC), 0, "unshare(CLONE_NEWIPC): %s", strerror(errno));
	keybase = (key_t)(30000000 + (getpid() % 100000) * 64);
	char value[32];
	snprintf(value, sizeof value, "%d", (int)keybase);
	setenv("SHMEM_LIB_KEYBASE", value, 1);
	unsetenv("SHMEM_LIB_MAXSEG");
	snprintf(lockpath, sizeof lockpath, "/tmp/.shmem-lockfile.%d.16", (int)keybase);
	unlink(lockpath);
	strcpy(dir, "/tmp/test_cfshm.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	unlink(lockpath);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(cfshm, .init = setup, .fini = teardown);

static void fits_ok(int status, const char *what)
{
	if (status) {
		fits_report_error(stderr, status);
		cr_assert_fail("%s: CFITSIO status %d", what, status);
	}
}

/* shmem://hSLOT made by CFITSIO: an NX x NY image of BITPIX, a ramp, and
 * EXTRA image extensions of the same size, so files can pass the 16 KiB
 * granule (where CFITSIO moves the file to a new segment). */
static void cf_make(int slot, long nx, long ny, int bitpix, int extra)
{
	char url[32];
	snprintf(url, sizeof url, "shmem://h%d", slot);
	fitsfile *f;
	int status = 0;
	fits_create_file(&f, url, &status);
	fits_ok(status, url);
	long naxes[2] = { nx, ny };
	long n = nx * ny;
	double *ramp = malloc((size_t)n * sizeof *ramp);
	cr_assert_not_null(ramp);
	for (long i = 0; i < n; i++)
		ramp[i] = (double)(i % 97) + slot;
	for (int hdu = 0; hdu <= extra; hdu++) {
		fits_create_img(f, bitpix, 2, naxes, &status);
		fits_update_key_lng(f, "SLOT", slot, "shmem://hN", &status);
		fits_update_key_str(f, "OBJECT", "ramp", NULL, &status);
		fits_write_img(f, TDOUBLE, 1, n, ramp, &status);
	}
	free(ramp);
	fits_close_file(f, &status);
	fits_ok(status, "making the file");
}

static void reap(pid_t pid)
{
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d failed", (int)pid);
}

/* Run CFITSIO in a child, so this process holds none of CFITSIO's classic
 * locks (which closing any descriptor of the lock file would drop). */
static void cf_make_in_child(int slot, long nx, long ny, int bitpix, int extra)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		cf_make(slot, nx, ny, bitpix, extra);
		_exit(0);
	}
	reap(pid);
}

/* Open shmem://hSLOT read-write in a child, as cf_make_in_child, and let
 * WORK change it and close or delete it; wait for it to succeed. */
static void cf_change_in_child(int slot, void (*work)(fitsfile *f, int *status))
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char url[32];
		snprintf(url, sizeof url, "shmem://h%d", slot);
		fitsfile *f = NULL;
		int status = 0;
		fits_open_file(&f, url, READWRITE, &status);
		work(f, &status);
		_exit(status ? 1 : 0);
	}
	reap(pid);
}

static void cf_delete(fitsfile *f, int *status)
{
	fits_delete_file(f, status);
}

/* What `imcopy shmem://hSLOT out.fits` writes. */
static unsigned char *imcopy(int slot, size_t *len)
{
	char cmd[256], out[128];
	snprintf(out, sizeof out, "%s/imcopy-h%d-%ld.fits", dir, slot, (long)random());
	snprintf(cmd, sizeof cmd, "imcopy shmem://h%d '%s' >/dev/null", slot, out);
	cr_assert_eq(system(cmd), 0, "%s failed", cmd);
	return slurp(out, len);
}

/* The key CFITSIO's table gives slot SLOT, read directly. */
static int32_t table_key(int slot)
{
	int id = shmget(keybase, 0, 0);
	cr_assert_geq(id, 0);
	unsigned char *t = shmat(id, NULL, SHM_RDONLY);
	cr_assert_neq(t, (void *)-1);
	int32_t key;
	memcpy(&key, t + slot * ENTRY + 8, 4);
	shmdt(t);
	return key;
}

static void expect_same_as_imcopy(const struct cfshm_slot *slot)
{
	unsigned char *got = NULL;
	uint64_t len = 0;
	int rc = cfshm_read_fits(keybase, 16, slot, TIMEOUT_MS, &got, &len);
	cr_assert_eq(rc, 0, "read h%d: %s", slot->index, strerror(-rc));
	size_t reflen;
	unsigned char *ref = imcopy(slot->index, &reflen);
	cr_assert_eq(len, reflen, "h%d: %llu bytes, imcopy gives %zu", slot->index,
		     (unsigned long long)len, reflen);
	cr_assert_eq(len, slot->fits_size);
	cr_assert_eq(len % 2880, 0);
	cr_assert(memcmp(got, ref, reflen) == 0, "h%d differs from imcopy's copy", slot->index);
	free(got);
	free(ref);
}

Test(cfshm, environment_as_cfitsio_reads_it)
{
	cr_assert_eq(cfshm_keybase(), keybase);
	unsetenv("SHMEM_LIB_KEYBASE");
	cr_assert_eq(cfshm_keybase(), CFSHM_DEFAULT_KEYBASE);
	setenv("SHMEM_LIB_KEYBASE", "0", 1);
	cr_assert_eq(cfshm_keybase(), CFSHM_DEFAULT_KEYBASE);
	setenv("SHMEM_LIB_KEYBASE", "12345xyz", 1);
	cr_assert_eq(cfshm_keybase(), 12345);
	setenv("SHMEM_LIB_KEYBASE", "99999999999999999999", 1);
	cr_assert_eq(cfshm_keybase(), CFSHM_DEFAULT_KEYBASE);
	cr_assert_eq(cfshm_maxseg(), 16);
	setenv("SHMEM_LIB_MAXSEG", "4", 1);
	cr_assert_eq(cfshm_maxseg(), 4);
	setenv("SHMEM_LIB_MAXSEG", "-3", 1);
	cr_assert_eq(cfshm_maxseg(), 16);
	setenv("SHMEM_LIB_MAXSEG", "junk", 1);
	cr_assert_eq(cfshm_maxseg(), 16);
}

Test(cfshm, no_table_no_slots)
{
	struct cfshm_slot slots[16], one;
	cr_assert_eq(cfshm_slots(keybase, 16, slots, 16), 0);
	cr_assert_eq(cfshm_find_key(keybase, 16, keybase + 1, &one), -ENOENT);
	cr_assert_eq(cfshm_slots(keybase, 0, slots, 16), -EINVAL);
	cr_assert_eq(cfshm_slots(keybase, -1, slots, 16), -EINVAL);
	cr_assert_eq(cfshm_slots(keybase, CFSHM_MAXSEG_LIMIT + 1, slots, 16), -EINVAL);
}

Test(cfshm, one_file_as_imcopy_gives_it)
{
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	struct cfshm_slot slots[16];
	cr_assert_eq(cfshm_slots(keybase, 16, slots, 16), 1);
	cr_assert_eq(slots[0].index, 2);
	cr_assert_eq(slots[0].key, table_key(2));
	cr_assert_eq(slots[0].fits_size, 5760);
	int id = shmget(slots[0].key, 0, 0);
	cr_assert_eq(slots[0].shmid, id);

	struct cfshm_slot found;
	cr_assert_eq(cfshm_find_key(keybase, 16, slots[0].key, &found), 0);
	cr_assert_eq(found.index, 2);
	cr_assert_eq(found.shmid, id);
	cr_assert_eq(cfshm_find_key(keybase, 16, slots[0].key + 1000, &found), -ENOENT);
	expect_same_as_imcopy(&found);
}

Test(cfshm, many_files_sizes_and_types)
{
	cf_make_in_child(0, 1, 1, BYTE_IMG, 0);
	cf_make_in_child(3, 300, 300, SHORT_IMG, 0);     /* grew past 16 KiB: a moved key */
	cf_make_in_child(9, 64, 64, DOUBLE_IMG, 3);      /* extensions */
	cf_make_in_child(15, 17, 5, LONG_IMG, 1);        /* the last slot */
	struct cfshm_slot slots[16];
	cr_assert_eq(cfshm_slots(keybase, 16, slots, 16), 4);
	int want[4] = { 0, 3, 9, 15 };
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(slots[i].index, want[i]);
		cr_assert_eq(slots[i].key, table_key(want[i]));
		struct cfshm_slot found;
		cr_assert_eq(cfshm_find_key(keybase, 16, slots[i].key, &found), 0);
		cr_assert_eq(found.index, want[i]);
		expect_same_as_imcopy(&slots[i]);
	}
	/* MAX bounds what is filled; slot order is kept */
	struct cfshm_slot two[2];
	cr_assert_eq(cfshm_slots(keybase, 16, two, 2), 2);
	cr_assert_eq(two[1].index, 3);
	/* with fewer slots than CFITSIO's table, later entries are not seen */
	cr_assert_eq(cfshm_slots(keybase, 4, slots, 16), 2);
}

Test(cfshm, pixels_read_back_through_cfitsio)
{
	cf_make_in_child(5, 40, 30, LONG_IMG, 0);
	struct cfshm_slot slot;
	cr_assert_eq(cfshm_slots(keybase, 16, &slot, 1), 1);
	unsigned char *got;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slot, TIMEOUT_MS, &got, &len), 0);
	/* the copy is a FITS file CFITSIO opens in memory, with the ramp */
	void *mem = got;
	size_t memlen = (size_t)len;
	fitsfile *f;
	int status = 0;
	fits_open_memfile(&f, "copy", READONLY, &mem, &memlen, 0, NULL, &status);
	fits_ok(status, "open the copy");
	long naxes[2];
	int bitpix, naxis;
	fits_get_img_param(f, 2, &bitpix, &naxis, naxes, &status);
	cr_assert_eq(bitpix, LONG_IMG);
	cr_assert_eq(naxes[0], 40);
	cr_assert_eq(naxes[1], 30);
	int pix[1200];
	fits_read_img(f, TINT, 1, 1200, NULL, pix, NULL, &status);
	fits_ok(status, "read pixels");
	for (int i = 0; i < 1200; i++)
		cr_assert_eq(pix[i], i % 97 + 5);
	fits_close_file(f, &status);
	free(got);
}

/* Append an extension big enough to pass the file into a new segment. */
static void cf_grow(fitsfile *f, int *status)
{
	long naxes[2] = { 100, 100 };
	fits_create_img(f, FLOAT_IMG, 2, naxes, status);
	float zero[10000] = { 0 };
	fits_write_img(f, TFLOAT, 1, 10000, zero, status);
	fits_close_file(f, status);
}

/* Append a small extension: the file stays in its granule. */
static void cf_append_small(fitsfile *f, int *status)
{
	long naxes[1] = { 10 };
	fits_create_img(f, BYTE_IMG, 1, naxes, status);
	fits_close_file(f, status);
}

Test(cfshm, a_file_that_moved_is_gone_under_its_old_key)
{
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	struct cfshm_slot before, after;
	cr_assert_eq(cfshm_slots(keybase, 16, &before, 1), 1);
	cf_change_in_child(2, cf_grow);
	cr_assert_eq(cfshm_slots(keybase, 16, &after, 1), 1);
	cr_assert_neq(after.key, before.key, "growing past 16 KiB makes a new segment");
	cr_assert_gt(after.fits_size, before.fits_size);
	unsigned char *got = NULL;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &before, TIMEOUT_MS, &got, &len), -ENOENT);
	cr_assert_eq(cfshm_find_key(keybase, 16, before.key, &after), -ENOENT);
	cr_assert_eq(cfshm_find_key(keybase, 16, table_key(2), &after), 0);
	expect_same_as_imcopy(&after);
}

Test(cfshm, size_is_reread_under_the_lock)
{
	/* a file growing within its granule keeps its key: the copy follows the
	 * table's size now, not the one listed earlier */
	cf_make_in_child(4, 2, 2, BYTE_IMG, 0);
	struct cfshm_slot listed;
	cr_assert_eq(cfshm_slots(keybase, 16, &listed, 1), 1);
	cr_assert_eq(listed.fits_size, 5760);
	cf_change_in_child(4, cf_append_small);
	cr_assert_eq(table_key(4), listed.key, "still in its first granule");
	unsigned char *got;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &listed, TIMEOUT_MS, &got, &len), 0);
	cr_assert_eq(len, 11520);
	free(got);
	struct cfshm_slot now;
	cr_assert_eq(cfshm_find_key(keybase, 16, listed.key, &now), 0);
	expect_same_as_imcopy(&now);
}

Test(cfshm, deleted_file_disappears)
{
	cf_make_in_child(1, 8, 8, SHORT_IMG, 0);
	struct cfshm_slot slot;
	cr_assert_eq(cfshm_slots(keybase, 16, &slot, 1), 1);
	cf_change_in_child(1, cf_delete);
	struct cfshm_slot slots[16];
	cr_assert_eq(cfshm_slots(keybase, 16, slots, 16), 0);
	unsigned char *got;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slot, TIMEOUT_MS, &got, &len), -ENOENT);
}

/* A child that opens shmem://hSLOT with MODE (CFITSIO takes its lock),
 * says so on a pipe, and closes after HOLD_MS. */
static pid_t cf_hold(int slot, int mode, int hold_ms)
{
	int p[2];
	cr_assert_eq(pipe(p), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(p[0]);
		char url[32];
		snprintf(url, sizeof url, "shmem://h%d", slot);
		fitsfile *f;
		int status = 0;
		fits_open_file(&f, url, mode, &status);
		if (write(p[1], "x", 1) != 1)
			_exit(2);
		usleep((useconds_t)hold_ms * 1000);
		fits_close_file(f, &status);
		_exit(status ? 1 : 0);
	}
	close(p[1]);
	char c;
	cr_assert_eq(read(p[0], &c, 1), 1);
	close(p[0]);
	return pid;
}


static double elapsed_ms(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

Test(cfshm, writer_lock_times_out)
{
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	struct cfshm_slot slot;
	cr_assert_eq(cfshm_slots(keybase, 16, &slot, 1), 1);
	pid_t writer = cf_hold(2, READWRITE, 1500);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(cfshm_lock_read(keybase, 16, 2, 200), -EAGAIN);
	double waited = elapsed_ms(&t0);
	cr_assert_geq(waited, 190, "gave up after %.0f ms", waited);
	cr_assert_lt(waited, 1400);
	unsigned char *got = NULL;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slot, 100, &got, &len), -EAGAIN);
	/* another slot's byte is free */
	int fd = cfshm_lock_read(keybase, 16, 3, 0);
	cr_assert_geq(fd, 0);
	cfshm_unlock(fd);
	reap(writer);
	expect_same_as_imcopy(&slot);
}

Test(cfshm, reader_waits_for_a_writer_to_close)
{
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	struct cfshm_slot slot;
	cr_assert_eq(cfshm_slots(keybase, 16, &slot, 1), 1);
	pid_t writer = cf_hold(2, READWRITE, 300);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	unsigned char *got;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slot, TIMEOUT_MS, &got, &len), 0);
	double waited = elapsed_ms(&t0);
	cr_assert_geq(waited, 200, "read after %.0f ms, while the writer held it", waited);
	cr_assert_eq(len, 5760);
	free(got);
	reap(writer);
}

Test(cfshm, readers_share)
{
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	pid_t reader = cf_hold(2, READONLY, 500);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int a = cfshm_lock_read(keybase, 16, 2, 0);
	int b = cfshm_lock_read(keybase, 16, 2, 0);
	cr_assert_geq(a, 0);
	cr_assert_geq(b, 0);
	cr_assert_lt(elapsed_ms(&t0), 400);
	cfshm_unlock(a);
	cfshm_unlock(b);
	reap(reader);
}

Test(cfshm, our_lock_is_private_to_its_descriptor)
{
	/* two read locks in one process; closing one leaves the other, and a
	 * writer elsewhere is still kept out (a classic lock would be gone) */
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	int a = cfshm_lock_read(keybase, 16, 2, 0);
	int b = cfshm_lock_read(keybase, 16, 2, 0);
	cr_assert_geq(a, 0);
	cr_assert_geq(b, 0);
	cfshm_unlock(a);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(lockpath, O_RDWR);
		struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 2, .l_len = 1 };
		_exit(fd >= 0 && fcntl(fd, F_SETLK, &fl) < 0 ? 0 : 1);
	}
	reap(pid);
	cfshm_unlock(b);
}

Test(cfshm, lock_refusals)
{
	cr_assert_eq(cfshm_lock_read(keybase, 16, 16, 0), -EINVAL);
	cr_assert_eq(cfshm_lock_read(keybase, 16, -1, 0), -EINVAL);
	cr_assert_eq(cfshm_lock_read(keybase, 0, 0, 0), -EINVAL);
	/* no lock file: nobody holds a lock, and none is made */
	cr_assert_eq(cfshm_lock_read(keybase, 16, 0, 0), -ENOENT);
	cr_assert_eq(access(lockpath, F_OK), -1);
	/* a FIFO (or anything not a regular file) in its place does not hang us */
	cr_assert_eq(mkfifo(lockpath, 0666), 0);
	cr_assert_eq(cfshm_lock_read(keybase, 16, 0, 100), -EACCES);
	unlink(lockpath);
	cr_assert_eq(symlink("/etc/passwd", lockpath), 0);
	cr_assert_lt(cfshm_lock_read(keybase, 16, 0, 100), 0);
	unlink(lockpath);
}

/* ---- hand-made tables and segments ---- */

static void put32(unsigned char *p, size_t off, int32_t v)
{
	memcpy(p + off, &v, 4);
}

static void entry(unsigned char *table, int i, int32_t key, int32_t handle, int32_t size)
{
	memset(table + i * ENTRY, 0, ENTRY);
	put32(table, (size_t)i * ENTRY + 4, key);
	put32(table, (size_t)i * ENTRY + 8, key);
	put32(table, (size_t)i * ENTRY + 12, handle);
	put32(table, (size_t)i * ENTRY + 16, size);
}

static void free_entries(unsigned char *table, int n)
{
	for (int i = 0; i < n; i++)
		entry(table, i, -1, -1, 0);
}

/* A slot segment as CFITSIO lays it out, with FITS_SIZE bytes of a pattern
 * after the 24-byte header, in SEGSZ bytes. Returns its shmid. */
static int make_segment(key_t key, int index, size_t segsz, size_t fits_size)
{
	int id = shmget(key, segsz, IPC_CREAT | IPC_EXCL | 0666);
	cr_assert_geq(id, 0, "shmget: %s", strerror(errno));
	unsigned char *p = shmat(id, NULL, 0);
	cr_assert_neq(p, (void *)-1);
	p[0] = 'J';
	p[1] = 'B';
	p[2] = 1;
	put32(p, 4, index);
	put32(p, 8, 0x19630114);
	put32(p, 12, index);
	put32(p, 16, (int32_t)fits_size + 16);
	put32(p, 20, -1);
	for (size_t i = 0; i < fits_size && 24 + i < segsz; i++)
		p[24 + i] = (unsigned char)(i * 7 + index);
	shmdt(p);
	return id;
}

static unsigned char *make_table(size_t size, int *id)
{
	*id = shmget(keybase, size, IPC_CREAT | IPC_EXCL | 0666);
	cr_assert_geq(*id, 0, "shmget table: %s", strerror(errno));
	unsigned char *t = shmat(*id, NULL, 0);
	cr_assert_neq(t, (void *)-1);
	return t;
}

Test(cfshm, parse_entry_and_table)
{
	unsigned char t[4 * ENTRY];
	free_entries(t, 4);
	struct cfshm_slot s;
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, 0, &s), -ENOENT);
	entry(t, 1, 0x1234, 7, 16 + 2880);
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, 1, &s), 0);
	cr_assert_eq(s.index, 1);
	cr_assert_eq(s.key, 0x1234);
	cr_assert_eq(s.shmid, 7);
	cr_assert_eq(s.fits_size, 2880);
	entry(t, 2, 0x1235, 8, 16);
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, 2, &s), 0);
	cr_assert_eq(s.fits_size, 0);
	entry(t, 2, 0x1235, 8, INT32_MAX);
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, 2, &s), 0);
	cr_assert_eq(s.fits_size, (uint64_t)INT32_MAX - 16);
	int32_t bad_sizes[] = { 15, 0, -1, INT32_MIN };
	for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
		entry(t, 3, 0x1236, 9, bad_sizes[i]);
		cr_assert_eq(cfshm_parse_entry(t, sizeof t, 3, &s), -EINVAL);
	}
	entry(t, 3, 0, 9, 100);
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, 3, &s), -EINVAL, "IPC_PRIVATE");
	entry(t, 3, 0x1236, -2, 100);
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, 3, &s), -EINVAL, "negative handle");
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, 4, &s), -ERANGE);
	cr_assert_eq(cfshm_parse_entry(t, sizeof t - 1, 3, &s), -ERANGE, "cut entry");
	cr_assert_eq(cfshm_parse_entry(t, sizeof t, -1, &s), -ERANGE);
	cr_assert_eq(cfshm_parse_entry(t, 0, 0, &s), -ERANGE);

	struct cfshm_slot slots[8];
	cr_assert_eq(cfshm_parse_table(t, sizeof t, 16, slots, 8), 2);
	cr_assert_eq(slots[0].index, 1);
	cr_assert_eq(slots[1].index, 2);
	cr_assert_eq(cfshm_parse_table(t, sizeof t, 2, slots, 8), 1, "MAXSEG bounds");
	cr_assert_eq(cfshm_parse_table(t, sizeof t, 16, slots, 1), 1, "MAX bounds");
	cr_assert_eq(cfshm_parse_table(t, 2 * ENTRY + 27, 16, slots, 8), 1, "LEN bounds");
	cr_assert_eq(cfshm_parse_table(t, sizeof t, 16, slots, 0), 0);
}

Test(cfshm, check_segment_fields)
{
	unsigned char h[24] = { 'J', 'B', 1, 0 };
	put32(h, 4, 5);
	put32(h, 8, 0x19630114);
	put32(h, 12, 5);
	put32(h, 20, -1);
	cr_assert_eq(cfshm_check_segment(h, 24, 5), 0);
	cr_assert_eq(cfshm_check_segment(h, 23, 5), -EINVAL);
	cr_assert_eq(cfshm_check_segment(h, 24, 4), -EINVAL);
	/* each checked byte, changed */
	size_t checked[] = { 0, 1, 2, 4, 8, 11, 12, 15 };
	for (size_t i = 0; i < sizeof checked / sizeof *checked; i++) {
		unsigned char bad[24];
		memcpy(bad, h, 24);
		bad[checked[i]] ^= 0x40;
		cr_assert_eq(cfshm_check_segment(bad, 24, 5), -EINVAL, "byte %zu", checked[i]);
	}
}

Test(cfshm, hand_made_table_without_lock_file)
{
	/* no CFITSIO process ever ran: no lock file; reads go on without one */
	int tid;
	unsigned char *t = make_table(16 * ENTRY, &tid);
	free_entries(t, 16);
	int id = make_segment(keybase + 7, 6, 16384, 5000);
	entry(t, 6, keybase + 7, id, 5000 + 16);
	struct cfshm_slot slot;
	cr_assert_eq(cfshm_slots(keybase, 16, &slot, 1), 1);
	cr_assert_eq(slot.index, 6);
	cr_assert_eq(slot.fits_size, 5000);
	unsigned char *got;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slot, TIMEOUT_MS, &got, &len), 0);
	cr_assert_eq(len, 5000);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(got[i], (unsigned char)(i * 7 + 6));
	free(got);
	cr_assert_eq(access(lockpath, F_OK), -1, "the lock file is never created");
	/* an entry damaged after listing is refused when re-read */
	entry(t, 6, keybase + 7, id, 15);
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slot, TIMEOUT_MS, &got, &len), -EINVAL);
	entry(t, 6, -1, -1, 0);
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slot, TIMEOUT_MS, &got, &len), -ENOENT);
	shmdt(t);
}

Test(cfshm, hostile_entries_refused)
{
	int tid;
	unsigned char *t = make_table(16 * ENTRY, &tid);
	free_entries(t, 16);
	int good = make_segment(keybase + 1, 0, 16384, 2880);
	entry(t, 0, keybase + 1, good, 2880 + 16);

	/* size beyond the segment, at the extremes */
	int small = make_segment(keybase + 2, 1, 16384, 100);
	entry(t, 1, keybase + 2, small, 16384 - 24 + 16 + 1);
	int small2 = make_segment(keybase + 3, 2, 4096, 100);
	entry(t, 2, keybase + 3, small2, INT32_MAX);
	/* key of the entry is not the segment's */
	int other = make_segment(keybase + 4, 3, 16384, 100);
	entry(t, 3, keybase + 5, other, 116);
	/* handle of nothing, negative, the table itself */
	entry(t, 4, keybase + 6, 0x7ffffff0, 116);
	entry(t, 5, keybase + 6, -7, 116);
	entry(t, 6, keybase, tid, 16);
	/* IPC_PRIVATE segment */
	int priv = make_segment(IPC_PRIVATE, 7, 16384, 100);
	entry(t, 7, 0, priv, 116);
	/* header fields wrong: the slot number, the magic */
	int moved = make_segment(keybase + 8, 3, 16384, 100);
	entry(t, 8, keybase + 8, moved, 116);
	int nomagic = make_segment(keybase + 9, 9, 16384, 100);
	unsigned char *p = shmat(nomagic, NULL, 0);
	put32(p, 8, 0x19630115);
	shmdt(p);
	entry(t, 9, keybase + 9, nomagic, 116);
	/* a segment marked for destruction, still attached */
	int doomed = make_segment(keybase + 10, 10, 16384, 100);
	void *keep = shmat(doomed, NULL, SHM_RDONLY);
	cr_assert_eq(shmctl(doomed, IPC_RMID, NULL), 0);
	entry(t, 10, keybase + 10, doomed, 116);
	/* exactly full: 24 + fits_size == segment size, is fine */
	int full = make_segment(keybase + 11, 11, 16384, 16384 - 24);
	entry(t, 11, keybase + 11, full, 16384 - 24 + 16);

	struct cfshm_slot slots[16];
	int n = cfshm_slots(keybase, 16, slots, 16);
	cr_assert_eq(n, 2);
	cr_assert_eq(slots[0].index, 0);
	cr_assert_eq(slots[1].index, 11);
	unsigned char *got;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &slots[1], TIMEOUT_MS, &got, &len), 0);
	cr_assert_eq(len, 16384 - 24);
	free(got);

	/* reading a refused slot by hand is refused the same way */
	struct cfshm_slot forged = { .index = 1, .key = keybase + 2, .shmid = small,
				     .fits_size = 100 };
	cr_assert_eq(cfshm_read_fits(keybase, 16, &forged, TIMEOUT_MS, &got, &len), -EINVAL);
	forged = (struct cfshm_slot){ .index = 8, .key = keybase + 8, .shmid = moved };
	cr_assert_eq(cfshm_read_fits(keybase, 16, &forged, TIMEOUT_MS, &got, &len), -EINVAL);
	forged = (struct cfshm_slot){ .index = 20, .key = keybase + 8, .shmid = moved };
	cr_assert_eq(cfshm_read_fits(keybase, 16, &forged, TIMEOUT_MS, &got, &len), -EINVAL);
	shmdt(keep);
	shmdt(t);
}

Test(cfshm, short_table)
{
	/* a table segment smaller than MAXSEG entries: only whole entries count */
	int tid;
	unsigned char *t = make_table(ENTRY + 20, &tid);
	int id = make_segment(keybase + 1, 0, 16384, 10);
	entry(t, 0, keybase + 1, id, 26);
	memset(t + ENTRY, 0, 20);
	struct cfshm_slot slots[16];
	cr_assert_eq(cfshm_slots(keybase, 16, slots, 16), 1);
	struct cfshm_slot beyond = { .index = 1, .key = keybase + 1, .shmid = id };
	unsigned char *got;
	uint64_t len;
	cr_assert_eq(cfshm_read_fits(keybase, 16, &beyond, TIMEOUT_MS, &got, &len), -ENOENT);
	shmdt(t);
}

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 11);
}

Test(cfshm, random_tables_never_mislead, .timeout = 120)
{
	/* real segments of several sizes and headers, and a table rewritten
	 * with random entries that often point at them: whatever is listed
	 * is a segment that really holds what the entry says, and reads back */
	int tid;
	unsigned char *t = make_table(16 * ENTRY, &tid);
	enum { NSEG = 8 };
	int ids[NSEG];
	key_t keys[NSEG];
	size_t sizes[NSEG] = { 4096, 16384, 16384, 32768, 1, 24, 25, 65536 };
	for (int i = 0; i < NSEG; i++) {
		keys[i] = keybase + 100 + i;
		int index = i * 2 % 16;
		ids[i] = make_segment(keys[i], index, sizes[i], sizes[i] > 24 ? sizes[i] - 24 : 0);
	}
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int listed = 0;
	for (int round = 0; round < 3000; round++) {
		for (int i = 0; i < 16; i++) {
			uint32_t r = rnd(&seed);
			int s = i % 2 == 0 && rnd(&seed) % 2 ? i / 2 : (int)(rnd(&seed) % NSEG);
			int32_t key = r % 4 == 0 ? -1 : r % 4 == 1 ? (int32_t)rnd(&seed) : keys[s];
			int32_t handle = r % 8 < 6 ? ids[r % 3 == 0 ? (s + 1) % NSEG : s]
						 : (int32_t)rnd(&seed);
			int32_t extremes[] = { INT32_MAX, INT32_MIN, 16, 15, 17, 24, 40,
					       (int32_t)sizes[s] - 8, (int32_t)sizes[s] - 7,
					       (int32_t)rnd(&seed) };
			int32_t size = extremes[rnd(&seed) % 10];
			entry(t, i, key, handle, size);
			if (rnd(&seed) % 16 == 0) /* plain garbage */
				for (int b = 0; b < ENTRY; b++)
					t[i * ENTRY + b] = (unsigned char)rnd(&seed);
		}
		struct cfshm_slot slots[16];
		int n = cfshm_slots(keybase, 16, slots, 16);
		cr_assert_geq(n, 0);
		for (int k = 0; k < n; k++) {
			struct shmid_ds ds;
			cr_assert_eq(shmctl(slots[k].shmid, IPC_STAT, &ds), 0);
			cr_assert_eq(ds.shm_perm.__key, slots[k].key);
			cr_assert_geq(ds.shm_segsz, 24 + slots[k].fits_size);
			unsigned char *got;
			uint64_t len;
			cr_assert_eq(cfshm_read_fits(keybase, 16, &slots[k], 0, &got, &len), 0);
			cr_assert_eq(len, slots[k].fits_size);
			for (uint64_t b = 0; b < len; b += 997)
				cr_assert_eq(got[b], (unsigned char)(b * 7 + (uint64_t)slots[k].index));
			free(got);
			listed++;
		}
	}
	cr_assert_gt(listed, 100, "the random tables should sometimes be right (%d)", listed);
	shmdt(t);
}

/* ---- deleting files and clearing stale slots ---- */

static void entry_sem(unsigned char *table, int i, int32_t sem, int32_t semkey)
{
	put32(table, (size_t)i * ENTRY, sem);
	put32(table, (size_t)i * ENTRY + 4, semkey);
}

/* A semaphore of one, KEY, holding VALUE. Returns its id. */
static int make_semaphore(key_t key, int value)
{
	int id = semget(key, 1, IPC_CREAT | IPC_EXCL | 0666);
	cr_assert_geq(id, 0, "semget: %s", strerror(errno));
	cr_assert_eq(semctl(id, 0, SETVAL, value), 0);
	return id;
}

static int semaphore_exists(int id)
{
	return semctl(id, 0, GETVAL) >= 0;
}

static struct cfshm_entry table_entry(int slot)
{
	struct cfshm_entry *all, e;
	int n = cfshm_entries(keybase, 16, &all);
	cr_assert_gt(n, slot, "table of %d entries", n);
	e = all[slot];
	free(all);
	return e;
}

/* A file CFITSIO made: its segment and its semaphore are there. */
static struct cfshm_entry expect_cfitsio_file(int slot)
{
	struct cfshm_entry e = table_entry(slot);
	cr_assert_neq(e.key, -1);
	cr_assert_eq(shmget(e.key, 0, 0), e.handle);
	cr_assert_eq(semget(e.semkey, 0, 0), e.sem);
	cr_assert_eq(cfshm_entry_gone(&e), 0);
	return e;
}

/* Slot SLOT is free, its file's segment and semaphore gone, as CFITSIO's
 * shared_clear_entry leaves an entry. */
static void expect_freed(int slot, const struct cfshm_entry *was)
{
	struct cfshm_entry e = table_entry(slot);
	cr_assert(e.key == -1 && e.handle == -1 && e.sem == -1 && e.semkey == -1 && e.size == 0);
	cr_assert_lt(shmctl(was->handle, IPC_STAT, &(struct shmid_ds){ 0 }), 0);
	cr_assert_lt(shmget(was->key, 0, 0), 0);
	cr_assert_eq(semaphore_exists(was->sem), 0);
}

/* The bytes of entry SLOT that CFITSIO writes (not the padding after attr). */
static void table_bytes(int slot, unsigned char out[25])
{
	int id = shmget(keybase, 0, 0);
	cr_assert_geq(id, 0);
	unsigned char *t = shmat(id, NULL, SHM_RDONLY);
	cr_assert_neq(t, (void *)-1);
	memcpy(out, t + slot * ENTRY, 25);
	shmdt(t);
}

Test(cfshm, delete_as_cfitsio_does)
{
	cf_make_in_child(3, 10, 20, FLOAT_IMG, 0);
	cf_make_in_child(4, 300, 300, SHORT_IMG, 0); /* moved past its first granule */
	cf_make_in_child(5, 10, 20, FLOAT_IMG, 0);
	for (int slot = 3; slot <= 4; slot++) {
		struct cfshm_entry was = expect_cfitsio_file(slot);
		cr_assert_eq(cfshm_delete(keybase, 16, slot), 0);
		expect_freed(slot, &was);
		cr_assert_eq(cfshm_delete(keybase, 16, slot), -ENOENT);
	}
	/* the entry left is byte for byte the one fits_delete_file leaves */
	unsigned char ours[25], theirs[25];
	table_bytes(3, ours);
	cf_change_in_child(5, cf_delete);
	table_bytes(5, theirs);
	cr_assert(memcmp(ours, theirs, sizeof ours) == 0);
	struct cfshm_slot slots[16];
	cr_assert_eq(cfshm_slots(keybase, 16, slots, 16), 0);
	/* and CFITSIO takes the slot again */
	cf_make_in_child(3, 4, 4, BYTE_IMG, 0);
	cr_assert_eq(cfshm_slots(keybase, 16, slots, 16), 1);
	expect_same_as_imcopy(&slots[0]);
}

Test(cfshm, delete_waits_for_no_one)
{
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	int modes[] = { READONLY, READWRITE };
	for (int i = 0; i < 2; i++) {
		pid_t holder = cf_hold(2, modes[i], 600);
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		cr_assert_eq(cfshm_delete(keybase, 16, 2), -EBUSY);
		cr_assert_eq(cfshm_clear_stale(keybase, 16, 2), -EBUSY);
		cr_assert_lt(elapsed_ms(&t0), 400, "did not wait for the lock");
		reap(holder);
		expect_cfitsio_file(2);
	}
	struct cfshm_entry was = expect_cfitsio_file(2);
	cr_assert_eq(cfshm_delete(keybase, 16, 2), 0);
	expect_freed(2, &was);
}

Test(cfshm, delete_refusals)
{
	cr_assert_eq(cfshm_delete(keybase, 16, 0), -ENOENT, "no table");
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 0), -ENOENT, "no table");
	int tid;
	unsigned char *t = make_table(16 * ENTRY, &tid);
	free_entries(t, 16);
	int indexes[] = { -1, 16, INT32_MAX, 0 /* free */ };
	for (size_t i = 0; i < sizeof indexes / sizeof *indexes; i++) {
		cr_assert_eq(cfshm_delete(keybase, 16, indexes[i]), -ENOENT);
		cr_assert_eq(cfshm_clear_stale(keybase, 16, indexes[i]), -ENOENT);
	}
	cr_assert_eq(cfshm_delete(keybase, 0, 0), -EINVAL);
	cr_assert_eq(cfshm_clear_stale(keybase, CFSHM_MAXSEG_LIMIT + 1, 0), -EINVAL);
	/* entries naming segments that are not their files: the table itself,
	 * another slot's file, a segment too small for the size, a
	 * nonsense size; nothing is removed, the entry stays */
	int other = make_segment(keybase + 1, 7, 16384, 100);
	int small = make_segment(keybase + 2, 3, 4096, 100);
	entry(t, 1, keybase, tid, 16);
	entry(t, 2, keybase + 1, other, 116);
	entry(t, 3, keybase + 2, small, 8192);
	entry(t, 4, keybase + 1, other, 3);
	for (int slot = 1; slot <= 4; slot++) {
		unsigned char before[ENTRY];
		memcpy(before, t + slot * ENTRY, ENTRY);
		cr_assert_eq(cfshm_delete(keybase, 16, slot), -EINVAL, "h%d", slot);
		cr_assert_eq(cfshm_clear_stale(keybase, 16, slot), -EEXIST, "h%d", slot);
		cr_assert(memcmp(before, t + slot * ENTRY, ENTRY) == 0);
	}
	struct shmid_ds ds;
	cr_assert_eq(shmctl(tid, IPC_STAT, &ds), 0);
	cr_assert_eq(shmctl(other, IPC_STAT, &ds), 0);
	cr_assert_eq(shmctl(small, IPC_STAT, &ds), 0);
	/* a semaphore not the entry's (another key) is not removed */
	int good = make_segment(keybase + 3, 5, 16384, 100);
	int stranger = make_semaphore(keybase + 40, 0);
	entry(t, 5, keybase + 3, good, 116);
	entry_sem(t, 5, stranger, keybase + 41);
	cr_assert_eq(cfshm_delete(keybase, 16, 5), 0);
	cr_assert_lt(shmctl(good, IPC_STAT, &ds), 0);
	cr_assert(semaphore_exists(stranger));
	shmdt(t);
}

Test(cfshm, entries_as_they_stand)
{
	struct cfshm_entry *all = (void *)1;
	cr_assert_eq(cfshm_entries(keybase, 16, &all), 0, "no table");
	cr_assert_null(all);
	cr_assert_eq(cfshm_entries(keybase, 0, &all), -EINVAL);
	int tid;
	unsigned char *t = make_table(16 * ENTRY, &tid);
	free_entries(t, 16);
	entry(t, 2, 0x1234, 7, 99);
	entry_sem(t, 2, 11, 0x4321);
	cr_assert_eq(cfshm_entries(keybase, 16, &all), 16);
	cr_assert_eq(all[2].index, 2);
	cr_assert(all[2].key == 0x1234 && all[2].handle == 7 && all[2].size == 99);
	cr_assert(all[2].sem == 11 && all[2].semkey == 0x4321);
	cr_assert_eq(all[15].key, -1);
	cr_assert_eq(all[15].index, 15);
	free(all);
	cr_assert_eq(cfshm_entries(keybase, 3, &all), 3, "MAXSEG bounds");
	free(all);
	struct cfshm_entry e;
	cr_assert_eq(cfshm_raw_entry(t, 16 * ENTRY, 15, &e), 0);
	cr_assert_eq(cfshm_raw_entry(t, 16 * ENTRY - 1, 15, &e), -ERANGE);
	cr_assert_eq(cfshm_raw_entry(t, 16 * ENTRY, -1, &e), -ERANGE);
	shmdt(t);
	/* a table shorter than its slot count: whole entries only */
	cr_assert_eq(shmctl(tid, IPC_RMID, NULL), 0);
	t = make_table(2 * ENTRY + 27, &tid);
	cr_assert_eq(cfshm_entries(keybase, 16, &all), 2);
	free(all);
	cr_assert_eq(cfshm_delete(keybase, 16, 2), -ENOENT, "the cut entry");
	shmdt(t);
}

Test(cfshm, entry_gone)
{
	struct cfshm_entry e = { .key = -1, .handle = 5 };
	cr_assert_eq(cfshm_entry_gone(&e), 0, "free");
	int id = make_segment(keybase + 1, 0, 4096, 10);
	e = (struct cfshm_entry){ .key = keybase + 1, .handle = id };
	cr_assert_eq(cfshm_entry_gone(&e), 0, "there");
	e.handle = -3;
	cr_assert_eq(cfshm_entry_gone(&e), 0, "no handle");
	e = (struct cfshm_entry){ .key = keybase + 2, .handle = id };
	cr_assert_eq(cfshm_entry_gone(&e), 1, "another key");
	e = (struct cfshm_entry){ .key = keybase + 1, .handle = id };
	void *keep = shmat(id, NULL, SHM_RDONLY);
	cr_assert_eq(shmctl(id, IPC_RMID, NULL), 0);
	cr_assert_eq(cfshm_entry_gone(&e), 1, "marked for removal");
	shmdt(keep);
	cr_assert_eq(cfshm_entry_gone(&e), 1, "removed");
}

Test(cfshm, clear_stale_slots)
{
	int tid;
	unsigned char *t = make_table(16 * ENTRY, &tid);
	free_entries(t, 16);
	int live = make_segment(keybase + 1, 1, 16384, 100);
	entry(t, 1, keybase + 1, live, 116);
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 1), -EEXIST);
	/* gone, with its semaphore at 0 (nobody attached), at 1, and none */
	int gone = make_segment(keybase + 2, 2, 16384, 100);
	cr_assert_eq(shmctl(gone, IPC_RMID, NULL), 0);
	int idle = make_semaphore(keybase + 20, 0), counted = make_semaphore(keybase + 21, 1);
	entry(t, 2, keybase + 2, gone, 116);
	entry_sem(t, 2, idle, keybase + 20);
	entry(t, 3, keybase + 3, gone, 116);
	entry_sem(t, 3, counted, keybase + 21);
	entry(t, 4, keybase + 4, gone, 116);
	entry_sem(t, 4, -1, -1);
	struct cfshm_entry *all;
	cr_assert_eq(cfshm_entries(keybase, 16, &all), 16);
	cr_assert(cfshm_entry_gone(&all[2]) && cfshm_entry_gone(&all[3]));
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 2), 0);
	expect_freed(2, &all[2]);
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 3), -EBUSY);
	cr_assert(semaphore_exists(counted));
	cr_assert_eq(table_entry(3).key, keybase + 3);
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 4), 0);
	cr_assert_eq(table_entry(4).key, -1);
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 4), -ENOENT);
	free(all);
	shmdt(t);
}

Test(cfshm, clear_a_file_whose_segment_vanished)
{
	cf_make_in_child(6, 10, 20, FLOAT_IMG, 0);
	struct cfshm_entry was = expect_cfitsio_file(6);
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 6), -EEXIST);
	cr_assert_eq(shmctl(was.handle, IPC_RMID, NULL), 0);
	cr_assert_eq(cfshm_clear_stale(keybase, 16, 6), 0);
	expect_freed(6, &was);
	cf_make_in_child(6, 3, 3, BYTE_IMG, 0);
	expect_cfitsio_file(6);
}

/* ---- the image in a FITS header (no IPC) ---- */

TestSuite(cfshm_image);

/* CARDS (up to NULL), each padded to 80 columns, then END when END is set,
 * in a buffer of exactly *LEN bytes: a read past it is caught. */
static char *header(size_t *len, int end, const char *const *cards)
{
	size_t n = 0;
	while (cards[n])
		n++;
	*len = (n + (end ? 1 : 0)) * 80;
	char *h = malloc(*len ? *len : 1);
	cr_assert_not_null(h);
	memset(h, ' ', *len);
	for (size_t i = 0; i < n; i++)
		memcpy(h + i * 80, cards[i], strnlen(cards[i], 80));
	if (end)
		memcpy(h + n * 80, "END", 3);
	return h;
}

#define SIMPLE "SIMPLE  =                    T"
#define CARDS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* cfshm_image_info on CARDS and END; *TYPE, *NAXIS and DIMS as it leaves them. */
static int info(const char *const *cards, enum elem_type *type, int *naxis, uint64_t *dims)
{
	size_t len;
	char *h = header(&len, 1, cards);
	*type = ELEM_NONE;
	*naxis = -7;
	for (int i = 0; i < CFSHM_IMAGE_MAX_AXES; i++)
		dims[i] = 77;
	int rc = cfshm_image_info(h, len, type, naxis, dims);
	if (rc < 0)
		cr_assert(*type == ELEM_NONE && *naxis == -7 && dims[0] == 77, "touched on failure");
	free(h);
	return rc;
}

/* The type of a 2-axis image of BITPIX, with BZERO and BSCALE cards (NULL:
 * none), or ELEM_NONE when refused. */
static enum elem_type type_of(const char *bitpix, const char *bzero, const char *bscale)
{
	char cards[3][81];
	snprintf(cards[0], sizeof cards[0], "BITPIX  = %20s", bitpix);
	snprintf(cards[1], sizeof cards[1], "BZERO   = %20s / offset", bzero ? bzero : "");
	snprintf(cards[2], sizeof cards[2], "BSCALE  = %20s", bscale ? bscale : "");
	const char *list[8] = { SIMPLE, cards[0], "NAXIS   =                    2",
				"NAXIS1  =                   10", "NAXIS2  =                   20" };
	int n = 5;
	if (bzero)
		list[n++] = cards[1];
	if (bscale)
		list[n++] = cards[2];
	enum elem_type type;
	int naxis;
	uint64_t dims[CFSHM_IMAGE_MAX_AXES];
	if (info(list, &type, &naxis, dims) < 0)
		return ELEM_NONE;
	cr_assert(naxis == 2 && dims[0] == 10 && dims[1] == 20);
	return type;
}

Test(cfshm_image, every_bitpix_and_bzero)
{
	static const struct {
		const char *bitpix, *bzero, *bscale;
		enum elem_type want;
	} cases[] = {
		{ "8", NULL, NULL, ELEM_U8 },
		{ "8", "0", "1", ELEM_U8 },
		{ "8", "-128", NULL, ELEM_I8 },
		{ "8", "-1.28E2", "1.0", ELEM_I8 },
		{ "8", "32768", NULL, ELEM_F32 },
		{ "8", "1", NULL, ELEM_F32 },
		{ "8", NULL, "2", ELEM_F32 },
		{ "16", NULL, NULL, ELEM_I16 },
		{ "16", "32768", NULL, ELEM_U16 },
		{ "16", "3.2768D4", NULL, ELEM_U16 },
		{ "16", "32768.0", "1.", ELEM_U16 },
		{ "16", "-32768", NULL, ELEM_F32 },
		{ "16", "32768", "0.5", ELEM_F32 },
		{ "16", "0.0", "1.5", ELEM_F32 },
		{ "32", NULL, NULL, ELEM_I32 },
		{ "32", "2147483648", NULL, ELEM_U32 },
		{ "32", "2.147483648E+09", NULL, ELEM_U32 },
		{ "32", "-128", NULL, ELEM_F32 },
		{ "32", "32768", NULL, ELEM_F32 },
		{ "64", NULL, NULL, ELEM_I64 },
		{ "64", "9223372036854775808", NULL, ELEM_U64 },
		{ "64", "9.223372036854775808E18", NULL, ELEM_U64 },
		{ "64", "2147483648", NULL, ELEM_F32 },
		{ "64", NULL, "1E-3", ELEM_F32 },
		{ "-32", NULL, NULL, ELEM_F32 },
		{ "-32", "5", "2", ELEM_F32 },
		{ "-64", NULL, NULL, ELEM_F64 },
		{ "-64", "32768", "3", ELEM_F64 },
		{ "+16", NULL, NULL, ELEM_I16 },
		{ "16.", NULL, NULL, ELEM_I16 },
		{ "1.6E1", NULL, NULL, ELEM_I16 },
		{ "-3.2D1", NULL, NULL, ELEM_F32 },
		/* refused */
		{ "0", NULL, NULL, ELEM_NONE },
		{ "12", NULL, NULL, ELEM_NONE },
		{ "-16", NULL, NULL, ELEM_NONE },
		{ "128", NULL, NULL, ELEM_NONE },
		{ "16.5", NULL, NULL, ELEM_NONE },
		{ "1e400", NULL, NULL, ELEM_NONE },
		{ "'16'", NULL, NULL, ELEM_NONE },
		{ "T", NULL, NULL, ELEM_NONE },
		{ "", NULL, NULL, ELEM_NONE },
		{ "16", "'32768'", NULL, ELEM_NONE },
		{ "16", NULL, "nan", ELEM_NONE },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		enum elem_type got = type_of(cases[i].bitpix, cases[i].bzero, cases[i].bscale);
		cr_assert_eq(got, cases[i].want, "BITPIX %s BZERO %s BSCALE %s: %d, not %d",
			     cases[i].bitpix, cases[i].bzero ? cases[i].bzero : "-",
			     cases[i].bscale ? cases[i].bscale : "-", got, cases[i].want);
	}
}

/* NAXIS1's value text V: the size it gives, or 0 when refused. */
static uint64_t axis_of(const char *v)
{
	char card[81];
	snprintf(card, sizeof card, "NAXIS1  = %s", v);
	enum elem_type type;
	int naxis;
	uint64_t dims[CFSHM_IMAGE_MAX_AXES];
	if (info(CARDS(SIMPLE, "BITPIX  =                  -32", "NAXIS   =                    1",
		       card), &type, &naxis, dims) < 0)
		return 0;
	cr_assert_eq(naxis, 1);
	cr_assert_eq(type, ELEM_F32);
	return dims[0];
}

Test(cfshm_image, numbers_and_huge_axes)
{
	static const struct {
		const char *text;
		uint64_t want;
	} cases[] = {
		{ "512", 512 }, { "                 512 / pixels", 512 }, { "+512", 512 },
		{ "512.", 512 }, { "512.000", 512 }, { "5.12E2", 512 }, { "5.12e+2", 512 },
		{ "5.12D2", 512 }, { "51200E-2", 512 }, { "0000000000000000000000512", 512 },
		{ "512/", 512 }, { "1", 1 },
		{ "9000000000000000", 9000000000000000ull }, { "9E15", 9000000000000000ull },
		/* refused */
		{ "9000000000000001", 0 }, { "1E16", 0 }, { "1E400", 0 }, { "1E99999999", 0 },
		{ "99999999999999999999999999999999", 0 }, { "0", 0 }, { "-5", 0 },
		{ "1E-400", 0 }, { "512.5", 0 }, { "0x200", 0 }, { "inf", 0 }, { "nan", 0 },
		{ "", 0 }, { "512 pixels", 0 }, { "512E", 0 }, { "5.1.2", 0 }, { ".", 0 },
		{ "--512", 0 }, { "'512'", 0 }, { "512,", 0 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		cr_assert_eq(axis_of(cases[i].text), cases[i].want, "NAXIS1 = %s: %llu",
			     cases[i].text, (unsigned long long)axis_of(cases[i].text));
	/* a number filling the field to column 80 */
	char full[71];
	memset(full, ' ', 70);
	memcpy(full + 67, "512", 3);
	full[70] = '\0';
	cr_assert_eq(axis_of(full), 512);
}

Test(cfshm_image, axes)
{
	enum elem_type type;
	int naxis;
	uint64_t dims[CFSHM_IMAGE_MAX_AXES];
	cr_assert_eq(info(CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 8", "NAXIS1  = 1",
				"NAXIS2  = 2", "NAXIS3  = 3", "NAXIS4  = 4", "NAXIS5  = 5",
				"NAXIS6  = 6", "NAXIS7  = 7", "NAXIS8  = 8"),
			  &type, &naxis, dims), 0);
	cr_assert_eq(naxis, 8);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(dims[i], (uint64_t)i + 1);
	/* axes beyond NAXIS, cards in any order, comments and others between */
	cr_assert_eq(info(CARDS(SIMPLE, "NAXIS2  = 7", "COMMENT NAXIS1 = 99", "NAXIS1  = 5",
				"HISTORY", "NAXIS3  = 0", "NAXIS   = 2", "BITPIX  = 16",
				"NAXIS1  = 6 / a second one does not count", "NAXIS12 = 4"),
			  &type, &naxis, dims), 0);
	cr_assert(naxis == 2 && dims[0] == 5 && dims[1] == 7 && type == ELEM_I16);
	const char *const *refused[] = {
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 0"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 9", "NAXIS1  = 1", "NAXIS2  = 1",
		      "NAXIS3  = 1", "NAXIS4  = 1", "NAXIS5  = 1", "NAXIS6  = 1", "NAXIS7  = 1",
		      "NAXIS8  = 1", "NAXIS9  = 1"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 3", "NAXIS1  = 1", "NAXIS2  = 1"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = 0"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 1", "NAXIS1    = 5"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 1", "NAXIS1   5"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = -1"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 1.5", "NAXIS1  = 1"),
		CARDS(SIMPLE, "NAXIS   = 1", "NAXIS1  = 1"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS1  = 1"),
		CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 'one'", "NAXIS1  = 1"),
		CARDS("XTENSION= 'IMAGE   '", "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = 1"),
		CARDS("SIMPLE  =T", "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = 1"),
		CARDS(" SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = 1"),
	};
	for (size_t i = 0; i < sizeof refused / sizeof *refused; i++)
		cr_assert_eq(info(refused[i], &type, &naxis, dims), -EINVAL, "case %zu", i);
}

Test(cfshm_image, truncated_or_without_end)
{
	const char *const *cards = CARDS(SIMPLE, "BITPIX  = 16", "NAXIS   = 2", "NAXIS1  = 3",
					 "NAXIS2  = 4", "BZERO   = 32768");
	size_t len;
	char *h = header(&len, 1, cards);
	enum elem_type type;
	int naxis;
	uint64_t dims[CFSHM_IMAGE_MAX_AXES];
	cr_assert_eq(cfshm_image_info(h, len, &type, &naxis, dims), 0);
	cr_assert_eq(type, ELEM_U16);
	/* every shorter length, in a buffer of exactly that length */
	for (size_t cut = 0; cut < len; cut++) {
		char *part = malloc(cut ? cut : 1);
		memcpy(part, h, cut);
		cr_assert_eq(cfshm_image_info(part, cut, &type, &naxis, dims), -EINVAL, "%zu", cut);
		free(part);
	}
	/* bytes after END (the rest of a block, the data) are not looked at */
	char *more = malloc(len + 2880);
	memcpy(more, h, len);
	memset(more + len, 'x', 2880);
	cr_assert_eq(cfshm_image_info(more, len + 2880, &type, &naxis, dims), 0);
	free(more);
	free(h);
	/* no END at all, and END not on a card's start */
	h = header(&len, 0, cards);
	cr_assert_eq(cfshm_image_info(h, len, &type, &naxis, dims), -EINVAL);
	free(h);
	h = header(&len, 0, CARDS(SIMPLE, "BITPIX  = 8", "NAXIS   = 1", "NAXIS1  = 1",
				  "COMMENT END"));
	cr_assert_eq(cfshm_image_info(h, len, &type, &naxis, dims), -EINVAL);
	free(h);
}

/* The header at the front of shmem://hSLOT, as cfshm_read_fits copies it. */
static int info_of_slot(int slot, enum elem_type *type, int *naxis, uint64_t *dims)
{
	struct cfshm_slot all[16];
	int n = cfshm_slots(keybase, 16, all, 16);
	for (int i = 0; i < n; i++) {
		if (all[i].index != slot)
			continue;
		unsigned char *fits;
		uint64_t len;
		cr_assert_eq(cfshm_read_fits(keybase, 16, &all[i], TIMEOUT_MS, &fits, &len), 0);
		int rc = cfshm_image_info(fits, (size_t)len, type, naxis, dims);
		free(fits);
		return rc;
	}
	cr_assert_fail("no h%d", slot);
	return -ENOENT;
}

Test(cfshm, image_info_of_cfitsio_files)
{
	static const struct {
		int bitpix;
		enum elem_type want;
	} cases[] = {
		{ BYTE_IMG, ELEM_U8 }, { SBYTE_IMG, ELEM_I8 }, { SHORT_IMG, ELEM_I16 },
		{ USHORT_IMG, ELEM_U16 }, { LONG_IMG, ELEM_I32 }, { ULONG_IMG, ELEM_U32 },
		{ LONGLONG_IMG, ELEM_I64 }, { ULONGLONG_IMG, ELEM_U64 }, { FLOAT_IMG, ELEM_F32 },
		{ DOUBLE_IMG, ELEM_F64 },
	};
	for (int i = 0; i < (int)(sizeof cases / sizeof *cases); i++) {
		cf_make_in_child(i, 3 + i, 5, cases[i].bitpix, 0);
		enum elem_type type;
		int naxis;
		uint64_t dims[CFSHM_IMAGE_MAX_AXES];
		cr_assert_eq(info_of_slot(i, &type, &naxis, dims), 0, "h%d", i);
		cr_assert_eq(type, cases[i].want, "BITPIX %d: %d", cases[i].bitpix, type);
		cr_assert(naxis == 2 && dims[0] == (uint64_t)(3 + i) && dims[1] == 5);
	}
}

Test(cfshm_image, garbage, .timeout = 120)
{
	/* cards drawn from the keywords read, with values of every kind, in
	 * exact-size buffers: whatever is accepted is within the contract */
	static const char *const names[] = { "SIMPLE  ", "BITPIX  ", "NAXIS   ", "NAXIS1  ",
					     "NAXIS2  ", "NAXIS8  ", "NAXIS9  ", "BZERO   ",
					     "BSCALE  ", "END     ", "COMMENT ", "NAXIS   " };
	static const char *const values[] = { "8", "16", "-32", "-64", "64", "32", "2", "1",
					      "0", "-1", "9E15", "1E300", "32768", "-128",
					      "2.5", "'x'", "T", "", "3.2768D4", "1.0E", "7 / c" };
	uint64_t seed = 0x243f6a8885a308d3ull;
	int accepted = 0;
	for (int round = 0; round < 200000; round++) {
		int ncards = 1 + (int)(rnd(&seed) % 12);
		size_t len = (size_t)ncards * 80 - (rnd(&seed) % 4 == 0 ? rnd(&seed) % 80 : 0);
		char *h = malloc(len);
		for (int c = 0; c < ncards; c++) {
			char card[81];
			const char *name = c == 0 && rnd(&seed) % 8 ? "SIMPLE  " : names[rnd(&seed) % 12];
			snprintf(card, sizeof card, "%s%s%-70s", name, rnd(&seed) % 16 ? "= " : "  ",
				 values[rnd(&seed) % (sizeof values / sizeof *values)]);
			if (rnd(&seed) % 32 == 0) /* a byte of noise */
				card[rnd(&seed) % 80] = (char)rnd(&seed);
			memcpy(h + c * 80, card, (size_t)c * 80 + 80 <= len ? 80 : len - (size_t)c * 80);
		}
		enum elem_type type;
		int naxis;
		uint64_t dims[CFSHM_IMAGE_MAX_AXES];
		if (cfshm_image_info(h, len, &type, &naxis, dims) == 0) {
			accepted++;
			cr_assert(naxis >= 1 && naxis <= CFSHM_IMAGE_MAX_AXES);
			cr_assert(type >= ELEM_U8 && type <= ELEM_F64);
			for (int i = 0; i < naxis; i++)
				cr_assert(dims[i] >= 1 && dims[i] <= 9000000000000000ull);
		}
		free(h);
	}
	cr_assert_gt(accepted, 10, "some garbage is an image (%d)", accepted);
}
