/* isio.c - ImageStreamIO "2.00" stream files; see isio.h. */
#define _GNU_SOURCE
#include "isio.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bytes.h"

#define CB_RECORD_SIZE 48

/* *acc += R8(n), false on overflow. */
static int add_r8(uint64_t *acc, uint64_t n)
{
	uint64_t r;
	if (__builtin_add_overflow(n, 7, &r))
		return 0;
	r &= ~(uint64_t)7;
	return !__builtin_add_overflow(*acc, r, acc);
}

static int mul_add_r8(uint64_t *acc, uint64_t a, uint64_t b)
{
	uint64_t n;
	return !__builtin_mul_overflow(a, b, &n) && add_r8(acc, n);
}

int isio_layout(uint64_t datasize, uint16_t nbkw, uint16_t nsem, uint16_t nproctrace,
		struct isio_stream *s)
{
	uint64_t off = ISIO_META_SIZE;
	s->datasize = datasize;
	s->nbkw = nbkw;
	s->nsem = nsem;
	s->off_data = off;
	int ok = add_r8(&off, datasize);
	s->off_keywords = off;
	ok = ok && mul_add_r8(&off, ISIO_KW_SIZE, nbkw);
	s->off_sems = off;
	ok = ok && mul_add_r8(&off, ISIO_SEM_SIZE, nsem);
	ok = ok && add_r8(&off, ISIO_SEM_SIZE); /* semlog */
	s->off_readpids = off;
	ok = ok && mul_add_r8(&off, 4, nsem);
	s->off_writepids = off;
	for (int i = 0; i < 3; i++)             /* write PIDs, semctrl, semstatus */
		ok = ok && mul_add_r8(&off, 4, nsem);
	ok = ok && mul_add_r8(&off, ISIO_PROCTRACE_SIZE, nproctrace);
	s->file_size = off;
	return ok ? 0 : -EOVERFLOW;
}

static struct timespec get_ts(const unsigned char *m, size_t off)
{
	struct timespec ts;
	int64_t sec = (int64_t)get_u64(m, off), nsec = (int64_t)get_u64(m, off + 8);
	ts.tv_sec = (time_t)sec;
	ts.tv_nsec = (nsec >= 0 && nsec < 1000000000) ? (long)nsec : 0;
	return ts;
}

void isio_state(const void *meta, struct isio_stream *s)
{
	const unsigned char *m = meta;
	s->cnt0 = get_u64(m, ISIO_OFF_CNT0);
	s->cnt1 = get_u64(m, ISIO_OFF_CNT1);
	s->writetime = get_ts(m, ISIO_OFF_WRITETIME);
	s->atime = get_ts(m, ISIO_OFF_ATIME);
}

#define REFUSE(...) do { snprintf(why, whylen, __VA_ARGS__); return -EINVAL; } while (0)

