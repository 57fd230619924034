/* load.c - loading by copying: `cp image.fits MOUNT/X.fits` makes or updates
 * stream X, `cp vol.mrc MOUNT/IMODShrMem_KB_N.mrc` fills that IMOD file. The
 * bytes written are staged in a memfd of the copy's own, on a node of the
 * copy's own (a new name's, or one an existing view's copy is redirected
 * to), which the kernel writes itself (passthrough) where it can, else the
 * daemon does. When the copy is closed (FLUSH, which reaches the daemon
 * either way) they are handed to core/load.c, which changes SOURCE all at
 * once or not at all, and the close returns its error. Until then nothing
 * in SOURCE changes. Renames and unlinks that replace a view are in
 * replace.c. */
#define _GNU_SOURCE
#include "fsload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fitshdr.h"
#include "fsview.h"
#include "imod.h"
#include "isio.h"
#include "load.h"
#include "log.h"
#include "passthrough.h"

/* The staged copy. Shared by the node of a name being created and its
 * handle, so it lives until both are gone (refs, under lock). */
struct load_stage {
	pthread_mutex_t lock;
	unsigned refs;           /* lock */
	int memfd;               /* the bytes written so far */
	int dirfd;               /* the directory of the object (O_PATH, owned) */
	char object[NAME_MAX + 1]; /* stream name without suffix, or IMOD file name */
	char name[NAME_MAX + 1];   /* the name written in the mount, for the log */
	int imod;                /* MRC into an IMOD file, else FITS into a stream */
	uid_t uid;               /* owner of what is created, or -1 */
	gid_t gid;
	/* The staged file as the last load found it (lock): a FLUSH loads
	 * only what changed since (writes by passthrough never reach the
	 * daemon, so the memfd's own size and change time tell). */
	int tried;
	off_t tried_size;
	struct timespec tried_ctime;
	/* A copy onto a view, given a node of its own: the view's mode and
	 * owner, shown as that node's (set before the node is seen). */
	int has_look;
	mode_t look_mode;
	uid_t look_uid;
	gid_t look_gid;
};

int load_target(const char *name, char *object, size_t len, int *imod)
{
	size_t n = strlen(name);
	if (n > 4 && strcmp(name + n - 4, ".mrc") == 0) {
		snprintf(object, len, "%.*s", (int)(n - 4), name);
		*imod = 1;
		return imod_name_capacity(object) != 0;
	}
	if (n > 5 && strcmp(name + n - 5, ".fits") == 0 && n - 5 + strlen(ISIO_SUFFIX) <= NAME_MAX) {
		snprintf(object, len, "%.*s", (int)(n - 5), name);
		*imod = 0;
		return 1;
	}
	return 0;
}

