/* fitshdr.c - FITS primary headers built card by card with CFITSIO's card
 * routines; see fitshdr.h.
 *
 * A card reaches the header only through ffmkky with a name that is already
 * legal and short (so CFITSIO never falls back to HIERARCH) and a value text
 * made by CFITSIO's formatters, and it is checked printable before it is
 * stored. The names users may not set are not only the structural ones: the
 * header must also pass fitsverify, which checks the type of many reserved
 * keywords, and the meaning of some (WCS, table, random-groups keywords)
 * which a stream's keywords cannot be trusted to respect; see name_allowed. */
#include "fitshdr.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fitsio2.h is CFITSIO's internal header, installed with it: it declares
 * the value formatters (ffi2c, ffl2c, ffs2c, ffd2e) that fitsio.h does not. */
#include <fitsio2.h>

/* The cards buffer holds CAP cards and, after them, an open-addressing
 * table of 2 * CAP slots over the names of value cards (card index + 1; 0
 * is empty), so that a hostile stream with tens of thousands of keywords is
 * still deduplicated in linear time. CAP is a power of two. */
#define FIRST_CAP 64

static uint32_t *name_table(const struct fits_header *h)
{
	return (uint32_t *)(void *)(h->cards + h->cap * FITS_CARD);
}

static size_t name_slot(const struct fits_header *h, const char *name8)
{
	uint64_t k;
	memcpy(&k, name8, sizeof k);
	k *= 0x9e3779b97f4a7c15u;
	return (size_t)(k >> 32) & (2 * h->cap - 1);
}

/* Is a value card named NAME8 (8 bytes, space-padded) in the header? */
static int name_used(const struct fits_header *h, const char *name8)
{
	if (!h->cap)
		return 0;
	const uint32_t *table = name_table(h);
	for (size_t i = name_slot(h, name8);; i = (i + 1) & (2 * h->cap - 1)) {
		if (table[i] == 0)
			return 0;
		if (memcmp(h->cards + (size_t)(table[i] - 1) * FITS_CARD, name8, 8) == 0)
			return 1;
	}
}

static int is_value_card(const char *card)
{
	return card[8] == '=' && card[9] == ' ';
}

static void name_insert(struct fits_header *h, size_t index)
{
	uint32_t *table = name_table(h);
	size_t i = name_slot(h, h->cards + index * FITS_CARD);
	while (table[i])
		i = (i + 1) & (2 * h->cap - 1);
	table[i] = (uint32_t)(index + 1);
}

static int grow(struct fits_header *h)
{
	size_t cap = h->cap ? 2 * h->cap : FIRST_CAP;
	/* Card indexes must fit the table's 32-bit slots. */
	if (cap > UINT32_MAX / 2 || cap > SIZE_MAX / (FITS_CARD + 2 * sizeof(uint32_t)))
		return -ENOMEM;
	char *cards = realloc(h->cards, cap * (FITS_CARD + 2 * sizeof(uint32_t)));
	if (!cards)
		return -ENOMEM;
	h->cards = cards;
	h->cap = cap;
	memset(name_table(h), 0, 2 * cap * sizeof(uint32_t));
	for (size_t i = 0; i < h->ncards; i++)
		if (is_value_card(h->cards + i * FITS_CARD))
			name_insert(h, i);
	return 0;
}

void fitshdr_init(struct fits_header *h)
{
	h->cards = NULL;
	h->ncards = 0;
	h->cap = 0;
}

void fitshdr_free(struct fits_header *h)
{
	free(h->cards);
	fitshdr_init(h);
}

static int printable(char c)
{
	return c >= 0x20 && c <= 0x7e;
}

/* Store CARD (NUL-terminated, at most 80 characters), padded with spaces.
 * A card that is not all printable is dropped: it cannot happen with the
 * inputs cleaned as below, and a header with it would not be FITS. */
static int add_card(struct fits_header *h, const char *card)
{
	size_t len = strnlen(card, FITS_CARD + 1);
	if (len > FITS_CARD)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!printable(card[i]))
			return 0;
	if (h->ncards == h->cap) {
		int rc = grow(h);
		if (rc < 0)
			return rc;
	}
	char *dst = h->cards + h->ncards * FITS_CARD;
	memcpy(dst, card, len);
	memset(dst + len, ' ', FITS_CARD - len);
	if (is_value_card(dst))
		name_insert(h, h->ncards);
	h->ncards++;
	return 0;
}

/* A value card NAME = VALUE / COMMENT. NAME is legal, VALUE is formatted FITS
 * value text, COMMENT is printable or NULL. */
