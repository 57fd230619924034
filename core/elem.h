/* elem.h - element types of image segments, their names (numpy's and IDL's),
 * and the conversion of pixels between native memory and FITS data bytes
 * (big-endian; unsigned and int8 by BZERO, i.e. top bit flipped; float16 as
 * float32; complex as interleaved {re, im} of the component type). */
#ifndef SHMFS_ELEM_H
#define SHMFS_ELEM_H

#include <stddef.h>
#include <stdint.h>

/* Numbered as ImageStreamIO's datatype codes. */
enum elem_type {
	ELEM_NONE = 0,
	ELEM_U8 = 1, ELEM_I8, ELEM_U16, ELEM_I16, ELEM_U32, ELEM_I32, ELEM_U64, ELEM_I64,
	ELEM_F32, ELEM_F64, ELEM_C64, ELEM_C128, ELEM_F16,
	ELEM_COUNT
};

/* Bytes of one element in memory (0 for ELEM_NONE or out of range). */
size_t elem_size(enum elem_type t);

/* numpy's name: "uint8", "int8", ..., "float32", "float64", "complex64",
 * "complex128", "float16"; NULL when out of range. */
const char *elem_name(enum elem_type t);

/* A type by name: numpy's names (also "float"/"double"/"half"), and IDL's
 * SHMMAP keywords (BYTE, INT, UINT, LONG, ULONG, LONG64, ULONG64, FLOAT,
 * DOUBLE, COMPLEX, DCOMPLEX), case-insensitive. ELEM_NONE if unknown. */
enum elem_type elem_parse(const char *name);

/* How a type is stored in FITS. */
struct elem_fits {
	int bitpix;         /* 8, 16, 32, 64, -32, -64 */
	int complex;        /* 1: a leading axis of 2 (CTYPE1 = 'COMPLEX') */
	const char *bzero;  /* BZERO's value as FITS text, or NULL for none */
	size_t fits_size;   /* bytes per element in the FITS data (float16: 4) */
};

/* Fill F for type T. Returns 0 or -EINVAL. */
int elem_fits(enum elem_type t, struct elem_fits *f);

/* Convert N elements of type T from native memory at SRC to FITS data bytes
 * at DST (n * fits_size bytes). SRC and DST must not overlap. */
void elem_to_fits(enum elem_type t, const void *src, void *dst, size_t n);

/* The same, with stores that bypass the caches where the machine has them
 * (SSE2): for a destination far larger than the caches, whose lines would
 * otherwise be read in first and later written back. The stores are fenced
 * before it returns. */
void elem_to_fits_uncached(enum elem_type t, const void *src, void *dst, size_t n);

/* The inverse: N elements of FITS data bytes at SRC to native memory at DST
 * (float16 rounds float32 to nearest even). */
void elem_from_fits(enum elem_type t, const void *src, void *dst, size_t n);

/* IEEE binary16 <-> binary32. */
float elem_half_to_float(uint16_t h);
uint16_t elem_float_to_half(float f);

#endif
