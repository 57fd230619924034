/* save.c - objects written out as FITS or MRC files; see save.h. The
 * headers come from core (view_stream_header, fitshdr_image,
 * imod_mrc_header), so a saved file matches the mount's view of the same
 * object card for card. */
#define _GNU_SOURCE
#include "save.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fitshdr.h"
#include "view.h"
#include "viewcards.h"

#define CHUNK_ELEMS (1u << 18)
#define FRAME_WAIT_MS 300   /* how long to wait for a gap between a writer's frames */
#define CFITSIO_WAIT_MS 2000

#define FAIL(code, ...) do { snprintf(why, whylen, __VA_ARGS__); return -(code); } while (0)

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n > m && strcasecmp(s + n - m, suffix) == 0;
}

int save_name_is_fits(const char *file)
{
	return ends_with(file, ".fits") || ends_with(file, ".fit") || ends_with(file, ".fts");
}

int save_name_is_mrc(const char *file)
{
	return ends_with(file, ".mrc");
}

/* The output: a temporary file next to FILE, renamed over it when done. */
struct output {
	int fd;
	char tmp[PATH_MAX];
	const char *file;
	struct progress *p;
};

static int output_open(struct output *out, const char *file, struct progress *p)
{
	char copy[PATH_MAX];
	snprintf(copy, sizeof copy, "%s", file);
	char *base = basename(copy);
	char dircopy[PATH_MAX];
	snprintf(dircopy, sizeof dircopy, "%s", file);
	const char *dir = dirname(dircopy);
	if (snprintf(out->tmp, sizeof out->tmp, "%s/.%s.XXXXXX", dir, base) >= (int)sizeof out->tmp)
		return -ENAMETOOLONG;
	out->fd = mkostemp(out->tmp, O_CLOEXEC);
	out->file = file;
	out->p = p;
	return out->fd < 0 ? -errno : 0;
}