static int add_value(struct fits_header *h, const char *name, char *value, const char *comment)
{
	char card[FLEN_CARD];
	int status = 0;
	if (ffmkky(name, value, comment, card, &status) > 0)
		return 0;
	return add_card(h, card);
}

static int add_int(struct fits_header *h, const char *name, long long v, const char *comment)
{
	char value[FLEN_VALUE];
	int status = 0;
	ffi2c(v, value, &status);
	return add_value(h, name, value, comment);
}

static int add_logical(struct fits_header *h, const char *name, int v, const char *comment)
{
	char value[FLEN_VALUE];
	int status = 0;
	ffl2c(v, value, &status);
	return add_value(h, name, value, comment);
}

/* TEXT cleaned for a card: at most MAX characters, each byte FITS cannot
 * hold (outside 0x20-0x7e) replaced by '?'. */
static void clean_text(const char *text, char *out, size_t max)
{
	size_t n = 0;
	if (text)
		for (; n < max && text[n]; n++)
			out[n] = printable(text[n]) ? text[n] : '?';
	out[n] = '\0';
}

/* ---- Which names untrusted callers may use. */

enum value_kind { KIND_INT, KIND_REAL, KIND_STRING };

static int in_list(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(name, list[i]) == 0)
			return 1;
	return 0;
}

static int has_prefix(const char *name, const char *prefix)
{
	return strncmp(name, prefix, strlen(prefix)) == 0;
}

/* NAME is PREFIX followed by a digit: an indexed keyword. */
static int indexed(const char *name, const char *const *prefixes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(prefixes[i]);
		if (strncmp(name, prefixes[i], len) == 0 && name[len] >= '0' && name[len] <= '9')
			return 1;
	}
	return 0;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Set by the structure (SIMPLE ... EXTEND, BZERO, BSCALE, CTYPE1 of complex
 * data), meaningless or wrong in a primary image (tables, random groups,
 * XTENSION, INHERIT), checked against the data (BLANK, CHECKSUM, DATASUM),
 * commentary or conventions this header does not use (COMMENT, HISTORY,
 * CONTINUE, HIERARCH), or deprecated (EPOCH, BLOCKED). */
static const char *const reserved[] = {
	"SIMPLE",  "BITPIX",  "EXTEND",   "XTENSION", "END",     "BZERO",   "BSCALE",
	"BLANK",   "PCOUNT",  "GCOUNT",   "GROUPS",   "INHERIT", "TFIELDS", "THEAP",
	"COMMENT", "HISTORY", "CONTINUE", "HIERARCH", "EPOCH",   "BLOCKED", "CHECKSUM",
	"DATASUM", "LONGSTRN",
};
/* Any name starting with these. */
static const char *const reserved_prefixes[] = {
	"NAXIS", "WCSAXES", "RADESYS", "RADECSYS", "SPECSYS", "SSYSOBS", "SSYSSRC",
};
/* These followed by a digit: table and random-groups keywords, and the
 * World Coordinate System, whose keywords fitsverify checks as a set
 * (indexes within NAXIS, CRPIXi with CRVALi and CTYPEi, PC or CD or CROTA2,
 * non-zero CDELTi) that separate untrusted keywords cannot be made to form. */
static const char *const reserved_indexed[] = {
	"PSCAL", "PZERO", "PTYPE", "TBCOL", "TFORM", "TSCAL", "TZERO", "TNULL", "TTYPE",
	"TUNIT", "TDISP", "TDIM",  "TCTYP", "TCUNI", "TCRVL", "TCDLT", "TCRPX", "TCROT",
	"CRPIX", "CRVAL", "CDELT", "CROTA", "CRDER", "CSYER", "PV",    "PS",    "PC",
	"CD",    "CTYPE", "CUNIT", "CNAME",
};
/* Keywords whose value type FITS fixes (fitsverify checks these). */
static const char *const string_only[] = {
	"EXTNAME", "ORIGIN", "AUTHOR", "CREATOR", "REFERENC", "TELESCOP", "INSTRUME",
	"OBSERVER", "OBJECT", "BUNIT",
};
static const char *const integer_only[] = { "EXTVER", "EXTLEVEL" };
static const char *const number_only[] = { "EQUINOX", "MJD-OBS", "MJD-AVG", "DATAMAX", "DATAMIN" };
static const char *const number_prefixes[] = {
	"RESTFRQ", "RESTFREQ", "RESTWAV", "OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z",
	"VELOSYS", "ZSOURCE",  "VELANGL", "LONPOLE",  "LATPOLE",
};

