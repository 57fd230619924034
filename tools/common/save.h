/* save.h - one consistent image of an object written to a file: a stream's
 * frame (taken with the stream's update protocol) as FITS, an IMOD file as
 * MRC (or FITS), a typed object as FITS, a CFITSIO file as the FITS bytes it
 * holds; the same files the mount shows as views. The file is written under
 * a temporary name next to it and renamed, so nobody sees half of it. */
#ifndef SHMTOOLS_SAVE_H
#define SHMTOOLS_SAVE_H

#include <stddef.h>

#include "progress.h"
#include "shmobj.h"
#include "typed.h"

/* Save object O to FILE: MRC for an IMOD object unless FILE ends in .fits,
 * .fit or .fts; FITS for everything else. LAYOUT, when not NULL, is a
 * layout given on the command line (type, shape, offset) that stands for a
 * raw object's own. P counts the bytes written. Returns 0, or -errno with
 * one sentence in WHY. */
int save_object(const struct obj *o, const char *file, const struct typed_layout *layout,
		struct progress *p, char *why, size_t whylen);

/* Whether FILE's name says FITS (.fits, .fit, .fts) or MRC (.mrc). */
int save_name_is_fits(const char *file);
int save_name_is_mrc(const char *file);

#endif
