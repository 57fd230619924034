/* replace.c - the ways programs replace a file other than writing it over,
 * made loads of the view's object, as a copy onto the view is (load.c):
 *
 * - unlink, then create of the same name by the same program (astropy's
 *   writeto(overwrite=True), CFITSIO's "!name"). An unlink of a stream's
 *   view X.fits (of a stream link's, of an IMOD file's .mrc) does not remove
 *   the object at once: it is renamed aside in SOURCE (".X.im.shm.shmfs-
 *   unlinked-PID-N", hidden from the mount), so X.fits and X.im.shm are gone
 *   for everyone at once, as after rm. If the program that unlinked (its
 *   thread group) creates X.fits within the grace (-o unlink_grace, 1 s),
 *   the object is renamed back before the copy is staged, and the copy's
 *   close loads it in place (same inode, CNT0 + 1, readers waiting on its
 *   semaphores wake) or refuses it, leaving the object as it was. Anyone
 *   else's create makes a new object. The object set aside is removed as
 *   soon as the program that unlinked it exits (rm: at once), when its
 *   grace is over, when its directory is removed (rm -r), or at unmount:
 *   rm alone removes it, and SOURCE shows the hidden name only while a
 *   program that may still create the view again runs.
 * - rename of a regular file onto a view name (rsync's temporary, mv, an
 *   editor's new copy): the file is loaded into the object like a copy
 *   (all or nothing) and removed; if it does not load, the rename fails
 *   with the loader's error (logged; EBADMSG for a malformed file) and the
 *   file is left where it was.
 *
 * A worker thread carries out the removals (it polls the unlinking
 * processes' pidfds) and tells the kernel to forget names that changed
 * behind its back (it may not be told from within the request that changed
 * them: the kernel holds the directory's lock until the reply). */
#define _GNU_SOURCE
#include "fsload.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "creds.h"
#include "fsview.h"
#include "isio.h"
#include "log.h"

/* An object set aside by an unlink, until its grace is over or the
 * program that unlinked it exits. */
struct unlinked {
	struct unlinked *next;
	enum { WAITING, BUSY, DONE } state; /* BUSY: being put back or removed
					     * outside the lock; DONE: for the
					     * worker to free */
	dev_t dir_dev;             /* the directory, as nodes know it */
	ino_t dir_ino;
	int dirfd;                 /* the directory (O_PATH, owned) */
	char view[NAME_MAX + 1];   /* the name unlinked in the mount */
	char object[NAME_MAX + 1]; /* the object's own name */
	char hidden[NAME_MAX + 1]; /* where it waits */
	dev_t obj_dev;             /* what waits there (0: not known) */
	ino_t obj_ino;
	pid_t tgid;                /* who unlinked it */
	int pidfd;                 /* that process (readable once it exits), or -1 */
	int exited;                /* it has */
	struct timespec deadline;  /* CLOCK_MONOTONIC */
};

/* A name for the kernel to forget. */
struct forget {
	struct forget *next;
	fuse_ino_t parent;
	char name[NAME_MAX + 1];
};

/* Entries are freed (and their descriptors closed) by the worker alone,
 * which polls their pidfds without the lock. Lock order: node locks, then
 * this lock; no system call that may wait on the kernel is made under it. */
#define MOVED_SLOTS 16
#define MOVED_SECONDS 1

struct replace_state {
	pthread_mutex_t lock;
	struct unlinked *unlinked;  /* lock */
	unsigned count;             /* entries of UNLINKED: changed under lock,
				     * atomically, and read without it */
	struct forget *forgets;     /* lock */
	int stop;                   /* lock */
	unsigned counter;           /* lock: hidden names */
	int wakefd;                 /* eventfd: the worker has work */
	pthread_t worker;
	struct fuse_session *se;
	struct timespec grace;
	/* Files just renamed onto a view name (lock): the kernel keeps the
	 * file's node under that name until it is told to forget it. */
	struct moved {
		dev_t dev;          /* the file renamed (gone now) */
		ino_t ino;
		struct node *dir;   /* a reference; NULL: a free slot */
		char name[NAME_MAX + 1];
		struct timespec until; /* CLOCK_MONOTONIC */
	} moved[MOVED_SLOTS];
};

#define POLL_MAX 64 /* pidfds watched at once; more wait for their grace */

