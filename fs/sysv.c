/* sysv.c - the System V directory: one file per segment of the daemon's IPC
 * namespace, named by key (0x0000162e) or, for IPC_PRIVATE, by shmid
 * (id-32769). A segment's size is fixed when it is created, as a block
 * device's is, so creating one by name is a two-step affair: CREATE makes a
 * pending node that stages what is written (in a memfd), and the segment is
 * made when its size becomes known: at the first truncate, or at close
 * (flush) with the size of what was written. */
#define _GNU_SOURCE
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "fsload.h"
#include "fsview.h"
#include "passthrough.h"
#include "sysv.h"

/* A segment being created. Lives in the pending list of the mount until the
 * segment exists or the last handle on an empty one goes away. */
struct sysv_pending {
	struct shmfs *fs;
	struct node *next; /* fs->pending_lock */
	int memfd;         /* staged bytes; node->lock */
	off_t size;        /* bytes written so far; node->lock */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	int open_count; /* node->lock */
};

static void pending_unlist(struct shmfs *fs, struct node *n)
{
	pthread_mutex_lock(&fs->pending_lock);
	for (struct node **pp = &fs->pending_head; *pp; pp = &(*pp)->pending->next) {
		if (*pp == n) {
			*pp = n->pending->next;
			break;
		}
	}
	pthread_mutex_unlock(&fs->pending_lock);
}

static void pending_free(struct node *n)
{
	struct sysv_pending *p = n->pending;
	if (!p)
		return;
	pending_unlist(p->fs, n);
	if (p->memfd >= 0)
		close(p->memfd);
	free(p);
	n->pending = NULL;
}

void sysv_node_free(struct node *n) { pending_free(n); }

/* The pending node for KEY with a new kernel reference, or NULL. */
static struct node *pending_find(struct shmfs *fs, key_t key)
{
	struct node *found = NULL;
	pthread_mutex_lock(&fs->pending_lock);
	for (struct node *n = fs->pending_head; n; n = n->pending->next)
		if (n->key == key && inode_ref(&fs->table, n)) {
			found = n;
			break;
		}
	pthread_mutex_unlock(&fs->pending_lock);
	return found;
}

static void pending_stat(struct node *n, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_mode = S_IFREG | (n->pending->mode & 0777);
	st->st_nlink = 1;
	st->st_uid = n->pending->uid;
	st->st_gid = n->pending->gid;
	st->st_size = n->pending->size;
	st->st_blksize = 4096;
	st->st_ino = sysv_ino(-1) ^ (ino_t)n->key;
}

void sysv_dir_stat(struct shmfs *fs, struct stat *st)
{
	memset(st, 0, sizeof *st);
	/* Anyone may create segments (as shmget allows); only an owner may
	 * remove one, which is what the sticky bit says. */
	st->st_mode = S_IFDIR | 01777;
	st->st_nlink = 2;
	st->st_ino = sysv_ino(-1);
	st->st_atim = st->st_mtim = st->st_ctim = fs->started;
}

/* Whether the caller of REQ is in group GID (primary or supplementary). */
static int caller_in_group(fuse_req_t req, gid_t gid)
{
	if (fuse_req_ctx(req)->gid == gid)
		return 1;
	gid_t groups[64];
	int n = fuse_req_getgroups(req, 64, groups);
	for (int i = 0; i < n && i < 64; i++)
		if (groups[i] == gid)
			return 1;
	return 0;
}

/* Attributes of a segment as seen by the caller. System V counts the
 * creator as an owner too; the kernel's permission check (default_permissions)
 * knows one owner, so a creator who is no longer the owner is shown itself as
 * the owner (and a member of the creator's group, by its primary group or a
 * supplementary one, that group). Root, who
 * passes every check anyway, sees shm_perm as it is. The kernel keeps one
 * set of attributes per inode: *TIMEOUT says how long these may be cached,
 * -o timeout when every caller sees the same (the creator is the owner, its
 * group the group: nearly always), as for POSIX objects, else 0, so that
 * each user gets its own view. KNOWN: the segment as just read (a
 * lookup's), or NULL. */
