/* The guest's own signals: sending, pending, delivery, waiting. See km_signal.h. */
#include "km_signal.h"

#include <errno.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_exception.h"
#include "km_sigfd.h"
#include "km_sigframe.h"
#include "km_sigqueue.h"
#include "km_time.h"
#include "km_snapshot.h"

#define BIT(sig) KM_SIGBIT(sig)
#define KM_SS_AUTODISARM (1u << 31)

enum km_sig_default km_sig_default_action(int sig)
{
	switch (sig) {
	case SIGCHLD:
	case SIGCONT:
	case SIGURG:
	case SIGWINCH:
		return KM_SIG_IGNORE;
	case SIGSTOP:
	case SIGTSTP:
	case SIGTTIN:
	case SIGTTOU:
		return KM_SIG_STOP;
	case SIGQUIT:
	case SIGILL:
	case SIGTRAP:
	case SIGABRT:
	case SIGBUS:
	case SIGFPE:
	case SIGSEGV:
	case SIGXCPU:
	case SIGXFSZ:
	case SIGSYS:
		return KM_SIG_CORE;
	default:
		return KM_SIG_TERM;
	}
}

void km_signal_lock(km_guest_t *g)
{
	pthread_mutex_lock(&g->sig_lock);
}

void km_signal_unlock(km_guest_t *g)
{
	pthread_mutex_unlock(&g->sig_lock);
}

/* The disposition makes the signal vanish: SIG_IGN, or SIG_DFL whose action is to ignore, or
 * any SIG_DFL when the guest is a pid namespace's init (SIGKILL never gets here: it ends km). */
static bool ignored(km_guest_t *g, int sig)
{
	uint64_t h = g->sigactions[sig - 1].handler;
	if (h == (uint64_t)(uintptr_t)SIG_IGN)
		return true;
	if (h != (uint64_t)(uintptr_t)SIG_DFL)
		return false;
	return km_sig_default_action(sig) == KM_SIG_IGNORE || (g->unkillable && sig != SIGKILL);
}

km_vcpu_t *km_signal_guest_thread(km_guest_t *g, pid_t tid)
{
	km_vcpu_t *found = NULL;
	pthread_mutex_lock(&g->threads.lock);
	for (int i = 0; i < g->nvcpus && found == NULL; i++)
		if (g->vcpus[i] != NULL && g->vcpus[i]->live && g->vcpus[i]->tid == tid)
			found = g->vcpus[i];
	pthread_mutex_unlock(&g->threads.lock);
	return found;
}

void km_signal_info(km_vcpu_t *from, int sig, int si_code, siginfo_t *info)
{
	memset(info, 0, sizeof(*info));
	info->si_signo = sig;
	info->si_code = si_code;
	info->si_pid = from->g->pid;
	info->si_uid = getuid();
}

/* --- sending ------------------------------------------------------------------------------ */

/* Wakes whoever might take the signal: the thread picked for it, or, when every thread blocks
 * it, all of them (one may be waiting for it in sigtimedwait or on a signalfd). Called without
 * the signal lock. */
static void wake(km_guest_t *g, km_vcpu_t *t)
{
	if (t != NULL)
		km_vcpu_kick(t);
	else
		for (int i = 0; i < KM_MAX_VCPUS; i++) {
			km_vcpu_t *w = __atomic_load_n(&g->vcpus[i], __ATOMIC_ACQUIRE);
			if (w != NULL)
				km_vcpu_wake(w);
		}
	km_signal_forward_poke(g); /* it kicks again if the signal waits too long */
	km_sigfd_sync(g);
}

/* The thread that takes a process signal: the main thread if it does not block it, else any
 * thread that does not. Called with the signal lock held. */
static km_vcpu_t *process_target(km_guest_t *g, int sig)
{
	km_vcpu_t *pick = NULL;
	pthread_mutex_lock(&g->threads.lock);
	for (int i = 0; i < g->nvcpus; i++) {
		km_vcpu_t *v = g->vcpus[i];
		if (v == NULL || !v->live || (v->sigmask & BIT(sig)))
			continue;
		if (pick == NULL || v->tid == g->pid)
			pick = v;
	}
	pthread_mutex_unlock(&g->threads.lock);
	return pick;
}

