/* fs.h - state shared by the FUSE front end: the mount, its nodes (one per
 * kernel inode) and open-file handles. Ops live in ops.c (dispatch), posix.c
 * (files of SOURCE) and sysv.c (the System V directory).
 *
 * Lock order: node->lock, then inode_table.lock; never the other way round.
 * The views' idle-snapshot list lock (viewsnap.c) comes after node->lock
 * and before inode_table.lock; whoever holds it only trylocks a node. Handles have their own locks
 * (pmap) and take no other lock while held. inode_table.fd_lock (the
 * directory descriptors kept open, inodefd.c) is a leaf: taken under any of
 * these, or none, and nothing is taken while it is held. */
#ifndef SHMFS_FS_H
#define SHMFS_FS_H

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 314
#endif
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "pmap.h"

enum node_kind {
	NODE_POSIX,    /* a file, link or directory of SOURCE (the root too) */
	NODE_SYSV_DIR, /* the System V directory */
	NODE_SYSV_SEG, /* one System V segment (or one being created) */
	NODE_VIEW,     /* a FITS or MRC view of a segment (see view.c) */
	NODE_LOAD,     /* a name being created by a copy that loads it (load.c) */
};

struct sysv_pending;
struct shmfs;
struct file_handle;
struct dirfd_slot;
struct node_name;
struct view_state;
struct sysv_typed;
struct load_stage;
struct view_gen;
struct replace_state;

/* Everything an open hands the kernel as fi->fh starts with this, and is on
 * the mount's list until released: a RELEASE still in flight when the mount
 * goes away never arrives, and what it would have freed is freed at exit. */
struct open_item {
	struct open_item *prev, *next; /* shmfs.open_lock */
	void (*close)(struct shmfs *fs, struct open_item *item);
};

struct node {
	enum node_kind kind;
	uint64_t nlookup;       /* kernel references; inode_table.lock */
	struct node *hash_next; /* inode_table.lock */

	/* NODE_POSIX (and NODE_VIEW of a POSIX object): how the object is
	 * reached without holding it open (inodefd.c): its file handle, or,
	 * where SOURCE's filesystem gives none, an O_PATH descriptor (fd >= 0,
	 * owned; the root's is SOURCE itself). Both set once; used only through
	 * inode_fd() and inode_open(). DEV and INO: the identity it had when
	 * looked up, its key in the inode table. */
	struct file_handle *handle; /* set once; inode_table.fd_lock while NAME */
	int fd;
	dev_t dev;
	ino_t ino;
	struct node_name *name; /* a node a listing made: its directory and name
				 * there, which find its handle when first needed
				 * (inodefd.c); set at creation */
	int isdir;   /* set once: its descriptor may be kept (inodefd.c) */
	int retired; /* inode_table.lock: its (dev, ino) names another object
		      * now (the old one was removed): lookups pass it by */

	/* NODE_SYSV_SEG: the segment, or shmid -1 while it is still being
	 * created (then PENDING holds what was written so far). Both under lock. */
	int shmid;
	key_t key;
	struct sysv_pending *pending;

	/* Passthrough: the backing id every passthrough open of this inode must
	 * share (the kernel refuses two different backing files on one inode),
	 * and how many open handles use it; BACKING_PRIVATE when it is one open's
	 * own file (inode_backing_claim), which no other open may share. All
	 * under lock. */
	int backing_id;
	int backing_users;
	int backing_private;

	/* NODE_VIEW: which view (enum view_kind) of which object: a POSIX object
	 * (fd, dev, ino as above) or a segment (shmid; dev 0, ino = shmid). */
	uint32_t variant;
	/* A frame view's generation (viewsnap.c: one node per frame, its
	 * snapshot; under lock), and whether the node is its view's current
	 * one, the one lookups find (inode_table.lock). */
	struct view_gen *gen;
	int view_current;

	/* NODE_LOAD: the staged copy (set once at creation). */
	struct load_stage *stage;
	pthread_mutex_t lock;
};

