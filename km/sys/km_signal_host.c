/* km's side of signals facing the host: signals from outside forwarded to the guest, signals the
 * guest sends to other processes, and the limits the host enforces. See km_signal.h. */
#include "km_signal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_machine.h"
#include "km_snapshot_lease.h"
#include "km_snapshot_live.h"
#include "km_timers.h"

#define BIT(sig) (1ull << ((sig) - 1))

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
	long r = -ESRCH; /* km itself, one of its threads or its snapshot writer: not in the guest's world */
	if (tgid != getpid() && !km_live_is_writer(tgid)) {
		if (info != NULL)
			info->si_signo = sig;
		r = syscall(SYS_pidfd_send_signal, pfd, sig, info, 0) < 0 ? -errno : 0;
	}
	close(pfd);
	return r;
}

/* --- signals from outside ----------------------------------------------------------------- */

/* What the forwarding thread takes for the guest: everything but what km needs for itself
 * (SIGKILL and SIGSTOP cannot be taken; the kick and the lease's signal; SIGSYS, the seccomp reporter; the faults km's
 * guarded copies catch; SIGXCPU and SIGXFSZ, handled below; SIGPIPE, which km ignores so that
 * the guest's EPIPE decides). The kernel ABI's 8-byte set, so that glibc's own signals 32 and
 * 33 can be forwarded too: km never uses cancellation or setxid. */
static uint64_t forwarded_mask(void)
{
	uint64_t keep = BIT(SIGKILL) | BIT(SIGSTOP) | BIT(KM_SIG_KICK) | BIT(KM_SIG_LEASE) | BIT(SIGSYS) | BIT(SIGSEGV) | BIT(SIGBUS) |
			BIT(SIGFPE) | BIT(SIGILL) | BIT(SIGTRAP) | BIT(SIGXCPU) | BIT(SIGXFSZ) | BIT(SIGPIPE);
	return ~keep;
}

bool km_signal_host_forwarded(int sig)
{
	return sig >= 1 && sig <= 64 && (forwarded_mask() & BIT(sig)) != 0;
}

void km_signal_host_sigchld(const km_sigaction_t *sa)
{
	struct sigaction h;
	memset(&h, 0, sizeof(h));
	h.sa_handler = sa->handler == (uint64_t)(uintptr_t)SIG_IGN ? SIG_IGN : SIG_DFL;
	h.sa_flags = (int)(sa->flags & (SA_NOCLDWAIT | SA_NOCLDSTOP));
	sigemptyset(&h.sa_mask);
	sigaction(SIGCHLD, &h, NULL);
}

/* The signal km sends its own forwarding thread to make it look again (never forwarded: its
 * sender is km itself, by tgkill). */
#define POKE_SIG SIGURG

static bool is_poke(const siginfo_t *info)
{
	return info->si_signo == POKE_SIG && info->si_code == SI_TKILL && info->si_pid == getpid();
}

/* A host POSIX timer's signal carries the guest's timer id and goes where the guest asked
 * (SIGEV_THREAD_ID); anything else is the process's. */
static void forward(km_guest_t *g, siginfo_t *info)
{
	pid_t tid;
	if (!km_timer_translate(g, info, &tid))
		return; /* a timer deleted since it fired */
	km_vcpu_t *t = tid != 0 ? km_signal_guest_thread(g, tid) : NULL;
	if (t != NULL)
		km_signal_send_thread(t, info);
	else
		km_signal_send_process(g, info);
}

/* Kicks again the threads that have a signal to take: one that landed before its thread
 * blocked in a host syscall, or while it was in km's stubs, did not get it there. Each thread
 * for its own signals; for the process's, only the thread km picks (as the first kick did), so
 * that a thread waiting for other signals is not interrupted by one another thread takes. True
 * if any signal waits. */
static bool rekick(km_guest_t *g)
{
	bool any = false;
	for (int i = 0; i < KM_MAX_VCPUS; i++) {
		km_vcpu_t *v = __atomic_load_n(&g->vcpus[i], __ATOMIC_ACQUIRE);
		if (v == NULL || !__atomic_load_n(&v->live, __ATOMIC_ACQUIRE))
			continue;
		if (km_signal_pending_own(v) & ~__atomic_load_n(&v->sigmask, __ATOMIC_RELAXED)) {
			km_vcpu_kick(v);
			any = true;
		}
	}
	km_vcpu_t *t = km_signal_process_taker(g);
	if (t != NULL) {
		km_vcpu_kick(t);
		any = true;
	}
	return any;
}

