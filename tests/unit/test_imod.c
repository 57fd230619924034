/* test_imod.c - unit tests of core/imod: IMOD object names, the in-memory
 * header (written here as formats/mrc-imod.md lays it out), the synthesized
 * MRC header checked by the reference validator (python3-mrcfile) with the
 * data read back, the MRC-to-IMOD direction, and hostile headers. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imod.h"
#include "unit_files.h"

#define OFF_MODE 12
#define OFF_MX 28
#define OFF_CELLA 40
#define OFF_CELLB 52
#define OFF_MAPC 64
#define OFF_ISPG 88
#define OFF_NSYMBT 92
#define OFF_NVERSION 108
#define OFF_STAMP 152
#define OFF_FLAGS 156
#define OFF_MAP 208
#define OFF_MACHST 212
#define OFF_RMS 216
#define OFF_NLABL 220
#define OFF_LABELS 224
#define IMOD_STAMP 1146047817

static char dir[64];

/* Field by field: the struct has padding. */
static void same_image(const struct imod_image *a, const struct imod_image *b)
{
	cr_assert_eq(a->nx, b->nx);
	cr_assert_eq(a->ny, b->ny);
	cr_assert_eq(a->nz, b->nz);
	cr_assert_eq(a->mode, b->mode);
	cr_assert_eq(a->type, b->type);
	cr_assert_eq(a->data_bytes, b->data_bytes);
}

static void setup(void)
{
	strcpy(dir, "/tmp/test_imod.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

TestSuite(imod, .init = setup, .fini = teardown);

static void put32(unsigned char *p, size_t off, int32_t v)
{
	memcpy(p + off, &v, 4);
}
static void putf(unsigned char *p, size_t off, float v)
{
	memcpy(p + off, &v, 4);
}
static int32_t get32(const unsigned char *p, size_t off)
{
	int32_t v;
	memcpy(&v, p + off, 4);
	return v;
}
static float getf(const unsigned char *p, size_t off)
{
	float v;
	memcpy(&v, p + off, 4);
	return v;
}

/* IMOD's in-memory header as IMOD would leave it in the object: the header
 * words, NLABELS labels at the 81-byte stride, the rest zero. */
static void imod_header(unsigned char *h, int nx, int ny, int nz, int mode, int nlabels)
{
	memset(h, 0, IMOD_HEADER_AREA);
	put32(h, 0, nx);
	put32(h, 4, ny);
	put32(h, 8, nz);
	put32(h, OFF_MODE, mode);
	put32(h, OFF_MX, nx);
	put32(h, OFF_MX + 4, ny);
	put32(h, OFF_MX + 8, nz);
	putf(h, OFF_CELLA, 2.5f * nx);
	putf(h, OFF_CELLA + 4, 2.5f * ny);
	putf(h, OFF_CELLA + 8, 2.5f * nz);
	for (int a = 0; a < 3; a++) {
		putf(h, OFF_CELLB + 4 * a, 90);
		put32(h, OFF_MAPC + 4 * a, a + 1);
	}
	putf(h, 76, 0.5f); /* dmin, dmax, dmean as IMOD computed them */
	putf(h, 80, 99.0f);
	putf(h, 84, 42.0f);
	put32(h, OFF_STAMP, IMOD_STAMP);
	memcpy(h + OFF_MAP, "MAP ", 4);
	h[OFF_MACHST] = h[OFF_MACHST + 1] = 0x44;
	putf(h, OFF_RMS, 3.0f);
	put32(h, OFF_NLABL, nlabels);
	for (int i = 0; i < nlabels && i < 10; i++)
		snprintf((char *)h + OFF_LABELS + 81 * i, 81, "label %d: newstack -mode %d", i, mode);
}

static size_t pix_size(int mode)
{
	switch (mode) {
	case 0: return 1;
	case 1: case 6: case 12: return 2;
	case 2: return 4;
	case 4: return 8;
	}
	return 0;
}

static void fill(unsigned char *data, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		data[i] = (unsigned char)((i * 31 + seed) >> 1);
}

static void write_file(const char *path, const void *a, size_t alen, const void *b, size_t blen)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(a, 1, alen, f), alen);
	if (blen)
		cr_assert_eq(fwrite(b, 1, blen, f), blen);
	cr_assert_eq(fclose(f), 0);
}

