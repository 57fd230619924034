/* cfshm_make.c - test helper: makes (or deletes) a CFITSIO shared-memory file
 * with CFITSIO's own shmem:// driver, so the tests see exactly what CFITSIO
 * writes. The segment persists after this program exits.
 *
 *   cfshm_make SLOT NX NY [BITPIX]   create shmem://hSLOT, a NX x NY ramp;
 *                                    print the slot segment's key as 0x%08x
 *   cfshm_make -d SLOT               delete shmem://hSLOT */
#include <errno.h>
#include <fitsio.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>

#define KEYBASE_DEFAULT 14011963
#define MAXSEG_DEFAULT 16
#define ENTRY_SIZE 28 /* one slot of CFITSIO's global table */
#define ENTRY_KEY 8

static void usage(void)
{
	fprintf(stderr, "usage: cfshm_make SLOT NX NY [BITPIX]\n"
			"       cfshm_make -d SLOT\n");
	exit(2);
}

static long number(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		usage();
	return v;
}

static int fits_fail(const char *what, int status)
{
	fprintf(stderr, "cfshm_make: %s:\n", what);
	fits_report_error(stderr, status);
	return 1;
}

/* The same environment variables, read the way CFITSIO reads them. */
static int env_int(const char *name, int fallback)
{
	const char *s = getenv(name);
	int v = s ? atoi(s) : 0;
	return v > 0 ? v : fallback;
}

/* The slot's key, from CFITSIO's global table (it cannot be computed). */
static int slot_key(int slot, int32_t *key)
{
	int keybase = env_int("SHMEM_LIB_KEYBASE", KEYBASE_DEFAULT);
	int maxseg = env_int("SHMEM_LIB_MAXSEG", MAXSEG_DEFAULT);
	if (slot >= maxseg)
		return -1;
	int id = shmget((key_t)keybase, 0, 0);
	if (id < 0)
		return -1;
	unsigned char *table = shmat(id, NULL, SHM_RDONLY);
	if (table == (void *)-1)
		return -1;
	memcpy(key, table + (size_t)slot * ENTRY_SIZE + ENTRY_KEY, sizeof *key);
	shmdt(table);
	return 0;
}

static int make(int slot, long nx, long ny, int bitpix)
{
	char url[32];
	snprintf(url, sizeof url, "shmem://h%d", slot);
	fitsfile *f = NULL;
	int status = 0;
	if (fits_create_file(&f, url, &status))
		return fits_fail(url, status);
	long naxes[2] = {nx, ny};
	fits_create_img(f, bitpix, 2, naxes, &status);
	fits_update_key_str(f, "OBJECT", "ramp", "made by cfshm_make", &status);
	fits_update_key_lng(f, "SLOT", slot, "shmem://hN slot", &status);
	fits_update_key_dbl(f, "EXPTIME", 1.5, -6, "seconds", &status);
	fits_write_comment(f, "a ramp: pixel (x, y) = (x + nx * y) mod a prime", &status);

	/* wraps below the type's range, so every BITPIX holds it exactly */
	long wrap = bitpix == 8 ? 251 : bitpix == 16 ? 30011 : 1000003;
	LONGLONG n = (LONGLONG)nx * ny;
	double *ramp = malloc((size_t)n * sizeof *ramp);
	if (!ramp) {
		fprintf(stderr, "cfshm_make: out of memory\n");
		fits_close_file(f, &status);
		return 1;
	}
	for (LONGLONG i = 0; i < n; i++)
		ramp[i] = (double)(i % wrap);
	fits_write_img(f, TDOUBLE, 1, n, ramp, &status);
	free(ramp);
	if (status) {
		int ignored = 0;
		fits_close_file(f, &ignored);
		return fits_fail("writing the image", status);
	}
	if (fits_close_file(f, &status))
		return fits_fail("closing", status);

	int32_t key;
	if (slot_key(slot, &key) < 0) {
		fprintf(stderr, "cfshm_make: cannot read CFITSIO's global table\n");
		return 1;
	}
	printf("0x%08x\n", (unsigned)key);
	return 0;
}

static int delete(int slot)
{
	char url[32];
	snprintf(url, sizeof url, "shmem://h%d", slot);
	fitsfile *f = NULL;
	int status = 0;
	if (fits_open_file(&f, url, READWRITE, &status))
		return fits_fail(url, status);
	if (fits_delete_file(f, &status))
		return fits_fail("deleting", status);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "-d") == 0)
		return delete((int)number(argv[2], 0, INT_MAX));
	if (argc != 4 && argc != 5)
		usage();
	int slot = (int)number(argv[1], 0, INT_MAX);
	long nx = number(argv[2], 1, 1L << 20);
	long ny = number(argv[3], 1, 1L << 20);
	int bitpix = argc == 5 ? (int)number(argv[4], -64, 64) : FLOAT_IMG;
	if (bitpix != 8 && bitpix != 16 && bitpix != 32 && bitpix != 64 &&
	    bitpix != -32 && bitpix != -64)
		usage();
	return make(slot, nx, ny, bitpix);
}
