/* fitstile.h - between fitsload.c and fitstile.c, not part of the library's
 * API: the check of a tile-compressed image's tiles, and the safe integer
 * keyword read both need. */
#ifndef SHMFS_FITSTILE_H
#define SHMFS_FITSTILE_H

#include <stddef.h>

#include <fitsio.h>

/* Read integer keyword NAME of FP's current HDU into *V without CFITSIO's
 * integer reads (see fitsload.c). Returns 0, or a CFITSIO status
 * (KEY_NO_EXIST when the card is missing). In fitsload.c. */
int fitsload_key_int(fitsfile *fp, const char *name, long long *v);

/* Whether every tile of FP's current HDU, a tile-compressed image of NAXIS
 * axes of DIMS pixels opened from BUF (BUFLEN bytes), can be handed to
 * CFITSIO's decoder. Returns 0, or -EINVAL with a sentence in WHY. */
int fitstile_check(fitsfile *fp, const unsigned char *buf, size_t buflen, const LONGLONG *dims,
		   int naxis, char *why, size_t whylen);

#endif
