/* xattr.c - extended attributes: what shmfs knows of each object, as
 * user.shmfs.* (format, element type, shape, and for streams CNT0 and the
 * keywords), and the typed layout a user gives a raw object (the IDL SHMMAP
 * model): user.shmfs.type, .shape and .offset, checked against the object's
 * size and kept in the backing file's own attributes, so they last as long as
 * the object. Other attributes of POSIX objects are the backing file's.
 *
 * Cost: the kernel asks for security.capability before writes it sends
 * through the daemon only on the page-cache write path, which shmfs never
 * uses (raw files are passthrough or direct I/O), so implementing getxattr
 * adds no request to writes (tests/bench measures 4 KiB writes). */
#define _GNU_SOURCE
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "imod.h"
#include "isio.h"
#include "log.h"
#include "typed.h"

#define SHMFS_PREFIX "user.shmfs."
#define INFO_MAX 65536

/* Append "key=value" as a line to BUF. Keys and values come from segment
 * contents (stream keywords): anything that is not printable ASCII, and '='
 * in keys, becomes '_', so no content can forge or hide another line. */
static void add(char *buf, size_t *used, const char *key, const char *value)
{
	char k[64], v[300];
	size_t i;
	for (i = 0; key[i] && i < sizeof k - 1; i++)
		k[i] = (key[i] > 0x20 && key[i] < 0x7f && key[i] != '=') ? key[i] : '_';
	k[i] = '\0';
	for (i = 0; value[i] && i < sizeof v - 1; i++)
		v[i] = (value[i] >= 0x20 && value[i] < 0x7f) ? value[i] : '_';
	v[i] = '\0';
	if (*used < INFO_MAX)
		*used += (size_t)snprintf(buf + *used, INFO_MAX - *used, "%s%s=%s", *used ? "\n" : "",
					  k, v);
	if (*used > INFO_MAX)
		*used = INFO_MAX;
}

/* The names of user.shmfs.* a user may set: a typed layout. */
static int is_layout_name(const char *name)
{
	return !strcmp(name, TYPED_XATTR_TYPE) || !strcmp(name, TYPED_XATTR_SHAPE) ||
	       !strcmp(name, TYPED_XATTR_OFFSET);
}

static int is_shmfs_name(const char *name)
{
	return strncmp(name, SHMFS_PREFIX, sizeof SHMFS_PREFIX - 1) == 0;
}

/* What shmfs knows of the POSIX object at PATH (a /proc/self/fd path):
 * fills INFO with "name=value" lines for the names after user.shmfs.
 * Returns 0 or -errno. */
static int posix_info(const char *path, char *info, size_t *used)
{
	char name[NAME_MAX + 1], v[256], why[160];
	struct stat st;
	*used = 0;
	info[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -ENODATA;
	}
	fd_object_name(fd, name, sizeof name);
	unsigned char head[IMOD_HEADER_AREA];
	ssize_t got = pread(fd, head, sizeof head, 0);
	struct isio_stream s;
	struct imod_image img;
	struct typed_layout tl;
	uint64_t capacity = imod_name_capacity(name);
	if (got >= 0 && isio_is_stream_name(name) &&
	    isio_parse(head, (size_t)got, (uint64_t)st.st_size, &s, why, sizeof why) == 0) {
		add(info, used, "format", "stream");
		add(info, used, "type", elem_name(s.type));
		snprintf(v, sizeof v, "%u", s.size[0]);
		for (int i = 1; i < s.naxis; i++)
			snprintf(v + strlen(v), sizeof v - strlen(v), ",%u", s.size[i]);
		add(info, used, "shape", v);
		snprintf(v, sizeof v, "%llu", (unsigned long long)s.cnt0);
		add(info, used, "cnt0", v);
		add(info, used, "name", s.name);
		size_t kwlen = (size_t)s.nbkw * ISIO_KW_SIZE;
		unsigned char *kw = kwlen ? malloc(kwlen) : NULL;
		if (kw && pread(fd, kw, kwlen, (off_t)s.off_keywords) == (ssize_t)kwlen) {
			for (unsigned i = 0; i < s.nbkw; i++) {
				struct isio_keyword k;
				char key[40];
				if (isio_keyword(kw + (size_t)i * ISIO_KW_SIZE, &k) < 0)
					continue;
				snprintf(key, sizeof key, "keyword.%s", k.name);
				isio_keyword_text(&k, v, sizeof v);
				add(info, used, key, v);
			}
		}
		free(kw);
	} else if (got >= 0 && capacity &&
		   imod_parse(head, (size_t)got, capacity, (uint64_t)st.st_size, &img, why,
			      sizeof why) == 0) {
		add(info, used, "format", "imod");
		add(info, used, "type", elem_name(img.type));
		snprintf(v, sizeof v, "%d,%d,%d", img.nx, img.ny, img.nz);
		add(info, used, "shape", v);
	} else if (typed_read_fd(fd, (uint64_t)st.st_size, &tl, why, sizeof why) == 0) {
		add(info, used, "format", "typed");
		add(info, used, "type", elem_name(tl.type));
		typed_shape_text(&tl, v, sizeof v);
		add(info, used, "shape", v);
		snprintf(v, sizeof v, "%llu", (unsigned long long)tl.offset);
		add(info, used, "offset", v);
	} else {
		add(info, used, "format", "raw");
	}
	close(fd);
	return 0;
}

