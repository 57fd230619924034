/* load.c - decoded images written into shared memory, all or nothing: an
 * ImageStreamIO stream (load_stream) and an IMOD shared-memory file filled
 * from MRC (load_mrc_imod); see load.h. FITS decoding is in fitsload.c.
 *
 * New files are made nameless (O_TMPFILE), filled, then linked under their
 * name, so no reader ever sees one half written and a failure leaves
 * nothing behind. */
#define _GNU_SOURCE
#include "load.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "fitsload.h"
#include "guard.h"
#include "imod.h"
#include "loadpix.h"

/* ---- struct load_image -> ImageStreamIO stream */

#define IMAGETYPE_MATH 0x2
#define NSEM 10
#define NPROCTRACE 10

/* One load writes at a time in this process: two frames written into one
 * stream at once would mix, and two loads creating one name would collide. */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

void load_turn_begin(void) { pthread_mutex_lock(&load_lock); }

void load_turn_end(void) { pthread_mutex_unlock(&load_lock); }

/* Keyword slots: IMG's first NBKW keywords, then unused ('N') slots. */
static void put_keywords(unsigned char *dst, unsigned nbkw, const struct load_image *img)
{
	unsigned n = img->nkw < nbkw ? img->nkw : nbkw;
	if (n)
		memcpy(dst, img->keywords, (size_t)n * ISIO_KW_SIZE);
	for (unsigned i = n; i < nbkw; i++) {
		unsigned char *slot = dst + (size_t)i * ISIO_KW_SIZE;
		memset(slot, 0, ISIO_KW_SIZE);
		slot[KW_TYPE] = 'N';
	}
}

struct fill {
	unsigned char *map;
	const struct load_image *img;
	const char *sname;
	unsigned nbkw;
	uint64_t off_kw, off_sems, inode;
};

/* A new stream as ImageStreamIO's create leaves it (the file is zeros but
 * for its pixels, written already), the version last: a reader that sees
 * "2.00" sees the rest. */
static void fill_new(void *arg)
{
	struct fill *f = arg;
	unsigned char *m = f->map;
	const struct load_image *img = f->img;
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t t[2] = {(int64_t)now.tv_sec, (int64_t)now.tv_nsec};

	memcpy(m + ISIO_OFF_NAME, f->sname, strnlen(f->sname, ISIO_NAME_MAX));
	m[ISIO_OFF_NAXIS] = (unsigned char)img->naxis;
	for (int i = 0; i < img->naxis; i++)
		put_u32(m, ISIO_OFF_SIZE + 4 * (size_t)i, img->size[i]);
	put_u64(m, ISIO_OFF_NELEMENT, img->nelement);
	m[ISIO_OFF_DATATYPE] = (unsigned char)img->type;
	put_u64(m, ISIO_OFF_IMAGETYPE, IMAGETYPE_MATH);
	memcpy(m + ISIO_OFF_CREATIONTIME, t, sizeof t);
	memcpy(m + ISIO_OFF_LASTACCESSTIME, t, sizeof t);
	memcpy(m + ISIO_OFF_ATIME, t, sizeof t);
	memcpy(m + ISIO_OFF_WRITETIME, t, sizeof t);
	put_u32(m, ISIO_OFF_CREATORPID, (uint32_t)getpid());
	put_u32(m, ISIO_OFF_OWNERPID, (uint32_t)getpid());
	m[ISIO_OFF_SHARED] = 1;
	put_u64(m, ISIO_OFF_INODE, f->inode);
	m[ISIO_OFF_LOCATION] = 0xff; /* -1: CPU */
	put_u16(m, ISIO_OFF_SEM, NSEM);
	put_u16(m, ISIO_OFF_NBPROCTRACE, NPROCTRACE);
	put_u64(m, ISIO_OFF_CNT0, 1);
	put_u16(m, ISIO_OFF_NBKW, (uint16_t)f->nbkw);
	put_u64(m, ISIO_OFF_IMDATAMEMSIZE, img->datasize);

	put_keywords(m + f->off_kw, f->nbkw, img);
	for (unsigned i = 0; i < NSEM; i++)
		sem_init((sem_t *)(void *)(m + f->off_sems + (size_t)i * ISIO_SEM_SIZE), 1, 0);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(m, "2.00", 4);
}

