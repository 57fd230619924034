/* isio_wait.c - an unmodified-style ImageStreamIO reader, as a milk program
 * would be written against ../shared/formats/imagestreamio.md: open the
 * stream file, map it MAP_SHARED, and wait for CNT0 to change; for each new
 * frame take a consistent copy (write == 0 and CNT0 unchanged around the
 * copy) and print "CNT0 FIRST_PIXEL_AS_FLOAT". Used through the mount to
 * show that a mapping made there shares memory with a writer on SOURCE.
 *   isio_wait STREAMFILE NFRAMES TIMEOUT_SECONDS
 * Prints "ready CNT0" once mapped. Exit 0 after NFRAMES frames, 1 on error
 * or timeout. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define OFF_CNT0 264
#define OFF_WRITE 288
#define OFF_DATA 384

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 4)
		return fprintf(stderr, "usage: isio_wait STREAMFILE NFRAMES TIMEOUT\n"), 2;
	int fd = open(argv[1], O_RDWR);
	if (fd < 0)
		return fprintf(stderr, "open %s: %s\n", argv[1], strerror(errno)), 1;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size < OFF_DATA + 4)
		return fprintf(stderr, "not a stream\n"), 1;
	volatile uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
				   fd, 0);
	if (m == MAP_FAILED)
		return fprintf(stderr, "mmap: %s\n", strerror(errno)), 1;
	if (memcmp((const void *)m, "2.00", 5) != 0)
		return fprintf(stderr, "version is not 2.00\n"), 1;
	uint64_t last = *(volatile uint64_t *)(m + OFF_CNT0);
	printf("ready %llu\n", (unsigned long long)last);
	fflush(stdout);
	long want = atol(argv[2]);
	double deadline = now() + atof(argv[3]);
	for (long seen = 0; seen < want;) {
		if (now() > deadline)
			return fprintf(stderr, "timeout after %ld frames\n", seen), 1;
		uint64_t c0 = *(volatile uint64_t *)(m + OFF_CNT0);
		if (c0 == last || m[OFF_WRITE]) {
			struct timespec ts = {0, 100000};
			nanosleep(&ts, NULL);
			continue;
		}
		__sync_synchronize();
		float pixel;
		memcpy(&pixel, (const void *)(m + OFF_DATA), sizeof pixel);
		__sync_synchronize();
		if (m[OFF_WRITE] || *(volatile uint64_t *)(m + OFF_CNT0) != c0)
			continue; /* torn: take it again */
		last = c0;
		seen++;
		printf("%llu %g\n", (unsigned long long)c0, pixel);
		fflush(stdout);
	}
	return 0;
}
