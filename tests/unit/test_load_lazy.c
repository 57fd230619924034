/* test_load_lazy.c - unit tests of the loader's fast path and of what loads
 * share: uncompressed, unscaled images left in the file's bytes by
 * load_fits_decode_lazy and converted by load_stream straight into the
 * stream (every BITPIX/BZERO type, 1-3 axes, created and in place, large
 * ones on two threads) give the very bytes the CFITSIO path gives; what a
 * stream's view synthesizes (SHMNAME, CNT0, CNT1, DATE, DATE-OBS) never
 * becomes a keyword, so a view saved and loaded back keeps the stream's
 * keywords as they were; loads of one name from many threads at once each
 * write a whole frame. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "fitshdr.h"
#include "load.h"
#include "unit_fits.h"
#include "view.h"
#include "viewcards.h"

/* Decode M lazily or not and load it into stream NAME of the scratch
 * directory. */
static int load_as(const char *name, const struct mem *m, int lazy, enum load_result *did)
{
	struct load_image img;
	char why[256] = "";
	int rc = lazy ? load_fits_decode_lazy(m->buf, m->len, &img, why, sizeof why)
		      : load_fits_decode(m->buf, m->len, &img, why, sizeof why);
	if (rc == 0) {
		rc = load_stream(dirfd_, name, &img, (uid_t)-1, (gid_t)-1, did, why, sizeof why);
		load_image_free(&img);
	}
	if (rc < 0)
		cr_log_error("load %s: %s", name, why);
	return rc;
}

Test(load_lazy, decodes_what_needs_cfitsio)
{
	const long dims[2] = {16, 8};
	short raw[128];
	for (int i = 0; i < 128; i++)
		raw[i] = (short)(i - 64);
	struct load_image img;
	char why[256] = "";
	/* Scaled: BSCALE and BZERO applied, as floats. */
	struct mem m;
	int st = 0;
	mem_create(&m);
	fits_create_img(m.f, SHORT_IMG, 2, (long *)dims, &st);
	fits_write_key_dbl(m.f, "BSCALE", 0.5, -6, NULL, &st);
	fits_write_key_dbl(m.f, "BZERO", 3.0, -6, NULL, &st);
	fits_set_bscale(m.f, 1.0, 0.0, &st);
	fits_write_img(m.f, TSHORT, 1, 128, raw, &st);
	cr_assert_eq(st, 0);
	mem_close(&m);
	cr_assert_eq(load_fits_decode_lazy(m.buf, m.len, &img, why, sizeof why), 0, "%s", why);
	cr_assert_not_null(img.pixels, "scaled data are decoded");
	cr_assert_eq(img.type, ELEM_F32);
	cr_assert_eq(((float *)img.pixels)[0], -64 * 0.5f + 3);
	load_image_free(&img);
	free(m.buf);
	/* A float image with BZERO: scaled too. */
	float fl[128];
	for (int i = 0; i < 128; i++)
		fl[i] = (float)i;
	mem_create(&m);
	st = 0;
	fits_create_img(m.f, FLOAT_IMG, 2, (long *)dims, &st);
	fits_write_key_dbl(m.f, "BZERO", 10.0, -6, NULL, &st);
	fits_set_bscale(m.f, 1.0, 0.0, &st);
	fits_write_img(m.f, TFLOAT, 1, 128, fl, &st);
	mem_close(&m);
	cr_assert_eq(load_fits_decode_lazy(m.buf, m.len, &img, why, sizeof why), 0, "%s", why);
	cr_assert_not_null(img.pixels);
	cr_assert_eq(((float *)img.pixels)[5], 15.0f);
	load_image_free(&img);
	free(m.buf);
	/* Tile-compressed. */
	m = make_fits(SHORT_IMG, 2, dims, TSHORT, raw, RICE_1, 0, 0);
	cr_assert_eq(load_fits_decode_lazy(m.buf, m.len, &img, why, sizeof why), 0, "%s", why);
	cr_assert_not_null(img.pixels);
	cr_assert_eq(memcmp(img.pixels, raw, sizeof raw), 0);
	load_image_free(&img);
	free(m.buf);
	/* Not padded to 2880 bytes (CFITSIO reads a padded copy). */
	m = make_fits(SHORT_IMG, 2, dims, TSHORT, raw, 0, 0, 0);
	cr_assert_eq(load_fits_decode_lazy(m.buf, 2880 + sizeof raw, &img, why, sizeof why), 0);
	cr_assert_not_null(img.pixels);
	cr_assert_eq(memcmp(img.pixels, raw, sizeof raw), 0);
	load_image_free(&img);
	free(m.buf);
}

