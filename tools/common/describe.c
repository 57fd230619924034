/* describe.c - shared-memory objects put into words; see describe.h. What
 * `info` shows is read again from the object, through pread and copies (no
 * mapping), so an object shrunk meanwhile cannot kill the tool. */
#define _GNU_SOURCE
#include "describe.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "view.h"

/* Stream metadata not in isio.h (../shared/formats/imagestreamio.md). */
#define ISIO_OFF_CREATIONTIME 152
#define ISIO_OFF_CREATORPID 216
#define ISIO_OFF_OWNERPID 220
#define CFITSIO_WAIT_MS 1000
#define MRC_OFF_NLABL 220
#define MRC_OFF_LABELS 224
#define MRC_LABEL 80

void describe_user(uid_t uid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);
	if (pw)
		snprintf(buf, len, "%s", pw->pw_name);
	else
		snprintf(buf, len, "%u", (unsigned)uid);
}

void describe_group(gid_t gid, char *buf, size_t len)
{
	struct group *gr = getgrgid(gid);
	if (gr)
		snprintf(buf, len, "%s", gr->gr_name);
	else
		snprintf(buf, len, "%u", (unsigned)gid);
}

#define APPEND(...) (used += (used < len ? (size_t)snprintf(buf + used, len - used, __VA_ARGS__) : 0))

void describe_details(const struct obj *o, int full, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	if (o->format == OBJ_LINK)
		APPEND("-> %s%s", o->target, o->target_exists ? "" : " (missing)");
	if ((o->format == OBJ_STREAM || o->format == OBJ_LINK) && o->naxis) {
		APPEND("%scnt0=%llu%s", used ? " " : "", (unsigned long long)o->stream.cnt0,
		       o->writing ? " writing" : "");
		if (full)
			APPEND(" cnt1=%llu name=%s", (unsigned long long)o->stream.cnt1, o->stream.name);
	}
	if (o->format == OBJ_CFITSIO)
		APPEND("shmem://h%d ", o->slot.index);
	if (o->backend == OBJ_SYSV) {
		APPEND("nattch=%lu cpid=%d%s", (unsigned long)o->seg.ds.shm_nattch,
		       (int)o->seg.ds.shm_cpid, o->creator_alive ? "" : "(gone)");
		if (full)
			APPEND(" lpid=%d shmid=%d", (int)o->seg.ds.shm_lpid, o->seg.shmid);
	}
	if (o->format == OBJ_TYPED && o->typed.offset)
		APPEND("offset=%llu", (unsigned long long)o->typed.offset);
	if (full && o->format == OBJ_IMOD)
		APPEND("capacity=%llu mode=%d", (unsigned long long)o->capacity, o->imod.mode);
	if (full && o->format == OBJ_CFITSIO)
		APPEND(" fits=%llu", (unsigned long long)o->slot.fits_size);
	if (full && o->note[0])
		APPEND("%s%s", used ? " " : "", o->note);
}

static void rec_time(struct rec *r, const char *key, const struct timespec *ts)
{
	char date[40];
	if (ts->tv_sec == 0 && ts->tv_nsec == 0)
		return rec_str(r, key, NULL);
	view_iso_date(ts, date, sizeof date);
	rec_fmt(r, key, "%sZ", date);
}

void describe_fields(struct rec *r, const struct obj *o)
{
	char text[PATH_MAX * 2];
	rec_str(r, "name", o->name);
	rec_str(r, "backend", obj_backend_name(o->backend));
	rec_str(r, "format", obj_format_name(o->format));
	rec_str(r, "type", o->naxis ? elem_name(o->type) : NULL);
	rec_dims(r, "shape", o->naxis, o->dims);
	rec_uint(r, "size", o->size);
	describe_user(o->uid, text, sizeof text);
	rec_str(r, "owner", text);
	rec_uint(r, "uid", o->uid);
	describe_group(o->gid, text, sizeof text);
	rec_str(r, "group", text);
	rec_uint(r, "gid", o->gid);
	rec_fmt(r, "mode", "%04o", (unsigned)o->mode);
	rec_time(r, o->backend == OBJ_SYSV ? "changed" : "modified", &o->mtime);
	if (o->backend == OBJ_POSIX) {
		snprintf(text, sizeof text, "%s/%s", o->dir, o->name);
		rec_str(r, "path", text);
	}
	if (o->format == OBJ_LINK) {
		rec_str(r, "target", o->target);
		rec_bool(r, "target_exists", o->target_exists);
	}
	if ((o->format == OBJ_STREAM || o->format == OBJ_LINK) && o->naxis) {
		rec_uint(r, "cnt0", o->stream.cnt0);
		rec_uint(r, "cnt1", o->stream.cnt1);
		rec_bool(r, "writing", o->writing);
		rec_str(r, "stream_name", o->stream.name);
	}
	if (o->format == OBJ_IMOD) {
		rec_uint(r, "capacity", o->capacity);
		rec_int(r, "mrc_mode", o->imod.mode);
	}
	if (o->format == OBJ_TYPED)
		rec_uint(r, "offset", o->typed.offset);
	if (o->backend == OBJ_SYSV) {
		char key[16];
		snprintf(key, sizeof key, "0x%08x", (unsigned)o->seg.ds.shm_perm.__key);
		rec_str(r, "key", key);
		rec_int(r, "shmid", o->seg.shmid);
		rec_uint(r, "nattch", o->seg.ds.shm_nattch);
		rec_int(r, "cpid", o->seg.ds.shm_cpid);
		rec_bool(r, "cpid_alive", o->creator_alive);
		rec_int(r, "lpid", o->seg.ds.shm_lpid);
	}
	if (o->format == OBJ_CFITSIO) {
		rec_fmt(r, "cfitsio", "shmem://h%d", o->slot.index);
		rec_uint(r, "fits_size", o->slot.fits_size);
	}
	if (o->note[0])
		rec_str(r, "note", o->note);
}

