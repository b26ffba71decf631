/* km's seccomp allow-list and its SIGSYS reporter: see km_seccomp.h and docs/decisions.md. */
#include "km_seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <pthread.h>
#include <sched.h>
#include <seccomp.h>
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
#include <linux/kvm.h>

#include "km_syscall_names.h" /* generated from <asm/unistd_64.h>: km_syscall_names[] */

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a SIGSYS from a filter (<asm-generic/siginfo.h>) */
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

/*
 * Allowed with any arguments. The guest's handlers (km_sys_*.c) forward some calls under another
 * number than the guest used (pipe -> pipe2, readlink -> readlinkat, accept -> accept4, epoll_pwait
 * -> epoll_wait, mlock/personality/rt_sigaction emulated, no host call at all); this list has the
 * numbers that reach the host.
 */
static const int allowed[] = {
    /* Guest files and fds (km_sys_file.c), the snapshot and core writer (O_TMPFILE open, linkat,
     * rename, fsync, pagemap and SEEK_DATA reads), messages. */
    SYS_read, SYS_write, SYS_pread64, SYS_pwrite64, SYS_readv, SYS_writev, SYS_preadv, SYS_pwritev,
    SYS_preadv2, SYS_pwritev2, SYS_open, SYS_openat, SYS_openat2, SYS_creat, SYS_close, SYS_close_range,
    SYS_lseek, SYS_stat, SYS_fstat, SYS_lstat, SYS_newfstatat, SYS_statx, SYS_statfs, SYS_fstatfs,
    SYS_getdents, SYS_getdents64, SYS_access, SYS_faccessat, SYS_faccessat2, SYS_rename, SYS_renameat,
    SYS_renameat2, SYS_unlink, SYS_unlinkat, SYS_mkdir, SYS_mkdirat, SYS_rmdir, SYS_link, SYS_linkat,
    SYS_symlink, SYS_symlinkat, SYS_readlink, SYS_readlinkat, SYS_chmod, SYS_fchmod, SYS_fchmodat,
    SYS_fchmodat2, SYS_chown, SYS_fchown, SYS_lchown, SYS_fchownat, SYS_umask, SYS_truncate,
    SYS_ftruncate, SYS_fsync, SYS_fdatasync, SYS_sync, SYS_syncfs, SYS_fallocate, SYS_fadvise64,
    SYS_sync_file_range, SYS_utimensat, SYS_futimesat, SYS_utime, SYS_utimes, SYS_getcwd, SYS_chdir,
    SYS_fchdir, SYS_pipe2, SYS_dup, SYS_dup2, SYS_dup3, SYS_fcntl, SYS_flock, SYS_poll, SYS_ppoll,
    SYS_select, SYS_pselect6, SYS_sendfile, SYS_copy_file_range, SYS_splice, SYS_tee, SYS_mknod,
    SYS_mknodat, SYS_memfd_create, SYS_eventfd, SYS_eventfd2, SYS_inotify_init, SYS_inotify_init1,
    SYS_inotify_add_watch, SYS_inotify_rm_watch, SYS_epoll_create, SYS_epoll_create1, SYS_epoll_ctl,
    SYS_epoll_wait, SYS_epoll_pwait2,
    /* Guest sockets (km_sys_net.c) and the management socket (km_mgmt.c). */
    SYS_socket, SYS_socketpair, SYS_bind, SYS_connect, SYS_listen, SYS_accept4, SYS_getsockname,
    SYS_getpeername, SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg, SYS_shutdown, SYS_setsockopt,
    SYS_getsockopt,
    /* Guest memory (km_mm.c, km_physmem.c) and km's heap; mmap and mprotect are below. */
    SYS_munmap, SYS_mremap, SYS_madvise, SYS_brk, SYS_msync, SYS_mincore,
    /* Threads (glibc registers rseq and the robust list in each new one), the vCPU kick signal,
     * futexes on guest memory, sleeps and clocks. rt_sigaction, clone and clone3 are below. */
    SYS_futex, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigtimedwait, SYS_rt_sigpending,
    SYS_sigaltstack, SYS_tgkill, SYS_kill, SYS_getpid, SYS_gettid, SYS_sched_yield,
    SYS_sched_getaffinity, SYS_set_robust_list, SYS_rseq, SYS_exit, SYS_exit_group, SYS_nanosleep,
    SYS_clock_nanosleep, SYS_clock_gettime, SYS_clock_getres, SYS_gettimeofday, SYS_time,
    SYS_getrandom,
    /* Process information and limits the guest sees as its own (km_sys_proc.c, km_sys_misc.c). */
    SYS_getppid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getgroups, SYS_getresuid,
    SYS_getresgid, SYS_getpgrp, SYS_getpgid, SYS_getsid, SYS_setsid, SYS_setpgid, SYS_getpriority,
    SYS_setpriority, SYS_prlimit64, SYS_getrlimit, SYS_setrlimit, SYS_getrusage, SYS_uname,
    SYS_sysinfo, SYS_getcpu, SYS_times, SYS_capget,
    /* Signals the guest sends to other processes (km_signal.c): by pidfd, so a reused pid never
     * reaches km; queued signals with their siginfo. Not pidfd_getfd. */
    SYS_pidfd_open, SYS_pidfd_send_signal, SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo,
};

/* prctl options: exactly those the guest's handler forwards (km_sys_proc.c). Not PR_SET_PTRACER,
 * PR_SET_MM, PR_SET_SECCOMP, ... */
static const int prctl_allowed[] = {
    PR_SET_NAME, PR_GET_NAME, PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS, PR_GET_NO_NEW_PRIVS,
};

