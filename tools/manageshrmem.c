/* manageshrmem.c - a drop-in for IMOD's manageshrmem: makes each IMOD shared-memory
 * file (/IMODShrMem_<KB>_<name>, a POSIX object) when a command first needs it, runs
 * the commands in order through sh -c, and removes each file after its last user. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "imod.h"

#define PROGRAM "manageshrmem"

/* ---- Options, read the way IMOD's PIP parser reads them ---------------------- */

enum value_kind { VALUE_BOOLEAN, VALUE_INTEGER, VALUE_INTEGERS, VALUE_RANGES, VALUE_TEXT,
		  VALUE_FILE };
static const char *const kind_names[] = {
	[VALUE_BOOLEAN] = "", [VALUE_INTEGER] = "Integer", [VALUE_INTEGERS] = "Multiple integers",
	[VALUE_RANGES] = "List of integer ranges", [VALUE_TEXT] = "Text string",
	[VALUE_FILE] = "File name",
};

enum { OPT_FILE, OPT_COMMAND, OPT_NEED, OPT_TRY, OPT_TEST, OPT_KEEP, OPT_REMOVE, OPT_HELP,
       OPT_COUNT };

struct option_spec {
	const char *short_name, *long_name;
	enum value_kind kind;
	bool accumulates;  /* repeated entries add up; otherwise the last one wins */
	const char *help;
};

static const struct option_spec option_specs[OPT_COUNT] = {
	[OPT_FILE] = {"file", "FileToCreate", VALUE_FILE, true,
		      "A shared-memory file to create, named /IMODShrMem_<KB>_<name>: KB is\n"
		      "its size in kilobytes (allow 2 for the header area)."},
	[OPT_COMMAND] = {"command", "CommandToRun", VALUE_TEXT, true,
			 "A command to run with sh -c; commands run in the order entered."},
	[OPT_NEED] = {"need", "NeedFilesForCommand", VALUE_INTEGERS, true,
		      "The files (numbered from 1; 0 for none) one command needs. Enter it\n"
		      "once per command, or not at all when there is one file fewer than\n"
		      "commands: file i is then needed by commands i and i+1."},
	[OPT_TRY] = {"try", "TrySizesFirst", VALUE_INTEGER, false,
		     "First create the largest set of files that will exist at once:\n"
		     "-1 to only test that, 1 to run the commands after it succeeds."},
	[OPT_TEST] = {"test", "TestSizesInKilobytes", VALUE_INTEGERS, false,
		      "Create files of these sizes together, report, remove them and exit."},
	[OPT_KEEP] = {"keep", "ListOfFilesToKeep", VALUE_RANGES, false,
		      "Files (e.g. 1-3,5) to leave in place when all commands succeed."},
	[OPT_REMOVE] = {"remove", "JustRemoveFiles", VALUE_BOOLEAN, false,
			"Remove the files entered with -file and exit."},
	[OPT_HELP] = {"help", "Usage", VALUE_BOOLEAN, false, "Print this help and exit."},
};

/* PIP's name for "read more entries from standard input": any prefix of it. */
static const char standard_input_name[] = "StandardInput";
/* A line that ends the entries on standard input. */
static const char end_input_name[] = "EndInput";

struct entries {
	char **values;
	size_t count;
};

struct input {
	struct entries of[OPT_COUNT];
	size_t total;  /* all entries: none at all means "print the help" */
};

/* ---- The objects this run made --------------------------------------------- */

struct shm_file {
	const char *name;  /* "/IMODShrMem_<KB>_<name>" */
	uint64_t bytes;    /* KB * 1024, from the name */
	long first_use;    /* index of the first command needing it; -1 if none */
	long last_use;     /* index of the last; the command count when kept */
	bool keep;
	bool exists;       /* made by this run and not yet removed */
};

/* Every way out (an error, a signal) removes what this run made, so the table
 * of files being managed is reachable from die() and the signal path. */
static struct shm_file *managed;
static size_t managed_count;

