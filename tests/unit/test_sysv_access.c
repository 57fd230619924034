/* test_sysv_access.c - unit tests of core/sysv's permission rules: sysv_access
 * and sysv_is_owner by hand, against the kernel's own ipcperms, and non-root. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <string.h>
#include <unistd.h>

#include "sysv.h"

enum { OWNER = 100, CREATOR = 200, GROUP = 300, CGROUP = 400, NOBODY = 999 };

static struct shmid_ds make_ds(unsigned mode)
{
	struct shmid_ds ds;
	memset(&ds, 0, sizeof ds);
	ds.shm_perm.uid = OWNER;
	ds.shm_perm.cuid = CREATOR;
	ds.shm_perm.gid = GROUP;
	ds.shm_perm.cgid = CGROUP;
	ds.shm_perm.mode = (unsigned short)mode;
	return ds;
}

Test(sysv_access, owner_and_creator_get_owner_bits)
{
	struct shmid_ds ds = make_ds(0642);
	for (int who = 0; who < 2; who++) {
		uid_t uid = who ? CREATOR : OWNER;
		cr_assert_eq(sysv_access(&ds, uid, NOBODY, NULL, 0, 4), 0);
		cr_assert_eq(sysv_access(&ds, uid, NOBODY, NULL, 0, 2), 0);
		cr_assert_eq(sysv_access(&ds, uid, NOBODY, NULL, 0, 6), 0);
	}
	ds = make_ds(0466);
	cr_assert_eq(sysv_access(&ds, OWNER, GROUP, NULL, 0, 2), -EACCES,
		     "the owner class decides even if group bits would allow it");
	cr_assert_eq(sysv_access(&ds, CREATOR, GROUP, NULL, 0, 6), -EACCES);
	cr_assert_eq(sysv_access(&ds, OWNER, GROUP, NULL, 0, 4), 0);
}

Test(sysv_access, group_members_get_group_bits)
{
	struct shmid_ds ds = make_ds(0642);
	const gid_t sup_owner_group[] = { 7, GROUP };
	const gid_t sup_creator_group[] = { CGROUP, 8 };
	const gid_t sup_other[] = { 7, 8 };

	cr_assert_eq(sysv_access(&ds, NOBODY, GROUP, NULL, 0, 4), 0);
	cr_assert_eq(sysv_access(&ds, NOBODY, GROUP, NULL, 0, 2), -EACCES);
	cr_assert_eq(sysv_access(&ds, NOBODY, GROUP, NULL, 0, 6), -EACCES);
	cr_assert_eq(sysv_access(&ds, NOBODY, CGROUP, NULL, 0, 4), 0);
	cr_assert_eq(sysv_access(&ds, NOBODY, CGROUP, NULL, 0, 2), -EACCES);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, sup_owner_group, 2, 4), 0);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, sup_owner_group, 2, 2), -EACCES);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, sup_creator_group, 2, 4), 0);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, sup_other, 2, 4), -EACCES);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, sup_other, 2, 2), 0);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, sup_owner_group, 1, 4), -EACCES,
		     "only NGROUPS entries count");

	ds = make_ds(0606);
	cr_assert_eq(sysv_access(&ds, NOBODY, GROUP, NULL, 0, 4), -EACCES,
		     "the group class decides even if other bits would allow it");
}

Test(sysv_access, others_get_other_bits)
{
	struct shmid_ds ds = make_ds(0642);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, NULL, 0, 4), -EACCES);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, NULL, 0, 2), 0);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, NULL, 0, 6), -EACCES);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, NULL, 0, 0), 0);
	ds = make_ds(0);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, NULL, 0, 0), 0, "asking for nothing");
}

Test(sysv_access, root_passes)
{
	struct shmid_ds ds = make_ds(0);
	cr_assert_eq(sysv_access(&ds, 0, 0, NULL, 0, 4), 0);
	cr_assert_eq(sysv_access(&ds, 0, 0, NULL, 0, 2), 0);
	cr_assert_eq(sysv_access(&ds, 0, NOBODY, NULL, 0, 6), 0);
}

Test(sysv_access, mode_bits_outside_0777_are_ignored)
{
	struct shmid_ds ds = make_ds(SHM_DEST | 01000 | 0600);
	cr_assert_eq(sysv_access(&ds, NOBODY, NOBODY, NULL, 0, 4), -EACCES);
	cr_assert_eq(sysv_access(&ds, OWNER, NOBODY, NULL, 0, 6), 0);
}

Test(sysv_access, is_owner)
{
	struct shmid_ds ds = make_ds(0);
	cr_assert(sysv_is_owner(&ds, OWNER));
	cr_assert(sysv_is_owner(&ds, CREATOR));
	cr_assert(sysv_is_owner(&ds, 0));
	cr_assert_not(sysv_is_owner(&ds, GROUP));
	cr_assert_not(sysv_is_owner(&ds, NOBODY));
}

/* The rest switch the effective ids of the test's own process (Criterion
 * forks one per test); the saved uid stays 0 so root can be taken back. */
static void fresh_ipc_namespace(void)
{
	cr_assert_eq(unshare(CLONE_NEWIPC), 0, "unshare(CLONE_NEWIPC): %s", strerror(errno));
}

static void become(uid_t uid, gid_t gid, int ngroups, const gid_t *groups)
{
	cr_assert_eq(setgroups((size_t)ngroups, groups), 0, "setgroups: %s", strerror(errno));
	cr_assert_eq(setegid(gid), 0, "setegid: %s", strerror(errno));
	cr_assert_eq(seteuid(uid), 0, "seteuid: %s", strerror(errno));
}

