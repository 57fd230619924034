/* view.h - a synthesized image file (FITS or MRC) held whole in memory: the
 * header bytes, then the pixels (converted to FITS data, or as they are for
 * MRC), then padding. The daemon builds one per open, so a reader sees one
 * frame from its first read to its close, and reads cost no conversion. */
#ifndef SHMFS_VIEW_H
#define SHMFS_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "elem.h"
#include "fitshdr.h"
#include "isio.h"

enum view_format { VIEW_FITS, VIEW_MRC };

struct view_image {
	enum view_format format;
	enum elem_type type;
	uint64_t nelement;
	uint64_t header_len;   /* FITS: a multiple of 2880; MRC: 1024 */
	uint64_t data_len;     /* bytes of element data (before padding) */
	uint64_t file_size;    /* header, data, FITS padding */
	unsigned char *bytes;  /* file_size bytes, owned; NULL until view_alloc */
	size_t map_len;        /* bytes mapped for BYTES */
};

/* Size of a view: for a header of HEADER_LEN bytes and NELEMENT elements of
 * type T. Returns 0 or -EOVERFLOW. */
int view_size(enum view_format f, enum elem_type t, uint64_t nelement, uint64_t header_len,
	      uint64_t *data_len, uint64_t *file_size);

/* Allocate V for those sizes: its padding is zeros, the header and data are
 * the caller's to write whole (memory of closed images is used again).
 * Returns 0 or -errno. */
int view_alloc(struct view_image *v, enum view_format f, enum elem_type t, uint64_t nelement,
	       uint64_t header_len);
void view_free(struct view_image *v);

/* Convert native pixels at SRC into the data part (all of it). */
void view_fill(struct view_image *v, const void *src);
/* The data part back to native pixels at DST. */
void view_extract(const struct view_image *v, void *dst);

/* Convert the object's pixels, read from byte OFFSET of descriptor FD, into
 * the data part (two threads for large images). Returns 0, -EIO when the
 * object is shorter than the pixels, or -errno. */
int view_fill_from_fd(struct view_image *v, int fd, uint64_t offset);
/* The data part back into the object at byte OFFSET of FD, with pwrite.
 * Returns 0 or -errno (-ENOSPC on a full tmpfs). */
int view_extract_to_fd(const struct view_image *v, int fd, uint64_t offset);

/* The FITS header of a stream's view into H (initialised by the caller):
 * the image cards for its type and axes, its L, D and S keywords (names
 * starting with '_' left out, as milk does) from KEYWORDS (s->nbkw slots of
 * 128 bytes), and its state from META: SHMNAME, CNT0, CNT1, DATE (write
 * time) and DATE-OBS (acquisition time) as ISO dates. Returns 0 or -ENOMEM. */
int view_stream_header(const struct isio_stream *s, const unsigned char *meta,
		       const unsigned char *keywords, struct fits_header *h);

/* An ISO-8601 UTC date with nanoseconds into BUF (>= 32 bytes). */
void view_iso_date(const struct timespec *ts, char *buf, size_t len);

#endif
