/* sysv.h - System V shared-memory segments of the caller's IPC namespace:
 * their file names, listing, attributes, creation, attachment and removal.
 *
 * Names: a segment with a key is "0x" plus the key as 8 lowercase hex digits
 * ("0x0000162e"); a segment with the IPC_PRIVATE key is "id-" plus its shmid
 * ("id-32769"). Segments marked for destruction (SHM_DEST) are not listed and
 * cannot be looked up: they are gone for everyone but their last users. */
#ifndef SHMFS_SYSV_H
#define SHMFS_SYSV_H

#include <stddef.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/types.h>

#define SYSV_NAME_MAX 24

enum sysv_name_kind { SYSV_NAME_INVALID = 0, SYSV_NAME_KEY, SYSV_NAME_ID };

/* Parse a file name. Only the canonical forms are accepted (lowercase hex,
 * exactly 8 digits; a decimal shmid without leading zeros), so every segment
 * has exactly one name. Key 0 (IPC_PRIVATE) is not a valid key name. */
enum sysv_name_kind sysv_name_parse(const char *name, key_t *key, int *shmid);

/* Write the canonical name of a segment into BUF (SYSV_NAME_MAX bytes). */
void sysv_name_format(char *buf, key_t key, int shmid);

/* The sentence to log when a name is refused. */
extern const char sysv_name_rule[];

/* A segment as listed. */
struct sysv_seg {
	int shmid;
	struct shmid_ds ds;
};

/* Call FN for every live segment of the namespace, in kernel index order.
 * FN returns 0 to go on, anything else stops the walk and is returned.
 * Returns 0, FN's value, or -errno. */
int sysv_foreach(int (*fn)(const struct sysv_seg *seg, void *arg), void *arg);

/* Find a live segment by name. Returns 0 and fills SEG, -ENOENT if there is
 * none (or it is marked for destruction), -EINVAL for a name of neither form. */
int sysv_lookup(const char *name, struct sysv_seg *seg);

/* Refresh SEG->ds from the kernel. Returns 0, or -ENOENT/-EIDRM once the
 * segment is gone or marked for destruction. */
int sysv_stat(struct sysv_seg *seg);

/* Fill ST for a segment: size, mode (S_IFREG | shm_perm.mode & 0777), owner,
 * times (atime from shm_atime, mtime and ctime from shm_ctime), nlink 1, and
 * an inode number that cannot collide with a tmpfs one. */
void sysv_fill_stat(const struct sysv_seg *seg, struct stat *st);

/* The inode number sysv_fill_stat reports for SHMID. */
ino_t sysv_ino(int shmid);

/* Create a segment with KEY (not IPC_PRIVATE), SIZE bytes, MODE (low 9 bits),
 * owned by UID/GID, failing with -EEXIST if the key is taken. A root caller
 * creates it with those ids (so they are the creator, cuid/cgid, too, and the
 * kernel's limits apply to that user); others get it owned by UID/GID
 * through IPC_SET. Returns the shmid or -errno. */
int sysv_create(key_t key, size_t size, mode_t mode, uid_t uid, gid_t gid);

/* IPC_RMID. Returns 0 or -errno. */
int sysv_remove(int shmid);

/* Change mode bits and/or owner (IPC_SET); pass (uid_t)-1 / (gid_t)-1 /
 * (mode_t)-1 to leave one as it is. Returns 0 or -errno. */
int sysv_set(int shmid, mode_t mode, uid_t uid, gid_t gid);

/* Attach the segment, read-only or read-write. Returns 0 and sets *ADDR and
 * *SIZE (the segment's size), or -errno. */
int sysv_attach(int shmid, int writable, void **addr, size_t *size);

/* Detach what sysv_attach attached. */
void sysv_detach(void *addr);

/* Open the segment's own shmem file (read-write), through a short-lived
 * attachment's /proc/self/map_files entry; needs CAP_SYS_ADMIN. Reads and
 * writes on it land in the segment, without the page faults a fresh
 * attachment costs (segment mappings get no fault-around), and it keeps the
 * segment's memory alive only as long as it is open. The file is not bounded
 * by shm_segsz: a write past the end would grow it, so callers clamp.
 * Returns the descriptor or -errno. */
int sysv_open_file(int shmid);

/* The kernel's own rule for access to a segment (ipcperms): the owner or the
 * creator get the owner bits, a member of the owner's or creator's group the
 * group bits, everyone else the other bits; uid 0 passes. WANT is a mask of
 * 4 (read) and 2 (write). GROUPS is the caller's supplementary groups.
 * Returns 0 or -EACCES. */
int sysv_access(const struct shmid_ds *ds, uid_t uid, gid_t gid, const gid_t *groups,
		int ngroups, int want);

/* Whether UID may remove or IPC_SET the segment (owner, creator or root). */
int sysv_is_owner(const struct shmid_ds *ds, uid_t uid);

#endif
