/* permcheck.c - the permission matrix's hands (test_perm_matrix.py): one
 * process per user and side runs a whole list of operations, so thousands
 * of checks cost no more than a few process starts.
 *
 * Reads one operation per line on stdin and prints one line per operation:
 *     RESULT MODE UID GID
 * RESULT is "0" or the errno's name (EACCES, ...), or "EXIT<n>" when an
 * executed program exits with n; MODE is the target's mode bits in octal
 * after the operation (07777 of lstat, 0777 of shm_perm for segments) and
 * UID, GID its owner, or "- - -" when it no longer exists.
 *
 * Operations on paths (the target is the path, the new path for rename):
 *     read P | write P | rdwr P | trunc P SIZE | otrunc P | falloc P
 *     exec P | unlink P | rmdir P | rename P NEWP | chmod P MODE
 *     chown P UID GID | create P MODE | mkdir P MODE | mkfifo P MODE
 *     mknod P MODE MAJOR MINOR | symlink TARGET P | umask MODE
 * Operations on System V segments by key (shmget, shmat, shmctl):
 *     shm-read KEY | shm-rw KEY | shm-exec KEY | shm-rmid KEY
 *     shm-chmod KEY MODE | shm-chown KEY UID GID | shm-create KEY SIZE MODE
 *     shm-script KEY (store "#!/bin/sh\nexit 0\n" at its start) | shm-stat KEY
 * MODE is octal, KEY hexadecimal (0x...), the rest decimal. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int shm_any(int shmid, struct shmid_ds *ds)
{
	/* SHM_STAT_ANY: the segment's attributes whatever the caller may read,
	 * by index: a shmid is a sequence number times 32768 plus the index. */
	if (shmctl(shmid % 32768, SHM_STAT_ANY, ds) == shmid)
		return 0;
	struct shm_info info;
	int maxidx = shmctl(0, SHM_INFO, (struct shmid_ds *)(void *)&info);
	for (int idx = 0; idx <= maxidx; idx++)
		if (shmctl(idx, SHM_STAT_ANY, ds) == shmid)
			return 0;
	errno = EINVAL;
	return -1;
}

static int shm_id(const char *key)
{
	return shmget((key_t)strtoul(key, NULL, 16), 0, 0);
}

/* 0, or -errno. */
static int do_path_op(char **a, int n, const char **target)
{
	const char *op = a[0], *p = a[1];
	int fd, rc = 0;
	char c = 'x';
	*target = p;
	if (!strcmp(op, "read") || !strcmp(op, "write") || !strcmp(op, "rdwr") ||
	    !strcmp(op, "otrunc") || !strcmp(op, "falloc")) {
		int flags = !strcmp(op, "read")     ? O_RDONLY
			    : !strcmp(op, "rdwr")   ? O_RDWR
			    : !strcmp(op, "otrunc") ? O_WRONLY | O_TRUNC
						    : O_WRONLY;
		fd = open(p, flags | O_NOFOLLOW | O_NONBLOCK);
		if (fd < 0)
			return -errno;
		if (!strcmp(op, "read") && read(fd, &c, 1) < 0)
			rc = -errno;
		if ((!strcmp(op, "write") || !strcmp(op, "rdwr")) && pwrite(fd, &c, 1, 0) < 0)
			rc = -errno;
		if (!strcmp(op, "falloc") && fallocate(fd, 0, 0, 4096) < 0)
			rc = -errno;
		close(fd);
		return rc;
	}
	if (!strcmp(op, "trunc") && n == 3)
		return truncate(p, atoll(a[2])) < 0 ? -errno : 0;
	if (!strcmp(op, "exec")) {
		pid_t pid;
		char *argv[] = {(char *)p, NULL};
		rc = posix_spawn(&pid, p, NULL, NULL, argv, environ);
		if (rc)
			return -rc;
		int status;
		if (waitpid(pid, &status, 0) < 0)
			return -errno;
		/* posix_spawn reports a failed execve as exit status 127. */
		return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0
		       : WIFEXITED(status)				 ? 1000 + WEXITSTATUS(status)
									 : -EINTR;
	}
	if (!strcmp(op, "unlink"))
		return unlink(p) < 0 ? -errno : 0;
	if (!strcmp(op, "rmdir"))
		return rmdir(p) < 0 ? -errno : 0;
	if (!strcmp(op, "rename") && n == 3) {
		*target = a[2];
		return rename(p, a[2]) < 0 ? -errno : 0;
	}
	if (!strcmp(op, "chmod") && n == 3)
		return chmod(p, (mode_t)strtol(a[2], NULL, 8)) < 0 ? -errno : 0;
	if (!strcmp(op, "chown") && n == 4)
		return lchown(p, (uid_t)atol(a[2]), (gid_t)atol(a[3])) < 0 ? -errno : 0;
	if (!strcmp(op, "create") && n == 3) {
		fd = open(p, O_CREAT | O_EXCL | O_WRONLY, (mode_t)strtol(a[2], NULL, 8));
		if (fd < 0)
			return -errno;
		close(fd);
		return 0;
	}
	if (!strcmp(op, "mkdir") && n == 3)
		return mkdir(p, (mode_t)strtol(a[2], NULL, 8)) < 0 ? -errno : 0;
	if (!strcmp(op, "mkfifo") && n == 3)
		return mkfifo(p, (mode_t)strtol(a[2], NULL, 8)) < 0 ? -errno : 0;
	if (!strcmp(op, "mknod") && n == 5)
		return mknod(p, (mode_t)strtol(a[2], NULL, 8),
			     makedev((unsigned)atoi(a[3]), (unsigned)atoi(a[4]))) < 0 ? -errno : 0;
	if (!strcmp(op, "symlink") && n == 3) {
		*target = a[2];
		return symlink(a[1], a[2]) < 0 ? -errno : 0;
	}
	return -ENOSYS;
}

