/* bytes.h - native-endian fields at byte offsets of untrusted buffers (the
 * layouts core parses hold native words): loads and stores through memcpy,
 * so no alignment is assumed. Internal to core. */
#ifndef SHMFS_BYTES_H
#define SHMFS_BYTES_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t get_u16(const unsigned char *p, size_t off)
{
	uint16_t v;
	memcpy(&v, p + off, sizeof v);
	return v;
}
static inline uint32_t get_u32(const unsigned char *p, size_t off)
{
	uint32_t v;
	memcpy(&v, p + off, sizeof v);
	return v;
}
static inline uint64_t get_u64(const unsigned char *p, size_t off)
{
	uint64_t v;
	memcpy(&v, p + off, sizeof v);
	return v;
}
static inline int32_t get_i32(const unsigned char *p, size_t off)
{
	return (int32_t)get_u32(p, off);
}
static inline float get_f32(const unsigned char *p, size_t off)
{
	float v;
	memcpy(&v, p + off, sizeof v);
	return v;
}

static inline void put_u16(unsigned char *p, size_t off, uint16_t v) { memcpy(p + off, &v, sizeof v); }
static inline void put_u32(unsigned char *p, size_t off, uint32_t v) { memcpy(p + off, &v, sizeof v); }
static inline void put_u64(unsigned char *p, size_t off, uint64_t v) { memcpy(p + off, &v, sizeof v); }
static inline void put_i32(unsigned char *p, size_t off, int32_t v) { put_u32(p, off, (uint32_t)v); }
static inline void put_f32(unsigned char *p, size_t off, float v) { memcpy(p + off, &v, sizeof v); }

#endif
