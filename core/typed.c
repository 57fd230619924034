/* typed.c - user-given layouts of raw segments; see typed.h. */
#define _GNU_SOURCE
#include "typed.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/xattr.h>

#define REFUSE(...) do { snprintf(why, whylen, __VA_ARGS__); return -EINVAL; } while (0)

/* A decimal number without sign, spaces allowed around it. */
static int parse_u64(const char **p, uint64_t *v)
{
	const char *s = *p;
	while (*s == ' ')
		s++;
	if (*s < '0' || *s > '9')
		return -1;
	uint64_t x = 0;
	for (; *s >= '0' && *s <= '9'; s++)
		if (__builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, (uint64_t)(*s - '0'), &x))
			return -1;
	while (*s == ' ')
		s++;
	*p = s;
	*v = x;
	return 0;
}

int typed_parse(const char *type, const char *shape, const char *offset, uint64_t object_size,
		struct typed_layout *l, char *why, size_t whylen)
{
	memset(l, 0, sizeof *l);
	if (!type || !shape)
		return -ENODATA;
	l->type = elem_parse(type);
	if (l->type == ELEM_NONE)
		REFUSE("unknown element type '%.40s' (uint8 ... complex128, or IDL's BYTE ... "
		       "DCOMPLEX)", type);
	const char *p = shape;
	uint64_t n = 1;
	for (;;) {
		uint64_t d;
		if (l->naxis == TYPED_MAX_AXES)
			REFUSE("more than %d axes", TYPED_MAX_AXES);
		if (parse_u64(&p, &d) < 0 || d == 0)
			REFUSE("shape '%.40s' is not a list of positive integers like 512,512", shape);
		if (__builtin_mul_overflow(n, d, &n))
			REFUSE("shape '%.40s' overflows", shape);
		l->dims[l->naxis++] = d;
		if (*p == '\0')
			break;
		if (*p != ',' && *p != 'x')
			REFUSE("shape '%.40s' is not a list of positive integers like 512,512", shape);
		p++;
	}
	if (offset) {
		p = offset;
		if (parse_u64(&p, &l->offset) < 0 || *p)
			REFUSE("offset '%.40s' is not a non-negative integer", offset);
	}
	l->nelement = n;
	uint64_t end;
	if (__builtin_mul_overflow(n, (uint64_t)elem_size(l->type), &l->bytes) ||
	    __builtin_add_overflow(l->bytes, l->offset, &end) || end > object_size)
		REFUSE("%s %s from byte %llu needs more than the %llu bytes of the segment",
		       elem_name(l->type), shape, (unsigned long long)l->offset,
		       (unsigned long long)object_size);
	return 0;
}

static const char *get(int fd, const char *name, char *buf, size_t len)
{
	ssize_t n = fgetxattr(fd, name, buf, len - 1);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

int typed_read_fd(int fd, uint64_t size, struct typed_layout *l, char *why, size_t whylen)
{
	char t[64], s[256], o[64];
	return typed_parse(get(fd, TYPED_XATTR_TYPE, t, sizeof t),
			   get(fd, TYPED_XATTR_SHAPE, s, sizeof s),
			   get(fd, TYPED_XATTR_OFFSET, o, sizeof o), size, l, why, whylen);
}

void typed_shape_text(const struct typed_layout *l, char *buf, size_t len)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int i = 0; i < l->naxis && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%llu", i ? "," : "",
					 (unsigned long long)l->dims[i]);
}