km_vcpu_t *km_signal_process_taker(km_guest_t *g)
{
	km_signal_lock(g);
	km_vcpu_t *t = NULL;
	for (uint64_t m = g->sigpending.set; m != 0 && t == NULL; m &= m - 1)
		t = process_target(g, __builtin_ctzll(m) + 1);
	km_signal_unlock(g);
	return t;
}

/* A blocked signal is queued even if ignored now: its disposition may change before it is
 * unblocked (as Linux does). */
static bool blocked_anywhere(km_guest_t *g, int sig)
{
	bool any = false;
	pthread_mutex_lock(&g->threads.lock);
	for (int i = 0; i < g->nvcpus && !any; i++)
		any = g->vcpus[i] != NULL && g->vcpus[i]->live && (g->vcpus[i]->sigmask & BIT(sig));
	pthread_mutex_unlock(&g->threads.lock);
	return any;
}

/* SIGKILL cannot be caught, blocked or queued: the guest ends at once. */
static bool send_kill(km_guest_t *g, int sig)
{
	if (sig != SIGKILL)
		return false;
	km_guest_end(g, 0, SIGKILL);
	return true;
}

int km_signal_send_process(km_guest_t *g, const siginfo_t *info)
{
	int sig = info->si_signo;
	if (sig < 1 || sig > KM_NSIG)
		return -EINVAL;
	if (send_kill(g, sig))
		return 0;
	km_signal_lock(g);
	if (ignored(g, sig) && !blocked_anywhere(g, sig)) {
		km_signal_unlock(g);
		return 0;
	}
	int rc = km_sigqueue_add(&g->sigpending, info);
	km_vcpu_t *t = rc >= 0 ? process_target(g, sig) : NULL;
	km_signal_unlock(g);
	if (rc < 0)
		return rc == -ENOMEM ? -EAGAIN : rc;
	wake(g, t);
	return 0;
}

int km_signal_send_thread(km_vcpu_t *t, const siginfo_t *info)
{
	km_guest_t *g = t->g;
	int sig = info->si_signo;
	if (sig < 1 || sig > KM_NSIG)
		return -EINVAL;
	if (send_kill(g, sig))
		return 0;
	km_signal_lock(g);
	if (ignored(g, sig) && !(t->sigmask & BIT(sig))) {
		km_signal_unlock(g);
		return 0;
	}
	int rc = km_sigqueue_add(&t->sigpending, info);
	bool now = !(t->sigmask & BIT(sig));
	km_signal_unlock(g);
	if (rc < 0)
		return rc == -ENOMEM ? -EAGAIN : rc;
	if (now) {
		wake(g, t);
	} else {
		km_vcpu_wake(t); /* it may wait for it (sigtimedwait, signalfd) */
		km_sigfd_sync(g);
	}
	return 0;
}

void km_signal_raise(km_vcpu_t *v, int sig)
{
	siginfo_t info;
	km_signal_info(v, sig, SI_KERNEL, &info);
	if (sig == SIGPIPE || sig == SIGXFSZ)
		info.si_code = SI_USER; /* what Linux's send_sig gives these */
	km_signal_send_thread(v, &info);
}

void km_signal_force(km_vcpu_t *v, const siginfo_t *info)
{
	km_guest_t *g = v->g;
	int sig = info->si_signo;
	if (sig < 1 || sig > KM_NSIG)
		return;
	km_signal_lock(g);
	/* Linux's force_sig_info: a blocked or ignored signal cannot be dodged; it kills. */
	if ((v->sigmask & BIT(sig)) || ignored(g, sig)) {
		g->sigactions[sig - 1].handler = (uint64_t)(uintptr_t)SIG_DFL;
		v->sigmask &= ~BIT(sig);
		if (v->restore_sigmask)
			v->saved_sigmask &= ~BIT(sig);
	}
	if (g->sigactions[sig - 1].handler == (uint64_t)(uintptr_t)SIG_DFL)
		g->unkillable = false; /* a forced signal at its default action kills even an init */
	km_signal_unlock(g);
	km_signal_send_thread(v, info);
}

void km_signal_discard_ignored(km_guest_t *g, int sig)
{
	/* Called with the signal lock held, by rt_sigaction. */
	if (!ignored(g, sig))
		return;
	km_sigqueue_discard(&g->sigpending, BIT(sig));
	pthread_mutex_lock(&g->threads.lock);
	for (int i = 0; i < g->nvcpus; i++)
		if (g->vcpus[i] != NULL)
			km_sigqueue_discard(&g->vcpus[i]->sigpending, BIT(sig));
	pthread_mutex_unlock(&g->threads.lock);
}

