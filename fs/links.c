/* links.c - stream links: the symlinks between X.im.shm files that milk and
 * cacao follow, made with ln -s in the mount. `ln -s imcam.fits wfsim.fits`
 * makes wfsim.im.shm -> imcam.im.shm, and wfsim.fits shows as a link to
 * imcam.fits while its stream exists. A target given as a path in the mount
 * is stored relative to the link, so it resolves both there and in SOURCE,
 * where ImageStreamIO programs open streams. */
#define _GNU_SOURCE
#include "links.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsload.h"
#include "fsview.h"
#include "isio.h"
#include "imod.h"
#include "log.h"
#include "typed.h"

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcmp(s + n - m, suffix) == 0;
}

/* S with its SUFFIX replaced by WITH, into OUT. Returns 0, or -ENAMETOOLONG. */
static int swap_suffix(const char *s, const char *suffix, const char *with, char *out, size_t len)
{
	size_t stem = strlen(s) - strlen(suffix);
	int n = snprintf(out, len, "%.*s%s", (int)stem, s, with);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The path of directory DIR below SOURCE ("" for the root), into OUT. */
static int dir_below_source(struct shmfs *fs, struct node *dir, char *out, size_t len)
{
	char path[64], real[PATH_MAX];
	int fd = inode_fd(fs, dir);
	if (fd < 0)
		return fd;
	proc_path(path, fd);
	ssize_t n = readlink(path, real, sizeof real - 1);
	inode_fd_put(fs, dir, fd);
	if (n <= 0)
		return -ESTALE;
	real[n] = '\0';
	size_t slen = strlen(fs->source);
	if (strncmp(real, fs->source, slen) != 0 || (real[slen] && real[slen] != '/'))
		return -EXDEV;
	snprintf(out, len, "%s", real[slen] ? real + slen + 1 : "");
	return 0;
}

/* TARGET as it is to be stored for a link in DIR: a path in the mount made
 * relative to DIR ("../" per level below the root, then the path below the
 * mount point); anything else as given. */
static int stored_target(struct shmfs *fs, struct node *dir, const char *target, char *out,
			 size_t len)
{
	size_t mlen = strlen(fs->mountpoint);
	if (target[0] != '/' || strncmp(target, fs->mountpoint, mlen) != 0 ||
	    (target[mlen] && target[mlen] != '/') || mlen == 1) {
		snprintf(out, len, "%s", target);
		return strlen(target) < len ? 0 : -ENAMETOOLONG;
	}
	const char *rest = target + mlen;
	while (*rest == '/')
		rest++;
	char below[PATH_MAX];
	int rc = dir_below_source(fs, dir, below, sizeof below);
	if (rc < 0)
		return rc;
	size_t used = 0;
	out[0] = '\0';
	for (const char *p = below; *p;) {
		const char *slash = strchr(p, '/');
		int n = snprintf(out + used, len - used, "../");
		if (n < 0 || (size_t)n >= len - used)
			return -ENAMETOOLONG;
		used += (size_t)n;
		p = slash ? slash + 1 : p + strlen(p);
	}
	int n = snprintf(out + used, len - used, "%s", *rest ? rest : (used ? "" : "."));
	if (n < 0 || (size_t)n >= len - used)
		return -ENAMETOOLONG;
	if (used && !*rest)
		out[used - 1] = '\0'; /* the mount's root itself: "..", not "../" */
	return 0;
}

/* Path resolution that never enters the mount. The daemon must not look
 * anything up through its own mount point (a request to itself: with -s,
 * nobody is left to answer it and the daemon hangs), yet a link made
 * directly in SOURCE may name a path in the mount, or go through another
 * link that does. So paths are walked here one component at a time, every
 * symlink read and followed by hand, and a step into the mount point goes
 * to SOURCE instead. */
#define RESOLVE_MAX_LINKS 40

struct resolver {
	struct shmfs *fs;
	dev_t mp_dev;          /* the directory that holds the mount point */
	ino_t mp_ino;
	const char *mp_name;   /* the mount point's name in it */
	int links;             /* symlinks followed so far */
};

static int resolver_init(struct resolver *r, struct shmfs *fs)
{
	char parent[PATH_MAX];
	memset(r, 0, sizeof *r);
	r->fs = fs;
	const char *slash = strrchr(fs->mountpoint, '/');
	if (!slash || !slash[1])
		return -EINVAL; /* mounted on "/": nothing outside it */
	snprintf(parent, sizeof parent, "%.*s", slash == fs->mountpoint ? 1 : (int)(slash - fs->mountpoint),
		 fs->mountpoint);
	struct stat st;
	if (stat(parent, &st) < 0)
		return -errno;
	r->mp_dev = st.st_dev;
	r->mp_ino = st.st_ino;
	r->mp_name = slash + 1;
	return 0;
}

/* Walk PATH from directory *FD (an O_PATH descriptor, replaced as the walk
 * goes; absolute paths start at "/"). FOLLOW: whether a symlink as the last
 * component is followed. Returns 0 with *FD the object (O_PATH), or
 * -errno (*FD is then closed). */
static int resolve_walk(struct resolver *r, int *fd, const char *path, int follow)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	if (strlen(path) >= sizeof buf)
		goto toolong;
	if (buf[0] == '/') {
		int root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (root < 0)
			goto fail;
		close(*fd);
		*fd = root;
	}
	char *save = NULL;
	for (char *comp = strtok_r(buf, "/", &save); comp; comp = strtok_r(NULL, "/", &save)) {
		int last = save == NULL || *save == '\0' || strspn(save, "/") == strlen(save);
		if (strcmp(comp, ".") == 0)
			continue;
		struct stat dir;
		if (fstat(*fd, &dir) < 0)
			goto fail;
		int next;
		if (strcmp(comp, r->mp_name) == 0 && dir.st_dev == r->mp_dev && dir.st_ino == r->mp_ino)
			next = fcntl(r->fs->root.fd, F_DUPFD_CLOEXEC, 0); /* the mount: SOURCE */
		else
			next = openat(*fd, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			goto fail;
		struct stat st;
		if (fstat(next, &st) < 0) {
			close(next);
			goto fail;
		}
		if (S_ISLNK(st.st_mode) && (!last || follow)) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(next, "", target, sizeof target - 1);
			close(next);
			if (n < 0)
				goto fail;
			target[n] = '\0';
			if (++r->links > RESOLVE_MAX_LINKS) {
				errno = ELOOP;
				goto fail;
			}
			/* The link's target, then what is left of PATH. */
			int rc = resolve_walk(r, fd, target, 1);
			if (rc < 0)
				return rc;
			continue;
		}
		if (!last && !S_ISDIR(st.st_mode)) {
			close(next);
			errno = ENOTDIR;
			goto fail;
		}
		close(*fd);
		*fd = next;
	}
	return 0;
toolong:
	errno = ENAMETOOLONG;
fail:;
	int err = errno;
	close(*fd);
	*fd = -1;
	return -err;
}

