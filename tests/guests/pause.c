/*
 * pause: the pod sandbox program for tests/e2e/cri.sh (containerd's CRI plugin runs it as the
 * pod's "pause" container through km-shim). Like Kubernetes' pause it does nothing but wait for
 * SIGTERM or SIGINT and then exit 0; a container's init needs the handlers, since signals at
 * their default action do not reach it. "self" as first argument sends itself SIGTERM first,
 * so the plain guest runs (run.sh) end on their own.
 *
 *   pause [self]
 */
// E2E: self-term 0 self
#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
	stop_signal = sig;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t block, old;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) || sigaction(SIGINT, &sa, NULL))
		return 2;
	/* Blocked until sigsuspend, so a signal between the check and the wait is not lost. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	if (argc > 1 && strcmp(argv[1], "self") == 0)
		kill(getpid(), SIGTERM);
	while (!stop_signal)
		sigsuspend(&old);
	return 0;
}
