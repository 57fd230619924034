/* bench.c - the shmfs benchmark: the same work done directly on SOURCE (or
 * with shmat) and through a mount, run several times alternately in this one
 * process, printed as a table of medians and ratios with pass/fail targets.
 * tests/bench/run builds it, sets up the mounts and runs it; see README.md.
 *
 * Usage (normally called by tests/bench/run):
 *   shmfs-bench -s SOURCE -a MOUNT_A -A PID_A [-p on|off]
 *               [-b MOUNT_B -B PID_B -P on|off] [-l LIBFUSE] [-n RUNS]
 *               [-k SYSV_KEY] [-o SUBSTRING]
 * MOUNT_A is a mount of SOURCE with -o passthrough=auto, MOUNT_B one with
 * -o passthrough=off; PID_x is its daemon (for memory figures), -p/-P say
 * whether the daemon's log reported passthrough on. -o runs only the cases
 * whose name contains SUBSTRING.
 *
 * Adding a case: write a run function (one timed run of one side, returns
 * seconds) or a measure function (fills a whole row), and add a line to
 * cases[] below. Nothing else needs to change.
 *
 * Exit status: 0 when every case ran (whatever PASS or FAIL says), 1 on a
 * usage or setup error, 2 when some case could not run or read wrong bytes. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GiB (1024.0 * 1024.0 * 1024.0)

#define BIG_SIZE ((size_t)1 << 30)   /* the 1 GiB POSIX object and segment */
#define BLOCK ((size_t)1 << 20)      /* sequential block size */
#define PAGE ((size_t)4096)          /* random read size; stamp spacing */
#define LS_OBJECTS 10000
#define RANDOM_SEED 0x5348464d53ull  /* "SHFMS": every run reads the same offsets */

#define POSIX_NAME "bench-1g"
#define LS_DIR "ls-10k"
#define STAT_NAME "obj05000"

enum side { DIRECT, MOUNT };
enum mount_id { MOUNT_A, MOUNT_B, NMOUNTS };

/* How a case is judged. */
enum metric {
	RATE,   /* work per second, higher is better: ratio = mount rate / direct rate >= target */
	TIME,   /* seconds, lower is better: ratio = mount time / direct time <= target ("x direct") */
	GROWTH, /* a measure function fills the row; value <= target (KiB) */
	INFO,   /* like RATE, no target: shown for reference */
};

struct mount {
	const char *path;
	const char *option; /* how it was mounted, for the header */
	pid_t pid;
	const char *passthrough; /* "on"/"off" as the daemon logged it */
};

struct bench {
	const char *source;
	struct mount mnt[NMOUNTS];
	const char *libfuse;
	int runs;
	key_t key;
	int shmid;
	char *shm; /* the segment, attached once for the direct side */
	char *buf; /* BLOCK bytes, page aligned */
	int data_errors;
};

struct bench_case;
struct row {
	double direct, mount; /* medians: seconds (RATE, TIME, INFO) */
	double value;         /* GROWTH: the figure judged against the target */
	char direct_s[48], mount_s[48], ratio_s[32], target_s[24], result_s[8], note[96];
	int error;
};

struct bench_case {
	const char *name;
	enum mount_id mount;
	enum metric metric;
	double target;
	/* RATE/INFO: units of work per run, the unit's name and size (for display) */
	double work;
	const char *unit;
	double unit_size;
	/* one timed run of SIDE: seconds, or < 0 after printing why to stderr */
	double (*run)(struct bench *b, const struct bench_case *c, enum side side);
	/* or: measure the whole row (GROWTH cases) */
	int (*measure)(struct bench *b, const struct bench_case *c, struct row *r);
	long param; /* case-specific: reads, calls, flags */
};

/* --- helpers ------------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "shmfs-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static const char *base_of(struct bench *b, const struct bench_case *c, enum side side)
{
	return side == DIRECT ? b->source : b->mnt[c->mount].path;
}

static void path_of(char *out, size_t len, struct bench *b, const struct bench_case *c,
		    enum side side, const char *name)
{
	snprintf(out, len, "%s/%s", base_of(b, c, side), name);
}

static void sysv_path(char *out, size_t len, struct bench *b, const struct bench_case *c)
{
	snprintf(out, len, "%s/sysv/0x%08x", b->mnt[c->mount].path, (unsigned)b->key);
}

/* Compiler barrier: copies into the buffer are not optimized away. */
static void clobber(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

/* Data check: the 8 bytes at every 4 KiB boundary of the big object hold
 * their own offset. Writers keep it so, readers check it, so a mount that
 * returns wrong bytes fast cannot pass. */
static void stamp(char *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i += PAGE) {
		uint64_t v = off + i;
		memcpy(buf + i, &v, 8);
	}
}

