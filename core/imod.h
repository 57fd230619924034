/* imod.h - IMOD shared-memory files (/IMODShrMem_<KB>_<name>): the name
 * gives the capacity, bytes 0-2047 hold IMOD's in-memory MRC header (the MRC
 * header words, then 10 labels at a stride of 81 bytes), image data starts at
 * byte 2048. See ../shared/formats/mrc-imod.md. Contents are untrusted. */
#ifndef SHMFS_IMOD_H
#define SHMFS_IMOD_H

#include <stddef.h>
#include <stdint.h>

#include "elem.h"

#define IMOD_HEADER_AREA 2048
#define MRC_HEADER_SIZE 1024
/* The in-memory header's used bytes: the tenth 81-byte label ends here. */
#define IMOD_HEADER_MIN 1034

/* Capacity in bytes (KB * 1024) if NAME has IMOD's form "IMODShrMem_<KB>_<any
 * non-empty name>" (KB decimal, > 2, no overflow), else 0. */
uint64_t imod_name_capacity(const char *name);

struct imod_image {
	int32_t nx, ny, nz;
	int32_t mode;          /* MRC mode */
	enum elem_type type;   /* the element type of that mode */
	uint64_t data_bytes;   /* nx * ny * nz * element size */
};

/* Check the in-memory header at the front of an object of OBJECT_SIZE bytes
 * whose name gave CAPACITY (BUF holds the first BUFLEN bytes; at least
 * IMOD_HEADER_MIN are needed, and only those are read, so a caller may pass
 * a copy of the front): a known mode (0 int8/uint8 by IMOD's signed flag,
 * 1 int16, 2 float32, 4 complex float32, 6 uint16, 12 float16), positive
 * sizes, and data that fits: 2048 + data_bytes <= min(capacity, object_size).
 * Returns 0, or -EINVAL with a sentence in WHY. */
int imod_parse(const void *buf, size_t buflen, uint64_t capacity, uint64_t object_size,
	       struct imod_image *img, char *why, size_t whylen);

/* A clean MRC2014 header for the image (1024 bytes into OUT) from the
 * in-memory header in BUF (>= IMOD_HEADER_MIN bytes) that imod_parse turned
 * into IMG: header words 0-223 copied, the labels in use (IMOD's nlabl)
 * repacked from the 81-byte stride into 80-byte slots, non-blank ones first
 * (nlabl = their count, unprintable bytes as blanks), nsymbt 0, "MAP ",
 * the machine stamp (little-endian here: words stay native), nversion
 * 20140, statistics marked undetermined (dmax < dmin, dmean < both,
 * rms < 0), mapc/mapr/maps 1,2,3 unless a valid permutation is there,
 * mx/my/mz made consistent (a cell that is not a finite non-negative size
 * becomes one Angstrom per sample), so that mrcfile.validate passes. The
 * IMOD stamp is set, its signed-bytes flag saying what IMG's type says. */
void imod_mrc_header(const void *buf, const struct imod_image *img, unsigned char *out);

/* The inverse, for loading an MRC file into an IMOD object: IMOD's in-memory
 * header (2048 bytes into OUT) from a 1024-byte MRC header (labels to the
 * 81-byte stride). Returns 0, or -EINVAL with a sentence in WHY when the MRC
 * header is not usable (no "MAP ", the other byte order, unknown mode, bad
 * sizes, negative nsymbt). imod_parse of OUT gives the same IMG. */
int imod_from_mrc(const unsigned char *mrc, struct imod_image *img, unsigned char *out,
		  char *why, size_t whylen);

/* Where the data of the MRC file with header MRC starts: 1024 + its nsymbt
 * (the extended header, which stays behind). Meaningful for a header that
 * imod_from_mrc accepted. */
uint64_t imod_mrc_data_offset(const unsigned char *mrc);

#endif
