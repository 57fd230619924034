/* shmobj.c - shared-memory objects found by name or by walking a directory
 * and the System V segments; see shmobj.h. Every byte read from an object is
 * untrusted and goes through core's parsers, which take its true length. */
#define _GNU_SOURCE
#include "shmobj.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A CFITSIO header is read this far at most to find its image cards. */
#define FITS_PEEK_MAX (16 * 2880)
#define SEM_FILE_SIZE 32 /* glibc's sem_t, all a named semaphore's file holds */

const char *obj_format_name(enum obj_format f)
{
	static const char *const names[] = {
		[OBJ_RAW] = "raw", [OBJ_STREAM] = "stream", [OBJ_IMOD] = "imod",
		[OBJ_CFITSIO] = "cfitsio", [OBJ_TYPED] = "typed", [OBJ_LINK] = "link",
		[OBJ_CFTABLE] = "cfitsio-table", [OBJ_SEMAPHORE] = "semaphore",
	};
	return (unsigned)f < sizeof names / sizeof *names ? names[f] : "?";
}

const char *obj_backend_name(enum obj_backend b)
{
	return b == OBJ_SYSV ? "sysv" : "posix";
}

int obj_pid_alive(pid_t pid)
{
	if (pid <= 0)
		return 0;
	return kill(pid, 0) == 0 || errno == EPERM;
}

void obj_shape_text(const struct obj *o, char *buf, size_t len)
{
	size_t used = 0;
	snprintf(buf, len, "-");
	for (int i = 0; i < o->naxis && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu", i ? "," : "",
					 (unsigned long long)o->dims[i]);
}

int obj_cfitsio_index(const char *name)
{
	if (strncmp(name, "shmem://", 8) == 0)
		name += 8;
	if (name[0] != 'h' || name[1] < '0' || name[1] > '9' || (name[1] == '0' && name[2]))
		return -1;
	long n = 0;
	for (const char *p = name + 1; *p; p++) {
		if (*p < '0' || *p > '9' || n > CFSHM_MAXSEG_LIMIT)
			return -1;
		n = n * 10 + (*p - '0');
	}
	return n < CFSHM_MAXSEG_LIMIT ? (int)n : -1;
}

/* What the regular file FD (SIZE bytes, entry NAME) holds. */
static void probe_contents(int fd, const char *name, uint64_t size, struct obj *o)
{
	unsigned char head[IMOD_HEADER_AREA];
	char why[160];
	ssize_t got = pread(fd, head, sizeof head, 0);
	if (got < 0) {
		snprintf(o->note, sizeof o->note, "cannot be read: %s", strerror(errno));
		return;
	}
	if (isio_is_stream_name(name)) {
		if (isio_parse(head, (size_t)got, size, &o->stream, why, sizeof why) < 0) {
			snprintf(o->note, sizeof o->note, "not a valid stream: %s", why);
			return;
		}
		o->format = OBJ_STREAM;
		o->type = o->stream.type;
		o->naxis = o->stream.naxis;
		for (int i = 0; i < o->naxis; i++)
			o->dims[i] = o->stream.size[i];
		o->writing = head[ISIO_OFF_WRITE] != 0;
		return;
	}
	o->capacity = imod_name_capacity(name);
	if (o->capacity) {
		if (imod_parse(head, (size_t)got, o->capacity, size, &o->imod, why, sizeof why) < 0) {
			snprintf(o->note, sizeof o->note, "no MRC image in this IMOD file: %s", why);
			return;
		}
		o->format = OBJ_IMOD;
		o->type = o->imod.type;
		o->naxis = o->imod.nz > 1 ? 3 : 2;
		o->dims[0] = (uint64_t)o->imod.nx;
		o->dims[1] = (uint64_t)o->imod.ny;
		o->dims[2] = (uint64_t)o->imod.nz;
		return;
	}
	int rc = typed_read_fd(fd, size, &o->typed, why, sizeof why);
	if (rc == 0) {
		o->format = OBJ_TYPED;
		o->type = o->typed.type;
		o->naxis = o->typed.naxis;
		memcpy(o->dims, o->typed.dims, sizeof o->dims);
		return;
	}
	if (rc == -EINVAL)
		snprintf(o->note, sizeof o->note, "its user.shmfs layout does not fit: %s", why);
	else if (strncmp(name, "sem.", 4) == 0 && size == SEM_FILE_SIZE)
		o->format = OBJ_SEMAPHORE;
}

