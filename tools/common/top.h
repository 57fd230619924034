/* top.h - `shmtool top`: the objects of a listing with their frame rates and
 * processes, busiest stream first, redrawn every interval on a terminal until
 * q is pressed (as top does), or printed as snapshots into a pipe. */
#ifndef SHMTOOLS_TOP_H
#define SHMTOOLS_TOP_H

#include <stddef.h>

struct top_opts {
	const char *dir;        /* the POSIX directory listed (System V always) */
	double interval;        /* seconds between refreshes, the rate window (> 0) */
	long iterations;        /* snapshots to print; 0: until q on a terminal, else 1 */
	int json;               /* JSON lines (the fields of ls --json) */
};

/* Run it. Returns 0 (also after q or a signal), or -1 with one sentence in
 * WHY. */
int top_run(const struct top_opts *o, char *why, size_t whylen);

#endif
