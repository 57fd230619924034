/* sysvview.c - views in the System V directory: sysv/0xKEY.fits for a
 * CFITSIO shared-memory file (shmem://hN) with sysv/hN.fits a link to it, and
 * NAME.fits for a segment the user typed with user.shmfs.* attributes. A
 * segment has no file to keep attributes in, so typed layouts live in the
 * daemon, as long as the mount (and the segment). */
#define _GNU_SOURCE
#include "viewint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfshm.h"
#include "log.h"
#include "sysv.h"

#define SHMFS_PREFIX "user.shmfs."
#define LINK_INO_BASE 0x4c494e4b00000000ull /* inode numbers of hN.fits links */

/* One segment's layout, as the user gave it; fs->typed_lock. */
struct sysv_typed {
	struct sysv_typed *next;
	int shmid;
	char type[64], shape[256], offset[64];
};

static struct sysv_typed *typed_find(struct shmfs *fs, int shmid)
{
	for (struct sysv_typed *t = fs->typed; t; t = t->next)
		if (t->shmid == shmid)
			return t;
	return NULL;
}

int sysvview_layout(struct shmfs *fs, int shmid, uint64_t segsz, struct typed_layout *l,
		    char *why, size_t whylen)
{
	pthread_mutex_lock(&fs->typed_lock);
	struct sysv_typed *t = typed_find(fs, shmid);
	int rc = t ? typed_parse(t->type[0] ? t->type : NULL, t->shape[0] ? t->shape : NULL,
				 t->offset[0] ? t->offset : NULL, segsz, l, why, whylen)
		   : -ENODATA;
	pthread_mutex_unlock(&fs->typed_lock);
	return rc;
}

void sysvview_free_all(struct shmfs *fs)
{
	pthread_mutex_lock(&fs->typed_lock);
	while (fs->typed) {
		struct sysv_typed *t = fs->typed;
		fs->typed = t->next;
		free(t);
	}
	pthread_mutex_unlock(&fs->typed_lock);
}

void sysvview_forget_segment(struct shmfs *fs, int shmid)
{
	pthread_mutex_lock(&fs->typed_lock);
	for (struct sysv_typed **pp = &fs->typed; *pp; pp = &(*pp)->next) {
		if ((*pp)->shmid == shmid) {
			struct sysv_typed *t = *pp;
			*pp = t->next;
			free(t);
			break;
		}
	}
	pthread_mutex_unlock(&fs->typed_lock);
}

/* Parse "hN.fits": N, or -1. */
static int link_slot(const char *name)
{
	int n = 0, digits = 0;
	if (name[0] != 'h')
		return -1;
	const char *p = name + 1;
	for (; *p >= '0' && *p <= '9' && digits < 4; p++, digits++)
		n = n * 10 + (*p - '0');
	return digits && strcmp(p, ".fits") == 0 && !(digits > 1 && name[1] == '0') ? n : -1;
}

static int entry_for(struct shmfs *fs, int shmid, enum view_kind kind, ino_t ino,
		     struct fuse_entry_param *e)
{
	if (kind != VK_CFITSIO_LINK) {
		int rc = view_sysv_entry(fs, shmid, kind, ino, e);
		return rc == -ENODATA ? -ENOENT : rc;
	}
	struct node *n = inode_get_view(&fs->table, -1, 0, ino, kind, shmid);
	if (!n)
		return -ENOMEM;
	memset(e, 0, sizeof *e);
	int rc = view_node_stat(fs, n, &e->attr);
	if (rc < 0) {
		inode_forget(fs, n, 1);
		return rc == -ENODATA ? -ENOENT : rc;
	}
	e->ino = inode_number(fs, n);
	e->entry_timeout = fs->timeout;
	e->attr_timeout = 0;
	return 0;
}

int sysvview_entry(struct shmfs *fs, const char *name, struct fuse_entry_param *e)
{
	struct cfshm_slot slot;
	int index = link_slot(name);
	if (index >= 0) {
		struct cfshm_slot slots[64];
		int count = cfshm_slots(cfshm_keybase(), cfshm_maxseg(), slots, 64);
		for (int i = 0; i < count; i++)
			if (slots[i].index == index)
				return entry_for(fs, slots[i].shmid, VK_CFITSIO_LINK,
						 (ino_t)(LINK_INO_BASE | (uint64_t)index), e);
		return -ENOENT;
	}
	size_t len = strlen(name);
	if (len <= 5 || strcmp(name + len - 5, ".fits") != 0 || len - 5 >= SYSV_NAME_MAX)
		return -ENOENT;
	char base[SYSV_NAME_MAX];
	snprintf(base, sizeof base, "%.*s", (int)(len - 5), name);
	struct sysv_seg seg;
	if (sysv_lookup(base, &seg) < 0)
		return -ENOENT;
	if (seg.ds.shm_perm.__key != 0 &&
	    cfshm_find_key(cfshm_keybase(), cfshm_maxseg(), seg.ds.shm_perm.__key, &slot) == 0 &&
	    slot.shmid == seg.shmid)
		return entry_for(fs, seg.shmid, VK_CFITSIO_FITS, (ino_t)seg.shmid, e);
	return entry_for(fs, seg.shmid, VK_SYSV_TYPED_FITS, (ino_t)seg.shmid, e);
}

