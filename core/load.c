/* load.c - image files loaded into shared memory, all or nothing: FITS
 * decoded with CFITSIO into an ImageStreamIO stream, MRC into an IMOD
 * shared-memory file; see load.h.
 *
 * CFITSIO is used only through fitsfile handles private to one call (Debian
 * builds it reentrant), on the caller's bytes opened as a read-only memory
 * file. Its memory driver reads whole 2880-byte records, also past the end
 * of a buffer whose length is not a multiple of 2880, so such input is
 * copied into a zero-padded buffer first: CFITSIO never sees a byte beyond
 * LEN that is not ours. Its error stack is shared by every thread and keeps
 * messages until cleared, so it is cleared after each decode; WHY uses the
 * status text. CFITSIO 4.2 also trusts some header values and compressed
 * data more than it should (see header_ok, key_int, tiles_ok): those are
 * checked here before CFITSIO acts on them.
 *
 * New files are made nameless (O_TMPFILE), filled, then linked under their
 * name, so no reader ever sees one half written and a failure leaves
 * nothing behind. */
#define _GNU_SOURCE
#include "load.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <fitsio.h>
/* CFITSIO's internal header, installed with it: the value converters
 * (ffc2jj, ffc2dd, ffc2s, ffc2l) that fitsio.h does not declare. */
#include <fitsio2.h>

#include "fitshdr.h"
#include "guard.h"
#include "imod.h"

#define SAY(...) do { if (why && whylen) snprintf(why, whylen, __VA_ARGS__); } while (0)
#define FAIL(err, ...) do { SAY(__VA_ARGS__); return -(err); } while (0)

/* ---- FITS -> struct load_image */

/* Keyword slot layout (../shared/formats/imagestreamio.md). */
#define KW_NAME 0
#define KW_TYPE 16
#define KW_VALUE 24
#define KW_CNT 40
#define KW_COMMENT 48
#define KW_NAME_MAX 15
#define KW_STRING_MAX 15
#define KW_COMMENT_MAX 79
/* Longest string value kept (joined CONTINUE cards); only 79 characters
 * of it can be kept anyway. */
#define LONG_STRING 256

/* A tile-compressed image is decoded a tile at a time into a buffer CFITSIO
 * allocates (up to 8 bytes a pixel); a hostile header could ask for one
 * tile of billions of pixels. Tiles are refused above this. */
#define MAX_TILE_PIXELS (UINT64_C(1) << 27)

static int in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return 1;
	return 0;
}

/* NAME is PREFIX followed by digits only (or nothing, when BARE is set). */
static int indexed(const char *name, const char *prefix, int bare)
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

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Cards that describe the file rather than the image: the structure (a
 * stream keeps that in its metadata), commentary, checksums of this file,
 * DATE (a stream view writes its own), and what tile compression and its
 * binary table add when CFITSIO's uncompressed header still has any. */
static int structural(const char *name)
{
	static const char *const names[] = {
		"SIMPLE", "BITPIX", "EXTEND", "BZERO", "BSCALE", "PCOUNT", "GCOUNT",
		"XTENSION", "END", "COMMENT", "HISTORY", "", "DATE", "CHECKSUM", "DATASUM",
		"CONTINUE", "LONGSTRN", "TFIELDS", "THEAP",
		"ZIMAGE", "ZCMPTYPE", "ZBITPIX", "ZSIMPLE", "ZTENSION", "ZEXTEND", "ZBLOCKED",
		"ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM", "ZQUANTIZ", "ZDITHER0",
		"ZMASKCMP", "ZBLANK", "ZSCALE", "ZZERO",
	};
	static const char *const indexes[] = {
		"NAXIS", "ZNAXIS", "ZTILE", "ZNAME", "ZVAL", "TTYPE", "TFORM", "TUNIT",
		"TDIM", "TNULL", "TSCAL", "TZERO", "TDISP",
	};
	if (in_list(name, names, COUNT(names)))
		return 1;
	for (size_t i = 0; i < COUNT(indexes); i++)
		if (indexed(name, indexes[i], i < 2))
			return 1;
	return 0;
}

/* A keyword name FITS allows (lower case tolerated); a HIERARCH name may
 * also hold blanks and dots. */
static int name_ok(const char *name, int hierarch)
{
	for (const char *p = name; *p; p++) {
		char c = *p;
		int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			 (c >= '0' && c <= '9') || c == '_' || c == '-' ||
			 (hierarch && (c == ' ' || c == '.'));
		if (!ok)
			return 0;
	}
	return 1;
}

static void put_text(unsigned char *slot, size_t off, const char *text, size_t max)
{
	size_t n = strnlen(text, max);
	memcpy(slot + off, text, n);
	slot[off + n] = '\0';
}

/* Whether the string value starting at VALUE (blanks, then a quote) has
 * its closing quote in the card: CFITSIO's ffpsvc supplies a missing one. */
static int quote_closed(const char *value)
{
	while (*value == ' ')
		value++;
	if (*value != '\'')
		return 0;
	for (const char *p = value + 1; *p; p++) {
		if (*p != '\'')
			continue;
		if (p[1] != '\'')
			return 1;
		p++; /* a doubled quote stands for one */
	}
	return 0;
}

/* The string value of a card whose value text is VALUE, with the CONTINUE
 * cards that follow it (long-string convention) joined on; *USED counts
 * the CONTINUE cards taken. Returns 0 or a CFITSIO status. */
static int string_value(const char *value, const char *next_cards, size_t nnext, char *out,
			size_t *used)
{
	int status = 0;
	char part[FLEN_VALUE];
	*used = 0;
	if (ffc2s(value, part, &status) > 0)
		return status;
	snprintf(out, LONG_STRING, "%s", part);
	for (; *used < nnext; (*used)++) {
		size_t len = strlen(out);
		const char *card = next_cards + *used * FITS_CARD;
		if (len == 0 || out[len - 1] != '&' || strncmp(card, "CONTINUE  ", 10) != 0)
			break;
		/* Read as a value card of its own: "CONTINUE= 'text' / comment". */
		char copy[FLEN_CARD], text[FLEN_VALUE], comment[FLEN_COMMENT];
		memcpy(copy, "CONTPART= ", 10); /* CFITSIO gives CONTINUE no value */
		memcpy(copy + 10, card + 10, FITS_CARD - 10);
		copy[FITS_CARD] = '\0';
		if (!quote_closed(copy + 10) || ffpsvc(copy, text, comment, &status) > 0 ||
		    ffc2s(text, part, &status) > 0)
			return status ? status : NO_QUOTE;
		out[len - 1] = '\0';
		snprintf(out + len - 1, LONG_STRING - (len - 1), "%s", part);
	}
	return 0;
}

/* Fill SLOT from one card (80 characters, CFITSIO has checked nothing but
 * the structure). NEXT holds the NNEXT cards after it, for CONTINUE.
 * Returns 1 (slot filled), 0 (card skipped) or -EINVAL; *USED counts cards
 * taken after this one.
 *
 * Values: logical T/F become 'L' 1/0, integers 'L' (too large for int64:
 * 'D'), reals 'D', strings 'S'. A slot holds 15 characters of a string, so
 * a longer one keeps its first 15 there and the whole string (up to 79
 * characters) in the comment, in place of the card's comment. Names longer
 * than 15 characters (HIERARCH) are skipped, as are complex and undefined
 * values. */
