/* log.h - the one logging channel of shmfs: core and fs both write here.
 * Refusals a user can cause are logged once per (path, reason), not once per request. */
#ifndef SHMFS_LOG_H
#define SHMFS_LOG_H

enum shm_log_level { SHM_LOG_ERR = 3, SHM_LOG_WARN = 4, SHM_LOG_INFO = 6, SHM_LOG_DEBUG = 7 };

/* Where lines go. The default sink writes "shmfs: LEVEL: text" to stderr. */
typedef void (*shm_log_sink)(enum shm_log_level level, const char *line);
void shm_log_set_sink(shm_log_sink sink);
void shm_log_set_debug(int on);

/* Format and emit one line (no trailing newline needed). */
void shm_log(enum shm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* As shm_log, but only the first time this exact text is produced; a
 * bounded table of line hashes remembers what was said. Returns 1 if the
 * line was emitted, 0 if it had been said before. */
int shm_log_once(enum shm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
