/* view.c - FITS and MRC views of the objects of SOURCE: X.fits of a stream
 * X.im.shm, .mrc and .fits of an IMOD file, NAME.fits of an object typed with
 * user.shmfs.* attributes. A view exists while its object exists and parses;
 * a real file of the same name wins. Opening a view builds its whole file
 * image in memory (core/view.h): a reader gets one consistent frame from open
 * to close. Writes land in that image (header bytes only where they stay the
 * same); when a written view is closed its pixels go back to the object, for a
 * stream as one frame (write flag, pixels, write time, CNT0 + 1, semaphores
 * posted). */
#define _GNU_SOURCE
#include "fsview.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
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

#define FRAME_WAIT_MS 500 /* how long a reader waits for a busy writer */

/* What a view is made of, found by probing its object. */
struct probe {
	enum view_kind kind;
	int fd;                /* the object, opened for reading (or writing) */
	struct stat st;
	enum view_format format;
	enum elem_type type;
	uint64_t nelement;
	uint64_t data_offset;  /* the pixels in the object */
	struct isio_stream stream;
	struct imod_image imod;
	struct typed_layout typed;
	struct fits_header fits;   /* FITS header */
	char name[NAME_MAX + 1];   /* the object's name, for the log */
	int shmid;                 /* System V views: the segment, else -1 */
	struct shmid_ds ds;
	unsigned char *raw;        /* CFITSIO views: the file's bytes, as they are */
	unsigned char mrc[MRC_HEADER_SIZE];
	uint64_t header_len;
	uint64_t file_size;
};

struct view_state {
	struct probe probe;
	struct view_image image;
	int data_fd;           /* where the pixels are read and written */
	void *map;             /* a stream, mapped shared: its metadata and
				* semaphores (pixels go through data_fd) */
	size_t map_len;
	int dirty;
	int retry_header;      /* build_image's EAGAIN was the header's */
};

static void probe_free(struct probe *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
	fitshdr_free(&p->fits);
	free(p->raw);
	p->raw = NULL;
}

/* The FITS header of a stream, from its metadata and keywords as they are. */
static int stream_header(struct probe *p, const unsigned char *meta)
{
	const struct isio_stream *s = &p->stream;
	size_t kwlen = (size_t)s->nbkw * ISIO_KW_SIZE;
	unsigned char *kw = kwlen ? malloc(kwlen) : NULL;
	if (kwlen && !kw)
		return -ENOMEM;
	if (kwlen && pread(p->fd, kw, kwlen, (off_t)s->off_keywords) != (ssize_t)kwlen) {
		free(kw);
		return -EIO;
	}
	fitshdr_free(&p->fits);
	fitshdr_init(&p->fits);
	int rc = view_stream_header(s, meta, kw, &p->fits);
	free(kw);
	if (rc == 0)
		p->header_len = fitshdr_size(&p->fits);
	return rc;
}

static int probe_stream(struct probe *p, const char *objname, int quiet)
{
	unsigned char meta[ISIO_META_SIZE];
	char why[160];
	ssize_t got = pread(p->fd, meta, sizeof meta, 0);
	if (got < 0)
		return -errno;
	int rc = isio_parse(meta, (size_t)got, (uint64_t)p->st.st_size, &p->stream, why, sizeof why);
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
	return stream_header(p, meta);
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

/* Probe object FD (adopted: closed by probe_free) as view KIND. */
static int probe_fd(int fd, enum view_kind kind, const char *objname, int quiet, struct probe *p)
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
	case VK_STREAM_FITS: rc = probe_stream(p, objname, quiet); break;
	case VK_IMOD_MRC:
	case VK_IMOD_FITS: rc = probe_imod(p, objname, quiet); break;
	case VK_TYPED_FITS: rc = probe_typed(p, objname, quiet); break;
	default: rc = -ENOENT;
	}
	if (rc == 0)
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

