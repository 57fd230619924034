/* posix.c - ops on the files of SOURCE: every regular file, symlink,
 * directory, FIFO, socket and device node of the backing directory, as
 * itself. Nodes name their objects by file handle (inodefd.c), so an object
 * renamed by another process keeps its node; paths are never stored. The kernel has
 * already checked permissions (default_permissions) against the backing
 * file's own mode and owner; what makes or changes a name, a mode or an
 * owner is done again with the caller's own credentials (creds.h), so
 * SOURCE's filesystem decides exactly as it would for the caller directly. */
#define _GNU_SOURCE
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "creds.h"
#include "log.h"
#include "passthrough.h"
#include "fsload.h"
#include "fsview.h"


int posix_entry(struct shmfs *fs, struct node *parent, const char *name,
		struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	int dirfd = inode_fd(fs, parent);
	if (dirfd < 0)
		return dirfd;
	struct file_handle *h;
	int fd;
	int rc = inode_lookup_at(&fs->table, dirfd, name, &e->attr, &h, &fd);
	inode_fd_put(fs, parent, dirfd);
	struct node *n = rc < 0 ? NULL : inode_get_posix(&fs->table, fd, h, &e->attr);
	if (rc == 0 && !n)
		rc = -ENOMEM;
	if (rc < 0) {
		fd_exhausted("a lookup", -rc);
		return rc;
	}
	e->ino = inode_number(fs, n);
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
	return 0;
}

int posix_entry_listed(struct shmfs *fs, struct node *dir, const char *name,
		       struct fuse_entry_param *e)
{
	struct inode_table *t = &fs->table;
	if (!t->handles)
		return posix_entry(fs, dir, name, e);
	memset(e, 0, sizeof *e);
	int dirfd = inode_fd(fs, dir);
	if (dirfd < 0)
		return dirfd;
	int rc = fstatat(dirfd, name, &e->attr, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	inode_fd_put(fs, dir, dirfd);
	if (rc < 0)
		return rc;
	if (e->attr.st_dev != t->dev) /* another filesystem: named at once */
		return posix_entry(fs, dir, name, e);
	struct node *n = inode_get_posix_listed(t, dir, dir == &fs->root, name, &e->attr);
	if (!n) {
		fd_exhausted("a listing", ENOMEM);
		return -ENOMEM;
	}
	e->ino = inode_number(fs, n);
	e->attr_timeout = fs->timeout;
	e->entry_timeout = fs->timeout;
	return 0;
}

void posix_lookup(fuse_req_t req, struct node *parent, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	struct fuse_entry_param e;
	int rc = posix_entry(fs, parent, name, &e);
	if (rc == -ENOENT)
		rc = view_entry(fs, parent, name, &e);
	if (rc == -ENOENT) {
		/* Never cached: an object another process creates in SOURCE
		 * shows up at once. */
		memset(&e, 0, sizeof e);
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc < 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_entry(req, &e);
}

void posix_getattr(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	struct stat st;
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	int fd = h ? h->map.fd : inode_fd(fs, n);
	int rc = fd < 0 ? fd : fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	if (!h)
		inode_fd_put(fs, n, fd);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	fuse_reply_attr(req, &st, fs->timeout);
}

/* Set-id bits and callers without CAP_FSETID: a write, truncate or
 * fallocate by such a caller clears S_ISUID, S_ISGID with group execute,
 * and S_ISGID alone unless the caller is in the file's group. SOURCE's
 * filesystem decides that itself when the daemon makes the call as the
 * caller (creds.h), without CAP_FSETID. The kernel keeps the mount's
 * attributes for up to -o timeout and takes a write to leave the mode
 * alone: it is told. */

/* Whether the object behind FD has set-id bits. */
static int has_setid(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID));
}

/* Before a call on an object (open at FD, O_PATH will do) for a caller
 * without CAP_FSETID (KILL): if it has set-id bits, become the caller,
 * without CAP_FSETID even if root. *ACTIVE tells kill_end() what to undo.
 * Returns 0 or -errno. */
static int kill_begin(fuse_req_t req, int fd, int kill, int *active)
{
	*active = 0;
	if (!kill || !has_setid(fd))
		return 0;
	int rc = creds_enter(req);
	if (rc < 0)
		return rc;
	*active = 1;
	if (fuse_req_ctx(req)->uid == 0) { /* fsuid 0 keeps CAP_FSETID */
		rc = creds_drop_fsetid();
		if (rc < 0) {
			creds_leave();
			*active = 0;
			return rc;
		}
		*active = 2;
	}
	return 0;
}

