/* test_isio.c - ImageStreamIO stream parsing against the layout in
 * ../shared/formats/imagestreamio.md (including its measured 64x48 float
 * example), hostile metadata, keywords, and the frame protocol. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>
#include <semaphore.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "isio.h"

static void put16(unsigned char *m, size_t off, uint16_t v) { memcpy(m + off, &v, 2); }
static void put32(unsigned char *m, size_t off, uint32_t v) { memcpy(m + off, &v, 4); }
static void put64(unsigned char *m, size_t off, uint64_t v) { memcpy(m + off, &v, 8); }

/* Metadata of a CPU stream, as ImageStreamIO's create leaves it. */
static void make_meta(unsigned char *m, int type, size_t esize, uint32_t x, uint32_t y, uint32_t z,
		      int naxis, uint16_t nbkw, uint16_t nsem)
{
	memset(m, 0, ISIO_META_SIZE);
	memcpy(m, "2.00", 4);
	strcpy((char *)m + 32, "imcam");
	m[112] = (unsigned char)naxis;
	put32(m, 116, x);
	put32(m, 120, y);
	put32(m, 124, z);
	uint64_t n = (uint64_t)x * (naxis > 1 ? y : 1) * (naxis > 2 ? z : 1);
	put64(m, 128, n);
	m[136] = (unsigned char)type;
	put64(m, 144, 2);
	m[240] = 0xff; /* location -1 */
	put16(m, 258, nsem);
	put16(m, 260, 10);
	put16(m, 290, nbkw);
	put64(m, 312, n * esize);
}

Test(isio, measured_example_size)
{
	unsigned char m[ISIO_META_SIZE];
	struct isio_stream s;
	char why[160];
	make_meta(m, ELEM_F32, 4, 64, 48, 0, 2, 4, 10);
	cr_assert_eq(isio_parse(m, sizeof m, 14336, &s, why, sizeof why), 0, "%s", why);
	cr_assert_eq(s.off_data, 384);
	cr_assert_eq(s.off_keywords, 12672);
	cr_assert_eq(s.off_sems, 13184);
	cr_assert_eq(s.nelement, 64 * 48);
	cr_assert_str_eq(s.name, "imcam");
	cr_assert_eq(isio_parse(m, sizeof m, 14336 + 8, &s, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "14344") != NULL, "%s", why);
}

Test(isio, refusals)
{
	unsigned char m[ISIO_META_SIZE];
	struct isio_stream s;
	char why[160];
	make_meta(m, ELEM_F32, 4, 64, 48, 0, 2, 4, 10);
	memcpy(m, "1.05", 4);
	cr_assert_eq(isio_parse(m, sizeof m, 14336, &s, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "1.05"), "%s", why);
	make_meta(m, ELEM_F32, 4, 64, 48, 0, 2, 4, 10);
	m[240] = 0; /* GPU 0 */
	cr_assert_eq(isio_parse(m, sizeof m, 14336, &s, why, sizeof why), -EINVAL);
	cr_assert(strstr(why, "GPU"), "%s", why);
	make_meta(m, 14, 4, 64, 48, 0, 2, 4, 10);
	cr_assert_eq(isio_parse(m, sizeof m, 14336, &s, why, sizeof why), -EINVAL);
	make_meta(m, ELEM_F32, 4, 64, 48, 0, 4, 4, 10);
	cr_assert_eq(isio_parse(m, sizeof m, 14336, &s, why, sizeof why), -EINVAL);
	make_meta(m, ELEM_F32, 4, 0xffffffff, 0xffffffff, 0xffffffff, 3, 0xffff, 0xffff);
	put64(m, 128, (uint64_t)0xffffffff * 0xffffffff);
	cr_assert_eq(isio_parse(m, sizeof m, 14336, &s, why, sizeof why), -EINVAL);
	cr_assert_eq(isio_parse(m, 100, 14336, &s, why, sizeof why), -EINVAL);
}

