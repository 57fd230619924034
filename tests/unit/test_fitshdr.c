/* test_fitshdr.c - unit tests of core/fitshdr: the exact bytes of the
 * mandatory cards, and whole FITS files (header + converted data) for every
 * element type and 1 to 3 axes, carrying hostile keyword names and values,
 * read back with CFITSIO and checked with fitsverify. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fitsio.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "elem.h"
#include "fitshdr.h"

static char dir[64];
static char path[128];
static struct fits_header hdr;

static void setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/shmfs-unit-fitshdr-XXXXXX");
	cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
	snprintf(path, sizeof path, "%s/view.fits", dir);
	fitshdr_init(&hdr);
}

static void teardown(void)
{
	fitshdr_free(&hdr);
	unlink(path);
	rmdir(dir);
}

TestSuite(fitshdr, .init = setup, .fini = teardown);

static const char *card(const struct fits_header *h, size_t i)
{
	return h->cards + i * FITS_CARD;
}

/* Index of the value card named NAME, or -1. */
static long find_card(const struct fits_header *h, const char *name)
{
	char name8[9];
	snprintf(name8, sizeof name8, "%-8s", name);
	for (size_t i = 0; i < h->ncards; i++)
		if (memcmp(card(h, i), name8, 8) == 0 && card(h, i)[8] == '=')
			return (long)i;
	return -1;
}

static void assert_card_starts(const struct fits_header *h, size_t i, const char *text)
{
	cr_assert_lt(i, h->ncards);
	cr_assert(strncmp(card(h, i), text, strlen(text)) == 0, "card %zu is [%.80s], want [%s]", i,
		  card(h, i), text);
}

/* Card I is NAME = VALUE in fixed format: name in columns 1-8, "= ", value
 * right-justified to end in column 30. */
static void assert_fixed(const struct fits_header *h, size_t i, const char *name, const char *value)
{
	char want[40];
	snprintf(want, sizeof want, "%-8s= %20s", name, value);
	cr_assert_eq(strlen(want), 30);
	assert_card_starts(h, i, want);
}

static void assert_all_printable(const struct fits_header *h)
{
	for (size_t i = 0; i < h->ncards * FITS_CARD; i++)
		cr_assert(h->cards[i] >= 0x20 && h->cards[i] <= 0x7e, "byte %zu of card %zu is 0x%02x",
			  i % FITS_CARD, i / FITS_CARD, (unsigned char)h->cards[i]);
}

/* Write header H and N elements of type T from NATIVE as a FITS file. */
static void write_file(const struct fits_header *h, enum elem_type t, const void *native, size_t n)
{
	struct elem_fits f;
	cr_assert_eq(elem_fits(t, &f), 0);
	size_t hsize = fitshdr_size(h);
	size_t dsize = fits_data_size(n * f.fits_size);
	char *buf = calloc(1, hsize + dsize);
	cr_assert_not_null(buf);
	fitshdr_write(h, buf);
	elem_to_fits(t, native, buf + hsize, n);
	FILE *fp = fopen(path, "wb");
	cr_assert_not_null(fp);
	cr_assert_eq(fwrite(buf, 1, hsize + dsize, fp), hsize + dsize);
	cr_assert_eq(fclose(fp), 0);
	free(buf);
}

/* fitsverify's verdict on the file: 0 when it says OK. REPORT gets its
 * full output when it does not. */
static int fitsverify(char *report, size_t len)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "fitsverify -q '%s' >/dev/null 2>&1", path);
	int st = system(cmd);
	cr_assert(st != -1 && WIFEXITED(st), "could not run fitsverify");
	report[0] = '\0';
	if (WEXITSTATUS(st) == 0)
		return 0;
	snprintf(cmd, sizeof cmd, "fitsverify '%s' 2>&1", path);
	FILE *p = popen(cmd, "r");
	if (p) {
		size_t n = fread(report, 1, len - 1, p);
		report[n] = '\0';
		pclose(p);
	}
	return WEXITSTATUS(st);
}

