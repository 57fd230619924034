/* bench_scale.c - what a big SOURCE costs (issue 13): ls -l and stat() in a
 * directory of 1,000,000 empty objects, each mount run on a fresh daemon
 * (cold: the kernel has no name of it cached), with the daemon's memory per
 * node, its descriptors and threads before and after, open, read, create and
 * remove through it after the listing, and its exit status at unmount; and
 * ls -l of 10,000 System V segments against ipcs -m, and a read of each.
 *
 * The million objects live in a tmpfs of the benchmark's own (its mount
 * namespace is private), made when a case first needs them and unmounted at
 * the end; the segments in its IPC namespace, whose kernel.shmmni is raised
 * for them. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mount.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MILLION 1000000
#define MILLION_STAT "obj0500000"
#define MILLION_READ "obj0000007" /* the one object with content */
#define SEGMENTS 10000
#define SEG_KEY0 0x5c000000
#define SEG_SIZE 4096

struct scale {
	char top[64];      /* a directory of the benchmark's own under /tmp: */
	char src[96];      /* ... a tmpfs holding d/ with the million objects */
	char mnt[96];      /* ... where each run's daemon mounts it */
	char log[96];      /* ... and that daemon's log */
	int have_tmpfs, have_million;
	/* what the mount runs of ls -l saw, one entry per run */
	double per_node[MAX_RUNS + 1];
	int fds_before[MAX_RUNS + 1], fds_after[MAX_RUNS + 1];
	long threads_before[MAX_RUNS + 1], threads_after[MAX_RUNS + 1];
	int runs;
	int shmid[SEGMENTS];
	int nsegs;
};

static struct scale *scale_of(struct bench *b)
{
	if (!b->scale) {
		b->scale = calloc(1, sizeof *b->scale);
		if (b->scale)
			for (int i = 0; i < SEGMENTS; i++)
				b->scale->shmid[i] = -1;
	}
	return b->scale;
}

/* The private tmpfs and its million empty objects (one holds "seven"). */
static int million_setup(struct bench *b, const char *what)
{
	struct scale *s = scale_of(b);
	if (!s) {
		fail("%s: out of memory", what);
		return -1;
	}
	if (s->have_million)
		return 0;
	if (!b->daemon) {
		fail("%s: needs the daemon's path (-D DAEMON) for its fresh mounts", what);
		return -1;
	}
	snprintf(s->top, sizeof s->top, "/tmp/shmfs-bench-scale.XXXXXX");
	if (!mkdtemp(s->top)) {
		fail("%s: mkdtemp: %s", what, strerror(errno));
		return -1;
	}
	snprintf(s->src, sizeof s->src, "%s/src", s->top);
	snprintf(s->mnt, sizeof s->mnt, "%s/mnt", s->top);
	snprintf(s->log, sizeof s->log, "%s/daemon.log", s->top);
	if (mkdir(s->src, 0755) < 0 || mkdir(s->mnt, 0755) < 0 ||
	    mount("tmpfs", s->src, "tmpfs", 0, "size=4g,nr_inodes=0,mode=0755") < 0) {
		fail("%s: a tmpfs at %s: %s", what, s->src, strerror(errno));
		return -1;
	}
	s->have_tmpfs = 1;
	char dir[160];
	snprintf(dir, sizeof dir, "%s/d", s->src);
	fprintf(stderr, "shmfs-bench: making %d empty objects in a private tmpfs\n", MILLION);
	int dfd = mkdir(dir, 0755) < 0 ? -1 : open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (int i = 0; dfd >= 0 && i < MILLION; i++) {
		char name[16];
		snprintf(name, sizeof name, "obj%07d", i);
		if (mknodat(dfd, name, S_IFREG | 0644, 0) < 0) {
			fail("%s: %s/%s: %s", what, dir, name, strerror(errno));
			close(dfd);
			return -1;
		}
	}
	if (dfd < 0) {
		fail("%s: %s: %s", what, dir, strerror(errno));
		return -1;
	}
	close(dfd);
	char path[200];
	snprintf(path, sizeof path, "%s/" MILLION_READ, dir);
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "seven", 5) != 5) {
		fail("%s: %s: %s", what, path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	s->have_million = 1;
	return 0;
}

/* A fresh daemon over the private tmpfs, on S->mnt: its pid, or -1. */
static pid_t fresh_mount(struct bench *b, const char *what)
{
	struct scale *s = b->scale;
	const char *why;
	pid_t pid = daemon_start((const char *[]){b->daemon, "-f", "-o", "passthrough=auto",
					    s->src, s->mnt, NULL},
				 s->mnt, s->log, &why);
	if (pid < 0)
		fail("%s: mounting %s: %s (log %s)", what, s->src, why, s->log);
	return pid;
}

/* Unmount it: 0 when the daemon exited 0, else -1 (said). */
static int fresh_unmount(struct bench *b, pid_t pid, const char *what)
{
	int status = daemon_stop(pid, b->scale->mnt);
	if (status < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail("%s: the daemon did not exit 0 at unmount (wait status %d; log %s)", what,
		     status, b->scale->log);
		return -1;
	}
	return 0;
}

/* After the listing, what a user does next works: open and read an object,
 * create one, see it in SOURCE, remove it. 0 or -1 (said). */
static int use_after_listing(struct bench *b, const char *what)
{
	struct scale *s = b->scale;
	char path[200], back[16] = "";
	errno = 0;
	snprintf(path, sizeof path, "%s/d/" MILLION_READ, s->mnt);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, back, sizeof back - 1);
	if (fd >= 0)
		close(fd);
	if (n != 5 || memcmp(back, "seven", 5) != 0)
		goto bad;
	snprintf(path, sizeof path, "%s/d/bench-new", s->mnt);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	n = fd < 0 ? -1 : write(fd, "new", 3);
	if (fd < 0 || close(fd) < 0 || n != 3)
		goto bad;
	snprintf(path, sizeof path, "%s/d/bench-new", s->src);
	struct stat st;
	if (stat(path, &st) < 0 || st.st_size != 3)
		goto bad;
	snprintf(path, sizeof path, "%s/d/bench-new", s->mnt);
	if (unlink(path) < 0)
		goto bad;
	return 0;
bad:
	fail("%s: after the listing, %s: %s", what, path, errno ? strerror(errno) : "wrong data");
	return -1;
}