/* Nodes by identity: (dev, ino) for POSIX nodes, shmid for segments.
 * A node lives while the kernel holds a reference to it (nlookup > 0). */
struct inode_table {
	pthread_mutex_t lock;
	struct node **buckets; /* lock */
	size_t nbuckets;       /* lock */
	size_t count;          /* lock */
	/* How nodes reach their objects (inodefd.c); set once at start. */
	int mount_fd;          /* SOURCE, open for reading: open_by_handle_at's anchor */
	dev_t dev;             /* SOURCE's filesystem: handles are decoded on it */
	int handles;           /* whether file handles work there */
	int by_name;           /* ... and it is tmpfs, whose ctimes tell when a
				* name was bound (inode_lookup_at) */
	pthread_mutex_t fd_lock;     /* the slots below: a leaf lock */
	struct dirfd_slot *slots;    /* fd_lock: directory descriptors kept open */
	unsigned long fd_clock;      /* fd_lock: their last use */
};

struct shmfs {
	struct fuse_session *se; /* set once, before the loop */
	const char *source;      /* the backing directory (its real path) */
	const char *mountpoint;  /* the mount point (its real path) */
	char *sysvdir;           /* name of the System V directory under the root */
	int debug;
	double timeout;          /* entry and attribute timeout, seconds (-o timeout);
				  * negative entries are never cached */
	int reserve;             /* -o reserve: growing by truncate reserves memory */
	struct node root;        /* FUSE_ROOT_ID; fd is SOURCE (open for reading) */
	struct node sysv_dir;    /* never forgotten */
	struct timespec started; /* times of the System V directory */
	struct inode_table table;
	pthread_mutex_t pending_lock; /* the list below */
	struct node *pending_head;    /* segments being created; see sysv.c */
	pthread_mutex_t open_lock;    /* the list below */
	struct open_item open_items;  /* every open handle and directory */
	pthread_mutex_t typed_lock;   /* the list below */
	struct sysv_typed *typed;     /* layouts of System V segments (sysvview.c) */
	struct replace_state *replace; /* unlinked objects' graces (replace.c) */
};

/* ops.c: the list of open items */
void open_track(struct shmfs *fs, struct open_item *item,
		void (*close)(struct shmfs *fs, struct open_item *item));
void open_untrack(struct shmfs *fs, struct open_item *item);
/* Close everything still open (at exit). */
void open_close_all(struct shmfs *fs);

static inline struct shmfs *shmfs_of(fuse_req_t req) { return fuse_req_userdata(req); }

/* inode.c */
int inode_table_init(struct inode_table *t);
void inode_table_destroy(struct inode_table *t);
/* The node for a FUSE inode number (nodes are addressed by pointer). */
struct node *inode_node(struct shmfs *fs, fuse_ino_t ino);
fuse_ino_t inode_number(struct shmfs *fs, struct node *n);
/* Find or add the node of a POSIX object (ST: its attributes) and take one
 * kernel reference. The object is named by HANDLE (adopted) if not NULL;
 * else FD (O_PATH) is closed once the object's file handle names it, or
 * adopted by a new node where it has none. A node whose (dev, ino) is ST's
 * but whose handle is not names a removed object: it is retired, and a new
 * node made. Returns NULL (having freed HANDLE, closed FD) when out of
 * memory. */
struct node *inode_get_posix(struct inode_table *t, int fd, struct file_handle *handle,
			     const struct stat *st);
/* The same for object NAME of directory node DIR (ST: its attributes, just
 * taken), named lazily: a new node keeps NAME and a reference on DIR (unless
 * DIR is the root, ROOT), and finds its handle by them when it is first
 * used; a listing (READDIRPLUS) makes a node per entry, most of which are
 * never used. An existing node of (dev, ino) is taken as it is. Returns
 * NULL when out of memory. */
