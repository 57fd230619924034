/* guard.h - touching a shared mapping of a file that another process shrank
 * raises SIGBUS; code that copies out of (or stores into) such mappings runs
 * under guard_call, which turns that SIGBUS into an error instead of a dead
 * daemon. Per thread; calls may nest (the innermost one catches). */
#ifndef SHMFS_GUARD_H
#define SHMFS_GUARD_H

/* Run FN(ARG). Returns 0, or -EFAULT if FN was cut short by a SIGBUS (what
 * it had done so far stays done). A SIGBUS outside a guard_call keeps its
 * default action. */
int guard_call(void (*fn)(void *arg), void *arg);

#endif
