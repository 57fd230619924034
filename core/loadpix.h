/* loadpix.h - what the loader's writers share, not part of the library's
 * API (that is load.h): an image's pixels put into a stream file, stored
 * through a mapping of an existing stream or written into a new one. */
#ifndef SHMFS_LOADPIX_H
#define SHMFS_LOADPIX_H

#include <stdint.h>

#include "load.h"

/* IMG's pixels (decoded, or its FITS data converted on the way) stored at
 * DST, a shared mapping of the stream (its pages exist: storing into them
 * costs less than writing). Two threads for large images. Returns 0, or
 * -EFAULT if a mapping was shrunk under it (each thread has its guard). */
int loadpix_store(unsigned char *dst, const struct load_image *img);

/* IMG's pixels (decoded, or its FITS data converted on the way) into file
 * FD from byte OFF, with pwrite: pages written whole are not zeroed first,
 * as pages of a mapping are, and nothing is mapped. Two threads for large
 * images. Returns 0, -errno of pwrite (-ENOSPC on a full filesystem),
 * -ENOMEM, or -EFAULT if the decoded file was shrunk under IMG. */
int loadpix_write(int fd, uint64_t off, const struct load_image *img);

/* All N bytes of BUF into FD at byte OFF (pwrite again after a short
 * write). Returns 0 or -errno. */
int loadpix_pwrite(int fd, const void *buf, uint64_t n, uint64_t off);

#endif
