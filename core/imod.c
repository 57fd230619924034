/* imod.c - IMOD shared-memory files: the name's capacity, the in-memory MRC
 * header at the front, and the translation between it and a clean MRC2014
 * file header in both directions; see imod.h. */
#define _GNU_SOURCE
#include "imod.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"

/* MRC header word offsets (../shared/formats/mrc-imod.md). */
#define OFF_NX 0
#define OFF_MODE 12
#define OFF_MX 28
#define OFF_CELLA 40
#define OFF_CELLB 52
#define OFF_MAPC 64
#define OFF_DMIN 76
#define OFF_DMAX 80
#define OFF_DMEAN 84
#define OFF_ISPG 88
#define OFF_NSYMBT 92
#define OFF_EXTTYP 104
#define OFF_NVERSION 108
#define OFF_NINT 128 /* IMOD: two int16, nint and nreal, describing the extended header */
#define OFF_IMODSTAMP 152
#define OFF_IMODFLAGS 156
#define OFF_ORIGIN 196
#define OFF_MAP 208
#define OFF_MACHST 212
#define OFF_RMS 216
#define OFF_NLABL 220
#define OFF_LABELS 224

#define MRC_WORDS_END 224  /* bytes 0-223: the header words both layouts share */
#define NLABELS 10
#define LABEL_SIZE 80
#define IMOD_LABEL_STRIDE 81

#define IMOD_STAMP 1146047817 /* "IMOD" as a little-endian int32 */
#define IMOD_FLAG_SIGNED_BYTES 1
#define IMOD_FLAG_RMS_NEGATIVE 8

_Static_assert(IMOD_HEADER_MIN == OFF_LABELS + NLABELS * IMOD_LABEL_STRIDE,
	       "IMOD's in-memory header ends after its tenth 81-byte label");

#define REFUSE(...) do { if (why && whylen) snprintf(why, whylen, __VA_ARGS__); \
			 return -EINVAL; } while (0)

/* The machine stamp of this host's byte order: both layouts hold native words. */
static void native_stamp(unsigned char *st)
{
	static const uint16_t probe = 1;
	int little = *(const unsigned char *)&probe == 1;
	st[0] = st[1] = little ? 0x44 : 0x11;
	st[2] = st[3] = 0;
}

uint64_t imod_name_capacity(const char *name)
{
	static const char prefix[] = "IMODShrMem_";
	if (strncmp(name, prefix, sizeof prefix - 1) != 0)
		return 0;
	const char *p = name + sizeof prefix - 1;
	uint64_t kb = 0;
	if (*p < '0' || *p > '9')
		return 0;
	for (; *p >= '0' && *p <= '9'; p++)
		if (__builtin_mul_overflow(kb, 10, &kb) ||
		    __builtin_add_overflow(kb, (uint64_t)(*p - '0'), &kb))
			return 0;
	if (*p != '_' || p[1] == '\0' || kb <= 2)
		return 0;
	uint64_t bytes;
	if (__builtin_mul_overflow(kb, 1024, &bytes))
		return 0;
	return bytes;
}

/* The element type of MODE, mode 0 by IMOD's rule: signed only when the IMOD
 * stamp is there with the signed-bytes flag. ELEM_NONE if not supported. */
static enum elem_type mode_type(int32_t mode, const unsigned char *hdr)
{
	switch (mode) {
	case 0:
		return get_i32(hdr, OFF_IMODSTAMP) == IMOD_STAMP &&
		       (get_i32(hdr, OFF_IMODFLAGS) & IMOD_FLAG_SIGNED_BYTES) ? ELEM_I8 : ELEM_U8;
	case 1: return ELEM_I16;
	case 2: return ELEM_F32;
	case 4: return ELEM_C64;
	case 6: return ELEM_U16;
	case 12: return ELEM_F16;
	default: return ELEM_NONE;
	}
}

/* Fill IMG from the header words of HDR; shared by both directions. */
static int describe(const unsigned char *hdr, struct imod_image *img, char *why, size_t whylen)
{
	int32_t nx = get_i32(hdr, OFF_NX), ny = get_i32(hdr, OFF_NX + 4);
	int32_t nz = get_i32(hdr, OFF_NX + 8), mode = get_i32(hdr, OFF_MODE);
	enum elem_type type = mode_type(mode, hdr);
	if (type == ELEM_NONE)
		REFUSE("MRC mode %d is not supported (0, 1, 2, 4, 6 and 12 are)", mode);
	if (nx <= 0 || ny <= 0 || nz <= 0)
		REFUSE("image size %d x %d x %d is not positive", nx, ny, nz);
	uint64_t bytes;
	if (__builtin_mul_overflow((uint64_t)nx, (uint64_t)ny, &bytes) ||
	    __builtin_mul_overflow(bytes, (uint64_t)nz, &bytes) ||
	    __builtin_mul_overflow(bytes, (uint64_t)elem_size(type), &bytes))
		REFUSE("image size %d x %d x %d overflows", nx, ny, nz);
	*img = (struct imod_image){ .nx = nx, .ny = ny, .nz = nz, .mode = mode,
				    .type = type, .data_bytes = bytes };
	return 0;
}

