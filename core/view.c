/* view.c - synthesized image files held in memory; see view.h. */
#define _GNU_SOURCE
#include "view.h"
#include "viewcards.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "guard.h"

static size_t out_size(enum view_format f, enum elem_type t)
{
	struct elem_fits ef;
	if (f == VIEW_MRC)
		return elem_size(t);
	return elem_fits(t, &ef) == 0 ? ef.fits_size : 0;
}

int view_size(enum view_format f, enum elem_type t, uint64_t nelement, uint64_t header_len,
	      uint64_t *data_len, uint64_t *file_size)
{
	size_t es = out_size(f, t);
	uint64_t data;
	if (es == 0)
		return -EINVAL;
	if (__builtin_mul_overflow(nelement, (uint64_t)es, &data) || data > (UINT64_C(1) << 50))
		return -EOVERFLOW;
	uint64_t padded = f == VIEW_FITS ? fits_data_size(data) : data;
	if (__builtin_add_overflow(padded, header_len, file_size))
		return -EOVERFLOW;
	*data_len = data;
	return 0;
}

int view_layout(struct view_image *v, enum view_format f, enum elem_type t, uint64_t nelement,
		uint64_t header_len)
{
	memset(v, 0, sizeof *v);
	int rc = view_size(f, t, nelement, header_len, &v->data_len, &v->file_size);
	if (rc < 0)
		return rc;
	v->format = f;
	v->type = t;
	v->nelement = nelement;
	v->header_len = header_len;
	return 0;
}

void view_iso_date(const struct timespec *ts, char *buf, size_t len)
{
	struct tm tm;
	time_t sec = ts->tv_sec;
	if (!gmtime_r(&sec, &tm)) {
		snprintf(buf, len, "1970-01-01T00:00:00");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000);
}

int view_stream_header(const struct isio_stream *s, const unsigned char *meta,
		       const unsigned char *keywords, enum isio_frame_quality q,
		       struct fits_header *h)
{
	uint64_t dims[3] = {s->size[0], s->size[1], s->size[2]};
	struct isio_stream now = *s;
	char date[40];
	int rc = fitshdr_image(h, s->type, s->naxis, dims);
	isio_state(meta, &now);
	if (rc == 0)
		rc = fitshdr_string(h, VIEW_CARD_SHMNAME, now.name, "ImageStreamIO stream name");
	if (rc == 0)
		rc = fitshdr_int(h, VIEW_CARD_CNT0, (long long)now.cnt0, "frame counter");
	if (rc == 0)
		rc = fitshdr_int(h, VIEW_CARD_CNT1, (long long)now.cnt1, "last slice written");
	if (rc == 0 && now.writetime.tv_sec) {
		view_iso_date(&now.writetime, date, sizeof date);
		rc = fitshdr_string(h, VIEW_CARD_DATE, date, "stream write time (UTC)");
	}
	if (rc == 0 && now.atime.tv_sec) {
		view_iso_date(&now.atime, date, sizeof date);
		rc = fitshdr_string(h, VIEW_CARD_DATE_OBS, date, "acquisition time (UTC)");
	}
	if (rc == 0 && isio_frame_why(q))
		rc = fitshdr_string(h, VIEW_CARD_TORN, isio_frame_why(q), "not one whole frame");
	for (unsigned i = 0; rc == 0 && i < s->nbkw; i++) {
		struct isio_keyword kw;
		if (isio_keyword(keywords + (size_t)i * ISIO_KW_SIZE, &kw) < 0 || kw.name[0] == '_')
			continue;
		if (kw.type == 'L')
			rc = fitshdr_int(h, kw.name, (long long)kw.l, kw.comment);
		else if (kw.type == 'D')
			rc = fitshdr_real(h, kw.name, kw.d, kw.comment);
		else
			rc = fitshdr_string(h, kw.name, kw.s, kw.comment);
	}
	return rc;
}

#define CHUNK (1u << 20)

static ssize_t pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : (ssize_t)done;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

int view_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		done += (size_t)w;
	}
	return 0;
}

/* Bytes per element in the view and in the object. */
static size_t view_elem(const struct view_image *v)
{
	return v->nelement ? (size_t)(v->data_len / v->nelement) : elem_size(v->type);
}

/* Elements FIRST..END of the pixels, a chunk at a time through BUF (in
 * cache): from memory SRC, or read from FD at OFFSET; converted into OUT.
 * Nothing of the object is mapped here: a fresh mapping costs a page fault
 * per page, reading leaves holes holes, and an object shrunk meanwhile gives
 * a short read, not SIGBUS. */
struct write_range {
	const struct view_image *v;
	const unsigned char *src;
	int fd;
	uint64_t offset, first, end;
	int out;
	int rc;
	unsigned char *buf, *in; /* the chunk converted, and read (from FD) */
	unsigned char *dst;      /* or the file image in memory, converted into */
};

/* Images this large converted into memory go around the caches: a reader
 * starting from the front finds none of them there anyway, and the stores
 * then need not read each line in first nor push it out dirty later (a
 * fifth less time for 64 MiB of float32 on the project's machine). */
#define UNCACHED_BYTES ((uint64_t)16 << 20)

