/* view.c - FITS and MRC views of the objects of SOURCE: X.fits of a stream
 * X.im.shm, .mrc and .fits of an IMOD file, NAME.fits of an object typed with
 * user.shmfs.* attributes. A view exists while its object exists and parses;
 * a real file of the same name wins. This file finds views (probing objects),
 * lists them and gives their attributes; each frame of a view is a node and a
 * snapshot file of its own (viewsnap.c), opened, read and written back by
 * viewopen.c. */
#define _GNU_SOURCE
#include "viewint.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cfshm.h"
#include "guard.h"
#include "sysv.h"
#include "imod.h"
#include "isio.h"
#include "links.h"
#include "log.h"
#include "typed.h"
#include "view.h"

void probe_free(struct probe *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	fitshdr_free(&p->fits);
	free(p->raw);
	p->raw = NULL;
	free(p->keywords);
	p->keywords = NULL;
}

/* Keywords change without a new frame: they are part of its key. */
static uint64_t keyword_hash(const struct probe *p, const unsigned char *keywords)
{
	uint64_t h = 1469598103934665603ull;
	for (size_t i = 0; keywords && i < (size_t)p->stream.nbkw * ISIO_KW_SIZE; i++)
		h = (h ^ keywords[i]) * 1099511628211ull;
	return h;
}

int probe_stream_header(struct probe *p, const unsigned char *meta, const unsigned char *keywords,
			enum isio_frame_quality q)
{
	fitshdr_free(&p->fits);
	fitshdr_init(&p->fits);
	p->kwhash = keyword_hash(p, keywords);
	int rc = view_stream_header(&p->stream, meta, keywords, q, &p->fits);
	if (rc == 0)
		p->header_len = fitshdr_size(&p->fits);
	return rc;
}

/* A stream: its metadata and keywords as they are (and its frame key);
 * with HEADER, the FITS header made from them. */
static int probe_stream(struct probe *p, const char *objname, int quiet, int header)
{
	char why[160];
	ssize_t got = pread(p->fd, p->meta, sizeof p->meta, 0);
	if (got < 0)
		return -errno;
	int rc = isio_parse(p->meta, (size_t)got, (uint64_t)p->st.st_size, &p->stream, why,
			    sizeof why);
	if (rc < 0) {
		if (!quiet)
			shm_log_once(SHM_LOG_INFO, "%s: not a valid ImageStreamIO stream, no view: %s",
				     objname, why);
		return -ENOENT;
	}
	p->format = VIEW_FITS;
	p->type = p->stream.type;
	p->nelement = p->stream.nelement;
	p->data_offset = p->stream.off_data;
	size_t kwlen = (size_t)p->stream.nbkw * ISIO_KW_SIZE;
	p->keywords = malloc(kwlen ? kwlen : 1);
	if (!p->keywords)
		return -ENOMEM;
	if (kwlen && pread(p->fd, p->keywords, kwlen, (off_t)p->stream.off_keywords) !=
			     (ssize_t)kwlen)
		return -EIO;
	p->kwhash = keyword_hash(p, p->keywords);
	return header ? probe_stream_header(p, p->meta, p->keywords, ISIO_FRAME_WHOLE) : 0;
}

/* The header and size of a stream probed without them. */
static int probe_complete(struct probe *p)
{
	int rc = p->header_len ? 0 : probe_stream_header(p, p->meta, p->keywords, ISIO_FRAME_WHOLE);
	if (rc == 0)
		rc = view_size(p->format, p->type, p->nelement, p->header_len, &(uint64_t){0},
			       &p->file_size);
	return rc;
}

