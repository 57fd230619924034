/* fitscheck.c - the headers of a FITS file checked on its raw bytes before
 * CFITSIO opens it (fitscheck_headers, see fitscheck.h), so that CFITSIO
 * 4.2 never reads a header it would mishandle. It trusts header values too
 * much: a table's NAXIS1 or NAXIS2 that is not a positive integer leaves
 * its TFIELDS unread and CFITSIO allocates column structures by whatever
 * the variable held (gigabytes, found by tests/fuzz/fuzz_load.c); a
 * TFIELDS over 999 is reported without setting the error; some integer
 * values overrun a message buffer (fitsload_key_int); a compressed image's
 * ZTILEn, ZVALn and tile size are divided by and allocated by unchecked.
 * So every header CFITSIO will visit (the primary, and the first extension
 * when the primary has no image) must be the standard's, strictly, before
 * it is handed over. */
#define _GNU_SOURCE /* memmem */
#include "fitscheck.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <fitsio.h>
/* CFITSIO's internal header, installed with it: the card parsers (ffgknm,
 * ffpsvc, ffc2jj, ffc2s) that fitsio.h does not declare. */
#include <fitsio2.h>

#include "fitshdr.h"
#include "fitsload.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int fitscheck_in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return 1;
	return 0;
}

int fitscheck_indexed(const char *name, const char *prefix, int bare)
{
	size_t len = strlen(prefix);
	if (strncmp(name, prefix, len) != 0)
		return 0;
	if (name[len] == '\0')
		return bare;
	for (const char *p = name + len; *p; p++)
		if (*p < '0' || *p > '9')
			return 0;
	return 1;
}

int fitscheck_card_int(char *card, long long *v)
{
	char value[FLEN_VALUE], comment[FLEN_COMMENT];
	int status = 0;
	LONGLONG x = 0;
	if (ffpsvc(card, value, comment, &status) <= 0)
		ffc2jj(value, &x, &status);
	*v = x;
	return status > 0 ? status : 0;
}

/* Whether CFITSIO can read CARD (named NAME, upper case) safely: the
 * keywords it reads as integers itself (the structure, binary tables, tile
 * compression) must not have a value text of 28 characters or more, which
 * its ffc2j cannot report on without overrunning a buffer (see
 * fitsload_key_int). */
static int value_safe(char *card, const char *name)
{
	static const char *const integers[] = {
		"BITPIX", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP", "BLANK", "EXTVER", "EXTLEVEL",
		"ZBITPIX", "ZBLANK", "ZDITHER0", "ZPCOUNT", "ZGCOUNT",
	};
	static const char *const indexes[] = {"NAXIS", "TBCOL", "TNULL", "ZNAXIS", "ZTILE", "ZVAL"};
	char value[FLEN_VALUE], comment[FLEN_COMMENT];
	int status = 0, integer = fitscheck_in_list(name, integers, COUNT(integers));
	for (size_t i = 0; i < COUNT(indexes) && !integer; i++)
		integer = fitscheck_indexed(name, indexes[i], 1);
	if (!integer)
		return 1;
	return ffpsvc(card, value, comment, &status) == 0 && strlen(value) < 28;
}

/* One header in the buffer: NCARDS cards before its END card. */
struct header {
	const char *cards;
	size_t ncards;
	uint64_t data_start; /* the record after the END card's */
	const char *what;    /* "primary", "first extension's", for messages */
};

/* Card I of H, NUL-terminated, in CARD; its name as CFITSIO finds it (up
 * to a blank or '=', case kept) in NAME. Returns 0, or a CFITSIO status. */
static int card_at(const struct header *h, size_t i, char *card, char *name)
{
	int namelen = 0, status = 0;
	memcpy(card, h->cards + i * FITS_CARD, FITS_CARD);
	card[FITS_CARD] = '\0';
	return ffgknm(card, name, &namelen, &status);
}

/* The header starting at byte START of BUF (LEN bytes), up to its END
 * card, which must be within LEN. */
static int find_header(const char *buf, size_t len, uint64_t start, const char *what,
		       struct header *h, char *why, size_t whylen)
{
	h->cards = buf + start;
	h->what = what;
	for (uint64_t off = start; off + FITS_CARD <= len; off += FITS_CARD) {
		char card[FLEN_CARD], name[FLEN_KEYWORD];
		h->ncards = (size_t)(off - start) / FITS_CARD;
		if (card_at(h, h->ncards, card, name) == 0 && strcmp(name, "END") == 0) {
			h->data_start = (off / FITS_BLOCK + 1) * FITS_BLOCK;
			return 0;
		}
	}
	FAIL(EINVAL, "the %s header has no END card", what);
}

