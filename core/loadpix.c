/* loadpix.c - the pixels of a decoded image written into a stream file (see
 * loadpix.h), and large mappings unmapped out of the caller's way. */
#define _GNU_SOURCE
#include "loadpix.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guard.h"

/* Images this large are written by two threads (a load is waited for, and
 * the machine has two cores). */
#define PARALLEL_BYTES ((uint64_t)8 << 20)

/* Converted a chunk at a time through a buffer that stays in cache. */
#define CHUNK ((size_t)1 << 20)

/* Unmapping 16 MiB takes about a millisecond here: large mappings are
 * unmapped by a thread of their own, while the load is answered. */
#define UNMAP_BEHIND_BYTES ((size_t)4 << 20)

/* Elements FIRST to END of an image stored at DST (a mapping), or written
 * from byte OFF of FD on. */
struct part {
	const struct load_image *img;
	unsigned char *dst;
	int fd;
	uint64_t off, first, end;
	unsigned char *buf; /* CHUNK bytes, to write FITS data converted */
	int rc;
};

int loadpix_pwrite(int fd, const void *buf, uint64_t n, uint64_t off)
{
	const unsigned char *p = buf;
	while (n) {
		ssize_t w = pwrite(fd, p, n < (1u << 30) ? (size_t)n : (1u << 30), (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		off += (uint64_t)w;
		n -= (uint64_t)w;
	}
	return 0;
}

/* Under guard: the decoded file's bytes, and a stream's mapping, are
 * mappings their owners might shrink. */
static void write_run(void *arg)
{
	struct part *p = arg;
	const struct load_image *img = p->img;
	size_t es = elem_size(img->type), per = CHUNK / es;
	if (p->dst && img->pixels) {
		memcpy(p->dst + p->first * es, (const unsigned char *)img->pixels + p->first * es,
		       (size_t)(p->end - p->first) * es);
		return;
	}
	if (p->dst) {
		elem_from_fits(img->type, img->fits_data + p->first * es, p->dst + p->first * es,
			       (size_t)(p->end - p->first));
		return;
	}
	for (uint64_t i = p->first; i < p->end && p->rc == 0; i += per) {
		size_t n = p->end - i < per ? (size_t)(p->end - i) : per;
		const unsigned char *src = img->pixels ? (const unsigned char *)img->pixels + i * es
						       : p->buf;
		if (!img->pixels)
			elem_from_fits(img->type, img->fits_data + i * es, p->buf, n);
		p->rc = loadpix_pwrite(p->fd, src, n * es, p->off + i * es);
	}
}

static void *write_thread(void *arg)
{
	struct part *p = arg;
	int rc = guard_call(write_run, p);
	if (rc < 0)
		p->rc = rc;
	return NULL;
}

/* The image into DST or FD (see struct part), by one or two threads. */
static int put(unsigned char *dst, int fd, uint64_t off, const struct load_image *img)
{
	struct part parts[2];
	int nparts = img->datasize >= PARALLEL_BYTES ? 2 : 1, rc = 0;
	pthread_t thread;
	for (int i = 0; i < nparts; i++) {
		parts[i] = (struct part){img, dst, fd, off,
					 img->nelement * (uint64_t)i / (uint64_t)nparts,
					 img->nelement * (uint64_t)(i + 1) / (uint64_t)nparts, NULL, 0};
		if (!dst && !img->pixels && !(parts[i].buf = malloc(CHUNK)))
			rc = -ENOMEM;
	}
	if (rc == 0 && nparts == 2 && pthread_create(&thread, NULL, write_thread, &parts[1]) != 0) {
		parts[0].end = img->nelement; /* one thread after all */
		nparts = 1;
	}
	if (rc == 0) {
		write_thread(&parts[0]);
		if (nparts == 2)
			pthread_join(thread, NULL);
		rc = parts[0].rc ? parts[0].rc : nparts == 2 ? parts[1].rc : 0;
	}
	free(parts[0].buf);
	if (img->datasize >= PARALLEL_BYTES)
		free(parts[1].buf);
	return rc;
}

int loadpix_store(unsigned char *dst, const struct load_image *img)
{
	return put(dst, -1, 0, img);
}

int loadpix_write(int fd, uint64_t off, const struct load_image *img)
{
	return put(NULL, fd, off, img);
}

struct unmapping {
	void *addr;
	size_t len;
};

static void *unmap_thread(void *arg)
{
	struct unmapping *u = arg;
	munmap(u->addr, u->len);
	free(u);
	return NULL;
}

void load_unmap(void *addr, size_t len)
{
	struct unmapping *u = len >= UNMAP_BEHIND_BYTES ? malloc(sizeof *u) : NULL;
	pthread_attr_t attr;
	pthread_t thread;
	if (u && pthread_attr_init(&attr) == 0) {
		*u = (struct unmapping){addr, len};
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		int rc = pthread_create(&thread, &attr, unmap_thread, u);
		pthread_attr_destroy(&attr);
		if (rc == 0)
			return;
	}
	free(u);
	munmap(addr, len);
}