static int seg_stat(fuse_req_t req, struct node *n, struct stat *st, const struct sysv_seg *known,
		    double *timeout)
{
	*timeout = 0;
	pthread_mutex_lock(&n->lock);
	if (n->pending) {
		pending_stat(n, st);
		pthread_mutex_unlock(&n->lock);
		return 0;
	}
	struct sysv_seg seg = {.shmid = n->shmid};
	pthread_mutex_unlock(&n->lock);
	int rc = known && known->shmid == seg.shmid ? 0 : sysv_stat(&seg);
	if (rc < 0)
		return rc;
	if (known && known->shmid == seg.shmid)
		seg = *known;
	sysv_fill_stat(&seg, st);
	if (seg.ds.shm_perm.cuid == seg.ds.shm_perm.uid && seg.ds.shm_perm.cgid == seg.ds.shm_perm.gid)
		*timeout = shmfs_of(req)->timeout;
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	if (ctx->uid != 0 && ctx->uid == seg.ds.shm_perm.cuid)
		st->st_uid = ctx->uid;
	if (ctx->uid != 0 && st->st_uid != ctx->uid && seg.ds.shm_perm.cgid != st->st_gid &&
	    caller_in_group(req, seg.ds.shm_perm.cgid))
		st->st_gid = seg.ds.shm_perm.cgid;
	return 0;
}

/* Fill E for node N (KNOWN: its segment as just read, or NULL), which holds
 * one kernel reference for it; on failure that reference is dropped. */
static int seg_entry(fuse_req_t req, struct node *n, struct fuse_entry_param *e,
		     const struct sysv_seg *known)
{
	struct shmfs *fs = shmfs_of(req);
	memset(e, 0, sizeof *e);
	e->ino = inode_number(fs, n);
	e->entry_timeout = fs->timeout;
	int rc = seg_stat(req, n, &e->attr, known, &e->attr_timeout);
	if (rc < 0)
		inode_forget(fs, n, 1);
	return rc;
}

int sysv_entry(fuse_req_t req, const char *name, struct fuse_entry_param *e)
{
	struct shmfs *fs = shmfs_of(req);
	key_t key = 0;
	if (sysv_name_parse(name, &key, NULL) == SYSV_NAME_INVALID)
		return -ENOENT;
	struct node *n = key ? pending_find(fs, key) : NULL;
	if (n)
		return seg_entry(req, n, e, NULL);
	struct sysv_seg seg;
	int rc = sysv_lookup(name, &seg);
	if (rc < 0)
		return rc;
	n = inode_get_sysv(&fs->table, seg.shmid, seg.ds.shm_perm.__key);
	if (!n)
		return -ENOMEM;
	return seg_entry(req, n, e, &seg);
}

void sysv_dir_lookup(fuse_req_t req, const char *name)
{
	struct fuse_entry_param e;
	if (load_lookup(req, &shmfs_of(req)->sysv_dir, name)) /* a writable open's own view */
		return;
	int rc = sysv_entry(req, name, &e);
	if (rc == -ENOENT)
		rc = sysvview_entry(shmfs_of(req), name, &e);
	if (rc == -ENOENT) { /* never cached: new segments show at once */
		memset(&e, 0, sizeof e);
		rc = 0;
	}
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	fuse_reply_entry(req, &e);
}

void sysv_seg_getattr(fuse_req_t req, struct node *n)
{
	struct stat st;
	double timeout;
	int rc = seg_stat(req, n, &st, NULL, &timeout);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	fuse_reply_attr(req, &st, timeout);
}

/* Make the segment of a pending node, SIZE bytes, holding what was staged.
 * Caller holds n->lock. Returns 0 or -errno (the node stays pending). */