/* After it: the daemon's own credentials back, and the kernel told N's mode
 * may have changed (only the attributes: no page is invalidated, nothing
 * waits on a lock). */
static void kill_end(fuse_req_t req, struct node *n, int active)
{
	if (!active)
		return;
	if (active == 2)
		creds_raise_fsetid();
	creds_leave();
	struct shmfs *fs = shmfs_of(req);
	fuse_lowlevel_notify_inval_inode(fs->se, inode_number(fs, n), -1, 0);
}

/* The mode, owner and group of the object at FD (O_PATH; PATH reopens it;
 * H's descriptor if open), as the caller: a chown clears the set-id bits
 * the caller's own chown would. */
static int set_owner_mode(fuse_req_t req, int fd, struct handle *h, const char *path,
			  const struct stat *attr, int to_set)
{
	int rc = creds_enter(req);
	if (rc < 0)
		return rc;
	if (to_set & FUSE_SET_ATTR_MODE) {
		if ((h ? fchmod(h->map.fd, attr->st_mode) : chmod(path, attr->st_mode)) < 0)
			rc = -errno;
	}
	if (rc == 0 && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
	}
	creds_leave();
	return rc;
}

/* Truncate N (open as FD) to SIZE for the caller of REQ; KILL: it lacks
 * CAP_FSETID. */
static int truncate_fd(fuse_req_t req, struct node *n, int fd, off_t size, int kill)
{
	struct shmfs *fs = shmfs_of(req);
	int active;
	int rc = kill_begin(req, fd, kill, &active);
	if (rc < 0)
		return rc;
	rc = pmap_resize_fd(fd, size, fs->reserve);
	kill_end(req, n, active);
	if (rc == -ENOSPC)
		shm_log(SHM_LOG_WARN, "%s: no space to grow an object to %lld bytes", fs->source,
			(long long)size);
	return rc;
}

