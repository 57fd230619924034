/* viewopen.c - open views: every open is a real file, the snapshot of the
 * frame taken at open (viewsnap.c), which the kernel serves by passthrough
 * where it can and the daemon otherwise (page cache: the file never
 * changes), so mmap(MAP_SHARED) works either way.
 *
 * A writable open gets a snapshot of its own (the node becomes its own, so
 * it can be the node's passthrough backing). What is written there goes back
 * into the object when the file is closed (FLUSH, and RELEASE for what a
 * mapping wrote after it), once per change: with the header bytes and the
 * size as they were, the pixels as one frame (for a stream: write flag,
 * pixels, write time, CNT0 + 1, semaphores posted); with another header or
 * size (scp writes a whole file and sets its size, astropy may rewrite the
 * header), the whole file is loaded as a copy would be (load_from_fd), all
 * or nothing. Only stream and IMOD MRC views can be loaded that way; the
 * header of other views is made from the object, and a changed one is
 * refused (EPERM). */
#define _GNU_SOURCE
#include "viewint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fsload.h"
#include "load.h"
#include "log.h"
#include "passthrough.h"
#include "sysv.h"

struct view_state {
	struct view_snap *snap;
	int private;          /* SNAP is this open's own (a writable open) */
	int claimed;          /* ... and so is the node */
	int renewed;          /* shared: the node held another frame before */
	int dirty;            /* private: a write or truncate reached the daemon */
	uint64_t hash;        /* private: the content when opened or last written back */
	uint64_t size;        /* ... and its size */
	uid_t uid;            /* who opened: owner of what a load creates */
	gid_t gid;
};

static void handle_close(struct shmfs *fs, struct open_item *item)
{
	view_release(fs, (struct handle *)item);
}

/* The backing file of a shared snapshot: read-only, so the kernel can never
 * write into what other opens read. */
