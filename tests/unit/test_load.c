/* test_load.c - unit tests of core/load: FITS files made in memory by CFITSIO
 * (every BITPIX/BZERO mapping, 1-3 axes, scaled data, tile compression, an
 * image in the first extension, header cards of every kind) decoded; streams
 * created, updated in place and replaced in a directory under /dev/shm and
 * checked with isio_parse and byte by byte; malformed files refused with the
 * directory left as it was; MRC files loaded into IMOD objects. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fitsio.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "imod.h"
#include "isio.h"
#include "load.h"
#include "unit_fits.h"
#include "view.h"

static const unsigned char *slot_named(const struct load_image *img, const char *name)
{
	for (unsigned i = 0; i < img->nkw; i++)
		if (strcmp((const char *)img->keywords + (size_t)i * ISIO_KW_SIZE, name) == 0)
			return img->keywords + (size_t)i * ISIO_KW_SIZE;
	return NULL;
}

static int64_t slot_l(const unsigned char *s)
{
	int64_t v;
	memcpy(&v, s + 24, 8);
	return v;
}

static double slot_d(const unsigned char *s)
{
	double v;
	memcpy(&v, s + 24, 8);
	return v;
}

static void decode_ok(const struct mem *m, struct load_image *img)
{
	char why[256] = "";
	int rc = load_fits_decode(m->buf, m->len, img, why, sizeof why);
	cr_assert_eq(rc, 0, "decode: %d %s (bitpix in file: %.30s)", rc, why, (char *)m->buf + 80);
}

Test(load_fits, reentrant_cfitsio)
{
	cr_assert(fits_is_reentrant(), "the daemon needs a reentrant CFITSIO");
}

Test(load_fits, every_type_and_axis_count)
{
	const long dims[3] = {7, 5, 3};
	for (size_t k = 0; k < NKINDS; k++) {
		for (int naxis = 1; naxis <= 3; naxis++) {
			size_t n = 1;
			for (int i = 0; i < naxis; i++)
				n *= (size_t)dims[i];
			void *pix = pattern(kinds[k].type, n, (unsigned)k);
			struct mem m = make_fits(kinds[k].img_type, naxis, dims, kinds[k].dtype, pix, 0,
						 0, 0);
			struct load_image img;
			decode_ok(&m, &img);
			cr_assert_eq(img.type, kinds[k].type, "kind %zu: type %d", k, img.type);
			cr_assert_eq(img.naxis, naxis);
			for (int i = 0; i < 3; i++)
				cr_assert_eq(img.size[i], i < naxis ? (uint32_t)dims[i] : 1);
			cr_assert_eq(img.nelement, n);
			cr_assert_eq(img.datasize, n * elem_size(kinds[k].type));
			cr_assert_eq(memcmp(img.pixels, pix, img.datasize), 0, "kind %zu naxis %d", k,
				     naxis);
			cr_assert_eq(img.nkw, 0, "no cards but the structure: %u", img.nkw);
			/* The fast path: the same image, its data left in the file
			 * (test_load_lazy.c loads such images). */
			struct load_image lazy;
			char why[256] = "";
			cr_assert_eq(load_fits_decode_lazy(m.buf, m.len, &lazy, why, sizeof why), 0);
			cr_assert_null(lazy.pixels, "kind %zu: not decoded", k);
			cr_assert_eq(lazy.fits_data, (const unsigned char *)m.buf + 2880);
			cr_assert_eq(lazy.type, img.type);
			cr_assert_eq(memcmp(lazy.size, img.size, sizeof img.size), 0);
			cr_assert_eq(lazy.datasize, img.datasize);
			load_image_free(&lazy);
			load_image_free(&img);
			free(m.buf);
			free(pix);
		}
	}
}

/* BITPIX and BZERO as written, checked in the file itself. */
Test(load_fits, bzero_conventions_in_the_file)
{
	const long dims[1] = {4};
	const struct {
		int img_type;
		const char *bitpix, *bzero;
	} want[] = {
		{SBYTE_IMG, "8", "-128"},
		{USHORT_IMG, "16", "32768"},
		{ULONG_IMG, "32", "2147483648"},
		{ULONGLONG_IMG, "64", "9223372036854775808"},
	};
	for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
		unsigned char zero[32] = {0};
		struct mem m = make_fits(want[k].img_type, 1, dims, TBYTE, zero, 0, 0, 0);
		char card[81], needle[82];
		snprintf(needle, sizeof needle, "%-8s= %20s", "BITPIX", want[k].bitpix);
		memcpy(card, (char *)m.buf + 80, 80);
		card[80] = '\0';
		cr_assert(strncmp(card, needle, 30) == 0, "%s", card);
		cr_assert(memmem(m.buf, 2880, want[k].bzero, strlen(want[k].bzero)));
		free(m.buf);
	}
}

Test(load_fits, scaled_data_becomes_float)
{
	const long dims[2] = {3, 2};
	const struct {
		int img_type;
		double bscale, bzero;
		enum elem_type want;
	} cases[] = {
		{SHORT_IMG, 0.5, 10, ELEM_F32},
		{BYTE_IMG, 1, 100, ELEM_F32},   /* an integer BZERO that is not the convention */
		{LONG_IMG, 0.25, -3, ELEM_F32},
		{FLOAT_IMG, 2, 1, ELEM_F32},
		{DOUBLE_IMG, 4, 0, ELEM_F64},
	};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct mem m;
		int st = 0;
		double phys[6];
		for (int i = 0; i < 6; i++)
			phys[i] = (10 + i) * cases[k].bscale + cases[k].bzero;
		mem_create(&m);
		fits_create_img(m.f, cases[k].img_type, 2, (long *)dims, &st);
		fits_write_key_dbl(m.f, "BSCALE", cases[k].bscale, -15, NULL, &st);
		fits_write_key_dbl(m.f, "BZERO", cases[k].bzero, -15, NULL, &st);
		fits_set_bscale(m.f, cases[k].bscale, cases[k].bzero, &st);
		fits_write_img(m.f, TDOUBLE, 1, 6, phys, &st);
		cr_assert_eq(st, 0);
		mem_close(&m);
		struct load_image img;
		decode_ok(&m, &img);
		cr_assert_eq(img.type, cases[k].want, "case %zu: type %d", k, img.type);
		for (int i = 0; i < 6; i++) {
			double got = img.type == ELEM_F32 ? ((float *)img.pixels)[i]
							  : ((double *)img.pixels)[i];
			cr_assert_float_eq(got, phys[i], 1e-9, "case %zu pixel %d: %g", k, i, got);
		}
		cr_assert_null(slot_named(&img, "BSCALE"));
		cr_assert_null(slot_named(&img, "BZERO"));
		load_image_free(&img);
		free(m.buf);
	}
}