static void remove_all_made(void)
{
	for (size_t i = 0; i < managed_count; i++)
		if (managed[i].exists) {
			shm_unlink(managed[i].name);
			managed[i].exists = false;
		}
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	remove_all_made();
	fflush(stdout);
	fputs(PROGRAM ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void *xrealloc(void *p, size_t n, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes) || !(p = realloc(p, bytes ? bytes : 1)))
		die("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *copy = strdup(s);
	if (!copy)
		die("out of memory");
	return copy;
}

/* Index of the option NAME names (a prefix of exactly one option's short or long
 * name, case-sensitive as in PIP); -1 if none, -2 if more than one. */
static int option_lookup(const char *name)
{
	size_t len = strlen(name);
	int found = -1;
	if (len == 0)
		return -1;
	for (int i = 0; i < OPT_COUNT; i++) {
		const struct option_spec *o = &option_specs[i];
		if (strncmp(o->short_name, name, len) && strncmp(o->long_name, name, len))
			continue;
		if (found >= 0)
			return -2;
		found = i;
	}
	return found;
}

/* SHOWN is the option as the user wrote it, WHERE says where that was. */
static int option_lookup_or_die(const char *name, const char *shown, const char *where)
{
	int opt = option_lookup(name);
	if (opt == -2)
		die("%sambiguous option: %s", where, shown);
	if (opt < 0)
		die("%sunknown option: %s (try -help)", where, shown);
	return opt;
}

/* Takes VALUE (malloc'd) as the next entry of option OPT. */
static void add_entry(struct input *in, int opt, char *value)
{
	struct entries *e = &in->of[opt];
	if (!option_specs[opt].accumulates && e->count) {
		free(e->values[0]);
		e->count = 0;
	}
	e->values = xrealloc(e->values, e->count + 1, sizeof *e->values);
	e->values[e->count++] = value;
	in->total++;
}

/* Reads "Option value" lines from standard input as PIP does: the option name
 * (abbreviations allowed) ends at a blank or '=', one '=' may precede the value,
 * '#' starts a comment, blank lines are skipped, and a line "EndInput" ends
 * the entries before the end of the file. */
static void read_standard_input(struct input *in)
{
	static bool unbuffered;
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;

	/* Read no further than the entries, so that the commands, which inherit
	 * standard input, get whatever follows "EndInput". */
	if (!unbuffered) {
		setvbuf(stdin, NULL, _IONBF, 0);
		unbuffered = true;
	}
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		char where[64];
		snprintf(where, sizeof where, "standard input line %zu: ", ++lineno);
		char *hash = memchr(line, '#', (size_t)len);
		if (hash)
			len = hash - line;
		while (len > 0 && strchr(" \t\r\n", line[len - 1]))
			len--;
		line[len] = '\0';
		char *name = line + strspn(line, " \t");
		if (!*name)
			continue;
		char *value = name + strcspn(name, "= \t");
		char saved = *value;
		*value = '\0';
		if (!strcmp(name, end_input_name))
			break;
		int opt = option_lookup_or_die(name, name, where);
		*value = saved;
		value += strspn(value, " \t");
		if (*value == '=')
			value += 1 + strspn(value + 1, " \t");
		if (*value == '=')
			die("%stwo '=' after %s", where, name);
		/* A boolean named alone is set, as on the command line. */
		if (!*value && option_specs[opt].kind != VALUE_BOOLEAN)
			die("%s%s needs a value", where, name);
		add_entry(in, opt, xstrdup(*value ? value : "1"));
	}
	if (ferror(stdin))
		die("reading standard input: %s", strerror(errno));
	free(line);
}

static void parse_arguments(int argc, char **argv, struct input *in)
{
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];
		if (arg[0] != '-')
			die("unexpected argument: %s (options start with -)", arg);
		const char *name = arg + (arg[1] == '-' ? 2 : 1);
		if (!*name)
			die("illegal argument: %s", arg);
		/* PIP checks this before the options, so -S is always StandardInput. */
		if (!strncmp(standard_input_name, name, strlen(name))) {
			read_standard_input(in);
			continue;
		}
		int opt = option_lookup_or_die(name, arg, "");
		if (option_specs[opt].kind == VALUE_BOOLEAN) {
			add_entry(in, opt, xstrdup("1"));
			continue;
		}
		if (++i == argc)
			die("option %s needs a value", arg);
		add_entry(in, opt, xstrdup(argv[i]));
	}
}

