/*
 * syscall_path MODE: what km's two syscall paths (--syscall-path=exit|poll) must both do exactly
 * as Linux does. tests/e2e/syscall_path.sh runs each mode under both paths; run.sh's guest runs
 * compare them with a native run (under km's default path).
 *   getppid N      N getppid calls all give what the first gave
 *   pingpong N     two threads pass a byte back and forth over two pipes N times
 *   sigread-restart  a read blocked on an empty pipe is hit by SIGUSR1 (SA_RESTART) again and
 *                  again, then data comes: the read returns the data, never EINTR
 *   sigread-intr   the same without SA_RESTART: the read ends with EINTR
 *   exitgroup      a thread calls exit_group(7) while the main thread blocks in read
 *   singlestep N   N times a getppid made with TF set (the program single-steps itself): the
 *                  trap comes just after the syscall, never inside km's stub, and the call's
 *                  result is right
 */
// E2E: getppid 0 getppid 2000
// E2E: pingpong 0 pingpong 500
// E2E: sigread-restart 0 sigread-restart
// E2E: sigread-intr 0 sigread-intr
// E2E: exitgroup 7 exitgroup
// E2E: singlestep 0 singlestep 20
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>

#include "check.h"

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int mode_getppid(long n)
{
	long first = syscall(SYS_getppid), same = 0;
	for (long i = 0; i < n; i++)
		same += syscall(SYS_getppid) == first;
	CHECK(same == n, "getppid: %ld calls gave the same parent", n);
	return 0;
}

static int ping[2], pong[2];
static long rounds;

static void *ponger(void *arg)
{
	(void)arg;
	char c;
	for (long i = 0; i < rounds; i++) {
		if (read(ping[0], &c, 1) != 1)
			return (void *)1;
		c++;
		if (write(pong[1], &c, 1) != 1)
			return (void *)1;
	}
	return NULL;
}

static int mode_pingpong(long n)
{
	rounds = n;
	CHECK_SYS(pipe(ping), "pipe");
	CHECK_SYS(pipe(pong), "pipe");
	pthread_t t;
	CHECK(pthread_create(&t, NULL, ponger, NULL) == 0, "pthread_create");
	long good = 0;
	for (long i = 0; i < n; i++) {
		char c = (char)i, r = 0;
		if (write(ping[1], &c, 1) == 1 && read(pong[0], &r, 1) == 1 && r == (char)(c + 1))
			good++;
	}
	void *res;
	pthread_join(t, &res);
	CHECK(good == n && res == NULL, "pingpong: %ld round trips, each byte back plus one", n);
	return 0;
}

static atomic_int handled, read_done;
static pthread_t reader;
static int sigpipe_fds[2];

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&handled, 1);
}

/* Keeps hitting the reader with SIGUSR1 until it has taken a few (so at least one lands while it
 * is blocked: each lands in the read, or before it, and the read still blocks then); with data,
 * writes it after them. */
static void *signaller(void *arg)
{
	bool with_data = arg != NULL;
	while (!atomic_load(&read_done) && atomic_load(&handled) < 5) {
		pthread_kill(reader, SIGUSR1);
		nap_ms(20);
	}
	if (with_data) {
		if (write(sigpipe_fds[1], "x", 1) != 1)
			return (void *)1;
	} else {
		while (!atomic_load(&read_done)) {
			pthread_kill(reader, SIGUSR1);
			nap_ms(20);
		}
	}
	return NULL;
}

