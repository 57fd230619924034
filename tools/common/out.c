/* out.c - tables and records for the tools' output; see out.h. */
#define _GNU_SOURCE
#include "out.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TEXT_KEY_WIDTH 18

void table_init(struct table *t, int ncols, const char *const *heads, const int *right)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	t->heads = heads;
	t->right = right;
}

/* A copy of S fit for one cell: control characters and tabs become '?'. */
static char *cell_copy(const char *s)
{
	char *c = strdup(s && *s ? s : "-");
	for (char *p = c; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

int table_add(struct table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 32;
		char **grown = realloc(t->cells, cap * (size_t)t->ncols * sizeof *grown);
		if (!grown)
			return -ENOMEM;
		t->cells = grown;
		t->cap = cap;
	}
	char **row = t->cells + t->nrows * (size_t)t->ncols;
	for (int i = 0; i < t->ncols; i++) {
		row[i] = cell_copy(cells[i]);
		if (!row[i]) {
			while (i--)
				free(row[i]);
			return -ENOMEM;
		}
	}
	t->nrows++;
	return 0;
}

static void print_row(const struct table *t, FILE *f, const char *const *row, const size_t *width)
{
	for (int i = 0; i < t->ncols; i++) {
		int last = i == t->ncols - 1;
		if (!width) {
			fprintf(f, "%s%s", row[i], last ? "\n" : "\t");
			continue;
		}
		int w = (int)width[i];
		if (t->right && t->right[i])
			fprintf(f, "%*s", w, row[i]);
		else if (last)
			fprintf(f, "%s", row[i]);
		else
			fprintf(f, "%-*s", w, row[i]);
		fputs(last ? "\n" : "  ", f);
	}
}

void table_print(const struct table *t, FILE *f, int aligned)
{
	if (!aligned) {
		for (size_t r = 0; r < t->nrows; r++)
			print_row(t, f, (const char *const *)t->cells + r * (size_t)t->ncols, NULL);
		return;
	}
	size_t *width = calloc((size_t)t->ncols, sizeof *width);
	if (!width)
		return; /* no memory for the widths: nothing sensible to print */
	for (int i = 0; i < t->ncols; i++)
		width[i] = strlen(t->heads[i]);
	for (size_t r = 0; r < t->nrows; r++)
		for (int i = 0; i < t->ncols; i++) {
			size_t n = strlen(t->cells[r * (size_t)t->ncols + (size_t)i]);
			if (n > width[i])
				width[i] = n;
		}
	print_row(t, f, t->heads, width);
	for (size_t r = 0; r < t->nrows; r++)
		print_row(t, f, (const char *const *)t->cells + r * (size_t)t->ncols, width);
	free(width);
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p); /* bytes of unknown encoding, as Latin-1 */
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void rec_begin(struct rec *r, FILE *f, int json)
{
	memset(r, 0, sizeof *r);
	r->f = f;
	r->json = json;
	r->first = 1;
	if (json)
		fputc('{', f);
}

void rec_end(struct rec *r)
{
	if (r->json)
		fputs("}\n", r->f);
	fflush(r->f);
}

/* Start a field: JSON comma and key, or the text key. */
static void field(struct rec *r, const char *key)
{
	if (r->json) {
		if (!r->first)
			fputc(',', r->f);
		r->first = 0;
		if (key) {
			json_string(r->f, key);
			fputc(':', r->f);
		}
		return;
	}
	char full[256];
	snprintf(full, sizeof full, "%s%s:", r->prefix, key ? key : "");
	fprintf(r->f, "%-*s ", TEXT_KEY_WIDTH, full);
}

void rec_str(struct rec *r, const char *key, const char *value)
{
	field(r, key);
	if (r->json) {
		if (value)
			json_string(r->f, value);
		else
			fputs("null", r->f);
		return;
	}
	/* one line per field, whatever the value holds */
	for (const char *p = value ? value : "-"; *p; p++)
		fputc((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p, r->f);
	fputc('\n', r->f);
}

void rec_fmt(struct rec *r, const char *key, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	rec_str(r, key, buf);
}

void rec_int(struct rec *r, const char *key, long long value)
{
	field(r, key);
	fprintf(r->f, r->json ? "%lld" : "%lld\n", value);
}

void rec_uint(struct rec *r, const char *key, unsigned long long value)
{
	field(r, key);
	fprintf(r->f, r->json ? "%llu" : "%llu\n", value);
}

void rec_bool(struct rec *r, const char *key, int value)
{
	field(r, key);
	fprintf(r->f, r->json ? "%s" : "%s\n", value ? (r->json ? "true" : "yes")
						     : (r->json ? "false" : "no"));
}

void rec_real(struct rec *r, const char *key, double value)
{
	field(r, key);
	if (r->json && !isfinite(value))
		fputs("null", r->f);
	else
		fprintf(r->f, r->json ? "%.17g" : "%.17g\n", value);
}

void rec_dims(struct rec *r, const char *key, int n, const uint64_t *dims)
{
	field(r, key);
	if (n == 0) {
		fputs(r->json ? "null" : "-\n", r->f);
		return;
	}
	if (r->json)
		fputc('[', r->f);
	for (int i = 0; i < n; i++)
		fprintf(r->f, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
	fputs(r->json ? "]" : "\n", r->f);
}

void rec_object_begin(struct rec *r, const char *key)
{
	r->depth++;
	if (r->json) {
		field(r, key);
		fputc('{', r->f);
		r->first = 1;
		return;
	}
	if (key) {
		size_t len = strlen(r->prefix);
		snprintf(r->prefix + len, sizeof r->prefix - len, "%s.", key);
	}
}

void rec_object_end(struct rec *r)
{
	r->depth--;
	if (r->json) {
		fputc('}', r->f);
		r->first = 0;
		return;
	}
	/* drop the last "key." of the prefix */
	size_t len = strlen(r->prefix);
	if (len)
		len--;
	while (len && r->prefix[len - 1] != '.')
		len--;
	r->prefix[len] = '\0';
}

void rec_array_begin(struct rec *r, const char *key)
{
	if (!r->json)
		return;
	field(r, key);
	fputc('[', r->f);
	r->first = 1;
}

void rec_array_end(struct rec *r)
{
	if (!r->json)
		return;
	fputc(']', r->f);
	r->first = 0;
}
