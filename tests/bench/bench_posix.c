/* bench_posix.c - the cases on plain files and System V segments: 1 GiB
 * sequential reads and writes, 4 KiB random reads, `ls -l` and stat() of a
 * directory of 10,000 objects, and the daemon's memory over many opens;
 * with the setup and teardown of the objects they use. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

static double seq_read_fd(struct bench *b, const char *path, const char *what)
{
	double t0 = now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("%s: open %s: %s", what, path, strerror(errno));
		return -1;
	}
	size_t done = 0;
	int bad = 0;
	while (done < BIG_SIZE) {
		ssize_t r = read(fd, b->buf, BLOCK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)BLOCK) {
			fail("%s: read %s at %zu: %s", what, path, done,
			     r < 0 ? strerror(errno) : "short read");
			close(fd);
			return -1;
		}
		bad |= stamped(b, b->buf, BLOCK, done, what);
		done += BLOCK;
	}
	close(fd);
	double t = now() - t0;
	return bad ? -1 : t;
}

static double seq_write_fd(struct bench *b, const char *path, const char *what)
{
	double t0 = now();
	int fd = open(path, O_WRONLY | O_CLOEXEC); /* into the existing object: no O_TRUNC */
	if (fd < 0) {
		fail("%s: open %s: %s", what, path, strerror(errno));
		return -1;
	}
	size_t done = 0;
	while (done < BIG_SIZE) {
		stamp(b->buf, BLOCK, done);
		ssize_t w = write(fd, b->buf, BLOCK);
		if (w < 0 && errno == EINTR)
			continue;
		if (w != (ssize_t)BLOCK) {
			fail("%s: write %s at %zu: %s", what, path, done,
			     w < 0 ? strerror(errno) : "short write");
			close(fd);
			return -1;
		}
		done += BLOCK;
	}
	if (close(fd) < 0) {
		fail("%s: close %s: %s", what, path, strerror(errno));
		return -1;
	}
	return now() - t0;
}

double posix_seq_read(struct bench *b, const struct bench_case *c, enum side side)
{
	char path[4096];
	path_of(path, sizeof path, b, c, side, POSIX_NAME);
	return seq_read_fd(b, path, c->name);
}

double posix_seq_write(struct bench *b, const struct bench_case *c, enum side side)
{
	char path[4096];
	path_of(path, sizeof path, b, c, side, POSIX_NAME);
	return seq_write_fd(b, path, c->name);
}

/* Direct System V: memcpy 1 MiB at a time between the segment and the
 * buffer. The segment is attached once for the whole benchmark, as a program
 * that uses shmat keeps it: attaching per run would time page faults (very
 * dear on some virtual machines), not the segment. Through the mount: read()
 * and write() on the segment's file, opened per run. */
double sysv_seq_read(struct bench *b, const struct bench_case *c, enum side side)
{
	if (side == MOUNT) {
		char path[4096];
		sysv_path(path, sizeof path, b, c);
		return seq_read_fd(b, path, c->name);
	}
	double t0 = now();
	int bad = 0;
	for (size_t off = 0; off < BIG_SIZE; off += BLOCK) {
		memcpy(b->buf, b->shm + off, BLOCK);
		clobber(b->buf);
		bad |= stamped(b, b->buf, BLOCK, off, c->name);
	}
	double t = now() - t0;
	return bad ? -1 : t;
}

double sysv_seq_write(struct bench *b, const struct bench_case *c, enum side side)
{
	if (side == MOUNT) {
		char path[4096];
		sysv_path(path, sizeof path, b, c);
		return seq_write_fd(b, path, c->name);
	}
	double t0 = now();
	for (size_t off = 0; off < BIG_SIZE; off += BLOCK) {
		stamp(b->buf, BLOCK, off);
		memcpy(b->shm + off, b->buf, BLOCK);
		clobber(b->shm);
	}
	return now() - t0;
}

/* param reads of 4 KiB at random page-aligned offsets (same offsets every run). */
double random_pread(struct bench *b, const struct bench_case *c, enum side side)
{
	char path[4096];
	path_of(path, sizeof path, b, c, side, POSIX_NAME);
	double t0 = now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("%s: open %s: %s", c->name, path, strerror(errno));
		return -1;
	}
	uint64_t x = RANDOM_SEED;
	int bad = 0;
	for (long i = 0; i < c->param; i++) {
		x ^= x >> 12, x ^= x << 25, x ^= x >> 27; /* xorshift64* */
		uint64_t off = ((x * 0x2545F4914F6CDD1Dull) >> 11) % (BIG_SIZE / PAGE) * PAGE;
		ssize_t r = pread(fd, b->buf, PAGE, (off_t)off);
		if (r != (ssize_t)PAGE) {
			fail("%s: pread %s at %llu: %s", c->name, path, (unsigned long long)off,
			     r < 0 ? strerror(errno) : "short read");
			close(fd);
			return -1;
		}
		bad |= stamped(b, b->buf, PAGE, off, c->name);
	}
	close(fd);
	double t = now() - t0;
	return bad ? -1 : t;
}

/* fork + exec of `ls -l DIR`, output to /dev/null. */
double ls_l(struct bench *b, const struct bench_case *c, enum side side)
{
	char dir[4096];
	path_of(dir, sizeof dir, b, c, side, LS_DIR);
	return run_program(c->name, (const char *[]){"ls", "-l", dir, NULL});
}

