/* The live snapshot's writer process: see km_snapshot_live.h. */
#include "km_snapshot_live.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The writer that runs, 0 if none. One at a time: a snapshot waits for the last one's writer
 * (km_live_wait_idle) while it holds its stop, before it forks its own. */
static _Atomic pid_t inflight;

/* Closes every fd but keep[0..n) (n small), with close_range over the gaps: no malloc. */
static void keep_only(const int *keep, int n)
{
	int k[16];
	if (n > 16)
		n = 16;
	for (int i = 0; i < n; i++) { /* insertion sort, ascending */
		int x = keep[i], j = i;
		for (; j > 0 && k[j - 1] > x; j--)
			k[j] = k[j - 1];
		k[j] = x;
	}
	unsigned lo = 0;
	for (int i = 0; i < n; i++) {
		if (k[i] < 0 || (unsigned)k[i] < lo)
			continue;
		if ((unsigned)k[i] > lo)
			syscall(SYS_close_range, lo, (unsigned)k[i] - 1, 0);
		lo = (unsigned)k[i] + 1;
	}
	syscall(SYS_close_range, lo, ~0u, 0);
}

int km_live_start(km_live_fn *fn, void *arg, const int *keep, int nkeep, km_live_writer_t *w)
{
	km_live_report_t *rep = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (rep == MAP_FAILED)
		return -errno;
	memset(rep, 0, sizeof(*rep));
	/* Signals aimed at km (the terminal's SIGINT, a container runtime's SIGTERM) are the
	 * program's, not the writer's: it inherits the mask, so nothing asynchronous runs km's
	 * handlers in it. Faults stay deliverable: a guarded read of guest memory needs them, and a
	 * blocked one would kill the writer anyway. */
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGSYS);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGFPE);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	/* Exit signal 0, no flags: a new process that km's SIGCHLD and the program's waits ignore. */
	long pid = syscall(SYS_clone, 0ul, NULL, NULL, NULL, 0ul);
	if (pid == 0) {
		keep_only(keep, nkeep);
		fn(arg, rep);
		_exit(rep->done ? 0 : 1);
	}
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (pid < 0) {
		munmap(rep, 4096);
		return -e;
	}
	w->pid = (pid_t)pid;
	w->rep = rep;
	atomic_store(&inflight, (pid_t)pid);
	return 0;
}

int km_live_wait(km_live_writer_t *w, km_live_report_t *rep, int *sig, void (*intr)(void *), void *arg)
{
	siginfo_t si;
	int r;
	*sig = 0;
	for (;;) {
		memset(&si, 0, sizeof(si));
		r = waitid(P_PID, (id_t)w->pid, &si, WEXITED | __WCLONE);
		if (r == 0 || errno != EINTR)
			break;
		if (intr != NULL)
			intr(arg);
	}
	int e = errno;
	*rep = *w->rep;
	munmap(w->rep, 4096);
	w->rep = NULL;
	pid_t expect = w->pid;
	atomic_compare_exchange_strong(&inflight, &expect, 0);
	if (r < 0) {
		rep->done = 0;
		rep->errnum = e;
		rep->step = "waiting for the snapshot writer";
		return -1;
	}
	if (si.si_code == CLD_KILLED || si.si_code == CLD_DUMPED) {
		*sig = si.si_status;
		return -1;
	}
	if (si.si_code == CLD_EXITED && si.si_status == 0 && rep->done)
		return 0;
	if (rep->step == NULL)
		rep->step = "the snapshot writer ended without a report";
	return -1;
}

bool km_live_is_writer(pid_t pid)
{
	return pid > 0 && atomic_load(&inflight) == pid;
}

void km_live_wait_idle(void)
{
	pid_t pid = atomic_load(&inflight);
	if (pid <= 0)
		return;
	siginfo_t si;
	/* WNOWAIT: only its own waiter reaps it (and reads its exit status). */
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | __WCLONE) < 0 && errno == EINTR)
		;
}
