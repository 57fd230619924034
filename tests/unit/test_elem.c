/* test_elem.c - unit tests of core/elem: type names and parsing, FITS
 * properties, byte-exact conversions to FITS for every type, round trips at
 * every length and alignment (vector bodies and scalar tails), and binary16
 * conversions checked against a reference built from the definition and,
 * where the compiler has one, its own _Float16. */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elem.h"

/* A small deterministic generator, so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(rng() >> 24);
}

static uint32_t f2u(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static float u2f(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

Test(elem, sizes_and_names)
{
	static const struct {
		enum elem_type t;
		size_t size;
		const char *name;
	} want[] = {
		{ ELEM_U8, 1, "uint8" },       { ELEM_I8, 1, "int8" },
		{ ELEM_U16, 2, "uint16" },     { ELEM_I16, 2, "int16" },
		{ ELEM_U32, 4, "uint32" },     { ELEM_I32, 4, "int32" },
		{ ELEM_U64, 8, "uint64" },     { ELEM_I64, 8, "int64" },
		{ ELEM_F32, 4, "float32" },    { ELEM_F64, 8, "float64" },
		{ ELEM_C64, 8, "complex64" },  { ELEM_C128, 16, "complex128" },
		{ ELEM_F16, 2, "float16" },
	};
	cr_assert_eq(sizeof want / sizeof want[0], ELEM_COUNT - 1);
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		cr_assert_eq(elem_size(want[i].t), want[i].size, "%s", want[i].name);
		cr_assert_str_eq(elem_name(want[i].t), want[i].name);
		cr_assert_eq(elem_parse(want[i].name), want[i].t, "%s", want[i].name);
	}
	/* ImageStreamIO's codes. */
	cr_assert_eq(ELEM_U8, 1);
	cr_assert_eq(ELEM_F32, 9);
	cr_assert_eq(ELEM_C128, 12);
	cr_assert_eq(ELEM_F16, 13);
	cr_assert_eq(elem_size(ELEM_NONE), 0);
	cr_assert_eq(elem_size(ELEM_COUNT), 0);
	cr_assert_eq(elem_size((enum elem_type)-1), 0);
	cr_assert_null(elem_name(ELEM_NONE));
	cr_assert_null(elem_name(ELEM_COUNT));
}