/* --- pending ------------------------------------------------------------------------------ */

uint64_t km_signal_pending_set(km_vcpu_t *v)
{
	km_signal_lock(v->g);
	uint64_t set = v->sigpending.set | v->g->sigpending.set;
	km_signal_unlock(v->g);
	return set;
}

uint64_t km_signal_pending_own(km_vcpu_t *v)
{
	km_signal_lock(v->g);
	uint64_t set = v->sigpending.set;
	km_signal_unlock(v->g);
	return set;
}

bool km_signal_deliverable(km_vcpu_t *v)
{
	/* On every return to the program: no lock. The sets change under the signal lock; a signal
	 * posted just after this look kicks the thread, and delivery itself takes the lock. */
	uint64_t pending = __atomic_load_n(&v->sigpending.set, __ATOMIC_ACQUIRE) |
			   __atomic_load_n(&v->g->sigpending.set, __ATOMIC_ACQUIRE);
	return (pending & ~__atomic_load_n(&v->sigmask, __ATOMIC_RELAXED)) != 0;
}

/* The signal the thread would take next (0: none). Called with the signal lock held. */
static int next_signal(km_vcpu_t *v)
{
	uint64_t allowed = ~v->sigmask;
	uint64_t own = v->sigpending.set & allowed, shared = v->g->sigpending.set & allowed;
	uint64_t m = own ? own : shared;
	return m ? __builtin_ctzll(m) + 1 : 0;
}

/* Calls that end with EINTR after a handler whatever SA_RESTART says (Linux's ERESTARTNOHAND
 * and the sleeps), and the waits for signals themselves. */
static bool never_restarts(long nr)
{
	switch (nr) {
	case SYS_pause:
	case SYS_rt_sigsuspend:
	case SYS_rt_sigtimedwait:
	case SYS_select:
	case SYS_pselect6:
	case SYS_poll:
	case SYS_ppoll:
	case SYS_epoll_wait:
	case SYS_epoll_pwait:
	case SYS_epoll_pwait2:
	case SYS_nanosleep:
	case SYS_clock_nanosleep:
	case SYS_io_getevents:
	case SYS_msgrcv:
	case SYS_msgsnd:
	case SYS_semop:
	case SYS_semtimedop:
		return true;
	default:
		return false;
	}
}

bool km_signal_interrupts(km_vcpu_t *v, long nr)
{
	km_guest_t *g = v->g;
	km_signal_lock(g);
	int sig = next_signal(v);
	bool intr = false;
	if (sig != 0 && !ignored(g, sig)) {
		const km_sigaction_t *sa = &g->sigactions[sig - 1];
		if (sa->handler == (uint64_t)(uintptr_t)SIG_DFL)
			intr = km_sig_default_action(sig) != KM_SIG_STOP; /* the guest ends anyway */
		else
			intr = never_restarts(nr) || !(sa->flags & SA_RESTART);
	}
	km_signal_unlock(g);
	return intr;
}

bool km_signal_take(km_vcpu_t *v, uint64_t set, siginfo_t *info)
{
	km_signal_lock(v->g);
	bool got = km_sigqueue_take(&v->sigpending, set, info) || km_sigqueue_take(&v->g->sigpending, set, info);
	km_signal_unlock(v->g);
	if (got)
		km_sigfd_sync(v->g);
	return got;
}

/* --- delivery ----------------------------------------------------------------------------- */

/* The guest dies of sig at *u (a core first if its default action dumps one). */
static bool die_of(km_vcpu_t *v, const struct kvm_regs *u, int sig, uint64_t addr)
{
	km_guest_kill(v, sig, u->rip, addr);
	if (km_sig_default_action(sig) == KM_SIG_CORE)
		km_core_dump(v, u, sig);
	return true;
}

/* A job-control stop: the whole of km stops, as the guest's process would; SIGCONT from
 * outside continues it. */
static void stop_self(void)
{
	kill(getpid(), SIGSTOP);
}