static int open_snapshot(struct node *n, void *arg)
{
	(void)n;
	char path[64];
	proc_path(path, ((struct view_snap *)arg)->fd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* How the kernel serves the open: by passthrough from the snapshot, or by
 * the daemon through the page cache (a snapshot that never changes), or with
 * direct_io (a private snapshot on a node others read). */
static void serve(struct handle *h, struct fuse_file_info *fi)
{
	struct view_state *v = h->view;
	fi->direct_io = 0;
	fi->keep_cache = 0; /* the kernel takes no other open flag with passthrough */
	if (v->private && !v->claimed) {
		fi->direct_io = 1; /* the node's pages are the others' frame */
		return;
	}
	if (passthrough_enabled()) {
		int id = v->claimed ? inode_backing_claim(h->node, v->snap->fd)
				    : inode_backing_get(h->node, open_snapshot, v->snap);
		if (id > 0) {
			h->passthrough = 1;
			passthrough_arm_reply(id, 0);
			if (!v->claimed)
				viewgen_hold_backing(h->node, v->snap);
			return;
		}
		shm_log_once(SHM_LOG_WARN, "passthrough refused for a view (%s): served by the "
					   "daemon", strerror(-id));
	}
	/* The node's file never changes: its pages stay good from open to
	 * open, but those of the frame it held before. */
	fi->keep_cache = !v->private && !v->renewed;
}

/* Where the kernel looks up view N of a POSIX object: its directory
 * (*DIR: device and inode) and NAME. 0, or -1 when that cannot be told. */
static int posix_view_place(struct shmfs *fs, struct node *n, struct stat *dir,
			    char name[NAME_MAX + 1])
{
	char object[NAME_MAX + 1];
	int dirfd = inode_object_dir(fs, n, object, sizeof object);
	if (dirfd < 0)
		return -1;
	int ok = fstat(dirfd, dir) == 0;
	close(dirfd);
	size_t len = strlen(object);
	const char *suffix = n->variant == VK_IMOD_MRC ? ".mrc" : ".fits";
	if (n->variant == VK_STREAM_FITS) {
		ok = ok && isio_is_stream_name(object);
		if (ok)
			object[len - strlen(ISIO_SUFFIX)] = '\0';
	} else if (n->variant != VK_IMOD_MRC && n->variant != VK_IMOD_FITS &&
		   n->variant != VK_TYPED_FITS) {
		ok = 0;
	}
	return ok && (size_t)snprintf(name, NAME_MAX + 1, "%s%s", object, suffix) <= NAME_MAX
		       ? 0
		       : -1;
}

/* The same for the view of a typed System V segment: its canonical name in
 * the sysv directory. */
static int sysv_view_place(struct shmfs *fs, struct node *n, struct stat *dir,
			   char name[NAME_MAX + 1])
{
	struct sysv_seg seg = {.shmid = n->shmid};
	char base[SYSV_NAME_MAX];
	if (n->variant != VK_SYSV_TYPED_FITS || sysv_stat(&seg) < 0)
		return -1;
	sysv_name_format(base, seg.ds.shm_perm.__key, n->shmid);
	dir->st_dev = fs->sysv_dir.dev;
	dir->st_ino = fs->sysv_dir.ino;
	return (size_t)snprintf(name, NAME_MAX + 1, "%s.fits", base) <= NAME_MAX ? 0 : -1;
}

/* A writable open by name gets a node of its own. A view's node is shared
 * by every program that looks the name up, and one that did may be about
 * to open it: taking that node (with passthrough the kernel binds one
 * backing file per node) would turn that open away. So a twin of N is made
 * (its object and kind, which no lookup answers with), this thread's next
 * lookup of the name is given the twin (load_redirect), and the open is
 * answered ESTALE: the kernel looks the name up again and opens the twin.
 * Returns -ESTALE (redirected) or 0: serve the open on N (a caller in
 * another PID namespace; no slot; or this thread was given a twin already
 * and came back to N another way, through /proc/PID/fd or another name of
 * the object). */
int view_writer_redirect(fuse_req_t req, struct node *n)
{
	struct shmfs *fs = shmfs_of(req);
	pid_t tid = fuse_req_ctx(req)->pid;
	char name[NAME_MAX + 1];
	struct stat dir;
	struct node *twin = NULL;
	if (tid <= 0)
		return 0;
	if (n->shmid >= 0) {
		if (sysv_view_place(fs, n, &dir, name) < 0)
			return 0;
		twin = inode_view_twin(&fs->table, n, -1);
	} else {
		if (posix_view_place(fs, n, &dir, name) < 0)
			return 0;
		int fd = inode_fd(fs, n);
		int own_fd = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 0);
		inode_fd_put(fs, n, fd);
		twin = own_fd < 0 ? NULL : inode_view_twin(&fs->table, n, own_fd);
	}
	if (!twin)
		return 0;
	if (viewgen_twin(n, twin) < 0) {
		inode_forget(fs, twin, 1);
		return 0;
	}
	return load_redirect(fs, tid, &dir, name, twin) == 1 ? -ESTALE : 0;
}

void view_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	int writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	if (n->variant == VK_CFITSIO_LINK || !n->gen)
		return (void)fuse_reply_err(req, ELOOP); /* links */
	if (writable && n->variant == VK_CFITSIO_FITS)
		return (void)fuse_reply_err(req, EROFS); /* CFITSIO's driver writes those */
	/* The open that follows a redirected lookup takes its twin; any
	 * other writable open is sent there first. */
	if (writable && !load_redirect_take(fs, n, fuse_req_ctx(req)->pid) &&
	    view_writer_redirect(req, n) == -ESTALE)
		return (void)fuse_reply_err(req, ESTALE);
	struct handle *h = calloc(1, sizeof *h);
	struct view_state *v = calloc(1, sizeof *v);
	if (!h || !v) {
		free(h);
		free(v);
		return (void)fuse_reply_err(req, ENOMEM);
	}
	int rc;
	if (writable) {
		/* With passthrough, the kernel binds one backing file per inode:
		 * a private snapshot cannot share a node others read. */
		rc = viewgen_open_private(fs, n, !passthrough_enabled(), &v->snap, &v->claimed);
		v->private = 1;
		if (rc == -EBUSY)
			shm_log(SHM_LOG_WARN, "a view opened for writing while other opens read the "
					      "same frame through another name: refused (EBUSY)");
	} else {
		rc = viewgen_open_shared(fs, n, &v->snap, &v->renewed);
	}
	if (rc == 0 && v->private) {
		v->size = v->snap->size;
		rc = view_hash_fd(v->snap->fd, v->size, &v->hash);
		/* O_TRUNC (atomic_o_trunc: the open itself truncates): the file
		 * is what is written now. Streams and IMOD files load such
		 * copies elsewhere (load.c). */
		if (rc == 0 && (fi->flags & O_TRUNC) && ftruncate(v->snap->fd, 0) < 0)
			rc = -errno;
		v->dirty = rc == 0 && (fi->flags & O_TRUNC);
		if (rc < 0)
			viewgen_close(fs, n, v->snap);
	}
	if (rc < 0) {
		free(v);
		free(h);
		return (void)fuse_reply_err(req, -rc);
	}
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	v->uid = ctx->uid ? ctx->uid : (uid_t)-1;
	v->gid = ctx->uid || ctx->gid ? ctx->gid : (gid_t)-1;
	h->node = n;
	h->writable = writable;
	h->view = v;
	h->map.fd = -1;
	open_track(fs, &h->item, handle_close);
	fi->fh = (uint64_t)(uintptr_t)h;
	serve(h, fi);
	if (fuse_reply_open(req, fi) == -ENOENT)
		view_release(fs, h);
}

