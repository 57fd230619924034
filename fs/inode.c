/* inode.c - how FUSE inode numbers are made.
 *
 * The kernel addresses every inode by a 64-bit node id that the daemon hands
 * out in LOOKUP replies and takes back with FORGET. shmfs uses the address of
 * a struct node as that id (the root is FUSE_ROOT_ID, mapped to fs->root), so
 * turning an id back into a node costs nothing. A node stays allocated while
 * the kernel holds references (nlookup > 0); the table below makes sure one
 * object gets one node: POSIX objects are keyed by (st_dev, st_ino) of the
 * backing file and named by its file handle (inodefd.c: a node holds no
 * descriptor), System V segments by shmid (a re-created segment gets a new
 * shmid, hence a new node, so a stale inode can never reach the new memory).
 * An inode number may come back for a new object once the old one is gone;
 * its handle does not (it carries the inode's generation), so a node whose
 * handle is not the object's is retired, passed by in lookups, and the new
 * object gets a node of its own.
 * The st_ino a user sees is the backing inode number (POSIX) or a number
 * derived from the shmid (see sysv_ino), never the node id.
 *
 * Frame views are the exception to "one object, one node": each frame of a
 * view is a node of its own (viewsnap.c), so the kernel, which binds one
 * backing file and one page cache to an inode, sees a file whose content
 * never changes. Of the nodes of one view, the table marks one current
 * (view_current), the one lookups answer with while the object holds its
 * frame; older ones stay filed, out of lookups' way, until forgotten. */
#define _GNU_SOURCE
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsload.h"
#include "fsview.h"
#include "passthrough.h"
#include "sysv.h"

static size_t bucket_of(const struct inode_table *t, enum node_kind kind, uint64_t a, uint64_t b,
			uint32_t variant)
{
	uint64_t h = (a * 0x9e3779b97f4a7c15ull) ^
		     (b + 0x632be59bd9b4e019ull + (uint64_t)kind + ((uint64_t)variant << 40));
	h ^= h >> 29;
	return (size_t)(h & (t->nbuckets - 1));
}

int inode_table_init(struct inode_table *t)
{
	t->nbuckets = 1024;
	t->count = 0;
	t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
	if (!t->buckets)
		return -ENOMEM;
	return -pthread_mutex_init(&t->lock, NULL);
}

static void table_forget(struct inode_table *t, struct node *n, uint64_t nlookup);

/* Free N; with DROP, the reference it held on its directory too (not at
 * exit: the table goes all at once). */
static void node_free(struct inode_table *t, struct node *n, int drop)
{
	struct node *dir = inode_fd_release(t, n);
	if (dir && drop)
		table_forget(t, dir, 1);
	if (n->kind == NODE_SYSV_SEG)
		sysv_node_free(n);
	if (n->kind == NODE_LOAD)
		load_node_free(n);
	if (n->kind == NODE_VIEW)
		viewgen_node_free(n);
	pthread_mutex_destroy(&n->lock);
	free(n);
}

void inode_table_destroy(struct inode_table *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct node *n = t->buckets[i];
		while (n) {
			struct node *next = n->hash_next;
			node_free(t, n, 0);
			n = next;
		}
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	inode_fd_teardown(t);
}

/* The identity a node is filed under: see inode_get_*. */
static uint64_t key_a(const struct node *n)
{
	return n->kind == NODE_SYSV_SEG ? (uint64_t)(uint32_t)n->shmid : (uint64_t)n->dev;
}
static uint64_t key_b(const struct node *n) { return n->kind == NODE_SYSV_SEG ? 0 : (uint64_t)n->ino; }
#define BUCKET(t, n) bucket_of((t), (n)->kind, key_a(n), key_b(n), (n)->variant)

/* Double the bucket array when the table gets crowded; caller holds lock.
 * Failure to grow is harmless (chains just get longer). */