static void assert_fitsverify(void)
{
	static char report[16384];
	cr_assert_eq(fitsverify(report, sizeof report), 0, "fitsverify failed:\n%s", report);
}

/* ---- Exact layout. */

Test(fitshdr, mandatory_cards_float32)
{
	uint64_t dims[] = { 5, 3 };
	cr_assert_eq(fitshdr_image(&hdr, ELEM_F32, 2, dims), 0);
	cr_assert_eq(hdr.ncards, 6);
	assert_card_starts(&hdr, 0, "SIMPLE  =                    T");
	assert_card_starts(&hdr, 1, "BITPIX  =                  -32");
	assert_fixed(&hdr, 0, "SIMPLE", "T");
	assert_fixed(&hdr, 1, "BITPIX", "-32");
	assert_fixed(&hdr, 2, "NAXIS", "2");
	assert_fixed(&hdr, 3, "NAXIS1", "5");
	assert_fixed(&hdr, 4, "NAXIS2", "3");
	assert_fixed(&hdr, 5, "EXTEND", "T");
	assert_all_printable(&hdr);

	cr_assert_eq(fitshdr_size(&hdr), FITS_BLOCK);
	char out[FITS_BLOCK];
	fitshdr_write(&hdr, out);
	cr_assert_arr_eq(out, hdr.cards, 6 * FITS_CARD);
	cr_assert(memcmp(out + 6 * FITS_CARD, "END     ", 8) == 0);
	for (size_t i = 6 * FITS_CARD + 3; i < FITS_BLOCK; i++)
		cr_assert_eq(out[i], ' ', "byte %zu", i);
}

Test(fitshdr, mandatory_cards_unsigned_and_int8)
{
	uint64_t dims[] = { 4 };
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U64, 1, dims), 0);
	assert_fixed(&hdr, 1, "BITPIX", "64");
	assert_fixed(&hdr, 4, "EXTEND", "T");
	assert_card_starts(&hdr, 5, "BZERO   =  9223372036854775808");
	assert_fixed(&hdr, 6, "BSCALE", "1");
	fitshdr_free(&hdr);

	cr_assert_eq(fitshdr_image(&hdr, ELEM_U16, 1, dims), 0);
	assert_fixed(&hdr, 1, "BITPIX", "16");
	assert_fixed(&hdr, 5, "BZERO", "32768");
	assert_fixed(&hdr, 6, "BSCALE", "1");
	fitshdr_free(&hdr);

	cr_assert_eq(fitshdr_image(&hdr, ELEM_U32, 1, dims), 0);
	assert_fixed(&hdr, 1, "BITPIX", "32");
	assert_fixed(&hdr, 5, "BZERO", "2147483648");
	fitshdr_free(&hdr);

	cr_assert_eq(fitshdr_image(&hdr, ELEM_I8, 1, dims), 0);
	assert_fixed(&hdr, 1, "BITPIX", "8");
	assert_fixed(&hdr, 5, "BZERO", "-128");
	assert_fixed(&hdr, 6, "BSCALE", "1");
	fitshdr_free(&hdr);

	cr_assert_eq(fitshdr_image(&hdr, ELEM_I16, 1, dims), 0);
	cr_assert_eq(hdr.ncards, 5, "signed types need no BZERO");
	cr_assert_eq(find_card(&hdr, "BZERO"), -1);
	cr_assert_eq(find_card(&hdr, "BSCALE"), -1);
}