static int card_to_slot(const char *cardp, const char *next, size_t nnext, unsigned char *slot,
			size_t *used, size_t index, char *why, size_t whylen)
{
	char card[FLEN_CARD], name[FLEN_KEYWORD], value[FLEN_VALUE], comment[FLEN_COMMENT];
	int status = 0, namelen = 0;
	char dtype = 0;
	*used = 0;
	memcpy(card, cardp, FITS_CARD);
	card[FITS_CARD] = '\0';
	if (fftrec(card, &status) > 0)
		FAIL(EINVAL, "header card %zu holds a character FITS does not allow", index + 1);
	if (ffgknm(card, name, &namelen, &status) > 0)
		FAIL(EINVAL, "header card %zu has no readable keyword name", index + 1);
	if (structural(name))
		return 0;
	int hierarch = strncmp(card, "HIERARCH", 8) == 0;
	if (!name_ok(name, hierarch))
		FAIL(EINVAL, "header card %zu has an illegal keyword name '%.16s'", index + 1, name);
	if (ffpsvc(card, value, comment, &status) > 0)
		FAIL(EINVAL, "header card %zu (%.16s) has an unreadable value", index + 1, name);
	if (value[0] == '\0' || strlen(name) > KW_NAME_MAX)
		return 0; /* commentary or undefined value; too long a name */
	if (ffdtyp(value, &dtype, &status) > 0)
		FAIL(EINVAL, "header card %zu (%.16s) has an unreadable value", index + 1, name);

	memset(slot, 0, ISIO_KW_SIZE);
	put_text(slot, KW_NAME, name, KW_NAME_MAX);
	put_text(slot, KW_COMMENT, comment, KW_COMMENT_MAX);
	switch (dtype) {
	case 'L': {
		int l = 0;
		int64_t v;
		if (ffc2l(value, &l, &status) > 0)
			break;
		v = l ? 1 : 0;
		slot[KW_TYPE] = 'L';
		memcpy(slot + KW_VALUE, &v, 8);
		return 1;
	}
	case 'I': {
		LONGLONG v;
		if (ffc2jj(value, &v, &status) == 0) {
			int64_t i = v;
			slot[KW_TYPE] = 'L';
			memcpy(slot + KW_VALUE, &i, 8);
			return 1;
		}
		if (status != NUM_OVERFLOW)
			break;
		status = 0; /* beyond int64: kept as a real */
	}
		__attribute__((fallthrough));
	case 'F': {
		double d;
		if (ffc2dd(value, &d, &status) > 0)
			break;
		slot[KW_TYPE] = 'D';
		memcpy(slot + KW_VALUE, &d, 8);
		return 1;
	}
	case 'C': {
		char text[LONG_STRING];
		const char *start = hierarch ? strchr(card, '=') : card + 8;
		if (!start || !quote_closed(start + 1) ||
		    string_value(value, next, nnext, text, used) > 0)
			break;
		slot[KW_TYPE] = 'S';
		put_text(slot, KW_VALUE, text, KW_STRING_MAX);
		if (strlen(text) > KW_STRING_MAX)
			put_text(slot, KW_COMMENT, text, KW_COMMENT_MAX);
		return 1;
	}
	default: /* complex */
		return 0;
	}
	FAIL(EINVAL, "header card %zu (%.16s) has a value that cannot be read as its type",
	     index + 1, name);
}

/* The keyword slots of the current HDU: the header of the image itself,
 * also for a tile-compressed one (CFITSIO rebuilds it). */
static int read_keywords(fitsfile *fp, struct load_image *img, char *why, size_t whylen)
{
	char *header = NULL;
	int ncards = 0, status = 0, rc = 0;
	if (fits_convert_hdr2str(fp, 0, NULL, 0, &header, &ncards, &status) > 0) {
		char text[FLEN_STATUS];
		fits_get_errstatus(status, text);
		FAIL(EINVAL, "the FITS header cannot be read (CFITSIO: %s)", text);
	}
	size_t n = strlen(header) / FITS_CARD;
	if ((size_t)ncards < n)
		n = (size_t)ncards;
	size_t cap = n < UINT16_MAX ? n : UINT16_MAX; /* a stream's NBkw is 16 bits */
	img->keywords = calloc(cap ? cap : 1, ISIO_KW_SIZE);
	if (!img->keywords) {
		rc = -ENOMEM;
		SAY("no memory for %zu header cards", n);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *card = header + i * FITS_CARD;
		if (strncmp(card, "END ", 4) == 0)
			break;
		unsigned char slot[ISIO_KW_SIZE];
		size_t used = 0;
		rc = card_to_slot(card, card + FITS_CARD, n - i - 1, slot, &used, i, why, whylen);
		if (rc < 0)
			goto out;
		if (rc == 1 && img->nkw < cap)
			memcpy(img->keywords + (size_t)img->nkw++ * ISIO_KW_SIZE, slot, ISIO_KW_SIZE);
		i += used;
		rc = 0;
	}
out:
	status = 0;
	fits_free_memory(header, &status);
	return rc;
}

/* Read integer keyword NAME of the current HDU into *V. CFITSIO's own
 * integer reads (fits_read_key with TINT, TLONG, TLONGLONG) go through
 * ffc2j, which in 4.2 overruns a message buffer (and aborts, built with
 * _FORTIFY_SOURCE) on a value text of 29 characters or more that is no
 * integer; ffc2jj does not. Returns 0, or a CFITSIO status (KEY_NO_EXIST
 * when the card is missing). */
static int key_int(fitsfile *fp, const char *name, long long *v)
{
	char card[FLEN_CARD], value[FLEN_VALUE], comment[FLEN_COMMENT], key[FLEN_KEYWORD];
	int status = 0;
	LONGLONG x;
	snprintf(key, sizeof key, "%s", name);
	if (fits_read_card(fp, key, card, &status) > 0 || ffpsvc(card, value, comment, &status) > 0 ||
	    ffc2jj(value, &x, &status) > 0)
		return status;
	*v = x;
	return 0;
}

/* Bytes of data the raw header of the current HDU promises (before
 * padding): |BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn). For a
 * tile-compressed image these are its binary table's. Returns 0, or -1 if
 * the header does not say or the size overflows. */
static int promised_bytes(fitsfile *fp, uint64_t *bytes)
{
	long long bitpix = 0, naxis = 0, pcount = 0, gcount = 1, axis;
	char key[FLEN_KEYWORD];
	if (key_int(fp, "BITPIX", &bitpix) > 0 || key_int(fp, "NAXIS", &naxis) > 0 || naxis < 0 ||
	    naxis > 999 || bitpix < -64 || bitpix > 64)
		return -1;
	uint64_t n = naxis ? 1 : 0;
	for (int i = 1; i <= naxis; i++) {
		snprintf(key, sizeof key, "NAXIS%d", i);
		if (key_int(fp, key, &axis) > 0 || axis < 0 ||
		    __builtin_mul_overflow(n, (uint64_t)axis, &n))
			return -1;
	}
	if (key_int(fp, "PCOUNT", &pcount) > 0)
		pcount = 0;
	if (key_int(fp, "GCOUNT", &gcount) > 0)
		gcount = 1;
	uint64_t b = (uint64_t)(bitpix < 0 ? -bitpix : bitpix) / 8;
	if (pcount < 0 || gcount < 0 || __builtin_add_overflow(n, (uint64_t)pcount, &n) ||
	    __builtin_mul_overflow(n, (uint64_t)gcount, &n) || __builtin_mul_overflow(n, b, bytes))
		return -1;
	return 0;
}

