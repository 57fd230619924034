/* viewsnap.c - frame generations of views and their snapshot files (see
 * viewint.h for the model and the locks).
 *
 * A generation (struct view_gen, node->gen) starts at a lookup with the
 * frame key the lookup saw (a stream's CNT0, write time and keywords; other
 * views have none). Its first open makes the snapshot: a memfd holding the
 * whole view file of the frame taken then, sealed so nothing can write it
 * again (but the daemon's own mapping of a large stream frame's file, which
 * writes a later frame into it once the snapshot is let go and nobody else
 * has the file: viewspare.c), and the key becomes that frame's. Later
 * lookups answer with the same node while the object still holds that
 * frame; a view without a frame counter gets a new node once its snapshot
 * is made, so every open after that reads the object again. A snapshot is
 * kept after its last close while its node is its view's current
 * generation, so an unchanged frame is never converted twice; idle
 * snapshots are dropped oldest first past SNAP_IDLE_BYTES or
 * SNAP_IDLE_COUNT (each holds a descriptor: their number is bounded), and
 * at once when a newer generation takes the node's place. An open of a node
 * whose snapshot was dropped (looked up just before) makes a snapshot of
 * the frame the object holds then, and the kernel is told to drop the
 * node's cached pages. */
#define _GNU_SOURCE
#include "viewint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cfshm.h"
#include "log.h"
#include "sysv.h"
#include "viewcards.h"

#define SNAP_IDLE_BYTES ((uint64_t)512 << 20) /* idle snapshots kept for the next open */
#define SNAP_IDLE_COUNT 64                     /* ... and at most this many */
#define SMALL_FRAME_BYTES ((uint64_t)4 << 20) /* copied raw in the writer's gap */

struct view_gen {
	/* inode_table.lock: what lookups compare */
	int shareable;          /* a lookup may answer with this node */
	int keyed;              /* a stream: the frame is (cnt0, wt) */
	uint64_t cnt0;
	struct timespec wt;
	uint64_t kwhash;
	/* node->lock */
	struct view_snap *snap; /* the frame's shared snapshot, or NULL */
	struct view_snap *priv; /* a claimed node: its open's private snapshot */
	int made;               /* a snapshot was made once: the next one is another frame */
	int backing;            /* holds a reference on the node's backing id (for snap) */
	int claimed;            /* a writable open owns the node */
	unsigned opens;
	struct inode_table *table; /* the table the node is filed in (set once) */
	/* snap_lru_lock: idle snapshots, oldest first */
	struct view_gen *lru_prev, *lru_next;
	int in_lru;
	struct node *owner;
};

static pthread_mutex_t snap_lru_lock = PTHREAD_MUTEX_INITIALIZER;
static struct view_gen *lru_head, *lru_tail; /* snap_lru_lock */
static uint64_t lru_bytes;                   /* snap_lru_lock */
static unsigned lru_count;                   /* snap_lru_lock */

/* ---- snapshots ---- */

struct view_snap *viewsnap_ref(struct view_snap *s)
{
	__atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
	return s;
}

void viewsnap_put(struct view_snap *s)
{
	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	if (s->pooled && s->map && s->fd >= 0) { /* kept for the next frame */
		viewspare_return(s->fd, (unsigned char *)s->map, s->size, s->populated, s->closed_ms);
		s->fd = -1;
	} else if (s->map && s->size >= VIEWSPARE_MIN) { /* off this thread's path */
		viewspare_discard(s->fd, (unsigned char *)s->map, s->size);
		s->fd = -1;
	} else if (s->map) {
		munmap((void *)s->map, s->size);
	}
	if (s->fd >= 0)
		close(s->fd);
	free(s->header);
	pthread_mutex_destroy(&s->map_lock);
	free(s);
}

const unsigned char *viewsnap_map(struct view_snap *s)
{
	pthread_mutex_lock(&s->map_lock);
	if (!s->map) {
		void *m = mmap(NULL, s->size, PROT_READ, MAP_SHARED | MAP_POPULATE, s->fd, 0);
		s->map = m == MAP_FAILED ? NULL : m;
	}
	pthread_mutex_unlock(&s->map_lock);
	return s->map;
}

