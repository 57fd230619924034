/* bench_writes.c - the small-write cases: 4 KiB pwrite()s over a 1 MiB
 * object, and what the daemon receives meanwhile, counted in the -d trace
 * of a mount made for it; with the object's setup. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

/* PARAM pwrite()s of 4 KiB cycling over the 1 MiB object WRITE_NAME, each
 * stamped with its offset: on SOURCE, or through the mount. */
double small_writes(struct bench *b, const struct bench_case *c, enum side side)
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
	int fd = -1;
	long getxattr = -1, first = -1, writes = -1, all = -1;
	char *text = NULL;
	const char *why = NULL;
	pid_t pid = daemon_start((const char *[]){b->daemon, "-d", "-o", opt,
					    b->source, mnt, NULL},
				 mnt, log, &why);
	if (pid < 0)
		goto out;
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
	if (pid > 0)
		daemon_stop(pid, mnt);
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

void write_trace_note(struct bench *b, const struct bench_case *c, struct row *r)
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

/* The object of the small writes, 1 MiB, stamped. */
int writes_setup(struct bench *b)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->source, WRITE_NAME);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
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

void writes_teardown(struct bench *b)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->source, WRITE_NAME);
	unlink(path);
}