#define REKICK_NS 5000000l /* 5 ms */

/* glibc's set*id broadcast (SIGSETXID, 33, sent by km's own thread that runs a guest's set*id
 * call, km_sys_proc.c): this thread waits for 33 too (the guest's), so it takes the signal from
 * the wait and sends it to itself again, unblocked, for glibc's handler to run here. */
#define HOST_SIGSETXID 33

static bool is_setxid(const siginfo_t *info)
{
	return info->si_signo == HOST_SIGSETXID && info->si_code == SI_TKILL && info->si_pid == getpid();
}

static void *forward_main(void *arg)
{
	km_guest_t *g = arg;
	uint64_t mask = forwarded_mask();
	bool waiting = false;
	__atomic_store_n(&g->sigfwd_tid, gettid(), __ATOMIC_RELEASE);
	syscall(SYS_futex, &g->sigfwd_tid, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	uint64_t setxid = BIT(HOST_SIGSETXID); /* raw: glibc's sigprocmask leaves 33 alone */
	syscall(SYS_rt_sigprocmask, SIG_UNBLOCK, &setxid, NULL, sizeof(setxid));
	while (!__atomic_load_n(&g->sigfwd_stop, __ATOMIC_ACQUIRE)) {
		siginfo_t info;
		struct timespec ts = {0, REKICK_NS};
		long sig = syscall(SYS_rt_sigtimedwait, &mask, &info, waiting ? &ts : NULL, sizeof(mask));
		if (__atomic_load_n(&g->sigfwd_stop, __ATOMIC_ACQUIRE))
			break;
		if (sig > 0 && is_setxid(&info))
			syscall(SYS_tgkill, getpid(), gettid(), HOST_SIGSETXID);
		else if (sig > 0 && !is_poke(&info))
			forward(g, &info);
		waiting = rekick(g);
	}
	return NULL;
}

int km_signal_forward_start(km_guest_t *g, km_err_t **err)
{
	sigset_t old;
	km_signal_host_block(&old); /* SIGXCPU goes to a vCPU thread */
	int rc = pthread_create(&g->sigfwd_thread, NULL, forward_main, g);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return km_err_set(err, rc, "starting the thread that forwards signals to the program");
	g->sigfwd_running = true;
	/* A resumed guest's SIGCHLD disposition (a forked child's is already the host's). */
	km_signal_host_sigchld(&g->sigactions[SIGCHLD - 1]);
	/* Timers created right away aim at its thread id: wait until it is known. A futex, not a
	 * yield loop: with the other core busy, yielding cost 0.4-1.2 ms of every start. */
	while (__atomic_load_n(&g->sigfwd_tid, __ATOMIC_ACQUIRE) == 0)
		syscall(SYS_futex, &g->sigfwd_tid, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
	km_timers_resume(g);
	return 0;
}

void km_signal_forward_poke(km_guest_t *g)
{
	if (__atomic_load_n(&g->sigfwd_running, __ATOMIC_ACQUIRE))
		pthread_kill(g->sigfwd_thread, POKE_SIG);
}

void km_signal_forward_stop(km_guest_t *g)
{
	if (!g->sigfwd_running)
		return;
	__atomic_store_n(&g->sigfwd_stop, true, __ATOMIC_RELEASE);
	pthread_kill(g->sigfwd_thread, POKE_SIG);
	pthread_join(g->sigfwd_thread, NULL);
	__atomic_store_n(&g->sigfwd_running, false, __ATOMIC_RELEASE);
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
	/* Raw: glibc's sigprocmask will not block 32 and 33. */
	uint64_t mask = forwarded_mask();
	syscall(SYS_rt_sigprocmask, SIG_BLOCK, &mask, NULL, sizeof(mask));
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

static void post_xcpu(km_vcpu_t *v)
{
	if (!xcpu_pending)
		return;
	xcpu_pending = 0;
	siginfo_t info;
	km_signal_info(v, SIGXCPU, SI_KERNEL, &info);
	km_signal_send_process(v->g, &info);
}

void km_signal_syscall_end(km_vcpu_t *v, long ret)
{
	bool xfsz = xfsz_seen && ret == -EFBIG;
	xfsz_seen = 0;
	if (xfsz)
		km_signal_raise(v, SIGXFSZ);
	post_xcpu(v);
}

void km_signal_host_deliver(km_vcpu_t *v)
{
	post_xcpu(v);
}
