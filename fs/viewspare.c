/* viewspare.c - snapshot files made ahead, off the open's path. A new frame
 * of a large view needs a new file (a file once served never changes: a
 * program may still map it after its last close), and giving a fresh memfd
 * its pages costs more than converting the frame into them (on the
 * project's virtual machine, 64 MiB: about 25-40 ms of page allocation and
 * zeroing against 5-10 ms of conversion). So once a view of a size has been
 * made, one worker thread makes the next file of that size beforehand:
 * memfd, size, pages populated in a shared mapping. The next open takes it
 * and converts straight into the mapping. The worker also unmaps and closes
 * large snapshots that are let go, so no op pays for that either. Spares
 * nobody took for SPARE_IDLE_S go.
 *
 * Locks: spare_lock guards everything here; nothing else is taken under it. */
#define _GNU_SOURCE
#include "viewint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define SPARE_SLOTS 4
#define SPARE_BYTES ((uint64_t)256 << 20) /* ready spares, all together */
#define SPARE_IDLE_S 10
#define TRASH_SLOTS 16

struct spare {
	int fd;
	unsigned char *map;
	uint64_t size;
	time_t made;
};

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spare_work = PTHREAD_COND_INITIALIZER;
static struct spare ready[SPARE_SLOTS]; /* spare_lock */
static int nready;                      /* spare_lock */
static uint64_t ready_bytes;            /* spare_lock */
static uint64_t wanted[SPARE_SLOTS];    /* spare_lock: sizes to make */
static int nwanted;                     /* spare_lock */
static struct spare trash[TRASH_SLOTS]; /* spare_lock: to unmap and close */
static int ntrash;                      /* spare_lock */
static int started, stopping;           /* spare_lock */
static pthread_t worker;

static void spare_free(struct spare *s)
{
	if (s->map)
		munmap(s->map, s->size);
	if (s->fd >= 0)
		close(s->fd);
}

/* A file of SIZE bytes, its pages in place. Returns 0 or -errno. */
static int spare_make(uint64_t size, struct spare *s)
{
	s->map = NULL;
	s->size = size;
	s->fd = memfd_create("shmfs-view", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (s->fd < 0)
		return -errno;
	int rc = 0;
	if (ftruncate(s->fd, (off_t)size) < 0)
		rc = -errno;
	if (rc == 0) {
		void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, s->fd,
			       0);
		if (m == MAP_FAILED)
			rc = -errno;
		else
			s->map = m;
	}
	if (rc < 0)
		spare_free(s);
	s->made = time(NULL);
	return rc;
}

static void *worker_run(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&spare_lock);
	while (!stopping) {
		if (ntrash) {
			struct spare t = trash[--ntrash];
			pthread_mutex_unlock(&spare_lock);
			spare_free(&t);
			pthread_mutex_lock(&spare_lock);
			continue;
		}
		if (nwanted) {
			uint64_t size = wanted[--nwanted];
			pthread_mutex_unlock(&spare_lock);
			struct spare s;
			int rc = spare_make(size, &s);
			pthread_mutex_lock(&spare_lock);
			if (rc == 0 && nready < SPARE_SLOTS && ready_bytes + size <= SPARE_BYTES) {
				ready[nready++] = s;
				ready_bytes += size;
			} else if (rc == 0) {
				pthread_mutex_unlock(&spare_lock);
				spare_free(&s);
				pthread_mutex_lock(&spare_lock);
			}
			continue;
		}
		/* Spares nobody wanted for a while go. */
		time_t t = time(NULL);
		for (int i = 0; i < nready; i++) {
			if (t - ready[i].made < SPARE_IDLE_S)
				continue;
			struct spare old = ready[i];
			ready[i] = ready[--nready];
			ready_bytes -= old.size;
			pthread_mutex_unlock(&spare_lock);
			spare_free(&old);
			pthread_mutex_lock(&spare_lock);
			i = -1;
			t = time(NULL);
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		pthread_cond_timedwait(&spare_work, &spare_lock, &until);
	}
	pthread_mutex_unlock(&spare_lock);
	return NULL;
}

/* Caller holds spare_lock. */
static void ensure_worker(void)
{
	if (started || stopping)
		return;
	started = pthread_create(&worker, NULL, worker_run, NULL) == 0;
}

int viewspare_take(uint64_t size, int *fd, unsigned char **map)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&spare_lock);
	for (int i = 0; i < nready; i++) {
		if (ready[i].size != size)
			continue;
		*fd = ready[i].fd;
		*map = ready[i].map;
		ready_bytes -= size;
		ready[i] = ready[--nready];
		rc = 0;
		break;
	}
	pthread_mutex_unlock(&spare_lock);
	return rc;
}

void viewspare_want(uint64_t size)
{
	if (size < VIEWSPARE_MIN || size > SPARE_BYTES)
		return;
	pthread_mutex_lock(&spare_lock);
	int have = 0;
	for (int i = 0; i < nready; i++)
		have += ready[i].size == size;
	for (int i = 0; i < nwanted; i++)
		have += wanted[i] == size;
	if (!have && nwanted < SPARE_SLOTS) {
		wanted[nwanted++] = size;
		ensure_worker();
		pthread_cond_signal(&spare_work);
	}
	pthread_mutex_unlock(&spare_lock);
}

void viewspare_discard(int fd, unsigned char *map, uint64_t size)
{
	struct spare s = {fd, map, size, 0};
	pthread_mutex_lock(&spare_lock);
	ensure_worker();
	int queued = started && !stopping && ntrash < TRASH_SLOTS;
	if (queued) {
		trash[ntrash++] = s;
		pthread_cond_signal(&spare_work);
	}
	pthread_mutex_unlock(&spare_lock);
	if (!queued)
		spare_free(&s);
}

void viewspare_stop(void)
{
	pthread_mutex_lock(&spare_lock);
	stopping = 1;
	pthread_cond_signal(&spare_work);
	int joined = started;
	pthread_mutex_unlock(&spare_lock);
	if (joined)
		pthread_join(worker, NULL);
	/* The worker is gone: nobody else touches these now. */
	while (ntrash)
		spare_free(&trash[--ntrash]);
	while (nready)
		spare_free(&ready[--nready]);
	ready_bytes = 0;
	nwanted = 0;
}