/* The element type for BITPIX and CFITSIO's equivalent type (which says
 * whether BZERO/BSCALE make it unsigned, int8, or scaled), and the CFITSIO
 * datatype to read it as. Scaled integers become float32; BITPIX -64 stays
 * double, scaled or not, so no precision is lost there. */
static enum elem_type pick_type(int bitpix, int equiv, int *datatype)
{
	static const struct {
		int bitpix, equiv;
		enum elem_type type;
		int datatype;
	} map[] = {
		{BYTE_IMG, BYTE_IMG, ELEM_U8, TBYTE},
		{BYTE_IMG, SBYTE_IMG, ELEM_I8, TSBYTE},
		{SHORT_IMG, SHORT_IMG, ELEM_I16, TSHORT},
		{SHORT_IMG, USHORT_IMG, ELEM_U16, TUSHORT},
		{LONG_IMG, LONG_IMG, ELEM_I32, TINT},
		{LONG_IMG, ULONG_IMG, ELEM_U32, TUINT},
		{LONGLONG_IMG, LONGLONG_IMG, ELEM_I64, TLONGLONG},
		{LONGLONG_IMG, ULONGLONG_IMG, ELEM_U64, TULONGLONG},
	};
	_Static_assert(sizeof(int) == 4, "TINT and TUINT are 32-bit here");
	for (size_t i = 0; i < COUNT(map); i++)
		if (map[i].bitpix == bitpix && map[i].equiv == equiv) {
			*datatype = map[i].datatype;
			return map[i].type;
		}
	if (bitpix == DOUBLE_IMG) {
		*datatype = TDOUBLE;
		return ELEM_F64;
	}
	*datatype = TFLOAT;
	return ELEM_F32;
}

/* The integer value of CARD, or 0 and *OK cleared if it has none. */
static long long card_int(const char *cardp, int *ok)
{
	char card[FLEN_CARD], value[FLEN_VALUE], comment[FLEN_COMMENT];
	int status = 0;
	LONGLONG v = 0;
	memcpy(card, cardp, FITS_CARD);
	card[FITS_CARD] = '\0';
	if (ffpsvc(card, value, comment, &status) > 0 || ffc2jj(value, &v, &status) > 0)
		*ok = 0;
	return v;
}

/* Whether CFITSIO can read CARD (named NAME, upper case) safely: the
 * keywords it reads as integers itself (the structure, binary tables, tile
 * compression) must not have a value text of 28 characters or more, which
 * its ffc2j cannot report on without overrunning a buffer (see key_int). */
static int value_safe(char *card, const char *name)
{
	static const char *const integers[] = {
		"BITPIX", "PCOUNT", "GCOUNT", "TFIELDS", "THEAP", "BLANK", "EXTVER", "EXTLEVEL",
		"ZBITPIX", "ZBLANK", "ZDITHER0", "ZPCOUNT", "ZGCOUNT",
	};
	static const char *const indexes[] = {"NAXIS", "TBCOL", "TNULL", "ZNAXIS", "ZTILE", "ZVAL"};
	char value[FLEN_VALUE], comment[FLEN_COMMENT];
	int status = 0, integer = in_list(name, integers, COUNT(integers));
	for (size_t i = 0; i < COUNT(indexes) && !integer; i++)
		integer = indexed(name, indexes[i], 1);
	if (!integer)
		return 1;
	return ffpsvc(card, value, comment, &status) == 0 && strlen(value) < 28;
}

/* The extension header at HDR (up to END or the end of the buffer)
 * checked before CFITSIO reads it: TFIELDS, which CFITSIO allocates by, and
 * for a tile-compressed image the tiling, as CFITSIO 4.2
 * divides by ZTILEn and by RICE's block size without looking (a zero
 * kills the process), and allocates a whole tile at once, so tiles must be
 * no larger than the image and than MAX_TILE_PIXELS. Every copy of a
 * keyword is checked, whichever CFITSIO uses. Returns 0 or -EINVAL. */
static int header_ok(const char *hdr, size_t room, char *why, size_t whylen)
{
	long long znaxis = -1, dims[3] = {0, 0, 0}, tiles[3] = {0, 0, 0};
	int ok = 1, zimage = 0, rice = 0, zval1 = 0, zval2 = 0;
	long long val1 = 0, val2 = 0;
	for (size_t off = 0; off + FITS_CARD <= room; off += FITS_CARD) {
		const char *c = hdr + off;
		char card[FLEN_CARD], name[FLEN_KEYWORD];
		int namelen = 0, status = 0;
		memcpy(card, c, FITS_CARD);
		card[FITS_CARD] = '\0';
		/* The name as CFITSIO finds it: up to a blank or '=' ("ZVAL1  U="
		 * is ZVAL1), compared without case. */
		if (ffgknm(card, name, &namelen, &status) > 0)
			continue;
		for (int i = 0; name[i]; i++)
			if (name[i] >= 'a' && name[i] <= 'z')
				name[i] = (char)(name[i] - 'a' + 'A');
		if (strcmp(name, "END") == 0)
			break;
		if (!value_safe(card, name))
			FAIL(EINVAL, "header card %zu (%.16s) has a value too long for its kind",
			     off / FITS_CARD + 1, name);
		if (strcmp(name, "ZIMAGE") == 0)
			zimage = 1;
		else if (strcmp(name, "TFIELDS") == 0) {
			long long v = card_int(c, &ok);
			if (!ok || v < 0 || v > 999)
				FAIL(EINVAL, "the extension's TFIELDS is not 0 to 999");
		}
		else if (strcmp(name, "ZCMPTYPE") == 0)
			rice |= memmem(c + 10, FITS_CARD - 10, "RICE", 4) != NULL; /* RICE_1, RICE_ONE */
		else if (strcmp(name, "ZNAXIS") == 0) {
			long long v = card_int(c, &ok);
			ok &= v >= 1 && v <= 3 && (znaxis == -1 || znaxis == v);
			znaxis = v;
		} else if (strcmp(name, "ZVAL1") == 0 || strcmp(name, "ZVAL2") == 0) {
			/* only RICE's are checked: other algorithms' may be reals */
			int good = 1;
			long long v = card_int(c, &good);
			int first = name[4] == '1';
			long long *val = first ? &val1 : &val2;
			int *seen = first ? &zval1 : &zval2;
			if (*seen && *val != v)
				good = 0;
			*val = good ? v : -1;
			*seen = 1;
		} else if (indexed(name, "ZNAXIS", 0) || indexed(name, "ZTILE", 0)) {
			int axis = atoi(name + (name[1] == 'N' ? 6 : 5));
			long long v = card_int(c, &ok);
			if (axis >= 1 && axis <= 3) {
				long long *slot = name[1] == 'N' ? &dims[axis - 1] : &tiles[axis - 1];
				ok &= v >= 1 && (*slot == 0 || *slot == v);
				*slot = v;
			}
		}
	}
	if (!zimage)
		return 0;
	if (!ok || znaxis < 1)
		FAIL(EINVAL, "the compressed image header has unusable ZNAXIS or ZTILE values");
	uint64_t pixels = 1;
	for (int i = 0; i < znaxis; i++) {
		long long tile = tiles[i] ? tiles[i] : i == 0 ? dims[0] : 1;
		if (dims[i] < 1 || dims[i] > (long long)UINT32_MAX || tile > dims[i])
			FAIL(EINVAL, "the compressed image's axis %d (%lld, tiles of %lld) is unusable",
			     i + 1, dims[i], tile);
		pixels *= (uint64_t)tile; /* <= 2^27 x 2^32: no overflow */
		if (pixels > MAX_TILE_PIXELS)
			FAIL(EINVAL, "the compressed image's tiles are larger than %llu pixels",
			     (unsigned long long)MAX_TILE_PIXELS);
	}
	/* RICE: ZVAL1 the block size (16 or 32), ZVAL2 bytes a pixel. */
	if (rice && ((zval1 && val1 != 16 && val1 != 32) ||
		     (zval2 && val2 != 1 && val2 != 2 && val2 != 4 && val2 != 8)))
		FAIL(EINVAL, "the RICE_1 parameters (ZVAL1 %lld, ZVAL2 %lld) are unusable", val1, val2);
	return 0;
}

