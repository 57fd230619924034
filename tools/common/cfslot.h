/* cfslot.h - changing CFITSIO's global table the way CFITSIO's own driver
 * does: deleting the file of a slot (its segment, its semaphore, its table
 * entry) and freeing the entry of a file whose segment has vanished. Both
 * take the slot's write lock in CFITSIO's lock file first, without waiting,
 * so a file a CFITSIO program has open is left alone. */
#ifndef SHMTOOLS_CFSLOT_H
#define SHMTOOLS_CFSLOT_H

#include <sys/types.h>

/* An entry of the table as it is, whatever its state. */
struct cfslot_entry {
	int index;
	int sem, semkey;       /* the slot's System V semaphore and its key */
	int key, handle, size; /* key -1: a free slot */
};

/* The entries of the table (at the environment's key base, up to its slot
 * count) into a new array *ENTRIES (the caller frees). Returns their count,
 * 0 when there is no table, or -errno. */
int cfslot_read_table(struct cfslot_entry **entries);

/* Whether the segment of a used entry has vanished: no live segment with
 * its shmid and key. */
int cfslot_segment_gone(const struct cfslot_entry *e);

/* Delete the file of slot INDEX. Returns 0, -ENOENT for a free slot (or no
 * table), -EBUSY when a CFITSIO process has the file open (holds its lock),
 * or -errno. */
int cfslot_delete(int index);

/* Free the entry of slot INDEX if its segment has vanished (and remove its
 * semaphore, unless a process still counts itself on it). Returns 0,
 * -ENOENT (free), -EEXIST (the segment is there), -EBUSY, or -errno. */
int cfslot_clear_stale(int index);

#endif