static void wake(struct replace_state *r)
{
	uint64_t one = 1;
	if (write(r->wakefd, &one, sizeof one) < 0) {
		/* the counter is full: the worker is awake anyway */
	}
}

static struct timespec deadline_after(struct timespec grace)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += grace.tv_sec;
	t.tv_nsec += grace.tv_nsec;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	return t;
}

/* Milliseconds from NOW to T (0 if passed), for poll. */
static int ms_until(const struct timespec *t, const struct timespec *now)
{
	long long ms = (long long)(t->tv_sec - now->tv_sec) * 1000 +
		       (t->tv_nsec - now->tv_nsec + 999999) / 1000000;
	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

/* Remove what U set aside (U is BUSY, the lock not held). */
static void carry_out(struct unlinked *u)
{
	if (unlinkat(u->dirfd, u->hidden, 0) < 0 && errno != ENOENT)
		shm_log(SHM_LOG_WARN, "%s: removing %s (set aside as %s) failed: %s", u->view,
			u->object, u->hidden, strerror(errno));
	else
		shm_log(SHM_LOG_DEBUG, "%s: %s removed", u->view, u->object);
}

static void entry_free(struct unlinked *u)
{
	if (u->pidfd >= 0)
		close(u->pidfd);
	close(u->dirfd);
	free(u);
}

/* Ask the worker to make the kernel forget NAME in directory node DIR. */
static void forget_later(struct shmfs *fs, struct node *dir, const char *name)
{
	struct replace_state *r = fs->replace;
	struct forget *f = calloc(1, sizeof *f);
	if (!f)
		return; /* the name's cache runs out after -o timeout anyway */
	f->parent = inode_number(fs, dir);
	snprintf(f->name, sizeof f->name, "%s", name);
	pthread_mutex_lock(&r->lock);
	f->next = r->forgets;
	r->forgets = f;
	pthread_mutex_unlock(&r->lock);
	wake(r);
}

/* One round of the worker, lock held: tell the kernel what to forget,
 * free finished entries, carry out due ones. Returns 1 if it did anything
 * (the lock was dropped: look again), else 0 and in *NEXT the earliest
 * deadline (or NULL). */
static int worker_round(struct replace_state *r, struct timespec *next, int *have_next)
{
	if (r->forgets) {
		struct forget *f = r->forgets;
		r->forgets = f->next;
		pthread_mutex_unlock(&r->lock);
		fuse_lowlevel_notify_inval_entry(r->se, f->parent, f->name, strlen(f->name));
		free(f);
		pthread_mutex_lock(&r->lock);
		return 1;
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	*have_next = 0;
	for (struct unlinked **pp = &r->unlinked; *pp; pp = &(*pp)->next) {
		struct unlinked *u = *pp;
		if (u->state == DONE) {
			*pp = u->next;
			__atomic_sub_fetch(&r->count, 1, __ATOMIC_RELEASE);
			pthread_mutex_unlock(&r->lock);
			entry_free(u);
			pthread_mutex_lock(&r->lock);
			return 1;
		}
		if (u->state != WAITING)
			continue;
		if (u->exited || ms_until(&u->deadline, &now) == 0) {
			u->state = BUSY;
			pthread_mutex_unlock(&r->lock);
			carry_out(u);
			pthread_mutex_lock(&r->lock);
			u->state = DONE;
			return 1;
		}
		if (!*have_next || ms_until(&u->deadline, next) == 0) {
			*next = u->deadline;
			*have_next = 1;
		}
	}
	return 0;
}

static void *worker(void *arg)
{
	struct replace_state *r = arg;
	struct pollfd fds[POLL_MAX + 1];
	struct unlinked *polled[POLL_MAX + 1];
	pthread_mutex_lock(&r->lock);
	while (!r->stop) {
		struct timespec next = {0, 0}, now;
		int have_next;
		if (worker_round(r, &next, &have_next))
			continue;
		/* Wait for a wake, a deadline, or a process that exits. */
		int n = 1;
		fds[0] = (struct pollfd){.fd = r->wakefd, .events = POLLIN};
		for (struct unlinked *u = r->unlinked; u && n <= POLL_MAX; u = u->next) {
			if (u->state == WAITING && u->pidfd >= 0) {
				polled[n] = u;
				fds[n++] = (struct pollfd){.fd = u->pidfd, .events = POLLIN};
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		int timeout = have_next ? ms_until(&next, &now) : -1;
		pthread_mutex_unlock(&r->lock);
		/* Only this thread frees entries: those polled stay valid. */
		int ready = poll(fds, (nfds_t)n, timeout);
		uint64_t count;
		if (ready > 0 && (fds[0].revents & POLLIN) &&
		    read(r->wakefd, &count, sizeof count) < 0) {
			/* nothing to read after all */
		}
		pthread_mutex_lock(&r->lock);
		for (int i = 1; ready > 0 && i < n; i++)
			if (fds[i].revents)
				polled[i]->exited = 1;
	}
	pthread_mutex_unlock(&r->lock);
	return NULL;
}

int replace_init(struct shmfs *fs, double grace)
{
	struct replace_state *r = calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	r->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->wakefd < 0) {
		int err = errno;
		free(r);
		return -err;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->se = fs->se;
	r->grace.tv_sec = (time_t)grace;
	r->grace.tv_nsec = (long)((grace - (double)r->grace.tv_sec) * 1e9);
	int rc = pthread_create(&r->worker, NULL, worker, r);
	if (rc != 0) {
		close(r->wakefd);
		pthread_mutex_destroy(&r->lock);
		free(r);
		return -rc;
	}
	fs->replace = r;
	return 0;
}

void replace_finish(struct shmfs *fs)
{
	struct replace_state *r = fs->replace;
	if (!r)
		return;
	pthread_mutex_lock(&r->lock);
	r->stop = 1;
	pthread_mutex_unlock(&r->lock);
	wake(r);
	pthread_join(r->worker, NULL);
	/* The mount is gone: nobody will create these again. */
	while (r->unlinked) {
		struct unlinked *u = r->unlinked;
		r->unlinked = u->next;
		if (u->state == WAITING)
			carry_out(u);
		entry_free(u);
	}
	while (r->forgets) {
		struct forget *f = r->forgets;
		r->forgets = f->next;
		free(f);
	}
	for (int i = 0; i < MOVED_SLOTS; i++)
		if (r->moved[i].dir)
			inode_forget(fs, r->moved[i].dir, 1);
	close(r->wakefd);
	pthread_mutex_destroy(&r->lock);
	free(r);
	fs->replace = NULL;
}

/* The caller's thread group: FUSE names the thread. */
static pid_t caller_tgid(fuse_req_t req)
{
	pid_t pid = fuse_req_ctx(req)->pid, tgid = pid;
	char path[64], line[128];
	snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
	FILE *f = pid > 0 ? fopen(path, "re") : NULL;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	if (f)
		fclose(f);
	return tgid;
}

/* Whether the caller of REQ may write file NAME of DIRFD (what a load into
 * it does; the kernel checked only the directories), as the filesystem
 * answers the caller itself. */
static int may_write(fuse_req_t req, int dirfd, const char *name)
{
	if (creds_enter(req) < 0)
		return 0;
	int ok = faccessat(dirfd, name, W_OK, AT_EACCESS) == 0;
	creds_leave();
	return ok;
}

/* The object file of view NAME (a load target, stem STEM): X.im.shm or the
 * IMOD file's own name. Returns 0, or -1 if it does not fit in LEN. */
static int object_file(const char *stem, int imod, char *object, size_t len)
{
	int n = snprintf(object, len, "%s%s", stem, imod ? "" : ISIO_SUFFIX);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* The kind of view NAME has in directory DIR, VK_NONE if none. */
static enum view_kind view_kind_of(struct shmfs *fs, struct node *dir, const char *name)
{
	struct fuse_entry_param e;
	if (view_entry(fs, dir, name, &e) < 0)
		return VK_NONE;
	struct node *v = inode_node(fs, e.ino);
	enum view_kind kind = (enum view_kind)v->variant;
	inode_forget(fs, v, 1); /* the reference view_entry took */
	return kind;
}

int replace_unlink(fuse_req_t req, struct node *parent, const char *name)
{
	struct shmfs *fs = shmfs_of(req);
	struct replace_state *r = fs->replace;
	char stem[NAME_MAX + 1], object[NAME_MAX + 1], hidden[NAME_MAX + 1];
	int imod;
	if (!r || (r->grace.tv_sec == 0 && r->grace.tv_nsec == 0) ||
	    !load_target(name, stem, sizeof stem, &imod))
		return 0;
	/* A real file of that name is unlinked as itself. */
	if (!inode_name_absent(fs, parent, name))
		return 0; /* a real file, or no descriptor: the plain unlink says why */
	enum view_kind kind = view_kind_of(fs, parent, name);
	if (kind != VK_STREAM_FITS && kind != VK_STREAM_LINK && kind != VK_IMOD_MRC)
		return 0;
	/* A caller the daemon cannot tell apart (another pid namespace gives
	 * pid 0) is not waited for. */
	pid_t tgid = caller_tgid(req);
	struct unlinked *u = tgid <= 0 || object_file(stem, imod, object, sizeof object) < 0
				     ? NULL : calloc(1, sizeof *u);
	if (!u)
		return 0;
	pthread_mutex_lock(&r->lock);
	unsigned n = r->counter++;
	pthread_mutex_unlock(&r->lock);
	int len = snprintf(hidden, sizeof hidden, ".%s.shmfs-unlinked-%d-%u", object, (int)getpid(), n);
	u->dirfd = inode_open(fs, parent, O_PATH | O_DIRECTORY); /* the grace's own */
	if (len < 0 || len > NAME_MAX || u->dirfd < 0 ||
	    renameat2(u->dirfd, object, u->dirfd, hidden, RENAME_NOREPLACE) < 0) {
		/* Removed at once, as without a grace (links_unlink). */
		if (u->dirfd >= 0)
			close(u->dirfd);
		free(u);
		return 0;
	}
	u->dir_dev = parent->dev;
	u->dir_ino = parent->ino;
	struct stat ost;
	if (fstatat(u->dirfd, hidden, &ost, AT_SYMLINK_NOFOLLOW) == 0) {
		u->obj_dev = ost.st_dev;
		u->obj_ino = ost.st_ino;
	}
	snprintf(u->view, sizeof u->view, "%s", name);
	snprintf(u->object, sizeof u->object, "%s", object);
	snprintf(u->hidden, sizeof u->hidden, "%s", hidden);
	u->tgid = tgid;
	/* The process is alive until this request is answered. */
	u->pidfd = (int)syscall(SYS_pidfd_open, tgid, 0);
	u->state = WAITING;
	u->deadline = deadline_after(r->grace);
	pthread_mutex_lock(&r->lock);
	u->next = r->unlinked;
	r->unlinked = u;
	__atomic_add_fetch(&r->count, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&r->lock);
	wake(r);
	/* The kernel may have X.im.shm cached: it is gone. */
	forget_later(fs, parent, object);
	fuse_reply_err(req, 0);
	return 1;
}

/* The first waiting entry of directory (DEV, INO), of process TGID and
 * view NAME unless they are 0 and NULL, made BUSY; or NULL. */
static struct unlinked *take_waiting(struct replace_state *r, dev_t dev, ino_t ino, pid_t tgid,
				     const char *name)
{
	struct unlinked *u;
	pthread_mutex_lock(&r->lock);
	for (u = r->unlinked; u; u = u->next)
		if (u->state == WAITING && u->dir_dev == dev && u->dir_ino == ino &&
		    (!tgid || u->tgid == tgid) && (!name || strcmp(u->view, name) == 0))
			break;
	if (u)
		u->state = BUSY;
	pthread_mutex_unlock(&r->lock);
	return u;
}

/* A BUSY entry's outcome: DONE (the worker frees it) or WAITING again. */
static void settle(struct replace_state *r, struct unlinked *u, int done)
{
	pthread_mutex_lock(&r->lock);
	u->state = done ? DONE : WAITING;
	pthread_mutex_unlock(&r->lock);
	wake(r);
}

void replace_reclaim(fuse_req_t req, struct node *parent, const char *name)
{
	struct replace_state *r = shmfs_of(req)->replace;
	if (!r || __atomic_load_n(&r->count, __ATOMIC_ACQUIRE) == 0)
		return;
	struct unlinked *u = take_waiting(r, parent->dev, parent->ino, caller_tgid(req), name);
	if (!u)
		return;
	/* Back under its name, if nobody made one meanwhile and the caller
	 * may write it (else its grace goes on, and the copy makes a new
	 * object or loads the one made meanwhile). */
	int back = may_write(req, u->dirfd, u->hidden) &&
		   renameat2(u->dirfd, u->hidden, u->dirfd, u->object, RENAME_NOREPLACE) == 0;
	if (back)
		shm_log_once(SHM_LOG_INFO, "%s: removed and created again by one program: the "
					   "copy is loaded into %s in place",
			     u->view, u->object);
	settle(r, u, back);
}

void replace_rmdir(struct shmfs *fs, struct node *parent, const char *name)
{
	struct replace_state *r = fs->replace;
	struct stat st;
	if (!r || __atomic_load_n(&r->count, __ATOMIC_ACQUIRE) == 0)
		return;
	int dirfd = inode_fd(fs, parent);
	int isdir = dirfd >= 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode);
	inode_fd_put(fs, parent, dirfd);
	if (!isdir)
		return;
	struct unlinked *u;
	while ((u = take_waiting(r, st.st_dev, st.st_ino, 0, NULL))) {
		carry_out(u);
		settle(r, u, 1);
	}
}

int replace_hidden(struct shmfs *fs, struct node *dir, const char *name)
{
	struct replace_state *r = fs->replace;
	if (!r || __atomic_load_n(&r->count, __ATOMIC_ACQUIRE) == 0)
		return 0;
	int found = 0;
	pthread_mutex_lock(&r->lock);
	for (struct unlinked *u = r->unlinked; u && !found; u = u->next)
		found = u->state != DONE && u->dir_dev == dir->dev && u->dir_ino == dir->ino &&
			strcmp(u->hidden, name) == 0;
	pthread_mutex_unlock(&r->lock);
	return found;
}

int replace_set_aside(struct shmfs *fs, const struct stat *st)
{
	struct replace_state *r = fs->replace;
	if (!r || __atomic_load_n(&r->count, __ATOMIC_ACQUIRE) == 0)
		return 0;
	int found = 0;
	pthread_mutex_lock(&r->lock);
	/* (not while BUSY: being put back under its name, or removed) */
	for (struct unlinked *u = r->unlinked; u && !found; u = u->next)
		found = u->state == WAITING && u->obj_dev && u->obj_dev == st->st_dev &&
			u->obj_ino == st->st_ino;
	pthread_mutex_unlock(&r->lock);
	return found;
}

void replace_filter(struct shmfs *fs, struct node *dir, void *snapshot)
{
	struct replace_state *r = fs->replace;
	if (!r || __atomic_load_n(&r->count, __ATOMIC_ACQUIRE) == 0)
		return;
	pthread_mutex_lock(&r->lock);
	for (struct unlinked *u = r->unlinked; u; u = u->next)
		if (u->state != DONE && u->dir_dev == dir->dev && u->dir_ino == dir->ino)
			dirsnap_drop(snapshot, u->hidden);
	pthread_mutex_unlock(&r->lock);
}

/* File ST was renamed onto view NEWNAME of DIR (and is gone): remember
 * it for MOVED_SECONDS. */
static void moved_add(struct shmfs *fs, const struct stat *st, struct node *dir,
		      const char *name)
{
	struct replace_state *r = fs->replace;
	if (!r || !inode_ref(&fs->table, dir))
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&r->lock);
	/* A free slot, else the one that runs out first. */
	struct moved *slot = &r->moved[0];
	for (int i = 1; i < MOVED_SLOTS && slot->dir; i++)
		if (!r->moved[i].dir ||
		    ms_until(&r->moved[i].until, &now) < ms_until(&slot->until, &now))
			slot = &r->moved[i];
	struct node *old = slot->dir;
	*slot = (struct moved){st->st_dev, st->st_ino, dir, "",
			       deadline_after((struct timespec){MOVED_SECONDS, 0})};
	snprintf(slot->name, sizeof slot->name, "%s", name);
	pthread_mutex_unlock(&r->lock);
	if (old)
		inode_forget(fs, old, 1);
}

void replace_moved_open(fuse_req_t req, struct node *n, int flags)
{
	struct shmfs *fs = shmfs_of(req);
	struct replace_state *r = fs->replace;
	if (!r || (flags & O_ACCMODE) == O_RDONLY)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	struct node *dir = NULL;
	char name[NAME_MAX + 1];
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < MOVED_SLOTS && !dir; i++) {
		struct moved *m = &r->moved[i];
		if (m->dir && m->dev == n->dev && m->ino == n->ino && ms_until(&m->until, &now) > 0 &&
		    inode_ref(&fs->table, m->dir)) {
			dir = m->dir;
			snprintf(name, sizeof name, "%s", m->name);
		}
	}
	pthread_mutex_unlock(&r->lock);
	if (!dir)
		return;
	struct fuse_entry_param e;
	if (view_entry(fs, dir, name, &e) == 0) {
		struct node *v = inode_node(fs, e.ino);
		if (v->kind == NODE_VIEW && v->gen) {
			if ((flags & O_TRUNC) &&
			    (v->variant == VK_STREAM_FITS || v->variant == VK_IMOD_MRC))
				load_trunc_redirect(req, v);
			else
				view_writer_redirect(req, v);
		}
		inode_forget(fs, v, 1);
	}
	inode_forget(fs, dir, 1);
}

/* A copy of file FD (LEN bytes) in a memfd of the daemon's own, which
 * nobody else can shrink while the loader reads it. Returns it or -errno. */
static int snapshot(int fd, off_t len)
{
	int copy = memfd_create("shmfs-rename", MFD_CLOEXEC);
	if (copy < 0)
		return -errno;
	for (off_t off = 0; off < len;) {
		ssize_t n = sendfile(copy, fd, &off, (size_t)(len - off));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;
			close(copy);
			return -err;
		}
	}
	return copy;
}

/* replace_rename with the descriptors of PARENT and NEWPARENT at hand:
 * 1 (loaded), -errno (the rename's error) or 0 (no load). Does not
 * reply. */
static int rename_load(fuse_req_t req, int dirfd, const char *name, struct node *newparent,
		       int newdirfd, const char *newname, unsigned int flags)
{
	struct shmfs *fs = shmfs_of(req);
	char stem[NAME_MAX + 1], object[NAME_MAX + 1], label[2 * NAME_MAX + 40];
	int imod;
	struct stat st;
	if ((flags & RENAME_EXCHANGE) || !load_target(newname, stem, sizeof stem, &imod))
		return 0;
	/* A real file of that name is renamed over as itself; only regular
	 * files load (a stream link spelled .fits is links.c's). */
	if (!name_absent(newdirfd, newname) ||
	    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	if (object_file(stem, imod, object, sizeof object) < 0)
		return 0;
	snprintf(label, sizeof label, "%s (renamed from %s)", newname, name);
	int rc = 0;
	if (view_kind_of(fs, newparent, newname) != VK_NONE) {
		if (flags & RENAME_NOREPLACE)
			rc = -EEXIST;
		else if (!may_write(req, newdirfd, object)) {
			shm_log_once(SHM_LOG_WARN, "%s: not loaded: the caller may not write %s "
						   "(EACCES)",
				     label, object);
			rc = -EACCES;
		}
	}
	int fd = rc < 0 ? -1 : openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	int copy = rc < 0 ? rc : fd < 0 ? -errno : snapshot(fd, st.st_size);
	if (fd >= 0)
		close(fd);
	if (rc == 0 && copy < 0) {
		shm_log(SHM_LOG_WARN, "%s: not loaded: the file cannot be read (%s)", label,
			strerror(-copy));
		rc = copy == -ENOMEM || copy == -EMFILE || copy == -ENFILE ? copy : -EIO;
	}
	if (rc == 0) {
		uid_t uid;
		gid_t gid;
		load_owner(req, &uid, &gid);
		rc = load_from_fd(newdirfd, stem, imod, copy, uid, gid, label);
		close(copy);
	}
	if (rc < 0) {
		/* Not EINVAL: for rename(2) it means a directory moved into
		 * itself, and mv says so. */
		return rc == -EINVAL ? -EBADMSG : rc;
	}
	/* Loaded: the file is gone, as a rename takes it away. */
	if (unlinkat(dirfd, name, 0) < 0)
		shm_log(SHM_LOG_WARN, "%s: loaded, but %s could not be removed: %s", label, name,
			strerror(errno));
	/* The kernel moves the renamed file's entry to NEWNAME: it must look
	 * the name up again to find the view. Until it is told to, an open
	 * through that entry reaches the file's node (moved_open). */
	moved_add(fs, &st, newparent, newname);
	forget_later(fs, newparent, newname);
	return 1;
}

int replace_rename(fuse_req_t req, struct node *parent, const char *name, struct node *newparent,
		   const char *newname, unsigned int flags)
{
	char stem[NAME_MAX + 1];
	int imod;
	if ((flags & RENAME_EXCHANGE) || !load_target(newname, stem, sizeof stem, &imod))
		return 0;
	return rename_in_dirs(req, parent, name, newparent, newname, flags, rename_load);
}