static void check_keywords(const struct load_image *img)
{
	const unsigned char *s;
	s = slot_named(img, "FLAGT");
	cr_assert_not_null(s);
	cr_assert_eq(s[16], 'L');
	cr_assert_eq(slot_l(s), 1);
	cr_assert_str_eq((const char *)s + 48, "a true flag");
	s = slot_named(img, "FLAGF");
	cr_assert(s && s[16] == 'L' && slot_l(s) == 0);
	s = slot_named(img, "EXPOSURE");
	cr_assert(s && s[16] == 'L' && slot_l(s) == -123456789012LL);
	s = slot_named(img, "GAIN");
	cr_assert(s && s[16] == 'D' && slot_d(s) == 1.25);
	s = slot_named(img, "SHORT");
	cr_assert(s && s[16] == 'S');
	cr_assert_str_eq((const char *)s + 24, "fifteen chars!!");
	cr_assert_str_eq((const char *)s + 48, "short string");
	s = slot_named(img, "OBJECT");
	cr_assert(s && s[16] == 'S');
	cr_assert_str_eq((const char *)s + 24, "a string longer");
	cr_assert_str_eq((const char *)s + 48, "a string longer than fifteen characters");
	s = slot_named(img, "LONGSTR");
	cr_assert(s && s[16] == 'S');
	cr_assert_str_eq((const char *)s + 24, "012345678901234");
	cr_assert_str_eq((const char *)s + 48,
			 "0123456789012345678901234567890123456789012345678901234567890123456789"
			 "ABCDEFGHI");
	s = slot_named(img, "AB CD");
	cr_assert(s && s[16] == 'L' && slot_l(s) == 7);
	s = slot_named(img, "BIGINT");
	cr_assert(s && s[16] == 'D' && slot_d(s) == 1e20);
	const char *never[] = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "EXTEND", "COMMENT", "HISTORY",
			       "DATE", "CONTINUE", "ESO DET CHIP TEMPERATURE", "ZIMAGE", "ZBITPIX",
			       "ZNAXIS1", "ZTILE1", "ZCMPTYPE", "TTYPE1", "TFORM1", "XTENSION",
			       "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "CHECKSUM", "DATASUM"};
	for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
		cr_assert_null(slot_named(img, never[i]), "%s kept", never[i]);
	for (unsigned i = 0; i < img->nkw; i++) {
		const unsigned char *k = img->keywords + (size_t)i * ISIO_KW_SIZE;
		cr_assert(k[16] == 'L' || k[16] == 'D' || k[16] == 'S');
		cr_assert(memchr(k, 0, 16) && memchr(k + 48, 0, 80));
		cr_assert(k[16] != 'S' || memchr(k + 24, 0, 16));
	}
	cr_assert_eq(img->nkw, 9, "%u keywords", img->nkw);
}

Test(load_fits, header_cards_become_keywords)
{
	const long dims[2] = {4, 3};
	int16_t pix[12] = {0};
	struct mem m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, 0, 0, 1);
	struct load_image img;
	decode_ok(&m, &img);
	check_keywords(&img);
	load_image_free(&img);
	free(m.buf);
}

Test(load_fits, tile_compressed)
{
	const long dims[3] = {40, 30, 2};
	const int algos[] = {RICE_1, GZIP_1, GZIP_2};
	for (size_t a = 0; a < 3; a++)
	for (size_t k = 2; k < 6; k++) { /* 16- and 32-bit integers: lossless */
		void *pix = pattern(kinds[k].type, 2400, 3);
		struct mem m = make_fits(kinds[k].img_type, 3, dims, kinds[k].dtype, pix, algos[a], 0,
					 1);
		cr_assert(memmem(m.buf, m.len, "ZIMAGE  =", 9), "not compressed");
		struct load_image img;
		decode_ok(&m, &img);
		cr_assert_eq(img.type, kinds[k].type);
		cr_assert_eq(img.naxis, 3);
		cr_assert_eq(img.size[0], 40);
		cr_assert_eq(img.size[2], 2);
		cr_assert_eq(memcmp(img.pixels, pix, img.datasize), 0);
		check_keywords(&img);
		load_image_free(&img);
		free(m.buf);
		free(pix);
	}
}

static void refused(const void *buf, size_t len, int want, const char *what);

/* CFITSIO 4.2's HCOMPRESS and PLIO decoders do not check their input. */
Test(load_fits, unchecked_decoders_refused)
{
	const long dims[2] = {40, 30};
	int16_t pix[1200] = {0};
	struct mem m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, HCOMPRESS_1, 0, 0);
	refused(m.buf, m.len, -EINVAL, "HCOMPRESS_1");
	free(m.buf);
	m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, PLIO_1, 0, 0);
	refused(m.buf, m.len, -EINVAL, "PLIO_1");
	free(m.buf);
}