Test(isio, every_type_and_axis_count)
{
	for (int t = ELEM_U8; t < ELEM_COUNT; t++)
		for (int naxis = 1; naxis <= 3; naxis++) {
			unsigned char m[ISIO_META_SIZE];
			struct isio_stream s;
			char why[160];
			size_t es = elem_size((enum elem_type)t);
			make_meta(m, t, es, 5, 3, 2, naxis, 0, 10);
			/* size: 384 + R8(data) + 0 + R8(320) + 32 + 4*R8(40) + 640 */
			uint64_t n = 5 * (naxis > 1 ? 3 : 1) * (naxis > 2 ? 2 : 1);
			uint64_t size = 384 + ((n * es + 7) & ~7ull) + 320 + 32 + 160 + 640;
			cr_assert_eq(isio_parse(m, sizeof m, size, &s, why, sizeof why), 0,
				     "type %d naxis %d: %s", t, naxis, why);
			cr_assert_eq(s.datasize, n * es);
		}
}

Test(isio, keywords)
{
	unsigned char slot[ISIO_KW_SIZE] = {0};
	struct isio_keyword kw;
	cr_assert_eq(isio_keyword(slot, &kw), -ENOENT);
	memcpy(slot, "EXPTIME", 7);
	slot[16] = 'D';
	double d = 0.25;
	memcpy(slot + 24, &d, 8);
	strcpy((char *)slot + 48, "exposure");
	cr_assert_eq(isio_keyword(slot, &kw), 0);
	cr_assert_eq(kw.type, 'D');
	cr_assert_float_eq(kw.d, 0.25, 1e-12);
	cr_assert_str_eq(kw.comment, "exposure");
	memset(slot, 'A', sizeof slot); /* no terminators anywhere */
	slot[16] = 'S';
	cr_assert_eq(isio_keyword(slot, &kw), 0);
	cr_assert_eq(strlen(kw.name), 16);
	cr_assert_eq(strlen(kw.s), 16);
	cr_assert_eq(strlen(kw.comment), 80);
}

static void copy_out(const void *src, void *arg) { memcpy(arg, src, 16); }

/* A 4-pixel uint32 stream with 2 semaphores in a page of memory (free()). */
static unsigned char *small_stream(struct isio_stream *s, uint64_t *size)
{
	unsigned char m[ISIO_META_SIZE];
	char why[160];
	make_meta(m, ELEM_U32, 4, 4, 1, 0, 1, 0, 2);
	*size = 384 + 16 + 64 + 32 + 4 * 8 + 640;
	unsigned char *file = aligned_alloc(4096, 4096);
	cr_assert_not_null(file);
	memset(file, 0, 4096);
	memcpy(file, m, sizeof m);
	cr_assert_eq(isio_parse(file, 4096, *size, s, why, sizeof why), 0, "%s", why);
	return file;
}