/* The value of user.shmfs.NAME from INFO lines, or NULL. */
static const char *info_value(const char *info, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *p = info; *p;) {
		const char *end = strchr(p, '\n');
		size_t linelen = end ? (size_t)(end - p) : strlen(p);
		if (linelen > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			*len = linelen - nl - 1;
			return p + nl + 1;
		}
		p += linelen + (end ? 1 : 0);
	}
	return NULL;
}

void xattr_reply_value(fuse_req_t req, const char *value, size_t len, size_t size)
{
	if (size == 0)
		return (void)fuse_reply_xattr(req, len);
	if (len > size)
		return (void)fuse_reply_err(req, ERANGE);
	fuse_reply_buf(req, value, len);
}

/* GETXATTR, LISTXATTR and SETXATTR of the object at PATH (/proc/self/fd/N
 * of an O_PATH descriptor of it); each replies. */
static void get_at(fuse_req_t req, const char *path, const char *name, size_t size)
{
	/* Stored attributes (the backing file's own, and a typed layout, the
	 * user's text) go straight through: ls -l asks security.selinux of
	 * every file, so this path must cost no more than the system call. */
	if (!is_shmfs_name(name) || is_layout_name(name)) {
		char small[4096];
		char *buf = size <= sizeof small ? small : malloc(size);
		if (!buf)
			return (void)fuse_reply_err(req, ENOMEM);
		ssize_t len = getxattr(path, name, buf, size);
		int err = errno;
		if (len >= 0)
			size ? fuse_reply_buf(req, buf, (size_t)len) : fuse_reply_xattr(req, (size_t)len);
		if (buf != small)
			free(buf);
		if (len >= 0)
			return;
		/* No security label and no POSIX ACL: say they are not supported,
		 * as a filesystem without them does (the mount checks mode bits
		 * only). ls -l asks security.selinux and system.posix_acl_access
		 * of every file, a round trip each, and stops asking for the rest
		 * of the mount after an EOPNOTSUPP (ls -l of 10,000 objects: 9x a
		 * direct ls -l before). */
		if (err == ENODATA &&
		    (strncmp(name, "security.", 9) == 0 || strncmp(name, "system.", 7) == 0))
			return (void)fuse_reply_err(req, EOPNOTSUPP);
		if (err != ENODATA || !is_shmfs_name(name))
			/* symlinks and directories of tmpfs take no user attributes */
			return (void)fuse_reply_err(req, err == ENOTSUP || err == EPERM ? ENODATA : err);
	}
	/* What shmfs knows is computed every time. */
	char *info = malloc(INFO_MAX + 1);
	if (!info)
		return (void)fuse_reply_err(req, ENOMEM);
	size_t used, vlen;
	int rc = posix_info(path, info, &used);
	const char *v = rc == 0 ? info_value(info, name + sizeof SHMFS_PREFIX - 1, &vlen) : NULL;
	if (v)
		xattr_reply_value(req, v, vlen, size);
	else
		fuse_reply_err(req, ENODATA);
	free(info);
}

static void list_at(fuse_req_t req, const char *path, size_t size)
{
	char *list = malloc(2 * INFO_MAX + 2);
	char *info = malloc(INFO_MAX + 1);
	if (!list || !info) {
		free(list);
		free(info);
		return (void)fuse_reply_err(req, ENOMEM);
	}
	ssize_t len = listxattr(path, list, INFO_MAX);
	if (len < 0)
		len = 0;
	size_t used = 0;
	if (posix_info(path, info, &used) == 0) {
		/* each info line's name, unless the object has it stored */
		for (char *p = info; *p;) {
			char *end = strchr(p, '\n');
			char *eq = strchr(p, '=');
			if (!eq || (end && eq > end))
				break;
			char full[300];
			snprintf(full, sizeof full, SHMFS_PREFIX "%.*s", (int)(eq - p), p);
			int stored = 0;
			for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
				stored |= strcmp(list + i, full) == 0;
			if (!stored && (size_t)len + strlen(full) + 1 < 2 * INFO_MAX) {
				memcpy(list + len, full, strlen(full) + 1);
				len += (ssize_t)strlen(full) + 1;
			}
			if (!end)
				break;
			p = end + 1;
		}
	}
	xattr_reply_value(req, list, (size_t)len, size);
	free(list);
	free(info);
}