/* Mandatory card I of H: keyword NAME (exactly) with an integer value from
 * LO to HI, read as CFITSIO reads it (strtol, junk after it refused). */
static int mandatory(const struct header *h, size_t i, const char *name, long long lo,
		     long long hi, long long *v, char *why, size_t whylen)
{
	char card[FLEN_CARD], key[FLEN_KEYWORD];
	if (i < h->ncards && card_at(h, i, card, key) == 0 && strcmp(key, name) == 0 &&
	    value_safe(card, key) && fitscheck_card_int(card, v) == 0 && *v >= lo && *v <= hi)
		return 0;
	FAIL(EINVAL, "card %zu of the %s header should be %s, an integer from %lld to %lld", i + 1,
	     h->what, name, lo, hi);
}

/* What every card of one header says about the structure, each copy of a
 * keyword checked (CFITSIO reads the first of some, the last of others). */
struct scan {
	int zimage, rice, groups, has_zcmptype, zcmptype_ok, data_column;
	char zcmptype[FLEN_VALUE];
	long long pcount, gcount, tfields, theap, zbitpix, znaxis, dims[3], tiles[3], val1, val2;
	int has_pcount, has_gcount, has_tfields, has_theap, has_zbitpix, has_znaxis, has_val1,
		has_val2;
};

/* Record V as the value of a keyword in *SLOT (*SEEN once it has one).
 * Returns 0 if a copy seen before said otherwise. */
static int agree(long long *slot, int *seen, long long v)
{
	int same = !*seen || *slot == v;
	*slot = v;
	*seen = 1;
	return same;
}

/* The integer value of CARD, from LO to HI and the same as any copy seen
 * before, recorded in *SLOT and *SEEN (agree). */
static int agreed_int(char *card, long long lo, long long hi, long long *slot, int *seen)
{
	long long v;
	return fitscheck_card_int(card, &v) == 0 && v >= lo && v <= hi && agree(slot, seen, v);
}

/* Every card of H. Returns 0 or -EINVAL with a sentence in WHY. */
static int scan_header(const struct header *h, struct scan *s, char *why, size_t whylen)
{
	memset(s, 0, sizeof *s);
	for (size_t i = 0; i < h->ncards; i++) {
		char card[FLEN_CARD], name[FLEN_KEYWORD];
		long long v = 0;
		int good = 1;
		if (card_at(h, i, card, name) > 0)
			continue; /* not a keyword CFITSIO can name: a value card it ignores */
		for (int k = 0; name[k]; k++)
			if (name[k] >= 'a' && name[k] <= 'z')
				name[k] = (char)(name[k] - 'a' + 'A');
		if (!value_safe(card, name))
			FAIL(EINVAL, "card %zu (%.16s) of the %s header has a value too long for its kind",
			     i + 1, name, h->what);
		const char *c = h->cards + i * FITS_CARD;
		if (strcmp(name, "ZIMAGE") == 0) {
			char value[FLEN_VALUE], comment[FLEN_COMMENT];
			int status = 0;
			s->zimage |= ffpsvc(card, value, comment, &status) == 0 && value[0] == 'T';
		} else if (strcmp(name, "GROUPS") == 0) {
			s->groups = 1;
		} else if (strcmp(name, "ZCMPTYPE") == 0) {
			char value[FLEN_VALUE], comment[FLEN_COMMENT], text[FLEN_VALUE] = "";
			int status = 0;
			s->rice |= memmem(c + 10, FITS_CARD - 10, "RICE", 4) != NULL; /* RICE_1, RICE_ONE */
			good = ffpsvc(card, value, comment, &status) == 0 &&
			       ffc2s(value, text, &status) == 0 &&
			       (!s->has_zcmptype || strcmp(text, s->zcmptype) == 0);
			snprintf(s->zcmptype, sizeof s->zcmptype, "%s", text);
			s->has_zcmptype = 1;
		} else if (fitscheck_indexed(name, "TTYPE", 0)) {
			/* CFITSIO needs this column, found without case */
			char value[FLEN_VALUE], comment[FLEN_COMMENT], text[FLEN_VALUE] = "";
			int status = 0;
			if (ffpsvc(card, value, comment, &status) == 0 &&
			    ffc2s(value, text, &status) == 0 && strcasecmp(text, "COMPRESSED_DATA") == 0)
				s->data_column = atoi(name + 5);
		} else if (strcmp(name, "PCOUNT") == 0) {
			good = agreed_int(card, LLONG_MIN, LLONG_MAX, &s->pcount, &s->has_pcount);
		} else if (strcmp(name, "GCOUNT") == 0) {
			good = agreed_int(card, LLONG_MIN, LLONG_MAX, &s->gcount, &s->has_gcount);
		} else if (strcmp(name, "TFIELDS") == 0) {
			good = agreed_int(card, 0, 999, &s->tfields, &s->has_tfields);
		} else if (strcmp(name, "THEAP") == 0) {
			good = agreed_int(card, LLONG_MIN, LLONG_MAX, &s->theap, &s->has_theap);
		} else if (strcmp(name, "ZBITPIX") == 0) {
			good = agreed_int(card, LLONG_MIN, LLONG_MAX, &s->zbitpix, &s->has_zbitpix);
		} else if (strcmp(name, "ZNAXIS") == 0) {
			good = agreed_int(card, 1, 3, &s->znaxis, &s->has_znaxis);
		} else if (strcmp(name, "ZVAL1") == 0 || strcmp(name, "ZVAL2") == 0) {
			/* only RICE's are checked (below): other algorithms' may be reals */
			int first = name[4] == '1';
			if (fitscheck_card_int(card, &v) != 0)
				v = -1;
			if (!agree(first ? &s->val1 : &s->val2, first ? &s->has_val1 : &s->has_val2, v))
				*(first ? &s->val1 : &s->val2) = -1;
		} else if (fitscheck_indexed(name, "ZNAXIS", 0) || fitscheck_indexed(name, "ZTILE", 0)) {
			int tile = name[1] == 'T';
			int axis = atoi(name + (tile ? 5 : 6));
			good = fitscheck_card_int(card, &v) == 0 && v >= 1;
			if (good && axis >= 1 && axis <= 3) {
				long long *slot = tile ? &s->tiles[axis - 1] : &s->dims[axis - 1];
				good = *slot == 0 || *slot == v;
				*slot = v;
			}
		}
		if (!good)
			FAIL(EINVAL, "card %zu (%.16s) of the %s header has an unusable value", i + 1,
			     name, h->what);
	}
	return 0;
}