static void stage_put(struct load_stage *s)
{
	pthread_mutex_lock(&s->lock);
	unsigned left = --s->refs;
	pthread_mutex_unlock(&s->lock);
	if (left)
		return;
	close(s->memfd);
	close(s->dirfd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void load_owner(fuse_req_t req, uid_t *uid, gid_t *gid)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	/* What is created belongs to the one who copied (root's stays root's). */
	*uid = ctx->uid ? ctx->uid : (uid_t)-1;
	*gid = ctx->uid || ctx->gid ? ctx->gid : (gid_t)-1;
}

static struct load_stage *stage_new(fuse_req_t req, int dirfd, const char *name,
				    const char *object, int imod)
{
	struct load_stage *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->memfd = memfd_create("shmfs-load", MFD_CLOEXEC);
	s->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (s->memfd < 0 || s->dirfd < 0) {
		if (s->memfd >= 0)
			close(s->memfd);
		if (s->dirfd >= 0)
			close(s->dirfd);
		free(s);
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->refs = 1;
	snprintf(s->name, sizeof s->name, "%s", name);
	snprintf(s->object, sizeof s->object, "%s", object);
	s->imod = imod;
	load_owner(req, &s->uid, &s->gid);
	/* Opening with O_CREAT or O_TRUNC says "the file is what I write":
	 * closing without writing loads an empty file, which is refused. */
	s->tried = 0;
	return s;
}

/* load_from_fd; without STORE (FITS only), the file is only decoded: a
 * failure is logged and returned as a load's would be, success is silent. */
static int load_fd(int dirfd, const char *object, int imod, int fd, uid_t uid, gid_t gid,
		   const char *name, int store)
{
	char why[256] = "";
	struct stat st;
	int rc = fstat(fd, &st) < 0 ? -errno : 0;
	void *bytes = NULL;
	size_t len = rc == 0 ? (size_t)st.st_size : 0;
	if (rc == 0 && len == 0) {
		rc = -EINVAL;
		snprintf(why, sizeof why, "the file is empty");
	}
	if (rc == 0) {
		bytes = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (bytes == MAP_FAILED) {
			bytes = NULL;
			rc = -errno;
			snprintf(why, sizeof why, "%s", strerror(-rc));
		}
	}
	enum load_result did = LOAD_CREATED;
	if (rc == 0 && imod) {
		rc = load_mrc_imod(dirfd, object, bytes, len, uid, gid, &did, why, sizeof why);
	} else if (rc == 0) {
		/* The image's data stay in BYTES until load_stream converts them. */
		struct load_image img;
		rc = load_fits_decode_lazy(bytes, len, &img, why, sizeof why);
		if (rc == 0) {
			if (store)
				rc = load_stream(dirfd, object, &img, uid, gid, &did, why, sizeof why);
			load_image_free(&img);
		}
	}
	if (bytes)
		load_unmap(bytes, len);
	if (rc < 0) {
		shm_log(SHM_LOG_WARN, "%s: not loaded, %s left as it was: %s", name,
			imod ? object : "the stream", why[0] ? why : strerror(-rc));
		/* The errors a copy can be told about; the log has the rest. */
		if (rc != -EINVAL && rc != -EIO && rc != -ENOSPC && rc != -ENOMEM &&
		    rc != -EACCES && rc != -EPERM && rc != -EFBIG)
			rc = -EIO;
		return rc;
	}
	if (!store)
		return 0;
	static const char *const what[] = {"created", "updated", "replaced"};
	shm_log(SHM_LOG_INFO, "%s: loaded: %s %s%s %s", name, imod ? "IMOD file" : "stream",
		object, imod ? "" : ISIO_SUFFIX, (unsigned)did < 3 ? what[did] : "loaded");
	return 0;
}

int load_from_fd(int dirfd, const char *object, int imod, int fd, uid_t uid, gid_t gid,
		 const char *name)
{
	return load_fd(dirfd, object, imod, fd, uid, gid, name, 1);
}

/* Hand the staged bytes to the loader if they changed since the last try
 * (the same bytes would load, or fail, the same way again). LAST: the
 * copy's end (RELEASE), which loads what no FLUSH did. Caller holds
 * s->lock. */
static int stage_load(struct load_stage *s, int last)
{
	struct stat st;
	if (fstat(s->memfd, &st) < 0)
		return -EIO;
	if (s->tried && st.st_size == s->tried_size && st.st_ctim.tv_sec == s->tried_ctime.tv_sec &&
	    st.st_ctim.tv_nsec == s->tried_ctime.tv_nsec)
		return 0;
	/* Released with nothing written and never closed by a program: the
	 * open failed in the kernel after the daemon's reply. */
	if (last && !s->tried && st.st_size == 0)
		return 0;
	/* A FITS file ends padded to 2880 bytes. One that would load but is not
	 * padded yet is still being written, closed through one descriptor of
	 * several (astropy writes the data through a duplicate, closes it, then
	 * pads): loaded when padded, or at the last close, not twice. */
	if (!last && !s->imod && st.st_size % FITS_BLOCK != 0 &&
	    load_fd(s->dirfd, s->object, 0, s->memfd, s->uid, s->gid, s->name, 0) == 0)
		return 0;
	s->tried = 1;
	s->tried_size = st.st_size;
	s->tried_ctime = st.st_ctim;
	return load_from_fd(s->dirfd, s->object, s->imod, s->memfd, s->uid, s->gid, s->name);
}

static void load_close(struct shmfs *fs, struct open_item *item)
{
	load_release(fs, (struct handle *)item);
}

/* A handle on stage S (taking a reference on it) for node N. PASSTHROUGH:
 * N is the copy's own (NODE_LOAD), and the kernel may write the staging
 * file itself; else (a view's node, or passthrough off) the daemon stages
 * what is written. */
static int handle_attach(fuse_req_t req, struct node *n, struct load_stage *s, int passthrough,
			 struct fuse_file_info *fi)
{
	int id = passthrough && passthrough_enabled() ? inode_backing_claim(n, s->memfd) : 0;
	struct handle *h = calloc(1, sizeof *h);
	if (!h) {
		if (id > 0)
			inode_backing_put(n);
		return -ENOMEM;
	}
	pthread_mutex_lock(&s->lock);
	s->refs++;
	pthread_mutex_unlock(&s->lock);
	h->node = n;
	h->load = s;
	h->writable = 1;
	h->map.fd = -1;
	open_track(shmfs_of(req), &h->item, load_close);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 0;
	if (id > 0) {
		h->passthrough = 1;
		fi->direct_io = 0;
		passthrough_arm_reply(id, 0);
	} else {
		/* direct_io: every write reaches the daemon. */
		fi->direct_io = 1;
	}
	return 0;
}

void load_create(fuse_req_t req, struct node *parent, const char *name, const char *object,
		 int imod, mode_t mode, struct fuse_file_info *fi)
{
	(void)mode; /* streams are made 0666, as ImageStreamIO makes them */
	struct shmfs *fs = shmfs_of(req);
	int dirfd = inode_fd(fs, parent);
	if (dirfd < 0)
		return (void)fuse_reply_err(req, -dirfd);
	struct load_stage *s = stage_new(req, dirfd, name, object, imod);
	inode_fd_put(fs, parent, dirfd);
	struct node *n = s ? inode_new_load(&fs->table) : NULL;
	if (!n) {
		if (s)
			stage_put(s);
		return (void)fuse_reply_err(req, ENOMEM);
	}
	n->stage = s; /* the stage's first reference */
	int rc = handle_attach(req, n, s, 1, fi);
	if (rc < 0) {
		inode_forget(fs, n, 1);
		return (void)fuse_reply_err(req, -rc);
	}
	struct fuse_entry_param e = {.ino = inode_number(fs, n)};
	load_stat(n, &e.attr);
	/* Not cached: once loaded, the name is the stream's view. */
	e.entry_timeout = 0;
	e.attr_timeout = 0;
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		load_release(fs, (struct handle *)(uintptr_t)fi->fh);
		inode_forget(fs, n, 1);
	}
}

/* ---- copies onto an existing view (OPEN with O_TRUNC)
 *
 * A view's node is shared by every program that looks its name up, and the
 * kernel binds one backing file to a node: while one open of it is served
 * by passthrough, every other open of the node that is not passthrough with
 * that very file fails (EIO); and an O_TRUNC open empties the kernel's
 * inode (its size, its pages) for every open of it, passthrough or not. So
 * a copy onto a view does not use the view's node: the daemon makes the
 * copy a node of its own (NODE_LOAD: its stage ready, the view's mode and owner) and answers
 * the OPEN with ESTALE; the kernel then looks the name up again, and this
 * thread's lookups of the name are given that node (for REDIRECT_SECONDS), so
 * the copy's OPEN reaches it (and with passthrough, the kernel writes the
 * staging file itself). Everyone else's lookups keep getting the view.
 * Writable opens of views are given a node of their own the same way
 * (viewopen.c). */

#define REDIRECT_SLOTS 64
#define REDIRECT_SECONDS 2

struct redirect {
	struct node *node;       /* NODE_LOAD, the slot's reference; NULL: free */
	pid_t tid;               /* the copying thread */
	dev_t dir_dev;           /* the directory of NAME */
	ino_t dir_ino;
	char name[NAME_MAX + 1];
	struct timespec deadline; /* CLOCK_MONOTONIC */
};
static struct redirect redirects[REDIRECT_SLOTS]; /* redirect_lock */
static unsigned redirect_count;                   /* redirect_lock; read unlocked */
static pthread_mutex_t redirect_lock = PTHREAD_MUTEX_INITIALIZER;

/* Take slot R's node out (caller holds redirect_lock); the caller drops
 * the reference with inode_forget once the lock is released. */
static struct node *redirect_take(struct redirect *r)
{
	struct node *n = r->node;
	r->node = NULL;
	__atomic_store_n(&redirect_count, redirect_count - 1, __ATOMIC_RELEASE);
	return n;
}

/* Free the slots whose copy never came back (caller holds redirect_lock);
 * their nodes go to GONE (up to REDIRECT_SLOTS) for inode_forget. */
static size_t redirect_prune(struct node **gone)
{
	struct timespec now;
	size_t n = 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	for (int i = 0; i < REDIRECT_SLOTS; i++) {
		struct redirect *r = &redirects[i];
		if (r->node && (now.tv_sec > r->deadline.tv_sec ||
				(now.tv_sec == r->deadline.tv_sec && now.tv_nsec >= r->deadline.tv_nsec)))
			gone[n++] = redirect_take(r);
	}
	return n;
}

static void forget_all(struct shmfs *fs, struct node **nodes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		inode_forget(fs, nodes[i], 1);
}

int load_redirect(struct shmfs *fs, pid_t tid, const struct stat *dir, const char *name,
		  struct node *n)
{
	struct node *gone[REDIRECT_SLOTS + 1];
	size_t ngone;
	int rc = -EAGAIN;
	pthread_mutex_lock(&redirect_lock);
	ngone = redirect_prune(gone);
	struct redirect *free_slot = NULL;
	for (int i = 0; i < REDIRECT_SLOTS; i++) {
		struct redirect *r = &redirects[i];
		if (!r->node) {
			free_slot = free_slot ? free_slot : r;
		} else if (r->tid == tid && r->dir_dev == dir->st_dev && r->dir_ino == dir->st_ino &&
			   strcmp(r->name, name) == 0) {
			gone[ngone++] = redirect_take(r); /* not taken: the kernel did not look again */
			free_slot = NULL;
			rc = 0;
			break;
		}
	}
	if (free_slot && rc != 0) {
		*free_slot = (struct redirect){.node = n, .tid = tid, .dir_dev = dir->st_dev,
					       .dir_ino = dir->st_ino};
		snprintf(free_slot->name, sizeof free_slot->name, "%s", name);
		clock_gettime(CLOCK_MONOTONIC, &free_slot->deadline);
		free_slot->deadline.tv_sec += REDIRECT_SECONDS;
		__atomic_store_n(&redirect_count, redirect_count + 1, __ATOMIC_RELEASE);
		rc = 1;
	} else {
		gone[ngone++] = n; /* no slot (or not to be redirected): unused */
	}
	pthread_mutex_unlock(&redirect_lock);
	forget_all(fs, gone, ngone);
	return rc;
}

int load_redirect_take(struct shmfs *fs, struct node *n, pid_t tid)
{
	struct node *taken = NULL;
	pthread_mutex_lock(&redirect_lock);
	for (int i = 0; i < REDIRECT_SLOTS && !taken; i++)
		if (redirects[i].node == n && redirects[i].tid == tid)
			taken = redirect_take(&redirects[i]);
	pthread_mutex_unlock(&redirect_lock);
	if (taken)
		inode_forget(fs, taken, 1); /* the slot's reference: the kernel holds its own */
	return taken != NULL;
}

int load_lookup(fuse_req_t req, struct node *parent, const char *name)
{
	if (__atomic_load_n(&redirect_count, __ATOMIC_ACQUIRE) == 0)
		return 0;
	struct shmfs *fs = shmfs_of(req);
	pid_t tid = fuse_req_ctx(req)->pid;
	struct node *gone[REDIRECT_SLOTS], *n = NULL;
	pthread_mutex_lock(&redirect_lock);
	size_t ngone = redirect_prune(gone);
	for (int i = 0; i < REDIRECT_SLOTS && !n; i++) {
		struct redirect *r = &redirects[i];
		if (r->node && r->tid == tid && r->dir_dev == parent->dev &&
		    r->dir_ino == parent->ino && strcmp(r->name, name) == 0 &&
		    inode_ref(&fs->table, r->node))
			n = r->node;
	}
	pthread_mutex_unlock(&redirect_lock);
	forget_all(fs, gone, ngone);
	if (!n)
		return 0;
	struct fuse_entry_param e = {.ino = inode_number(fs, n)};
	int rc = 0;
	if (n->kind == NODE_LOAD)
		load_stat(n, &e.attr);
	else
		rc = view_node_stat(fs, n, &e.attr);
	if (rc < 0 && rc != -ESTALE) { /* a view's object gone: the lookup says so */
		inode_forget(fs, n, 1);
		return 0;
	}
	e.entry_timeout = 0; /* everyone else's lookups find the view */
	e.attr_timeout = 0;
	if (fuse_reply_entry(req, &e) == -ENOENT)
		inode_forget(fs, n, 1);
	return 1;
}

int load_open_redirected(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	/* A node being created, or a redirect already taken: the kernel looks
	 * the name up again and finds the view. */
	if (!load_redirect_take(fs, n, fuse_req_ctx(req)->pid))
		return -ESTALE;
	int rc = handle_attach(req, n, n->stage, 1, fi);
	if (rc == 0 && fuse_reply_open(req, fi) == -ENOENT)
		load_release(fs, (struct handle *)(uintptr_t)fi->fh);
	return rc;
}

/* The stage of a copy onto view N (*OUT), and the copy's own node for it,
 * to which the thread's next lookup of the view's name is redirected:
 * -ESTALE (redirected: the kernel looks again), 0 (no redirect: stage the
 * copy in place), or another -errno (*OUT NULL). */
static int trunc_redirect(fuse_req_t req, struct node *n, struct load_stage **out)
{
	char object[NAME_MAX + 1], objpath[PATH_MAX], path[64];
	*out = NULL;
	/* The object's directory, from the path of a descriptor of it. */
	int ofd = inode_fd(shmfs_of(req), n);
	if (ofd < 0)
		return ofd;
	fd_object_name(ofd, object, sizeof object);
	proc_path(path, ofd);
	ssize_t len = readlink(path, objpath, sizeof objpath - 1);
	inode_fd_put(shmfs_of(req), n, ofd);
	if (len <= 0)
		return -ESTALE;
	objpath[len] = '\0';
	/* A stream replaced by another load (another shape) since the kernel
	 * looked the view up: the copy goes to the name, which is there.
	 * Removed, and nothing there: ESTALE, and the kernel looks again. */
	static const char deleted[] = " (deleted)";
	size_t dl = sizeof deleted - 1;
	int gone = (size_t)len > dl && strcmp(objpath + len - dl, deleted) == 0;
	if (gone)
		objpath[len - dl] = '\0';
	char *slash = strrchr(objpath, '/');
	if (!slash)
		return -ESTALE;
	*slash = '\0';
	int dirfd = open(objpath[0] ? objpath : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	struct stat dir;
	if (dirfd < 0)
		return -ESTALE;
	if (gone) {
		snprintf(object, sizeof object, "%s", slash + 1);
		if (faccessat(dirfd, object, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			close(dirfd);
			return -ESTALE;
		}
	}
	int imod = n->variant == VK_IMOD_MRC;
	char name[NAME_MAX + 1];
	size_t olen = strlen(object);
	if (!imod) { /* X.im.shm: the stream X, seen as X.fits */
		if (olen <= strlen(ISIO_SUFFIX)) {
			close(dirfd);
			return -ESTALE;
		}
		object[olen - strlen(ISIO_SUFFIX)] = '\0';
		snprintf(name, sizeof name, "%.*s.fits", NAME_MAX - 5, object);
	} else {
		snprintf(name, sizeof name, "%.*s.mrc", NAME_MAX - 4, object);
	}
	struct load_stage *s = stage_new(req, dirfd, name, object, imod);
	int have_dir = fstat(dirfd, &dir) == 0;
	close(dirfd);
	if (!s)
		return -ENOMEM;
	/* The copy's own node carries the view's mode and owner: the kernel
	 * checks the copy's open against them again. With passthrough or
	 * without: an O_TRUNC open empties the kernel's idea of its inode
	 * (size 0, no pages), which on the view's own node readers of the
	 * view would see. */
	struct stat look;
	pid_t tid = fuse_req_ctx(req)->pid;
	if (tid > 0 && have_dir && view_node_stat(shmfs_of(req), n, &look) == 0) {
		s->look_mode = look.st_mode;
		s->look_uid = look.st_uid;
		s->look_gid = look.st_gid;
		s->has_look = 1;
		struct node *own = inode_new_load(&shmfs_of(req)->table);
		if (own) {
			pthread_mutex_lock(&s->lock);
			s->refs++; /* the node's */
			pthread_mutex_unlock(&s->lock);
			own->stage = s;
			if (load_redirect(shmfs_of(req), tid, &dir, name, own) == 1) {
				stage_put(s);
				return -ESTALE;
			}
		}
	}
	*out = s;
	return 0;
}

int load_trunc_redirect(fuse_req_t req, struct node *n)
{
	struct load_stage *s;
	int rc = trunc_redirect(req, n, &s);
	if (s)
		stage_put(s);
	return rc;
}

int load_open_trunc(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct load_stage *s;
	int rc = trunc_redirect(req, n, &s);
	if (rc < 0)
		return rc;
	/* No redirect (a caller in another PID namespace, no free slot):
	 * staged through the daemon on the view's node, if nobody else
	 * reads it. */
	rc = viewgen_take_for_copy(shmfs_of(req), n);
	if (rc < 0) {
		stage_put(s);
		return rc;
	}
	rc = handle_attach(req, n, s, 0, fi);
	stage_put(s); /* the handle has its own reference */
	if (rc < 0)
		return rc;
	if (fuse_reply_open(req, fi) == -ENOENT)
		load_release(shmfs_of(req), (struct handle *)(uintptr_t)fi->fh);
	return 0;
}

/* The attributes of stage S, seen as node N. */
static void stage_stat(struct load_stage *s, struct node *n, struct stat *st)
{
	struct stat m;
	memset(st, 0, sizeof *st);
	st->st_ino = (ino_t)(uintptr_t)n;
	st->st_mode = S_IFREG | (s->has_look ? s->look_mode & 07777 : 0666);
	st->st_nlink = 1;
	st->st_uid = s->has_look ? s->look_uid : s->uid == (uid_t)-1 ? 0 : s->uid;
	st->st_gid = s->has_look ? s->look_gid : s->gid == (gid_t)-1 ? 0 : s->gid;
	if (fstat(s->memfd, &m) < 0)
		memset(&m, 0, sizeof m);
	st->st_size = m.st_size;
	st->st_blocks = m.st_blocks;
	st->st_blksize = 4096;
	st->st_atim = m.st_atim;
	st->st_mtim = m.st_mtim;
	st->st_ctim = m.st_ctim;
}

void load_stat(struct node *n, struct stat *st)
{
	stage_stat(n->stage, n, st);
}

void load_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	reply_pread(req, h->load->memfd, size, off);
}

void load_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct load_stage *s = h->load;
	ssize_t w = pwrite(s->memfd, buf, size, off);
	if (w < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_write(req, (size_t)w);
}

void load_setattr(fuse_req_t req, struct node *n, struct handle *h, struct stat *attr,
		  int to_set)
{
	struct load_stage *s = h && h->load ? h->load : n->stage;
	if ((to_set & FUSE_SET_ATTR_SIZE) && h && h->load) {
		/* Not while a load reads the staged bytes: they would go
		 * from under it. */
		pthread_mutex_lock(&s->lock);
		int rc = ftruncate(s->memfd, attr->st_size) < 0 ? -errno : 0;
		pthread_mutex_unlock(&s->lock);
		if (rc < 0)
			return (void)fuse_reply_err(req, -rc);
	}
	struct stat st;
	stage_stat(s, n, &st);
	fuse_reply_attr(req, &st, 0);
}

/* FLUSH, or (LAST) the release that ends the copy. */
static int flush_stage(struct handle *h, int last)
{
	struct load_stage *s = h->load;
	pthread_mutex_lock(&s->lock);
	int rc = stage_load(s, last);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int load_flush(struct handle *h)
{
	return flush_stage(h, 0);
}

void load_release(struct shmfs *fs, struct handle *h)
{
	open_untrack(fs, &h->item);
	/* The copy's end: load what no FLUSH loaded (a FITS file never padded,
	 * a last close whose FLUSH never came as the mount went away); nobody
	 * is left to be told of an error but the log. */
	flush_stage(h, 1);
	if (h->passthrough)
		inode_backing_put(h->node);
	stage_put(h->load);
	free(h);
}

void load_node_free(struct node *n)
{
	if (n->stage)
		stage_put(n->stage);
	n->stage = NULL;
}
