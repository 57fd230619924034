/* bench.c - the shmfs benchmark: the same work done directly on SOURCE (or
 * with shmat) and through a mount, run several times alternately in this one
 * process, printed as a table of medians and ratios with pass/fail targets.
 * tests/bench/run builds it, sets up the mounts and runs it; see README.md.
 *
 * Usage (normally called by tests/bench/run):
 *   shmfs-bench -s SOURCE -a MOUNT_A -A PID_A [-p on|off]
 *               [-b MOUNT_B -B PID_B -P on|off] [-l LIBFUSE] [-n RUNS]
 *               [-k SYSV_KEY] [-o SUBSTRING] [-D DAEMON]
 * MOUNT_A is a mount of SOURCE with -o passthrough=auto, MOUNT_B one with
 * -o passthrough=off; PID_x is its daemon (for memory figures), -p/-P say
 * whether the daemon's log reported passthrough on. -o runs only the cases
 * whose name contains SUBSTRING. DAEMON, the shmfs binary, mounts SOURCE once
 * more with -d for the GETXATTR count of the small-write cases.
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
#include <semaphore.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/mount.h>
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

/* Views (issue 4): two ImageStreamIO "2.00" float streams made in SOURCE,
 * read as X.fits and as their raw X.im.shm through the same mount. */
#define STREAM_BIG 0   /* 4096 x 4096 float: 64 MiB of pixels */
#define STREAM_SMALL 1 /* 32 x 32 float: one 4 KiB frame */
#define NSTREAMS 2
#define PIXEL_STRIDE 1024 /* pixels checked: every 4 KiB of the data, and the last */
#define FITS_BLOCK 2880

/* Small writes: 4 KiB pwrite()s cycling over a 1 MiB object. */
#define WRITE_NAME "bench-w4k"
#define WRITE_SIZE ((size_t)1 << 20)
#define DEBUG_WRITES 1000 /* writes traced through a short-lived -d mount */
#define MAX_RUNS 64       /* phase times kept per side */

enum side { DIRECT, MOUNT };
enum mount_id { MOUNT_A, MOUNT_B, NMOUNTS };

/* How a case is judged. */
enum metric {
	RATE,   /* work per second, higher is better: ratio = mount rate / direct rate >= target */
	TIME,   /* seconds, lower is better: ratio = mount time / direct time <= target ("x direct") */
	GROWTH, /* a measure function fills the row; value <= target (KiB) */
	INFO,   /* like RATE, no target: shown for reference */
	TIME_INFO, /* like TIME, no target: shown for reference */
};

struct mount {
	const char *path;
	const char *option; /* how it was mounted, for the header */
	pid_t pid;
	const char *passthrough; /* "on"/"off" as the daemon logged it */
};

/* The streams of the view cases (see setup_stream). */
struct stream {
	const char *name;   /* NAME.im.shm in SOURCE, NAME.fits its view */
	uint32_t nx, ny;
	uint64_t nelement;
	uint64_t raw_size;  /* the stream file */
	uint64_t view_size; /* NAME.fits, as the mount reports it */
	uint64_t view_header; /* bytes of FITS header before the pixels */
};

/* Where one open-read-close spends its time (view cases), summed per run. */
struct phases {
	double open, read, close;
	long count; /* open-read-close cycles in the run */
};

struct bench {
	const char *source;
	const char *daemon; /* the shmfs binary, for the -d write trace (-D) */
	struct mount mnt[NMOUNTS];
	const char *libfuse;
	int runs;
	key_t key;
	int shmid;
	char *shm; /* the segment, attached once for the direct side */
	char *buf; /* BLOCK bytes, page aligned */
	int data_errors;
	struct stream stream[NSTREAMS];
	struct phases ph[2][MAX_RUNS]; /* [side]: the phases of the latest runs */
	int nph[2];
	char trace_note[NMOUNTS][256]; /* GETXATTR count of the -d write trace */
};