/* PATH from directory DIRFD, resolved without entering the mount: an
 * O_PATH descriptor of the object, or -errno. */
static int resolve(struct shmfs *fs, int dirfd, const char *path, int follow)
{
	struct resolver r;
	int rc = resolver_init(&r, fs);
	if (rc < 0)
		return rc;
	int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = resolve_walk(&r, &fd, path, follow);
	return rc < 0 ? rc : fd;
}

/* Whether link NAME -> TARGET in DIR is a stream link spelled with .fits:
 * both end in .fits and the target is no real file of SOURCE. */
static int is_fits_spelling(struct shmfs *fs, struct node *dir, const char *name,
			    const char *target)
{
	if (!ends_with(name, ".fits") || !ends_with(target, ".fits"))
		return 0;
	int dirfd = inode_fd(fs, dir);
	int fd = dirfd < 0 ? dirfd : resolve(fs, dirfd, target, 0);
	inode_fd_put(fs, dir, dirfd);
	if (fd >= 0)
		close(fd);
	return fd == -ENOENT;
}

void links_symlink(fuse_req_t req, const char *target, struct node *parent, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	char stored[PATH_MAX], object[NAME_MAX + 1], linktarget[PATH_MAX];
	int rc = stored_target(fs, parent, target, stored, sizeof stored);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	int fits = is_fits_spelling(fs, parent, name, stored);
	if (!fits) {
		snprintf(object, sizeof object, "%s", name);
		snprintf(linktarget, sizeof linktarget, "%s", stored);
	} else if (swap_suffix(name, ".fits", ISIO_SUFFIX, object, sizeof object) < 0 ||
		   strlen(object) > NAME_MAX ||
		   swap_suffix(stored, ".fits", ISIO_SUFFIX, linktarget, sizeof linktarget) < 0) {
		return (void)fuse_reply_err(req, ENAMETOOLONG);
	}
	int dirfd = inode_fd(fs, parent);
	rc = dirfd < 0 ? dirfd : posix_symlink_as_caller(req, linktarget, dirfd, object);
	struct fuse_entry_param e;
	if (rc == 0) {
		rc = fits ? links_view_entry(fs, parent, object, &e)
			  : posix_entry(fs, parent, name, &e);
		if (rc < 0)
			unlinkat(dirfd, object, 0);
	}
	inode_fd_put(fs, parent, dirfd);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	/* A symlink's attributes are never cached (see links_lookup): ln -sf
	 * renames this one over another name at once. */
	e.attr_timeout = 0;
	fuse_reply_entry(req, &e);
}