int imod_parse(const void *buf, size_t buflen, uint64_t capacity, uint64_t object_size,
	       struct imod_image *img, char *why, size_t whylen)
{
	if (buflen < IMOD_HEADER_MIN)
		REFUSE("only %zu bytes, an IMOD header needs %d", buflen, IMOD_HEADER_MIN);
	struct imod_image found;
	int rc = describe(buf, &found, why, whylen);
	if (rc < 0)
		return rc;
	uint64_t room = capacity < object_size ? capacity : object_size;
	if (room < IMOD_HEADER_AREA || found.data_bytes > room - IMOD_HEADER_AREA)
		REFUSE("image %d x %d x %d of mode %d needs %llu bytes after byte %d, "
		       "the object holds %llu", found.nx, found.ny, found.nz, found.mode,
		       (unsigned long long)found.data_bytes, IMOD_HEADER_AREA,
		       (unsigned long long)room);
	*img = found;
	return 0;
}

/* Copy a label (SRC, at most LABEL_SIZE bytes, ends at its first NUL) into
 * DST as an MRC label: printable ASCII padded with blanks. Returns 1 if it
 * holds any text. */
static int clean_label(const unsigned char *src, unsigned char *dst)
{
	int text = 0, ended = 0;
	for (int i = 0; i < LABEL_SIZE; i++) {
		unsigned char c = ended ? 0 : src[i];
		if (c == 0)
			ended = 1;
		if (c < 0x20 || c > 0x7e)
			c = ' ';
		if (c != ' ')
			text = 1;
		dst[i] = c;
	}
	return text;
}

/* A finite, positive float, or FALLBACK. */
static float positive_or(float v, float fallback)
{
	return isfinite(v) && v > 0 ? v : fallback;
}

