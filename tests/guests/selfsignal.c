/*
 * Signals a program sends itself, natively and under km: the default action ends it with the
 * same status (km adds its one line), whichever call sent it.
 */
// E2E: kill SIGKILL kill
// E2E: tgkill SIGUSR1 tgkill
// E2E: sigqueue SIGUSR2 sigqueue
// E2E: tgsigqueue SIGTERM tgsigqueue
// E2E: ignored 0 ignored
#include <signal.h>
#include <sys/syscall.h>

#include "check.h"

static siginfo_t queued(int sig)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	return si;
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	pid_t tid = (pid_t)syscall(SYS_gettid);
	if (strcmp(what, "kill") == 0) {
		kill(getpid(), SIGKILL);
	} else if (strcmp(what, "tgkill") == 0) {
		syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
	} else if (strcmp(what, "sigqueue") == 0) {
		siginfo_t si = queued(SIGUSR2);
		syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR2, &si);
	} else if (strcmp(what, "tgsigqueue") == 0) {
		siginfo_t si = queued(SIGTERM);
		syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, SIGTERM, &si);
	} else if (strcmp(what, "ignored") == 0) {
		signal(SIGUSR1, SIG_IGN);
		siginfo_t si = queued(SIGUSR1);
		CHECK_SYS(syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &si), "rt_sigqueueinfo of an ignored signal");
		CHECK_SYS(syscall(SYS_rt_tgsigqueueinfo, getpid(), tid, SIGUSR1, &si), "rt_tgsigqueueinfo of it");
		si.si_code = SI_USER;
		CHECK_SYS(syscall(SYS_rt_sigqueueinfo, getpid(), SIGUSR1, &si), "to itself it may pose as kill()");
		return check_done();
	}
	printf("still running after '%s'\n", what);
	return 1;
}
