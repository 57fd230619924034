/* typed.h - a user-given layout of a raw segment, the IDL SHMMAP model:
 * element type, shape, byte offset, kept as user.shmfs.* extended attributes
 * (of the backing file for POSIX objects). Shapes are given axis 1 first
 * (the fastest varying, as IDL's D1..D8 and FITS's NAXIS1..n): "512,256" is
 * 512 columns by 256 rows. */
#ifndef SHMFS_TYPED_H
#define SHMFS_TYPED_H

#include <stddef.h>
#include <stdint.h>

#include "elem.h"

#define TYPED_XATTR_TYPE "user.shmfs.type"
#define TYPED_XATTR_SHAPE "user.shmfs.shape"
#define TYPED_XATTR_OFFSET "user.shmfs.offset"
#define TYPED_MAX_AXES 8

struct typed_layout {
	enum elem_type type;
	int naxis;
	uint64_t dims[TYPED_MAX_AXES];
	uint64_t offset;
	uint64_t nelement;
	uint64_t bytes;        /* nelement x element size */
};

/* Parse a layout: TYPE (a name elem_parse knows), SHAPE ("512,512": 1 to 8
 * positive integers), OFFSET (NULL or a non-negative integer), for an object
 * of OBJECT_SIZE bytes. Returns 0, -ENODATA when TYPE or SHAPE is NULL (no
 * layout yet), or -EINVAL with a sentence in WHY (a bad value, or a layout
 * that does not fit in the object). */
int typed_parse(const char *type, const char *shape, const char *offset, uint64_t object_size,
		struct typed_layout *l, char *why, size_t whylen);

/* The layout stored in the attributes of open file FD (object of SIZE
 * bytes). Same returns as typed_parse. */
int typed_read_fd(int fd, uint64_t size, struct typed_layout *l, char *why, size_t whylen);

/* The shape as text ("512,512") into BUF. */
void typed_shape_text(const struct typed_layout *l, char *buf, size_t len);

#endif