Test(elem, parse_aliases_and_case)
{
	static const struct {
		const char *name;
		enum elem_type t;
	} want[] = {
		{ "float", ELEM_F32 },     { "double", ELEM_F64 },    { "half", ELEM_F16 },
		{ "BYTE", ELEM_U8 },       { "INT", ELEM_I16 },       { "UINT", ELEM_U16 },
		{ "LONG", ELEM_I32 },      { "ULONG", ELEM_U32 },     { "LONG64", ELEM_I64 },
		{ "ULONG64", ELEM_U64 },   { "FLOAT", ELEM_F32 },     { "DOUBLE", ELEM_F64 },
		{ "COMPLEX", ELEM_C64 },   { "DCOMPLEX", ELEM_C128 }, { "Float32", ELEM_F32 },
		{ "UINT16", ELEM_U16 },    { "Complex128", ELEM_C128 }, { "dComplex", ELEM_C128 },
		{ "Half", ELEM_F16 },      { "FLOAT16", ELEM_F16 },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		cr_assert_eq(elem_parse(want[i].name), want[i].t, "%s", want[i].name);
	const char *bad[] = { "", "float31", "uint8 ", " uint8", "f4", "int128",
			      "complex32", "longlong", "floa", "float322" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		cr_assert_eq(elem_parse(bad[i]), ELEM_NONE, "'%s'", bad[i]);
	cr_assert_eq(elem_parse(NULL), ELEM_NONE);
}

Test(elem, fits_properties)
{
	struct elem_fits f;
	cr_assert_eq(elem_fits(ELEM_NONE, &f), -EINVAL);
	cr_assert_eq(elem_fits(ELEM_COUNT, &f), -EINVAL);

	static const struct {
		enum elem_type t;
		int bitpix, complex;
		const char *bzero;
		size_t fits_size;
	} want[] = {
		{ ELEM_U8, 8, 0, NULL, 1 },
		{ ELEM_I8, 8, 0, "-128", 1 },
		{ ELEM_U16, 16, 0, "32768", 2 },
		{ ELEM_I16, 16, 0, NULL, 2 },
		{ ELEM_U32, 32, 0, "2147483648", 4 },
		{ ELEM_I32, 32, 0, NULL, 4 },
		{ ELEM_U64, 64, 0, "9223372036854775808", 8 },
		{ ELEM_I64, 64, 0, NULL, 8 },
		{ ELEM_F32, -32, 0, NULL, 4 },
		{ ELEM_F64, -64, 0, NULL, 8 },
		{ ELEM_C64, -32, 1, NULL, 8 },
		{ ELEM_C128, -64, 1, NULL, 16 },
		{ ELEM_F16, -32, 0, NULL, 4 },
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		cr_assert_eq(elem_fits(want[i].t, &f), 0);
		cr_assert_eq(f.bitpix, want[i].bitpix, "%s", elem_name(want[i].t));
		cr_assert_eq(f.complex, want[i].complex);
		cr_assert_eq(f.fits_size, want[i].fits_size);
		if (want[i].bzero)
			cr_assert_str_eq(f.bzero, want[i].bzero);
		else
			cr_assert_null(f.bzero, "%s", elem_name(want[i].t));
	}
}

/* The FITS bytes of one element of each type, written out by hand. */
Test(elem, to_fits_exact_bytes)
{
	unsigned char out[32];

	uint8_t u8[] = { 0, 0x7f, 0xff };
	elem_to_fits(ELEM_U8, u8, out, 3);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0, 0x7f, 0xff }), 3);

	int8_t i8[] = { -128, -1, 0, 127 };
	elem_to_fits(ELEM_I8, i8, out, 4);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x00, 0x7f, 0x80, 0xff }), 4);

	uint16_t u16[] = { 0, 0x1234, 0xffff };
	elem_to_fits(ELEM_U16, u16, out, 3);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x80, 0x00, 0x92, 0x34, 0x7f, 0xff }), 6);

	int16_t i16[] = { 0x1234, -2 };
	elem_to_fits(ELEM_I16, i16, out, 2);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x12, 0x34, 0xff, 0xfe }), 4);

	uint32_t u32[] = { 0x01020304, 0 };
	elem_to_fits(ELEM_U32, u32, out, 2);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x81, 0x02, 0x03, 0x04, 0x80, 0, 0, 0 }), 8);

	int32_t i32[] = { 0x01020304 };
	elem_to_fits(ELEM_I32, i32, out, 1);
	cr_assert_arr_eq(out, ((unsigned char[]){ 1, 2, 3, 4 }), 4);

	uint64_t u64[] = { 0x0102030405060708u, UINT64_MAX };
	elem_to_fits(ELEM_U64, u64, out, 2);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x81, 2, 3, 4, 5, 6, 7, 8, 0x7f, 0xff, 0xff,
						   0xff, 0xff, 0xff, 0xff, 0xff }),
			 16);

	int64_t i64[] = { -2 };
	elem_to_fits(ELEM_I64, i64, out, 1);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe }), 8);

	float f32[] = { 1.0f, -2.5f };
	elem_to_fits(ELEM_F32, f32, out, 2);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0 }), 8);

	double f64[] = { 1.0 };
	elem_to_fits(ELEM_F64, f64, out, 1);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x3f, 0xf0, 0, 0, 0, 0, 0, 0 }), 8);

	float c64[] = { 1.0f, -2.5f }; /* one complex element */
	elem_to_fits(ELEM_C64, c64, out, 1);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x3f, 0x80, 0, 0, 0xc0, 0x20, 0, 0 }), 8);

	double c128[] = { 1.0, 2.0 };
	elem_to_fits(ELEM_C128, c128, out, 1);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0,
						   0 }),
			 16);

	uint16_t f16[] = { 0x3c00, 0xc000, 0x0001 }; /* 1, -2, 2^-24 */
	elem_to_fits(ELEM_F16, f16, out, 3);
	cr_assert_arr_eq(out, ((unsigned char[]){ 0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0, 0x33, 0x80, 0, 0 }),
			 12);
}

/* Portable reference: what a native value becomes in FITS, one element. */
static void reference_to_fits(enum elem_type t, const unsigned char *src, unsigned char *dst)
{
	struct elem_fits f;
	elem_fits(t, &f);
	size_t word = f.complex ? elem_size(t) / 2 : elem_size(t);
	size_t words = f.complex ? 2 : 1;
	if (t == ELEM_F16) {
		uint16_t h;
		memcpy(&h, src, 2);
		uint32_t u = f2u(elem_half_to_float(h));
		for (int b = 0; b < 4; b++)
			dst[b] = (unsigned char)(u >> (24 - 8 * b));
		return;
	}
	for (size_t w = 0; w < words; w++) {
		for (size_t b = 0; b < word; b++)
			dst[w * word + b] = src[w * word + word - 1 - b]; /* little-endian host */
		if (f.bzero)
			dst[w * word] ^= 0x80;
	}
}

