/* shmtool.c - the shared-memory Swiss army knife: list and describe POSIX
 * objects, System V segments and CFITSIO files, load and save them as FITS or
 * MRC, link streams, remove objects and clean up after dead programs. Built
 * on core alone: it needs no mount. See packaging/man/shmtool.1. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "activity.h"
#include "describe.h"
#include "load.h"
#include "orphan.h"
#include "out.h"
#include "progress.h"
#include "save.h"
#include "shmobj.h"
#include "top.h"

#define EXIT_USAGE 2

/* "shmtool: WHAT: reason" on stderr. Returns EXIT_FAILURE. */
__attribute__((format(printf, 2, 3)))
static int fail(const char *what, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "shmtool: %s: ", what);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_FAILURE;
}

struct command {
	const char *name;
	int (*run)(const struct command *cmd, int argc, char **argv);
	const char *synopsis;
	const char *help;
};

static int usage(const struct command *cmd, const char *problem)
{
	fprintf(stderr, "shmtool: %s: %s (usage: shmtool %s)\n", cmd->name, problem, cmd->synopsis);
	return EXIT_USAGE;
}

static int help(const struct command *cmd)
{
	printf("usage: shmtool %s\n\n%s", cmd->synopsis, cmd->help);
	return EXIT_SUCCESS;
}

/* Options every subcommand but ls takes: --dir and --help. */
enum { OPT_DRY_RUN = 256, OPT_JSON, OPT_TYPE, OPT_SHAPE, OPT_OFFSET };

/* The window over which ls, info and top count frames, by default. */
#define DEFAULT_INTERVAL 1.0
#define MAX_INTERVAL 3600.0

struct args {
	const char *dir;
	int json, longform, yes, dry_run;
	const char *type, *shape, *offset;
	double interval;       /* -i SECONDS */
	long iterations;       /* top -n COUNT; 0: until q (terminal) or 1 */
	char **rest;
	int nrest;
};

