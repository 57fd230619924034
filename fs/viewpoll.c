/* viewpoll.c - poll, select and epoll on open stream views: readable
 * (POLLIN | POLLPRI) once a frame newer than the one the open holds has been
 * posted, and not before. Other files (raw files, views without a frame
 * counter) are always ready, as regular files are.
 *
 * A POLL request that finds no newer frame leaves its poll handle with the
 * stream's watch: one thread per polled stream, registered on it as an
 * ImageStreamIO reader (isio_reader_*: a semaphore slot of its own, woken by
 * the writer's post), which notifies the kernel (fuse_lowlevel_notify_poll)
 * when the counter moves past what a poller holds; the kernel then asks
 * again. Writers that never post are seen within 20 ms. A watch with no
 * poller left for a while ends.
 *
 * Locks: poll_lock guards the watch list, each watch's pollers and its
 * state; it is taken with no other lock held, and nothing else is taken
 * under it but what fuse_lowlevel_notify_poll takes. */
#define _GNU_SOURCE
#include "viewint.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

#define WATCH_SLICE_MS 20 /* how often a watch looks without a post */
#define WATCH_IDLE_MS 2000 /* a watch without pollers ends after this */

struct poller {
	struct poller *next;
	struct handle *h;            /* whose poll this is (identity only) */
	struct fuse_pollhandle *ph;  /* owned */
	uint64_t cnt0;               /* the frame the open holds */
};

struct watch {
	struct watch *next;
	dev_t dev;
	ino_t ino;
	int fd;                      /* the stream, read-write (the thread's) */
	struct poller *pollers;      /* poll_lock */
	int stopping;                /* poll_lock */
	pthread_t thread;
};

static pthread_mutex_t poll_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t poll_ended = PTHREAD_COND_INITIALIZER;
static struct watch *watches;   /* poll_lock */
static unsigned running;        /* poll_lock: watch threads alive */

static const unsigned ready_mask = POLLIN | POLLPRI | POLLRDNORM;

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The counter of the stream open at FD now. Returns 0, -ENOENT when the
 * stream was removed (a re-created one is another file: reopen the view to
 * see it), or -EIO. */
static int stream_cnt0(int fd, uint64_t *cnt0)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_nlink == 0)
		return -ENOENT;
	return pread(fd, cnt0, sizeof *cnt0, ISIO_OFF_CNT0) == (ssize_t)sizeof *cnt0 ? 0 : -EIO;
}

/* Notify and drop every poller of W whose frame is not CNT0 (ALL: every
 * poller). Caller holds poll_lock. */
static void wake_newer(struct watch *w, uint64_t cnt0, int all)
{
	for (struct poller **pp = &w->pollers; *pp;) {
		struct poller *p = *pp;
		if (p->cnt0 == cnt0 && !all) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		fuse_lowlevel_notify_poll(p->ph);
		fuse_pollhandle_destroy(p->ph);
		free(p);
	}
}

/* Take the watch out of the list. Caller holds poll_lock. */
static void watch_unlist(struct watch *w)
{
	for (struct watch **pp = &watches; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
}

static void *watch_run(void *arg)
{
	struct watch *w = arg;
	struct stat st;
	unsigned char meta[ISIO_META_SIZE];
	struct isio_stream s;
	char why[160];
	void *map = MAP_FAILED;
	size_t len = 0;
	struct isio_reader r = {.slot = -1};
	if (fstat(w->fd, &st) == 0 && pread(w->fd, meta, sizeof meta, 0) == (ssize_t)sizeof meta &&
	    isio_parse(meta, sizeof meta, (uint64_t)st.st_size, &s, why, sizeof why) == 0) {
		len = (size_t)st.st_size;
		map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, 0);
	}
	if (map != MAP_FAILED && isio_reader_attach(&r, map, len, &s, 1) < 0)
		r.slot = -1;
	double idle_since = -1;
	for (;;) {
		uint64_t cnt0 = 0;
		int rc = stream_cnt0(w->fd, &cnt0);
		pthread_mutex_lock(&poll_lock);
		if (rc == 0)
			wake_newer(w, cnt0, 0);
		double t = now_ms();
		if (w->pollers)
			idle_since = -1;
		else if (idle_since < 0)
			idle_since = t;
		if (w->stopping || rc < 0 || (idle_since >= 0 && t - idle_since > WATCH_IDLE_MS)) {
			/* Gone, stopped or idle: pollers left are told to look
			 * again (they find the stream as it is). */
			wake_newer(w, cnt0, 1);
			if (!w->stopping)
				watch_unlist(w);
			pthread_mutex_unlock(&poll_lock);
			break;
		}
		pthread_mutex_unlock(&poll_lock);
		if (map != MAP_FAILED)
			isio_reader_wait(&r, WATCH_SLICE_MS);
		else
			isio_reader_wait(&(struct isio_reader){.slot = -1}, WATCH_SLICE_MS);
	}
	isio_reader_detach(&r);
	if (map != MAP_FAILED)
		munmap(map, len);
	close(w->fd);
	free(w);
	pthread_mutex_lock(&poll_lock);
	running--;
	pthread_cond_broadcast(&poll_ended);
	pthread_mutex_unlock(&poll_lock);
	return NULL;
}

