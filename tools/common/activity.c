/* activity.c - processes and frame rates of the objects of a listing; see
 * activity.h. Counters are read with pread from descriptors opened once,
 * never through a mapping, so a stream shrunk or removed meanwhile cannot
 * kill the tool. */
#define _GNU_SOURCE
#include "activity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "isio.h"

static double now_monotonic(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int sleep_ms(void *arg, int ms)
{
	(void)arg;
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	return 0;
}

/* CNT0 and the write time of the stream open as FD, from two reads of its
 * metadata that agree (a frame finished between them is read again), so
 * the pair belongs to one frame. Returns 0 or -1. */
static int read_counter(int fd, uint64_t *cnt0, struct timespec *writetime)
{
	unsigned char meta[2][ISIO_META_SIZE];
	for (int tries = 0; tries < 4; tries++) {
		for (int i = 0; i < 2; i++)
			if (pread(fd, meta[i], ISIO_META_SIZE, 0) != ISIO_META_SIZE)
				return -1;
		if (memcmp(meta[0] + ISIO_OFF_WRITETIME, meta[1] + ISIO_OFF_WRITETIME, 16) == 0 &&
		    memcmp(meta[0] + ISIO_OFF_CNT0, meta[1] + ISIO_OFF_CNT0, 8) == 0) {
			struct isio_stream s;
			isio_state(meta[1], &s);
			*cnt0 = s.cnt0;
			*writetime = s.writetime;
			return 0;
		}
	}
	return -1;
}

static int is_stream(const struct obj *o)
{
	return (o->format == OBJ_STREAM || o->format == OBJ_LINK) && o->naxis &&
	       o->backend == OBJ_POSIX;
}

/* Watch the streams of OBJS for SECONDS into METERS. */
static int watch(const struct obj *objs, size_t n, double seconds, activity_wait_fn wait,
		 void *arg, struct rate_meter *meters)
{
	int *fds = malloc((n ? n : 1) * sizeof *fds);
	if (!fds)
		return -ENOMEM;
	size_t streams = 0;
	for (size_t i = 0; i < n; i++) {
		fds[i] = -1;
		if (!is_stream(&objs[i]))
			continue;
		char path[PATH_MAX * 2];
		snprintf(path, sizeof path, "%s/%s", objs[i].dir, objs[i].name);
		fds[i] = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		streams += fds[i] >= 0;
	}
	int rc = 0;
	double start = now_monotonic(), t = start;
	/* Without streams there is nothing to count, but a caller that waits
	 * (top, between refreshes) still has its interval. */
	while (streams || wait) {
		for (size_t i = 0; i < n; i++) {
			uint64_t cnt0;
			struct timespec wt;
			if (fds[i] >= 0 && read_counter(fds[i], &cnt0, &wt) == 0)
				rate_look(&meters[i], cnt0, &wt, now_monotonic());
		}
		if (t - start >= seconds)
			break;
		double left_ms = (seconds - (t - start)) * 1000;
		int ms = left_ms < ACTIVITY_LOOK_MS ? (int)left_ms + 1 : ACTIVITY_LOOK_MS;
		if ((wait ? wait : sleep_ms)(arg, ms)) {
			rc = 1;
			break;
		}
		t = now_monotonic();
	}
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
	return rc;
}

/* Devices of the POSIX objects listed (their files are what to look for). */
static size_t object_devices(const struct obj *objs, size_t n, dev_t *devs)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		if (objs[i].backend != OBJ_POSIX)
			continue;
		size_t k = 0;
		while (k < count && devs[k] != objs[i].st.st_dev)
			k++;
		if (k == count)
			devs[count++] = objs[i].st.st_dev;
	}
	return count;
}

static int uses_object(const struct proc_use *u, const struct obj *o)
{
	if (o->backend == OBJ_SYSV)
		return u->shmid >= 0 && u->shmid == o->seg.shmid;
	return u->shmid < 0 && o->format != OBJ_LINK && u->dev == o->st.st_dev &&
	       u->ino == o->st.st_ino;
}

