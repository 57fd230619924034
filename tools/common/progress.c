/* progress.c - the progress bar of the tools; see progress.h. */
#define _GNU_SOURCE
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_AFTER_S 1.0
#define REDRAW_S 0.1

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void progress_begin(struct progress *p, const char *label, uint64_t total)
{
	const char *after = getenv("SHMTOOL_PROGRESS_AFTER");
	p->label = label;
	p->total = total;
	p->done = 0;
	p->start = now_s();
	p->last_draw = 0;
	p->after = after ? strtod(after, NULL) : DEFAULT_AFTER_S;
	p->tty = isatty(STDERR_FILENO);
	p->drawn = 0;
}

static void draw(struct progress *p)
{
	if (!p->total) { /* work of unknown length: the label alone */
		fprintf(stderr, "\r%s ...\033[K", p->label);
		fflush(stderr);
		p->drawn = 1;
		return;
	}
	struct winsize ws;
	int cols = ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col ? ws.ws_col : 80;
	double frac = p->total ? (double)p->done / (double)p->total : 1.0;
	if (frac > 1)
		frac = 1;
	char tail[64];
	snprintf(tail, sizeof tail, " %3d%% %.1f/%.1f MiB", (int)(frac * 100),
		 (double)p->done / 1048576.0, (double)p->total / 1048576.0);
	int bar = cols - (int)strlen(p->label) - (int)strlen(tail) - 5;
	if (bar > 50)
		bar = 50;
	fprintf(stderr, "\r%s [", p->label);
	for (int i = 0; i < bar; i++)
		fputc(i < (int)(frac * bar) ? '#' : ' ', stderr);
	fprintf(stderr, "]%s\033[K", tail);
	fflush(stderr);
	p->drawn = 1;
}

void progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	if (!p->tty)
		return;
	double t = now_s();
	if (t - p->start < p->after || t - p->last_draw < REDRAW_S)
		return;
	p->last_draw = t;
	draw(p);
}

void progress_stage(struct progress *p, const char *label, uint64_t total)
{
	p->label = label;
	p->total = total;
	p->done = 0;
	progress_add(p, 0);
}

void progress_end(struct progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->drawn = 0;
}
