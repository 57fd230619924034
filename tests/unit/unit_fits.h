/* unit_fits.h - what the loader's unit tests share (header only: each
 * test_*.c is its own program): a scratch directory under /dev/shm, FITS
 * files made in memory by CFITSIO, and stream files mapped for checking. */
#ifndef SHMFS_UNIT_FITS_H
#define SHMFS_UNIT_FITS_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <fitsio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elem.h"
#include "isio.h"

/* ---- A scratch directory (.init = setup, .fini = teardown) */

static char dir[64];
static int dirfd_ = -1;

static inline void setup(void)
{
	strcpy(dir, "/dev/shm/test_load.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	dirfd_ = open(dir, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(dirfd_, 0);
}

static inline void teardown(void)
{
	char cmd[128];
	close(dirfd_);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

/* ---- FITS files made with CFITSIO in memory */

struct mem {
	void *buf;
	size_t len;
	fitsfile *f;
};

static inline void mem_create(struct mem *m)
{
	int st = 0;
	m->len = 2880;
	m->buf = malloc(m->len);
	cr_assert_eq(fits_create_memfile(&m->f, &m->buf, &m->len, 2880, realloc, &st), 0);
}

/* Close the file; M->len becomes the file's real size (the buffer may be
 * larger). */
static inline void mem_close(struct mem *m)
{
	int st = 0;
	LONGLONG hs, ds, de;
	int n;
	fits_get_num_hdus(m->f, &n, &st);
	fits_movabs_hdu(m->f, n, NULL, &st);
	fits_get_hduaddrll(m->f, &hs, &ds, &de, &st);
	fits_close_file(m->f, &st);
	cr_assert_eq(st, 0, "CFITSIO status %d", st);
	m->len = (size_t)de;
}

static inline void keys(fitsfile *f)
{
	int st = 0;
	fits_write_key_log(f, "FLAGT", 1, "a true flag", &st);
	fits_write_key_log(f, "FLAGF", 0, "a false flag", &st);
	fits_write_key_lng(f, "EXPOSURE", -123456789012LL, "integer", &st);
	fits_write_key_dbl(f, "GAIN", 1.25, -15, "real", &st);
	fits_write_key_str(f, "SHORT", "fifteen chars!!", "short string", &st);
	fits_write_key_str(f, "OBJECT", "a string longer than fifteen characters", "lost", &st);
	fits_write_comment(f, "a comment card", &st);
	fits_write_history(f, "a history card", &st);
	fits_write_date(f, &st);
	fits_write_record(f, "HIERARCH ESO DET CHIP TEMPERATURE = 1.5 / too long a name", &st);
	fits_write_record(f, "HIERARCH AB CD = 7 / short hierarch", &st);
	fits_write_record(f, "BIGINT  = 99999999999999999999 / beyond int64", &st);
	fits_write_key_longstr(f, "LONGSTR",
			       "0123456789012345678901234567890123456789012345678901234567890123456789"
			       "ABCDEFGHIJ", "continued", &st);
	cr_assert_eq(st, 0);
}

/* A FITS file of one image: IMG_TYPE (CFITSIO's BYTE_IMG...), NAXIS axes
 * DIMS, pixels PIX of CFITSIO datatype DTYPE; COMPRESS a CFITSIO
 * compression type or 0; EXTENSION puts the image in the first extension
 * after an empty primary; with KEYS, the cards of keys(). */
static inline struct mem make_fits(int img_type, int naxis, const long *dims, int dtype,
				   const void *pix, int compress, int extension, int with_keys)
{
	struct mem m;
	int st = 0;
	long n = 1;
	for (int i = 0; i < naxis; i++)
		n *= dims[i];
	mem_create(&m);
	if (extension || compress)
		fits_create_img(m.f, BYTE_IMG, 0, NULL, &st);
	if (compress)
		fits_set_compression_type(m.f, compress, &st);
	fits_create_img(m.f, img_type, naxis, (long *)dims, &st);
	if (with_keys)
		keys(m.f);
	fits_write_img(m.f, dtype, 1, n, (void *)pix, &st);
	cr_assert_eq(st, 0, "CFITSIO status %d", st);
	mem_close(&m);
	return m;
}

static const struct {
	int img_type, dtype;
	enum elem_type type;
} kinds[] = {
	{BYTE_IMG, TBYTE, ELEM_U8},         {SBYTE_IMG, TSBYTE, ELEM_I8},
	{SHORT_IMG, TSHORT, ELEM_I16},      {USHORT_IMG, TUSHORT, ELEM_U16},
	{LONG_IMG, TINT, ELEM_I32},         {ULONG_IMG, TUINT, ELEM_U32},
	{LONGLONG_IMG, TLONGLONG, ELEM_I64}, {ULONGLONG_IMG, TULONGLONG, ELEM_U64},
	{FLOAT_IMG, TFLOAT, ELEM_F32},      {DOUBLE_IMG, TDOUBLE, ELEM_F64},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* N pixels of type T: a pattern with both ends of the type's range. */
static inline void *pattern(enum elem_type t, size_t n, unsigned seed)
{
	size_t es = elem_size(t);
	unsigned char *p = malloc(n * es);
	for (size_t i = 0; i < n; i++) {
		uint64_t v = (i * 2654435761u + seed) ^ ((uint64_t)i << 40);
		switch (t) {
		case ELEM_F32: {
			float f = (float)((int64_t)(v % 20001) - 10000) / 8;
			memcpy(p + i * es, &f, es);
			break;
		}
		case ELEM_F64: {
			double d = (double)((int64_t)(v % 2000001) - 1000000) / 16;
			memcpy(p + i * es, &d, es);
			break;
		}
		default:
			if (i == 0)
				v = 0;
			if (i == 1)
				v = ~(uint64_t)0;
			if (i == 2)
				v = (uint64_t)1 << (es * 8 - 1); /* most negative signed */
			memcpy(p + i * es, &v, es); /* little-endian: the low bytes */
		}
	}
	return p;
}

/* ---- Stream files */

struct stream_file {
	unsigned char *map;
	size_t len;
	struct stat st;
	struct isio_stream s;
};

static inline void open_stream(const char *fname, struct stream_file *f)
{
	char why[160];
	int fd = openat(dirfd_, fname, O_RDWR);
	cr_assert_geq(fd, 0, "%s", fname);
	cr_assert_eq(fstat(fd, &f->st), 0);
	f->len = (size_t)f->st.st_size;
	f->map = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(f->map, MAP_FAILED);
	close(fd);
	cr_assert_eq(isio_parse(f->map, f->len, f->len, &f->s, why, sizeof why), 0, "%s", why);
}

static inline void close_stream(struct stream_file *f)
{
	munmap(f->map, f->len);
}

static inline uint64_t u64_at(const unsigned char *m, size_t off)
{
	uint64_t v;
	memcpy(&v, m + off, 8);
	return v;
}

#endif
