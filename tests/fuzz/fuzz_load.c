// core: load.c loadpix.c fitscheck.c fitsload.c fitstile.c isio.c isioframe.c imod.c elem.c guard.c viewcards.c
// pkg: cfitsio
/* fuzz_load.c - the loader on arbitrary files. The first input byte picks
 * how the rest becomes a file, so that the fuzzer reaches deep without
 * seeds: 0 the bytes as they are; 1 the bytes after a SIMPLE card; 2 and 3
 * a valid FITS file made here by CFITSIO (plain, or tile-compressed with
 * the algorithm the next byte picks) with the rest of the input as patches
 * (offset, byte) and a cut; 4 the bytes as an MRC file loaded into an IMOD
 * object. What load_fits_decode accepts is checked and, when small, loaded
 * into a stream in a private tmpfs (created, updated, replaced in turn as
 * the inputs differ). load_fits_decode_lazy must agree with it: the same
 * result, and pixels left in the file only where they lie inside it and
 * convert to the very values CFITSIO gives. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fitsio.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "load.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "failed: %s\n", #c); abort(); } } while (0)

/* CFITSIO 4.2's HCOMPRESS decoder (fits_hdecompress) leaks a small buffer
 * when a tile is corrupt (found here); not ours to fix. With the fast
 * unwinder the leak's stack ends in the library, so the suppression names
 * the library: allocations made in our own code are still checked. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libcfitsio.so\n";
}

/* The streams and IMOD files go to a tmpfs of this process's own, in a
 * mount namespace of its own, so nothing a run leaves (it may die of an
 * out-of-memory report, which runs no exit handler) outlives it, and the
 * machine's /dev/shm is never touched. As root, a mount namespace is
 * enough; otherwise a user namespace makes this process root in it. */
static int dirfd_ = -1;

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	CHECK(fd >= 0 && write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	close(fd);
}

static void private_tmpfs(const char *dir)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	if (unshare(CLONE_NEWNS) != 0) {
		char map[64];
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
			fprintf(stderr, "fuzz_load: no private mount namespace (%s); run as root\n",
				strerror(errno));
			abort();
		}
		snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
		write_file("/proc/self/uid_map", map);
		write_file("/proc/self/setgroups", "deny");
		snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
		write_file("/proc/self/gid_map", map);
	}
	CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0);
	CHECK(mount("fuzz_load", dir, "tmpfs", 0, "size=256m,mode=0700") == 0);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* /dev/shm as ImageStreamIO uses it, but this process's own. */
	private_tmpfs("/dev/shm");
	dirfd_ = open("/dev/shm", O_RDONLY | O_DIRECTORY);
	CHECK(dirfd_ >= 0);
	/* Keep images small: what a decode may take is the image plus a fixed
	 * margin, so every input stays far below -rss_limit_mb. */
	load_set_image_limit(64 << 20);
	return 0;
}

/* Templates made once: [0] plain, [1..4] compressed (RICE, GZIP, HCOMPRESS,
 * PLIO). */
static struct {
	void *buf;
	size_t len;
} templates[5];

static void make_template(int k)
{
	static const int algos[] = {0, RICE_1, GZIP_1, HCOMPRESS_1, PLIO_1};
	size_t len = 2880;
	void *buf = malloc(len);
	fitsfile *f;
	int st = 0;
	long dims[3] = {24, 16, 2};
	int16_t pix[24 * 16 * 2];
	for (int i = 0; i < 24 * 16 * 2; i++)
		pix[i] = (int16_t)(i % 97 * (k == 4 ? 1 : 13));
	fits_create_memfile(&f, &buf, &len, 2880, realloc, &st);
	if (k)
		fits_create_img(f, BYTE_IMG, 0, NULL, &st);
	if (k)
		fits_set_compression_type(f, algos[k], &st);
	fits_create_img(f, SHORT_IMG, 3, dims, &st);
	fits_write_key_str(f, "OBJECT", "a string longer than fifteen characters", "c", &st);
	fits_write_key_lng(f, "EXPOSURE", 12, "s", &st);
	fits_write_key_dbl(f, "GAIN", 1.5, -15, NULL, &st);
	fits_write_key_log(f, "FLAG", 1, NULL, &st);
	fits_write_img(f, TSHORT, 1, 24 * 16 * 2, pix, &st);
	LONGLONG hs, ds, de;
	fits_get_hduaddrll(f, &hs, &ds, &de, &st);
	fits_close_file(f, &st);
	CHECK(st == 0);
	templates[k].buf = buf;
	templates[k].len = (size_t)de;
	fits_clear_errmsg();
}

