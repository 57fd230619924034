/* isioframe.c - frames of ImageStreamIO streams: taken in a writer's gap as
 * a registered reader, waited for, and finished as a writer finishes them;
 * see isio.h. The stream's memory is untrusted and may be shrunk under the
 * mapping: every access runs under guard_call, PIDs are checked before use,
 * and semaphore counts never bound a loop. */
#define _GNU_SOURCE
#include "isio.h"

#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "guard.h"

#define SEM_POST_BELOW 10 /* writers post a semaphore only below this value */
#define DRAIN_MAX 64      /* a hostile count must not keep a reader draining */
#define SPIN_MS 1.0       /* optimistic tries before waiting on a semaphore */
#define POLL_MS 2         /* wait slice: writers that never post are polled */
#define STOP_GRACE_MS 10.0 /* a stuck write flag this long, no writer alive: stopped */

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

const char *isio_frame_why(enum isio_frame_quality q)
{
	switch (q) {
	case ISIO_FRAME_BUSY: return "writer left no gap: pixels may mix frames";
	case ISIO_FRAME_STOPPED: return "writer stopped mid-frame: pixels may be partial";
	default: return NULL;
	}
}

static int32_t *pid_at(unsigned char *map, uint64_t off, unsigned i)
{
	return (int32_t *)(void *)(map + off + 4 * (uint64_t)i);
}

static sem_t *sem_at(unsigned char *map, const struct isio_stream *s, unsigned i)
{
	return (sem_t *)(void *)(map + s->off_sems + (uint64_t)i * ISIO_SEM_SIZE);
}

/* Whether process or thread P exists and is not a zombie (a writer killed
 * but not yet reaped is as dead as one reaped). */
static int task_alive(int32_t p)
{
	if (p <= 0)
		return 0;
	char path[48], buf[128];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)p);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno != ENOENT && errno != ESRCH;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	const char *paren = strrchr(buf, ')');
	return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

/* ---- the reader's slot ---- */

struct claim_ctx {
	struct isio_reader *r;
};

static void claim(void *arg)
{
	struct isio_reader *r = ((struct claim_ctx *)arg)->r;
	const struct isio_stream *s = r->s;
	for (unsigned pass = 0; pass < 2 && r->slot < 0; pass++) {
		for (unsigned i = 0; i < s->nsem; i++) {
			int32_t *p = pid_at(r->map, s->off_readpids, i);
			int32_t v = __atomic_load_n(p, __ATOMIC_ACQUIRE);
			/* pass 0: a slot this thread left behind; pass 1: a free one */
			int take = pass == 0 ? v == r->tid : (v <= 0 || !task_alive(v));
			if (take && __atomic_compare_exchange_n(p, &v, r->tid, 0, __ATOMIC_ACQ_REL,
								__ATOMIC_ACQUIRE)) {
				r->slot = (int)i;
				break;
			}
		}
	}
	if (r->slot < 0)
		return;
	sem_t *sem = sem_at(r->map, s, (unsigned)r->slot);
	for (int i = 0; i < DRAIN_MAX && sem_trywait(sem) == 0; i++)
		;
}

int isio_reader_attach(struct isio_reader *r, void *map, size_t map_len,
		       const struct isio_stream *s, int writable)
{
	r->map = map;
	r->map_len = map_len;
	r->s = s;
	r->slot = -1;
	r->tid = (int32_t)gettid();
	if (map_len < s->file_size)
		return -EFAULT;
	if (!writable || s->nsem == 0)
		return 0;
	struct claim_ctx c = {r};
	if (guard_call(claim, &c) < 0) {
		r->slot = -1;
		return -EFAULT;
	}
	return 0;
}