static int do_shm_op(char **a, int n, int *shmid)
{
	const char *op = a[0];
	if (!strcmp(op, "shm-create") && n == 4) {
		*shmid = shmget((key_t)strtoul(a[1], NULL, 16), (size_t)atoll(a[2]),
				IPC_CREAT | IPC_EXCL | (int)strtol(a[3], NULL, 8));
		return *shmid < 0 ? -errno : 0;
	}
	*shmid = shm_id(a[1]);
	if (*shmid < 0)
		return -errno;
	if (!strcmp(op, "shm-read") || !strcmp(op, "shm-rw") || !strcmp(op, "shm-exec")) {
		int flags = !strcmp(op, "shm-read")   ? SHM_RDONLY
			    : !strcmp(op, "shm-exec") ? SHM_RDONLY | SHM_EXEC
						      : 0;
		volatile char *addr = shmat(*shmid, NULL, flags);
		if (addr == (void *)-1)
			return -errno;
		char c = addr[0];
		if (!strcmp(op, "shm-rw"))
			addr[0] = c;
		shmdt((void *)addr);
		return 0;
	}
	if (!strcmp(op, "shm-script")) {
		static const char script[] = "#!/bin/sh\nexit 0\n";
		char *addr = shmat(*shmid, NULL, 0);
		if (addr == (void *)-1)
			return -errno;
		memcpy(addr, script, sizeof script - 1);
		shmdt(addr);
		return 0;
	}
	if (!strcmp(op, "shm-stat"))
		return 0;
	if (!strcmp(op, "shm-rmid"))
		return shmctl(*shmid, IPC_RMID, NULL) < 0 ? -errno : 0;
	struct shmid_ds ds;
	if (shm_any(*shmid, &ds) < 0)
		return -errno;
	if (!strcmp(op, "shm-chmod") && n == 3)
		ds.shm_perm.mode = (unsigned short)strtol(a[2], NULL, 8);
	else if (!strcmp(op, "shm-chown") && n == 4)
		ds.shm_perm.uid = (uid_t)atol(a[2]), ds.shm_perm.gid = (gid_t)atol(a[3]);
	else
		return -ENOSYS;
	return shmctl(*shmid, IPC_SET, &ds) < 0 ? -errno : 0;
}

static void print_result(int rc)
{
	if (rc == 0)
		printf("0");
	else if (rc >= 1000)
		printf("EXIT%d", rc - 1000);
	else
		printf("%s", strerrorname_np(-rc) ? strerrorname_np(-rc) : "E?");
}

int main(void)
{
	char line[8192];
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	while (fgets(line, sizeof line, stdin)) {
		char *a[8];
		int n = 0;
		for (char *tok = strtok(line, " \n"); tok && n < 8; tok = strtok(NULL, " \n"))
			a[n++] = tok;
		if (n == 0)
			continue;
		if (!strcmp(a[0], "umask") && n == 2) {
			umask((mode_t)strtol(a[1], NULL, 8));
			printf("0 - - -\n");
			continue;
		}
		if (n < 2) {
			printf("ENOSYS - - -\n");
			continue;
		}
		if (!strncmp(a[0], "shm-", 4)) {
			int shmid = -1;
			int rc = do_shm_op(a, n, &shmid);
			print_result(rc);
			struct shmid_ds ds;
			if (shmid >= 0 && shm_any(shmid, &ds) == 0 && !(ds.shm_perm.mode & SHM_DEST))
				printf(" %o %u %u\n", ds.shm_perm.mode & 0777, (unsigned)ds.shm_perm.uid,
				       (unsigned)ds.shm_perm.gid);
			else
				printf(" - - -\n");
			continue;
		}
		const char *target;
		int rc = do_path_op(a, n, &target);
		print_result(rc);
		struct stat st;
		if (lstat(target, &st) == 0)
			printf(" %o %u %u\n", st.st_mode & 07777, (unsigned)st.st_uid,
			       (unsigned)st.st_gid);
		else
			printf(" - - -\n");
	}
	return 0;
}