/* A damaged RICE tile is found before CFITSIO's decoder runs off its end. */
Test(load_fits, damaged_rice_tile_refused)
{
	const long dims[2] = {64, 8};
	int16_t pix[512];
	for (int i = 0; i < 512; i++)
		pix[i] = (int16_t)(i * 37);
	struct mem m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, RICE_1, 0, 0);
	LONGLONG hs, ds, de;
	int st = 0;
	fitsfile *f;
	void *buf = m.buf;
	size_t len = m.len;
	fits_open_memfile(&f, "t.fits", READONLY, &buf, &len, 0, NULL, &st);
	fits_movabs_hdu(f, 2, NULL, &st);
	fits_get_hduaddrll(f, &hs, &ds, &de, &st);
	fits_close_file(f, &st);
	/* zeros over the heap: an endless run of leading zeros */
	memset((char *)m.buf + ds + 8 * 16, 0, (size_t)(de - ds) - 8 * 16);
	refused(m.buf, m.len, -EINVAL, "zeroed RICE tiles");
	free(m.buf);
}

Test(load_fits, image_in_first_extension)
{
	const long dims[2] = {6, 2};
	float pix[12];
	for (int i = 0; i < 12; i++)
		pix[i] = (float)i / 4;
	struct mem m = make_fits(FLOAT_IMG, 2, dims, TFLOAT, pix, 0, 1, 1);
	struct load_image img;
	decode_ok(&m, &img);
	cr_assert_eq(img.type, ELEM_F32);
	cr_assert_eq(img.size[0], 6);
	cr_assert_eq(memcmp(img.pixels, pix, sizeof pix), 0);
	check_keywords(&img);
	load_image_free(&img);
	free(m.buf);
}

/* The value of the first card named KEY at or after byte FROM of M set to
 * VALUE (right-justified in columns 11-30, as integers are written). */
static void set_value(struct mem *m, size_t from, const char *key, const char *value)
{
	char name[9];
	snprintf(name, sizeof name, "%-8s", key);
	for (size_t off = from; off + 80 <= m->len; off += 80) {
		char *c = (char *)m->buf + off;
		if (memcmp(c, name, 8) == 0 && c[8] == '=') {
			char field[21];
			snprintf(field, sizeof field, "%20s", value);
			memcpy(c + 10, field, 20);
			return;
		}
	}
	cr_assert_fail("no card %s", key);
}

/* Every header CFITSIO would read is checked before it reads it: CFITSIO
 * 4.2 leaves TFIELDS unread when a table's NAXIS1 or NAXIS2 is not an
 * integer and allocates columns by whatever the variable held (the
 * 13-byte input tests/fuzz/fuzz_load.c found: one '-' in NAXIS1's value;
 * tests/fuzz/corpus/fuzz_load/oom-*), reports a TFIELDS over 999 without
 * failing, and divides by ZTILEn. Each is refused with a reason naming the
 * card, before CFITSIO sees the file. */
Test(load_fits, hostile_table_headers_refused_before_cfitsio)
{
	static const struct {
		const char *key, *value, *named; /* NAMED: what the reason names */
	} cases[] = {
#define NAMED(key, value) {key, value, key}
		NAMED("NAXIS1", "-                  8"), NAMED("NAXIS1", "8.0"),
		NAMED("NAXIS2", "-1"), NAMED("NAXIS2", "2.5E9"), NAMED("NAXIS2", "29"),
		NAMED("PCOUNT", "-5"), NAMED("PCOUNT", "junk"), NAMED("GCOUNT", "2"),
		NAMED("TFIELDS", "1000"), NAMED("TFIELDS", "-1"), NAMED("BITPIX", "16"),
		NAMED("ZNAXIS1", "0"), NAMED("ZTILE1", "0"), NAMED("ZBITPIX", "12"),
		NAMED("ZNAXIS", "4"), NAMED("ZCMPTYPE", "'PLIO_1'"), NAMED("ZCMPTYPE", "'NOCOMPRESS'"),
#undef NAMED
		/* fuzz_load: CFITSIO reads 2; its table has the rows of 30 */
		{"ZNAXIS2", "2                 30", "NAXIS2"},
		{"TTYPE1", "'DATA'", "COMPRESSED_DATA"},
	};
	const long dims[2] = {40, 30};
	int16_t pix[1200] = {0};
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		struct mem m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, GZIP_1, 0, 0);
		set_value(&m, 2880, cases[k].key, cases[k].value);
		struct load_image img;
		char why[256] = "";
		const char *named = cases[k].named;
		int rc = load_fits_decode(m.buf, m.len, &img, why, sizeof why);
		cr_assert_eq(rc, -EINVAL, "%s = %s: %d (%s)", cases[k].key, cases[k].value, rc, why);
		cr_assert(strstr(why, named), "%s = %s: %s", cases[k].key, cases[k].value, why);
		free(m.buf);
	}
	/* RICE_1 needs its block size, which CFITSIO reads as it moves */
	struct mem m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, RICE_1, 0, 0);
	char *zval1 = memmem((char *)m.buf + 2880, m.len - 2880, "ZVAL1   =", 9);
	cr_assert_not_null(zval1);
	memcpy(zval1, "COMMENT ", 8);
	refused(m.buf, m.len, -EINVAL, "RICE_1 without ZVAL1");
	free(m.buf);
}

/* A load takes what its image needs and a fixed margin: a tile larger
 * than the margin allows, or an image over the limit, is EFBIG, whatever
 * the file's size. */