static void check_image(const struct load_image *img)
{
	CHECK(img->naxis >= 1 && img->naxis <= 3);
	uint64_t n = 1;
	for (int i = 0; i < 3; i++) {
		CHECK(img->size[i] >= 1);
		CHECK(i < img->naxis || img->size[i] == 1);
		n *= img->size[i];
	}
	CHECK(n == img->nelement);
	CHECK(img->datasize == n * elem_size(img->type));
	volatile unsigned char sink = ((unsigned char *)img->pixels)[0] ^
				      ((unsigned char *)img->pixels)[img->datasize - 1];
	(void)sink;
	for (unsigned i = 0; i < img->nkw; i++) {
		const unsigned char *s = img->keywords + (size_t)i * ISIO_KW_SIZE;
		CHECK(s[0] && memchr(s, 0, 16));
		CHECK(s[16] == 'L' || s[16] == 'D' || s[16] == 'S');
		CHECK(s[16] != 'S' || memchr(s + 24, 0, 16));
		CHECK(memchr(s + 48, 0, 80));
	}
}

/* The lazy decode of FILE against the eager one's result RC and IMG. */
static void lazy_case(const unsigned char *file, size_t len, int rc, const struct load_image *img)
{
	struct load_image lazy;
	char why[256];
	why[0] = '\0';
	int lrc = load_fits_decode_lazy(file, len, &lazy, why, sizeof why);
	CHECK(lrc == rc || (rc == -ENOMEM) != (lrc == -ENOMEM));
	if (lrc != 0 || rc != 0) {
		if (lrc == 0)
			load_image_free(&lazy);
		return;
	}
	CHECK(lazy.type == img->type && lazy.nelement == img->nelement && lazy.nkw == img->nkw);
	if (!lazy.pixels) {
		CHECK(lazy.fits_data >= file && lazy.fits_data <= file + len &&
		      lazy.datasize <= (uint64_t)(file + len - lazy.fits_data));
		if (lazy.datasize <= (1 << 20)) {
			unsigned char *native = malloc(lazy.datasize ? lazy.datasize : 1);
			elem_from_fits(lazy.type, lazy.fits_data, native, lazy.nelement);
			CHECK(memcmp(native, img->pixels, lazy.datasize) == 0);
			free(native);
		}
	}
	load_image_free(&lazy);
}

static void fits_case(const unsigned char *file, size_t len)
{
	struct load_image img;
	char why[256];
	why[0] = '\0';
	int rc = load_fits_decode(file, len, &img, why, sizeof why);
	lazy_case(file, len, rc, &img);
	if (rc != 0) {
		CHECK(rc == -EINVAL || rc == -EIO || rc == -EFBIG || rc == -ENOMEM);
		CHECK(why[0] && !img.pixels && !img.keywords);
		return;
	}
	check_image(&img);
	if (img.datasize <= (1 << 20)) {
		enum load_result did;
		rc = load_stream(dirfd_, "fuzz", &img, (uid_t)-1, (gid_t)-1, &did, why, sizeof why);
		CHECK(rc == 0);
	}
	load_image_free(&img);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned mode = data[0] % 5;
	data++;
	size--;
	if (mode == 0) {
		/* exactly the input on the heap, so an overread is seen */
		unsigned char *copy = malloc(size ? size : 1);
		memcpy(copy, data, size);
		fits_case(copy, size);
		free(copy);
	} else if (mode == 1) {
		unsigned char *file = malloc(80 + size);
		memcpy(file, "SIMPLE  =                    T", 30);
		memset(file + 30, ' ', 50);
		memcpy(file + 80, data, size);
		fits_case(file, 80 + size);
		free(file);
	} else if (mode == 2 || mode == 3) {
		if (size < 3)
			return 0;
		int k = mode == 2 ? 0 : 1 + data[0] % 4;
		if (!templates[k].buf)
			make_template(k);
		size_t len = templates[k].len;
		unsigned cut = data[1] | (unsigned)data[2] << 8;
		if (cut < len && (cut & 0x8000) == 0)
			len -= cut;
		unsigned char *file = malloc(len);
		memcpy(file, templates[k].buf, len);
		for (size_t i = 3; i + 3 <= size; i += 3) {
			size_t off = (data[i] | (size_t)data[i + 1] << 8) % len;
			file[off] = data[i + 2];
		}
		fits_case(file, len);
		free(file);
	} else {
		enum load_result did;
		char why[256];
		unsigned char *copy = malloc(size ? size : 1);
		memcpy(copy, data, size);
		int rc = load_mrc_imod(dirfd_, "IMODShrMem_64_fuzz", copy, size, (uid_t)-1,
				       (gid_t)-1, &did, why, sizeof why);
		CHECK(rc == 0 || rc == -EINVAL || rc == -EIO || rc == -ENOSPC);
		free(copy);
	}
	return 0;
}