struct node *inode_get_posix_listed(struct inode_table *t, struct node *dir, int root,
				    const char *name, const struct stat *st);
/* Find or add the node of a segment and take one kernel reference. */
struct node *inode_get_sysv(struct inode_table *t, int shmid, key_t key);
/* Add an existing (pending) segment node under SHMID once it exists. */
void inode_rekey_sysv(struct inode_table *t, struct node *n, int shmid);
/* Take one more kernel reference on a live node; returns 0 (and takes
 * nothing) if the node's last reference is already being dropped. */
int inode_ref(struct inode_table *t, struct node *n);
/* Drop NLOOKUP kernel references; frees the node at zero. */
void inode_forget(struct shmfs *fs, struct node *n, uint64_t nlookup);
/* Find or add a view node (see struct node) and take one kernel reference;
 * FD (O_PATH of the object, or -1) is named by its handle and closed, or
 * adopted, as for POSIX nodes (a node of another object of that (dev, ino)
 * is passed by). */
struct node *inode_get_view(struct inode_table *t, int fd, dev_t dev, ino_t ino, uint32_t variant,
			    int shmid);
/* The node of a frame view (gen != NULL): of the nodes of one view (DEV,
 * INO, VARIANT) in the table, one is current, the one lookups find; the
 * others are older generations, filed until forgotten (freed with the table
 * at exit). If SAME(current->gen, GEN) says a lookup may
 * answer with it, it gets one more kernel reference; otherwise a new node
 * adopting GEN (and FD, as inode_get_view) takes its place, and the node it
 * replaced, if any, is handed back in *REPLACED with a reference of the
 * caller's (drop it with inode_forget). SAME runs under inode_table.lock.
 * NULL when out of memory (GEN not adopted). */
struct node *inode_get_view_gen(struct inode_table *t, int fd, dev_t dev, ino_t ino,
				uint32_t variant, int shmid, struct view_gen *gen,
				int (*same)(const struct view_gen *current, const struct view_gen *gen),
				struct node **replaced);
/* The current node of view (DEV, INO, VARIANT) if SAME(its gen, GEN) says
 * a lookup may answer with it, with one more kernel reference; else NULL. */
struct node *inode_find_view(struct inode_table *t, dev_t dev, ino_t ino, uint32_t variant,
			     int (*same)(const struct view_gen *current, const struct view_gen *gen),
			     const struct view_gen *gen);
/* View node N is no longer its view's current node (a writable open owns
 * it): later lookups make a fresh node. Returns whether it was current. */
int inode_view_retire(struct inode_table *t, struct node *n);
/* A new node of view node N's object and kind (open as FD, adopted; -1
 * for a segment's view), with one reference, which no lookup answers
 * with; NULL when that fails. */
struct node *inode_view_twin(struct inode_table *t, struct node *n, int fd);
/* The path that reopens descriptor FD (an O_PATH one, say) with real access
 * modes: "/proc/self/fd/FD". */
void proc_path(char buf[64], int fd);
/* The name the object behind FD has now (its last path component; IMOD
 * files carry their capacity in it), or "" if unknown. */
void fd_object_name(int fd, char *name, size_t len);
/* The directory the object behind FD is in now, as an O_PATH descriptor (the
 * caller closes it), and the object's NAME there. Returns the descriptor,
 * or -ESTALE when the object has been removed or cannot be found. */
int fd_object_dir(int fd, char *name, size_t len);
/* The same for the object of node N. */
void inode_object_name(struct shmfs *fs, struct node *n, char *name, size_t len);
int inode_object_dir(struct shmfs *fs, struct node *n, char *name, size_t len);

/* inodefd.c: how a node reaches its object without holding it open. */
/* How the nodes of T reach their objects: MOUNT_FD is SOURCE, open for
 * reading (not O_PATH; kept by the caller). Says in the log how, once. */
