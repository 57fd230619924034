// core: cfshm.c
/* fuzz_cfshm.c - CFITSIO's global table, slot segment headers and the FITS
 * header at the front of a file, on arbitrary bytes: the first 2 bytes of
 * the input are the slot count (and the slot number a segment header must
 * carry), the rest the table copy, the segment's front or the FITS stream
 * (as it is, and as cards between a SIMPLE card and END). No segments: the
 * parsers take bytes and a length. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfshm.h"

/* cfshm_image_info on BUF, LEN: any image it finds is within its contract. */
static void image_info(const void *buf, size_t len)
{
	enum elem_type type;
	int naxis;
	uint64_t dims[CFSHM_IMAGE_MAX_AXES];
	int rc = cfshm_image_info(buf, len, &type, &naxis, dims);
	if (rc == -EINVAL)
		return;
	if (rc != 0 || naxis < 1 || naxis > CFSHM_IMAGE_MAX_AXES || type < ELEM_U8 ||
	    type > ELEM_F64)
		abort();
	for (int i = 0; i < naxis; i++)
		if (dims[i] < 1 || dims[i] > 9000000000000000ull)
			abort();
}

/* The whole cards of DATA between a SIMPLE card and END, in a buffer of
 * exactly their length. */
static void image_info_framed(const uint8_t *data, size_t size)
{
	static const char simple[] = "SIMPLE  =                    T";
	size_t body = size - size % 80, len = body + 160;
	char *h = malloc(len);
	if (!h)
		return;
	memset(h, ' ', len);
	memcpy(h, simple, sizeof simple - 1);
	memcpy(h + 80, data, body);
	memcpy(h + 80 + body, "END", 3);
	image_info(h, len);
	free(h);
}

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
	/* every index, in range or not: the raw entry is there exactly when
	 * the entry lies within the bytes, and says what the sane one says */
	struct cfshm_slot one;
	struct cfshm_entry raw;
	for (int i = -1; i <= maxseg && i < 64; i++) {
		int parsed = cfshm_parse_entry(data, size, i, &one);
		int rc = cfshm_raw_entry(data, size, i, &raw);
		if ((rc == 0) != (i >= 0 && (size_t)(i + 1) * 28 <= size) ||
		    (rc < 0 && (rc != -ERANGE || parsed != -ERANGE)) ||
		    (rc == 0 && raw.index != i) ||
		    (parsed == 0 && (raw.key != one.key || raw.handle != one.shmid)))
			abort();
	}
	free(slots);

	image_info(data, size);
	image_info_framed(data, size);
	return 0;
}
