/* orphan.h - what `shmtool clean` may remove: System V segments nobody is
 * attached to whose creator is gone, CFITSIO table entries whose segment has
 * vanished, and the named semaphores of old ImageStreamIO versions
 * (/dev/shm/sem.*_semNN) whose stream is gone. Nothing in use is ever an
 * orphan: not a segment with an attachment, not a semaphore file a process
 * has mapped, not a CFITSIO file (those are meant to outlive their creator). */
#ifndef SHMTOOLS_ORPHAN_H
#define SHMTOOLS_ORPHAN_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

enum orphan_kind { ORPHAN_SYSV, ORPHAN_CFITSIO_SLOT, ORPHAN_SEMAPHORE };

struct orphan {
	enum orphan_kind kind;
	char name[NAME_MAX + 1];   /* 0xKEY / id-N, hN, or sem.NAME */
	char reason[300];
	int shmid;                 /* System V: the segment */
	pid_t cpid;
	int index;                 /* CFITSIO: the slot */
	dev_t dev;                 /* semaphores: the file, as found */
	ino_t ino;
};

/* Find the orphans: semaphore files in SEMDIR (/dev/shm), whose streams are
 * looked for where their names say, or else in STREAMDIR, $MILK_SHM_DIR,
 * /milk/shm and /tmp. *LIST is a new array (the caller frees). Returns the
 * count or -errno. */
int orphan_find(const char *semdir, const char *streamdir, struct orphan **list);

/* Remove orphan O after checking again that it still is one. Returns 0,
 * -EBUSY (in use now: left alone), -ENOENT (gone already), or -errno, with a
 * sentence in WHY. */
int orphan_remove(const char *semdir, const struct orphan *o, char *why, size_t whylen);

/* Whether any process has the file DEV/INO mapped (from /proc/PID/maps). */
int orphan_file_mapped(dev_t dev, ino_t ino);

#endif
