// core: isio.c isioframe.c elem.c guard.c
/* fuzz_isio.c - isio_parse and the keyword reader on arbitrary bytes: the
 * first 8 bytes of the input are the claimed file size, the rest the file.
 * A stream that parses is then walked as the daemon walks it: keywords, and
 * a frame read with bounds taken from the parse. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "isio.h"

static void copy_frame(const void *src, void *arg)
{
	const struct isio_stream *s = arg;
	volatile unsigned char sink = 0;
	const unsigned char *p = src;
	for (uint64_t i = 0; i < s->datasize; i += 4096)
		sink ^= p[i];
	if (s->datasize)
		sink ^= p[s->datasize - 1];
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	uint64_t claimed;
	memcpy(&claimed, data, 8);
	data += 8;
	size -= 8;
	struct isio_stream s;
	char why[160];
	/* the real size, and a lie about it */
	uint64_t sizes[2] = {size, claimed};
	for (int k = 0; k < 2; k++) {
		if (isio_parse(data, size, sizes[k], &s, why, sizeof why) != 0)
			continue;
		if (s.file_size != size)
			continue; /* the daemon maps the file's real size only */
		for (unsigned i = 0; i < s.nbkw; i++) {
			struct isio_keyword kw;
			isio_keyword(data + s.off_keywords + (size_t)i * ISIO_KW_SIZE, &kw);
		}
		unsigned char meta[ISIO_META_SIZE];
		unsigned char *copy = malloc(size);
		memcpy(copy, data, size);
		copy[ISIO_OFF_WRITE] = 0;
		enum isio_frame_quality q;
		/* No waiting: a registered reader on hostile semaphores and PIDs */
		isio_take_frame(copy, size, &s, 1, copy_frame, &s, meta, 0, &q);
		copy[ISIO_OFF_WRITE] = 1;
		isio_take_frame(copy, size, &s, 1, copy_frame, &s, meta, 0, &q);
		uint64_t now;
		isio_wait_frame(copy, size, &s, 1, 0, 0, &now);
		free(copy);
	}
	return 0;
}
