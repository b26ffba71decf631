/* Signal syscalls: dispositions, masks, sending, waiting, sigreturn, timers. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_proc.h"
#include "km_sigfd.h"
#include "km_snapshot_live.h"
#include "km_signal.h"
#include "km_sys_util.h"
#include "km_syscall.h"
#include "km_time.h"
#include "km_timers.h"

#define MM(v) (&(v)->g->mm)
#define KM_SS_AUTODISARM (1u << 31) /* <asm/signal.h>; glibc does not export it */
#define BIT(sig) (1ull << ((sig) - 1))

/* A sigset_t from the guest: exactly the kernel's 8 bytes. */
static int get_set(km_vcpu_t *v, uint64_t gva, uint64_t size, uint64_t *set)
{
	if (size != sizeof(*set))
		return -EINVAL;
	return km_copy_from_guest(MM(v), set, gva, sizeof(*set)) < 0 ? -EFAULT : 0;
}

/* --- dispositions and masks ---------------------------------------------------------------- */

KM_SYSCALL(rt_sigaction)
{
	int sig = (int)a[0];
	if (a[3] != 8)
		return -EINVAL;
	if (sig < 1 || sig > KM_NSIG)
		return -EINVAL;
	km_sigaction_t act;
	if (a[1] != 0) {
		if (km_copy_from_guest(MM(v), &act, a[1], sizeof(act)) < 0)
			return -EFAULT;
		if (sig == SIGKILL || sig == SIGSTOP)
			return -EINVAL;
		act.mask &= ~KM_SIG_UNBLOCKABLE;
	}
	km_guest_t *g = v->g;
	km_signal_lock(g);
	km_sigaction_t old = g->sigactions[sig - 1];
	if (a[1] != 0) {
		g->sigactions[sig - 1] = act;
		km_signal_discard_ignored(g, sig); /* POSIX: pending ones vanish when ignored */
		if (sig == SIGCHLD)
			km_signal_host_sigchld(&act); /* the host reaps km's children as Linux would */
	}
	km_signal_unlock(g);
	if (a[2] != 0 && km_copy_to_guest(MM(v), a[2], &old, sizeof(old)) < 0)
		return -EFAULT;
	return 0;
}

/* Changes v's mask as `how` says. Called with the signal lock held. */
static int change_mask(km_vcpu_t *v, int how, uint64_t set)
{
	set &= ~KM_SIG_UNBLOCKABLE;
	switch (how) {
	case SIG_BLOCK:
		v->sigmask |= set;
		return 0;
	case SIG_UNBLOCK:
		v->sigmask &= ~set;
		return 0;
	case SIG_SETMASK:
		v->sigmask = set;
		return 0;
	default:
		return -EINVAL;
	}
}