static int materialize(struct node *n, off_t size)
{
	struct sysv_pending *p = n->pending;
	char name[SYSV_NAME_MAX];
	sysv_name_format(name, n->key, -1);
	if (size <= 0) {
		shm_log_once(SHM_LOG_WARN, "%s/%s: a segment needs a size of at least one byte",
			     p->fs->sysvdir, name);
		return -EINVAL;
	}
	int shmid = sysv_create(n->key, (size_t)size, p->mode, p->uid, p->gid);
	if (shmid < 0) {
		shm_log(SHM_LOG_WARN, "%s/%s: cannot create a segment of %lld bytes: %s",
			p->fs->sysvdir, name, (long long)size, strerror(-shmid));
		return shmid;
	}
	off_t staged = p->size < size ? p->size : size;
	if (staged > 0) {
		void *addr;
		size_t segsz;
		int rc = sysv_attach(shmid, 1, &addr, &segsz);
		ssize_t got = rc < 0 ? rc : pread(p->memfd, addr, (size_t)staged, 0);
		if (rc == 0)
			sysv_detach(addr);
		if (got != staged) {
			sysv_remove(shmid);
			return rc < 0 ? rc : -EIO;
		}
	}
	struct shmfs *fs = p->fs;
	pending_free(n);
	inode_rekey_sysv(&fs->table, n, shmid);
	return 0;
}

static int caller_is_owner(fuse_req_t req, int shmid)
{
	struct sysv_seg seg = {.shmid = shmid};
	int rc = sysv_stat(&seg);
	if (rc < 0)
		return rc;
	return sysv_is_owner(&seg.ds, fuse_req_ctx(req)->uid) ? 0 : -EPERM;
}

void sysv_seg_setattr(fuse_req_t req, struct node *n, struct stat *attr, int to_set,
		      struct fuse_file_info *fi)
{
	(void)fi;
	int rc = 0;
	mode_t mode = (to_set & FUSE_SET_ATTR_MODE) ? attr->st_mode & 0777 : (mode_t)-1;
	uid_t uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

	pthread_mutex_lock(&n->lock);
	if (n->pending) {
		struct sysv_pending *p = n->pending;
		if (mode != (mode_t)-1)
			p->mode = mode;
		if (uid != (uid_t)-1)
			p->uid = uid;
		if (gid != (gid_t)-1)
			p->gid = gid;
		if (to_set & FUSE_SET_ATTR_SIZE)
			rc = materialize(n, attr->st_size);
	} else {
		int shmid = n->shmid;
		if (mode != (mode_t)-1 || uid != (uid_t)-1 || gid != (gid_t)-1) {
			rc = caller_is_owner(req, shmid);
			if (rc == 0)
				rc = sysv_set(shmid, mode, uid, gid);
		}
		if (rc == 0 && (to_set & FUSE_SET_ATTR_SIZE)) {
			struct sysv_seg seg = {.shmid = shmid};
			rc = sysv_stat(&seg);
			if (rc == 0 && (size_t)attr->st_size != seg.ds.shm_segsz) {
				char name[SYSV_NAME_MAX];
				sysv_name_format(name, n->key, shmid);
				shm_log_once(SHM_LOG_WARN,
					     "%s/%s: a System V segment cannot be resized "
					     "(it has %zu bytes)",
					     shmfs_of(req)->sysvdir, name, (size_t)seg.ds.shm_segsz);
				rc = -EINVAL;
			}
		}
		/* Times belong to the kernel (shm_atime, shm_ctime): a request to
		 * set them (cp -p, touch) is accepted and has no effect. */
	}
	pthread_mutex_unlock(&n->lock);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	sysv_seg_getattr(req, n);
}

static int want_of(int flags)
{
	switch (flags & O_ACCMODE) {
	case O_RDONLY: return 4;
	case O_WRONLY: return 2;
	default: return 6;
	}
}

