/* bench_load.c - loading by copying: a 2048 x 2048 float32 FITS file copied
 * onto MOUNT/X.fits, which loads it into stream X (updated in place, or made
 * anew), against the same copy to a plain file in SOURCE, which is what a
 * user would otherwise do. Every load is checked in SOURCE afterwards. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define LOAD_FILE "bench-load2k.src"   /* the FITS file, in SOURCE */
#define LOAD_COPY "bench-load2k.copy"  /* where the direct side copies it */
#define LOAD_STREAM "bench-load2k"     /* a stream of its shape: updated in place */
#define LOAD_NEW "bench-load-new"      /* removed before each copy: made anew */
#define COPY_BLOCK ((size_t)128 << 10) /* cp's buffer (coreutils 9), BLOCK or less */
#define CNT0_AT 264                    /* ImageStreamIO metadata: cnt0, uint64 */
#define PIXELS_AT 384                  /* the pixels, after the metadata */

/* The file's pixels differ from make_stream's, so a load shows. */
static float load_pixel(uint64_t k) { return pixel_value(k + 1); }

static void put_card(char *header, int i, const char *key, const char *value,
		     const char *comment)
{
	char card[81];
	int n = comment ? snprintf(card, sizeof card, "%-8.8s= %20s / %s", key, value, comment)
			: snprintf(card, sizeof card, "%-8.8s= %20s", key, value);
	memcpy(header + 80 * i, card, n < 80 ? (size_t)n : 80);
}

/* SOURCE/LOAD_FILE: one header block (the mandatory keywords and three a
 * camera would write), big-endian pixels load_pixel(k), zero padding. */
static int write_fits(struct bench *b)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", b->source, LOAD_FILE);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		fail("%s: %s", path, strerror(errno));
		return -1;
	}
	memset(b->buf, ' ', FITS_BLOCK);
	put_card(b->buf, 0, "SIMPLE", "T", NULL);
	put_card(b->buf, 1, "BITPIX", "-32", NULL);
	put_card(b->buf, 2, "NAXIS", "2", NULL);
	put_card(b->buf, 3, "NAXIS1", "2048", NULL);
	put_card(b->buf, 4, "NAXIS2", "2048", NULL);
	put_card(b->buf, 5, "EXPTIME", "0.001", "exposure time (s)");
	put_card(b->buf, 6, "GAIN", "2", "camera gain");
	put_card(b->buf, 7, "MODE", "'bench   '", NULL);
	memcpy(b->buf + 80 * 8, "END", 3);
	int rc = write(fd, b->buf, FITS_BLOCK) == FITS_BLOCK ? 0 : -1;
	const uint64_t n = (uint64_t)LOAD_SIDE * LOAD_SIDE, per = BLOCK / 4;
	for (uint64_t k0 = 0; rc == 0 && k0 < n; k0 += per) {
		for (uint64_t k = k0; k < k0 + per; k++) {
			float v = load_pixel(k);
			uint32_t u;
			memcpy(&u, &v, 4);
			u = __builtin_bswap32(u);
			memcpy(b->buf + 4 * (k - k0), &u, 4);
		}
		rc = write(fd, b->buf, BLOCK) == (ssize_t)BLOCK ? 0 : -1;
	}
	if (rc == 0 && ftruncate(fd, (off_t)LOAD_FITS_SIZE) < 0) /* the zero padding */
		rc = -1;
	if (rc < 0)
		fail("%s: write: %s", path, strerror(errno));
	close(fd);
	return rc;
}

/* Stream NAME in SOURCE: its inode and CNT0. 0, or -1 after saying why. */
static int stream_state(struct bench *b, const char *name, ino_t *ino, uint64_t *cnt0,
			const char *what)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s.im.shm", b->source, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || pread(fd, cnt0, 8, CNT0_AT) != 8) {
		fail("%s: %s: %s", what, path, fd < 0 ? strerror(errno) : "cannot read CNT0");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	*ino = st.st_ino;
	return 0;
}

/* Pixel K of the stream mapped at M is the file's. */
static int check_pixel(struct bench *b, const unsigned char *m, uint64_t k, const char *path,
		       const char *what)
{
	float v, want = load_pixel(k);
	memcpy(&v, m + PIXELS_AT + 4 * k, 4);
	if (memcmp(&v, &want, 4) == 0)
		return 0;
	if (b->data_errors++ < 5)
		fail("%s: pixel %llu of %s is %g, not %g", what, (unsigned long long)k, path,
		     (double)v, (double)want);
	return -1;
}