static int output_write(struct output *out, const void *buf, size_t len)
{
	const char *b = buf;
	while (len) {
		ssize_t w = write(out->fd, b, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		b += w;
		len -= (size_t)w;
		if (out->p)
			progress_add(out->p, (uint64_t)w);
	}
	return 0;
}

/* Finish (RC 0: give the file the usual mode for new files and rename it
 * into place) or give up (unlink the temporary file). Returns RC or the
 * error of finishing. */
static int output_close(struct output *out, int rc)
{
	if (rc == 0) {
		mode_t mask = umask(0);
		umask(mask);
		if (fchmod(out->fd, 0666 & ~mask) < 0 || fsync(out->fd) < 0)
			rc = -errno;
	}
	if (close(out->fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(out->tmp, out->file) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(out->tmp);
	return rc;
}

/* Where pixels are read from: memory (a frame copy, an attached segment)
 * or a descriptor, from byte BASE. */
struct source {
	const unsigned char *mem;
	int fd;
	uint64_t base;
};

static int source_read(const struct source *src, uint64_t off, void *buf, size_t len)
{
	if (src->mem) {
		memcpy(buf, src->mem + src->base + off, len);
		return 0;
	}
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(src->fd, (char *)buf + done, len - done,
				  (off_t)(src->base + off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO; /* shrunk meanwhile */
		done += (size_t)r;
	}
	return 0;
}

/* The data part: NELEMENT elements of type T, as FITS data (converted,
 * padded to 2880) or as they are (MRC). */
static int write_data(struct output *out, enum view_format f, enum elem_type t, uint64_t nelement,
		      const struct source *src)
{
	struct elem_fits ef;
	size_t es = elem_size(t);
	size_t os = es;
	if (f == VIEW_FITS) {
		if (elem_fits(t, &ef) < 0)
			return -EINVAL;
		os = ef.fits_size;
	}
	unsigned char *in = malloc(CHUNK_ELEMS * es), *conv = malloc(CHUNK_ELEMS * os);
	int rc = in && conv ? 0 : -ENOMEM;
	for (uint64_t i = 0; rc == 0 && i < nelement; i += CHUNK_ELEMS) {
		size_t n = nelement - i < CHUNK_ELEMS ? (size_t)(nelement - i) : CHUNK_ELEMS;
		rc = source_read(src, i * es, in, n * es);
		if (rc == 0 && f == VIEW_FITS) {
			elem_to_fits(t, in, conv, n);
			rc = output_write(out, conv, n * os);
		} else if (rc == 0) {
			rc = output_write(out, in, n * es);
		}
	}
	uint64_t bytes = nelement * os;
	if (rc == 0 && f == VIEW_FITS && fits_data_size(bytes) > bytes) {
		memset(conv, 0, FITS_BLOCK);
		rc = output_write(out, conv, (size_t)(fits_data_size(bytes) - bytes));
	}
	free(in);
	free(conv);
	return rc;
}

/* A FITS file: header H, then the elements. */
static int write_fits(const char *file, struct fits_header *h, enum elem_type t,
		      uint64_t nelement, const struct source *src, struct progress *p)
{
	struct output out;
	size_t hlen = fitshdr_size(h);
	char *hbytes = malloc(hlen);
	if (!hbytes)
		return -ENOMEM;
	fitshdr_write(h, hbytes);
	struct elem_fits ef;
	elem_fits(t, &ef);
	if (p)
		progress_stage(p, p->label, hlen + fits_data_size(nelement * ef.fits_size));
	int rc = output_open(&out, file, p);
	if (rc == 0) {
		rc = output_write(&out, hbytes, hlen);
		if (rc == 0)
			rc = write_data(&out, VIEW_FITS, t, nelement, src);
		rc = output_close(&out, rc);
	}
	free(hbytes);
	return rc;
}

struct frame_copy {
	const unsigned char *map;
	const struct isio_stream *s;
	unsigned char *pixels;
	unsigned char *keywords;
};

/* Called by isio_take_frame inside the frame's window: the keywords are
 * taken with the pixels, so the header tells the frame that was saved. */
static void copy_frame(const void *src, void *arg)
{
	struct frame_copy *c = arg;
	memcpy(c->pixels, src, c->s->datasize);
	memcpy(c->keywords, c->map + c->s->off_keywords, (size_t)c->s->nbkw * ISIO_KW_SIZE);
}

static int save_stream(int fd, const char *file, struct progress *p, char *why, size_t whylen)
{
	struct stat st;
	unsigned char meta[ISIO_META_SIZE];
	struct isio_stream s;
	if (fstat(fd, &st) < 0)
		return -errno;
	ssize_t got = pread(fd, meta, sizeof meta, 0);
	if (got < 0)
		return -errno;
	if (isio_parse(meta, (size_t)got, (uint64_t)st.st_size, &s, why, whylen) < 0)
		return -EINVAL;
	/* Read-write when we may: a reader registers on the stream to be woken
	 * in a writer's gap; read-only, it polls. */
	int writable = 1;
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		writable = 0;
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	}
	if (map == MAP_FAILED)
		return -errno;
	struct frame_copy c = {map, &s, malloc(s.datasize ? s.datasize : 1),
			       malloc(s.nbkw ? (size_t)s.nbkw * ISIO_KW_SIZE : 1)};
	int rc = c.pixels && c.keywords ? 0 : -ENOMEM;
	enum isio_frame_quality q = ISIO_FRAME_WHOLE;
	if (rc == 0)
		rc = isio_take_frame(map, (size_t)st.st_size, &s, writable, copy_frame, &c, meta,
				     FRAME_WAIT_MS, &q);
	munmap(map, (size_t)st.st_size);
	if (rc == -EFAULT)
		snprintf(why, whylen, "the stream was cut short while it was read");
	if (rc == 0 && q != ISIO_FRAME_WHOLE) /* saved all the same: say so */
		fprintf(stderr, "shmtool: %s: not one whole frame, saved with card %s = '%s'\n",
			s.name, VIEW_CARD_TORN, isio_frame_why(q));
	struct fits_header h;
	fitshdr_init(&h);
	if (rc == 0)
		rc = view_stream_header(&s, meta, c.keywords, q, &h);
	if (rc == 0) {
		struct source src = {.mem = c.pixels};
		rc = write_fits(file, &h, s.type, s.nelement, &src, p);
	}
	fitshdr_free(&h);
	free(c.pixels);
	free(c.keywords);
	return rc;
}

static int save_imod(int fd, const struct obj *o, const char *file, struct progress *p,
		     char *why, size_t whylen)
{
	struct stat st;
	unsigned char head[IMOD_HEADER_AREA];
	struct imod_image img;
	if (fstat(fd, &st) < 0)
		return -errno;
	ssize_t got = pread(fd, head, sizeof head, 0);
	if (got < 0)
		return -errno;
	if (imod_parse(head, (size_t)got, o->capacity, (uint64_t)st.st_size, &img, why, whylen) < 0)
		return -EINVAL;
	uint64_t n = (uint64_t)img.nx * (uint64_t)img.ny * (uint64_t)img.nz;
	struct source src = {.fd = fd, .base = IMOD_HEADER_AREA};
	if (save_name_is_fits(file)) {
		struct fits_header h;
		uint64_t dims[3] = {(uint64_t)img.nx, (uint64_t)img.ny, (uint64_t)img.nz};
		fitshdr_init(&h);
		int rc = fitshdr_image(&h, img.type, img.nz > 1 ? 3 : 2, dims);
		if (rc == 0)
			rc = fitshdr_string(&h, "ORIGIN", "IMOD shared memory", o->name);
		if (rc == 0)
			rc = write_fits(file, &h, img.type, n, &src, p);
		fitshdr_free(&h);
		return rc;
	}
	unsigned char mrc[MRC_HEADER_SIZE];
	imod_mrc_header(head, &img, mrc);
	struct output out;
	if (p)
		progress_stage(p, p->label, MRC_HEADER_SIZE + img.data_bytes);
	int rc = output_open(&out, file, p);
	if (rc < 0)
		return rc;
	rc = output_write(&out, mrc, sizeof mrc);
	if (rc == 0)
		rc = write_data(&out, VIEW_MRC, img.type, n, &src);
	return output_close(&out, rc);
}

static int save_cfitsio(const struct obj *o, const char *file, struct progress *p, char *why,
			size_t whylen)
{
	unsigned char *bytes;
	uint64_t len;
	int rc = cfshm_read_fits(cfshm_keybase(), cfshm_maxseg(), &o->slot, CFITSIO_WAIT_MS, &bytes,
				 &len);
	if (rc == -EAGAIN)
		FAIL(EAGAIN, "a CFITSIO program kept the file locked for writing for %d ms",
		     CFITSIO_WAIT_MS);
	if (rc < 0)
		FAIL(-rc, "cannot read the CFITSIO file: %s", strerror(-rc));
	struct output out;
	if (p)
		progress_stage(p, p->label, len);
	rc = output_open(&out, file, p);
	if (rc == 0)
		rc = output_close(&out, output_write(&out, bytes, (size_t)len));
	free(bytes);
	return rc;
}

/* A raw or typed object with layout L: FITS from the pixels at its offset. */
static int save_typed(const struct obj *o, const struct typed_layout *l, const char *file,
		      struct progress *p, char *why, size_t whylen)
{
	struct fits_header h;
	struct source src = {.fd = -1, .base = l->offset};
	void *at = NULL;
	size_t segsz = 0;
	int rc = 0;
	if (o->backend == OBJ_SYSV) {
		rc = sysv_attach(o->seg.shmid, 0, &at, &segsz);
		if (rc < 0)
			FAIL(-rc, "cannot attach the segment: %s", strerror(-rc));
		src.mem = at;
	} else {
		char path[PATH_MAX * 2];
		snprintf(path, sizeof path, "%s/%s", o->dir, o->name);
		src.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
		if (src.fd < 0)
			FAIL(errno, "cannot open it: %s", strerror(errno));
	}
	fitshdr_init(&h);
	rc = fitshdr_image(&h, l->type, l->naxis, l->dims);
	if (rc == 0)
		rc = write_fits(file, &h, l->type, l->nelement, &src, p);
	fitshdr_free(&h);
	if (src.fd >= 0)
		close(src.fd);
	sysv_detach(at);
	return rc;
}

int save_object(const struct obj *o, const char *file, const struct typed_layout *layout,
		struct progress *p, char *why, size_t whylen)
{
	int mrc = save_name_is_mrc(file);
	snprintf(why, whylen, "%s", "");
	if (mrc && o->format != OBJ_IMOD)
		FAIL(EINVAL, "only IMOD objects save as MRC: name the file .fits");
	if (layout)
		return save_typed(o, layout, file, p, why, whylen);
	switch (o->format) {
	case OBJ_CFITSIO:
		return save_cfitsio(o, file, p, why, whylen);
	case OBJ_TYPED:
		return save_typed(o, &o->typed, file, p, why, whylen);
	case OBJ_STREAM:
	case OBJ_LINK:
	case OBJ_IMOD:
		break;
	default:
		if (o->note[0])
			FAIL(EINVAL, "%s", o->note);
		FAIL(EINVAL, "a %s object holds no image it could be saved from (give "
			     "--type and --shape)", obj_format_name(o->format));
	}
	if (o->format == OBJ_LINK && !o->target_exists)
		FAIL(ENOENT, "a stream link to %s, which does not exist", o->target);
	char path[PATH_MAX * 2];
	snprintf(path, sizeof path, "%s/%s", o->dir, o->name);
	int fd = open(path, (o->format == OBJ_IMOD ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && o->format != OBJ_IMOD)
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		FAIL(errno, "cannot open it: %s", strerror(errno));
	int rc = o->format == OBJ_IMOD ? save_imod(fd, o, file, p, why, whylen)
				       : save_stream(fd, file, p, why, whylen);
	close(fd);
	if (rc < 0 && !why[0])
		snprintf(why, whylen, "%s", strerror(-rc));
	return rc;
}