Test(fitshdr, mandatory_cards_complex_and_half)
{
	uint64_t dims[] = { 4, 3 };
	cr_assert_eq(fitshdr_image(&hdr, ELEM_C128, 2, dims), 0);
	assert_fixed(&hdr, 1, "BITPIX", "-64");
	assert_fixed(&hdr, 2, "NAXIS", "3");
	assert_fixed(&hdr, 3, "NAXIS1", "2");
	assert_fixed(&hdr, 4, "NAXIS2", "4");
	assert_fixed(&hdr, 5, "NAXIS3", "3");
	assert_fixed(&hdr, 6, "EXTEND", "T");
	assert_card_starts(&hdr, 7, "CTYPE1  = 'COMPLEX '");
	fitshdr_free(&hdr);

	cr_assert_eq(fitshdr_image(&hdr, ELEM_C64, 1, dims), 0);
	assert_fixed(&hdr, 1, "BITPIX", "-32");
	assert_fixed(&hdr, 2, "NAXIS", "2");
	assert_card_starts(&hdr, 6, "CTYPE1  = 'COMPLEX '");
	fitshdr_free(&hdr);

	cr_assert_eq(fitshdr_image(&hdr, ELEM_F16, 2, dims), 0);
	assert_fixed(&hdr, 1, "BITPIX", "-32");
	assert_fixed(&hdr, 5, "EXTEND", "T");
	assert_card_starts(&hdr, 6, "COMMENT float16 pixels widened to float32");
}

Test(fitshdr, refusals)
{
	uint64_t dims[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	cr_assert_eq(fitshdr_int(&hdr, "A", 1, NULL), -EINVAL, "optional card before the image");
	cr_assert_eq(fitshdr_comment(&hdr, "x"), -EINVAL);
	cr_assert_eq(fitshdr_image(&hdr, ELEM_NONE, 1, dims), -EINVAL);
	cr_assert_eq(fitshdr_image(&hdr, ELEM_COUNT, 1, dims), -EINVAL);
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 0, dims), -EINVAL);
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 9, dims), -EINVAL);
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 1, NULL), -EINVAL);
	uint64_t huge[] = { (uint64_t)LLONG_MAX + 1 };
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 1, huge), -EINVAL);
	cr_assert_eq(hdr.ncards, 0);
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 8, dims), 0);
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 1, dims), -EINVAL, "image twice");
	assert_card_starts(&hdr, 10, "NAXIS8  =                    1");
}

Test(fitshdr, sizes)
{
	cr_assert_eq(fits_data_size(0), 0);
	cr_assert_eq(fits_data_size(1), 2880);
	cr_assert_eq(fits_data_size(2880), 2880);
	cr_assert_eq(fits_data_size(2881), 5760);
	cr_assert_eq(fits_data_size((uint64_t)1 << 40), ((((uint64_t)1 << 40) + 2879) / 2880) * 2880);

	uint64_t dims[] = { 2 };
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 1, dims), 0); /* 5 cards */
	char name[8];
	for (int i = 0; i < 30; i++) {
		snprintf(name, sizeof name, "K%d", i);
		cr_assert_eq(fitshdr_int(&hdr, name, i, NULL), 0);
	}
	cr_assert_eq(hdr.ncards, 35);
	cr_assert_eq(fitshdr_size(&hdr), 2880, "35 cards and END fill one block");
	cr_assert_eq(fitshdr_int(&hdr, "ONEMORE", 1, NULL), 0);
	cr_assert_eq(fitshdr_size(&hdr), 5760);
	char *out = malloc(5760);
	fitshdr_write(&hdr, out);
	cr_assert(memcmp(out + 36 * FITS_CARD, "END" "     ", 8) == 0);
	free(out);
}

/* ---- Whole files for every type. */

static const enum elem_type all_types[] = {
	ELEM_U8,  ELEM_I8,  ELEM_U16, ELEM_I16, ELEM_U32,  ELEM_I32, ELEM_U64,
	ELEM_I64, ELEM_F32, ELEM_F64, ELEM_C64, ELEM_C128, ELEM_F16,
};

static uint64_t rng_state = 0x2545f4914f6cdd1du;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* N elements of type T: random bits for integers, random finite values and
 * the odd infinity, zero, subnormal or extreme for floats. */