static void print_help(void)
{
	printf("Usage: " PROGRAM " [options]\n"
	       "Creates IMOD shared-memory files as a sequence of commands needs them, runs\n"
	       "the commands in order and removes each file after the last command using it.\n"
	       "Options may be abbreviated to any unique start; short forms in parentheses.\n"
	       "Repeated -file, -command and -need entries add up; for the others the last\n"
	       "entry counts.\n");
	for (int i = 0; i < OPT_COUNT; i++) {
		const struct option_spec *o = &option_specs[i];
		char abbrev[16] = "";
		/* The shortest unique start of the short name, as the lookup sees it. */
		for (size_t n = 1; n < strlen(o->short_name) && n < sizeof abbrev; n++) {
			memcpy(abbrev, o->short_name, n);
			abbrev[n] = '\0';
			if (option_lookup(abbrev) == i)
				break;
			abbrev[0] = '\0';
		}
		printf(" -%s", o->short_name);
		if (*abbrev)
			printf(" (-%s)", abbrev);
		printf(" OR -%s%s%s\n", o->long_name, *kind_names[o->kind] ? "   " : "",
		       kind_names[o->kind]);
		for (const char *p = o->help; *p;) {
			int n = (int)strcspn(p, "\n");
			printf("    %.*s\n", n, p);
			p += n + (p[n] == '\n');
		}
	}
	printf(" -%s\n    Read more entries, \"Option value\" one per line, from standard input\n"
	       "    (until its end or a line \"%s\").\n", standard_input_name, end_input_name);
}

/* ---- Values ----------------------------------------------------------------- */

static const char *last_entry(const struct input *in, int opt)
{
	const struct entries *e = &in->of[opt];
	return e->count ? e->values[e->count - 1] : NULL;
}

static long parse_long(const char *text, int opt, const char *whole)
{
	char *end;
	errno = 0;
	long v = strtol(text, &end, 10);
	if (end == text || *end || errno || v < INT_MIN || v > INT_MAX)
		die("bad value for -%s: %s", option_specs[opt].short_name, whole);
	return v;
}

static bool entry_boolean(const struct input *in, int opt)
{
	static const char *const yes[] = {"1", "T", "TRUE", "ON", "t", "true", "on"};
	static const char *const no[] = {"0", "F", "FALSE", "OFF", "f", "false", "off"};
	const char *v = last_entry(in, opt);
	if (!v)
		return false;
	for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
		if (!strcmp(v, yes[i]))
			return true;
		if (!strcmp(v, no[i]))
			return false;
	}
	die("bad value for -%s: %s (enter 1 or 0)", option_specs[opt].short_name, v);
}

/* The numbers of TEXT, separated by commas and blanks, into *OUT (malloc'd; the
 * caller frees). With RANGES, "a-b" stands for a through b. Returns the count. */
static size_t parse_numbers(const char *text, int opt, bool ranges, long **out)
{
	char *copy = xstrdup(text), *save = NULL;
	long *numbers = NULL;
	size_t count = 0;
	for (char *tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		long lo, hi;
		char *dash = ranges ? strchr(tok + 1, '-') : NULL;
		if (dash) {
			*dash = '\0';
			lo = parse_long(tok, opt, text);
			hi = parse_long(dash + 1, opt, text);
		} else {
			lo = hi = parse_long(tok, opt, text);
		}
		/* IMOD's range lists may run downwards too. */
		long step = lo <= hi ? 1 : -1;
		if (labs(hi - lo) > 1000000)
			die("range too long in -%s: %s", option_specs[opt].short_name, text);
		for (long v = lo;; v += step) {
			numbers = xrealloc(numbers, count + 1, sizeof *numbers);
			numbers[count++] = v;
			if (v == hi)
				break;
		}
	}
	free(copy);
	if (!count)
		die("no numbers in -%s: '%s'", option_specs[opt].short_name, text);
	*out = numbers;
	return count;
}

/* ---- Objects ---------------------------------------------------------------- */

/* Makes the POSIX object NAME of exactly BYTES bytes, mode 0600 whatever the umask
 * (as IMOD's own creator makes them: the pipeline's programs run as its user),
 * its memory reserved so that a
 * shortage shows here and not as SIGBUS in a command. An object of that name left
 * over from an earlier run is replaced, as IMOD's own creator does. Returns 0 or a
 * negative errno, leaving nothing behind. */