static int mode_sigread(bool restart)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = restart ? SA_RESTART : 0;
	CHECK_SYS(sigaction(SIGUSR1, &sa, NULL), "sigaction");
	CHECK_SYS(pipe(sigpipe_fds), "pipe");
	reader = pthread_self();
	pthread_t t;
	CHECK(pthread_create(&t, NULL, signaller, restart ? (void *)1 : NULL) == 0, "pthread_create");
	char c = 0;
	long r;
	int e;
	if (restart) {
		/* Without SA_RESTART semantics a handler's signal would end it: wait for data only. */
		r = read(sigpipe_fds[0], &c, 1);
		e = errno;
		atomic_store(&read_done, 1);
		CHECK(r == 1 && c == 'x', "SA_RESTART: the read went on through the signals and got the data (r=%ld errno=%d)",
		      r, r < 0 ? e : 0);
	} else {
		/* A signal that lands before the read blocks runs its handler first; the read
		 * after it blocks, and a later one must end it. */
		do {
			r = read(sigpipe_fds[0], &c, 1);
			e = errno;
		} while (r < 0 && e == EINTR && atomic_load(&handled) == 0);
		atomic_store(&read_done, 1);
		CHECK(r == -1 && e == EINTR, "no SA_RESTART: the blocked read ended with EINTR");
	}
	void *res;
	pthread_join(t, &res);
	CHECK(res == NULL && atomic_load(&handled) >= 1, "the handler ran");
	return 0;
}

static void *exiter(void *arg)
{
	(void)arg;
	nap_ms(100);
	syscall(SYS_exit_group, 7);
	return NULL;
}

static int mode_exitgroup(void)
{
	int p[2];
	if (pipe(p) < 0)
		return 1;
	pthread_t t;
	if (pthread_create(&t, NULL, exiter, NULL) != 0)
		return 1;
	char c;
	read(p[0], &c, 1); /* nobody writes: only exit_group ends this */
	printf("FAIL the read returned\n");
	return 1;
}

extern char ss_syscall[], ss_after[];
static volatile uint64_t trap_rip[2];
static volatile int traps;

/* Keeps TF through the trap before the syscall, clears it at the next one. */
static void on_trap(int sig, siginfo_t *si, void *ctx)
{
	(void)sig;
	(void)si;
	ucontext_t *uc = ctx;
	uint64_t rip = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
	if (traps < 2)
		trap_rip[traps] = rip;
	traps++;
	if (rip != (uint64_t)(uintptr_t)ss_syscall)
		uc->uc_mcontext.gregs[REG_EFL] &= ~0x100L;
}

static int mode_singlestep(long n)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_trap;
	sa.sa_flags = SA_SIGINFO;
	CHECK_SYS(sigaction(SIGTRAP, &sa, NULL), "sigaction");
	long ppid = syscall(SYS_getppid), bad = 0;
	for (long i = 0; i < n; i++) {
		traps = 0;
		long r;
		/* popfq sets TF: the first trap comes after the next instruction, at the syscall. */
		__asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq; mov %1, %%eax\n"
				 "ss_syscall: syscall\n"
				 "ss_after: nop; nop; nop"
				 : "=a"(r)
				 : "i"(SYS_getppid)
				 : "rcx", "r11", "memory", "cc");
		uint64_t after = (uint64_t)(uintptr_t)ss_after;
		bool ok = r == ppid && traps == 2 && trap_rip[0] == (uint64_t)(uintptr_t)ss_syscall &&
			  trap_rip[1] >= after && trap_rip[1] <= after + 3;
		if (!ok && bad++ == 0)
			printf("call %ld: result %s, %d traps, the second %s\n", i, r == ppid ? "right" : "wrong", traps,
			       trap_rip[1] >= after && trap_rip[1] <= after + 3 ? "just after the syscall" : "elsewhere");
	}
	CHECK(bad == 0, "singlestep: %ld getppid calls with TF set trap before and just after the call", n);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "getppid";
	long n = argc > 2 ? atol(argv[2]) : 1000;
	if (strcmp(mode, "getppid") == 0)
		mode_getppid(n);
	else if (strcmp(mode, "pingpong") == 0)
		mode_pingpong(n);
	else if (strcmp(mode, "sigread-restart") == 0)
		mode_sigread(true);
	else if (strcmp(mode, "sigread-intr") == 0)
		mode_sigread(false);
	else if (strcmp(mode, "exitgroup") == 0)
		return mode_exitgroup();
	else if (strcmp(mode, "singlestep") == 0)
		mode_singlestep(n);
	else
		CHECK(0, "known mode '%s'", mode);
	return check_done();
}