static void release(void *arg)
{
	struct isio_reader *r = arg;
	int32_t *p = pid_at(r->map, r->s->off_readpids, (unsigned)r->slot);
	int32_t mine = r->tid;
	__atomic_compare_exchange_n(p, &mine, 0, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void isio_reader_detach(struct isio_reader *r)
{
	if (r->slot >= 0)
		guard_call(release, r);
	r->slot = -1;
}

struct wait_ctx {
	sem_t *sem;
	struct timespec until;
	int posted;
};

static void sem_wait_until(void *arg)
{
	struct wait_ctx *w = arg;
	int rc;
	while ((rc = sem_clockwait(w->sem, CLOCK_MONOTONIC, &w->until)) < 0 && errno == EINTR)
		;
	w->posted = rc == 0;
}

int isio_reader_wait(struct isio_reader *r, int timeout_ms)
{
	if (timeout_ms < 0)
		timeout_ms = 0;
	if (r->slot < 0) {
		struct timespec pause = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
		nanosleep(&pause, NULL);
		return 0;
	}
	struct wait_ctx w = {sem_at(r->map, r->s, (unsigned)r->slot), {0, 0}, 0};
	clock_gettime(CLOCK_MONOTONIC, &w.until);
	w.until.tv_sec += timeout_ms / 1000;
	w.until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (w.until.tv_nsec >= 1000000000L) {
		w.until.tv_sec++;
		w.until.tv_nsec -= 1000000000L;
	}
	if (guard_call(sem_wait_until, &w) < 0)
		return -EFAULT;
	return w.posted;
}

/* ---- taking a frame ---- */

struct frame_ctx {
	unsigned char *map;
	const struct isio_stream *s;
	isio_copy_fn copy;
	void *arg;
	unsigned char *meta;
	uint64_t cnt0_after;
	int write_after;
	int whole;
};

/* One try: a gap (write == 0) seen in META, the copy, then the flag and the
 * counter again. */
static void try_frame(void *arg)
{
	struct frame_ctx *c = arg;
	memcpy(c->meta, c->map, ISIO_META_SIZE);
	c->whole = 0;
	if (c->meta[ISIO_OFF_WRITE])
		return;
	uint64_t cnt0 = get_u64(c->meta, ISIO_OFF_CNT0);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	c->copy(c->map + c->s->off_data, c->arg);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	/* Flag first, then counter: in the other order a frame can finish
	 * between the two loads and pass for the frame we started from. */
	c->write_after = __atomic_load_n(c->map + ISIO_OFF_WRITE, __ATOMIC_ACQUIRE);
	c->cnt0_after = __atomic_load_n((const uint64_t *)(const void *)(c->map + ISIO_OFF_CNT0),
					__ATOMIC_ACQUIRE);
	c->whole = c->cnt0_after == cnt0 && !c->write_after;
}

/* The frame as it stands, whole or not. */
static void copy_as_is(void *arg)
{
	struct frame_ctx *c = arg;
	memcpy(c->meta, c->map, ISIO_META_SIZE);
	c->copy(c->map + c->s->off_data, c->arg);
}

struct alive_ctx {
	unsigned char *map;
	const struct isio_stream *s;
	int32_t pids[2 + 64];
	unsigned n;
};

static void collect_writers(void *arg)
{
	struct alive_ctx *a = arg;
	a->n = 0;
	a->pids[a->n++] = (int32_t)get_u32(a->map, ISIO_OFF_CREATORPID);
	a->pids[a->n++] = (int32_t)get_u32(a->map, ISIO_OFF_OWNERPID);
	for (unsigned i = 0; i < a->s->nsem && a->n < sizeof a->pids / sizeof *a->pids; i++)
		a->pids[a->n++] = __atomic_load_n(pid_at(a->map, a->s->off_writepids, i),
						  __ATOMIC_RELAXED);
}

/* Whether a process that may write the stream is alive: its creator, its
 * owner, or one that posted its semaphores (ImageStreamIO records those).
 * Returns 1, 0, or -EFAULT. */
static int writer_alive(unsigned char *map, const struct isio_stream *s)
{
	struct alive_ctx a = {map, s, {0}, 0};
	if (guard_call(collect_writers, &a) < 0)
		return -EFAULT;
	for (unsigned i = 0; i < a.n; i++) {
		int dup = 0;
		for (unsigned j = 0; j < i && !dup; j++)
			dup = a.pids[j] == a.pids[i];
		if (!dup && task_alive(a.pids[i]))
			return 1;
	}
	return 0;
}

int isio_take_frame(void *map, size_t map_len, const struct isio_stream *s, int writable,
		    isio_copy_fn copy, void *arg, unsigned char *meta, int max_wait_ms,
		    enum isio_frame_quality *q)
{
	if (map_len < s->file_size)
		return -EFAULT;
	struct frame_ctx c = {map, s, copy, arg, meta, 0, 0, 0};
	double start = now_ms(), deadline = start + (max_wait_ms > 0 ? max_wait_ms : 0);
	double spin_end = start + (max_wait_ms < SPIN_MS ? max_wait_ms : SPIN_MS);
	*q = ISIO_FRAME_WHOLE;
	/* Frames come microseconds apart from a writer in a tight loop: try at
	 * once, and a little longer, before registering. */
	do {
		if (guard_call(try_frame, &c) < 0)
			return -EFAULT;
		if (c.whole)
			return 0;
	} while (now_ms() < spin_end);

	struct isio_reader r;
	if (isio_reader_attach(&r, map, map_len, s, writable) < 0)
		return -EFAULT;
	int rc = 0;
	uint64_t stuck_cnt0 = get_u64(meta, ISIO_OFF_CNT0);
	double stuck_since = meta[ISIO_OFF_WRITE] ? now_ms() : -1, checked = 0;
	for (;;) {
		double t = now_ms();
		if (t >= deadline) {
			*q = ISIO_FRAME_BUSY;
			break;
		}
		/* A write flag that stays up, the counter still: a writer that
		 * died mid-frame, unless one of its processes is alive. */
		if (meta[ISIO_OFF_WRITE] && get_u64(meta, ISIO_OFF_CNT0) == stuck_cnt0) {
			if (stuck_since < 0)
				stuck_since = t;
			if (t - stuck_since >= STOP_GRACE_MS && t - checked >= STOP_GRACE_MS) {
				checked = t;
				int alive = writer_alive(map, s);
				if (alive < 0) {
					rc = -EFAULT;
					break;
				}
				if (!alive) {
					*q = ISIO_FRAME_STOPPED;
					break;
				}
			}
		} else {
			stuck_cnt0 = get_u64(meta, ISIO_OFF_CNT0);
			stuck_since = -1;
		}
		double left = deadline - t;
		int slice = left < POLL_MS ? (int)left + 1 : POLL_MS;
		if (isio_reader_wait(&r, slice) < 0) {
			rc = -EFAULT;
			break;
		}
		if (guard_call(try_frame, &c) < 0) {
			rc = -EFAULT;
			break;
		}
		if (c.whole)
			break;
	}
	isio_reader_detach(&r);
	if (rc == 0 && !c.whole && guard_call(copy_as_is, &c) < 0)
		rc = -EFAULT;
	return rc;
}

static void read_state(void *arg)
{
	struct frame_ctx *c = arg;
	c->write_after = __atomic_load_n(c->map + ISIO_OFF_WRITE, __ATOMIC_ACQUIRE);
	c->cnt0_after = __atomic_load_n((const uint64_t *)(const void *)(c->map + ISIO_OFF_CNT0),
					__ATOMIC_ACQUIRE);
}

int isio_wait_frame(void *map, size_t map_len, const struct isio_stream *s, int writable,
		    uint64_t cnt0, int timeout_ms, uint64_t *now)
{
	struct isio_reader r;
	if (isio_reader_attach(&r, map, map_len, s, writable) < 0)
		return -EFAULT;
	struct frame_ctx c = {map, s, NULL, NULL, NULL, 0, 0, 0};
	double deadline = now_ms() + timeout_ms;
	int rc;
	for (;;) {
		/* Registered first, then looked: a frame posted in between is
		 * seen now or wakes the wait. */
		if (guard_call(read_state, &c) < 0) {
			rc = -EFAULT;
			break;
		}
		if (c.cnt0_after != cnt0 && !c.write_after) {
			*now = c.cnt0_after;
			rc = 0;
			break;
		}
		double left = timeout_ms < 0 ? 1000 : deadline - now_ms();
		if (left <= 0) {
			rc = -ETIMEDOUT;
			break;
		}
		/* Writers that never post are seen within 20 ms. */
		if (isio_reader_wait(&r, left < 20 ? (int)left + 1 : 20) < 0) {
			rc = -EFAULT;
			break;
		}
	}
	isio_reader_detach(&r);
	return rc;
}

/* ---- writing a frame ---- */

struct write_ctx {
	unsigned char *map;
	const struct isio_stream *s;
	int begin;
};

static void frame_update(void *arg)
{
	struct write_ctx *c = arg;
	unsigned char *m = c->map;
	if (c->begin) {
		__atomic_store_n(m + ISIO_OFF_WRITE, 1, __ATOMIC_RELEASE);
		return;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t t[2] = {(int64_t)now.tv_sec, (int64_t)now.tv_nsec};
	memcpy(m + ISIO_OFF_WRITETIME, t, sizeof t);
	memcpy(m + ISIO_OFF_ATIME, t, sizeof t);
	__atomic_fetch_add((uint64_t *)(void *)(m + ISIO_OFF_CNT0), 1, __ATOMIC_RELEASE);
	__atomic_store_n(m + ISIO_OFF_WRITE, 0, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < c->s->nsem; i++) {
		sem_t *sem = sem_at(m, c->s, i);
		int value = 0;
		if (sem_getvalue(sem, &value) == 0 && value < SEM_POST_BELOW)
			sem_post(sem);
	}
}

int isio_frame_begin(void *map, size_t map_len, const struct isio_stream *s)
{
	if (map_len < s->file_size)
		return -EFAULT;
	struct write_ctx c = {map, s, 1};
	return guard_call(frame_update, &c);
}

int isio_frame_end(void *map, size_t map_len, const struct isio_stream *s)
{
	if (map_len < s->file_size)
		return -EFAULT;
	struct write_ctx c = {map, s, 0};
	return guard_call(frame_update, &c);
}
