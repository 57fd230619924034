/* sysvtool.c - a small client the mount tests use to reach System V segments
 * directly (shmget/shmat), as a PVM- or IDL-era program would.
 *   sysvtool create KEY SIZE [MODE]   print the shmid
 *   sysvtool private SIZE [MODE]      IPC_PRIVATE segment; print the shmid
 *   sysvtool write KEY|id-N OFF TEXT  store TEXT at OFF
 *   sysvtool read KEY|id-N OFF LEN    print LEN bytes at OFF (attached read-only)
 *   sysvtool rm KEY|id-N              IPC_RMID
 *   sysvtool stat KEY|id-N            print "shmid size mode uid gid cuid"
 *   sysvtool times KEY|id-N           print "atime dtime ctime" (seconds)
 *   sysvtool set KEY|id-N MODE UID GID  IPC_SET (MODE octal; -1 keeps a field)
 *   sysvtool hold KEY|id-N            attach, print "attached", stay attached
 *                                     until stdin reaches end of file
 * KEY is a number (0x... or decimal). Exit 1 with a message on error. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>

static int die(const char *what)
{
	fprintf(stderr, "sysvtool: %s: %s\n", what, strerror(errno));
	return 1;
}

static int find(const char *name)
{
	if (strncmp(name, "id-", 3) == 0)
		return atoi(name + 3);
	return shmget((key_t)strtoul(name, NULL, 0), 0, 0);
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return fprintf(stderr, "usage: see sysvtool.c\n"), 2;
	const char *cmd = argv[1];
	if (!strcmp(cmd, "create") || !strcmp(cmd, "private")) {
		int priv = !strcmp(cmd, "private");
		key_t key = priv ? IPC_PRIVATE : (key_t)strtoul(argv[2], NULL, 0);
		size_t size = strtoull(argv[priv ? 2 : 3], NULL, 0);
		int mode = argc > (priv ? 3 : 4) ? (int)strtol(argv[priv ? 3 : 4], NULL, 8) : 0600;
		int id = shmget(key, size, IPC_CREAT | IPC_EXCL | mode);
		if (id < 0)
			return die("shmget");
		printf("%d\n", id);
		return 0;
	}
	int id = find(argv[2]);
	if (id < 0)
		return die("shmget");
	if (!strcmp(cmd, "rm"))
		return shmctl(id, IPC_RMID, NULL) < 0 ? die("IPC_RMID") : 0;
	struct shmid_ds ds;
	if (shmctl(id, IPC_STAT, &ds) < 0)
		return die("IPC_STAT");
	if (!strcmp(cmd, "stat")) {
		printf("%d %zu %o %u %u %u\n", id, (size_t)ds.shm_segsz, ds.shm_perm.mode & 0777,
		       ds.shm_perm.uid, ds.shm_perm.gid, ds.shm_perm.cuid);
		return 0;
	}
	if (!strcmp(cmd, "times")) {
		printf("%lld %lld %lld\n", (long long)ds.shm_atime, (long long)ds.shm_dtime,
		       (long long)ds.shm_ctime);
		return 0;
	}
	if (!strcmp(cmd, "set")) {
		if (argc < 6)
			return fprintf(stderr, "usage: see sysvtool.c\n"), 2;
		if (strcmp(argv[3], "-1"))
			ds.shm_perm.mode = (ds.shm_perm.mode & ~0777u) | (strtoul(argv[3], NULL, 8) & 0777);
		if (strcmp(argv[4], "-1"))
			ds.shm_perm.uid = (uid_t)strtoul(argv[4], NULL, 0);
		if (strcmp(argv[5], "-1"))
			ds.shm_perm.gid = (gid_t)strtoul(argv[5], NULL, 0);
		return shmctl(id, IPC_SET, &ds) < 0 ? die("IPC_SET") : 0;
	}
	if (!strcmp(cmd, "hold")) {
		char *p = shmat(id, NULL, SHM_RDONLY);
		if (p == (void *)-1)
			return die("shmat");
		printf("attached\n");
		fflush(stdout);
		char buf[256];
		while (read(0, buf, sizeof buf) > 0)
			;
		shmdt(p);
		return 0;
	}
	if (argc < 5)
		return fprintf(stderr, "usage: see sysvtool.c\n"), 2;
	size_t off = strtoull(argv[3], NULL, 0);
	char *p = shmat(id, NULL, strcmp(cmd, "read") ? 0 : SHM_RDONLY);
	if (p == (void *)-1)
		return die("shmat");
	if (!strcmp(cmd, "write")) {
		size_t len = strlen(argv[4]);
		if (off + len > ds.shm_segsz)
			return errno = ENOSPC, die("write");
		memcpy(p + off, argv[4], len);
	} else if (!strcmp(cmd, "read")) {
		size_t len = strtoull(argv[4], NULL, 0);
		if (off + len > ds.shm_segsz)
			return errno = EINVAL, die("read");
		fwrite(p + off, 1, len, stdout);
	}
	shmdt(p);
	return 0;
}
