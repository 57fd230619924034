/* progress.h - a progress bar on stderr for work that takes a while: drawn
 * only when stderr is a terminal and only once the work has run for a
 * second (SHMTOOL_PROGRESS_AFTER seconds, if set), so quick commands and
 * scripts never see it. */
#ifndef SHMTOOLS_PROGRESS_H
#define SHMTOOLS_PROGRESS_H

#include <stdint.h>

struct progress {
	const char *label;
	uint64_t total, done;
	double start, last_draw, after;
	int tty;
	int drawn;             /* something is on the line, to be cleared */
};

/* Start counting TOTAL units (bytes) of work called LABEL. */
void progress_begin(struct progress *p, const char *label, uint64_t total);
/* N more units done; redraws at most ten times a second. */
void progress_add(struct progress *p, uint64_t n);
/* A new stage of the same work (LABEL, TOTAL units; 0: of unknown length,
 * shown as the label alone). */
void progress_stage(struct progress *p, const char *label, uint64_t total);
/* Done (or given up): the bar's line is cleared. */
void progress_end(struct progress *p);

#endif