/* param stat() calls of one object of the 10,000-object directory. */
double stat_loop(struct bench *b, const struct bench_case *c, enum side side)
{
	char path[4096];
	path_of(path, sizeof path, b, c, side, LS_DIR "/" STAT_NAME);
	struct stat st;
	double t0 = now();
	for (long i = 0; i < c->param; i++)
		if (stat(path, &st) < 0) {
			fail("%s: stat %s: %s", c->name, path, strerror(errno));
			return -1;
		}
	return now() - t0;
}

/* Daemon memory: open and close one file through the mount 10,000 times
 * (read-only and read-write alternately), read the daemon's VmRSS, do it
 * 10,000 times more and read it again. The growth between the two is judged;
 * the first batch lets the daemon reach its working set (threads, arenas). */
static int open_close_batch(const char *path, long count, const char *what)
{
	for (long i = 0; i < count; i++) {
		int fd = open(path, ((i & 1) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
		if (fd < 0) {
			fail("%s: open %s: %s", what, path, strerror(errno));
			return -1;
		}
		close(fd);
	}
	return 0;
}

int daemon_memory(struct bench *b, const struct bench_case *c, struct row *r)
{
	char path[4096];
	if (c->param == 1)
		sysv_path(path, sizeof path, b, c);
	else
		path_of(path, sizeof path, b, c, MOUNT, POSIX_NAME);
	pid_t pid = b->mnt[c->mount].pid;
	if (pid <= 0) {
		fail("%s: no daemon pid given", c->name);
		return -1;
	}
	if (open_close_batch(path, 10000, c->name) < 0)
		return -1;
	long rss1 = proc_status_kib(pid, "VmRSS");
	int fds1 = count_fds(pid);
	long threads1 = proc_status_kib(pid, "Threads");
	if (open_close_batch(path, 10000, c->name) < 0)
		return -1;
	long rss2 = proc_status_kib(pid, "VmRSS");
	int fds2 = count_fds(pid);
	long threads2 = proc_status_kib(pid, "Threads");
	if (rss1 < 0 || rss2 < 0) {
		fail("%s: cannot read /proc/%d/status", c->name, (int)pid);
		return -1;
	}
	r->value = (double)(rss2 - rss1);
	snprintf(r->direct_s, sizeof r->direct_s, "-");
	snprintf(r->mount_s, sizeof r->mount_s, "%ld KiB after 10k", rss1);
	snprintf(r->ratio_s, sizeof r->ratio_s, "%+ld KiB", rss2 - rss1);
	snprintf(r->note, sizeof r->note, "RSS %ld KiB after 20k; fds %d -> %d; threads %ld -> %ld",
		 rss2, fds1, fds2, threads1, threads2);
	return 0;
}

/* The 1 GiB POSIX object, written (not sparse) and stamped; the 1 GiB
 * System V segment, attached for the direct side, touched and stamped; a
 * directory of 10,000 small objects. */
int posix_setup(struct bench *b)
{
	char path[4096];
	/* The 1 GiB POSIX object, written (not sparse) and stamped. */
	snprintf(path, sizeof path, "%s/%s", b->source, POSIX_NAME);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail("%s: %s", path, strerror(errno));
		return -1;
	}
	memset(b->buf, 0xa5, BLOCK);
	for (size_t off = 0; off < BIG_SIZE; off += BLOCK) {
		stamp(b->buf, BLOCK, off);
		if (pwrite(fd, b->buf, BLOCK, (off_t)off) != (ssize_t)BLOCK) {
			fail("%s: write: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
	}
	close(fd);

	/* The 1 GiB System V segment, touched and stamped. */
	b->shmid = shmget(b->key, BIG_SIZE, IPC_CREAT | 0600);
	if (b->shmid < 0) {
		fail("shmget(0x%08x, 1 GiB): %s", (unsigned)b->key, strerror(errno));
		return -1;
	}
	b->shm = shmat(b->shmid, NULL, 0);
	if (b->shm == (void *)-1) {
		b->shm = NULL;
		fail("shmat: %s", strerror(errno));
		return -1;
	}
	for (size_t off = 0; off < BIG_SIZE; off += BLOCK) {
		stamp(b->buf, BLOCK, off);
		memcpy(b->shm + off, b->buf, BLOCK);
	}

	/* A directory of 10,000 small objects. */
	snprintf(path, sizeof path, "%s/%s", b->source, LS_DIR);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		fail("%s: %s", path, strerror(errno));
		return -1;
	}
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		fail("%s: %s", path, strerror(errno));
		return -1;
	}
	for (int i = 0; i < LS_OBJECTS; i++) {
		char name[32];
		snprintf(name, sizeof name, "obj%05d", i);
		int f = openat(dfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (f < 0 || ftruncate(f, 4096) < 0) {
			fail("%s/%s: %s", path, name, strerror(errno));
			close(dfd);
			return -1;
		}
		close(f);
	}
	close(dfd);
	return 0;
}

void posix_teardown(struct bench *b)
{
	char path[4096];
	if (b->shm)
		shmdt(b->shm);
	if (b->shmid >= 0)
		shmctl(b->shmid, IPC_RMID, NULL);
	snprintf(path, sizeof path, "%s/%s", b->source, POSIX_NAME);
	unlink(path);
	for (int i = 0; i < LS_OBJECTS; i++) {
		snprintf(path, sizeof path, "%s/%s/obj%05d", b->source, LS_DIR, i);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/%s", b->source, LS_DIR);
	rmdir(path);
}
