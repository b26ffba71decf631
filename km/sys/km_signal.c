/* Guest signal dispositions and default actions: see km_signal.h. */
#include "km_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

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

km_vcpu_t *km_signal_guest_thread(km_guest_t *g, pid_t tid)
{
	for (int i = 0; i < g->nvcpus; i++)
		if (g->vcpus[i] != NULL && g->vcpus[i]->tid == tid)
			return g->vcpus[i];
	return NULL;
}

pid_t km_signal_host_tgid(pid_t tid)
{
	char path[64], buf[512];
	if (tid <= 0)
		return -ESRCH;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	int fd = km_fd_reserve(open(path, O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return errno == EACCES ? -EPERM : -ESRCH; /* hidepid: someone else's, as kill would say */
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -ESRCH;
	buf[n] = '\0';
	const char *t = strstr(buf, "\nTgid:");
	return t != NULL ? (pid_t)strtol(t + 6, NULL, 10) : -ESRCH;
}

/* A pidfd for the process that pid (a process or any of its threads) belongs to, or -errno. */
static int process_pidfd(pid_t pid, pid_t *tgid)
{
	*tgid = pid;
	int pfd = km_fd_reserve((int)syscall(SYS_pidfd_open, pid, 0));
	if (pfd >= 0 || (errno != EINVAL && errno != ENOENT))
		return pfd >= 0 ? pfd : -errno;
	/* A thread that does not lead its process (EINVAL before Linux 6.9, ENOENT since), or no
	 * such task: only then is /proc read. */
	*tgid = km_signal_host_tgid(pid);
	if (*tgid < 0)
		return *tgid;
	pfd = km_fd_reserve((int)syscall(SYS_pidfd_open, *tgid, 0));
	return pfd >= 0 ? pfd : -errno;
}

long km_signal_host_process(pid_t pid, int sig, siginfo_t *info)
{
	/* A pidfd names one process for good: unlike kill(), it cannot reach a thread of km that
	 * took the number after it was looked up. */
	pid_t tgid;
	int pfd = process_pidfd(pid, &tgid);
	if (pfd < 0)
		return pfd;
	long r = -ESRCH; /* km itself, or one of its threads: not in the guest's world */
	if (tgid != getpid()) {
		if (info != NULL)
			info->si_signo = sig;
		r = syscall(SYS_pidfd_send_signal, pfd, sig, info, 0) < 0 ? -errno : 0;
	}
	close(pfd);
	return r;
}

/* --- signals the kernel sends km about limits applied on the host ------------------------ */

static volatile sig_atomic_t xcpu_pending;	 /* SIGXCPU: the process is past RLIMIT_CPU */
static __thread volatile sig_atomic_t xfsz_seen; /* SIGXFSZ: this thread wrote past RLIMIT_FSIZE */

static void host_limit_handler(int sig)
{
	if (sig == SIGXFSZ) {
		xfsz_seen = 1;
		return;
	}
	xcpu_pending = 1;
	/* Makes the vCPU leave KVM_RUN even if the signal came between two entries. */
	int saved = errno;
	raise(KM_SIG_KICK);
	errno = saved;
}

void km_signal_host_init(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = host_limit_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART; /* the kernel restarts what it interrupted; the kick decides */
	sigaction(SIGXCPU, &sa, NULL);
	sigaction(SIGXFSZ, &sa, NULL);
}

void km_signal_host_block(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGXCPU);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

void km_signal_syscall_begin(void)
{
	xfsz_seen = 0;
}

bool km_signal_syscall_end(km_vcpu_t *v, long ret)
{
	bool xfsz = xfsz_seen && ret == -EFBIG;
	xfsz_seen = 0;
	if (xfsz && km_signal_raise(v, SIGXFSZ))
		return true;
	if (xcpu_pending) {
		xcpu_pending = 0;
		return km_signal_raise(v, SIGXCPU);
	}
	return false;
}

bool km_signal_host_deliver(km_vcpu_t *v)
{
	if (!xcpu_pending)
		return false;
	struct kvm_regs r;
	/* Only where the program itself stopped; in km's stubs the next syscall exit takes it. */
	if (!km_vcpu_stopped_in_program(v, &r))
		return false;
	xcpu_pending = 0;
	v->user = r;
	return km_signal_raise(v, SIGXCPU);
}