/* The pid of a process that has exited and been reaped. */
static int32_t dead_pid(void)
{
	pid_t p = fork();
	cr_assert_geq(p, 0);
	if (p == 0)
		_exit(0);
	waitpid(p, NULL, 0);
	return (int32_t)p;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

Test(isio, frame_protocol)
{
	struct isio_stream s;
	uint64_t size;
	unsigned char *file = small_stream(&s, &size);
	sem_t *sems = (sem_t *)(void *)(file + s.off_sems);
	sem_init(&sems[0], 1, 0);
	sem_init(&sems[1], 1, 12);
	uint32_t px[4] = {1, 2, 3, 4};
	memcpy(file + 384, px, 16);
	unsigned char got[16], meta[ISIO_META_SIZE];
	enum isio_frame_quality q;
	cr_assert_eq(isio_take_frame(file, size, &s, 1, copy_out, got, meta, 10, &q), 0);
	cr_assert_eq(q, ISIO_FRAME_WHOLE);
	cr_assert_null(isio_frame_why(q));
	cr_assert_eq(memcmp(got, px, 16), 0);
	cr_assert_eq(isio_frame_begin(file, size, &s), 0);
	cr_assert_eq(isio_frame_end(file, size, &s), 0);
	uint64_t cnt0;
	memcpy(&cnt0, file + ISIO_OFF_CNT0, 8);
	cr_assert_eq(cnt0, 1);
	cr_assert_eq(file[ISIO_OFF_WRITE], 0);
	int v0, v1;
	sem_getvalue(&sems[0], &v0);
	sem_getvalue(&sems[1], &v1);
	cr_assert_eq(v0, 1, "a semaphore below 10 is posted");
	cr_assert_eq(v1, 12, "one at 10 or more is left alone");
	cr_assert_eq(isio_frame_end(file, size - 1, &s), -EFAULT);
	cr_assert_eq(isio_take_frame(file, size - 1, &s, 1, copy_out, got, meta, 10, &q), -EFAULT);
	free(file);
}

Test(isio, stuck_write_flag_gives_the_frame_marked)
{
	struct isio_stream s;
	uint64_t size;
	unsigned char *file = small_stream(&s, &size);
	uint32_t px[4] = {5, 6, 7, 8};
	memcpy(file + 384, px, 16);
	file[ISIO_OFF_WRITE] = 1; /* a writer that never finishes ... */
	put32(file, ISIO_OFF_CREATORPID, (uint32_t)getpid()); /* ... and is alive */
	unsigned char got[16], meta[ISIO_META_SIZE];
	enum isio_frame_quality q;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(isio_take_frame(file, size, &s, 1, copy_out, got, meta, 100, &q), 0);
	cr_assert_eq(q, ISIO_FRAME_BUSY);
	cr_assert_geq(ms_since(&t0), 100, "waited for a gap");
	cr_assert_eq(memcmp(got, px, 16), 0, "the pixels as they stand");
	cr_assert_not_null(isio_frame_why(q));
	/* The writer died mid-frame: creator, owner and posters all gone. */
	int32_t dead = dead_pid();
	put32(file, ISIO_OFF_CREATORPID, (uint32_t)dead);
	put32(file, ISIO_OFF_OWNERPID, 0);
	put32(file, s.off_writepids, (uint32_t)dead);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(isio_take_frame(file, size, &s, 1, copy_out, got, meta, 5000, &q), 0);
	cr_assert_eq(q, ISIO_FRAME_STOPPED);
	cr_assert_lt(ms_since(&t0), 1000, "a dead writer is not waited for");
	cr_assert_eq(memcmp(got, px, 16), 0);
	free(file);
}

struct second_reader {
	unsigned char *file;
	struct isio_stream *s;
	uint64_t size;
	int slot;
};

static void *attach_elsewhere(void *arg)
{
	struct second_reader *sr = arg;
	struct isio_reader r;
	isio_reader_attach(&r, sr->file, sr->size, sr->s, 1);
	sr->slot = r.slot;
	isio_reader_detach(&r);
	return NULL;
}

Test(isio, reader_claims_only_a_free_slot)
{
	struct isio_stream s;
	uint64_t size;
	unsigned char *file = small_stream(&s, &size);
	sem_t *sems = (sem_t *)(void *)(file + s.off_sems);
	sem_init(&sems[0], 1, 3);
	sem_init(&sems[1], 1, 3);
	int32_t *readers = (int32_t *)(void *)(file + s.off_readpids);
	readers[0] = (int32_t)getppid(); /* a live reader: its slot is its own */
	readers[1] = dead_pid();        /* a reader that is gone */
	struct isio_reader r;
	cr_assert_eq(isio_reader_attach(&r, file, size, &s, 1), 0);
	cr_assert_eq(r.slot, 1);
	cr_assert_eq(readers[1], r.tid);
	cr_assert_eq(readers[0], (int32_t)getppid());
	int v;
	sem_getvalue(&sems[1], &v);
	cr_assert_eq(v, 0, "drained");
	sem_getvalue(&sems[0], &v);
	cr_assert_eq(v, 3, "another reader's posts are left alone");
	cr_assert_eq(isio_reader_wait(&r, 20), 0);
	cr_assert_eq(isio_frame_end(file, size, &s), 0); /* a frame: the writer posts */
	cr_assert_eq(isio_reader_wait(&r, 1000), 1);
	/* No free slot left: a reader in another thread polls. */
	struct second_reader sr = {file, &s, size, 0};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, attach_elsewhere, &sr), 0);
	pthread_join(t, NULL);
	cr_assert_eq(sr.slot, -1);
	isio_reader_detach(&r);
	cr_assert_eq(readers[1], 0, "the slot is given back");
	/* A read-only mapping never registers. */
	cr_assert_eq(isio_reader_attach(&r, file, size, &s, 0), 0);
	cr_assert_eq(r.slot, -1);
	free(file);
}

struct later_frame {
	unsigned char *file;
	struct isio_stream *s;
	uint64_t size;
};

static void *post_later(void *arg)
{
	struct later_frame *f = arg;
	struct timespec pause = {0, 50 * 1000000L};
	nanosleep(&pause, NULL);
	isio_frame_begin(f->file, f->size, f->s);
	isio_frame_end(f->file, f->size, f->s);
	return NULL;
}

