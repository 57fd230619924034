/* pmap.h - a POSIX shared-memory object (a file of the backing directory)
 * mapped MAP_SHARED by the daemon, so reads are served from the object's own
 * pages and are live: what another process stores is seen by the next read.
 *
 * Reads hand out a pointer into the mapping, clamped to the object's size at
 * that moment (fstat), so a reader never touches a page past the end of an
 * object that another process shrank (that would raise SIGBUS). Writes and
 * size changes go through the descriptor instead of the mapping: on a full
 * tmpfs a store into a page that was never allocated raises SIGBUS, while
 * pwrite() and fallocate() report ENOSPC and leave what is there intact. */
#ifndef SHMFS_PMAP_H
#define SHMFS_PMAP_H

#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

struct pmap {
	int fd;                 /* owned: an open descriptor of the object */
	void *base;             /* mapping, or NULL before the first read; under lock */
	size_t maplen;          /* bytes mapped (may exceed the object's size); under lock */
	pthread_rwlock_t lock;  /* readers hold it shared while they use a span;
				 * remapping holds it exclusive */
};

/* Take ownership of FD (opened O_RDONLY or O_RDWR). Maps nothing yet.
 * Returns 0 or -errno. */
int pmap_init(struct pmap *pm, int fd);

/* Unmap and close the descriptor, once no reader holds a span. */
void pmap_destroy(struct pmap *pm);

/* Find bytes [off, off+len) clamped to the object's current size, without a
 * copy. Returns:
 *   0: *ptr points into the mapping and *n is the byte count (0 at or past
 *      the end); the lock is held shared: call pmap_read_end() once the bytes
 *      have been used;
 *   1: the span holds a hole (pages never written). Touching a hole through
 *      a shared mapping would allocate it (and raise SIGBUS on a full tmpfs),
 *      so use pmap_read() for this span instead; no lock is held;
 *   -errno: no lock is held. */
int pmap_read_begin(struct pmap *pm, off_t off, size_t len, const void **ptr, size_t *n);
void pmap_read_end(struct pmap *pm);

/* Copy up to LEN bytes at OFF into BUF through the descriptor (holes read as
 * zeros and stay holes). Returns the count or -errno. */
ssize_t pmap_read(struct pmap *pm, void *buf, size_t len, off_t off);

/* Write LEN bytes at OFF. Returns the count written (possibly short) or -errno
 * (-ENOSPC when the backing filesystem is full). */
ssize_t pmap_write(struct pmap *pm, const void *buf, size_t len, off_t off);

/* Set the size of the object behind FD. Growing leaves a hole, as
 * ftruncate does on tmpfs, unless RESERVE: then the new pages are reserved
 * (fallocate), so a full filesystem answers -ENOSPC now instead of SIGBUS at
 * the first store, and nothing already stored is touched. Returns 0 or -errno. */
int pmap_resize_fd(int fd, off_t size, int reserve);

#endif