int activity_measure(struct obj *objs, size_t n, double seconds, activity_wait_fn wait,
		     void *arg, struct activity_set *out)
{
	memset(out, 0, sizeof *out);
	out->of = calloc(n ? n : 1, sizeof *out->of);
	struct rate_meter *meters = calloc(n ? n : 1, sizeof *meters);
	dev_t *devs = calloc(n ? n : 1, sizeof *devs);
	int rc = out->of && meters && devs ? 0 : -ENOMEM;
	int early = 0;
	if (rc == 0 && seconds > 0)
		early = rc = watch(objs, n, seconds, wait, arg, meters);
	if (rc >= 0) {
		struct proc_scan_opts opts = {.proc = "/proc", .devs = devs, .sysv = 1,
					      .skip = getpid()};
		opts.ndevs = object_devices(objs, n, devs);
		rc = proc_scan(&opts, &out->uses);
	}
	/* Each object's processes: the pointers of all objects in one array. */
	size_t total = 0;
	for (size_t i = 0; rc == 0 && i < n; i++)
		for (size_t k = 0; k < out->uses.n; k++)
			total += uses_object(&out->uses.v[k], &objs[i]);
	if (rc == 0 && !(out->refs = calloc(total ? total : 1, sizeof *out->refs)))
		rc = -ENOMEM;
	for (size_t i = 0, used = 0; rc == 0 && i < n; i++) {
		struct activity *a = &out->of[i];
		a->rate = -1;
		if (is_stream(&objs[i]) && seconds > 0) {
			a->rate = rate_result(&meters[i], &a->clock);
			if (meters[i].looks) {
				objs[i].stream.cnt0 = meters[i].cnt0_end;
				objs[i].stream.writetime = meters[i].wt_end;
			}
		}
		a->procs = out->refs + used;
		for (size_t k = 0; k < out->uses.n; k++)
			if (uses_object(&out->uses.v[k], &objs[i]))
				out->refs[used + a->nprocs++] = &out->uses.v[k];
		used += a->nprocs;
	}
	free(meters);
	free(devs);
	return rc < 0 ? rc : early;
}

void activity_free(struct activity_set *s)
{
	free(s->of);
	free(s->refs);
	proc_uses_free(&s->uses);
	memset(s, 0, sizeof *s);
}

void activity_rate_text(const struct activity *a, char *buf, size_t len)
{
	if (a->rate < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, a->rate >= 100 ? "%.0f" : a->rate >= 10 ? "%.1f" : "%.2f",
			 a->rate);
}

void activity_procs_text(const struct activity *a, char *buf, size_t len)
{
	size_t used = 0;
	snprintf(buf, len, "-");
	for (size_t i = 0; i < a->nprocs && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%d/%s", i ? " " : "",
					 (int)a->procs[i]->pid, a->procs[i]->comm);
}

void activity_fields(struct rec *r, const struct activity *a)
{
	if (a->rate >= 0) {
		rec_real(r, "rate_hz", a->rate);
		rec_str(r, "rate_clock", rate_clock_name(a->clock));
	} else {
		rec_str(r, "rate_hz", NULL);
		rec_str(r, "rate_clock", NULL);
	}
	rec_array_begin(r, "processes");
	for (size_t i = 0; i < a->nprocs; i++) {
		const struct proc_use *u = a->procs[i];
		if (!r->json) {
			rec_fmt(r, "process", "%d %s (%s%s%s)", (int)u->pid, u->comm,
				u->how & PROC_USE_MAPPED ? "mapped" : "",
				u->how & PROC_USE_WRITABLE ? " writable" : "",
				u->how & PROC_USE_OPEN ? (u->how & PROC_USE_MAPPED ? ", open" : "open")
						       : "");
			continue;
		}
		rec_object_begin(r, NULL);
		rec_int(r, "pid", u->pid);
		rec_str(r, "command", u->comm);
		rec_bool(r, "mapped", (u->how & PROC_USE_MAPPED) != 0);
		rec_bool(r, "writable", (u->how & PROC_USE_WRITABLE) != 0);
		rec_bool(r, "open", (u->how & PROC_USE_OPEN) != 0);
		rec_object_end(r);
	}
	rec_array_end(r);
}