/* The tile table of the current (compressed) HDU: CFITSIO allocates what
 * a row's descriptor claims before it reads, so every variable-length
 * array must lie in the heap (PCOUNT bytes, itself within the file). */
static int descriptors_ok(fitsfile *fp)
{
	int status = 0, ncols = 0, typecode;
	LONGLONG rows = 0, pcount = 0, repeat, width, n, offset;
	long long heapsize;
	if (fits_get_num_rowsll(fp, &rows, &status) > 0 || fits_get_num_cols(fp, &ncols, &status) > 0 ||
	    key_int(fp, "PCOUNT", &heapsize) > 0)
		return 0;
	pcount = heapsize;
	for (int col = 1; col <= ncols; col++) {
		if (fits_get_coltypell(fp, col, &typecode, &repeat, &width, &status) > 0)
			return 0;
		if (typecode >= 0)
			continue;
		for (LONGLONG row = 1; row <= rows; row++) {
			uint64_t bytes;
			if (fits_read_descriptll(fp, col, row, &n, &offset, &status) > 0 || n < 0 ||
			    offset < 0 || width < 0 ||
			    __builtin_mul_overflow((uint64_t)n, (uint64_t)width, &bytes) ||
			    bytes > (uint64_t)pcount || (uint64_t)offset > (uint64_t)pcount - bytes)
				return 0;
		}
	}
	return 1;
}

/* Bits in the highest set bit's position of B (0 for 0). */
static int bit_length(uint64_t b)
{
	return b ? 64 - __builtin_clzll(b) : 0;
}

/* Walk one RICE_1 tile (CLEN bytes at C, NX pixels, blocks of NBLOCK, first
 * value BYTEPIX bytes) as CFITSIO's decoder reads it, but stop at the end:
 * CFITSIO 4.2 checks for overrun only after each block and scans a run of
 * zero bytes without any limit, so a damaged tile makes it read far past
 * its buffer. Returns 1 if the decoder stays inside the tile. */
static int rice_tile_ok(const unsigned char *c, uint64_t clen, uint64_t nx, int nblock,
			int bytepix)
{
	int fsbits = bytepix == 1 ? 3 : bytepix == 2 ? 4 : 5;
	int fsmax = bytepix == 1 ? 6 : bytepix == 2 ? 14 : 25;
	int bbits = 1 << fsbits;
	uint64_t pos = bytepix == 1 ? 1 : bytepix == 2 ? 2 : 4;
	uint64_t b;
	int64_t nbits = 8;
#define NEXT_BYTE() do { if (pos >= clen) return 0; } while (0)
	NEXT_BYTE();
	b = c[pos++];
	for (uint64_t i = 0; i < nx;) {
		nbits -= fsbits;
		while (nbits < 0) {
			NEXT_BYTE();
			b = (b << 8) | c[pos++];
			nbits += 8;
		}
		int fs = (int)(b >> nbits) - 1;
		b &= ((uint64_t)1 << nbits) - 1;
		uint64_t imax = nx - i < (uint64_t)nblock ? nx : i + (uint64_t)nblock;
		if (fs < 0) {
			i = imax;
		} else if (fs == fsmax) {
			for (; i < imax; i++) {
				for (int64_t k = bbits - nbits - 8; k >= 0; k -= 8) {
					NEXT_BYTE();
					b = c[pos++];
				}
				if (nbits > 0) {
					NEXT_BYTE();
					b = c[pos++] & (((uint64_t)1 << nbits) - 1);
				} else {
					b = 0;
				}
			}
		} else if (fs > fsmax) {
			return 0; /* CFITSIO would shift by more than the width */
		} else {
			for (; i < imax; i++) {
				while (b == 0) {
					NEXT_BYTE();
					nbits += 8;
					b = c[pos++];
				}
				int64_t nzero = nbits - bit_length(b);
				nbits -= nzero + 1;
				b ^= (uint64_t)1 << nbits;
				nbits -= fs;
				while (nbits < 0) {
					NEXT_BYTE();
					b = (b << 8) | c[pos++];
					nbits += 8;
				}
				b &= ((uint64_t)1 << nbits) - 1;
			}
		}
	}
#undef NEXT_BYTE
	return 1;
}

/* GZIP tiles: CFITSIO inflates into a buffer it grows without limit, and
 * keeps growing it for a stream that is cut short. Inflating once here with
 * CFITSIO's own routine but a buffer that may not outgrow the tile (8 bytes
 * a pixel at most) finds such a tile. Per thread. */
static __thread size_t gzip_cap;
static __thread void *gzip_block; /* CFITSIO drops its pointer when a realloc fails */

static void *gzip_realloc(void *p, size_t n)
{
	void *q = n > gzip_cap ? NULL : realloc(p, n);
	if (q)
		gzip_block = q;
	return q;
}

static int gzip_tile_ok(const unsigned char *c, uint64_t clen, uint64_t pixels)
{
	int status = 0;
	size_t size = 0;
	gzip_cap = (size_t)pixels * 8 + 64;
	size_t cap = (size_t)pixels < 1024 ? 8192 : (size_t)pixels * 8;
	char *out = malloc(cap);
	if (!out)
		return 0;
	gzip_block = out;
	uncompress2mem_from_mem((char *)c, (size_t)clen, &out, &cap, gzip_realloc, &size, &status);
	free(gzip_block);
	gzip_block = NULL;
	return status == 0 && size <= (size_t)pixels * 8;
}

/* Every tile of the current compressed HDU (opened from BUF, BUFLEN bytes)
 * safe to hand to CFITSIO's decoder: RICE_1 and GZIP tiles checked as
 * above; HCOMPRESS_1 and PLIO_1 refused, as CFITSIO 4.2's decoders of those
 * do not check their input either (found by tests/fuzz/fuzz_load.c). */