static void maybe_grow(struct inode_table *t)
{
	if (t->count < t->nbuckets * 2)
		return;
	size_t old_n = t->nbuckets;
	struct node **old = t->buckets;
	struct node **nb = calloc(old_n * 2, sizeof *nb);
	if (!nb)
		return;
	t->buckets = nb;
	t->nbuckets = old_n * 2;
	for (size_t i = 0; i < old_n; i++) {
		struct node *n = old[i];
		while (n) {
			struct node *next = n->hash_next;
			size_t b = BUCKET(t, n);
			n->hash_next = nb[b];
			nb[b] = n;
			n = next;
		}
	}
	free(old);
}

static void insert(struct inode_table *t, struct node *n)
{
	size_t b = BUCKET(t, n);
	n->hash_next = t->buckets[b];
	t->buckets[b] = n;
	t->count++;
	maybe_grow(t);
}

static void unlink_node(struct inode_table *t, struct node *n)
{
	size_t b = BUCKET(t, n);
	for (struct node **pp = &t->buckets[b]; *pp; pp = &(*pp)->hash_next) {
		if (*pp == n) {
			*pp = n->hash_next;
			t->count--;
			return;
		}
	}
}

static struct node *node_alloc(enum node_kind kind)
{
	struct node *n = calloc(1, sizeof *n);
	if (!n)
		return NULL;
	n->kind = kind;
	n->fd = -1;
	n->handle = NULL;
	n->shmid = -1;
	pthread_mutex_init(&n->lock, NULL);
	return n;
}

struct node *inode_node(struct shmfs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->root;
	return (struct node *)(uintptr_t)ino;
}

fuse_ino_t inode_number(struct shmfs *fs, struct node *n)
{
	return n == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)n;
}

struct node *inode_get_posix(struct inode_table *t, int fd, struct file_handle *handle,
			     const struct stat *st)
{
	struct file_handle *h = handle;
	int named = h ? 1 : inode_fd_name(t, fd, st->st_dev, &h);
	if (named < 0) {
		close(fd);
		return NULL;
	}
	pthread_mutex_lock(&t->lock);
	size_t b = bucket_of(t, NODE_POSIX, (uint64_t)st->st_dev, (uint64_t)st->st_ino, 0);
	struct node *n;
	for (n = t->buckets[b]; n; n = n->hash_next) {
		if (n->kind != NODE_POSIX || n->retired || n->dev != st->st_dev || n->ino != st->st_ino)
			continue;
		if (inode_fd_match(t, n, &h))
			break;
		n->retired = 1; /* a removed object's: see the top */
	}
	if (n) {
		n->nlookup++;
	} else {
		n = node_alloc(NODE_POSIX);
		if (n) {
			n->handle = h;
			n->fd = named ? -1 : fd;
			n->dev = st->st_dev;
			n->ino = st->st_ino;
			n->isdir = S_ISDIR(st->st_mode);
			n->nlookup = 1;
			insert(t, n);
			h = NULL;
			if (!named)
				fd = -1;
		}
	}
	pthread_mutex_unlock(&t->lock);
	free(h);
	if (fd >= 0)
		close(fd);
	return n;
}