void posix_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	char path[64];
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct stat st;
	int ofd = inode_fd(fs, n); /* the object, O_PATH */
	int rc = ofd < 0 ? ofd : 0;
	if (rc == 0 && fstatat(ofd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	if (rc < 0)
		goto out;
	proc_path(path, ofd);

	if ((to_set & FUSE_SET_ATTR_MODE) && S_ISLNK(st.st_mode)) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		rc = set_owner_mode(req, ofd, h, path, attr, to_set);
		if (rc < 0)
			goto out;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (!S_ISREG(st.st_mode)) {
			rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
			goto out;
		}
		int fd = h ? h->map.fd : open(path, O_WRONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			goto out;
		}
		/* FUSE_SET_ATTR_KILL_SUID is FATTR_KILL_SUIDGID (HANDLE_KILLPRIV_V2). */
		rc = truncate_fd(req, n, fd, attr->st_size, to_set & FUSE_SET_ATTR_KILL_SUID);
		if (!h)
			close(fd);
		if (rc < 0)
			goto out;
	}
	/* chown(f, -1, -1) arrives with nothing to set (the kernel sends
	 * ctime only with a write-back cache): it still changes the ctime, as
	 * on tmpfs. */
	if ((to_set & ~FUSE_SET_ATTR_CTIME) == 0 &&
	    fchownat(ofd, "", (uid_t)-1, (gid_t)-1, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		goto out;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (h)
			rc = futimens(h->map.fd, tv);
		else if (S_ISLNK(st.st_mode)) /* the link itself, by its O_PATH fd */
			rc = utimensat(ofd, "", tv, AT_EMPTY_PATH);
		else
			rc = utimensat(AT_FDCWD, path, tv, 0);
		rc = rc < 0 ? -errno : 0;
	}
out:
	inode_fd_put(fs, n, ofd);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	posix_getattr(req, n, fi);
}

void posix_readlink(fuse_req_t req, struct node *n)
{
	struct shmfs *fs = shmfs_of(req);
	char buf[PATH_MAX + 1];
	int fd = inode_fd(fs, n);
	ssize_t len = fd < 0 ? fd : readlinkat(fd, "", buf, sizeof buf);
	if (len < 0 && fd >= 0)
		len = -errno;
	inode_fd_put(fs, n, fd);
	if (len < 0)
		return (void)fuse_reply_err(req, (int)-len);
	if ((size_t)len >= sizeof buf)
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	buf[len] = '\0';
	fuse_reply_readlink(req, buf);
}

/* Reply with the entry of object NAME of PARENT (DIRFD, given back first:
 * the kernel may forget PARENT once it has the reply), just made by the
 * caller (RC 0), or with the error RC; undo the object if its entry fails. */
static void reply_new_entry(fuse_req_t req, struct node *parent, int dirfd, const char *name,
			    int rc, int isdir)
{
	struct shmfs *fs = shmfs_of(req);
	struct fuse_entry_param e;
	if (rc == 0) {
		rc = posix_entry(fs, parent, name, &e);
		if (rc < 0)
			unlinkat(dirfd, name, isdir ? AT_REMOVEDIR : 0);
	}
	inode_fd_put(fs, parent, dirfd);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	fuse_reply_entry(req, &e);
}

/* The descriptor of directory PARENT for a request that makes or removes a
 * name in it, or -errno (the caller replies). Give it back with
 * inode_fd_put. */
static int parent_fd(fuse_req_t req, struct node *parent)
{
	return inode_fd(shmfs_of(req), parent);
}

void posix_mknod(fuse_req_t req, struct node *parent, const char *name, mode_t mode, dev_t rdev)
{
	/* Regular files, FIFOs, sockets, and device nodes for a caller who
	 * may make them (CAP_MKNOD: root), all as tmpfs has them. */
	int dirfd = parent_fd(req, parent);
	int rc = dirfd < 0 ? dirfd : creds_enter(req);
	if (rc == 0) {
		rc = mknodat(dirfd, name, mode, rdev) < 0 ? -errno : 0;
		creds_leave();
	}
	reply_new_entry(req, parent, dirfd, name, rc, 0);
}

void posix_mkdir(fuse_req_t req, struct node *parent, const char *name, mode_t mode)
{
	int dirfd = parent_fd(req, parent);
	int rc = dirfd < 0 ? dirfd : creds_enter(req);
	if (rc == 0) {
		rc = mkdirat(dirfd, name, mode) < 0 ? -errno : 0;
		creds_leave();
	}
	reply_new_entry(req, parent, dirfd, name, rc, 1);
}

int posix_symlink_as_caller(fuse_req_t req, const char *target, int dirfd, const char *name)
{
	int rc = creds_enter(req);
	if (rc == 0) {
		rc = symlinkat(target, dirfd, name) < 0 ? -errno : 0;
		creds_leave();
	}
	return rc;
}

void posix_link(fuse_req_t req, struct node *n, struct node *newparent, const char *newname)
{
	struct shmfs *fs = shmfs_of(req);
	struct fuse_entry_param e;
	int fd = inode_fd(fs, n);
	int dirfd = fd < 0 ? fd : parent_fd(req, newparent);
	int rc = dirfd < 0 ? dirfd : 0;
	if (rc == 0 && linkat(fd, "", dirfd, newname, AT_EMPTY_PATH) < 0)
		rc = -errno;
	inode_fd_put(fs, newparent, dirfd);
	inode_fd_put(fs, n, fd);
	if (rc == 0)
		rc = posix_entry(fs, newparent, newname, &e);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	fuse_reply_entry(req, &e);
}

/* Removing and renaming as the caller: the kernel has checked the mount's
 * (cached) attributes; SOURCE's checks the ones it has now. */
void posix_unlink(fuse_req_t req, struct node *parent, const char *name, int flags)
{
	int dirfd = parent_fd(req, parent);
	int rc = dirfd < 0 ? dirfd : creds_enter(req);
	if (rc == 0) {
		rc = unlinkat(dirfd, name, flags) < 0 ? -errno : 0;
		creds_leave();
	}
	inode_fd_put(shmfs_of(req), parent, dirfd);
	fuse_reply_err(req, -rc);
}

void posix_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		  const char *newname, unsigned int flags)
{
	struct shmfs *fs = shmfs_of(req);
	int dirfd = parent_fd(req, parent);
	int newdirfd = dirfd < 0 ? dirfd : parent_fd(req, newparent);
	int rc = newdirfd < 0 ? newdirfd : creds_enter(req);
	if (rc == 0) {
		rc = renameat2(dirfd, name, newdirfd, newname, flags) < 0 ? -errno : 0;
		creds_leave();
	}
	inode_fd_put(fs, newparent, newdirfd);
	inode_fd_put(fs, parent, dirfd);
	fuse_reply_err(req, -rc);
}

/* Open flags for the daemon's own descriptor: the caller's access mode and
 * O_APPEND (so appends land at the object's real end), nothing that would
 * create, follow or block. O_TRUNC is honoured (atomic_o_trunc). */
static int backing_flags(int flags)
{
	return (flags & (O_ACCMODE | O_APPEND | O_TRUNC)) | O_CLOEXEC;
}