static int object_create(const char *name, uint64_t bytes)
{
	if (shm_unlink(name) < 0 && errno != ENOENT)
		return -errno;
	int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (fchmod(fd, 0600) < 0 || ftruncate(fd, (off_t)bytes) < 0)
		rc = -errno;
	else if (bytes)
		rc = -posix_fallocate(fd, 0, (off_t)bytes);
	close(fd);
	if (rc < 0)
		shm_unlink(name);
	return rc;
}

static void file_create(struct shm_file *f, size_t index)
{
	int rc = object_create(f->name, f->bytes);
	if (rc < 0)
		die("cannot create file %zu, %s: %s", index + 1, f->name, strerror(-rc));
	f->exists = true;
}

/* Returns false (having said why) if the object could not be removed. */
static bool file_remove(struct shm_file *f)
{
	f->exists = false;
	if (shm_unlink(f->name) == 0 || errno == ENOENT)
		return true;
	fprintf(stderr, PROGRAM ": cannot remove %s: %s\n", f->name, strerror(errno));
	return false;
}

/* ---- Signals ---------------------------------------------------------------- */

/* The termination signals are blocked from the first object on and taken with
 * sigwaitinfo, so none can land between a check and a wait. SIGCHLD is blocked
 * too, to wake that wait when a command ends. */
struct signals {
	sigset_t caught;   /* the termination signals this run reacts to */
	sigset_t waited;   /* those plus SIGCHLD */
	sigset_t original; /* the mask to give the commands */
};

static void signals_block(struct signals *s)
{
	static const int termination[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM};
	sigemptyset(&s->caught);
	for (size_t i = 0; i < sizeof termination / sizeof *termination; i++) {
		struct sigaction old;
		/* One that was ignored when we started (a background job's SIGINT)
		 * stays ignored, for us as for the commands. */
		if (sigaction(termination[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaddset(&s->caught, termination[i]);
	}
	s->waited = s->caught;
	sigaddset(&s->waited, SIGCHLD);
	sigprocmask(SIG_BLOCK, &s->waited, &s->original);
}

/* A termination signal already received, or 0. */
static int signal_pending(const struct signals *s)
{
	static const struct timespec now = {0, 0};
	int sig;
	while ((sig = sigtimedwait(&s->caught, NULL, &now)) < 0 && errno == EINTR)
		;
	return sig > 0 ? sig : 0;
}

/* Removes what this run made and ends the way SIG ends a process, so the caller
 * sees the usual status (128 + SIG from a shell). */
static void __attribute__((noreturn)) die_by_signal(int sig)
{
	remove_all_made();
	fflush(stdout);
	signal(sig, SIG_DFL);
	raise(sig);
	sigset_t just;
	sigemptyset(&just);
	sigaddset(&just, sig);
	sigprocmask(SIG_UNBLOCK, &just, NULL);
	_exit(128 + sig);
}

/* Runs COMMAND with sh -c and waits for it. Returns 0 with its wait status in
 * *STATUS; or the termination signal that arrived first (passed on to the
 * command, which may not have had it: kill(1) reaches only us); or -errno. */
static int command_run(const char *command, const struct signals *s, int *status)
{
	fflush(stdout);
	fflush(stderr);
	pid_t child = fork();
	if (child < 0)
		return -errno;
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &s->original, NULL);
		execl("/bin/sh", "sh", "-c", command, (char *)NULL);
		fprintf(stderr, PROGRAM ": cannot run /bin/sh: %s\n", strerror(errno));
		_exit(127);
	}
	for (;;) {
		pid_t done = waitpid(child, status, WNOHANG);
		if (done == child)
			return 0;
		if (done < 0 && errno != EINTR)
			return -errno;
		int sig = sigwaitinfo(&s->waited, NULL);
		if (sig < 0 || sig == SIGCHLD)
			continue;
		kill(child, sig);
		return sig;
	}
}

/* ---- The modes -------------------------------------------------------------- */

/* -test: make files of these sizes together, say so, remove them. */
static int test_sizes(const char *sizes_text, struct signals *s)
{
	long *sizes;
	size_t n = parse_numbers(sizes_text, OPT_TEST, false, &sizes);
	managed = xrealloc(NULL, n, sizeof *managed);
	for (size_t i = 0; i < n; i++) {
		char *name;
		if (sizes[i] <= 0)
			die("test sizes must be positive: %s", sizes_text);
		if (asprintf(&name, "/IMODShrMem_%ld_manageshrmem-test-%ld-%zu", sizes[i],
			     (long)getpid(), i + 1) < 0)
			die("out of memory");
		managed[i] = (struct shm_file){.name = name, .bytes = (uint64_t)sizes[i] * 1024};
	}
	signals_block(s);
	uint64_t total_kb = 0;
	for (size_t i = 0; i < n; i++) {
		managed_count = i + 1;
		total_kb += (uint64_t)sizes[i];
		int rc = object_create(managed[i].name, managed[i].bytes);
		if (rc < 0)
			die("cannot create test file %zu of %ld KB (%.1f MB in all so far): %s",
			    i + 1, sizes[i], total_kb / 1024.0, strerror(-rc));
		managed[i].exists = true;
		int sig = signal_pending(s);
		if (sig)
			die_by_signal(sig);
	}
	remove_all_made();
	printf("All %zu test files, %" PRIu64 " KB (%.1f MB) in all, could be created together\n",
	       n, total_kb, total_kb / 1024.0);
	for (size_t i = 0; i < n; i++)
		free((char *)managed[i].name);
	free(managed);
	free(sizes);
	return 0;
}

/* The files from the -file entries, checked: IMOD's name form, no repeats. */
static void files_from_entries(const struct input *in)
{
	const struct entries *e = &in->of[OPT_FILE];
	if (!e->count)
		die("enter at least one shared-memory file with -file");
	managed = xrealloc(NULL, e->count, sizeof *managed);
	for (size_t i = 0; i < e->count; i++) {
		const char *name = e->values[i];
		uint64_t bytes = name[0] == '/' ? imod_name_capacity(name + 1) : 0;
		if (!bytes || strchr(name + 1, '/') || strlen(name + 1) > NAME_MAX)
			die("not a shared-memory file name of the form /IMODShrMem_<KB>_<name> "
			    "(KB > 2): %s", name);
		if (bytes > (uint64_t)INT64_MAX)
			die("file too large: %s", name);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(managed[j].name, name))
				die("file %zu repeats file %zu: %s", i + 1, j + 1, name);
		managed[i] = (struct shm_file){.name = name, .bytes = bytes,
					       .first_use = -1, .last_use = -1};
	}
	managed_count = e->count;
}

