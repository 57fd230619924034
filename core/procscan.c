/* procscan.c - which processes use which file or segment, from /proc; see
 * procscan.h. Files are matched by device and inode (stat of the mapping's or
 * descriptor's file), never by path: a path means something else in another
 * mount namespace, and a process may have reached the file by any name. */
#define _GNU_SOURCE
#include "procscan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* ---- one maps line ---- */

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A number in BASE (16 or 10) at *P (before END), followed by STOP (or, if
 * STOP is ' ', by the end of the line). Advances *P past STOP. */
static int parse_number(const char **p, const char *end, int base, char stop, uint64_t max,
			uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	int digits = 0;
	for (; s < end; s++, digits++) {
		int d = base == 16 ? hex_value(*s) : (*s >= '0' && *s <= '9' ? *s - '0' : -1);
		if (d < 0)
			break;
		if (v > (max - (uint64_t)d) / (uint64_t)base)
			return -EINVAL;
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (digits == 0)
		return -EINVAL;
	if (s < end && *s == stop)
		s++;
	else if (!(s == end && stop == ' '))
		return -EINVAL;
	*p = s;
	*out = v;
	return 0;
}

int proc_maps_parse(const char *line, size_t len, struct proc_map *m)
{
	const char *p = line, *end = line + len;
	uint64_t major, minor;
	memset(m, 0, sizeof *m);
	if (len && end[-1] == '\n')
		end--;
	if (parse_number(&p, end, 16, '-', UINT64_MAX, &m->start) < 0 ||
	    parse_number(&p, end, 16, ' ', UINT64_MAX, &m->end) < 0 || m->end < m->start)
		return -EINVAL;
	static const char allowed[4][3] = {"r-", "w-", "x-", "sp"};
	if (end - p < 5 || p[4] != ' ')
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		if (!p[i] || !memchr(allowed[i], p[i], 2))
			return -EINVAL;
		m->perms[i] = p[i];
	}
	p += 5;
	if (parse_number(&p, end, 16, ' ', UINT64_MAX, &m->offset) < 0 ||
	    parse_number(&p, end, 16, ':', UINT32_MAX, &major) < 0 ||
	    parse_number(&p, end, 16, ' ', UINT32_MAX, &minor) < 0 ||
	    parse_number(&p, end, 10, ' ', UINT64_MAX, &m->inode) < 0)
		return -EINVAL;
	m->major = (unsigned int)major;
	m->minor = (unsigned int)minor;
	while (p < end && *p == ' ')
		p++;
	m->path = p;
	m->path_len = (size_t)(end - p);
	return 0;
}

int proc_map_is_sysv(const struct proc_map *m)
{
	static const char deleted[] = " (deleted)";
	size_t n = m->path_len;
	if (n >= sizeof deleted - 1 &&
	    memcmp(m->path + n - (sizeof deleted - 1), deleted, sizeof deleted - 1) == 0)
		n -= sizeof deleted - 1;
	if (n != 13 || memcmp(m->path, "/SYSV", 5) != 0)
		return 0;
	for (size_t i = 5; i < n; i++)
		if (hex_value(m->path[i]) < 0)
			return 0;
	return 1;
}

/* ---- one process ---- */

static int want_dev(const struct proc_scan_opts *o, dev_t dev)
{
	for (size_t i = 0; i < o->ndevs; i++)
		if (o->devs[i] == dev)
			return 1;
	return 0;
}

/* Add (or merge into) the use of (DEV, INO, SHMID) by the process being
 * scanned, whose entries are USES->v[FIRST..]. */
static int add_use(struct proc_uses *uses, size_t first, const struct proc_use *proto, dev_t dev,
		   ino_t ino, int shmid, unsigned int how)
{
	for (size_t i = first; i < uses->n; i++) {
		struct proc_use *u = &uses->v[i];
		if (u->dev == dev && u->ino == ino && u->shmid == shmid) {
			u->how |= how;
			return 0;
		}
	}
	if (uses->n == uses->cap) {
		size_t cap = uses->cap ? 2 * uses->cap : 32;
		struct proc_use *grown = realloc(uses->v, cap * sizeof *grown);
		if (!grown)
			return -ENOMEM;
		uses->v = grown;
		uses->cap = cap;
	}
	struct proc_use *u = &uses->v[uses->n++];
	*u = *proto;
	u->dev = dev;
	u->ino = ino;
	u->shmid = shmid;
	u->how = how;
	return 0;
}