struct node *inode_get_posix_listed(struct inode_table *t, struct node *dir, int root,
				    const char *name, const struct stat *st)
{
	pthread_mutex_lock(&t->lock);
	size_t b = bucket_of(t, NODE_POSIX, (uint64_t)st->st_dev, (uint64_t)st->st_ino, 0);
	struct node *n;
	for (n = t->buckets[b]; n; n = n->hash_next)
		if (n->kind == NODE_POSIX && !n->retired && n->dev == st->st_dev &&
		    n->ino == st->st_ino)
			break;
	if (n) {
		n->nlookup++;
	} else {
		n = node_alloc(NODE_POSIX);
		if (n && inode_fd_listed(n, dir, !root, name) < 0) {
			node_free(t, n, 0);
			n = NULL;
		}
		if (n) {
			n->dev = st->st_dev;
			n->ino = st->st_ino;
			n->isdir = S_ISDIR(st->st_mode);
			n->nlookup = 1;
			if (!root)
				dir->nlookup++; /* N's, until N goes */
			insert(t, n);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct node *inode_get_sysv(struct inode_table *t, int shmid, key_t key)
{
	pthread_mutex_lock(&t->lock);
	size_t b = bucket_of(t, NODE_SYSV_SEG, (uint64_t)(uint32_t)shmid, 0, 0);
	for (struct node *n = t->buckets[b]; n; n = n->hash_next) {
		if (n->kind == NODE_SYSV_SEG && n->shmid == shmid) {
			n->nlookup++;
			pthread_mutex_unlock(&t->lock);
			return n;
		}
	}
	struct node *n = node_alloc(NODE_SYSV_SEG);
	if (n) {
		n->shmid = shmid;
		n->key = key;
		n->nlookup = 1;
		insert(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

/* How a view node names its object: handle H, or descriptor FD when no
 * handle names it (NAMED 0). */
struct view_name {
	struct file_handle *h;
	int fd, named;
};

/* Name the object open as FD (adopted; -1: none) for a view node: 0, or
 * -1 (FD closed) when that fails. */
static int view_name_of(struct inode_table *t, int fd, dev_t dev, struct view_name *vn)
{
	*vn = (struct view_name){NULL, fd, 0};
	if (fd < 0)
		return 0;
	vn->named = inode_fd_name(t, fd, dev, &vn->h);
	if (vn->named < 0) {
		close(fd);
		return -1;
	}
	return 0;
}

/* Give back what of VN no node adopted. */
static void view_name_drop(struct view_name *vn)
{
	free(vn->h);
	if (vn->fd >= 0)
		close(vn->fd);
}

/* A new view node filed in the table with one reference, adopting VN's
 * handle, or its descriptor when no handle names the object (what it
 * adopts is taken out of VN); NULL when out of memory. Caller holds
 * t->lock. */
static struct node *view_node_new(struct inode_table *t, struct view_name *vn, dev_t dev,
				  ino_t ino, uint32_t variant, int shmid)
{
	struct node *n = node_alloc(NODE_VIEW);
	if (!n)
		return NULL;
	n->handle = vn->h;
	n->fd = vn->named ? -1 : vn->fd;
	vn->h = NULL;
	if (!vn->named)
		vn->fd = -1;
	n->dev = dev;
	n->ino = ino;
	n->variant = variant;
	n->shmid = shmid;
	n->nlookup = 1;
	insert(t, n);
	return n;
}

/* Whether view node N is of object (DEV, INO) named by H, as view VARIANT. */
static int view_match(const struct node *n, dev_t dev, ino_t ino, uint32_t variant,
		      const struct file_handle *h)
{
	return n->kind == NODE_VIEW && !n->retired && n->dev == dev && n->ino == ino &&
	       n->variant == variant && inode_fd_same(n, h);
}

struct node *inode_get_view(struct inode_table *t, int fd, dev_t dev, ino_t ino, uint32_t variant,
			    int shmid)
{
	struct view_name vn;
	if (view_name_of(t, fd, dev, &vn) < 0)
		return NULL;
	pthread_mutex_lock(&t->lock);
	size_t b = bucket_of(t, NODE_VIEW, (uint64_t)dev, (uint64_t)ino, variant);
	struct node *n;
	for (n = t->buckets[b]; n; n = n->hash_next)
		if (view_match(n, dev, ino, variant, vn.h))
			break;
	if (n)
		n->nlookup++;
	else
		n = view_node_new(t, &vn, dev, ino, variant, shmid);
	pthread_mutex_unlock(&t->lock);
	view_name_drop(&vn);
	return n;
}

struct node *inode_get_view_gen(struct inode_table *t, int fd, dev_t dev, ino_t ino,
				uint32_t variant, int shmid, struct view_gen *gen,
				int (*same)(const struct view_gen *current, const struct view_gen *gen),
				struct node **replaced)
{
	*replaced = NULL;
	struct view_name vn;
	if (view_name_of(t, fd, dev, &vn) < 0)
		return NULL;
	pthread_mutex_lock(&t->lock);
	size_t b = bucket_of(t, NODE_VIEW, (uint64_t)dev, (uint64_t)ino, variant);
	struct node *cur = NULL;
	for (struct node *n = t->buckets[b]; n && !cur; n = n->hash_next)
		if (n->kind == NODE_VIEW && n->view_current && n->dev == dev && n->ino == ino &&
		    n->variant == variant)
			cur = n;
	struct node *n;
	if (cur && cur->gen && inode_fd_same(cur, vn.h) && same(cur->gen, gen)) {
		n = cur;
		n->nlookup++;
	} else {
		n = view_node_new(t, &vn, dev, ino, variant, shmid);
		if (n && cur) {
			cur->view_current = 0;
			cur->nlookup++;
			*replaced = cur;
		}
		if (n) {
			n->gen = gen;
			n->view_current = 1;
		}
	}
	pthread_mutex_unlock(&t->lock);
	view_name_drop(&vn);
	return n;
}

struct node *inode_find_view(struct inode_table *t, dev_t dev, ino_t ino, uint32_t variant,
			     int (*same)(const struct view_gen *current, const struct view_gen *gen),
			     const struct view_gen *gen)
{
	pthread_mutex_lock(&t->lock);
	size_t b = bucket_of(t, NODE_VIEW, (uint64_t)dev, (uint64_t)ino, variant);
	struct node *found = NULL;
	for (struct node *n = t->buckets[b]; n && !found; n = n->hash_next)
		if (n->kind == NODE_VIEW && n->view_current && n->dev == dev && n->ino == ino &&
		    n->variant == variant)
			found = n;
	if (found && found->gen && same(found->gen, gen))
		found->nlookup++;
	else
		found = NULL;
	pthread_mutex_unlock(&t->lock);
	return found;
}

int inode_view_retire(struct inode_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	int was = n->view_current;
	n->view_current = 0;
	pthread_mutex_unlock(&t->lock);
	return was;
}

struct node *inode_view_twin(struct inode_table *t, struct node *n, int fd)
{
	struct view_name vn;
	if (view_name_of(t, fd, n->dev, &vn) < 0)
		return NULL;
	pthread_mutex_lock(&t->lock);
	struct node *twin = view_node_new(t, &vn, n->dev, n->ino, n->variant, n->shmid);
	pthread_mutex_unlock(&t->lock);
	view_name_drop(&vn);
	return twin; /* never view_current */
}

struct node *inode_new_sysv_pending(key_t key)
{
	struct node *n = node_alloc(NODE_SYSV_SEG);
	if (n) {
		n->key = key;
		n->nlookup = 1;
	}
	return n;
}

struct node *inode_new_load(struct inode_table *t)
{
	struct node *n = node_alloc(NODE_LOAD);
	if (!n)
		return NULL;
	n->nlookup = 1;
	/* Filed under its own address: found by no lookup, freed at exit with
	 * the table if the kernel never forgets it. */
	n->ino = (ino_t)(uintptr_t)n;
	pthread_mutex_lock(&t->lock);
	insert(t, n);
	pthread_mutex_unlock(&t->lock);
	return n;
}

void inode_rekey_sysv(struct inode_table *t, struct node *n, int shmid)
{
	pthread_mutex_lock(&t->lock);
	n->shmid = shmid;
	insert(t, n);
	pthread_mutex_unlock(&t->lock);
}

int inode_ref(struct inode_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	int live = n->nlookup > 0;
	if (live)
		n->nlookup++;
	pthread_mutex_unlock(&t->lock);
	return live;
}

static void table_forget(struct inode_table *t, struct node *n, uint64_t nlookup)
{
	pthread_mutex_lock(&t->lock);
	if (n->nlookup > nlookup) {
		n->nlookup -= nlookup;
		pthread_mutex_unlock(&t->lock);
		return;
	}
	n->nlookup = 0;
	/* A segment node that never got its shmid is in no bucket. */
	if (n->kind != NODE_SYSV_SEG || n->shmid >= 0)
		unlink_node(t, n);
	n->view_current = 0;
	pthread_mutex_unlock(&t->lock);
	node_free(t, n, 1);
}

void inode_forget(struct shmfs *fs, struct node *n, uint64_t nlookup)
{
	if (n == &fs->root || n == &fs->sysv_dir)
		return;
	table_forget(&fs->table, n, nlookup);
}

int inode_backing_get(struct node *n, int (*open_fd)(struct node *n, void *arg), void *arg)
{
	pthread_mutex_lock(&n->lock);
	if (n->backing_private) {
		pthread_mutex_unlock(&n->lock);
		return -EBUSY;
	}
	if (n->backing_id <= 0) {
		int fd = open_fd(n, arg);
		int id = fd < 0 ? fd : passthrough_backing_open(fd);
		if (fd >= 0)
			close(fd);
		if (id < 0) {
			pthread_mutex_unlock(&n->lock);
			return id;
		}
		n->backing_id = id;
	}
	n->backing_users++;
	int id = n->backing_id;
	pthread_mutex_unlock(&n->lock);
	return id;
}

int inode_backing_claim(struct node *n, int fd)
{
	pthread_mutex_lock(&n->lock);
	int id = n->backing_users > 0 ? -EBUSY : passthrough_backing_open(fd);
	if (id > 0) {
		n->backing_id = id;
		n->backing_users = 1;
		n->backing_private = 1;
	}
	pthread_mutex_unlock(&n->lock);
	return id;
}

int inode_backing_hold_locked(struct node *n)
{
	if (n->backing_id <= 0 || n->backing_private)
		return 0;
	n->backing_users++;
	return 1;
}

void inode_backing_put_locked(struct node *n)
{
	if (--n->backing_users == 0) {
		passthrough_backing_close(n->backing_id);
		n->backing_id = 0;
		n->backing_private = 0;
	}
}

void inode_backing_put(struct node *n)
{
	pthread_mutex_lock(&n->lock);
	inode_backing_put_locked(n);
	pthread_mutex_unlock(&n->lock);
}

void proc_path(char buf[64], int fd) { snprintf(buf, 64, "/proc/self/fd/%d", fd); }

int fd_object_dir(int fd, char *name, size_t len)
{
	char path[64], link[PATH_MAX];
	proc_path(path, fd);
	ssize_t n = readlink(path, link, sizeof link - 1);
	if (n <= 0)
		return -ESTALE;
	link[n] = '\0';
	char *slash = strrchr(link, '/');
	if (!slash || strstr(link, " (deleted)"))
		return -ESTALE;
	snprintf(name, len, "%.*s", NAME_MAX, slash + 1);
	*slash = '\0';
	int dirfd = open(link[0] ? link : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	return dirfd < 0 ? -ESTALE : dirfd;
}

void fd_object_name(int fd, char *name, size_t len)
{
	char path[64], link[PATH_MAX];
	proc_path(path, fd);
	ssize_t n = readlink(path, link, sizeof link - 1);
	name[0] = '\0';
	if (n > 0) {
		link[n] = '\0';
		const char *slash = strrchr(link, '/');
		snprintf(name, len, "%.*s", NAME_MAX, slash ? slash + 1 : link);
	}
}

void inode_object_name(struct shmfs *fs, struct node *n, char *name, size_t len)
{
	int fd = inode_fd(fs, n);
	name[0] = '\0';
	if (fd >= 0)
		fd_object_name(fd, name, len);
	inode_fd_put(fs, n, fd);
}

int inode_object_dir(struct shmfs *fs, struct node *n, char *name, size_t len)
{
	int fd = inode_fd(fs, n);
	if (fd < 0)
		return fd;
	int dirfd = fd_object_dir(fd, name, len);
	inode_fd_put(fs, n, fd);
	return dirfd;
}