/* After a copy onto NAME.fits: stream NAME in SOURCE has CNT0 WANT_CNT0,
 * inode WANT_INO (if not 0), and the file's pixels (every PIXEL_STRIDE-th
 * and the last). 0, or -1 after saying why. */
static int check_loaded(struct bench *b, const char *name, uint64_t want_cnt0, ino_t want_ino,
			const char *what)
{
	char path[4096];
	const uint64_t n = (uint64_t)LOAD_SIDE * LOAD_SIDE;
	snprintf(path, sizeof path, "%s/%s.im.shm", b->source, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size < PIXELS_AT + 4 * n) {
		fail("%s: %s: %s", what, path, fd < 0 ? strerror(errno) : "too small for the image");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	const unsigned char *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		fail("%s: mmap %s: %s", what, path, strerror(errno));
		return -1;
	}
	int rc = 0;
	uint64_t cnt0;
	memcpy(&cnt0, m + CNT0_AT, 8);
	if (want_ino && st.st_ino != want_ino) {
		fail("%s: %s was replaced (inode %llu, was %llu), not updated in place", what, path,
		     (unsigned long long)st.st_ino, (unsigned long long)want_ino);
		rc = -1;
	} else if (cnt0 != want_cnt0) {
		fail("%s: %s has CNT0 %llu after the copy, not %llu: not loaded", what, path,
		     (unsigned long long)cnt0, (unsigned long long)want_cnt0);
		rc = -1;
	}
	for (uint64_t k = 0; rc == 0 && k < n; k += PIXEL_STRIDE)
		rc = check_pixel(b, m, k, path, what);
	if (rc == 0)
		rc = check_pixel(b, m, n - 1, path, what);
	munmap((void *)m, (size_t)st.st_size);
	return rc;
}

/* Copy SOURCE/LOAD_FILE to TO as cp does: open (O_CREAT | O_TRUNC), read
 * and write COPY_BLOCK at a time, close, whose error is the load's. Adds
 * the phases to PH (the writes as "read"); returns seconds or -1. */
static double copy_fits(struct bench *b, const char *to, struct phases *ph, const char *what)
{
	char from[4096];
	snprintf(from, sizeof from, "%s/%s", b->source, LOAD_FILE);
	double t0 = now();
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = in < 0 ? -1 : open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	double t1 = now();
	if (out < 0) {
		fail("%s: open %s: %s", what, in < 0 ? from : to, strerror(errno));
		if (in >= 0)
			close(in);
		return -1;
	}
	uint64_t done = 0;
	for (;;) {
		ssize_t r = read(in, b->buf, COPY_BLOCK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			break;
		if (r < 0) {
			fail("%s: read %s: %s", what, from, strerror(errno));
			goto out_error;
		}
		for (ssize_t put = 0; put < r;) {
			ssize_t w = write(out, b->buf + put, (size_t)(r - put));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				fail("%s: write %s at %llu: %s", what, to,
				     (unsigned long long)(done + (uint64_t)put),
				     w < 0 ? strerror(errno) : "wrote nothing");
				goto out_error;
			}
			put += w;
		}
		done += (uint64_t)r;
	}
	close(in);
	double t2 = now();
	int rc = close(out);
	double t3 = now();
	if (rc < 0) {
		fail("%s: close %s: %s (the load failed)", what, to, strerror(errno));
		return -1;
	}
	if (done != LOAD_FITS_SIZE) {
		fail("%s: copied %llu bytes of %s, expected %llu", what, (unsigned long long)done, from,
		     (unsigned long long)LOAD_FITS_SIZE);
		return -1;
	}
	ph->open += t1 - t0, ph->read += t2 - t1, ph->close += t3 - t2, ph->count++;
	return t3 - t0;
out_error:
	close(in);
	close(out);
	return -1;
}

/* Direct: copy the file onto SOURCE/LOAD_COPY (existing: truncated).
 * Mount: onto MOUNT/LOAD_STREAM.fits, a stream of the file's shape and
 * type: updated in place, so CNT0 goes up by one and the inode stays. */