int obj_probe_posix(int dirfd, const char *dir, const char *name, struct obj *o)
{
	memset(o, 0, sizeof *o);
	o->backend = OBJ_POSIX;
	o->seg.shmid = -1;
	snprintf(o->name, sizeof o->name, "%s", name);
	snprintf(o->dir, sizeof o->dir, "%s", dir);
	if (fstatat(dirfd, name, &o->st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	o->uid = o->st.st_uid;
	o->gid = o->st.st_gid;
	o->mode = o->st.st_mode & 07777;
	o->mtime = o->st.st_mtim;
	o->size = (uint64_t)o->st.st_size;
	if (S_ISDIR(o->st.st_mode))
		return -EISDIR;
	if (!S_ISREG(o->st.st_mode) && !S_ISLNK(o->st.st_mode))
		return -ENODEV;
	if (S_ISLNK(o->st.st_mode)) {
		o->format = OBJ_LINK;
		ssize_t n = readlinkat(dirfd, name, o->target, sizeof o->target - 1);
		o->target[n > 0 ? n : 0] = '\0';
	}
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY |
				     (o->format == OBJ_LINK ? 0 : O_NOFOLLOW));
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		if (fd < 0 && o->format != OBJ_LINK)
			snprintf(o->note, sizeof o->note, "cannot be read: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	if (o->format == OBJ_LINK) {
		/* A stream link: what the stream it names holds. */
		struct obj target;
		const char *base = strrchr(o->target, '/');
		base = base ? base + 1 : o->target;
		memset(&target, 0, sizeof target);
		probe_contents(fd, isio_is_stream_name(name) ? name : base, (uint64_t)st.st_size,
			       &target);
		o->target_exists = 1;
		o->size = (uint64_t)st.st_size;
		o->stream = target.stream;
		o->writing = target.writing;
		o->type = target.type;
		o->naxis = target.naxis;
		memcpy(o->dims, target.dims, sizeof o->dims);
	} else {
		probe_contents(fd, name, o->size, o);
	}
	close(fd);
	return 0;
}

int obj_cfitsio_slots(struct cfshm_slot **slots)
{
	int maxseg = cfshm_maxseg();
	if (maxseg < 1 || maxseg > CFSHM_MAXSEG_LIMIT)
		maxseg = CFSHM_MAXSEG_LIMIT;
	*slots = calloc((size_t)maxseg, sizeof **slots);
	if (!*slots)
		return -ENOMEM;
	int n = cfshm_slots(cfshm_keybase(), cfshm_maxseg(), *slots, maxseg);
	if (n < 0) {
		free(*slots);
		*slots = NULL;
	}
	return n;
}

/* Type and axes of a CFITSIO file from the front of its segment. Read
 * without CFITSIO's lock: a listing must not wait, and a header caught half
 * written only leaves the type unknown. */
static void peek_cfitsio(struct obj *o)
{
	void *at;
	size_t segsz;
	if (sysv_attach(o->seg.shmid, 0, &at, &segsz) < 0)
		return;
	size_t len = o->slot.fits_size < FITS_PEEK_MAX ? (size_t)o->slot.fits_size : FITS_PEEK_MAX;
	unsigned char *copy = malloc(len ? len : 1);
	if (copy && segsz >= CFSHM_HEADER + len &&
	    cfshm_check_segment(at, segsz, o->slot.index) == 0) {
		memcpy(copy, (unsigned char *)at + CFSHM_HEADER, len);
		if (cfshm_image_info(copy, len, &o->type, &o->naxis, o->dims) < 0)
			o->naxis = 0;
	}
	free(copy);
	sysv_detach(at);
}

void obj_probe_sysv(const struct sysv_seg *seg, const struct cfshm_slot *slots, int n,
		    struct obj *o)
{
	memset(o, 0, sizeof *o);
	o->backend = OBJ_SYSV;
	o->seg = *seg;
	key_t key = seg->ds.shm_perm.__key;
	sysv_name_format(o->name, key, seg->shmid);
	o->size = seg->ds.shm_segsz;
	o->uid = seg->ds.shm_perm.uid;
	o->gid = seg->ds.shm_perm.gid;
	o->mode = seg->ds.shm_perm.mode & 0777;
	o->mtime.tv_sec = seg->ds.shm_ctime;
	o->creator_alive = obj_pid_alive(seg->ds.shm_cpid);
	if (key != IPC_PRIVATE && key == cfshm_keybase()) {
		o->format = OBJ_CFTABLE;
		return;
	}
	for (int i = 0; key != IPC_PRIVATE && i < n; i++) {
		if (slots[i].shmid == seg->shmid && slots[i].key == key) {
			o->format = OBJ_CFITSIO;
			o->slot = slots[i];
			peek_cfitsio(o);
			return;
		}
	}
}

/* Probe NAME in directory DIR. */
static int lookup_posix(const char *dir, const char *name, struct obj *o)
{
	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	int rc = obj_probe_posix(dirfd, dir, name, o);
	if (rc == -ENOENT && !isio_is_stream_name(name) && strlen(name) + 8 <= NAME_MAX) {
		char stream[NAME_MAX + 1];
		snprintf(stream, sizeof stream, "%s" ISIO_SUFFIX, name);
		rc = obj_probe_posix(dirfd, dir, stream, o);
		if (rc == -ENOENT)
			snprintf(o->name, sizeof o->name, "%s", name);
	}
	close(dirfd);
	return rc;
}

int obj_lookup(const char *dir, const char *name, struct obj *o)
{
	int index = obj_cfitsio_index(name);
	if (index >= 0) {
		struct cfshm_slot *slots;
		int n = obj_cfitsio_slots(&slots);
		int rc = n < 0 ? n : -ENOENT;
		for (int i = 0; i < n; i++) {
			struct sysv_seg seg = {.shmid = slots[i].shmid};
			if (slots[i].index == index && (rc = sysv_stat(&seg)) == 0)
				obj_probe_sysv(&seg, slots, n, o);
		}
		free(slots);
		return rc;
	}
	if (strncmp(name, "shmem://", 8) == 0)
		return -EINVAL;
	if (sysv_name_parse(name, NULL, NULL) != SYSV_NAME_INVALID) {
		struct sysv_seg seg;
		int rc = sysv_lookup(name, &seg);
		if (rc < 0)
			return rc;
		struct cfshm_slot *slots;
		int n = obj_cfitsio_slots(&slots);
		obj_probe_sysv(&seg, slots, n > 0 ? n : 0, o);
		free(slots);
		return 0;
	}
	const char *slash = strrchr(name, '/');
	if (!slash)
		return lookup_posix(dir, name, o);
	if (!slash[1])
		return -EISDIR;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%.*s", slash == name ? 1 : (int)(slash - name), name);
	return lookup_posix(path, slash + 1, o);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct obj *)a)->name, ((const struct obj *)b)->name);
}