static const enum elem_type all_types[] = {
	ELEM_U8,  ELEM_I8,  ELEM_U16, ELEM_I16, ELEM_U32,  ELEM_I32, ELEM_U64,
	ELEM_I64, ELEM_F32, ELEM_F64, ELEM_C64, ELEM_C128, ELEM_F16,
};

/* Lengths around every vector step, both buffers at every misalignment:
 * the result equals the per-element reference, and converting back gives
 * the input (float16 too: NaN payloads survive this implementation). The
 * uncached conversion writes the same bytes from every offset of its
 * destination to a 16-byte boundary (a head before the first boundary an
 * element starts on, or none reachable), and nothing past the end. */
Test(elem, round_trip_all_lengths_and_alignments)
{
	enum { MAXN = 80, PAD = 24 };
	static _Alignas(64) unsigned char src[MAXN * 16 + PAD], fits[MAXN * 16 + PAD],
		back[MAXN * 16 + PAD], want[MAXN * 16], uncached[MAXN * 16 + PAD];
	for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++) {
		enum elem_type t = all_types[k];
		struct elem_fits f;
		elem_fits(t, &f);
		size_t es = elem_size(t);
		for (size_t n = 0; n <= MAXN; n++) {
			for (size_t a = 0; a < 17; a++) {
				size_t so = a % 8, fo = a, bo = (a * 3) % 8;
				fill_random(src + so, n * es);
				memset(fits, 0xee, sizeof fits);
				elem_to_fits(t, src + so, fits + fo, n);
				for (size_t i = 0; i < n; i++)
					reference_to_fits(t, src + so + i * es, want + i * f.fits_size);
				cr_assert_arr_eq(fits + fo, want, n * f.fits_size, "%s n=%zu a=%zu",
						 elem_name(t), n, a);
				cr_assert_eq(fits[fo + n * f.fits_size], 0xee, "wrote past the end");
				memset(uncached, 0xee, sizeof uncached);
				elem_to_fits_uncached(t, src + so, uncached + fo, n);
				cr_assert_arr_eq(uncached, fits, sizeof fits, "%s uncached n=%zu a=%zu",
						 elem_name(t), n, a);
				elem_from_fits(t, fits + fo, back + bo, n);
				cr_assert_arr_eq(back + bo, src + so, n * es, "%s n=%zu a=%zu",
						 elem_name(t), n, a);
			}
		}
	}
}

Test(elem, round_trip_large_buffer)
{
	const size_t n = (1 << 16) + 13;
	for (size_t k = 0; k < sizeof all_types / sizeof all_types[0]; k++) {
		enum elem_type t = all_types[k];
		struct elem_fits f;
		elem_fits(t, &f);
		unsigned char *src = malloc(n * elem_size(t));
		unsigned char *fits = malloc(n * f.fits_size);
		unsigned char *back = malloc(n * elem_size(t));
		unsigned char *uncached = malloc(n * f.fits_size + 4);
		cr_assert(src && fits && back && uncached);
		fill_random(src, n * elem_size(t));
		elem_to_fits(t, src, fits, n);
		elem_from_fits(t, fits, back, n);
		cr_assert_arr_eq(back, src, n * elem_size(t), "%s", elem_name(t));
		elem_to_fits_uncached(t, src, uncached + 4, n);
		cr_assert_arr_eq(uncached + 4, fits, n * f.fits_size, "%s uncached", elem_name(t));
		free(src);
		free(fits);
		free(back);
		free(uncached);
	}
}

/* m * 2^e, exactly (no libm: the unit tests link only core). */
static double scale2(double m, int e)
{
	for (; e > 0; e--)
		m *= 2;
	for (; e < 0; e++)
		m /= 2;
	return m;
}

/* The next float after F towards zero (DOWN) or away from it. F finite, > 0. */
static float float_step(float f, int down)
{
	return u2f(f2u(f) + (down ? -1u : 1u));
}

/* Reference binary16 -> double, from the definition. */
static double half_reference(uint16_t h)
{
	int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
	double v;
	if (exp == 0)
		v = scale2(mant, -24);
	else if (exp == 31)
		v = mant ? NAN : INFINITY;
	else
		v = scale2(mant + 1024, exp - 25);
	return sign ? -v : v;
}

