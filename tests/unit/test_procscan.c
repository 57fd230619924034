/* test_procscan.c - lines of /proc/PID/maps, and a scan of a /proc tree made
 * by the test (processes with mappings, descriptors and System V
 * attachments, one in another IPC namespace). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "procscan.h"

static struct proc_map parse_ok(const char *line)
{
	struct proc_map m;
	cr_assert_eq(proc_maps_parse(line, strlen(line), &m), 0, "%s", line);
	return m;
}

static void path_is(const struct proc_map *m, const char *want)
{
	cr_assert_eq(m->path_len, strlen(want), "%.*s", (int)m->path_len, m->path);
	cr_assert_eq(memcmp(m->path, want, m->path_len), 0);
}

Test(procscan, parses_the_kernels_lines)
{
	struct proc_map m = parse_ok("7f2c4a200000-7f2c4a201000 rw-s 00001000 00:1a 12345"
				     "                      /dev/shm/cam.im.shm\n");
	cr_assert_eq(m.start, 0x7f2c4a200000ull);
	cr_assert_eq(m.end, 0x7f2c4a201000ull);
	cr_assert_str_eq(m.perms, "rw-s");
	cr_assert_eq(m.offset, 0x1000);
	cr_assert_eq(m.major, 0);
	cr_assert_eq(m.minor, 0x1a);
	cr_assert_eq(m.inode, 12345);
	path_is(&m, "/dev/shm/cam.im.shm");
	cr_assert_not(proc_map_is_sysv(&m));

	m = parse_ok("7ffd1000-7ffd2000 rw-p 00000000 00:00 0 \n"); /* anonymous */
	cr_assert_eq(m.inode, 0);
	cr_assert_eq(m.path_len, 0);
	m = parse_ok("7ffd1000-7ffd2000 r--p 00000000 00:00 0");    /* no end, no space */
	cr_assert_eq(m.path_len, 0);
	m = parse_ok("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  "
		     "[vsyscall]");
	path_is(&m, "[vsyscall]");
	m = parse_ok("5555-6666 r-xp 0 103:1f0 4294967296 /usr/bin/with space (deleted)\n");
	cr_assert_eq(m.major, 0x103);
	cr_assert_eq(m.minor, 0x1f0);
	cr_assert_eq(m.inode, 4294967296ull);
	path_is(&m, "/usr/bin/with space (deleted)");
}

Test(procscan, system_v_attachments)
{
	struct proc_map m = parse_ok("7f0000000000-7f0000010000 rw-s 00000000 00:01 32769"
				     "                      /SYSV0000162e (deleted)\n");
	cr_assert(proc_map_is_sysv(&m));
	cr_assert_eq(m.inode, 32769);
	m = parse_ok("1000-2000 r--s 00000000 00:01 7 /SYSV00000000");
	cr_assert(proc_map_is_sysv(&m));
	static const char *const not_sysv[] = {
		"1000-2000 rw-s 0 00:01 7 /SYSV0000162",          /* 7 digits */
		"1000-2000 rw-s 0 00:01 7 /SYSV0000162e0",        /* 9 */
		"1000-2000 rw-s 0 00:01 7 /SYSV0000x62e",
		"1000-2000 rw-s 0 00:01 7 /dev/shm/SYSV0000162e",
		"1000-2000 rw-s 0 00:01 7 /SYSV0000162e (deleted) ",
	};
	for (size_t i = 0; i < sizeof not_sysv / sizeof *not_sysv; i++) {
		m = parse_ok(not_sysv[i]);
		cr_assert_not(proc_map_is_sysv(&m), "%s", not_sysv[i]);
	}
}

