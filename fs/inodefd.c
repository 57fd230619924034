/* inodefd.c - how a node reaches its object without holding it open.
 *
 * The kernel keeps a node for every name it caches, and it caches as many as
 * it likes: one ls -l of a directory of a million objects makes a million
 * nodes. So a node holds no descriptor. A POSIX node names its object by a
 * file handle (name_to_handle_at: on tmpfs, 12 bytes that hold the inode
 * number and its generation), and a request that needs the object opens it
 * for the moment with open_by_handle_at, anchored on SOURCE (table.mount_fd).
 * A handle never reaches another object: once the object is gone (removed,
 * and open nowhere), opening it fails with ESTALE, which is what the kernel
 * is then told; while it is open anywhere (an unlinked file still being
 * written), it opens as an O_PATH descriptor does. The daemon's descriptors
 * are then those of the opens in progress, the requests at work, and a few
 * directories kept open below.
 *
 * A listing (READDIRPLUS) makes a node per entry, most of them never used
 * (ls -l only looks at the attributes it came with), so such a node takes no
 * handle at first: it keeps its directory and its name there (struct
 * node_name) and takes the handle by them when it is first used, once the
 * name is seen to still hold the object it was listed with (its dev and
 * ino); else the node answers ESTALE, and the kernel's own lookup, which
 * finds the object wherever it went, names the node for good.
 *
 * open_by_handle_at needs CAP_DAC_READ_SEARCH, which a worker thread loses
 * inside a user's credentials (creds.h): descriptors are had before a
 * creds scope, never in one.
 *
 * Directories are the first argument of nearly every request (LOOKUP,
 * READDIRPLUS one entry at a time, CREATE, UNLINK, RENAME), so the last
 * DIRFD_SLOTS directories used keep their descriptor, shared by the requests
 * that use them at the same time (a count of users; the least recently used
 * idle one makes room). A node that goes while its descriptor is in use
 * leaves it to its last user to close.
 *
 * Where handles do not work (a daemon without CAP_DAC_READ_SEARCH, a SOURCE
 * whose filesystem has no handles) or for an object on another filesystem
 * mounted inside SOURCE (a handle is decoded on SOURCE's), the node keeps an
 * O_PATH descriptor as before, and the log says so once. */
#define _GNU_SOURCE
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define DIRFD_SLOTS 32

#define FD_RESERVE 64 /* see reserve_of */

/* fs.nr_open, read at start (with no descriptor left it could not be). */
static rlim_t nr_open;

/* A listed node's way to its object until it has a handle. */
struct node_name {
	struct node *dir; /* the directory it was listed in ... */
	int ref;          /* ... of which it holds a reference (not the root's) */
	char name[];
};

struct dirfd_slot {
	struct node *node; /* whose descriptor; NULL once it went while in use */
	int fd;            /* -1: a free slot */
	unsigned users;
	unsigned long used; /* fd_clock at its last use */
};

/* The file handle of NAME in DIRFD (FLAGS: name_to_handle_at's; "" and
 * AT_EMPTY_PATH for DIRFD's own object): 0 and *OUT (malloc'd), or -errno. */
static int handle_at(int dirfd, const char *name, int flags, struct file_handle **out)
{
	union {
		struct file_handle fh;
		char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} u;
	u.fh.handle_bytes = MAX_HANDLE_SZ;
	int mount_id;
	if (name_to_handle_at(dirfd, name, &u.fh, &mount_id, flags) < 0)
		return -errno;
	struct file_handle *h = malloc(sizeof *h + u.fh.handle_bytes);
	if (!h)
		return -ENOMEM;
	memcpy(h, &u.fh, sizeof *h + u.fh.handle_bytes);
	*out = h;
	return 0;
}

static int handle_of(int fd, struct file_handle **out)
{
	return handle_at(fd, "", AT_EMPTY_PATH, out);
}