Test(elem, half_to_float_every_value)
{
	for (uint32_t h = 0; h <= 0xffff; h++) {
		float f = elem_half_to_float((uint16_t)h);
		double want = half_reference((uint16_t)h);
		if (isnan(want)) {
			cr_assert(isnan(f), "0x%04x", h);
			/* the payload moves to the top of the float's mantissa */
			cr_assert_eq(f2u(f) & 0x007fe000u, (uint32_t)(h & 0x3ff) << 13, "0x%04x", h);
		} else {
			cr_assert_eq((double)f, want, "0x%04x", h);
		}
		cr_assert_eq(f2u(f) >> 31, h >> 15, "sign of 0x%04x", h);
		cr_assert_eq(elem_float_to_half(f), h, "round trip 0x%04x", h);
	}
}

/* Reference float -> binary16, round to nearest even, by exhaustive search
 * over the neighbours: exact, and slow enough only for the samples below. */
static uint16_t half_of_reference(float f)
{
	if (isnan(f))
		return 0x7e00;
	uint16_t sign = signbit(f) ? 0x8000 : 0;
	double a = signbit(f) ? -(double)f : (double)f;
	if (a >= 65520.0)
		return sign | 0x7c00;
	/* the candidate halves below and above a */
	uint16_t lo = 0;
	for (uint16_t step = 0x4000; step; step >>= 1)
		if ((uint16_t)(lo + step) < 0x7c00 && half_reference((uint16_t)(lo + step)) <= a)
			lo = (uint16_t)(lo + step);
	if (half_reference(lo) == a || lo == 0x7bff)
		return sign | lo;
	uint16_t hi = (uint16_t)(lo + 1);
	double dlo = a - half_reference(lo), dhi = half_reference(hi) - a;
	if (dlo < dhi)
		return sign | lo;
	if (dhi < dlo)
		return sign | hi;
	return sign | ((lo & 1) ? hi : lo);
}

static void check_float_to_half(float f)
{
	uint16_t got = elem_float_to_half(f);
	if (isnan(f)) {
		cr_assert_eq(got & 0x7c00, 0x7c00, "NaN 0x%08x -> 0x%04x", f2u(f), got);
		cr_assert_neq(got & 0x3ff, 0, "NaN 0x%08x became infinity", f2u(f));
		return;
	}
	cr_assert_eq(got, half_of_reference(f), "0x%08x (%a) -> 0x%04x", f2u(f), (double)f, got);
#ifdef __FLT16_MAX__
	_Float16 native = (_Float16)f;
	uint16_t nbits;
	memcpy(&nbits, &native, 2);
	cr_assert_eq(got, nbits, "0x%08x: compiler says 0x%04x", f2u(f), nbits);
#endif
	/* the vector loop agrees with the scalar function */
	unsigned char be[4] = { (unsigned char)(f2u(f) >> 24), (unsigned char)(f2u(f) >> 16),
				(unsigned char)(f2u(f) >> 8), (unsigned char)f2u(f) };
	unsigned char many[4 * 9];
	uint16_t out[9];
	for (int i = 0; i < 9; i++)
		memcpy(many + 4 * i, be, 4);
	elem_from_fits(ELEM_F16, many, out, 9);
	for (int i = 0; i < 9; i++)
		cr_assert_eq(out[i], got, "vector lane %d of 0x%08x", i, f2u(f));
}

