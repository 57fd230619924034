/* activity.h - who uses each object of a listing and how fast each stream
 * runs: the processes that have it mapped or open (core's procscan, matched
 * by device and inode, and System V attachments by shmid) and the frame rate
 * of every stream, measured by watching its counter over a window (core's
 * rate). What `shmtool ls`, `info` and `top` show next to each object. */
#ifndef SHMTOOLS_ACTIVITY_H
#define SHMTOOLS_ACTIVITY_H

#include <stddef.h>

#include "out.h"
#include "procscan.h"
#include "rate.h"
#include "shmobj.h"

/* How often the counters are looked at during a window. */
#define ACTIVITY_LOOK_MS 10

struct activity {
	double rate;                   /* frames per second; -1: none (not a stream) */
	enum rate_clock clock;
	const struct proc_use **procs; /* the processes using the object, by pid */
	size_t nprocs;
};

struct activity_set {
	struct activity *of;           /* one per object, in the listing's order */
	struct proc_uses uses;         /* what procs point into */
	const struct proc_use **refs;
};

/* Called between two looks with the milliseconds to wait; returns 0 to go
 * on, nonzero to end the window now (`top` reading a key). NULL: sleep. */
typedef int (*activity_wait_fn)(void *arg, int ms);

/* Watch the streams among OBJS (N of them) for SECONDS (0: no rates; with
 * no stream and no WAIT, no time either), then find the processes using
 * every object. A stream's CNT0 and write time in
 * OBJS become those of the last look. OUT is filled (the caller frees it
 * with activity_free, also after a failure). Returns 0, 1 when WAIT ended
 * the window early (rates then cover what was watched), or -errno. */
int activity_measure(struct obj *objs, size_t n, double seconds, activity_wait_fn wait,
		     void *arg, struct activity_set *out);

void activity_free(struct activity_set *s);

/* The rate as a table cell ("50.0", "0.25", "-"). */
void activity_rate_text(const struct activity *a, char *buf, size_t len);
/* The processes as a table cell: "PID/COMMAND ..." by pid, "-" for none. */
void activity_procs_text(const struct activity *a, char *buf, size_t len);
/* The fields of A in a record: rate_hz, rate_clock and processes (JSON:
 * an array of {pid, command, mapped, writable, open}; text: one "process"
 * line each). */
void activity_fields(struct rec *r, const struct activity *a);

#endif