Test(procscan, refuses_malformed_lines)
{
	static const char *const bad[] = {
		"",
		"\n",
		"7f00-7f01",
		"7f00-7f01 rw-s",
		"7f00-7f01 rw-s 0",
		"7f00-7f01 rw-s 0 00:1a",
		"7f00 7f01 rw-s 0 00:1a 5 /x",
		"7f01-7f00 rw-s 0 00:1a 5 /x",                    /* end before start */
		"7g00-7f01 rw-s 0 00:1a 5 /x",
		"-7f01 rw-s 0 00:1a 5 /x",
		"7f00-7f01 rwxq 0 00:1a 5 /x",
		"7f00-7f01 rw- 0 00:1a 5 /x",
		"7f00-7f01 rw-s- 0 00:1a 5 /x",
		"7f00-7f01 Rw-s 0 00:1a 5 /x",
		"7f00-7f01 rw-s 0 001a 5 /x",
		"7f00-7f01 rw-s 0 00:1a: 5 /x",
		"7f00-7f01 rw-s 0 00:1a 5x /x",
		"7f00-7f01 rw-s 0 00:1a -5 /x",
		"7f00-7f01 rw-s 0 100000000:1a 5 /x",             /* major over 32 bits */
		"7f00-7f01 rw-s 0 00:1a 18446744073709551616 /x", /* inode over 64 bits */
		"10000000000000000-10000000000000001 rw-s 0 00:1a 5 /x",
		"7f00-7f01\trw-s 0 00:1a 5 /x",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct proc_map m;
		cr_assert_eq(proc_maps_parse(bad[i], strlen(bad[i]), &m), -EINVAL, "%s", bad[i]);
	}
	/* the length is what counts, not a NUL */
	struct proc_map m;
	const char line[] = "1000-2000 rw-s 0 00:1a 5 /dev/shm/x";
	cr_assert_eq(proc_maps_parse(line, 20, &m), -EINVAL);
	cr_assert_eq(proc_maps_parse(line, 24, &m), 0);
	cr_assert_eq(m.inode, 5);
	cr_assert_eq(m.path_len, 0);
}

/* ---- a /proc tree of the test's own ---- */

static char root[128];

static void put(const char *rel, const char *text)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", root, rel);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
}

static void dir(const char *rel)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", root, rel);
	cr_assert_eq(mkdir(path, 0755), 0, "%s: %s", path, strerror(errno));
}

static void link_to(const char *target, const char *rel)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", root, rel);
	cr_assert_eq(symlink(target, path), 0, "%s: %s", path, strerror(errno));
}

static const struct proc_use *find(const struct proc_uses *u, pid_t pid, int shmid, ino_t ino)
{
	for (size_t i = 0; i < u->n; i++)
		if (u->v[i].pid == pid && u->v[i].shmid == shmid && (shmid >= 0 || u->v[i].ino == ino))
			return &u->v[i];
	return NULL;
}

