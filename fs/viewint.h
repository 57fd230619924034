/* viewint.h - what the view files share among themselves (view.c: probing
 * objects, names, attributes; viewsnap.c: frame generations and their
 * snapshot files; viewopen.c: open handles; viewpoll.c: waiting for frames).
 * Nothing outside fs/view*.c and sysvview.c includes it.
 *
 * Every frame generation of a view is a node of its own (DESIGN.md, "Views
 * ... are real files"): a lookup returns the node of the frame the object
 * holds now, so concurrent opens of one frame share its snapshot (a sealed
 * memfd: header + converted data, whose content never changes), and a new
 * frame gets a new node id. The kernel binds one backing file per inode and
 * caches pages per inode, which both fit that.
 *
 * Locks (fs.h gives the order): node->lock guards the generation's snapshot,
 * opens and claim; inode_table.lock guards what lookups compare (the frame
 * key, shareable) and node->view_current; snap_lru_lock (viewsnap.c) the
 * list of idle snapshots, taken after node->lock and before
 * inode_table.lock; whoever holds it only trylocks a node. spare_lock
 * (viewspare.c) is taken last (also under node->lock and snap_lru_lock, when
 * a snapshot's file goes back to it or one is taken) and nothing under it;
 * poll_lock (viewpoll.c) is taken with no other lock held. */
#ifndef SHMFS_VIEWINT_H
#define SHMFS_VIEWINT_H

#include <limits.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <time.h>

#include "fsview.h"
#include "imod.h"
#include "isio.h"
#include "typed.h"
#include "view.h"

#define FRAME_WAIT_MS 300 /* how long an open waits for a gap between a writer's frames */

/* What a view is made of, found by probing its object. */
struct probe {
	enum view_kind kind;
	int fd;                /* the object, opened for reading (or writing) */
	struct stat st;
	enum view_format format;
	enum elem_type type;
	uint64_t nelement;
	uint64_t data_offset;  /* the pixels in the object */
	struct isio_stream stream;
	struct imod_image imod;
	struct typed_layout typed;
	struct fits_header fits;   /* FITS header */
	char name[NAME_MAX + 1];   /* the object's name, for the log */
	int shmid;                 /* System V views: the segment, else -1 */
	struct shmid_ds ds;
	unsigned char *raw;        /* CFITSIO views: the file's bytes, as they are */
	unsigned char mrc[MRC_HEADER_SIZE];
	uint64_t header_len;
	uint64_t file_size;
	uint64_t kwhash;           /* streams: the keywords the header was made from */
	unsigned char meta[ISIO_META_SIZE]; /* streams: the metadata probed ... */
	unsigned char *keywords;   /* ... and the keyword slots (owned) */
};

/* view.c */
void probe_free(struct probe *p);
/* Re-probe the object of view node N, opened with FLAGS (O_RDONLY, O_RDWR);
 * with CONTENT, a CFITSIO file's bytes too (p->raw). Returns 0, -ESTALE when
 * the object was removed (P is filled all the same), or -errno. P is
 * probe_free'd by the caller in every case. */
int probe_node(struct shmfs *fs, struct node *n, int flags, int content, struct probe *p);
/* The FITS header of stream P from META and its KEYWORDS, into p->fits,
 * p->header_len and p->kwhash. A probe of the key alone (view_entry's
 * first look) leaves header_len 0. */
int probe_stream_header(struct probe *p, const unsigned char *meta, const unsigned char *keywords,
			enum isio_frame_quality q);
/* The attributes of the view P probed (size: its file_size). */
void view_stat(const struct probe *p, struct stat *st);
/* The entry of view KIND of segment SHMID (a frame view: typed or CFITSIO),
 * filed under INO, with a kernel reference. Returns 0 or -errno (-ENOENT). */
int view_sysv_entry(struct shmfs *fs, int shmid, enum view_kind kind, ino_t ino,
		    struct fuse_entry_param *e);
/* The attributes of view node N that come from its object (mode, owner,
 * inode number, times); the size is the caller's. Returns 0 or -errno. */
int view_object_stat(struct shmfs *fs, struct node *n, struct stat *st);

/* The frame a generation holds, and what lookups compare. */
struct view_gen;

/* viewsnap.c */
/* CLOCK_MONOTONIC in milliseconds. */
static inline uint64_t view_now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* The snapshot file of one frame of a view. */
struct view_snap {
	int fd;                  /* memfd: header, data, padding */
	struct view_image image; /* its layout */
	uint64_t size;           /* its size when made */
	struct timespec mtime;   /* the frame's write time, or the object's mtime */
	uint64_t cnt0;           /* streams: the frame's counter ... */
	struct timespec writetime; /* ... write time ... */
	uint64_t kwhash;           /* ... and keywords (probe.kwhash) */
	int stream;              /* it is a stream's frame (cnt0 means something) */
	enum isio_frame_quality quality;
	unsigned char *header;   /* writable snapshots: the header as made (image.header_len) */
	unsigned refs;           /* atomic */
	int pooled;              /* its file comes from and goes back to viewspare.c */
	uint64_t closed_ms;      /* view_now_ms() when its last open closed */
	int populated;           /* pooled: MAP's page tables are filled */
	pthread_mutex_t map_lock;
	const unsigned char *map; /* map_lock: a read mapping for replies from the
				   * daemon; pooled: the read-write mapping of the file */
};

/* A new generation for what lookup probed in P (its frame key, for a
 * stream). NULL when out of memory. */
struct view_gen *viewgen_new(const struct probe *p);
/* Give TWIN (inode_view_twin of N) a generation: one no lookup shares.
 * Returns 0 or -ENOMEM. */
