/* test_pmap_full.c - unit tests of core/pmap on a full filesystem: a 1 MiB
 * tmpfs mounted in the test's own mount namespace; ENOSPC, never SIGBUS. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pmap.h"

#define MiB ((off_t)1 << 20)

/* The fixture: a 1 MiB tmpfs on a fresh directory, one object "obj" on it
 * held by a pmap (read-write) and by OTHER. The mount lives in a private
 * mount namespace of the test's process, so it cannot outlive the test even
 * if teardown never runs. */
static char dir[64];
static char path[96];
static char path2[96];
static int mounted;
static struct pmap pm;
static int pm_live;
static int other = -1;

static unsigned char pattern(off_t i)
{
	return (unsigned char)(i * 7 + (i >> 12) + 1);
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

/* Assert [off, off+len) of the object holds the pattern, read both through
 * the descriptor and through the pmap. */
static void expect_pattern(off_t off, size_t len)
{
	unsigned char *a = malloc(len), *b = malloc(len);
	cr_assert(a && b);
	cr_assert_eq(pread(other, a, len, off), (ssize_t)len);
	cr_assert_eq(pmap_read(&pm, b, len, off), (ssize_t)len);
	for (size_t i = 0; i < len; i++) {
		cr_assert_eq(a[i], pattern(off + (off_t)i), "pread byte %zu", i);
		cr_assert_eq(b[i], pattern(off + (off_t)i), "pmap_read byte %zu", i);
	}
	free(a);
	free(b);
}

static off_t size_of(int fd)
{
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	return st.st_size;
}

static unsigned long free_blocks(void)
{
	struct statvfs sv;
	cr_assert_eq(statvfs(dir, &sv), 0);
	return (unsigned long)sv.f_bfree;
}

static void setup(void)
{
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "unshare(CLONE_NEWNS): %s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0,
		     "make / private: %s", strerror(errno));
	snprintf(dir, sizeof dir, "/dev/shm/shmfs-unit-full-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	cr_assert_eq(mount("none", dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0700"), 0,
		     "mount tmpfs: %s", strerror(errno));
	mounted = 1;
	snprintf(path, sizeof path, "%s/obj", dir);
	snprintf(path2, sizeof path2, "%s/filler", dir);
	other = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(other, 0, "open %s: %s", path, strerror(errno));
	int fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pmap_init(&pm, fd), 0);
	pm_live = 1;
}

static void teardown(void)
{
	if (pm_live)
		pmap_destroy(&pm);
	pm_live = 0;
	if (other >= 0)
		close(other);
	other = -1;
	if (mounted && umount2(dir, MNT_DETACH) == 0)
		mounted = 0;
	rmdir(dir);
}

