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

/* Images of closed views, kept for the next open: the first store into
 * freshly mapped memory is far dearer than into memory used before (on the
 * project's virtual machine, 30-180 ms against 3 ms for 64 MiB), and views
 * are opened again and again. A few, up to POOL_BYTES in all; pool_lock. */
#define POOL_SLOTS 4
#define POOL_BYTES ((size_t)512 << 20)
static struct {
	void *bytes;
	size_t len;
} pool[POOL_SLOTS];
static size_t pool_total;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;

/* A pooled mapping of at least LEN bytes (and not much more), or NULL. */
static void *pool_take(size_t len, size_t *got)
{
	void *p = NULL;
	pthread_mutex_lock(&pool_lock);
	for (int i = 0; i < POOL_SLOTS; i++) {
		if (pool[i].bytes && pool[i].len >= len && pool[i].len / 2 <= len) {
			p = pool[i].bytes;
			*got = pool[i].len;
			pool_total -= pool[i].len;
			pool[i].bytes = NULL;
			break;
		}
	}
	pthread_mutex_unlock(&pool_lock);
	return p;
}

static int pool_give(void *bytes, size_t len)
{
	int kept = 0;
	pthread_mutex_lock(&pool_lock);
	for (int i = 0; i < POOL_SLOTS && !kept; i++) {
		if (!pool[i].bytes && pool_total + len <= POOL_BYTES) {
			pool[i].bytes = bytes;
			pool[i].len = len;
			pool_total += len;
			kept = 1;
		}
	}
	pthread_mutex_unlock(&pool_lock);
	return kept;
}

int view_alloc(struct view_image *v, enum view_format f, enum elem_type t, uint64_t nelement,
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
	size_t want = v->file_size ? (size_t)v->file_size : 1;
	void *p = pool_take(want, &v->map_len);
	if (p) {
		/* header and data are written whole; the padding must be zeros */
		uint64_t used = header_len + v->data_len;
		memset((char *)p + used, 0, v->file_size - used);
		v->bytes = p;
		return 0;
	}
	/* Populated at once, as every page is about to be written. */
	v->map_len = want;
	p = mmap(NULL, v->map_len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p == MAP_FAILED) {
		v->map_len = 0;
		return -ENOMEM;
	}
	v->bytes = p;
	return 0;
}

void view_free(struct view_image *v)
{
	if (v->bytes && !pool_give(v->bytes, v->map_len))
		munmap(v->bytes, v->map_len);
	v->bytes = NULL;
}

void view_fill(struct view_image *v, const void *src)
{
	unsigned char *dst = v->bytes + v->header_len;
	if (v->format == VIEW_MRC)
		memcpy(dst, src, v->data_len);
	else
		elem_to_fits(v->type, src, dst, v->nelement);
}

void view_extract(const struct view_image *v, void *dst)
{
	const unsigned char *src = v->bytes + v->header_len;
	if (v->format == VIEW_MRC)
		memcpy(dst, src, v->data_len);
	else
		elem_from_fits(v->type, src, dst, v->nelement);
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
		       const unsigned char *keywords, struct fits_header *h)
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

/* A chunk at a time through a buffer that stays in cache. Nothing of the
 * object is mapped: a fresh mapping costs a page fault per page (a 64 MiB
 * frame took 110 ms that way, 10 ms this way), reading leaves holes holes,
 * and an object shrunk meanwhile gives a short read, not SIGBUS. */
static int fill_range(struct view_image *img, int fd, uint64_t offset, unsigned char *buf,
		      uint64_t first, uint64_t end)
{
	size_t es = elem_size(img->type);
	size_t os = img->nelement ? (size_t)(img->data_len / img->nelement) : es;
	size_t per = CHUNK / es;
	for (uint64_t i = first; i < end; i += per) {
		size_t n = end - i < per ? (size_t)(end - i) : per;
		if (pread_full(fd, buf, n * es, offset + i * es) != (ssize_t)(n * es))
			return -EIO;
		unsigned char *dst = img->bytes + img->header_len + i * os;
		if (img->format == VIEW_MRC)
			memcpy(dst, buf, n * es);
		else
			elem_to_fits(img->type, buf, dst, n);
	}
	return 0;
}

struct fill_half {
	struct view_image *img;
	int fd;
	uint64_t offset, first, end;
	int rc;
};

static void *fill_half_thread(void *arg)
{
	struct fill_half *h = arg;
	/* No bigger than the pixels: a small frame, taken again and again
	 * under a busy writer, must not cost a fresh megabyte each time. */
	uint64_t bytes = (h->end - h->first) * elem_size(h->img->type);
	unsigned char *buf = malloc(bytes < CHUNK ? (bytes ? bytes : 1) : CHUNK);
	h->rc = buf ? fill_range(h->img, h->fd, h->offset, buf, h->first, h->end) : -ENOMEM;
	free(buf);
	return NULL;
}

/* Frames this large are converted by two threads (the machine has two
 * cores and the daemon is otherwise idle while a view opens). */
#define PARALLEL_FILL_BYTES ((uint64_t)8 << 20)

int view_fill_from_fd(struct view_image *img, int fd, uint64_t offset)
{
	if (img->data_len < PARALLEL_FILL_BYTES) {
		struct fill_half all = {img, fd, offset, 0, img->nelement, 0};
		fill_half_thread(&all);
		return all.rc;
	}
	uint64_t half = img->nelement / 2;
	struct fill_half first = {img, fd, offset, 0, half, 0};
	struct fill_half second = {img, fd, offset, half, img->nelement, 0};
	pthread_t thread;
	if (pthread_create(&thread, NULL, fill_half_thread, &second) != 0) {
		first.end = img->nelement;
		fill_half_thread(&first);
		return first.rc;
	}
	fill_half_thread(&first);
	pthread_join(thread, NULL);
	return first.rc < 0 ? first.rc : second.rc;
}

int view_extract_to_fd(const struct view_image *img, int fd, uint64_t offset)
{
	uint64_t bytes = img->nelement * elem_size(img->type);
	unsigned char *buf = malloc(bytes < CHUNK ? (bytes ? bytes : 1) : CHUNK);
	if (!buf)
		return -ENOMEM;
	int rc = 0;
	size_t es = elem_size(img->type);
	size_t os = img->nelement ? (size_t)(img->data_len / img->nelement) : es;
	size_t per = CHUNK / es;
	for (uint64_t i = 0; i < img->nelement; i += per) {
		size_t n = img->nelement - i < per ? (size_t)(img->nelement - i) : per;
		const unsigned char *src = img->bytes + img->header_len + i * os;
		if (img->format == VIEW_MRC)
			memcpy(buf, src, n * es);
		else
			elem_from_fits(img->type, src, buf, n);
		size_t done = 0;
		while (rc == 0 && done < n * es) {
			ssize_t w = pwrite(fd, buf + done, n * es - done, (off_t)(offset + i * es + done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				rc = w < 0 ? -errno : -EIO;
			else
				done += (size_t)w;
		}
		if (rc < 0)
			break;
	}
	free(buf);
	return rc;
}
