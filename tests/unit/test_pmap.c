/* test_pmap.c - unit tests of core/pmap on a file in a fresh directory under
 * /dev/shm: clamped and live reads, growth and shrink while mapped, writes, resize. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pmap.h"

#define MiB ((off_t)1 << 20)

/* The fixture: a directory of the test's own and one object in it. The
 * pmap owns PM_FD; OTHER is a second descriptor, as another process would
 * have. Teardown runs even when an assertion failed. */
static char dir[64];
static char path[96];
static struct pmap pm;
static int pm_live;
static int other = -1;

static unsigned char pattern(off_t i)
{
	return (unsigned char)(i ^ (i >> 8) ^ (i >> 16) ^ 0x5a);
}

static void fill_pattern(int fd, off_t off, size_t len)
{
	unsigned char *buf = malloc(len);
	cr_assert_not_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(off + (off_t)i);
	cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	free(buf);
}

static void setup(void)
{
	snprintf(dir, sizeof dir, "/dev/shm/shmfs-unit-pmap-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/obj", dir);
	other = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(other, 0, "open %s: %s", path, strerror(errno));
}

static void teardown(void)
{
	if (pm_live)
		pmap_destroy(&pm);
	pm_live = 0;
	if (other >= 0)
		close(other);
	other = -1;
	unlink(path);
	rmdir(dir);
}

/* Open the object again for the pmap, FLAGS O_RDONLY or O_RDWR. */
static void open_pmap(int flags)
{
	int fd = open(path, flags);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pmap_init(&pm, fd), 0);
	pm_live = 1;
}

/* Read [off, off+len) through the pmap; assert the count and the bytes. */
static void expect_read(off_t off, size_t len, size_t want_n)
{
	unsigned char *buf = malloc(len ? len : 1);
	cr_assert_not_null(buf);
	ssize_t n = pmap_read(&pm, buf, len, off);
	cr_assert_eq(n, (ssize_t)want_n, "read %zu at %lld: got %zd, want %zu", len,
		     (long long)off, n, want_n);
	for (size_t i = 0; i < want_n; i++)
		cr_assert_eq(buf[i], pattern(off + (off_t)i), "byte at %lld", (long long)off + (long long)i);
	free(buf);
}

static off_t size_of(int fd)
{
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	return st.st_size;
}

TestSuite(pmap, .init = setup, .fini = teardown);

Test(pmap, reads_are_clamped_to_the_size)
{
	fill_pattern(other, 0, 10000);
	open_pmap(O_RDONLY);
	expect_read(0, 100, 100);
	expect_read(1, 4096, 4096);
	expect_read(4095, 2, 2);
	expect_read(0, 10000, 10000);
	expect_read(0, 1 << 20, 10000);
	expect_read(9990, 100, 10);
	expect_read(9999, 1, 1);
	expect_read(10000, 10, 0);
	expect_read(10001, 10, 0);
	expect_read(5 * MiB, 10, 0);
	expect_read(5000, 0, 0);

	char c;
	cr_assert_eq(pmap_read(&pm, &c, 1, -1), -EINVAL);
}

Test(pmap, empty_object_reads_nothing)
{
	open_pmap(O_RDONLY);
	expect_read(0, 10, 0);
	expect_read(4096, 10, 0);
}

/* An object made with ftruncate is sparse. Reading it must not fill it in:
 * read(2) of a tmpfs hole allocates nothing, but a read fault on a shared
 * tmpfs mapping allocates the page, so a reader would make every sparse
 * object cost its full size (and raise SIGBUS on a full tmpfs, see
 * test_pmap_full.c). */
Test(pmap, reading_a_hole_allocates_nothing)
{
	cr_assert_eq(ftruncate(other, 8 * MiB), 0);
	open_pmap(O_RDONLY);
	struct stat st;
	cr_assert_eq(fstat(other, &st), 0);
	blkcnt_t before = st.st_blocks;
	unsigned char buf[4096];
	for (off_t off = 0; off < 8 * MiB; off += MiB)
		cr_assert_eq(pmap_read(&pm, buf, sizeof buf, off), (ssize_t)sizeof buf);
	cr_assert_eq(fstat(other, &st), 0);
	cr_expect_eq(st.st_blocks, before, "reading holes allocated %lld blocks",
		     (long long)(st.st_blocks - before));
}

