/* test_view.c - view images filled from and written back to an object's
 * descriptor: FITS conversion (big-endian, BZERO flips), MRC bytes as they
 * are, the two-thread fill of large images, and short objects. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "view.h"

static int object_with(const void *bytes, size_t len)
{
	int fd = memfd_create("test_view", MFD_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, bytes, len), (ssize_t)len);
	return fd;
}

Test(view, fill_converts_and_extract_restores)
{
	uint16_t px[5] = {0, 1, 0x7fff, 0x8000, 0xffff};
	int fd = object_with("pad!", 4);
	cr_assert_eq(pwrite(fd, px, sizeof px, 4), (ssize_t)sizeof px);
	struct view_image img;
	cr_assert_eq(view_alloc(&img, VIEW_FITS, ELEM_U16, 5, 2880), 0);
	cr_assert_eq(view_fill_from_fd(&img, fd, 4), 0);
	/* uint16 in FITS: BZERO 32768, so the top bit flips, big-endian. */
	const unsigned char want[10] = {0x80, 0, 0x80, 1, 0xff, 0xff, 0, 0, 0x7f, 0xff};
	cr_assert_eq(memcmp(img.bytes + 2880, want, sizeof want), 0);
	memset(px, 0, sizeof px);
	cr_assert_eq(pwrite(fd, px, sizeof px, 4), (ssize_t)sizeof px);
	cr_assert_eq(view_extract_to_fd(&img, fd, 4), 0);
	uint16_t back[5];
	cr_assert_eq(pread(fd, back, sizeof back, 4), (ssize_t)sizeof back);
	cr_assert_eq(back[2], 0x7fff);
	cr_assert_eq(back[4], 0xffff);
	view_free(&img);
	close(fd);
}

Test(view, mrc_bytes_as_they_are)
{
	float px[3] = {1.5f, -2.0f, 3.25f};
	int fd = object_with(px, sizeof px);
	struct view_image img;
	cr_assert_eq(view_alloc(&img, VIEW_MRC, ELEM_F32, 3, 1024), 0);
	cr_assert_eq(view_fill_from_fd(&img, fd, 0), 0);
	cr_assert_eq(memcmp(img.bytes + 1024, px, sizeof px), 0);
	view_free(&img);
	close(fd);
}

Test(view, large_image_filled_by_two_threads)
{
	size_t n = (size_t)5 << 20; /* 20 MiB of int32: over the two-thread size */
	int32_t *px = malloc(n * sizeof *px);
	cr_assert_not_null(px);
	for (size_t i = 0; i < n; i++)
		px[i] = (int32_t)(i * 2654435761u);
	int fd = object_with(px, n * sizeof *px);
	struct view_image img;
	cr_assert_eq(view_alloc(&img, VIEW_FITS, ELEM_I32, n, 2880), 0);
	cr_assert_eq(view_fill_from_fd(&img, fd, 0), 0);
	for (size_t i = 0; i < n; i += 4099) {
		const unsigned char *b = img.bytes + 2880 + 4 * i;
		uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		cr_assert_eq(v, (uint32_t)px[i], "pixel %zu", i);
	}
	view_free(&img);
	free(px);
	close(fd);
}

Test(view, short_object_is_eio)
{
	int fd = object_with("abc", 3);
	struct view_image img;
	cr_assert_eq(view_alloc(&img, VIEW_FITS, ELEM_F64, 4, 2880), 0);
	cr_assert_eq(view_fill_from_fd(&img, fd, 0), -EIO);
	view_free(&img);
	close(fd);
}
