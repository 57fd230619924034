/* orphan.c - finding and removing leftovers of dead programs; see orphan.h.
 * Every removal checks its object again just before it, since the listing
 * and the removal are moments (or a confirmation) apart. */
#define _GNU_SOURCE
#include "orphan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cfshm.h"
#include "isio.h"
#include "shmobj.h"
#include "sysv.h"

struct found {
	struct orphan *list;
	size_t count, cap;
	struct cfshm_entry *entries;   /* CFITSIO's table, whose segments stay */
	int nentries;
};

static struct orphan *add(struct found *f)
{
	if (f->count == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 16;
		struct orphan *grown = realloc(f->list, cap * sizeof *grown);
		if (!grown)
			return NULL;
		f->list = grown;
		f->cap = cap;
	}
	struct orphan *o = &f->list[f->count++];
	memset(o, 0, sizeof *o);
	return o;
}

/* Whether a segment belongs to CFITSIO: its table, a file the table names
 * (even under a stale handle), or any key in the range CFITSIO draws its
 * keys from (key base + 0 .. 3 x slot count - 1), which keeps its files safe
 * even when the table cannot be read. */
static int is_cfitsio(const struct found *f, const struct shmid_ds *ds, int shmid)
{
	key_t key = ds->shm_perm.__key;
	long long base = cfshm_keybase();
	if (key != IPC_PRIVATE && key >= base && key < base + 3LL * cfshm_maxseg())
		return 1;
	for (int i = 0; i < f->nentries; i++)
		if (f->entries[i].key != -1 &&
		    (f->entries[i].handle == shmid || (key && f->entries[i].key == key)))
			return 1;
	return 0;
}

static int is_orphan_segment(const struct found *f, const struct sysv_seg *seg)
{
	return seg->ds.shm_nattch == 0 && !obj_pid_alive(seg->ds.shm_cpid) &&
	       !is_cfitsio(f, &seg->ds, seg->shmid);
}

static int find_segment(const struct sysv_seg *seg, void *arg)
{
	struct found *f = arg;
	if (!is_orphan_segment(f, seg))
		return 0;
	struct orphan *o = add(f);
	if (!o)
		return -ENOMEM;
	o->kind = ORPHAN_SYSV;
	o->shmid = seg->shmid;
	o->cpid = seg->ds.shm_cpid;
	sysv_name_format(o->name, seg->ds.shm_perm.__key, seg->shmid);
	snprintf(o->reason, sizeof o->reason,
		 "System V segment, %zu bytes: nobody attached, creator PID %d is gone",
		 (size_t)seg->ds.shm_segsz, (int)seg->ds.shm_cpid);
	return 0;
}

/* The stream an old ImageStreamIO semaphore file name belongs to: NAME is
 * "sem." + (the stream directory with '/' as '.', then '.', or nothing) +
 * stream name + "_semNN". Fills STEM (what lies between "sem." and
 * "_semNN"). Returns 0, or -1 for another name. */
static int semaphore_stem(const char *name, char *stem, size_t len)
{
	if (strncmp(name, "sem.", 4) != 0)
		return -1;
	const char *s = name + 4, *tail = NULL;
	for (const char *p = strstr(s, "_sem"); p; p = strstr(p + 1, "_sem"))
		tail = p;
	if (!tail || tail == s || !tail[4])
		return -1;
	for (const char *p = tail + 4; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	snprintf(stem, len, "%.*s", (int)(tail - s), s);
	return 0;
}

static int stream_exists(const char *dir, const char *stream)
{
	char path[PATH_MAX];
	struct stat st;
	if (!dir || !*dir)
		return 0;
	int n = snprintf(path, sizeof path, "%s/%s" ISIO_SUFFIX, dir, stream);
	return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0;
}

/* Whether the stream of semaphore stem STEM is anywhere it could be; WHERE
 * gets the places looked at, for the report. */
static int stem_has_stream(const char *stem, const char *streamdir, char *where, size_t len)
{
	const char *dirs[] = {streamdir, getenv("MILK_SHM_DIR"), "/milk/shm", "/tmp"};
	size_t used = 0;
	where[0] = '\0';
	/* The directory-in-the-name form: try each '.' as the last separator. */
	if (stem[0] == '.') {
		for (const char *dot = strchr(stem + 1, '.'); dot; dot = strchr(dot + 1, '.')) {
			char dir[PATH_MAX];
			snprintf(dir, sizeof dir, "%.*s", (int)(dot - stem), stem);
			for (char *p = dir; *p; p++)
				if (*p == '.')
					*p = '/';
			if (stream_exists(dir, dot + 1))
				return 1;
			if (used < len)
				used += (size_t)snprintf(where + used, len - used, "%s%s/%s" ISIO_SUFFIX,
							 used ? ", " : "", dir, dot + 1);
		}
	}
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		if (stream_exists(dirs[i], stem))
			return 1;
		if (dirs[i] && *dirs[i] && used < len)
			used += (size_t)snprintf(where + used, len - used, "%s%s/%s" ISIO_SUFFIX,
						 used ? ", " : "", dirs[i], stem);
	}
	return 0;
}

