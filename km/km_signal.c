/* Guest signal dispositions and default actions: see km_signal.h. */
#include "km_signal.h"

#include <signal.h>

#include "km_exception.h"
#include "km_guest.h"
#include "km_snapshot.h"

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

bool km_signal_raise(km_vcpu_t *v, int sig)
{
	if (sig <= 0 || sig > KM_NSIG)
		return false;
	km_sigaction_t *sa = &v->g->sigactions[sig - 1];
	bool catchable = sig != SIGKILL && sig != SIGSTOP;
	if (catchable && sa->handler == (uint64_t)(uintptr_t)SIG_IGN)
		return false;
	/* A blocked signal would stay pending until unblocked; pending sets come with the signals
	 * work, so for now it is not delivered at all. */
	if (catchable && (v->sigmask & (1ull << (sig - 1))))
		return false;
	enum km_sig_default act = km_sig_default_action(sig);
	if (act == KM_SIG_IGNORE || act == KM_SIG_STOP)
		return false; /* job control stops need a parent that can continue us: not yet */
	/* A handler would run here once delivery exists (signals issue); until then the default
	 * action is the honest outcome rather than silently dropping the signal. */
	km_guest_kill(v, sig, v->user.rip, 0);
	if (act == KM_SIG_CORE)
		km_core_dump(v, &v->user, sig); /* raised by a syscall: where the program made it */
	return true;
}