/* Validate every file with mrcfile (the reference), then open each strictly
 * and write its data as numpy holds it to FILE.raw. Exit 0 iff all valid. */
static const char validate_py[] =
	"import sys, mrcfile\n"
	"ok = True\n"
	"for path in sys.argv[1:]:\n"
	"    if not mrcfile.validate(path):\n"
	"        ok = False\n"
	"        continue\n"
	"    with mrcfile.open(path, permissive=False) as m:\n"
	"        open(path + '.raw', 'wb').write(m.data.tobytes())\n"
	"        open(path + '.dtype', 'w').write(m.data.dtype.name)\n"
	"sys.exit(0 if ok else 1)\n";

static void mrcfile_validate(char **paths, int n)
{
	char script[128];
	snprintf(script, sizeof script, "%s/validate.py", dir);
	write_file(script, validate_py, sizeof validate_py - 1, NULL, 0);
	size_t len = 64 + strlen(script);
	for (int i = 0; i < n; i++)
		len += strlen(paths[i]) + 3;
	char *cmd = malloc(len);
	cr_assert_not_null(cmd);
	int at = snprintf(cmd, len, "/usr/bin/python3 '%s'", script);
	for (int i = 0; i < n; i++)
		at += snprintf(cmd + at, len - (size_t)at, " '%s'", paths[i]);
	at += snprintf(cmd + at, len - (size_t)at, " >&2");
	int rc = system(cmd);
	cr_assert_eq(rc, 0, "mrcfile.validate refused (see the output above): %s", cmd);
	free(cmd);
}

/* The view of an object holding header H and DATA: the synthesized header
 * then the data, as a file; mrcfile must accept it and read DATA back. */
static void check_view(const unsigned char *h, const unsigned char *data, const char *dtype,
		       const char *name)
{
	struct imod_image img;
	char why[256] = "";
	uint64_t cap = 1 << 24;
	int rc = imod_parse(h, IMOD_HEADER_AREA, cap, cap, &img, why, sizeof why);
	cr_assert_eq(rc, 0, "%s: %s", name, why);
	unsigned char mrc[MRC_HEADER_SIZE];
	imod_mrc_header(h, &img, mrc);
	char path[128];
	snprintf(path, sizeof path, "%s/%s.mrc", dir, name);
	write_file(path, mrc, sizeof mrc, data, (size_t)img.data_bytes);
	char *paths[1] = { path };
	mrcfile_validate(paths, 1);
	char raw[160];
	snprintf(raw, sizeof raw, "%s.raw", path);
	size_t rawlen;
	unsigned char *back = slurp(raw, &rawlen);
	cr_assert_eq(rawlen, img.data_bytes);
	cr_assert(memcmp(back, data, rawlen) == 0, "%s: mrcfile read other data", name);
	free(back);
	snprintf(raw, sizeof raw, "%s.dtype", path);
	unsigned char *dt = slurp(raw, &rawlen);
	cr_assert(rawlen == strlen(dtype) && memcmp(dt, dtype, rawlen) == 0,
		  "%s: dtype %.*s, expected %s", name, (int)rawlen, dt, dtype);
	free(dt);
}

