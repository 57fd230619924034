/* procscan.h - which processes use which shared-memory file or System V
 * segment, from /proc: the mappings of every process (/proc/PID/maps) and its
 * open descriptors (/proc/PID/fd). A System V attachment is a mapping named
 * "/SYSV<key>" whose inode number is the shmid. The text of a maps file comes
 * from the kernel, but its path names are chosen by processes: a line is
 * parsed only with its true length, and a line that does not parse is
 * skipped. Root sees every process; another user, only their own. */
#ifndef SHMFS_PROCSCAN_H
#define SHMFS_PROCSCAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One line of /proc/PID/maps:
 *   START-END PERMS OFFSET MAJOR:MINOR INODE   [PATH]
 * (addresses, offset and device numbers in hex, the inode in decimal). PATH
 * points into the line (not NUL-terminated), PATH_LEN bytes, without the
 * line's end; 0 for an anonymous mapping. */
struct proc_map {
	uint64_t start, end, offset;
	char perms[5];          /* "rw-s", NUL-terminated */
	unsigned int major, minor;
	uint64_t inode;
	const char *path;
	size_t path_len;
};

/* Parse LINE (LEN bytes, with or without its final newline). Returns 0, or
 * -EINVAL for a line not of that form (any field missing, malformed or out
 * of range). */
int proc_maps_parse(const char *line, size_t len, struct proc_map *m);

/* Whether M is a System V attachment ("/SYSV" followed by 8 hex digits, the
 * key, maybe " (deleted)"); then its inode is the shmid. */
int proc_map_is_sysv(const struct proc_map *m);

/* How a process uses a file or segment (bits). */
enum {
	PROC_USE_MAPPED = 1,    /* mapped (a System V segment: attached) */
	PROC_USE_WRITABLE = 2,  /* ... with a writable mapping */
	PROC_USE_OPEN = 4,      /* an open descriptor */
};

#define PROC_COMM_MAX 64

/* One process and one file (DEV, INO) or segment (SHMID >= 0, DEV and INO
 * 0) it uses. */
struct proc_use {
	pid_t pid;
	char comm[PROC_COMM_MAX];   /* /proc/PID/comm, untrusted text */
	dev_t dev;
	ino_t ino;
	int shmid;
	unsigned int how;
};

struct proc_uses {
	struct proc_use *v;         /* sorted by pid, then file */
	size_t n, cap;
	size_t unreadable;          /* processes we were not allowed to look at */
};

/* What to look for. */
struct proc_scan_opts {
	const char *proc;           /* the proc filesystem: "/proc" */
	const dev_t *devs;          /* files on these devices (the tmpfs of /dev/shm) */
	size_t ndevs;
	int sysv;                   /* System V attachments too, of processes in the
				     * caller's own IPC namespace only (a shmid means
				     * nothing in another) */
	pid_t skip;                 /* a process to leave out (the caller), or 0 */
};

/* Walk every process of OPTS->proc and fill USES (which the caller zeroes
 * first and frees with proc_uses_free) with one entry per process and file
 * or segment it uses, the ways OR-ed together. Processes that vanish or may
 * not be read are skipped (counted in USES->unreadable when not allowed).
 * Returns 0, or -errno when /proc itself cannot be read or memory runs out. */
int proc_scan(const struct proc_scan_opts *opts, struct proc_uses *uses);

void proc_uses_free(struct proc_uses *uses);

#endif
