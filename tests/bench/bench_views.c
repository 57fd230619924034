/* bench_views.c - the view cases (issues 4 and 11): ImageStreamIO float
 * streams made in SOURCE, read whole as X.fits and as their raw X.im.shm
 * through the same mount, every read checking the pixels, with the frame
 * unchanged between opens or a new one posted before each (its pixels the
 * same, its counter and write time new: a new frame to convert); with the
 * streams' setup. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

static uint64_t r8(uint64_t n) { return (n + 7) / 8 * 8; }

/* Pixel K, whose 4 bytes are at AT (byte P of the file), holds
 * pixel_value(K): 0, or -1 after saying why. */
static int check_pixel(struct bench *b, const struct stream *s, int view, const char *at,
		       uint64_t k, uint64_t p, const char *what)
{
	uint32_t u;
	memcpy(&u, at, 4);
	if (view)
		u = __builtin_bswap32(u);
	float v, want = pixel_value(k);
	memcpy(&v, &u, 4);
	if (memcmp(&v, &want, 4) == 0)
		return 0;
	if (b->data_errors++ < 5)
		fail("%s: pixel %llu at byte %llu of %s.%s is %g, not %g", what, (unsigned long long)k,
		     (unsigned long long)p, s->name, view ? "fits" : "im.shm", (double)v, (double)want);
	return -1;
}

/* Check the pixels of BUF, LEN bytes of the file at OFF: every
 * PIXEL_STRIDE-th pixel and the last. VIEW: FITS (big-endian, after the
 * header), else the raw stream (little-endian, from byte 384). */
static int check_pixels(struct bench *b, const struct stream *s, int view, const char *buf,
			size_t len, uint64_t off, const char *what)
{
	uint64_t data = view ? s->view_header : 384, end = off + len;
	if (end < data + 4)
		return 0;
	/* pixel k, at data + 4k, lies in the block for k in [lo, hi] */
	uint64_t lo = off > data ? (off - data + 3) / 4 : 0, hi = (end - data - 4) / 4;
	if (hi >= s->nelement)
		hi = s->nelement - 1;
	if (lo > hi)
		return 0;
	int bad = 0;
	for (uint64_t k = (lo + PIXEL_STRIDE - 1) / PIXEL_STRIDE * PIXEL_STRIDE; k <= hi;
	     k += PIXEL_STRIDE)
		bad |= check_pixel(b, s, view, buf + (data + 4 * k - off), k, data + 4 * k, what);
	uint64_t last = s->nelement - 1;
	if (last >= lo && last <= hi && last % PIXEL_STRIDE)
		bad |= check_pixel(b, s, view, buf + (data + 4 * last - off), last, data + 4 * last,
				   what);
	return bad;
}

/* open, read in BLOCK reads until end of file, close; check the size and the
 * pixels; add the time of each phase to PH. Returns 0 or -1. */