Test(elem, float_to_half_rounding)
{
	/* Every tie and near-tie between neighbouring halves, both signs. */
	for (uint32_t h = 0; h < 0x7c00; h++) {
		double lo = half_reference((uint16_t)h);
		double hi = h + 1 < 0x7c00 ? half_reference((uint16_t)(h + 1)) : 65536.0;
		float mid = (float)((lo + hi) / 2); /* exact: needs at most 12 bits */
		float f[] = { (float)lo, mid, float_step(mid, 1), float_step(mid, 0) };
		for (size_t i = 0; i < 4; i++) {
			check_float_to_half(f[i]);
			check_float_to_half(-f[i]);
		}
	}
	/* Named edges. */
	cr_assert_eq(elem_float_to_half(65504.0f), 0x7bff);
	cr_assert_eq(elem_float_to_half(65519.996f), 0x7bff);
	cr_assert_eq(elem_float_to_half(65520.0f), 0x7c00);
	cr_assert_eq(elem_float_to_half(1e10f), 0x7c00);
	cr_assert_eq(elem_float_to_half(INFINITY), 0x7c00);
	cr_assert_eq(elem_float_to_half(-INFINITY), 0xfc00);
	cr_assert_eq(elem_float_to_half(0x1p-24f), 0x0001);
	cr_assert_eq(elem_float_to_half(0x1p-25f), 0x0000);          /* tie to even */
	cr_assert_eq(elem_float_to_half(0x1.000002p-25f), 0x0001);
	cr_assert_eq(elem_float_to_half(0x1.8p-24f), 0x0002);        /* tie to even */
	cr_assert_eq(elem_float_to_half(0x1p-14f), 0x0400);          /* smallest normal */
	cr_assert_eq(elem_float_to_half(0x1.ff8p-15f), 0x03ff);      /* largest subnormal */
	cr_assert_eq(elem_float_to_half(0x1.ffcp-15f), 0x0400);      /* tie, up to even */
	cr_assert_eq(elem_float_to_half(-0.0f), 0x8000);
	cr_assert_eq(elem_float_to_half(1e-30f), 0x0000);
	cr_assert_eq(elem_float_to_half(u2f(0x00000001)), 0x0000);   /* float subnormal */
	cr_assert_eq(elem_float_to_half(1.0f + 0x1p-11f), 0x3c00);   /* tie to even */
	cr_assert_eq(elem_float_to_half(1.0f + 0x1p-11f + 0x1p-23f), 0x3c01);
	/* NaNs stay NaNs, payload in the low bits only or not */
	cr_assert_eq(elem_float_to_half(u2f(0x7f800001)), 0x7e00);
	cr_assert_eq(elem_float_to_half(u2f(0xffc00000)), 0xfe00);
	cr_assert_eq(elem_float_to_half(u2f(0x7f802000)), 0x7c01);
}

Test(elem, float_to_half_sampled)
{
	/* A stride through every float bit pattern. */
	for (uint64_t u = 0; u <= UINT32_MAX; u += 65521)
		check_float_to_half(u2f((uint32_t)u));
}

Test(elem, half_vector_matches_scalar)
{
	/* All 65536 halves through the FITS loop, compared with the scalar
	 * function; and all back. */
	uint16_t *h = malloc(65536 * 2), *back = malloc(65536 * 2);
	unsigned char *fits = malloc(65536 * 4);
	cr_assert(h && back && fits);
	for (uint32_t i = 0; i < 65536; i++)
		h[i] = (uint16_t)i;
	elem_to_fits(ELEM_F16, h, fits, 65536);
	for (uint32_t i = 0; i < 65536; i++) {
		uint32_t u = f2u(elem_half_to_float((uint16_t)i));
		uint32_t got = (uint32_t)fits[4 * i] << 24 | (uint32_t)fits[4 * i + 1] << 16 |
			       (uint32_t)fits[4 * i + 2] << 8 | fits[4 * i + 3];
		cr_assert_eq(got, u, "0x%04x", i);
	}
	elem_from_fits(ELEM_F16, fits, back, 65536);
	cr_assert_arr_eq(back, h, 65536 * 2);
	free(h);
	free(back);
	free(fits);
}

Test(elem, unsigned_extremes_read_back_as_values)
{
	/* BZERO arithmetic: FITS value (signed, big-endian) + BZERO = native. */
	uint16_t u16[] = { 0, 1, 32767, 32768, 65535 };
	unsigned char out[40];
	elem_to_fits(ELEM_U16, u16, out, 5);
	for (int i = 0; i < 5; i++) {
		int16_t s = (int16_t)((uint16_t)(out[2 * i] << 8 | out[2 * i + 1]));
		cr_assert_eq((int32_t)s + 32768, (int32_t)u16[i]);
	}
	int8_t i8[] = { -128, -1, 0, 1, 127 };
	elem_to_fits(ELEM_I8, i8, out, 5);
	for (int i = 0; i < 5; i++)
		cr_assert_eq((int)out[i] - 128, (int)i8[i]);
	uint64_t u64[] = { 0, UINT64_MAX, (uint64_t)1 << 63 };
	elem_to_fits(ELEM_U64, u64, out, 3);
	for (int i = 0; i < 3; i++) {
		uint64_t be = 0;
		for (int b = 0; b < 8; b++)
			be = be << 8 | out[8 * i + b];
		cr_assert_eq(be + ((uint64_t)1 << 63), u64[i]);
	}
}
