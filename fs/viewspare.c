/* viewspare.c - files for the snapshots of large views, kept ready off the
 * open's path. A new frame of a large view needs a file whose content
 * nobody will ever see change (a program may still map a file after its
 * last close), and on the project's virtual machine giving a memfd new
 * pages costs several times what converting a frame into them does: for 64
 * MiB, 14 ms to allocate them, then 14 ms to write them with pwrite, or 20
 * ms to fill the page tables of a mapping for writing (zeroing included),
 * and 8-12 ms to unmap and free them again, against 4-5 ms to convert a
 * frame into pages already made and mapped. So files are reused:
 *
 * - The file of a snapshot let go (viewspare_return: its frame superseded
 *   and its last open closed) is kept with the daemon's read-write mapping
 *   of it, and written again only once nobody but the daemon has it. A
 *   write lease (F_SETLEASE F_WRLCK) on a read-only reopen is granted only
 *   when that reopen is the inode's one open file description (the memfd's
 *   own descriptor counts as no writer), and every other way to the file
 *   holds one: a passthrough open's backing file, the file the kernel keeps
 *   for a registered backing id, any other open of it, and every mapping,
 *   whose vma holds the file it was made from (passthrough maps the backing
 *   file itself), in forked children too. A reader's mapping thus keeps
 *   its frame as long as it lasts.
 * - What no file description shows are pages lent out: splice and sendfile
 *   put references to the pages themselves into a pipe or a socket's queue
 *   (and vmsplice, O_DIRECT or zero-copy sends pin pages of a mapping, which
 *   may outlive it), and the kernel lets no one else see page references.
 *   A file is therefore reused no sooner than VIEWSPARE_GRACE_MS after its
 *   last close: time for such queues to drain when their reader keeps up.
 *   One read later than that (a pipe nobody reads, a socket queue stalled
 *   by a slow link) can show pages of a later frame.
 * - Spares: when the files of a size kept here were all still held by
 *   readers, one worker thread makes the next file of that size beforehand
 *   (memfd, size, pages populated in a shared mapping).
 *
 * The worker also unmaps and closes large snapshots that are let go, so no
 * op pays for that either. Files nobody took for SPARE_IDLE_S go.
 *
 * Large streams' own mappings are kept between frames too: mapping 64 MiB
 * afresh costs a page fault per 16 pages read, more than the conversion.
 * A kept mapping holds a descriptor of its stream, so it is dropped when
 * the stream is removed (checked by the worker every second) or unused for
 * SPARE_IDLE_S.
 *
 * Locks: spare_lock guards everything here; nothing else is taken under it. */
#define _GNU_SOURCE
#include "viewint.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPARE_SLOTS 4
#define SPARE_BYTES ((uint64_t)256 << 20) /* files kept ready, all together */
#define SPARE_IDLE_S 10
#define TRASH_SLOTS 16

struct spare {
	int fd;
	unsigned char *map;  /* shared, read-write */
	uint64_t size;
	time_t made;         /* made, or given back */
	int served;          /* a snapshot's file given back: reused once unshared */
	int populated;       /* MAP's page tables are filled */
	uint64_t closed_ms;  /* served: when its last open closed (view_now_ms) */
};

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spare_work = PTHREAD_COND_INITIALIZER;
static struct spare ready[SPARE_SLOTS]; /* spare_lock: spares and files given back */
static int nready;                      /* spare_lock */
static uint64_t ready_bytes;            /* spare_lock */
static uint64_t wanted[SPARE_SLOTS];    /* spare_lock: sizes to make */
static int nwanted;                     /* spare_lock */
static struct spare trash[TRASH_SLOTS]; /* spare_lock: to unmap and close */
static int ntrash;                      /* spare_lock */
static int started, stopping;           /* spare_lock */

