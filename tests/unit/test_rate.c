/* test_rate.c - frame rates from looks at a stream's counter and write
 * times: steady streams fast and slow, a writer without write times, a stream
 * that wakes up after a long pause, and a counter that goes back. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "rate.h"

static double distance_from_0(double x)
{
	return x < 0 ? -x : x;
}

static struct timespec at(double t)
{
	struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
	return ts;
}

/* Look at a stream written at HZ from time FIRST_FRAME (frame N at
 * FIRST_FRAME + N / HZ, write times kept if WT), every STEP seconds from
 * START for WINDOW seconds. */
static double watch(double hz, double first_frame, int wt, double start, double window,
		    double step, enum rate_clock *how)
{
	struct rate_meter m = {0};
	const double epoch = 1.7e9;
	for (int k = 0; k * step <= window + 1e-9; k++) {
		double t = start + k * step;
		double frames = t < first_frame ? 0 : (double)(uint64_t)((t - first_frame) * hz) + 1;
		double last = first_frame + (frames - 1) / hz;
		struct timespec w = wt && frames > 0 ? at(epoch + last) : at(0);
		rate_look(&m, 100 + (uint64_t)frames, &w, t);
	}
	return rate_result(&m, how);
}

Test(rate, steady_streams)
{
	enum rate_clock how;
	double r = watch(1000, 0.0005, 1, 10, 1, 0.01, &how);
	cr_assert_float_eq(r, 1000, 1e-3, "%f", r);
	cr_assert_eq(how, RATE_WRITETIME);
	/* 2.5 Hz: a one-second window holds 2 or 3 frames; the write times
	 * give the rate itself */
	r = watch(2.5, 0.1, 1, 10, 1, 0.01, &how);
	cr_assert_float_eq(r, 2.5, 1e-5, "%f", r);
	cr_assert_eq(how, RATE_WRITETIME);
	r = watch(2.5, 0.1, 0, 10, 1, 0.01, &how);
	cr_assert_eq(how, RATE_WINDOW);
	cr_assert(distance_from_0(r - 2) < 1e-6 || distance_from_0(r - 3) < 1e-6, "%f", r);
}

Test(rate, idle_streams)
{
	enum rate_clock how;
	/* no frame in the window: 0 */
	cr_assert_float_eq(watch(0.1, 0.05, 1, 10.5, 1, 0.01, &how), 0, 1e-9);
	cr_assert_eq(how, RATE_WINDOW);
	/* one frame: one per window */
	cr_assert_float_eq(watch(0.5, 0.05, 1, 11.5, 1, 0.01, &how), 1, 1e-6);
	cr_assert_eq(how, RATE_WINDOW);
	/* asleep for an hour, then 100 Hz in the second half of the window:
	 * the hour does not count */
	double r = watch(100, 10.5, 1, 10, 1, 0.01, &how);
	cr_assert_float_eq(r, 100, 1e-4, "%f", r);
	cr_assert_eq(how, RATE_WRITETIME);
}

Test(rate, write_times_that_do_not_fit)
{
	struct rate_meter m = {0};
	enum rate_clock how;
	struct timespec w = at(1e9);
	rate_look(&m, 1, &w, 0);
	for (int i = 1; i <= 10; i++) {
		w = at(1e9 + 60.0 * i);     /* a minute apart, in a 1 s window */
		rate_look(&m, 1 + (uint64_t)i, &w, 0.1 * i);
	}
	cr_assert_float_eq(rate_result(&m, &how), 10, 1e-9);
	cr_assert_eq(how, RATE_WINDOW);
}

Test(rate, unknown)
{
	struct rate_meter m = {0};
	enum rate_clock how;
	struct timespec w = at(0);
	cr_assert_eq(rate_result(&m, &how), -1);
	rate_look(&m, 5, &w, 1);
	cr_assert_eq(rate_result(&m, &how), -1);      /* one look */
	cr_assert_eq(how, RATE_UNKNOWN);
	rate_look(&m, 5, &w, 1);
	cr_assert_eq(rate_result(&m, &how), -1);      /* no time between */
	rate_look(&m, 3, &w, 2);
	rate_look(&m, 9, &w, 3);
	cr_assert_eq(rate_result(&m, &how), -1);      /* went back: a new stream */
	cr_assert_str_eq(rate_clock_name(RATE_WRITETIME), "writetime");
	cr_assert_str_eq(rate_clock_name(RATE_WINDOW), "window");
	cr_assert_str_eq(rate_clock_name(RATE_UNKNOWN), "unknown");
}