Test(load_fits, images_and_tiles_over_the_bounds_are_efbig)
{
	const long dims[2] = {40, 30};
	int16_t pix[1200] = {0};
	struct mem m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, RICE_1, 0, 0);
	set_value(&m, 2880, "ZNAXIS1", "8192");
	set_value(&m, 2880, "ZTILE1", "8192");
	set_value(&m, 2880, "ZNAXIS2", "4096");
	set_value(&m, 2880, "ZTILE2", "4096");
	refused(m.buf, m.len, -EFBIG, "a tile of 2^25 pixels");
	free(m.buf);

	m = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, 0, 0, 0);
	struct load_image img;
	load_set_image_limit(2400 - 1);
	refused(m.buf, m.len, -EFBIG, "an image one byte over the limit");
	load_set_image_limit(2400);
	decode_ok(&m, &img);
	load_image_free(&img);
	load_set_image_limit(0);
	free(m.buf);
}

/* ---- Hand-made headers */

/* A file of the CARDS given (NULL-terminated), END unless NO_END, then
 * DATA_LEN bytes of data (zeros), padded. */
static struct mem hand_fits(const char *const *cards, int no_end, size_t data_len)
{
	struct mem m;
	size_t n = 0;
	while (cards[n])
		n++;
	size_t hlen = ((n + 1) * 80 + 2879) / 2880 * 2880;
	size_t dlen = (data_len + 2879) / 2880 * 2880;
	m.len = hlen + dlen;
	m.buf = calloc(1, m.len);
	memset(m.buf, ' ', hlen);
	for (size_t i = 0; i < n; i++)
		memcpy((char *)m.buf + 80 * i, cards[i], strlen(cards[i]));
	if (!no_end)
		memcpy((char *)m.buf + 80 * n, "END", 3);
	m.f = NULL;
	return m;
}

#define SIMPLE "SIMPLE  =                    T"

Test(load_fits, hand_made_header_and_unpadded_data)
{
	const char *cards[] = {SIMPLE, "BITPIX  =                   16", "NAXIS   =                    2",
			       "NAXIS1  =                   10", "NAXIS2  =                    3",
			       "TEMP    =                -12.5 / degrees", NULL};
	struct mem m = hand_fits(cards, 0, 60);
	unsigned char *data = (unsigned char *)m.buf + 2880;
	for (int i = 0; i < 30; i++)
		data[2 * i + 1] = (unsigned char)i; /* big-endian i */
	struct load_image img;
	char why[256];
	for (size_t len = 2880 + 60; len <= m.len; len += m.len - 2880 - 60) {
		cr_assert_eq(load_fits_decode(m.buf, len, &img, why, sizeof why), 0, "%zu: %s", len,
			     why);
		cr_assert_eq(img.type, ELEM_I16);
		for (int i = 0; i < 30; i++)
			cr_assert_eq(((int16_t *)img.pixels)[i], i);
		const unsigned char *s = slot_named(&img, "TEMP");
		cr_assert(s && s[16] == 'D' && slot_d(s) == -12.5);
		cr_assert_str_eq((const char *)s + 48, "degrees");
		load_image_free(&img);
	}
	free(m.buf);
}

static void refused(const void *buf, size_t len, int want, const char *what)
{
	struct load_image img;
	char why[256] = "";
	int rc = load_fits_decode(buf, len, &img, why, sizeof why);
	cr_assert_eq(rc, want, "%s: %d (%s)", what, rc, why);
	cr_assert(why[0] && strlen(why) < sizeof why - 1, "%s: no reason given", what);
	cr_assert(!strchr(why, '\n'), "%s: %s", what, why);
	cr_assert_null(img.pixels);
	cr_assert_null(img.keywords);
}

/* Each malformed file: CARDS after SIMPLE, whether END is missing, data. */
static const struct malformed {
	const char *what;
	const char *cards[8];
	int no_end;
	size_t data;
	int want;
} malformed[] = {
	{"no END", {"BITPIX  =                   16", "NAXIS   =                    1",
		    "NAXIS1  =                   10"}, 1, 0, -EINVAL},
	{"NAXIS 0", {"BITPIX  =                   16", "NAXIS   =                    0"}, 0, 0,
	 -EINVAL},
	{"NAXIS 4", {"BITPIX  =                   16", "NAXIS   =                    4",
		     "NAXIS1  =                    2", "NAXIS2  =                    2",
		     "NAXIS3  =                    2", "NAXIS4  =                    2"}, 0, 32,
	 -EINVAL},
	{"bad BITPIX", {"BITPIX  =                   12", "NAXIS   =                    1",
			"NAXIS1  =                   10"}, 0, 20, -EINVAL},
	{"axis of 0", {"BITPIX  =                   16", "NAXIS   =                    2",
		       "NAXIS1  =                    0", "NAXIS2  =                    5"}, 0, 0,
	 -EINVAL},
	{"axis beyond 32 bits", {"BITPIX  =                    8", "NAXIS   =                    2",
				 "NAXIS1  =           4294967296", "NAXIS2  =                    1"}, 0,
	 0, -EINVAL},
	{"sizes that overflow", {"BITPIX  =                   64", "NAXIS   =                    3",
				 "NAXIS1  =           4294967295", "NAXIS2  =           4294967295",
				 "NAXIS3  =           4294967295"}, 0, 0, -EINVAL},
	{"unterminated string", {"BITPIX  =                    8", "NAXIS   =                    1",
				 "NAXIS1  =                    4", "OBJECT  = 'no end quote"}, 0, 4,
	 -EINVAL},
	{"control character", {"BITPIX  =                    8", "NAXIS   =                    1",
			       "NAXIS1  =                    4", "OBJECT  = 'tab\there'"}, 0, 4,
	 -EINVAL},
	{"illegal name", {"BITPIX  =                    8", "NAXIS   =                    1",
			  "NAXIS1  =                    4", "AB(C)   =                    1"}, 0, 4,
	 -EINVAL},
	/* CFITSIO 4.2 aborts reading such a value as an integer itself */
	{"long integer value", {"BITPIX  =                   16", "NAXIS   =                    1",
				"NAXIS1  =                    4",
				"BLANK   = 11111111111111111111111111111111111"}, 0, 8, -EINVAL},
	{"unreadable number", {"BITPIX  =                    8", "NAXIS   =                    1",
			       "NAXIS1  =                    4", "GAIN    =                1.2.3"}, 0,
	 4, -EINVAL},
};