/* The header of P (FITS cards or the MRC header) at the front of S: into
 * its mapping for a pooled file (which may be sealed against write()). */
static int write_header(struct view_snap *s, const struct probe *p)
{
	size_t len = (size_t)p->header_len;
	if (p->format == VIEW_MRC)
		return view_pwrite(s->fd, p->mrc, len, 0);
	if (s->pooled && s->map) {
		fitshdr_write(&p->fits, (char *)s->map);
		return 0;
	}
	char *h = malloc(len);
	if (!h)
		return -ENOMEM;
	fitshdr_write(&p->fits, h);
	int rc = view_pwrite(s->fd, h, len, 0);
	free(h);
	return rc;
}

/* A stream's frame, taken in the writer's gap (isio_take_frame). Small
 * frames are copied raw inside the gap (the shortest window a writer must
 * leave) and converted after; large ones are converted into the snapshot
 * straight from the stream's mapping inside the window (one pass: a copy
 * first would cost a second). */
struct stream_take {
	const struct isio_stream *st;
	const unsigned char *map;
	unsigned char *pixels;   /* small frames */
	unsigned char *keywords;
	struct view_image *image; /* large frames: convert into DST (a spare's
				   * mapping) or to SNAP_FD */
	unsigned char *dst;
	int snap_fd;
	int rc;
};

static void take_copy(const void *src, void *arg)
{
	struct stream_take *t = arg;
	memcpy(t->keywords, t->map + t->st->off_keywords, (size_t)t->st->nbkw * ISIO_KW_SIZE);
	if (t->pixels) {
		memcpy(t->pixels, src, t->st->datasize);
		t->rc = 0;
		return;
	}
	t->rc = t->dst ? view_write_map(t->image, src, t->dst)
		       : view_write_mem(t->image, src, t->snap_fd);
}

/* Make S's file a file of SIZE bytes kept ready (viewspare.c), if there is
 * one; else a new memfd. Returns 0 or -errno. */
