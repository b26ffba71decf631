/*
 * Signal handlers with Linux semantics (issue 7): siginfo for raise/kill/tgkill/sigqueue,
 * SA_RESETHAND, SA_NODEFER, sa_mask, pending blocked signals, queued real-time signals against a
 * coalescing standard one, sigsuspend, sigtimedwait, pause, setitimer/getitimer, alarm,
 * timer_create (SIGEV_SIGNAL, SIGEV_THREAD_ID), signalfd, and the masks of ppoll, pselect and
 * epoll_pwait. Timers are 20-50 ms so that the whole run stays well under 2 s.
 */
// E2E: run 0
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "check.h"

#ifndef sigev_notify_thread_id
#define sigev_notify_thread_id _sigev_un._tid /* glibc names only the union member */
#endif
#ifndef SIGEV_THREAD_ID
#define SIGEV_THREAD_ID 4
#endif

#define MAX_EVENTS 32

struct event {
	int signo, code, pid, value, depth;
	int blocked_usr2; /* SIGUSR2 in the mask while the handler ran */
	int blocked_self;
};

static volatile int n_events, depth, max_depth;
static struct event events[MAX_EVENTS];
static volatile int nest_once;

static void record(int sig, siginfo_t *si)
{
	sigset_t cur;

	depth++;
	if (depth > max_depth)
		max_depth = depth;
	sigprocmask(SIG_BLOCK, NULL, &cur);
	if (n_events < MAX_EVENTS) {
		struct event *e = &events[n_events++];
		e->signo = sig;
		e->code = si ? si->si_code : 0;
		e->pid = si ? si->si_pid : 0;
		e->value = si ? si->si_value.sival_int : 0;
		e->depth = depth;
		e->blocked_usr2 = sigismember(&cur, SIGUSR2);
		e->blocked_self = sigismember(&cur, sig);
	}
}

static void on_info(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	record(sig, si);
	/* The nesting tests raise the same signal again from inside, once. */
	if (nest_once) {
		nest_once = 0;
		raise(sig);
	}
	depth--;
}

static void reset_events(void)
{
	n_events = depth = max_depth = 0;
	memset(events, 0, sizeof(events));
}

static void handle(int sig, int flags, const sigset_t *mask)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_info;
	sa.sa_flags = SA_SIGINFO | flags;
	if (mask)
		sa.sa_mask = *mask;
	else
		sigemptyset(&sa.sa_mask);
	sigaction(sig, &sa, NULL);
}

static void block(int sig, int how)
{
	sigset_t s;

	sigemptyset(&s);
	sigaddset(&s, sig);
	sigprocmask(how, &s, NULL);
}

static void test_siginfo(void)
{
	union sigval v = {.sival_int = 1234};
	pid_t pid = getpid();

	handle(SIGUSR1, 0, NULL);
	reset_events();
	raise(SIGUSR1);
	CHECK(n_events == 1 && events[0].signo == SIGUSR1, "raise: handler ran once before raise returned");
	CHECK(events[0].code == SI_TKILL && events[0].pid == pid, "raise: si_code SI_TKILL, si_pid ours");
	reset_events();
	kill(pid, SIGUSR1);
	CHECK(n_events == 1 && events[0].code == SI_USER && events[0].pid == pid, "kill: si_code SI_USER, si_pid ours");
	reset_events();
	syscall(SYS_tgkill, pid, syscall(SYS_gettid), SIGUSR1);
	CHECK(n_events == 1 && events[0].code == SI_TKILL && events[0].pid == pid, "tgkill: si_code SI_TKILL, si_pid ours");
	reset_events();
	sigqueue(pid, SIGUSR1, v);
	CHECK(n_events == 1 && events[0].code == SI_QUEUE && events[0].pid == pid, "sigqueue: si_code SI_QUEUE, si_pid ours");
	CHECK_EQ(events[0].value, 1234, "sigqueue: si_value arrives");
	CHECK(events[0].blocked_self && !events[0].blocked_usr2, "the signal itself is blocked in its handler, others not");
	CHECK_ERR(kill(pid, 65), EINVAL, "kill with signal 65: EINVAL");
	struct sigaction sa = {0};
	sa.sa_handler = SIG_DFL;
	CHECK_ERR(sigaction(SIGKILL, &sa, NULL), EINVAL, "sigaction on SIGKILL: EINVAL");
}