static int probe_imod(struct probe *p, const char *objname, int quiet)
{
	unsigned char head[IMOD_HEADER_AREA];
	char why[160];
	uint64_t capacity = imod_name_capacity(objname);
	if (!capacity)
		return -ENOENT;
	ssize_t got = pread(p->fd, head, sizeof head, 0);
	if (got < 0)
		return -errno;
	if (imod_parse(head, (size_t)got, capacity, (uint64_t)p->st.st_size, &p->imod, why,
		       sizeof why) < 0) {
		if (!quiet)
			shm_log_once(SHM_LOG_INFO, "%s: no MRC image in this IMOD file, no view: %s",
				     objname, why);
		return -ENOENT;
	}
	p->type = p->imod.type;
	p->nelement = (uint64_t)p->imod.nx * (uint64_t)p->imod.ny * (uint64_t)p->imod.nz;
	p->data_offset = IMOD_HEADER_AREA;
	if (p->kind == VK_IMOD_MRC) {
		p->format = VIEW_MRC;
		imod_mrc_header(head, &p->imod, p->mrc);
		p->header_len = MRC_HEADER_SIZE;
		return 0;
	}
	p->format = VIEW_FITS;
	uint64_t dims[3] = {(uint64_t)p->imod.nx, (uint64_t)p->imod.ny, (uint64_t)p->imod.nz};
	int rc = fitshdr_image(&p->fits, p->type, p->imod.nz > 1 ? 3 : 2, dims);
	if (rc == 0)
		rc = fitshdr_string(&p->fits, "ORIGIN", "IMOD shared memory", objname);
	if (rc == 0)
		p->header_len = fitshdr_size(&p->fits);
	return rc;
}

/* The image of a typed object or segment, from the layout in P->typed. */
static int probe_typed_image(struct probe *p)
{
	p->format = VIEW_FITS;
	p->type = p->typed.type;
	p->nelement = p->typed.nelement;
	p->data_offset = p->typed.offset;
	int rc = fitshdr_image(&p->fits, p->type, p->typed.naxis, p->typed.dims);
	if (rc == 0)
		p->header_len = fitshdr_size(&p->fits);
	return rc;
}

static int probe_typed(struct probe *p, const char *objname, int quiet)
{
	char why[160];
	int rc = typed_read_fd(p->fd, (uint64_t)p->st.st_size, &p->typed, why, sizeof why);
	if (rc == -ENODATA)
		return -ENOENT;
	if (rc < 0) {
		if (!quiet)
			shm_log_once(SHM_LOG_INFO, "%s: its user.shmfs layout does not fit, no view: %s",
				     objname, why);
		return -ENOENT;
	}
	return probe_typed_image(p);
}

/* Probe object FD (adopted: closed by probe_free) as view KIND; a stream
 * without its header unless HEADER (probe_complete adds it). */
static int probe_fd(int fd, enum view_kind kind, const char *objname, int quiet, int header,
		    struct probe *p)
{
	memset(p, 0, sizeof *p);
	p->fd = fd;
	p->shmid = -1;
	p->kind = kind;
	fitshdr_init(&p->fits);
	if (fstat(fd, &p->st) < 0 || !S_ISREG(p->st.st_mode))
		return -ENOENT;
	int rc;
	switch (kind) {
	case VK_STREAM_FITS: rc = probe_stream(p, objname, quiet, header); break;
	case VK_IMOD_MRC:
	case VK_IMOD_FITS: rc = probe_imod(p, objname, quiet); break;
	case VK_TYPED_FITS: rc = probe_typed(p, objname, quiet); break;
	default: rc = -ENOENT;
	}
	if (rc == 0 && p->header_len)
		rc = view_size(p->format, p->type, p->nelement, p->header_len, &(uint64_t){0},
			       &p->file_size);
	return rc;
}

/* The object name and kind of each view NAME could be, in order of
 * preference. Returns how many (up to 3). */
struct candidate {
	char object[NAME_MAX + 1];
	enum view_kind kind;
};