static int dup_fd(struct node *n, void *arg)
{
	(void)n;
	int fd = fcntl(*(int *)arg, F_DUPFD_CLOEXEC, 0);
	return fd < 0 ? -errno : fd;
}

static void handle_close(struct shmfs *fs, struct open_item *item)
{
	posix_release(fs, (struct handle *)item);
}

/* A handle of N for descriptor FD (adopted), opened with FLAGS by the caller
 * of REQ, into FI. */
static int handle_new(fuse_req_t req, struct node *n, int fd, int flags,
		      struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	struct handle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->node = n;
	h->writable = (flags & O_ACCMODE) != O_RDONLY;
	int rc = pmap_init(&h->map, fd);
	if (rc < 0) {
		free(h);
		return rc;
	}
	open_track(fs, &h->item, handle_close);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 0;
	/* Passthrough: the kernel reads, writes and maps the object itself.
	 * Not for writing a set-id file: the daemon serves those writes, as
	 * the writer (kill_begin), so the bits go exactly as on tmpfs and the
	 * kernel hears of it. A passthrough write runs with the backing
	 * file's credentials, the daemon's less CAP_FSETID
	 * (passthrough_backing_open): bits set while the file is open are
	 * cleared by the next write, root's too. */
	int setid = h->writable && has_setid(fd);
	if (passthrough_enabled() && !setid) {
		int id = inode_backing_get(n, dup_fd, &h->map.fd);
		if (id > 0) {
			h->passthrough = 1;
			fi->direct_io = 0;
			passthrough_arm_reply(id, 0);
			return 0;
		}
		shm_log_once(SHM_LOG_WARN, "passthrough refused for an object (%s): served "
					   "by the daemon", strerror(-id));
	}
	/* direct_io: every read reaches the daemon, so reads are live (the
	 * page cache would serve what it saw earlier). */
	fi->direct_io = 1;
	return 0;
}

/* N's object opened for the caller of REQ with the flags of FI: a
 * descriptor or -errno. O_TRUNC by a caller without CAP_FSETID clears
 * set-id bits, as the caller's own open would: that open is made as the
 * caller, through an O_PATH descriptor had before (inode_fd). */
static int open_object(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	if (!((fi->flags & O_TRUNC) && passthrough_request_kills_suidgid()))
		return inode_open(fs, n, backing_flags(fi->flags));
	int opath = inode_fd(fs, n);
	if (opath < 0)
		return opath;
	char path[64];
	proc_path(path, opath);
	int active;
	int fd = kill_begin(req, opath, 1, &active);
	if (fd == 0) {
		fd = open(path, backing_flags(fi->flags));
		if (fd < 0)
			fd = -errno;
		kill_end(req, n, active);
	}
	inode_fd_put(fs, n, opath);
	return fd;
}

void posix_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	int fd = fd_keep(open_object(req, n, fi), "an open");
	if (fd == -ESTALE)
		replace_moved_open(req, n, fi->flags);
	if (fd < 0)
		return (void)fuse_reply_err(req, -fd);
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_nlink == 0 || replace_set_aside(shmfs_of(req), &st))) {
		replace_moved_open(req, n, fi->flags);
		/* Removed (or set aside for a grace: removed through its view)
		 * while the kernel had its name cached: ESTALE makes the kernel
		 * look the name up again (and find the object now there: a
		 * re-created stream, say). GETATTR cannot do the same: fstat()
		 * of an open file arrives there without its handle,
		 * indistinguishable from stat() by name. */
		close(fd);
		return (void)fuse_reply_err(req, ESTALE);
	}
	int rc = handle_new(req, n, fd, fi->flags, fi);
	if (rc < 0) {
		close(fd);
		return (void)fuse_reply_err(req, -rc);
	}
	if (fuse_reply_open(req, fi) == -ENOENT) /* interrupted: nobody will release */
		posix_release(shmfs_of(req), (struct handle *)(uintptr_t)fi->fh);
}

