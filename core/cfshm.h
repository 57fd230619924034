/* cfshm.h - CFITSIO's shared-memory files (shmem://h0 .. h15): the global
 * table of slots (a System V segment at the key base), the FITS byte stream in
 * each slot's segment, and CFITSIO's own lock; read, and changed the way
 * CFITSIO's driver changes them. See ../shared/formats/cfitsio-shmem.md.
 * Table and segment contents are untrusted. */
#ifndef SHMFS_CFSHM_H
#define SHMFS_CFSHM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "elem.h"

#define CFSHM_DEFAULT_KEYBASE 14011963
#define CFSHM_DEFAULT_MAXSEG 16
#define CFSHM_HEADER 24 /* bytes before the FITS stream in a slot's segment */
#define CFSHM_MAXSEG_LIMIT 65536 /* larger slot counts are refused with -EINVAL */
#define CFSHM_IMAGE_MAX_AXES 8   /* cfshm_image_info's limit on NAXIS */

struct cfshm_slot {
	int index;         /* N of shmem://hN */
	key_t key;         /* the slot segment's key */
	int shmid;         /* its shmid (the table's handle) */
	uint64_t fits_size;/* logical FITS file size: the table's size - 16 */
};

/* An entry of the table as it stands, whatever its state; cfshm_parse_entry
 * says whether it names a file. */
struct cfshm_entry {
	int index;
	int32_t sem, semkey;         /* the slot's System V semaphore and its key */
	int32_t key, handle, size;   /* key -1: a free slot */
};

/* Key base and slot count: SHMEM_LIB_KEYBASE / SHMEM_LIB_MAXSEG from the
 * environment as CFITSIO reads them (decimal, like atoi), or the defaults
 * when unset, 0 (key base) or not positive (slot count). */
key_t cfshm_keybase(void);
int cfshm_maxseg(void);

/* One entry of a copy of the global table (TABLE, LEN bytes; entry INDEX is
 * the 28 bytes at INDEX * 28): fills SLOT when its fields are sane (key
 * neither -1 nor IPC_PRIVATE, handle >= 0, size >= 16). Whether the segment
 * exists is not checked. Returns 0, -ENOENT for a free slot, -EINVAL for
 * nonsense, -ERANGE when the entry is not wholly inside LEN. */
int cfshm_parse_entry(const void *table, size_t len, int index, struct cfshm_slot *slot);

/* Entry INDEX of a copy of the table (TABLE, LEN bytes) as it stands, into
 * E, unchecked. Returns 0, or -ERANGE when the entry is not wholly inside LEN. */
int cfshm_raw_entry(const void *table, size_t len, int index, struct cfshm_entry *e);

/* The sane entries of a copy of the table (entries 0 .. MAXSEG-1 that lie
 * within LEN), in slot order, up to MAX of them into SLOTS. Returns the count. */
int cfshm_parse_table(const void *table, size_t len, int maxseg, struct cfshm_slot *slots,
		      int max);

/* Read the global table at KEYBASE with MAXSEG slots. Fills up to MAX entries
 * of SLOTS with the live slots (sane entries whose segment exists with that
 * key, holds 24 + fits_size bytes and has a valid segment header), in slot
 * order. Returns their count (at most MAX), 0 if there is no table, -EINVAL
 * if MAXSEG is not 1 .. CFSHM_MAXSEG_LIMIT, or -errno. */
int cfshm_slots(key_t keybase, int maxseg, struct cfshm_slot *slots, int max);

/* Find the live slot whose segment has key KEY. Returns 0, -ENOENT, or
 * -errno when the table cannot be read. */
int cfshm_find_key(key_t keybase, int maxseg, key_t key, struct cfshm_slot *slot);

/* Check a slot segment's header (BUF, >= 24 bytes): block id 'J','B', flag
 * 1 (shared), the segment-header id 0x19630114, handle and h equal to the slot number.
 * Returns 0 or -EINVAL. */
int cfshm_check_segment(const void *buf, size_t buflen, int index);

