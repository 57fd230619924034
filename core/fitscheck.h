/* fitscheck.h - between the loader's files, not part of the library's API:
 * the check of a FITS file's headers on its raw bytes, made before CFITSIO
 * opens the file (fitscheck.c), and what it learns of the image's HDU. */
#ifndef SHMFS_FITSCHECK_H
#define SHMFS_FITSCHECK_H

#include <stddef.h>
#include <stdint.h>

/* A tile-compressed image is decoded a tile at a time into buffers CFITSIO
 * allocates (up to 8 bytes a pixel, a few at once); a hostile header could
 * ask for one tile of billions of pixels. Tiles above this are refused:
 * with the header bytes, this is the fixed margin a load may use beyond its
 * image (tile buffers of at most 3 x 8 x 2^24 bytes, 384 MiB). */
#define FITSCHECK_MAX_TILE_PIXELS (UINT64_C(1) << 24)

/* Where the image of a FITS file is, from its headers alone. */
struct fitscheck_layout {
	int hdu;             /* 1: the primary HDU, 2: the first extension */
	int compressed;      /* a tile-compressed image (a BINTABLE with ZIMAGE = T) */
	int bitpix;          /* the image's (ZBITPIX when compressed) */
	int naxis;           /* 1..3 */
	uint64_t naxes[3];   /* 1..UINT32_MAX each; unused axes 1 */
	uint64_t nelement;
	uint64_t data_start; /* byte offset of the HDU's data */
	uint64_t data_bytes; /* bytes of data its header promises (before padding) */
	uint64_t hdu_end;    /* data_start + data_bytes padded to 2880: all CFITSIO reads */
};

/* Check every header CFITSIO will read to load the image of the LEN bytes
 * at BUF: the primary header and, when the primary has no image
 * (NAXIS = 0), the first extension's. Mandatory keywords must be the
 * standard's, in its order, with integer values CFITSIO reads as this
 * does; the image must have 1 to 3 axes of 1 to 2^32 - 1 pixels; a
 * compressed image's tiling must be usable and its tiles no larger than
 * FITSCHECK_MAX_TILE_PIXELS; every copy of a keyword CFITSIO sizes
 * something by (TFIELDS, PCOUNT, GCOUNT, THEAP, ZNAXISn, ZTILEn, ...) must
 * agree. Returns 0 and fills LAY, or -EINVAL (malformed, not a loadable
 * image), -EFBIG (tiles too large) or -EIO (the data the header promises
 * is not all in LEN), with one sentence in WHY. Reads nothing past LEN. */
int fitscheck_headers(const char *buf, size_t len, struct fitscheck_layout *lay, char *why,
		      size_t whylen);

/* Card helpers the loader's files share. NAME is one of the N names of
 * LIST; NAME is PREFIX followed by digits only (or nothing, when BARE is
 * set); the integer value of CARD (80 characters, NUL-terminated) into *V,
 * 0 if it has none, read with ffc2jj (see fitsload_key_int): returns 0 or
 * a CFITSIO status. */
int fitscheck_in_list(const char *name, const char *const *list, size_t n);
int fitscheck_indexed(const char *name, const char *prefix, int bare);
int fitscheck_card_int(char *card, long long *v);

#endif