static int candidates(const char *name, struct candidate *c)
{
	size_t len = strlen(name);
	int n = 0;
	if (len > 5 && strcmp(name + len - 5, ".fits") == 0 && len - 5 + 7 <= NAME_MAX) {
		snprintf(c[n].object, sizeof c[n].object, "%.*s" ISIO_SUFFIX, (int)(len - 5), name);
		c[n++].kind = VK_STREAM_FITS;
		snprintf(c[n].object, sizeof c[n].object, "%.*s", (int)(len - 5), name);
		c[n].kind = imod_name_capacity(c[n].object) ? VK_IMOD_FITS : VK_TYPED_FITS;
		n++;
	} else if (len > 4 && strcmp(name + len - 4, ".mrc") == 0) {
		snprintf(c[n].object, sizeof c[n].object, "%.*s", (int)(len - 4), name);
		if (imod_name_capacity(c[n].object))
			c[n++].kind = VK_IMOD_MRC;
	}
	return n;
}

/* The attributes of view KIND that come from its object: a segment
 * (SHMID, DS) or a POSIX object (OST). */
static void object_stat(enum view_kind kind, int shmid, const struct shmid_ds *ds,
			const struct stat *ost, struct stat *st)
{
	if (shmid >= 0) {
		struct sysv_seg seg = {.shmid = shmid, .ds = *ds};
		sysv_fill_stat(&seg, st);
		st->st_ino ^= (ino_t)kind << 48;
		if (kind == VK_CFITSIO_LINK) {
			/* lstat of a link: its size is the length of its text. */
			char target[SYSV_NAME_MAX + 8];
			st->st_mode = S_IFLNK | 0777;
			st->st_size = sysvview_link_text(ds->shm_perm.__key, target, sizeof target);
			st->st_blocks = 0;
		}
		return;
	}
	*st = *ost;
	st->st_mode = S_IFREG | (ost->st_mode & 07777);
	st->st_nlink = 1;
	/* Not the object's inode number: cp and friends must not take a view
	 * and its object for the same file. */
	st->st_ino = ost->st_ino ^ ((ino_t)kind << 56);
}

void view_stat(const struct probe *p, struct stat *st)
{
	object_stat(p->kind, p->shmid, &p->ds, &p->st, st);
	if (p->kind == VK_CFITSIO_LINK)
		return; /* its size is its text's (object_stat) */
	st->st_size = (off_t)p->file_size;
	st->st_blocks = (blkcnt_t)((p->file_size + 511) / 512);
	/* A stream view's time is its frame's: ls -lt, find -newer and make
	 * see frames move. */
	if (p->kind == VK_STREAM_FITS && p->stream.writetime.tv_sec)
		st->st_mtim = st->st_ctim = p->stream.writetime;
}

