/* describe.h - a shared-memory object put into words: the DETAILS column of
 * `shmtool ls`, the fields of its JSON objects, and everything `shmtool
 * info` shows (stream keywords and semaphores, System V times, a CFITSIO
 * file's header). */
#ifndef SHMTOOLS_DESCRIBE_H
#define SHMTOOLS_DESCRIBE_H

#include <stddef.h>
#include <sys/types.h>

#include "out.h"
#include "shmobj.h"

/* User and group names, or the number when there is no name. */
void describe_user(uid_t uid, char *buf, size_t len);
void describe_group(gid_t gid, char *buf, size_t len);

/* The short state of O for a listing ("cnt0=12 writing", "nattch=0
 * cpid=123(gone)", ...); FULL adds what `ls -l` shows. */
void describe_details(const struct obj *o, int full, char *buf, size_t len);

/* The fields every record of O has (name, backend, format, type, shape,
 * size, owner, mode, times, and per format its state). */
void describe_fields(struct rec *r, const struct obj *o);

/* What only `info` shows: a stream's metadata, semaphores and keywords, an
 * IMOD image's header, a segment's times and creator, a CFITSIO file's
 * header cards. Reads the object again. */
void describe_more(struct rec *r, const struct obj *o);

#endif