static void *make_pixels(enum elem_type t, size_t n)
{
	size_t es = elem_size(t);
	unsigned char *p = malloc(n * es + 1);
	cr_assert_not_null(p);
	for (size_t i = 0; i < n * es; i++)
		p[i] = (unsigned char)(rng() >> 32);
	static const double special[] = { 0.0, -0.0, INFINITY, -INFINITY, 1e-40, -3.5, 65504 };
	size_t words = (t == ELEM_C64 || t == ELEM_C128) ? 2 * n : n;
	for (size_t i = 0; i < words; i++) {
		double v = i < 7 ? special[i] : ((double)(int64_t)rng() / 1e15);
		if (t == ELEM_F32 || t == ELEM_C64)
			((float *)(void *)p)[i] = (float)v;
		else if (t == ELEM_F64 || t == ELEM_C128)
			((double *)(void *)p)[i] = i == 4 ? 1e-310 : v;
		else if (t == ELEM_F16)
			((uint16_t *)(void *)p)[i] = elem_float_to_half((float)v);
	}
	return p;
}

/* CFITSIO's reading type and the equivalent image type for T. */
static void cfitsio_types(enum elem_type t, int *datatype, int *equiv)
{
	switch (t) {
	case ELEM_U8: *datatype = TBYTE; *equiv = BYTE_IMG; break;
	case ELEM_I8: *datatype = TSBYTE; *equiv = SBYTE_IMG; break;
	case ELEM_U16: *datatype = TUSHORT; *equiv = USHORT_IMG; break;
	case ELEM_I16: *datatype = TSHORT; *equiv = SHORT_IMG; break;
	case ELEM_U32: *datatype = TUINT; *equiv = ULONG_IMG; break;
	case ELEM_I32: *datatype = TINT; *equiv = LONG_IMG; break;
	case ELEM_U64: *datatype = TULONGLONG; *equiv = ULONGLONG_IMG; break;
	case ELEM_I64: *datatype = TLONGLONG; *equiv = LONGLONG_IMG; break;
	case ELEM_F64: case ELEM_C128: *datatype = TDOUBLE; *equiv = DOUBLE_IMG; break;
	default: *datatype = TFLOAT; *equiv = FLOAT_IMG; break;
	}
}