void inode_fd_setup(struct inode_table *t, int mount_fd)
{
	struct stat st;
	t->mount_fd = mount_fd;
	t->dev = fstat(mount_fd, &st) == 0 ? st.st_dev : 0;
	pthread_mutex_init(&t->fd_lock, NULL);
	t->slots = calloc(DIRFD_SLOTS, sizeof *t->slots);
	for (int i = 0; t->slots && i < DIRFD_SLOTS; i++)
		t->slots[i].fd = -1;
	/* Handles are used when SOURCE itself can be named by one and opened
	 * again by it: the filesystem has them, the daemon may open them. */
	struct file_handle *h = NULL;
	int rc = handle_of(mount_fd, &h);
	int fd = rc == 0 ? open_by_handle_at(mount_fd, h, O_PATH | O_CLOEXEC) : -1;
	int err = rc < 0 ? -rc : errno;
	free(h);
	if (fd >= 0)
		close(fd);
	t->handles = fd >= 0 && t->slots;
	FILE *f = geteuid() == 0 ? fopen("/proc/sys/fs/nr_open", "re") : NULL;
	unsigned long v;
	if (f && fscanf(f, "%lu", &v) == 1)
		nr_open = (rlim_t)v;
	if (f)
		fclose(f);
	struct statfs sf;
	t->by_name = t->handles && fstatfs(mount_fd, &sf) == 0 && sf.f_type == TMPFS_MAGIC;
	if (!t->handles)
		shm_log(SHM_LOG_WARN, "file handles cannot be used on SOURCE (%s%s): every name the "
				      "kernel caches keeps a descriptor open in the daemon",
			strerror(err), err == EPERM ? ", the daemon lacks CAP_DAC_READ_SEARCH" : "");
}

void inode_fd_teardown(struct inode_table *t)
{
	for (int i = 0; t->slots && i < DIRFD_SLOTS; i++)
		if (t->slots[i].fd >= 0)
			close(t->slots[i].fd);
	free(t->slots);
	t->slots = NULL;
	pthread_mutex_destroy(&t->fd_lock);
}

int inode_fd_name(struct inode_table *t, int fd, dev_t dev, struct file_handle **handle)
{
	*handle = NULL;
	if (!t->handles)
		return 0;
	if (dev != t->dev) {
		shm_log_once(SHM_LOG_INFO, "another filesystem is mounted inside SOURCE: its objects "
					   "keep a descriptor each while the kernel caches their names");
		return 0;
	}
	int rc = handle_of(fd, handle);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		shm_log_once(SHM_LOG_INFO, "an object of SOURCE has no file handle (%s): it keeps a "
					   "descriptor while the kernel caches its name",
			     strerror(-rc));
		return 0;
	}
	return 1;
}

