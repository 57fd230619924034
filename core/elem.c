/* elem.c - element types, their names, and the conversion of pixels between
 * native memory and FITS data bytes; see elem.h.
 *
 * Speed matters here: a FITS view is served by converting every byte it
 * returns. The type is dispatched once per call, and each kind of conversion
 * is a loop over GCC/Clang vector extensions (32 bytes per step: two SSE2
 * registers on baseline x86-64, one AVX2 register where the compiler may use
 * it) with a scalar tail. Byte swaps are written as shifts and masks because
 * GCC does not vectorise __builtin_bswap32/64 on its own and SSE2 has no byte
 * shuffle; the scalar tails use the builtins. Loads and stores go through
 * memcpy, so neither side needs to be aligned. */
#include "elem.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#define ELEM_STREAM_STORES 1
#endif

struct elem_info {
	size_t size;
	const char *name;
	struct elem_fits fits;
};

static const struct elem_info elem_table[ELEM_COUNT] = {
	[ELEM_U8] = { 1, "uint8", { 8, 0, NULL, 1 } },
	[ELEM_I8] = { 1, "int8", { 8, 0, "-128", 1 } },
	[ELEM_U16] = { 2, "uint16", { 16, 0, "32768", 2 } },
	[ELEM_I16] = { 2, "int16", { 16, 0, NULL, 2 } },
	[ELEM_U32] = { 4, "uint32", { 32, 0, "2147483648", 4 } },
	[ELEM_I32] = { 4, "int32", { 32, 0, NULL, 4 } },
	[ELEM_U64] = { 8, "uint64", { 64, 0, "9223372036854775808", 8 } },
	[ELEM_I64] = { 8, "int64", { 64, 0, NULL, 8 } },
	[ELEM_F32] = { 4, "float32", { -32, 0, NULL, 4 } },
	[ELEM_F64] = { 8, "float64", { -64, 0, NULL, 8 } },
	[ELEM_C64] = { 8, "complex64", { -32, 1, NULL, 8 } },
	[ELEM_C128] = { 16, "complex128", { -64, 1, NULL, 16 } },
	[ELEM_F16] = { 2, "float16", { -32, 0, NULL, 4 } },
};

static int elem_valid(enum elem_type t)
{
	return t > ELEM_NONE && t < ELEM_COUNT;
}

size_t elem_size(enum elem_type t)
{
	return elem_valid(t) ? elem_table[t].size : 0;
}

const char *elem_name(enum elem_type t)
{
	return elem_valid(t) ? elem_table[t].name : NULL;
}

/* Where numpy and IDL disagree on a name, IDL's meaning wins (FLOAT is 32
 * bits, COMPLEX is two floats, INT is 16 bits), as the header promises. */
static const struct {
	const char *name;
	enum elem_type type;
} elem_aliases[] = {
	{ "float", ELEM_F32 },     { "double", ELEM_F64 },  { "half", ELEM_F16 },
	{ "byte", ELEM_U8 },       { "int", ELEM_I16 },     { "uint", ELEM_U16 },
	{ "long", ELEM_I32 },      { "ulong", ELEM_U32 },   { "long64", ELEM_I64 },
	{ "ulong64", ELEM_U64 },   { "complex", ELEM_C64 }, { "dcomplex", ELEM_C128 },
};

enum elem_type elem_parse(const char *name)
{
	if (!name)
		return ELEM_NONE;
	for (int t = ELEM_NONE + 1; t < ELEM_COUNT; t++)
		if (strcasecmp(name, elem_table[t].name) == 0)
			return (enum elem_type)t;
	for (size_t i = 0; i < sizeof elem_aliases / sizeof elem_aliases[0]; i++)
		if (strcasecmp(name, elem_aliases[i].name) == 0)
			return elem_aliases[i].type;
	return ELEM_NONE;
}

int elem_fits(enum elem_type t, struct elem_fits *f)
{
	if (!elem_valid(t))
		return -EINVAL;
	*f = elem_table[t].fits;
	return 0;
}

/* ---- IEEE binary16 <-> binary32, branch-free so that loops of them can be
 * if-converted. */

static inline uint32_t float_bits(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	return u;
}