/* Keywords a hostile stream might carry. None may break the file. */
static void add_hostile_cards(struct fits_header *h)
{
	static const char *const reserved[] = {
		"SIMPLE", "bitpix", "NAXIS", "naxis1", "NAXIS4", "NAXIS999", "EXTEND", "END",
		"BZERO", "bscale", "BLANK", "PCOUNT", "GCOUNT", "GROUPS", "XTENSION", "INHERIT",
		"COMMENT", "HISTORY", "CONTINUE", "HIERARCH", "CHECKSUM", "DATASUM", "EPOCH",
		"BLOCKED", "CTYPE1", "CTYPE3", "CRPIX1", "CRVAL2", "CDELT1", "CROTA2", "PC1_1",
		"CD1_1", "PV1_1", "CUNIT1", "WCSAXES", "WCSAXESA", "RADESYS", "TFORM1", "TTYPE1",
		"TFIELDS", "THEAP", "PTYPE1", "PSCAL1", "TDIM1",
	};
	for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
		cr_assert_eq(fitshdr_int(h, reserved[i], 7, "hostile"), 0);
		cr_assert_eq(fitshdr_real(h, reserved[i], 0.0, "hostile"), 0);
		cr_assert_eq(fitshdr_string(h, reserved[i], "x", "hostile"), 0);
	}
	cr_assert_eq(fitshdr_int(h, "exposure", 42, "lower case name"), 0);
	cr_assert_eq(fitshdr_int(h, "  tint  ", -1, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "a.b c", 3, "\x01\x7f comment with control bytes \xff"), 0);
	cr_assert_eq(fitshdr_int(h, "verylongkeywordname", 4, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "", 5, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "   ", 5, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "...", 5, NULL), 0);
	cr_assert_eq(fitshdr_int(h, NULL, 5, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "\x01\xfe\xff", 5, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "IMIN", LLONG_MIN, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "IMAX", LLONG_MAX, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "DUP", 1, "first"), 0);
	cr_assert_eq(fitshdr_int(h, "dup", 2, "second"), 0);
	cr_assert_eq(fitshdr_string(h, "DUP", "third", NULL), 0);
	cr_assert_eq(fitshdr_int(h, "OBJECT", 1, NULL), 0);
	cr_assert_eq(fitshdr_string(h, "OBJECT", "M31", NULL), 0);
	cr_assert_eq(fitshdr_real(h, "EXTVER", 1.5, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "EXTVER", 2, NULL), 0);
	cr_assert_eq(fitshdr_string(h, "EQUINOX", "J2000", NULL), 0);
	cr_assert_eq(fitshdr_real(h, "EQUINOX", 2000.0, NULL), 0);
	cr_assert_eq(fitshdr_string(h, "DATE-OBS", "yesterday", NULL), 0);
	cr_assert_eq(fitshdr_string(h, "DATE-OBS", "2024-02-30", NULL), 0);
	cr_assert_eq(fitshdr_string(h, "DATE-OBS", "2024-01-02T03:04:05.250000", NULL), 0);
	cr_assert_eq(fitshdr_int(h, "DATE", 20240102, NULL), 0);
	cr_assert_eq(fitshdr_string(h, "DATE-END", "01/02/03", NULL), 0);
	cr_assert_eq(fitshdr_string(h, "RESTFRQ", "1e9", NULL), 0);
	cr_assert_eq(fitshdr_real(h, "NANV", NAN, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "INFV", INFINITY, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "NINFV", -INFINITY, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "TENTH", 0.1, "one tenth"), 0);
	cr_assert_eq(fitshdr_real(h, "THIRD", 1.0 / 3, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "HUGE", -1.7976931348623157e308, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "TINY", 2.2250738585072014e-308, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "SUBNORM", 4.9e-324, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "ZERO", -0.0, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "WHOLE", 5.0, NULL), 0);
	cr_assert_eq(fitshdr_real(h, "BIG", 1e20, NULL), 0);
	cr_assert_eq(fitshdr_string(h, "CTRL", "tab\there\nnewline\x7f\x80\xc3\xa9", NULL), 0);
	cr_assert_eq(fitshdr_string(h, "QUOTE", "it's", "a quote"), 0);
	cr_assert_eq(fitshdr_string(h, "EMPTY", "", NULL), 0);
	cr_assert_eq(fitshdr_string(h, "NULLSTR", NULL, NULL), 0);
	cr_assert_eq(fitshdr_string(h, "LEAD", "   leading", NULL), 0);
	char longs[301], quotes[301], longc[301];
	memset(longs, 'x', 300);
	longs[300] = '\0';
	memset(quotes, '\'', 300);
	quotes[300] = '\0';
	memset(longc, 'c', 300);
	longc[300] = '\0';
	cr_assert_eq(fitshdr_string(h, "LONGSTR", longs, longc), 0);
	cr_assert_eq(fitshdr_string(h, "QUOTES", quotes, longc), 0);
	longs[67] = '\'';
	cr_assert_eq(fitshdr_string(h, "CUTQUOTE", longs, NULL), 0);
	cr_assert_eq(fitshdr_int(h, "LONGCOM", 1, longc), 0);
	cr_assert_eq(fitshdr_comment(h, "a comment \x01 with a control byte"), 0);
	cr_assert_eq(fitshdr_comment(h, longc), 0);
	cr_assert_eq(fitshdr_comment(h, ""), 0);
	cr_assert_eq(fitshdr_comment(h, NULL), 0);
}

/* Number of value cards named NAME in H. */
static int count_cards(const struct fits_header *h, const char *name)
{
	char name8[9];
	int n = 0;
	snprintf(name8, sizeof name8, "%-8.8s", name);
	for (size_t i = 0; i < h->ncards; i++)
		n += memcmp(card(h, i), name8, 8) == 0 && card(h, i)[8] == '=';
	return n;
}