static int bitpix_ok(long long b)
{
	return b == 8 || b == 16 || b == 32 || b == 64 || b == -32 || b == -64;
}

/* The axes of an image (NAXIS of them in AXES) as a stream can hold them,
 * into LAY. */
static int loadable(int naxis, const long long *axes, struct fitscheck_layout *lay, char *why,
		    size_t whylen)
{
	if (naxis < 1 || naxis > 3)
		FAIL(EINVAL, "NAXIS is %d; images of 1 to 3 axes can be loaded", naxis);
	lay->naxis = naxis;
	lay->nelement = 1;
	for (int i = 0; i < 3; i++) {
		if (i < naxis && (axes[i] < 1 || (uint64_t)axes[i] > UINT32_MAX))
			FAIL(EINVAL, "NAXIS%d is %lld; a stream axis holds 1 to %u", i + 1, axes[i],
			     UINT32_MAX);
		lay->naxes[i] = i < naxis ? (uint64_t)axes[i] : 1;
		if (__builtin_mul_overflow(lay->nelement, lay->naxes[i], &lay->nelement))
			FAIL(EINVAL, "the image sizes overflow");
	}
	return 0;
}

/* BITPIX, NAXIS and NAXISn of an image header (cards 2, 3, 4...): NAXIS
 * into *NAXIS, the first three axes into AXES, the data size (bytes) into
 * *BYTES. */
static int image_keys(const struct header *h, long long *bitpix, int *naxis, long long *axes,
		      uint64_t *bytes, char *why, size_t whylen)
{
	long long n, v;
	int rc = mandatory(h, 1, "BITPIX", -64, 64, bitpix, why, whylen);
	if (rc < 0)
		return rc;
	if (!bitpix_ok(*bitpix))
		FAIL(EINVAL, "BITPIX is %lld; FITS has 8, 16, 32, 64, -32 and -64", *bitpix);
	rc = mandatory(h, 2, "NAXIS", 0, 999, &n, why, whylen);
	if (rc < 0)
		return rc;
	*naxis = (int)n;
	uint64_t count = n ? 1 : 0;
	for (int i = 0; i < n; i++) {
		char key[FLEN_KEYWORD];
		snprintf(key, sizeof key, "NAXIS%d", i + 1);
		rc = mandatory(h, 3 + (size_t)i, key, 0, INT64_MAX, &v, why, whylen);
		if (rc < 0)
			return rc;
		if (i < 3)
			axes[i] = v;
		if (__builtin_mul_overflow(count, (uint64_t)v, &count))
			FAIL(EINVAL, "the image sizes overflow");
	}
	if (__builtin_mul_overflow(count, (uint64_t)(*bitpix < 0 ? -*bitpix : *bitpix) / 8, bytes))
		FAIL(EINVAL, "the image sizes overflow");
	return 0;
}