static inline float bits_float(uint32_t u)
{
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

/* Exact: every binary16 value is a binary32 value. NaN payloads are kept
 * (shifted into the top of the float's mantissa). */
static inline uint32_t half_to_float_bits(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t em = h & 0x7fffu;                            /* exponent and mantissa */
	uint32_t normal = (em << 13) + ((uint32_t)(127 - 15) << 23);
	uint32_t infnan = (em << 13) | 0x7f800000u;
	uint32_t subnormal = float_bits((float)em * 0x1p-24f); /* exact: em < 2^10 */
	uint32_t r = em < 0x0400 ? subnormal : normal;
	r = em >= 0x7c00 ? infnan : r;
	return r | sign;
}

/* Round to nearest, ties to even. Overflow gives infinity; a NaN stays a NaN
 * and keeps the top ten bits of its payload (a payload only in the low bits
 * becomes the quiet bit, so it cannot turn into infinity). */
static inline uint16_t float_bits_to_half(uint32_t x)
{
	uint32_t sign = (x >> 16) & 0x8000;
	uint32_t a = x & 0x7fffffffu;
	/* Results that are normal halves: rebias, then round on bit 13 with
	 * the odd bit breaking ties; a carry out of the mantissa lands in the
	 * exponent, up to infinity (0x7c00) for 65520 and above. */
	uint32_t normal = (a - ((uint32_t)(127 - 15) << 23) + 0xfffu + ((a >> 13) & 1)) >> 13;
	/* Results that are subnormal halves or zero: adding 0.5f puts the
	 * half's smallest step (2^-24) at the float's last mantissa bit, so
	 * the FPU rounds exactly as binary16 would. */
	uint32_t subnormal = float_bits(bits_float(a) + 0.5f) - 0x3f000000u;
	uint32_t payload = (a >> 13) & 0x3ffu;
	uint32_t nan = 0x7c00u | payload | (payload == 0 ? 0x200u : 0);
	uint32_t r = a < 0x38800000u ? subnormal : normal;
	r = a >= 0x47800000u ? 0x7c00u : r;
	r = a > 0x7f800000u ? nan : r;
	return (uint16_t)(r | sign);
}

float elem_half_to_float(uint16_t h)
{
	return bits_float(half_to_float_bits(h));
}

uint16_t elem_float_to_half(float f)
{
	return float_bits_to_half(float_bits(f));
}

/* ---- The conversion loops. */

/* The loops are also built for AVX2 and picked at load time where the
 * compiler can do that (an ifunc): the vector-extension code below then works
 * on one 32-byte register instead of two 16-byte ones. Measured on 64 MiB
 * buffers, float64 went from 13 to 23 GB/s with GCC 12, which was already
 * the speed of memcpy for the other types. */
#if defined(__x86_64__) && defined(__linux__) && \
	((defined(__clang__) && __clang_major__ >= 14) || (!defined(__clang__) && __GNUC__ >= 8))
#define ELEM_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define ELEM_CLONES
#endif

#define VEC_BYTES 32
typedef uint8_t vec_u8 __attribute__((vector_size(VEC_BYTES)));
typedef uint16_t vec_u16 __attribute__((vector_size(VEC_BYTES)));
typedef uint32_t vec_u32 __attribute__((vector_size(VEC_BYTES)));
typedef int32_t vec_i32 __attribute__((vector_size(VEC_BYTES)));
typedef float vec_f32 __attribute__((vector_size(VEC_BYTES)));
typedef uint64_t vec_u64 __attribute__((vector_size(VEC_BYTES)));
/* As many halves as vec_u32 has words. */
typedef uint16_t vec_half __attribute__((vector_size(VEC_BYTES / 2)));

/* Lanes of A where MASK is all ones, of B where it is zero. */
#define VEC_SELECT(mask, a, b) (((a) & (vec_u32)(mask)) | ((b) & ~(vec_u32)(mask)))
#define VEC_BSWAP32(v) \
	({ vec_u32 v_ = ((v) << 16) | ((v) >> 16); \
	   ((v_ & 0x00ff00ffu) << 8) | ((v_ >> 8) & 0x00ff00ffu); })

/* The vector loops below are each built twice: storing their results with
 * ordinary stores, and (the _uncached ones, for elem_to_fits_uncached) with
 * stores that bypass the caches, D then 16-byte aligned (the caller starts
 * the loops so). The ordinary ones stay plain memcpy stores: an unoptimised
 * build runs them as fast as before (a store helper with a flag made the
 * sanitized test build's conversions half as fast again). */
#define STORE_CACHED(d, v) memcpy((d), &(v), sizeof(v))
#ifdef ELEM_STREAM_STORES
#define STORE_UNCACHED(d, v)                                                           \
	do {                                                                           \
		__m128i lo_, hi_;                                                      \
		memcpy(&lo_, &(v), sizeof lo_);                                        \
		memcpy(&hi_, (const uint8_t *)&(v) + sizeof lo_, sizeof hi_);          \
		_mm_stream_si128((__m128i *)(void *)(d), lo_);                         \
		_mm_stream_si128((__m128i *)(void *)((d) + sizeof lo_), hi_);          \
	} while (0)
#else
#define STORE_UNCACHED STORE_CACHED
#endif

/* Byte i of DST = byte i of SRC xor FLIP (int8's top bit). */
#define DEFINE_FLIP8(name, STORE)                                                      \
	ELEM_CLONES                                                                    \
	static void name(const uint8_t *restrict s, uint8_t *restrict d, size_t n,    \
			 uint8_t flip)                                                 \
	{                                                                              \
		size_t i = 0;                                                          \
		for (; i + VEC_BYTES <= n; i += VEC_BYTES) {                           \
			vec_u8 v;                                                      \
			memcpy(&v, s + i, sizeof v);                                   \
			v ^= flip;                                                     \
			STORE(d + i, v);                                               \
		}                                                                      \
		for (; i < n; i++)                                                     \
			d[i] = s[i] ^ flip;                                            \
	}
DEFINE_FLIP8(flip8, STORE_CACHED)
DEFINE_FLIP8(flip8_uncached, STORE_UNCACHED)

/* Each of N 16-bit words: xor PRE, then reverse the bytes. */
#define DEFINE_SWAP16(name, STORE)                                                     \
	ELEM_CLONES                                                                    \
	static void name(const uint8_t *restrict s, uint8_t *restrict d, size_t n,    \
			 uint16_t pre)                                                 \
	{                                                                              \
		const size_t step = VEC_BYTES / 2;                                     \
		size_t i = 0;                                                          \
		for (; i + step <= n; i += step) {                                     \
			vec_u16 v;                                                     \
			memcpy(&v, s + 2 * i, sizeof v);                               \
			v ^= pre;                                                      \
			v = (v << 8) | (v >> 8);                                       \
			STORE(d + 2 * i, v);                                           \
		}                                                                      \
		for (; i < n; i++) {                                                   \
			uint16_t w;                                                    \
			memcpy(&w, s + 2 * i, sizeof w);                               \
			w = __builtin_bswap16(w ^ pre);                                \
			memcpy(d + 2 * i, &w, sizeof w);                               \
		}                                                                      \
	}
DEFINE_SWAP16(swap16, STORE_CACHED)
DEFINE_SWAP16(swap16_uncached, STORE_UNCACHED)

/* Each of N 32-bit words: xor PRE, then reverse the bytes. */
#define DEFINE_SWAP32(name, STORE)                                                     \
	ELEM_CLONES                                                                    \
	static void name(const uint8_t *restrict s, uint8_t *restrict d, size_t n,    \
			 uint32_t pre)                                                 \
	{                                                                              \
		const size_t step = VEC_BYTES / 4;                                     \
		size_t i = 0;                                                          \
		for (; i + step <= n; i += step) {                                     \
			vec_u32 v;                                                     \
			memcpy(&v, s + 4 * i, sizeof v);                               \
			v ^= pre;                                                      \
			v = VEC_BSWAP32(v);                                            \
			STORE(d + 4 * i, v);                                           \
		}                                                                      \
		for (; i < n; i++) {                                                   \
			uint32_t w;                                                    \
			memcpy(&w, s + 4 * i, sizeof w);                               \
			w = __builtin_bswap32(w ^ pre);                                \
			memcpy(d + 4 * i, &w, sizeof w);                               \
		}                                                                      \
	}
DEFINE_SWAP32(swap32, STORE_CACHED)
DEFINE_SWAP32(swap32_uncached, STORE_UNCACHED)

/* Each of N 64-bit words: xor PRE, then reverse the bytes. */
#define DEFINE_SWAP64(name, STORE)                                                     \
	ELEM_CLONES                                                                    \
	static void name(const uint8_t *restrict s, uint8_t *restrict d, size_t n,    \
			 uint64_t pre)                                                 \
	{                                                                              \
		const size_t step = VEC_BYTES / 8;                                     \
		size_t i = 0;                                                          \
		for (; i + step <= n; i += step) {                                     \
			vec_u64 v;                                                     \
			memcpy(&v, s + 8 * i, sizeof v);                               \
			v ^= pre;                                                      \
			v = (v << 32) | (v >> 32);                                     \
			v = ((v & 0x0000ffff0000ffffu) << 16) |                        \
			    ((v >> 16) & 0x0000ffff0000ffffu);                         \
			v = ((v & 0x00ff00ff00ff00ffu) << 8) |                         \
			    ((v >> 8) & 0x00ff00ff00ff00ffu);                          \
			STORE(d + 8 * i, v);                                           \
		}                                                                      \
		for (; i < n; i++) {                                                   \
			uint64_t w;                                                    \
			memcpy(&w, s + 8 * i, sizeof w);                               \
			w = __builtin_bswap64(w ^ pre);                                \
			memcpy(d + 8 * i, &w, sizeof w);                               \
		}                                                                      \
	}
DEFINE_SWAP64(swap64, STORE_CACHED)
DEFINE_SWAP64(swap64_uncached, STORE_UNCACHED)

/* half_to_float_bits on vectors, then to big-endian. */
#define DEFINE_HALF_TO_FITS(name, STORE)                                               \
	ELEM_CLONES                                                                    \
	static void name(const uint8_t *restrict s, uint8_t *restrict d, size_t n)    \
	{                                                                              \
		const size_t step = VEC_BYTES / 4;                                     \
		size_t i = 0;                                                          \
		for (; i + step <= n; i += step) {                                     \
			vec_half hv;                                                   \
			memcpy(&hv, s + 2 * i, sizeof hv);                             \
			vec_u32 h = __builtin_convertvector(hv, vec_u32);              \
			vec_u32 sign = (h & 0x8000u) << 16;                            \
			vec_u32 em = h & 0x7fffu;                                      \
			vec_u32 normal = (em << 13) + ((uint32_t)(127 - 15) << 23);    \
			vec_u32 infnan = (em << 13) | 0x7f800000u;                     \
			vec_u32 subnormal = (vec_u32)(                                 \
				__builtin_convertvector((vec_i32)em, vec_f32) * 0x1p-24f);  \
			vec_u32 r = VEC_SELECT((vec_i32)em < 0x0400, subnormal, normal);   \
			r = VEC_SELECT((vec_i32)em >= 0x7c00, infnan, r);              \
			r |= sign;                                                     \
			r = VEC_BSWAP32(r);                                            \
			STORE(d + 4 * i, r);                                           \
		}                                                                      \
		for (; i < n; i++) {                                                   \
			uint16_t h;                                                    \
			memcpy(&h, s + 2 * i, sizeof h);                               \
			uint32_t w = __builtin_bswap32(half_to_float_bits(h));         \
			memcpy(d + 4 * i, &w, sizeof w);                               \
		}                                                                      \
	}
DEFINE_HALF_TO_FITS(half_to_fits, STORE_CACHED)
DEFINE_HALF_TO_FITS(half_to_fits_uncached, STORE_UNCACHED)

/* From big-endian, then float_bits_to_half on vectors. */
ELEM_CLONES
static void half_from_fits(const uint8_t *restrict s, uint8_t *restrict d, size_t n)
{
	const size_t step = VEC_BYTES / 4;
	size_t i = 0;
	for (; i + step <= n; i += step) {
		vec_u32 w;
		memcpy(&w, s + 4 * i, sizeof w);
		w = VEC_BSWAP32(w);
		vec_u32 sign = (w >> 16) & 0x8000u;
		vec_u32 a = w & 0x7fffffffu;
		vec_i32 as = (vec_i32)a;
		vec_u32 normal = (a - ((uint32_t)(127 - 15) << 23) + 0xfffu + ((a >> 13) & 1u)) >> 13;
		vec_u32 subnormal = (vec_u32)((vec_f32)a + 0.5f) - 0x3f000000u;
		vec_u32 payload = (a >> 13) & 0x3ffu;
		vec_u32 quiet = (vec_u32)((vec_i32)payload == 0) & 0x200u;
		vec_u32 nan = 0x7c00u | payload | quiet;
		vec_u32 r = VEC_SELECT(as < 0x38800000, subnormal, normal);
		r = VEC_SELECT(as >= 0x47800000, (vec_u32){ 0 } + 0x7c00u, r);
		r = VEC_SELECT(as > 0x7f800000, nan, r);
		r |= sign;
		vec_half hv = __builtin_convertvector(r, vec_half);
		memcpy(d + 2 * i, &hv, sizeof hv);
	}
	for (; i < n; i++) {
		uint32_t w;
		memcpy(&w, s + 4 * i, sizeof w);
		uint16_t h = float_bits_to_half(__builtin_bswap32(w));
		memcpy(d + 2 * i, &h, sizeof h);
	}
}

#define TOP16 ((uint16_t)0x8000)
#define TOP32 ((uint32_t)0x80000000u)
#define TOP64 ((uint64_t)1 << 63)

/* FITS = bswap(native ^ top), so native = bswap(FITS) ^ top =
 * bswap(FITS ^ bswap(top)): both directions are the same loops, the inverse
 * with the flip mask byte-swapped. STREAM: to FITS only, DST 16-byte aligned
 * (the stores of the scalar tails are ordinary ones). */
static void convert(enum elem_type t, const void *src, void *dst, size_t n, int to_fits,
		    int stream)
{
	const uint8_t *s = src;
	uint8_t *d = dst;
	switch (t) {
	case ELEM_U8:
		if (stream)
			flip8_uncached(s, d, n, 0);
		else
			memcpy(d, s, n);
		break;
	case ELEM_I8:
		(stream ? flip8_uncached : flip8)(s, d, n, 0x80);
		break;
	case ELEM_U16:
		(stream ? swap16_uncached : swap16)(s, d, n,
						     to_fits ? TOP16 : __builtin_bswap16(TOP16));
		break;
	case ELEM_I16:
		(stream ? swap16_uncached : swap16)(s, d, n, 0);
		break;
	case ELEM_U32:
		(stream ? swap32_uncached : swap32)(s, d, n,
						     to_fits ? TOP32 : __builtin_bswap32(TOP32));
		break;
	case ELEM_I32:
	case ELEM_F32:
		(stream ? swap32_uncached : swap32)(s, d, n, 0);
		break;
	case ELEM_C64:
		(stream ? swap32_uncached : swap32)(s, d, 2 * n, 0);
		break;
	case ELEM_U64:
		(stream ? swap64_uncached : swap64)(s, d, n,
						     to_fits ? TOP64 : __builtin_bswap64(TOP64));
		break;
	case ELEM_I64:
	case ELEM_F64:
		(stream ? swap64_uncached : swap64)(s, d, n, 0);
		break;
	case ELEM_C128:
		(stream ? swap64_uncached : swap64)(s, d, 2 * n, 0);
		break;
	case ELEM_F16:
		if (to_fits)
			(stream ? half_to_fits_uncached : half_to_fits)(s, d, n);
		else
			half_from_fits(s, d, n);
		break;
	default:
		break;
	}
}

void elem_to_fits(enum elem_type t, const void *src, void *dst, size_t n)
{
	convert(t, src, dst, n, 1, 0);
}

void elem_from_fits(enum elem_type t, const void *src, void *dst, size_t n)
{
	convert(t, src, dst, n, 0, 0);
}

void elem_to_fits_uncached(enum elem_type t, const void *src, void *dst, size_t n)
{
	struct elem_fits f;
	if (elem_fits(t, &f) < 0)
		return;
	const uint8_t *s = src;
	uint8_t *d = dst;
	size_t in = elem_size(t), out = f.fits_size;
	/* Ordinary stores up to the first 16-byte boundary of DST that an
	 * element starts on; none when elements never start on one. */
	size_t head = 0;
	while (head < n && head < 16 && ((uintptr_t)(d + head * out) & 15))
		head++;
	if (head == n || ((uintptr_t)(d + head * out) & 15)) {
		convert(t, s, d, n, 1, 0);
		return;
	}
	convert(t, s, d, head, 1, 0);
	convert(t, s + head * in, d + head * out, n - head, 1, 1);
#ifdef ELEM_STREAM_STORES
	/* Streaming stores are weakly ordered: done before anyone is told. */
	_mm_sfence();
#endif
}