Test(pmap, read_begin_holds_the_lock_until_end)
{
	fill_pattern(other, 0, 8192);
	open_pmap(O_RDONLY);
	const void *p;
	size_t n;
	cr_assert_eq(pmap_read_begin(&pm, 100, 50, &p, &n), 0);
	cr_assert_eq(n, 50);
	cr_assert_eq(((const unsigned char *)p)[0], pattern(100));
	cr_assert_eq(((const unsigned char *)p)[49], pattern(149));
	cr_assert_eq(pthread_rwlock_trywrlock(&pm.lock), EBUSY, "lock not held");
	pmap_read_end(&pm);
	cr_assert_eq(pthread_rwlock_trywrlock(&pm.lock), 0, "lock still held");
	pthread_rwlock_unlock(&pm.lock);

	/* Past the end: nothing, but the lock is held all the same. */
	cr_assert_eq(pmap_read_begin(&pm, 9000, 10, &p, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(pthread_rwlock_trywrlock(&pm.lock), EBUSY);
	pmap_read_end(&pm);

	/* An error leaves the lock free. */
	cr_assert_eq(pmap_read_begin(&pm, -5, 10, &p, &n), -EINVAL);
	cr_assert_eq(pthread_rwlock_trywrlock(&pm.lock), 0);
	pthread_rwlock_unlock(&pm.lock);
}

Test(pmap, reads_are_live)
{
	fill_pattern(other, 0, 4096);
	open_pmap(O_RDONLY);
	expect_read(0, 4096, 4096);

	char buf[16];
	cr_assert_eq(pwrite(other, "hello, world", 12, 1000), 12);
	cr_assert_eq(pmap_read(&pm, buf, 12, 1000), 12);
	cr_assert_arr_eq(buf, "hello, world", 12);

	cr_assert_eq(pwrite(other, "again", 5, 1002), 5);
	cr_assert_eq(pmap_read(&pm, buf, 12, 1000), 12);
	cr_assert_arr_eq(buf, "heagainworld", 12);
}

Test(pmap, sees_growth_far_beyond_the_first_mapping)
{
	fill_pattern(other, 0, 4096);
	open_pmap(O_RDONLY);
	expect_read(0, 4096, 4096); /* maps about 1 MiB */

	/* Grow by appending, then by a big sparse jump. */
	fill_pattern(other, 4096, 3 * (size_t)MiB);
	expect_read(3 * MiB - 100, 200, 200);
	expect_read(0, 4 * (size_t)MiB, 3 * (size_t)MiB + 4096);

	cr_assert_eq(ftruncate(other, 64 * MiB), 0);
	fill_pattern(other, 64 * MiB - 5000, 5000);
	expect_read(64 * MiB - 5000, 10000, 5000);
	expect_read(64 * MiB, 10, 0);

	unsigned char zero[64];
	cr_assert_eq(pmap_read(&pm, zero, sizeof zero, 40 * MiB), (ssize_t)sizeof zero);
	for (size_t i = 0; i < sizeof zero; i++)
		cr_assert_eq(zero[i], 0, "the hole must read as zeros");
}

Test(pmap, shrink_while_mapped_reads_nothing_past_the_end)
{
	fill_pattern(other, 0, 3 * (size_t)MiB);
	open_pmap(O_RDONLY);
	expect_read(5 * MiB / 2, 4096, 4096); /* the mapping now covers 3 MiB+ */

	cr_assert_eq(ftruncate(other, 4096), 0);
	expect_read(5 * MiB / 2, 4096, 0); /* a SIGBUS here would end the test */
	expect_read(4096, 1, 0);
	expect_read(4000, 200, 96);
	expect_read(0, 3 * (size_t)MiB, 4096);

	cr_assert_eq(ftruncate(other, 0), 0);
	expect_read(0, 10, 0);

	/* Grown back: the old bytes are gone, the pages read as zeros. */
	cr_assert_eq(ftruncate(other, 3 * MiB), 0);
	unsigned char buf[4096];
	cr_assert_eq(pmap_read(&pm, buf, sizeof buf, 5 * MiB / 2), (ssize_t)sizeof buf);
	for (size_t i = 0; i < sizeof buf; i++)
		cr_assert_eq(buf[i], 0);
}

Test(pmap, write_overwrites_and_extends)
{
	fill_pattern(other, 0, 10000);
	open_pmap(O_RDWR);
	expect_read(0, 10000, 10000);

	char buf[32];
	cr_assert_eq(pmap_write(&pm, "ABCDEFGH", 8, 100), 8);
	cr_assert_eq(pmap_read(&pm, buf, 8, 100), 8);
	cr_assert_arr_eq(buf, "ABCDEFGH", 8);
	cr_assert_eq(pread(other, buf, 8, 100), 8, "the write must reach the object");
	cr_assert_arr_eq(buf, "ABCDEFGH", 8);
	expect_read(0, 100, 100);
	expect_read(108, 10000 - 108, 10000 - 108);
	cr_assert_eq(size_of(other), 10000);

	/* Across the end. */
	cr_assert_eq(pmap_write(&pm, "tailtail", 8, 9996), 8);
	cr_assert_eq(size_of(other), 10004);
	cr_assert_eq(pmap_read(&pm, buf, 32, 9996), 8);
	cr_assert_arr_eq(buf, "tailtail", 8);

	/* Far past the end: a hole of zeros, then the bytes. */
	cr_assert_eq(pmap_write(&pm, "far", 3, 5 * MiB), 3);
	cr_assert_eq(size_of(other), 5 * MiB + 3);
	cr_assert_eq(pmap_read(&pm, buf, 32, 5 * MiB - 2), 5);
	cr_assert_arr_eq(buf, "\0\0far", 5);

	cr_assert_eq(pmap_write(&pm, "x", 0, 0), 0, "an empty write");
}

Test(pmap, write_big_buffer)
{
	open_pmap(O_RDWR);
	size_t len = 6 * (size_t)MiB + 123;
	unsigned char *buf = malloc(len);
	cr_assert_not_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern((off_t)i + 77);
	cr_assert_eq(pmap_write(&pm, buf, len, 77), (ssize_t)len);
	free(buf);
	cr_assert_eq(size_of(other), 77 + (off_t)len);
	expect_read(77, len, len);
}

Test(pmap, write_through_read_only_descriptor_fails)
{
	fill_pattern(other, 0, 100);
	open_pmap(O_RDONLY);
	cr_assert_eq(pmap_write(&pm, "zz", 2, 0), -EBADF);
	expect_read(0, 100, 100);
}

Test(pmap, resize_grows_and_shrinks)
{
	fill_pattern(other, 0, 4096);
	open_pmap(O_RDWR);
	expect_read(0, 4096, 4096);

	cr_assert_eq(pmap_resize_fd(pm.fd, 3 * MiB, 0), 0);
	cr_assert_eq(size_of(other), 3 * MiB);
	struct stat st;
	cr_assert_eq(fstat(other, &st), 0);
	cr_assert_lt(st.st_blocks, 3 * MiB / 512, "growing without reserve leaves a hole");
	cr_assert_eq(pmap_resize_fd(pm.fd, 5 * MiB, 1), 0);
	cr_assert_eq(size_of(other), 5 * MiB);
	cr_assert_eq(fstat(other, &st), 0);
	cr_assert_geq(st.st_blocks, 2 * MiB / 512, "growing with reserve reserves the new pages");
	expect_read(0, 4096, 4096);
	unsigned char buf[256];
	cr_assert_eq(pmap_read(&pm, buf, sizeof buf, 5 * MiB - 256), 256);
	for (size_t i = 0; i < sizeof buf; i++)
		cr_assert_eq(buf[i], 0);

	cr_assert_eq(pmap_resize_fd(pm.fd, 5 * MiB, 1), 0, "same size");
	cr_assert_eq(size_of(other), 5 * MiB);

	cr_assert_eq(pmap_resize_fd(other, 100, 0), 0);
	cr_assert_eq(size_of(pm.fd), 100);
	expect_read(0, 4096, 100);

	cr_assert_eq(pmap_resize_fd(other, 0, 0), 0);
	expect_read(0, 10, 0);
}

Test(pmap, resize_refusals)
{
	fill_pattern(other, 0, 100);
	cr_assert_eq(pmap_resize_fd(other, -1, 0), -EINVAL);
	cr_assert_eq(size_of(other), 100);
	cr_assert_eq(pmap_resize_fd(-1, 10, 0), -EBADF);
	int ro = open(path, O_RDONLY);
	cr_assert_geq(ro, 0);
	int rc = pmap_resize_fd(ro, 1 * MiB, 0);
	cr_assert_eq(rc, -EINVAL, "resize through O_RDONLY (ftruncate): %s", strerror(-rc));
	rc = pmap_resize_fd(ro, 1 * MiB, 1);
	close(ro);
	cr_assert_eq(rc, -EBADF, "reserve through O_RDONLY (fallocate): %s", strerror(-rc));
	cr_assert_eq(size_of(other), 100);
}

Test(pmap, destroy_closes_the_descriptor)
{
	fill_pattern(other, 0, 100);
	int fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pmap_init(&pm, fd), 0);
	char c;
	cr_assert_eq(pmap_read(&pm, &c, 1, 0), 1);
	pmap_destroy(&pm);
	cr_assert_eq(fcntl(fd, F_GETFD), -1);
	cr_assert_eq(errno, EBADF);
}

/* Readers on several threads while the object keeps growing (so they keep
 * remapping): every read sees the pattern and none faults. */
struct reader_arg {
	int bad;
	volatile int *stop;
};

static void *reader(void *p)
{
	struct reader_arg *a = p;
	unsigned char buf[512];
	unsigned seed = (unsigned)(uintptr_t)p;
	while (!*a->stop) {
		off_t off = (off_t)(rand_r(&seed) % (16 << 20));
		ssize_t n = pmap_read(&pm, buf, sizeof buf, off);
		if (n < 0)
			a->bad++;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != pattern(off + i))
				a->bad++;
	}
	return NULL;
}

Test(pmap, concurrent_reads_while_growing)
{
	fill_pattern(other, 0, 4096);
	open_pmap(O_RDONLY);
	volatile int stop = 0;
	struct reader_arg args[4];
	pthread_t th[4];
	for (int i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){ .bad = 0, .stop = &stop };
		cr_assert_eq(pthread_create(&th[i], NULL, reader, &args[i]), 0);
	}
	for (off_t off = 4096; off < 16 * MiB; off += MiB / 2)
		fill_pattern(other, off, (size_t)MiB / 2);
	stop = 1;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(args[i].bad, 0, "reader %d saw %d wrong bytes", i, args[i].bad);
	}
}