void posix_create(fuse_req_t req, struct node *parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	struct fuse_entry_param e;
	/* As the caller: owner, group (set-gid directories), mode bits
	 * (S_ISUID kept, S_ISGID dropped for a non-member) as tmpfs sets them. */
	int dirfd = parent_fd(req, parent);
	int rc = dirfd < 0 ? dirfd : fd_room(dirfd, "a create");
	if (rc == 0)
		rc = creds_enter(req);
	if (rc < 0) {
		inode_fd_put(fs, parent, dirfd);
		return (void)fuse_reply_err(req, -rc);
	}
	int fd = openat(dirfd, name,
			backing_flags(fi->flags) | O_CREAT | O_NOFOLLOW | (fi->flags & O_EXCL),
			mode & 07777);
	int err = errno;
	creds_leave();
	inode_fd_put(fs, parent, dirfd);
	if (fd < 0) {
		fd_exhausted("a create", err);
		return (void)fuse_reply_err(req, err);
	}
	rc = posix_entry(fs, parent, name, &e);
	if (rc == 0) {
		rc = handle_new(req, inode_node(fs, e.ino), fd, fi->flags, fi);
		if (rc < 0)
			inode_forget(fs, inode_node(fs, e.ino), 1);
	}
	if (rc < 0) {
		close(fd);
		return (void)fuse_reply_err(req, -rc);
	}
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		posix_release(shmfs_of(req), (struct handle *)(uintptr_t)fi->fh);
		inode_forget(fs, inode_node(fs, e.ino), 1);
	}
}

void posix_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	const void *p;
	size_t n;
	int rc = pmap_read_begin(&h->map, off, size, &p, &n);
	if (rc == 1 || rc == -EACCES || rc == -ENODEV || rc == -ENOMEM) {
		/* A span with holes, a write-only descriptor, an unmappable file
		 * or one too large to map (a sparse terabyte): copy through the
		 * descriptor. */
		char *buf = malloc(size ? size : 1);
		if (!buf)
			return (void)fuse_reply_err(req, ENOMEM);
		ssize_t r = pmap_read(&h->map, buf, size, off);
		if (r < 0)
			fuse_reply_err(req, (int)-r);
		else
			fuse_reply_buf(req, buf, (size_t)r);
		free(buf);
		return;
	}
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	/* Reply straight from the object's pages: the one copy is the kernel's. */
	fuse_reply_buf(req, p, n);
	pmap_read_end(&h->map);
}

void posix_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	int active;
	int rc = kill_begin(req, h->map.fd, passthrough_request_kills_suidgid(), &active);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	ssize_t w = pmap_write(&h->map, buf, size, off);
	kill_end(req, h->node, active);
	if (w < 0) {
		if (w == -ENOSPC)
			shm_log_once(SHM_LOG_WARN, "%s: backing filesystem full (write refused)",
				     shmfs_of(req)->source);
		return (void)fuse_reply_err(req, (int)-w);
	}
	fuse_reply_write(req, (size_t)w);
}

void posix_falloc(fuse_req_t req, struct handle *h, int mode, off_t off, off_t len)
{
	/* The modes SOURCE's filesystem has (tmpfs: allocate, KEEP_SIZE,
	 * PUNCH_HOLE) are its to refuse. It clears set-id bits for a caller
	 * without CAP_FSETID; FALLOCATE says nothing about that, so a caller
	 * other than root is taken to lack it. */
	int active;
	int rc = kill_begin(req, h->map.fd, fuse_req_ctx(req)->uid != 0, &active);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	rc = fallocate(h->map.fd, mode, off, len) < 0 ? -errno : 0;
	kill_end(req, h->node, active);
	if (rc == -ENOSPC)
		shm_log_once(SHM_LOG_WARN, "%s: backing filesystem full (fallocate refused)",
			     shmfs_of(req)->source);
	fuse_reply_err(req, -rc);
}

void posix_fsync(fuse_req_t req, struct handle *h, int datasync)
{
	int rc = datasync ? fdatasync(h->map.fd) : fsync(h->map.fd);
	fuse_reply_err(req, rc < 0 ? errno : 0);
}

void posix_release(struct shmfs *fs, struct handle *h)
{
	open_untrack(fs, &h->item);
	if (h->passthrough)
		inode_backing_put(h->node);
	pmap_destroy(&h->map);
	free(h);
}

int posix_list(struct shmfs *fs, struct node *dir, void *snapshot)
{
	int fd = inode_open(fs, dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	DIR *dp = fdopendir(fd);
	if (!dp) {
		int err = errno;
		close(fd);
		return -err;
	}
	int rc = 0;
	struct dirent *d;
	while ((d = readdir(dp)) != NULL) {
		/* The System V directory hides nothing: a real entry of that name
		 * is listed as itself and the System V one is left out. */
		mode_t type = (mode_t)DTTOIF(d->d_type);
		rc = dirsnap_add(snapshot, d->d_name, d->d_ino, type);
		if (rc < 0)
			break;
	}
	closedir(dp);
	return rc;
}
