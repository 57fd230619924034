/* fitsload.c - FITS files decoded with CFITSIO into a struct load_image
 * (load_fits_decode, see load.h), hostile headers checked before CFITSIO
 * reads them; the tiles of a compressed image are checked in fitstile.c.
 *
 * CFITSIO is used only through fitsfile handles private to one call (Debian
 * builds it reentrant), on the caller's bytes opened as a read-only memory
 * file. Its memory driver reads whole 2880-byte records, also past the end
 * of a buffer whose length is not a multiple of 2880, so such input is
 * copied into a zero-padded buffer first: CFITSIO never sees a byte beyond
 * LEN that is not ours. Its error stack is shared by every thread and keeps
 * messages until cleared, so it is cleared after each decode; WHY uses the
 * status text. CFITSIO 4.2 also trusts some header values and compressed
 * data more than it should (see fitscheck.c, fitsload_key_int,
 * fitstile_check): those are checked before CFITSIO acts on them. */
#include "load.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <fitsio.h>
/* CFITSIO's internal header, installed with it: the value converters
 * (ffc2jj, ffc2dd, ffc2s, ffc2l) that fitsio.h does not declare. */
#include <fitsio2.h>

#include "fitscheck.h"
#include "fitshdr.h"
#include "fitsload.h"
#include "fitstile.h"
#include "viewcards.h"

/* Pixel memory populated at once up to this size (see decode_open). */
#define POPULATE_MAX ((uint64_t)256 << 20)

/* Longest string value kept (joined CONTINUE cards); only 79 characters
 * of it can be kept anyway. */
#define LONG_STRING 256

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Cards that describe the file rather than the image: the structure (a
 * stream keeps that in its metadata), commentary, checksums of this file,
 * the cards a stream's view makes from the stream's own state (SHMNAME,
 * CNT0, DATE, ...: viewcards.h), and what tile compression and its binary
 * table add when CFITSIO's uncompressed header still has any. */
static int structural(const char *name)
{
	static const char *const names[] = {
		"SIMPLE", "BITPIX", "EXTEND", "BZERO", "BSCALE", "PCOUNT", "GCOUNT",
		"XTENSION", "END", "COMMENT", "HISTORY", "", "CHECKSUM", "DATASUM",
		"CONTINUE", "LONGSTRN", "TFIELDS", "THEAP",
		"ZIMAGE", "ZCMPTYPE", "ZBITPIX", "ZSIMPLE", "ZTENSION", "ZEXTEND", "ZBLOCKED",
		"ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM", "ZQUANTIZ", "ZDITHER0",
		"ZMASKCMP", "ZBLANK", "ZSCALE", "ZZERO",
	};
	static const char *const indexes[] = {
		"NAXIS", "ZNAXIS", "ZTILE", "ZNAME", "ZVAL", "TTYPE", "TFORM", "TUNIT",
		"TDIM", "TNULL", "TSCAL", "TZERO", "TDISP",
	};
	if (fitscheck_in_list(name, names, COUNT(names)) || view_card_synthesized(name))
		return 1;
	for (size_t i = 0; i < COUNT(indexes); i++)
		if (fitscheck_indexed(name, indexes[i], i < 2))
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
	size_t n = strlen(text); /* TEXT is terminated; strnlen's bound may pass its end */
	if (n > max)
		n = max;
	memcpy(slot + off, text, n);
	slot[off + n] = '\0';
}

/* A number into SLOT's value; returns 1, the slot is filled. */
static int put_int(unsigned char *slot, int64_t v)
{
	slot[KW_TYPE] = 'L';
	memcpy(slot + KW_VALUE, &v, 8);
	return 1;
}

