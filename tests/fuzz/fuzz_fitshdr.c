// core: elem.c fitshdr.c
// pkg: cfitsio
/* fuzz_fitshdr.c - headers built from arbitrary element types, shapes,
 * keyword names, values and comments. Whatever goes in, the header must be
 * FITS: printable 80-byte cards, legal left-justified names, the mandatory
 * cards first and in order, no name twice, END and blank padding to 2880;
 * and CFITSIO must open it and read every value back with its own type.
 *
 * Input: type, naxis, dims (one byte each), then records until the input
 * ends: an opcode byte (int, real, string, comment; bit 2: no comment),
 * length-prefixed key, value and comment bytes, 8-byte numbers. */
#include <errno.h>
#include <fitsio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "elem.h"
#include "fitshdr.h"

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

struct reader {
	const uint8_t *p;
	size_t left;
};

static uint8_t next_byte(struct reader *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static uint64_t next_u64(struct reader *r)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | next_byte(r);
	return v;
}

/* A string of up to 127 arbitrary bytes (a NUL inside just ends it early). */
static void next_string(struct reader *r, char *out)
{
	size_t len = next_byte(r) & 0x7f;
	size_t i = 0;
	for (; i < len && r->left; i++)
		out[i] = (char)next_byte(r);
	out[i] = '\0';
}

static int name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

static void check_cards(const struct fits_header *h, const char *buf, size_t size, int naxis)
{
	CHECK(size % FITS_BLOCK == 0);
	CHECK(size >= (h->ncards + 1) * FITS_CARD);
	for (size_t i = 0; i < size; i++)
		CHECK(buf[i] >= 0x20 && buf[i] <= 0x7e);
	CHECK(memcmp(buf + h->ncards * FITS_CARD, "END     ", 8) == 0);
	for (size_t i = h->ncards * FITS_CARD + 3; i < size; i++)
		CHECK(buf[i] == ' ');

	static const char *const first[] = { "SIMPLE  = ", "BITPIX  = ", "NAXIS   = " };
	for (int i = 0; i < 3; i++)
		CHECK(memcmp(buf + i * FITS_CARD, first[i], 10) == 0);
	for (int i = 1; i <= naxis; i++) {
		char name[12];
		snprintf(name, sizeof name, "NAXIS%-3d= ", i);
		CHECK(memcmp(buf + (size_t)(2 + i) * FITS_CARD, name, 10) == 0);
	}

	for (size_t i = 0; i < h->ncards; i++) {
		const char *c = buf + i * FITS_CARD;
		size_t len = 0;
		while (len < 8 && c[len] != ' ')
			CHECK(name_char(c[len++]));
		CHECK(len > 0);
		for (size_t k = len; k < 8; k++)
			CHECK(c[k] == ' ');
		if (memcmp(c, "COMMENT ", 8) == 0)
			continue;
		CHECK(c[8] == '=' && c[9] == ' ');
		for (size_t j = 0; j < i; j++) {
			const char *d = buf + j * FITS_CARD;
			CHECK(!(memcmp(c, d, 8) == 0 && d[8] == '='));
		}
	}
}

/* CFITSIO opens the file and reads every card's value as its own type. */
static void check_with_cfitsio(const struct fits_header *h, char *buf, size_t size)
{
	fitsfile *fp;
	int status = 0, nkeys = 0, more = 0, bitpix, naxis;
	long naxes[9];
	void *mem = buf;
	size_t memsize = size;
	CHECK(fits_open_memfile(&fp, "fuzz.fits", READONLY, &mem, &memsize, 0, NULL, &status) == 0);
	fits_get_img_param(fp, 9, &bitpix, &naxis, naxes, &status);
	CHECK(status == 0);
	fits_get_hdrspace(fp, &nkeys, &more, &status);
	CHECK(status == 0 && (size_t)nkeys == h->ncards);
	for (int k = 1; k <= nkeys; k++) {
		char name[FLEN_KEYWORD], value[FLEN_VALUE], comment[FLEN_COMMENT], type;
		fits_read_keyn(fp, k, name, value, comment, &status);
		CHECK(status == 0);
		if (strcmp(name, "COMMENT") == 0)
			continue;
		fits_get_keytype(value, &type, &status);
		CHECK(status == 0);
		if (strcmp(name, "BZERO") == 0 && type == 'I')
			type = 'F'; /* 2^63 is no long long */
		union {
			char s[FLEN_VALUE];
			long long i;
			double d;
			int l;
		} v;
		switch (type) {
		case 'C':
			fits_read_key(fp, TSTRING, name, v.s, NULL, &status);
			break;
		case 'I':
			fits_read_key(fp, TLONGLONG, name, &v.i, NULL, &status);
			break;
		case 'F':
			fits_read_key(fp, TDOUBLE, name, &v.d, NULL, &status);
			break;
		case 'L':
			fits_read_key(fp, TLOGICAL, name, &v.l, NULL, &status);
			break;
		default:
			CHECK(0);
		}
		CHECK(status == 0);
	}
	fits_close_file(fp, &status);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reader r = { data, size };
	struct fits_header h;
	enum elem_type t = (enum elem_type)(next_byte(&r) % (ELEM_COUNT + 1));
	int naxis = next_byte(&r) % 10;
	uint64_t dims[9];
	for (int i = 0; i < 9; i++)
		dims[i] = next_byte(&r) % 8;

	fitshdr_init(&h);
	int rc = fitshdr_image(&h, t, naxis, dims);
	if (rc < 0) {
		CHECK(rc == -EINVAL && h.ncards == 0);
		CHECK(t == ELEM_NONE || t == ELEM_COUNT || naxis < 1 || naxis > 8);
		return 0;
	}
	struct elem_fits f;
	CHECK(elem_fits(t, &f) == 0);

	char key[128], value[128], comment[128];
	while (r.left) {
		uint8_t op = next_byte(&r);
		next_string(&r, key);
		next_string(&r, comment);
		const char *com = (op & 4) ? NULL : comment;
		switch (op & 3) {
		case 0:
			rc = fitshdr_int(&h, key, (long long)next_u64(&r), com);
			break;
		case 1: {
			uint64_t bits = next_u64(&r);
			double d;
			memcpy(&d, &bits, sizeof d);
			rc = fitshdr_real(&h, key, d, com);
			break;
		}
		case 2:
			next_string(&r, value);
			rc = fitshdr_string(&h, key, (op & 8) ? NULL : value, com);
			break;
		default:
			rc = fitshdr_comment(&h, key);
			break;
		}
		CHECK(rc == 0);
	}

	/* The data part is left out: CFITSIO reads the header without it. */
	size_t hsize = fitshdr_size(&h);
	char *buf = malloc(hsize);
	CHECK(buf);
	fitshdr_write(&h, buf);
	check_cards(&h, buf, hsize, naxis + f.complex);
	check_with_cfitsio(&h, buf, hsize);
	fits_clear_errmsg();
	free(buf);
	fitshdr_free(&h);
	return 0;
}
