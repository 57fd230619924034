// core: cfshm.c
/* fuzz_cfshm.c - CFITSIO's global table and slot segment headers on
 * arbitrary bytes: the first 2 bytes of the input are the slot count (and
 * the slot number a segment header must carry), the rest the table copy or
 * the segment's front. No segments: the parsers take bytes and a length. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfshm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int maxseg = data[0] | (data[1] & 0x7f) << 8; /* 0 .. 32767 */
	data += 2;
	size -= 2;

	cfshm_check_segment(data, size, maxseg);
	cfshm_check_segment(data, size, maxseg - 1);

	int max = maxseg ? maxseg : 1; /* all it may fill, but no more than the bytes hold */
	if ((size_t)max > size / 28 + 1)
		max = (int)(size / 28 + 1);
	struct cfshm_slot *slots = malloc((size_t)max * sizeof *slots);
	int n = cfshm_parse_table(data, size, maxseg, slots, max);
	if (n < 0 || n > max)
		abort();
	for (int i = 0; i < n; i++) {
		if (slots[i].index < 0 || slots[i].index >= maxseg ||
		    (size_t)(slots[i].index + 1) * 28 > size || slots[i].key == -1 ||
		    slots[i].key == 0 || slots[i].shmid < 0 ||
		    slots[i].fits_size > (uint64_t)INT32_MAX - 16 ||
		    (i > 0 && slots[i].index <= slots[i - 1].index))
			abort();
		struct cfshm_slot one;
		if (cfshm_parse_entry(data, size, slots[i].index, &one) != 0 ||
		    one.key != slots[i].key || one.shmid != slots[i].shmid ||
		    one.fits_size != slots[i].fits_size)
			abort();
	}
	/* every index, in range or not */
	struct cfshm_slot one;
	for (int i = -1; i <= maxseg && i < 64; i++)
		cfshm_parse_entry(data, size, i, &one);
	free(slots);
	return 0;
}