static void become_root(void)
{
	cr_assert_eq(seteuid(0), 0, "seteuid(0): %s", strerror(errno));
	cr_assert_eq(setegid(0), 0);
	cr_assert_eq(setgroups(0, NULL), 0);
}

/* What the kernel says: can this identity attach read-only / read-write? */
static int kernel_allows(int shmid, int writable)
{
	void *p = shmat(shmid, NULL, writable ? 0 : SHM_RDONLY);
	if (p == (void *)-1) {
		cr_assert_eq(errno, EACCES, "shmat: %s", strerror(errno));
		return 0;
	}
	shmdt(p);
	return 1;
}

Test(sysv_access, agrees_with_kernel_for_every_mode, .init = fresh_ipc_namespace)
{
	/* A segment made by CREATOR/CGROUP, then given to OWNER/GROUP. */
	become(CREATOR, CGROUP, 0, NULL);
	int id = shmget(0x8001, 4096, IPC_CREAT | IPC_EXCL | 0600);
	become_root();
	cr_assert_geq(id, 0);

	static const gid_t sup_group[] = { 5, GROUP };
	static const gid_t sup_none[] = { 5, 6 };
	static const struct {
		uid_t uid;
		gid_t gid;
		int ngroups;
		const gid_t *groups;
	} who[] = {
		{ OWNER, NOBODY, 0, NULL },     { CREATOR, NOBODY, 0, NULL },
		{ OWNER, GROUP, 0, NULL },      { NOBODY, GROUP, 0, NULL },
		{ NOBODY, CGROUP, 0, NULL },    { NOBODY, NOBODY, 2, sup_group },
		{ NOBODY, NOBODY, 2, sup_none }, { NOBODY, NOBODY, 0, NULL },
	};
	for (unsigned mode = 0; mode <= 0777; mode++) {
		cr_assert_eq(sysv_set(id, mode, OWNER, GROUP), 0);
		struct sysv_seg seg = { .shmid = id };
		cr_assert_eq(sysv_stat(&seg), 0);
		cr_assert_eq(seg.ds.shm_perm.cuid, CREATOR);
		cr_assert_eq(seg.ds.shm_perm.cgid, CGROUP);
		for (size_t w = 0; w < sizeof who / sizeof who[0]; w++) {
			int ours_r = sysv_access(&seg.ds, who[w].uid, who[w].gid, who[w].groups,
						 who[w].ngroups, 4) == 0;
			int ours_rw = sysv_access(&seg.ds, who[w].uid, who[w].gid, who[w].groups,
						  who[w].ngroups, 6) == 0;
			become(who[w].uid, who[w].gid, who[w].ngroups, who[w].groups);
			int kern_r = kernel_allows(id, 0);
			int kern_rw = kernel_allows(id, 1);
			become_root();
			cr_assert_eq(ours_r, kern_r, "mode %03o uid %d gid %d: read", mode,
				     (int)who[w].uid, (int)who[w].gid);
			cr_assert_eq(ours_rw, kern_rw, "mode %03o uid %d gid %d: read-write",
				     mode, (int)who[w].uid, (int)who[w].gid);
		}
	}
}

/* The kernel lets a segment's owner IPC_SET it whatever its mode bits (that
 * is how an owner gets back into a mode 000 segment); sysv_set as the owner
 * must too. */
Test(sysv_access, owner_may_chmod_unreadable_segment, .init = fresh_ipc_namespace)
{
	int id = sysv_create(0x8002, 4096, 0000, OWNER, GROUP);
	cr_assert_geq(id, 0);
	struct sysv_seg seg = { .shmid = id };
	become(OWNER, GROUP, 0, NULL);
	int rc = sysv_set(id, 0600, (uid_t)-1, (gid_t)-1);
	become_root();
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_expect_eq(rc, 0, "sysv_set by the owner of a mode 000 segment: %s", strerror(-rc));
	cr_expect_eq(seg.ds.shm_perm.mode & 0777, 0600);
}

/* A non-root caller creating a segment it cannot read (mode 0200, say) is
 * allowed by shmget; sysv_create must not then fail and remove it. */
Test(sysv_access, non_root_creates_write_only_segment, .init = fresh_ipc_namespace)
{
	become(OWNER, GROUP, 0, NULL);
	int id = sysv_create(0x8003, 4096, 0200, OWNER, GROUP);
	become_root();
	cr_expect_geq(id, 0, "sysv_create(mode 0200) as uid %d: %s", OWNER, strerror(-id));
	struct sysv_seg seg;
	cr_expect_eq(sysv_lookup("0x00008003", &seg), 0, "the segment is gone");
}

Test(sysv_access, non_root_non_owner_is_refused, .init = fresh_ipc_namespace)
{
	int id = sysv_create(0x8004, 4096, 0666, OWNER, GROUP);
	cr_assert_geq(id, 0);
	become(NOBODY, NOBODY, 0, NULL);
	int set_rc = sysv_set(id, 0777, (uid_t)-1, (gid_t)-1);
	int rm_rc = sysv_remove(id);
	become_root();
	cr_assert_eq(set_rc, -EPERM);
	cr_assert_eq(rm_rc, -EPERM);
	struct sysv_seg seg = { .shmid = id };
	cr_assert_eq(sysv_stat(&seg), 0);
	cr_assert_eq(seg.ds.shm_perm.mode & 0777, 0666);
}