/* The handler starts with the FPU as a new program has it (Linux clears it for handlers). */
static void reset_fpu(km_vcpu_t *v)
{
	struct kvm_xsave x; /* 4 KiB: on the stack, no allocation that could fail here */
	memset(&x, 0, sizeof(x));
	uint16_t fcw = 0x37f;
	uint32_t mxcsr = 0x1f80;
	memcpy((uint8_t *)x.region, &fcw, sizeof(fcw));
	memcpy((uint8_t *)x.region + 24, &mxcsr, sizeof(mxcsr));
	ioctl(v->fd, KVM_SET_XSAVE, &x);
}

/* Builds the frame for handler `sa` and points *u at it. Called with the signal lock held.
 * Returns false if the frame could not be written (the caller kills the guest). */
static bool run_handler(km_vcpu_t *v, struct kvm_regs *u, const siginfo_t *info, int trapno, uint64_t err,
			uint64_t cr2)
{
	km_guest_t *g = v->g;
	int sig = info->si_signo;
	km_sigaction_t *sa = &g->sigactions[sig - 1];
	struct kvm_xsave x;
	if (ioctl(v->fd, KVM_GET_XSAVE, &x) < 0)
		return false;
	km_sigframe_in_t in = {
	    .regs = *u,
	    .xsave = x.region,
	    .xsave_size = g->machine.xsave_size,
	    .xcr0 = g->machine.xcr0,
	    .info = info,
	    .handler = sa->handler,
	    .sa_flags = sa->flags,
	    .restorer = sa->restorer,
	    .saved_mask = v->restore_sigmask ? v->saved_sigmask : v->sigmask,
	    .altstack = v->altstack,
	    .trapno = (uint64_t)trapno,
	    .err = err,
	    .cr2 = cr2,
	};
	km_sigframe_out_t out;
	int rc = km_sigframe_build(&g->mm, &in, &out);
	if (rc < 0)
		return false;
	*u = out.regs;
	v->altstack = out.altstack_after;
	v->restore_sigmask = false;
	uint64_t mask = in.saved_mask | sa->mask;
	if (!(sa->flags & SA_NODEFER))
		mask |= BIT(sig);
	v->sigmask = mask & ~KM_SIG_UNBLOCKABLE;
	if (sa->flags & SA_RESETHAND) {
		sa->handler = (uint64_t)(uintptr_t)SIG_DFL;
		sa->flags &= ~(uint64_t)SA_SIGINFO;
	}
	reset_fpu(v);
	return true;
}

bool km_signal_deliver(km_vcpu_t *v, struct kvm_regs *u)
{
	km_guest_t *g = v->g;
	siginfo_t info;
	km_signal_lock(g);
	for (;;) {
		uint64_t allowed = ~v->sigmask;
		if (!km_sigqueue_take(&v->sigpending, allowed, &info) &&
		    !km_sigqueue_take(&g->sigpending, allowed, &info))
			break;
		int sig = info.si_signo;
		const km_sigaction_t *sa = &g->sigactions[sig - 1];
		if (ignored(g, sig))
			continue;
		if (sa->handler == (uint64_t)(uintptr_t)SIG_DFL) {
			if (km_sig_default_action(sig) == KM_SIG_STOP) {
				km_signal_unlock(g);
				stop_self();
				km_signal_lock(g);
				continue;
			}
			km_signal_unlock(g);
			return die_of(v, u, sig, 0);
		}
		if (!run_handler(v, u, &info, 0, 0, 0)) {
			km_signal_unlock(g);
			return die_of(v, u, SIGSEGV, 0);
		}
		km_signal_unlock(g);
		km_sigfd_sync(g);
		return false;
	}
	if (v->restore_sigmask) {
		v->sigmask = v->saved_sigmask;
		v->restore_sigmask = false;
	}
	km_signal_unlock(g);
	km_sigfd_sync(g);
	return false;
}

bool km_signal_fault(km_vcpu_t *v, struct kvm_regs *u, int sig, int si_code, uint64_t addr, int trapno,
		     uint64_t err)
{
	km_guest_t *g = v->g;
	km_signal_lock(g);
	const km_sigaction_t *sa = &g->sigactions[sig - 1];
	bool catchable = sa->handler != (uint64_t)(uintptr_t)SIG_DFL && sa->handler != (uint64_t)(uintptr_t)SIG_IGN &&
			 !(v->sigmask & BIT(sig));
	if (!catchable) {
		km_signal_unlock(g);
		return die_of(v, u, sig, addr);
	}
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	info.si_signo = sig;
	info.si_code = si_code;
	info.si_addr = (void *)(uintptr_t)addr;
	bool ok = run_handler(v, u, &info, trapno, err, sig == SIGSEGV || sig == SIGBUS ? addr : 0);
	km_signal_unlock(g);
	return ok ? false : die_of(v, u, SIGSEGV, addr);
}