static int tiles_ok(fitsfile *fp, const unsigned char *buf, size_t buflen, const LONGLONG *dims,
		    int naxis, char *why, size_t whylen)
{
	char cmptype[FLEN_VALUE] = "", column[] = "COMPRESSED_DATA";
	int status = 0, col = 0, nblock = 32, bytepix = 4;
	LONGLONG rows = 0, heap, tile[3] = {1, 1, 1}, headstart, datastart, dataend, naxis1 = 0;
	fits_read_key(fp, TSTRING, "ZCMPTYPE", cmptype, NULL, &status);
	int gzip = strcmp(cmptype, "GZIP_1") == 0 || strcmp(cmptype, "GZIP_2") == 0;
	if (!gzip && strcmp(cmptype, "RICE_1") != 0 && strcmp(cmptype, "RICE_ONE") != 0)
		FAIL(EINVAL, "tile compression '%.20s' is not supported (RICE_1 and GZIP are)",
		     cmptype);
	/* What CFITSIO will read, defaults included; a value is only taken
	 * when it was read (a failed read may leave anything behind). */
	long long v;
	if (key_int(fp, "ZVAL1", &v) == 0)
		nblock = v < 0 || v > 64 ? 0 : (int)v;
	if (key_int(fp, "ZVAL2", &v) == 0)
		bytepix = v < 0 || v > 8 ? 0 : (int)v;
	status = 0;
	tile[0] = dims[0];
	for (int i = 0; i < naxis; i++) {
		char key[FLEN_KEYWORD];
		snprintf(key, sizeof key, "ZTILE%d", i + 1);
		if (key_int(fp, key, &v) == 0)
			tile[i] = v;
		if (tile[i] < 1 || tile[i] > dims[i])
			FAIL(EINVAL, "the compressed image's ZTILE%d (%lld) is unusable", i + 1,
			     (long long)tile[i]);
	}
	if (!gzip && nblock != 16 && nblock != 32)
		FAIL(EINVAL, "RICE_1 block size %d is unusable (16 or 32)", nblock);
	long long width = 0;
	if (fits_get_num_rowsll(fp, &rows, &status) > 0 || key_int(fp, "NAXIS1", &width) > 0 ||
	    fits_get_colnum(fp, CASEINSEN, column, &col, &status) > 0 ||
	    fits_get_hduaddrll(fp, &headstart, &datastart, &dataend, &status) > 0)
		FAIL(EINVAL, "the compressed image's tile table is unusable");
	naxis1 = width;
	if (__builtin_mul_overflow(naxis1, rows, &heap))
		FAIL(EINVAL, "the compressed image's tile table is unusable");
	if (key_int(fp, "THEAP", &v) == 0)
		heap = v;
	/* Tiles in raster order; the last along an axis is cut by the edge. */
	uint64_t across[3] = {1, 1, 1}, row = 1;
	for (int i = 0; i < naxis; i++)
		across[i] = (uint64_t)((dims[i] - 1) / tile[i] + 1);
	for (uint64_t t2 = 0; t2 < across[2]; t2++)
		for (uint64_t t1 = 0; t1 < across[1]; t1++)
			for (uint64_t t0 = 0; t0 < across[0]; t0++, row++) {
				uint64_t index[3] = {t0, t1, t2}, pixels = 1;
				LONGLONG n, offset;
				for (int i = 0; i < naxis; i++) {
					uint64_t start = index[i] * (uint64_t)tile[i];
					uint64_t left = (uint64_t)dims[i] - start;
					pixels *= left < (uint64_t)tile[i] ? left : (uint64_t)tile[i];
				}
				if ((LONGLONG)row > rows ||
				    fits_read_descriptll(fp, col, (LONGLONG)row, &n, &offset, &status) > 0)
					FAIL(EINVAL, "the compressed image has fewer tiles than it needs");
				if (n == 0)
					continue; /* stored uncompressed */
				uint64_t at = (uint64_t)datastart + (uint64_t)heap + (uint64_t)offset;
				if (heap < 0 || at > buflen || (uint64_t)n > buflen - at ||
				    !(gzip ? gzip_tile_ok(buf + at, (uint64_t)n, pixels)
					   : rice_tile_ok(buf + at, (uint64_t)n, pixels, nblock, bytepix)))
					FAIL(EINVAL, "tile %llu of the compressed image is damaged",
					     (unsigned long long)row);
			}
	return 0;
}

/* The image HDU of an open file: the primary, or the first extension when
 * the primary has no data. */
static int find_image(fitsfile *fp, const char *buf, size_t buflen, int *naxis, char *why,
		      size_t whylen)
{
	int status = 0, hdutype = IMAGE_HDU;
	LONGLONG headstart, datastart, dataend;
	if (fits_get_img_dim(fp, naxis, &status) > 0)
		FAIL(EINVAL, "the primary header has no usable NAXIS");
	if (*naxis != 0)
		return 0;
	if (fits_get_hduaddrll(fp, &headstart, &datastart, &dataend, &status) > 0 || dataend < 0)
		FAIL(EINVAL, "the primary header's size cannot be worked out");
	if ((uint64_t)dataend < buflen) {
		int rc = header_ok(buf + dataend, buflen - (size_t)dataend, why, whylen);
		if (rc < 0)
			return rc;
	}
	if (fits_movabs_hdu(fp, 2, &hdutype, &status) > 0)
		FAIL(EINVAL, "NAXIS is 0: the primary HDU has no image and no extension follows");
	if (hdutype != IMAGE_HDU && !fits_is_compressed_image(fp, &status))
		FAIL(EINVAL, "the primary HDU has no image and the first extension is a table");
	if (fits_get_img_dim(fp, naxis, &status) > 0)
		FAIL(EINVAL, "the first extension has no usable NAXIS");
	if (*naxis == 0)
		FAIL(EINVAL, "NAXIS is 0 in the primary HDU and in the first extension: no image");
	return 0;
}

static int decode_open(fitsfile *fp, const char *buf, size_t buflen, size_t len,
		       struct load_image *img, char *why, size_t whylen)
{
	int status = 0, naxis = 0, bitpix = 0, equiv = 0, datatype;
	LONGLONG dims[3] = {1, 1, 1}, headstart, datastart, dataend;
	char text[FLEN_STATUS];
	int rc = find_image(fp, buf, buflen, &naxis, why, whylen);
	if (rc < 0)
		return rc;
	if (naxis < 1 || naxis > 3)
		FAIL(EINVAL, "NAXIS is %d; images of 1 to 3 axes can be loaded", naxis);
	if (fits_get_img_type(fp, &bitpix, &status) > 0 ||
	    fits_get_img_equivtype(fp, &equiv, &status) > 0 ||
	    fits_get_img_sizell(fp, naxis, dims, &status) > 0) {
		fits_get_errstatus(status, text);
		FAIL(EINVAL, "the image header is malformed (CFITSIO: %s)", text);
	}
	img->naxis = naxis;
	img->nelement = 1;
	for (int i = 0; i < 3; i++) {
		if (i < naxis && (dims[i] < 1 || (uint64_t)dims[i] > UINT32_MAX))
			FAIL(EINVAL, "NAXIS%d is %lld; a stream axis holds 1 to %u", i + 1,
			     (long long)dims[i], UINT32_MAX);
		img->size[i] = i < naxis ? (uint32_t)dims[i] : 1;
		if (__builtin_mul_overflow(img->nelement, (uint64_t)img->size[i], &img->nelement))
			FAIL(EINVAL, "the image sizes overflow");
	}
	if (bitpix == LONGLONG_IMG) {
		/* CFITSIO 4.2 gives 64 as the equivalent type for any BZERO. */
		double bscale = 1, bzero = 0;
		fits_read_key(fp, TDOUBLE, "BSCALE", &bscale, NULL, &status);
		status = 0;
		fits_read_key(fp, TDOUBLE, "BZERO", &bzero, NULL, &status);
		status = 0;
		equiv = bscale != 1 ? DOUBLE_IMG
			: bzero == 0 ? LONGLONG_IMG
			: bzero == 9223372036854775808.0 ? ULONGLONG_IMG : DOUBLE_IMG;
	}
	img->type = pick_type(bitpix, equiv, &datatype);
	if (__builtin_mul_overflow(img->nelement, (uint64_t)elem_size(img->type), &img->datasize) ||
	    img->datasize > SIZE_MAX / 2)
		FAIL(EINVAL, "the image size overflows");