static void test_flags(void)
{
	struct sigaction old;
	sigset_t mask;

	handle(SIGUSR1, SA_RESETHAND, NULL);
	reset_events();
	raise(SIGUSR1);
	sigaction(SIGUSR1, NULL, &old);
	CHECK(n_events == 1 && old.sa_handler == SIG_DFL, "SA_RESETHAND: the handler ran once, then SIG_DFL");

	handle(SIGUSR1, SA_NODEFER, NULL);
	reset_events();
	nest_once = 1;
	raise(SIGUSR1);
	CHECK(n_events == 2 && max_depth == 2, "SA_NODEFER: raised again inside, delivered nested");
	CHECK(!events[0].blocked_self, "SA_NODEFER: the signal is not blocked in its handler");

	handle(SIGUSR1, 0, NULL);
	reset_events();
	nest_once = 1;
	raise(SIGUSR1);
	CHECK(n_events == 2 && max_depth == 1, "without SA_NODEFER: raised inside, delivered after the handler returned");

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	handle(SIGUSR1, 0, &mask);
	handle(SIGUSR2, 0, NULL);
	reset_events();
	nest_once = 0;
	raise(SIGUSR1);
	CHECK(n_events == 1 && events[0].blocked_usr2, "sa_mask: SIGUSR2 blocked while the SIGUSR1 handler ran");
	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	CHECK(!sigismember(&now, SIGUSR2) && !sigismember(&now, SIGUSR1), "the mask is restored after the handler");
}

static void test_pending(void)
{
	sigset_t pend;
	union sigval v;

	handle(SIGUSR1, 0, NULL);
	block(SIGUSR1, SIG_BLOCK);
	reset_events();
	raise(SIGUSR1);
	sigpending(&pend);
	CHECK(n_events == 0 && sigismember(&pend, SIGUSR1), "a blocked signal stays pending (sigpending shows it)");
	block(SIGUSR1, SIG_UNBLOCK);
	sigpending(&pend);
	CHECK(n_events == 1 && !sigismember(&pend, SIGUSR1), "it is delivered when unblocked");

	/* Three real-time signals queue, in order; three standard ones coalesce into one. */
	handle(SIGRTMIN + 1, 0, NULL);
	handle(SIGUSR2, 0, NULL);
	block(SIGRTMIN + 1, SIG_BLOCK);
	block(SIGUSR2, SIG_BLOCK);
	reset_events();
	for (int i = 1; i <= 3; i++) {
		v.sival_int = i * 11;
		sigqueue(getpid(), SIGRTMIN + 1, v);
		v.sival_int = i;
		sigqueue(getpid(), SIGUSR2, v);
	}
	CHECK_EQ(n_events, 0, "six blocked signals queued, none delivered");
	block(SIGRTMIN + 1, SIG_UNBLOCK);
	CHECK_EQ(n_events, 3, "SIGRTMIN+1 x 3: delivered 3 times on unblock");
	CHECK(events[0].value == 11 && events[1].value == 22 && events[2].value == 33,
	      "SIGRTMIN+1: in the order sent, each with its own value");
	block(SIGUSR2, SIG_UNBLOCK);
	CHECK_EQ(n_events, 4, "SIGUSR2 x 3: coalesced into one delivery");
	CHECK(events[3].signo == SIGUSR2 && events[3].value == 1, "SIGUSR2: the first one's siginfo kept");

	/* Several pending real-time signals: the lowest number first (handlers block all signals,
	 * else the second would be delivered on top of the first, before its handler's first line). */
	sigset_t all;
	sigfillset(&all);
	handle(SIGRTMIN + 1, 0, &all);
	handle(SIGRTMIN + 2, 0, &all);
	sigset_t both;
	sigemptyset(&both);
	sigaddset(&both, SIGRTMIN + 1);
	sigaddset(&both, SIGRTMIN + 2);
	sigprocmask(SIG_BLOCK, &both, NULL);
	reset_events();
	raise(SIGRTMIN + 2);
	raise(SIGRTMIN + 1);
	sigprocmask(SIG_UNBLOCK, &both, NULL);
	CHECK(n_events == 2 && events[0].signo == SIGRTMIN + 1 && events[1].signo == SIGRTMIN + 2,
	      "pending real-time signals are delivered lowest number first");
}

static void arm_ms(long first_ms, long interval_ms)
{
	struct itimerval it = {{interval_ms / 1000, (interval_ms % 1000) * 1000}, {first_ms / 1000, (first_ms % 1000) * 1000}};

	setitimer(ITIMER_REAL, &it, NULL);
}

