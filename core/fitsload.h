/* fitsload.h - what the loader's own files share, not part of the library's
 * API (that is load.h): the WHY convention and the keyword slot layout, used
 * by load.c (the writers), fitsload.c (FITS decoding) and fitstile.c. */
#ifndef SHMFS_FITSLOAD_H
#define SHMFS_FITSLOAD_H

#include <stdio.h>

/* One sentence into the caller's WHY (WHYLEN bytes; either may be 0): every
 * function that fails with a reason takes them under these names. */
#define SAY(...) do { if (why && whylen) snprintf(why, whylen, __VA_ARGS__); } while (0)
#define FAIL(err, ...) do { SAY(__VA_ARGS__); return -(err); } while (0)

/* Keyword slot layout (../shared/formats/imagestreamio.md). */
#define KW_NAME 0
#define KW_TYPE 16
#define KW_VALUE 24
#define KW_CNT 40
#define KW_COMMENT 48
#define KW_NAME_MAX 15
#define KW_STRING_MAX 15
#define KW_COMMENT_MAX 79

#endif