int sysvview_list(struct shmfs *fs, void *snapshot)
{
	struct cfshm_slot slots[64];
	char name[SYSV_NAME_MAX + 8];
	int rc = 0;
	int count = cfshm_slots(cfshm_keybase(), cfshm_maxseg(), slots, 64);
	for (int i = 0; rc == 0 && i < count; i++) {
		snprintf(name, sizeof name, "0x%08x.fits", (unsigned)slots[i].key);
		rc = dirsnap_add(snapshot, name, sysv_ino(slots[i].shmid), S_IFREG);
		snprintf(name, sizeof name, "h%d.fits", slots[i].index);
		if (rc == 0)
			rc = dirsnap_add(snapshot, name, (ino_t)(LINK_INO_BASE | (uint64_t)slots[i].index),
					 S_IFLNK);
	}
	pthread_mutex_lock(&fs->typed_lock);
	for (struct sysv_typed *t = fs->typed; rc == 0 && t; t = t->next) {
		struct sysv_seg seg = {.shmid = t->shmid};
		struct typed_layout l;
		char why[160];
		if (sysv_stat(&seg) < 0 ||
		    typed_parse(t->type[0] ? t->type : NULL, t->shape[0] ? t->shape : NULL,
				t->offset[0] ? t->offset : NULL, seg.ds.shm_segsz, &l, why,
				sizeof why) < 0)
			continue;
		sysv_name_format(name, seg.ds.shm_perm.__key, seg.shmid);
		strcat(name, ".fits");
		if (!dirsnap_has(snapshot, name))
			rc = dirsnap_add(snapshot, name, sysv_ino(seg.shmid) ^ 1, S_IFREG);
	}
	pthread_mutex_unlock(&fs->typed_lock);
	return rc;
}

off_t sysvview_link_text(key_t key, char *buf, size_t len)
{
	return (off_t)snprintf(buf, len, "0x%08x.fits", (unsigned)key);
}

int sysvview_readlink(struct shmfs *fs, struct node *n, char *buf, size_t len)
{
	struct sysv_seg seg = {.shmid = n->shmid};
	(void)fs;
	if (n->variant != VK_CFITSIO_LINK || sysv_stat(&seg) < 0)
		return -ENOENT;
	sysvview_link_text(seg.ds.shm_perm.__key, buf, len);
	return 0;
}

/* user.shmfs.* of a segment: its format, and the layout if typed. */
static int segment_info(struct shmfs *fs, int shmid, const char *key, char *out, size_t len)
{
	struct sysv_seg seg = {.shmid = shmid};
	struct typed_layout l;
	struct cfshm_slot slot;
	char why[160];
	if (sysv_stat(&seg) < 0)
		return -ENOENT;
	int typed = sysvview_layout(fs, shmid, seg.ds.shm_segsz, &l, why, sizeof why) == 0;
	int cfitsio = seg.ds.shm_perm.__key &&
		      cfshm_find_key(cfshm_keybase(), cfshm_maxseg(), seg.ds.shm_perm.__key,
				     &slot) == 0 && slot.shmid == shmid;
	if (!strcmp(key, "format"))
		snprintf(out, len, "%s", cfitsio ? "cfitsio" : typed ? "typed" : "raw");
	else if (!strcmp(key, "type") && typed)
		snprintf(out, len, "%s", elem_name(l.type));
	else if (!strcmp(key, "shape") && typed)
		typed_shape_text(&l, out, len);
	else if (!strcmp(key, "offset") && typed)
		snprintf(out, len, "%llu", (unsigned long long)l.offset);
	else if (!strcmp(key, "cfitsio") && cfitsio)
		snprintf(out, len, "shmem://h%d", slot.index);
	else
		return -ENODATA;
	return 0;
}