void inode_fd_setup(struct inode_table *t, int mount_fd);
/* A descriptor of N's object for the request at hand: O_PATH (for the *at
 * calls, with AT_EMPTY_PATH for the object itself), or the one a directory
 * keeps. Returns it, or -errno: -ESTALE when the object is gone, -EMFILE or
 * -ENFILE when the daemon has no descriptor left (logged once). Give it
 * back with inode_fd_put(). Never inside a creds scope: it needs the
 * daemon's own capabilities (open_by_handle_at). */
int inode_fd(struct shmfs *fs, struct node *n);
void inode_fd_put(struct shmfs *fs, struct node *n, int fd);
/* Whether directory DIRFD has no entry NAME (ENOENT; any other error counts
 * as an entry there). */
int name_absent(int dirfd, const char *name);
/* The same in directory node DIR; 0 when no descriptor of it can be had. */
int inode_name_absent(struct shmfs *fs, struct node *dir, const char *name);
/* A rename the daemon carries out itself (a stream link's, or a file's
 * loaded into a view): AT, with the descriptors of PARENT and NEWPARENT,
 * returns 1 (done), -errno (refused) or 0 (not its kind; or without the
 * descriptors, the plain rename says why), and does not answer. The
 * descriptors are given back before the answer: the kernel may forget the
 * directories once it has it. Returns whether the request was answered. */
int rename_in_dirs(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		   const char *newname, unsigned int flags,
		   int (*at)(fuse_req_t req, int dirfd, const char *name, struct node *newparent,
			     int newdirfd, const char *newname, unsigned int flags));
/* N's object opened anew with FLAGS (O_RDONLY, O_RDWR, O_TRUNC, O_NONBLOCK,
 * ...; O_CLOEXEC is added): the caller's descriptor, or -errno as for
 * inode_fd. Never inside a creds scope. */
int inode_open(struct shmfs *fs, struct node *n, int flags);
/* How FD (O_PATH, of an object on filesystem DEV) is to be named by a node:
 * 1 and *HANDLE (malloc'd) when a file handle names it, 0 when the node must
 * keep FD itself, -ENOMEM. For inode.c. */
int inode_fd_name(struct inode_table *t, int fd, dev_t dev, struct file_handle **handle);
/* The attributes of object NAME of directory DIRFD into ST, and how a node
 * is to name it: *HANDLE (malloc'd) where a handle names it, else *FD (an
 * O_PATH descriptor to adopt). Returns 0 or -errno. */
int inode_lookup_at(struct inode_table *t, int dirfd, const char *name, struct stat *st,
		    struct file_handle **handle, int *fd);
/* Whether node A names its object by handle B (both NULL: nodes that keep
 * a descriptor, taken as alike). */
int inode_fd_same(const struct node *a, const struct file_handle *b);
/* Whether node N, found by the (dev, ino) of the object *HANDLE names,
 * names that object: a listed node that has no handle yet takes *HANDLE
 * (*HANDLE is then NULL). Caller holds inode_table.lock. */
int inode_fd_match(struct inode_table *t, struct node *n, struct file_handle **handle);
/* Make listed node N of DIR (a reference of N's, taken when REF) know NAME. 0 or -ENOMEM. */
int inode_fd_listed(struct node *n, struct node *dir, int ref, const char *name);
/* Let go of what N holds to reach its object (inode.c, when N goes); the
 * directory whose reference N held, to be dropped by the caller, or NULL. */
struct node *inode_fd_release(struct inode_table *t, struct node *n);
/* Free the kept directory descriptors (at exit). */
void inode_fd_teardown(struct inode_table *t);
/* A descriptor was refused with EMFILE: raise the limit if it can still go
 * up (soft to hard; as root, both to fs.nr_open). Returns 1 if it went up. */
int fd_limit_raise(void);
/* Say once that WHAT was refused for want of descriptors (ERR: EMFILE or
 * ENFILE) or memory; other ERR say nothing. */
