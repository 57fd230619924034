/* fitstile.c - the tiles of a tile-compressed FITS image checked before
 * CFITSIO 4.2 decodes them: it trusts the tile table and the RICE_1 and GZIP
 * data, so a damaged tile makes it read past its buffer or allocate without
 * limit. */
#include "fitstile.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* CFITSIO's internal header, installed with it: uncompress2mem_from_mem,
 * the GZIP decoder tile compression uses. */
#include <fitsio2.h>

#include "fitsload.h"

/* The tile table of the current (compressed) HDU: CFITSIO allocates what
 * a row's descriptor claims before it reads, so every variable-length
 * array must lie in the heap (PCOUNT bytes, itself within the file). */
static int descriptors_ok(fitsfile *fp)
{
	int status = 0, ncols = 0, typecode;
	LONGLONG rows = 0, pcount = 0, repeat, width, n, offset;
	long long heapsize;
	if (fits_get_num_rowsll(fp, &rows, &status) > 0 || fits_get_num_cols(fp, &ncols, &status) > 0 ||
	    fitsload_key_int(fp, "PCOUNT", &heapsize) > 0)
		return 0;
	pcount = heapsize;
	for (int col = 1; col <= ncols; col++) {
		if (fits_get_coltypell(fp, col, &typecode, &repeat, &width, &status) > 0)
			return 0;
		if (typecode >= 0)
			continue;
		for (LONGLONG row = 1; row <= rows; row++) {
			uint64_t bytes;
			if (fits_read_descriptll(fp, col, row, &n, &offset, &status) > 0 || n < 0 ||
			    offset < 0 || width < 0 ||
			    __builtin_mul_overflow((uint64_t)n, (uint64_t)width, &bytes) ||
			    bytes > (uint64_t)pcount || (uint64_t)offset > (uint64_t)pcount - bytes)
				return 0;
		}
	}
	return 1;
}

/* Bits in the highest set bit's position of B (0 for 0). */
static int bit_length(uint64_t b)
{
	return b ? 64 - __builtin_clzll(b) : 0;
}

/* Walk one RICE_1 tile (CLEN bytes at C, NX pixels, blocks of NBLOCK, first
 * value BYTEPIX bytes) as CFITSIO's decoder reads it, but stop at the end:
 * CFITSIO 4.2 checks for overrun only after each block and scans a run of
 * zero bytes without any limit, so a damaged tile makes it read far past
 * its buffer. Returns 1 if the decoder stays inside the tile. */
static int rice_tile_ok(const unsigned char *c, uint64_t clen, uint64_t nx, int nblock,
			int bytepix)
{
	int fsbits = bytepix == 1 ? 3 : bytepix == 2 ? 4 : 5;
	int fsmax = bytepix == 1 ? 6 : bytepix == 2 ? 14 : 25;
	int bbits = 1 << fsbits;
	uint64_t pos = bytepix == 1 ? 1 : bytepix == 2 ? 2 : 4;
	uint64_t b;
	int64_t nbits = 8;
#define NEXT_BYTE() do { if (pos >= clen) return 0; } while (0)
/* Bytes shifted into B until it holds NBITS >= 0 unread bits. */
#define FILL_BITS() \
	do { while (nbits < 0) { NEXT_BYTE(); b = (b << 8) | c[pos++]; nbits += 8; } } while (0)
	NEXT_BYTE();
	b = c[pos++];
	for (uint64_t i = 0; i < nx;) {
		nbits -= fsbits;
		FILL_BITS();
		int fs = (int)(b >> nbits) - 1;
		b &= ((uint64_t)1 << nbits) - 1;
		uint64_t imax = nx - i < (uint64_t)nblock ? nx : i + (uint64_t)nblock;
		if (fs < 0) {
			i = imax;
		} else if (fs == fsmax) {
			for (; i < imax; i++) {
				for (int64_t k = bbits - nbits - 8; k >= 0; k -= 8) {
					NEXT_BYTE();
					b = c[pos++];
				}
				if (nbits > 0) {
					NEXT_BYTE();
					b = c[pos++] & (((uint64_t)1 << nbits) - 1);
				} else {
					b = 0;
				}
			}
		} else if (fs > fsmax) {
			return 0; /* CFITSIO would shift by more than the width */
		} else {
			for (; i < imax; i++) {
				while (b == 0) {
					NEXT_BYTE();
					nbits += 8;
					b = c[pos++];
				}
				int64_t nzero = nbits - bit_length(b);
				nbits -= nzero + 1;
				b ^= (uint64_t)1 << nbits;
				nbits -= fs;
				FILL_BITS();
				b &= ((uint64_t)1 << nbits) - 1;
			}
		}
	}
#undef FILL_BITS
#undef NEXT_BYTE
	return 1;
}

/* GZIP tiles: CFITSIO inflates into a buffer it grows without limit, and
 * keeps growing it for a stream that is cut short. Inflating once here with
 * CFITSIO's own routine but a buffer that may not outgrow the tile (8 bytes
 * a pixel at most) finds such a tile. Per thread. */
static __thread size_t gzip_cap;
static __thread void *gzip_block; /* CFITSIO drops its pointer when a realloc fails */

static void *gzip_realloc(void *p, size_t n)
{
	void *q = n > gzip_cap ? NULL : realloc(p, n);
	if (q)
		gzip_block = q;
	return q;
}