static void view_stat(const struct probe *p, struct stat *st)
{
	if (p->shmid >= 0) {
		struct sysv_seg seg = {.shmid = p->shmid, .ds = p->ds};
		sysv_fill_stat(&seg, st);
		st->st_size = (off_t)p->file_size;
		st->st_blocks = (blkcnt_t)((p->file_size + 511) / 512);
		st->st_ino ^= (ino_t)p->kind << 48;
		if (p->kind == VK_CFITSIO_LINK) {
			/* lstat of a link: its size is the length of its text. */
			char target[SYSV_NAME_MAX + 8];
			st->st_mode = S_IFLNK | 0777;
			st->st_size = sysvview_link_text(p->ds.shm_perm.__key, target, sizeof target);
			st->st_blocks = 0;
		}
		return;
	}
	*st = p->st;
	st->st_mode = S_IFREG | (p->st.st_mode & 07777);
	st->st_nlink = 1;
	st->st_size = (off_t)p->file_size;
	st->st_blocks = (blkcnt_t)((p->file_size + 511) / 512);
	/* Not the object's inode number: cp and friends must not take a view
	 * and its object for the same file. */
	st->st_ino = p->st.st_ino ^ ((ino_t)p->kind << 56);
}

int view_entry(struct shmfs *fs, struct node *dir, const char *name, struct fuse_entry_param *e)
{
	struct candidate c[3];
	int n = candidates(name, c);
	struct stat lst;
	if (n > 0 && c[0].kind == VK_STREAM_FITS && links_stream_link(fs, dir->fd, c[0].object, &lst)) {
		int rc = links_view_entry(fs, dir, c[0].object, e);
		if (rc == 0)
			e->entry_timeout = fs->timeout;
		return rc;
	}
	for (int i = 0; i < n; i++) {
		int fd = openat(dir->fd, c[i].object, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0)
			continue;
		struct probe p;
		int rc = probe_fd(fd, c[i].kind, c[i].object, 0, &p);
		if (rc == 0) {
			memset(e, 0, sizeof *e);
			view_stat(&p, &e->attr);
			int opath = openat(dir->fd, c[i].object, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			struct stat st;
			if (opath < 0 || fstat(opath, &st) < 0 || st.st_ino != p.st.st_ino) {
				if (opath >= 0)
					close(opath);
				probe_free(&p);
				return -ENOENT; /* replaced meanwhile */
			}
			struct node *node = inode_get_view(&fs->table, opath, p.st.st_dev,
							   p.st.st_ino, c[i].kind, -1);
			probe_free(&p);
			if (!node)
				return -ENOMEM;
			e->ino = inode_number(fs, node);
			e->entry_timeout = fs->timeout;
			e->attr_timeout = 0; /* the size follows the keywords */
			return 0;
		}
		probe_free(&p);
	}
	return -ENOENT;
}

/* Whether object NAME of directory DIRFD has a user.shmfs.type attribute:
 * one system call, no open. */
static int has_type_attr(int dirfd, const char *name)
{
	char path[NAME_MAX + 40];
	char v[8];
	snprintf(path, sizeof path, "/proc/self/fd/%d/%s", dirfd, name);
	return lgetxattr(path, TYPED_XATTR_TYPE, v, sizeof v) >= 0 || errno == ERANGE;
}

int view_list(struct shmfs *fs, struct node *dir, void *snapshot)
{
	int rc = 0;
	/* Views are added behind the real entries: walk only those. */
	size_t count = dirsnap_count(snapshot);
	for (size_t i = 0; rc == 0 && i < count; i++) {
		const char *name = dirsnap_name(snapshot, i);
		struct stat lst;
		if (dirsnap_type(snapshot, i) == S_IFLNK && isio_is_stream_name(name) &&
		    links_stream_link(fs, dir->fd, name, &lst)) {
			char view[NAME_MAX + 8];
			snprintf(view, sizeof view, "%.*s.fits", (int)(strlen(name) - 7), name);
			if (strlen(view) <= NAME_MAX && !dirsnap_has(snapshot, view))
				rc = dirsnap_add(snapshot, view,
						 lst.st_ino ^ ((ino_t)VK_STREAM_LINK << 56), S_IFLNK);
			continue;
		}
		if (dirsnap_type(snapshot, i) != S_IFREG)
			continue;
		enum view_kind kinds[2];
		char views[2][NAME_MAX + 8];
		int nk = 0;
		size_t len = strlen(name);
		if (isio_is_stream_name(name)) {
			snprintf(views[nk], sizeof views[nk], "%.*s.fits", (int)(len - 7), name);
			kinds[nk++] = VK_STREAM_FITS;
		} else if (imod_name_capacity(name)) {
			snprintf(views[nk], sizeof views[nk], "%s.mrc", name);
			kinds[nk++] = VK_IMOD_MRC;
			snprintf(views[nk], sizeof views[nk], "%s.fits", name);
			kinds[nk++] = VK_IMOD_FITS;
		} else if (has_type_attr(dir->fd, name)) {
			snprintf(views[nk], sizeof views[nk], "%s.fits", name);
			kinds[nk++] = VK_TYPED_FITS;
		}
		for (int k = 0; rc == 0 && k < nk; k++) {
			if (strlen(views[k]) > NAME_MAX || dirsnap_has(snapshot, views[k]))
				continue; /* a real file of that name wins */
			int fd = openat(dir->fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
			if (fd < 0)
				break;
			struct probe p;
			if (probe_fd(fd, kinds[k], name, 0, &p) == 0)
				rc = dirsnap_add(snapshot, views[k],
						 p.st.st_ino ^ ((ino_t)kinds[k] << 56), S_IFREG);
			probe_free(&p);
		}
	}
	return rc;
}

/* Probe a System V view node: a typed segment, or a CFITSIO file (whose
 * bytes are read here, under CFITSIO's lock, so a half-written file is never
 * shown). */
static int probe_sysv(struct shmfs *fs, struct node *n, struct probe *p)
{
	char why[160];
	memset(p, 0, sizeof *p);
	p->fd = -1;
	p->shmid = n->shmid;
	p->kind = (enum view_kind)n->variant;
	fitshdr_init(&p->fits);
	struct sysv_seg seg = {.shmid = n->shmid};
	int rc = sysv_stat(&seg);
	if (rc < 0)
		return rc;
	p->ds = seg.ds;
	char segname[SYSV_NAME_MAX];
	sysv_name_format(segname, seg.ds.shm_perm.__key, seg.shmid);
	snprintf(p->name, sizeof p->name, "%s/%s", fs->sysvdir, segname);
	if (p->kind == VK_SYSV_TYPED_FITS) {
		rc = sysvview_layout(fs, n->shmid, seg.ds.shm_segsz, &p->typed, why, sizeof why);
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
		if (slots[i].shmid != n->shmid)
			continue;
		p->file_size = slots[i].fits_size;
		if (p->kind == VK_CFITSIO_LINK)
			return 0;
		return cfshm_read_fits(cfshm_keybase(), cfshm_maxseg(), &slots[i], FRAME_WAIT_MS,
				       &p->raw, &p->file_size);
	}
	return -ENOENT;
}

/* Re-probe the object of view node N through its O_PATH descriptor. */
static int probe_node(struct shmfs *fs, struct node *n, int flags, struct probe *p)
{
	if (n->shmid >= 0)
		return probe_sysv(fs, n, p);
	char path[64];
	proc_path(path, n->fd);
	int fd = open(path, flags | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		memset(p, 0, sizeof *p);
		p->fd = -1;
		p->shmid = -1;
		fitshdr_init(&p->fits);
		return -errno;
	}
	/* The object's name (an IMOD file's says its capacity). */
	char objname[NAME_MAX + 1];
	fd_object_name(n->fd, objname, sizeof objname);
	int rc = probe_fd(fd, (enum view_kind)n->variant, objname, 1, p);
	if (rc == 0 && p->st.st_nlink == 0)
		rc = -ESTALE; /* removed: the kernel looks the name up again */
	snprintf(p->name, sizeof p->name, "%s", objname);
	return rc;
}

int view_node_stat(struct shmfs *fs, struct node *n, struct stat *st)
{
	if (n->variant == VK_STREAM_LINK)
		return links_view_stat(fs, n, st);
	struct probe p;
	int rc = probe_node(fs, n, O_RDONLY, &p);
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
	int rc = probe_node(shmfs_of(req), n, O_RDONLY, &p);
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




static void write_header(struct view_state *v)
{
	if (v->probe.format == VIEW_MRC)
		memcpy(v->image.bytes, v->probe.mrc, MRC_HEADER_SIZE);
	else
		fitshdr_write(&v->probe.fits, (char *)v->image.bytes);
}

/* One consistent frame of a stream into the image, with the stream's update
 * protocol (core/isio.c): the pixels are read through the descriptor, the
 * counter and the write flag watched in the stream's mapped first page (no
 * system call: a writer in a tight loop leaves only microseconds between
 * frames). META gets the metadata of the frame taken. */
struct frame_fill {
	struct view_image *image;
	int fd;
	uint64_t offset;
	int rc;
};

/* Frames up to this size are converted straight from the mapping: a copy
 * from memory is the shortest window a writer in a tight loop must leave.
 * Larger ones are read with pread (see view_fill_from_fd). */
#define MAPPED_FRAME_BYTES ((uint64_t)1 << 20)

static void frame_fill(const void *src, void *arg)
{
	struct frame_fill *f = arg;
	if (f->image->data_len <= MAPPED_FRAME_BYTES) {
		view_fill(f->image, src);
		f->rc = 0;
		return;
	}
	f->rc = view_fill_from_fd(f->image, f->fd, f->offset);
}

static int fill_stream_frame(struct view_state *v, unsigned char *meta)
{
	struct frame_fill f = {&v->image, v->data_fd, v->probe.data_offset, 0};
	int rc = isio_read_frame(v->map, v->map_len, &v->probe.stream, frame_fill, &f, meta,
				 FRAME_WAIT_MS);
	if (rc == -EFAULT)
		return -EIO; /* shrunk under the mapping */
	return rc < 0 ? rc : f.rc;
}

/* Build the image of an open view. Returns 0 or -errno. */
static int build_image(struct view_state *v)
{
	struct probe *p = &v->probe;
	int rc = view_alloc(&v->image, p->format, p->type, p->nelement, p->header_len);
	if (rc < 0)
		return rc;
	if (p->kind == VK_STREAM_FITS) {
		unsigned char meta[ISIO_META_SIZE];
		rc = fill_stream_frame(v, meta);
		if (rc == -EAGAIN)
			shm_log(SHM_LOG_WARN, "%s: a writer kept the stream busy for %d ms: no "
					      "consistent frame to read (EAGAIN)",
				p->name, FRAME_WAIT_MS);
		/* The header tells the frame that was taken. */
		uint64_t len = p->header_len;
		if (rc == 0)
			rc = stream_header(p, meta);
		if (rc == 0 && p->header_len != len) {
			v->retry_header = 1; /* keywords changed shape meanwhile */
			rc = -EAGAIN;
		}
	} else {
		rc = view_fill_from_fd(&v->image, v->data_fd, p->data_offset);
	}
	if (rc == 0)
		write_header(v);
	return rc;
}

static void view_state_free(struct view_state *v)
{
	if (v->map)
		munmap(v->map, v->map_len);
	if (v->data_fd >= 0 && v->data_fd != v->probe.fd)
		close(v->data_fd);
	view_free(&v->image);
	probe_free(&v->probe);
	free(v);
}

static void handle_close(struct shmfs *fs, struct open_item *item)
{
	view_release(fs, (struct handle *)item);
}

void view_open(fuse_req_t req, struct node *n, struct fuse_file_info *fi)
{
	int writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct handle *h = calloc(1, sizeof *h);
	struct view_state *v = calloc(1, sizeof *v);
	int rc = (!h || !v) ? -ENOMEM : 0;
	if (v) {
		v->probe.fd = -1;
		v->probe.shmid = -1;
		v->data_fd = -1;
		fitshdr_init(&v->probe.fits);
	}
	for (int attempt = 0; rc == 0 && attempt < 3; attempt++) {
		if (v->map)
			munmap(v->map, v->map_len);
		v->map = NULL;
		if (v->data_fd >= 0 && v->data_fd != v->probe.fd)
			close(v->data_fd);
		v->data_fd = -1;
		view_free(&v->image);
		probe_free(&v->probe);
		rc = probe_node(shmfs_of(req), n, writable ? O_RDWR : O_RDONLY, &v->probe);
		if (rc < 0)
			break;
		if (v->probe.kind == VK_CFITSIO_LINK) {
			rc = -ELOOP;
			break;
		}
		if (v->probe.kind == VK_CFITSIO_FITS) {
			/* CFITSIO's own driver writes these files. The bytes go
			 * into an image like any view's: replies are sent from
			 * mapped memory, which outlives the reply on every path. */
			if (writable)
				rc = -EROFS;
			else
				rc = view_alloc(&v->image, VIEW_MRC, ELEM_U8, v->probe.file_size, 0);
			if (rc == 0) {
				memcpy(v->image.bytes, v->probe.raw, v->probe.file_size);
				free(v->probe.raw);
				v->probe.raw = NULL;
			}
			break;
		}

		if (v->probe.shmid >= 0) {
			v->data_fd = sysv_open_file(v->probe.shmid);
			rc = v->data_fd < 0 ? v->data_fd : 0;
		} else {
			v->data_fd = v->probe.fd;
		}
		if (rc == 0 && v->probe.kind == VK_STREAM_FITS) {
			v->map_len = (size_t)v->probe.st.st_size;
			v->map = mmap(NULL, v->map_len, PROT_READ | (writable ? PROT_WRITE : 0),
				      MAP_SHARED, v->probe.fd, 0);
			if (v->map == MAP_FAILED)
				rc = -errno;
		}
		if (rc < 0) {
			v->map = NULL;
			break;
		}
		rc = build_image(v);
		/* a header that changed shape while the frame was taken: again */
		if (rc != -EAGAIN || attempt == 2 || v->probe.kind != VK_STREAM_FITS ||
		    !v->retry_header)
			break;
		rc = 0;
	}
	if (rc < 0) {
		if (v)
			view_state_free(v);
		free(h);
		return (void)fuse_reply_err(req, -rc);
	}
	h->node = n;
	h->writable = writable;
	h->view = v;
	h->map.fd = -1;
	open_track(shmfs_of(req), &h->item, handle_close);
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->direct_io = 1;
	fi->keep_cache = 0;
	if (fuse_reply_open(req, fi) == -ENOENT)
		view_release(shmfs_of(req), h);
}

void view_read(fuse_req_t req, struct handle *h, size_t size, off_t off)
{
	const struct view_image *img = &h->view->image;
	if (off < 0 || (uint64_t)off >= img->file_size)
		return (void)fuse_reply_buf(req, NULL, 0);
	uint64_t left = img->file_size - (uint64_t)off;
	fuse_reply_buf(req, (const char *)img->bytes + off, size < left ? size : (size_t)left);
}

void view_write(fuse_req_t req, struct handle *h, const char *buf, size_t size, off_t off)
{
	struct view_state *v = h->view;
	if (v->probe.kind == VK_CFITSIO_FITS)
		return (void)fuse_reply_err(req, EROFS);
	struct view_image *img = &v->image;
	if (off < 0 || (uint64_t)off + size > img->file_size) {
		shm_log_once(SHM_LOG_WARN, "%s: its view has a fixed size (%llu bytes): a write "
					   "past its end is refused (EFBIG)",
			     v->probe.name, (unsigned long long)img->file_size);
		return (void)fuse_reply_err(req, EFBIG);
	}
	uint64_t data_end = img->header_len + img->data_len;
	/* Header and padding bytes may only be written as they are. */
	uint64_t start = (uint64_t)off, end = start + size;
	for (uint64_t a = start; a < end;) {
		int in_data = a >= img->header_len && a < data_end;
		uint64_t b = in_data ? (end < data_end ? end : data_end)
				     : (a < img->header_len ? (end < img->header_len ? end
									 : img->header_len)
							    : end);
		if (!in_data && memcmp(img->bytes + a, buf + (a - start), b - a) != 0) {
			shm_log_once(SHM_LOG_WARN, "%s: the header of its view is made from the "
						   "segment: a write that changes it is refused (EPERM)",
				     v->probe.name);
			return (void)fuse_reply_err(req, EPERM);
		}
		a = b;
	}
	if (start < data_end && end > img->header_len) {
		uint64_t a = start > img->header_len ? start : img->header_len;
		uint64_t b = end < data_end ? end : data_end;
		memcpy(img->bytes + a, buf + (a - start), b - a);
		v->dirty = 1;
	}
	fuse_reply_write(req, size);
}



int view_flush(struct handle *h)
{
	struct view_state *v = h->view;
	if (!v->dirty)
		return 0;
	struct probe *p = &v->probe;
	int rc = 0;
	if (p->kind == VK_STREAM_FITS)
		rc = isio_frame_begin(v->map, v->map_len, &p->stream);
	if (rc == 0)
		rc = view_extract_to_fd(&v->image, v->data_fd, p->data_offset);
	if (rc == 0 && p->kind == VK_STREAM_FITS)
		rc = isio_frame_end(v->map, v->map_len, &p->stream);
	if (rc < 0) {
		shm_log(SHM_LOG_WARN, "%s: writing its view back failed (%s)", p->name, strerror(-rc));
		return rc == -ENOSPC ? rc : -EIO;
	}
	v->dirty = 0;
	return 0;
}

void view_release(struct shmfs *fs, struct handle *h)
{
	open_untrack(fs, &h->item);
	view_state_free(h->view);
	free(h);
}
