/*
 * Hostile guest: signal numbers out of range and a real-time queue pushed past its bound (issue
 * 7, "Bad input"). Every call naming a signal outside 1..64 (0 where it is not a probe, 65, -1,
 * huge) is EINVAL as on Linux, as are mask sizes other than 8 and unknown `how`s; signal 0 probes.
 * SIGKILL and SIGSTOP keep their default action and cannot be blocked. rt_sigqueueinfo to itself
 * with the signal blocked queues KM_SIGQUEUE_MAX (1024, km/sys/km_sigqueue.h) and then says
 * EAGAIN; the queued ones all arrive, in order, once unblocked.
 */
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "check.h"

#define KM_SIGQUEUE_MAX 1024

struct ksigaction { /* the kernel's struct sigaction */
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static const long bad_sigs[] = {65, -1, 0x7fffffff, 0x100000001L, 64 + 32, -65, 1L << 40};
#define NBAD (sizeof(bad_sigs) / sizeof(bad_sigs[0]))

static siginfo_t queued(int sig, int value)
{
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	si.si_signo = sig;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_value.sival_int = value;
	return si;
}

static void out_of_range(void)
{
	pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);
	struct ksigaction ka = {.handler = SIG_IGN}, old;
	for (size_t i = 0; i < NBAD; i++) {
		long s = bad_sigs[i];
		if ((int)s >= 0 && (int)s <= 64)
			continue; /* the kernel takes an int: 0x100000001 is SIGHUP */
		siginfo_t si = queued((int)s, 0);
		CHECK_ERR(syscall(SYS_kill, pid, s), EINVAL, "kill(self, %ld)", s);
		CHECK_ERR(syscall(SYS_tgkill, pid, tid, s), EINVAL, "tgkill(self, %ld)", s);
		CHECK_ERR(syscall(SYS_tkill, tid, s), EINVAL, "tkill(self, %ld)", s);
		CHECK_ERR(syscall(SYS_rt_sigqueueinfo, pid, s, &si), EINVAL, "rt_sigqueueinfo(self, %ld)", s);
		CHECK_ERR(syscall(SYS_rt_tgsigqueueinfo, pid, tid, s, &si), EINVAL, "rt_tgsigqueueinfo(self, %ld)", s);
		CHECK_ERR(syscall(SYS_rt_sigaction, s, &ka, NULL, 8), EINVAL, "rt_sigaction(%ld, SIG_IGN)", s);
		CHECK_ERR(syscall(SYS_rt_sigaction, s, NULL, &old, 8), EINVAL, "rt_sigaction(%ld) query", s);
	}
	CHECK_ERR(syscall(SYS_rt_sigaction, 0, &ka, NULL, 8), EINVAL, "rt_sigaction(0, SIG_IGN)");
	CHECK_ERR(syscall(SYS_rt_sigaction, 0, NULL, &old, 8), EINVAL, "rt_sigaction(0) query");
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGKILL, &ka, NULL, 8), EINVAL, "rt_sigaction(SIGKILL, SIG_IGN)");
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGSTOP, &ka, NULL, 8), EINVAL, "rt_sigaction(SIGSTOP, SIG_IGN)");
	CHECK_SYS(syscall(SYS_rt_sigaction, SIGKILL, NULL, &old, 8), "rt_sigaction(SIGKILL) query");
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGUSR1, &ka, NULL, 16), EINVAL, "rt_sigaction with sigsetsize 16");
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGUSR1, &ka, NULL, 4), EINVAL, "rt_sigaction with sigsetsize 4");
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGUSR1, (void *)0x7fffff002000UL, NULL, 8), EFAULT,
		  "rt_sigaction reading the runtime region");
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGUSR1, NULL, (void *)0x7fffff002000UL, 8), EFAULT,
		  "rt_sigaction writing the runtime region");

	/* Signal 0: a probe, no signal sent. */
	siginfo_t si0 = queued(0, 0);
	CHECK_SYS(syscall(SYS_kill, pid, 0), "kill(self, 0) probes");
	CHECK_SYS(syscall(SYS_tgkill, pid, tid, 0), "tgkill(self, 0) probes");
	CHECK_SYS(syscall(SYS_tkill, tid, 0), "tkill(self, 0) probes");
	CHECK_SYS(syscall(SYS_rt_sigqueueinfo, pid, 0, &si0), "rt_sigqueueinfo(self, 0) probes");
	CHECK_ERR(syscall(SYS_tgkill, pid, 0x7fffffff, 0), ESRCH, "tgkill(self, no such thread, 0)");
	CHECK_ERR(syscall(SYS_tgkill, pid, -1, 0), EINVAL, "tgkill(self, -1, 0)");
	CHECK_ERR(syscall(SYS_tkill, 0, 0), EINVAL, "tkill(0, 0)");

	/* Masks: sizes other than 8, unknown hows, pointers into km's region. */
	uint64_t set = ~0ull, oset = 0;
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 16), EINVAL, "rt_sigprocmask sigsetsize 16");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, &set, NULL, 0), EINVAL, "rt_sigprocmask sigsetsize 0");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, 3, &set, NULL, 8), EINVAL, "rt_sigprocmask how 3");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, -1, &set, NULL, 8), EINVAL, "rt_sigprocmask how -1");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, (void *)0x7fffff002000UL, NULL, 8), EFAULT,
		  "rt_sigprocmask reading the runtime region");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, (void *)0x7fffff002000UL, 8), EFAULT,
		  "rt_sigprocmask writing the runtime region");
	CHECK_ERR(syscall(SYS_rt_sigpending, &oset, 16), EINVAL, "rt_sigpending sigsetsize 16");
	CHECK_ERR(syscall(SYS_rt_sigsuspend, &set, 16), EINVAL, "rt_sigsuspend sigsetsize 16");
	struct timespec ts0 = {0, 0};
	CHECK_ERR(syscall(SYS_rt_sigtimedwait, &set, NULL, &ts0, 16), EINVAL, "rt_sigtimedwait sigsetsize 16");
	/* Everything blocked: SIGKILL and SIGSTOP stay unblocked. */
	uint64_t saved;
	CHECK_SYS(syscall(SYS_rt_sigprocmask, SIG_SETMASK, &set, &saved, 8), "block all");
	CHECK_SYS(syscall(SYS_rt_sigprocmask, SIG_SETMASK, NULL, &oset, 8), "read the mask");
	CHECK_EQ(oset & ((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1))), 0, "SIGKILL and SIGSTOP are not blocked");
	CHECK_SYS(syscall(SYS_rt_sigprocmask, SIG_SETMASK, &saved, NULL, 8), "restore the mask");
}

