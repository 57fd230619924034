// core: procscan.c
/* fuzz_procmaps.c - proc_maps_parse and proc_map_is_sysv on arbitrary
 * lines: the path part of /proc/PID/maps is chosen by processes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "procscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a copy of exactly SIZE bytes, so reading past the line is caught */
	char *line = malloc(size ? size : 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	struct proc_map m;
	if (proc_maps_parse(line, size, &m) == 0) {
		if (m.path < line || m.path + m.path_len > line + size || m.end < m.start)
			abort();
		proc_map_is_sysv(&m);
	}
	free(line);
	return 0;
}