/* The kernel's own access rule, applied by the daemon too (it runs as root). */
static int check_access(fuse_req_t req, const struct shmid_ds *ds, int want)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[64];
	int ng = fuse_req_getgroups(req, 64, groups);
	if (ng < 0 || ng > 64)
		ng = 0;
	return sysv_access(ds, ctx->uid, ctx->gid, groups, ng, want);
}

/* The backing file of a passthrough open: the segment's own shmem file. The
 * daemon keeps neither the attachment made to find it nor the descriptor. */
static int segment_file(struct node *n, void *arg)
{
	(void)arg;
	return sysv_open_file(n->shmid);
}

static int handle_ready(struct handle *h);

static void handle_close(struct shmfs *fs, struct open_item *item)
{
	sysv_seg_release(fs, (struct handle *)item);
}

static int open_handle(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	struct handle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->node = n;
	h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	int rc = pmap_init(&h->map, -1), pending = 0, backing_id = 0;
	if (rc < 0) {
		free(h);
		return rc;
	}
	pthread_mutex_lock(&n->lock);
	if (n->pending) {
		n->pending->open_count++;
		pending = 1;
	} else {
		struct sysv_seg seg = {.shmid = n->shmid};
		rc = sysv_stat(&seg);
		if (rc == 0)
			rc = check_access(req, &seg.ds, want_of(fi->flags));
	}
	pthread_mutex_unlock(&n->lock);
	if (rc == 0 && !pending) {
		if (passthrough_enabled()) {
			backing_id = inode_backing_get(n, segment_file, NULL);
			if (backing_id > 0)
				h->passthrough = 1;
			else
				shm_log_once(SHM_LOG_WARN, "passthrough refused for a segment (%s): "
							   "served by the daemon", strerror(-backing_id));
		}
		/* Read-only opens are served by the kernel alone. Writable ones map
		 * through the kernel too, but read and write through the daemon:
		 * a passthrough write past the end would grow the segment's shmem
		 * file behind shm_segsz, and a segment's size is fixed. */
		if (!h->passthrough || h->writable)
			rc = handle_ready(h);
		if (rc < 0 && h->passthrough)
			inode_backing_put(n);
	}
	if (rc < 0) {
		pmap_destroy(&h->map);
		free(h);
		return rc;
	}
	/* O_TRUNC is ignored: a segment's size is fixed. */
	open_track(shmfs_of(req), &h->item, handle_close);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 0;
	fi->direct_io = !h->passthrough || h->writable;
	if (h->passthrough)
		passthrough_arm_reply(backing_id, 0);
	return 0;
}

void sysv_seg_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	int rc = open_handle(req, n, fi);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	if (fuse_reply_open(req, fi) == -ENOENT)
		sysv_seg_release(shmfs_of(req), (struct handle *)(uintptr_t)fi->fh);
}

void sysv_seg_create(fuse_req_t req, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	struct shmfs *fs = shmfs_of(req);
	key_t key = 0;
	if (sysv_name_parse(name, &key, NULL) != SYSV_NAME_KEY) {
		shm_log_once(SHM_LOG_WARN, "%s/%s: cannot create: %s", fs->sysvdir, name,
			     sysv_name_rule);
		return (void)fuse_reply_err(req, EINVAL);
	}
	struct node *n = pending_find(fs, key);
	struct sysv_seg seg;
	if (!n && sysv_lookup(name, &seg) == 0) {
		n = inode_get_sysv(&fs->table, seg.shmid, key);
		if (!n)
			return (void)fuse_reply_err(req, ENOMEM);
	}
	if (n && (fi->flags & O_EXCL)) {
		inode_forget(fs, n, 1);
		return (void)fuse_reply_err(req, EEXIST);
	}
	if (!n) {
		struct sysv_pending *p = calloc(1, sizeof *p);
		n = inode_new_sysv_pending(key);
		if (p)
			p->memfd = memfd_create("shmfs-staging", MFD_CLOEXEC);
		if (!n || !p || p->memfd < 0) {
			int err = (p && p->memfd < 0) ? errno : ENOMEM;
			if (p && p->memfd >= 0)
				close(p->memfd);
			free(p);
			free(n);
			return (void)fuse_reply_err(req, err);
		}
		const struct fuse_ctx *ctx = fuse_req_ctx(req);
		p->fs = fs;
		p->mode = mode & 0777;
		p->uid = ctx->uid;
		p->gid = ctx->gid;
		n->pending = p;
		pthread_mutex_lock(&fs->pending_lock);
		p->next = fs->pending_head;
		fs->pending_head = n;
		pthread_mutex_unlock(&fs->pending_lock);
	}
	struct fuse_entry_param e;
	int rc = seg_entry(req, n, &e, NULL);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	rc = open_handle(req, n, fi);
	if (rc < 0) {
		inode_forget(fs, n, 1);
		return (void)fuse_reply_err(req, -rc);
	}
	if (fuse_reply_create(req, &e, fi) == -ENOENT) {
		sysv_seg_release(fs, (struct handle *)(uintptr_t)fi->fh);
		inode_forget(fs, n, 1);
	}
}