double load_update(struct bench *b, const struct bench_case *c, enum side side)
{
	char to[4096];
	struct phases *ph = new_phases(b, side);
	if (side == DIRECT) {
		path_of(to, sizeof to, b, c, side, LOAD_COPY);
		return copy_fits(b, to, ph, c->name);
	}
	ino_t ino;
	uint64_t cnt0;
	if (stream_state(b, LOAD_STREAM, &ino, &cnt0, c->name) < 0)
		return -1;
	path_of(to, sizeof to, b, c, side, LOAD_STREAM ".fits");
	double t = copy_fits(b, to, ph, c->name);
	if (t < 0 || check_loaded(b, LOAD_STREAM, cnt0 + 1, ino, c->name) < 0)
		return -1;
	return t;
}

/* The same onto a name that does not exist: SOURCE/LOAD_COPY removed
 * before each direct run; stream LOAD_NEW removed in SOURCE before each
 * mount run (not through the mount: a view this process removes and
 * creates again is loaded in place), so each copy makes it, with CNT0 1. */
double load_new(struct bench *b, const struct bench_case *c, enum side side)
{
	char to[4096], gone[4096];
	struct phases *ph = new_phases(b, side);
	path_of(to, sizeof to, b, c, side, side == DIRECT ? LOAD_COPY : LOAD_NEW ".fits");
	snprintf(gone, sizeof gone, "%s/%s", b->source, side == DIRECT ? LOAD_COPY : LOAD_NEW ".im.shm");
	if (unlink(gone) < 0 && errno != ENOENT) {
		fail("%s: rm %s: %s", c->name, gone, strerror(errno));
		return -1;
	}
	double t = copy_fits(b, to, ph, c->name);
	if (t < 0 || (side == MOUNT && check_loaded(b, LOAD_NEW, 1, 0, c->name) < 0))
		return -1;
	return t;
}

void load_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	struct phases m = median_phases(b, MOUNT), d = median_phases(b, DIRECT);
	note_add(r, "; %llu B file, copied as cp copies it: open with O_CREAT and O_TRUNC, read+write "
		    "128 KiB at a time, close; direct = the same copy to a plain file in SOURCE%s; "
		    "mount: open %.2f + writes %.1f + close (the load) %.1f ms; direct: open %.2f + "
		    "writes %.1f + close %.2f ms; after each mount run: CNT0 %s, pixels checked",
		 (unsigned long long)LOAD_FITS_SIZE, c->run == load_new ? ", removed before" : "",
		 m.open * 1e3, m.read * 1e3, m.close * 1e3, d.open * 1e3, d.read * 1e3,
		 d.close * 1e3, c->run == load_new ? "1 (a new stream)" : "+1, same inode");
}

/* `cp FROM TO`: 0, or -1 after saying why. */
static int run_cp(const char *from, const char *to)
{
	pid_t pid = fork();
	if (pid < 0) {
		fail("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0) {
		execlp("cp", "cp", from, to, (char *)NULL);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fail("waitpid: %s", strerror(errno));
			return -1;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail("cp %s %s failed (status %d)", from, to, status);
		return -1;
	}
	return 0;
}

/* The FITS file and the stream of its shape and type (its pixels those of
 * make_stream); then, once, `cp` itself onto the stream's .fits through
 * mount A, which must update it in place. */
int load_setup(struct bench *b)
{
	struct stream s = {.name = LOAD_STREAM, .nx = LOAD_SIDE, .ny = LOAD_SIDE};
	char from[4096], to[4096];
	ino_t ino;
	uint64_t cnt0;
	if (write_fits(b) < 0 || make_stream(b, &s) < 0 ||
	    stream_state(b, LOAD_STREAM, &ino, &cnt0, "load setup") < 0)
		return -1;
	snprintf(from, sizeof from, "%s/%s", b->source, LOAD_FILE);
	snprintf(to, sizeof to, "%s/%s.fits", b->mnt[MOUNT_A].path, LOAD_STREAM);
	if (run_cp(from, to) < 0 || check_loaded(b, LOAD_STREAM, cnt0 + 1, ino, "load setup") < 0)
		return -1;
	return 0;
}

void load_teardown(struct bench *b)
{
	static const char *const names[] = {LOAD_FILE, LOAD_COPY, LOAD_STREAM ".im.shm",
					    LOAD_NEW ".im.shm"};
	char path[4096];
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", b->source, names[i]);
		unlink(path);
	}
}