	/* All the data the header promises must be in LEN, not in the
	 * padding this side added. */
	uint64_t promised;
	if (fits_get_hduaddrll(fp, &headstart, &datastart, &dataend, &status) > 0 ||
	    promised_bytes(fp, &promised) < 0)
		FAIL(EINVAL, "the header's data size cannot be worked out");
	if ((uint64_t)datastart > len || promised > len - (uint64_t)datastart)
		FAIL(EIO, "the file ends at byte %zu, its header promises data up to byte %llu", len,
		     (unsigned long long)datastart + (unsigned long long)promised);
	int compressed = fits_is_compressed_image(fp, &status);
	if (compressed && !descriptors_ok(fp))
		FAIL(EINVAL, "the compressed image's tile table points outside its heap");
	if (compressed) {
		rc = tiles_ok(fp, (const unsigned char *)buf, buflen, dims, naxis, why, whylen);
		if (rc < 0)
			return rc;
	}

	rc = read_keywords(fp, img, why, whylen);
	if (rc < 0)
		return rc;

	/* Anonymous memory, committed as it is written: a compressed image's
	 * size is not bounded by LEN, and a broken tile ends the read early. */
	void *pixels = mmap(NULL, (size_t)img->datasize, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (pixels == MAP_FAILED)
		FAIL(ENOMEM, "no memory for %llu bytes of pixels", (unsigned long long)img->datasize);
	img->pixels = pixels;
	LONGLONG first[3] = {1, 1, 1};
	int anynul = 0;
	if (fits_read_pixll(fp, datatype, first, (LONGLONG)img->nelement, NULL, pixels, &anynul,
			    &status) > 0) {
		fits_get_errstatus(status, text);
		if (compressed)
			FAIL(EINVAL, "the compressed image cannot be decoded (CFITSIO: %s)", text);
		FAIL(EIO, "the image data cannot be read (CFITSIO: %s)", text);
	}
	return 0;
}

int load_fits_decode(const void *bytes, size_t len, struct load_image *img, char *why,
		     size_t whylen)
{
	memset(img, 0, sizeof *img);
	if (len < FITS_CARD)
		FAIL(EINVAL, "%zu bytes are not a FITS file", len);
	/* CFITSIO reads whole records: hand it a multiple of 2880 bytes. It
	 * only reads (READONLY, no realloc), so the const is not violated. */
	void *buf = (void *)bytes, *padded = NULL;
	size_t buflen = len;
	if (len % FITS_BLOCK) {
		buflen = len + (FITS_BLOCK - len % FITS_BLOCK);
		padded = calloc(1, buflen);
		if (!padded)
			FAIL(ENOMEM, "no memory for a copy of %zu bytes", len);
		memcpy(padded, bytes, len);
		buf = padded;
	}
	fitsfile *fp = NULL;
	int status = 0, rc = header_ok(buf, buflen, why, whylen);
	if (rc < 0) {
		free(padded);
		return rc;
	}
	if (fits_open_memfile(&fp, "load.fits", READONLY, &buf, &buflen, 0, NULL, &status) > 0) {
		char text[FLEN_STATUS];
		fits_get_errstatus(status, text);
		SAY("not a FITS file CFITSIO can read: the header is malformed (%s)", text);
		rc = -EINVAL;
		fp = NULL;
	} else {
		rc = decode_open(fp, buf, buflen, len, img, why, whylen);
	}
	if (fp) {
		status = 0;
		fits_close_file(fp, &status);
	}
	fits_clear_errmsg();
	free(padded);
	if (rc < 0)
		load_image_free(img);
	return rc;
}

void load_image_free(struct load_image *img)
{
	if (img->pixels)
		munmap(img->pixels, (size_t)img->datasize);
	free(img->keywords);
	memset(img, 0, sizeof *img);
}

/* ---- struct load_image -> ImageStreamIO stream */

/* Metadata offsets not in isio.h (../shared/formats/imagestreamio.md). */
#define MD_NAXIS 112
#define MD_SIZE 116
#define MD_NELEMENT 128
#define MD_DATATYPE 136
#define MD_IMAGETYPE 144
#define MD_CREATIONTIME 152
#define MD_LASTACCESSTIME 168
#define MD_CREATORPID 216
#define MD_OWNERPID 220
#define MD_SHARED 224
#define MD_INODE 232
#define MD_LOCATION 240
#define MD_SEM 258
#define MD_NBPROCTRACE 260
#define MD_NBKW 290
#define MD_IMDATAMEMSIZE 312
#define MD_NAME_MAX 79

#define IMAGETYPE_MATH 0x2
#define NSEM 10
#define NPROCTRACE 10
#define PROCTRACE_SIZE 64

static uint64_t r8(uint64_t n)
{
	return (n + 7) & ~(uint64_t)7;
}

/* The size of a new stream's file, as isio_parse computes it; *OFF_SEMS
 * where its semaphores start. DATASIZE is far below 2^62. */
static uint64_t layout_size(uint64_t datasize, unsigned nbkw, uint64_t *off_kw,
			    uint64_t *off_sems)
{
	uint64_t off = ISIO_META_SIZE + r8(datasize);
	*off_kw = off;
	off += r8((uint64_t)ISIO_KW_SIZE * nbkw);
	*off_sems = off;
	off += r8((uint64_t)ISIO_SEM_SIZE * NSEM);
	off += r8(ISIO_SEM_SIZE);       /* semlog */
	off += 4 * r8(4 * NSEM);        /* read/write PIDs, semctrl, semstatus */
	off += r8((uint64_t)PROCTRACE_SIZE * NPROCTRACE);
	return off;
}

static void put_u16(unsigned char *m, size_t off, uint16_t v) { memcpy(m + off, &v, 2); }
static void put_u32(unsigned char *m, size_t off, uint32_t v) { memcpy(m + off, &v, 4); }
static void put_u64(unsigned char *m, size_t off, uint64_t v) { memcpy(m + off, &v, 8); }

/* Keyword slots: IMG's first NBKW keywords, then unused ('N') slots. */
static void put_keywords(unsigned char *dst, unsigned nbkw, const struct load_image *img)
{
	unsigned n = img->nkw < nbkw ? img->nkw : nbkw;
	if (n)
		memcpy(dst, img->keywords, (size_t)n * ISIO_KW_SIZE);
	for (unsigned i = n; i < nbkw; i++) {
		unsigned char *slot = dst + (size_t)i * ISIO_KW_SIZE;
		memset(slot, 0, ISIO_KW_SIZE);
		slot[KW_TYPE] = 'N';
	}
}

struct fill {
	unsigned char *map;
	const struct load_image *img;
	const char *sname;
	unsigned nbkw;
	uint64_t off_kw, off_sems, inode;
};

/* A new stream as ImageStreamIO's create leaves it (the file is zeros),
 * the version last: a reader that sees "2.00" sees the rest. */
static void fill_new(void *arg)
{
	struct fill *f = arg;
	unsigned char *m = f->map;
	const struct load_image *img = f->img;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t t[2] = {(int64_t)now.tv_sec, (int64_t)now.tv_nsec};

	memcpy(m + ISIO_OFF_NAME, f->sname, strnlen(f->sname, MD_NAME_MAX));
	m[MD_NAXIS] = (unsigned char)img->naxis;
	for (int i = 0; i < img->naxis; i++)
		put_u32(m, MD_SIZE + 4 * (size_t)i, img->size[i]);
	put_u64(m, MD_NELEMENT, img->nelement);
	m[MD_DATATYPE] = (unsigned char)img->type;
	put_u64(m, MD_IMAGETYPE, IMAGETYPE_MATH);
	memcpy(m + MD_CREATIONTIME, t, sizeof t);
	memcpy(m + MD_LASTACCESSTIME, t, sizeof t);
	memcpy(m + ISIO_OFF_ATIME, t, sizeof t);
	memcpy(m + ISIO_OFF_WRITETIME, t, sizeof t);
	put_u32(m, MD_CREATORPID, (uint32_t)getpid());
	put_u32(m, MD_OWNERPID, (uint32_t)getpid());
	m[MD_SHARED] = 1;
	put_u64(m, MD_INODE, f->inode);
	m[MD_LOCATION] = 0xff; /* -1: CPU */
	put_u16(m, MD_SEM, NSEM);
	put_u16(m, MD_NBPROCTRACE, NPROCTRACE);
	put_u64(m, ISIO_OFF_CNT0, 1);
	put_u16(m, MD_NBKW, (uint16_t)f->nbkw);
	put_u64(m, MD_IMDATAMEMSIZE, img->datasize);

	memcpy(m + ISIO_META_SIZE, img->pixels, (size_t)img->datasize);
	put_keywords(m + f->off_kw, f->nbkw, img);
	for (unsigned i = 0; i < NSEM; i++)
		sem_init((sem_t *)(void *)(m + f->off_sems + (size_t)i * ISIO_SEM_SIZE), 1, 0);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(m, "2.00", 4);
}

/* Pixels and keywords of one frame written into a live stream. */
static void fill_frame(void *arg)
{
	struct fill *f = arg;
	memcpy(f->map + ISIO_META_SIZE, f->img->pixels, (size_t)f->img->datasize);
	put_keywords(f->map + f->off_kw, f->nbkw, f->img);
}

/* Reserve SIZE bytes for FD: a full filesystem says ENOSPC now rather than
 * SIGBUS at a store. Filesystems without fallocate get a plain size. */
static int reserve(int fd, uint64_t size)
{
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	if (fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

/* A new file in DIRFD with no name yet, mode 0666 whatever the umask,
 * owned by UID/GID. Returns the descriptor or -errno. */
static int nameless_file(int dirfd, uid_t uid, gid_t gid, char *why, size_t whylen)
{
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0666);
	if (fd < 0)
		FAIL(errno, "cannot create a file in the directory: %s", strerror(errno));
	if (fchmod(fd, 0666) < 0 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)) {
		int err = errno;
		close(fd);
		FAIL(err, "cannot set the new file's mode or owner: %s", strerror(err));
	}
	return fd;
}

/* The complete new stream SNAME for IMG, nameless. Returns its descriptor
 * or -errno. */
static int make_stream(int dirfd, const char *sname, const struct load_image *img, uid_t uid,
		       gid_t gid, char *why, size_t whylen)
{
	struct fill f = {.img = img, .sname = sname};
	f.nbkw = img->nkw < UINT16_MAX ? img->nkw : UINT16_MAX;
	uint64_t size = layout_size(img->datasize, f.nbkw, &f.off_kw, &f.off_sems);
	struct stat st;
	int fd = nameless_file(dirfd, uid, gid, why, whylen), rc;
	if (fd < 0)
		return fd;
	rc = reserve(fd, size);
	if (rc < 0) {
		SAY("no room for the %llu-byte stream: %s", (unsigned long long)size,
		    strerror(-rc));
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		SAY("cannot stat the new stream: %s", strerror(errno));
		goto fail;
	}
	f.inode = st.st_ino;
	f.map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f.map == MAP_FAILED) {
		rc = -errno;
		SAY("cannot map the new stream: %s", strerror(errno));
		goto fail;
	}
	rc = guard_call(fill_new, &f);
	munmap(f.map, (size_t)size);
	if (rc < 0) {
		rc = -ENOSPC;
		SAY("the new stream could not be written (filesystem full?)");
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return rc;
}

/* Give the nameless file FD the name NAME in DIRFD: a new name, or
 * (REPLACE) over what is there, through a hidden temporary name. */
static int link_name(int fd, int dirfd, const char *name, int replace, char *why,
		     size_t whylen)
{
	static unsigned counter;
	char proc[64], tmp[NAME_MAX + 1];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (!replace) {
		if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) < 0)
			FAIL(errno, "cannot link the new file as %s: %s", name, strerror(errno));
		return 0;
	}
	for (int tries = 0;; tries++) {
		snprintf(tmp, sizeof tmp, ".%.200s.%d.%u.load", name, (int)getpid(),
			 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
		if (linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW) == 0)
			break;
		if (errno != EEXIST || tries == 9)
			FAIL(errno, "cannot link the new file: %s", strerror(errno));
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int err = errno;
		unlinkat(dirfd, tmp, 0);
		FAIL(err, "cannot put the new file in place of %s: %s", name, strerror(err));
	}
	return 0;
}