int orphan_file_mapped(dev_t dev, ino_t ino)
{
	DIR *proc = opendir("/proc");
	int mapped = 0;
	char line[4096];
	for (struct dirent *e; proc && !mapped && (e = readdir(proc));) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		char path[NAME_MAX + 16];
		snprintf(path, sizeof path, "/proc/%s/maps", e->d_name);
		FILE *maps = fopen(path, "re");
		if (!maps)
			continue;
		while (!mapped && fgets(line, sizeof line, maps)) {
			unsigned maj, min;
			unsigned long long inode;
			if (sscanf(line, "%*s %*s %*s %x:%x %llu", &maj, &min, &inode) == 3 &&
			    inode == (unsigned long long)ino && makedev(maj, min) == dev)
				mapped = 1;
		}
		fclose(maps);
	}
	if (proc)
		closedir(proc);
	return mapped;
}

static int find_semaphores(struct found *f, const char *semdir, const char *streamdir)
{
	DIR *d = opendir(semdir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		char stem[NAME_MAX + 1], where[200];
		struct stat st;
		if (semaphore_stem(e->d_name, stem, sizeof stem) < 0 ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode) ||
		    stem_has_stream(stem, streamdir, where, sizeof where) ||
		    orphan_file_mapped(st.st_dev, st.st_ino))
			continue;
		struct orphan *o = add(f);
		if (!o) {
			rc = -ENOMEM;
			break;
		}
		o->kind = ORPHAN_SEMAPHORE;
		o->dev = st.st_dev;
		o->ino = st.st_ino;
		snprintf(o->name, sizeof o->name, "%s", e->d_name);
		snprintf(o->reason, sizeof o->reason,
			 "old ImageStreamIO semaphore, nobody has it open: no stream %s", where);
	}
	closedir(d);
	return rc;
}

int orphan_find(const char *semdir, const char *streamdir, struct orphan **list)
{
	struct found f = {0};
	/* An unreadable table leaves nothing of CFITSIO to clean; its files
	 * are still spared by their keys (is_cfitsio). */
	int n = cfshm_entries(cfshm_keybase(), cfshm_maxseg(), &f.entries);
	int rc = 0;
	f.nentries = n > 0 ? n : 0;
	for (int i = 0; i < f.nentries; i++) {
		const struct cfshm_entry *e = &f.entries[i];
		if (!cfshm_entry_gone(e))
			continue;
		struct orphan *o = add(&f);
		if (!o) {
			rc = -ENOMEM;
			break;
		}
		o->kind = ORPHAN_CFITSIO_SLOT;
		o->index = e->index;
		snprintf(o->name, sizeof o->name, "h%d", e->index);
		snprintf(o->reason, sizeof o->reason,
			 "CFITSIO table entry of shmem://h%d: its segment (key 0x%08x, id %d) has "
			 "vanished", e->index, (unsigned)e->key, e->handle);
	}
	if (rc == 0)
		rc = sysv_foreach(find_segment, &f);
	if (rc == 0)
		rc = find_semaphores(&f, semdir, streamdir);
	free(f.entries);
	if (rc < 0) {
		free(f.list);
		return rc;
	}
	*list = f.list;
	return (int)f.count;
}

#define FAIL(code, ...) do { snprintf(why, whylen, __VA_ARGS__); return -(code); } while (0)

static int remove_segment(const struct orphan *o, char *why, size_t whylen)
{
	struct sysv_seg seg = {.shmid = o->shmid};
	struct found f = {0};
	if (sysv_stat(&seg) < 0)
		FAIL(ENOENT, "gone already");
	int n = cfshm_entries(cfshm_keybase(), cfshm_maxseg(), &f.entries);
	f.nentries = n > 0 ? n : 0;
	int orphan = seg.ds.shm_cpid == o->cpid && is_orphan_segment(&f, &seg);
	free(f.entries);
	if (!orphan)
		FAIL(EBUSY, "in use now (%d attached, creator %d)", (int)seg.ds.shm_nattch,
		     (int)seg.ds.shm_cpid);
	int rc = sysv_remove(o->shmid);
	if (rc < 0)
		FAIL(-rc, "IPC_RMID: %s", strerror(-rc));
	return 0;
}

static int remove_semaphore(const char *semdir, const struct orphan *o, char *why, size_t whylen)
{
	int dirfd = open(semdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		FAIL(errno, "%s: %s", semdir, strerror(errno));
	struct stat st;
	int rc = 0;
	if (fstatat(dirfd, o->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_ino != o->ino ||
	    st.st_dev != o->dev)
		rc = -ENOENT, snprintf(why, whylen, "gone already");
	else if (orphan_file_mapped(st.st_dev, st.st_ino))
		rc = -EBUSY, snprintf(why, whylen, "a process has it open now");
	else if (unlinkat(dirfd, o->name, 0) < 0)
		rc = -errno, snprintf(why, whylen, "unlink: %s", strerror(errno));
	close(dirfd);
	return rc;
}

int orphan_remove(const char *semdir, const struct orphan *o, char *why, size_t whylen)
{
	switch (o->kind) {
	case ORPHAN_SYSV:
		return remove_segment(o, why, whylen);
	case ORPHAN_SEMAPHORE:
		return remove_semaphore(semdir, o, why, whylen);
	case ORPHAN_CFITSIO_SLOT: {
		int rc = cfshm_clear_stale(cfshm_keybase(), cfshm_maxseg(), o->index);
		if (rc == -EEXIST)
			FAIL(EBUSY, "its segment is back");
		if (rc == -EBUSY)
			FAIL(EBUSY, "a process holds the slot");
		if (rc < 0)
			FAIL(-rc, "%s", strerror(-rc));
		return 0;
	}
	}
	FAIL(EINVAL, "unknown kind");
}