double million_ls(struct bench *b, const struct bench_case *c, enum side side)
{
	if (million_setup(b, c->name) < 0)
		return -1;
	struct scale *s = b->scale;
	char dir[160];
	if (side == DIRECT) {
		snprintf(dir, sizeof dir, "%s/d", s->src);
		return run_program(c->name, (const char *[]){"ls", "-l", dir, NULL});
	}
	pid_t pid = fresh_mount(b, c->name);
	if (pid < 0)
		return -1;
	int k = s->runs % (MAX_RUNS + 1);
	long rss0 = proc_status_kib(pid, "VmRSS");
	s->fds_before[k] = count_fds(pid);
	s->threads_before[k] = proc_status_kib(pid, "Threads");
	snprintf(dir, sizeof dir, "%s/d", s->mnt);
	double t = run_program(c->name, (const char *[]){"ls", "-l", dir, NULL});
	long rss1 = proc_status_kib(pid, "VmRSS");
	s->fds_after[k] = count_fds(pid);
	s->threads_after[k] = proc_status_kib(pid, "Threads");
	s->per_node[k] = (double)(rss1 - rss0) * 1024.0 / (MILLION + 1.0);
	int bad = t < 0 || use_after_listing(b, c->name) < 0;
	if (fresh_unmount(b, pid, c->name) < 0 || bad)
		return -1;
	s->runs++;
	return t;
}

double million_stat(struct bench *b, const struct bench_case *c, enum side side)
{
	if (million_setup(b, c->name) < 0)
		return -1;
	struct scale *s = b->scale;
	char path[200];
	pid_t pid = side == MOUNT ? fresh_mount(b, c->name) : 0;
	if (pid < 0)
		return -1;
	snprintf(path, sizeof path, "%s/d/" MILLION_STAT, side == MOUNT ? s->mnt : s->src);
	struct stat st;
	int bad = 0;
	double t0 = now();
	for (long i = 0; i < c->param && !bad; i++)
		bad = stat(path, &st) < 0;
	double t = now() - t0;
	if (bad)
		fail("%s: stat %s: %s", c->name, path, strerror(errno));
	if (pid > 0 && fresh_unmount(b, pid, c->name) < 0)
		return -1;
	return bad ? -1 : t;
}

/* The mount runs of the ls -l case, or one now if it did not run. */
static int listing_runs(struct bench *b, const struct bench_case *c)
{
	if ((!b->scale || b->scale->runs == 0) && million_ls(b, c, MOUNT) < 0)
		return -1;
	int n = b->scale->runs < MAX_RUNS + 1 ? b->scale->runs : MAX_RUNS + 1;
	return n;
}

int million_memory(struct bench *b, const struct bench_case *c, struct row *r)
{
	int n = listing_runs(b, c);
	if (n < 0)
		return -1;
	double v[MAX_RUNS + 1];
	memcpy(v, b->scale->per_node, sizeof v);
	r->value = median(v, n);
	snprintf(r->direct_s, sizeof r->direct_s, "-");
	snprintf(r->mount_s, sizeof r->mount_s, "%.0f B per node", r->value);
	snprintf(r->ratio_s, sizeof r->ratio_s, "-");
	snprintf(r->note, sizeof r->note,
		 "daemon VmRSS growth over one ls -l of the million on a fresh mount, divided by "
		 "the %d nodes it made; median of %d runs, %.0f-%.0f B", MILLION + 1, n, v[0],
		 v[n - 1]);
	return 0;
}

