/* load.h - loading image files into shared memory, all or nothing: a FITS
 * image (read with CFITSIO, so tile-compressed images load too) becomes an
 * ImageStreamIO "2.00" stream, created as ImageStreamIO's own create would
 * leave it, updated in place as one frame, or replaced by a new file; an MRC
 * volume fills an IMOD shared-memory file. Used by the mount (cp into
 * X.fits, IMODShrMem_KB_NAME.mrc) and by the tools (shmtool load, fits2shm).
 * The incoming bytes are untrusted. */
#ifndef SHMFS_LOAD_H
#define SHMFS_LOAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "elem.h"
#include "isio.h"

/* A FITS image decoded and ready to go into a stream. */
struct load_image {
	int naxis;                 /* 1..3 */
	uint32_t size[3];          /* size[0] = NAXIS1, fastest; unused axes 1 */
	uint64_t nelement;
	enum elem_type type;       /* from BITPIX and BZERO/BSCALE */
	void *pixels;              /* nelement x element size, native order */
	const unsigned char *fits_data; /* or, pixels NULL: the FITS data bytes,
					 * in the decoded file (see
					 * load_fits_decode_lazy) */
	uint64_t datasize;
	unsigned char *keywords;   /* nkw slots of ISIO_KW_SIZE bytes, ready */
	unsigned nkw;
};

/* Decode the FITS file in BYTES (LEN bytes): the primary HDU's image, or the
 * first extension's when the primary has no data (tile-compressed images
 * included). Type from BITPIX/BZERO: 8 uint8, 8 & BZERO -128 int8, 16 int16,
 * 16 & 32768 uint16, 32 int32, 32 & 2^31 uint32, 64 int64, 64 & 2^63 uint64,
 * -32 float, -64 double; any other BSCALE/BZERO: float, scaling applied.
 * Non-structural cards become keyword slots. Every header CFITSIO will read
 * is checked on the bytes before it reads it (core/fitscheck.c). Returns 0,
 * -EINVAL (malformed header, NAXIS 0 or over 3, sizes that overflow, ...),
 * -EIO (data shorter than the header promises) or -EFBIG (an image or its
 * tiles larger than a load may use, below), with one sentence in WHY;
 * -ENOMEM. */
int load_fits_decode(const void *bytes, size_t len, struct load_image *img, char *why,
		     size_t whylen);

/* The same, except that an uncompressed image whose data need no scaling
 * (BITPIX as it is, unsigned and int8 by BZERO, unscaled floats) is not
 * decoded: img->fits_data points at its data in BYTES, img->pixels is NULL,
 * and load_stream converts the data straight into the stream. BYTES must
 * stay mapped and unchanged until load_stream returns. A file whose last
 * record is short (its padding missing) is decoded as load_fits_decode
 * does. */
int load_fits_decode_lazy(const void *bytes, size_t len, struct load_image *img, char *why,
			  size_t whylen);

/* What a decode may use: the image's pixels, no more than the limit set
 * here (0, the default: the machine's physical memory), refused with EFBIG
 * beyond it, plus a fixed margin (one compressed tile's buffers; the
 * headers are checked before CFITSIO reads them, so nothing else it
 * allocates depends on the file's claims). Process-wide; the fuzz target
 * lowers it to keep its runs small. */
void load_set_image_limit(uint64_t bytes);

/* Free what load_fits_decode put in IMG and zero it; IMG may be zeroed
 * already (a failed decode leaves it so). */
void load_image_free(struct load_image *img);

enum load_result { LOAD_CREATED, LOAD_UPDATED, LOAD_REPLACED };

/* Put IMG into stream NAME (without ".im.shm") in directory DIRFD:
 * - no NAME.im.shm: create it (mode 0666 whatever the umask, as ImageStreamIO
 *   makes streams, then chown to UID/GID unless they are -1), filled
 *   completely before it appears under its name;
 * - a stream of the same type and shape: update it in place as one frame
 *   (write flag, pixels, keywords, write time, cnt0 + 1, semaphores posted);
 * - anything else (other shape or type, not a valid stream): replace it by a
 *   new file (new inode) with rename.
 * A symlink NAME.im.shm (a stream link) is followed: the stream it names is
 * updated or replaced, the link stays. Nothing is left behind on failure.
 * The loads of one process (load_stream, load_mrc_imod) write one at a
 * time, so concurrent loads of one name each write a whole frame, the last
 * one's staying; a name another process makes meanwhile is loaded in place.
 * Returns 0 and *DID, or -errno with a sentence in WHY. */
int load_stream(int dirfd, const char *name, const struct load_image *img, uid_t uid, gid_t gid,
		enum load_result *did, char *why, size_t whylen);

/* munmap(ADDR, LEN), done by a thread of its own when LEN is large (a
 * caller that is waited for need not wait for it too). */
void load_unmap(void *addr, size_t len);
/* The turn of one writer of frames: loads take it, and so must any other
 * writer of frames in this process (a view written back), or two frames
 * written into one object at once would mix. */
void load_turn_begin(void);
void load_turn_end(void);

/* Fill the IMOD shared-memory file OBJNAME ("IMODShrMem_KB_NAME") in DIRFD
 * from the MRC file in BYTES: capacity KB x 1024 from the name, IMOD's
 * in-memory header at the front, the data from byte 2048. Created when
 * missing (mode 0600 whatever the umask, as IMOD's own creators make these
 * objects; chowned to UID/GID as above), filled in place when present.
 * Returns 0, -EINVAL (not a usable MRC, bad name), -EIO (data shorter than
 * the header promises) or -ENOSPC (does not fit: WHY gives the KB needed). */
int load_mrc_imod(int dirfd, const char *objname, const void *bytes, size_t len, uid_t uid,
		  gid_t gid, enum load_result *did, char *why, size_t whylen);

#endif