struct bench_case;
struct row {
	double direct, mount; /* medians: seconds (RATE, TIME, INFO) */
	double value;         /* GROWTH: the figure judged against the target */
	char direct_s[48], mount_s[48], ratio_s[32], target_s[24], result_s[8], note[640];
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
	/* TIME cases: what the mount side is compared with ("direct" if NULL) */
	const char *vs;
	/* after a row is filled: add to its notes (may be NULL) */
	void (*annotate)(struct bench *b, const struct bench_case *c, struct row *r);
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

/* --- views: FITS of ImageStreamIO streams (issue 4) ---------------------- */

static uint64_t r8(uint64_t n) { return (n + 7) / 8 * 8; }
static uint64_t r2880(uint64_t n) { return (n + FITS_BLOCK - 1) / FITS_BLOCK * FITS_BLOCK; }

/* The value of pixel K of every bench stream: exact in a float up to 2^24. */
static float pixel_value(uint64_t k) { return (float)(k & 0xffffff); }

/* Pixel K, whose 4 bytes are at AT (byte P of the file), holds
 * pixel_value(K): 0, or -1 after saying why. */
static int check_pixel(struct bench *b, const struct stream *s, int view, const char *at,
		       uint64_t k, uint64_t p, const char *what)
{
	uint32_t u;
	memcpy(&u, at, 4);
	if (view)
		u = __builtin_bswap32(u);
	float v, want = pixel_value(k);
	memcpy(&v, &u, 4);
	if (memcmp(&v, &want, 4) == 0)
		return 0;
	if (b->data_errors++ < 5)
		fail("%s: pixel %llu at byte %llu of %s.%s is %g, not %g", what, (unsigned long long)k,
		     (unsigned long long)p, s->name, view ? "fits" : "im.shm", (double)v, (double)want);
	return -1;
}

/* Check the pixels of BUF, LEN bytes of the file at OFF: every
 * PIXEL_STRIDE-th pixel and the last. VIEW: FITS (big-endian, after the
 * header), else the raw stream (little-endian, from byte 384). */
static int check_pixels(struct bench *b, const struct stream *s, int view, const char *buf,
			size_t len, uint64_t off, const char *what)
{
	uint64_t data = view ? s->view_header : 384, end = off + len;
	if (end < data + 4)
		return 0;
	/* pixel k, at data + 4k, lies in the block for k in [lo, hi] */
	uint64_t lo = off > data ? (off - data + 3) / 4 : 0, hi = (end - data - 4) / 4;
	if (hi >= s->nelement)
		hi = s->nelement - 1;
	if (lo > hi)
		return 0;
	int bad = 0;
	for (uint64_t k = (lo + PIXEL_STRIDE - 1) / PIXEL_STRIDE * PIXEL_STRIDE; k <= hi;
	     k += PIXEL_STRIDE)
		bad |= check_pixel(b, s, view, buf + (data + 4 * k - off), k, data + 4 * k, what);
	uint64_t last = s->nelement - 1;
	if (last >= lo && last <= hi && last % PIXEL_STRIDE)
		bad |= check_pixel(b, s, view, buf + (data + 4 * last - off), last, data + 4 * last,
				   what);
	return bad;
}

/* open, read in BLOCK reads until end of file, close; check the size and the
 * pixels; add the time of each phase to PH. Returns 0 or -1. */
static int read_whole(struct bench *b, const char *path, const struct stream *s, int view,
		      struct phases *ph, const char *what)
{
	uint64_t want = view ? s->view_size : s->raw_size, done = 0;
	double t0 = now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	double t1 = now();
	if (fd < 0) {
		fail("%s: open %s: %s", what, path, strerror(errno));
		return -1;
	}
	int bad = 0;
	for (;;) {
		ssize_t r = read(fd, b->buf, BLOCK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail("%s: read %s at %llu: %s", what, path, (unsigned long long)done,
			     strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (view && done == 0 && (r < 9 || memcmp(b->buf, "SIMPLE  =", 9) != 0)) {
			fail("%s: %s does not begin with \"SIMPLE  =\"", what, path);
			bad = 1;
		}
		bad |= check_pixels(b, s, view, b->buf, (size_t)r, done, what);
		done += (uint64_t)r;
	}
	double t2 = now();
	close(fd);
	double t3 = now();
	if (done != want) {
		fail("%s: read %llu bytes of %s, expected %llu", what, (unsigned long long)done, path,
		     (unsigned long long)want);
		return -1;
	}
	ph->open += t1 - t0, ph->read += t2 - t1, ph->close += t3 - t2, ph->count++;
	return bad ? -1 : 0;
}

static struct phases *new_phases(struct bench *b, enum side side)
{
	struct phases *ph = &b->ph[side][b->nph[side]++ % MAX_RUNS];
	memset(ph, 0, sizeof *ph);
	return ph;
}

/* The view side reads MOUNT/NAME.fits; the "direct" side the raw stream
 * MOUNT/NAME.im.shm through the same mount. PARAM: the stream; COUNT
 * open-read-close cycles. Returns seconds or -1. */
static double stream_cycles(struct bench *b, const struct bench_case *c, enum side side,
			    int stream, long count)
{
	const struct stream *s = &b->stream[stream];
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.%s", b->mnt[c->mount].path, s->name,
		 side == MOUNT ? "fits" : "im.shm");
	struct phases *ph = new_phases(b, side);
	double t0 = now();
	for (long i = 0; i < count; i++)
		if (read_whole(b, path, s, side == MOUNT, ph, c->name) < 0)
			return -1;
	return now() - t0;
}

/* One read of the whole view of the 4096 x 4096 float stream, against one
 * of its raw file, both through the mount. */
static double fits_view_read(struct bench *b, const struct bench_case *c, enum side side)
{
	return stream_cycles(b, c, side, STREAM_BIG, 1);
}

/* PARAM open-read-close cycles of the 4 KiB-frame stream's view, against the
 * same on its raw file. */
static double frame_view_loop(struct bench *b, const struct bench_case *c, enum side side)
{
	return stream_cycles(b, c, side, STREAM_SMALL, c->param);
}

/* Medians of the phases of the latest runs of SIDE (per cycle). */
static struct phases median_phases(struct bench *b, enum side side)
{
	int n = b->nph[side] < b->runs ? b->nph[side] : b->runs;
	if (n > MAX_RUNS)
		n = MAX_RUNS;
	double o[MAX_RUNS], r[MAX_RUNS], c[MAX_RUNS];
	for (int i = 0; i < n; i++) {
		const struct phases *p = &b->ph[side][(b->nph[side] - 1 - i) % MAX_RUNS];
		double k = p->count ? (double)p->count : 1;
		o[i] = p->open / k, r[i] = p->read / k, c[i] = p->close / k;
	}
	struct phases m = {0};
	if (n > 0)
		m.open = median(o, n), m.read = median(r, n), m.close = median(c, n), m.count = 1;
	return m;
}

static void note_add(struct row *r, const char *fmt, ...)
{
	size_t used = strlen(r->note);
	if (used >= sizeof r->note - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->note + used, sizeof r->note - used, fmt, ap);
	va_end(ap);
}

static void fits_view_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	(void)c;
	const struct stream *s = &b->stream[STREAM_BIG];
	struct phases v = median_phases(b, MOUNT), d = median_phases(b, DIRECT);
	note_add(r, "; direct = the raw %s.im.shm through the same mount; ratio = raw time / "
		    "view time (>= 0.40 passes); rates count the %llu MiB of pixels "
		    "(view %llu B with a %llu B header, raw %llu B); view: open %.1f + reads "
		    "%.1f + close %.1f ms; raw: open %.2f + reads %.1f + close %.2f ms",
		 s->name, (unsigned long long)(s->nelement * 4 >> 20),
		 (unsigned long long)s->view_size, (unsigned long long)s->view_header,
		 (unsigned long long)s->raw_size, v.open * 1e3, v.read * 1e3, v.close * 1e3,
		 d.open * 1e3, d.read * 1e3, d.close * 1e3);
}

static void frame_view_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	const struct stream *s = &b->stream[STREAM_SMALL];
	struct phases v = median_phases(b, MOUNT), d = median_phases(b, DIRECT);
	note_add(r, "; %ld cycles of open, read to EOF, close; direct = the raw %s.im.shm (%llu B) "
		    "through the same mount, view %llu B; per cycle: view open %.1f + reads %.1f + "
		    "close %.1f us, raw open %.1f + reads %.1f + close %.1f us",
		 c->param, s->name, (unsigned long long)s->raw_size,
		 (unsigned long long)s->view_size, v.open * 1e6, v.read * 1e6, v.close * 1e6,
		 d.open * 1e6, d.read * 1e6, d.close * 1e6);
}