/* As sigaltstack(2) would set it from uc_stack, refusals ignored (Linux does the same). */
static void restore_altstack(km_vcpu_t *v, const stack_t *ss)
{
	uint64_t sp = v->user.rsp, base = (uint64_t)(uintptr_t)v->altstack.ss_sp;
	bool on = v->altstack.ss_size != 0 && sp - base < v->altstack.ss_size;
	if (on)
		return;
	if (ss->ss_flags & SS_DISABLE) {
		memset(&v->altstack, 0, sizeof(v->altstack));
		v->altstack.ss_flags = SS_DISABLE;
	} else if ((ss->ss_flags & ~(int)KM_SS_AUTODISARM) == 0 && ss->ss_size >= (size_t)KM_MINSIGSTKSZ) {
		v->altstack = *ss;
	}
}

long km_signal_sigreturn(km_vcpu_t *v)
{
	km_guest_t *g = v->g;
	struct kvm_xsave x;
	km_sigframe_ret_t ret;
	memset(&x, 0, sizeof(x));
	if (km_sigframe_read(&g->mm, v->user.rsp, g->machine.xcr0, x.region, g->machine.xsave_size, &ret) < 0) {
		/* Linux forces SIGSEGV (SI_KERNEL): a handler for it runs, as for any fault. */
		km_signal_fault(v, &v->user, SIGSEGV, SI_KERNEL, 0, 13, 0);
		return 0;
	}
	if (ret.fpu_valid)
		ioctl(v->fd, KVM_SET_XSAVE, &x);
	else
		reset_fpu(v);
	v->user = ret.regs;
	restore_altstack(v, &ret.altstack);
	km_signal_lock(g);
	v->sigmask = ret.mask & ~KM_SIG_UNBLOCKABLE;
	v->restore_sigmask = false;
	km_signal_unlock(g);
	return (long)ret.regs.rax;
}

/* --- waiting ------------------------------------------------------------------------------ */

int km_signal_call_mask(km_vcpu_t *v, uint64_t mask)
{
	km_signal_lock(v->g);
	if (!v->restore_sigmask) {
		v->saved_sigmask = v->sigmask;
		v->restore_sigmask = true;
	}
	v->sigmask = mask & ~KM_SIG_UNBLOCKABLE;
	bool now = ((v->sigpending.set | v->g->sigpending.set) & ~v->sigmask) != 0;
	km_signal_unlock(v->g);
	return now ? -EINTR : 0;
}

/* True if a signal in own (pending for v's thread) or shared (for the process) is pending. */
static bool pending_in(km_vcpu_t *v, uint64_t own, uint64_t shared)
{
	km_signal_lock(v->g);
	bool any = (v->sigpending.set & own) || (v->g->sigpending.set & shared);
	km_signal_unlock(v->g);
	return any;
}

int km_signal_wait(km_vcpu_t *v, uint64_t own, uint64_t shared, const struct timespec *deadline)
{
	for (;;) {
		uint32_t seq = __atomic_load_n(&v->wake_seq, __ATOMIC_ACQUIRE);
		if (pending_in(v, own, shared))
			return 0;
		if (atomic_load(&v->kicked) || km_guest_ended(v->g) || km_stopall_pending(v->g))
			return -KM_ERESTART;
		struct timespec left, *lp = NULL;
		if (deadline != NULL) {
			struct timespec now;
			clock_gettime(CLOCK_MONOTONIC, &now);
			int64_t ns = km_ts_diff_ns(*deadline, now);
			if (ns < 0)
				return -EAGAIN;
			left = km_ns_ts((uint64_t)ns);
			lp = &left;
		}
		/* A kick or a signal posted after the load above changes wake_seq: no lost wakeup. */
		syscall(SYS_futex, &v->wake_seq, FUTEX_WAIT_PRIVATE, seq, lp, NULL, 0);
	}
}