/* What add_hostile_cards must have produced, in H and in the file FP. */
static void check_hostile_cards(const struct fits_header *h, fitsfile *fp)
{
	int status = 0;
	long long ll;
	double d;
	char s[FLEN_VALUE];

	static const char *const absent[] = {
		"BLANK", "PCOUNT", "GCOUNT", "GROUPS", "XTENSION", "INHERIT", "CHECKSUM", "DATASUM",
		"EPOCH", "BLOCKED", "CRPIX1", "CRVAL2", "CDELT1", "CROTA2", "PC1_1", "CD1_1",
		"PV1_1", "CUNIT1", "WCSAXES", "WCSAXESA", "RADESYS", "TFORM1", "TTYPE1", "TFIELDS",
		"THEAP", "PTYPE1", "PSCAL1", "TDIM1", "NAXIS999", "NANV", "INFV", "NINFV",
		"SUBNORM", "DATE", "DATE-END", "RESTFRQ", "HIERARCH", "CONTINUE", "COMMENT", "HISTORY", "CTYPE3",
		"END", "",
	};
	for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
		cr_assert_eq(count_cards(h, absent[i]), 0, "%s should have been skipped", absent[i]);
	static const char *const once[] = {
		"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "EXTEND", "DUP", "OBJECT", "EXTVER",
		"EQUINOX", "DATE-OBS",
	};
	for (size_t i = 0; i < sizeof once / sizeof once[0]; i++)
		cr_assert_eq(count_cards(h, once[i]), 1, "%s", once[i]);
	cr_assert_leq(count_cards(h, "BZERO"), 1);
	cr_assert_leq(count_cards(h, "BSCALE"), 1);
	cr_assert_leq(count_cards(h, "CTYPE1"), 1);

#define READ(type, name, var)                                                             \
	do {                                                                              \
		fits_read_key(fp, type, name, &(var), NULL, &status);                    \
		cr_assert_eq(status, 0, "reading %s: status %d", name, status);            \
	} while (0)
	READ(TLONGLONG, "EXPOSURE", ll);
	cr_assert_eq(ll, 42);
	READ(TLONGLONG, "TINT", ll);
	cr_assert_eq(ll, -1);
	READ(TLONGLONG, "A_B_C", ll);
	cr_assert_eq(ll, 3);
	READ(TLONGLONG, "VERYLONG", ll);
	cr_assert_eq(ll, 4);
	READ(TLONGLONG, "IMIN", ll);
	cr_assert_eq(ll, LLONG_MIN);
	READ(TLONGLONG, "IMAX", ll);
	cr_assert_eq(ll, LLONG_MAX);
	READ(TLONGLONG, "DUP", ll);
	cr_assert_eq(ll, 1, "the first of duplicate names wins");
	READ(TLONGLONG, "EXTVER", ll);
	cr_assert_eq(ll, 2);
#define READS(name)                                                                       \
	do {                                                                              \
		fits_read_key(fp, TSTRING, name, s, NULL, &status);                        \
		cr_assert_eq(status, 0, "reading %s: status %d", name, status);            \
	} while (0)
	READS("OBJECT");
	cr_assert_str_eq(s, "M31");
	READ(TDOUBLE, "EQUINOX", d);
	cr_assert_eq(d, 2000.0);
	READS("DATE-OBS");
	cr_assert_str_eq(s, "2024-01-02T03:04:05.250000");
	READ(TDOUBLE, "TENTH", d);
	cr_assert_eq(d, 0.1);
	READ(TDOUBLE, "THIRD", d);
	cr_assert_eq(d, 1.0 / 3);
	READ(TDOUBLE, "HUGE", d);
	cr_assert_eq(d, -1.7976931348623157e308);
	READ(TDOUBLE, "TINY", d);
	cr_assert_eq(d, 2.2250738585072014e-308);
	READ(TDOUBLE, "ZERO", d);
	cr_assert_eq(d, 0.0);
	READ(TDOUBLE, "WHOLE", d);
	cr_assert_eq(d, 5.0);
	READ(TDOUBLE, "BIG", d);
	cr_assert_eq(d, 1e20);
	READS("CTRL");
	cr_assert_str_eq(s, "tab?here?newline????");
	READS("QUOTE");
	cr_assert_str_eq(s, "it's");
	READS("EMPTY");
	cr_assert_str_eq(s, "");
	READS("NULLSTR");
	cr_assert_str_eq(s, "");
	READS("LEAD");
	cr_assert_str_eq(s, "   leading");
	READS("LONGSTR");
	cr_assert_eq(strlen(s), 68);
	cr_assert_eq(strspn(s, "x"), 68);
	READS("QUOTES");
	cr_assert_geq(strlen(s), 30);
	cr_assert_eq(strspn(s, "'"), strlen(s));
	READS("CUTQUOTE");
	cr_assert_eq(strspn(s, "x"), 67);
	READ(TLONGLONG, "LONGCOM", ll);
#undef READ
#undef READS
}

