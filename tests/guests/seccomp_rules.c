/*
 * Runs under a guest seccomp filter (tests/e2e/guest_seccomp.sh gives km the rules of each mode,
 * docs/guest-seccomp.md) and checks what the program sees. Without a mode: a usage line, exit 0.
 *
 *   seccomp_rules errno-args   rules: 1 errno 13 0 eq 99 0 (write to fd 99 only: EACCES)
 *   seccomp_rules default      rules: default errno 1, the calls a static program needs allowed:
 *                              getppid gets EPERM
 *   seccomp_rules kill         rules: 39 kill-process 0: getpid ends the program (SIGSYS)
 *   seccomp_rules trap         rules: 39 trap 7: getpid raises SIGSYS with si_code SYS_SECCOMP,
 *                              si_syscall 39, si_arch x86-64, si_errno 7, si_call_addr = the rip
 *                              after the syscall; the call returns its own number (39)
 *   seccomp_rules persist      errno-args' rules; snapshots itself (going on) and checks again
 *                              in the copy resumed without --guest-seccomp
 *   seccomp_rules threads      errno-args' rules, checked in a second thread
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "check.h"
#include "km_hcall.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

static int pipe_fds[2];

/* write to fd 99 (a pipe's write end) is refused with EACCES; the same pipe by another number
 * takes the byte. */
static void check_fd99(const char *who)
{
	CHECK_SYS(pipe(pipe_fds), "%s: pipe", who); /* a new one each time: a resumed copy has none */
	CHECK_SYS(dup2(pipe_fds[1], 99), "%s: dup2 to 99", who);
	CHECK_ERR(write(99, "x", 1), EACCES, "%s: write(99) refused by the filter", who);
	CHECK_EQ(write(pipe_fds[1], "y", 1), 1, "%s: write to the same pipe by another fd", who);
	char c = 0;
	CHECK_EQ(read(pipe_fds[0], &c, 1), 1, "%s: one byte in the pipe", who);
	CHECK_EQ(c, 'y', "%s: it is the allowed write's", who);
	close(99);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
}

static void *thread_main(void *arg)
{
	(void)arg;
	check_fd99("thread");
	return NULL;
}

static volatile siginfo_t trapped;
static volatile uint64_t trap_rip;
static volatile int traps;

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	trapped = *si;
	trap_rip = (uint64_t)((ucontext_t *)uc)->uc_mcontext.gregs[REG_RIP];
	traps++;
}

static void trap(void)
{
	struct sigaction sa = {.sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO};
	sigemptyset(&sa.sa_mask);
	CHECK_SYS(sigaction(SIGSYS, &sa, NULL), "SIGSYS handler");
	long r = syscall(SYS_getpid);
	CHECK_EQ(traps, 1, "one SIGSYS");
	CHECK_EQ(r, SYS_getpid, "the call returns its own number (rolled back)");
	CHECK_EQ(trapped.si_signo, SIGSYS, "si_signo");
	CHECK_EQ(trapped.si_code, SYS_SECCOMP, "si_code SYS_SECCOMP");
	CHECK_EQ(trapped.si_syscall, SYS_getpid, "si_syscall");
	CHECK_EQ(trapped.si_arch, 0xc000003e, "si_arch AUDIT_ARCH_X86_64");
	CHECK_EQ(trapped.si_errno, 7, "si_errno: the rule's data");
	CHECK_EQ((uint64_t)(uintptr_t)trapped.si_call_addr, trap_rip, "si_call_addr: where the handler returns to");
	/* blocked, it cannot be dodged: the program dies of it */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGSYS);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("PASSED all %d checks\n", check_total);
	fflush(stdout);
	syscall(SYS_getpid);
	printf("FAIL: a blocked SIGSYS let the program go on\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("usage: seccomp_rules MODE (run by tests/e2e/guest_seccomp.sh under a filter)\n");
		return 0;
	}
	const char *mode = argv[1];
	if (strcmp(mode, "errno-args") == 0) {
		check_fd99("main");
	} else if (strcmp(mode, "default") == 0) {
		CHECK_ERR(syscall(SYS_getppid), EPERM, "getppid: the default action");
		CHECK(getuid() != (uid_t)-1 || errno != EPERM, "getuid allowed");
	} else if (strcmp(mode, "kill") == 0) {
		printf("calling getpid\n");
		fflush(stdout);
		syscall(SYS_getpid);
		printf("FAIL: still alive\n");
		return 1;
	} else if (strcmp(mode, "trap") == 0) {
		trap();
		return 1;
	} else if (strcmp(mode, "persist") == 0) {
		check_fd99("before");
		long r = km_snapshot("seccomp", KM_SNAPSHOT_KEEP_RUNNING);
		CHECK(r == KM_SNAPSHOT_TAKEN || r == KM_SNAPSHOT_RESUMED, "snapshot (%ld)", r);
		check_fd99(r == KM_SNAPSHOT_RESUMED ? "resumed" : "after");
		printf("%s\n", r == KM_SNAPSHOT_RESUMED ? "RESUMED COPY" : "ORIGINAL");
	} else if (strcmp(mode, "threads") == 0) {
		pthread_t t;
		CHECK_EQ(pthread_create(&t, NULL, thread_main, NULL), 0, "pthread_create");
		pthread_join(t, NULL);
	} else {
		printf("unknown mode %s\n", mode);
		return 2;
	}
	printf("PASSED all %d checks\n", check_total);
	return check_failed ? 1 : 0;
}
