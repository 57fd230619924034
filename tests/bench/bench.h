/* bench.h - what the files of the shmfs benchmark share: the sizes and names
 * of the objects it makes, the run state (struct bench), the table of cases
 * and the helpers. bench.c runs the table; each bench_*.c holds the cases of
 * one kind of work with the setup and teardown of the objects they use. */
#ifndef SHMFS_BENCH_H
#define SHMFS_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GiB (1024.0 * 1024.0 * 1024.0)

#define BIG_SIZE ((size_t)1 << 30)   /* the 1 GiB POSIX object and segment */
#define BLOCK ((size_t)1 << 20)      /* sequential block size */
#define PAGE ((size_t)4096)          /* random read size; stamp spacing */
#define LS_OBJECTS 10000
#define RANDOM_SEED 0x5348464d53ull  /* "SHFMS": every run reads the same offsets */

#define POSIX_NAME "bench-1g"
#define LS_DIR "ls-10k"
#define STAT_NAME "obj05000"

/* Views (issue 4): two ImageStreamIO "2.00" float streams made in SOURCE,
 * read as X.fits and as their raw X.im.shm through the same mount. */
#define STREAM_BIG 0   /* 4096 x 4096 float: 64 MiB of pixels */
#define STREAM_SMALL 1 /* 32 x 32 float: one 4 KiB frame */
#define NSTREAMS 2
#define PIXEL_STRIDE 1024 /* pixels checked: every 4 KiB of the data, and the last */
#define FITS_BLOCK 2880

/* Small writes: 4 KiB pwrite()s cycling over a 1 MiB object. */
#define WRITE_NAME "bench-w4k"
#define WRITE_SIZE ((size_t)1 << 20)
#define DEBUG_WRITES 1000 /* writes traced through a short-lived -d mount */
#define MAX_RUNS 64       /* phase times kept per side */

/* Loading by copying: a 2048 x 2048 float32 FITS file (one 2880-byte header
 * block, the pixels padded to whole blocks) copied onto MOUNT/X.fits. */
#define LOAD_SIDE 2048
#define LOAD_FITS_SIZE \
	(FITS_BLOCK + (4ull * LOAD_SIDE * LOAD_SIDE + FITS_BLOCK - 1) / FITS_BLOCK * FITS_BLOCK)

enum side { DIRECT, MOUNT };
enum mount_id { MOUNT_A, MOUNT_B, NMOUNTS };

/* How a case is judged. */
enum metric {
	RATE,   /* work per second, higher is better: ratio = mount rate / direct rate >= target */
	TIME,   /* seconds, lower is better: ratio = mount time / direct time <= target ("x direct") */
	GROWTH, /* a measure function fills the row; value <= target (KiB) */
	LIMIT,  /* a measure function fills the row; value <= target (in the case's unit) */
	INFO,   /* like RATE, no target: shown for reference */
	TIME_INFO, /* like TIME, no target: shown for reference */
};

struct mount {
	const char *path;
	const char *option; /* how it was mounted, for the header */
	pid_t pid;
	const char *passthrough; /* "on"/"off" as the daemon logged it */
};

/* The streams of the view cases (see make_stream). */
struct stream {
	const char *name;   /* NAME.im.shm in SOURCE, NAME.fits its view */
	uint32_t nx, ny;
	uint64_t nelement;
	uint64_t raw_size;  /* the stream file */
	uint64_t view_size; /* NAME.fits, as the mount reports it */
	uint64_t view_header; /* bytes of FITS header before the pixels */
};

/* Where one open-read-close spends its time (view cases), summed per run. */
struct phases {
	double open, read, close;
	long count; /* open-read-close cycles in the run */
};

struct bench {
	const char *source;
	const char *daemon; /* the shmfs binary, for the -d write trace (-D) */
	struct mount mnt[NMOUNTS];
	const char *libfuse;
	int runs;
	key_t key;
	int shmid;
	char *shm; /* the segment, attached once for the direct side */
	char *buf; /* BLOCK bytes, page aligned */
	int data_errors;
	struct stream stream[NSTREAMS];
	struct phases ph[2][MAX_RUNS]; /* [side]: the phases of the latest runs */
	int nph[2];
	char trace_note[NMOUNTS][256]; /* GETXATTR count of the -d write trace */
	struct scale *scale; /* the scale cases' objects (bench_scale.c), made when first needed */
};

struct bench_case;
struct row {
	double direct, mount; /* medians: seconds (RATE, TIME, INFO) */
	double value;         /* GROWTH: the figure judged against the target */
	char direct_s[48], mount_s[48], ratio_s[32], target_s[24], result_s[8], note[640];
	int error;
};

struct bench_case {
	const char *name;
	enum mount_id mount;
	enum metric metric;
	double target;
	/* RATE/INFO: units of work per run, the unit's name and size (for display) */
	double work;
	const char *unit;
	double unit_size;
	/* one timed run of SIDE: seconds, or < 0 after printing why to stderr */
	double (*run)(struct bench *b, const struct bench_case *c, enum side side);
	/* or: measure the whole row (GROWTH cases) */
	int (*measure)(struct bench *b, const struct bench_case *c, struct row *r);
	long param; /* case-specific: reads, calls, flags */
	/* TIME cases: what the mount side is compared with ("direct" if NULL) */
	const char *vs;
	/* after a row is filled: add to its notes (may be NULL) */
	void (*annotate)(struct bench *b, const struct bench_case *c, struct row *r);
};