static void set_at(fuse_req_t req, const char *path, const char *name, const char *value,
		   size_t size, int flags)
{
	if (is_shmfs_name(name) && !is_layout_name(name)) {
		/* Computed every time, never stored: a value set (cp -a copies
		 * them) is accepted and has no effect, so copies work and nothing
		 * goes stale. */
		shm_log_once(SHM_LOG_INFO, "%s is computed by shmfs: setting it has no effect", name);
		return (void)fuse_reply_err(req, 0);
	}
	int is_type = !strcmp(name, TYPED_XATTR_TYPE), is_shape = !strcmp(name, TYPED_XATTR_SHAPE);
	int is_offset = !strcmp(name, TYPED_XATTR_OFFSET);
	if (is_type || is_shape || is_offset) {
		/* The layout as it would be with this value must fit. */
		char t[64] = "", s[256] = "", o[64] = "", why[160];
		char *mine = is_type ? t : is_shape ? s : o;
		size_t cap = is_type ? sizeof t : is_shape ? sizeof s : sizeof o;
		if (size >= cap)
			return (void)fuse_reply_err(req, EINVAL);
		ssize_t tl = getxattr(path, TYPED_XATTR_TYPE, t, sizeof t - 1);
		ssize_t sl = getxattr(path, TYPED_XATTR_SHAPE, s, sizeof s - 1);
		ssize_t ol = getxattr(path, TYPED_XATTR_OFFSET, o, sizeof o - 1);
		t[tl > 0 ? tl : 0] = s[sl > 0 ? sl : 0] = o[ol > 0 ? ol : 0] = '\0';
		memcpy(mine, value, size);
		mine[size] = '\0';
		struct stat st;
		struct typed_layout l;
		if (stat(path, &st) < 0)
			return (void)fuse_reply_err(req, errno);
		if (is_type && elem_parse(t) == ELEM_NONE) {
			shm_log_once(SHM_LOG_WARN, "%s: unknown element type '%.40s'", name, t);
			return (void)fuse_reply_err(req, EINVAL);
		}
		int rc = typed_parse(t[0] ? t : NULL, s[0] ? s : NULL, o[0] ? o : NULL,
				     (uint64_t)st.st_size, &l, why, sizeof why);
		if (rc == -EINVAL) {
			shm_log(SHM_LOG_WARN, "%s refused: %s", name, why);
			return (void)fuse_reply_err(req, EINVAL);
		}
	}
	fuse_reply_err(req, setxattr(path, name, value, size, flags) < 0 ? errno : 0);
}

/* A path that reaches the object of node N (/proc/self/fd/FD) into PATH:
 * returns FD, given back with object_done; or -1 once the request is
 * answered: with OTHER if N is no POSIX node, else with why the object
 * cannot be reached. N is held till object_done: the kernel may forget it
 * as soon as it has the reply, which comes first. */
static int object_path(fuse_req_t req, struct node *n, char path[64], int other, int *held)
{
	struct shmfs *fs = shmfs_of(req);
	if (n->kind != NODE_POSIX) {
		fuse_reply_err(req, other);
		return -1;
	}
	int fd = inode_fd(fs, n);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return -1;
	}
	*held = n != &fs->root && inode_ref(&fs->table, n);
	proc_path(path, fd);
	return fd;
}

static void object_done(struct shmfs *fs, struct node *n, int fd, int held)
{
	inode_fd_put(fs, n, fd);
	if (held)
		inode_forget(fs, n, 1);
}

void xattr_get(fuse_req_t req, struct node *n, const char *name, size_t size)
{
	struct shmfs *fs = shmfs_of(req);
	char path[64];
	int held, fd = object_path(req, n, path, ENODATA, &held);
	if (fd >= 0) {
		get_at(req, path, name, size);
		object_done(fs, n, fd, held);
	}
}

void xattr_list(fuse_req_t req, struct node *n, size_t size)
{
	struct shmfs *fs = shmfs_of(req);
	char path[64];
	if (n->kind != NODE_POSIX)
		return xattr_reply_value(req, "", 0, size);
	int held, fd = object_path(req, n, path, ENODATA, &held);
	if (fd >= 0) {
		list_at(req, path, size);
		object_done(fs, n, fd, held);
	}
}

void xattr_set(fuse_req_t req, struct node *n, const char *name, const char *value, size_t size,
	       int flags)
{
	struct shmfs *fs = shmfs_of(req);
	char path[64];
	int held, fd = object_path(req, n, path, ENOTSUP, &held);
	if (fd >= 0) {
		set_at(req, path, name, value, size, flags);
		object_done(fs, n, fd, held);
	}
}

void xattr_remove(fuse_req_t req, struct node *n, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	char path[64];
	int held, fd = object_path(req, n, path, ENODATA, &held);
	if (fd >= 0) {
		fuse_reply_err(req, removexattr(path, name) < 0 ? errno : 0);
		object_done(fs, n, fd, held);
	}
}
