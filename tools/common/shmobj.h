/* shmobj.h - one shared-memory object as the tools see it: a POSIX object (a
 * file of a directory such as /dev/shm) or a System V segment, and what it
 * holds (a stream, an IMOD file, a CFITSIO file, a typed layout, raw bytes),
 * found by name or by walking everything there is. Built on core only. */
#ifndef SHMTOOLS_SHMOBJ_H
#define SHMTOOLS_SHMOBJ_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "cfshm.h"
#include "elem.h"
#include "imod.h"
#include "isio.h"
#include "sysv.h"
#include "typed.h"

#define OBJ_DEFAULT_DIR "/dev/shm"
#define OBJ_MAX_AXES 8
_Static_assert(OBJ_MAX_AXES >= CFSHM_IMAGE_MAX_AXES, "room for a CFITSIO file's axes");

enum obj_backend { OBJ_POSIX, OBJ_SYSV };

/* What an object holds. Links are stream links (symlinks between .im.shm
 * files); the CFITSIO table is the System V segment at CFITSIO's key base;
 * semaphores are the sem.* files glibc keeps named semaphores in. */
enum obj_format {
	OBJ_RAW, OBJ_STREAM, OBJ_IMOD, OBJ_CFITSIO, OBJ_TYPED, OBJ_LINK, OBJ_CFTABLE,
	OBJ_SEMAPHORE
};

struct obj {
	enum obj_backend backend;
	enum obj_format format;
	char name[NAME_MAX + 1];   /* file name, or the segment's 0xKEY / id-N name */
	char dir[PATH_MAX];        /* POSIX: the directory it was found in */
	uint64_t size;             /* bytes of the object (a link: of its target) */
	uid_t uid;
	gid_t gid;
	mode_t mode;               /* permission bits */
	struct timespec mtime;     /* POSIX: modification; System V: last change */

	/* The image it holds, where known (naxis 0: unknown). */
	enum elem_type type;
	int naxis;
	uint64_t dims[OBJ_MAX_AXES];   /* axis 1 (fastest) first */

	struct stat st;            /* POSIX: lstat of the entry */
	char target[PATH_MAX];     /* links: what the link says */
	int target_exists;

	struct isio_stream stream; /* streams (and links to them) */
	int writing;               /* the write flag was up when looked at */
	uint64_t capacity;         /* IMOD: bytes the name promises */
	struct imod_image imod;
	struct typed_layout typed;

	struct sysv_seg seg;       /* System V */
	int creator_alive;
	struct cfshm_slot slot;    /* CFITSIO files */
	char note[200];            /* why a name that looks like a format is raw */
};

/* Name of a format as printed ("raw", "stream", ...) and of a backend. */
const char *obj_format_name(enum obj_format f);
const char *obj_backend_name(enum obj_backend b);

/* Whether process PID exists (a PID we may not signal exists too). */
int obj_pid_alive(pid_t pid);

/* Probe entry NAME of directory DIRFD (whose path is DIR) without
 * following a symlink. Returns 0 and fills O, -ENOENT, or -errno;
 * directories and other special files give -EISDIR / -ENODEV. */
int obj_probe_posix(int dirfd, const char *dir, const char *name, struct obj *o);

/* The live CFITSIO slots (cfshm_slots with the environment's key base and
 * slot count) into a new array *SLOTS (the caller frees). Returns the count
 * (0 when CFITSIO is not in use) or -errno. */
int obj_cfitsio_slots(struct cfshm_slot **slots);

/* Describe segment SEG; SLOTS (N of them) tell which are CFITSIO files. */
void obj_probe_sysv(const struct sysv_seg *seg, const struct cfshm_slot *slots, int n,
		    struct obj *o);

/* Find an object by the name a user gives: shmem://hN or hN (a CFITSIO
 * file), 0xKKKKKKKK or id-N (a System V segment), a path with a '/', or a
 * file name in DIR, where a stream may be named without ".im.shm". Returns
 * 0, -ENOENT or -errno. */
int obj_lookup(const char *dir, const char *name, struct obj *o);

/* Every object: the entries of DIR (by name), then every System V segment
 * (kernel order). *LIST is a new array (the caller frees). Returns the count
 * or -errno (DIR unreadable). A missing DIR lists only segments. */
int obj_list(const char *dir, struct obj **list);

/* Parse a CFITSIO name, "shmem://hN" or "hN" (N decimal, no leading zero).
 * Returns N, or -1 for a name of another form. */
int obj_cfitsio_index(const char *name);

/* The shape as "512,512" (axis 1 first), or "-" when unknown. */
void obj_shape_text(const struct obj *o, char *buf, size_t len);

#endif