/* Take CFITSIO's read lock on slot INDEX (F_RDLCK on byte INDEX of
 * /tmp/.shmem-lockfile.<keybase>.<maxseg>), not waiting longer than
 * TIMEOUT_MS. Returns a descriptor to pass to cfshm_unlock, or -errno
 * (-EAGAIN when a writer holds it past the timeout; -ENOENT when the lock
 * file does not exist, which means no CFITSIO process holds a lock: it is
 * never created here). The lock is an open-file-description lock: it
 * excludes CFITSIO's writers like theirs, and is private to the descriptor,
 * so threads lock independently. Closing it also drops classic fcntl locks
 * this process holds on that file, i.e. CFITSIO's own if CFITSIO is used in
 * the same process. */
int cfshm_lock_read(key_t keybase, int maxseg, int index, int timeout_ms);
void cfshm_unlock(int lockfd);

/* Copy the FITS bytes of SLOT (re-reading its table entry under the lock,
 * so the size is the current one) into a new malloc'd buffer: *OUT and *LEN
 * (the caller frees). Returns 0, -ENOENT when the slot is free now or its
 * file has moved to another key (it grew past its granule), -EAGAIN as
 * cfshm_lock_read, -EINVAL for a damaged entry or segment, or -errno. */
int cfshm_read_fits(key_t keybase, int maxseg, const struct cfshm_slot *slot,
		    int timeout_ms, unsigned char **out, uint64_t *len);

/* The type and axes of the image in the FITS primary header at the front of
 * BUF (LEN bytes, untrusted: the front of a slot's FITS stream), read card by
 * card up to END, never past LEN. BITPIX gives the type, with BZERO making
 * the unsigned and int8 types; integers with BSCALE != 1 or another BZERO
 * are ELEM_F32 (as the loader reads scaled integers). NAXIS (1 ..
 * CFSHM_IMAGE_MAX_AXES) and NAXISn (1 .. 9e15, axis 1 first into DIMS) must
 * be integers. Numbers are read in FITS's syntax here, not by strtod (no
 * locale, hex, inf or nan); a card naming one of these keywords with no
 * number in it makes the header invalid; of a keyword given twice the first
 * counts. Writes *TYPE, *NAXIS and DIMS only on success.
 * Returns 0, or -EINVAL when BUF holds no complete image header of a known
 * type. */
int cfshm_image_info(const void *buf, size_t len, enum elem_type *type, int *naxis,
		     uint64_t *dims);

/* ---- changing the table, as CFITSIO's driver does ----
 * Each takes the slot's write lock in CFITSIO's lock file first, without
 * waiting (none when there is no lock file: no CFITSIO process holds any),
 * so a file a CFITSIO program has open is left alone, and changes the table
 * only under it. */

/* The entries of the table at KEYBASE (its whole entries, at most MAXSEG)
 * into a new array *ENTRIES (the caller frees; NULL when the count is 0).
 * Returns their count, 0 when there is no table, -EINVAL for MAXSEG out of
 * 1 .. CFSHM_MAXSEG_LIMIT, or -errno. */
int cfshm_entries(key_t keybase, int maxseg, struct cfshm_entry **entries);

/* Whether the segment of a used entry E has vanished: no live segment
 * (one not marked for removal) with its handle and key. 0 for a free entry,
 * or when the kernel will not say. */
int cfshm_entry_gone(const struct cfshm_entry *e);

/* Delete the file of slot INDEX as fits_delete_file does: its segment, its
 * semaphore (if it is still the one the entry names) and its table entry.
 * A segment that is there is removed only if its header says it is slot
 * INDEX's file. Returns 0, -ENOENT for a free slot, no table or INDEX
 * outside it, -EBUSY when a CFITSIO process has the file open (holds its
 * lock), -EINVAL when the entry names a segment that is not its file (the
 * table is left as it is), or -errno. */
int cfshm_delete(key_t keybase, int maxseg, int index);

/* Free the entry of slot INDEX if its segment has vanished, removing its
 * semaphore too, unless a process still counts itself on it. Returns 0,
 * -ENOENT (free, or no such slot), -EEXIST (the segment is there), -EBUSY
 * (the slot is locked, or its semaphore counts a process), or -errno. */
int cfshm_clear_stale(key_t keybase, int maxseg, int index);

#endif