static void write_chunks(void *arg)
{
	struct write_range *w = arg;
	const struct view_image *v = w->v;
	size_t es = elem_size(v->type), os = view_elem(v);
	size_t per = CHUNK / (es > os ? es : os);
	for (uint64_t i = w->first; w->rc == 0 && i < w->end; i += per) {
		size_t n = w->end - i < per ? (size_t)(w->end - i) : per;
		const unsigned char *from = w->src ? w->src + i * es : w->in;
		if (!w->src && pread_full(w->fd, w->in, n * es, w->offset + i * es) != (ssize_t)(n * es)) {
			w->rc = -EIO;
			break;
		}
		if (w->dst) {
			unsigned char *to = w->dst + v->header_len + i * os;
			if (v->format == VIEW_FITS && v->data_len >= UNCACHED_BYTES)
				elem_to_fits_uncached(v->type, from, to, n);
			else if (v->format == VIEW_FITS)
				elem_to_fits(v->type, from, to, n);
			else
				memcpy(to, from, n * es);
			continue;
		}
		const void *put = from;
		if (v->format == VIEW_FITS) {
			elem_to_fits(v->type, from, w->buf, n);
			put = w->buf;
		}
		w->rc = view_pwrite(w->out, put, n * os, v->header_len + i * os);
	}
}

static void *write_range(void *arg)
{
	struct write_range *w = arg;
	const struct view_image *v = w->v;
	size_t es = elem_size(v->type), os = view_elem(v);
	uint64_t bytes = (w->end - w->first) * (es > os ? es : os);
	/* No bigger than the pixels: small frames, taken again and again under
	 * a busy writer, must not cost a fresh megabyte each time. */
	size_t cap = bytes < CHUNK ? (bytes ? (size_t)bytes : 1) : CHUNK;
	w->buf = w->dst ? NULL : malloc(cap);
	w->in = !w->src && (w->buf || w->dst) ? malloc(cap) : NULL;
	w->rc = (w->buf || w->dst) && (w->src || w->in) ? 0 : -ENOMEM;
	/* Memory may be a mapping of an object another process shrinks: this
	 * thread turns the SIGBUS into -EFAULT too. */
	if (w->rc == 0 && w->src && guard_call(write_chunks, w) < 0)
		w->rc = -EFAULT;
	else if (w->rc == 0 && !w->src)
		write_chunks(w);
	free(w->in);
	free(w->buf);
	return NULL;
}

/* Frames this large are converted by two threads (the machine has two
 * cores and the daemon is otherwise idle while a view opens). */
#define PARALLEL_BYTES ((uint64_t)8 << 20)

static int write_all(const struct view_image *v, const void *src, int fd, uint64_t offset,
		     int out, unsigned char *dst)
{
	struct write_range first = {v, src, fd, offset, 0, v->nelement, out, 0, NULL, NULL, dst};
	if (v->data_len < PARALLEL_BYTES) {
		write_range(&first);
		return first.rc;
	}
	struct write_range second = first;
	first.end = second.first = v->nelement / 2;
	pthread_t thread;
	if (pthread_create(&thread, NULL, write_range, &second) != 0) {
		first.end = v->nelement;
		write_range(&first);
		return first.rc;
	}
	write_range(&first);
	pthread_join(thread, NULL);
	return first.rc < 0 ? first.rc : second.rc;
}

int view_write_mem(const struct view_image *v, const void *src, int out)
{
	return write_all(v, src, -1, 0, out, NULL);
}

int view_write_map(const struct view_image *v, const void *src, unsigned char *dst)
{
	return write_all(v, src, -1, 0, -1, dst);
}

int view_write_fd(const struct view_image *v, int fd, uint64_t offset, int out)
{
	return write_all(v, NULL, fd, offset, out, NULL);
}

int view_extract_fd(const struct view_image *v, int in, int fd, uint64_t offset)
{
	size_t es = elem_size(v->type), os = view_elem(v);
	size_t per = CHUNK / (es > os ? es : os);
	uint64_t bytes = v->nelement * (es > os ? es : os);
	size_t cap = bytes < CHUNK ? (bytes ? (size_t)bytes : 1) : CHUNK;
	unsigned char *src = malloc(cap), *buf = malloc(cap);
	int rc = src && buf ? 0 : -ENOMEM;
	for (uint64_t i = 0; rc == 0 && i < v->nelement; i += per) {
		size_t n = v->nelement - i < per ? (size_t)(v->nelement - i) : per;
		if (pread_full(in, src, n * os, v->header_len + i * os) != (ssize_t)(n * os)) {
			rc = -EIO;
			break;
		}
		const void *put = src;
		if (v->format == VIEW_FITS) {
			elem_from_fits(v->type, src, buf, n);
			put = buf;
		}
		rc = view_pwrite(fd, put, n * es, offset + i * es);
	}
	free(src);
	free(buf);
	return rc;
}

int view_hash_fd(int fd, uint64_t len, uint64_t *hash)
{
	unsigned char *buf = malloc(len < CHUNK ? (len ? (size_t)len : 1) : CHUNK);
	if (!buf)
		return -ENOMEM;
	/* 64-bit words, multiply and rotate: a few GB/s, and any changed
	 * byte changes the result. */
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
	int rc = 0;
	for (uint64_t at = 0; at < len;) {
		size_t n = len - at < CHUNK ? (size_t)(len - at) : CHUNK;
		if (pread_full(fd, buf, n, at) != (ssize_t)n) {
			rc = -EIO;
			break;
		}
		size_t i = 0;
		for (; i + 8 <= n; i += 8) {
			uint64_t w;
			memcpy(&w, buf + i, 8);
			h = (h ^ w) * 0xff51afd7ed558ccdull;
			h ^= h >> 29;
		}
		for (; i < n; i++)
			h = (h ^ buf[i]) * 0x100000001b3ull;
		at += n;
	}
	free(buf);
	*hash = h;
	return rc;
}