static void check_file(enum elem_type t, int naxis, const uint64_t *dims, const void *native,
		       size_t n)
{
	fitsfile *fp;
	int status = 0, bitpix, equiv, nax, datatype, want_equiv, anynul = 0;
	long naxes[9];
	struct elem_fits f;
	elem_fits(t, &f);
	cfitsio_types(t, &datatype, &want_equiv);

	cr_assert_eq(fits_open_file(&fp, path, READONLY, &status), 0, "open: status %d", status);
	fits_get_img_param(fp, 9, &bitpix, &nax, naxes, &status);
	fits_get_img_equivtype(fp, &equiv, &status);
	cr_assert_eq(status, 0);
	cr_assert_eq(bitpix, f.bitpix, "%s", elem_name(t));
	/* CFITSIO 4.2 says LONGLONG_IMG for its own uint64 files too. */
	if (t == ELEM_U64 && equiv == LONGLONG_IMG)
		equiv = ULONGLONG_IMG;
	cr_assert_eq(equiv, want_equiv, "%s", elem_name(t));
	cr_assert_eq(nax, naxis + f.complex);
	if (f.complex)
		cr_assert_eq(naxes[0], 2);
	char name[16];
	for (int i = 1; i <= nax + 1; i++) {
		snprintf(name, sizeof name, "NAXIS%d", i);
		cr_assert_eq(count_cards(&hdr, name), i <= nax, "%s", name);
	}
	for (int i = 0; i < naxis; i++)
		cr_assert_eq((uint64_t)naxes[i + f.complex], dims[i]);

	size_t values = f.complex ? 2 * n : n;
	size_t vsize = f.complex ? elem_size(t) / 2 : (t == ELEM_F16 ? 4 : elem_size(t));
	unsigned char *got = malloc(values * vsize + 1);
	cr_assert_not_null(got);
	fits_read_img(fp, datatype, 1, (LONGLONG)values, NULL, got, &anynul, &status);
	cr_assert_eq(status, 0, "read_img %s: status %d", elem_name(t), status);
	if (t == ELEM_F16) {
		for (size_t i = 0; i < n; i++) {
			float want = elem_half_to_float(((const uint16_t *)native)[i]);
			cr_assert(memcmp(got + 4 * i, &want, 4) == 0, "float16 pixel %zu", i);
		}
	} else {
		cr_assert_arr_eq(got, native, values * vsize, "%s pixels", elem_name(t));
	}
	free(got);
	check_hostile_cards(&hdr, fp);
	fits_close_file(fp, &status);
}

Test(fitshdr, every_type_and_axes)
{
	const uint64_t shape[] = { 7, 5, 3 };
	for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++) {
		for (int naxis = 1; naxis <= 3; naxis++) {
			enum elem_type t = all_types[k];
			size_t n = 1;
			for (int i = 0; i < naxis; i++)
				n *= shape[i];
			fitshdr_init(&hdr);
			cr_assert_eq(fitshdr_image(&hdr, t, naxis, shape), 0);
			add_hostile_cards(&hdr);
			assert_all_printable(&hdr);
			void *pixels = make_pixels(t, n);
			write_file(&hdr, t, pixels, n);
			check_file(t, naxis, shape, pixels, n);
			assert_fitsverify();
			free(pixels);
			fitshdr_free(&hdr);
		}
	}
}