void fd_exhausted(const char *what, int err);
/* FD, just opened for a file open through the mount (it stays open as long
 * as that file), if keeping it leaves a reserve of descriptors for the
 * requests' own short uses (lookups, listings, stat), the limit raised if
 * need be; else FD is closed, WHAT logged once, and -EMFILE returned: the
 * open fails, nothing else does. FD < 0 is returned as it is. */
int fd_keep(int fd, const char *what);
/* The same asked before a descriptor is made (a create, which must not
 * make its object and then fail): 0 or -EMFILE. PROBE_FD: any descriptor
 * the daemon holds (it is duplicated to learn the lowest free number). */
int fd_room(int probe_fd, const char *what);
/* A node that is in no table yet (a segment being created), one reference. */
struct node *inode_new_sysv_pending(key_t key);
/* A node in no table (a name being created by a loading copy), one reference. */
struct node *inode_new_load(struct inode_table *t);
/* The node's backing id for a passthrough open, registering one with the fd
 * OPEN_FD(N, ARG) returns (and then closes) if the node has none. Returns the
 * id or -errno; each success is paired with inode_backing_put(). */
int inode_backing_get(struct node *n, int (*open_fd)(struct node *n, void *arg), void *arg);
/* Make FD (a load's staging file, a writable view's private copy) the
 * backing file of node N for one open that shares it with nobody: only when
 * no open uses N's backing now. Returns the id, paired with
 * inode_backing_put(), or -EBUSY (serve that open through the daemon). */
int inode_backing_claim(struct node *n, int fd);
void inode_backing_put(struct node *n);
/* With N->lock held: take one more reference on N's shared backing id, if
 * it has one (returns 1; pair with inode_backing_put_locked), and drop one.
 * A view keeps its frame's backing registered between opens this way. */
int inode_backing_hold_locked(struct node *n);
void inode_backing_put_locked(struct node *n);

/* A handle of an open raw file (fi->fh). */
struct handle {
	struct open_item item; /* first: fi->fh points here too */
	struct node *node;
	struct pmap map;   /* POSIX: the open descriptor and the daemon's mapping */
	void *shm_addr;    /* System V: the daemon's attachment, or NULL */
	size_t shm_size;
	int writable;
	int passthrough;   /* holds a reference on node->backing_id */
	struct view_state *view; /* NODE_VIEW: the view's image (view.c) */
	struct load_stage *load; /* a copy being loaded (load.c) */
};

/* posix.c: ops on files of SOURCE */
/* Make symlink NAME -> TARGET in DIRFD as the caller of REQ (its owner and
 * group are the caller's, as on tmpfs): 0 or -errno. */
int posix_symlink_as_caller(fuse_req_t req, const char *target, int dirfd, const char *name);
void posix_lookup(fuse_req_t req, struct node *parent, const char *name);
/* The entry of NAME in PARENT, with a kernel reference: 0 or -errno. */
int posix_entry(struct shmfs *fs, struct node *parent, const char *name,
		struct fuse_entry_param *e);
/* The same for a listing (READDIRPLUS): the node finds its object's handle
 * when first used (inode_get_posix_listed), so an entry costs one stat. */
int posix_entry_listed(struct shmfs *fs, struct node *dir, const char *name,
		       struct fuse_entry_param *e);
void posix_getattr(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
void posix_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set,
		   struct fuse_file_info *fi);
void posix_readlink(fuse_req_t req, struct node *n);
void posix_mknod(fuse_req_t req, struct node *parent, const char *name, mode_t mode, dev_t rdev);
void posix_mkdir(fuse_req_t req, struct node *parent, const char *name, mode_t mode);
void posix_link(fuse_req_t req, struct node *n, struct node *newparent, const char *newname);
void posix_unlink(fuse_req_t req, struct node *parent, const char *name, int flags);
void posix_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		  const char *newname, unsigned int flags);
void posix_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
void posix_create(fuse_req_t req, struct node *parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi);
void posix_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void posix_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off);
/* FALLOCATE on an open object: the modes SOURCE's filesystem has. */
void posix_falloc(fuse_req_t req, struct handle *h, int mode, off_t off, off_t len);
void posix_fsync(fuse_req_t req, struct handle *h, int datasync);
void posix_release(struct shmfs *fs, struct handle *h);
int posix_list(struct shmfs *fs, struct node *dir, void *snapshot);