/* The keywords of one frame written into a live stream (its pixels are
 * stored with loadpix_store). */
static void fill_frame(void *arg)
{
	struct fill *f = arg;
	put_keywords(f->map + f->off_kw, f->nbkw, f->img);
}

/* Reserve SIZE bytes for FD: a full filesystem says ENOSPC now rather than
 * SIGBUS at a store. Filesystems without fallocate get a plain size. */
static int reserve(int fd, uint64_t size)
{
	if (ftruncate(fd, (off_t)size) < 0)
		return -errno;
	if (fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP)
		return -errno;
	return 0;
}

/* A new file in DIRFD with no name yet, mode MODE whatever the umask,
 * owned by UID/GID. Returns the descriptor or -errno. */
static int nameless_file(int dirfd, mode_t mode, uid_t uid, gid_t gid, char *why, size_t whylen)
{
	int fd = openat(dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
	if (fd < 0)
		FAIL(errno, "cannot create a file in the directory: %s", strerror(errno));
	if (fchmod(fd, mode) < 0 ||
	    ((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0)) {
		int err = errno;
		close(fd);
		FAIL(err, "cannot set the new file's mode or owner: %s", strerror(err));
	}
	return fd;
}

/* The complete new stream SNAME for IMG, nameless. Returns its descriptor
 * or -errno. */
static int make_stream(int dirfd, const char *sname, const struct load_image *img, uid_t uid,
		       gid_t gid, char *why, size_t whylen)
{
	struct fill f = {.img = img, .sname = sname};
	f.nbkw = img->nkw < UINT16_MAX ? img->nkw : UINT16_MAX;
	struct isio_stream layout;
	if (isio_layout(img->datasize, (uint16_t)f.nbkw, NSEM, NPROCTRACE, &layout) < 0)
		FAIL(EINVAL, "a stream of %llu bytes of pixels is too large",
		     (unsigned long long)img->datasize);
	uint64_t size = layout.file_size;
	f.off_kw = layout.off_keywords;
	f.off_sems = layout.off_sems;
	struct stat st;
	int fd = nameless_file(dirfd, 0666, uid, gid, why, whylen), rc; /* as ImageStreamIO */
	if (fd < 0)
		return fd;
	/* The pixels first, written (pages written whole need no zeroing),
	 * then room for the rest, which is stored through a mapping. */
	if (ftruncate(fd, (off_t)size) < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		SAY("cannot size the new stream: %s", strerror(errno));
		goto fail;
	}
	f.inode = st.st_ino;
	rc = loadpix_write(fd, layout.off_data, img);
	if (rc == 0)
		rc = reserve(fd, size);
	if (rc < 0) {
		SAY("no room for the %llu-byte stream: %s", (unsigned long long)size,
		    strerror(-rc));
		goto fail;
	}
	f.map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f.map == MAP_FAILED) {
		rc = -errno;
		SAY("cannot map the new stream: %s", strerror(errno));
		goto fail;
	}
	rc = guard_call(fill_new, &f);
	load_unmap(f.map, (size_t)size);
	if (rc < 0) {
		rc = -ENOSPC;
		SAY("the new stream could not be written (filesystem full?)");
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return rc;
}

/* Give the nameless file FD the name NAME in DIRFD: a new name, or
 * (REPLACE) over what is there, through a hidden temporary name. */
static int link_name(int fd, int dirfd, const char *name, int replace, char *why,
		     size_t whylen)
{
	static unsigned counter;
	char proc[64], tmp[NAME_MAX + 1];
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	if (!replace) {
		if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) < 0)
			FAIL(errno, "cannot link the new file as %s: %s", name, strerror(errno));
		return 0;
	}
	for (int tries = 0;; tries++) {
		snprintf(tmp, sizeof tmp, ".%.200s.%d.%u.load", name, (int)getpid(),
			 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
		if (linkat(AT_FDCWD, proc, dirfd, tmp, AT_SYMLINK_FOLLOW) == 0)
			break;
		if (errno != EEXIST || tries == 9)
			FAIL(errno, "cannot link the new file: %s", strerror(errno));
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int err = errno;
		unlinkat(dirfd, tmp, 0);
		FAIL(err, "cannot put the new file in place of %s: %s", name, strerror(err));
	}
	return 0;
}

/* ---- The mapping of the stream loaded last
 *
 * Loads come in series (darks, flats, a reference loaded again and again),
 * and mapping a 16 MiB stream anew costs about as much as converting its
 * pixels: the mapping of the stream updated last is kept for the next load
 * into it. It is dropped when another stream is updated, when the name no
 * longer leads to that file of that size, and KEEP_SECONDS after its last
 * use (by a thread of its own), so that a stream removed meanwhile holds
 * its memory no longer than that. All under load_lock. */
#define KEEP_SECONDS 1

static struct {
	void *map;            /* NULL: none */
	size_t len;
	dev_t dev;
	ino_t ino;
	struct timespec used; /* CLOCK_REALTIME, as kept_wake waits */
} kept;
static pthread_cond_t kept_wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t keeper_once = PTHREAD_ONCE_INIT;
static int keeper_running;

static void kept_drop(void)
{
	if (kept.map)
		load_unmap(kept.map, kept.len);
	kept.map = NULL;
}

static void *keeper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&load_lock);
	for (;;) {
		if (!kept.map) {
			pthread_cond_wait(&kept_wake, &load_lock);
			continue;
		}
		struct timespec until = kept.used, now;
		until.tv_sec += KEEP_SECONDS;
		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec > until.tv_sec ||
		    (now.tv_sec == until.tv_sec && now.tv_nsec >= until.tv_nsec))
			kept_drop();
		else
			pthread_cond_timedwait(&kept_wake, &load_lock, &until);
	}
	return NULL;
}

