/* km's seccomp allow-list and its SIGSYS reporter: see km_seccomp.h and docs/decisions.md. */
#include "km_seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>
#include <unistd.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include "km_syscall_names.h" /* generated from <asm/unistd_64.h>: km_syscall_names[] */

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a SIGSYS from a filter (<asm-generic/siginfo.h>) */
#endif

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* --- the report -------------------------------------------------------------------------- */

static size_t put_str(char *buf, size_t n, size_t cap, const char *s)
{
	while (*s != '\0' && n < cap)
		buf[n++] = *s++;
	return n;
}

static size_t put_uint(char *buf, size_t n, size_t cap, unsigned long v)
{
	char digits[24];
	size_t d = 0;
	do {
		digits[d++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (d > 0 && n < cap)
		buf[n++] = digits[--d];
	return n;
}

/* Only async-signal-safe work: the line is built by hand, the name comes from a static table, and
 * km ends with the raw exit_group (the sanitizer runtime intercepts _exit to run its leak check). */
static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_code != SYS_SECCOMP)
		return; /* sent by someone, not a forbidden call: nothing to report, nothing to stop */
	unsigned nr = (unsigned)si->si_syscall;
	const char *name = NULL;
	if (si->si_arch == AUDIT_ARCH_X86_64 && nr < N(km_syscall_names))
		name = km_syscall_names[nr];
	char line[200];
	size_t n = put_str(line, 0, sizeof(line), "km: seccomp: km made host syscall ");
	n = put_str(line, n, sizeof(line), name != NULL ? name : "?");
	n = put_str(line, n, sizeof(line), " (");
	n = put_uint(line, n, sizeof(line), nr);
	n = put_str(line, n, sizeof(line), "), which its filter forbids; stopping\n");
	ssize_t w = write(km_error_fd(), line, n);
	(void)w;
	syscall(SYS_exit_group, KM_SECCOMP_EXIT);
}

/* --- the filter -------------------------------------------------------------------------- */

#include "km_seccomp_bpf.h" /* generated at build time by km/gen/km_seccomp_gen.c */

int km_seccomp_reporter(km_err_t **err)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0)
		return km_err_set(err, errno, "seccomp: SIGSYS handler");
	/* A thread that blocks SIGSYS would die of it silently: the kernel resets the handler then. */
	sigset_t sys;
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	return 0;
}

int km_seccomp_install(km_err_t **err)
{
	if (km_seccomp_reporter(err) < 0)
		return -1;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return km_err_set(err, errno, "seccomp: no_new_privs");
	struct sock_fprog prog = {.len = N(km_seccomp_bpf), .filter = (struct sock_filter *)km_seccomp_bpf};
	/* TSYNC: every thread km already has (the management listener) gets the filter too; a
	 * positive result is a thread that could not take it. */
	long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
	if (r < 0)
		return km_err_set(err, errno, "seccomp: installing the filter");
	if (r > 0)
		return km_err_set(err, 0, "seccomp: installing the filter: thread %ld could not take it", r);
	return 0;
}

/* --- the test hook ----------------------------------------------------------------------- */

/* Each probe is harmless when it runs unfiltered (--no-seccomp): it fails or touches only memory
 * of its own. */
static void probe_ptrace(void)
{
	ptrace(PTRACE_PEEKDATA, 0, NULL, NULL); /* pid 0 is nobody: ESRCH */
}

static void probe_execve(void)
{
	char *const argv[] = {"km-seccomp-probe", NULL};
	execve("/nonexistent/km-seccomp-probe", argv, argv + 1);
}

static void probe_process_vm_readv(void)
{
	char from = 1, to = 0;
	struct iovec l = {&to, 1}, r = {&from, 1};
	process_vm_readv(getpid(), &l, 1, &r, 1, 0);
}

static void probe_mprotect_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED) {
		mprotect(p, 4096, PROT_READ | PROT_EXEC);
		munmap(p, 4096);
	}
}

static void probe_mmap_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		munmap(p, 4096);
}

static void *probe_thread_main(void *arg)
{
	(void)arg;
	probe_ptrace();
	return NULL;
}

/* From a new thread: clone (after clone3's ENOSYS) is allowed for threads, and a violation in a
 * thread other than the one that installed the filter is reported the same way. */
static void probe_thread_ptrace(void)
{
	pthread_t t;
	if (pthread_create(&t, NULL, probe_thread_main, NULL) == 0)
		pthread_join(t, NULL);
}

static const struct probe {
	const char *name;
	void (*fn)(void);
} probes[] = {
    {"ptrace", probe_ptrace},
    {"execve", probe_execve},
    {"process_vm_readv", probe_process_vm_readv},
    {"mprotect-exec", probe_mprotect_exec},
    {"mmap-exec", probe_mmap_exec},
    {"thread-ptrace", probe_thread_ptrace},
};

int km_seccomp_probe(const char *probe, km_err_t **err)
{
	if (probe == NULL)
		return 0;
	for (size_t i = 0; i < N(probes); i++) {
		if (strcmp(probe, probes[i].name) == 0) {
			probes[i].fn();
			return 0;
		}
	}
	return km_err_set(err, 0, "KM_TEST_SECCOMP_PROBE: unknown probe '%s' (ptrace, execve, process_vm_readv, "
			  "mprotect-exec, mmap-exec, thread-ptrace)", probe);
}