/* The data promised by H at LAY->data_start, all within LEN. */
static int data_in(const struct header *h, uint64_t bytes, size_t len,
		   struct fitscheck_layout *lay, char *why, size_t whylen)
{
	lay->data_start = h->data_start;
	lay->data_bytes = bytes;
	if (h->data_start > len || bytes > len - h->data_start)
		FAIL(EIO, "the file ends at byte %zu, its header promises data up to byte %llu", len,
		     (unsigned long long)h->data_start + (unsigned long long)bytes);
	lay->hdu_end = h->data_start + (bytes + FITS_BLOCK - 1) / FITS_BLOCK * FITS_BLOCK;
	return 0;
}

/* An image HDU (the primary's or an IMAGE extension's) with its image. */
static int image_hdu(const struct header *h, const struct scan *s, size_t len,
		     struct fitscheck_layout *lay, char *why, size_t whylen)
{
	long long bitpix, axes[3] = {0, 0, 0};
	int naxis;
	uint64_t bytes;
	int rc = image_keys(h, &bitpix, &naxis, axes, &bytes, why, whylen);
	if (rc < 0)
		return rc;
	if (s->groups || (s->has_pcount && s->pcount != 0) || (s->has_gcount && s->gcount != 1))
		FAIL(EINVAL, "the %s HDU has random groups or PCOUNT/GCOUNT other than 0/1: no image",
		     h->what);
	lay->bitpix = (int)bitpix;
	if (naxis == 0)
		return 0; /* no image here; the caller looks further */
	rc = loadable(naxis, axes, lay, why, whylen);
	return rc < 0 ? rc : data_in(h, bytes, len, lay, why, whylen);
}

/* A tile-compressed image: a BINTABLE (cards 2 to 8 as the standard has
 * them) with ZIMAGE = T, its tiling usable, no tile over the bound. */
static int compressed_hdu(const struct header *h, const struct scan *s, size_t len,
			  struct fitscheck_layout *lay, char *why, size_t whylen)
{
	long long v, naxis1, naxis2, pcount, tfields;
	int rc;
	if ((rc = mandatory(h, 1, "BITPIX", 8, 8, &v, why, whylen)) < 0 ||
	    (rc = mandatory(h, 2, "NAXIS", 2, 2, &v, why, whylen)) < 0 ||
	    (rc = mandatory(h, 3, "NAXIS1", 0, INT64_MAX, &naxis1, why, whylen)) < 0 ||
	    (rc = mandatory(h, 4, "NAXIS2", 0, INT64_MAX, &naxis2, why, whylen)) < 0 ||
	    (rc = mandatory(h, 5, "PCOUNT", 0, INT64_MAX, &pcount, why, whylen)) < 0 ||
	    (rc = mandatory(h, 6, "GCOUNT", 1, 1, &v, why, whylen)) < 0 ||
	    (rc = mandatory(h, 7, "TFIELDS", 0, 999, &tfields, why, whylen)) < 0)
		return rc;
	if (!s->zimage)
		FAIL(EINVAL, "the primary HDU has no image and the first extension is a table");
	uint64_t table, bytes;
	if (__builtin_mul_overflow((uint64_t)naxis1, (uint64_t)naxis2, &table) ||
	    __builtin_add_overflow(table, (uint64_t)pcount, &bytes))
		FAIL(EINVAL, "the compressed image's table sizes overflow");
	if (s->has_theap && (s->theap < 0 || (uint64_t)s->theap < table ||
			     (uint64_t)s->theap > bytes))
		FAIL(EINVAL, "the compressed image's THEAP (%lld) is outside its table's data",
		     s->theap);
	if (!s->has_zbitpix || !bitpix_ok(s->zbitpix) || !s->has_znaxis)
		FAIL(EINVAL, "the compressed image header has no usable ZBITPIX or ZNAXIS");
	lay->compressed = 1;
	lay->bitpix = (int)s->zbitpix;
	rc = loadable((int)s->znaxis, s->dims, lay, why, whylen);
	if (rc < 0)
		return rc;
	uint64_t pixels = 1, tiles = 1;
	for (int i = 0; i < lay->naxis; i++) {
		long long tile = s->tiles[i] ? s->tiles[i] : i == 0 ? s->dims[0] : 1;
		if (tile > s->dims[i])
			FAIL(EINVAL, "the compressed image's axis %d (%lld, tiles of %lld) is unusable",
			     i + 1, s->dims[i], tile);
		pixels *= (uint64_t)tile; /* <= 2^24 x 2^32: no overflow */
		tiles *= (uint64_t)((s->dims[i] - 1) / tile + 1); /* <= the image's pixels */
		if (pixels > FITSCHECK_MAX_TILE_PIXELS)
			FAIL(EFBIG, "the compressed image's tiles are larger than %llu pixels",
			     (unsigned long long)FITSCHECK_MAX_TILE_PIXELS);
	}
	/* CFITSIO reads the compression parameters when it moves to the HDU,
	 * and a failure there is not reported: the move succeeds and the
	 * decoder runs on parameters never set (a huge allocation, a read far
	 * outside the file; found by fuzz_load). So each must be as it needs:
	 * a tile a row, an algorithm it decodes safely, RICE's block size
	 * (ZVAL1, required) and bytes a pixel, the COMPRESSED_DATA column. */
	if ((uint64_t)naxis2 != tiles)
		FAIL(EINVAL, "the compressed image's table has %lld rows (NAXIS2) for %llu tiles",
		     naxis2, (unsigned long long)tiles);
	if (!s->has_zcmptype ||
	    (strcasecmp(s->zcmptype, "RICE_1") != 0 && strcasecmp(s->zcmptype, "RICE_ONE") != 0 &&
	     strcasecmp(s->zcmptype, "GZIP_1") != 0 && strcasecmp(s->zcmptype, "GZIP_2") != 0))
		FAIL(EINVAL, "tile compression ZCMPTYPE '%.20s' is not supported (RICE_1 and GZIP are)",
		     s->zcmptype);
	/* RICE: ZVAL1 the block size (16 or 32), ZVAL2 bytes a pixel. */
	if (s->rice && ((!s->has_val1 || (s->val1 != 16 && s->val1 != 32)) ||
			(s->has_val2 && s->val2 != 1 && s->val2 != 2 && s->val2 != 4 && s->val2 != 8)))
		FAIL(EINVAL, "the RICE_1 parameters (ZVAL1 %lld, ZVAL2 %lld) are unusable", s->val1,
		     s->val2);
	if (s->data_column < 1 || s->data_column > tfields)
		FAIL(EINVAL, "no TTYPEn of the compressed image's table is COMPRESSED_DATA");
	return data_in(h, bytes, len, lay, why, whylen);
}