static void test_waiting(void)
{
	sigset_t mask, old, none;
	siginfo_t si;
	struct timespec ts = {0, 30 * 1000000};

	handle(SIGALRM, 0, NULL);
	sigemptyset(&none);

	/* sigsuspend: SIGALRM blocked, the suspend mask lets it in. */
	block(SIGALRM, SIG_BLOCK);
	reset_events();
	arm_ms(50, 0);
	CHECK_ERR(sigsuspend(&none), EINTR, "sigsuspend returns EINTR");
	CHECK(n_events == 1 && events[0].signo == SIGALRM, "sigsuspend: the SIGALRM handler ran");
	sigprocmask(SIG_BLOCK, NULL, &old);
	CHECK(sigismember(&old, SIGALRM), "sigsuspend: the old mask is back");
	block(SIGALRM, SIG_UNBLOCK);

	/* sigtimedwait: times out, then takes a pending signal without running its handler. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR2);
	handle(SIGUSR2, 0, NULL);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	reset_events();
	CHECK_ERR(sigtimedwait(&mask, &si, &ts), EAGAIN, "sigtimedwait with nothing pending: EAGAIN after the timeout");
	syscall(SYS_tgkill, getpid(), syscall(SYS_gettid), SIGUSR2);
	CHECK_EQ(sigtimedwait(&mask, &si, &ts), SIGUSR2, "sigtimedwait takes the pending SIGUSR2");
	/* glibc's wrapper turns SI_TKILL into SI_USER. */
	CHECK(si.si_signo == SIGUSR2 && (si.si_code == SI_TKILL || si.si_code == SI_USER) && si.si_pid == getpid(),
	      "sigtimedwait: its siginfo");
	CHECK_EQ(n_events, 0, "sigtimedwait: the handler did not run");
	union sigval v = {.sival_int = 99};
	sigqueue(getpid(), SIGUSR2, v);
	CHECK_EQ(sigwaitinfo(&mask, &si), SIGUSR2, "sigwaitinfo takes a queued SIGUSR2");
	CHECK(si.si_code == SI_QUEUE && si.si_value.sival_int == 99, "sigwaitinfo: si_code SI_QUEUE and the value");
	sigprocmask(SIG_UNBLOCK, &mask, NULL);

	/* pause: woken by the timer's signal. */
	reset_events();
	arm_ms(50, 0);
	CHECK_ERR(pause(), EINTR, "pause returns EINTR after the SIGALRM handler");
	CHECK(n_events == 1 && events[0].signo == SIGALRM && events[0].code == SI_KERNEL,
	      "pause: woken by SIGALRM from setitimer (si_code SI_KERNEL)");
}

static void test_timers(void)
{
	struct itimerval it, got;
	sigset_t none;
	unsigned left;

	sigemptyset(&none);
	handle(SIGALRM, 0, NULL);
	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = 10;
	setitimer(ITIMER_REAL, &it, NULL);
	getitimer(ITIMER_REAL, &got);
	CHECK(got.it_value.tv_sec == 9 || (got.it_value.tv_sec == 10 && got.it_value.tv_usec == 0),
	      "getitimer: a 10 s timer has at most 10 s left");
	CHECK(got.it_interval.tv_sec == 0 && got.it_interval.tv_usec == 0, "getitimer: no interval");
	memset(&it, 0, sizeof(it));
	setitimer(ITIMER_REAL, &it, &got);
	CHECK(got.it_value.tv_sec >= 9, "setitimer returns the old timer's time left");
	getitimer(ITIMER_REAL, &got);
	CHECK(got.it_value.tv_sec == 0 && got.it_value.tv_usec == 0, "setitimer with zero disarms it");

	/* A periodic timer: three expiries, then disarmed. */
	block(SIGALRM, SIG_BLOCK);
	reset_events();
	arm_ms(20, 20);
	while (n_events < 3)
		sigsuspend(&none);
	arm_ms(0, 0);
	block(SIGALRM, SIG_UNBLOCK);
	CHECK_EQ(n_events, 3, "a periodic ITIMER_REAL fired 3 times");

	alarm(10);
	left = alarm(0);
	CHECK(left == 9 || left == 10, "alarm(0) returns the seconds left of alarm(10)");
}