static int all_digits(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	return 1;
}

/* A DATE* value as FITS wants it: YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.s...]
 * with a real calendar date (CFITSIO's ffs2tm decides that; fitsverify uses
 * it too). The old dd/mm/yy form is refused: fitsverify warns on it. */
static int date_ok(const char *v)
{
	size_t len = strlen(v);
	while (len && v[len - 1] == ' ')
		len--;
	if (len < 10 || !all_digits(v, 4) || v[4] != '-' || !all_digits(v + 5, 2) || v[7] != '-' ||
	    !all_digits(v + 8, 2))
		return 0;
	if (len > 10) {
		if (len < 19 || v[10] != 'T' || !all_digits(v + 11, 2) || v[13] != ':' ||
		    !all_digits(v + 14, 2) || v[16] != ':' || !all_digits(v + 17, 2))
			return 0;
		if (len > 19 && (v[19] != '.' || !all_digits(v + 20, len - 20)))
			return 0;
	}
	char copy[FLEN_VALUE];
	int year, month, day, hour, minute, status = 0;
	double second;
	if (len >= sizeof copy)
		return 0;
	memcpy(copy, v, len);
	copy[len] = '\0';
	return ffs2tm(copy, &year, &month, &day, &hour, &minute, &second, &status) == 0;
}

/* May a card NAME (legal, upper case) with a value of KIND (and text
 * STRING, for strings) go in the header? */
static int name_allowed(const char *name, enum value_kind kind, const char *string)
{
	if (in_list(name, reserved, COUNT(reserved)))
		return 0;
	for (size_t i = 0; i < COUNT(reserved_prefixes); i++)
		if (has_prefix(name, reserved_prefixes[i]))
			return 0;
	if (indexed(name, reserved_indexed, COUNT(reserved_indexed)))
		return 0;
	if (in_list(name, string_only, COUNT(string_only)))
		return kind == KIND_STRING;
	if (in_list(name, integer_only, COUNT(integer_only)))
		return kind == KIND_INT;
	if (in_list(name, number_only, COUNT(number_only)))
		return kind != KIND_STRING;
	for (size_t i = 0; i < COUNT(number_prefixes); i++)
		if (has_prefix(name, number_prefixes[i]))
			return kind != KIND_STRING;
	if (has_prefix(name, "DATE"))
		return kind == KIND_STRING && date_ok(string);
	return 1;
}

/* KEY made a legal FITS name in OUT: surrounding spaces dropped, letters
 * upper-cased, any other character outside A-Z 0-9 _ - made '_', cut to 8.
 * Returns 0 if nothing usable is left (no letter or digit). */
static int legal_name(const char *key, char out[9])
{
	if (!key)
		return 0;
	while (*key == ' ')
		key++;
	size_t n = strnlen(key, 8);
	while (n && key[n - 1] == ' ')
		n--;
	int alnum = 0;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
			alnum = 1;
		else if (c != '_' && c != '-')
			c = '_';
		out[i] = c;
	}
	out[n] = '\0';
	return alnum;
}

/* The legal, allowed, unused name for KEY in OUT, or 0 to skip the card. */
static int user_name(const struct fits_header *h, const char *key, enum value_kind kind,
		     const char *string, char out[9])
{
	char name8[8];
	if (!legal_name(key, out) || !name_allowed(out, kind, string))
		return 0;
	memset(name8, ' ', sizeof name8);
	memcpy(name8, out, strlen(out));
	return !name_used(h, name8);
}

/* ---- The public calls. */