/* --- a real-time queue past its bound ----------------------------------------------------------- */

static volatile int rt_got, rt_disorder;

static void rt_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_value.sival_int != rt_got)
		rt_disorder++;
	rt_got++;
}

static void queue_bound(void)
{
	int sig = SIGRTMIN + 6;
	pid_t pid = getpid(), tid = (pid_t)syscall(SYS_gettid);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = rt_handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(sig, &sa, NULL);
	sigset_t m, old;
	sigemptyset(&m);
	sigaddset(&m, sig);
	sigprocmask(SIG_BLOCK, &m, &old);
	int queued_ok = 0, first_err = 0, at = -1;
	for (int i = 0; i < KM_SIGQUEUE_MAX + 100; i++) {
		siginfo_t si = queued(sig, i);
		if (syscall(SYS_rt_sigqueueinfo, pid, sig, &si) == 0) {
			queued_ok++;
		} else if (first_err == 0) {
			first_err = errno;
			at = i;
		}
	}
	CHECK_EQ(queued_ok, KM_SIGQUEUE_MAX, "rt_sigqueueinfo queues %d", KM_SIGQUEUE_MAX);
	CHECK_EQ(first_err, EAGAIN, "then it says EAGAIN");
	CHECK_EQ(at, KM_SIGQUEUE_MAX, "the first EAGAIN is at the bound");
	/* The thread's own queue has its bound too. */
	int tq = 0, terr = 0;
	for (int i = 0; i < KM_SIGQUEUE_MAX + 100; i++) {
		siginfo_t si = queued(sig, 100000 + i);
		if (syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, &si) == 0)
			tq++;
		else if (terr == 0)
			terr = errno;
	}
	CHECK(tq <= KM_SIGQUEUE_MAX, "the thread's queue holds at most %d (%d)", KM_SIGQUEUE_MAX, tq);
	CHECK_EQ(terr, EAGAIN, "past it rt_tgsigqueueinfo says EAGAIN");
	/* kill() past the bound may succeed (Linux then drops the siginfo) or say EAGAIN: never more. */
	int kerr = 0;
	for (int i = 0; i < 100; i++)
		if (syscall(SYS_kill, pid, sig) != 0 && errno != EAGAIN)
			kerr = errno;
	CHECK_EQ(kerr, 0, "kill past the bound: 0 or EAGAIN");
	/* Drain the thread's queue first with sigtimedwait, then let the process queue reach the
	 * handler: in the order queued, each exactly once. */
	struct timespec ts0 = {0, 0};
	int drained = 0;
	siginfo_t got;
	while (drained < tq && sigtimedwait(&m, &got, &ts0) == sig && got.si_value.sival_int >= 100000)
		drained++;
	CHECK_EQ(drained, tq, "the thread's queue drained by sigtimedwait");
	sigprocmask(SIG_SETMASK, &old, NULL);
	CHECK(rt_got >= KM_SIGQUEUE_MAX, "the queued signals reached the handler (%d)", rt_got);
	CHECK_EQ(rt_disorder, 0, "in the order they were queued");
	signal(sig, SIG_DFL);
}

int main(void)
{
	out_of_range();
	queue_bound();
	CHECK_EQ(write(1, "", 0), 0, "km is intact: it still serves syscalls");
	return check_done();
}