static void assert_same_stream_pixels(const char *a, const char *b, const void *pix)
{
	struct stream_file f, g;
	open_stream(a, &f);
	open_stream(b, &g);
	cr_assert_eq(f.s.datasize, g.s.datasize);
	cr_assert_eq(memcmp(f.map + f.s.off_data, g.map + g.s.off_data, f.s.datasize), 0, "%s", a);
	cr_assert_eq(memcmp(f.map + f.s.off_data, pix, f.s.datasize), 0, "%s", a);
	cr_assert_eq(memcmp(f.map + f.s.off_keywords, g.map + g.s.off_keywords,
			    (size_t)f.s.nbkw * ISIO_KW_SIZE), 0, "%s keywords", a);
	close_stream(&f);
	close_stream(&g);
}

Test(load_lazy, streams_as_the_cfitsio_path_makes_them, .init = setup, .fini = teardown)
{
	const long dims[3] = {9, 4, 2};
	for (size_t k = 0; k < NKINDS; k++) {
		void *pix = pattern(kinds[k].type, 72, (unsigned)k + 7);
		void *pix2 = pattern(kinds[k].type, 72, (unsigned)k + 99);
		struct mem m = make_fits(kinds[k].img_type, 3, dims, kinds[k].dtype, pix, 0, 0, 1);
		struct mem m2 = make_fits(kinds[k].img_type, 3, dims, kinds[k].dtype, pix2, 0, 0, 1);
		char e[32], l[32], ef[48], lf[48];
		snprintf(e, sizeof e, "eager%zu", k);
		snprintf(l, sizeof l, "lazy%zu", k);
		snprintf(ef, sizeof ef, "%s.im.shm", e);
		snprintf(lf, sizeof lf, "%s.im.shm", l);
		enum load_result did;
		cr_assert_eq(load_as(e, &m, 0, &did), 0);
		cr_assert_eq(load_as(l, &m, 1, &did), 0);
		cr_assert_eq(did, LOAD_CREATED);
		assert_same_stream_pixels(lf, ef, pix);
		/* In place. */
		cr_assert_eq(load_as(e, &m2, 0, &did), 0);
		cr_assert_eq(load_as(l, &m2, 1, &did), 0);
		cr_assert_eq(did, LOAD_UPDATED);
		assert_same_stream_pixels(lf, ef, pix2);
		free(m.buf);
		free(m2.buf);
		free(pix);
		free(pix2);
	}
}