/* Kept stream mappings. */
#define STREAM_SLOTS 8
struct kept_map {
	int fd;              /* the stream (keeps the inode the mapping is of) */
	dev_t dev;
	ino_t ino;
	size_t len;
	void *map;           /* NULL: a free slot */
	int writable;
	int busy;            /* in use by a take */
	time_t used;
};
static struct kept_map kept[STREAM_SLOTS]; /* spare_lock */
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
	s->served = 0;
	s->populated = 1;
	return rc;
}

static void *worker_run(void *arg)
{
	(void)arg;
	/* Work done ahead yields to what runs now (the reader of the frame
	 * just made, above all), yet still runs on a busy machine (SCHED_IDLE
	 * starved it there). */
	setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
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
		/* Spares nobody wanted for a while go, and kept mappings of
		 * streams unused or removed. */
		time_t t = time(NULL);
		for (int i = 0; i < STREAM_SLOTS; i++) {
			struct stat st;
			struct kept_map *k = &kept[i];
			if (!k->map || k->busy ||
			    (t - k->used < SPARE_IDLE_S && fstat(k->fd, &st) == 0 && st.st_nlink))
				continue;
			struct kept_map old = *k;
			k->map = NULL;
			pthread_mutex_unlock(&spare_lock);
			munmap(old.map, old.len);
			close(old.fd);
			pthread_mutex_lock(&spare_lock);
		}
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

/* Whether nobody but the daemon has the memfd FD: no other open file
 * description of its inode, so no open, no registered backing file and no
 * mapping anywhere (see the top). A write lease on a read-only reopen is
 * granted only then: the reopen is the one reader counted, and the memfd's
 * own descriptor counts as no writer. 0 also when leases are unavailable
 * (fs.leases-enable = 0): the file is then never reused. */
static int file_unshared(int fd)
{
	char path[64];
	proc_path(path, fd);
	int ro = open(path, O_RDONLY | O_CLOEXEC);
	if (ro < 0)
		return 0;
	int alone = fcntl(ro, F_SETLEASE, F_WRLCK) == 0;
	if (alone)
		fcntl(ro, F_SETLEASE, F_UNLCK);
	close(ro);
	return alone;
}

/* Make a file of SIZE bytes ahead (one at a time per size). Caller holds
 * spare_lock. */
static void want_locked(uint64_t size)
{
	if (size < VIEWSPARE_MIN || size > SPARE_BYTES)
		return;
	int have = 0;
	for (int i = 0; i < nready; i++)
		have += ready[i].size == size && !ready[i].served;
	for (int i = 0; i < nwanted; i++)
		have += wanted[i] == size;
	if (!have && nwanted < SPARE_SLOTS) {
		wanted[nwanted++] = size;
		ensure_worker();
		pthread_cond_signal(&spare_work);
	}
}

int viewspare_take(uint64_t size, int *fd, unsigned char **map, int *populated)
{
	pthread_mutex_lock(&spare_lock);
	/* A file given back first, the one given back longest ago (its pages
	 * are made and mapped, and its last users are longest gone); a spare
	 * made ahead if none is free. */
	int pick = -1, busy = 0;
	uint64_t now = view_now_ms();
	for (int i = 0; i < nready; i++) {
		struct spare *s = &ready[i];
		if (s->size != size)
			continue;
		if (s->served && now - s->closed_ms < VIEWSPARE_GRACE_MS)
			continue; /* free soon: no spare for it */
		if (pick >= 0 && (ready[pick].served > s->served ||
				  (ready[pick].served == s->served &&
				   ready[pick].closed_ms <= s->closed_ms)))
			continue;
		if (s->served && !file_unshared(s->fd)) {
			busy = 1;
			continue;
		}
		pick = i;
	}
	if (pick >= 0) {
		*fd = ready[pick].fd;
		*map = ready[pick].map;
		*populated = ready[pick].populated;
		ready_bytes -= size;
		ready[pick] = ready[--nready];
	} else if (busy) {
		/* Files of this size are held by their readers: make one ahead
		 * for the next frame. */
		want_locked(size);
	}
	pthread_mutex_unlock(&spare_lock);
	return pick >= 0 ? 0 : -ENOENT;
}

static int no_reuse; /* written once, before any op */

void viewspare_no_reuse(void) { no_reuse = 1; }

void viewspare_return(int fd, unsigned char *map, uint64_t size, int populated,
		      uint64_t closed_ms)
{
	if (no_reuse && closed_ms) {
		viewspare_discard(fd, map, size);
		return;
	}
	struct spare s = {fd, map, size, time(NULL), 1, populated, closed_ms};
	pthread_mutex_lock(&spare_lock);
	ensure_worker();
	int keep = started && !stopping && size <= SPARE_BYTES;
	/* Room for it: files of other sizes go, the one kept longest first;
	 * files of its own size stay (they come round for the next frames
	 * before it does) and it goes itself. */
	while (keep && (nready == SPARE_SLOTS || ready_bytes + size > SPARE_BYTES)) {
		int victim = -1;
		for (int i = 0; i < nready; i++)
			if (ready[i].size != size && (victim < 0 || ready[i].made < ready[victim].made))
				victim = i;
		if (victim < 0 || ntrash == TRASH_SLOTS) {
			keep = 0;
			break;
		}
		trash[ntrash++] = ready[victim];
		ready_bytes -= ready[victim].size;
		ready[victim] = ready[--nready];
		pthread_cond_signal(&spare_work);
	}
	if (keep) {
		ready[nready++] = s;
		ready_bytes += size;
	} else if (started && !stopping && ntrash < TRASH_SLOTS) {
		trash[ntrash++] = s;
		pthread_cond_signal(&spare_work);
		keep = 1;
	}
	pthread_mutex_unlock(&spare_lock);
	if (!keep)
		spare_free(&s);
}

void viewspare_discard(int fd, unsigned char *map, uint64_t size)
{
	struct spare s = {fd, map, size, 0, 0, 0, 0};
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

void *viewspare_map_stream(int fd, const struct stat *st, int *writable)
{
	size_t len = (size_t)st->st_size;
	pthread_mutex_lock(&spare_lock);
	for (int i = 0; i < STREAM_SLOTS; i++) {
		struct kept_map *k = &kept[i];
		if (k->map && !k->busy && k->dev == st->st_dev && k->ino == st->st_ino &&
		    k->len == len) {
			k->busy = 1;
			*writable = k->writable;
			pthread_mutex_unlock(&spare_lock);
			return k->map;
		}
	}
	pthread_mutex_unlock(&spare_lock);
	*writable = 1;
	void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) { /* opened read-only: poll instead of registering */
		*writable = 0;
		map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	}
	if (map == MAP_FAILED || len < VIEWSPARE_MIN)
		return map;
	int kfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_lock(&spare_lock);
	for (int i = 0; kfd >= 0 && i < STREAM_SLOTS && !stopping; i++) {
		if (kept[i].map)
			continue;
		kept[i] = (struct kept_map){kfd, st->st_dev, st->st_ino, len, map, *writable, 1,
					    time(NULL)};
		kfd = -1;
		ensure_worker();
	}
	pthread_mutex_unlock(&spare_lock);
	if (kfd >= 0)
		close(kfd);
	return map;
}

void viewspare_unmap_stream(void *map, size_t len)
{
	pthread_mutex_lock(&spare_lock);
	for (int i = 0; i < STREAM_SLOTS; i++) {
		if (kept[i].map == map) {
			kept[i].busy = 0;
			kept[i].used = time(NULL);
			pthread_mutex_unlock(&spare_lock);
			return;
		}
	}
	pthread_mutex_unlock(&spare_lock);
	if (len >= VIEWSPARE_MIN) /* its pages are mapped: the worker unmaps */
		viewspare_discard(-1, map, len);
	else
		munmap(map, len);
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
	for (int i = 0; i < STREAM_SLOTS; i++) {
		if (kept[i].map) {
			munmap(kept[i].map, kept[i].len);
			close(kept[i].fd);
			kept[i].map = NULL;
		}
	}
	ready_bytes = 0;
	nwanted = 0;
}