/* Get a handle ready for the daemon's own reads and writes: a descriptor of
 * the segment's shmem file (served like a POSIX object, see pmap.h), or, if
 * the daemon may not open that (no CAP_SYS_ADMIN), an attachment. Returns 0,
 * 1 while the segment is still being created, or -errno. */
static int handle_ready(struct handle *h)
{
	struct node *n = h->node;
	int rc = 0;
	pthread_mutex_lock(&n->lock);
	if (n->pending) {
		rc = 1;
	} else if (h->map.fd < 0 && !h->shm_addr) {
		struct sysv_seg seg = {.shmid = n->shmid};
		rc = sysv_stat(&seg);
		int fd = rc < 0 ? rc : fd_keep(sysv_open_file(n->shmid), "an open of a segment");
		if (fd >= 0) {
			h->map.fd = fd;
			h->shm_size = seg.ds.shm_segsz;
		} else if (rc == 0) {
			rc = sysv_attach(n->shmid, h->writable, &h->shm_addr, &h->shm_size);
		}
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

/* Bytes of a pending segment staged so far. */
static void read_staged(fuse_req_t req, struct node *n, size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	pthread_mutex_lock(&n->lock);
	ssize_t r = n->pending ? pread(n->pending->memfd, buf, size, off) : 0;
	pthread_mutex_unlock(&n->lock);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

void sysv_seg_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	int rc = handle_ready(h);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	if (rc == 1)
		return read_staged(req, h->node, size, off);
	if (off < 0 || (size_t)off >= h->shm_size)
		return (void)fuse_reply_buf(req, NULL, 0);
	size_t n = h->shm_size - (size_t)off;
	if (size > n)
		size = n;
	if (h->map.fd >= 0)
		return posix_read(req, h, size, off);
	/* The attachment stays until the reply returns: RELEASE waits for
	 * the lock (see pmap_destroy). */
	pthread_rwlock_rdlock(&h->map.lock);
	fuse_reply_buf(req, (const char *)h->shm_addr + off, size);
	pthread_rwlock_unlock(&h->map.lock);
}

void sysv_seg_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	int rc = handle_ready(h);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	if (rc == 1) {
		pthread_mutex_lock(&h->node->lock);
		struct sysv_pending *p = h->node->pending;
		ssize_t w = p ? pwrite(p->memfd, buf, size, off) : -1;
		int err = p ? errno : EAGAIN;
		if (p && w > 0 && off + w > p->size)
			p->size = off + w;
		pthread_mutex_unlock(&h->node->lock);
		if (!p) /* materialized meanwhile: write into the segment */
			return sysv_seg_write(req, h, buf, size, off);
		if (w < 0)
			return (void)fuse_reply_err(req, err);
		return (void)fuse_reply_write(req, (size_t)w);
	}
	if (off < 0 || (size_t)off >= h->shm_size) {
		char name[SYSV_NAME_MAX];
		sysv_name_format(name, h->node->key, h->node->shmid);
		shm_log_once(SHM_LOG_WARN, "%s/%s: write past the end of a %zu-byte segment",
			     shmfs_of(req)->sysvdir, name, h->shm_size);
		return (void)fuse_reply_err(req, ENOSPC);
	}
	size_t n = h->shm_size - (size_t)off;
	if (size > n)
		size = n; /* the shmem file itself would grow: stop at the end */
	if (h->map.fd >= 0)
		return posix_write(req, h, buf, size, off);
	memcpy((char *)h->shm_addr + off, buf, size);
	fuse_reply_write(req, size);
}

void sysv_seg_fallocate(fuse_req_t req, struct handle *h, int mode, off_t off, off_t len)
{
	int rc = handle_ready(h);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	if (rc == 1 || h->map.fd < 0) /* still being created, or attached only */
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	/* Within the segment only: its shmem file must not grow past shm_segsz. */
	if (off < 0 || len <= 0 || (uint64_t)off + (uint64_t)len > h->shm_size) {
		char name[SYSV_NAME_MAX];
		sysv_name_format(name, h->node->key, h->node->shmid);
		shm_log_once(SHM_LOG_WARN, "%s/%s: fallocate past the end of a %zu-byte segment",
			     shmfs_of(req)->sysvdir, name, h->shm_size);
		return (void)fuse_reply_err(req, ENOSPC);
	}
	posix_falloc(req, h, mode, off, len);
}

int sysv_seg_flush(struct handle *h)
{
	struct node *n = h->node;
	int rc = 0;
	pthread_mutex_lock(&n->lock);
	if (n->pending && n->pending->size > 0)
		rc = materialize(n, n->pending->size);
	pthread_mutex_unlock(&n->lock);
	return rc;
}

void sysv_seg_release(struct shmfs *fs, struct handle *h)
{
	struct node *n = h->node;
	open_untrack(fs, &h->item);
	pmap_destroy(&h->map); /* waits for a read still replying */
	sysv_detach(h->shm_addr);
	if (h->passthrough)
		inode_backing_put(n);
	pthread_mutex_lock(&n->lock);
	/* An empty pending segment (touch) vanishes with its last handle. */
	if (n->pending && --n->pending->open_count == 0 && n->pending->size == 0)
		pending_unlist(fs, n);
	pthread_mutex_unlock(&n->lock);
	free(h);
}

void sysv_dir_unlink(fuse_req_t req, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	key_t key = 0;
	if (sysv_name_parse(name, &key, NULL) == SYSV_NAME_INVALID)
		return (void)fuse_reply_err(req, ENOENT);
	struct node *n = key ? pending_find(fs, key) : NULL;
	if (n) {
		pthread_mutex_lock(&n->lock);
		if (n->pending)
			pending_unlist(fs, n);
		pthread_mutex_unlock(&n->lock);
		inode_forget(fs, n, 1);
		return (void)fuse_reply_err(req, 0);
	}
	struct sysv_seg seg;
	int rc = sysv_lookup(name, &seg);
	if (rc == 0 && !sysv_is_owner(&seg.ds, fuse_req_ctx(req)->uid))
		rc = -EPERM;
	if (rc == 0)
		rc = sysv_remove(seg.shmid);
	if (rc == 0)
		sysvview_forget_segment(fs, seg.shmid);
	fuse_reply_err(req, -rc);
}

struct list_ctx {
	void *snapshot;
};

static int list_one(const struct sysv_seg *seg, void *arg)
{
	char name[SYSV_NAME_MAX];
	sysv_name_format(name, seg->ds.shm_perm.__key, seg->shmid);
	return dirsnap_add(((struct list_ctx *)arg)->snapshot, name, sysv_ino(seg->shmid), S_IFREG);
}

int sysv_list(void *snapshot)
{
	struct list_ctx lc = {snapshot};
	return sysv_foreach(list_one, &lc);
}