/* Whether time A is before B. */
static int before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int inode_lookup_at(struct inode_table *t, int dirfd, const char *name, struct stat *st,
		    struct file_handle **handle, int *fd)
{
	*handle = NULL;
	*fd = -1;
	if (t->by_name) {
		/* By name alone, two system calls and no descriptor: the handle
		 * first, then the attributes. They are of one object if NAME was
		 * bound to it before the handle was taken, and on tmpfs a
		 * binding (create, rename, link) sets the object's ctime to when
		 * it happened (the coarse clock; nobody can set a ctime back):
		 * a ctime before T0 proves it. Else the object is opened. */
		struct timespec t0;
		clock_gettime(CLOCK_REALTIME_COARSE, &t0);
		int rc = handle_at(dirfd, name, 0, handle);
		if (rc == -ENOENT || rc == -ENOMEM)
			return rc;
		if (rc == 0 && fstatat(dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
		if (rc == 0 && st->st_dev == t->dev && before(&st->st_ctim, &t0))
			return 0;
		free(*handle);
		*handle = NULL;
		if (rc == -ENOENT)
			return rc;
	}
	int o = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (o < 0 && errno == EMFILE && fd_limit_raise())
		o = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (o < 0)
		return -errno;
	int rc = fstat(o, st) < 0 ? -errno : inode_fd_name(t, o, st->st_dev, handle);
	if (rc < 0) {
		close(o);
		return rc;
	}
	if (rc == 1)
		close(o);
	else
		*fd = o;
	return 0;
}

int inode_fd_same(const struct node *a, const struct file_handle *b)
{
	const struct file_handle *h = a->handle;
	if (!h || !b)
		return !h && !b;
	return h->handle_type == b->handle_type && h->handle_bytes == b->handle_bytes &&
	       memcmp(h->f_handle, b->f_handle, h->handle_bytes) == 0;
}

int inode_fd_match(struct inode_table *t, struct node *n, struct file_handle **handle)
{
	pthread_mutex_lock(&t->fd_lock);
	int same;
	if (!n->handle && n->name && n->fd < 0 && *handle) {
		__atomic_store_n(&n->handle, *handle, __ATOMIC_RELEASE);
		*handle = NULL;
		same = 1;
	} else {
		same = inode_fd_same(n, *handle);
	}
	pthread_mutex_unlock(&t->fd_lock);
	return same;
}

int inode_fd_listed(struct node *n, struct node *dir, int ref, const char *name)
{
	size_t len = strlen(name) + 1;
	struct node_name *nn = malloc(sizeof *nn + len);
	if (!nn)
		return -ENOMEM;
	nn->dir = dir;
	nn->ref = ref;
	memcpy(nn->name, name, len);
	n->name = nn;
	return 0;
}

/* Give listed node N its handle (or descriptor), found by its name in its
 * directory: 0, or -ESTALE when that name is no longer its object's
 * (renamed or removed since it was listed: the kernel looks it up again,
 * which names it for good). */
static int resolve(struct shmfs *fs, struct node *n)
{
	struct inode_table *t = &fs->table;
	if (__atomic_load_n(&n->handle, __ATOMIC_ACQUIRE) || __atomic_load_n(&n->fd, __ATOMIC_ACQUIRE) >= 0)
		return 0;
	if (!n->name)
		return -ESTALE;
	struct node *dir = n->name->dir;
	int dirfd = inode_fd(fs, dir);
	if (dirfd < 0)
		return dirfd;
	struct stat st;
	struct file_handle *h;
	int fd;
	int rc = inode_lookup_at(t, dirfd, n->name->name, &st, &h, &fd);
	inode_fd_put(fs, dir, dirfd);
	if (rc == 0 && (st.st_dev != n->dev || st.st_ino != n->ino))
		rc = -ESTALE;
	if (rc < 0) {
		free(h);
		if (fd >= 0)
			close(fd);
		return rc == -ENOENT || rc == -ENOTDIR ? -ESTALE : rc;
	}
	pthread_mutex_lock(&t->fd_lock);
	if (!n->handle && n->fd < 0) {
		if (h)
			__atomic_store_n(&n->handle, h, __ATOMIC_RELEASE);
		else
			__atomic_store_n(&n->fd, fd, __ATOMIC_RELEASE);
		h = NULL;
		fd = -1;
	}
	pthread_mutex_unlock(&t->fd_lock);
	free(h); /* another request named it first */
	if (fd >= 0)
		close(fd);
	return 0;
}

void fd_exhausted(const char *what, int err)
{
	if (err == EMFILE || err == ENFILE)
		shm_log_once(SHM_LOG_WARN, "no descriptor left (%s) for %s: that request fails with "
					   "it, others go on",
			     strerror(err), what);
	else if (err == ENOMEM)
		shm_log_once(SHM_LOG_WARN, "out of memory for %s: that request fails with ENOMEM, "
					   "others go on",
			     what);
}

int fd_limit_raise(void)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct rlimit rl;
	int raised = 0;
	pthread_mutex_lock(&lock);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rlim_t want = rl.rlim_max > nr_open ? rl.rlim_max : nr_open;
		if (want > rl.rlim_cur) {
			struct rlimit up = {want, want > rl.rlim_max ? want : rl.rlim_max};
			if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
				raised = 1;
			} else if (rl.rlim_max > rl.rlim_cur) {
				up = (struct rlimit){rl.rlim_max, rl.rlim_max};
				raised = setrlimit(RLIMIT_NOFILE, &up) == 0;
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return raised;
}

/* Descriptors an open file may not take: the requests' own (a lookup, a
 * listing, a stat needs one for a moment), so that files open through the
 * mount can use up the daemon's descriptors for more opens only. */
static rlim_t reserve_of(rlim_t limit)
{
	return limit / 4 < FD_RESERVE ? limit / 4 : FD_RESERVE;
}

/* Whether descriptor number FD, kept open, leaves the reserve free: the
 * kernel gives the lowest free number, so all below are taken. */
static int leaves_reserve(int fd)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return 1;
	return (rlim_t)fd + reserve_of(rl.rlim_cur) < rl.rlim_cur ||
	       (fd_limit_raise() && getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		(rlim_t)fd + reserve_of(rl.rlim_cur) < rl.rlim_cur);
}

int fd_keep(int fd, const char *what)
{
	if (fd < 0 || leaves_reserve(fd))
		return fd;
	close(fd);
	fd_exhausted(what, EMFILE);
	return -EMFILE;
}

int fd_room(int probe_fd, const char *what)
{
	int fd = fcntl(probe_fd, F_DUPFD_CLOEXEC, 0);
	int rc = fd < 0 ? -errno : leaves_reserve(fd) ? 0 : -EMFILE;
	if (fd >= 0)
		close(fd);
	fd_exhausted(what, -rc);
	return rc;
}

/* N's object opened with FLAGS through its handle. */
static int by_handle(struct inode_table *t, struct node *n, int flags)
{
	for (int attempt = 0;; attempt++) {
		int fd = open_by_handle_at(t->mount_fd, n->handle, flags | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		int err = errno;
		if (err == EMFILE && attempt == 0 && fd_limit_raise())
			continue;
		fd_exhausted("opening an object", err);
		return -err;
	}
}

/* The kept descriptor of directory N, with one more user, or -1. */
static int slot_take(struct inode_table *t, struct node *n)
{
	int fd = -1;
	pthread_mutex_lock(&t->fd_lock);
	for (int i = 0; i < DIRFD_SLOTS; i++) {
		struct dirfd_slot *s = &t->slots[i];
		if (s->fd >= 0 && s->node == n) {
			s->users++;
			s->used = ++t->fd_clock;
			fd = s->fd;
			break;
		}
	}
	pthread_mutex_unlock(&t->fd_lock);
	return fd;
}

/* Keep FD, just opened for directory N, in a slot if one is free or idle;
 * returns the descriptor to use (another request's, if it was quicker). */
static int slot_keep(struct inode_table *t, struct node *n, int fd)
{
	int close_fd = -1, use = fd;
	pthread_mutex_lock(&t->fd_lock);
	struct dirfd_slot *free_slot = NULL, *idle = NULL;
	for (int i = 0; i < DIRFD_SLOTS; i++) {
		struct dirfd_slot *s = &t->slots[i];
		if (s->fd >= 0 && s->node == n) { /* kept meanwhile */
			s->users++;
			s->used = ++t->fd_clock;
			close_fd = fd;
			use = s->fd;
			goto out;
		}
		if (s->fd < 0) {
			if (!free_slot)
				free_slot = s;
		} else if (s->users == 0 && (!idle || s->used < idle->used)) {
			idle = s; /* (a slot whose node went is never idle) */
		}
	}
	struct dirfd_slot *victim = free_slot ? free_slot : idle;
	if (victim) {
		close_fd = victim->fd;
		*victim = (struct dirfd_slot){n, fd, 1, ++t->fd_clock};
	}
out:
	pthread_mutex_unlock(&t->fd_lock);
	if (close_fd >= 0)
		close(close_fd);
	return use;
}

int inode_fd(struct shmfs *fs, struct node *n)
{
	struct inode_table *t = &fs->table;
	int rc = resolve(fs, n);
	if (rc < 0)
		return rc;
	if (n->fd >= 0)
		return n->fd;
	if (n->isdir) {
		int fd = slot_take(t, n);
		if (fd >= 0)
			return fd;
	}
	int fd = by_handle(t, n, O_PATH);
	return fd >= 0 && n->isdir ? slot_keep(t, n, fd) : fd;
}

int name_absent(int dirfd, const char *name)
{
	return faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
}

int inode_name_absent(struct shmfs *fs, struct node *dir, const char *name)
{
	int dirfd = inode_fd(fs, dir);
	int absent = dirfd >= 0 && name_absent(dirfd, name);
	inode_fd_put(fs, dir, dirfd);
	return absent;
}

int rename_in_dirs(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		   const char *newname, unsigned int flags,
		   int (*at)(fuse_req_t req, int dirfd, const char *name, struct node *newparent,
			     int newdirfd, const char *newname, unsigned int flags))
{
	struct shmfs *fs = shmfs_of(req);
	int dirfd = inode_fd(fs, parent);
	int newdirfd = dirfd < 0 ? dirfd : inode_fd(fs, newparent);
	int done = newdirfd < 0 ? 0 : at(req, dirfd, name, newparent, newdirfd, newname, flags);
	inode_fd_put(fs, newparent, newdirfd);
	inode_fd_put(fs, parent, dirfd);
	if (done)
		fuse_reply_err(req, done < 0 ? -done : 0);
	return done != 0;
}

void inode_fd_put(struct shmfs *fs, struct node *n, int fd)
{
	struct inode_table *t = &fs->table;
	if (fd < 0 || fd == n->fd)
		return;
	if (n->isdir) {
		int kept = 0, close_fd = -1;
		pthread_mutex_lock(&t->fd_lock);
		for (int i = 0; i < DIRFD_SLOTS && !kept; i++) {
			struct dirfd_slot *s = &t->slots[i];
			if (s->fd != fd)
				continue;
			kept = 1;
			if (--s->users == 0 && !s->node) { /* its node went meanwhile */
				close_fd = s->fd;
				s->fd = -1;
			}
		}
		pthread_mutex_unlock(&t->fd_lock);
		if (close_fd >= 0)
			close(close_fd);
		if (kept)
			return;
	}
	close(fd);
}

int inode_open(struct shmfs *fs, struct node *n, int flags)
{
	int rc = resolve(fs, n);
	if (rc < 0)
		return rc;
	if (n->fd >= 0) {
		char path[64];
		proc_path(path, n->fd);
		int fd = open(path, flags | O_CLOEXEC);
		if (fd < 0 && errno == EMFILE && fd_limit_raise())
			fd = open(path, flags | O_CLOEXEC);
		if (fd < 0)
			fd_exhausted("opening an object", errno);
		return fd < 0 ? -errno : fd;
	}
	return by_handle(&fs->table, n, flags);
}

struct node *inode_fd_release(struct inode_table *t, struct node *n)
{
	struct node *dir = n->name && n->name->ref ? n->name->dir : NULL;
	free(n->name);
	n->name = NULL;
	free(n->handle);
	n->handle = NULL;
	if (n->fd >= 0)
		close(n->fd);
	n->fd = -1;
	if (!n->isdir || !t->slots)
		return dir;
	int close_fd = -1;
	pthread_mutex_lock(&t->fd_lock);
	for (int i = 0; i < DIRFD_SLOTS; i++) {
		struct dirfd_slot *s = &t->slots[i];
		if (s->fd < 0 || s->node != n)
			continue;
		if (s->users == 0) {
			close_fd = s->fd;
			s->fd = -1;
		}
		s->node = NULL; /* an address a new node may get */
	}
	pthread_mutex_unlock(&t->fd_lock);
	if (close_fd >= 0)
		close(close_fd);
	return dir;
}
