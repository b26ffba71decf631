/*
 * Signal state across a snapshot (tests/e2e/threads.sh): blocked signals pending for the process
 * and for a thread (a standard one, and three real-time ones queued with their values), an
 * interval timer and a POSIX timer armed, a handler for each, a second thread blocked in
 * sigwaitinfo. Then the snapshot; the resumed program unblocks and must see every signal, in
 * order and with its value, the timers fire, and the waiting thread gets its signal.
 *
 *   snap_signals run     the same program with getpid in place of the snapshot (native and km)
 *   snap_signals snap    the snapshot hypercall: km writes the file and ends; `km FILE` resumes
 *                        and prints what `run` prints. Natively: exit 77.
 */
// E2E: run 0 run
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "snap_common.h"

#define RT (SIGRTMIN + 2)

static volatile int seen[65], rt_values[8], nrt, timer_value;

/* Which of several unblocked signals runs first is not fixed (Linux stacks their frames, so the
 * last set up runs first): only the order among the real-time ones is. */
static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	seen[sig]++;
	if (sig == RT && nrt < 8)
		rt_values[nrt++] = si->si_value.sival_int;
	if (si->si_code == SI_TIMER)
		timer_value = si->si_value.sival_int;
}

static void handle(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(sig, &sa, NULL);
}

static int waiter_got;

static void *waiter(void *arg)
{
	sigset_t *set = arg;
	siginfo_t si;
	waiter_got = sigwaitinfo(set, &si) == SIGUSR2 ? si.si_value.sival_int : -1;
	return NULL;
}

int main(int argc, char **argv)
{
	bool snap = argc > 1 && strcmp(argv[1], "snap") == 0;
	sigset_t block, wset;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, RT);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, NULL);
	handle(SIGUSR1);
	handle(RT);
	handle(SIGALRM);
	handle(SIGPROF);

	sigemptyset(&wset);
	sigaddset(&wset, SIGUSR2);
	pthread_t w;
	pthread_create(&w, NULL, waiter, &wset);

	raise(SIGUSR1);
	raise(SIGUSR1); /* merged with the first */
	for (int i = 1; i <= 3; i++)
		sigqueue(getpid(), RT, (union sigval){.sival_int = i * 11});

	struct itimerval it = {{0, 0}, {0, 300000}};
	setitimer(ITIMER_REAL, &it, NULL);
	struct sigevent ev;
	memset(&ev, 0, sizeof(ev));
	ev.sigev_notify = SIGEV_SIGNAL;
	ev.sigev_signo = SIGPROF;
	ev.sigev_value.sival_int = 77;
	timer_t t;
	CHECK_SYS(timer_create(CLOCK_MONOTONIC, &ev, &t), "timer_create");
	struct itimerspec ts = {{0, 0}, {0, 400000000}};
	CHECK_SYS(timer_settime(t, 0, &ts, NULL), "timer_settime");

	if (snap) {
		long r = snap_take("signals", 0, NULL, NULL);
		if (r == -ENOSYS)
			snap_not_under_km();
		if (r != KM_SNAPSHOT_RESUMED)
			snap_failed(r);
	} else {
		syscall(SYS_getpid);
	}

	/* Resumed (or straight on): the pending signals are delivered as they are unblocked. */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigaddset(&usr1, RT);
	sigprocmask(SIG_UNBLOCK, &usr1, NULL);
	CHECK_EQ(seen[SIGUSR1], 1, "the pending SIGUSR1 (raised twice: merged) delivered once");
	CHECK_EQ(seen[RT], 3, "the three queued real-time signals delivered");
	CHECK(rt_values[0] == 11 && rt_values[1] == 22 && rt_values[2] == 33,
	      "the real-time ones in the order they were sent, with their values");
	sigset_t none;
	sigemptyset(&none);
	sigaddset(&none, SIGUSR2);
	while (seen[SIGALRM] == 0 || seen[SIGPROF] == 0)
		sigsuspend(&none);
	CHECK(seen[SIGALRM] == 1, "the interval timer fired");
	CHECK(seen[SIGPROF] == 1 && timer_value == 77, "the POSIX timer fired with its value");
	sigqueue(getpid(), SIGUSR2, (union sigval){.sival_int = 5});
	pthread_join(w, NULL);
	CHECK_EQ(waiter_got, 5, "the thread waiting in sigwaitinfo got SIGUSR2");
	CHECK_SYS(timer_delete(t), "timer_delete: the id is still the timer's");
	return check_done();
}
