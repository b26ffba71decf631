/*
 * Hostile guest: signals at km's own threads and process (issue 6). km's threads (the vCPU
 * thread is the guest's; the management listener and KVM's worker are km's) are hidden from the
 * guest's /proc, so the harness reads them from outside and writes their tids on stdin
 * (HOSTILE-STDIN below); every way of naming one that is not the guest's thread (kill, tgkill, tkill,
 * rt_sigqueueinfo, rt_tgsigqueueinfo) must be ESRCH, with SIGSEGV, SIGUSR1, SIGKILL, SIGSTOP or
 * 0, and never reach km as a host signal. Signals to the guest's own process group reach the
 * guest alone (ignored here, so it goes on); signals to another process (km's parent, with 0)
 * still work. km must keep running: the program ends normally.
 */
// HOSTILE-KM-ARGS: --mgmt=@TMP/mgmt.sock
// HOSTILE-STDIN: km-tids
#include <signal.h>
#include <stdbool.h>
#include <sys/syscall.h>

#include "check.h"

static const int sigs[] = {SIGSEGV, SIGUSR1, SIGKILL, SIGSTOP, SIGTERM, 0};
#define NSIGS (sizeof(sigs) / sizeof(sigs[0]))

static siginfo_t queued(int sig)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = SI_QUEUE; /* negative: a process may make it up */
	si.si_pid = getpid();
	return si;
}

/* Every way to name thread `tid` of this process, with each signal: all ESRCH. */
static void at_thread(pid_t tid)
{
	pid_t pid = getpid();
	for (size_t i = 0; i < NSIGS; i++) {
		int sig = sigs[i];
		siginfo_t si = queued(sig);
		CHECK_ERR(syscall(SYS_tgkill, pid, tid, sig), ESRCH, "tgkill(pid, km thread, %d)", sig);
		CHECK_ERR(syscall(SYS_tkill, tid, sig), ESRCH, "tkill(km thread, %d)", sig);
		CHECK_ERR(syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &si), ESRCH,
			  "rt_tgsigqueueinfo(pid, km thread, %d)", sig);
		CHECK_ERR(syscall(SYS_rt_sigqueueinfo, tid, sig, &si), ESRCH, "rt_sigqueueinfo(km thread, %d)", sig);
		CHECK_ERR(syscall(SYS_kill, tid, sig), ESRCH, "kill(km thread, %d)", sig);
		CHECK_ERR(syscall(SYS_tgkill, tid, tid, sig), ESRCH, "tgkill(km thread as tgid, %d)", sig);
	}
}

int main(void)
{
	pid_t self = (pid_t)syscall(SYS_gettid);
	int others = 0;
	pid_t tids[64];
	int n = 0;
	char line[1024];
	if (fgets(line, sizeof(line), stdin) != NULL)
		for (char *t = strtok(line, " \n"); t != NULL && n < 64; t = strtok(NULL, " \n"))
			tids[n++] = (pid_t)atoi(t);
	for (int i = 0; i < n; i++) {
		if (tids[i] == self)
			continue;
		others++;
		at_thread(tids[i]);
	}
	/* Unnamed, by number: any thread of this process near ours (km's are made at its start).
	 * tgkill names the thread group too, so no other process can be hit. */
	int reached = 0;
	for (pid_t t = getpid() + 1; t < getpid() + 512; t++)
		if (syscall(SYS_tgkill, getpid(), t, SIGKILL) == 0 || errno != ESRCH)
			reached++;
	CHECK(reached == 0, "tgkill(pid, pid+1..pid+511, SIGKILL) reaches no thread (%d did)", reached);
	CHECK(others >= 1, "the harness named km's own threads (the management listener at least)");
	printf("(%d threads of km's besides the guest's)\n", others);

	/* The guest's own thread and process: signal 0 checks they exist. */
	CHECK_SYS(syscall(SYS_tgkill, getpid(), self, 0), "tgkill(self, 0)");
	CHECK_SYS(syscall(SYS_tkill, self, 0), "tkill(self, 0)");
	CHECK_SYS(kill(getpid(), 0), "kill(self, 0)");
	siginfo_t si = queued(0);
	CHECK_SYS(syscall(SYS_rt_sigqueueinfo, getpid(), 0, &si), "rt_sigqueueinfo(self, 0)");

	/* The process group km is in: the guest gets the signal (ignored here), km does not. */
	signal(SIGUSR1, SIG_IGN);
	signal(SIGTERM, SIG_IGN);
	CHECK_SYS(kill(0, SIGUSR1), "kill(0, SIGUSR1)");
	CHECK_SYS(kill(-getpgrp(), SIGUSR1), "kill(-pgrp, SIGUSR1)");
	CHECK_SYS(kill(-getpgrp(), SIGTERM), "kill(-pgrp, SIGTERM)");
	CHECK_ERR(kill(-1, SIGUSR1), EPERM, "kill(-1) refused");

	/* Another process: reached (with 0, which only checks). */
	pid_t parent = getppid();
	CHECK_SYS(kill(parent, 0), "kill(parent, 0)");
	CHECK_SYS(syscall(SYS_tkill, parent, 0), "tkill(parent, 0)");
	CHECK_SYS(syscall(SYS_tgkill, parent, parent, 0), "tgkill(parent, parent, 0)");
	si = queued(0);
	CHECK_SYS(syscall(SYS_rt_sigqueueinfo, parent, 0, &si), "rt_sigqueueinfo(parent, 0)");
	si.si_code = SI_USER;
	CHECK_ERR(syscall(SYS_rt_sigqueueinfo, parent, 0, &si), EPERM, "rt_sigqueueinfo posing as kill()");
	CHECK_ERR(syscall(SYS_tgkill, 0, self, 0), EINVAL, "tgkill with tgid 0");
	CHECK_ERR(kill(getpid(), 65), EINVAL, "kill with signal 65");

	CHECK_EQ(write(1, "", 0), 0, "km is intact: it still serves syscalls");
	return check_done();
}
