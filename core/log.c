/* log.c - the logging channel; see log.h. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static void stderr_sink(enum shm_log_level level, const char *line)
{
	static const char *names[8] = {[SHM_LOG_ERR] = "error", [SHM_LOG_WARN] = "warning",
				       [SHM_LOG_INFO] = "info", [SHM_LOG_DEBUG] = "debug"};
	fprintf(stderr, "shmfs: %s: %s\n", names[level & 7] ? names[level & 7] : "log", line);
}

static shm_log_sink log_sink = stderr_sink;
static int log_debug;

/* Hashes of lines already said by shm_log_once; protected by once_lock.
 * Bounded: when full, it is cleared, so a very chatty failure repeats at
 * most once per ONCE_SLOTS distinct lines. */
#define ONCE_SLOTS 4096
static uint64_t once_seen[ONCE_SLOTS];
static unsigned once_count;
static pthread_mutex_t once_lock = PTHREAD_MUTEX_INITIALIZER;

void shm_log_set_sink(shm_log_sink sink) { log_sink = sink ? sink : stderr_sink; }
void shm_log_set_debug(int on) { log_debug = on; }

static void emit(enum shm_log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof line, fmt, ap);
	log_sink(level, line);
}

void shm_log(enum shm_log_level level, const char *fmt, ...)
{
	va_list ap;
	if (level == SHM_LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	emit(level, fmt, ap);
	va_end(ap);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h | 1; /* 0 marks an empty slot */
}

int shm_log_once(enum shm_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	if (level == SHM_LOG_DEBUG && !log_debug)
		return 0;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);

	uint64_t h = fnv1a(line);
	pthread_mutex_lock(&once_lock);
	unsigned slot = (unsigned)(h % ONCE_SLOTS);
	for (unsigned probe = 0; probe < ONCE_SLOTS; probe++, slot = (slot + 1) % ONCE_SLOTS) {
		if (once_seen[slot] == h) {
			pthread_mutex_unlock(&once_lock);
			return 0;
		}
		if (once_seen[slot] == 0)
			break;
	}
	if (once_count >= ONCE_SLOTS / 2) { /* keep probing short */
		for (unsigned i = 0; i < ONCE_SLOTS; i++)
			once_seen[i] = 0;
		once_count = 0;
		slot = (unsigned)(h % ONCE_SLOTS);
	}
	once_seen[slot] = h;
	once_count++;
	pthread_mutex_unlock(&once_lock);
	log_sink(level, line);
	return 1;
}