/* links_rename with the descriptors of PARENT and NEWPARENT at hand: 1 (done),
 * -errno (refused) or 0 (not a link's rename). Does not reply. */
static int rename_link(fuse_req_t req, int dirfd, const char *name, struct node *newparent,
		       int newdirfd, const char *newname, unsigned int flags)
{
	if (!ends_with(newname, ".fits") || !name_absent(newdirfd, newname))
		return 0;
	struct stat st;
	char target[PATH_MAX], object[NAME_MAX + 1], linktarget[PATH_MAX];
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(st.st_mode))
		return 0;
	ssize_t n = readlinkat(dirfd, name, target, sizeof target - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	if (!is_fits_spelling(shmfs_of(req), newparent, newname, target))
		return 0;
	if (swap_suffix(newname, ".fits", ISIO_SUFFIX, object, sizeof object) < 0 ||
	    strlen(object) > NAME_MAX ||
	    swap_suffix(target, ".fits", ISIO_SUFFIX, linktarget, sizeof linktarget) < 0) {
		return -ENAMETOOLONG;
	}
	if ((flags & RENAME_NOREPLACE) &&
	    faccessat(newdirfd, object, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		return -EEXIST;
	}
	/* The link with the .im.shm target, made beside and renamed into place,
	 * so the old link is replaced at once (readers never miss the name). */
	static atomic_uint counter;
	char tmp[64];
	snprintf(tmp, sizeof tmp, ".shmfs-link.%d.%u", (int)getpid(), atomic_fetch_add(&counter, 1));
	int rc = 0;
	if (symlinkat(linktarget, newdirfd, tmp) < 0)
		rc = -errno;
	if (rc == 0 && fchownat(newdirfd, tmp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	if (rc == 0 && renameat(newdirfd, tmp, newdirfd, object) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(newdirfd, tmp, 0);
		return rc;
	}
	unlinkat(dirfd, name, 0);
	return 1;
}

int links_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		 const char *newname, unsigned int flags)
{
	/* ln -sf makes the new link under a temporary name and renames it
	 * over the old one: a link spelled with .fits arrives here. */
	if ((flags & RENAME_EXCHANGE) || !ends_with(newname, ".fits"))
		return 0;
	return rename_in_dirs(req, parent, name, newparent, newname, flags, rename_link);
}

int links_unlink(fuse_req_t req, struct node *parent, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	/* Only names that are no file of SOURCE, and only views that exist:
	 * rm -f of a name with no view must not remove the file behind it. */
	if (!inode_name_absent(fs, parent, name))
		return 0; /* a real file, or no descriptor: the plain unlink says why */
	struct fuse_entry_param e;
	if (view_entry(fs, parent, name, &e) < 0)
		return 0;
	struct node *view = inode_node(fs, e.ino);
	enum view_kind kind = (enum view_kind)view->variant;
	inode_forget(fs, view, 1);
	size_t n = strlen(name);
	size_t stem = n - (ends_with(name, ".mrc") ? 4 : 5);
	char object[NAME_MAX + 1];
	switch (kind) {
	case VK_STREAM_FITS:
	case VK_STREAM_LINK:
		/* rm of a stream's view removes the stream; of a link's, the
		 * link alone (unlink never follows). */
		snprintf(object, sizeof object, "%.*s" ISIO_SUFFIX, (int)stem, name);
		break;
	case VK_IMOD_MRC:
	case VK_IMOD_FITS:
		snprintf(object, sizeof object, "%.*s", (int)stem, name);
		break;
	default:
		/* A typed view: the object has a name of its own. */
		shm_log_once(SHM_LOG_WARN, "%s: a typed view is removed with its object, or "
					   "with setfattr -x " TYPED_XATTR_TYPE " (EPERM)",
			     name);
		fuse_reply_err(req, EPERM);
		return 1;
	}
	int dirfd = inode_fd(fs, parent);
	int rc = dirfd < 0 ? dirfd : unlinkat(dirfd, object, 0) < 0 ? -errno : 0;
	inode_fd_put(fs, parent, dirfd);
	fuse_reply_err(req, -rc);
	return 1;
}

int links_stream_link(struct shmfs *fs, int dirfd, const char *object, struct stat *lst)
{
	if (fstatat(dirfd, object, lst, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISLNK(lst->st_mode))
		return 0;
	char target[PATH_MAX];
	ssize_t n = readlinkat(dirfd, object, target, sizeof target - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	if (!ends_with(target, ISIO_SUFFIX))
		return 0;
	/* It shows while what it names is a stream: a dangling link has no
	 * view. Followed by hand (never through the mount), and only a
	 * regular file is opened (no device, no FIFO). */
	int opath = resolve(fs, dirfd, object, 1);
	if (opath < 0)
		return 0;
	struct stat st;
	char path[64];
	proc_path(path, opath);
	int fd = fstat(opath, &st) == 0 && S_ISREG(st.st_mode)
			 ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
			 : -1;
	close(opath);
	if (fd < 0)
		return 0;
	unsigned char meta[ISIO_META_SIZE];
	struct isio_stream s;
	char why[160];
	int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		 pread(fd, meta, sizeof meta, 0) == (ssize_t)sizeof meta &&
		 isio_parse(meta, sizeof meta, (uint64_t)st.st_size, &s, why, sizeof why) == 0;
	close(fd);
	return ok;
}

int links_lookup(fuse_req_t req, struct node *parent, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	struct stat st;
	struct fuse_entry_param e;
	int dirfd = inode_fd(fs, parent);
	int link = dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		   S_ISLNK(st.st_mode);
	inode_fd_put(fs, parent, dirfd);
	if (!link || posix_entry(fs, parent, name, &e) < 0)
		return 0;
	e.attr_timeout = 0;
	fuse_reply_entry(req, &e);
	return 1;
}

/* Whether the symlink of ST is gone from the mount: removed, or set aside
 * for its grace (rm of its view), while the kernel may cache its name.
 * (Its attributes are never cached, so GETATTR sees this at once.) */
static int link_gone(struct shmfs *fs, const struct stat *st)
{
	return st->st_nlink == 0 || replace_set_aside(fs, st);
}

int links_getattr(fuse_req_t req, struct node *n)
{
	struct shmfs *fs = shmfs_of(req);
	struct stat st;
	int fd = inode_fd(fs, n);
	int link = fd >= 0 && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
		   S_ISLNK(st.st_mode);
	inode_fd_put(fs, n, fd);
	if (!link) /* (nor reachable: posix_getattr says why) */
		return 0;
	if (link_gone(fs, &st))
		fuse_reply_err(req, ESTALE);
	else
		fuse_reply_attr(req, &st, 0);
	return 1;
}

int links_stale_symlink(struct shmfs *fs, struct node *n)
{
	struct stat st;
	int fd = inode_fd(fs, n);
	int stale = fd == -ESTALE ||
		    (fd >= 0 && fstatat(fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) == 0 &&
		     S_ISLNK(st.st_mode) && link_gone(fs, &st));
	inode_fd_put(fs, n, fd);
	return stale;
}

int links_view_target(struct shmfs *fs, struct node *n, char *out, size_t len)
{
	char target[PATH_MAX];
	/* A link removed or replaced (ln -sf, rm; ln -s) while the kernel
	 * still caches the view's name: ESTALE makes it look the name up
	 * again, instead of following the old target. */
	if (links_stale_symlink(fs, n))
		return -ESTALE;
	int fd = inode_fd(fs, n);
	ssize_t r = fd < 0 ? fd : readlinkat(fd, "", target, sizeof target - 1);
	if (r < 0 && fd >= 0)
		r = -errno;
	inode_fd_put(fs, n, fd);
	if (r < 0)
		return (int)r;
	target[r] = '\0';
	char fits[PATH_MAX];
	if (!ends_with(target, ISIO_SUFFIX) ||
	    swap_suffix(target, ISIO_SUFFIX, ".fits", fits, sizeof fits) < 0)
		return -EINVAL;
	/* A path into SOURCE points into the mount, where the view is. */
	size_t slen = strlen(fs->source);
	if (fits[0] == '/' && strncmp(fits, fs->source, slen) == 0 && fits[slen] == '/') {
		int w = snprintf(out, len, "%s%s", fs->mountpoint, fits + slen);
		return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
	}
	snprintf(out, len, "%s", fits);
	return strlen(fits) < len ? 0 : -ENAMETOOLONG;
}

/* The attributes of link view N: the link's, the size its target's. */
int links_view_stat(struct shmfs *fs, struct node *n, struct stat *st)
{
	char target[PATH_MAX];
	int fd = inode_fd(fs, n);
	int rc = fd < 0 ? fd : fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
	inode_fd_put(fs, n, fd);
	if (rc < 0)
		return rc;
	if (link_gone(fs, st))
		return -ESTALE; /* removed or replaced: see links_stale_symlink */
	st->st_size = links_view_target(fs, n, target, sizeof target) == 0 ? (off_t)strlen(target) : 0;
	st->st_ino ^= (ino_t)VK_STREAM_LINK << 56;
	return 0;
}

int links_view_entry(struct shmfs *fs, struct node *dir, const char *object,
		    struct fuse_entry_param *e)
{
	memset(e, 0, sizeof *e);
	int dirfd = inode_fd(fs, dir);
	if (dirfd < 0)
		return dirfd;
	int opath = openat(dirfd, object, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int err = errno;
	inode_fd_put(fs, dir, dirfd);
	struct stat st;
	if (opath < 0)
		return -err;
	if (fstat(opath, &st) < 0 || !S_ISLNK(st.st_mode)) {
		close(opath);
		return -ENOENT;
	}
	struct node *node = inode_get_view(&fs->table, opath, st.st_dev, st.st_ino, VK_STREAM_LINK, -1);
	if (!node)
		return -ENOMEM;
	int rc = links_view_stat(fs, node, &e->attr);
	if (rc < 0) {
		inode_forget(fs, node, 1);
		return rc;
	}
	e->ino = inode_number(fs, node);
	return 0;
}