/* PARAM pwrite()s of 4 KiB cycling over the 1 MiB object WRITE_NAME, each
 * stamped with its offset: on SOURCE, or through the mount. */
static double small_writes(struct bench *b, const struct bench_case *c, enum side side)
{
	char path[4096];
	path_of(path, sizeof path, b, c, side, WRITE_NAME);
	double t0 = now();
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		fail("%s: open %s: %s", c->name, path, strerror(errno));
		return -1;
	}
	for (long i = 0; i < c->param; i++) {
		uint64_t off = (uint64_t)(i % (long)(WRITE_SIZE / PAGE)) * PAGE;
		stamp(b->buf, PAGE, off);
		ssize_t w = pwrite(fd, b->buf, PAGE, (off_t)off);
		if (w != (ssize_t)PAGE) {
			fail("%s: pwrite %s at %llu: %s", c->name, path, (unsigned long long)off,
			     w < 0 ? strerror(errno) : "short write");
			close(fd);
			return -1;
		}
	}
	if (close(fd) < 0) {
		fail("%s: close %s: %s", c->name, path, strerror(errno));
		return -1;
	}
	return now() - t0;
}

static long count_in(const char *text, const char *needle)
{
	long n = 0;
	for (const char *p = text; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* Mount SOURCE once more, with the daemon's -d trace in a log and the
 * option OPT, do DEBUG_WRITES 4 KiB pwrite()s on WRITE_NAME through it and
 * count the requests the trace shows arriving during them. Fills NOTE. */
static void trace_writes(struct bench *b, const char *opt, char *note, size_t len)
{
	char mnt[] = "/tmp/shmfs-bench-trace.XXXXXX", log[64], path[4096];
	if (!b->daemon) {
		snprintf(note, len, "GETXATTR not traced (no -D DAEMON)");
		return;
	}
	if (!mkdtemp(mnt)) {
		snprintf(note, len, "GETXATTR not traced: mkdtemp: %s", strerror(errno));
		return;
	}
	snprintf(log, sizeof log, "%s.log", mnt);
	struct stat st0, st;
	stat(mnt, &st0);
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_RDWR);
		if (fd < 0 || null < 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0 || dup2(null, 0) < 0)
			_exit(126);
		execl(b->daemon, b->daemon, "-d", "-o", opt, b->source, mnt, (char *)NULL);
		_exit(127);
	}
	int mounted = 0, fd = -1;
	long getxattr = -1, first = -1, writes = -1, all = -1;
	char *text = NULL;
	const char *why = NULL;
	if (pid < 0) {
		why = "fork failed";
		goto out;
	}
	for (int i = 0; i < 100 && !mounted; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			pid = -1;
			why = "the daemon exited";
			goto out;
		}
		if (stat(mnt, &st) == 0 && st.st_dev != st0.st_dev)
			mounted = 1;
		else
			usleep(100000);
	}
	if (!mounted) {
		why = "not mounted after 10 s";
		goto out;
	}
	snprintf(path, sizeof path, "%s/%s", mnt, WRITE_NAME);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		why = "open failed";
		goto out;
	}
	/* The trace line of a request is written before its reply: the log's
	 * size after a write returns bounds the requests it caused. */
	struct stat l0, l1, lfirst;
	stat(log, &l0);
	for (long i = 0; i < DEBUG_WRITES; i++) {
		uint64_t off = (uint64_t)(i % (long)(WRITE_SIZE / PAGE)) * PAGE;
		stamp(b->buf, PAGE, off);
		if (pwrite(fd, b->buf, PAGE, (off_t)off) != (ssize_t)PAGE) {
			why = "pwrite failed";
			goto out;
		}
		if (i == 0)
			stat(log, &lfirst);
	}
	stat(log, &l1);
	size_t n = (size_t)(l1.st_size - l0.st_size);
	text = malloc(n + 1);
	int lfd = open(log, O_RDONLY | O_CLOEXEC);
	if (!text || lfd < 0 || pread(lfd, text, n, l0.st_size) != (ssize_t)n) {
		why = "cannot read the trace";
		if (lfd >= 0)
			close(lfd);
		goto out;
	}
	close(lfd);
	text[n] = '\0';
	getxattr = count_in(text, "opcode: GETXATTR");
	char *split = text + (lfirst.st_size - l0.st_size), keep = *split;
	*split = '\0';
	first = count_in(text, "opcode: GETXATTR");
	*split = keep;
	writes = count_in(text, "opcode: WRITE");
	all = count_in(text, "opcode: ");