Test(fitshdr, card_text_of_values)
{
	uint64_t dims[] = { 1 };
	cr_assert_eq(fitshdr_image(&hdr, ELEM_F32, 1, dims), 0);
	cr_assert_eq(fitshdr_real(&hdr, "TENTH", 0.1, "one tenth"), 0);
	cr_assert_eq(fitshdr_real(&hdr, "BIG", 1e20, NULL), 0);
	cr_assert_eq(fitshdr_int(&hdr, "exposure", 42, NULL), 0);
	cr_assert_eq(fitshdr_string(&hdr, "QUOTE", "it's", NULL), 0);
	cr_assert_eq(fitshdr_string(&hdr, "LONGSTR",
				    "aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffffgggggggggghhhhhhhhhh",
				    "dropped"),
		     0);
	assert_card_starts(&hdr, (size_t)find_card(&hdr, "TENTH"),
			   "TENTH   =                  0.1 / one tenth");
	assert_fixed(&hdr, (size_t)find_card(&hdr, "BIG"), "BIG", "1.0E+20");
	assert_fixed(&hdr, (size_t)find_card(&hdr, "EXPOSURE"), "EXPOSURE", "42");
	assert_card_starts(&hdr, (size_t)find_card(&hdr, "QUOTE"), "QUOTE   = 'it''s   '");
	const char *c = card(&hdr, (size_t)find_card(&hdr, "LONGSTR"));
	cr_assert(memcmp(c, "LONGSTR = 'aaaaaaaaaa", 21) == 0);
	cr_assert_eq(c[78], 'g');
	cr_assert_eq(c[79], '\'', "the cut string still closes in column 80: [%.80s]", c);
}

Test(fitshdr, comments_wrap)
{
	uint64_t dims[] = { 1 };
	char text[200];
	for (int i = 0; i < 199; i++)
		text[i] = (char)('a' + i % 26);
	text[199] = '\0';
	cr_assert_eq(fitshdr_image(&hdr, ELEM_U8, 1, dims), 0);
	size_t before = hdr.ncards;
	cr_assert_eq(fitshdr_comment(&hdr, text), 0);
	cr_assert_eq(hdr.ncards, before + 3);
	assert_card_starts(&hdr, before, "COMMENT abcdefghij");
	cr_assert(memcmp(card(&hdr, before) + 8, text, 72) == 0);
	cr_assert(memcmp(card(&hdr, before + 1) + 8, text + 72, 72) == 0);
	cr_assert(memcmp(card(&hdr, before + 2) + 8, text + 144, 55) == 0);
	cr_assert_eq(card(&hdr, before + 2)[8 + 55], ' ');
	cr_assert_eq(fitshdr_comment(&hdr, ""), 0);
	cr_assert_eq(hdr.ncards, before + 4);
	cr_assert_eq(fitshdr_comment(&hdr, NULL), 0);
	cr_assert_eq(hdr.ncards, before + 4);
	assert_all_printable(&hdr);
}

/* Tens of thousands of names, each given twice: the second is skipped, and
 * the file is still good FITS. */
Test(fitshdr, many_keywords)
{
	uint64_t dims[] = { 3, 2 };
	enum { KEYS = 20000 };
	cr_assert_eq(fitshdr_image(&hdr, ELEM_I16, 2, dims), 0);
	size_t base = hdr.ncards;
	char name[16];
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < KEYS; i++) {
			snprintf(name, sizeof name, "K%d", i);
			cr_assert_eq(fitshdr_int(&hdr, name, round * KEYS + i, NULL), 0);
		}
	cr_assert_eq(hdr.ncards, base + KEYS);
	int16_t px[6] = { 1, -2, 3, -4, 5, -32768 };
	write_file(&hdr, ELEM_I16, px, 6);
	fitsfile *fp;
	int status = 0;
	long long v;
	fits_open_file(&fp, path, READONLY, &status);
	fits_read_key(fp, TLONGLONG, "K19999", &v, NULL, &status);
	cr_assert_eq(status, 0);
	cr_assert_eq(v, 19999);
	fits_close_file(fp, &status);
	assert_fitsverify();
}