/* Copy the metadata, under guard: the file may be shrunk under us. */
struct meta_copy {
	const unsigned char *map;
	unsigned char *meta;
};
static void copy_meta(void *arg)
{
	struct meta_copy *c = arg;
	memcpy(c->meta, c->map, ISIO_META_SIZE);
}

/* Update stream file FNAME in place if it is a stream of IMG's type and
 * shape. Returns 1 (updated), 0 (not such a stream: replace it), -ENOENT
 * (no such file) or another -errno. */
static int update_stream(int dirfd, const char *fname, const struct load_image *img,
			 char *why, size_t whylen)
{
	struct stat st;
	struct isio_stream s;
	unsigned char meta[ISIO_META_SIZE];
	char ignored[160];
	int rc = 0;
	int fd = openat(dirfd, fname, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		if (errno == ELOOP || errno == EISDIR || errno == ENXIO)
			return 0; /* not a stream file: the replace will say why not */
		FAIL(errno, "cannot open %s: %s", fname, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < ISIO_META_SIZE ||
	    (uint64_t)st.st_size > SIZE_MAX)
		goto out;
	void *map = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		rc = -errno;
		SAY("cannot map %s: %s", fname, strerror(errno));
		goto out;
	}
	struct meta_copy mc = {map, meta};
	if (guard_call(copy_meta, &mc) < 0 ||
	    isio_parse(meta, sizeof meta, (uint64_t)st.st_size, &s, ignored, sizeof ignored) < 0 ||
	    s.type != img->type || s.naxis != img->naxis ||
	    memcmp(s.size, img->size, sizeof(uint32_t) * (size_t)img->naxis) != 0)
		goto unmap;
	struct fill f = {.map = map, .img = img, .nbkw = s.nbkw, .off_kw = s.off_keywords};
	rc = isio_frame_begin(map, (size_t)st.st_size, &s);
	if (rc == 0) {
		rc = guard_call(fill_frame, &f);
		int end = isio_frame_end(map, (size_t)st.st_size, &s);
		rc = rc < 0 ? rc : end;
	}
	if (rc < 0)
		SAY("%s was shrunk while the frame was written", fname);
	else
		rc = 1;
unmap:
	munmap(map, (size_t)st.st_size);
out:
	close(fd);
	return rc;
}

/* FNAME (in DIRFD) as the stream file it stands for: a stream link (a
 * symlink to a stream file of the same directory, possibly through more
 * links) is followed to its target, which may not exist yet. TARGET gets
 * the file name (NAME_MAX + 1 bytes). */