int view_object_stat(struct shmfs *fs, struct node *n, struct stat *st)
{
	struct stat ost;
	struct sysv_seg seg = {.shmid = n->shmid};
	if (n->shmid >= 0) {
		if (sysv_stat(&seg) < 0)
			return -ENOENT;
	} else {
		int fd = inode_fd(fs, n);
		int rc = fd < 0 ? fd
				: fstatat(fd, "", &ost, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
		inode_fd_put(fs, n, fd);
		if (rc < 0)
			return rc;
	}
	object_stat((enum view_kind)n->variant, n->shmid, &seg.ds, &ost, st);
	return 0;
}

/* view_entry with the descriptor of DIR at hand. */
static int entry_at(struct shmfs *fs, struct node *dir, int dirfd, const char *name,
		    struct fuse_entry_param *e)
{
	struct candidate c[3];
	int n = candidates(name, c);
	struct stat lst;
	if (n > 0 && c[0].kind == VK_STREAM_FITS && links_stream_link(fs, dirfd, c[0].object, &lst)) {
		int rc = links_view_entry(fs, dir, c[0].object, e);
		if (rc == 0)
			e->entry_timeout = fs->timeout;
		return rc;
	}
	for (int i = 0; i < n; i++) {
		int fd = openat(dirfd, c[i].object, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			fd_exhausted("a lookup", errno);
			return -errno;
		}
		if (fd < 0)
			continue;
		struct probe p;
		int rc = probe_fd(fd, c[i].kind, c[i].object, 0, 0, &p);
		/* The node of the frame the object holds, when it holds its
		 * snapshot: nothing more to make. */
		if (rc == 0 && viewgen_find(fs, p.st.st_dev, p.st.st_ino, &p, e) == 0) {
			probe_free(&p);
			return 0;
		}
		if (rc == 0)
			rc = probe_complete(&p);
		if (rc == 0) {
			int opath = openat(dirfd, c[i].object, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			struct stat st;
			if (opath < 0 || fstat(opath, &st) < 0 || st.st_ino != p.st.st_ino) {
				if (opath >= 0)
					close(opath);
				probe_free(&p);
				return -ENOENT; /* replaced meanwhile */
			}
			rc = viewgen_entry(fs, opath, p.st.st_dev, p.st.st_ino, &p, e);
			probe_free(&p);
			return rc;
		}
		probe_free(&p);
	}
	return -ENOENT;
}

int view_entry(struct shmfs *fs, struct node *dir, const char *name, struct fuse_entry_param *e)
{
	struct candidate c[3];
	if (candidates(name, c) == 0) /* no view's name: nothing to open */
		return -ENOENT;
	int dirfd = inode_fd(fs, dir);
	if (dirfd < 0)
		return dirfd == -ESTALE ? -ENOENT : dirfd;
	int rc = entry_at(fs, dir, dirfd, name, e);
	inode_fd_put(fs, dir, dirfd);
	return rc;
}

/* getxattrat(2) (Linux 6.13): an attribute of a name in a directory,
 * without a path through /proc (a listing asks it of every object). Its
 * number is the same on every architecture. */
#ifndef SYS_getxattrat
#define SYS_getxattrat 464
#endif
struct xattr_args_at {
	uint64_t value;
	uint32_t size;
	uint32_t flags;
};

/* Whether object NAME of directory DIRFD has a user.shmfs.type attribute:
 * one system call, no open. */
static int has_type_attr(int dirfd, const char *name)
{
	static int no_getxattrat; /* (a race on it only costs an ENOSYS) */
	char v[8];
	if (!__atomic_load_n(&no_getxattrat, __ATOMIC_RELAXED)) {
		struct xattr_args_at args = {(uint64_t)(uintptr_t)v, sizeof v, 0};
		long r = syscall(SYS_getxattrat, dirfd, name, AT_SYMLINK_NOFOLLOW, TYPED_XATTR_TYPE,
				 &args, sizeof args);
		if (r >= 0 || errno != ENOSYS)
			return r >= 0 || errno == ERANGE;
		__atomic_store_n(&no_getxattrat, 1, __ATOMIC_RELAXED);
	}
	char path[NAME_MAX + 40];
	snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dirfd, name);
	return lgetxattr(path, TYPED_XATTR_TYPE, v, sizeof v) >= 0 || errno == ERANGE;
}

/* Add view VIEW (of KIND) of object NAME of DIRFD to SNAPSHOT if it shows:
 * a real entry of that name wins, and the object must parse as KIND.
 * Returns 0, -ENOMEM, or 1 when the object cannot be opened. */
static int add_view(int dirfd, void *snapshot, const char *name, const char *view,
		    enum view_kind kind)
{
	if (strlen(view) > NAME_MAX || dirsnap_has(snapshot, view))
		return 0;
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return 1;
	struct probe p;
	int rc = 0;
	if (probe_fd(fd, kind, name, 0, 0, &p) == 0)
		rc = dirsnap_add(snapshot, view, p.st.st_ino ^ ((ino_t)kind << 56), S_IFREG);
	probe_free(&p);
	return rc;
}

int view_list(struct shmfs *fs, struct node *dir, void *snapshot)
{
	int dirfd = inode_fd(fs, dir);
	if (dirfd < 0)
		return dirfd;
	int rc = 0;
	/* Views are added behind the real entries: walk only those. Typed
	 * views join as the listing reaches their object (view_list_typed). */
	size_t count = dirsnap_count(snapshot);
	for (size_t i = 0; rc == 0 && i < count; i++) {
		const char *name = dirsnap_name(snapshot, i);
		struct stat lst;
		if (dirsnap_type(snapshot, i) == S_IFLNK && isio_is_stream_name(name) &&
		    links_stream_link(fs, dirfd, name, &lst)) {
			char view[NAME_MAX + 8];
			snprintf(view, sizeof view, "%.*s.fits", (int)(strlen(name) - 7), name);
			if (strlen(view) <= NAME_MAX && !dirsnap_has(snapshot, view))
				rc = dirsnap_add(snapshot, view,
						 lst.st_ino ^ ((ino_t)VK_STREAM_LINK << 56), S_IFLNK);
			continue;
		}
		if (dirsnap_type(snapshot, i) != S_IFREG)
			continue;
		char view[NAME_MAX + 8];
		size_t len = strlen(name);
		if (isio_is_stream_name(name)) {
			snprintf(view, sizeof view, "%.*s.fits", (int)(len - 7), name);
			rc = add_view(dirfd, snapshot, name, view, VK_STREAM_FITS);
		} else if (imod_name_capacity(name)) {
			snprintf(view, sizeof view, "%s.mrc", name);
			rc = add_view(dirfd, snapshot, name, view, VK_IMOD_MRC);
			snprintf(view, sizeof view, "%s.fits", name);
			if (rc == 0)
				rc = add_view(dirfd, snapshot, name, view, VK_IMOD_FITS);
		}
		rc = rc == 1 ? 0 : rc; /* gone meanwhile */
	}
	inode_fd_put(fs, dir, dirfd);
	return rc;
}

int view_list_typed(struct shmfs *fs, struct node *dir, void *snapshot, size_t i,
		    const struct stat *st)
{
	const char *name = dirsnap_name(snapshot, i);
	char view[NAME_MAX + 8];
	/* (streams' and IMOD files' views are there since opendir) */
	if ((st && st->st_size == 0) || isio_is_stream_name(name) || imod_name_capacity(name) ||
	    (size_t)snprintf(view, sizeof view, "%s.fits", name) > NAME_MAX ||
	    dirsnap_has(snapshot, view))
		return 0;
	int dirfd = inode_fd(fs, dir);
	int rc = dirfd >= 0 && has_type_attr(dirfd, name)
			 ? add_view(dirfd, snapshot, name, view, VK_TYPED_FITS)
			 : 0;
	inode_fd_put(fs, dir, dirfd);
	return rc == 1 ? 0 : rc;
}

/* Probe a System V view node: a typed segment, or a CFITSIO file (whose
 * bytes are read here when CONTENT is asked for, under CFITSIO's lock, so a
 * half-written file is never shown). */
static int probe_sysv(struct shmfs *fs, int shmid, enum view_kind kind, int content,
		      struct probe *p)
{
	char why[160];
	memset(p, 0, sizeof *p);
	p->fd = -1;
	p->shmid = shmid;
	p->kind = kind;
	fitshdr_init(&p->fits);
	struct sysv_seg seg = {.shmid = shmid};
	int rc = sysv_stat(&seg);
	if (rc < 0)
		return rc;
	p->ds = seg.ds;
	char segname[SYSV_NAME_MAX];
	sysv_name_format(segname, seg.ds.shm_perm.__key, seg.shmid);
	snprintf(p->name, sizeof p->name, "%s/%s", fs->sysvdir, segname);
	if (p->kind == VK_SYSV_TYPED_FITS) {
		rc = sysvview_layout(fs, shmid, seg.ds.shm_segsz, &p->typed, why, sizeof why);
		if (rc < 0)
			return -ENOENT;
		rc = probe_typed_image(p);
		if (rc == 0)
			rc = view_size(p->format, p->type, p->nelement, p->header_len,
				       &(uint64_t){0}, &p->file_size);
		return rc;
	}
	struct cfshm_slot slots[64];
	int count = cfshm_slots(cfshm_keybase(), cfshm_maxseg(), slots, 64);
	for (int i = 0; i < count; i++) {
		if (slots[i].shmid != shmid)
			continue;
		p->file_size = slots[i].fits_size;
		if (p->kind == VK_CFITSIO_LINK || !content)
			return 0;
		return cfshm_read_fits(cfshm_keybase(), cfshm_maxseg(), &slots[i], FRAME_WAIT_MS,
				       &p->raw, &p->file_size);
	}
	return -ENOENT;
}

int view_sysv_entry(struct shmfs *fs, int shmid, enum view_kind kind, ino_t ino,
		    struct fuse_entry_param *e)
{
	struct probe p;
	int rc = probe_sysv(fs, shmid, kind, 0, &p);
	if (rc == 0)
		rc = viewgen_entry(fs, -1, 0, ino, &p, e);
	probe_free(&p);
	return rc;
}

int view_object_open(struct shmfs *fs, struct node *n, int flags)
{
	return inode_open(fs, n, flags | O_NONBLOCK);
}

/* Re-probe the object of view node N, opened by its handle. */
int probe_node(struct shmfs *fs, struct node *n, int flags, int content, struct probe *p)
{
	if (n->shmid >= 0)
		return probe_sysv(fs, n->shmid, (enum view_kind)n->variant, content, p);
	int fd = view_object_open(fs, n, flags);
	if (fd < 0) {
		memset(p, 0, sizeof *p);
		p->fd = -1;
		p->shmid = -1;
		fitshdr_init(&p->fits);
		return fd;
	}
	/* The object's name (an IMOD file's says its capacity). */
	char objname[NAME_MAX + 1];
	fd_object_name(fd, objname, sizeof objname);
	int rc = probe_fd(fd, (enum view_kind)n->variant, objname, 1, 1, p);
	if (rc == 0 && p->st.st_nlink == 0)
		rc = -ESTALE; /* removed: the kernel looks the name up again */
	snprintf(p->name, sizeof p->name, "%s", objname);
	return rc;
}

int view_node_stat(struct shmfs *fs, struct node *n, struct stat *st)
{
	if (n->variant == VK_STREAM_LINK)
		return links_view_stat(fs, n, st);
	if (viewgen_stat(fs, n, st))
		return 0;
	struct probe p;
	int rc = probe_node(fs, n, O_RDONLY, 0, &p);
	if (rc == 0 || rc == -ESTALE)
		view_stat(&p, st);
	probe_free(&p);
	return rc;
}

void view_getattr(fuse_req_t req, struct node *n)
{
	struct probe p;
	struct stat st;
	if (n->variant == VK_STREAM_LINK) {
		int rc = links_view_stat(shmfs_of(req), n, &st);
		return (void)(rc < 0 ? fuse_reply_err(req, -rc) : fuse_reply_attr(req, &st, 0));
	}
	if (viewgen_stat(shmfs_of(req), n, &st))
		return (void)fuse_reply_attr(req, &st, 0);
	int rc = probe_node(shmfs_of(req), n, O_RDONLY, 0, &p);
	/* An object removed while its name is cached still has attributes
	 * (fstat of an open view needs them); OPEN answers ESTALE, and the
	 * kernel looks the name up again. */
	if (rc == 0 || rc == -ESTALE)
		view_stat(&p, &st);
	probe_free(&p);
	if (rc < 0 && rc != -ESTALE)
		return (void)fuse_reply_err(req, -rc);
	fuse_reply_attr(req, &st, 0);
}