Test(procscan, scans_a_proc_tree)
{
	snprintf(root, sizeof root, "/tmp/test_procscan.%d", (int)getpid());
	cr_assert_eq(mkdir(root, 0700), 0);
	/* two files on one device, the objects; one elsewhere */
	char obj[256], other[256], maps[8192], elsewhere[64];
	snprintf(obj, sizeof obj, "%s/obj", root);
	snprintf(other, sizeof other, "%s/other", root);
	put("obj", "x");
	put("other", "y");
	struct stat so, sother, sns;
	cr_assert_eq(stat(obj, &so), 0);
	cr_assert_eq(stat(other, &sother), 0);
	snprintf(elsewhere, sizeof elsewhere, "/proc/self/status"); /* another device */

	/* 100: maps obj writable twice, other read-only, attaches segment 42,
	 * has obj open and a socket */
	dir("100");
	dir("100/fd");
	dir("100/ns");
	put("100/comm", "writer\n");
	snprintf(maps, sizeof maps,
		 "1000-2000 rw-s 00000000 %02x:%02x %lu                  %s\n"
		 "3000-4000 rw-s 00001000 %02x:%02x %lu                  %s\n"
		 "5000-6000 r--s 00000000 %02x:%02x %lu                  %s\n"
		 "7000-8000 rw-s 00000000 00:01 42                  /SYSV0000162e (deleted)\n"
		 "8000-9000 r--s 00000000 00:01 0                  /SYSV00000000 (deleted)\n"
		 "9000-a000 rw-p 00000000 00:00 0 \n"
		 "this line is not a mapping\n"
		 "b000-c000 r--p 00000000 %02x:%02x %lu                  %s\n",
		 major(so.st_dev), minor(so.st_dev), (unsigned long)so.st_ino, obj,
		 major(so.st_dev), minor(so.st_dev), (unsigned long)so.st_ino, obj,
		 major(sother.st_dev), minor(sother.st_dev), (unsigned long)sother.st_ino, other,
		 0x103u, 0x1f0u, 99ul, "/usr/lib/libc.so.6");
	put("100/maps", maps);
	link_to(obj, "100/fd/3");
	link_to("socket:[1234]", "100/fd/4");
	link_to("/proc/self/ns/ipc", "100/ns/ipc");
	link_to("100", "self");

	/* 200: another IPC namespace: its /SYSV line means nothing here; opens
	 * other only; a comm full of control characters */
	dir("200");
	dir("200/fd");
	dir("200/ns");
	put("200/comm", "\x1b[31mred\n");
	snprintf(maps, sizeof maps, "1000-2000 rw-s 0 00:01 42 /SYSV0000162e (deleted)\n");
	put("200/maps", maps);
	link_to(other, "200/fd/0");
	link_to(elsewhere, "200/fd/1");
	put("200/ns/ipc", "not our namespace");

	/* 300: nothing of ours; "notapid" and a vanished process: skipped */
	dir("300");
	put("300/comm", "idle\n");
	put("300/maps", "");
	dir("notapid");
	put("notapid/maps", maps);
	dir("400"); /* no comm, no maps, no fd: gone meanwhile */

	struct proc_uses uses = {0};
	struct proc_scan_opts opts = {.proc = root, .devs = &so.st_dev, .ndevs = 1, .sysv = 1};
	cr_assert_eq(stat("/proc/self/ns/ipc", &sns), 0);
	cr_assert_eq(proc_scan(&opts, &uses), 0);
	cr_assert_eq(uses.n, 5, "%zu uses", uses.n);

	const struct proc_use *u = find(&uses, 100, -1, so.st_ino);
	cr_assert_not_null(u);
	cr_assert_str_eq(u->comm, "writer");
	cr_assert_eq(u->how, PROC_USE_MAPPED | PROC_USE_WRITABLE | PROC_USE_OPEN);
	cr_assert_eq(u->dev, so.st_dev);
	u = find(&uses, 100, -1, sother.st_ino);
	cr_assert_not_null(u);
	cr_assert_eq(u->how, PROC_USE_MAPPED);
	u = find(&uses, 100, 42, 0);
	cr_assert_not_null(u);
	cr_assert_eq(u->how, PROC_USE_MAPPED | PROC_USE_WRITABLE);
	u = find(&uses, 100, 0, 0); /* the first segment of a namespace has shmid 0 */
	cr_assert_not_null(u);
	cr_assert_eq(u->how, PROC_USE_MAPPED);
	u = find(&uses, 200, -1, sother.st_ino);
	cr_assert_not_null(u);
	cr_assert_eq(u->how, PROC_USE_OPEN);
	cr_assert_str_eq(u->comm, "\x1b[31mred");
	cr_assert_null(find(&uses, 200, 42, 0));
	/* sorted by pid */
	for (size_t i = 1; i < uses.n; i++)
		cr_assert_leq(uses.v[i - 1].pid, uses.v[i].pid);
	proc_uses_free(&uses);

	/* without System V, and skipping 100 */
	opts.sysv = 0;
	opts.skip = 100;
	cr_assert_eq(proc_scan(&opts, &uses), 0);
	cr_assert_eq(uses.n, 1);
	cr_assert_eq(uses.v[0].pid, 200);
	proc_uses_free(&uses);

	/* no device of interest: nothing */
	opts.ndevs = 0;
	opts.skip = 0;
	cr_assert_eq(proc_scan(&opts, &uses), 0);
	cr_assert_eq(uses.n, 0);
	proc_uses_free(&uses);

	opts.proc = "/nonexistent/proc";
	cr_assert_eq(proc_scan(&opts, &uses), -ENOENT);

	char cmd[PATH_MAX + 16];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	cr_assert_eq(system(cmd), 0);
}

Test(procscan, finds_this_process)
{
	/* a file of our own, mapped and open, found in the real /proc */
	char path[] = "/tmp/test_procscan_real.XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 4096), 0);
	struct stat st;
	cr_assert_eq(fstat(fd, &st), 0);
	void *map = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	cr_assert_neq(map, MAP_FAILED);
	struct proc_uses uses = {0};
	struct proc_scan_opts opts = {.proc = "/proc", .devs = &st.st_dev, .ndevs = 1};
	cr_assert_eq(proc_scan(&opts, &uses), 0);
	const struct proc_use *u = find(&uses, getpid(), -1, st.st_ino);
	cr_assert_not_null(u);
	cr_assert_eq(u->how, PROC_USE_MAPPED | PROC_USE_OPEN);
	proc_uses_free(&uses);
	munmap(map, 4096);
	close(fd);
	unlink(path);
}
