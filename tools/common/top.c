/* top.c - `shmtool top`; see top.h. On a terminal the screen is the
 * terminal's alternate screen, stdin is read a key at a time without echo,
 * and both are put back on every way out (q, SIGINT, SIGTERM, SIGHUP). */
#define _GNU_SOURCE
#include "top.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "activity.h"
#include "describe.h"
#include "out.h"
#include "shmobj.h"

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

struct screen {
	int interactive;        /* drawing on a terminal */
	int keys;               /* stdin is a terminal we read keys from */
	struct termios saved;
	struct sigaction old[3];
	int quit;
};

static const int stop_signals[3] = {SIGINT, SIGTERM, SIGHUP};

static void screen_open(struct screen *s)
{
	struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < 3; i++)
		sigaction(stop_signals[i], &sa, &s->old[i]);
	s->keys = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &s->saved) == 0;
	if (s->keys) {
		struct termios raw = s->saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		tcsetattr(STDIN_FILENO, TCSANOW, &raw);
	}
	fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, no cursor */
	fflush(stdout);
}

static void screen_close(struct screen *s)
{
	fputs("\033[?25h\033[?1049l", stdout);
	fflush(stdout);
	if (s->keys)
		tcsetattr(STDIN_FILENO, TCSANOW, &s->saved);
	for (int i = 0; i < 3; i++)
		sigaction(stop_signals[i], &s->old[i], NULL);
}

/* Wait MS milliseconds for q (activity_wait_fn). */
static int wait_key(void *arg, int ms)
{
	struct screen *s = arg;
	struct pollfd p = {.fd = s->keys ? STDIN_FILENO : -1, .events = POLLIN};
	if (!stop_signal && poll(&p, 1, ms) > 0 && (p.revents & POLLIN)) {
		char keys[32];
		ssize_t n = read(STDIN_FILENO, keys, sizeof keys);
		for (ssize_t i = 0; i < n; i++)
			if (keys[i] == 'q' || keys[i] == 'Q')
				s->quit = 1;
	}
	if (stop_signal)
		s->quit = 1;
	return s->quit;
}

struct sort_item {
	const struct obj *o;
	const struct activity *a;
};

/* Busiest stream first; objects without a rate after every stream; then by
 * name. */
static int busiest_first(const void *x, const void *y)
{
	const struct sort_item *a = x, *b = y;
	if (a->a->rate != b->a->rate)
		return a->a->rate > b->a->rate ? -1 : 1;
	int c = strcmp(a->o->name, b->o->name);
	return c ? c : (int)a->o->backend - (int)b->o->backend;
}

static const char *const heads[] = {"HZ", "NAME", "BACKEND", "FORMAT", "TYPE", "SHAPE", "CNT0",
				    "PROCESSES"};
static const int right[] = {1, 0, 0, 0, 0, 0, 1, 0};

static int fill_table(struct table *t, const struct sort_item *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct obj *o = items[i].o;
		char hz[24], shape[128], cnt0[24], procs[1024];
		activity_rate_text(items[i].a, hz, sizeof hz);
		obj_shape_text(o, shape, sizeof shape);
		snprintf(cnt0, sizeof cnt0, "-");
		if ((o->format == OBJ_STREAM || o->format == OBJ_LINK) && o->naxis)
			snprintf(cnt0, sizeof cnt0, "%llu", (unsigned long long)o->stream.cnt0);
		activity_procs_text(items[i].a, procs, sizeof procs);
		const char *row[] = {hz, o->name, obj_backend_name(o->backend),
				     obj_format_name(o->format), o->naxis ? elem_name(o->type) : "-",
				     shape, cnt0, procs};
		if (table_add(t, row) < 0)
			return -ENOMEM;
	}
	return 0;
}

/* Print what BUF holds (LEN bytes of lines), each line cut to COLS columns
 * and no more than ROWS lines. */
static void print_clipped(const char *buf, size_t len, int cols, int rows)
{
	const char *p = buf, *end = buf + len;
	for (int row = 0; p < end && row < rows; row++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		fwrite(p, 1, n < (size_t)cols ? n : (size_t)cols, stdout);
		fputs("\033[K\n", stdout); /* the terminal adds the carriage return */
		p += n + 1;
	}
}

static void draw(const struct top_opts *o, struct sort_item *items, size_t n,
		 const struct activity_set *act)
{
	struct winsize ws = {0};
	int cols = 80, rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col && ws.ws_row) {
		cols = ws.ws_col;
		rows = ws.ws_row;
	}
	size_t streams = 0;
	for (size_t i = 0; i < n; i++)
		streams += items[i].a->rate >= 0;
	char when[16];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof when, "%H:%M:%S", localtime_r(&now, &tm));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (!f)
		return;
	fprintf(f, "shmtool top - %s  %s: %zu objects, %zu streams; every %g s; q quits\n", when,
		o->dir, n, streams, o->interval);
	if (act->uses.unreadable)
		fprintf(f, "%zu process%s could not be read (permission denied): not shown\n",
			act->uses.unreadable, act->uses.unreadable == 1 ? "" : "es");
	fputc('\n', f);
	struct table t;
	table_init(&t, 8, heads, right);
	if (fill_table(&t, items, n) == 0)
		table_print(&t, f, 1);
	table_free(&t);
	fclose(f);
	fputs("\033[H", stdout);
	print_clipped(buf, len, cols, rows - 1);
	fputs("\033[J", stdout); /* clear what the last screen had below */
	fflush(stdout);
	free(buf);
}

static int snapshot(const struct top_opts *o, struct sort_item *items, size_t n)
{
	if (o->json) {
		for (size_t i = 0; i < n; i++) {
			struct rec r;
			rec_begin(&r, stdout, 1);
			describe_fields(&r, items[i].o);
			activity_fields(&r, items[i].a);
			rec_end(&r);
		}
		return 0;
	}
	struct table t;
	table_init(&t, 8, heads, right);
	int rc = fill_table(&t, items, n);
	if (rc == 0)
		table_print(&t, stdout, 0);
	table_free(&t);
	fflush(stdout);
	return rc;
}

int top_run(const struct top_opts *o, char *why, size_t whylen)
{
	struct screen s = {.interactive = isatty(STDOUT_FILENO) && !o->json && !o->iterations};
	long left = o->iterations ? o->iterations : 1;
	int rc = 0;
	if (s.interactive)
		screen_open(&s);
	while (rc == 0 && !s.quit && (s.interactive || left-- > 0)) {
		struct obj *objs;
		int n = obj_list(o->dir, &objs);
		if (n < 0) {
			snprintf(why, whylen, "%s: %s", o->dir, strerror(-n));
			rc = -1;
			break;
		}
		struct activity_set act;
		int m = activity_measure(objs, (size_t)n, o->interval, wait_key, &s, &act);
		struct sort_item *items = calloc((size_t)n + 1, sizeof *items);
		if (m < 0 || !items) {
			snprintf(why, whylen, "/proc: %s", strerror(m < 0 ? -m : ENOMEM));
			rc = -1;
		} else if (!s.quit) {
			for (int i = 0; i < n; i++)
				items[i] = (struct sort_item){&objs[i], &act.of[i]};
			qsort(items, (size_t)n, sizeof *items, busiest_first);
			if (s.interactive)
				draw(o, items, (size_t)n, &act);
			else if (snapshot(o, items, (size_t)n) < 0) {
				snprintf(why, whylen, "%s", strerror(ENOMEM));
				rc = -1;
			}
		}
		free(items);
		activity_free(&act);
		free(objs);
	}
	if (s.interactive)
		screen_close(&s);
	return rc;
}