/* TEXT as a number in [LO, HI] into *OUT; -1 if it is not one. */
static int parse_number(const char *text, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (errno || end == text || *end || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

/* Parse ARGV for CMD, which takes the options in SHORTOPTS/LONGOPTS (plus
 * --dir and --help). Returns -1 to go on, or the exit status. */
static int parse(const struct command *cmd, int argc, char **argv, const char *shortopts,
		 const struct option *extra, struct args *a)
{
	struct option opts[16] = {{"help", no_argument, NULL, 'h'}, {"dir", required_argument, NULL, 'd'}};
	int n = 2;
	for (; extra && extra->name && n < 15; extra++)
		opts[n++] = *extra;
	opts[n] = (struct option){0};
	char shorts[32];
	snprintf(shorts, sizeof shorts, "+hd:%s", shortopts);
	memset(a, 0, sizeof *a);
	a->dir = OBJ_DEFAULT_DIR;
	a->interval = DEFAULT_INTERVAL;
	optind = 1;
	opterr = 0;
	for (int c; (c = getopt_long(argc, argv, shorts, opts, NULL)) != -1;) {
		switch (c) {
		case 'h': return help(cmd);
		case 'd': a->dir = optarg; break;
		case 'l': a->longform = 1; break;
		case 'y': a->yes = 1; break;
		case 'n':
			if (!optarg) {
				a->dry_run = 1;
				break;
			}
			double count;
			if (parse_number(optarg, 1, 1e9, &count) < 0 || count != (long)count)
				return usage(cmd, "-n takes a whole number of refreshes, 1 or more");
			a->iterations = (long)count;
			break;
		case OPT_DRY_RUN: a->dry_run = 1; break;
		case 'i':
			if (parse_number(optarg, 0, MAX_INTERVAL, &a->interval) < 0)
				return usage(cmd, "-i takes seconds, from 0 to 3600");
			break;
		case OPT_JSON: a->json = 1; break;
		case OPT_TYPE: a->type = optarg; break;
		case OPT_SHAPE: a->shape = optarg; break;
		case OPT_OFFSET: a->offset = optarg; break;
		default: {
			char problem[96];
			if (optopt && optopt < 256)
				snprintf(problem, sizeof problem, "unknown option -%c", optopt);
			else
				snprintf(problem, sizeof problem, "unknown or incomplete option %s",
					 argv[optind - 1]);
			return usage(cmd, problem);
		}
		}
	}
	a->rest = argv + optind;
	a->nrest = argc - optind;
	return -1;
}

static int lookup_fail(const char *name, int rc)
{
	if (rc == -ENOENT)
		return fail(name, "no such shared-memory object");
	if (rc == -EINVAL)
		return fail(name, "not a name of any form (a file name, 0xKKKKKKKK, id-N, hN, "
				  "shmem://hN)");
	return fail(name, "%s", strerror(-rc));
}

/* ---- ls ---- */

static void local_time(const struct timespec *ts, char *buf, size_t len)
{
	struct tm tm;
	time_t t = ts->tv_sec;
	if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%d %H:%M", &tm))
		snprintf(buf, len, "-");
}

/* The listing of DIR with what uses each object (rates over A->interval):
 * *OBJS and ACT, which the caller frees. Returns the count, or exits' status
 * as -1 - status after saying why. */
static int list_with_activity(const char *dir, const struct args *a, struct obj **objs,
			      struct activity_set *act)
{
	int n = obj_list(dir, objs);
	if (n < 0) {
		fail(dir, "%s", strerror(-n));
		return -1;
	}
	int rc = activity_measure(*objs, (size_t)n, a->interval, NULL, NULL, act);
	if (rc < 0) {
		fail("/proc", "%s", strerror(-rc));
		activity_free(act);
		free(*objs);
		return -1;
	}
	return n;
}

static int cmd_ls(const struct command *cmd, int argc, char **argv)
{
	static const struct option extra[] = {{"long", no_argument, NULL, 'l'},
					      {"json", no_argument, NULL, OPT_JSON},
					      {"interval", required_argument, NULL, 'i'}, {0}};
	struct args a;
	int rc = parse(cmd, argc, argv, "li:", extra, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest > 1)
		return usage(cmd, "more than one directory");
	const char *dir = a.nrest ? a.rest[0] : a.dir;
	struct obj *objs;
	struct activity_set act;
	int n = list_with_activity(dir, &a, &objs, &act);
	if (n < 0)
		return EXIT_FAILURE;
	static const char *const heads[] = {"NAME", "BACKEND", "FORMAT", "TYPE", "SHAPE", "SIZE",
					    "OWNER", "MODE", "DETAILS", "HZ", "PROCESSES"};
	static const int right[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0};
	static const char *const lheads[] = {"NAME", "BACKEND", "FORMAT", "TYPE", "SHAPE", "SIZE",
					     "OWNER", "GROUP", "MODE", "MODIFIED", "DETAILS", "HZ",
					     "PROCESSES"};
	static const int lright[] = {0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 0};
	struct table t;
	table_init(&t, a.longform ? 13 : 11, a.longform ? lheads : heads, a.longform ? lright : right);
	for (int i = 0; i < n && rc < 0; i++) {
		const struct obj *o = &objs[i];
		if (a.json) {
			struct rec r;
			rec_begin(&r, stdout, 1);
			describe_fields(&r, o);
			activity_fields(&r, &act.of[i]);
			rec_end(&r);
			continue;
		}
		char shape[128], size[24], owner[64], group[64], mode[8], when[32], details[512];
		char hz[24], procs[1024];
		obj_shape_text(o, shape, sizeof shape);
		snprintf(size, sizeof size, "%llu", (unsigned long long)o->size);
		describe_user(o->uid, owner, sizeof owner);
		describe_group(o->gid, group, sizeof group);
		snprintf(mode, sizeof mode, "%04o", (unsigned)o->mode);
		local_time(&o->mtime, when, sizeof when);
		describe_details(o, a.longform, details, sizeof details);
		activity_rate_text(&act.of[i], hz, sizeof hz);
		activity_procs_text(&act.of[i], procs, sizeof procs);
		const char *type = o->naxis ? elem_name(o->type) : "-";
		const char *row[] = {o->name, obj_backend_name(o->backend), obj_format_name(o->format),
				     type, shape, size, owner, mode, details, hz, procs};
		const char *lrow[] = {o->name, obj_backend_name(o->backend),
				      obj_format_name(o->format), type, shape, size, owner, group,
				      mode, when, details, hz, procs};
		if (table_add(&t, a.longform ? lrow : row) < 0)
			rc = fail("ls", "%s", strerror(ENOMEM));
	}
	if (!a.json)
		table_print(&t, stdout, isatty(STDOUT_FILENO));
	table_free(&t);
	activity_free(&act);
	free(objs);
	fflush(stdout);
	return rc >= 0 ? rc : EXIT_SUCCESS;
}

/* ---- info ---- */

static int cmd_info(const struct command *cmd, int argc, char **argv)
{
	static const struct option extra[] = {{"json", no_argument, NULL, OPT_JSON},
					      {"interval", required_argument, NULL, 'i'}, {0}};
	struct args a;
	int rc = parse(cmd, argc, argv, "i:", extra, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest != 1)
		return usage(cmd, a.nrest ? "one NAME only" : "missing NAME");
	struct obj o;
	rc = obj_lookup(a.dir, a.rest[0], &o);
	if (rc < 0)
		return lookup_fail(a.rest[0], rc);
	struct activity_set act;
	rc = activity_measure(&o, 1, a.interval, NULL, NULL, &act);
	if (rc < 0) {
		activity_free(&act);
		return fail("/proc", "%s", strerror(-rc));
	}
	struct rec r;
	rec_begin(&r, stdout, a.json);
	describe_fields(&r, &o);
	activity_fields(&r, &act.of[0]);
	describe_more(&r, &o);
	rec_end(&r);
	activity_free(&act);
	return EXIT_SUCCESS;
}

/* ---- top ---- */

static int cmd_top(const struct command *cmd, int argc, char **argv)
{
	static const struct option extra[] = {{"json", no_argument, NULL, OPT_JSON},
					      {"interval", required_argument, NULL, 'i'},
					      {"iterations", required_argument, NULL, 'n'}, {0}};
	struct args a;
	int rc = parse(cmd, argc, argv, "i:n:", extra, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest > 1)
		return usage(cmd, "more than one directory");
	if (a.interval <= 0)
		return usage(cmd, "top needs an interval over 0 seconds");
	struct top_opts opts = {.dir = a.nrest ? a.rest[0] : a.dir, .interval = a.interval,
				.iterations = a.iterations, .json = a.json};
	char why[256];
	rc = top_run(&opts, why, sizeof why);
	if (rc < 0)
		return fail("top", "%s", why);
	return EXIT_SUCCESS;
}

/* ---- load ---- */

/* Read FILE whole, counting on P. Returns 0 and a new buffer, or -errno. */
static int read_file(const char *file, unsigned char **bytes, size_t *len, struct progress *p)
{
	progress_begin(p, "reading", 0);
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st = {0};
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		int rc = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		close(fd);
		return rc;
	}
	size_t cap = (size_t)st.st_size, used = 0;
	unsigned char *buf = malloc(cap ? cap : 1);
	int rc = buf ? 0 : -ENOMEM;
	progress_stage(p, "reading", cap);
	while (rc == 0 && used < cap) {
		size_t want = cap - used < (8u << 20) ? cap - used : (8u << 20);
		ssize_t n = read(fd, buf + used, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if (n == 0)
			cap = used; /* shrunk meanwhile: what is there */
		used += n > 0 ? (size_t)n : 0;
		progress_add(p, n > 0 ? (uint64_t)n : 0);
	}
	close(fd);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*bytes = buf;
	*len = used;
	return 0;
}

static int cmd_load(const struct command *cmd, int argc, char **argv)
{
	struct args a;
	int rc = parse(cmd, argc, argv, "", NULL, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest != 2)
		return usage(cmd, "FILE and NAME are needed");
	const char *file = a.rest[0], *name = a.rest[1];
	char dir[PATH_MAX], obj[NAME_MAX + 1], why[256] = "";
	const char *slash = strrchr(name, '/');
	snprintf(dir, sizeof dir, "%s", a.dir);
	if (slash)
		snprintf(dir, sizeof dir, "%.*s", slash == name ? 1 : (int)(slash - name), name);
	snprintf(obj, sizeof obj, "%s", slash ? slash + 1 : name);
	if (!obj[0] || obj_cfitsio_index(obj) >= 0 ||
	    sysv_name_parse(obj, NULL, NULL) != SYSV_NAME_INVALID)
		return fail(name, "loading goes into POSIX objects only: a stream NAME[.im.shm] "
				  "or an IMOD file IMODShrMem_KB_NAME");
	int imod = imod_name_capacity(obj) != 0;
	if (!imod && isio_is_stream_name(obj))
		obj[strlen(obj) - strlen(ISIO_SUFFIX)] = '\0';

	int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return fail(dir, "%s", strerror(errno));
	unsigned char *bytes = NULL;
	size_t len = 0;
	struct progress p;
	rc = read_file(file, &bytes, &len, &p);
	if (rc < 0) {
		progress_end(&p);
		close(dirfd);
		return fail(file, "%s", strerror(-rc));
	}
	progress_stage(&p, "storing", 0); /* the loader says nothing until done */
	int is_mrc = len >= MRC_HEADER_SIZE && memcmp(bytes + 208, "MAP ", 4) == 0;
	enum load_result did = LOAD_CREATED;
	if (imod && !is_mrc) {
		rc = -EINVAL;
		snprintf(why, sizeof why, "%s is not an MRC file: IMOD objects load from MRC", file);
	} else if (imod) {
		rc = load_mrc_imod(dirfd, obj, bytes, len, (uid_t)-1, (gid_t)-1, &did, why, sizeof why);
	} else {
		struct load_image img;
		rc = load_fits_decode(bytes, len, &img, why, sizeof why);
		if (rc == 0) {
			rc = load_stream(dirfd, obj, &img, (uid_t)-1, (gid_t)-1, &did, why, sizeof why);
			load_image_free(&img);
		}
	}
	progress_end(&p);
	free(bytes);
	close(dirfd);
	if (rc < 0)
		return fail(name, "%s", why[0] ? why : strerror(-rc));
	static const char *const said[] = {[LOAD_CREATED] = "created", [LOAD_UPDATED] = "updated",
					   [LOAD_REPLACED] = "replaced"};
	printf("%s%s: %s\n", obj, imod ? "" : ISIO_SUFFIX, said[did]);
	return EXIT_SUCCESS;
}

/* ---- save ---- */

static int cmd_save(const struct command *cmd, int argc, char **argv)
{
	static const struct option extra[] = {{"type", required_argument, NULL, OPT_TYPE},
					      {"shape", required_argument, NULL, OPT_SHAPE},
					      {"offset", required_argument, NULL, OPT_OFFSET}, {0}};
	struct args a;
	int rc = parse(cmd, argc, argv, "", extra, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest != 2)
		return usage(cmd, "NAME and FILE are needed");
	if ((a.type || a.offset) && !a.shape)
		return usage(cmd, "--type needs --shape");
	if (a.shape && !a.type)
		return usage(cmd, "--shape needs --type");
	const char *name = a.rest[0], *file = a.rest[1];
	struct obj o;
	char why[320];
	rc = obj_lookup(a.dir, name, &o);
	if (rc < 0)
		return lookup_fail(name, rc);
	struct typed_layout layout;
	if (a.type && typed_parse(a.type, a.shape, a.offset, o.size, &layout, why, sizeof why) < 0)
		return fail(name, "%s", why);
	struct progress p;
	char label[NAME_MAX + 16];
	snprintf(label, sizeof label, "saving %s", o.name);
	progress_begin(&p, label, 0);
	rc = save_object(&o, file, a.type ? &layout : NULL, &p, why, sizeof why);
	progress_end(&p);
	if (rc < 0)
		return fail(name, "%s", why);
	return EXIT_SUCCESS;
}

/* ---- link ---- */

/* NAME without ".im.shm" into STEM; -1 for a name that cannot be a stream. */
static int stream_stem(const char *name, char *stem, size_t len)
{
	size_t n = strlen(name), sl = strlen(ISIO_SUFFIX);
	if (isio_is_stream_name(name))
		n -= sl;
	if (n == 0 || memchr(name, '/', n) || n + sl > NAME_MAX || n >= len)
		return -1;
	snprintf(stem, len, "%.*s", (int)n, name);
	return 0;
}

static int cmd_link(const struct command *cmd, int argc, char **argv)
{
	struct args a;
	int rc = parse(cmd, argc, argv, "", NULL, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest != 2)
		return usage(cmd, "SRC and DST are needed");
	char src[NAME_MAX + 1], dst[NAME_MAX + 1];
	char target[NAME_MAX + sizeof ISIO_SUFFIX], linkname[NAME_MAX + sizeof ISIO_SUFFIX];
	if (stream_stem(a.rest[0], src, sizeof src) < 0)
		return fail(a.rest[0], "not a stream name (a file name in the directory)");
	if (stream_stem(a.rest[1], dst, sizeof dst) < 0)
		return fail(a.rest[1], "not a stream name (a file name in the directory)");
	if (!strcmp(src, dst))
		return fail(a.rest[1], "a stream cannot link to itself");
	snprintf(target, sizeof target, "%s" ISIO_SUFFIX, src);
	snprintf(linkname, sizeof linkname, "%s" ISIO_SUFFIX, dst);
	int dirfd = open(a.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return fail(a.dir, "%s", strerror(errno));
	struct stat st;
	rc = EXIT_SUCCESS;
	if (fstatat(dirfd, target, &st, 0) < 0 || !S_ISREG(st.st_mode)) {
		rc = fail(a.rest[0], "no stream %s in %s", target, a.dir);
	} else if (fstatat(dirfd, linkname, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(st.st_mode)) {
		rc = fail(a.rest[1], "%s exists and is not a stream link", linkname);
	} else {
		/* Made under a temporary name and renamed: an existing link is
		 * replaced at once, never missing for a reader. */
		char tmp[NAME_MAX + 1];
		snprintf(tmp, sizeof tmp, ".%.200s.%d.lnk", dst, (int)getpid());
		if (symlinkat(target, dirfd, tmp) < 0)
			rc = fail(a.rest[1], "%s", strerror(errno));
		else if (renameat(dirfd, tmp, dirfd, linkname) < 0) {
			rc = fail(a.rest[1], "%s", strerror(errno));
			unlinkat(dirfd, tmp, 0);
		}
	}
	close(dirfd);
	return rc;
}

/* ---- rm ---- */

static int remove_one(const char *dir, const char *name)
{
	struct obj o;
	int rc = obj_lookup(dir, name, &o);
	if (rc < 0)
		return lookup_fail(name, rc);
	if (o.format == OBJ_CFITSIO) {
		rc = cfshm_delete(cfshm_keybase(), cfshm_maxseg(), o.slot.index);
		if (rc == -EBUSY)
			return fail(name, "shmem://h%d is open in a CFITSIO program (it holds the "
					  "file's lock)", o.slot.index);
	} else if (o.backend == OBJ_SYSV) {
		rc = sysv_remove(o.seg.shmid);
	} else {
		char path[PATH_MAX * 2];
		snprintf(path, sizeof path, "%s/%s", o.dir, o.name);
		rc = unlink(path) < 0 ? -errno : 0;
	}
	return rc < 0 ? fail(name, "%s", strerror(-rc)) : EXIT_SUCCESS;
}

static int cmd_rm(const struct command *cmd, int argc, char **argv)
{
	struct args a;
	int rc = parse(cmd, argc, argv, "", NULL, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest < 1)
		return usage(cmd, "missing NAME");
	rc = EXIT_SUCCESS;
	for (int i = 0; i < a.nrest; i++)
		if (remove_one(a.dir, a.rest[i]) != EXIT_SUCCESS)
			rc = EXIT_FAILURE;
	return rc;
}

/* ---- clean ---- */

static int cmd_clean(const struct command *cmd, int argc, char **argv)
{
	static const struct option extra[] = {{"dry-run", no_argument, NULL, OPT_DRY_RUN},
					      {"yes", no_argument, NULL, 'y'}, {0}};
	struct args a;
	int rc = parse(cmd, argc, argv, "ny", extra, &a);
	if (rc >= 0)
		return rc;
	if (a.nrest)
		return usage(cmd, "no arguments expected");
	struct orphan *list;
	int n = orphan_find(OBJ_DEFAULT_DIR, a.dir, &list);
	if (n < 0)
		return fail("clean", "%s", strerror(-n));
	int remove = a.yes && !a.dry_run;
	rc = EXIT_SUCCESS;
	for (int i = 0; i < n; i++) {
		char why[256];
		if (!remove) {
			printf("would remove %s: %s\n", list[i].name, list[i].reason);
			continue;
		}
		int r = orphan_remove(OBJ_DEFAULT_DIR, &list[i], why, sizeof why);
		if (r == 0)
			printf("removed %s: %s\n", list[i].name, list[i].reason);
		else if (r == -EBUSY || r == -ENOENT)
			printf("kept %s: %s\n", list[i].name, why);
		else
			rc = fail(list[i].name, "%s", why);
	}
	if (n && !remove && isatty(STDERR_FILENO))
		fprintf(stderr, "shmtool: clean: nothing removed; give --yes to remove these\n");
	free(list);
	return rc;
}

static const struct command commands[] = {
	{"ls", cmd_ls, "ls [-l] [-i SECONDS] [--json] [DIR]",
	 "List every POSIX object of DIR (default /dev/shm), every System V segment and\n"
	 "every CFITSIO file: name, backend, format, element type, shape, size, owner,\n"
	 "mode and details (streams: CNT0, 'writing' while a writer is mid-update;\n"
	 "segments: nattch and creator PID, '(gone)' when it no longer exists), the\n"
	 "frame rate of each stream (HZ, counted over the interval) and the processes\n"
	 "that have each object mapped or open or a segment attached (PID/COMMAND;\n"
	 "as another user than root, only your own processes are seen).\n"
	 "A terminal gets aligned columns; a pipe gets tab-separated rows, no heading.\n\n"
	 "  -l, --long               also group, modification time and more details\n"
	 "  -i, --interval SECONDS   count stream frames this long (default 1; 0: no rates,\n"
	 "                           no wait)\n"
	 "  --json                   one JSON object per line, one line per object\n"},
	{"info", cmd_info, "info [--dir DIR] [-i SECONDS] [--json] NAME",
	 "Everything known of one object: its listing fields, the processes using\n"
	 "it and a stream's frame rate (as ls shows them), a stream's metadata,\n"
	 "semaphores and keywords, an IMOD image's labels, a segment's times, a\n"
	 "CFITSIO file's header cards. --json prints one JSON object.\n\n"
	 "  -i, --interval SECONDS   count a stream's frames this long (default 1; 0: no rate)\n"},
	{"top", cmd_top, "top [--dir DIR] [-i SECONDS] [-n COUNT] [--json] [DIR]",
	 "The objects of ls with their frame rates and processes, busiest stream\n"
	 "first, refreshed every interval on a terminal until q is pressed. In a\n"
	 "pipe (or with -n or --json) it prints COUNT snapshots (default 1):\n"
	 "tab-separated rows, or one JSON object per object and snapshot, with the\n"
	 "fields of ls --json.\n\n"
	 "  -i, --interval SECONDS   refresh (and rate) interval (default 1)\n"
	 "  -n, --iterations COUNT   this many snapshots, then exit\n"
	 "  --json                   JSON lines\n"},
	{"load", cmd_load, "load [--dir DIR] FILE NAME",
	 "Load a FITS FILE into stream NAME (NAME.im.shm in DIR): created, updated in\n"
	 "place as one frame, or replaced when its shape or type differ. An MRC FILE\n"
	 "loads into an IMOD object IMODShrMem_KB_NAME.\n"},
	{"save", cmd_save, "save [--dir DIR] [--type T --shape S [--offset N]] NAME FILE",
	 "Save one consistent frame of NAME to FILE: FITS, or MRC for an IMOD object\n"
	 "(unless FILE ends in .fits). Written to a temporary name and renamed.\n\n"
	 "  --type T --shape S [--offset N]   read a raw object as this layout\n"},
	{"link", cmd_link, "link [--dir DIR] SRC DST",
	 "Make DST.im.shm a stream link (symlink) to SRC.im.shm in DIR; an existing\n"
	 "link DST is replaced. Names with or without .im.shm.\n"},
	{"rm", cmd_rm, "rm [--dir DIR] NAME...",
	 "Remove objects: unlink a POSIX object, IPC_RMID a System V segment, delete\n"
	 "a CFITSIO file (segment, semaphore and table entry).\n"},
	{"clean", cmd_clean, "clean [--dir DIR] [--dry-run] [--yes]",
	 "List (or, with --yes, remove) System V segments nobody is attached to whose\n"
	 "creator is gone, CFITSIO table entries whose segment vanished, and old\n"
	 "ImageStreamIO semaphore files /dev/shm/sem.*_semNN whose stream is gone.\n"
	 "CFITSIO files and anything in use are never touched.\n\n"
	 "  -n, --dry-run   only list (the default without --yes)\n"
	 "  -y, --yes       remove\n"},
};

#define NCOMMANDS (sizeof commands / sizeof *commands)

static void overview(FILE *f)
{
	fprintf(f, "usage: shmtool COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  shmtool %s\n", commands[i].synopsis);
	fprintf(f, "\nNames: a file name in DIR (default " OBJ_DEFAULT_DIR "), 0xKKKKKKKK or id-N\n"
		   "for System V segments, shmem://hN or hN for CFITSIO files.\n"
		   "shmtool COMMAND --help tells more.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return overview(stderr), EXIT_USAGE;
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
		return overview(stdout), EXIT_SUCCESS;
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(&commands[i], argc - 1, argv + 1);
	fprintf(stderr, "shmtool: %s: unknown command (see shmtool --help)\n", argv[1]);
	return EXIT_USAGE;
}