static int gzip_tile_ok(const unsigned char *c, uint64_t clen, uint64_t pixels)
{
	int status = 0;
	size_t size = 0;
	gzip_cap = (size_t)pixels * 8 + 64;
	size_t cap = (size_t)pixels < 1024 ? 8192 : (size_t)pixels * 8;
	char *out = malloc(cap);
	if (!out)
		return 0;
	gzip_block = out;
	uncompress2mem_from_mem((char *)c, (size_t)clen, &out, &cap, gzip_realloc, &size, &status);
	free(gzip_block);
	gzip_block = NULL;
	return status == 0 && size <= (size_t)pixels * 8;
}

/* Every tile safe to hand to CFITSIO's decoder (see fitstile.h): the tile
 * table inside its heap, RICE_1 and GZIP tiles checked as above;
 * HCOMPRESS_1 and PLIO_1 refused, as CFITSIO 4.2's decoders of those do not
 * check their input either (found by tests/fuzz/fuzz_load.c). */
int fitstile_check(fitsfile *fp, const unsigned char *buf, size_t buflen, const LONGLONG *dims,
		   int naxis, char *why, size_t whylen)
{
	char cmptype[FLEN_VALUE] = "", column[] = "COMPRESSED_DATA";
	int status = 0, col = 0, nblock = 32, bytepix = 4;
	LONGLONG rows = 0, heap, tile[3] = {1, 1, 1}, headstart, datastart, dataend, naxis1 = 0;
	if (!descriptors_ok(fp))
		FAIL(EINVAL, "the compressed image's tile table points outside its heap");
	fits_read_key(fp, TSTRING, "ZCMPTYPE", cmptype, NULL, &status);
	int gzip = strcmp(cmptype, "GZIP_1") == 0 || strcmp(cmptype, "GZIP_2") == 0;
	if (!gzip && strcmp(cmptype, "RICE_1") != 0 && strcmp(cmptype, "RICE_ONE") != 0)
		FAIL(EINVAL, "tile compression '%.20s' is not supported (RICE_1 and GZIP are)",
		     cmptype);
	/* What CFITSIO will read, defaults included; a value is only taken
	 * when it was read (a failed read may leave anything behind). */
	long long v;
	if (fitsload_key_int(fp, "ZVAL1", &v) == 0)
		nblock = v < 0 || v > 64 ? 0 : (int)v;
	if (fitsload_key_int(fp, "ZVAL2", &v) == 0)
		bytepix = v < 0 || v > 8 ? 0 : (int)v;
	status = 0;
	tile[0] = dims[0];
	for (int i = 0; i < naxis; i++) {
		char key[FLEN_KEYWORD];
		snprintf(key, sizeof key, "ZTILE%d", i + 1);
		if (fitsload_key_int(fp, key, &v) == 0)
			tile[i] = v;
		if (tile[i] < 1 || tile[i] > dims[i])
			FAIL(EINVAL, "the compressed image's ZTILE%d (%lld) is unusable", i + 1,
			     (long long)tile[i]);
	}
	if (!gzip && nblock != 16 && nblock != 32)
		FAIL(EINVAL, "RICE_1 block size %d is unusable (16 or 32)", nblock);
	long long width = 0;
	if (fits_get_num_rowsll(fp, &rows, &status) > 0 || fitsload_key_int(fp, "NAXIS1", &width) > 0 ||
	    fits_get_colnum(fp, CASEINSEN, column, &col, &status) > 0 ||
	    fits_get_hduaddrll(fp, &headstart, &datastart, &dataend, &status) > 0)
		FAIL(EINVAL, "the compressed image's tile table is unusable");
	naxis1 = width;
	if (__builtin_mul_overflow(naxis1, rows, &heap))
		FAIL(EINVAL, "the compressed image's tile table is unusable");
	if (fitsload_key_int(fp, "THEAP", &v) == 0)
		heap = v;
	/* Tiles in raster order; the last along an axis is cut by the edge. */
	uint64_t across[3] = {1, 1, 1}, row = 1;
	for (int i = 0; i < naxis; i++)
		across[i] = (uint64_t)((dims[i] - 1) / tile[i] + 1);
	for (uint64_t t2 = 0; t2 < across[2]; t2++)
		for (uint64_t t1 = 0; t1 < across[1]; t1++)
			for (uint64_t t0 = 0; t0 < across[0]; t0++, row++) {
				uint64_t index[3] = {t0, t1, t2}, pixels = 1;
				LONGLONG n, offset;
				for (int i = 0; i < naxis; i++) {
					uint64_t start = index[i] * (uint64_t)tile[i];
					uint64_t left = (uint64_t)dims[i] - start;
					pixels *= left < (uint64_t)tile[i] ? left : (uint64_t)tile[i];
				}
				if ((LONGLONG)row > rows ||
				    fits_read_descriptll(fp, col, (LONGLONG)row, &n, &offset, &status) > 0)
					FAIL(EINVAL, "the compressed image has fewer tiles than it needs");
				if (n == 0)
					continue; /* stored uncompressed */
				uint64_t at = (uint64_t)datastart + (uint64_t)heap + (uint64_t)offset;
				if (heap < 0 || at > buflen || (uint64_t)n > buflen - at ||
				    !(gzip ? gzip_tile_ok(buf + at, (uint64_t)n, pixels)
					   : rice_tile_ok(buf + at, (uint64_t)n, pixels, nblock, bytepix)))
					FAIL(EINVAL, "tile %llu of the compressed image is damaged",
					     (unsigned long long)row);
			}
	return 0;
}