static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -1 : (ssize_t)done;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

static struct timespec get_ts(const unsigned char *m, size_t off)
{
	int64_t t[2];
	memcpy(t, m + off, sizeof t);
	struct timespec ts = {(time_t)t[0], t[1] >= 0 && t[1] < 1000000000 ? (long)t[1] : 0};
	return ts;
}

static void stream_keywords(struct rec *r, const unsigned char *kw, unsigned n)
{
	rec_array_begin(r, "keywords");
	for (unsigned i = 0; i < n; i++) {
		struct isio_keyword k;
		char value[64], key[40];
		if (isio_keyword(kw + (size_t)i * ISIO_KW_SIZE, &k) < 0)
			continue;
		isio_keyword_text(&k, value, sizeof value);
		if (!r->json) {
			snprintf(key, sizeof key, "keyword.%s", k.name);
			rec_fmt(r, key, "%s (%c)%s%s", value, k.type, k.comment[0] ? " / " : "",
				k.comment);
			continue;
		}
		rec_object_begin(r, NULL);
		rec_str(r, "name", k.name);
		rec_fmt(r, "type", "%c", k.type);
		if (k.type == 'L')
			rec_int(r, "value", (long long)k.l);
		else if (k.type == 'D')
			rec_real(r, "value", k.d);
		else
			rec_str(r, "value", k.s);
		rec_str(r, "comment", k.comment);
		rec_object_end(r);
	}
	rec_array_end(r);
}

/* The semaphores (values, and the PIDs of readers and writers that claimed
 * them), from a copy of their region: sem_getvalue only reads the value. */
static void stream_semaphores(struct rec *r, int fd, const struct isio_stream *s)
{
	size_t semlen = (size_t)s->nsem * ISIO_SEM_SIZE, r8 = ((size_t)s->nsem * 4 + 7) & ~(size_t)7;
	size_t len = ((semlen + 7) & ~(size_t)7) + ISIO_SEM_SIZE + 2 * r8;
	unsigned char *buf = aligned_alloc(16, (len + 15) & ~(size_t)15);
	if (!buf || pread_full(fd, buf, len, (off_t)s->off_sems) != (ssize_t)len) {
		free(buf);
		return;
	}
	const unsigned char *readers = buf + ((semlen + 7) & ~(size_t)7) + ISIO_SEM_SIZE;
	rec_array_begin(r, "semaphores");
	for (unsigned i = 0; i < s->nsem; i++) {
		int value = 0;
		int32_t rpid, wpid;
		sem_getvalue((sem_t *)(void *)(buf + (size_t)i * ISIO_SEM_SIZE), &value);
		memcpy(&rpid, readers + 4 * (size_t)i, 4);
		memcpy(&wpid, readers + r8 + 4 * (size_t)i, 4);
		if (!r->json) {
			char key[24];
			snprintf(key, sizeof key, "semaphore.%u", i);
			rec_fmt(r, key, "value=%d reader=%d writer=%d", value, rpid, wpid);
			continue;
		}
		rec_object_begin(r, NULL);
		rec_int(r, "value", value);
		rec_int(r, "reader_pid", rpid);
		rec_int(r, "writer_pid", wpid);
		rec_object_end(r);
	}
	rec_array_end(r);
	free(buf);
}

