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
 * Files: this one runs the table of cases and prints it; bench_util.c holds
 * the helpers, and each other bench_*.c the cases of one kind of work
 * (bench_posix.c, bench_views.c, bench_writes.c, bench_load.c, bench_scale.c)
 * with the setup of the objects they use; bench_spawn.c runs programs and
 * daemons of its own. bench.h is what they share.
 *
 * Adding a case: write a run function (one timed run of one side, returns
 * seconds) or a measure function (fills a whole row) in the bench_*.c of its
 * kind, declare it in bench.h, and add a line to cases[] below.
 *
 * Exit status: 0 when every case ran (whatever PASS or FAIL says), 1 on a
 * usage or setup error, 2 when some case could not run or read wrong bytes. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

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
	/* views (issues 4, 11): the view against the raw stream file, both through the mount */
	{"FITS view of a 4096x4096 float stream, unchanged frame, read whole", MOUNT_A, RATE, 0.80,
	 4096.0 * 4096 * 4, "GiB/s", GiB, fits_view_read, NULL, 0, NULL, fits_view_note},
	{"FITS view of a 4096x4096 float stream, new frame before each open, read whole", MOUNT_A,
	 RATE, 0.50, 4096.0 * 4096 * 4, "GiB/s", GiB, fits_view_read, NULL, 1, NULL,
	 fits_view_note},
	{"4 KiB-frame stream view: open, read, close x5000", MOUNT_A, TIME, 2.0, 0, NULL, 0,
	 frame_view_loop, NULL, 5000, "raw", frame_view_note},
	{"4 KiB pwrite x20000", MOUNT_A, INFO, 0, 20000, "k writes/s", 1000, small_writes, NULL,
	 20000, NULL, write_trace_note},
	/* loading by copying: cp of a FITS file onto X.fits, against cp to a plain file */
	{"cp of a 2048x2048 float32 FITS file onto an existing stream's .fits (update in place)",
	 MOUNT_A, RATE, 0.50, LOAD_FITS_SIZE, "MiB/s", 1 << 20, load_update, NULL, 0, NULL, load_note},
	{"cp of the same FITS file onto a new stream's .fits (stream removed between runs)",
	 MOUNT_A, INFO, 0, LOAD_FITS_SIZE, "MiB/s", 1 << 20, load_new, NULL, 0, NULL, load_note},
	/* scale (issue 13): a million objects, each mount run on a fresh daemon; 10,000 segments */
	{"ls -l of 1,000,000 empty objects, cold (a fresh mount each run)", MOUNT_A, TIME, 2.0, 0,
	 NULL, 0, million_ls, NULL, 0, NULL, million_note},
	{"stat() of one of 1,000,000 objects x5000, cold (a fresh mount each run)", MOUNT_A, TIME,
	 2.0, 0, NULL, 0, million_stat, NULL, 5000, NULL, NULL},
	{"daemon memory per node after ls -l of 1,000,000", MOUNT_A, LIMIT, 1024, 0, "B/node", 0,
	 NULL, million_memory, 0, NULL, NULL},
	{"daemon descriptors after ls -l of 1,000,000", MOUNT_A, LIMIT, 64, 0, "fds", 0, NULL,
	 million_descriptors, 0, NULL, NULL},
	{"ls -l of 10,000 System V segments", MOUNT_A, TIME, 3.0, 0, NULL, 0, segments_ls, NULL, 0,
	 "ipcs -m", segments_note},
	{"read each of 10,000 System V segments (open, read 4 KiB, close)", MOUNT_A, TIME_INFO, 0, 0,
	 NULL, 0, segments_read, NULL, 0, "shmat", segments_note},
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
	case LIMIT:
		snprintf(r->target_s, sizeof r->target_s, "<= %.0f %s", c->target, c->unit);
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

static int setup(struct bench *b)
{
	if (posix_setup(b) < 0 || views_setup(b) < 0 || writes_setup(b) < 0 ||
	    load_setup(b) < 0)
		return -1;
	return 0;
}

static void teardown(struct bench *b)
{
	posix_teardown(b);
	views_teardown(b);
	writes_teardown(b);
	load_teardown(b);
	scale_teardown(b);
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
	printf("load:     a FITS file copied onto MOUNT/X.fits (loading stream X) against the same "
	       "copy to a plain file in SOURCE\n");
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
