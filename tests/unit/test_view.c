/* test_view.c - view files written from and back to an object's pixels:
 * FITS conversion (big-endian, BZERO flips), MRC bytes as they are, the
 * two-thread conversion of large images, short objects, and the hash that
 * tells a changed file. */
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

Test(view, write_converts_and_extract_restores)
{
	uint16_t px[5] = {0, 1, 0x7fff, 0x8000, 0xffff};
	int fd = object_with("pad!", 4);
	cr_assert_eq(pwrite(fd, px, sizeof px, 4), (ssize_t)sizeof px);
	struct view_image img;
	cr_assert_eq(view_layout(&img, VIEW_FITS, ELEM_U16, 5, 2880), 0);
	cr_assert_eq(img.file_size, 2 * 2880);
	int out = memfd_create("view", MFD_CLOEXEC);
	cr_assert_eq(view_write_fd(&img, fd, 4, out), 0);
	/* uint16 in FITS: BZERO 32768, so the top bit flips, big-endian. */
	const unsigned char want[10] = {0x80, 0, 0x80, 1, 0xff, 0xff, 0, 0, 0x7f, 0xff};
	unsigned char got[10];
	cr_assert_eq(pread(out, got, sizeof got, 2880), (ssize_t)sizeof got);
	cr_assert_eq(memcmp(got, want, sizeof want), 0);
	/* The same from memory. */
	int out2 = memfd_create("view", MFD_CLOEXEC);
	cr_assert_eq(view_write_mem(&img, px, out2), 0);
	cr_assert_eq(pread(out2, got, sizeof got, 2880), (ssize_t)sizeof got);
	cr_assert_eq(memcmp(got, want, sizeof want), 0);
	memset(px, 0, sizeof px);
	cr_assert_eq(pwrite(fd, px, sizeof px, 4), (ssize_t)sizeof px);
	cr_assert_eq(view_extract_fd(&img, out, fd, 4), 0);
	uint16_t back[5];
	cr_assert_eq(pread(fd, back, sizeof back, 4), (ssize_t)sizeof back);
	cr_assert_eq(back[2], 0x7fff);
	cr_assert_eq(back[4], 0xffff);
	close(out2);
	close(out);
	close(fd);
}

Test(view, mrc_bytes_as_they_are)
{
	float px[3] = {1.5f, -2.0f, 3.25f};
	int fd = object_with(px, sizeof px);
	struct view_image img;
	cr_assert_eq(view_layout(&img, VIEW_MRC, ELEM_F32, 3, 1024), 0);
	int out = memfd_create("view", MFD_CLOEXEC);
	cr_assert_eq(view_write_fd(&img, fd, 0, out), 0);
	float got[3];
	cr_assert_eq(pread(out, got, sizeof got, 1024), (ssize_t)sizeof got);
	cr_assert_eq(memcmp(got, px, sizeof px), 0);
	close(out);
	close(fd);
}

Test(view, large_image_written_by_two_threads)
{
	size_t n = (size_t)5 << 20; /* 20 MiB of int32: over the two-thread size */
	int32_t *px = malloc(n * sizeof *px);
	cr_assert_not_null(px);
	for (size_t i = 0; i < n; i++)
		px[i] = (int32_t)(i * 2654435761u);
	int fd = object_with(px, n * sizeof *px);
	struct view_image img;
	cr_assert_eq(view_layout(&img, VIEW_FITS, ELEM_I32, n, 2880), 0);
	int out = memfd_create("view", MFD_CLOEXEC);
	cr_assert_eq(view_write_fd(&img, fd, 0, out), 0);
	for (size_t i = 0; i < n; i += 4099) {
		unsigned char b[4];
		cr_assert_eq(pread(out, b, 4, (off_t)(2880 + 4 * i)), 4);
		uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
		cr_assert_eq(v, (uint32_t)px[i], "pixel %zu", i);
	}
	/* And back, through the other direction's chunks. */
	memset(px, 0, n * sizeof *px);
	cr_assert_eq(pwrite(fd, px, n * sizeof *px, 0), (ssize_t)(n * sizeof *px));
	cr_assert_eq(view_extract_fd(&img, out, fd, 0), 0);
	int32_t v;
	cr_assert_eq(pread(fd, &v, 4, 4 * 12345), 4);
	cr_assert_eq(v, (int32_t)(12345 * 2654435761u));
	free(px);
	close(out);
	close(fd);
}

Test(view, short_object_is_eio)
{
	int fd = object_with("abc", 3);
	struct view_image img;
	cr_assert_eq(view_layout(&img, VIEW_FITS, ELEM_F64, 4, 2880), 0);
	int out = memfd_create("view", MFD_CLOEXEC);
	cr_assert_eq(view_write_fd(&img, fd, 0, out), -EIO);
	cr_assert_eq(view_extract_fd(&img, fd, out, 0), -EIO, "a view file shorter than its layout");
	close(out);
	close(fd);
}

Test(view, hash_tells_a_changed_byte)
{
	static unsigned char bytes[10000];
	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (unsigned char)(i * 7);
	int fd = object_with(bytes, sizeof bytes);
	uint64_t h0, h1, h2;
	cr_assert_eq(view_hash_fd(fd, sizeof bytes, &h0), 0);
	cr_assert_eq(view_hash_fd(fd, sizeof bytes, &h1), 0);
	cr_assert_eq(h0, h1);
	for (size_t at = 0; at < sizeof bytes; at += 997) {
		unsigned char b = bytes[at] ^ 1;
		cr_assert_eq(pwrite(fd, &b, 1, (off_t)at), 1);
		cr_assert_eq(view_hash_fd(fd, sizeof bytes, &h2), 0);
		cr_assert_neq(h2, h0, "byte %zu", at);
		cr_assert_eq(pwrite(fd, bytes + at, 1, (off_t)at), 1);
	}
	cr_assert_eq(view_hash_fd(fd, sizeof bytes - 1, &h2), 0);
	cr_assert_neq(h2, h0, "a shorter length");
	cr_assert_eq(view_hash_fd(fd, sizeof bytes + 1, &h2), -EIO);
	close(fd);
}
