/* guard.c - SIGBUS-safe access to shared mappings; see guard.h. */
#define _GNU_SOURCE
#include "guard.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static __thread sigjmp_buf *guard_jump; /* set while this thread is in guard_call */
static pthread_once_t guard_once = PTHREAD_ONCE_INIT;
static struct sigaction guard_previous;

static void on_sigbus(int sig, siginfo_t *info, void *uctx)
{
	sigjmp_buf *jump = guard_jump;
	if (jump) {
		guard_jump = NULL;
		siglongjmp(*jump, 1);
	}
	/* Not ours: what would have happened without us. */
	if (guard_previous.sa_flags & SA_SIGINFO) {
		guard_previous.sa_sigaction(sig, info, uctx);
	} else if (guard_previous.sa_handler != SIG_IGN && guard_previous.sa_handler != SIG_DFL) {
		guard_previous.sa_handler(sig);
	} else {
		signal(SIGBUS, SIG_DFL);
		raise(SIGBUS);
	}
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &guard_previous);
}

int guard_call(void (*fn)(void *arg), void *arg)
{
	sigjmp_buf jump;
	/* volatile: read again after siglongjmp */
	sigjmp_buf *volatile outer = guard_jump;
	pthread_once(&guard_once, install);
	if (sigsetjmp(jump, 1)) {
		guard_jump = outer;
		return -EFAULT;
	}
	guard_jump = &jump;
	fn(arg);
	guard_jump = outer;
	return 0;
}