static int take_file(struct view_snap *s, uint64_t size)
{
	int fd, populated;
	unsigned char *map;
	if (viewspare_take(size, &fd, &map, &populated) == 0) {
		/* One call fills the page tables: a page fault per page would
		 * cost more than the conversion. Failing that, faults do it. */
		if (!populated)
			populated = madvise(map, size, MADV_POPULATE_WRITE) == 0;
		s->fd = fd;
		s->map = map;
		s->size = size;
		s->populated = populated;
		return 0;
	}
	s->fd = memfd_create("shmfs-view", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return s->fd < 0 ? -errno : 0;
}

/* Give a file of the pool back and start again with a new memfd (another
 * size is needed). */
static int drop_file(struct view_snap *s)
{
	if (s->map) /* never served in this frame: free already */
		viewspare_return(s->fd, (unsigned char *)s->map, s->size, s->populated, 0);
	else
		close(s->fd);
	s->map = NULL;
	s->fd = memfd_create("shmfs-view", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return s->fd < 0 ? -errno : 0;
}

static int make_stream(struct probe *p, struct view_snap *s, int sealed)
{
	const struct isio_stream *st = &p->stream;
	size_t map_len = (size_t)p->st.st_size;
	int writable;
	void *map = viewspare_map_stream(p->fd, &p->st, &writable);
	if (map == MAP_FAILED)
		return -errno;
	int small = st->datasize <= SMALL_FRAME_BYTES;
	struct stream_take t = {st, map, NULL, malloc((size_t)st->nbkw * ISIO_KW_SIZE + 1),
				&s->image, NULL, -1, 0};
	if (small)
		t.pixels = malloc(st->datasize ? st->datasize : 1);
	int rc = t.keywords && (t.pixels || !small) ? 0 : -ENOMEM;
	/* A large frame of a shared snapshot goes into a file of the pool,
	 * converted through its mapping, and its file goes back there when
	 * the snapshot is let go. */
	s->pooled = !small && sealed;
	if (rc == 0)
		rc = view_layout(&s->image, VIEW_FITS, st->type, st->nelement, p->header_len);
	if (rc == 0 && s->pooled) {
		rc = take_file(s, s->image.file_size);
	} else if (rc == 0) {
		s->fd = memfd_create("shmfs-view", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		rc = s->fd < 0 ? -errno : 0;
	}
	t.dst = (unsigned char *)s->map;
	t.snap_fd = s->fd;

	unsigned char meta[ISIO_META_SIZE];
	enum isio_frame_quality q = ISIO_FRAME_WHOLE;
	/* Large frames land at the header's end: a header that grew in the
	 * window (keywords added) means taking the frame again. */
	for (int attempt = 0; rc == 0 && attempt < 3; attempt++) {
		rc = view_layout(&s->image, VIEW_FITS, st->type, st->nelement, p->header_len);
		if (rc == 0)
			rc = isio_take_frame(map, map_len, st, writable, take_copy, &t, meta,
					     FRAME_WAIT_MS, &q);
		if (rc == 0)
			rc = t.rc;
		if (rc == -EFAULT)
			rc = -EIO; /* shrunk under the mapping */
		uint64_t used = p->header_len;
		if (rc == 0)
			rc = probe_stream_header(p, meta, t.keywords, q);
		if (rc < 0 || small || p->header_len == used)
			break;
		rc = attempt == 2 ? -EAGAIN : 0;
		if (rc == 0 && s->map) /* another size now */
			rc = drop_file(s);
		t.dst = NULL;
		t.snap_fd = s->fd;
	}
	viewspare_unmap_stream(map, map_len);
	if (rc == 0)
		rc = view_layout(&s->image, VIEW_FITS, st->type, st->nelement, p->header_len);
	if (rc == 0 && small)
		rc = view_write_mem(&s->image, t.pixels, s->fd);
	/* A file used before may hold other bytes where this one pads. */
	if (rc == 0 && t.dst) {
		uint64_t end = s->image.header_len + s->image.data_len;
		memset(t.dst + end, 0, (size_t)(s->image.file_size - end));
	}
	free(t.pixels);
	free(t.keywords);
	if (rc == -EAGAIN)
		shm_log_once(SHM_LOG_WARN, "%s: its keywords kept changing size while frames were "
					   "taken: no view this time (EAGAIN)", p->name);
	if (rc < 0)
		return rc;
	isio_state(meta, &p->stream);
	s->stream = 1;
	s->cnt0 = p->stream.cnt0;
	s->writetime = p->stream.writetime;
	s->kwhash = p->kwhash;
	s->quality = q;
	if (p->stream.writetime.tv_sec)
		s->mtime = p->stream.writetime;
	if (q != ISIO_FRAME_WHOLE)
		shm_log_once(SHM_LOG_WARN, "%s: CNT0 %llu served with card %s = '%s' (%s)", p->name,
			     (unsigned long long)s->cnt0, VIEW_CARD_TORN, isio_frame_why(q),
			     q == ISIO_FRAME_BUSY ? "no gap between frames in 300 ms"
						  : "the write flag is set and no writer is alive");
	return 0;
}

/* Nobody writes a shared snapshot again, but through the daemon's own
 * mapping of a pooled file once nobody else has it (viewspare.c). A file of
 * the pool that was served before is sealed already. */
static int seal(int fd)
{
	const int seals = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL;
	int have = fcntl(fd, F_GET_SEALS);
	if (have >= 0 && (have & seals) == seals)
		return 0;
	return fcntl(fd, F_ADD_SEALS, seals) < 0 ? -errno : 0;
}

int viewsnap_make(struct shmfs *fs, struct probe *p, int sealed, struct view_snap **out)
{
	(void)fs;
	struct view_snap *s = calloc(1, sizeof *s);
	if (!s)
		return -ENOMEM;
	pthread_mutex_init(&s->map_lock, NULL);
	s->refs = 1;
	s->mtime = p->shmid >= 0 ? (struct timespec){p->ds.shm_ctime, 0} : p->st.st_mtim;
	s->fd = -1;
	int rc = 0;
	if (p->kind != VK_STREAM_FITS) { /* make_stream finds its own */
		s->fd = memfd_create("shmfs-view", MFD_CLOEXEC | MFD_ALLOW_SEALING);
		rc = s->fd < 0 ? -errno : 0;
	}
	int data_fd = -1;
	if (rc == 0 && p->kind == VK_CFITSIO_FITS) {
		/* CFITSIO's bytes, read under its lock by the probe */
		rc = view_layout(&s->image, VIEW_MRC, ELEM_U8, p->file_size, 0);
		if (rc == 0)
			rc = view_pwrite(s->fd, p->raw, (size_t)p->file_size, 0);
	} else if (rc == 0 && p->kind == VK_STREAM_FITS) {
		rc = make_stream(p, s, sealed);
		if (rc == 0)
			rc = write_header(s, p);
	} else if (rc == 0) {
		data_fd = p->shmid >= 0 ? sysv_open_file(p->shmid) : p->fd;
		rc = data_fd < 0 ? data_fd : view_layout(&s->image, p->format, p->type, p->nelement,
							    p->header_len);
		if (rc == 0)
			rc = write_header(s, p);
		if (rc == 0)
			rc = view_write_fd(&s->image, data_fd, p->data_offset, s->fd);
	}
	if (data_fd >= 0 && data_fd != p->fd)
		close(data_fd);
	s->size = s->image.file_size;
	if (rc == 0 && ftruncate(s->fd, (off_t)s->size) < 0)
		rc = -errno;
	/* A pooled file written with pwrite is mapped now, while it still can
	 * be mapped for writing: the next frame is converted through that
	 * mapping once the file comes back (its page tables are filled then). */
	if (rc == 0 && s->pooled && !s->map) {
		void *m = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED, s->fd, 0);
		if (m != MAP_FAILED)
			s->map = m;
	}
	if (rc == 0 && sealed)
		rc = seal(s->fd);
	if (rc == 0 && !sealed) {
		s->header = malloc(s->image.header_len ? s->image.header_len : 1);
		if (!s->header)
			rc = -ENOMEM;
		else if (pread(s->fd, s->header, s->image.header_len, 0) != (ssize_t)s->image.header_len)
			rc = -EIO;
	}
	if (rc == -ENOSPC)
		shm_log_once(SHM_LOG_WARN, "%s: no memory for a snapshot of its view (%llu bytes)",
			     p->name, (unsigned long long)s->image.file_size);
	if (rc < 0) {
		viewsnap_put(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* ---- idle snapshots ---- */

static void lru_remove_locked(struct view_gen *g)
{
	if (!g->in_lru)
		return;
	*(g->lru_prev ? &g->lru_prev->lru_next : &lru_head) = g->lru_next;
	*(g->lru_next ? &g->lru_next->lru_prev : &lru_tail) = g->lru_prev;
	g->lru_prev = g->lru_next = NULL;
	g->in_lru = 0;
	lru_bytes -= g->snap ? g->snap->size : 0;
	lru_count--;
}

/* Caller holds g->owner->lock. */
static void lru_remove(struct view_gen *g)
{
	pthread_mutex_lock(&snap_lru_lock);
	lru_remove_locked(g);
	pthread_mutex_unlock(&snap_lru_lock);
}

/* Caller holds N->lock. */
static void lru_add(struct view_gen *g, struct node *n)
{
	pthread_mutex_lock(&snap_lru_lock);
	if (!g->in_lru) {
		g->owner = n;
		g->lru_prev = lru_tail;
		g->lru_next = NULL;
		*(lru_tail ? &lru_tail->lru_next : &lru_head) = g;
		lru_tail = g;
		g->in_lru = 1;
		lru_bytes += g->snap->size;
		lru_count++;
	}
	pthread_mutex_unlock(&snap_lru_lock);
}

/* Let go of N's shared snapshot (and the backing id kept for it). Caller
 * holds N->lock. */
static void gen_drop(struct node *n)
{
	struct view_gen *g = n->gen;
	lru_remove(g);
	viewsnap_put(g->snap);
	g->snap = NULL;
	if (g->backing)
		inode_backing_put_locked(n);
	g->backing = 0;
}

/* Drop idle snapshot G; caller holds snap_lru_lock and G's node's lock.
 * The node stops being its view's current one: a later lookup makes a
 * fresh node rather than answering with one whose open would be ESTALE. */
static void evict_locked(struct view_gen *g)
{
	inode_view_retire(g->table, g->owner);
	lru_remove_locked(g);
	viewsnap_put(g->snap);
	g->snap = NULL;
	if (g->backing)
		inode_backing_put_locked(g->owner);
	g->backing = 0;
}

/* Drop idle snapshots, oldest first, while more than KEEP bytes or
 * KEEP_COUNT snapshots are idle.
 * The order is node->lock then snap_lru_lock, so a victim's node is only
 * trylocked: one that is busy (or being freed) is skipped. Holds no node
 * lock. */
static void lru_trim(uint64_t keep, unsigned keep_count)
{
	pthread_mutex_lock(&snap_lru_lock);
	struct view_gen *g = lru_head;
	while (g && (lru_bytes > keep || lru_count > keep_count)) {
		struct view_gen *next = g->lru_next;
		struct node *n = g->owner;
		if (pthread_mutex_trylock(&n->lock) == 0) {
			evict_locked(g);
			pthread_mutex_unlock(&n->lock);
		}
		g = next;
	}
	pthread_mutex_unlock(&snap_lru_lock);
}

void view_stop_all(void)
{
	viewpoll_stop_all();
	/* Every handle is closed: what is left in the list is all there is,
	 * and its backing ids must go while the device is open. */
	lru_trim(0, 0);
	viewspare_stop();
}

/* ---- generations ---- */

struct view_gen *viewgen_new(const struct probe *p)
{
	struct view_gen *g = calloc(1, sizeof *g);
	if (!g)
		return NULL;
	g->shareable = 1;
	g->keyed = p->kind == VK_STREAM_FITS;
	g->cnt0 = p->stream.cnt0;
	g->wt = p->stream.writetime;
	g->kwhash = p->kwhash;
	return g;
}

int viewgen_twin(struct node *n, struct node *twin)
{
	struct view_gen *g = calloc(1, sizeof *g);
	if (!g)
		return -ENOMEM;
	g->keyed = n->gen->keyed;
	g->table = n->gen->table;
	twin->gen = g;
	return 0;
}

void viewgen_free(struct view_gen *g)
{
	free(g);
}

int viewgen_same(const struct view_gen *current, const struct view_gen *want)
{
	if (!current->shareable || current->keyed != want->keyed)
		return 0;
	return !current->keyed ||
	       (current->cnt0 == want->cnt0 && current->wt.tv_sec == want->wt.tv_sec &&
		current->wt.tv_nsec == want->wt.tv_nsec && current->kwhash == want->kwhash);
}

void viewgen_node_free(struct node *n)
{
	struct view_gen *g = n->gen;
	if (!g)
		return;
	pthread_mutex_lock(&n->lock);
	gen_drop(n);
	pthread_mutex_unlock(&n->lock);
	viewgen_free(g);
	n->gen = NULL;
}

/* Node N (with a reference) lost its place in the table to a newer frame:
 * its idle snapshot can serve no open to come. */
static void gen_superseded(struct node *n)
{
	struct view_gen *g = n->gen;
	pthread_mutex_lock(&n->lock);
	if (g->snap && g->opens == 0)
		gen_drop(n);
	pthread_mutex_unlock(&n->lock);
}

int viewgen_entry(struct shmfs *fs, int opath, dev_t dev, ino_t ino, const struct probe *p,
		  struct fuse_entry_param *e)
{
	struct view_gen *g = viewgen_new(p);
	if (!g) {
		if (opath >= 0)
			close(opath);
		return -ENOMEM;
	}
	g->table = &fs->table;
	struct node *old = NULL;
	struct node *n = inode_get_view_gen(&fs->table, opath, dev, ino, p->kind, p->shmid, g,
					    viewgen_same, &old);
	if (!n || n->gen != g)
		viewgen_free(g);
	if (old) {
		gen_superseded(old);
		inode_forget(fs, old, 1);
	}
	if (!n)
		return -ENOMEM;
	memset(e, 0, sizeof *e);
	if (!viewgen_stat(fs, n, &e->attr))
		view_stat(p, &e->attr);
	e->ino = inode_number(fs, n);
	/* Never cached: a lookup after a new frame must reach us, to answer
	 * with that frame's node. */
	e->entry_timeout = 0;
	e->attr_timeout = 0;
	return 0;
}

int viewgen_stat(struct shmfs *fs, struct node *n, struct stat *st)
{
	struct view_gen *g = n->gen;
	if (!g)
		return 0;
	pthread_mutex_lock(&n->lock);
	struct view_snap *s = g->priv ? g->priv : g->snap;
	int have = s != NULL;
	if (have) {
		uint64_t size = s->size;
		struct stat m;
		if (s == g->priv && fstat(s->fd, &m) == 0)
			size = (uint64_t)m.st_size;
		have = view_object_stat(fs, n, st) == 0;
		st->st_size = (off_t)size;
		st->st_blocks = (blkcnt_t)((size + 511) / 512);
		st->st_mtim = st->st_ctim = s->mtime;
	}
	pthread_mutex_unlock(&n->lock);
	return have;
}

/* Record the frame snapshot S holds as N's key: lookups that see the object
 * still on that frame answer with N. Caller holds n->lock. */
static void gen_set_key(struct shmfs *fs, struct node *n, const struct view_snap *s)
{
	struct view_gen *g = n->gen;
	pthread_mutex_lock(&fs->table.lock);
	if (g->keyed && s->stream) {
		g->cnt0 = s->cnt0;
		g->wt = s->writetime;
		g->kwhash = s->kwhash;
	} else {
		g->shareable = 0; /* no frame counter: every later open reads anew */
	}
	pthread_mutex_unlock(&fs->table.lock);
}

static int gen_make(struct shmfs *fs, struct node *n, int sealed, struct view_snap **out)
{
	struct probe p;
	/* A stream's frame is taken as a registered reader: read-write. */
	int flags = n->variant == VK_STREAM_FITS ? O_RDWR : O_RDONLY;
	int rc = probe_node(fs, n, flags, 1, &p);
	if (flags == O_RDWR && (rc == -EACCES || rc == -EROFS || rc == -EPERM)) {
		/* a read-only SOURCE: take frames by polling */
		probe_free(&p);
		rc = probe_node(fs, n, O_RDONLY, 1, &p);
	}
	if (rc == 0)
		rc = viewsnap_make(fs, &p, sealed, out);
	probe_free(&p);
	return rc;
}

int viewgen_open_shared(struct shmfs *fs, struct node *n, struct view_snap **out, int *renewed)
{
	struct view_gen *g = n->gen;
	pthread_mutex_lock(&n->lock);
	int rc = 0;
	*renewed = 0;
	if (g->claimed && g->opens > 0) {
		/* A writable open took the node after this open's lookup (it
		 * left the table then): the kernel looks the name up again. */
		rc = -ESTALE;
	} else if (!g->snap) {
		/* A node whose snapshot was dropped (a newer frame took its
		 * place, or memory was short), or whose writable open has
		 * closed, was looked up before that, and is opened now: it
		 * gets the frame the object holds now. The kernel's retry of
		 * ESTALE is one, and another new frame may come before it
		 * too. Nothing has the node open or mapped (a snapshot is
		 * dropped only then, and a mapping holds its open), so only
		 * its pages cached in the kernel must go (*RENEWED). */
		*renewed = g->made;
		g->claimed = 0;
		rc = gen_make(fs, n, 1, &g->snap);
		if (rc == 0) {
			g->made = 1;
			gen_set_key(fs, n, g->snap);
		}
	}
	if (rc == 0) {
		lru_remove(g);
		g->opens++;
		*out = viewsnap_ref(g->snap);
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

int viewgen_open_private(struct shmfs *fs, struct node *n, int loose_ok, struct view_snap **out,
			 int *claimed)
{
	struct view_gen *g = n->gen;
	pthread_mutex_lock(&n->lock);
	int rc = 0;
	*claimed = 0;
	if (g->opens > 0) {
		/* Others read this frame's file: this open needs a node of its
		 * own. Taken out of the table, the kernel's retry of ESTALE
		 * finds a fresh one. */
		if (inode_view_retire(&fs->table, n))
			rc = -ESTALE;
		else if (!loose_ok)
			rc = -EBUSY;
		if (rc == 0)
			rc = gen_make(fs, n, 0, out);
	} else {
		inode_view_retire(&fs->table, n);
		pthread_mutex_lock(&fs->table.lock);
		g->shareable = 0;
		pthread_mutex_unlock(&fs->table.lock);
		g->claimed = 1;
		g->made = 1;
		gen_drop(n); /* its backing too: the open's own can be the node's */
		rc = gen_make(fs, n, 0, out);
		if (rc == 0) {
			g->priv = *out;
			*claimed = 1;
		}
	}
	if (rc == 0)
		g->opens++;
	pthread_mutex_unlock(&n->lock);
	return rc;
}

int viewgen_take_for_copy(struct shmfs *fs, struct node *n)
{
	struct view_gen *g = n->gen;
	if (!g)
		return 0;
	pthread_mutex_lock(&n->lock);
	int busy = g->opens > 0;
	int was_current = inode_view_retire(&fs->table, n);
	pthread_mutex_unlock(&n->lock);
	return !busy ? 0 : was_current ? -ESTALE : -EBUSY;
}

void viewgen_hold_backing(struct node *n, struct view_snap *s)
{
	struct view_gen *g = n->gen;
	pthread_mutex_lock(&n->lock);
	if (!g->backing && g->snap == s)
		g->backing = inode_backing_hold_locked(n);
	pthread_mutex_unlock(&n->lock);
}

int viewgen_find(struct shmfs *fs, dev_t dev, ino_t ino, const struct probe *p,
		 struct fuse_entry_param *e)
{
	struct view_gen want = {.shareable = 1, .keyed = p->kind == VK_STREAM_FITS,
				.cnt0 = p->stream.cnt0, .wt = p->stream.writetime,
				.kwhash = p->kwhash};
	struct node *n = inode_find_view(&fs->table, dev, ino, p->kind, viewgen_same, &want);
	if (!n)
		return -ENOENT;
	memset(e, 0, sizeof *e);
	if (!viewgen_stat(fs, n, &e->attr)) {
		inode_forget(fs, n, 1);
		return -ENOENT;
	}
	e->ino = inode_number(fs, n);
	return 0;
}

void viewgen_close(struct shmfs *fs, struct node *n, struct view_snap *s)
{
	struct view_gen *g = n->gen;
	pthread_mutex_lock(&n->lock);
	g->opens--;
	if (g->priv == s)
		g->priv = NULL;
	viewsnap_put(s);
	int keep = 0;
	if (g->opens == 0 && g->snap) {
		g->snap->closed_ms = view_now_ms();
		pthread_mutex_lock(&fs->table.lock);
		keep = n->view_current;
		pthread_mutex_unlock(&fs->table.lock);
		if (keep)
			lru_add(g, n);
		else
			gen_drop(n);
	}
	pthread_mutex_unlock(&n->lock);
	if (keep)
		lru_trim(SNAP_IDLE_BYTES, SNAP_IDLE_COUNT);
}