struct list {
	struct obj *objs;
	size_t count, cap;
	const struct cfshm_slot *slots;
	int nslots;
};

static struct obj *list_next(struct list *l)
{
	if (l->count == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct obj *grown = realloc(l->objs, cap * sizeof *grown);
		if (!grown)
			return NULL;
		l->objs = grown;
		l->cap = cap;
	}
	return &l->objs[l->count];
}

static int list_segment(const struct sysv_seg *seg, void *arg)
{
	struct list *l = arg;
	struct obj *o = list_next(l);
	if (!o)
		return -ENOMEM;
	obj_probe_sysv(seg, l->slots, l->nslots, o);
	l->count++;
	return 0;
}

int obj_list(const char *dir, struct obj **list)
{
	struct list l = {0};
	int rc = 0;
	DIR *d = opendir(dir);
	if (!d && errno != ENOENT)
		return -errno;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct obj *o = list_next(&l);
		if (!o) {
			rc = -ENOMEM;
			break;
		}
		if (obj_probe_posix(dirfd(d), dir, e->d_name, o) == 0)
			l.count++;
	}
	if (d)
		closedir(d);
	if (l.count)
		qsort(l.objs, l.count, sizeof *l.objs, by_name);
	struct cfshm_slot *slots = NULL;
	int n = rc == 0 ? obj_cfitsio_slots(&slots) : 0;
	l.slots = slots;
	l.nslots = n > 0 ? n : 0;
	if (rc == 0)
		rc = sysv_foreach(list_segment, &l);
	free(slots);
	if (rc < 0 && rc != -ENOSYS) {
		free(l.objs);
		return rc;
	}
	*list = l.objs;
	return (int)l.count;
}
