/* pmap.c - a POSIX shared-memory object mapped by the daemon; see pmap.h. */
#define _GNU_SOURCE
#include "pmap.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Mappings are made larger than the object so that a growing object is not
 * remapped on every read: the address space is cheap, and pages past the end
 * are never touched because every span is clamped to fstat's size first. */
static size_t map_length_for(off_t size)
{
	size_t want = (size_t)size + (size_t)size / 4;
	size_t step = (size_t)1 << 20;
	if (want < step)
		want = step;
	return (want + step - 1) & ~(step - 1);
}

int pmap_init(struct pmap *pm, int fd)
{
	pm->fd = fd;
	pm->base = NULL;
	pm->maplen = 0;
	int rc = pthread_rwlock_init(&pm->lock, NULL);
	return -rc;
}

void pmap_destroy(struct pmap *pm)
{
	/* A reader may still hold the lock: a READ reply reaches the reader,
	 * which may close the file, and RELEASE run, before the thread that
	 * sent the reply has unlocked. Wait for it. */
	pthread_rwlock_wrlock(&pm->lock);
	pthread_rwlock_unlock(&pm->lock);
	if (pm->base)
		munmap(pm->base, pm->maplen);
	pm->base = NULL;
	if (pm->fd >= 0)
		close(pm->fd);
	pm->fd = -1;
	pthread_rwlock_destroy(&pm->lock);
}

/* Replace the mapping with one covering SIZE bytes. Caller holds the lock
 * exclusive. */
static int remap(struct pmap *pm, off_t size)
{
	int flags = fcntl(pm->fd, F_GETFL);
	if (flags < 0)
		return -errno;
	int prot = PROT_READ | ((flags & O_ACCMODE) == O_RDWR ? PROT_WRITE : 0);
	size_t len = map_length_for(size);
	void *p = mmap(NULL, len, prot, MAP_SHARED, pm->fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	if (pm->base)
		munmap(pm->base, pm->maplen);
	pm->base = p;
	pm->maplen = len;
	return 0;
}

int pmap_read_begin(struct pmap *pm, off_t off, size_t len, const void **ptr, size_t *n)
{
	struct stat st;
	if (off < 0)
		return -EINVAL;
	for (;;) {
		pthread_rwlock_rdlock(&pm->lock);
		if (fstat(pm->fd, &st) < 0) {
			int err = errno;
			pthread_rwlock_unlock(&pm->lock);
			return -err;
		}
		if (off >= st.st_size || len == 0) {
			*ptr = NULL;
			*n = 0;
			return 0;
		}
		size_t avail = (size_t)(st.st_size - off);
		size_t want = len < avail ? len : avail;
		/* Blocks a whole span would need if it had no hole. */
		if ((blkcnt_t)((st.st_size + 511) / 512) > st.st_blocks) {
			off_t hole = lseek(pm->fd, off, SEEK_HOLE);
			if (hole < 0 || hole < off + (off_t)want) {
				pthread_rwlock_unlock(&pm->lock);
				return 1;
			}
		}
		if (pm->base && (size_t)off + want <= pm->maplen) {
			*ptr = (const char *)pm->base + off;
			*n = want;
			return 0;
		}
		pthread_rwlock_unlock(&pm->lock);

		pthread_rwlock_wrlock(&pm->lock);
		int rc = 0;
		if (!pm->base || (size_t)off + want > pm->maplen)
			rc = remap(pm, st.st_size);
		pthread_rwlock_unlock(&pm->lock);
		if (rc < 0)
			return rc;
	}
}

void pmap_read_end(struct pmap *pm) { pthread_rwlock_unlock(&pm->lock); }

ssize_t pmap_read(struct pmap *pm, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t r = pread(pm->fd, (char *)buf + done, len - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (done)
				break;
			return -errno;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

ssize_t pmap_write(struct pmap *pm, const void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t w = pwrite(pm->fd, (const char *)buf + done, len - done, off + (off_t)done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (done)
				break;
			return -errno;
		}
		if (w == 0)
			break;
		done += (size_t)w;
	}
	return (ssize_t)done;
}

int pmap_resize_fd(int fd, off_t size, int reserve)
{
	struct stat st;
	if (size < 0)
		return -EINVAL;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (reserve && size > st.st_size) {
		/* fallocate(2), not posix_fallocate(3): the latter emulates a
		 * missing fallocate by writing zeros. */
		if (fallocate(fd, 0, st.st_size, size - st.st_size) == 0)
			return 0;
		/* Filesystems without fallocate still get a plain (sparse) size. */
		if (errno != EOPNOTSUPP && errno != ENOSYS)
			return -errno;
	}
	if (ftruncate(fd, size) < 0)
		return -errno;
	return 0;
}