int viewgen_twin(struct node *n, struct node *twin);
void viewgen_free(struct view_gen *g);
/* Whether a lookup may answer with CURRENT for what it found (WANT):
 * called under inode_table.lock. */
int viewgen_same(const struct view_gen *current, const struct view_gen *want);
/* The node of view P (a fresh probe of the object (DEV, INO), whose O_PATH
 * descriptor OPATH, or -1, is adopted) with a kernel reference, and its
 * entry: the node of the frame the object holds, or a new one. Returns 0 or
 * -errno. */
int viewgen_entry(struct shmfs *fs, int opath, dev_t dev, ino_t ino, const struct probe *p,
		  struct fuse_entry_param *e);
/* The entry of the current node of view P (a light probe: the frame key,
 * no header) when it holds that very frame's snapshot, with a kernel
 * reference: a lookup that needs nothing made. Returns 0, or -ENOENT (go
 * the whole way: viewgen_entry). */
int viewgen_find(struct shmfs *fs, dev_t dev, ino_t ino, const struct probe *p,
		 struct fuse_entry_param *e);
/* The attributes of view node N from its snapshot, if it holds one: 1, or 0
 * (no snapshot: probe the object). */
int viewgen_stat(struct shmfs *fs, struct node *n, struct stat *st);

/* Make the snapshot of the frame the object of N holds now (probed in P,
 * whose fd is the object): the stream's frame taken in a writer's gap (or
 * marked), or the pixels read, or CFITSIO's bytes. SEALED: a shared
 * snapshot, which can never change; else a writable one (its header kept).
 * Returns 0 and *OUT (one reference), or -errno. */
int viewsnap_make(struct shmfs *fs, struct probe *p, int sealed, struct view_snap **out);
struct view_snap *viewsnap_ref(struct view_snap *s);
void viewsnap_put(struct view_snap *s);
/* The snapshot mapped for reading (shared snapshots only), or NULL. */
const unsigned char *viewsnap_map(struct view_snap *s);

/* An open of node N: the shared snapshot of its frame (made if the node
 * has none yet), with one reference and the node's open count raised.
 * *RENEWED: the node held another frame before, whose pages the kernel may
 * still cache. Returns 0 or -errno. */
int viewgen_open_shared(struct shmfs *fs, struct node *n, struct view_snap **out, int *renewed);
/* A writable open of N: a private snapshot of the frame the object holds
 * now, into *OUT (one reference). When nobody else has N open, N becomes
 * the open's own (*CLAIMED; taken out of the table, so later lookups make a
 * fresh node; its passthrough backing can be the snapshot). When others do,
 * N is taken out of the table if it is still there and -ESTALE returned, so
 * the kernel's retry finds a fresh node; if it is not, the snapshot is made
 * all the same when LOOSE_OK (the open is then served by the daemon), else
 * -EBUSY. Returns 0 or -errno. */
int viewgen_open_private(struct shmfs *fs, struct node *n, int loose_ok, struct view_snap **out,
			 int *claimed);
/* Keep N's backing id registered while its snapshot S is (an open just
 * registered it): the next open of the frame costs no ioctl. */
void viewgen_hold_backing(struct node *n, struct view_snap *s);
/* An open of N (shared or private) holding snapshot S is closed. */
void viewgen_close(struct shmfs *fs, struct node *n, struct view_snap *s);

/* viewspare.c: files for the snapshots of large views (this large and up),
 * kept ready: files of snapshots let go, reused once nobody else has them,
 * and spares made ahead. */
#define VIEWSPARE_MIN ((uint64_t)1 << 20)
/* Pages a reader lent out before its close (splice and sendfile into a pipe
 * or socket) are read after it: a file is reused no sooner than this after
 * its last close, time for such queues to drain when their reader keeps up
 * (a 64 KiB pipe read at 4 MB/s, a 4 MiB socket queue at 2 Gb/s). Longer
 * would keep more files for a view reopened as fast as the benchmark does
 * (two files go round when it is below one open-to-open cycle there). */
#define VIEWSPARE_GRACE_MS 20
/* A file of exactly SIZE bytes that nobody but the daemon has, mapped
 * read-write at *MAP (*POPULATED: its page tables filled): 0, or -ENOENT
 * when none is ready. Its content is whatever it held. The caller owns
 * both. */
int viewspare_take(uint64_t size, int *fd, unsigned char **map, int *populated);
/* The file FD of a snapshot let go (SIZE bytes, mapped read-write at MAP),
 * whose last open closed at CLOSED_MS (view_now_ms; 0: never served), for
 * viewspare_take to reuse once unshared and VIEWSPARE_GRACE_MS after that
 * close; closed off the caller's path when there is no room. Takes
 * ownership of both. */
void viewspare_return(int fd, unsigned char *map, uint64_t size, int populated,
		      uint64_t closed_ms);
/* -o noreuse (at start, before any op): files once served are never taken
 * again, whatever the lease says; spares made ahead still are. */
void viewspare_no_reuse(void);
/* The stream open at FD (of stat ST) mapped shared, read-write when it can
 * be (*WRITABLE): for a large stream, the mapping kept from its last frame
 * when there is one. Returns the address or MAP_FAILED; give it back with
 * viewspare_unmap_stream. */
void *viewspare_map_stream(int fd, const struct stat *st, int *writable);
void viewspare_unmap_stream(void *map, size_t len);
/* Unmap MAP (SIZE bytes) and close FD (unless -1) on the worker, off the
 * caller's path. */
void viewspare_discard(int fd, unsigned char *map, uint64_t size);

#endif