static void keeper_start(void)
{
	pthread_attr_t attr;
	pthread_t thread;
	if (pthread_attr_init(&attr) != 0)
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	keeper_running = pthread_create(&thread, &attr, keeper, NULL) == 0;
	pthread_attr_destroy(&attr);
}

/* A mapping of stream file ST (open as FD), populated: the kept one if it
 * is that file's, else a new one. Returns it or MAP_FAILED. */
static void *stream_map(int fd, const struct stat *st)
{
	if (kept.map && kept.dev == st->st_dev && kept.ino == st->st_ino &&
	    kept.len == (size_t)st->st_size)
		return kept.map;
	kept_drop();
	/* Populated at once: page by page, the faults of a fresh mapping cost
	 * more than the copy on this kind of machine. */
	return mmap(NULL, (size_t)st->st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		    fd, 0);
}

/* Done with MAP (stream_map's, of ST): kept for the next load when KEEP
 * (and a thread can forget it in time), else unmapped. */
static void stream_unmap(void *map, const struct stat *st, int keep)
{
	if (map == kept.map && !keep)
		kept.map = NULL;
	pthread_once(&keeper_once, keeper_start);
	if (!keep || !keeper_running) {
		load_unmap(map, (size_t)st->st_size);
		return;
	}
	kept.map = map;
	kept.len = (size_t)st->st_size;
	kept.dev = st->st_dev;
	kept.ino = st->st_ino;
	clock_gettime(CLOCK_REALTIME, &kept.used);
	pthread_cond_signal(&kept_wake);
}

/* Copy the metadata, under guard: the file may be shrunk under us. */
struct meta_copy {
	const unsigned char *map;
	unsigned char *meta;
};
static void copy_meta(void *arg)
{
	struct meta_copy *c = arg;
	memcpy(c->meta, c->map, ISIO_META_SIZE);
}

/* Update stream file FNAME in place if it is a stream of IMG's type and
 * shape. Returns 1 (updated), 0 (not such a stream: replace it), -ENOENT
 * (no such file) or another -errno. */
