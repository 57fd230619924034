/* load.c - loading by copying: `cp image.fits MOUNT/X.fits` makes or updates
 * stream X, `cp vol.mrc MOUNT/IMODShrMem_KB_N.mrc` fills that IMOD file. The
 * bytes written are staged in a memfd; when the copy is closed (FLUSH) they
 * are handed to core/load.c, which changes SOURCE all at once or not at all,
 * and the close returns its error. Until then nothing in SOURCE changes. */
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

#include "fsview.h"
#include "imod.h"
#include "isio.h"
#include "load.h"
#include "log.h"

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
	int dirty;               /* lock: written since the last load */
	struct timespec mtime;   /* lock */
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
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	/* What is created belongs to the one who copied (root's stays root's). */
	s->uid = ctx->uid ? ctx->uid : (uid_t)-1;
	s->gid = ctx->uid || ctx->gid ? ctx->gid : (gid_t)-1;
	/* Opening with O_CREAT or O_TRUNC says "the file is what I write":
	 * closing without writing loads an empty file, which is refused. */
	s->dirty = 1;
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	return s;
}

int load_from_fd(int dirfd, const char *object, int imod, int fd, uid_t uid, gid_t gid,
		 const char *name)
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
		struct load_image img;
		rc = load_fits_decode(bytes, len, &img, why, sizeof why);
		if (rc == 0) {
			rc = load_stream(dirfd, object, &img, uid, gid, &did, why, sizeof why);
			load_image_free(&img);
		}
	}
	if (bytes)
		munmap(bytes, len);
	if (rc < 0) {
		shm_log(SHM_LOG_WARN, "%s: not loaded, %s left as it was: %s", name,
			imod ? object : "the stream", why[0] ? why : strerror(-rc));
		/* The errors a copy can be told about; the log has the rest. */
		if (rc != -EINVAL && rc != -EIO && rc != -ENOSPC && rc != -ENOMEM &&
		    rc != -EACCES && rc != -EPERM)
			rc = -EIO;
		return rc;
	}
	static const char *const what[] = {"created", "updated", "replaced"};
	shm_log(SHM_LOG_INFO, "%s: loaded: %s %s%s %s", name, imod ? "IMOD file" : "stream",
		object, imod ? "" : ISIO_SUFFIX, (unsigned)did < 3 ? what[did] : "loaded");
	return 0;
}

/* Hand the staged bytes to the loader. Caller holds s->lock. */
static int stage_load(struct load_stage *s)
{
	int rc = load_from_fd(s->dirfd, s->object, s->imod, s->memfd, s->uid, s->gid, s->name);
	/* Tried: the same bytes would fail the same way at the next close. */
	s->dirty = 0;
	return rc;
}

static void load_close(struct shmfs *fs, struct open_item *item)
{
	load_release(fs, (struct handle *)item);
}

/* A handle on stage S (its reference is the handle's). */
static int handle_attach(fuse_req_t req, struct node *n, struct load_stage *s,
			 struct fuse_file_info *fi)
{
	struct handle *h = calloc(1, sizeof *h);
	if (!h)
		return -ENOMEM;
	h->node = n;
	h->load = s;
	h->writable = 1;
	h->map.fd = -1;
	open_track(shmfs_of(req), &h->item, load_close);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	return 0;
}

void load_create(fuse_req_t req, struct node *parent, const char *name, const char *object,
		 int imod, mode_t mode, struct fuse_file_info *fi)
{
	(void)mode; /* streams are made 0666, as ImageStreamIO makes them */
	struct shmfs *fs = shmfs_of(req);
	struct load_stage *s = stage_new(req, parent->fd, name, object, imod);
	struct node *n = s ? inode_new_load(&fs->table) : NULL;
	if (!n) {
		if (s)
			stage_put(s);
		return (void)fuse_reply_err(req, ENOMEM);
	}
	s->refs++; /* one for the node, one for the handle */
	n->stage = s;
	int rc = handle_attach(req, n, s, fi);
	if (rc < 0) {
		stage_put(s);
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

int load_open_trunc(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	char object[NAME_MAX + 1], objpath[PATH_MAX], path[64];
	fd_object_name(n->fd, object, sizeof object);
	/* The object's directory, from the path of its descriptor. */
	proc_path(path, n->fd);
	ssize_t len = readlink(path, objpath, sizeof objpath - 1);
	if (len <= 0)
		return -ESTALE;
	objpath[len] = '\0';
	char *slash = strrchr(objpath, '/');
	if (!slash || strstr(objpath, " (deleted)"))
		return -ESTALE;
	*slash = '\0';
	int dirfd = open(objpath[0] ? objpath : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -ESTALE;
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
	close(dirfd);
	if (!s)
		return -ENOMEM;
	int rc = handle_attach(req, n, s, fi);
	if (rc < 0) {
		stage_put(s);
		return rc;
	}
	if (fuse_reply_open(req, fi) == -ENOENT)
		load_release(shmfs_of(req), (struct handle *)(uintptr_t)fi->fh);
	return 0;
}

void load_stat(struct node *n, struct stat *st)
{
	struct load_stage *s = n->stage;
	struct stat m;
	memset(st, 0, sizeof *st);
	st->st_ino = (ino_t)(uintptr_t)n;
	st->st_mode = S_IFREG | 0666;
	st->st_nlink = 1;
	st->st_uid = s->uid == (uid_t)-1 ? 0 : s->uid;
	st->st_gid = s->gid == (gid_t)-1 ? 0 : s->gid;
	if (fstat(s->memfd, &m) == 0) {
		st->st_size = m.st_size;
		st->st_blocks = m.st_blocks;
	}
	st->st_blksize = 4096;
	pthread_mutex_lock(&s->lock);
	st->st_mtim = st->st_ctim = st->st_atim = s->mtime;
	pthread_mutex_unlock(&s->lock);
}

void load_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	ssize_t r = pread(h->load->memfd, buf, size, off);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

void load_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct load_stage *s = h->load;
	ssize_t w = pwrite(s->memfd, buf, size, off);
	if (w < 0)
		return (void)fuse_reply_err(req, errno);
	pthread_mutex_lock(&s->lock);
	s->dirty = 1;
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	pthread_mutex_unlock(&s->lock);
	fuse_reply_write(req, (size_t)w);
}

int load_truncate(struct handle *h, off_t size)
{
	struct load_stage *s = h->load;
	if (ftruncate(s->memfd, size) < 0)
		return -errno;
	pthread_mutex_lock(&s->lock);
	s->dirty = 1;
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int load_flush(struct handle *h)
{
	struct load_stage *s = h->load;
	pthread_mutex_lock(&s->lock);
	int rc = s->dirty ? stage_load(s) : 0;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void load_release(struct shmfs *fs, struct handle *h)
{
	open_untrack(fs, &h->item);
	/* A last close whose FLUSH never came (the mount going away): load
	 * what was written; nobody is left to be told of an error but the log. */
	load_flush(h);
	stage_put(h->load);
	free(h);
}

void load_node_free(struct node *n)
{
	if (n->stage)
		stage_put(n->stage);
	n->stage = NULL;
}
