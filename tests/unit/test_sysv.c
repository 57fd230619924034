/* test_sysv.c - unit tests of core/sysv's segments in a private IPC namespace:
 * create, lookup, stat, listing (SHM_DEST skipped), set, remove, attach. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sysv.h"

/* Each test gets a namespace of its own (Criterion forks per test), so a
 * listing holds exactly the segments the test made and nothing leaks. */
static void fresh_ipc_namespace(void)
{
	cr_assert_eq(unshare(CLONE_NEWIPC), 0, "unshare(CLONE_NEWIPC): %s", strerror(errno));
}

TestSuite(sysv, .init = fresh_ipc_namespace);

static struct sysv_seg must_lookup(const char *name)
{
	struct sysv_seg seg;
	int rc = sysv_lookup(name, &seg);
	cr_assert_eq(rc, 0, "lookup %s: %s", name, strerror(-rc));
	return seg;
}

static int must_create(key_t key, size_t size, mode_t mode, uid_t uid, gid_t gid)
{
	int id = sysv_create(key, size, mode, uid, gid);
	cr_assert_geq(id, 0, "sysv_create(0x%x): %s", (unsigned)key, strerror(-id));
	return id;
}

Test(sysv, create_then_lookup_by_key_name)
{
	int id = must_create(0x1234, 8192, 0640, 1000, 2000);
	struct sysv_seg seg = must_lookup("0x00001234");
	cr_assert_eq(seg.shmid, id);
	cr_assert_eq(seg.ds.shm_perm.__key, 0x1234);
	cr_assert_eq(seg.ds.shm_segsz, 8192);
	cr_assert_eq(seg.ds.shm_perm.mode & 0777, 0640);
	cr_assert_eq(seg.ds.shm_perm.uid, 1000);
	cr_assert_eq(seg.ds.shm_perm.gid, 2000);
	cr_assert_eq(seg.ds.shm_perm.cuid, 1000, "a root caller creates as the given user");
	cr_assert_eq(seg.ds.shm_perm.cgid, 2000);
	cr_assert_eq(seg.ds.shm_nattch, 0);
	/* and the calling thread is root again */
	cr_assert_eq(geteuid(), 0);
	cr_assert_eq(getegid(), 0);
}

Test(sysv, lookup_private_segment_by_id_name)
{
	int id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	cr_assert_geq(id, 0);
	char name[SYSV_NAME_MAX];
	sysv_name_format(name, IPC_PRIVATE, id);
	struct sysv_seg seg = must_lookup(name);
	cr_assert_eq(seg.shmid, id);
	cr_assert_eq(seg.ds.shm_perm.__key, IPC_PRIVATE);
	cr_assert_eq(seg.ds.shm_segsz, 4096);
}

Test(sysv, lookup_refusals)
{
	struct sysv_seg seg;
	int keyed = must_create(0xabcd, 4096, 0600, 0, 0);
	char name[SYSV_NAME_MAX];
	sysv_name_format(name, IPC_PRIVATE, keyed);
	cr_assert_eq(sysv_lookup(name, &seg), -ENOENT, "a keyed segment has no id-N name");
	cr_assert_eq(sysv_lookup("0x0000abce", &seg), -ENOENT);
	cr_assert_eq(sysv_lookup("id-999999", &seg), -ENOENT);
	cr_assert_eq(sysv_lookup("0x0000ABCD", &seg), -EINVAL);
	cr_assert_eq(sysv_lookup("bogus", &seg), -EINVAL);
	cr_assert_eq(sysv_lookup("", &seg), -EINVAL);
}

