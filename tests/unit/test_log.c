/* test_log.c - unit tests of core/log: sinks, the debug switch, the default
 * stderr sink's format, and shm_log_once's "say it once" table. */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

/* Lines the capturing sink has seen. Criterion runs every test in its own
 * process, so this state (and log.c's) starts fresh for each test. */
#define CAPTURE_MAX 64
static struct {
	enum shm_log_level level;
	char text[1100];
} captured[CAPTURE_MAX];
static int ncaptured;
static int ncalls;

static void capture_sink(enum shm_log_level level, const char *line)
{
	ncalls++;
	if (ncaptured < CAPTURE_MAX) {
		captured[ncaptured].level = level;
		snprintf(captured[ncaptured].text, sizeof captured[ncaptured].text, "%s", line);
		ncaptured++;
	}
}

static void install_capture(void)
{
	ncaptured = 0;
	ncalls = 0;
	shm_log_set_sink(capture_sink);
}

TestSuite(log, .init = install_capture);

Test(log, shm_log_formats_and_passes_level)
{
	shm_log(SHM_LOG_WARN, "open %s: %d", "0x0000162e", -13);
	cr_assert_eq(ncalls, 1);
	cr_assert_eq(captured[0].level, SHM_LOG_WARN);
	cr_assert_str_eq(captured[0].text, "open 0x0000162e: -13");
}

Test(log, debug_lines_follow_the_switch)
{
	shm_log(SHM_LOG_DEBUG, "hidden");
	cr_assert_eq(ncalls, 0, "a debug line was emitted with debug off");

	shm_log(SHM_LOG_ERR, "e");
	shm_log(SHM_LOG_WARN, "w");
	shm_log(SHM_LOG_INFO, "i");
	cr_assert_eq(ncalls, 3, "non-debug levels must always be emitted");

	shm_log_set_debug(1);
	shm_log(SHM_LOG_DEBUG, "shown");
	cr_assert_eq(ncalls, 4);
	cr_assert_eq(captured[3].level, SHM_LOG_DEBUG);
	cr_assert_str_eq(captured[3].text, "shown");

	shm_log_set_debug(0);
	shm_log(SHM_LOG_DEBUG, "hidden again");
	cr_assert_eq(ncalls, 4);
}

Test(log, long_line_is_truncated_not_overflowed)
{
	static char big[4000];
	memset(big, 'x', sizeof big - 1);
	shm_log(SHM_LOG_INFO, "%s", big);
	cr_assert_eq(ncalls, 1);
	size_t n = strlen(captured[0].text);
	cr_assert(n > 0 && n < 1024, "line of %zu bytes", n);
}

Test(log, once_emits_once_per_distinct_line)
{
	cr_assert_eq(shm_log_once(SHM_LOG_WARN, "refused %s: %s", "a", "bad name"), 1);
	cr_assert_eq(ncalls, 1);
	cr_assert_str_eq(captured[0].text, "refused a: bad name");
	cr_assert_eq(captured[0].level, SHM_LOG_WARN);

	cr_assert_eq(shm_log_once(SHM_LOG_WARN, "refused %s: %s", "a", "bad name"), 0);
	cr_assert_eq(shm_log_once(SHM_LOG_WARN, "refused a: bad name"), 0,
		     "the same text from another format is the same line");
	cr_assert_eq(ncalls, 1);

	cr_assert_eq(shm_log_once(SHM_LOG_WARN, "refused %s: %s", "b", "bad name"), 1);
	cr_assert_eq(ncalls, 2);
	cr_assert_str_eq(captured[1].text, "refused b: bad name");

	cr_assert_eq(shm_log_once(SHM_LOG_WARN, "refused %s: %s", "b", "bad name"), 0);
	cr_assert_eq(shm_log_once(SHM_LOG_WARN, "refused %s: %s", "a", "bad name"), 0);
	cr_assert_eq(ncalls, 2);
}

Test(log, once_does_not_disturb_plain_log)
{
	cr_assert_eq(shm_log_once(SHM_LOG_ERR, "same"), 1);
	shm_log(SHM_LOG_ERR, "same");
	shm_log(SHM_LOG_ERR, "same");
	cr_assert_eq(ncalls, 3, "shm_log must not be deduplicated");
	cr_assert_eq(shm_log_once(SHM_LOG_ERR, "same"), 0);
	cr_assert_eq(ncalls, 3);
}

/* Many distinct lines: each is said once, and the table stays bounded
 * (it is cleared when half full) without ever suppressing a new line. */
Test(log, once_many_distinct_lines)
{
	int emitted = 0;
	for (int i = 0; i < 20000; i++)
		emitted += shm_log_once(SHM_LOG_INFO, "line %d", i);
	cr_assert_eq(emitted, 20000, "a never-seen line was suppressed");
	cr_assert_eq(ncalls, 20000);
	/* The most recent lines are still remembered. */
	cr_assert_eq(shm_log_once(SHM_LOG_INFO, "line %d", 19999), 0);
	cr_assert_eq(shm_log_once(SHM_LOG_INFO, "line %d", 19990), 0);
}

/* log.h: shm_log_once is "as shm_log", and shm_log drops debug lines while
 * debug is off. A debug line must not get out through shm_log_once either. */
Test(log, once_respects_debug_switch)
{
	shm_log_once(SHM_LOG_DEBUG, "debug detail");
	cr_expect_eq(ncalls, 0, "shm_log_once emitted a debug line with debug off");

	shm_log_set_debug(1);
	int before = ncalls;
	cr_assert_eq(shm_log_once(SHM_LOG_DEBUG, "debug detail 2"), 1);
	cr_assert_eq(ncalls, before + 1, "debug on: the line must be emitted");
}

static void redirect_stderr_plain(void)
{
	ncaptured = 0;
	ncalls = 0;
	shm_log_set_sink(capture_sink);
	shm_log_set_sink(NULL); /* NULL restores the default sink */
	cr_redirect_stderr();
}

Test(log_stderr, default_sink_format, .init = redirect_stderr_plain)
{
	shm_log(SHM_LOG_ERR, "e %d", 1);
	shm_log(SHM_LOG_WARN, "w");
	shm_log(SHM_LOG_INFO, "i");
	shm_log_set_debug(1);
	shm_log(SHM_LOG_DEBUG, "d");
	shm_log((enum shm_log_level)5, "odd");
	fflush(stderr);
	cr_assert_eq(ncalls, 0, "the capturing sink must be gone");
	cr_assert_stderr_eq_str("shmfs: error: e 1\n"
				"shmfs: warning: w\n"
				"shmfs: info: i\n"
				"shmfs: debug: d\n"
				"shmfs: log: odd\n");
}