void view_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	if (h->view->private)
		return reply_pread(req, h->view->snap->fd, size, off);
	/* Replied from the snapshot's mapping, which this read holds until
	 * the reply returns: the reader gets the bytes before the write to
	 * the device returns here, and may close the file, and its RELEASE
	 * let the snapshot go, in between. */
	struct view_snap *s = viewsnap_ref(h->view->snap);
	const unsigned char *m = viewsnap_map(s);
	if (!m) {
		fuse_reply_err(req, ENOMEM);
	} else if (off < 0 || (uint64_t)off >= s->size) {
		fuse_reply_buf(req, NULL, 0);
	} else {
		uint64_t left = s->size - (uint64_t)off;
		fuse_reply_buf(req, (const char *)m + off, size < left ? size : (size_t)left);
	}
	viewsnap_put(s);
}

void view_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct view_state *v = h->view;
	if (!v->private)
		return (void)fuse_reply_err(req, EBADF);
	ssize_t w = pwrite(v->snap->fd, buf, size, off);
	if (w < 0)
		return (void)fuse_reply_err(req, errno);
	v->dirty = 1;
	fuse_reply_write(req, (size_t)w);
}

int view_truncate(struct handle *h, off_t size)
{
	struct view_state *v = h->view;
	if (!v->private)
		return -EPERM;
	if (ftruncate(v->snap->fd, size) < 0)
		return -errno;
	v->dirty = 1;
	return 0;
}

/* The pixels of the private snapshot S into the object of N, as one frame:
 * only while the object still has the snapshot's type and shape. */
static int write_frame(struct shmfs *fs, struct node *n, struct view_snap *s)
{
	struct probe p;
	load_turn_begin(); /* not while a load writes a frame into the object */
	int rc = probe_node(fs, n, O_RDWR, 0, &p);
	if (rc == 0 && (p.type != s->image.type || p.nelement != s->image.nelement ||
			p.format != s->image.format)) {
		shm_log(SHM_LOG_WARN, "%s: its type or shape changed while its view was open: "
				      "the pixels written are not put back (EIO)", p.name);
		rc = -EIO;
	}
	void *map = NULL;
	size_t map_len = (size_t)p.st.st_size;
	int data_fd = p.fd;
	if (rc == 0 && p.kind == VK_STREAM_FITS) {
		map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, p.fd, 0);
		rc = map == MAP_FAILED ? -errno : isio_frame_begin(map, map_len, &p.stream);
	} else if (rc == 0 && p.shmid >= 0) {
		data_fd = sysv_open_file(p.shmid);
		rc = data_fd < 0 ? data_fd : 0;
	}
	if (rc == 0)
		rc = view_extract_fd(&s->image, s->fd, data_fd, p.data_offset);
	if (map && map != MAP_FAILED) {
		/* Finished even after a failed write: never leave the flag up. */
		int end = isio_frame_end(map, map_len, &p.stream);
		rc = rc < 0 ? rc : end;
		munmap(map, map_len);
	}
	if (data_fd >= 0 && data_fd != p.fd)
		close(data_fd);
	load_turn_end();
	if (rc < 0 && rc != -EIO)
		shm_log(SHM_LOG_WARN, "%s: writing its view back failed (%s)", p.name,
			strerror(-rc));
	probe_free(&p);
	return rc == -ENOSPC || rc == -ESTALE ? rc : rc < 0 ? -EIO : 0;
}

