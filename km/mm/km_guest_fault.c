/* Recovery from faults on guest memory touched by km: see km_guest_fault.h. */
#include "km_guest_fault.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

/* One guarded access on this thread's stack; the innermost is `cur`. */
typedef struct guard {
	sigjmp_buf env;
	uintptr_t lo;
	size_t len;
	struct guard *prev;
} guard_t;

/* volatile: the handler reads it between any two instructions of the guarded code. */
static __thread guard_t *volatile cur;

static struct sigaction before_bus, before_segv;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_errno;

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
	(void)uctx;
	/* si_code <= 0: sent by someone (kill, tgkill), not a fault of this thread's access. */
	if (si->si_code > 0) {
		uintptr_t a = (uintptr_t)si->si_addr;
		for (guard_t *g = cur; g != NULL; g = g->prev)
			if (a - g->lo < g->len)
				siglongjmp(g->env, 1); /* the mask is untouched: SA_NODEFER left it so */
	}
	/* Not ours: put back what was there and let it act. A fault re-executes and gets that action
	 * (for km's own bugs, the default crash with a core); a sent signal is raised again. */
	sigaction(sig, sig == SIGBUS ? &before_bus : &before_segv, NULL);
	if (si->si_code <= 0)
		raise(sig);
}

static void install(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	/* SA_NODEFER: leaving the handler by siglongjmp(env, savemask 0) must not leave the signal
	 * blocked, and saving the mask at every guard would cost a host syscall per copy. */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, &before_bus) < 0 || sigaction(SIGSEGV, &sa, &before_segv) < 0)
		init_errno = errno;
}

int km_guest_fault_init(km_err_t **err)
{
	pthread_once(&once, install);
	if (init_errno != 0)
		return km_err_set(err, init_errno, "installing km's handler for faults on guest memory");
	return 0;
}

int km_guest_fault_run(const void *lo, size_t len, void (*fn)(void *), void *arg)
{
	guard_t g = {.lo = (uintptr_t)lo, .len = len, .prev = cur};
	if (sigsetjmp(g.env, 0) != 0) {
		cur = g.prev;
		return -EFAULT;
	}
	cur = &g;
	/* Keep the guarded accesses between the two stores to `cur`, as the handler sees them. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	fn(arg);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	cur = g.prev;
	return 0;
}

typedef struct copy {
	void *dst;
	const void *src;
	size_t n;
} copy_t;

static void do_copy(void *arg)
{
	copy_t *c = arg;
	memcpy(c->dst, c->src, c->n);
}

int km_guest_memcpy(void *dst, const void *src, size_t n, const void *lo, size_t len)
{
	copy_t c = {dst, src, n};
	return km_guest_fault_run(lo, len, do_copy, &c);
}

typedef struct zero_scan {
	const uint8_t *p;
	size_t n;
	bool zero;
} zero_scan_t;

bool km_mem_is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	size_t i = 0;
	/* Eight words at a time: the snapshot writer scans every touched page of the guest. */
	for (; i + 64 <= n; i += 64) {
		uint64_t w[8];
		memcpy(w, b + i, sizeof(w));
		if ((w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) != 0)
			return false;
	}
	for (; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static void do_scan(void *arg)
{
	zero_scan_t *z = arg;
	z->zero = km_mem_is_zero(z->p, z->n);
}

int km_guest_is_zero(const void *p, size_t n, bool *zero)
{
	zero_scan_t z = {p, n, false};
	int rc = km_guest_fault_run(p, n, do_scan, &z);
	if (rc == 0)
		*zero = z.zero;
	return rc;
}