int isio_parse(const void *meta, size_t meta_len, uint64_t file_size, struct isio_stream *s,
	       char *why, size_t whylen)
{
	const unsigned char *m = meta;
	memset(s, 0, sizeof *s);
	if (meta_len < ISIO_META_SIZE || file_size < ISIO_META_SIZE)
		REFUSE("shorter than the 384-byte metadata");
	if (memcmp(m + ISIO_OFF_VERSION, "2.00", 5) != 0) {
		char v[9];
		size_t i;
		for (i = 0; i < 8 && m[i] >= 0x20 && m[i] < 0x7f; i++)
			v[i] = (char)m[i];
		v[i] = '\0';
		REFUSE("layout version '%s' is not 2.00", v);
	}
	int8_t location = (int8_t)m[ISIO_OFF_LOCATION];
	if (location != -1)
		REFUSE("a GPU stream (location %d): its pixels are not in the file", location);
	s->naxis = m[ISIO_OFF_NAXIS];
	if (s->naxis < 1 || s->naxis > 3)
		REFUSE("naxis %d is not 1 to 3", s->naxis);
	uint64_t n = 1;
	for (int i = 0; i < 3; i++) {
		s->size[i] = get_u32(m, ISIO_OFF_SIZE + 4 * (size_t)i);
		if (i < s->naxis) {
			if (s->size[i] == 0)
				REFUSE("axis %d has size 0", i + 1);
			if (__builtin_mul_overflow(n, s->size[i], &n))
				REFUSE("the sizes overflow");
		}
	}
	s->nelement = get_u64(m, ISIO_OFF_NELEMENT);
	if (s->nelement != n)
		REFUSE("nelement %llu is not the product of the sizes (%llu)",
		       (unsigned long long)s->nelement, (unsigned long long)n);
	s->type = (enum elem_type)m[ISIO_OFF_DATATYPE];
	if (elem_size(s->type) == 0)
		REFUSE("unknown datatype %u", m[ISIO_OFF_DATATYPE]);
	if (__builtin_mul_overflow(n, (uint64_t)elem_size(s->type), &s->datasize))
		REFUSE("the pixel size overflows");
	if (get_u64(m, ISIO_OFF_IMDATAMEMSIZE) != s->datasize)
		REFUSE("imdatamemsize %llu is not %llu",
		       (unsigned long long)get_u64(m, ISIO_OFF_IMDATAMEMSIZE),
		       (unsigned long long)s->datasize);
	s->nbkw = get_u16(m, ISIO_OFF_NBKW);
	s->nsem = get_u16(m, ISIO_OFF_SEM);
	uint16_t nproctrace = get_u16(m, ISIO_OFF_NBPROCTRACE);
	uint64_t imagetype = get_u64(m, ISIO_OFF_IMAGETYPE);
	uint32_t cbsize = get_u32(m, ISIO_OFF_CBSIZE);

	int ok = isio_layout(s->datasize, s->nbkw, s->nsem, nproctrace, s) == 0;
	uint64_t off = s->file_size;
	if ((imagetype & 0xF000F) == 0x20001) { /* temporal circular buffer */
		ok = ok && mul_add_r8(&off, 16, s->size[2]);
		ok = ok && mul_add_r8(&off, 16, s->size[2]);
		ok = ok && mul_add_r8(&off, 8, s->size[2]);
	}
	ok = ok && mul_add_r8(&off, CB_RECORD_SIZE, cbsize);
	ok = ok && mul_add_r8(&off, s->datasize, cbsize);
	if (!ok)
		REFUSE("the sizes its fields imply overflow");
	s->file_size = off;
	if (off != file_size)
		REFUSE("the file has %llu bytes, its fields imply %llu",
		       (unsigned long long)file_size, (unsigned long long)off);

	size_t i;
	for (i = 0; i < 80 && m[ISIO_OFF_NAME + i]; i++) {
		unsigned char c = m[ISIO_OFF_NAME + i];
		s->name[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	s->name[i] = '\0';
	isio_state(m, s);
	return 0;
}

int isio_is_stream_name(const char *name)
{
	size_t len = strlen(name), sl = sizeof ISIO_SUFFIX - 1;
	return len > sl && strcmp(name + len - sl, ISIO_SUFFIX) == 0;
}

int isio_keyword(const void *slot, struct isio_keyword *kw)
{
	const unsigned char *p = slot;
	memset(kw, 0, sizeof *kw);
	for (size_t i = 0; i < 16 && p[i]; i++)
		kw->name[i] = (char)p[i];
	kw->type = (char)p[16];
	if (!kw->name[0] || (kw->type != 'L' && kw->type != 'D' && kw->type != 'S'))
		return -ENOENT;
	memcpy(&kw->l, p + 24, 8);
	memcpy(&kw->d, p + 24, 8);
	for (size_t i = 0; i < 16 && p[24 + i]; i++)
		kw->s[i] = (char)p[24 + i];
	for (size_t i = 0; i < 80 && p[48 + i]; i++)
		kw->comment[i] = (char)p[48 + i];
	return 0;
}

void isio_keyword_text(const struct isio_keyword *kw, char *buf, size_t len)
{
	if (kw->type == 'L')
		snprintf(buf, len, "%lld", (long long)kw->l);
	else if (kw->type == 'D')
		snprintf(buf, len, "%.17g", kw->d);
	else
		snprintf(buf, len, "%s", kw->s);
}