void imod_mrc_header(const void *buf, const struct imod_image *img, unsigned char *out)
{
	const unsigned char *in = buf;
	memset(out, 0, MRC_HEADER_SIZE);
	memcpy(out, in, MRC_WORDS_END);

	/* Sizes and mode as imod_parse read them; the words are the same. */
	put_i32(out, OFF_NX, img->nx);
	put_i32(out, OFF_NX + 4, img->ny);
	put_i32(out, OFF_NX + 8, img->nz);
	put_i32(out, OFF_MODE, img->mode);

	/* Sampling and cell: a missing or nonsense sampling becomes the size
	 * (one pixel per sample), a nonsense cell one Angstrom per sample, so
	 * pixel sizes are kept wherever they mean something. */
	int32_t n[3] = { img->nx, img->ny, img->nz };
	int32_t ispg = get_i32(in, OFF_ISPG);
	for (int a = 0; a < 3; a++) {
		int32_t m = get_i32(in, OFF_MX + 4 * a);
		if (m <= 0)
			m = n[a];
		put_i32(out, OFF_MX + 4 * a, m);
		float cell = get_f32(in, OFF_CELLA + 4 * a);
		put_f32(out, OFF_CELLA + 4 * a, isfinite(cell) && cell >= 0 ? cell : (float)m);
		float angle = get_f32(in, OFF_CELLB + 4 * a);
		put_f32(out, OFF_CELLB + 4 * a, angle < 180 ? positive_or(angle, 90) : 90);
		float origin = get_f32(in, OFF_ORIGIN + 4 * a);
		put_f32(out, OFF_ORIGIN + 4 * a, isfinite(origin) ? origin : 0);
	}
	/* A volume stack (space group 401-630) needs nz to be whole volumes of mz. */
	if (ispg < 0)
		ispg = 0;
	if (ispg >= 401 && ispg <= 630 && img->nz % get_i32(out, OFF_MX + 8) != 0)
		ispg = 1;
	put_i32(out, OFF_ISPG, ispg);

	int32_t map[3], seen = 0;
	for (int a = 0; a < 3; a++) {
		map[a] = get_i32(in, OFF_MAPC + 4 * a);
		if (map[a] >= 1 && map[a] <= 3)
			seen |= 1 << map[a];
	}
	for (int a = 0; a < 3; a++)
		put_i32(out, OFF_MAPC + 4 * a, seen == 0xe ? map[a] : a + 1);

	/* Statistics undetermined: a header never has to scan the data. */
	put_f32(out, OFF_DMIN, 0);
	put_f32(out, OFF_DMAX, -1);
	put_f32(out, OFF_DMEAN, -2);
	put_f32(out, OFF_RMS, -1);

	/* No extended header in the view. */
	put_i32(out, OFF_NSYMBT, 0);
	memset(out + OFF_EXTTYP, 0, 4);
	memset(out + OFF_NINT, 0, 4);
	put_i32(out, OFF_NVERSION, 20140);

	/* IMOD's stamp, so IMOD reads mode 0 as the type imod_parse chose. */
	int32_t flags = get_i32(in, OFF_IMODSTAMP) == IMOD_STAMP ? get_i32(in, OFF_IMODFLAGS) : 0;
	flags &= ~IMOD_FLAG_SIGNED_BYTES;
	if (img->type == ELEM_I8)
		flags |= IMOD_FLAG_SIGNED_BYTES;
	put_i32(out, OFF_IMODSTAMP, IMOD_STAMP);
	put_i32(out, OFF_IMODFLAGS, flags | IMOD_FLAG_RMS_NEGATIVE);

	memcpy(out + OFF_MAP, "MAP ", 4);
	native_stamp(out + OFF_MACHST);

	/* Labels in use (IMOD's nlabl of them) with text, packed to the front;
	 * a blank one is cleaned into the next slot and overwritten. */
	int32_t used = get_i32(in, OFF_NLABL);
	used = used < 0 ? 0 : used > NLABELS ? NLABELS : used;
	int32_t nlabl = 0;
	memset(out + OFF_LABELS, ' ', NLABELS * LABEL_SIZE);
	for (int i = 0; i < used; i++)
		nlabl += clean_label(in + OFF_LABELS + IMOD_LABEL_STRIDE * i,
				     out + OFF_LABELS + LABEL_SIZE * nlabl);
	put_i32(out, OFF_NLABL, nlabl);
}

uint64_t imod_mrc_data_offset(const unsigned char *mrc)
{
	int32_t nsymbt = get_i32(mrc, OFF_NSYMBT);
	return MRC_HEADER_SIZE + (uint64_t)(nsymbt > 0 ? nsymbt : 0);
}

int imod_from_mrc(const unsigned char *mrc, struct imod_image *img, unsigned char *out,
		  char *why, size_t whylen)
{
	unsigned char native[4];
	native_stamp(native);
	if (memcmp(mrc + OFF_MAP, "MAP ", 4) != 0)
		REFUSE("not an MRC2014 file (no \"MAP \" at byte 208)");
	/* IMOD's shared memory holds native words; a file of the other byte
	 * order would need its data swapped too. An unknown stamp (old files
	 * write none) is read as native. */
	unsigned char foreign = native[0] == 0x44 ? 0x11 : 0x44;
	if (mrc[OFF_MACHST] == foreign)
		REFUSE("the MRC file's byte order (machine stamp %02x %02x) is not this machine's",
		       mrc[OFF_MACHST], mrc[OFF_MACHST + 1]);
	int32_t nsymbt = get_i32(mrc, OFF_NSYMBT);
	if (nsymbt < 0)
		REFUSE("negative extended header size %d", nsymbt);
	struct imod_image found;
	int rc = describe(mrc, &found, why, whylen);
	if (rc < 0)
		return rc;

	memset(out, 0, IMOD_HEADER_AREA);
	memcpy(out, mrc, MRC_WORDS_END);
	/* The extended header stays behind in the file: none in memory. */
	put_i32(out, OFF_NSYMBT, 0);
	memset(out + OFF_NINT, 0, 4);
	native_stamp(out + OFF_MACHST);
	int32_t nlabl = get_i32(mrc, OFF_NLABL);
	put_i32(out, OFF_NLABL, nlabl < 0 ? 0 : nlabl > NLABELS ? NLABELS : nlabl);
	for (int i = 0; i < NLABELS; i++)
		memcpy(out + OFF_LABELS + IMOD_LABEL_STRIDE * i,
		       mrc + OFF_LABELS + LABEL_SIZE * i, LABEL_SIZE); /* NUL at 80 from memset */
	*img = found;
	return 0;
}
