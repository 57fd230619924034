/* isio.h - ImageStreamIO "2.00" stream files (milk/cacao X.im.shm): the
 * metadata checked against the file's real size, the keyword slots (isio.c);
 * a frame taken with the stream's update protocol as a registered reader,
 * waiting for the next frame, and a frame finished as a writer finishes one
 * (isioframe.c). Layout: ../shared/formats/imagestreamio.md.
 * Every byte of a stream is untrusted. */
#ifndef SHMFS_ISIO_H
#define SHMFS_ISIO_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "elem.h"

#define ISIO_META_SIZE 384
#define ISIO_KW_SIZE 128
#define ISIO_SEM_SIZE 32
#define ISIO_SUFFIX ".im.shm"

/* Metadata fields (offsets in the 384-byte struct). */
#define ISIO_OFF_VERSION 0
#define ISIO_OFF_NAME 32
#define ISIO_NAME_MAX 79        /* name[80], NUL-terminated */
#define ISIO_OFF_NAXIS 112
#define ISIO_OFF_SIZE 116
#define ISIO_OFF_NELEMENT 128
#define ISIO_OFF_DATATYPE 136
#define ISIO_OFF_IMAGETYPE 144
#define ISIO_OFF_CREATIONTIME 152
#define ISIO_OFF_LASTACCESSTIME 168
#define ISIO_OFF_ATIME 184
#define ISIO_OFF_WRITETIME 200
#define ISIO_OFF_CREATORPID 216
#define ISIO_OFF_OWNERPID 220
#define ISIO_OFF_SHARED 224
#define ISIO_OFF_INODE 232
#define ISIO_OFF_LOCATION 240
#define ISIO_OFF_SEM 258
#define ISIO_OFF_NBPROCTRACE 260
#define ISIO_OFF_CNT0 264
#define ISIO_OFF_CNT1 272
#define ISIO_OFF_WRITE 288
#define ISIO_OFF_NBKW 290
#define ISIO_OFF_CBSIZE 292
#define ISIO_OFF_IMDATAMEMSIZE 312
#define ISIO_PROCTRACE_SIZE 64  /* one process-trace slot */

struct isio_stream {
	char name[81];          /* NUL-terminated, printable */
	int naxis;              /* 1..3 */
	uint32_t size[3];       /* size[0] = x, fastest */
	uint64_t nelement;
	enum elem_type type;
	uint64_t datasize;      /* bytes of pixels */
	uint16_t nbkw;          /* keyword slots */
	uint16_t nsem;          /* semaphores */
	uint64_t off_data;      /* 384 */
	uint64_t off_keywords;
	uint64_t off_sems;
	uint64_t off_readpids;  /* semReadPID[nsem] (int32) */
	uint64_t off_writepids; /* semWritePID[nsem] (int32) */
	uint64_t file_size;     /* what the fields imply; equals the real size */
	/* state when parsed */
	uint64_t cnt0, cnt1;
	struct timespec writetime, atime;
};

/* Check the metadata in META (META_LEN >= 384 bytes) of a file of FILE_SIZE
 * bytes: version "2.00", CPU location, naxis 1-3, sizes and element count
 * consistent, a known datatype, imdatamemsize = element size x count, and a
 * file size equal to the one the fields imply (no overflow anywhere).
 * Returns 0, or -EINVAL with one sentence in WHY. */
int isio_parse(const void *meta, size_t meta_len, uint64_t file_size, struct isio_stream *s,
	       char *why, size_t whylen);

/* The regions of a CPU stream without circular buffer, with DATASIZE bytes
 * of pixels, NBKW keyword slots, NSEM semaphores and NPROCTRACE trace slots:
 * S's off_data, off_keywords, off_sems and file_size (its datasize, nbkw and
 * nsem too). Returns 0, or -EOVERFLOW. */
int isio_layout(uint64_t datasize, uint16_t nbkw, uint16_t nsem, uint16_t nproctrace,
		struct isio_stream *s);

/* Refresh the state fields (cnt0, cnt1, times) of S from META. */
void isio_state(const void *meta, struct isio_stream *s);

/* Whether NAME ends in ".im.shm" with a non-empty stream name before it. */
int isio_is_stream_name(const char *name);

/* One keyword slot (128 bytes at SLOT). Returns 0 and fills KW, or -ENOENT
 * for an unused slot ('N', or a type that is not L, D or S, or no name). */