static int stamped(struct bench *b, const char *buf, size_t len, uint64_t off, const char *what)
{
	for (size_t i = 0; i < len; i += PAGE) {
		uint64_t v;
		memcpy(&v, buf + i, 8);
		if (v != off + i) {
			if (b->data_errors++ < 5)
				fail("%s: wrong bytes at offset %llu (found %llu)", what,
				     (unsigned long long)(off + i), (unsigned long long)v);
			return -1;
		}
	}
	return 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static long proc_status_kib(pid_t pid, const char *field)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t flen = strlen(field);
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, field, flen) && line[flen] == ':') {
			v = strtol(line + flen + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* --- the work ------------------------------------------------------------ */

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

static double posix_seq_read(struct bench *b, const struct bench_case *c, enum side side)
{
	char path[4096];
	path_of(path, sizeof path, b, c, side, POSIX_NAME);
	return seq_read_fd(b, path, c->name);
}

static double posix_seq_write(struct bench *b, const struct bench_case *c, enum side side)
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
static double sysv_seq_read(struct bench *b, const struct bench_case *c, enum side side)
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

static double sysv_seq_write(struct bench *b, const struct bench_case *c, enum side side)
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
static double random_pread(struct bench *b, const struct bench_case *c, enum side side)
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
static double ls_l(struct bench *b, const struct bench_case *c, enum side side)
{
	char dir[4096];
	path_of(dir, sizeof dir, b, c, side, LS_DIR);
	double t0 = now();
	pid_t pid = fork();
	if (pid < 0) {
		fail("%s: fork: %s", c->name, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null < 0 || dup2(null, 1) < 0)
			_exit(126);
		setenv("LC_ALL", "C", 1);
		execlp("ls", "ls", "-l", dir, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fail("%s: waitpid: %s", c->name, strerror(errno));
			return -1;
		}
	double t = now() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail("%s: ls -l %s failed (status %d)", c->name, dir, status);
		return -1;
	}
	return t;
}

/* param stat() calls of one object of the 10,000-object directory. */
static double stat_loop(struct bench *b, const struct bench_case *c, enum side side)
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

static int daemon_memory(struct bench *b, const struct bench_case *c, struct row *r)
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

/* --- the cases ------------------------------------------------------------ */

static const struct bench_case cases[] = {
	/* mount A: -o passthrough=auto */
	{"POSIX seq read 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_read, NULL, 0},
	{"POSIX seq write 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_write, NULL, 0},
	{"SysV seq read 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_read, NULL, 0},
	{"SysV seq write 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_write, NULL, 0},
	{"POSIX 4 KiB random pread x200k", MOUNT_A, RATE, 0.80, 200000, "k reads/s", 1000,
	 random_pread, NULL, 200000},
	{"ls -l of 10,000 objects", MOUNT_A, TIME, 3.0, 0, NULL, 0, ls_l, NULL, 0},
	{"stat() of one object x5000", MOUNT_A, TIME, 3.0, 0, NULL, 0, stat_loop, NULL, 5000},
	{"daemon RSS, POSIX open+close x10k", MOUNT_A, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 0},
	{"daemon RSS, SysV open+close x10k", MOUNT_A, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 1},
	/* mount B: -o passthrough=off, the daemon's copy path */
	{"POSIX seq read 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.50, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_read, NULL, 0},
	{"POSIX seq write 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.30, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_write, NULL, 0},
	{"SysV seq read 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.50, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_read, NULL, 0},
	{"SysV seq write 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.30, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_write, NULL, 0},
	{"POSIX 4 KiB random pread x50k", MOUNT_B, INFO, 0, 50000, "k reads/s", 1000,
	 random_pread, NULL, 50000},
	{"daemon RSS, POSIX open+close x10k", MOUNT_B, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 0},
	{"daemon RSS, SysV open+close x10k", MOUNT_B, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 1},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* --- running and printing ---------------------------------------------------- */

static void fmt_rate(char *out, size_t len, const struct bench_case *c, double secs)
{
	snprintf(out, len, "%.2f %s (%.0f ms)", c->work / secs / c->unit_size, c->unit, secs * 1e3);
}

static void run_timed(struct bench *b, const struct bench_case *c, struct row *r)
{
	int n = b->runs;
	double *d = calloc((size_t)n, sizeof *d), *m = calloc((size_t)n, sizeof *m);
	if (!d || !m) {
		r->error = 1;
		goto out;
	}
	/* One warm-up of each side, then direct and mount alternately. */
	if (c->run(b, c, DIRECT) < 0 || c->run(b, c, MOUNT) < 0) {
		r->error = 1;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		d[i] = c->run(b, c, DIRECT);
		m[i] = c->run(b, c, MOUNT);
		if (d[i] < 0 || m[i] < 0) {
			r->error = 1;
			goto out;
		}
	}
	double mlo, mhi;
	r->direct = median(d, n);
	r->mount = median(m, n);
	mlo = m[0], mhi = m[n - 1]; /* sorted by median() */
	if (c->metric == TIME) {
		snprintf(r->direct_s, sizeof r->direct_s, "%.1f ms", r->direct * 1e3);
		snprintf(r->mount_s, sizeof r->mount_s, "%.1f ms", r->mount * 1e3);
		snprintf(r->ratio_s, sizeof r->ratio_s, "%.2fx direct", r->mount / r->direct);
		snprintf(r->note, sizeof r->note, "mount runs %.1f-%.1f ms", mlo * 1e3, mhi * 1e3);
	} else {
		fmt_rate(r->direct_s, sizeof r->direct_s, c, r->direct);
		fmt_rate(r->mount_s, sizeof r->mount_s, c, r->mount);
		snprintf(r->ratio_s, sizeof r->ratio_s, "%.2f", r->direct / r->mount);
		snprintf(r->note, sizeof r->note, "mount runs %.2f-%.2f %s",
			 c->work / mhi / c->unit_size, c->work / mlo / c->unit_size, c->unit);
	}
out:
	free(d);
	free(m);
}

static void judge(const struct bench_case *c, struct row *r)
{
	int pass = 1;
	switch (c->metric) {
	case RATE:
		snprintf(r->target_s, sizeof r->target_s, ">= %.2f", c->target);
		pass = r->direct / r->mount >= c->target;
		break;
	case TIME:
		snprintf(r->target_s, sizeof r->target_s, "<= %.2fx direct", c->target);
		pass = r->mount / r->direct <= c->target;
		break;
	case GROWTH:
		snprintf(r->target_s, sizeof r->target_s, "<= +%.0f KiB", c->target);
		pass = r->value <= c->target;
		break;
	case INFO:
		snprintf(r->target_s, sizeof r->target_s, "(none)");
		break;
	}
	snprintf(r->result_s, sizeof r->result_s, "%s",
		 r->error ? "ERROR" : c->metric == INFO ? "info" : pass ? "PASS" : "FAIL");
}

/* Whether mmap(MAP_SHARED) of a file of the mount works: only passthrough
 * allows it, so it confirms what the daemon's log says. */
static const char *mmap_probe(struct bench *b, enum mount_id id)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->mnt[id].path, POSIX_NAME);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return strerror(errno);
	void *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
	int err = errno;
	close(fd);
	if (p == MAP_FAILED)
		return err == ENODEV ? "fails (ENODEV)" : strerror(err);
	uint64_t v;
	memcpy(&v, p, 8);
	munmap(p, PAGE);
	return v == 0 ? "works" : "works, but reads wrong bytes";
}

static void cpu_model(char *out, size_t len)
{
	char line[256];
	FILE *f = fopen("/proc/cpuinfo", "r");
	snprintf(out, len, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof line, f))
		if (!strncmp(line, "model name", 10)) {
			char *v = strchr(line, ':');
			if (v) {
				v += 1 + strspn(v + 1, " \t");
				v[strcspn(v, "\n")] = '\0';
				snprintf(out, len, "%s", v);
			}
			break;
		}
	fclose(f);
}

static double loadavg(void)
{
	double l = -1;
	FILE *f = fopen("/proc/loadavg", "r");
	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1;
		fclose(f);
	}
	return l;
}

/* --- setup ----------------------------------------------------------------- */

static int setup(struct bench *b)
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

static void teardown(struct bench *b)
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

static void usage(FILE *f)
{
	fprintf(f, "usage: shmfs-bench -s SOURCE -a MOUNT_A -A PID_A [-p on|off]\n"
		   "                   [-b MOUNT_B -B PID_B -P on|off] [-l LIBFUSE]\n"
		   "                   [-n RUNS] [-k SYSV_KEY] [-o SUBSTRING]\n"
		   "MOUNT_A: mount of SOURCE with -o passthrough=auto; MOUNT_B: with\n"
		   "-o passthrough=off (its cases are skipped without -b). Normally run\n"
		   "by tests/bench/run.\n");
}

int main(int argc, char **argv)
{
	struct bench b = {.runs = 5, .key = (key_t)0x62656e63 /* "benc" */, .shmid = -1,
			  .libfuse = "unknown"};
	b.mnt[MOUNT_A] = (struct mount){NULL, "-o passthrough=auto", 0, "unknown"};
	b.mnt[MOUNT_B] = (struct mount){NULL, "-o passthrough=off", 0, "unknown"};
	const char *only = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "s:a:A:p:b:B:P:l:n:k:o:h")) != -1) {
		switch (opt) {
		case 's': b.source = optarg; break;
		case 'a': b.mnt[MOUNT_A].path = optarg; break;
		case 'A': b.mnt[MOUNT_A].pid = atoi(optarg); break;
		case 'p': b.mnt[MOUNT_A].passthrough = optarg; break;
		case 'b': b.mnt[MOUNT_B].path = optarg; break;
		case 'B': b.mnt[MOUNT_B].pid = atoi(optarg); break;
		case 'P': b.mnt[MOUNT_B].passthrough = optarg; break;
		case 'l': b.libfuse = optarg; break;
		case 'n': b.runs = atoi(optarg); break;
		case 'k': b.key = (key_t)strtoul(optarg, NULL, 0); break;
		case 'o': only = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (!b.source || !b.mnt[MOUNT_A].path || b.runs < 1 || optind != argc) {
		usage(stderr);
		return 1;
	}
	b.buf = mmap(NULL, BLOCK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (b.buf == MAP_FAILED) {
		fail("out of memory");
		return 1;
	}
	memset(b.buf, 0, BLOCK);

	struct utsname u;
	uname(&u);
	char cpu[128], date[64];
	cpu_model(cpu, sizeof cpu);
	time_t t = time(NULL);
	strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %z", localtime(&t));
	double load0 = loadavg();

	if (setup(&b) < 0) {
		teardown(&b);
		return 1;
	}

	printf("shmfs benchmark\n");
	printf("date:     %s\n", date);
	printf("machine:  %s, %ld CPUs (%s), host %s\n", u.machine, sysconf(_SC_NPROCESSORS_ONLN), cpu,
	       u.nodename);
	printf("kernel:   %s\n", u.release);
	printf("libfuse:  %s\n", b.libfuse);
	printf("method:   %d runs per case after one warm-up, direct and mount alternating; "
	       "medians\n", b.runs);
	for (int i = 0; i < NMOUNTS; i++) {
		if (!b.mnt[i].path)
			continue;
		printf("mount %c:  %s: passthrough %s (daemon log); mmap(MAP_SHARED) through it %s\n",
		       'A' + i, b.mnt[i].option, b.mnt[i].passthrough, mmap_probe(&b, i));
	}
	printf("ratio:    throughput cases: mount rate / direct rate (higher is better); time "
	       "cases: mount time / direct time (lower is better)\n");
	printf("direct:   POSIX: read()/write()/pread() on SOURCE, opened per run; System V: "
	       "memcpy to/from the segment, attached once (shmat)\n");
	printf("\n| case | direct | mount | ratio | target | result | notes |\n");
	printf("|---|---|---|---|---|---|---|\n");
	fflush(stdout);

	int errors = 0, section = -1;
	for (size_t i = 0; i < NCASES; i++) {
		const struct bench_case *c = &cases[i];
		if (only && !strstr(c->name, only))
			continue;
		if (!b.mnt[c->mount].path)
			continue;
		if ((int)c->mount != section) {
			section = (int)c->mount;
			printf("| **mount %c (%s), passthrough %s** | | | | | | |\n", 'A' + section,
			       b.mnt[section].option, b.mnt[section].passthrough);
		}
		struct row r = {0};
		if (c->measure)
			r.error = c->measure(&b, c, &r) < 0;
		else
			run_timed(&b, c, &r);
		judge(c, &r);
		errors += r.error;
		if (r.error)
			printf("| %s | - | - | - | %s | ERROR | see stderr |\n", c->name, r.target_s);
		else
			printf("| %s | %s | %s | %s | %s | %s | %s |\n", c->name, r.direct_s,
			       r.mount_s, r.ratio_s, r.target_s, r.result_s, r.note);
		fflush(stdout);
	}
	printf("\nload average: %.2f at start, %.2f at end (%ld CPUs)\n", load0, loadavg(),
	       sysconf(_SC_NPROCESSORS_ONLN));
	teardown(&b);
	if (b.data_errors)
		fail("%d wrong-data checks failed", b.data_errors);
	return errors || b.data_errors ? 2 : 0;
}