/* The watch of the stream behind node N, started if needed. Caller holds
 * poll_lock. NULL when it cannot be had. */
static struct watch *watch_get(struct shmfs *fs, struct node *n)
{
	for (struct watch *w = watches; w; w = w->next)
		if (w->dev == n->dev && w->ino == n->ino && !w->stopping)
			return w;
	struct watch *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->dev = n->dev;
	w->ino = n->ino;
	w->fd = view_object_open(fs, n, O_RDWR);
	if (w->fd < 0)
		w->fd = view_object_open(fs, n, O_RDONLY);
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (w->fd < 0 || pthread_create(&w->thread, &attr, watch_run, w) != 0) {
		pthread_attr_destroy(&attr);
		if (w->fd >= 0)
			close(w->fd);
		free(w);
		return NULL;
	}
	pthread_attr_destroy(&attr);
	running++;
	w->next = watches;
	watches = w;
	return w;
}

/* Remove H's poller from every watch. Caller holds poll_lock. */
static void forget_locked(struct handle *h)
{
	for (struct watch *w = watches; w; w = w->next) {
		for (struct poller **pp = &w->pollers; *pp;) {
			struct poller *p = *pp;
			if (p->h != h) {
				pp = &p->next;
				continue;
			}
			*pp = p->next;
			fuse_pollhandle_destroy(p->ph);
			free(p);
		}
	}
}

void view_poll(fuse_req_t req, struct handle *h, struct fuse_pollhandle *ph)
{
	int stream;
	uint64_t held = view_handle_cnt0(h, &stream);
	if (!stream) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		return (void)fuse_reply_poll(req, ready_mask | POLLOUT | POLLWRNORM);
	}
	int fd = view_object_open(shmfs_of(req), h->node, O_RDONLY);
	uint64_t now = held;
	int rc = fd < 0 ? fd : stream_cnt0(fd, &now);
	if (fd >= 0)
		close(fd);
	if (rc < 0) { /* the stream is gone: nothing newer will come to it */
		if (ph)
			fuse_pollhandle_destroy(ph);
		return (void)fuse_reply_poll(req, ready_mask | POLLHUP);
	}
	if (now != held) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		pthread_mutex_lock(&poll_lock);
		forget_locked(h);
		pthread_mutex_unlock(&poll_lock);
		return (void)fuse_reply_poll(req, ready_mask);
	}
	if (ph) {
		struct poller *p = calloc(1, sizeof *p);
		pthread_mutex_lock(&poll_lock);
		forget_locked(h); /* a new poll handle replaces the old one */
		struct watch *w = p ? watch_get(shmfs_of(req), h->node) : NULL;
		if (w) {
			*p = (struct poller){w->pollers, h, ph, held};
			w->pollers = p;
		}
		pthread_mutex_unlock(&poll_lock);
		if (!w) {
			free(p);
			fuse_pollhandle_destroy(ph);
			shm_log_once(SHM_LOG_WARN, "poll on a stream view: cannot watch the stream; "
						   "it is reported readable at once");
			return (void)fuse_reply_poll(req, ready_mask);
		}
	}
	fuse_reply_poll(req, 0);
}

void viewpoll_forget(struct handle *h)
{
	pthread_mutex_lock(&poll_lock);
	forget_locked(h);
	pthread_mutex_unlock(&poll_lock);
}

void viewpoll_stop_all(void)
{
	pthread_mutex_lock(&poll_lock);
	for (struct watch *w = watches; w; w = w->next)
		w->stopping = 1;
	watches = NULL;
	while (running)
		pthread_cond_wait(&poll_ended, &poll_lock);
	pthread_mutex_unlock(&poll_lock);
}