/* ioctl requests besides KVM's: the guest's terminal and fd requests, exactly the table in
 * km_sys_file.c (ioctl_defs); a request added there must be added here. */
static const unsigned int ioctl_allowed[] = {
    TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP, TIOCSPGRP,
    FIONREAD, FIONBIO, FIOCLEX, FIONCLEX,
};

#if defined(__SANITIZE_ADDRESS__)
/*
 * The sanitizer build only: LeakSanitizer's check at exit stops km's threads from a helper task
 * (clone without CLONE_THREAD) that attaches to each with ptrace, reads its registers, detaches
 * and is waited for; the runtime lets that task trace km with PR_SET_PTRACER and checks
 * PR_GET_DUMPABLE. Only those ptrace requests: reading or writing km's memory stays forbidden.
 */
static const int san_allowed[] = {SYS_clone, SYS_wait4};
static const int san_ptrace_allowed[] = {PTRACE_ATTACH, PTRACE_DETACH, PTRACE_CONT, PTRACE_KILL,
					  PTRACE_GETREGS, PTRACE_GETREGSET};
static const int san_prctl_allowed[] = {PR_SET_PTRACER, PR_GET_DUMPABLE, PR_SET_DUMPABLE};
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

static int add(scmp_filter_ctx ctx, int nr, unsigned ncmp, const struct scmp_arg_cmp *cmp, km_err_t **err)
{
	int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, ncmp, cmp);
	if (rc < 0)
		return km_err_set(err, -rc, "seccomp: allowing syscall %d", nr);
	return 0;
}

static int add_list(scmp_filter_ctx ctx, const int *nrs, size_t n, km_err_t **err)
{
	for (size_t i = 0; i < n; i++)
		if (add(ctx, nrs[i], 0, NULL, err) < 0)
			return -1;
	return 0;
}

/* One rule per value: libseccomp ORs the rules of a syscall. */
static int add_arg_values(scmp_filter_ctx ctx, int nr, unsigned arg, const int *vals, size_t n, km_err_t **err)
{
	for (size_t i = 0; i < n; i++) {
		struct scmp_arg_cmp c = SCMP_CMP(arg, SCMP_CMP_MASKED_EQ, 0xffffffffu, (uint32_t)vals[i]);
		if (add(ctx, nr, 1, &c, err) < 0)
			return -1;
	}
	return 0;
}

/* Rules that look at arguments. */
static int add_filtered(scmp_filter_ctx ctx, km_err_t **err)
{
	/* km never maps anything executable on the host (guest code is executable through the guest's
	 * page tables, not km's): no PROT_EXEC, so no hole can make km run bytes it wrote. */
	struct scmp_arg_cmp no_exec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	if (add(ctx, SYS_mmap, 1, &no_exec, err) < 0 || add(ctx, SYS_mprotect, 1, &no_exec, err) < 0)
		return -1;
	/* Threads only (glibc's pthread_create): never a new process. clone3 passes its flags in
	 * memory the filter cannot read, so it fails with ENOSYS and glibc falls back to clone. */
	struct scmp_arg_cmp thread = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
	if (add(ctx, SYS_clone, 1, &thread, err) < 0)
		return -1;
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SYS_clone3, 0);
	if (rc < 0)
		return km_err_set(err, -rc, "seccomp: clone3");
	/* The SIGSYS reporter stays: nothing after the install may replace it. */
	struct scmp_arg_cmp not_sigsys = SCMP_A0(SCMP_CMP_NE, SIGSYS);
	if (add(ctx, SYS_rt_sigaction, 1, &not_sigsys, err) < 0)
		return -1;
	if (add_arg_values(ctx, SYS_prctl, 0, prctl_allowed, N(prctl_allowed), err) < 0)
		return -1;
	/* ioctl: KVM's requests (type KVMIO, on km's own KVM fds) and the guest's terminal ones. */
	struct scmp_arg_cmp kvm = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xff00, KVMIO << 8);
	if (add(ctx, SYS_ioctl, 1, &kvm, err) < 0)
		return -1;
	for (size_t i = 0; i < N(ioctl_allowed); i++) {
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, ioctl_allowed[i]);
		if (add(ctx, SYS_ioctl, 1, &c, err) < 0)
			return -1;
	}
#if defined(__SANITIZE_ADDRESS__)
	if (add_list(ctx, san_allowed, N(san_allowed), err) < 0 ||
	    add_arg_values(ctx, SYS_ptrace, 0, san_ptrace_allowed, N(san_ptrace_allowed), err) < 0 ||
	    add_arg_values(ctx, SYS_prctl, 0, san_prctl_allowed, N(san_prctl_allowed), err) < 0)
		return -1;
#endif
	return 0;
}

static int build(scmp_filter_ctx ctx, km_err_t **err)
{
	int rc;
	/* TSYNC: every thread km already has (the management listener) gets the filter too.
	 * BADARCH: an i386 or x32 syscall is reported like any other forbidden one. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP)) < 0)
		return km_err_set(err, -rc, "seccomp: filter attributes");
	if (add_list(ctx, allowed, N(allowed), err) < 0 || add_filtered(ctx, err) < 0)
		return -1;
	if ((rc = seccomp_load(ctx)) < 0)
		return km_err_set(err, -rc, "seccomp: installing the filter");
	return 0;
}

int km_seccomp_install(km_err_t **err)
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
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (ctx == NULL)
		return km_err_set(err, ENOMEM, "seccomp: creating the filter");
	int rc = build(ctx, err);
	seccomp_release(ctx);
	return rc;
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