void sysvview_getxattr(fuse_req_t req, struct node *n, const char *name, size_t size)
{
	char v[300];
	/* No security label, no POSIX ACL: not supported (xattr_get says why:
	 * ls -l then stops asking, instead of two round trips per segment). */
	if (!strncmp(name, "security.", 9) || !strncmp(name, "system.", 7))
		return (void)fuse_reply_err(req, EOPNOTSUPP);
	if (n->shmid < 0 || strncmp(name, SHMFS_PREFIX, sizeof SHMFS_PREFIX - 1) != 0)
		return (void)fuse_reply_err(req, ENODATA);
	int rc = segment_info(shmfs_of(req), n->shmid, name + sizeof SHMFS_PREFIX - 1, v, sizeof v);
	if (rc < 0)
		return (void)fuse_reply_err(req, -rc);
	xattr_reply_value(req, v, strlen(v), size);
}

void sysvview_listxattr(fuse_req_t req, struct node *n, size_t size)
{
	static const char *keys[] = {"format", "type", "shape", "offset", "cfitsio"};
	char list[256], v[300];
	size_t used = 0;
	for (size_t i = 0; n->shmid >= 0 && i < sizeof keys / sizeof *keys; i++)
		if (segment_info(shmfs_of(req), n->shmid, keys[i], v, sizeof v) == 0)
			used += (size_t)snprintf(list + used, sizeof list - used, SHMFS_PREFIX "%s",
						 keys[i]) + 1;
	xattr_reply_value(req, list, used, size);
}

void sysvview_setxattr(fuse_req_t req, struct node *n, const char *name, const char *value,
		       size_t size)
{
	struct shmfs *fs = shmfs_of(req);
	char *field;
	size_t cap;
	struct sysv_seg seg = {.shmid = n->shmid};
	if (n->shmid < 0 || sysv_stat(&seg) < 0)
		return (void)fuse_reply_err(req, ENOENT);
	if (!sysv_is_owner(&seg.ds, fuse_req_ctx(req)->uid))
		return (void)fuse_reply_err(req, EPERM);
	pthread_mutex_lock(&fs->typed_lock);
	struct sysv_typed *t = typed_find(fs, n->shmid);
	struct sysv_typed fresh = {.shmid = n->shmid};
	struct sysv_typed work = t ? *t : fresh;
	if (!strcmp(name, TYPED_XATTR_TYPE))
		field = work.type, cap = sizeof work.type;
	else if (!strcmp(name, TYPED_XATTR_SHAPE))
		field = work.shape, cap = sizeof work.shape;
	else if (!strcmp(name, TYPED_XATTR_OFFSET))
		field = work.offset, cap = sizeof work.offset;
	else {
		pthread_mutex_unlock(&fs->typed_lock);
		return (void)fuse_reply_err(req, ENOTSUP); /* segments keep no other attributes */
	}
	int rc = 0;
	char why[160];
	struct typed_layout l;
	if (size >= cap || memchr(value, '\0', size)) {
		rc = -EINVAL;
	} else {
		memcpy(field, value, size);
		field[size] = '\0';
		if (work.type[0] && elem_parse(work.type) == ELEM_NONE)
			rc = -EINVAL, snprintf(why, sizeof why, "unknown element type '%s'", work.type);
		else
			rc = typed_parse(work.type[0] ? work.type : NULL,
					 work.shape[0] ? work.shape : NULL,
					 work.offset[0] ? work.offset : NULL, seg.ds.shm_segsz, &l, why,
					 sizeof why);
		if (rc == -ENODATA)
			rc = 0;
	}
	if (rc == 0 && !t) {
		t = malloc(sizeof *t);
		if (!t)
			rc = -ENOMEM;
		else {
			work.next = fs->typed;
			fs->typed = t;
		}
	} else if (rc == 0) {
		work.next = t->next;
	}
	if (rc == 0)
		*t = work;
	pthread_mutex_unlock(&fs->typed_lock);
	if (rc == -EINVAL)
		shm_log(SHM_LOG_WARN, "%s refused on a System V segment: %s", name, why);
	fuse_reply_err(req, -rc);
}

void sysvview_removexattr(fuse_req_t req, struct node *n, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	pthread_mutex_lock(&fs->typed_lock);
	struct sysv_typed *t = typed_find(fs, n->shmid);
	int rc = -ENODATA;
	if (t) {
		char *field = !strcmp(name, TYPED_XATTR_TYPE)    ? t->type
			      : !strcmp(name, TYPED_XATTR_SHAPE)  ? t->shape
			      : !strcmp(name, TYPED_XATTR_OFFSET) ? t->offset : NULL;
		if (field && field[0]) {
			field[0] = '\0';
			rc = 0;
		}
	}
	pthread_mutex_unlock(&fs->typed_lock);
	fuse_reply_err(req, -rc);
}