/* The mappings of the process whose /proc directory is PIDFD. */
static int scan_maps(int pidfd, const struct proc_scan_opts *o, int sysv, struct proc_uses *uses,
		     size_t first, const struct proc_use *proto)
{
	int fd = openat(pidfd, "maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int rc = 0;
	while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
		struct proc_map m;
		if (proc_maps_parse(line, (size_t)len, &m) < 0)
			continue;
		unsigned int how = PROC_USE_MAPPED | (m.perms[1] == 'w' ? PROC_USE_WRITABLE : 0);
		if (sysv && proc_map_is_sysv(&m)) { /* shmid 0 is a segment too */
			if (m.inode <= (uint64_t)INT32_MAX)
				rc = add_use(uses, first, proto, 0, 0, (int)m.inode, how);
		} else if (m.inode && m.path_len && m.path[0] == '/' &&
			   want_dev(o, makedev(m.major, m.minor))) {
			rc = add_use(uses, first, proto, makedev(m.major, m.minor), (ino_t)m.inode,
				     -1, how);
		}
	}
	if (rc == 0 && ferror(f))
		rc = -errno;
	free(line);
	fclose(f);
	return rc;
}

/* The open descriptors of the process whose /proc directory is PIDFD. */
static int scan_fds(int pidfd, const struct proc_scan_opts *o, struct proc_uses *uses,
		    size_t first, const struct proc_use *proto)
{
	int fd = openat(pidfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -ENOMEM;
	}
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		char target[2];
		struct stat st;
		if (e->d_name[0] == '.')
			continue;
		/* Sockets, pipes and anonymous inodes read "socket:[N]" and the
		 * like; only a link to a path can be a file of ours. */
		if (readlinkat(dirfd(d), e->d_name, target, sizeof target) < 1 || target[0] != '/')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode) ||
		    !want_dev(o, st.st_dev))
			continue;
		rc = add_use(uses, first, proto, st.st_dev, st.st_ino, -1, PROC_USE_OPEN);
	}
	closedir(d);
	return rc;
}

/* The inode of the IPC namespace file PATH (relative to DIRFD), or 0 when
 * it cannot be known. */
static ino_t ipc_namespace(int dirfd, const char *path)
{
	struct stat st;
	return fstatat(dirfd, path, &st, 0) == 0 ? st.st_ino : 0;
}

static void read_comm(int pidfd, char *comm)
{
	comm[0] = '\0';
	int fd = openat(pidfd, "comm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	ssize_t n = read(fd, comm, PROC_COMM_MAX - 1);
	close(fd);
	if (n < 0)
		n = 0;
	while (n > 0 && comm[n - 1] == '\n')
		n--;
	comm[n] = '\0';
}

static int by_pid_then_file(const void *a, const void *b)
{
	const struct proc_use *x = a, *y = b;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	if (x->shmid != y->shmid)
		return x->shmid < y->shmid ? -1 : 1;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

int proc_scan(const struct proc_scan_opts *o, struct proc_uses *uses)
{
	int procfd = open(o->proc, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (procfd < 0)
		return -errno;
	ino_t own_ipc = o->sysv ? ipc_namespace(procfd, "self/ns/ipc") : 0;
	DIR *d = fdopendir(procfd);
	if (!d) {
		close(procfd);
		return -ENOMEM;
	}
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(d));) {
		char *endp;
		long pid = strtol(e->d_name, &endp, 10);
		if (!isdigit((unsigned char)e->d_name[0]) || *endp || pid <= 0 ||
		    pid > INT32_MAX || (pid_t)pid == o->skip)
			continue;
		int pidfd = openat(dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pidfd < 0)
			continue; /* gone meanwhile */
		struct proc_use proto = {.pid = (pid_t)pid, .shmid = -1};
		read_comm(pidfd, proto.comm);
		int sysv = o->sysv && own_ipc && ipc_namespace(pidfd, "ns/ipc") == own_ipc;
		size_t first = uses->n;
		int r = scan_maps(pidfd, o, sysv, uses, first, &proto);
		if (r == 0 || r == -EACCES || r == -EPERM || r == -ENOENT || r == -ESRCH) {
			int denied = r == -EACCES || r == -EPERM;
			r = scan_fds(pidfd, o, uses, first, &proto);
			denied |= r == -EACCES || r == -EPERM;
			uses->unreadable += denied;
			if (r != -ENOMEM)
				r = 0;
		}
		close(pidfd);
		if (r == -ENOMEM)
			rc = r;
	}
	closedir(d);
	if (rc == 0 && uses->n > 1)
		qsort(uses->v, uses->n, sizeof *uses->v, by_pid_then_file);
	return rc;
}

void proc_uses_free(struct proc_uses *uses)
{
	free(uses->v);
	memset(uses, 0, sizeof *uses);
}
