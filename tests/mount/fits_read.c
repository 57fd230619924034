/* fits_read.c - test helper: open a FITS file with CFITSIO's own
 * fits_open_file (the way any CFITSIO program opens a path) and print what it
 * reads, so the mount tests can check a view against an independent reader.
 *
 *   fits_read FILE [KEY...]
 *     line 1: "BITPIX EQUIVTYPE NAXIS N1 N2 ..." (fits_get_img_equivtype:
 *             BZERO types come out as CFITSIO's unsigned/signed-byte codes)
 *     then "KEY VALUE" for each KEY (the raw value text, quotes and all)
 *     then "DATA", then every pixel, one per line, axis 1 fastest:
 *       integer images read as TLONGLONG (TULONGLONG for BITPIX 64 with
 *       BZERO = 2^63),
 *       printed %lld/%llu; floating images read as TDOUBLE, printed %.17g
 *       (no null checking: NaN stays NaN).
 *   fits_read -w FILE VALUE
 *     open READWRITE and fits_write_img every pixel = VALUE (TDOUBLE), close.
 * Exit 0, or 1 with CFITSIO's error stack on stderr. */
#include <fitsio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int fail(const char *what, int status)
{
	fprintf(stderr, "fits_read: %s:\n", what);
	fits_report_error(stderr, status);
	fflush(stdout);
	_exit(1); /* no leak report for what CFITSIO still holds */
}

static int write_all(const char *path, double value)
{
	fitsfile *f;
	int status = 0, naxis = 0;
	long naxes[9];
	if (fits_open_file(&f, path, READWRITE, &status))
		return fail("fits_open_file READWRITE", status);
	if (fits_get_img_dim(f, &naxis, &status) || naxis < 1 || naxis > 9 ||
	    fits_get_img_size(f, naxis, naxes, &status))
		return fail("image size", status ? status : BAD_NAXIS);
	LONGLONG n = 1;
	for (int i = 0; i < naxis; i++)
		n *= naxes[i];
	double *buf = malloc((size_t)n * sizeof *buf);
	if (!buf)
		return fail("malloc", MEMORY_ALLOCATION);
	for (LONGLONG i = 0; i < n; i++)
		buf[i] = value;
	if (fits_write_img(f, TDOUBLE, 1, n, buf, &status))
		return fail("fits_write_img", status);
	free(buf);
	if (fits_close_file(f, &status))
		return fail("fits_close_file", status);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "-w") == 0)
		return write_all(argv[2], strtod(argv[3], NULL));
	if (argc < 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: fits_read FILE [KEY...]\n       fits_read -w FILE VALUE\n");
		return 2;
	}
	fitsfile *f;
	int status = 0, bitpix = 0, equiv = 0, naxis = 0;
	long naxes[9];
	if (fits_open_file(&f, argv[1], READONLY, &status))
		return fail("fits_open_file", status);
	if (fits_get_img_type(f, &bitpix, &status) || fits_get_img_equivtype(f, &equiv, &status) ||
	    fits_get_img_dim(f, &naxis, &status))
		return fail("image parameters", status);
	if (naxis < 0 || naxis > 9)
		return fail("naxis out of range", BAD_NAXIS);
	if (fits_get_img_size(f, naxis, naxes, &status))
		return fail("fits_get_img_size", status);
	printf("%d %d %d", bitpix, equiv, naxis);
	LONGLONG n = naxis ? 1 : 0;
	for (int i = 0; i < naxis; i++) {
		printf(" %ld", naxes[i]);
		n *= naxes[i];
	}
	printf("\n");
	for (int k = 2; k < argc; k++) {
		char value[FLEN_VALUE], comment[FLEN_COMMENT];
		if (fits_read_keyword(f, argv[k], value, comment, &status))
			return fail(argv[k], status);
		printf("%s %s\n", argv[k], value);
	}
	printf("DATA\n");
	int integer = equiv != FLOAT_IMG && equiv != DOUBLE_IMG;
	int datatype = equiv == ULONGLONG_IMG ? TULONGLONG : integer ? TLONGLONG : TDOUBLE;
	if (bitpix == LONGLONG_IMG) {
		/* CFITSIO 4.2's equivtype says LONGLONG_IMG for BZERO = 2^63 too */
		double bzero = 0;
		if (fits_read_key(f, TDOUBLE, "BZERO", &bzero, NULL, &status) == KEY_NO_EXIST)
			status = 0;
		else if (status)
			return fail("BZERO", status);
		if (bzero == 9223372036854775808.0)
			datatype = TULONGLONG;
	}
	size_t width = datatype == TDOUBLE ? sizeof(double) : sizeof(long long);
	void *buf = malloc(n ? (size_t)n * width : 1);
	int anynul = 0;
	if (!buf)
		return fail("malloc", MEMORY_ALLOCATION);
	if (n && fits_read_img(f, datatype, 1, n, NULL, buf, &anynul, &status))
		return fail("fits_read_img", status);
	for (LONGLONG i = 0; i < n; i++) {
		if (datatype == TULONGLONG)
			printf("%llu\n", ((unsigned long long *)buf)[i]);
		else if (datatype == TLONGLONG)
			printf("%lld\n", ((long long *)buf)[i]);
		else
			printf("%.17g\n", ((double *)buf)[i]);
	}
	free(buf);
	if (fits_close_file(f, &status))
		return fail("fits_close_file", status);
	return 0;
}
