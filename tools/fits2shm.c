/* fits2shm.c - cacao's Fits2shm without milk: load a FITS image into an
 * ImageStreamIO stream unless the file and the stream are both unchanged
 * since the last load, keeping cacao's bookkeeping in ./loadedSM/ and ./conf/. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

#define PROG "fits2shm"
/* ImageStreamIO's name field is 80 bytes with its NUL. */
#define STREAM_NAME_MAX 79
/* One line of .FITSinfo / .SMinfo: a path, a size and a time. */
#define INFO_MAX (PATH_MAX + 128)

struct opts {
	int from_conf;          /* -c: file name from ./conf/shmim_STREAM.name.txt */
	int force;              /* -f */
	int remove;             /* -r */
	int verbose;            /* -v */
	const char *prefix;     /* -p, "" by default */
	const char *stream;
	char fits[PATH_MAX];
};

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void fail(const char *fmt, ...)
{
	va_list ap;
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

/* snprintf for paths: a name that does not fit is an error, not a
 * silently shorter name. */
static void path_fmt(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void path_fmt(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len)
		fail("%s...: %s", buf, strerror(ENAMETOOLONG));
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " PROG " [-f] [-r] [-v] [-p PREFIX] FITSFILE STREAM\n"
		"       " PROG " -c [-f] [-r] [-v] [-p PREFIX] STREAM\n"
		"Load FITSFILE into the stream PREFIXSTREAM unless neither has changed since\n"
		"the last load (see ./loadedSM/STREAM.*).\n"
		"  -c         take the file name from ./conf/shmim_STREAM.name.txt\n"
		"  -p PREFIX  prefix of the stream's name (cacao: aolN_)\n"
		"  -f         load even if nothing changed\n"
		"  -r         remove the stream and its bookkeeping first, then load\n"
		"  -v         say what was done\n");
}

/* The first line of PATH into BUF, without surrounding white space.
 * Returns 0 or -errno (-ENODATA for an empty line). */
static int read_first_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	int rc = 0;
	if (!fgets(buf, (int)len, f))
		rc = ferror(f) ? -EIO : -ENODATA;
	fclose(f);
	if (rc)
		return rc;
	size_t n = strcspn(buf, "\r\n");
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	size_t skip = strspn(buf, " \t");
	memmove(buf, buf + skip, n - skip + 1);
	return buf[0] ? 0 : -ENODATA;
}

/* The whole of a small file PATH into BUF (NUL-terminated). Returns its
 * length or -errno. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t got = 0;
	while (got + 1 < len) {
		ssize_t n = read(fd, buf + got, len - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/* Replace PATH by a file holding TEXT. A script reading PATH while we run
 * sees the old or the new text, never half of one: write aside, rename. */
static void write_file(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	path_fmt(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		fail("%s: %s", tmp, strerror(errno));
	size_t len = strlen(text), done = 0;
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;
			close(fd);
			unlink(tmp);
			fail("%s: %s", tmp, strerror(e));
		}
		done += (size_t)n;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		int e = errno;
		unlink(tmp);
		fail("%s: %s", path, strerror(e));
	}
}

static void remove_file(const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		fail("%s: %s", path, strerror(errno));
}