/* sysv.c: the System V directory and its segments */
void sysv_dir_lookup(fuse_req_t req, const char *name);
/* The entry of a segment by name, with a kernel reference. Returns 0 or
 * -errno (-ENOENT when there is no such segment). */
int sysv_entry(fuse_req_t req, const char *name, struct fuse_entry_param *e);
void sysv_dir_stat(struct shmfs *fs, struct stat *st);
void sysv_seg_getattr(fuse_req_t req, struct node *n);
void sysv_seg_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set,
		      struct fuse_file_info *fi);
void sysv_seg_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi);
void sysv_seg_create(fuse_req_t req, const char *name, mode_t mode, struct fuse_file_info *fi);
void sysv_seg_read(fuse_req_t req, struct handle *h, size_t size, off_t off);
void sysv_seg_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off);
/* FALLOCATE within a segment (it cannot grow). */
void sysv_seg_fallocate(fuse_req_t req, struct handle *h, int mode, off_t off, off_t len);
int sysv_seg_flush(struct handle *h);
void sysv_seg_release(struct shmfs *fs, struct handle *h);
void sysv_dir_unlink(fuse_req_t req, const char *name);
int sysv_list(void *snapshot);
void sysv_node_free(struct node *n);

/* xattr.c: extended attributes (user.shmfs.*: what shmfs knows; typed layouts) */
void xattr_get(fuse_req_t req, struct node *n, const char *name, size_t size);
void xattr_list(fuse_req_t req, struct node *n, size_t size);
void xattr_set(fuse_req_t req, struct node *n, const char *name, const char *value, size_t size,
	       int flags);
void xattr_remove(fuse_req_t req, struct node *n, const char *name);
/* Reply to GETXATTR or LISTXATTR with VALUE (LEN bytes) for a caller's
 * buffer of SIZE: the length when SIZE is 0, ERANGE when it is too small. */
void xattr_reply_value(fuse_req_t req, const char *value, size_t len, size_t size);

/* ops.c */
extern const struct fuse_lowlevel_ops shmfs_ops;
/* Reply to a read of SIZE bytes at OFF with what pread of FD gives. */
void reply_pread(fuse_req_t req, int fd, size_t size, off_t off);
/* Whether the root shows the System V directory (SOURCE has no entry of that name). */
int shmfs_sysv_visible(struct shmfs *fs);

/* dirsnap.c: a directory listing taken at opendir, so offsets are indexes
 * and stay valid whatever happens to the directory meanwhile. A snapshot
 * starts with a struct open_item (it is an open directory's fi->fh). */
void *dirsnap_new(void);
void dirsnap_free(void *snapshot);
int dirsnap_add(void *snapshot, const char *name, ino_t ino, mode_t type);
/* Whether SNAPSHOT already has an entry NAME. */
int dirsnap_has(void *snapshot, const char *name);
/* Leave entry NAME out of SNAPSHOT (if there). */
void dirsnap_drop(void *snapshot, const char *name);
/* Mark the entries so far as SOURCE's own (before any view is added), and
 * how many those are. */
void dirsnap_set_real(void *snapshot);
size_t dirsnap_real(void *snapshot);
/* Entries so far, and entry I's name (good as long as SNAPSHOT), type
 * (S_IFREG, ...) and inode number. */
size_t dirsnap_count(void *snapshot);
const char *dirsnap_name(void *snapshot, size_t i);
mode_t dirsnap_type(void *snapshot, size_t i);
ino_t dirsnap_ino(void *snapshot, size_t i);

#endif