int million_descriptors(struct bench *b, const struct bench_case *c, struct row *r)
{
	int n = listing_runs(b, c);
	if (n < 0)
		return -1;
	struct scale *s = b->scale;
	int most = 0;
	long threads_most = 0;
	for (int i = 0; i < n; i++) {
		most = s->fds_after[i] > most ? s->fds_after[i] : most;
		threads_most = s->threads_after[i] > threads_most ? s->threads_after[i] : threads_most;
	}
	r->value = most;
	snprintf(r->direct_s, sizeof r->direct_s, "-");
	snprintf(r->mount_s, sizeof r->mount_s, "%d fds", most);
	snprintf(r->ratio_s, sizeof r->ratio_s, "-");
	snprintf(r->note, sizeof r->note,
		 "the most open descriptors after ls -l of the million, over %d fresh mounts; "
		 "last run: fds %d -> %d, threads %ld -> %ld (at most %ld after); every daemon "
		 "exited 0 at unmount",
		 n, s->fds_before[n - 1], s->fds_after[n - 1], s->threads_before[n - 1],
		 s->threads_after[n - 1], threads_most);
	return 0;
}

void million_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	(void)b, (void)c;
	note_add(r, "; SOURCE: a private tmpfs of %d empty objects in one directory; each mount "
		    "run on a fresh daemon (-o passthrough=auto), so nothing is cached; after each "
		    "listing an object is opened and read, one created (seen in SOURCE) and "
		    "removed through the mount, and the daemon exits 0 at unmount",
		 MILLION);
}

/* 10,000 segments of 4 KiB, each holding its number, in the benchmark's
 * IPC namespace, whose kernel.shmmni (4096 by default) is raised for them. */
static int segments_setup(struct bench *b, const char *what)
{
	struct scale *s = scale_of(b);
	if (!s) {
		fail("%s: out of memory", what);
		return -1;
	}
	if (s->nsegs == SEGMENTS)
		return 0;
	FILE *f = fopen("/proc/sys/kernel/shmmni", "w");
	if (!f || fprintf(f, "%d\n", 32768) < 0 || fclose(f) != 0) {
		fail("%s: cannot raise kernel.shmmni in the benchmark's IPC namespace", what);
		return -1;
	}
	for (; s->nsegs < SEGMENTS; s->nsegs++) {
		int i = s->nsegs;
		s->shmid[i] = shmget(SEG_KEY0 + i, SEG_SIZE, IPC_CREAT | IPC_EXCL | 0644);
		char *p = s->shmid[i] < 0 ? (void *)-1 : shmat(s->shmid[i], NULL, 0);
		if (p == (void *)-1) {
			fail("%s: segment %d: %s", what, i, strerror(errno));
			return -1;
		}
		memcpy(p, &i, sizeof i);
		shmdt(p);
	}
	return 0;
}

double segments_ls(struct bench *b, const struct bench_case *c, enum side side)
{
	if (segments_setup(b, c->name) < 0)
		return -1;
	char dir[4096];
	if (side == DIRECT)
		return run_program(c->name, (const char *[]){"ipcs", "-m", NULL});
	snprintf(dir, sizeof dir, "%s/sysv", b->mnt[c->mount].path);
	return run_program(c->name, (const char *[]){"ls", "-l", dir, NULL});
}

double segments_read(struct bench *b, const struct bench_case *c, enum side side)
{
	if (segments_setup(b, c->name) < 0)
		return -1;
	char buf[SEG_SIZE + 1], path[4096];
	int bad = 0;
	double t0 = now();
	for (int i = 0; i < SEGMENTS && !bad; i++) {
		int got = -1;
		if (side == DIRECT) {
			int id = shmget(SEG_KEY0 + i, 0, 0);
			char *p = id < 0 ? (void *)-1 : shmat(id, NULL, SHM_RDONLY);
			if (p != (void *)-1) {
				memcpy(buf, p, SEG_SIZE);
				shmdt(p);
				got = SEG_SIZE;
			}
		} else {
			snprintf(path, sizeof path, "%s/sysv/0x%08x", b->mnt[c->mount].path,
				 (unsigned)(SEG_KEY0 + i));
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			got = fd < 0 ? -1 : (int)read(fd, buf, sizeof buf);
			if (fd >= 0)
				close(fd);
		}
		int mark;
		memcpy(&mark, buf, sizeof mark);
		bad = got != SEG_SIZE || mark != i;
		if (bad)
			fail("%s: segment 0x%08x read %s", c->name, (unsigned)(SEG_KEY0 + i),
			     got < 0 ? strerror(errno) : "wrong");
	}
	double t = now() - t0;
	return bad ? -1 : t;
}

void segments_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	(void)b, (void)c;
	note_add(r, "; %d segments of %d bytes in the benchmark's IPC namespace (kernel.shmmni "
		    "raised there), the System V directory of mount A",
		 SEGMENTS, SEG_SIZE);
}

void scale_teardown(struct bench *b)
{
	struct scale *s = b->scale;
	if (!s)
		return;
	for (int i = 0; i < SEGMENTS; i++)
		if (s->shmid[i] >= 0)
			shmctl(s->shmid[i], IPC_RMID, NULL);
	if (s->have_tmpfs && umount2(s->src, 0) < 0)
		umount2(s->src, MNT_DETACH);
	if (s->top[0]) {
		unlink(s->log);
		rmdir(s->mnt);
		rmdir(s->src);
		rmdir(s->top);
	}
	free(s);
	b->scale = NULL;
}
