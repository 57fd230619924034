// core: imod.c elem.c
/* fuzz_imod.c - the IMOD parsers on arbitrary bytes: the first 16 bytes of
 * the input are the capacity and the object size claimed, the rest the
 * object's front. What imod_parse accepts is turned into the MRC view header
 * and back, and its data range is touched as the daemon would; the MRC
 * direction (imod_from_mrc) gets the bytes as a loaded file's header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imod.h"

static int same(const struct imod_image *a, const struct imod_image *b)
{
	return a->nx == b->nx && a->ny == b->ny && a->nz == b->nz && a->mode == b->mode &&
	       a->type == b->type && a->data_bytes == b->data_bytes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 16)
		return 0;
	uint64_t capacity, object_size;
	memcpy(&capacity, data, 8);
	memcpy(&object_size, data + 8, 8);
	data += 16;
	size -= 16;

	char name[80];
	size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
	memcpy(name, data, n);
	name[n] = '\0';
	uint64_t cap = imod_name_capacity(name);
	if (cap && (cap % 1024 != 0 || cap <= 2048))
		abort();

	struct imod_image img, again;
	char why[256];
	unsigned char mrc[MRC_HEADER_SIZE], back[IMOD_HEADER_AREA];
	/* the claimed sizes, and the truth (the buffer is the whole object) */
	uint64_t claims[2][2] = { { capacity, object_size }, { UINT64_MAX, size } };
	for (int k = 0; k < 2; k++) {
		if (imod_parse(data, size, claims[k][0], claims[k][1], &img, why, sizeof why) != 0)
			continue;
		if (img.nx <= 0 || img.ny <= 0 || img.nz <= 0 ||
		    img.data_bytes > claims[k][1] - IMOD_HEADER_AREA)
			abort();
		imod_mrc_header(data, &img, mrc);
		if (imod_from_mrc(mrc, &again, back, why, sizeof why) != 0 ||
		    !same(&img, &again))
			abort();
		if (k == 1 && img.data_bytes) {
			volatile uint8_t sink = data[IMOD_HEADER_AREA] ^
						data[IMOD_HEADER_AREA + img.data_bytes - 1];
			(void)sink;
		}
	}

	if (size >= MRC_HEADER_SIZE) {
		/* exactly one header on the heap, so an overread is seen */
		unsigned char *file = malloc(MRC_HEADER_SIZE);
		memcpy(file, data, MRC_HEADER_SIZE);
		if (imod_from_mrc(file, &img, back, why, sizeof why) == 0) {
			if (imod_mrc_data_offset(file) < MRC_HEADER_SIZE)
				abort();
			if (imod_parse(back, sizeof back, UINT64_MAX, UINT64_MAX, &again, why,
				       sizeof why) != 0 ||
			    !same(&img, &again))
				abort();
		}
		free(file);
	}
	return 0;
}
