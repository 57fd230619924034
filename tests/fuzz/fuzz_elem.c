// core: elem.c
/* fuzz_elem.c - the pixel conversions on arbitrary bytes, at arbitrary
 * alignments: native -> FITS -> native gives the input back (a float16 NaN
 * may come back as another NaN), each FITS element equals the one-element
 * reference, and FITS -> native -> FITS gives the input back for every type
 * whose FITS form carries no more than the native one (all but float16,
 * where the scalar conversion is the reference instead).
 *
 * Input: byte 0 the type, byte 1 the misalignments, the rest the pixels. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elem.h"

#define CHECK(cond)                        \
	do {                               \
		if (!(cond))               \
			__builtin_trap();  \
	} while (0)

static int half_is_nan(uint16_t h)
{
	return (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
}

static uint32_t load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* FITS bytes of one element at SRC, by the definition. */
static void reference(enum elem_type t, const unsigned char *src, unsigned char *dst)
{
	struct elem_fits f;
	elem_fits(t, &f);
	if (t == ELEM_F16) {
		uint16_t h;
		memcpy(&h, src, 2);
		float v = elem_half_to_float(h);
		uint32_t u;
		memcpy(&u, &v, 4);
		for (int b = 0; b < 4; b++)
			dst[b] = (unsigned char)(u >> (24 - 8 * b));
		return;
	}
	size_t words = f.complex ? 2 : 1, word = elem_size(t) / words;
	for (size_t w = 0; w < words; w++) {
		for (size_t b = 0; b < word; b++)
			dst[w * word + b] = src[w * word + word - 1 - b];
		if (f.bzero)
			dst[w * word] ^= 0x80;
	}
}

static double distance(double a, double b)
{
	return a > b ? a - b : b - a;
}

/* H is the half nearest to V (not a NaN), ties to even, or infinity for
 * |V| >= 65520. */
static void check_nearest(float v, uint16_t h)
{
	uint16_t sign = h & 0x8000, mag = h & 0x7fff;
	CHECK((v < 0) == (sign != 0) || v == 0);
	if (mag == 0x7c00) {
		CHECK(distance(v, 0) >= 65520);
		return;
	}
	CHECK(mag < 0x7c00);
	double d = distance(v, elem_half_to_float(h));
	for (int step = -1; step <= 1; step += 2) {
		int other = mag + step;
		if (other < 0 || other >= 0x7c00)
			continue;
		double e = distance(v, elem_half_to_float((uint16_t)(sign | other)));
		CHECK(d <= e);
		if (d == e)
			CHECK((mag & 1) == 0);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	enum elem_type t = (enum elem_type)(1 + data[0] % (ELEM_COUNT - 1));
	size_t a1 = data[1] & 7, a2 = (data[1] >> 3) & 7;
	data += 2;
	size -= 2;

	struct elem_fits f;
	CHECK(elem_fits(t, &f) == 0);
	size_t es = elem_size(t), fs = f.fits_size;
	size_t n = size / es;     /* DATA as native elements */
	size_t m = size / fs;     /* DATA as FITS elements */
	size_t big = (n * fs > m * es ? n * fs : m * es) + 16;
	unsigned char *src = malloc(size + 8), *fits = malloc(big), *back = malloc(big);
	unsigned char *want = malloc(fs + 1);
	CHECK(src && fits && back && want);
	memcpy(src + a1, data, size);

	/* native -> FITS -> native */
	elem_to_fits(t, src + a1, fits + a2, n);
	for (size_t i = 0; i < n; i++) {
		reference(t, src + a1 + i * es, want);
		CHECK(memcmp(fits + a2 + i * fs, want, fs) == 0);
	}
	elem_from_fits(t, fits + a2, back + a1, n);
	if (t != ELEM_F16) {
		CHECK(memcmp(back + a1, src + a1, n * es) == 0);
	} else {
		for (size_t i = 0; i < n; i++) {
			uint16_t in, out;
			memcpy(&in, src + a1 + 2 * i, 2);
			memcpy(&out, back + a1 + 2 * i, 2);
			CHECK(half_is_nan(in) ? half_is_nan(out) : in == out);
		}
	}

	/* FITS -> native -> FITS */
	elem_from_fits(t, src + a1, back + a2, m);
	if (t != ELEM_F16) {
		elem_to_fits(t, back + a2, fits + a1, m);
		CHECK(memcmp(fits + a1, src + a1, m * fs) == 0);
	} else {
		for (size_t i = 0; i < m; i++) {
			uint32_t u = load_be32(src + a1 + 4 * i);
			float v;
			memcpy(&v, &u, 4);
			uint16_t h;
			memcpy(&h, back + a2 + 2 * i, 2);
			CHECK(h == elem_float_to_half(v));
			if (v == v)
				check_nearest(v, h);
		}
	}

	free(src);
	free(fits);
	free(back);
	free(want);
	return 0;
}
