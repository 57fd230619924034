/* rate.h - the frame rate of a stream, measured by watching its frame
 * counter (CNT0) over a window: the frames between the first and the last
 * change seen in the window over the time between their write times (the
 * writer's own clock, exact for slow streams, where counting frames in a
 * one-second window would round to whole frames), or, when the window saw
 * fewer than two changes or the writer keeps no write times, the frames
 * counted over the window's length. */
#ifndef SHMFS_RATE_H
#define SHMFS_RATE_H

#include <stdint.h>
#include <time.h>

/* Which clock a rate was measured with. */
enum rate_clock {
	RATE_UNKNOWN,           /* no rate: not watched, or the counter went back */
	RATE_WRITETIME,         /* the stream's write times */
	RATE_WINDOW,            /* frames counted over the window */
};

struct rate_meter {
	int looks;              /* samples taken */
	int went_back;          /* CNT0 decreased: the stream was reset */
	uint64_t cnt0_start, cnt0_end;
	struct timespec wt_end;               /* the write time at the last look */
	double t_start, t_end;  /* monotonic seconds of the first and last look */
	int changes;            /* looks at which CNT0 had moved */
	uint64_t cnt0_first, cnt0_last;       /* CNT0 at the first and last change */
	struct timespec wt_first, wt_last;    /* and the write times read with them */
};

/* Start (LOOKS 0) or continue watching: CNT0 and WRITETIME read together
 * (one consistent copy of the metadata) at monotonic time NOW seconds. */
void rate_look(struct rate_meter *m, uint64_t cnt0, const struct timespec *writetime, double now);

/* Frames per second over what M saw (>= 0), and which clock in *HOW; -1 and
 * RATE_UNKNOWN after fewer than two looks, a window of no length, or a
 * counter that went back. */
double rate_result(const struct rate_meter *m, enum rate_clock *how);

/* "writetime", "window" or "unknown". */
const char *rate_clock_name(enum rate_clock how);

#endif