static void more_stream(struct rec *r, int fd)
{
	unsigned char meta[ISIO_META_SIZE];
	struct isio_stream s;
	struct stat st;
	char why[160];
	if (fstat(fd, &st) < 0 || pread_full(fd, meta, sizeof meta, 0) != (ssize_t)sizeof meta ||
	    isio_parse(meta, sizeof meta, (uint64_t)st.st_size, &s, why, sizeof why) < 0)
		return;
	struct timespec created = get_ts(meta, ISIO_OFF_CREATIONTIME);
	int32_t creator, owner;
	memcpy(&creator, meta + ISIO_OFF_CREATORPID, 4);
	memcpy(&owner, meta + ISIO_OFF_OWNERPID, 4);
	rec_uint(r, "nelement", s.nelement);
	rec_uint(r, "datasize", s.datasize);
	rec_time(r, "created", &created);
	rec_time(r, "writetime", &s.writetime);
	rec_time(r, "atime", &s.atime);
	rec_int(r, "creator_pid", creator);
	rec_bool(r, "creator_alive", obj_pid_alive(creator));
	rec_int(r, "owner_pid", owner);
	rec_uint(r, "nbkw", s.nbkw);
	rec_uint(r, "nsem", s.nsem);
	stream_semaphores(r, fd, &s);
	size_t kwlen = (size_t)s.nbkw * ISIO_KW_SIZE;
	unsigned char *kw = malloc(kwlen ? kwlen : 1);
	if (kw && pread_full(fd, kw, kwlen, (off_t)s.off_keywords) == (ssize_t)kwlen)
		stream_keywords(r, kw, s.nbkw);
	free(kw);
}

static void more_imod(struct rec *r, int fd, const struct obj *o)
{
	unsigned char head[IMOD_HEADER_AREA], mrc[MRC_HEADER_SIZE];
	struct imod_image img;
	char why[160];
	ssize_t got = pread_full(fd, head, sizeof head, 0);
	if (got < 0 || imod_parse(head, (size_t)got, o->capacity, o->size, &img, why, sizeof why) < 0)
		return;
	imod_mrc_header(head, &img, mrc);
	rec_uint(r, "data_bytes", img.data_bytes);
	int32_t nlabl;
	memcpy(&nlabl, mrc + MRC_OFF_NLABL, 4);
	rec_array_begin(r, "labels");
	for (int32_t i = 0; i < nlabl && i < 10; i++) {
		char label[MRC_LABEL + 1], key[16];
		memcpy(label, mrc + MRC_OFF_LABELS + MRC_LABEL * i, MRC_LABEL);
		label[MRC_LABEL] = '\0';
		for (int k = MRC_LABEL - 1; k >= 0 && label[k] == ' '; k--)
			label[k] = '\0';
		snprintf(key, sizeof key, "label.%d", (int)i);
		rec_str(r, r->json ? NULL : key, label); /* JSON: an item of the array */
	}
	rec_array_end(r);
}

static void more_sysv(struct rec *r, const struct obj *o)
{
	const struct shmid_ds *ds = &o->seg.ds;
	struct timespec at = {ds->shm_atime, 0}, dt = {ds->shm_dtime, 0};
	char name[64];
	rec_time(r, "attached", &at);
	rec_time(r, "detached", &dt);
	describe_user(ds->shm_perm.cuid, name, sizeof name);
	rec_str(r, "creator_user", name);
	describe_group(ds->shm_perm.cgid, name, sizeof name);
	rec_str(r, "creator_group", name);
	if (o->format != OBJ_CFITSIO)
		return;
	unsigned char *bytes;
	uint64_t len;
	if (cfshm_read_fits(cfshm_keybase(), cfshm_maxseg(), &o->slot, CFITSIO_WAIT_MS, &bytes,
			    &len) < 0)
		return;
	rec_array_begin(r, "header");
	for (uint64_t off = 0; off + 80 <= len; off += 80) {
		char card[81];
		memcpy(card, bytes + off, 80);
		card[80] = '\0';
		for (int k = 79; k >= 0 && card[k] == ' '; k--)
			card[k] = '\0';
		rec_str(r, r->json ? NULL : "card", card);
		if (strncmp(card, "END", 3) == 0 && (card[3] == '\0' || card[3] == ' '))
			break;
	}
	rec_array_end(r);
	free(bytes);
}

void describe_more(struct rec *r, const struct obj *o)
{
	if (o->backend == OBJ_SYSV)
		return more_sysv(r, o);
	if (o->format != OBJ_STREAM && o->format != OBJ_LINK && o->format != OBJ_IMOD)
		return;
	char path[PATH_MAX * 2];
	snprintf(path, sizeof path, "%s/%s", o->dir, o->name);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	if (o->format == OBJ_IMOD)
		more_imod(r, fd, o);
	else if (o->naxis)
		more_stream(r, fd);
	close(fd);
}