static void test_posix_timers(void)
{
	struct sigevent sev;
	struct itimerspec its = {{0, 0}, {0, 20 * 1000000}};
	timer_t t;
	sigset_t none;

	sigemptyset(&none);
	handle(SIGUSR2, 0, NULL);
	block(SIGUSR2, SIG_BLOCK);

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_SIGNAL;
	sev.sigev_signo = SIGUSR2;
	sev.sigev_value.sival_int = 77;
	CHECK_SYS(timer_create(CLOCK_MONOTONIC, &sev, &t), "timer_create SIGEV_SIGNAL");
	reset_events();
	CHECK_SYS(timer_settime(t, 0, &its, NULL), "timer_settime 20 ms");
	while (n_events < 1)
		sigsuspend(&none);
	CHECK(events[0].signo == SIGUSR2 && events[0].code == SI_TIMER && events[0].value == 77,
	      "SIGEV_SIGNAL: SIGUSR2 with si_code SI_TIMER and the timer's value");
	CHECK_EQ(timer_getoverrun(t), 0, "timer_getoverrun 0");
	timer_delete(t);

	memset(&sev, 0, sizeof(sev));
	sev.sigev_notify = SIGEV_THREAD_ID;
	sev.sigev_signo = SIGUSR2;
	sev.sigev_value.sival_int = 78;
	sev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
	CHECK_SYS(timer_create(CLOCK_REALTIME, &sev, &t), "timer_create SIGEV_THREAD_ID");
	reset_events();
	timer_settime(t, 0, &its, NULL);
	while (n_events < 1)
		sigsuspend(&none);
	CHECK(events[0].code == SI_TIMER && events[0].value == 78, "SIGEV_THREAD_ID: delivered to this thread with its value");
	timer_delete(t);
	block(SIGUSR2, SIG_UNBLOCK);
}

static void test_signalfd(void)
{
	sigset_t mask;
	struct signalfd_siginfo ssi;
	int fd;

	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	CHECK(fd >= 0, "signalfd");
	CHECK_ERR(read(fd, &ssi, sizeof(ssi)), EAGAIN, "signalfd with nothing pending: EAGAIN");
	handle(SIGUSR1, 0, NULL);
	reset_events();
	raise(SIGUSR1);
	memset(&ssi, 0, sizeof(ssi));
	CHECK_EQ(read(fd, &ssi, sizeof(ssi)), (long)sizeof(ssi), "signalfd: read one signalfd_siginfo");
	CHECK(ssi.ssi_signo == SIGUSR1 && ssi.ssi_code == SI_TKILL && ssi.ssi_pid == (uint32_t)getpid(),
	      "signalfd: SIGUSR1 with SI_TKILL and our pid");
	CHECK_EQ(n_events, 0, "signalfd: the handler did not run");
	close(fd);
	sigprocmask(SIG_UNBLOCK, &mask, NULL);
}

/* ppoll, pselect and epoll_pwait: SIGALRM blocked, the call's mask lets it in. */
static void test_mask_calls(void)
{
	int p[2], ep;
	sigset_t none;
	struct pollfd pfd;
	fd_set rd;
	struct epoll_event ev = {.events = EPOLLIN}, out;

	sigemptyset(&none);
	(void)!pipe(p);
	handle(SIGALRM, 0, NULL);
	block(SIGALRM, SIG_BLOCK);

	reset_events();
	arm_ms(50, 0);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	CHECK_ERR(ppoll(&pfd, 1, NULL, &none), EINTR, "ppoll with a mask that unblocks SIGALRM: EINTR");
	CHECK_EQ(n_events, 1, "ppoll: the handler ran");

	reset_events();
	arm_ms(50, 0);
	FD_ZERO(&rd);
	FD_SET(p[0], &rd);
	CHECK_ERR(pselect(p[0] + 1, &rd, NULL, NULL, NULL, &none), EINTR, "pselect with that mask: EINTR");
	CHECK_EQ(n_events, 1, "pselect: the handler ran");

	ep = epoll_create1(EPOLL_CLOEXEC);
	ev.data.fd = p[0];
	epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
	reset_events();
	arm_ms(50, 0);
	CHECK_ERR(epoll_pwait(ep, &out, 1, -1, &none), EINTR, "epoll_pwait with that mask: EINTR");
	CHECK_EQ(n_events, 1, "epoll_pwait: the handler ran");

	sigset_t now;
	sigprocmask(SIG_BLOCK, NULL, &now);
	CHECK(sigismember(&now, SIGALRM), "the calls restored the blocking mask");
	block(SIGALRM, SIG_UNBLOCK);
	close(ep);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	test_siginfo();
	test_flags();
	test_pending();
	test_waiting();
	test_timers();
	test_posix_timers();
	test_signalfd();
	test_mask_calls();
	return check_done();
}