Test(imod, name_capacity)
{
	cr_assert_eq(imod_name_capacity("IMODShrMem_262146_BBa.st"), 262146ull * 1024);
	cr_assert_eq(imod_name_capacity("IMODShrMem_3_x"), 3072);
	cr_assert_eq(imod_name_capacity("IMODShrMem_0003_x"), 3072);
	cr_assert_eq(imod_name_capacity("IMODShrMem_3_a_b_c"), 3072);
	cr_assert_eq(imod_name_capacity("IMODShrMem_18014398509481983_x"),
		     18014398509481983ull * 1024);
	const char *bad[] = {
		"IMODShrMem_2_x", "IMODShrMem_0_x", "IMODShrMem_3_", "IMODShrMem_3",
		"IMODShrMem__x", "IMODShrMem_x_y", "IMODShrMem_3x_y", "IMODShrMem_-3_x",
		"IMODShrMem_+3_x", "IMODShrMem_ 3_x", "/IMODShrMem_3_x", "imodshrmem_3_x",
		"IMODShrMem", "", "IMODShrMem_18014398509481984_x",
		"IMODShrMem_99999999999999999999999_x", "IMODShrMem_184467440737095516160_x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		cr_assert_eq(imod_name_capacity(bad[i]), 0, "%s", bad[i]);
}

Test(imod, parse_modes_and_types)
{
	unsigned char h[IMOD_HEADER_AREA];
	struct { int mode; enum elem_type type; size_t size; } modes[] = {
		{ 1, ELEM_I16, 2 }, { 2, ELEM_F32, 4 }, { 4, ELEM_C64, 8 },
		{ 6, ELEM_U16, 2 }, { 12, ELEM_F16, 2 },
	};
	for (size_t i = 0; i < sizeof modes / sizeof *modes; i++) {
		imod_header(h, 64, 32, 3, modes[i].mode, 1);
		struct imod_image img;
		char why[200];
		cr_assert_eq(imod_parse(h, sizeof h, 1 << 20, 1 << 20, &img, why, sizeof why), 0,
			     "mode %d: %s", modes[i].mode, why);
		cr_assert_eq(img.nx, 64);
		cr_assert_eq(img.ny, 32);
		cr_assert_eq(img.nz, 3);
		cr_assert_eq(img.mode, modes[i].mode);
		cr_assert_eq(img.type, modes[i].type);
		cr_assert_eq(img.data_bytes, 64 * 32 * 3 * modes[i].size);
	}
	/* mode 0: signed only with the IMOD stamp and its signed-bytes flag */
	struct imod_image img;
	imod_header(h, 5, 5, 1, 0, 0);
	cr_assert_eq(imod_parse(h, sizeof h, 4096, 4096, &img, NULL, 0), 0);
	cr_assert_eq(img.type, ELEM_U8);
	put32(h, OFF_FLAGS, 1);
	cr_assert_eq(imod_parse(h, sizeof h, 4096, 4096, &img, NULL, 0), 0);
	cr_assert_eq(img.type, ELEM_I8);
	put32(h, OFF_STAMP, 0);
	cr_assert_eq(imod_parse(h, sizeof h, 4096, 4096, &img, NULL, 0), 0);
	cr_assert_eq(img.type, ELEM_U8, "without the stamp IMOD reads bytes as unsigned");
}

Test(imod, parse_refusals)
{
	unsigned char h[IMOD_HEADER_AREA];
	struct imod_image img;
	char why[200];
	int bad_modes[] = { 3, 5, 7, 16, 101, -1, INT32_MIN, INT32_MAX };
	for (size_t i = 0; i < sizeof bad_modes / sizeof *bad_modes; i++) {
		imod_header(h, 4, 4, 1, bad_modes[i], 0);
		why[0] = 0;
		cr_assert_eq(imod_parse(h, sizeof h, 1 << 20, 1 << 20, &img, why, sizeof why),
			     -EINVAL, "mode %d", bad_modes[i]);
		cr_assert_neq(why[0], 0, "a refusal says why");
	}
	int32_t bad_sizes[][3] = { { 0, 4, 4 }, { 4, 0, 4 }, { 4, 4, 0 }, { -1, 4, 4 },
				   { 4, INT32_MIN, 4 }, { 4, 4, -7 } };
	for (size_t i = 0; i < sizeof bad_sizes / sizeof *bad_sizes; i++) {
		imod_header(h, bad_sizes[i][0], bad_sizes[i][1], bad_sizes[i][2], 2, 0);
		cr_assert_eq(imod_parse(h, sizeof h, 1 << 20, 1 << 20, &img, why, sizeof why),
			     -EINVAL);
	}
	/* sizes whose product overflows 64 bits */
	imod_header(h, INT32_MAX, INT32_MAX, INT32_MAX, 4, 0);
	cr_assert_eq(imod_parse(h, sizeof h, UINT64_MAX, UINT64_MAX, &img, why, sizeof why),
		     -EINVAL);
	cr_assert(strstr(why, "overflow"), "%s", why);
	/* the largest that does not overflow still has to fit */
	imod_header(h, INT32_MAX, INT32_MAX, 2, 1, 0);
	cr_assert_eq(imod_parse(h, sizeof h, UINT64_MAX, UINT64_MAX, &img, why, sizeof why), 0);
	cr_assert_eq(imod_parse(h, sizeof h, UINT64_MAX, 1ull << 62, &img, why, sizeof why),
		     -EINVAL);

	/* exactly fitting, and one byte short: by capacity and by object size */
	imod_header(h, 10, 10, 2, 1, 0);
	uint64_t need = IMOD_HEADER_AREA + 400;
	cr_assert_eq(imod_parse(h, sizeof h, need, need, &img, why, sizeof why), 0);
	cr_assert_eq(imod_parse(h, sizeof h, need - 1, need, &img, why, sizeof why), -EINVAL);
	cr_assert_eq(imod_parse(h, sizeof h, need, need - 1, &img, why, sizeof why), -EINVAL);
	cr_assert_eq(imod_parse(h, sizeof h, 0, need, &img, why, sizeof why), -EINVAL);
	cr_assert_eq(imod_parse(h, sizeof h, 1000, 1000, &img, why, sizeof why), -EINVAL);
	/* too little of the header */
	cr_assert_eq(imod_parse(h, IMOD_HEADER_MIN, need, need, &img, why, sizeof why), 0);
	cr_assert_eq(imod_parse(h, IMOD_HEADER_MIN - 1, need, need, &img, why, sizeof why),
		     -EINVAL);
	cr_assert_eq(imod_parse(h, 0, need, need, &img, why, 0), -EINVAL);
}

Test(imod, parse_reads_only_the_header)
{
	/* BUF of exactly IMOD_HEADER_MIN bytes on the heap: ASan catches a
	 * read past it, in the parser and in the view's header */
	unsigned char h[IMOD_HEADER_AREA];
	imod_header(h, 7, 9, 2, 2, 10);
	unsigned char *tight = malloc(IMOD_HEADER_MIN);
	cr_assert_not_null(tight);
	memcpy(tight, h, IMOD_HEADER_MIN);
	struct imod_image img;
	cr_assert_eq(imod_parse(tight, IMOD_HEADER_MIN, 1 << 20, 1 << 20, &img, NULL, 0), 0);
	unsigned char mrc[MRC_HEADER_SIZE];
	imod_mrc_header(tight, &img, mrc);
	cr_assert_eq(get32(mrc, OFF_NLABL), 10);
	free(tight);
}

Test(imod, view_header_fields)
{
	unsigned char h[IMOD_HEADER_AREA];
	imod_header(h, 16, 8, 4, 2, 3);
	put32(h, OFF_NSYMBT, 4096); /* IMOD's ext header stays behind */
	memcpy(h + 104, "FEI1", 4);
	/* a blank label between two, and one with bytes beyond its NUL */
	memset(h + OFF_LABELS + 81, 0, 81);
	memcpy(h + OFF_LABELS + 81 + 1, "garbage after the end", 21);
	put32(h, OFF_NLABL, 3);
	struct imod_image img;
	cr_assert_eq(imod_parse(h, sizeof h, 1 << 20, 1 << 20, &img, NULL, 0), 0);
	unsigned char mrc[MRC_HEADER_SIZE];
	imod_mrc_header(h, &img, mrc);
	cr_assert(memcmp(mrc, h, 12) == 0, "sizes copied");
	cr_assert_eq(get32(mrc, OFF_MODE), 2);
	cr_assert_eq(get32(mrc, OFF_NSYMBT), 0);
	cr_assert(memcmp(mrc + OFF_MAP, "MAP ", 4) == 0);
	cr_assert(memcmp(mrc + OFF_MACHST, "\x44\x44\x00\x00", 4) == 0);
	cr_assert_eq(get32(mrc, OFF_NVERSION), 20140);
	cr_assert_lt(getf(mrc, 80), getf(mrc, 76), "dmax < dmin: undetermined");
	cr_assert_lt(getf(mrc, 84), getf(mrc, 80));
	cr_assert_lt(getf(mrc, OFF_RMS), 0);
	cr_assert_eq(getf(mrc, OFF_CELLA), 40.0f, "the pixel size is kept");
	cr_assert_eq(get32(mrc, OFF_STAMP), IMOD_STAMP);
	cr_assert_eq(get32(mrc, OFF_FLAGS) & 1, 0);
	cr_assert_eq(get32(mrc, OFF_NLABL), 2);
	char label[81] = "";
	memcpy(label, mrc + OFF_LABELS, 80);
	cr_assert(strncmp(label, "label 0: newstack -mode 2", 25) == 0, "%s", label);
	cr_assert_eq(label[79], ' ', "blank-padded");
	memcpy(label, mrc + OFF_LABELS + 80, 80);
	cr_assert(strncmp(label, "label 2: newstack -mode 2", 25) == 0, "packed: %s", label);
	for (int i = 2 * 80; i < 800; i++)
		cr_assert_eq(mrc[OFF_LABELS + i], ' ');
}

Test(imod, views_validate_with_mrcfile, .timeout = 120)
{
	struct { int mode; int signed_bytes; const char *dtype; int nx, ny, nz; } cases[] = {
		{ 0, 0, "int8", 33, 17, 3 }, { 0, 1, "int8", 8, 8, 1 },
		{ 1, 0, "int16", 64, 48, 5 }, { 2, 0, "float32", 100, 1, 1 },
		{ 4, 0, "complex64", 12, 10, 2 }, { 6, 0, "uint16", 1, 1, 1 },
		{ 12, 0, "float16", 31, 7, 4 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		unsigned char h[IMOD_HEADER_AREA];
		imod_header(h, cases[i].nx, cases[i].ny, cases[i].nz, cases[i].mode, (int)i % 11);
		if (cases[i].signed_bytes)
			put32(h, OFF_FLAGS, 1);
		size_t n = (size_t)cases[i].nx * cases[i].ny * cases[i].nz * pix_size(cases[i].mode);
		unsigned char *data = malloc(n);
		cr_assert_not_null(data);
		fill(data, n, (unsigned)i);
		if (cases[i].mode == 12) /* finite halves: no NaN payload games */
			for (size_t k = 1; k < n; k += 2)
				data[k] &= 0x3b;
		char name[32];
		snprintf(name, sizeof name, "mode%d-%zu", cases[i].mode, i);
		check_view(h, data, cases[i].dtype, name);
		free(data);
	}
}

Test(imod, nonsense_fields_still_validate, .timeout = 120)
{
	/* each field mrcfile checks, wrong in the object: the view is still valid */
	unsigned char h[IMOD_HEADER_AREA];
	size_t n = 6 * 5 * 4 * 4;
	unsigned char data[6 * 5 * 4 * 4];
	fill(data, n, 3);
	for (size_t k = 3; k < n; k += 4)
		data[k] = 0x40; /* finite floats */

	imod_header(h, 6, 5, 4, 2, 10);
	memset(h + OFF_MAP, 0, 8); /* no MAP, no machine stamp */
	put32(h, OFF_MX, -3);
	put32(h, OFF_MX + 4, 0);
	putf(h, OFF_CELLA, -1);
	putf(h, OFF_CELLA + 4, NAN);
	putf(h, OFF_CELLA + 8, INFINITY);
	putf(h, OFF_CELLB, NAN);
	put32(h, OFF_MAPC, 1);
	put32(h, OFF_MAPC + 4, 1);
	put32(h, OFF_MAPC + 8, 7);
	put32(h, OFF_ISPG, -4);
	put32(h, OFF_NVERSION, 7);
	putf(h, OFF_RMS, 1e30f);
	put32(h, OFF_NLABL, 10);
	for (int i = 0; i < 10; i += 2) /* every other label unprintable or blank */
		memset(h + OFF_LABELS + 81 * i, i == 4 ? ' ' : 0x07, 80);
	check_view(h, data, "float32", "nonsense-1");

	imod_header(h, 6, 5, 4, 2, 99);
	put32(h, OFF_ISPG, 401); /* a volume stack whose nz is not whole volumes */
	put32(h, OFF_MX + 8, 3);
	put32(h, OFF_MAPC, 3);  /* a valid permutation is kept */
	put32(h, OFF_MAPC + 8, 1);
	for (int i = 0; i < 10; i++) /* labels with no NUL in 81 bytes */
		memset(h + OFF_LABELS + 81 * i, 'x', 81);
	check_view(h, data, "float32", "nonsense-2");

	imod_header(h, 6, 5, 4, 2, -5);
	put32(h, OFF_ISPG, 402); /* a volume stack of two volumes */
	put32(h, OFF_MX + 8, 2);
	check_view(h, data, "float32", "stack-of-volumes");
}

Test(imod, hostile_headers, .timeout = 300)
{
	/* random header bytes: the parser never reads outside BUF or
	 * misjudges the fit; whatever it accepts (with sizes forced small so
	 * many are) gives a view that mrcfile accepts */
	uint64_t s = 0x243f6a8885a308d3ull;
	enum { VALIDATED = 40 };
	char *paths[VALIDATED];
	int nvalid = 0;
	static const int modes[] = { 0, 1, 2, 4, 6, 12 };
	for (int round = 0; round < 20000; round++) {
		unsigned char *h = malloc(IMOD_HEADER_AREA);
		cr_assert_not_null(h);
		for (int i = 0; i < IMOD_HEADER_AREA; i++) {
			s ^= s << 13;
			s ^= s >> 7;
			s ^= s << 17;
			h[i] = (unsigned char)(s >> 24);
		}
		int tame = round % 2;
		if (tame) {
			put32(h, 0, 1 + (int32_t)(s % 9));
			put32(h, 4, 1 + (int32_t)(s / 9 % 7));
			put32(h, 8, 1 + (int32_t)(s / 63 % 5));
			put32(h, OFF_MODE, modes[s / 315 % 6]);
		}
		size_t buflen = round % 5 == 0 ? (size_t)(s % IMOD_HEADER_AREA) : IMOD_HEADER_AREA;
		uint64_t cap = round % 3 == 0 ? s : 1 << 20;
		uint64_t objsize = round % 7 == 0 ? s >> (s % 64) : cap;
		/* a heap copy of exactly BUFLEN bytes, so ASan sees an overread */
		unsigned char *buf = malloc(buflen ? buflen : 1);
		cr_assert_not_null(buf);
		memcpy(buf, h, buflen);
		struct imod_image img;
		char why[256];
		int rc = imod_parse(buf, buflen, cap, objsize, &img, why, sizeof why);
		cr_assert(rc == 0 || rc == -EINVAL);
		if (rc == 0) {
			cr_assert_geq(buflen, IMOD_HEADER_MIN);
			cr_assert_gt(img.nx, 0);
			cr_assert_gt(img.ny, 0);
			cr_assert_gt(img.nz, 0);
			uint64_t room = cap < objsize ? cap : objsize;
			cr_assert_leq(img.data_bytes + IMOD_HEADER_AREA, room);
			cr_assert_eq(img.data_bytes, (uint64_t)img.nx * img.ny * img.nz *
						     elem_size(img.type));
			unsigned char mrc[MRC_HEADER_SIZE];
			imod_mrc_header(buf, &img, mrc);
			/* the view header goes back into an IMOD header that describes the same */
			unsigned char back[IMOD_HEADER_AREA];
			struct imod_image again;
			cr_assert_eq(imod_from_mrc(mrc, &again, back, why, sizeof why), 0, "%s", why);
			same_image(&again, &img);
			if (tame && nvalid < VALIDATED && img.data_bytes < 4096) {
				unsigned char zero[4096] = { 0 };
				char path[128];
				snprintf(path, sizeof path, "%s/hostile-%d.mrc", dir, round);
				write_file(path, mrc, sizeof mrc, zero, (size_t)img.data_bytes);
				paths[nvalid++] = strdup(path);
			}
		}
		free(buf);
		free(h);
	}
	cr_assert_eq(nvalid, VALIDATED);
	mrcfile_validate(paths, nvalid);
	for (int i = 0; i < nvalid; i++)
		free(paths[i]);
}

Test(imod, from_mrc_round_trip)
{
	unsigned char h[IMOD_HEADER_AREA];
	imod_header(h, 20, 10, 3, 1, 4);
	put32(h, OFF_FLAGS, 0);
	struct imod_image img, img2;
	cr_assert_eq(imod_parse(h, sizeof h, 1 << 20, 1 << 20, &img, NULL, 0), 0);
	unsigned char mrc[MRC_HEADER_SIZE], mrc2[MRC_HEADER_SIZE];
	imod_mrc_header(h, &img, mrc);
	unsigned char back[IMOD_HEADER_AREA];
	char why[200];
	cr_assert_eq(imod_from_mrc(mrc, &img2, back, why, sizeof why), 0, "%s", why);
	same_image(&img, &img2);
	cr_assert_eq(imod_mrc_data_offset(mrc), 1024);
	/* the IMOD header: words kept, labels at 81, what follows zero */
	cr_assert(memcmp(back, mrc, 208) == 0);
	cr_assert_eq(get32(back, OFF_NLABL), 4);
	for (int i = 0; i < 10; i++) {
		cr_assert(memcmp(back + OFF_LABELS + 81 * i, mrc + OFF_LABELS + 80 * i, 80) == 0);
		cr_assert_eq(back[OFF_LABELS + 81 * i + 80], 0);
	}
	for (int i = IMOD_HEADER_MIN; i < IMOD_HEADER_AREA; i++)
		cr_assert_eq(back[i], 0);
	struct imod_image img3;
	cr_assert_eq(imod_parse(back, sizeof back, 1 << 20, 1 << 20, &img3, NULL, 0), 0);
	same_image(&img, &img3);
	imod_mrc_header(back, &img3, mrc2);
	cr_assert(memcmp(mrc, mrc2, sizeof mrc) == 0, "view of the loaded object == the file's");

	/* signed bytes survive both ways */
	imod_header(h, 4, 4, 1, 0, 0);
	put32(h, OFF_FLAGS, 1);
	cr_assert_eq(imod_parse(h, sizeof h, 1 << 20, 1 << 20, &img, NULL, 0), 0);
	cr_assert_eq(img.type, ELEM_I8);
	imod_mrc_header(h, &img, mrc);
	cr_assert_eq(imod_from_mrc(mrc, &img2, back, NULL, 0), 0);
	cr_assert_eq(img2.type, ELEM_I8);
}

/* An MRC file written by mrcfile itself (with an extended header), loaded. */
static const char write_py[] =
	"import sys, numpy as np, mrcfile\n"
	"with mrcfile.new(sys.argv[1], overwrite=True) as m:\n"
	"    m.set_data(np.arange(4 * 6 * 5, dtype=np.int16).reshape(4, 6, 5))\n"
	"    m.set_extended_header(np.zeros(3, dtype=[('a', '<i4')]))\n"
	"    m.voxel_size = 1.5\n"
	"    m.add_label('written by mrcfile')\n"
	"    m.add_label('second label')\n";

Test(imod, load_file_written_by_mrcfile)
{
	char script[128], path[128], cmd[512];
	snprintf(script, sizeof script, "%s/write.py", dir);
	snprintf(path, sizeof path, "%s/written.mrc", dir);
	write_file(script, write_py, sizeof write_py - 1, NULL, 0);
	snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, path);
	cr_assert_eq(system(cmd), 0);
	size_t len;
	unsigned char *file = slurp(path, &len);
	cr_assert_geq(len, MRC_HEADER_SIZE);
	struct imod_image img;
	unsigned char imod[IMOD_HEADER_AREA];
	char why[200];
	cr_assert_eq(imod_from_mrc(file, &img, imod, why, sizeof why), 0, "%s", why);
	cr_assert_eq(img.nx, 5);
	cr_assert_eq(img.ny, 6);
	cr_assert_eq(img.nz, 4);
	cr_assert_eq(img.type, ELEM_I16);
	cr_assert_eq(img.data_bytes, 240);
	uint64_t off = imod_mrc_data_offset(file);
	cr_assert_eq(off, 1024 + 12);
	cr_assert_eq(off + img.data_bytes, len);
	int16_t first;
	memcpy(&first, file + off + 2 * 7, 2);
	cr_assert_eq(first, 7);
	cr_assert_eq(get32(imod, OFF_NSYMBT), 0);
	cr_assert_eq(get32(imod, OFF_NLABL), 3, "mrcfile's own label, then ours");
	cr_assert(strncmp((char *)imod + OFF_LABELS + 2 * 81, "second label", 12) == 0);
	cr_assert_eq(getf(imod, OFF_CELLA) / (float)get32(imod, OFF_MX), 1.5f);

	/* the object built from it shows a view mrcfile accepts, with the data */
	unsigned char *object = calloc(1, IMOD_HEADER_AREA + 240);
	cr_assert_not_null(object);
	memcpy(object, imod, IMOD_HEADER_AREA);
	memcpy(object + IMOD_HEADER_AREA, file + off, 240);
	check_view(object, file + off, "int16", "loaded");
	free(object);
	free(file);
}

Test(imod, from_mrc_refusals)
{
	unsigned char h[IMOD_HEADER_AREA], mrc[MRC_HEADER_SIZE], out[IMOD_HEADER_AREA];
	imod_header(h, 4, 4, 4, 2, 0);
	struct imod_image img;
	cr_assert_eq(imod_parse(h, sizeof h, 1 << 20, 1 << 20, &img, NULL, 0), 0);
	imod_mrc_header(h, &img, mrc);
	char why[200];

	unsigned char bad[MRC_HEADER_SIZE];
	memcpy(bad, mrc, sizeof bad);
	memcpy(bad + OFF_MAP, "PAM ", 4);
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "MAP"), "%s", why);

	memcpy(bad, mrc, sizeof bad);
	bad[OFF_MACHST] = bad[OFF_MACHST + 1] = 0x11;
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "byte order"), "%s", why);

	memcpy(bad, mrc, sizeof bad);
	memset(bad + OFF_MACHST, 0, 4); /* old files: no stamp, read as native */
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), 0);

	memcpy(bad, mrc, sizeof bad);
	put32(bad, OFF_MODE, 3);
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), -EINVAL);
	memcpy(bad, mrc, sizeof bad);
	put32(bad, 4, 0);
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), -EINVAL);
	memcpy(bad, mrc, sizeof bad);
	put32(bad, 0, INT32_MAX);
	put32(bad, 4, INT32_MAX);
	put32(bad, 8, INT32_MAX);
	put32(bad, OFF_MODE, 4);
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), -EINVAL);
	memcpy(bad, mrc, sizeof bad);
	put32(bad, OFF_NSYMBT, -1);
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), -EINVAL);
	memcpy(bad, mrc, sizeof bad);
	put32(bad, OFF_NSYMBT, INT32_MAX);
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), 0);
	cr_assert_eq(imod_mrc_data_offset(bad), 1024ull + INT32_MAX);
	memcpy(bad, mrc, sizeof bad);
	put32(bad, OFF_NLABL, 99); /* clamped */
	cr_assert_eq(imod_from_mrc(bad, &img, out, why, sizeof why), 0);
	cr_assert_eq(get32(out, OFF_NLABL), 10);
}