static struct mem make_malformed(const struct malformed *c)
{
	const char *cards[10] = {SIMPLE};
	for (int i = 0; i < 8 && c->cards[i]; i++)
		cards[i + 1] = c->cards[i];
	return hand_fits(cards, c->no_end, c->data);
}

Test(load_fits, malformed_headers)
{
	for (size_t k = 0; k < sizeof malformed / sizeof malformed[0]; k++) {
		struct mem m = make_malformed(&malformed[k]);
		refused(m.buf, m.len, malformed[k].want, malformed[k].what);
		free(m.buf);
	}
}

Test(load_fits, short_data_garbage_and_nothing)
{
	const long dims[2] = {100, 50};
	uint16_t pix[5000] = {0};
	struct mem m = make_fits(USHORT_IMG, 2, dims, TUSHORT, pix, 0, 0, 0);
	refused(m.buf, m.len - 2880, -EIO, "a block of data missing");
	refused(m.buf, 2880 + 9999, -EIO, "one byte of data missing");
	refused(m.buf, 2880, -EIO, "header only");
	refused(m.buf, 1000, -EIO, "the header but no data, unpadded");
	refused(m.buf, 300, -EINVAL, "a header cut before END");
	refused(m.buf, 0, -EINVAL, "nothing");
	struct mem c = make_fits(USHORT_IMG, 2, dims, TUSHORT, pix, RICE_1, 0, 0);
	refused(c.buf, c.len - 2880 + 10, -EIO, "compressed, cut short");
	unsigned char garbage[5760];
	for (size_t i = 0; i < sizeof garbage; i++)
		garbage[i] = (unsigned char)(i * 7919 >> 3);
	refused(garbage, sizeof garbage, -EINVAL, "garbage");
	free(m.buf);
	free(c.buf);
}

/* ---- Streams */

static int load(const char *name, const struct mem *m, enum load_result *did)
{
	struct load_image img;
	char why[256] = "";
	int rc = load_fits_decode(m->buf, m->len, &img, why, sizeof why);
	if (rc == 0) {
		rc = load_stream(dirfd_, name, &img, (uid_t)-1, (gid_t)-1, did, why, sizeof why);
		load_image_free(&img);
	}
	if (rc < 0)
		cr_log_info("load %s: %s", name, why);
	return rc;
}

static struct mem float_image(long nx, long ny, float base, int with_keys)
{
	const long dims[2] = {nx, ny};
	float *pix = malloc(sizeof(float) * (size_t)(nx * ny));
	for (long i = 0; i < nx * ny; i++)
		pix[i] = base + (float)i;
	struct mem m = make_fits(FLOAT_IMG, 2, dims, TFLOAT, pix, 0, 0, with_keys);
	free(pix);
	return m;
}

Test(load_stream, created_as_imagestreamio_creates, .init = setup, .fini = teardown)
{
	struct mem m = float_image(64, 48, 0, 1);
	enum load_result did;
	mode_t old = umask(077);
	cr_assert_eq(load("imcam", &m, &did), 0);
	umask(old);
	cr_assert_eq(did, LOAD_CREATED);

	struct stream_file f;
	open_stream("imcam.im.shm", &f);
	/* The measured example of imagestreamio.md had 4 keywords: 14,336 bytes. */
	cr_assert_eq(f.s.nbkw, 9);
	cr_assert_eq(f.len, 14336 + 5 * 128);
	cr_assert_eq(f.st.st_mode & 07777, 0666);
	cr_assert_str_eq(f.s.name, "imcam");
	cr_assert_eq(f.s.type, ELEM_F32);
	cr_assert_eq(f.s.naxis, 2);
	cr_assert_eq(f.s.size[0], 64);
	cr_assert_eq(f.s.size[1], 48);
	cr_assert_eq(f.s.nsem, 10);
	cr_assert_eq(f.s.cnt0, 1);
	cr_assert_str_eq((char *)f.map, "2.00");
	cr_assert_eq(u64_at(f.map, 144), 2, "imagetype");
	cr_assert_eq(u64_at(f.map, 232), f.st.st_ino, "inode");
	cr_assert_eq(f.map[224], 1, "shared");
	cr_assert_eq((int8_t)f.map[240], -1, "location");
	cr_assert_eq(f.map[260], 10, "NBproctrace");
	uint32_t pid;
	memcpy(&pid, f.map + 216, 4);
	cr_assert_eq(pid, (uint32_t)getpid());
	memcpy(&pid, f.map + 220, 4);
	cr_assert_eq(pid, (uint32_t)getpid());
	cr_assert_neq(u64_at(f.map, 152), 0, "creation time");
	cr_assert_neq(u64_at(f.map, 200), 0, "write time");
	for (int i = 0; i < 64 * 48; i++)
		cr_assert_eq(((float *)(f.map + 384))[i], (float)i);
	struct isio_keyword kw;
	cr_assert_eq(isio_keyword(f.map + f.s.off_keywords, &kw), 0);
	cr_assert_str_eq(kw.name, "FLAGT");
	for (int i = 0; i < 10; i++) {
		int v = -1;
		cr_assert_eq(sem_getvalue((sem_t *)(f.map + f.s.off_sems + 32 * i), &v), 0);
		cr_assert_eq(v, 0);
	}
	/* Through the stream view: cards again. */
	struct fits_header h;
	fitshdr_init(&h);
	cr_assert_eq(view_stream_header(&f.s, f.map, f.map + f.s.off_keywords, ISIO_FRAME_WHOLE, &h), 0);
	size_t hl = fitshdr_size(&h);
	char *text = malloc(hl + 1);
	fitshdr_write(&h, text);
	text[hl] = '\0';
	cr_assert(strstr(text, "OBJECT  = 'a string longer'    / a string longer than fifteen characters"),
		  "%.800s", text);
	cr_assert(strstr(text, "GAIN    =                 1.25 / real"), "%.800s", text);
	cr_assert(strstr(text, "FLAGT   =                    1 / a true flag"), "%.800s", text);
	free(text);
	fitshdr_free(&h);
	close_stream(&f);
	free(m.buf);
}

