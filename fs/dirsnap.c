/* dirsnap.c - directory listings taken at opendir (see fs.h): the offsets a
 * reader gets are indexes into the listing, valid whatever happens to the
 * directory meanwhile. A listing of a million names is one array of entries
 * and a few blocks of names (a name never moves once added, so the pointers
 * dirsnap_name() hands out stay good while the listing grows), found by
 * name through a hash index made the first time one is asked for. */
#define _GNU_SOURCE
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define NAME_BLOCK ((size_t)64 << 10)

struct dirsnap_entry {
	ino_t ino;
	const char *name; /* in a name block */
	mode_t type;
};

struct name_block {
	struct name_block *next;
	size_t used, size;
	char bytes[];
};

struct dirsnap {
	struct open_item item; /* first: fi->fh points here too */
	struct dirsnap_entry *entries;
	size_t count, cap;
	size_t real;              /* entries of SOURCE's own, before any view */
	struct name_block *names; /* newest first */
	size_t *index;            /* entry + 1 by name hash (0: empty), or NULL */
	size_t index_cap;         /* a power of two, at least twice count */
};

void *dirsnap_new(void)
{
	return calloc(1, sizeof(struct dirsnap));
}

void dirsnap_free(void *snapshot)
{
	struct dirsnap *d = snapshot;
	if (!d)
		return;
	while (d->names) {
		struct name_block *b = d->names;
		d->names = b->next;
		free(b);
	}
	free(d->entries);
	free(d->index);
	free(d);
}

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h ^ (h >> 29);
}

static void index_put(struct dirsnap *d, size_t i)
{
	size_t mask = d->index_cap - 1;
	size_t slot = (size_t)name_hash(d->entries[i].name) & mask;
	while (d->index[slot])
		slot = (slot + 1) & mask;
	d->index[slot] = i + 1;
}

/* (Re)make the index for the entries there are and room for as many more:
 * 0 or -ENOMEM (the old index, if any, is gone either way). */
static int index_make(struct dirsnap *d)
{
	free(d->index);
	d->index_cap = 64;
	while (d->index_cap < 4 * d->count)
		d->index_cap *= 2;
	d->index = calloc(d->index_cap, sizeof *d->index);
	if (!d->index)
		return -ENOMEM;
	for (size_t i = 0; i < d->count; i++)
		index_put(d, i);
	return 0;
}

/* A copy of NAME in the name blocks, or NULL. */
static const char *name_copy(struct dirsnap *d, const char *name)
{
	size_t len = strlen(name) + 1;
	struct name_block *b = d->names;
	if (!b || b->size - b->used < len) {
		size_t size = len > NAME_BLOCK ? len : NAME_BLOCK;
		b = malloc(sizeof *b + size);
		if (!b)
			return NULL;
		b->used = 0;
		b->size = size;
		b->next = d->names;
		d->names = b;
	}
	char *copy = b->bytes + b->used;
	memcpy(copy, name, len);
	b->used += len;
	return copy;
}

int dirsnap_add(void *snapshot, const char *name, ino_t ino, mode_t type)
{
	struct dirsnap *d = snapshot;
	if (d->count == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct dirsnap_entry *e = realloc(d->entries, cap * sizeof *e);
		if (!e)
			return -ENOMEM;
		d->entries = e;
		d->cap = cap;
	}
	const char *copy = name_copy(d, name);
	if (!copy)
		return -ENOMEM;
	d->entries[d->count++] = (struct dirsnap_entry){ino, copy, type};
	if (d->index && 2 * d->count > d->index_cap)
		return index_make(d);
	if (d->index)
		index_put(d, d->count - 1);
	return 0;
}

int dirsnap_has(void *snapshot, const char *name)
{
	struct dirsnap *d = snapshot;
	if (!d->index && index_make(d) < 0) { /* no memory for it: the long way */
		for (size_t i = 0; i < d->count; i++)
			if (strcmp(d->entries[i].name, name) == 0)
				return 1;
		return 0;
	}
	size_t mask = d->index_cap - 1;
	for (size_t slot = (size_t)name_hash(name) & mask; d->index[slot]; slot = (slot + 1) & mask)
		if (strcmp(d->entries[d->index[slot] - 1].name, name) == 0)
			return 1;
	return 0;
}

void dirsnap_drop(void *snapshot, const char *name)
{
	struct dirsnap *d = snapshot;
	for (size_t i = 0; i < d->count; i++) {
		if (strcmp(d->entries[i].name, name) == 0) {
			d->entries[i] = d->entries[--d->count];
			if (d->real > d->count)
				d->real = d->count;
			free(d->index); /* entries moved: made again when asked */
			d->index = NULL;
			return;
		}
	}
}

void dirsnap_set_real(void *snapshot) { ((struct dirsnap *)snapshot)->real = ((struct dirsnap *)snapshot)->count; }
size_t dirsnap_real(void *snapshot) { return ((struct dirsnap *)snapshot)->real; }
size_t dirsnap_count(void *snapshot) { return ((struct dirsnap *)snapshot)->count; }
const char *dirsnap_name(void *snapshot, size_t i) { return ((struct dirsnap *)snapshot)->entries[i].name; }
mode_t dirsnap_type(void *snapshot, size_t i) { return ((struct dirsnap *)snapshot)->entries[i].type; }
ino_t dirsnap_ino(void *snapshot, size_t i) { return ((struct dirsnap *)snapshot)->entries[i].ino; }