static int read_whole(struct bench *b, const char *path, const struct stream *s, int view,
		      struct phases *ph, const char *what)
{
	uint64_t want = view ? s->view_size : s->raw_size, done = 0;
	double t0 = now();
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	double t1 = now();
	if (fd < 0) {
		fail("%s: open %s: %s", what, path, strerror(errno));
		return -1;
	}
	int bad = 0;
	for (;;) {
		ssize_t r = read(fd, b->buf, BLOCK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fail("%s: read %s at %llu: %s", what, path, (unsigned long long)done,
			     strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		if (view && done == 0 && (r < 9 || memcmp(b->buf, "SIMPLE  =", 9) != 0)) {
			fail("%s: %s does not begin with \"SIMPLE  =\"", what, path);
			bad = 1;
		}
		bad |= check_pixels(b, s, view, b->buf, (size_t)r, done, what);
		done += (uint64_t)r;
	}
	double t2 = now();
	close(fd);
	double t3 = now();
	if (done != want) {
		fail("%s: read %llu bytes of %s, expected %llu", what, (unsigned long long)done, path,
		     (unsigned long long)want);
		return -1;
	}
	ph->open += t1 - t0, ph->read += t2 - t1, ph->close += t3 - t2, ph->count++;
	return bad ? -1 : 0;
}

/* The view side reads MOUNT/NAME.fits; the "direct" side the raw stream
 * MOUNT/NAME.im.shm through the same mount. PARAM: the stream; COUNT
 * open-read-close cycles. Returns seconds or -1. */
static double stream_cycles(struct bench *b, const struct bench_case *c, enum side side,
			    int stream, long count)
{
	const struct stream *s = &b->stream[stream];
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.%s", b->mnt[c->mount].path, s->name,
		 side == MOUNT ? "fits" : "im.shm");
	struct phases *ph = new_phases(b, side);
	double t0 = now();
	for (long i = 0; i < count; i++)
		if (read_whole(b, path, s, side == MOUNT, ph, c->name) < 0)
			return -1;
	return now() - t0;
}

/* A new frame of stream S, as a writer posts one (write flag, write time,
 * CNT0 + 1, flag down) with the same pixels, written in SOURCE. */
static int new_frame(struct bench *b, const struct stream *s)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s.im.shm", b->source, s->name);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint64_t cnt0;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t[2] = {ts.tv_sec, ts.tv_nsec};
	int ok = fd >= 0 && pwrite(fd, "\1", 1, 288) == 1 && pread(fd, &cnt0, 8, 264) == 8;
	cnt0++;
	ok = ok && pwrite(fd, t, 16, 200) == 16 && pwrite(fd, &cnt0, 8, 264) == 8 &&
	     pwrite(fd, "\0", 1, 288) == 1;
	if (!ok)
		fail("a new frame of %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	return ok ? 0 : -1;
}

/* One read of the whole view of the 4096 x 4096 float stream, against one
 * of its raw file, both through the mount; PARAM 1: a new frame posted
 * before each (not timed). */
double fits_view_read(struct bench *b, const struct bench_case *c, enum side side)
{
	if (c->param && new_frame(b, &b->stream[STREAM_BIG]) < 0)
		return -1;
	return stream_cycles(b, c, side, STREAM_BIG, 1);
}

/* PARAM open-read-close cycles of the 4 KiB-frame stream's view, against the
 * same on its raw file. */
double frame_view_loop(struct bench *b, const struct bench_case *c, enum side side)
{
	return stream_cycles(b, c, side, STREAM_SMALL, c->param);
}

void fits_view_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	const struct stream *s = &b->stream[STREAM_BIG];
	struct phases v = median_phases(b, MOUNT), d = median_phases(b, DIRECT);
	note_add(r, "; %sdirect = the raw %s.im.shm through the same mount; ratio = raw time / "
		    "view time; rates count the %llu MiB of pixels "
		    "(view %llu B with a %llu B header, raw %llu B); view: open %.1f + reads "
		    "%.1f + close %.1f ms; raw: open %.2f + reads %.1f + close %.2f ms",
		 c->param ? "a new frame (CNT0 + 1, same pixels) posted before each open, not "
			    "timed, on both sides; " : "",
		 s->name, (unsigned long long)(s->nelement * 4 >> 20),
		 (unsigned long long)s->view_size, (unsigned long long)s->view_header,
		 (unsigned long long)s->raw_size, v.open * 1e3, v.read * 1e3, v.close * 1e3,
		 d.open * 1e3, d.read * 1e3, d.close * 1e3);
}

void frame_view_note(struct bench *b, const struct bench_case *c, struct row *r)
{
	const struct stream *s = &b->stream[STREAM_SMALL];
	struct phases v = median_phases(b, MOUNT), d = median_phases(b, DIRECT);
	note_add(r, "; %ld cycles of open, read to EOF, close; direct = the raw %s.im.shm (%llu B) "
		    "through the same mount, view %llu B; per cycle: view open %.1f + reads %.1f + "
		    "close %.1f us, raw open %.1f + reads %.1f + close %.1f us",
		 c->param, s->name, (unsigned long long)s->raw_size,
		 (unsigned long long)s->view_size, v.open * 1e6, v.read * 1e6, v.close * 1e6,
		 d.open * 1e6, d.read * 1e6, d.close * 1e6);
}