/* An empty marker file loadedSM/STREAM.SUFFIX that exists iff ON. */
static void marker(const char *stream, const char *suffix, int on)
{
	char path[PATH_MAX];
	path_fmt(path, sizeof(path), "./loadedSM/%s.%s", stream, suffix);
	if (!on) {
		remove_file(path);
		return;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		fail("%s: %s", path, strerror(errno));
	close(fd);
}


/* ./loadedSM/STREAM.KINDinfo (KIND FITS or SM) now INFO, .KINDinfo.old the
 * previous record (OLD, or none), and the KINDsame or KINDchanged marker. */
static void record(const char *stream, const char *kind, const char *old, const char *info,
		   int same)
{
	char path[PATH_MAX], name[16];
	path_fmt(path, sizeof(path), "./loadedSM/%s.%sinfo.old", stream, kind);
	if (old)
		write_file(path, old);
	else
		remove_file(path);
	path_fmt(path, sizeof(path), "./loadedSM/%s.%sinfo", stream, kind);
	write_file(path, info);
	snprintf(name, sizeof name, "%ssame", kind);
	marker(stream, name, same);
	snprintf(name, sizeof name, "%schanged", kind);
	marker(stream, name, !same);
}

static void make_dir(const char *path)
{
	if (mkdir(path, 0777) != 0 && errno != EEXIST)
		fail("%s: %s", path, strerror(errno));
}

/* The line cacao's script kept for a file: `stat -L --format "%n %s %y"`,
 * i.e. the name as given, the size, and the modification time in local
 * time to the nanosecond. Returns 0 or -errno from stat. */
static int file_info(const char *path, char *buf, size_t len)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -errno;
	struct tm tm;
	char when[64], zone[16];
	localtime_r(&st.st_mtim.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(buf, len, "%s %lld %s.%09ld %s\n", path, (long long)st.st_size, when,
		 st.st_mtim.tv_nsec, zone);
	return 0;
}

/* The stream directory as ImageStreamIO picks it: $MILK_SHM_DIR if it can be
 * opened, else /milk/shm, else /tmp. Returns an O_DIRECTORY descriptor and
 * the path in DIR. */
static int open_shm_dir(char *dir, size_t len)
{
	const char *env = getenv("MILK_SHM_DIR");
	const char *candidates[] = { env, "/milk/shm", "/tmp" };
	for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (!candidates[i] || !candidates[i][0])
			continue;
		int fd = open(candidates[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			snprintf(dir, len, "%s", candidates[i]);
			return fd;
		}
	}
	fail("no stream directory: $MILK_SHM_DIR, /milk/shm and /tmp cannot be opened");
}

/* Read and decode the FITS file PATH into IMG, or exit with why not. */
static void decode_fits(const char *path, struct load_image *img)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("%s: %s", path, strerror(errno));
	struct stat st;
	if (fstat(fd, &st) != 0)
		fail("%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		fail("%s: not a regular file", path);
	/* Read, not map: a file truncated under a mapping would kill us with
	 * SIGBUS; a short read is just a malformed file to the decoder. */
	size_t cap = (size_t)st.st_size, got = 0;
	unsigned char *bytes = malloc(cap ? cap : 1);
	if (!bytes)
		fail("%s: %s", path, strerror(ENOMEM));
	while (got < cap) {
		ssize_t n = read(fd, bytes + got, cap - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			fail("%s: %s", path, strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	char why[256] = "";
	int rc = load_fits_decode(bytes, got, img, why, sizeof(why));
	free(bytes);
	if (rc < 0)
		fail("%s: %s", path, why[0] ? why : strerror(-rc));
}

/* -r: the stream (or the link by its name) and everything fits2shm kept
 * about it goes; the name file stays, since -c needs it, and so does the
 * link to the FITS file, which may be the very file being loaded (it is
 * pointed at the file again after the load). */
static void remove_previous(int dirfd, const char *dir, const char *shmname,
			    const char *stream)
{
	static const char *const kept[] = { "FITSinfo", "FITSinfo.old", "FITSsame",
		"FITSchanged", "SMinfo", "SMinfo.old", "SMsame", "SMchanged", "imsize",
		"new", "kept", "missing" };
	char path[PATH_MAX];
	if (unlinkat(dirfd, shmname, 0) != 0 && errno != ENOENT)
		fail("%s/%s: %s", dir, shmname, strerror(errno));
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++) {
		path_fmt(path, sizeof(path), "./loadedSM/%s.%s", stream, kept[i]);
		remove_file(path);
	}
	path_fmt(path, sizeof(path), "./conf/shmim_%s.imsize.txt", stream);
	remove_file(path);
}

/* ./conf/shmim_STREAM.fits -> the FITS file, made absolute because the link
 * lives in ./conf/ and a relative name is relative to where we run. */
static void link_fits(const char *stream, const char *fits)
{
	char target[PATH_MAX], link[PATH_MAX], tmp[PATH_MAX], now[PATH_MAX];
	if (fits[0] == '/') {
		snprintf(target, sizeof(target), "%s", fits);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof(cwd)))
			fail("getcwd: %s", strerror(errno));
		const char *rel = fits;
		while (rel[0] == '.' && rel[1] == '/')
			rel += 2 + strspn(rel + 2, "/");
		if ((size_t)snprintf(target, sizeof(target), "%s/%s", cwd, rel) >= sizeof(target))
			fail("%s: %s", fits, strerror(ENAMETOOLONG));
	}
	path_fmt(link, sizeof(link), "./conf/shmim_%s.fits", stream);
	/* Loading from the link itself (fits2shm conf/shmim_S.fits S) must not
	 * turn it into a link to itself. */
	struct stat given, current;
	if (lstat(fits, &given) == 0 && lstat(link, &current) == 0 &&
	    given.st_dev == current.st_dev && given.st_ino == current.st_ino)
		return;
	ssize_t n = readlink(link, now, sizeof(now) - 1);
	if (n >= 0) {
		now[n] = '\0';
		if (strcmp(now, target) == 0)
			return;
	}
	path_fmt(tmp, sizeof(tmp), "%s.%ld.tmp", link, (long)getpid());
	unlink(tmp);
	if (symlink(target, tmp) != 0)
		fail("%s: %s", tmp, strerror(errno));
	if (rename(tmp, link) != 0) {
		int e = errno;
		unlink(tmp);
		fail("%s: %s", link, strerror(e));
	}
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {{"help", no_argument, NULL, 'h'}, {0}};
	int c;
	o->prefix = "";
	while ((c = getopt_long(argc, argv, "hcfrvp:", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			exit(0);
		case 'c':
			o->from_conf = 1;
			break;
		case 'f':
			o->force = 1;
			break;
		case 'r':
			o->remove = 1;
			break;
		case 'v':
			o->verbose = 1;
			break;
		case 'p':
			o->prefix = optarg;
			break;
		default:
			usage(stderr);
			exit(2);
		}
	}
	int want = o->from_conf ? 1 : 2;
	if (argc - optind != want) {
		usage(stderr);
		exit(2);
	}
	o->stream = argv[argc - 1];
	if (!o->from_conf) {
		if (!argv[optind][0])
			fail("empty FITS file name");
		if ((size_t)snprintf(o->fits, sizeof(o->fits), "%s", argv[optind]) >= sizeof(o->fits))
			fail("%s: %s", argv[optind], strerror(ENAMETOOLONG));
	}
	/* The stream name names files here and in the stream directory. */
	if (!o->stream[0] || strchr(o->stream, '/') || strcmp(o->stream, ".") == 0 ||
	    strcmp(o->stream, "..") == 0)
		fail("%s: not a usable stream name", o->stream);
	if (strchr(o->prefix, '/'))
		fail("%s: a prefix cannot hold '/'", o->prefix);
	if (strlen(o->prefix) + strlen(o->stream) > STREAM_NAME_MAX)
		fail("%s%s: stream names are at most %d characters", o->prefix, o->stream,
		     STREAM_NAME_MAX);
}

int main(int argc, char **argv)
{
	struct opts o = { 0 };
	parse_args(argc, argv, &o);

	char path[PATH_MAX];
	make_dir("./conf");
	make_dir("./loadedSM");
	path_fmt(path, sizeof(path), "./conf/shmim_%s.name.txt", o.stream);
	if (o.from_conf) {
		int rc = read_first_line(path, o.fits, sizeof(o.fits));
		if (rc == -ENODATA)
			fail("%s: no FITS file name in it", path);
		if (rc < 0)
			fail("%s: %s", path, strerror(-rc));
	}

	/* The FITS file must be there before anything is touched. */
	char fits_info[INFO_MAX];
	int rc = file_info(o.fits, fits_info, sizeof(fits_info));
	if (rc < 0)
		fail("%s: %s", o.fits, strerror(-rc));

	char dir[PATH_MAX], shmname[NAME_MAX + 1], shmpath[PATH_MAX];
	int dirfd = open_shm_dir(dir, sizeof(dir));
	path_fmt(shmname, sizeof(shmname), "%s%s" ISIO_SUFFIX, o.prefix, o.stream);
	path_fmt(shmpath, sizeof(shmpath), "%s/%s", dir, shmname);

	struct load_image img = { 0 };
	int decoded = 0;
	if (o.remove) {
		/* Decode first: a bad file must not cost the user the old stream. */
		decode_fits(o.fits, &img);
		decoded = 1;
		remove_previous(dirfd, dir, shmname, o.stream);
	}

	/* What was recorded at the last load, against what is there now. */
	char old_fits[INFO_MAX], old_sm[INFO_MAX], sm_info[INFO_MAX];
	path_fmt(path, sizeof(path), "./loadedSM/%s.FITSinfo", o.stream);
	int have_old_fits = read_small(path, old_fits, sizeof(old_fits)) >= 0;
	path_fmt(path, sizeof(path), "./loadedSM/%s.SMinfo", o.stream);
	int have_old_sm = read_small(path, old_sm, sizeof(old_sm)) >= 0;
	int fits_same = have_old_fits && strcmp(old_fits, fits_info) == 0;
	rc = file_info(shmpath, sm_info, sizeof(sm_info));
	if (rc < 0 && rc != -ENOENT)
		fail("%s: %s", shmpath, strerror(-rc));
	int missing = rc == -ENOENT;
	int sm_same = !missing && have_old_sm && strcmp(old_sm, sm_info) == 0;

	int load = !fits_same || !sm_same || missing || o.force;
	enum load_result did = LOAD_UPDATED;
	if (load) {
		if (!decoded)
			decode_fits(o.fits, &img);
		char why[256] = "";
		char name[STREAM_NAME_MAX + 1];
		snprintf(name, sizeof(name), "%s%s", o.prefix, o.stream);
		rc = load_stream(dirfd, name, &img, (uid_t)-1, (gid_t)-1, &did, why, sizeof(why));
		if (rc < 0)
			fail("%s: %s", shmpath, why[0] ? why : strerror(-rc));
		/* What the next run compares against is the stream as we left it. */
		rc = file_info(shmpath, sm_info, sizeof(sm_info));
		if (rc < 0)
			fail("%s: %s", shmpath, strerror(-rc));
	}
	close(dirfd);

	/* Bookkeeping, only once the stream is right: a failed load leaves the
	 * old records, so the next run tries again. */
	if (!o.from_conf) {
		char line[PATH_MAX + 2], now[PATH_MAX + 2];
		snprintf(line, sizeof(line), "%s\n", o.fits);
		path_fmt(path, sizeof(path), "./conf/shmim_%s.name.txt", o.stream);
		if (read_small(path, now, sizeof(now)) < 0 || strcmp(now, line) != 0)
			write_file(path, line);
	}
	record(o.stream, "FITS", have_old_fits ? old_fits : NULL, fits_info, fits_same);
	record(o.stream, "SM", have_old_sm ? old_sm : NULL, sm_info, sm_same);

	marker(o.stream, "new", load);
	marker(o.stream, "kept", !load);
	marker(o.stream, "missing", missing);

	if (load) {
		/* milk's readshmimsize format: each axis followed by a space. */
		char size[64] = "";
		size_t n = 0;
		for (int i = 0; i < img.naxis; i++)
			n += (size_t)snprintf(size + n, sizeof(size) - n, "%u ", img.size[i]);
		snprintf(size + n, sizeof(size) - n, "\n");
		path_fmt(path, sizeof(path), "./loadedSM/%s.imsize", o.stream);
		write_file(path, size);
		path_fmt(path, sizeof(path), "./conf/shmim_%s.imsize.txt", o.stream);
		write_file(path, size);
	}
	link_fits(o.stream, o.fits);

	if (o.verbose) {
		static const char *const what[] = { [LOAD_CREATED] = "created",
			[LOAD_UPDATED] = "updated", [LOAD_REPLACED] = "replaced" };
		if (load)
			printf("%s: %s from %s\n", shmpath, what[did], o.fits);
		else
			printf("%s: kept, %s unchanged\n", shmpath, o.fits);
	}
	if (decoded || load)
		load_image_free(&img);
	return 0;
}
