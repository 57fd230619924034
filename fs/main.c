/* main.c - the shmfs daemon: options, mount, and the multithreaded session
 * loop. Usage: shmfs [-f] [-d] [-o OPTIONS] [SOURCE] MOUNTPOINT; also called
 * by mount.fuse3 as shmfs SOURCE MOUNTPOINT -o OPTIONS. */
#define _GNU_SOURCE
#include "fs.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "creds.h"
#include "log.h"
#include "fsload.h"
#include "fsview.h"
#include "viewint.h"
#include "passthrough.h"

struct options {
	char *source;
	char *mountpoint;
	char *sysvdir;
	char *passthrough;
	double timeout;
	double unlink_grace;
	int reserve;
	int noreuse;
	int foreground;
	int debug;
	int single_thread;
	int help;
	int version;
};

enum { KEY_HELP, KEY_VERSION, KEY_FOREGROUND, KEY_DEBUG, KEY_SINGLE };

#define OPT(t, p) {t, offsetof(struct options, p), 1}
static const struct fuse_opt option_spec[] = {
	OPT("sysvdir=%s", sysvdir),
	OPT("passthrough=%s", passthrough),
	OPT("timeout=%lf", timeout),
	OPT("unlink_grace=%lf", unlink_grace),
	OPT("reserve", reserve),
	OPT("noreuse", noreuse),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_END,
};

static int option_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	(void)outargs;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->source) {
			o->source = strdup(arg);
			return 0;
		}
		if (!o->mountpoint) {
			o->mountpoint = strdup(arg);
			return 0;
		}
		fprintf(stderr, "shmfs: too many arguments: %s\n", arg);
		return -1;
	case KEY_HELP: o->help = 1; return 0;
	case KEY_VERSION: o->version = 1; return 0;
	case KEY_FOREGROUND: o->foreground = 1; return 0;
	case KEY_DEBUG: o->debug = 1; o->foreground = 1; return 1; /* libfuse traces too */
	case KEY_SINGLE: o->single_thread = 1; return 0;
	default: return 1;
	}
}

static void usage(const char *prog)
{
	printf("usage: %s [-f] [-d] [-o OPTIONS] [SOURCE] MOUNTPOINT\n"
	       "\n"
	       "Show shared memory as files: every POSIX shared-memory object of SOURCE\n"
	       "(default /dev/shm) and every System V segment (in MOUNTPOINT/sysv/).\n"
	       "\n"
	       "  -f                 stay in the foreground, log to stderr\n"
	       "  -d                 debug: -f plus a trace of every request\n"
	       "  -h, --help         this text\n"
	       "  -V, --version      the version\n"
	       "  -o sysvdir=NAME    name of the System V directory (default sysv)\n"
	       "  -o passthrough=auto|on|off\n"
	       "                     let the kernel serve raw files itself (FUSE\n"
	       "                     passthrough: kernel 6.9+, root): auto uses it when\n"
	       "                     it can, on refuses to run without it, off never\n"
	       "                     (default auto)\n"
	       "  -o timeout=SECS    how long the kernel may cache names and attributes\n"
	       "                     (default 1; data is always live, and new objects\n"
	       "                     show at once: only changes made outside the mount\n"
	       "                     to existing names and attributes can show late)\n"
	       "  -o unlink_grace=SECS\n"
	       "                     how long a stream whose view is removed waits for\n"
	       "                     the same program to create the view again, which\n"
	       "                     then loads it in place (astropy overwrite=True,\n"
	       "                     CFITSIO's !name); default 1, 0 removes at once\n"
	       "  -o reserve         growing a file with truncate reserves its memory\n"
	       "                     (ENOSPC then, not SIGBUS at a store later); by\n"
	       "                     default a file grows sparse, as on tmpfs\n"
	       "  -o noreuse         never write a large view's served file again for a\n"
	       "                     later frame (slower new frames; for pages lent\n"
	       "                     by sendfile or splice to slow readers)\n"
	       "  -o allow_other     let other users use the mount (their own\n"
	       "                     permissions still apply: default_permissions is\n"
	       "                     always on)\n"
	       "  -o OPTION          any other FUSE mount option\n"
	       "\n"
	       "Also: mount -t fuse.shmfs SOURCE MOUNTPOINT\n",
	       prog);
}

static void syslog_sink(enum shm_log_level level, const char *line)
{
	syslog((int)level, "%s", line);
}

static void fuse_log_to_ours(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof line, fmt, ap);
	size_t len = strlen(line);
	if (len && line[len - 1] == '\n')
		line[len - 1] = '\0';
	shm_log(level <= FUSE_LOG_ERR ? SHM_LOG_ERR
		: level == FUSE_LOG_WARNING ? SHM_LOG_WARN
		: level <= FUSE_LOG_INFO ? SHM_LOG_INFO : SHM_LOG_DEBUG, "%s", line);
}