Test(sysv, fill_stat_fields)
{
	time_t t0 = time(NULL);
	int a = must_create(0x1001, 10000, 0640, 1000, 2000);
	int b = shmget(IPC_PRIVATE, 1, IPC_CREAT | 0604);
	cr_assert_geq(b, 0);
	struct sysv_seg sa = must_lookup("0x00001001");
	struct sysv_seg sb = { .shmid = b };
	cr_assert_eq(sysv_stat(&sb), 0);

	struct stat st, st2;
	sysv_fill_stat(&sa, &st);
	cr_assert(S_ISREG(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", (unsigned)st.st_mode);
	cr_assert_eq(st.st_size, 10000);
	cr_assert_eq(st.st_uid, 1000);
	cr_assert_eq(st.st_gid, 2000);
	cr_assert_eq(st.st_nlink, 1);
	cr_assert_eq(st.st_blocks, (10000 + 511) / 512);
	cr_assert_gt(st.st_blksize, 0);
	cr_assert_eq(st.st_ino, sysv_ino(a));
	cr_assert_gt((unsigned long long)st.st_ino, 0xffffffffull, "ino may collide with tmpfs");
	cr_assert_eq(st.st_atim.tv_sec, 0, "never attached");
	cr_assert_geq(st.st_ctim.tv_sec, t0);
	cr_assert_leq(st.st_ctim.tv_sec, time(NULL));
	cr_assert_eq(st.st_mtim.tv_sec, st.st_ctim.tv_sec);

	sysv_fill_stat(&sb, &st2);
	cr_assert_eq(st2.st_size, 1);
	cr_assert_eq(st2.st_mode & 07777, 0604);
	cr_assert_eq(st2.st_ino, sysv_ino(b));
	cr_assert_neq(st2.st_ino, st.st_ino);

	/* Attaching sets the access time. */
	void *p;
	size_t size;
	cr_assert_eq(sysv_attach(a, 0, &p, &size), 0);
	cr_assert_eq(sysv_stat(&sa), 0);
	sysv_fill_stat(&sa, &st);
	cr_assert_geq(st.st_atim.tv_sec, t0);
	cr_assert_leq(st.st_atim.tv_sec, time(NULL));
	sysv_detach(p);
}

Test(sysv, ino_is_distinct_per_shmid)
{
	cr_assert_neq(sysv_ino(0), sysv_ino(1));
	cr_assert_neq(sysv_ino(32768), sysv_ino(65536));
	cr_assert_neq(sysv_ino(INT32_MAX), sysv_ino(INT32_MAX - 1));
}

struct listing {
	int ids[16];
	int n;
	int stop_after;
};

static int collect(const struct sysv_seg *seg, void *arg)
{
	struct listing *l = arg;
	cr_assert_lt(l->n, 16);
	l->ids[l->n++] = seg->shmid;
	cr_assert_eq(seg->ds.shm_perm.mode & SHM_DEST, 0, "a SHM_DEST segment was listed");
	return l->stop_after && l->n == l->stop_after ? 42 : 0;
}

static int listed(const struct listing *l, int id)
{
	for (int i = 0; i < l->n; i++)
		if (l->ids[i] == id)
			return 1;
	return 0;
}

Test(sysv, foreach_on_empty_namespace)
{
	struct listing l = { .n = 0 };
	cr_assert_eq(sysv_foreach(collect, &l), 0);
	cr_assert_eq(l.n, 0);
}

Test(sysv, foreach_lists_all_and_skips_destroyed)
{
	int a = must_create(0x2001, 4096, 0600, 0, 0);
	int b = must_create(0x2002, 4096, 0000, 1000, 1000);
	int c = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
	cr_assert_geq(c, 0);

	struct listing l = { .n = 0 };
	cr_assert_eq(sysv_foreach(collect, &l), 0);
	cr_assert_eq(l.n, 3);
	cr_assert(listed(&l, a) && listed(&l, b) && listed(&l, c));

	/* Attached, then IPC_RMID: the segment lives on as SHM_DEST. */
	void *pa, *pc;
	size_t size;
	cr_assert_eq(sysv_attach(a, 1, &pa, &size), 0);
	cr_assert_eq(sysv_attach(c, 1, &pc, &size), 0);
	cr_assert_eq(shmctl(a, IPC_RMID, NULL), 0);
	cr_assert_eq(shmctl(c, IPC_RMID, NULL), 0);

	l.n = 0;
	cr_assert_eq(sysv_foreach(collect, &l), 0);
	cr_assert_eq(l.n, 1, "listed %d segments", l.n);
	cr_assert(listed(&l, b));

	struct sysv_seg seg = { .shmid = a };
	cr_assert_eq(sysv_stat(&seg), -ENOENT);
	cr_assert_eq(sysv_lookup("0x00002001", &seg), -ENOENT);
	char name[SYSV_NAME_MAX];
	sysv_name_format(name, IPC_PRIVATE, a);
	cr_assert_eq(sysv_lookup(name, &seg), -ENOENT, "destroyed segment found as %s", name);
	sysv_name_format(name, IPC_PRIVATE, c);
	cr_assert_eq(sysv_lookup(name, &seg), -ENOENT, "destroyed segment found as %s", name);

	/* The key is free again while the old segment is still attached. */
	int a2 = must_create(0x2001, 8192, 0600, 0, 0);
	cr_assert_neq(a2, a);
	seg = must_lookup("0x00002001");
	cr_assert_eq(seg.shmid, a2);

	memset(pa, 0x5a, 4096); /* the old attachment still works */
	sysv_detach(pa);
	sysv_detach(pc);
	cr_assert_eq(sysv_remove(a), -ENOENT, "gone after the last detach");
}

Test(sysv, foreach_stops_on_nonzero)
{
	must_create(0x3001, 4096, 0600, 0, 0);
	must_create(0x3002, 4096, 0600, 0, 0);
	must_create(0x3003, 4096, 0600, 0, 0);
	struct listing l = { .n = 0, .stop_after = 2 };
	cr_assert_eq(sysv_foreach(collect, &l), 42);
	cr_assert_eq(l.n, 2);
}

Test(sysv, set_changes_mode_and_owner)
{
	int id = must_create(0x4001, 4096, 0600, 0, 0);
	struct sysv_seg seg = { .shmid = id };

	cr_assert_eq(sysv_set(id, 0644, (uid_t)-1, (gid_t)-1), 0);
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_perm.mode & 0777, 0644);
	cr_assert_eq(seg.ds.shm_perm.uid, 0);
	cr_assert_eq(seg.ds.shm_perm.gid, 0);

	cr_assert_eq(sysv_set(id, (mode_t)-1, 1234, (gid_t)-1), 0);
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_perm.mode & 0777, 0644);
	cr_assert_eq(seg.ds.shm_perm.uid, 1234);
	cr_assert_eq(seg.ds.shm_perm.gid, 0);

	cr_assert_eq(sysv_set(id, (mode_t)-1, (uid_t)-1, 5678), 0);
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_perm.uid, 1234);
	cr_assert_eq(seg.ds.shm_perm.gid, 5678);
	cr_assert_eq(seg.ds.shm_perm.cuid, 0, "the creator never changes");

	cr_assert_eq(sysv_set(id, 04755, (uid_t)-1, (gid_t)-1), 0);
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_perm.mode & 07777, 0755, "only the low 9 bits are set");

	cr_assert_eq(sysv_set(id, 0, 0, 0), 0);
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_perm.mode & 0777, 0);
	cr_assert_eq(seg.ds.shm_perm.uid, 0);

	cr_assert_eq(sysv_set(id + 1000, 0600, (uid_t)-1, (gid_t)-1), -ENOENT);
}

