/* test_cfshm.c - unit tests of core/cfshm: files made by CFITSIO's own
 * shmem:// driver read back byte for byte as `imcopy` gives them, CFITSIO's
 * lock honoured, and hand-made hostile tables and segments refused. */
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
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cfshm.h"

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
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child making h%d failed", slot);
}

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	rewind(f);
	unsigned char *buf = malloc(n ? (size_t)n : 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
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

/* Append an extension to shmem://hSLOT until the file has passed into a new segment. */
static void cf_grow(int slot)
{
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		char url[32];
		snprintf(url, sizeof url, "shmem://h%d", slot);
		fitsfile *f;
		int status = 0;
		fits_open_file(&f, url, READWRITE, &status);
		long naxes[2] = { 100, 100 };
		fits_create_img(f, FLOAT_IMG, 2, naxes, &status);
		float zero[10000] = { 0 };
		fits_write_img(f, TFLOAT, 1, 10000, zero, &status);
		fits_close_file(f, &status);
		_exit(status ? 1 : 0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

Test(cfshm, a_file_that_moved_is_gone_under_its_old_key)
{
	cf_make_in_child(2, 10, 20, FLOAT_IMG, 0);
	struct cfshm_slot before, after;
	cr_assert_eq(cfshm_slots(keybase, 16, &before, 1), 1);
	cf_grow(2);
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
	pid_t pid = fork();
	if (pid == 0) {
		fitsfile *f;
		int status = 0;
		fits_open_file(&f, "shmem://h4", READWRITE, &status);
		long naxes[1] = { 10 };
		fits_create_img(f, BYTE_IMG, 1, naxes, &status);
		fits_close_file(f, &status);
		_exit(status ? 1 : 0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
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
	pid_t pid = fork();
	if (pid == 0) {
		fitsfile *f;
		int status = 0;
		fits_open_file(&f, "shmem://h1", READWRITE, &status);
		fits_delete_file(f, &status);
		_exit(status ? 1 : 0);
	}
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
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

static void reap(pid_t pid)
{
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
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