static int put_real(unsigned char *slot, double d)
{
	slot[KW_TYPE] = 'D';
	memcpy(slot + KW_VALUE, &d, 8);
	return 1;
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
		if (ffc2l(value, &l, &status) > 0)
			break;
		return put_int(slot, l ? 1 : 0);
	}
	case 'I': {
		LONGLONG v;
		if (ffc2jj(value, &v, &status) == 0)
			return put_int(slot, v);
		if (status != NUM_OVERFLOW)
			break;
		status = 0; /* beyond int64: kept as a real */
	}
		__attribute__((fallthrough));
	case 'F': {
		double d;
		if (ffc2dd(value, &d, &status) > 0)
			break;
		return put_real(slot, d);
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
int fitsload_key_int(fitsfile *fp, const char *name, long long *v)
{
	char card[FLEN_CARD], key[FLEN_KEYWORD];
	int status = 0;
	long long x;
	snprintf(key, sizeof key, "%s", name);
	if (fits_read_card(fp, key, card, &status) > 0 || (status = fitscheck_card_int(card, &x)) > 0)
		return status;
	*v = x;
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

/* Images larger than this are refused (load_set_image_limit); 0: the
 * machine's physical memory. */
static uint64_t image_limit_bytes;

void load_set_image_limit(uint64_t bytes)
{
	__atomic_store_n(&image_limit_bytes, bytes, __ATOMIC_RELAXED);
}

static uint64_t image_limit(void)
{
	uint64_t limit = __atomic_load_n(&image_limit_bytes, __ATOMIC_RELAXED);
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	if (limit == 0 && pages > 0 && size > 0)
		limit = (uint64_t)pages * (uint64_t)size;
	return limit ? limit : UINT64_MAX;
}

/* The image HDU of an open file, as LAY (fitscheck_headers) found it: CFITSIO
 * moves to the first extension only when the primary has no image, and
 * must see the image LAY describes. */
static int find_image(fitsfile *fp, const struct fitscheck_layout *lay, LONGLONG *dims,
		      char *why, size_t whylen)
{
	int status = 0, hdutype = IMAGE_HDU, naxis = 0;
	if (lay->hdu == 2 && fits_movabs_hdu(fp, 2, &hdutype, &status) > 0) {
		char text[FLEN_STATUS];
		fits_get_errstatus(status, text);
		FAIL(EINVAL, "the first extension cannot be read (CFITSIO: %s)", text);
	}
	if (hdutype != IMAGE_HDU && !fits_is_compressed_image(fp, &status))
		FAIL(EINVAL, "the primary HDU has no image and the first extension is a table");
	if (fits_get_img_dim(fp, &naxis, &status) > 0 || naxis != lay->naxis ||
	    fits_get_img_sizell(fp, naxis, dims, &status) > 0)
		FAIL(EINVAL, "the image header is malformed (CFITSIO reads another NAXIS)");
	for (int i = 0; i < naxis; i++)
		if ((uint64_t)dims[i] != lay->naxes[i])
			FAIL(EINVAL, "the image header is malformed (CFITSIO reads another NAXIS%d)",
			     i + 1);
	return 0;
}

/* Whether the image's FITS data become IMG's type by elem_from_fits alone
 * (the loader's fast path): an integer BITPIX read as itself or as its
 * unsigned or int8 twin by BZERO (CFITSIO's equivalent type says which), or
 * an unscaled float. Anything scaled goes through CFITSIO. */
static int unscaled(fitsfile *fp, int bitpix, const struct load_image *img)
{
	if (bitpix > 0)
		return img->type != ELEM_F32 && img->type != ELEM_F64;
	double bscale = 1, bzero = 0;
	int status = 0;
	fits_read_key(fp, TDOUBLE, "BSCALE", &bscale, NULL, &status);
	status = 0;
	fits_read_key(fp, TDOUBLE, "BZERO", &bzero, NULL, &status);
	return bscale == 1 && bzero == 0;
}

/* Whether the current HDU is the primary or an IMAGE extension, where the
 * standard puts the pixels: CFITSIO also reads an extension of a type it
 * does not know as an image, from where it alone knows. */
static int standard_image(fitsfile *fp)
{
	char xtension[FLEN_VALUE] = "";
	int num = 0, status = 0;
	if (fits_get_hdu_num(fp, &num) == 1)
		return 1;
	return fits_read_key_str(fp, "XTENSION", xtension, NULL, &status) == 0 &&
	       strcmp(xtension, "IMAGE") == 0;
}

/* Decode the image HDU of FP. LAZY (BUF is the caller's own bytes): leave
 * unscaled, uncompressed pixels of a standard image where they are
 * (img->fits_data). */
static int decode_open(fitsfile *fp, const struct fitscheck_layout *lay, const char *buf,
		       size_t buflen, size_t len, int lazy, struct load_image *img, char *why,
		       size_t whylen)
{
	int status = 0, bitpix = 0, equiv = 0, datatype;
	LONGLONG dims[3] = {1, 1, 1};
	char text[FLEN_STATUS];
	int rc = find_image(fp, lay, dims, why, whylen);
	if (rc < 0)
		return rc;
	if (fits_get_img_type(fp, &bitpix, &status) > 0 ||
	    fits_get_img_equivtype(fp, &equiv, &status) > 0) {
		fits_get_errstatus(status, text);
		FAIL(EINVAL, "the image header is malformed (CFITSIO: %s)", text);
	}
	img->naxis = lay->naxis;
	img->nelement = lay->nelement;
	for (int i = 0; i < 3; i++)
		img->size[i] = (uint32_t)lay->naxes[i];
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
	/* What the image needs is all a load may take, beyond a fixed margin
	 * (FITSCHECK_MAX_TILE_PIXELS): a compressed file of a few bytes can
	 * claim any size. */
	if (img->datasize > image_limit())
		FAIL(EFBIG, "the image needs %llu bytes, more than the %llu a load may use",
		     (unsigned long long)img->datasize, (unsigned long long)image_limit());
	if (lay->compressed) {
		rc = fitstile_check(fp, (const unsigned char *)buf, buflen, dims, lay->naxis, why,
				    whylen);
		if (rc < 0)
			return rc;
	}

	rc = read_keywords(fp, img, why, whylen);
	if (rc < 0)
		return rc;
	if (lazy && !lay->compressed && standard_image(fp) && unscaled(fp, bitpix, img)) {
		img->fits_data = (const unsigned char *)buf + lay->data_start;
		return 0;
	}

	/* Anonymous memory, committed as it is written: a compressed image's
	 * size is not bounded by LEN, and a broken tile ends the read early.
	 * Up to a bound it is populated at once instead: page by page, the
	 * faults cost more than the copy on this kind of machine. */
	int populate = img->datasize <= (uint64_t)len || img->datasize <= POPULATE_MAX;
	void *pixels = mmap(NULL, (size_t)img->datasize, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE |
				    (populate ? MAP_POPULATE : 0),
			    -1, 0);
	if (pixels == MAP_FAILED)
		FAIL(ENOMEM, "no memory for %llu bytes of pixels", (unsigned long long)img->datasize);
	img->pixels = pixels;
	LONGLONG first[3] = {1, 1, 1};
	int anynul = 0;
	if (fits_read_pixll(fp, datatype, first, (LONGLONG)img->nelement, NULL, pixels, &anynul,
			    &status) > 0) {
		fits_get_errstatus(status, text);
		if (lay->compressed)
			FAIL(EINVAL, "the compressed image cannot be decoded (CFITSIO: %s)", text);
		FAIL(EIO, "the image data cannot be read (CFITSIO: %s)", text);
	}
	return 0;
}

static int decode(const void *bytes, size_t len, int lazy, struct load_image *img, char *why,
		  size_t whylen)
{
	struct fitscheck_layout lay;
	memset(img, 0, sizeof *img);
	if (len < FITS_CARD)
		FAIL(EINVAL, "%zu bytes are not a FITS file", len);
	/* Every header CFITSIO will read is checked first, on the bytes. */
	int status = 0, rc = fitscheck_headers(bytes, len, &lay, why, whylen);
	if (rc < 0)
		return rc;
	/* CFITSIO is given the file up to the image's HDU and no further, in
	 * whole records: when the last record is short (the data are all in
	 * LEN, the padding is not), a zero-padded copy of that much. It only
	 * reads (READONLY, no realloc), so the const is not violated. */
	void *buf = (void *)bytes, *padded = NULL;
	size_t buflen = (size_t)lay.hdu_end;
	if (len < buflen) {
		padded = calloc(1, buflen);
		if (!padded)
			FAIL(ENOMEM, "no memory for a copy of %zu bytes", len);
		memcpy(padded, bytes, len);
		buf = padded;
	}
	fitsfile *fp = NULL;
	if (fits_open_memfile(&fp, "load.fits", READONLY, &buf, &buflen, 0, NULL, &status) > 0) {
		char text[FLEN_STATUS];
		fits_get_errstatus(status, text);
		SAY("not a FITS file CFITSIO can read: the header is malformed (%s)", text);
		rc = -EINVAL;
		fp = NULL;
	} else {
		rc = decode_open(fp, &lay, buf, buflen, len, lazy && !padded, img, why, whylen);
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

int load_fits_decode(const void *bytes, size_t len, struct load_image *img, char *why,
		     size_t whylen)
{
	return decode(bytes, len, 0, img, why, whylen);
}

int load_fits_decode_lazy(const void *bytes, size_t len, struct load_image *img, char *why,
			  size_t whylen)
{
	return decode(bytes, len, 1, img, why, whylen);
}

void load_image_free(struct load_image *img)
{
	if (img->pixels)
		munmap(img->pixels, (size_t)img->datasize);
	free(img->keywords);
	memset(img, 0, sizeof *img);
}
