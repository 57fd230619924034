/* isio_writer.c - a camera-like ImageStreamIO writer, written against
 * ../shared/formats/imagestreamio.md as a milk program would be: it creates
 * stream STREAMFILE (unlinked first, made O_CREAT|O_EXCL, version written
 * last, 10 process-shared semaphores, creatorPID its own), then writes
 * frames as ImageStreamIO_UpdateIm does: write = 1, pixels, write time and
 * acquisition time, cnt0 + 1, write = 0, then every semaphore below 10
 * posted with semWritePID set. Every pixel of frame N holds N (int32 or
 * float), so a torn frame is visible.
 *   isio_writer STREAMFILE NX NY int32|float HZ SECONDS [die]
 * HZ 0 is flat out. Prints "ready" once the stream exists, and at the end
 * the number of frames written. With "die", after SECONDS it starts one more
 * frame (write = 1, half of the pixels) and kills itself with SIGKILL: a
 * writer that died mid-frame. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NSEM 10
#define R8(n) (((n) + 7) / 8 * 8)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void put(unsigned char *m, size_t off, const void *v, size_t len) { memcpy(m + off, v, len); }

int main(int argc, char **argv)
{
	if (argc < 7)
		return fprintf(stderr, "usage: isio_writer STREAMFILE NX NY int32|float HZ SECONDS "
				       "[die]\n"), 2;
	uint32_t nx = (uint32_t)atol(argv[2]), ny = (uint32_t)atol(argv[3]);
	int is_float = strcmp(argv[4], "float") == 0;
	double hz = atof(argv[5]), seconds = atof(argv[6]);
	int die = argc > 7 && strcmp(argv[7], "die") == 0;
	uint64_t n = (uint64_t)nx * ny, datasize = 4 * n;
	uint64_t off_sems = 384 + R8(datasize);
	uint64_t off_readpids = off_sems + R8(32 * NSEM) + 32;
	uint64_t off_writepids = off_readpids + R8(4 * NSEM);
	uint64_t size = off_writepids + 3 * R8(4 * NSEM) + R8(640);

	unlink(argv[1]);
	int fd = open(argv[1], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
		return perror(argv[1]), 1;
	fchmod(fd, 0666);
	unsigned char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (m == MAP_FAILED)
		return perror("mmap"), 1;
	const char *slash = strrchr(argv[1], '/');
	const char *base = slash ? slash + 1 : argv[1];
	snprintf((char *)m + 32, 80, "%.*s", (int)(strlen(base) - 7), base); /* name, no .im.shm */
	m[112] = 2;
	uint32_t dims[3] = {nx, ny, 0};
	put(m, 116, dims, sizeof dims);
	put(m, 128, &n, 8);
	m[136] = is_float ? 9 : 6;
	uint64_t imagetype = 2;
	put(m, 144, &imagetype, 8);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t t[2] = {ts.tv_sec, ts.tv_nsec};
	put(m, 152, t, 16);
	int32_t pid = (int32_t)getpid(), zero = 0;
	put(m, 216, &pid, 4);
	put(m, 220, &zero, 4);
	m[224] = 1;
	struct stat st;
	fstat(fd, &st);
	uint64_t ino = st.st_ino;
	put(m, 232, &ino, 8);
	m[240] = 0xff; /* location -1 */
	uint16_t nsem = NSEM, nproc = 10;
	put(m, 258, &nsem, 2);
	put(m, 260, &nproc, 2);
	put(m, 312, &datasize, 8);
	sem_t *sems = (sem_t *)(void *)(m + off_sems);
	int32_t *readpids = (int32_t *)(void *)(m + off_readpids);
	int32_t *writepids = (int32_t *)(void *)(m + off_writepids);
	for (int i = 0; i < NSEM; i++) {
		sem_init(&sems[i], 1, 0);
		readpids[i] = writepids[i] = -1;
	}
	memcpy(m, "2.00", 5); /* written last, as the library does */
	printf("ready\n");
	fflush(stdout);

	volatile uint8_t *write_flag = m + 288;
	volatile uint64_t *cnt0 = (volatile uint64_t *)(void *)(m + 264);
	unsigned char *pix = m + 384;
	/* The frame is made beforehand, as a camera's arrives by DMA: inside
	 * the write window there is one memcpy. */
	unsigned char *frame = malloc(datasize);
	if (!frame)
		return perror("malloc"), 1;
	double start = now(), next = start;
	uint64_t frames = 0;
	for (;;) {
		int last = now() - start >= seconds;
		if (last && !die)
			break;
		uint64_t c = *cnt0 + 1;
		float f = (float)c;
		int32_t i32 = (int32_t)c;
		for (uint64_t i = 0; i < n; i++)
			memcpy(frame + 4 * i, is_float ? (void *)&f : (void *)&i32, 4);
		*write_flag = 1;
		__sync_synchronize();
		memcpy(pix, frame, last ? datasize / 2 : datasize);
		if (last) { /* killed mid-frame: the flag stays up */
			fflush(stdout);
			raise(SIGKILL);
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		t[0] = ts.tv_sec;
		t[1] = ts.tv_nsec;
		put(m, 200, t, 16); /* writetime */
		put(m, 184, t, 16); /* atime */
		__sync_synchronize();
		*cnt0 = c;
		*write_flag = 0;
		__sync_synchronize();
		for (int i = 0; i < NSEM; i++) {
			int v = 0;
			sem_getvalue(&sems[i], &v);
			if (v < 10) {
				sem_post(&sems[i]);
				writepids[i] = pid;
			}
		}
		frames++;
		if (hz > 0) {
			next += 1.0 / hz;
			double wait = next - now();
			if (wait > 0) {
				struct timespec pause = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
				nanosleep(&pause, NULL);
			}
		}
	}
	printf("%llu\n", (unsigned long long)frames);
	return 0;
}