/* Use up the rest of the filesystem with another file. */
static void fill_filesystem(void)
{
	int fd = open(path2, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	static char chunk[4096];
	memset(chunk, 0xee, sizeof chunk);
	for (int i = 0; i < 1024; i++)
		if (write(fd, chunk, sizeof chunk) < (ssize_t)sizeof chunk)
			break;
	close(fd);
	cr_assert_lt(free_blocks(), 2, "the filesystem is not full");
}

TestSuite(pmap_full, .init = setup, .fini = teardown);

Test(pmap_full, resize_beyond_space_is_enospc_and_changes_nothing)
{
	fill_pattern(other, 0, 64 * 1024);
	expect_pattern(0, 64 * 1024);
	unsigned long before = free_blocks();

	cr_assert_eq(pmap_resize_fd(pm.fd, 8 * MiB, 1), -ENOSPC);
	cr_assert_eq(size_of(other), 64 * 1024, "the size changed");
	cr_assert_eq(free_blocks(), before, "space stayed reserved after the failure");
	expect_pattern(0, 64 * 1024);
	unsigned char c;
	cr_assert_eq(pmap_read(&pm, &c, 1, 64 * 1024), 0);

	/* A size that fits still works afterwards. */
	cr_assert_eq(pmap_resize_fd(pm.fd, 512 * 1024, 1), 0);
	cr_assert_eq(size_of(other), 512 * 1024);
	expect_pattern(0, 64 * 1024);
}

Test(pmap_full, write_beyond_space_is_short_or_enospc)
{
	fill_pattern(other, 0, 4096);
	expect_pattern(0, 4096);

	size_t len = 2 * (size_t)MiB;
	unsigned char *buf = malloc(len);
	cr_assert_not_null(buf);
	for (size_t i = 0; i < len; i++)
		buf[i] = pattern(4096 + (off_t)i);
	ssize_t w = pmap_write(&pm, buf, len, 4096);
	free(buf);
	cr_assert(w == -ENOSPC || (w >= 0 && (size_t)w < len), "pmap_write returned %zd", w);

	size_t done = w > 0 ? (size_t)w : 0;
	cr_assert_eq(size_of(other), 4096 + (off_t)done);
	expect_pattern(0, 4096 + done);

	/* Full now: a further append fails, an overwrite in place still works. */
	cr_assert_eq(pmap_write(&pm, "more", 4, 4096 + (off_t)done + 8192), -ENOSPC);
	cr_assert_eq(pmap_write(&pm, "\x01\x02", 2, 0), 2);
	unsigned char two[2];
	cr_assert_eq(pmap_read(&pm, two, 2, 0), 2);
	cr_assert(two[0] == 1 && two[1] == 2);
	expect_pattern(2, 4094 + done);
}

Test(pmap_full, resize_on_full_filesystem)
{
	fill_pattern(other, 0, 8192);
	fill_filesystem();
	cr_assert_eq(pmap_resize_fd(pm.fd, 1 * MiB, 1), -ENOSPC);
	cr_assert_eq(size_of(other), 8192);
	expect_pattern(0, 8192);
	cr_assert_eq(pmap_resize_fd(pm.fd, 4096, 1), 0, "shrinking needs no space");
	cr_assert_eq(size_of(other), 4096);
	expect_pattern(0, 4096);
}

Test(pmap_full, resize_without_reserve_is_sparse_as_on_tmpfs)
{
	fill_pattern(other, 0, 8192);
	fill_filesystem();
	/* ftruncate on a full tmpfs succeeds: the new part is a hole. */
	cr_assert_eq(pmap_resize_fd(pm.fd, 1024 * MiB, 0), 0);
	cr_assert_eq(size_of(other), 1024 * MiB);
	expect_pattern(0, 8192);
	unsigned char c = 1;
	cr_assert_eq(pmap_read(&pm, &c, 1, 1000 * MiB), 1);
	cr_assert_eq(c, 0, "a hole reads as zero");
	cr_assert_eq(pmap_resize_fd(pm.fd, 8192, 0), 0);
	expect_pattern(0, 8192);
}

/* shm_open + ftruncate makes a sparse object: its pages do not exist until
 * stored to. Reading such a hole must give zeros, as read(2) does, even on a
 * full tmpfs; a read fault on a shared tmpfs mapping allocates the page and
 * raises SIGBUS when it cannot, which would kill the daemon. The read runs in
 * a child process so that a fault fails this test without skipping teardown. */
static void read_hole_and_exit(void)
{
	unsigned char buf[4096];
	struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core);
	signal(SIGBUS, SIG_DFL); /* die of it, not of the sanitizer's report */
	memset(buf, 0xff, sizeof buf);
	ssize_t n = pmap_read(&pm, buf, sizeof buf, 2 * MiB);
	if (n != (ssize_t)sizeof buf)
		_exit(3);
	for (size_t i = 0; i < sizeof buf; i++)
		if (buf[i] != 0)
			_exit(4);
	_exit(0);
}

Test(pmap_full, reading_a_hole_on_a_full_filesystem)
{
	fill_pattern(other, 0, 4096);
	cr_assert_eq(ftruncate(other, 4 * MiB), 0); /* sparse: costs nothing */
	fill_filesystem();

	unsigned char buf[4096];
	memset(buf, 0xff, sizeof buf);
	cr_assert_eq(pread(other, buf, sizeof buf, 2 * MiB), (ssize_t)sizeof buf);
	cr_assert_eq(buf[0], 0, "read(2) of a hole");

	fflush(NULL);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		read_hole_and_exit();
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "pmap_read of a hole on a full tmpfs: %s",
		  WIFSIGNALED(status) ? strsignal(WTERMSIG(status))
		  : WEXITSTATUS(status) == 3 ? "wrong count" : "wrong bytes");
	expect_pattern(0, 4096);
}