struct isio_keyword {
	char name[17];
	char type;              /* 'L', 'D' or 'S' */
	int64_t l;
	double d;
	char s[17];
	char comment[81];
};
int isio_keyword(const void *slot, struct isio_keyword *kw);
/* KW's value as text into BUF: an integer, a real with all its digits
 * (%.17g), or the string. */
void isio_keyword_text(const struct isio_keyword *kw, char *buf, size_t len);

/* ---- frames (isioframe.c) ----
 * MAP is a shared mapping of the whole stream file (MAP_LEN bytes). With
 * WRITABLE (a read-write mapping) a reader registers as ImageStreamIO's
 * readers do and sleeps on a semaphore of its own; without it, it polls. */

/* How a frame was taken. */
enum isio_frame_quality {
	ISIO_FRAME_WHOLE,   /* in a gap between two frames: one whole frame */
	ISIO_FRAME_BUSY,    /* the writer left no gap in the time allowed */
	ISIO_FRAME_STOPPED, /* the write flag stays set and no writer lives */
};
/* The value of the card that marks a frame which is not whole (a short
 * sentence naming why), or NULL for a whole one. */
const char *isio_frame_why(enum isio_frame_quality q);

/* A reader registered on a stream: a semaphore slot claimed by writing the
 * calling thread's id into semReadPID[slot], as ImageStreamIO's
 * getsemwaitindex does with a process id (a thread id passes its liveness
 * check too, and keeps the daemon's threads from sharing a slot). Only a
 * slot that is free (0, negative, or a process that is gone) is taken, so no
 * other reader's posts are stolen. */
struct isio_reader {
	unsigned char *map;
	size_t map_len;
	const struct isio_stream *s;
	int slot;       /* the semaphore claimed, or -1: poll */
	int32_t tid;
};
/* Register (see above) and drain the slot's semaphore. With no free slot or
 * no WRITABLE mapping, R->slot is -1. Returns 0, or -EFAULT if the file was
 * shrunk under the mapping. */
int isio_reader_attach(struct isio_reader *r, void *map, size_t map_len,
		       const struct isio_stream *s, int writable);
/* Give the slot back (semReadPID to 0 if it still holds this thread). */
void isio_reader_detach(struct isio_reader *r);
/* Sleep until a writer posts the reader's semaphore, at most TIMEOUT_MS
 * (without a slot: TIMEOUT_MS). Returns 1 if posted, 0 if not, or -EFAULT. */
int isio_reader_wait(struct isio_reader *r, int timeout_ms);

/* Take one frame: the pixels (CONVERT(PIXELS_SRC, ARG), which must copy
 * s->datasize bytes from the source it is handed, and may copy more of the
 * mapping, e.g. the keywords) and the metadata into META (384 bytes), in a
 * gap between a writer's frames: cnt0 read while write == 0, the copy, then
 * write and cnt0 checked again. It spins a moment, then waits as a
 * registered reader: a writer posts right after it finishes a frame, which
 * is the gap. When there is no gap within MAX_WAIT_MS, or the write flag
 * stays set with no writer alive (one that died mid-frame: its creator,
 * owner and posting processes all gone), the frame is copied as it stands
 * and *Q says why it is not whole. CONVERT may run several times; its last
 * run is the frame. Returns 0 and *Q, or -EFAULT if the file was shrunk
 * under the mapping. */
typedef void (*isio_copy_fn)(const void *src, void *arg);
int isio_take_frame(void *map, size_t map_len, const struct isio_stream *s, int writable,
		    isio_copy_fn copy, void *arg, unsigned char *meta, int max_wait_ms,
		    enum isio_frame_quality *q);

/* Wait for a frame other than the one counted CNT0: returns 0 and the new
 * counter in *NOW once cnt0 differs and write is 0, -ETIMEDOUT after
 * TIMEOUT_MS (negative: no limit), or -EFAULT. */
int isio_wait_frame(void *map, size_t map_len, const struct isio_stream *s, int writable,
		    uint64_t cnt0, int timeout_ms, uint64_t *now);

/* Frame protocol for a writer that is not the stream's owner: mark the frame
 * being written (write = 1) ... */
int isio_frame_begin(void *map, size_t map_len, const struct isio_stream *s);
/* ... and finish it: write time (and acquisition time) now, cnt0 + 1,
 * write = 0, then post every semaphore whose value is below 10, so readers
 * waiting on the stream wake up. Returns 0 or -EFAULT. */
int isio_frame_end(void *map, size_t map_len, const struct isio_stream *s);

#endif