/* Nodes hold no descriptor (inodefd.c), opens do: the soft limit goes up
 * to the hard one now, and further (to fs.nr_open, as root) if the daemon
 * ever runs out (fd_limit_raise). */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* pthread_cancel() needs libgcc_s for unwinding, and glibc loads it the
 * first time a thread is cancelled: libfuse cancels its workers when the
 * mount goes away. Loaded now, the load then opens no file, so the daemon
 * exits cleanly even with no descriptor left (the library stays: NODELETE). */
static void preload_unwinder(void)
{
	if (!dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE))
		shm_log(SHM_LOG_WARN, "cannot load libgcc_s.so.1 (%s): the daemon may not stop "
				      "cleanly if it has no descriptor left at unmount",
			dlerror());
}

/* Replace *PATH (malloc'd) by its real path; -1 with a message if it has none. */
static int make_real(char **path)
{
	char *real = realpath(*path, NULL);
	if (!real) {
		fprintf(stderr, "shmfs: %s: %s\n", *path, strerror(errno));
		return -1;
	}
	free(*path);
	*path = real;
	return 0;
}

static int shmfs_init_state(struct shmfs *fs, const struct options *o)
{
	memset(fs, 0, sizeof *fs);
	fs->source = o->source;
	fs->mountpoint = o->mountpoint;
	fs->sysvdir = o->sysvdir ? o->sysvdir : strdup("sysv");
	fs->debug = o->debug;
	fs->timeout = o->timeout;
	fs->reserve = o->reserve;
	if (o->noreuse)
		viewspare_no_reuse();
	clock_gettime(CLOCK_REALTIME, &fs->started);
	if (!fs->sysvdir || !*fs->sysvdir || strchr(fs->sysvdir, '/') ||
	    !strcmp(fs->sysvdir, ".") || !strcmp(fs->sysvdir, "..")) {
		fprintf(stderr, "shmfs: sysvdir must be a plain file name\n");
		return -1;
	}
	fs->root.kind = NODE_POSIX;
	fs->root.nlookup = 2;
	/* Open for reading, not O_PATH: file handles are opened relative to it. */
	fs->root.fd = open(o->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->root.fd < 0 && errno == EACCES)
		fs->root.fd = open(o->source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->root.fd < 0) {
		fprintf(stderr, "shmfs: %s: %s\n", o->source, strerror(errno));
		return -1;
	}
	struct stat st;
	fstat(fs->root.fd, &st);
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.isdir = 1;
	pthread_mutex_init(&fs->root.lock, NULL);
	fs->sysv_dir.kind = NODE_SYSV_DIR;
	fs->sysv_dir.fd = -1;
	fs->sysv_dir.shmid = -1;
	pthread_mutex_init(&fs->sysv_dir.lock, NULL);
	pthread_mutex_init(&fs->pending_lock, NULL);
	pthread_mutex_init(&fs->open_lock, NULL);
	pthread_mutex_init(&fs->typed_lock, NULL);
	fs->open_items.next = fs->open_items.prev = &fs->open_items;
	if (inode_table_init(&fs->table) < 0) {
		fprintf(stderr, "shmfs: out of memory\n");
		return -1;
	}
	inode_fd_setup(&fs->table, fs->root.fd);
	if (!shmfs_sysv_visible(fs))
		shm_log(SHM_LOG_INFO,
			"%s has its own entry '%s', which is shown as itself; System V segments "
			"are not shown: choose another name for their directory with "
			"-o sysvdir=NAME",
			o->source, fs->sysvdir);
	return 0;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o = {.timeout = 1.0, .unlink_grace = 1.0};
	struct shmfs fs;
	struct fuse_session *se = NULL;
	int ret = 1;

	if (fuse_opt_parse(&args, &o, option_spec, option_proc) < 0)
		goto out_args;
	if (o.help) {
		usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (o.version) {
		printf("shmfs %s (libfuse %s)\n", SHMFS_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (o.source && !o.mountpoint) { /* one argument: the mount point */
		o.mountpoint = o.source;
		o.source = NULL;
	}
	if (!o.mountpoint) {
		fprintf(stderr, "shmfs: no mount point given (try --help)\n");
		goto out_args;
	}
	if (!o.source)
		o.source = strdup("/dev/shm");
	/* Link targets given as paths in the mount are stored relative to
	 * the link (links.c), which needs the mount point's own path too. */
	if (make_real(&o.source) < 0 || make_real(&o.mountpoint) < 0)
		goto out_args;

	enum passthrough_mode pt_mode = PASSTHROUGH_AUTO;
	if (!(o.timeout >= 0 && o.timeout <= 86400)) {
		fprintf(stderr, "shmfs: timeout must be between 0 and 86400 seconds\n");
		goto out_args;
	}
	if (!(o.unlink_grace >= 0 && o.unlink_grace <= 3600)) {
		fprintf(stderr, "shmfs: unlink_grace must be between 0 and 3600 seconds\n");
		goto out_args;
	}
	if (o.passthrough && passthrough_parse_mode(o.passthrough, &pt_mode) < 0) {
		fprintf(stderr, "shmfs: passthrough=%s: use auto, on or off\n", o.passthrough);
		goto out_args;
	}
	char why[160];
	if (pt_mode == PASSTHROUGH_OFF) {
		shm_log(SHM_LOG_INFO, "passthrough off (-o passthrough=off): reads and writes go "
				      "through the daemon; mmap(MAP_SHARED) of raw files in the mount "
				      "fails with ENODEV");
	} else if (!passthrough_possible(why, sizeof why)) {
		if (pt_mode == PASSTHROUGH_ON) {
			fprintf(stderr, "shmfs: passthrough=on, but %s\n", why);
			goto out_args;
		}
		shm_log(SHM_LOG_INFO, "passthrough off: %s; reads and writes go through the "
				      "daemon; mmap(MAP_SHARED) of raw files in the mount fails with "
				      "ENODEV", why);
		pt_mode = PASSTHROUGH_OFF;
	}

	shm_log_set_debug(o.debug);
	fuse_set_log_func(fuse_log_to_ours);
	raise_fd_limit();
	preload_unwinder();
	/* Objects are made with the caller's credentials (creds.c), and with
	 * the caller's umask only: the kernel applies it to the mode before
	 * the request arrives (FUSE without POSIX ACLs), so the daemon's own
	 * must not mask it again. */
	umask(0);
	if (creds_init() < 0) {
		fprintf(stderr, "shmfs: cannot read the daemon's own groups\n");
		goto out_args;
	}
	if (shmfs_init_state(&fs, &o) < 0)
		goto out_args;

	/* default_permissions always: the daemon is root, the kernel must check
	 * every caller against the segment's own mode and owner. */
	if (fuse_opt_add_arg(&args, "-odefault_permissions,subtype=shmfs,max_read=1048576") < 0)
		goto out_state;
	{
		char *fsname = NULL;
		if (fuse_opt_add_opt_escaped(&fsname, o.source) < 0)
			goto out_state;
		char *opt = NULL;
		if (asprintf(&opt, "-ofsname=%s", fsname) < 0) {
			free(fsname);
			goto out_state;
		}
		free(fsname);
		fuse_opt_add_arg(&args, opt);
		free(opt);
	}

	se = fuse_session_new(&args, &shmfs_ops, sizeof shmfs_ops, &fs);
	if (!se)
		goto out_state;
	fs.se = se;
	if (fuse_set_signal_handlers(se) != 0)
		goto out_session;
	if (fuse_session_mount(se, o.mountpoint) != 0)
		goto out_signals;
	if (passthrough_install(se, pt_mode) != 0) {
		fprintf(stderr, "shmfs: cannot install the protocol hooks\n");
		goto out_unmount;
	}
	if (!o.foreground) {
		openlog("shmfs", LOG_PID, LOG_DAEMON);
		shm_log_set_sink(syslog_sink);
	}
	if (fuse_daemonize(o.foreground) != 0)
		goto out_unmount;
	shm_log(SHM_LOG_INFO, "serving %s at %s", o.source, o.mountpoint);
	/* After daemonizing: its worker thread would not survive the fork. */
	if (replace_init(&fs, o.unlink_grace) < 0) {
		fprintf(stderr, "shmfs: cannot start a thread\n");
		goto out_unmount;
	}

	if (o.single_thread) {
		ret = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		if (!cfg)
			goto out_unmount;
		fuse_loop_cfg_set_clone_fd(cfg, 1);
		fuse_loop_cfg_set_max_threads(cfg, 16);
		fuse_loop_cfg_set_idle_threads(cfg, 4);
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	ret = ret ? 1 : 0;
	open_close_all(&fs); /* what the kernel never released, while the device is open */
	view_stop_all();

out_unmount:
	replace_finish(&fs); /* objects still in their unlink grace are removed */
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_session:
	fuse_session_destroy(se);
out_state:
	open_close_all(&fs);
	sysvview_free_all(&fs);
	inode_table_destroy(&fs.table);
	close(fs.root.fd);
	free(fs.sysvdir);
out_args:
	free(o.source);
	free(o.mountpoint);
	free(o.passthrough);
	fuse_opt_free_args(&args);
	return ret;
}