static int update_stream(int dirfd, const char *fname, const struct load_image *img,
			 char *why, size_t whylen)
{
	struct stat st;
	struct isio_stream s;
	unsigned char meta[ISIO_META_SIZE];
	char ignored[160];
	int rc = 0;
	int fd = openat(dirfd, fname, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ENOENT)
			return -ENOENT;
		if (errno == ELOOP || errno == EISDIR || errno == ENXIO)
			return 0; /* not a stream file: the replace will say why not */
		FAIL(errno, "cannot open %s: %s", fname, strerror(errno));
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < ISIO_META_SIZE ||
	    (uint64_t)st.st_size > SIZE_MAX)
		goto out;
	void *map = stream_map(fd, &st);
	if (map == MAP_FAILED) {
		rc = -errno;
		SAY("cannot map %s: %s", fname, strerror(errno));
		goto out;
	}
	struct meta_copy mc = {map, meta};
	if (guard_call(copy_meta, &mc) < 0 ||
	    isio_parse(meta, sizeof meta, (uint64_t)st.st_size, &s, ignored, sizeof ignored) < 0 ||
	    s.type != img->type || s.naxis != img->naxis ||
	    memcmp(s.size, img->size, sizeof(uint32_t) * (size_t)img->naxis) != 0)
		goto unmap;
	struct fill f = {.map = map, .img = img, .nbkw = s.nbkw, .off_kw = s.off_keywords};
	rc = isio_frame_begin(map, (size_t)st.st_size, &s);
	if (rc == 0) {
		rc = loadpix_store((unsigned char *)map + s.off_data, img);
		int kw = guard_call(fill_frame, &f);
		int end = isio_frame_end(map, (size_t)st.st_size, &s);
		rc = rc < 0 ? rc : kw < 0 ? kw : end;
	}
	if (rc == -EFAULT)
		SAY("%s was shrunk while the frame was written", fname);
	else if (rc < 0)
		SAY("cannot write the frame into %s: %s", fname, strerror(-rc));
	else
		rc = 1;
unmap:
	stream_unmap(map, &st, rc == 1);
out:
	close(fd);
	return rc;
}

/* FNAME (in DIRFD) as the stream file it stands for: a stream link (a
 * symlink to a stream file of the same directory, possibly through more
 * links) is followed to its target, which may not exist yet. TARGET gets
 * the file name (NAME_MAX + 1 bytes). */