static int resolve_link(int dirfd, const char *fname, char *target, char *why, size_t whylen)
{
	struct stat st, dir, there;
	snprintf(target, NAME_MAX + 1, "%s", fname);
	for (int hops = 0;; hops++) {
		char link[PATH_MAX];
		if (fstatat(dirfd, target, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				return 0;
			FAIL(errno, "cannot look at %s: %s", target, strerror(errno));
		}
		if (!S_ISLNK(st.st_mode))
			return 0;
		if (hops == 8)
			FAIL(ELOOP, "%s is a chain of more than 8 stream links", fname);
		ssize_t n = readlinkat(dirfd, target, link, sizeof link - 1);
		if (n < 0)
			FAIL(errno, "cannot read the link %s: %s", target, strerror(errno));
		link[n] = '\0';
		char *base = strrchr(link, '/');
		if (base) {
			/* An absolute or relative path is fine if it names this directory. */
			*base++ = '\0';
			int d = openat(dirfd, link[0] ? link : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
			int same = d >= 0 && fstat(d, &there) == 0 && fstat(dirfd, &dir) == 0 &&
				   there.st_dev == dir.st_dev && there.st_ino == dir.st_ino;
			if (d >= 0)
				close(d);
			if (!same)
				FAIL(EXDEV, "the stream link %s points out of its directory", target);
		} else {
			base = link;
		}
		size_t blen = strlen(base);
		if (!isio_is_stream_name(base) || blen > NAME_MAX)
			FAIL(EINVAL, "the link %s points to '%.80s', not a stream file", target, base);
		memcpy(target, base, blen + 1);
	}
}

int load_stream(int dirfd, const char *name, const struct load_image *img, uid_t uid, gid_t gid,
		enum load_result *did, char *why, size_t whylen)
{
	char fname[NAME_MAX + 1], target[NAME_MAX + 1], sname[MD_NAME_MAX + 1];
	size_t len = strlen(name), sl = sizeof ISIO_SUFFIX - 1;
	if (len == 0 || len > MD_NAME_MAX || strchr(name, '/'))
		FAIL(EINVAL, "'%.80s' cannot be a stream name (1 to %d characters, no '/')", name,
		     MD_NAME_MAX);
	if (img->naxis < 1 || img->naxis > 3 || !img->pixels || elem_size(img->type) == 0 ||
	    img->datasize != img->nelement * elem_size(img->type) || img->datasize > (UINT64_C(1) << 62))
		FAIL(EINVAL, "the image to load is not a valid 1- to 3-axis image");
	snprintf(fname, sizeof fname, "%s%s", name, ISIO_SUFFIX);
	int rc = resolve_link(dirfd, fname, target, why, whylen);
	if (rc < 0)
		return rc;
	size_t tlen = strlen(target) - sl;
	if (tlen > MD_NAME_MAX)
		FAIL(ENAMETOOLONG, "the stream name of %s is longer than %d characters", target,
		     MD_NAME_MAX);
	memcpy(sname, target, tlen);
	sname[tlen] = '\0';

	rc = update_stream(dirfd, target, img, why, whylen);
	if (rc == 1) {
		*did = LOAD_UPDATED;
		return 0;
	}
	if (rc < 0 && rc != -ENOENT)
		return rc;
	int replace = rc == 0;
	int fd = make_stream(dirfd, sname, img, uid, gid, why, whylen);
	if (fd < 0)
		return fd;
	rc = link_name(fd, dirfd, target, replace, why, whylen);
	close(fd);
	if (rc == 0)
		*did = replace ? LOAD_REPLACED : LOAD_CREATED;
	return rc;
}

/* ---- MRC -> IMOD shared-memory file */

static int write_all(int fd, const void *buf, uint64_t n, uint64_t off)
{
	const unsigned char *p = buf;
	while (n) {
		ssize_t w = pwrite(fd, p, n < (1u << 30) ? (size_t)n : (1u << 30), (off_t)off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		p += w;
		off += (uint64_t)w;
		n -= (uint64_t)w;
	}
	return 0;
}

int load_mrc_imod(int dirfd, const char *objname, const void *bytes, size_t len, uid_t uid,
		  gid_t gid, enum load_result *did, char *why, size_t whylen)
{
	unsigned char header[IMOD_HEADER_AREA];
	struct imod_image img;
	uint64_t capacity = strchr(objname, '/') ? 0 : imod_name_capacity(objname);
	if (capacity == 0)
		FAIL(EINVAL, "'%.80s' is not an IMOD name (IMODShrMem_<KB>_<name>)", objname);
	if (len < MRC_HEADER_SIZE)
		FAIL(EINVAL, "%zu bytes are not an MRC file (its header alone has %d)", len,
		     MRC_HEADER_SIZE);
	int rc = imod_from_mrc(bytes, &img, header, why, whylen);
	if (rc < 0)
		return rc;
	uint64_t off = imod_mrc_data_offset(bytes);
	if (off > len || img.data_bytes > len - off)
		FAIL(EIO, "the MRC file ends at byte %zu, its header promises data up to byte %llu",
		     len, (unsigned long long)off + (unsigned long long)img.data_bytes);
	uint64_t need = IMOD_HEADER_AREA + img.data_bytes;
	if (need > capacity)
		FAIL(ENOSPC, "the image needs %llu KB (2 KB of header and %llu bytes of data), "
		     "%s holds %llu KB", (unsigned long long)((need + 1023) / 1024),
		     (unsigned long long)img.data_bytes, objname,
		     (unsigned long long)(capacity / 1024));
	const unsigned char *data = (const unsigned char *)bytes + off;

	int fd = openat(dirfd, objname, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0) {
		/* In place: IMOD programs may have it mapped. Room first, so a
		 * full filesystem changes nothing. */
		struct stat st;
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			close(fd);
			FAIL(EINVAL, "%s is not a regular file", objname);
		}
		if (fallocate(fd, 0, 0, (off_t)need) < 0 && errno != EOPNOTSUPP) {
			rc = -errno;
			SAY("no room for %llu bytes in %s: %s", (unsigned long long)need, objname,
			    strerror(errno));
		} else if ((uint64_t)st.st_size < capacity && ftruncate(fd, (off_t)capacity) < 0) {
			rc = -errno;
			SAY("cannot grow %s to its capacity: %s", objname, strerror(errno));
		} else if ((rc = write_all(fd, header, sizeof header, 0)) < 0 ||
			   (rc = write_all(fd, data, img.data_bytes, IMOD_HEADER_AREA)) < 0) {
			SAY("cannot write %s: %s", objname, strerror(-rc));
		}
		close(fd);
		if (rc == 0)
			*did = LOAD_UPDATED;
		return rc;
	}
	if (errno != ENOENT)
		FAIL(errno, "cannot open %s: %s", objname, strerror(errno));

	fd = nameless_file(dirfd, uid, gid, why, whylen);
	if (fd < 0)
		return fd;
	rc = reserve(fd, capacity);
	if (rc < 0)
		SAY("no room for the %llu KB object: %s", (unsigned long long)(capacity / 1024),
		    strerror(-rc));
	else if ((rc = write_all(fd, header, sizeof header, 0)) < 0 ||
		 (rc = write_all(fd, data, img.data_bytes, IMOD_HEADER_AREA)) < 0)
		SAY("cannot write %s: %s", objname, strerror(-rc));
	else
		rc = link_name(fd, dirfd, objname, 0, why, whylen);
	close(fd);
	if (rc == 0)
		*did = LOAD_CREATED;
	return rc;
}