/* Sets each file's first and last use from -need (or the default chain) and
 * -keep, and checks that every file is used. */
static void plan_uses(const struct input *in, size_t ncommands)
{
	const struct entries *needs = &in->of[OPT_NEED];
	if (!needs->count && managed_count + 1 != ncommands)
		die("%zu files and %zu commands: without -need there must be one file fewer "
		    "than commands", managed_count, ncommands);
	if (needs->count && needs->count != ncommands)
		die("-need was entered %zu times for %zu commands; enter it once per command",
		    needs->count, ncommands);
	for (size_t c = 0; c < ncommands; c++) {
		long *list, chain[2] = {(long)c, (long)c + 1};
		size_t n;
		if (needs->count) {
			n = parse_numbers(needs->values[c], OPT_NEED, false, &list);
		} else {
			/* The default chain: command c needs files c - 1 and c (from 1). */
			list = chain;
			n = 2;
		}
		for (size_t k = 0; k < n; k++) {
			long f = list[k];
			if (f < 0 || (needs->count && (size_t)f > managed_count))
				die("file %ld needed by command %zu is out of range 0-%zu", f, c + 1,
				    managed_count);
			if (f == 0 || (size_t)f > managed_count)
				continue;
			struct shm_file *file = &managed[f - 1];
			if (file->first_use < 0)
				file->first_use = (long)c;
			file->last_use = (long)c;
		}
		if (list != chain)
			free(list);
	}
	const char *keep = last_entry(in, OPT_KEEP);
	if (keep) {
		long *list;
		size_t n = parse_numbers(keep, OPT_KEEP, true, &list);
		for (size_t k = 0; k < n; k++) {
			if (list[k] < 1 || (size_t)list[k] > managed_count)
				die("file %ld to keep is out of range 1-%zu", list[k], managed_count);
			managed[list[k] - 1].keep = true;
		}
		free(list);
	}
	for (size_t i = 0; i < managed_count; i++) {
		struct shm_file *f = &managed[i];
		if (f->keep) {
			/* A kept file nobody needs is made up front, for the programs
			 * that will use it after this run. */
			if (f->first_use < 0)
				f->first_use = 0;
			f->last_use = (long)ncommands;
		} else if (f->first_use < 0) {
			die("file %zu, %s, is needed by no command", i + 1, f->name);
		}
	}
}