static int resolve_link(int dirfd, const char *fname, char *target, char *why, size_t whylen)
{
	struct stat st, dir, there;
	snprintf(target, NAME_MAX + 1, "%s", fname);
	for (int hops = 0;; hops++) {
		char link[PATH_MAX];
		if (fstatat(dirfd, target, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				return 0;
			FAIL(errno, "cannot look at %s: %s", target, strerror(errno));
		}
		if (!S_ISLNK(st.st_mode))
			return 0;
		if (hops == 8)
			FAIL(ELOOP, "%s is a chain of more than 8 stream links", fname);
		ssize_t n = readlinkat(dirfd, target, link, sizeof link - 1);
		if (n < 0)
			FAIL(errno, "cannot read the link %s: %s", target, strerror(errno));
		link[n] = '\0';
		char *base = strrchr(link, '/');
		if (base) {
			/* An absolute or relative path is fine if it names this directory. */
			*base++ = '\0';
			int d = openat(dirfd, link[0] ? link : "/", O_PATH | O_DIRECTORY | O_CLOEXEC);
			int same = d >= 0 && fstat(d, &there) == 0 && fstat(dirfd, &dir) == 0 &&
				   there.st_dev == dir.st_dev && there.st_ino == dir.st_ino;
			if (d >= 0)
				close(d);
			if (!same)
				FAIL(EXDEV, "the stream link %s points out of its directory", target);
		} else {
			base = link;
		}
		size_t blen = strlen(base);
		if (!isio_is_stream_name(base) || blen > NAME_MAX)
			FAIL(EINVAL, "the link %s points to '%.80s', not a stream file", target, base);
		memcpy(target, base, blen + 1);
	}
}

/* Put IMG into stream file TARGET (stream name SNAME) of DIRFD, under
 * load_lock: in place, or a new file made and put under the name. Another
 * process may make the name meanwhile (its linkat wins): then again, in
 * place or replacing what it made. */
static int store_stream(int dirfd, const char *target, const char *sname,
			const struct load_image *img, uid_t uid, gid_t gid, enum load_result *did,
			char *why, size_t whylen)
{
	for (int tries = 0;; tries++) {
		int rc = update_stream(dirfd, target, img, why, whylen);
		if (rc == 1) {
			*did = LOAD_UPDATED;
			return 0;
		}
		if (rc < 0 && rc != -ENOENT)
			return rc;
		int replace = rc == 0;
		int fd = make_stream(dirfd, sname, img, uid, gid, why, whylen);
		if (fd < 0)
			return fd;
		rc = link_name(fd, dirfd, target, replace, why, whylen);
		close(fd);
		if (rc == 0)
			*did = replace ? LOAD_REPLACED : LOAD_CREATED;
		if (rc != -EEXIST || tries == 2)
			return rc;
	}
}

int load_stream(int dirfd, const char *name, const struct load_image *img, uid_t uid, gid_t gid,
		enum load_result *did, char *why, size_t whylen)
{
	char fname[NAME_MAX + 1], target[NAME_MAX + 1], sname[ISIO_NAME_MAX + 1];
	size_t len = strlen(name), sl = sizeof ISIO_SUFFIX - 1;
	if (len == 0 || len > ISIO_NAME_MAX || strchr(name, '/'))
		FAIL(EINVAL, "'%.80s' cannot be a stream name (1 to %d characters, no '/')", name,
		     ISIO_NAME_MAX);
	if (img->naxis < 1 || img->naxis > 3 || (!img->pixels && !img->fits_data) ||
	    elem_size(img->type) == 0 || img->datasize != img->nelement * elem_size(img->type) ||
	    img->datasize > (UINT64_C(1) << 62))
		FAIL(EINVAL, "the image to load is not a valid 1- to 3-axis image");
	snprintf(fname, sizeof fname, "%s%s", name, ISIO_SUFFIX);
	pthread_mutex_lock(&load_lock);
	int rc = resolve_link(dirfd, fname, target, why, whylen);
	size_t tlen = rc == 0 ? strlen(target) - sl : 0;
	if (rc == 0 && tlen > ISIO_NAME_MAX) {
		rc = -ENAMETOOLONG;
		SAY("the stream name of %s is longer than %d characters", target, ISIO_NAME_MAX);
	}
	if (rc == 0) {
		memcpy(sname, target, tlen);
		sname[tlen] = '\0';
		rc = store_stream(dirfd, target, sname, img, uid, gid, did, why, whylen);
	}
	pthread_mutex_unlock(&load_lock);
	return rc;
}

/* ---- MRC -> IMOD shared-memory file */

/* IMOD's header area, then N bytes of DATA from byte 2048. */
static int write_imod(int fd, const unsigned char *header, const void *data, uint64_t n)
{
	int rc = loadpix_pwrite(fd, header, IMOD_HEADER_AREA, 0);
	return rc < 0 ? rc : loadpix_pwrite(fd, data, n, IMOD_HEADER_AREA);
}

/* IMOD file FD (open, OBJNAME) filled in place: IMOD programs may have it
 * mapped. Room first, so a full filesystem changes nothing. */
static int imod_in_place(int fd, const char *objname, const unsigned char *header,
			 const unsigned char *data, uint64_t data_bytes, uint64_t capacity,
			 uint64_t need, char *why, size_t whylen)
{
	struct stat st;
	int rc;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		FAIL(EINVAL, "%s is not a regular file", objname);
	if (fallocate(fd, 0, 0, (off_t)need) < 0 && errno != EOPNOTSUPP)
		FAIL(errno, "no room for %llu bytes in %s: %s", (unsigned long long)need, objname,
		     strerror(errno));
	if ((uint64_t)st.st_size < capacity && ftruncate(fd, (off_t)capacity) < 0)
		FAIL(errno, "cannot grow %s to its capacity: %s", objname, strerror(errno));
	if ((rc = write_imod(fd, header, data, data_bytes)) < 0)
		SAY("cannot write %s: %s", objname, strerror(-rc));
	return rc;
}

/* The MRC file's IMOD header area and DATA_BYTES of DATA into IMOD file
 * OBJNAME of DIRFD (CAPACITY bytes, NEED of them used), under load_lock:
 * in place, or made and linked; in place after all if another process
 * made the name meanwhile. */
static int store_imod(int dirfd, const char *objname, const unsigned char *header,
		      const unsigned char *data, uint64_t data_bytes, uint64_t capacity,
		      uint64_t need, uid_t uid, gid_t gid, enum load_result *did, char *why,
		      size_t whylen)
{
	for (int tries = 0;; tries++) {
		int fd = openat(dirfd, objname, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK), rc;
		if (fd >= 0) {
			rc = imod_in_place(fd, objname, header, data, data_bytes, capacity, need, why,
					   whylen);
			close(fd);
			if (rc == 0)
				*did = LOAD_UPDATED;
			return rc;
		}
		if (errno != ENOENT)
			FAIL(errno, "cannot open %s: %s", objname, strerror(errno));
		fd = nameless_file(dirfd, 0600, uid, gid, why, whylen); /* as IMOD's creators */
		if (fd < 0)
			return fd;
		rc = reserve(fd, capacity);
		if (rc < 0)
			SAY("no room for the %llu KB object: %s", (unsigned long long)(capacity / 1024),
			    strerror(-rc));
		else if ((rc = write_imod(fd, header, data, data_bytes)) < 0)
			SAY("cannot write %s: %s", objname, strerror(-rc));
		else
			rc = link_name(fd, dirfd, objname, 0, why, whylen);
		close(fd);
		if (rc == 0)
			*did = LOAD_CREATED;
		if (rc != -EEXIST || tries == 2)
			return rc;
	}
}

int load_mrc_imod(int dirfd, const char *objname, const void *bytes, size_t len, uid_t uid,
		  gid_t gid, enum load_result *did, char *why, size_t whylen)
{
	unsigned char header[IMOD_HEADER_AREA];
	struct imod_image img;
	uint64_t capacity = strchr(objname, '/') ? 0 : imod_name_capacity(objname);
	if (capacity == 0)
		FAIL(EINVAL, "'%.80s' is not an IMOD name (IMODShrMem_<KB>_<name>)", objname);
	if (len < MRC_HEADER_SIZE)
		FAIL(EINVAL, "%zu bytes are not an MRC file (its header alone has %d)", len,
		     MRC_HEADER_SIZE);
	int rc = imod_from_mrc(bytes, &img, header, why, whylen);
	if (rc < 0)
		return rc;
	uint64_t off = imod_mrc_data_offset(bytes);
	if (off > len || img.data_bytes > len - off)
		FAIL(EIO, "the MRC file ends at byte %zu, its header promises data up to byte %llu",
		     len, (unsigned long long)off + (unsigned long long)img.data_bytes);
	uint64_t need = IMOD_HEADER_AREA + img.data_bytes;
	if (need > capacity)
		FAIL(ENOSPC, "the image needs %llu KB (2 KB of header and %llu bytes of data), "
		     "%s holds %llu KB", (unsigned long long)((need + 1023) / 1024),
		     (unsigned long long)img.data_bytes, objname,
		     (unsigned long long)(capacity / 1024));
	const unsigned char *data = (const unsigned char *)bytes + off;

	pthread_mutex_lock(&load_lock);
	rc = store_imod(dirfd, objname, header, data, img.data_bytes, capacity, need, uid, gid, did,
			why, whylen);
	pthread_mutex_unlock(&load_lock);
	return rc;
}