/* The whole private snapshot S of view node N loaded, as a copy onto the
 * view would be: streams and IMOD MRC views only. */
static int load_file(struct shmfs *fs, struct node *n, struct view_state *v)
{
	char object[NAME_MAX + 1], name[NAME_MAX + 8];
	int imod = n->variant == VK_IMOD_MRC;
	if (n->shmid >= 0 || (n->variant != VK_STREAM_FITS && !imod)) {
		inode_object_name(fs, n, object, sizeof object);
		shm_log(SHM_LOG_WARN, "%s: the header of its view is made from the object: a "
				      "file with another header or size is refused (EPERM)", object);
		return -EPERM;
	}
	int dirfd = inode_object_dir(fs, n, object, sizeof object);
	if (dirfd < 0)
		return dirfd;
	size_t len = strlen(object);
	if (!imod && isio_is_stream_name(object))
		object[len - strlen(ISIO_SUFFIX)] = '\0';
	snprintf(name, sizeof name, "%s%s", object, imod ? ".mrc" : ".fits");
	int rc = load_from_fd(dirfd, object, imod, v->snap->fd, v->uid, v->gid, name);
	close(dirfd);
	return rc;
}

/* Put what a writable open changed back into the object (see the top). */
static int write_back(struct shmfs *fs, struct handle *h)
{
	struct view_state *v = h->view;
	if (!v->private)
		return 0;
	struct view_snap *s = v->snap;
	struct stat st;
	if (fstat(s->fd, &st) < 0)
		return -errno;
	uint64_t size = (uint64_t)st.st_size, hash = v->hash;
	/* Through the daemon every change is seen; through passthrough none
	 * is, so the content tells. */
	if (!v->dirty && !h->passthrough)
		return 0;
	if (size == v->size && view_hash_fd(s->fd, size, &hash) == 0 && hash == v->hash) {
		v->dirty = 0;
		return 0;
	}
	int same = size == s->size;
	if (same) {
		unsigned char *head = malloc(s->image.header_len);
		same = head && pread(s->fd, head, s->image.header_len, 0) ==
				       (ssize_t)s->image.header_len &&
		       memcmp(head, s->header, s->image.header_len) == 0;
		free(head);
	}
	int rc = same ? write_frame(fs, h->node, s) : load_file(fs, h->node, v);
	/* Tried, whatever came of it: the same bytes would fare the same at
	 * the next close. */
	v->dirty = 0;
	v->size = size;
	if (view_hash_fd(s->fd, size, &hash) == 0)
		v->hash = hash;
	return rc;
}

int view_flush(struct shmfs *fs, struct handle *h)
{
	return write_back(fs, h);
}

void view_release(struct shmfs *fs, struct handle *h)
{
	open_untrack(fs, &h->item);
	/* What a mapping wrote after the last FLUSH (through the daemon, the
	 * kernel writes it back before RELEASE); nobody is left to be told
	 * of an error but the log. */
	write_back(fs, h);
	viewpoll_forget(h);
	if (h->passthrough)
		inode_backing_put(h->node);
	viewgen_close(fs, h->node, h->view->snap);
	free(h->view);
	free(h);
}

uint64_t view_handle_cnt0(struct handle *h, int *stream)
{
	*stream = h->view->snap->stream;
	return h->view->snap->cnt0;
}