/* --- helpers (bench_util.c) --------------------------------------------- */

double now(void);
/* Print "shmfs-bench: " and the message to stderr. */
void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* SOURCE for the direct side, the case's mount for the mount side. */
const char *base_of(struct bench *b, const struct bench_case *c, enum side side);
void path_of(char *out, size_t len, struct bench *b, const struct bench_case *c,
	     enum side side, const char *name);
/* The bench segment's file in the case's mount. */
void sysv_path(char *out, size_t len, struct bench *b, const struct bench_case *c);
/* Compiler barrier: copies into the buffer are not optimized away. */
static inline void clobber(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }
void stamp(char *buf, size_t len, uint64_t off);
int stamped(struct bench *b, const char *buf, size_t len, uint64_t off, const char *what);
/* Sorts V. */
double median(double *v, int n);
long proc_status_kib(pid_t pid, const char *field);
int count_fds(pid_t pid);
/* Append to R's note (cut at its size). */
void note_add(struct row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A zeroed phase record for the next run of SIDE. */
struct phases *new_phases(struct bench *b, enum side side);
/* Medians of the phases of the latest runs of SIDE (per cycle). */
struct phases median_phases(struct bench *b, enum side side);

static inline uint64_t r2880(uint64_t n) { return (n + FITS_BLOCK - 1) / FITS_BLOCK * FITS_BLOCK; }

/* The value of pixel K of every bench stream: exact in a float up to 2^24. */
static inline float pixel_value(uint64_t k) { return (float)(k & 0xffffff); }

/* --- programs (bench_spawn.c) ------------------------------------------- */

/* fork + exec of ARGV (searched in PATH), stdout to /dev/null: seconds from
 * fork to exit, or -1 (said, for WHAT) unless it exits 0. */
double run_program(const char *what, const char *const argv[]);
/* Start the daemon ARGV (ARGV[0] its path; in the foreground), stderr to
 * LOG, and wait until MNT is mounted: its pid, or -1 and *WHY. */
pid_t daemon_start(const char *const argv[], const char *mnt, const char *log, const char **why);
/* Unmount MNT and wait for daemon PID: its wait status, or -1 when it did
 * not exit within 30 s (then it is killed). */
int daemon_stop(pid_t pid, const char *mnt);

/* --- the cases (one file each kind) ------------------------------------- */

/* bench_posix.c: POSIX and System V, whole files and metadata */
double posix_seq_read(struct bench *b, const struct bench_case *c, enum side side);
double posix_seq_write(struct bench *b, const struct bench_case *c, enum side side);
double sysv_seq_read(struct bench *b, const struct bench_case *c, enum side side);
double sysv_seq_write(struct bench *b, const struct bench_case *c, enum side side);
double random_pread(struct bench *b, const struct bench_case *c, enum side side);
double ls_l(struct bench *b, const struct bench_case *c, enum side side);
double stat_loop(struct bench *b, const struct bench_case *c, enum side side);
int daemon_memory(struct bench *b, const struct bench_case *c, struct row *r);
int posix_setup(struct bench *b);
void posix_teardown(struct bench *b);

/* bench_views.c: FITS views of ImageStreamIO streams */
double fits_view_read(struct bench *b, const struct bench_case *c, enum side side);
double frame_view_loop(struct bench *b, const struct bench_case *c, enum side side);
void fits_view_note(struct bench *b, const struct bench_case *c, struct row *r);
void frame_view_note(struct bench *b, const struct bench_case *c, struct row *r);
/* Make stream S (name, nx, ny set) in SOURCE, pixel k = pixel_value(k);
 * sets its nelement and raw_size. 0, or -1 after saying why. */
int make_stream(struct bench *b, struct stream *s);
int views_setup(struct bench *b);
void views_teardown(struct bench *b);

/* bench_writes.c: small writes and the daemon's -d trace of them */
double small_writes(struct bench *b, const struct bench_case *c, enum side side);
void write_trace_note(struct bench *b, const struct bench_case *c, struct row *r);
int writes_setup(struct bench *b);
void writes_teardown(struct bench *b);

/* bench_load.c: a FITS file copied onto X.fits, loaded into stream X */
double load_update(struct bench *b, const struct bench_case *c, enum side side);
double load_new(struct bench *b, const struct bench_case *c, enum side side);
void load_note(struct bench *b, const struct bench_case *c, struct row *r);
int load_setup(struct bench *b);
void load_teardown(struct bench *b);

/* bench_scale.c: a million objects and 10,000 segments */
struct scale;
double million_ls(struct bench *b, const struct bench_case *c, enum side side);
double million_stat(struct bench *b, const struct bench_case *c, enum side side);
int million_memory(struct bench *b, const struct bench_case *c, struct row *r);
int million_descriptors(struct bench *b, const struct bench_case *c, struct row *r);
void million_note(struct bench *b, const struct bench_case *c, struct row *r);
double segments_ls(struct bench *b, const struct bench_case *c, enum side side);
double segments_read(struct bench *b, const struct bench_case *c, enum side side);
void segments_note(struct bench *b, const struct bench_case *c, struct row *r);
void scale_teardown(struct bench *b);

#endif