out:
	if (fd >= 0)
		close(fd);
	if (mounted) {
		int i;
		for (i = 0; i < 50 && umount2(mnt, 0) < 0 && errno == EBUSY; i++)
			usleep(100000);
		if (i == 50)
			umount2(mnt, MNT_DETACH);
	}
	if (pid > 0) {
		int i;
		for (i = 0; i < 50 && waitpid(pid, NULL, WNOHANG) != pid; i++)
			usleep(100000);
		if (i == 50) { /* our own daemon, by its pid */
			kill(pid, SIGTERM);
			waitpid(pid, NULL, 0);
		}
	}
	rmdir(mnt);
	/* whether that daemon had passthrough, from its log */
	const char *pt = "?";
	FILE *f = fopen(log, "r");
	if (f) {
		char line[512];
		while (fgets(line, sizeof line, f))
			if (strstr(line, "passthrough on")) {
				pt = "on";
				break;
			} else if (strstr(line, "passthrough off")) {
				pt = "off";
			}
		fclose(f);
	}
	unlink(log);
	free(text);
	if (why)
		snprintf(note, len, "GETXATTR not traced (-d mount, %s): %s", opt, why);
	else
		snprintf(note, len, "-d trace of %d writes on a new mount -o %s (passthrough %s): "
				    "GETXATTR %ld (%ld at the first write), WRITE %ld, all requests %ld",
			 DEBUG_WRITES, opt, pt, getxattr, first, writes, all);
}

