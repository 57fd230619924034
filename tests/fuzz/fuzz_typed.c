// core: typed.c elem.c
/* fuzz_typed.c - typed_parse on arbitrary type, shape and offset texts. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "typed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[3][128];
	size_t part = size / 3;
	if (part >= sizeof buf[0])
		part = sizeof buf[0] - 1;
	for (int i = 0; i < 3; i++) {
		memcpy(buf[i], data + (size_t)i * (size / 3), part);
		buf[i][part] = '\0';
	}
	struct typed_layout l;
	char why[160], shape[256];
	uint64_t object = size ? (uint64_t)data[0] << (data[0] & 63) : 0;
	if (typed_parse(buf[0], buf[1], size & 1 ? buf[2] : NULL, object, &l, why, sizeof why) == 0)
		typed_shape_text(&l, shape, sizeof shape);
	return 0;
}
