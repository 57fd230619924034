/* view.h - synthesized image files (FITS or MRC): the header bytes, then the
 * pixels (converted to FITS data, or as they are for MRC), then padding. The
 * mount writes one file per frame (a snapshot its opens share) with these
 * routines; the tools write saved files with the same headers. */
#ifndef SHMFS_VIEW_H
#define SHMFS_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "elem.h"
#include "fitshdr.h"
#include "isio.h"

enum view_format { VIEW_FITS, VIEW_MRC };

/* The layout of a view file. */
struct view_image {
	enum view_format format;
	enum elem_type type;
	uint64_t nelement;
	uint64_t header_len;   /* FITS: a multiple of 2880; MRC: 1024 */
	uint64_t data_len;     /* bytes of element data (before padding) */
	uint64_t file_size;    /* header, data, FITS padding */
};

/* Size of a view: for a header of HEADER_LEN bytes and NELEMENT elements of
 * type T. Returns 0 or -EOVERFLOW (-EINVAL for a type FITS cannot hold). */
int view_size(enum view_format f, enum elem_type t, uint64_t nelement, uint64_t header_len,
	      uint64_t *data_len, uint64_t *file_size);
/* V for those sizes (view_size's returns). */
int view_layout(struct view_image *v, enum view_format f, enum elem_type t, uint64_t nelement,
		uint64_t header_len);

/* Write the data part of V into file OUT at byte V->header_len: the
 * NELEMENT native elements at SRC, converted (FITS) or as they are (MRC),
 * two threads for large images. SRC may be a shared mapping another process
 * can shrink: a SIGBUS gives -EFAULT. The padding is the caller's (a file
 * sized to V->file_size reads zeros there). Returns 0 or -errno (-ENOSPC on
 * a full tmpfs). */
int view_write_mem(const struct view_image *v, const void *src, int out);
/* The same into the view file mapped at DST (V->file_size bytes, the data
 * from DST + V->header_len): no system call at all. */
int view_write_map(const struct view_image *v, const void *src, unsigned char *dst);
/* The same from the object's pixels at byte OFFSET of descriptor FD, read
 * with pread a chunk at a time (two threads for large images). Returns 0,
 * -EIO when the object is shorter than the pixels, or -errno. */
int view_write_fd(const struct view_image *v, int fd, uint64_t offset, int out);
/* The data part of the view file IN back into the object FD at byte OFFSET
 * as native pixels (pread, convert, pwrite). Returns 0, -EIO when IN is
 * shorter than V says, or -errno. */
int view_extract_fd(const struct view_image *v, int in, int fd, uint64_t offset);

/* All of BUF (LEN bytes) written at byte OFF of FD, short writes retried.
 * Returns 0 or -errno (-EIO when nothing more can be written). */
int view_pwrite(int fd, const void *buf, size_t len, uint64_t off);

/* A 64-bit hash of the first LEN bytes of FD (not cryptographic: it tells
 * whether a file was changed). Returns 0 or -errno. */
int view_hash_fd(int fd, uint64_t len, uint64_t *hash);

/* The FITS header of a stream's view into H (initialised by the caller):
 * the image cards for its type and axes, its L, D and S keywords (names
 * starting with '_' left out, as milk does) from KEYWORDS (s->nbkw slots of
 * 128 bytes), and its state from META: SHMNAME, CNT0, CNT1, DATE (write
 * time) and DATE-OBS (acquisition time) as ISO dates; for a frame that is
 * not whole (Q), the SHMTORN card saying why. Returns 0 or -ENOMEM. */
int view_stream_header(const struct isio_stream *s, const unsigned char *meta,
		       const unsigned char *keywords, enum isio_frame_quality q,
		       struct fits_header *h);

/* An ISO-8601 UTC date with nanoseconds into BUF (>= 32 bytes). */
void view_iso_date(const struct timespec *ts, char *buf, size_t len);

#endif