int fitshdr_image(struct fits_header *h, enum elem_type t, int naxis, const uint64_t *dims)
{
	struct elem_fits f;
	char name[FLEN_KEYWORD];
	if (h->ncards || elem_fits(t, &f) < 0 || naxis < 1 || naxis > 8 || !dims)
		return -EINVAL;
	for (int i = 0; i < naxis; i++)
		if (dims[i] > (uint64_t)LLONG_MAX)
			return -EINVAL;

	int axis = 1;
	int rc = add_logical(h, "SIMPLE", 1, "conforms to FITS standard");
	if (rc == 0)
		rc = add_int(h, "BITPIX", f.bitpix, "bits per data value");
	if (rc == 0)
		rc = add_int(h, "NAXIS", naxis + f.complex, "number of data axes");
	if (rc == 0 && f.complex) {
		rc = add_int(h, "NAXIS1", 2, "real and imaginary parts");
		axis++;
	}
	for (int i = 0; rc == 0 && i < naxis; i++, axis++) {
		snprintf(name, sizeof name, "NAXIS%d", axis);
		rc = add_int(h, name, (long long)dims[i], NULL);
	}
	if (rc == 0)
		rc = add_logical(h, "EXTEND", 1, NULL);
	if (rc == 0 && f.bzero) {
		char value[FLEN_VALUE];
		snprintf(value, sizeof value, "%s", f.bzero);
		rc = add_value(h, "BZERO", value, "offset of the stored values");
		if (rc == 0)
			rc = add_int(h, "BSCALE", 1, NULL);
	}
	if (rc == 0 && f.complex) {
		char value[FLEN_VALUE];
		int status = 0;
		ffs2c("COMPLEX", value, &status);
		rc = add_value(h, "CTYPE1", value, "axis 1: real, imaginary");
	}
	if (rc == 0 && t == ELEM_F16)
		rc = fitshdr_comment(h, "float16 pixels widened to float32");
	if (rc < 0)
		fitshdr_free(h);
	return rc;
}

int fitshdr_int(struct fits_header *h, const char *key, long long value, const char *comment)
{
	char name[9], text[FLEN_COMMENT];
	if (!h->ncards)
		return -EINVAL;
	if (!user_name(h, key, KIND_INT, NULL, name))
		return 0;
	clean_text(comment, text, FLEN_COMMENT - 1);
	return add_int(h, name, value, text);
}

/* The shortest of 15, 16 or 17 significant digits that reads back as V. */
static int format_real(double v, char *out)
{
	for (int digits = 15; digits <= 17; digits++) {
		int status = 0;
		if (ffd2e(v, -digits, out, &status) > 0)
			return -1;
		if (strtod(out, NULL) == v)
			break;
	}
	return 0;
}

int fitshdr_real(struct fits_header *h, const char *key, double value, const char *comment)
{
	char name[9], text[FLEN_COMMENT], number[FLEN_VALUE];
	if (!h->ncards)
		return -EINVAL;
	/* CFITSIO refuses to read a subnormal back (strtod reports underflow). */
	if (!isfinite(value) || (value != 0 && !isnormal(value)) ||
	    !user_name(h, key, KIND_REAL, NULL, name))
		return 0;
	if (format_real(value, number) < 0)
		return 0;
	clean_text(comment, text, FLEN_COMMENT - 1);
	return add_value(h, name, number, text);
}

/* Strings longer than a card holds are cut: ffs2c keeps 68 characters (fewer
 * when quotes are doubled), so the card stays one card. */
int fitshdr_string(struct fits_header *h, const char *key, const char *value,
		   const char *comment)
{
	char name[9], text[FLEN_COMMENT], clean[FLEN_VALUE], quoted[FLEN_VALUE];
	int status = 0;
	if (!h->ncards)
		return -EINVAL;
	clean_text(value, clean, 68);
	if (!user_name(h, key, KIND_STRING, clean, name))
		return 0;
	clean_text(comment, text, FLEN_COMMENT - 1);
	if (ffs2c(clean, quoted, &status) > 0)
		return 0;
	return add_value(h, name, quoted, text);
}

/* A long TEXT goes on as many COMMENT cards as it needs (72 characters each). */
int fitshdr_comment(struct fits_header *h, const char *text)
{
	char card[FLEN_CARD];
	if (!h->ncards)
		return -EINVAL;
	if (!text)
		return 0;
	size_t len = strlen(text), off = 0;
	do {
		memcpy(card, "COMMENT ", 8);
		clean_text(text + off, card + 8, 72);
		int rc = add_card(h, card);
		if (rc < 0)
			return rc;
		off += 72;
	} while (off < len);
	return 0;
}

size_t fitshdr_size(const struct fits_header *h)
{
	size_t bytes = (h->ncards + 1) * FITS_CARD;
	return (bytes + FITS_BLOCK - 1) / FITS_BLOCK * FITS_BLOCK;
}

void fitshdr_write(const struct fits_header *h, char *out)
{
	size_t cards = h->ncards * FITS_CARD;
	if (cards)
		memcpy(out, h->cards, cards);
	memset(out + cards, ' ', fitshdr_size(h) - cards);
	memcpy(out + cards, "END", 3);
}

/* Callers pass the size of real data, far below 2^64 - 2880. */
uint64_t fits_data_size(uint64_t nbytes)
{
	return (nbytes + FITS_BLOCK - 1) / FITS_BLOCK * FITS_BLOCK;
}