Test(sysv, remove)
{
	int id = must_create(0x5001, 4096, 0600, 0, 0);
	struct sysv_seg seg;
	cr_assert_eq(sysv_remove(id), 0);
	cr_assert_eq(sysv_lookup("0x00005001", &seg), -ENOENT);
	seg.shmid = id;
	cr_assert_eq(sysv_stat(&seg), -ENOENT);
	cr_assert_eq(sysv_remove(id), -ENOENT);
	struct listing l = { .n = 0 };
	cr_assert_eq(sysv_foreach(collect, &l), 0);
	cr_assert_eq(l.n, 0);
}

Test(sysv, create_refusals)
{
	int id = must_create(0x6001, 4096, 0640, 0, 0);
	cr_assert_eq(sysv_create(0x6001, 4096, 0600, 0, 0), -EEXIST);
	cr_assert_eq(sysv_create(0x6001, 1 << 20, 0600, 0, 0), -EEXIST);
	cr_assert_eq(sysv_create(0x6002, 0, 0600, 0, 0), -EINVAL);
	cr_assert_eq(sysv_create(IPC_PRIVATE, 4096, 0600, 0, 0), -EINVAL);

	struct sysv_seg seg = must_lookup("0x00006001");
	cr_assert_eq(seg.shmid, id);
	cr_assert_eq(seg.ds.shm_segsz, 4096, "the existing segment was changed");
	cr_assert_eq(seg.ds.shm_perm.mode & 0777, 0640);
	cr_assert_eq(sysv_lookup("0x00006002", &seg), -ENOENT);
}

Test(sysv, create_ignores_high_mode_bits)
{
	must_create(0x6003, 4096, 01777, 0, 0);
	struct sysv_seg seg = must_lookup("0x00006003");
	cr_assert_eq(seg.ds.shm_perm.mode & 07777, 0777);
}

Test(sysv, attach_read_write_round_trip)
{
	int id = must_create(0x7001, 10000, 0600, 0, 0);
	void *p;
	size_t size = 0;
	cr_assert_eq(sysv_attach(id, 1, &p, &size), 0);
	cr_assert_eq(size, 10000);
	unsigned char *w = p;
	for (size_t i = 0; i < size; i++)
		w[i] = (unsigned char)(i * 7 + 3);
	sysv_detach(p);

	cr_assert_eq(sysv_attach(id, 0, &p, &size), 0);
	cr_assert_eq(size, 10000);
	const unsigned char *r = p;
	for (size_t i = 0; i < size; i++)
		cr_assert_eq(r[i], (unsigned char)(i * 7 + 3), "byte %zu", i);

	/* Read-only really is read-only: the kernel cannot store into it. */
	int zero = open("/dev/zero", O_RDONLY);
	cr_assert_geq(zero, 0);
	errno = 0;
	cr_assert_eq(read(zero, p, 16), -1);
	cr_assert_eq(errno, EFAULT);
	close(zero);

	struct sysv_seg seg = { .shmid = id };
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_nattch, 1);
	sysv_detach(p);
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_nattch, 0);
	sysv_detach(NULL); /* a no-op */
}

Test(sysv, attach_missing_segment)
{
	void *p = NULL;
	size_t size = 0;
	cr_assert_eq(sysv_attach(12345, 1, &p, &size), -ENOENT);
	cr_assert_null(p);
}
