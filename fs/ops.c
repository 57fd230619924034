/* ops.c - the FUSE low-level ops table: each op finds its node and hands the
 * request to the backend that owns it (posix.c for files of SOURCE, sysv.c
 * for the System V directory). Every op replies exactly once. */
#define _GNU_SOURCE
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"
#include "sysv.h"
#include "fsload.h"
#include "fsview.h"
#include "links.h"

#define NODE(req, ino) inode_node(shmfs_of(req), (ino))
#define HANDLE(fi) ((struct handle *)(uintptr_t)(fi)->fh)

int shmfs_sysv_visible(struct shmfs *fs)
{
	struct stat st;
	return fstatat(fs->root.fd, fs->sysvdir, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

static int is_sysv_name(fuse_req_t req, struct node *parent, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	return parent == &fs->root && strcmp(name, fs->sysvdir) == 0 && shmfs_sysv_visible(fs);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* O_TRUNC arrives with OPEN, so a segment (fixed size) can ignore it
	 * instead of receiving a separate truncate to 0. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Shared memory changes behind the kernel's back: no write-back cache;
	 * no splice (slower than a plain copy here). Readdirplus hands out the
	 * attributes with the names, so ls -l costs one pass. */
	conn->want &= ~(FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE);
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
	conn->max_write = 1 << 20;
	conn->max_read = 1 << 20;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	struct node *p = NODE(req, parent);
	switch (p->kind) {
	case NODE_POSIX:
		if (is_sysv_name(req, p, name)) {
			struct fuse_entry_param e = {.ino = inode_number(fs, &fs->sysv_dir),
						     .attr_timeout = fs->timeout,
						     .entry_timeout = fs->timeout};
			sysv_dir_stat(fs, &e.attr);
			return (void)fuse_reply_entry(req, &e);
		}
		if (load_lookup(req, p, name)) /* a copy onto a view, redirected */
			return;
		if (links_lookup(req, p, name))
			return;
		if (replace_hidden(fs, p, name)) /* an unlinked object in its grace */
			return (void)fuse_reply_err(req, ENOENT);
		return posix_lookup(req, p, name);
	case NODE_SYSV_DIR:
		return sysv_dir_lookup(req, name);
	default:
		return (void)fuse_reply_err(req, ENOTDIR);
	}
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(shmfs_of(req), NODE(req, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		inode_forget(shmfs_of(req), NODE(req, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	struct node *n = NODE(req, ino);
	switch (n->kind) {
	case NODE_POSIX:
		/* Symlinks: never cached, ESTALE once removed (links.c).
		 * They are never open for I/O, so no fstat fails. */
		if (!fi && links_getattr(req, n))
			return;
		return posix_getattr(req, n, fi);
	case NODE_SYSV_DIR: {
		struct stat st;
		sysv_dir_stat(fs, &st);
		return (void)fuse_reply_attr(req, &st, fs->timeout);
	}
	case NODE_SYSV_SEG:
		return sysv_seg_getattr(req, n);
	case NODE_VIEW:
		return view_getattr(req, n);
	case NODE_LOAD: {
		struct stat st;
		load_stat(n, &st);
		return (void)fuse_reply_attr(req, &st, 0);
	}
	}
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct node *n = NODE(req, ino);
	switch (n->kind) {
	case NODE_POSIX:
		return posix_setattr(req, n, attr, to_set, fi);
	case NODE_SYSV_SEG:
		return sysv_seg_setattr(req, n, attr, to_set, fi);
	case NODE_VIEW: {
		/* Through a copy onto the view (O_TRUNC): the copy's size. */
		if (fi && HANDLE(fi)->load)
			return load_setattr(req, n, HANDLE(fi), attr, to_set);
		/* A view is made from its segment: times may be set (and are
		 * ignored, as cp -p does) and its size set to what it is
		 * (mrcfile does so on close); its mode and owner are the
		 * object's (chmod and chown of X.fits change X.im.shm; the
		 * kernel has checked the caller may). Nothing else. */
		const int owner = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID;
		if ((to_set & owner) && n->shmid < 0 && n->variant != VK_STREAM_LINK) {
			char path[64];
			int fd = inode_fd(shmfs_of(req), n);
			int rc = fd < 0 ? fd : 0;
			if (fd >= 0)
				proc_path(path, fd);
			if (rc == 0 && (to_set & FUSE_SET_ATTR_MODE) &&
			    chmod(path, attr->st_mode & 07777) < 0)
				rc = -errno;
			if (rc == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) &&
			    fchownat(fd, "", to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1,
				     to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1,
				     AT_EMPTY_PATH) < 0)
				rc = -errno;
			inode_fd_put(shmfs_of(req), n, fd);
			if (rc < 0)
				return (void)fuse_reply_err(req, -rc);
			to_set &= ~owner;
		}
		/* A writable open's file is its own: its size may change
		 * (scp writes a file, then sets its size). */
		struct handle *h = fi ? HANDLE(fi) : NULL;
		if ((to_set & FUSE_SET_ATTR_SIZE) && h && h->view && h->writable) {
			int rc = view_truncate(h, attr->st_size);
			if (rc < 0)
				return (void)fuse_reply_err(req, -rc);
			to_set &= ~FUSE_SET_ATTR_SIZE;
		}
		struct stat st;
		int rc = view_node_stat(shmfs_of(req), n, &st);
		if (rc < 0 && rc != -ESTALE)
			return (void)fuse_reply_err(req, -rc);
		if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size == st.st_size)
			to_set &= ~FUSE_SET_ATTR_SIZE;
		/* Clearing set-id bits comes with chown: the object's own
		 * filesystem did that already. */
		if (to_set & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
			       FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME | FUSE_SET_ATTR_KILL_SUID |
			       FUSE_SET_ATTR_KILL_SGID | FUSE_SET_ATTR_KILL_PRIV))
			return (void)fuse_reply_err(req, EPERM);
		return (void)fuse_reply_attr(req, &st, 0);
	}
	case NODE_LOAD:
		return load_setattr(req, n, fi ? HANDLE(fi) : NULL, attr, to_set);
	default:
		return (void)fuse_reply_err(req, EPERM);
	}
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct node *n = NODE(req, ino);
	if (n->kind == NODE_VIEW) {
		char target[PATH_MAX];
		int rc = n->variant == VK_STREAM_LINK
				 ? links_view_target(shmfs_of(req), n, target, sizeof target)
				 : sysvview_readlink(shmfs_of(req), n, target, sizeof target);
		return (void)(rc < 0 ? fuse_reply_err(req, -rc) : fuse_reply_readlink(req, target));
	}
	if (n->kind != NODE_POSIX)
		return (void)fuse_reply_err(req, EINVAL);
	if (links_stale_symlink(shmfs_of(req), n))
		return (void)fuse_reply_err(req, ESTALE);
	posix_readlink(req, n);
}

/* Operations that make a new name: only SOURCE's directories take them. */
static struct node *posix_parent(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = NODE(req, parent);
	if (p->kind == NODE_SYSV_DIR) {
		fuse_reply_err(req, EPERM);
		return NULL;
	}
	if (is_sysv_name(req, p, name)) {
		fuse_reply_err(req, EEXIST);
		return NULL;
	}
	return p;
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct node *p = posix_parent(req, parent, name);
	if (p)
		posix_mknod(req, p, name, mode, rdev);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct node *p = posix_parent(req, parent, name);
	if (p)
		posix_mkdir(req, p, name, mode);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct node *p = posix_parent(req, parent, name);
	if (p)
		links_symlink(req, link, p, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct node *n = NODE(req, ino);
	struct node *p = NODE(req, newparent);
	if (n->kind != NODE_POSIX || p->kind != NODE_POSIX)
		return (void)fuse_reply_err(req, EXDEV);
	if (is_sysv_name(req, p, newname))
		return (void)fuse_reply_err(req, EEXIST);
	posix_link(req, n, p, newname);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = NODE(req, parent);
	if (p->kind == NODE_SYSV_DIR)
		return sysv_dir_unlink(req, name);
	if (is_sysv_name(req, p, name))
		return (void)fuse_reply_err(req, EISDIR);
	/* A view's object waits a grace for its program to create it again. */
	if (p->kind == NODE_POSIX && replace_unlink(req, p, name))
		return;
	if (p->kind == NODE_POSIX && links_unlink(req, p, name))
		return;
	posix_unlink(req, p, name, 0);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct node *p = NODE(req, parent);
	if (p->kind == NODE_SYSV_DIR)
		return (void)fuse_reply_err(req, ENOTDIR);
	if (is_sysv_name(req, p, name))
		return (void)fuse_reply_err(req, EBUSY);
	if (p->kind == NODE_POSIX) /* rm -r: objects set aside in it go now */
		replace_rmdir(shmfs_of(req), p, name);
	posix_unlink(req, p, name, AT_REMOVEDIR);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	struct node *p = NODE(req, parent);
	struct node *np = NODE(req, newparent);
	/* Segments have names the kernel gives them: mv copies instead. */
	if (p->kind != NODE_POSIX || np->kind != NODE_POSIX)
		return (void)fuse_reply_err(req, EXDEV);
	if (is_sysv_name(req, p, name) || is_sysv_name(req, np, newname))
		return (void)fuse_reply_err(req, EBUSY);
	if (links_rename(req, p, name, np, newname, flags))
		return;
	/* A file renamed onto a view name is loaded (rsync, mv). */
	if (replace_rename(req, p, name, np, newname, flags))
		return;
	posix_rename(req, p, name, np, newname, flags);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *n = NODE(req, ino);
	switch (n->kind) {
	case NODE_POSIX:
		return posix_open(req, n, fi);
	case NODE_SYSV_SEG:
		return sysv_seg_open(req, n, fi);
	case NODE_VIEW:
		/* cp and dd open an existing file with O_TRUNC: the copy
		 * replaces the stream's frame (or the IMOD file's volume). */
		if ((fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY &&
		    (n->variant == VK_STREAM_FITS || n->variant == VK_IMOD_MRC)) {
			int rc = load_open_trunc(req, n, fi);
			if (rc < 0)
				fuse_reply_err(req, -rc);
			return;
		}
		return view_open(req, n, fi);
	case NODE_LOAD: {
		/* A copy's own node (load_open_trunc), else ESTALE: loaded or
		 * being loaded, the name is looked up again. */
		int rc = load_open_redirected(req, n, fi);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		return;
	}
	default:
		return (void)fuse_reply_err(req, EISDIR);
	}
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct node *p = NODE(req, parent);
	if (p->kind == NODE_SYSV_DIR)
		return sysv_seg_create(req, name, mode, fi);
	if (is_sysv_name(req, p, name))
		return (void)fuse_reply_err(req, EISDIR);
	if (p->kind != NODE_POSIX)
		return (void)fuse_reply_err(req, ENOTDIR);
	/* A new X.fits or IMODShrMem_KB_N.mrc is a copy to load; a real file
	 * of that name in SOURCE (made meanwhile) is written as itself. */
	char object[NAME_MAX + 1];
	int imod;
	if (load_target(name, object, sizeof object, &imod)) {
		if (inode_name_absent(shmfs_of(req), p, name)) {
			replace_reclaim(req, p, name); /* unlinked by this program: in place */
			return load_create(req, p, name, object, imod, mode, fi);
		}
	}
	posix_create(req, p, name, mode, fi);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)ino;
	struct handle *h = HANDLE(fi);
	if (h->load)
		return load_read(req, h, size, off);
	if (h->view)
		return view_read(req, h, size, off);
	if (h->node->kind == NODE_SYSV_SEG)
		return sysv_seg_read(req, h, size, off);
	posix_read(req, h, size, off);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)ino;
	struct handle *h = HANDLE(fi);
	if (h->load)
		return load_write(req, h, buf, size, off);
	if (h->view)
		return view_write(req, h, buf, size, off);
	if (h->node->kind == NODE_SYSV_SEG)
		return sysv_seg_write(req, h, buf, size, off);
	posix_write(req, h, buf, size, off);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct handle *h = HANDLE(fi);
	int rc = h->load			     ? load_flush(h)
		 : h->view			     ? view_flush(shmfs_of(req), h)
		 : h->node->kind == NODE_SYSV_SEG ? sysv_seg_flush(h)
						     : 0;
	fuse_reply_err(req, -rc);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct handle *h = HANDLE(fi);
	if (h->load)
		load_release(shmfs_of(req), h);
	else if (h->view)
		view_release(shmfs_of(req), h);
	else if (h->node->kind == NODE_SYSV_SEG)
		sysv_seg_release(shmfs_of(req), h);
	else
		posix_release(shmfs_of(req), h);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	struct handle *h = HANDLE(fi);
	/* A segment is memory: there is nothing to write back. A copy being
	 * loaded is loaded when closed, all at once. */
	if (h->load)
		return (void)fuse_reply_err(req, 0);
	if (h->view)
		return (void)fuse_reply_err(req, -view_flush(shmfs_of(req), h));
	if (h->node->kind == NODE_SYSV_SEG)
		return (void)fuse_reply_err(req, 0);
	posix_fsync(req, h, datasync);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	(void)ino;
	struct handle *h = HANDLE(fi);
	/* Views and copies being loaded have a fixed or staged content. */
	if (h->load || h->view)
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	if (h->node->kind == NODE_SYSV_SEG)
		return sysv_seg_fallocate(req, h, mode, off, len);
	posix_falloc(req, h, mode, off, len);
}

/* POLL: stream views are readable once a newer frame is posted (viewpoll.c);
 * every other file is always ready, as a regular file is. */
static void op_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
		    struct fuse_pollhandle *ph)
{
	(void)ino;
	struct handle *h = HANDLE(fi);
	if (h->view)
		return view_poll(req, h, ph);
	if (ph)
		fuse_pollhandle_destroy(ph);
	fuse_reply_poll(req, POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM);
}

void reply_pread(fuse_req_t req, int fd, size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	ssize_t r = pread(fd, buf, size, off);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

void open_track(struct shmfs *fs, struct open_item *item,
		void (*close)(struct shmfs *fs, struct open_item *item))
{
	item->close = close;
	pthread_mutex_lock(&fs->open_lock);
	item->next = fs->open_items.next;
	item->prev = &fs->open_items;
	item->next->prev = item;
	fs->open_items.next = item;
	pthread_mutex_unlock(&fs->open_lock);
}

void open_untrack(struct shmfs *fs, struct open_item *item)
{
	pthread_mutex_lock(&fs->open_lock);
	if (item->next) {
		item->prev->next = item->next;
		item->next->prev = item->prev;
		item->next = item->prev = NULL;
	}
	pthread_mutex_unlock(&fs->open_lock);
}

void open_close_all(struct shmfs *fs)
{
	for (;;) {
		pthread_mutex_lock(&fs->open_lock);
		struct open_item *item = fs->open_items.next;
		pthread_mutex_unlock(&fs->open_lock);
		if (item == &fs->open_items)
			return;
		item->close(fs, item); /* untracks it */
	}
}

static void dirsnap_close(struct shmfs *fs, struct open_item *item)
{
	open_untrack(fs, item);
	dirsnap_free(item);
}

static int dirsnap_fill(struct shmfs *fs, struct node *n, void *d)
{
	if (n->kind == NODE_SYSV_DIR) {
		int rc = dirsnap_add(d, ".", sysv_ino(-1), S_IFDIR);
		if (rc == 0)
			rc = dirsnap_add(d, "..", 1, S_IFDIR);
		if (rc == 0)
			rc = sysv_list(d);
		return rc ? rc : sysvview_list(fs, d);
	}
	int rc = posix_list(fs, n, d);
	if (rc == 0) {
		replace_filter(fs, n, d);
		dirsnap_set_real(d);
		rc = view_list(fs, n, d);
	}
	if (rc == 0 && n == &fs->root && shmfs_sysv_visible(fs))
		rc = dirsnap_add(d, fs->sysvdir, sysv_ino(-1), S_IFDIR);
	return rc;
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	struct node *n = NODE(req, ino);
	if (n->kind == NODE_SYSV_SEG || n->kind == NODE_VIEW || n->kind == NODE_LOAD)
		return (void)fuse_reply_err(req, ENOTDIR);
	void *d = dirsnap_new();
	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	int rc = dirsnap_fill(fs, n, d);
	if (rc < 0) {
		dirsnap_free(d);
		return (void)fuse_reply_err(req, -rc);
	}
	open_track(fs, d, dirsnap_close);
	fi->fh = (uint64_t)(uintptr_t)d;
	if (fuse_reply_open(req, fi) == -ENOENT)
		dirsnap_close(fs, d);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	struct node *dir = NODE(req, ino);
	void *d = (void *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	size_t used = 0;
	for (size_t i = off < 0 ? 0 : (size_t)off; i < dirsnap_count(d); i++) {
		/* A regular object's typed view joins the listing (at its end)
		 * as the listing reaches the object. */
		if (dir->kind == NODE_POSIX && i < dirsnap_real(d) && dirsnap_type(d, i) == S_IFREG)
			view_list_typed(fs, dir, d, i, NULL);
		struct stat st = {.st_ino = dirsnap_ino(d, i), .st_mode = dirsnap_type(d, i)};
		size_t len = fuse_add_direntry(req, buf + used, size - used, dirsnap_name(d, i), &st,
					       (off_t)(i + 1));
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* READDIRPLUS: names with their entries. Each entry handed out is a kernel
 * reference; one that does not fit in the buffer is given back. A name
 * whose entry cannot be had now (no descriptor or memory left) is listed
 * without one (node id 0): the kernel looks it up by itself, and only that
 * lookup fails. */
static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	struct node *dir = NODE(req, ino);
	void *d = (void *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	size_t used = 0;
	for (size_t i = off < 0 ? 0 : (size_t)off; i < dirsnap_count(d); i++) {
		const char *name = dirsnap_name(d, i);
		struct fuse_entry_param e;
		struct node *ref = NULL;
		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			/* no entry: the kernel knows these */
			memset(&e, 0, sizeof e);
			e.attr.st_ino = dirsnap_ino(d, i);
			e.attr.st_mode = dirsnap_type(d, i);
		} else if (dir->kind == NODE_SYSV_DIR) {
			int rc = sysv_entry(req, name, &e);
			if (rc == -ENOENT)
				rc = sysvview_entry(fs, name, &e);
			if (rc < 0)
				continue; /* gone since opendir */
			ref = inode_node(fs, e.ino);
		} else if (is_sysv_name(req, dir, name)) {
			e = (struct fuse_entry_param){.ino = inode_number(fs, &fs->sysv_dir),
						      .attr_timeout = fs->timeout,
						      .entry_timeout = fs->timeout};
			sysv_dir_stat(fs, &e.attr);
		} else {
			int rc = posix_entry_listed(fs, dir, name, &e);
			if (rc == 0 && S_ISLNK(e.attr.st_mode))
				e.attr_timeout = 0; /* see links_lookup */
			/* (an empty object has no typed view: no layout fits) */
			if (rc == 0 && i < dirsnap_real(d) && S_ISREG(e.attr.st_mode) &&
			    e.attr.st_size > 0)
				view_list_typed(fs, dir, d, i, &e.attr);
			if (rc == -ENOENT)
				rc = view_entry(fs, dir, name, &e);
			if (rc == -ENOENT || rc == -ESTALE)
				continue; /* gone since opendir */
			if (rc < 0) {
				memset(&e, 0, sizeof e);
				e.attr.st_ino = dirsnap_ino(d, i);
				e.attr.st_mode = dirsnap_type(d, i);
			} else {
				ref = inode_node(fs, e.ino);
			}
		}
		size_t len = fuse_add_direntry_plus(req, buf + used, size - used, name, &e,
						    (off_t)(i + 1));
		if (len > size - used) {
			if (ref)
				inode_forget(fs, ref, 1);
			break;
		}
		used += len;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	dirsnap_close(shmfs_of(req), (struct open_item *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino, (void)datasync, (void)fi;
	fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs sv;
	if (fstatvfs(shmfs_of(req)->root.fd, &sv) < 0)
		return (void)fuse_reply_err(req, errno);
	fuse_reply_statfs(req, &sv);
}

static void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	/* default_permissions: the kernel has checked the mode bits already. */
	(void)ino, (void)mask;
	fuse_reply_err(req, 0);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct node *n = NODE(req, ino);
	if (n->kind == NODE_SYSV_SEG)
		return sysvview_getxattr(req, n, name, size);
	xattr_get(req, n, name, size);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct node *n = NODE(req, ino);
	if (n->kind == NODE_SYSV_SEG)
		return sysvview_listxattr(req, n, size);
	xattr_list(req, n, size);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct node *n = NODE(req, ino);
	if (n->kind == NODE_SYSV_SEG)
		return sysvview_setxattr(req, n, name, value, size);
	xattr_set(req, n, name, value, size, flags);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct node *n = NODE(req, ino);
	if (n->kind == NODE_SYSV_SEG)
		return sysvview_removexattr(req, n, name);
	xattr_remove(req, n, name);
}

const struct fuse_lowlevel_ops shmfs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.poll = op_poll,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.access = op_access,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};