/* Make the stream S in SOURCE: an ImageStreamIO "2.00" float stream of
 * nx x ny pixels, laid out as ../shared/formats/imagestreamio.md says (and
 * tests/mount/isio.py writes it): 384 bytes of metadata, the pixels, 4
 * keyword slots, 10 semaphores (sem_init'ed, process-shared), semlog, the
 * PID and control arrays and the process trace, each region rounded up to 8
 * bytes; the version string written last. Pixel k holds pixel_value(k). */
int make_stream(struct bench *b, struct stream *s)
{
	const unsigned nbkw = 4, nsem = 10, nbproctrace = 10;
	s->nelement = (uint64_t)s->nx * s->ny;
	uint64_t datasize = 4 * s->nelement;
	uint64_t kw = 384 + r8(datasize), sems = kw + r8(128 * nbkw);
	uint64_t semlog = sems + r8(32 * nsem), pids = semlog + 32;
	uint64_t proctrace = pids + 4 * r8(4 * nsem);
	s->raw_size = proctrace + r8(64 * nbproctrace);

	char path[4096];
	snprintf(path, sizeof path, "%s/%s.im.shm", b->source, s->name);
	unlink(path);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0 || fchmod(fd, 0666) < 0 || ftruncate(fd, (off_t)s->raw_size) < 0) {
		fail("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	unsigned char *m = mmap(NULL, s->raw_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED) {
		fail("mmap %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t[2] = {ts.tv_sec, ts.tv_nsec};
	uint32_t size[3] = {s->nx, s->ny, 0};
	uint64_t imagetype = 2, cnt0 = 1;
	int32_t pid = (int32_t)getpid();
	uint16_t sem16 = (uint16_t)nsem, proc16 = (uint16_t)nbproctrace, kw16 = (uint16_t)nbkw;
	snprintf((char *)m + 32, 80, "%s", s->name); /* name */
	m[112] = 2;                                  /* naxis */
	memcpy(m + 116, size, sizeof size);
	memcpy(m + 128, &s->nelement, 8);
	m[136] = 9; /* datatype: float */
	memcpy(m + 144, &imagetype, 8);
	memcpy(m + 152, t, 16); /* creationtime */
	memcpy(m + 184, t, 16); /* atime */
	memcpy(m + 200, t, 16); /* writetime */
	memcpy(m + 216, &pid, 4); /* creatorPID */
	memcpy(m + 220, &pid, 4); /* ownerPID */
	m[224] = 1;                /* shared */
	m[240] = (unsigned char)(int8_t)-1; /* location: CPU */
	memcpy(m + 258, &sem16, 2);
	memcpy(m + 260, &proc16, 2);
	memcpy(m + 264, &cnt0, 8);
	memcpy(m + 290, &kw16, 2);
	memcpy(m + 312, &datasize, 8); /* imdatamemsize */
	for (uint64_t k = 0; k < s->nelement; k++) {
		float v = pixel_value(k);
		memcpy(m + 384 + 4 * k, &v, 4);
	}
	/* keywords: name[16], type at 16, value at 24, cnt at 40, comment at 48 */
	unsigned char *slot = m + kw;
	double exptime = 0.001;
	int64_t gain = 2;
	snprintf((char *)slot, 16, "EXPTIME");
	slot[16] = 'D';
	memcpy(slot + 24, &exptime, 8);
	snprintf((char *)slot + 48, 80, "exposure time (s)");
	slot += 128;
	snprintf((char *)slot, 16, "GAIN");
	slot[16] = 'L';
	memcpy(slot + 24, &gain, 8);
	snprintf((char *)slot + 48, 80, "camera gain");
	slot += 128;
	snprintf((char *)slot, 16, "MODE");
	slot[16] = 'S';
	snprintf((char *)slot + 24, 16, "bench");
	slot += 128;
	slot[16] = 'N'; /* unused */
	for (unsigned i = 0; i < nsem; i++)
		if (sem_init((sem_t *)(void *)(m + sems + 32 * i), 1, 0) < 0) {
			fail("sem_init in %s: %s", path, strerror(errno));
			munmap(m, s->raw_size);
			close(fd);
			return -1;
		}
	struct stat st;
	fstat(fd, &st);
	uint64_t ino = st.st_ino;
	memcpy(m + 232, &ino, 8);
	memcpy(m, "2.00", 5); /* version, written last (the rest of its 32 bytes are 0) */
	munmap(m, s->raw_size);
	close(fd);
	return 0;
}

/* Check S's view through MOUNT: begins with "SIMPLE  =", BITPIX = -32, a
 * header of whole 2880-byte blocks, a size that is a multiple of 2880 and
 * holds the pixels; and the raw file's size. Sets view_size and view_header
 * (the same through every mount). */
static int check_view(struct bench *b, struct stream *s, const char *mount)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s.im.shm", mount, s->name);
	if (stat(path, &st) < 0 || (uint64_t)st.st_size != s->raw_size) {
		fail("%s: %s (size %lld, expected %llu)", path, strerror(errno),
		     (long long)st.st_size, (unsigned long long)s->raw_size);
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s.fits", mount, s->name);
	int fd = -1;
	for (int i = 0; i < 30 && (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 && errno == ENOENT; i++)
		usleep(100000); /* a name cached as missing expires within the timeout */
	if (fd < 0) {
		fail("%s: %s (no view of the stream)", path, strerror(errno));
		return -1;
	}
	ssize_t n = fstat(fd, &st) < 0 ? -1 : read(fd, b->buf, BLOCK);
	close(fd);
	if (n < FITS_BLOCK || memcmp(b->buf, "SIMPLE  =", 9) != 0) {
		fail("%s: does not begin with \"SIMPLE  =\" (read %zd bytes)", path, n);
		return -1;
	}
	uint64_t header = 0;
	int bitpix = 0;
	for (ssize_t at = 0; at + 80 <= n; at += 80) {
		const char *card = b->buf + at;
		if (!strncmp(card, "BITPIX  =", 9))
			bitpix = atoi(card + 10);
		if (!strncmp(card, "END", 3) && strspn(card + 3, " ") >= 77) {
			header = r2880((uint64_t)at + 80);
			break;
		}
	}
	uint64_t size = (uint64_t)st.st_size;
	if (!header || bitpix != -32 || size % FITS_BLOCK ||
	    size != header + r2880(4 * s->nelement)) {
		fail("%s: header %llu bytes, BITPIX %d, size %llu: not the FITS file of a %ux%u "
		     "float image", path, (unsigned long long)header, bitpix, (unsigned long long)size,
		     s->nx, s->ny);
		return -1;
	}
	if (s->view_size && (s->view_size != size || s->view_header != header)) {
		fail("%s: size %llu, header %llu differ between the mounts", path,
		     (unsigned long long)size, (unsigned long long)header);
		return -1;
	}
	s->view_size = size, s->view_header = header;
	return check_pixels(b, s, 1, b->buf, (size_t)n, 0, "view check");
}

/* The streams of the view cases, and their views through each mount. */
int views_setup(struct bench *b)
{
	for (int i = 0; i < NSTREAMS; i++) {
		if (make_stream(b, &b->stream[i]) < 0)
			return -1;
		for (int m = 0; m < NMOUNTS; m++)
			if (b->mnt[m].path && check_view(b, &b->stream[i], b->mnt[m].path) < 0)
				return -1;
	}
	return 0;
}

void views_teardown(struct bench *b)
{
	char path[4096];
	for (int i = 0; i < NSTREAMS; i++) {
		snprintf(path, sizeof path, "%s/%s.im.shm", b->source, b->stream[i].name);
		unlink(path);
	}
}