static void write_trace_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	char *note = b->trace_note[c->mount];
	if (!note[0]) {
		const char *opt = b->mnt[c->mount].option;
		if (!strncmp(opt, "-o ", 3))
			opt += 3;
		trace_writes(b, opt, note, sizeof b->trace_note[0]);
	}
	note_add(r, "; direct = pwrite on SOURCE; %s", note);
}

/* --- the cases ------------------------------------------------------------ */

static const struct bench_case cases[] = {
	/* mount A: -o passthrough=auto */
	{"POSIX seq read 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_read, NULL, 0, NULL, NULL},
	{"POSIX seq write 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_write, NULL, 0, NULL, NULL},
	{"SysV seq read 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_read, NULL, 0, NULL, NULL},
	{"SysV seq write 1 GiB, 1 MiB blocks", MOUNT_A, RATE, 0.90, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_write, NULL, 0, NULL, NULL},
	{"POSIX 4 KiB random pread x200k", MOUNT_A, RATE, 0.80, 200000, "k reads/s", 1000,
	 random_pread, NULL, 200000, NULL, NULL},
	{"ls -l of 10,000 objects", MOUNT_A, TIME, 3.0, 0, NULL, 0, ls_l, NULL, 0, NULL, NULL},
	{"stat() of one object x5000", MOUNT_A, TIME, 3.0, 0, NULL, 0, stat_loop, NULL, 5000, NULL,
	 NULL},
	{"daemon RSS, POSIX open+close x10k", MOUNT_A, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 0, NULL, NULL},
	{"daemon RSS, SysV open+close x10k", MOUNT_A, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 1, NULL, NULL},
	/* views (issue 4): the view against the raw stream file, both through the mount */
	{"FITS view of a 4096x4096 float stream, read whole", MOUNT_A, RATE, 0.40,
	 4096.0 * 4096 * 4, "GiB/s", GiB, fits_view_read, NULL, 0, NULL, fits_view_note},
	{"4 KiB-frame stream view: open, read, close x5000", MOUNT_A, TIME_INFO, 0, 0, NULL, 0,
	 frame_view_loop, NULL, 5000, "raw", frame_view_note},
	{"4 KiB pwrite x20000", MOUNT_A, INFO, 0, 20000, "k writes/s", 1000, small_writes, NULL,
	 20000, NULL, write_trace_note},
	/* mount B: -o passthrough=off, the daemon's copy path */
	{"POSIX seq read 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.50, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_read, NULL, 0, NULL, NULL},
	{"POSIX seq write 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.30, BIG_SIZE, "GiB/s", GiB,
	 posix_seq_write, NULL, 0, NULL, NULL},
	{"SysV seq read 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.50, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_read, NULL, 0, NULL, NULL},
	{"SysV seq write 1 GiB, 1 MiB blocks", MOUNT_B, RATE, 0.30, BIG_SIZE, "GiB/s", GiB,
	 sysv_seq_write, NULL, 0, NULL, NULL},
	{"POSIX 4 KiB random pread x50k", MOUNT_B, INFO, 0, 50000, "k reads/s", 1000,
	 random_pread, NULL, 50000, NULL, NULL},
	{"daemon RSS, POSIX open+close x10k", MOUNT_B, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 0, NULL, NULL},
	{"daemon RSS, SysV open+close x10k", MOUNT_B, GROWTH, 1024, 0, NULL, 0, NULL,
	 daemon_memory, 1, NULL, NULL},
	{"4 KiB pwrite x20000", MOUNT_B, INFO, 0, 20000, "k writes/s", 1000, small_writes, NULL,
	 20000, NULL, write_trace_note},
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
	if (c->metric == TIME || c->metric == TIME_INFO) {
		snprintf(r->direct_s, sizeof r->direct_s, "%.1f ms", r->direct * 1e3);
		snprintf(r->mount_s, sizeof r->mount_s, "%.1f ms", r->mount * 1e3);
		snprintf(r->ratio_s, sizeof r->ratio_s, "%.2fx %s", r->mount / r->direct,
			 c->vs ? c->vs : "direct");
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
	case TIME_INFO:
		snprintf(r->target_s, sizeof r->target_s, "(none)");
		break;
	}
	snprintf(r->result_s, sizeof r->result_s, "%s",
		 r->error                                           ? "ERROR"
		 : c->metric == INFO || c->metric == TIME_INFO ? "info"
		 : pass                                             ? "PASS"
								    : "FAIL");
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

/* Make the stream S in SOURCE: an ImageStreamIO "2.00" float stream of
 * nx x ny pixels, laid out as ../shared/formats/imagestreamio.md says (and
 * tests/mount/isio.py writes it): 384 bytes of metadata, the pixels, 4
 * keyword slots, 10 semaphores (sem_init'ed, process-shared), semlog, the
 * PID and control arrays and the process trace, each region rounded up to 8
 * bytes; the version string written last. Pixel k holds pixel_value(k). */
static int make_stream(struct bench *b, struct stream *s)
{
	const unsigned nbkw = 4, nsem = 10, nbproctrace = 10;
	s->nelement = (uint64_t)s->nx * s->ny;
	uint64_t datasize = 4 * s->nelement;
	uint64_t kw = 384 + r8(datasize), sems = kw + r8(128 * nbkw);
	uint64_t semlog = sems + r8(32 * nsem), pids = semlog + 32;
	uint64_t proctrace = pids + 4 * r8(4 * nsem);
	s->raw_size = proctrace + r8(64 * nbproctrace);

	char path[4096];
	snprintf(path, sizeof path, "%s/%s.im.shm", b->source, s->name);
	unlink(path);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0 || fchmod(fd, 0666) < 0 || ftruncate(fd, (off_t)s->raw_size) < 0) {
		fail("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	unsigned char *m = mmap(NULL, s->raw_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		fail("mmap %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t[2] = {ts.tv_sec, ts.tv_nsec};
	uint32_t size[3] = {s->nx, s->ny, 0};
	uint64_t imagetype = 2, cnt0 = 1;
	int32_t pid = (int32_t)getpid();
	uint16_t sem16 = (uint16_t)nsem, proc16 = (uint16_t)nbproctrace, kw16 = (uint16_t)nbkw;
	snprintf((char *)m + 32, 80, "%s", s->name); /* name */
	m[112] = 2;                                  /* naxis */
	memcpy(m + 116, size, sizeof size);
	memcpy(m + 128, &s->nelement, 8);
	m[136] = 9; /* datatype: float */
	memcpy(m + 144, &imagetype, 8);
	memcpy(m + 152, t, 16); /* creationtime */
	memcpy(m + 184, t, 16); /* atime */
	memcpy(m + 200, t, 16); /* writetime */
	memcpy(m + 216, &pid, 4); /* creatorPID */
	memcpy(m + 220, &pid, 4); /* ownerPID */
	m[224] = 1;                /* shared */
	m[240] = (unsigned char)(int8_t)-1; /* location: CPU */
	memcpy(m + 258, &sem16, 2);
	memcpy(m + 260, &proc16, 2);
	memcpy(m + 264, &cnt0, 8);
	memcpy(m + 290, &kw16, 2);
	memcpy(m + 312, &datasize, 8); /* imdatamemsize */
	for (uint64_t k = 0; k < s->nelement; k++) {
		float v = pixel_value(k);
		memcpy(m + 384 + 4 * k, &v, 4);
	}
	/* keywords: name[16], type at 16, value at 24, cnt at 40, comment at 48 */
	unsigned char *slot = m + kw;
	double exptime = 0.001;
	int64_t gain = 2;
	snprintf((char *)slot, 16, "EXPTIME");
	slot[16] = 'D';
	memcpy(slot + 24, &exptime, 8);
	snprintf((char *)slot + 48, 80, "exposure time (s)");
	slot += 128;
	snprintf((char *)slot, 16, "GAIN");
	slot[16] = 'L';
	memcpy(slot + 24, &gain, 8);
	snprintf((char *)slot + 48, 80, "camera gain");
	slot += 128;
	snprintf((char *)slot, 16, "MODE");
	slot[16] = 'S';
	snprintf((char *)slot + 24, 16, "bench");
	slot += 128;
	slot[16] = 'N'; /* unused */
	for (unsigned i = 0; i < nsem; i++)
		if (sem_init((sem_t *)(void *)(m + sems + 32 * i), 1, 0) < 0) {
			fail("sem_init in %s: %s", path, strerror(errno));
			munmap(m, s->raw_size);
			close(fd);
			return -1;
		}
	struct stat st;
	fstat(fd, &st);
	uint64_t ino = st.st_ino;
	memcpy(m + 232, &ino, 8);
	memcpy(m, "2.00", 5); /* version, written last (the rest of its 32 bytes are 0) */
	munmap(m, s->raw_size);
	close(fd);
	return 0;
}

/* Check S's view through MOUNT: begins with "SIMPLE  =", BITPIX = -32, a
 * header of whole 2880-byte blocks, a size that is a multiple of 2880 and
 * holds the pixels; and the raw file's size. Sets view_size and view_header
 * (the same through every mount). */
static int check_view(struct bench *b, struct stream *s, const char *mount)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s.im.shm", mount, s->name);
	if (stat(path, &st) < 0 || (uint64_t)st.st_size != s->raw_size) {
		fail("%s: %s (size %lld, expected %llu)", path, strerror(errno),
		     (long long)st.st_size, (unsigned long long)s->raw_size);
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s.fits", mount, s->name);
	int fd = -1;
	for (int i = 0; i < 30 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno == ENOENT; i++)
		usleep(100000); /* a name cached as missing expires within the timeout */
	if (fd < 0) {
		fail("%s: %s (no view of the stream)", path, strerror(errno));
		return -1;
	}
	ssize_t n = fstat(fd, &st) < 0 ? -1 : read(fd, b->buf, BLOCK);
	close(fd);
	if (n < FITS_BLOCK || memcmp(b->buf, "SIMPLE  =", 9) != 0) {
		fail("%s: does not begin with \"SIMPLE  =\" (read %zd bytes)", path, n);
		return -1;
	}
	uint64_t header = 0;
	int bitpix = 0;
	for (ssize_t at = 0; at + 80 <= n; at += 80) {
		const char *card = b->buf + at;
		if (!strncmp(card, "BITPIX  =", 9))
			bitpix = atoi(card + 10);
		if (!strncmp(card, "END", 3) && strspn(card + 3, " ") >= 77) {
			header = r2880((uint64_t)at + 80);
			break;
		}
	}
	uint64_t size = (uint64_t)st.st_size;
	if (!header || bitpix != -32 || size % FITS_BLOCK ||
	    size != header + r2880(4 * s->nelement)) {
		fail("%s: header %llu bytes, BITPIX %d, size %llu: not the FITS file of a %ux%u "
		     "float image", path, (unsigned long long)header, bitpix, (unsigned long long)size,
		     s->nx, s->ny);
		return -1;
	}
	if (s->view_size && (s->view_size != size || s->view_header != header)) {
		fail("%s: size %llu, header %llu differ between the mounts", path,
		     (unsigned long long)size, (unsigned long long)header);
		return -1;
	}
	s->view_size = size, s->view_header = header;
	return check_pixels(b, s, 1, b->buf, (size_t)n, 0, "view check");
}

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

	/* The streams of the view cases, and their views through each mount. */
	for (int i = 0; i < NSTREAMS; i++) {
		if (make_stream(b, &b->stream[i]) < 0)
			return -1;
		for (int m = 0; m < NMOUNTS; m++)
			if (b->mnt[m].path && check_view(b, &b->stream[i], b->mnt[m].path) < 0)
				return -1;
	}

	/* The object of the small writes, 1 MiB, stamped. */
	snprintf(path, sizeof path, "%s/%s", b->source, WRITE_NAME);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		fail("%s: %s", path, strerror(errno));
		return -1;
	}
	stamp(b->buf, WRITE_SIZE, 0);
	if (pwrite(fd, b->buf, WRITE_SIZE, 0) != (ssize_t)WRITE_SIZE) {
		fail("%s: write: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
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
	for (int i = 0; i < NSTREAMS; i++) {
		snprintf(path, sizeof path, "%s/%s.im.shm", b->source, b->stream[i].name);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/%s", b->source, WRITE_NAME);
	unlink(path);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: shmfs-bench -s SOURCE -a MOUNT_A -A PID_A [-p on|off]\n"
		   "                   [-b MOUNT_B -B PID_B -P on|off] [-l LIBFUSE]\n"
		   "                   [-n RUNS] [-k SYSV_KEY] [-o SUBSTRING] [-D DAEMON]\n"
		   "MOUNT_A: mount of SOURCE with -o passthrough=auto; MOUNT_B: with\n"
		   "-o passthrough=off (its cases are skipped without -b). DAEMON: the\n"
		   "shmfs binary, for a -d trace of small writes. Normally run by\n"
		   "tests/bench/run.\n");
}

int main(int argc, char **argv)
{
	struct bench b = {.runs = 5, .key = (key_t)0x62656e63 /* "benc" */, .shmid = -1,
			  .libfuse = "unknown",
			  .stream = {[STREAM_BIG] = {"bench-fits4k", 4096, 4096},
				     [STREAM_SMALL] = {"bench-frame4k", 32, 32}}};
	b.mnt[MOUNT_A] = (struct mount){NULL, "-o passthrough=auto", 0, "unknown"};
	b.mnt[MOUNT_B] = (struct mount){NULL, "-o passthrough=off", 0, "unknown"};
	const char *only = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "s:a:A:p:b:B:P:l:n:k:o:D:h")) != -1) {
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
		case 'D': b.daemon = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 1;
		}
	}
	if (!b.source || !b.mnt[MOUNT_A].path || b.runs < 1 || b.runs > MAX_RUNS ||
	    optind != argc) {
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
	printf("views:    X.fits of an ImageStreamIO float stream against its raw X.im.shm, both "
	       "through the same mount (\"direct\" = the raw file)\n");
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
		if (!r.error && c->annotate)
			c->annotate(&b, c, &r);
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
