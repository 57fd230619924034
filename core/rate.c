/* rate.c - frame rates from a watched frame counter; see rate.h. */
#include "rate.h"

#include <string.h>

static double seconds(const struct timespec *t)
{
	return (double)t->tv_sec + (double)t->tv_nsec * 1e-9;
}

void rate_look(struct rate_meter *m, uint64_t cnt0, const struct timespec *writetime, double now)
{
	if (m->looks++ == 0) {
		memset(m, 0, sizeof *m);
		m->looks = 1;
		m->cnt0_start = m->cnt0_end = cnt0;
		m->t_start = m->t_end = now;
		m->wt_end = *writetime;
		return;
	}
	if (cnt0 < m->cnt0_end)
		m->went_back = 1;
	if (cnt0 != m->cnt0_end) {
		if (m->changes++ == 0) {
			m->cnt0_first = cnt0;
			m->wt_first = *writetime;
		}
		m->cnt0_last = cnt0;
		m->wt_last = *writetime;
	}
	m->cnt0_end = cnt0;
	m->wt_end = *writetime;
	m->t_end = now;
}

double rate_result(const struct rate_meter *m, enum rate_clock *how)
{
	*how = RATE_UNKNOWN;
	double window = m->t_end - m->t_start;
	if (m->looks < 2 || m->went_back || !(window > 0))
		return -1;
	/* Write times count only when the writer keeps them: set, and moving
	 * forward with the counter. */
	if (m->changes >= 2 && m->cnt0_last > m->cnt0_first && m->wt_first.tv_sec > 0) {
		double span = seconds(&m->wt_last) - seconds(&m->wt_first);
		if (span > 0 && span <= window) {
			*how = RATE_WRITETIME;
			return (double)(m->cnt0_last - m->cnt0_first) / span;
		}
	}
	*how = RATE_WINDOW;
	return (double)(m->cnt0_end - m->cnt0_start) / window;
}

const char *rate_clock_name(enum rate_clock how)
{
	return how == RATE_WRITETIME ? "writetime" : how == RATE_WINDOW ? "window" : "unknown";
}