Test(isio, wait_for_the_next_frame)
{
	struct isio_stream s;
	uint64_t size;
	unsigned char *file = small_stream(&s, &size);
	sem_t *sems = (sem_t *)(void *)(file + s.off_sems);
	sem_init(&sems[0], 1, 10); /* stale posts must not count as a frame */
	sem_init(&sems[1], 1, 0);
	uint64_t now = 99;
	cr_assert_eq(isio_wait_frame(file, size, &s, 1, 0, 30, &now), -ETIMEDOUT);
	cr_assert_eq(now, 99);
	struct later_frame f = {file, &s, size};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, post_later, &f), 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cr_assert_eq(isio_wait_frame(file, size, &s, 1, 0, 5000, &now), 0);
	cr_assert_eq(now, 1);
	cr_assert_geq(ms_since(&t0), 40);
	cr_assert_lt(ms_since(&t0), 2000);
	pthread_join(t, NULL);
	/* A counter already past: at once. */
	cr_assert_eq(isio_wait_frame(file, size, &s, 0, 0, 0, &now), 0);
	free(file);
}

/* A writer in a tight loop, with ImageStreamIO's order: flag up, pixels,
 * counter + 1, flag down. Every pixel of frame N is N; a frame read must
 * show the counter of its own pixels. */
struct tight_writer {
	unsigned char *file;
	int stop;
};

static void *tight_write(void *arg)
{
	struct tight_writer *w = arg;
	uint64_t *cnt0 = (uint64_t *)(void *)(w->file + ISIO_OFF_CNT0);
	uint32_t *px = (uint32_t *)(void *)(w->file + 384);
	while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
		uint64_t n = __atomic_load_n(cnt0, __ATOMIC_RELAXED) + 1;
		__atomic_store_n(w->file + ISIO_OFF_WRITE, 1, __ATOMIC_RELEASE);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		for (int i = 0; i < 4; i++)
			__atomic_store_n(&px[i], (uint32_t)n, __ATOMIC_RELAXED);
		__atomic_store_n(cnt0, n, __ATOMIC_RELEASE);
		__atomic_store_n(w->file + ISIO_OFF_WRITE, 0, __ATOMIC_RELEASE);
		/* 100 kHz: faster than any camera, slow enough for a reader */
		struct timespec t0, t;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		do
			clock_gettime(CLOCK_MONOTONIC, &t);
		while ((t.tv_sec - t0.tv_sec) * 1000000000L + t.tv_nsec - t0.tv_nsec < 10000);
	}
	return NULL;
}

Test(isio, frames_under_a_tight_writer_match_their_counter)
{
	struct isio_stream s;
	uint64_t size;
	unsigned char *file = small_stream(&s, &size);
	struct tight_writer w = {file, 0};
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, tight_write, &w), 0);
	unsigned bad = 0, torn = 0;
	uint64_t first = 0, last = 0;
	for (int i = 0; i < 20000; i++) {
		uint32_t got[4];
		unsigned char meta[ISIO_META_SIZE];
		enum isio_frame_quality q;
		int rc = isio_take_frame(file, size, &s, 1, copy_out, got, meta, 1000, &q);
		cr_assert_eq(rc, 0);
		if (q != ISIO_FRAME_WHOLE) {
			torn++;
			continue;
		}
		uint64_t cnt0;
		memcpy(&cnt0, meta + ISIO_OFF_CNT0, 8);
		if (got[0] != (uint32_t)cnt0 || got[1] != got[0] || got[3] != got[0])
			bad++;
		if (!first)
			first = cnt0;
		last = cnt0;
	}
	__atomic_store_n(&w.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	cr_assert_eq(bad, 0, "%u frames whose pixels are not those of their counter", bad);
	cr_assert_eq(torn, 0, "a writer that leaves gaps gave %u frames that are not whole", torn);
	cr_assert_gt(last, first, "the writer did not run");
	free(file);
}

Test(isio, stream_names)
{
	cr_assert(isio_is_stream_name("imcam.im.shm"));
	cr_assert(!isio_is_stream_name(".im.shm"));
	cr_assert(!isio_is_stream_name("imcam.im.shmx"));
	cr_assert(!isio_is_stream_name("im.shm"));
}