/* -try: make the largest set of files that will exist together, then remove it. */
static void try_sizes(size_t ncommands, const struct signals *s)
{
	uint64_t peak = 0;
	size_t peak_at = 0;
	for (size_t c = 0; c < ncommands; c++) {
		uint64_t sum = 0;
		for (size_t i = 0; i < managed_count; i++)
			if (managed[i].first_use <= (long)c && (long)c <= managed[i].last_use)
				sum += managed[i].bytes;
		if (sum > peak) {
			peak = sum;
			peak_at = c;
		}
	}
	for (size_t i = 0; i < managed_count; i++) {
		struct shm_file *f = &managed[i];
		if (f->first_use <= (long)peak_at && (long)peak_at <= f->last_use) {
			int rc = object_create(f->name, f->bytes);
			if (rc < 0)
				die("-try: cannot create file %zu, %s, of the %.1f MB needed at "
				    "once: %s", i + 1, f->name, peak / 1048576.0, strerror(-rc));
			f->exists = true;
			int sig = signal_pending(s);
			if (sig)
				die_by_signal(sig);
		}
	}
	remove_all_made();
	printf("The files needed at once, %" PRIu64 " KB (%.1f MB) in all, could be created\n",
	       peak / 1024, peak / 1048576.0);
}

static void run_commands(const struct input *in, const struct signals *s)
{
	const struct entries *commands = &in->of[OPT_COMMAND];
	bool removed_all = true;
	for (size_t c = 0; c < commands->count; c++) {
		const char *command = commands->values[c];
		for (size_t i = 0; i < managed_count; i++)
			if (managed[i].first_use == (long)c)
				file_create(&managed[i], i);
		int sig = signal_pending(s), status = 0;
		if (sig)
			die_by_signal(sig);
		int rc = command_run(command, s, &status);
		if (rc > 0)
			die_by_signal(rc);
		/* A Ctrl-C reaches the command and us together: ours says why it died. */
		if ((sig = signal_pending(s)))
			die_by_signal(sig);
		if (rc < 0)
			die("cannot start command %zu: %s", c + 1, strerror(-rc));
		if (WIFSIGNALED(status))
			die("command %zu was killed by signal %d (%s): %s", c + 1, WTERMSIG(status),
			    strsignal(WTERMSIG(status)), command);
		if (WEXITSTATUS(status))
			die("command %zu exited with status %d: %s", c + 1, WEXITSTATUS(status),
			    command);
		for (size_t i = 0; i < managed_count; i++)
			if (managed[i].last_use == (long)c && managed[i].exists)
				removed_all &= file_remove(&managed[i]);
	}
	if (!removed_all)
		exit(1);
	printf("All commands succeeded\n");
}

int main(int argc, char **argv)
{
	/* Static: what the entries point to stays reachable however we exit. */
	static struct input in;
	struct signals s;

	parse_arguments(argc, argv, &in);
	if (!in.total || entry_boolean(&in, OPT_HELP)) {
		print_help();
		return 0;
	}
	/* As in IMOD: -test overrides everything, -remove everything else. */
	const char *test = last_entry(&in, OPT_TEST);
	if (test)
		return test_sizes(test, &s);
	files_from_entries(&in);
	if (entry_boolean(&in, OPT_REMOVE)) {
		bool ok = true;
		for (size_t i = 0; i < managed_count; i++)
			ok &= file_remove(&managed[i]);
		return ok ? 0 : 1;
	}
	size_t ncommands = in.of[OPT_COMMAND].count;
	if (!ncommands)
		die("enter at least one command with -command");
	plan_uses(&in, ncommands);
	const char *try_text = last_entry(&in, OPT_TRY);
	long try_first = try_text ? parse_long(try_text, OPT_TRY, try_text) : 0;

	signals_block(&s);
	if (try_first) {
		try_sizes(ncommands, &s);
		if (try_first < 0)
			return 0;
	}
	run_commands(&in, &s);
	return 0;
}
