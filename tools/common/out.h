/* out.h - how the tools print: a table aligned for a terminal or tab-separated
 * for a pipe, and records as "key: value" lines or as one JSON object per
 * line. Text from segments is untrusted: JSON strings come out as escaped
 * ASCII, and table cells lose control characters. */
#ifndef SHMTOOLS_OUT_H
#define SHMTOOLS_OUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* A table of NCOLS columns; RIGHT[i] says column i is right-aligned. */
struct table {
	int ncols;
	const char *const *heads;
	const int *right;
	char **cells;          /* nrows x ncols, owned */
	size_t nrows, cap;
};

void table_init(struct table *t, int ncols, const char *const *heads, const int *right);
/* Add a row of NCOLS cells (copied; NULL or "" prints as "-").
 * Returns 0 or -ENOMEM. */
int table_add(struct table *t, const char *const *cells);
/* ALIGNED: a heading and columns padded with spaces; otherwise no heading
 * and cells separated by tabs. */
void table_print(const struct table *t, FILE *f, int aligned);
void table_free(struct table *t);

/* A record: "key: value" lines, or (JSON) one object on one line. Nested
 * objects prefix their keys in text ("stream.cnt0"); arrays of objects are
 * for JSON only. */
struct rec {
	FILE *f;
	int json;
	int first;             /* JSON: nothing written at this level yet */
	int depth;
	char prefix[128];      /* text: the keys of the enclosing objects */
};

void rec_begin(struct rec *r, FILE *f, int json);
void rec_end(struct rec *r);
void rec_str(struct rec *r, const char *key, const char *value); /* NULL: null / "-" */
void rec_fmt(struct rec *r, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void rec_int(struct rec *r, const char *key, long long value);
void rec_uint(struct rec *r, const char *key, unsigned long long value);
void rec_bool(struct rec *r, const char *key, int value);
void rec_real(struct rec *r, const char *key, double value);
/* Axes as a JSON array, or "512,512" in text; N 0 gives null / "-". */
void rec_dims(struct rec *r, const char *key, int n, const uint64_t *dims);
void rec_object_begin(struct rec *r, const char *key); /* KEY NULL: an array item */
void rec_object_end(struct rec *r);
void rec_array_begin(struct rec *r, const char *key);
void rec_array_end(struct rec *r);

/* Write S as a JSON string (quoted, escaped, plain ASCII). */
void json_string(FILE *f, const char *s);

#endif
