/* fits_create.c - test helper: make a FITS image with CFITSIO the way a
 * CFITSIO program replaces a file: fits_create_file("!FILE") (the '!' asks
 * CFITSIO to delete FILE first), one float32 NX x NY image whose pixels are
 * VALUE + k (k the pixel's index, axis 1 fastest), a keyword, close.
 *   fits_create FILE NX NY VALUE
 * Exit 0, or 1 with CFITSIO's error stack on stderr. */
#include <fitsio.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int fail(const char *what, int status)
{
	fprintf(stderr, "fits_create: %s:\n", what);
	fits_report_error(stderr, status);
	_exit(1); /* no leak report for what CFITSIO still holds */
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: fits_create FILE NX NY VALUE\n");
		return 2;
	}
	char name[4200];
	snprintf(name, sizeof name, "!%s", argv[1]);
	long naxes[2] = {atol(argv[2]), atol(argv[3])};
	double value = atof(argv[4]);
	long n = naxes[0] * naxes[1];
	float *pix = malloc((size_t)(n > 0 ? n : 1) * sizeof *pix);
	if (!pix || n <= 0)
		return fail("bad size", MEMORY_ALLOCATION);
	for (long k = 0; k < n; k++)
		pix[k] = (float)(value + (double)k);
	fitsfile *f;
	int status = 0;
	if (fits_create_file(&f, name, &status))
		return fail("fits_create_file", status);
	if (fits_create_img(f, FLOAT_IMG, 2, naxes, &status))
		return fail("fits_create_img", status);
	if (fits_update_key_dbl(f, "EXPTIME", 0.5, -6, "exposure (s)", &status))
		return fail("fits_update_key", status);
	if (fits_write_img(f, TFLOAT, 1, n, pix, &status))
		return fail("fits_write_img", status);
	if (fits_close_file(f, &status))
		return fail("fits_close_file", status);
	free(pix);
	return 0;
}