static int count_entries(void)
{
	DIR *d = opendir(dir);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

Test(load_stream, updated_in_place, .init = setup, .fini = teardown)
{
	struct mem a = float_image(16, 8, 0, 1), b = float_image(16, 8, 1000, 0);
	enum load_result did;
	cr_assert_eq(load("cam", &a, &did), 0);
	struct stream_file f;
	open_stream("cam.im.shm", &f);
	ino_t ino = f.st.st_ino;
	cr_assert_eq(load("cam", &b, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	struct stream_file g;
	open_stream("cam.im.shm", &g);
	cr_assert_eq(g.st.st_ino, ino);
	cr_assert_eq(g.s.cnt0, 2);
	cr_assert_eq(g.map[ISIO_OFF_WRITE], 0);
	cr_assert_eq(g.s.nbkw, 9, "the slots stay");
	for (int i = 0; i < 9; i++)
		cr_assert_eq(g.map[g.s.off_keywords + 128 * i + 16], 'N', "slot %d unused", i);
	for (int i = 0; i < 128; i++)
		cr_assert_eq(((float *)(f.map + 384))[i], 1000.0f + (float)i);
	int v = 0;
	sem_getvalue((sem_t *)(g.map + g.s.off_sems), &v);
	cr_assert_eq(v, 1, "semaphore posted");
	/* Keywords again: as many as there are slots. */
	cr_assert_eq(load("cam", &a, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	struct isio_keyword kw;
	cr_assert_eq(isio_keyword(g.map + g.s.off_keywords + 128 * 8, &kw), 0);
	cr_assert_eq(g.s.cnt0, 2);
	cr_assert_eq(u64_at(g.map, ISIO_OFF_CNT0), 3);
	cr_assert_eq(count_entries(), 1);
	close_stream(&f);
	close_stream(&g);
	free(a.buf);
	free(b.buf);
}

Test(load_stream, keywords_that_do_not_fit_are_dropped, .init = setup, .fini = teardown)
{
	struct mem a = float_image(4, 4, 0, 0), b = float_image(4, 4, 5, 1);
	enum load_result did;
	cr_assert_eq(load("few", &a, &did), 0);
	cr_assert_eq(load("few", &b, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	struct stream_file f;
	open_stream("few.im.shm", &f);
	cr_assert_eq(f.s.nbkw, 0);
	cr_assert_eq(f.s.cnt0, 2);
	close_stream(&f);
	free(a.buf);
	free(b.buf);
}

Test(load_stream, replaced_on_shape_or_type_change, .init = setup, .fini = teardown)
{
	struct mem a = float_image(16, 8, 0, 0), b = float_image(8, 16, 0, 0);
	const long dims[2] = {16, 8};
	int16_t pix[128] = {0};
	struct mem c = make_fits(SHORT_IMG, 2, dims, TSHORT, pix, 0, 0, 0);
	enum load_result did;
	cr_assert_eq(load("cam", &a, &did), 0);
	struct stream_file f;
	open_stream("cam.im.shm", &f);
	cr_assert_eq(load("cam", &b, &did), 0);
	cr_assert_eq(did, LOAD_REPLACED);
	struct stream_file g;
	open_stream("cam.im.shm", &g);
	cr_assert_neq(g.st.st_ino, f.st.st_ino);
	cr_assert_eq(u64_at(g.map, 232), g.st.st_ino);
	cr_assert_eq(g.s.size[0], 8);
	cr_assert_eq(g.s.cnt0, 1);
	cr_assert_eq(load("cam", &c, &did), 0);
	cr_assert_eq(did, LOAD_REPLACED);
	cr_assert_eq(count_entries(), 1, "no temporary names left");
	/* A file that is no stream is replaced too. */
	int fd = openat(dirfd_, "junk.im.shm", O_CREAT | O_WRONLY, 0644);
	cr_assert_eq(write(fd, "junk", 4), 4);
	close(fd);
	cr_assert_eq(load("junk", &a, &did), 0);
	cr_assert_eq(did, LOAD_REPLACED);
	cr_assert_eq(count_entries(), 2);
	close_stream(&f);
	close_stream(&g);
	free(a.buf);
	free(b.buf);
	free(c.buf);
}

Test(load_stream, links_are_followed_and_kept, .init = setup, .fini = teardown)
{
	struct mem a = float_image(16, 8, 0, 0), b = float_image(4, 4, 0, 0);
	enum load_result did;
	char target[64];
	cr_assert_eq(load("src", &a, &did), 0);
	cr_assert_eq(symlinkat("src.im.shm", dirfd_, "dest.im.shm"), 0);
	struct stream_file f;
	open_stream("src.im.shm", &f);
	cr_assert_eq(load("dest", &a, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	cr_assert_eq(u64_at(f.map, ISIO_OFF_CNT0), 2);
	cr_assert_eq(load("dest", &b, &did), 0);
	cr_assert_eq(did, LOAD_REPLACED);
	ssize_t n = readlinkat(dirfd_, "dest.im.shm", target, sizeof target);
	cr_assert_eq(n, 10, "still a link");
	struct stream_file g;
	open_stream("src.im.shm", &g);
	cr_assert_neq(g.st.st_ino, f.st.st_ino);
	cr_assert_str_eq(g.s.name, "src", "the target's name");
	cr_assert_eq(g.s.size[0], 4);
	/* An absolute link into the same directory, and a dangling one. */
	char abs[128];
	snprintf(abs, sizeof abs, "%s/src.im.shm", dir);
	cr_assert_eq(symlinkat(abs, dirfd_, "abs.im.shm"), 0);
	cr_assert_eq(load("abs", &b, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	cr_assert_eq(symlinkat("later.im.shm", dirfd_, "early.im.shm"), 0);
	cr_assert_eq(load("early", &b, &did), 0);
	cr_assert_eq(did, LOAD_CREATED);
	struct stream_file h;
	open_stream("later.im.shm", &h);
	cr_assert_str_eq(h.s.name, "later");
	/* A link out of the directory is refused. */
	cr_assert_eq(symlinkat("/tmp/elsewhere.im.shm", dirfd_, "out.im.shm"), 0);
	cr_assert_eq(load("out", &b, &did), -EXDEV);
	cr_assert_eq(count_entries(), 6);
	close_stream(&f);
	close_stream(&g);
	close_stream(&h);
	free(a.buf);
	free(b.buf);
}

/* ---- Nothing changes on failure */

struct entry {
	char name[256];
	unsigned char *bytes;
	size_t len;
	ino_t ino;
};

static size_t snapshot(struct entry *e, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;
	while ((de = readdir(d)) && n < max) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		struct stat st;
		cr_assert_eq(fstatat(dirfd_, de->d_name, &st, AT_SYMLINK_NOFOLLOW), 0);
		snprintf(e[n].name, sizeof e[n].name, "%s", de->d_name);
		e[n].ino = st.st_ino;
		e[n].len = (size_t)st.st_size;
		e[n].bytes = malloc(e[n].len + 1);
		if (S_ISLNK(st.st_mode)) {
			cr_assert_eq(readlinkat(dirfd_, de->d_name, (char *)e[n].bytes, e[n].len),
				     (ssize_t)e[n].len);
		} else {
			int fd = openat(dirfd_, de->d_name, O_RDONLY);
			cr_assert_eq(read(fd, e[n].bytes, e[n].len), (ssize_t)e[n].len);
			close(fd);
		}
		n++;
	}
	closedir(d);
	return n;
}

static void same_snapshot(struct entry *a, size_t na, struct entry *b, size_t nb, const char *what)
{
	cr_assert_eq(na, nb, "%s: %zu entries, then %zu", what, na, nb);
	for (size_t i = 0; i < na; i++) {
		size_t j = 0;
		while (j < nb && strcmp(a[i].name, b[j].name) != 0)
			j++;
		cr_assert_lt(j, nb, "%s: %s gone", what, a[i].name);
		cr_assert_eq(a[i].ino, b[j].ino, "%s: %s", what, a[i].name);
		cr_assert_eq(a[i].len, b[j].len, "%s: %s", what, a[i].name);
		cr_assert_eq(memcmp(a[i].bytes, b[j].bytes, a[i].len), 0, "%s: %s", what, a[i].name);
	}
	for (size_t i = 0; i < nb; i++)
		free(b[i].bytes);
}

Test(load_stream, failures_leave_the_directory_alone, .init = setup, .fini = teardown)
{
	struct mem a = float_image(16, 8, 0, 1);
	enum load_result did;
	cr_assert_eq(load("cam", &a, &did), 0);
	cr_assert_eq(symlinkat("cam.im.shm", dirfd_, "alias.im.shm"), 0);
	struct entry before[8], after[8];
	size_t nb = snapshot(before, 8);
	for (size_t k = 0; k < sizeof malformed / sizeof malformed[0]; k++) {
		struct mem m = make_malformed(&malformed[k]);
		cr_assert_lt(load("cam", &m, &did), 0);
		cr_assert_lt(load("alias", &m, &did), 0);
		cr_assert_lt(load("new", &m, &did), 0);
		same_snapshot(before, nb, after, snapshot(after, 8), malformed[k].what);
		free(m.buf);
	}
	cr_assert_eq(load("cam", &(struct mem){a.buf, a.len - 2880, NULL}, &did), -EIO);
	unsigned char garbage[2880];
	memset(garbage, 'x', sizeof garbage);
	cr_assert_eq(load("cam", &(struct mem){garbage, sizeof garbage, NULL}, &did), -EINVAL);
	same_snapshot(before, nb, after, snapshot(after, 8), "truncated, garbage");
	/* Bad names. */
	cr_assert_eq(load("", &a, &did), -EINVAL);
	cr_assert_eq(load("a/b", &a, &did), -EINVAL);
	same_snapshot(before, nb, after, snapshot(after, 8), "names");
	for (size_t i = 0; i < nb; i++)
		free(before[i].bytes);
	free(a.buf);
}

/* ---- MRC into IMOD objects */

static unsigned char *make_mrc(int nx, int ny, int nz, int nsymbt, float base, size_t *len)
{
	size_t data = (size_t)nx * ny * nz * 4;
	*len = 1024 + (size_t)nsymbt + data;
	unsigned char *b = calloc(1, *len);
	int32_t words[4] = {nx, ny, nz, 2};
	memcpy(b, words, sizeof words);
	memcpy(b + 92, &nsymbt, 4);
	memcpy(b + 208, "MAP ", 4);
	b[212] = b[213] = 0x44;
	int32_t nlabl = 1, version = 20140;
	memcpy(b + 108, &version, 4);
	memcpy(b + 220, &nlabl, 4);
	memcpy(b + 224, "a label", 7);
	float *px = (float *)(void *)(b + 1024 + nsymbt);
	for (size_t i = 0; i < data / 4; i++)
		px[i] = base + (float)i;
	return b;
}

Test(load_mrc, created_then_filled_in_place, .init = setup, .fini = teardown)
{
	size_t len;
	unsigned char *mrc = make_mrc(32, 16, 4, 128, 0, &len);
	enum load_result did;
	char why[256] = "";
	const char *name = "IMODShrMem_12_stack";
	/* 0600 as IMOD's creators make it, whatever the umask: this one
	 * would leave 0400. */
	mode_t old = umask(0277);
	int rc = load_mrc_imod(dirfd_, name, mrc, len, (uid_t)-1, (gid_t)-1, &did, why, sizeof why);
	umask(old);
	cr_assert_eq(rc, 0, "%s", why);
	cr_assert_eq(did, LOAD_CREATED);
	struct stat st;
	cr_assert_eq(fstatat(dirfd_, name, &st, 0), 0);
	cr_assert_eq(st.st_size, 12 * 1024);
	cr_assert_eq(st.st_mode & 07777, 0600);
	int fd = openat(dirfd_, name, O_RDONLY);
	unsigned char *obj = malloc(12 * 1024);
	cr_assert_eq(read(fd, obj, 12 * 1024), 12 * 1024);
	close(fd);
	struct imod_image img;
	cr_assert_eq(imod_parse(obj, 12 * 1024, 12 * 1024, 12 * 1024, &img, why, sizeof why), 0,
		     "%s", why);
	cr_assert_eq(img.nx, 32);
	cr_assert_eq(img.nz, 4);
	cr_assert_eq(memcmp(obj + 2048, mrc + 1024 + 128, img.data_bytes), 0);
	cr_assert_eq(memcmp(obj + 224, "a label", 7), 0);

	free(mrc);
	mrc = make_mrc(16, 16, 2, 0, 500, &len);
	rc = load_mrc_imod(dirfd_, name, mrc, len, (uid_t)-1, (gid_t)-1, &did, why, sizeof why);
	cr_assert_eq(rc, 0, "%s", why);
	cr_assert_eq(did, LOAD_UPDATED);
	struct stat st2;
	cr_assert_eq(fstatat(dirfd_, name, &st2, 0), 0);
	cr_assert_eq(st2.st_ino, st.st_ino);
	fd = openat(dirfd_, name, O_RDONLY);
	cr_assert_eq(read(fd, obj, 12 * 1024), 12 * 1024);
	close(fd);
	cr_assert_eq(imod_parse(obj, 12 * 1024, 12 * 1024, 12 * 1024, &img, why, sizeof why), 0);
	cr_assert_eq(img.nx, 16);
	cr_assert_eq(((float *)(void *)(obj + 2048))[3], 503.0f);
	free(obj);
	free(mrc);
}

Test(load_mrc, created_for_the_owner_given, .init = setup, .fini = teardown)
{
	if (geteuid() != 0)
		cr_skip_test("giving a file away needs root");
	size_t len;
	unsigned char *mrc = make_mrc(8, 8, 1, 0, 0, &len);
	enum load_result did;
	char why[256] = "";
	const char *name = "IMODShrMem_4_owned";
	cr_assert_eq(load_mrc_imod(dirfd_, name, mrc, len, 4242, 4343, &did, why, sizeof why), 0,
		     "%s", why);
	struct stat st;
	cr_assert_eq(fstatat(dirfd_, name, &st, 0), 0);
	cr_assert_eq(st.st_uid, 4242);
	cr_assert_eq(st.st_gid, 4343);
	cr_assert_eq(st.st_mode & 07777, 0600);
	free(mrc);
}

Test(load_mrc, refusals_change_nothing, .init = setup, .fini = teardown)
{
	size_t len;
	unsigned char *mrc = make_mrc(32, 32, 2, 0, 0, &len); /* 8 KB of data */
	enum load_result did;
	char why[256] = "";
	int rc = load_mrc_imod(dirfd_, "IMODShrMem_9_small", mrc, len, (uid_t)-1, (gid_t)-1, &did,
			       why, sizeof why);
	cr_assert_eq(rc, -ENOSPC);
	cr_assert(strstr(why, "10 KB"), "%s", why);
	cr_assert_eq(load_mrc_imod(dirfd_, "IMODShrMem_64_cut", mrc, len - 1, (uid_t)-1, (gid_t)-1,
				   &did, why, sizeof why), -EIO);
	cr_assert_eq(load_mrc_imod(dirfd_, "notimod", mrc, len, (uid_t)-1, (gid_t)-1, &did, why,
				   sizeof why), -EINVAL);
	cr_assert_eq(load_mrc_imod(dirfd_, "IMODShrMem_64_x", mrc, 500, (uid_t)-1, (gid_t)-1, &did,
				   why, sizeof why), -EINVAL);
	memcpy(mrc + 208, "PAM ", 4);
	cr_assert_eq(load_mrc_imod(dirfd_, "IMODShrMem_64_x", mrc, len, (uid_t)-1, (gid_t)-1, &did,
				   why, sizeof why), -EINVAL);
	cr_assert_eq(count_entries(), 0);

	/* An object that is there but too small for the name is refused
	 * before anything is written. */
	memcpy(mrc + 208, "MAP ", 4);
	int fd = openat(dirfd_, "IMODShrMem_9_small", O_CREAT | O_RDWR, 0600);
	cr_assert_eq(ftruncate(fd, 9 * 1024), 0);
	cr_assert_eq(pwrite(fd, "keep", 4, 0), 4);
	close(fd);
	rc = load_mrc_imod(dirfd_, "IMODShrMem_9_small", mrc, len, (uid_t)-1, (gid_t)-1, &did, why,
			   sizeof why);
	cr_assert_eq(rc, -ENOSPC);
	char head[4];
	fd = openat(dirfd_, "IMODShrMem_9_small", O_RDONLY);
	cr_assert_eq(read(fd, head, 4), 4);
	close(fd);
	cr_assert_eq(memcmp(head, "keep", 4), 0);
	free(mrc);
}
