/* bench_util.c - the benchmark's helpers: clock, messages, paths, the 4 KiB
 * data stamps every read checks, medians, /proc figures of the daemon, row
 * notes and the phase records of open-read-close cycles. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "shmfs-bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

const char *base_of(struct bench *b, const struct bench_case *c, enum side side)
{
	return side == DIRECT ? b->source : b->mnt[c->mount].path;
}

void path_of(char *out, size_t len, struct bench *b, const struct bench_case *c, enum side side,
	     const char *name)
{
	snprintf(out, len, "%s/%s", base_of(b, c, side), name);
}

void sysv_path(char *out, size_t len, struct bench *b, const struct bench_case *c)
{
	snprintf(out, len, "%s/sysv/0x%08x", b->mnt[c->mount].path, (unsigned)b->key);
}

/* Data check: the 8 bytes at every 4 KiB boundary of the big object hold
 * their own offset. Writers keep it so, readers check it, so a mount that
 * returns wrong bytes fast cannot pass. */
void stamp(char *buf, size_t len, uint64_t off)
{
	for (size_t i = 0; i < len; i += PAGE) {
		uint64_t v = off + i;
		memcpy(buf + i, &v, 8);
	}
}

int stamped(struct bench *b, const char *buf, size_t len, uint64_t off, const char *what)
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

double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

long proc_status_kib(pid_t pid, const char *field)
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

int count_fds(pid_t pid)
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

struct phases *new_phases(struct bench *b, enum side side)
{
	struct phases *ph = &b->ph[side][b->nph[side]++ % MAX_RUNS];
	memset(ph, 0, sizeof *ph);
	return ph;
}

/* Medians of the phases of the latest runs of SIDE (per cycle). */
struct phases median_phases(struct bench *b, enum side side)
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

void note_add(struct row *r, const char *fmt, ...)
{
	size_t used = strlen(r->note);
	if (used >= sizeof r->note - 1)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->note + used, sizeof r->note - used, fmt, ap);
	va_end(ap);
}