int fitscheck_headers(const char *buf, size_t len, struct fitscheck_layout *lay, char *why,
		      size_t whylen)
{
	struct header h;
	struct scan s;
	char card[FLEN_CARD], name[FLEN_KEYWORD], value[FLEN_VALUE], comment[FLEN_COMMENT];
	int status = 0;
	memset(lay, 0, sizeof *lay);
	int rc = find_header(buf, len, 0, "primary", &h, why, whylen);
	if (rc < 0)
		return rc;
	if (card_at(&h, 0, card, name) > 0 || strcmp(name, "SIMPLE") != 0 ||
	    ffpsvc(card, value, comment, &status) > 0 || strcmp(value, "T") != 0)
		FAIL(EINVAL, "not a FITS file: the first card is not SIMPLE = T");
	if ((rc = scan_header(&h, &s, why, whylen)) < 0 ||
	    (rc = image_hdu(&h, &s, len, lay, why, whylen)) < 0)
		return rc;
	lay->hdu = 1;
	if (lay->naxis)
		return 0;

	/* NAXIS = 0: the image is the first extension's, right after. */
	uint64_t start = h.data_start;
	if (start >= len)
		FAIL(EINVAL, "NAXIS is 0: the primary HDU has no image and no extension follows");
	if ((rc = find_header(buf, len, start, "first extension's", &h, why, whylen)) < 0 ||
	    (rc = scan_header(&h, &s, why, whylen)) < 0)
		return rc;
	char xtension[FLEN_VALUE] = "";
	if (card_at(&h, 0, card, name) > 0 || strcmp(name, "XTENSION") != 0 ||
	    ffpsvc(card, value, comment, &status) > 0 || ffc2s(value, xtension, &status) > 0)
		FAIL(EINVAL, "the primary HDU has no image and what follows is not an extension");
	lay->hdu = 2;
	if (strcmp(xtension, "IMAGE") == 0) {
		rc = image_hdu(&h, &s, len, lay, why, whylen);
		if (rc == 0 && lay->naxis == 0)
			FAIL(EINVAL, "NAXIS is 0 in the primary HDU and in the first extension: no image");
		return rc;
	}
	if (strcmp(xtension, "BINTABLE") == 0)
		return compressed_hdu(&h, &s, len, lay, why, whylen);
	FAIL(EINVAL, "the primary HDU has no image and the first extension is a table");
}