/* A signal unblocked here is delivered on the way back to the program (km_signal_deliver). */
KM_SYSCALL(rt_sigprocmask)
{
	uint64_t set = 0, old = v->sigmask;
	if (a[3] != 8)
		return -EINVAL;
	if (a[1] != 0 && km_copy_from_guest(MM(v), &set, a[1], sizeof(set)) < 0)
		return -EFAULT;
	if (a[1] != 0) {
		km_signal_lock(v->g);
		int rc = change_mask(v, (int)a[0], set);
		km_signal_unlock(v->g);
		if (rc < 0)
			return rc;
	}
	if (a[2] != 0 && km_copy_to_guest(MM(v), a[2], &old, sizeof(old)) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(rt_sigpending)
{
	if (a[1] > 8)
		return -EINVAL;
	uint64_t set = km_signal_pending_set(v) & v->sigmask;
	return km_copy_to_guest(MM(v), a[0], &set, a[1]);
}

static bool on_altstack(km_vcpu_t *v)
{
	uint64_t base = (uint64_t)(uintptr_t)v->altstack.ss_sp;
	return v->altstack.ss_size != 0 && !(v->altstack.ss_flags & SS_DISABLE) && v->user.rsp - base < v->altstack.ss_size;
}

KM_SYSCALL(sigaltstack)
{
	stack_t ss, old = v->altstack;
	if (a[0] != 0) {
		if (km_copy_from_guest(MM(v), &ss, a[0], sizeof(ss)) < 0)
			return -EFAULT;
		int mode = ss.ss_flags & ~(int)KM_SS_AUTODISARM;
		if (mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK)
			return -EINVAL;
		if (on_altstack(v))
			return -EPERM;
		if (mode != SS_DISABLE && ss.ss_size < (size_t)KM_MINSIGSTKSZ)
			return -ENOMEM;
	}
	if (a[1] != 0) {
		if (old.ss_size == 0)
			old.ss_flags = SS_DISABLE;
		else if (on_altstack(v))
			old.ss_flags |= SS_ONSTACK;
		if (km_copy_to_guest(MM(v), a[1], &old, sizeof(old)) < 0)
			return -EFAULT;
	}
	if (a[0] != 0) {
		if ((ss.ss_flags & ~(int)KM_SS_AUTODISARM) == SS_DISABLE)
			v->altstack = (stack_t){.ss_flags = SS_DISABLE};
		else
			v->altstack = (stack_t){.ss_sp = ss.ss_sp, .ss_size = ss.ss_size,
						.ss_flags = ss.ss_flags & (int)KM_SS_AUTODISARM};
	}
	return 0;
}

/* rt_sigreturn's result is the restored rax; its registers replace the program's (v->user). */
KM_SYSCALL(rt_sigreturn)
{
	return km_signal_sigreturn(v);
}

/* --- sending ------------------------------------------------------------------------------
 * A signal for the guest itself goes through km's emulation (km_signal.h); one for another
 * process goes to the host, by a route that cannot reach km: no id the guest names ever
 * becomes a host signal at km's own process or threads. */

static bool sig_valid(int sig)
{
	return sig >= 0 && sig <= KM_NSIG;
}

/* kill() and rt_sigqueueinfo() with pid > 0, which may name any thread of a process. */
static long signal_process(km_vcpu_t *v, pid_t pid, int sig, siginfo_t *info)
{
	if (!sig_valid(sig))
		return -EINVAL;
	if (pid == v->g->pid || km_signal_guest_thread(v->g, pid) != NULL) {
		if (sig == 0)
			return 0;
		siginfo_t own;
		if (info == NULL) {
			km_signal_info(v, sig, SI_USER, &own);
			info = &own;
		}
		info->si_signo = sig;
		return km_signal_send_process(v->g, info);
	}
	return km_signal_host_process(pid, sig, info);
}

/* tgkill() and rt_tgsigqueueinfo(): the kernel checks that tid is in tgid, so a tgid that is
 * not km's can never reach km. */
static long signal_thread(km_vcpu_t *v, pid_t tgid, pid_t tid, int sig, siginfo_t *info)
{
	if (!sig_valid(sig))
		return -EINVAL;
	if (tgid == v->g->pid) {
		km_vcpu_t *t = km_signal_guest_thread(v->g, tid);
		if (t == NULL)
			return -ESRCH;
		if (sig == 0)
			return 0;
		siginfo_t own;
		if (info == NULL) {
			km_signal_info(v, sig, SI_TKILL, &own);
			info = &own;
		}
		info->si_signo = sig;
		return km_signal_send_thread(t, info);
	}
	if (tgid == getpid() || km_live_is_writer(tgid))
		return -ESRCH;
	long r = info != NULL ? syscall(SYS_rt_tgsigqueueinfo, tgid, tid, sig, info)
			      : syscall(SYS_tgkill, tgid, tid, sig);
	return r < 0 ? -errno : 0;
}

/* kill(0) and kill(-km's group): the group's other members are other processes (the guest's
 * children are km processes), which only the host's kill(-pgrp) reaches, km included. While km
 * has child processes, a signal km forwards goes that way (km's forwarding thread then hands it
 * to the guest, as one from outside); without children, or for a signal km keeps for itself
 * (which would hit km, not the guest), only the guest gets it, at once: the kernel has no way to
 * signal a group but one member. */
static long signal_own_group(km_vcpu_t *v, int sig)
{
	if (sig != 0 && km_signal_host_forwarded(sig) && km_proc_has_children(v->g, NULL) == 1)
		return kill(-getpgrp(), sig) < 0 ? -errno : 0;
	return signal_process(v, v->g->pid, sig, NULL);
}

KM_SYSCALL(kill)
{
	pid_t pid = (pid_t)a[0];
	int sig = (int)a[1];
	if (pid > 0)
		return signal_process(v, pid, sig, NULL);
	if (!sig_valid(sig))
		return -EINVAL;
	if (pid == -1)
		return -EPERM; /* never let a guest signal every process km may reach */
	if (pid == INT_MIN)
		return -ESRCH;
	if (pid == 0 || -pid == getpgrp())
		return signal_own_group(v, sig);
	return kill(pid, sig) < 0 ? -errno : 0; /* another group: km is not in it */
}

KM_SYSCALL(tgkill)
{
	if ((pid_t)a[0] <= 0 || (pid_t)a[1] <= 0)
		return -EINVAL;
	return signal_thread(v, (pid_t)a[0], (pid_t)a[1], (int)a[2], NULL);
}

KM_SYSCALL(tkill)
{
	pid_t tid = (pid_t)a[0];
	if (tid <= 0)
		return -EINVAL;
	if (km_signal_guest_thread(v->g, tid) != NULL)
		return signal_thread(v, v->g->pid, tid, (int)a[1], NULL);
	pid_t tgid = km_signal_host_tgid(tid);
	if (tgid < 0 || tgid == getpid())
		return -ESRCH;
	return signal_thread(v, tgid, tid, (int)a[1], NULL);
}

/* Linux lets a process make up its own siginfo only with a negative si_code other than SI_TKILL,
 * unless it signals itself (the target is compared with the caller's thread id). */
static bool impersonates(const siginfo_t *info, km_vcpu_t *v, pid_t target)
{
	return (info->si_code >= 0 || info->si_code == SI_TKILL) && target != v->tid;
}

KM_SYSCALL(rt_sigqueueinfo)
{
	siginfo_t info;
	if (km_copy_from_guest(MM(v), &info, a[2], sizeof(info)) < 0)
		return -EFAULT;
	if (impersonates(&info, v, (pid_t)a[0]))
		return -EPERM;
	if ((pid_t)a[0] <= 0)
		return -ESRCH;
	return signal_process(v, (pid_t)a[0], (int)a[1], &info);
}

KM_SYSCALL(rt_tgsigqueueinfo)
{
	siginfo_t info;
	if (km_copy_from_guest(MM(v), &info, a[3], sizeof(info)) < 0)
		return -EFAULT;
	if ((pid_t)a[0] <= 0 || (pid_t)a[1] <= 0)
		return -EINVAL;
	if (impersonates(&info, v, (pid_t)a[1]))
		return -EPERM;
	return signal_thread(v, (pid_t)a[0], (pid_t)a[1], (int)a[2], &info);
}

/* --- waiting ------------------------------------------------------------------------------ */

/* Waits with `mask` as the thread's mask until a signal it lets through is pending; the old
 * mask comes back after the handler (or at once if none runs). Always -EINTR, as Linux's
 * sigsuspend; a kick without a signal restarts it (km_signal_interrupts says so). */
static long suspend_with(km_vcpu_t *v, uint64_t mask)
{
	/* A process signal reaches the one thread km picks, by a kick. */
	if (km_signal_call_mask(v, mask) == 0 && km_signal_wait(v, ~v->sigmask, 0, NULL) < 0)
		return -KM_ERESTART; /* kicked: made again unless a handler runs */
	return -EINTR;
}

KM_SYSCALL(rt_sigsuspend)
{
	uint64_t mask;
	int rc = get_set(v, a[0], a[1], &mask);
	return rc < 0 ? rc : suspend_with(v, mask);
}

KM_SYSCALL(pause)
{
	return suspend_with(v, v->sigmask);
}

KM_SYSCALL(rt_sigtimedwait)
{
	uint64_t set;
	int rc = get_set(v, a[0], a[3], &set);
	if (rc < 0)
		return rc;
	set &= ~KM_SIG_UNBLOCKABLE;
	struct timespec ts, dl, *dlp = NULL;
	if (a[2] != 0) {
		if (km_copy_from_guest(MM(v), &ts, a[2], sizeof(ts)) < 0)
			return -EFAULT;
		if (ts.tv_sec < 0 || ts.tv_nsec < 0 || ts.tv_nsec >= 1000000000)
			return -EINVAL;
		dl = km_clock_in(CLOCK_MONOTONIC, km_ts_ns(ts));
		dlp = &dl;
	}
	for (;;) {
		siginfo_t info;
		if (km_signal_take(v, set, &info)) {
			if (a[1] != 0 && km_copy_to_guest(MM(v), a[1], &info, sizeof(info)) < 0)
				return -EFAULT;
			return info.si_signo;
		}
		/* A signal it does not wait for but may take interrupts it: its own, or a process
		 * signal km picked this thread for (a kick). One in `set` another thread took
		 * first: wait on. */
		if (km_signal_pending_own(v) & ~v->sigmask & ~set)
			return -EINTR;
		rc = km_signal_wait(v, set | ~v->sigmask, set, dlp);
		if (rc < 0)
			return rc;
	}
}

/* --- timers: the host's, whose signals km's forwarding thread takes for the guest ----------- */

KM_SYSCALL(alarm)
{
	return alarm((unsigned int)a[0]);
}

KM_SYSCALL(setitimer)
{
	struct itimerval nv, ov;
	if (a[1] != 0 && km_copy_from_guest(MM(v), &nv, a[1], sizeof(nv)) < 0)
		return -EFAULT;
	if (syscall(SYS_setitimer, (int)a[0], a[1] != 0 ? &nv : NULL, &ov) < 0)
		return -errno;
	if (a[2] != 0 && km_copy_to_guest(MM(v), a[2], &ov, sizeof(ov)) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(getitimer)
{
	struct itimerval cur;
	if (syscall(SYS_getitimer, (int)a[0], &cur) < 0)
		return -errno;
	return km_copy_to_guest(MM(v), a[1], &cur, sizeof(cur));
}

/* POSIX timers under km's ids (km_timers.h). */
KM_SYSCALL(timer_create)
{
	km_sigevent_t ev;
	if (a[1] != 0 && km_copy_from_guest(MM(v), &ev, a[1], sizeof(ev)) < 0)
		return -EFAULT;
	int id;
	long rc = km_timer_create(v, (clockid_t)a[0], a[1] != 0 ? &ev : NULL, &id);
	if (rc < 0)
		return rc;
	if (km_copy_to_guest(MM(v), a[2], &id, sizeof(id)) < 0) {
		km_timer_delete(v->g, id);
		return -EFAULT;
	}
	return 0;
}

KM_SYSCALL(timer_settime)
{
	struct itimerspec nv, ov;
	int h = km_timer_host_id(v->g, (int)a[0]);
	if (h < 0)
		return h;
	if (km_copy_from_guest(MM(v), &nv, a[2], sizeof(nv)) < 0)
		return -EFAULT;
	if (syscall(SYS_timer_settime, h, (int)a[1], &nv, &ov) < 0)
		return -errno;
	if (a[3] != 0 && km_copy_to_guest(MM(v), a[3], &ov, sizeof(ov)) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(timer_gettime)
{
	struct itimerspec cur;
	int h = km_timer_host_id(v->g, (int)a[0]);
	if (h < 0)
		return h;
	if (syscall(SYS_timer_gettime, h, &cur) < 0)
		return -errno;
	return km_copy_to_guest(MM(v), a[1], &cur, sizeof(cur));
}

KM_SYSCALL(timer_getoverrun)
{
	int h = km_timer_host_id(v->g, (int)a[0]);
	long r = h < 0 ? h : syscall(SYS_timer_getoverrun, h);
	return r < 0 ? (h < 0 ? h : -errno) : r;
}

KM_SYSCALL(timer_delete)
{
	return km_timer_delete(v->g, (int)a[0]);
}

/* --- signalfd (km_sigfd.h) ----------------------------------------------------------------- */

KM_SYSCALL(signalfd4)
{
	uint64_t mask;
	int rc = get_set(v, a[1], a[2], &mask);
	return rc < 0 ? rc : km_sigfd_create(v, (int)a[0], mask, (int)a[3]);
}

KM_SYSCALL(signalfd)
{
	uint64_t b[4] = {a[0], a[1], a[2], 0};
	return sys_signalfd4(v, b);
}

const km_sys_def_t km_sys_signal_defs[] = {
    {SYS_signalfd, "signalfd", sys_signalfd, "dpu"},
    {SYS_signalfd4, "signalfd4", sys_signalfd4, "dpux"},
    {SYS_rt_sigaction, "rt_sigaction", sys_rt_sigaction, "dppu"},
    {SYS_rt_sigprocmask, "rt_sigprocmask", sys_rt_sigprocmask, "dppu"},
    {SYS_rt_sigpending, "rt_sigpending", sys_rt_sigpending, "pu"},
    {SYS_sigaltstack, "sigaltstack", sys_sigaltstack, "pp"},
    {SYS_rt_sigreturn, "rt_sigreturn", sys_rt_sigreturn, ""},
    {SYS_kill, "kill", sys_kill, "dd"},
    {SYS_tgkill, "tgkill", sys_tgkill, "ddd"},
    {SYS_tkill, "tkill", sys_tkill, "dd"},
    {SYS_rt_sigqueueinfo, "rt_sigqueueinfo", sys_rt_sigqueueinfo, "ddp"},
    {SYS_rt_tgsigqueueinfo, "rt_tgsigqueueinfo", sys_rt_tgsigqueueinfo, "dddp"},
    {SYS_rt_sigsuspend, "rt_sigsuspend", sys_rt_sigsuspend, "pu"},
    {SYS_pause, "pause", sys_pause, ""},
    {SYS_rt_sigtimedwait, "rt_sigtimedwait", sys_rt_sigtimedwait, "pppu"},
    {SYS_alarm, "alarm", sys_alarm, "u"},
    {SYS_setitimer, "setitimer", sys_setitimer, "dpp"},
    {SYS_getitimer, "getitimer", sys_getitimer, "dp"},
    {SYS_timer_create, "timer_create", sys_timer_create, "dpp"},
    {SYS_timer_settime, "timer_settime", sys_timer_settime, "ddpp"},
    {SYS_timer_gettime, "timer_gettime", sys_timer_gettime, "dp"},
    {SYS_timer_getoverrun, "timer_getoverrun", sys_timer_getoverrun, "d"},
    {SYS_timer_delete, "timer_delete", sys_timer_delete, "d"},
    {0, NULL, NULL, NULL},
};
