/* bench_spawn.c - programs the benchmark runs: a command timed from fork to
 * exit (ls -l, ipcs), and daemons of its own, mounted for a case and
 * unmounted after it (the -d write trace, the fresh mounts of the scale
 * cases), whose exit status is checked. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

double run_program(const char *what, const char *const argv[])
{
	double t0 = now();
	pid_t pid = fork();
	if (pid < 0) {
		fail("%s: fork: %s", what, strerror(errno));
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null < 0 || dup2(null, 1) < 0)
			_exit(126);
		setenv("LC_ALL", "C", 1);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fail("%s: waitpid: %s", what, strerror(errno));
			return -1;
		}
	double t = now() - t0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fail("%s: %s %s failed (status %d)", what, argv[0], argv[1] ? argv[1] : "", status);
		return -1;
	}
	return t;
}

pid_t daemon_start(const char *const argv[], const char *mnt, const char *log, const char **why)
{
	struct stat st0, st;
	*why = NULL;
	if (stat(mnt, &st0) < 0) {
		*why = "no mount point";
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		*why = "fork failed";
		return -1;
	}
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		int null = open("/dev/null", O_RDWR);
		if (fd < 0 || null < 0 || dup2(fd, 2) < 0 || dup2(null, 1) < 0 || dup2(null, 0) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			*why = "the daemon exited";
			return -1;
		}
		if (stat(mnt, &st) == 0 && st.st_dev != st0.st_dev)
			return pid;
		usleep(100000);
	}
	*why = "not mounted after 10 s";
	daemon_stop(pid, mnt);
	return -1;
}

int daemon_stop(pid_t pid, const char *mnt)
{
	int i;
	for (i = 0; i < 50 && umount2(mnt, 0) < 0 && errno == EBUSY; i++)
		usleep(100000);
	if (i == 50)
		umount2(mnt, MNT_DETACH);
	int status = -1;
	for (i = 0; i < 300; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid)
			return status;
		usleep(100000);
	}
	kill(pid, SIGTERM); /* our own daemon, by its pid */
	waitpid(pid, NULL, 0);
	return -1;
}
