/* fitshdr.h - FITS primary headers built card by card, with CFITSIO's own
 * card routines, so every card is legal FITS whatever the (untrusted) names
 * and values handed in: keyword names are made legal (upper case, A-Z 0-9 _ -,
 * at most 8 characters) or the card is skipped, strings lose characters FITS
 * cannot hold, non-finite reals are skipped, and a name already used is not
 * used again. */
#ifndef SHMFS_FITSHDR_H
#define SHMFS_FITSHDR_H

#include <stddef.h>
#include <stdint.h>

#include "elem.h"

#define FITS_BLOCK 2880
#define FITS_CARD 80

struct fits_header {
	char *cards;    /* ncards * 80 bytes, no NUL; owned */
	size_t ncards;
	size_t cap;     /* cards allocated */
};

void fitshdr_init(struct fits_header *h);
void fitshdr_free(struct fits_header *h);

/* The mandatory cards of a primary image: SIMPLE, BITPIX, NAXIS, NAXIS1..n
 * (DIMS[0] varies fastest), for elements of type T: complex types get a
 * leading axis of 2, BZERO/BSCALE where the type needs them, CTYPE1 =
 * 'COMPLEX' for complex, and a comment saying float16 was widened. NAXIS is
 * 1 to 8. Must be the first call. Returns 0 or -errno. */
int fitshdr_image(struct fits_header *h, enum elem_type t, int naxis, const uint64_t *dims);

/* Optional cards. KEY is untrusted (see above); COMMENT may be NULL or
 * untrusted. Each returns 0 (the card was added, or skipped because it could
 * not be made legal) or -ENOMEM. */
int fitshdr_int(struct fits_header *h, const char *key, long long value, const char *comment);
int fitshdr_real(struct fits_header *h, const char *key, double value, const char *comment);
int fitshdr_string(struct fits_header *h, const char *key, const char *value,
		   const char *comment);
int fitshdr_comment(struct fits_header *h, const char *text);

/* Bytes of the finished header: the cards, END, spaces to a multiple of
 * 2880. */
size_t fitshdr_size(const struct fits_header *h);

/* Write the finished header (fitshdr_size bytes) to OUT. */
void fitshdr_write(const struct fits_header *h, char *out);

/* Size of the data part for NBYTES of data: padded to a multiple of 2880. */
uint64_t fits_data_size(uint64_t nbytes);

#endif