Test(load_lazy, large_images_on_two_threads, .init = setup, .fini = teardown)
{
	const long dims[2] = {2048, 1536}; /* 12 MiB of float32 */
	size_t n = 2048 * 1536;
	float *pix = malloc(n * sizeof *pix);
	for (size_t i = 0; i < n; i++)
		pix[i] = (float)i * 0.25f;
	struct mem m = make_fits(FLOAT_IMG, 2, dims, TFLOAT, pix, 0, 0, 0);
	enum load_result did;
	cr_assert_eq(load_as("big", &m, 1, &did), 0);
	cr_assert_eq(load_as("big", &m, 1, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	struct stream_file f;
	open_stream("big.im.shm", &f);
	cr_assert_eq(f.s.cnt0, 2);
	cr_assert_eq(memcmp(f.map + f.s.off_data, pix, n * sizeof *pix), 0);
	close_stream(&f);
	free(m.buf);
	free(pix);
}

/* ---- The mapping of the stream loaded last */

/* Whether this process maps a file whose path contains NAME. */
static int mapped(const char *name)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[4096];
	int found = 0;
	while (f && fgets(line, sizeof line, f))
		found |= strstr(line, name) != NULL;
	if (f)
		fclose(f);
	return found;
}

static void float_file(struct mem *m, float value)
{
	const long dims[2] = {64, 64};
	float pix[64 * 64];
	for (int i = 0; i < 64 * 64; i++)
		pix[i] = value;
	*m = make_fits(FLOAT_IMG, 2, dims, TFLOAT, pix, 0, 0, 0);
}

Test(load_lazy, the_mapping_kept_follows_the_file, .init = setup, .fini = teardown)
{
	struct mem a, b, c;
	float_file(&a, 1);
	float_file(&b, 2);
	float_file(&c, 3);
	enum load_result did;
	cr_assert_eq(load_as("cam", &a, 1, &did), 0);
	cr_assert_eq(load_as("cam", &a, 1, &did), 0);
	cr_assert(mapped("/cam.im.shm"), "kept for the next load");
	/* Replaced under its name by a file of the same size: the next load
	 * goes to the file now there, not to the one kept. */
	int old = openat(dirfd_, "cam.im.shm", O_RDONLY);
	cr_assert_eq(load_as("other", &b, 1, &did), 0);
	cr_assert_eq(load_as("other", &b, 1, &did), 0);
	cr_assert(!mapped("/cam.im.shm"), "another stream updated: dropped");
	cr_assert_eq(load_as("cam", &a, 1, &did), 0);
	cr_assert_eq(renameat(dirfd_, "other.im.shm", dirfd_, "cam.im.shm"), 0);
	cr_assert_eq(load_as("cam", &c, 1, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	struct stream_file f;
	open_stream("cam.im.shm", &f);
	cr_assert_eq(((float *)(void *)(f.map + f.s.off_data))[0], 3.0f);
	close_stream(&f);
	float first;
	cr_assert_eq(pread(old, &first, 4, ISIO_META_SIZE), 4);
	cr_assert_eq(first, 1.0f, "the file replaced was not written");
	close(old);
	/* Removed: its memory is let go within a second or so. */
	cr_assert_eq(unlinkat(dirfd_, "cam.im.shm", 0), 0);
	for (int i = 0; i < 50 && mapped("/cam.im.shm"); i++)
		usleep(100000);
	cr_assert(!mapped("/cam.im.shm"), "still mapped 5 s after its last load");
	free(a.buf);
	free(b.buf);
	free(c.buf);
}

/* ---- What views synthesize */

Test(load_lazy, view_cards_are_not_keywords)
{
	static const char *const names[] = {VIEW_CARD_SHMNAME, VIEW_CARD_CNT0, VIEW_CARD_CNT1,
					    VIEW_CARD_DATE, VIEW_CARD_DATE_OBS};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		cr_assert(view_card_synthesized(names[i]), "%s", names[i]);
	cr_assert(!view_card_synthesized("EXPTIME"));
	cr_assert(!view_card_synthesized("DATE-END"));
	const long dims[1] = {4};
	float pix[4] = {1, 2, 3, 4};
	struct mem m;
	int st = 0;
	mem_create(&m);
	fits_create_img(m.f, FLOAT_IMG, 1, (long *)dims, &st);
	fits_write_key_str(m.f, "SHMNAME", "cam", "ImageStreamIO stream name", &st);
	fits_write_key_lng(m.f, "CNT0", 41, "frame counter", &st);
	fits_write_key_lng(m.f, "CNT1", 0, "last slice written", &st);
	fits_write_key_str(m.f, "DATE", "2026-01-02T03:04:05.000000", NULL, &st);
	fits_write_key_str(m.f, "DATE-OBS", "2026-01-02T03:04:05.000000", NULL, &st);
	fits_write_key_dbl(m.f, "EXPTIME", 0.5, -6, "exposure", &st);
	fits_write_img(m.f, TFLOAT, 1, 4, pix, &st);
	cr_assert_eq(st, 0);
	mem_close(&m);
	struct load_image img;
	char why[256] = "";
	cr_assert_eq(load_fits_decode_lazy(m.buf, m.len, &img, why, sizeof why), 0, "%s", why);
	cr_assert_eq(img.nkw, 1, "only EXPTIME: %u keywords", img.nkw);
	cr_assert_str_eq((const char *)img.keywords, "EXPTIME");
	load_image_free(&img);
	free(m.buf);
}

/* A stream's view (its header from view_stream_header, its data as FITS)
 * loaded back into the stream: the keywords are the same, none added. */
Test(load_lazy, a_view_loads_back_as_it_was, .init = setup, .fini = teardown)
{
	const long dims[2] = {6, 5};
	float pix[30];
	for (int i = 0; i < 30; i++)
		pix[i] = (float)i - 7;
	struct mem m;
	int st = 0;
	mem_create(&m);
	fits_create_img(m.f, FLOAT_IMG, 2, (long *)dims, &st);
	fits_write_key_dbl(m.f, "EXPTIME", 0.25, -15, "exposure (s)", &st);
	fits_write_key_lng(m.f, "GAIN", -3, "e-/ADU", &st);
	fits_write_key_log(m.f, "SHUTTER", 1, "open", &st);
	fits_write_key_str(m.f, "OBJECT", "a string longer than fifteen characters", "", &st);
	fits_write_date(m.f, &st);
	fits_write_img(m.f, TFLOAT, 1, 30, pix, &st);
	cr_assert_eq(st, 0);
	mem_close(&m);
	enum load_result did;
	cr_assert_eq(load_as("cam", &m, 1, &did), 0);
	struct stream_file f;
	open_stream("cam.im.shm", &f);
	cr_assert_eq(f.s.nbkw, 4, "EXPTIME, GAIN, SHUTTER, OBJECT");
	unsigned nkw = f.s.nbkw;
	unsigned char *kw = malloc((size_t)nkw * ISIO_KW_SIZE);
	memcpy(kw, f.map + f.s.off_keywords, (size_t)nkw * ISIO_KW_SIZE);
	/* The view's file, made as the mount makes it. */
	struct fits_header h;
	fitshdr_init(&h);
	cr_assert_eq(view_stream_header(&f.s, f.map, f.map + f.s.off_keywords, ISIO_FRAME_WHOLE,
				       &h), 0);
	struct view_image v;
	cr_assert_eq(view_layout(&v, VIEW_FITS, f.s.type, f.s.nelement, fitshdr_size(&h)), 0);
	unsigned char *file = calloc(1, v.file_size);
	cr_assert(file);
	fitshdr_write(&h, (char *)file);
	cr_assert_eq(view_write_map(&v, f.map + f.s.off_data, file), 0);
	cr_assert(memmem(file, v.header_len, "CNT0    =", 9), "the view has CNT0");
	close_stream(&f);
	struct mem saved = {file, (size_t)v.file_size, NULL};
	cr_assert_eq(load_as("cam", &saved, 1, &did), 0);
	cr_assert_eq(did, LOAD_UPDATED);
	open_stream("cam.im.shm", &f);
	cr_assert_eq(f.s.nbkw, nkw);
	for (unsigned i = 0; i < nkw; i++) {
		const unsigned char *a = kw + (size_t)i * ISIO_KW_SIZE;
		const unsigned char *b = f.map + f.s.off_keywords + (size_t)i * ISIO_KW_SIZE;
		cr_assert_eq(memcmp(a, b, ISIO_KW_SIZE), 0, "keyword %u: %s / %s, comment '%s' / '%s'",
			     i, (const char *)a, (const char *)b, (const char *)a + 48,
			     (const char *)b + 48);
	}
	cr_assert_eq(memcmp(f.map + f.s.off_data, pix, sizeof pix), 0);
	cr_assert_eq(f.s.cnt0, 2);
	close_stream(&f);
	free(file);
	fitshdr_free(&h);
	free(kw);
	free(m.buf);
}

/* ---- Loads at once */

#define WRITERS 8
#define ROUNDS 10
#define SIDE 256

struct writer {
	struct mem file;
	int failures;
};

static atomic_int stop_reading;

static void *write_loads(void *arg)
{
	struct writer *w = arg;
	for (int r = 0; r < ROUNDS; r++) {
		enum load_result did;
		w->failures += load_as("cam", &w->file, r % 2, &did) != 0;
	}
	return NULL;
}

/* Take frames as an ImageStreamIO reader does (CNT0 and the write flag
 * around the copy); count those taken and those not all one value. */
struct reader {
	int frames, mixed;
};

static void *read_frames(void *arg)
{
	struct reader *r = arg;
	struct stream_file f;
	open_stream("cam.im.shm", &f);
	float *copy = malloc(f.s.datasize);
	volatile unsigned char *m = f.map;
	while (!atomic_load(&stop_reading)) {
		uint64_t c0 = *(volatile uint64_t *)(m + ISIO_OFF_CNT0);
		if (m[ISIO_OFF_WRITE])
			continue;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		memcpy(copy, f.map + f.s.off_data, f.s.datasize);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (m[ISIO_OFF_WRITE] || *(volatile uint64_t *)(m + ISIO_OFF_CNT0) != c0)
			continue;
		r->frames++;
		for (size_t i = 1; i < f.s.nelement; i++)
			if (copy[i] != copy[0]) {
				r->mixed++;
				break;
			}
	}
	free(copy);
	close_stream(&f);
	return NULL;
}

Test(load_lazy, loads_at_once_write_whole_frames, .init = setup, .fini = teardown)
{
	const long dims[2] = {SIDE, SIDE};
	float *pix = malloc(sizeof(float) * SIDE * SIDE);
	struct writer w[WRITERS];
	for (int i = 0; i < WRITERS; i++) {
		for (int k = 0; k < SIDE * SIDE; k++)
			pix[k] = (float)(i + 1);
		w[i] = (struct writer){make_fits(FLOAT_IMG, 2, dims, TFLOAT, pix, 0, 0, 0), 0};
	}
	enum load_result did;
	cr_assert_eq(load_as("cam", &w[0].file, 1, &did), 0);
	struct reader r = {0, 0};
	pthread_t rt, wt[WRITERS];
	atomic_store(&stop_reading, 0);
	cr_assert_eq(pthread_create(&rt, NULL, read_frames, &r), 0);
	for (int i = 0; i < WRITERS; i++)
		cr_assert_eq(pthread_create(&wt[i], NULL, write_loads, &w[i]), 0);
	for (int i = 0; i < WRITERS; i++) {
		pthread_join(wt[i], NULL);
		cr_assert_eq(w[i].failures, 0, "writer %d", i);
	}
	atomic_store(&stop_reading, 1);
	pthread_join(rt, NULL);
	cr_assert_eq(r.mixed, 0, "%d of %d frames mixed", r.mixed, r.frames);
	struct stream_file f;
	open_stream("cam.im.shm", &f);
	cr_assert_eq(f.s.cnt0, 1 + WRITERS * ROUNDS);
	const float *px = (const float *)(const void *)(f.map + f.s.off_data);
	for (int k = 1; k < SIDE * SIDE; k++)
		cr_assert_eq(px[k], px[0]);
	close_stream(&f);
	for (int i = 0; i < WRITERS; i++)
		free(w[i].file.buf);
	free(pix);
}
