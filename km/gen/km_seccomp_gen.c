/*
 * Build-time generator of km's seccomp filter (docs/decisions.md, entry 6). The allow-list is
 * written here with libseccomp's rules; this program compiles it to classic BPF once, at build
 * time, and prints it as a C array (km_seccomp_bpf.h) that km/km_seccomp.c installs with one
 * seccomp(2) call. Compiling the rules at every start cost km about 0.7 ms (libseccomp's code
 * generation), a third of a small program's whole run. It is built with km's own flags, so a
 * sanitizer build gets the sanitizer's rules.
 *
 *   km_seccomp_gen OUT.h      (exit status 1 and a message on failure)
 */
#include <errno.h>
#include <linux/kcmp.h>
#include <linux/kvm.h>
#include <linux/sockios.h>
#include <sched.h>
#include <stdarg.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>
#include <linux/filter.h>
#include <asm/prctl.h>
#include <fcntl.h>

#include "km_exec_fd.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif

/* Rule errors end the build with a message; this is a build tool, not km. */
typedef struct km_err km_err_t;
struct km_err {
	int errnum;
};
__attribute__((format(printf, 3, 4), noreturn)) static int km_err_set(km_err_t **err, int errnum,
									 const char *fmt, ...)
{
	(void)err;
	va_list ap;
	va_start(ap, fmt);
	fputs("km_seccomp_gen: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(errnum));
	exit(1);
}

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
    SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr, SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_listxattr,
    SYS_llistxattr, SYS_flistxattr, SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr,
    SYS_getdents, SYS_getdents64, SYS_access, SYS_faccessat, SYS_faccessat2, SYS_rename, SYS_renameat,
    SYS_renameat2, SYS_unlink, SYS_unlinkat, SYS_mkdir, SYS_mkdirat, SYS_rmdir, SYS_link, SYS_linkat,
    SYS_symlink, SYS_symlinkat, SYS_readlink, SYS_readlinkat, SYS_chmod, SYS_fchmod, SYS_fchmodat,
    SYS_fchmodat2, SYS_chown, SYS_fchown, SYS_lchown, SYS_fchownat, SYS_umask, SYS_truncate,
    SYS_ftruncate, SYS_fsync, SYS_fdatasync, SYS_sync, SYS_syncfs, SYS_fallocate, SYS_fadvise64,
    SYS_sync_file_range, SYS_utimensat, SYS_futimesat, SYS_utime, SYS_utimes, SYS_getcwd, SYS_chdir,
    SYS_fchdir, SYS_pipe2, SYS_dup, SYS_dup2, SYS_dup3, SYS_fcntl, SYS_flock, SYS_poll, SYS_ppoll,
    SYS_select, SYS_pselect6, SYS_sendfile, SYS_copy_file_range, SYS_splice, SYS_tee, SYS_mknod,
    SYS_mknodat, SYS_memfd_create, SYS_eventfd, SYS_eventfd2, SYS_timerfd_create, SYS_timerfd_settime,
    SYS_timerfd_gettime, SYS_inotify_init, SYS_inotify_init1,
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
    /* A stop (SIGSTOP, Ctrl-Z) and SIGCONT make the kernel resume a timed wait of any of km's
     * threads (nanosleep, futex, poll with a timeout) through restart_syscall: it continues only
     * a call this filter already let through. */
    SYS_restart_syscall,
    /* Guest threads' affinity and barriers (km_sys_thread.c); the guest's timers, which the host
     * runs and whose signals km's signal thread takes (km_signal.c). */
    SYS_sched_setaffinity, SYS_membarrier, SYS_setitimer, SYS_getitimer, SYS_alarm, SYS_timer_create,
    SYS_timer_settime, SYS_timer_gettime, SYS_timer_getoverrun, SYS_timer_delete,
    /* Process information and limits the guest sees as its own (km_sys_proc.c, km_sys_misc.c). */
    SYS_getppid, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid, SYS_getgroups, SYS_getresuid,
    SYS_getresgid, SYS_getpgrp, SYS_getpgid, SYS_getsid, SYS_setsid, SYS_setpgid, SYS_getpriority,
    SYS_setpriority, SYS_prlimit64, SYS_getrlimit, SYS_setrlimit, SYS_getrusage, SYS_uname,
    SYS_sysinfo, SYS_getcpu, SYS_times, SYS_capget,
    /* The guest's set*id calls (km_sys_proc.c), through glibc's wrappers: glibc makes the call in
     * every km thread, from a SIGSETXID handler (tgkill, rt_sigaction and futex are above). */
    SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid, SYS_setresuid, SYS_setresgid, SYS_setfsuid,
    SYS_setfsgid, SYS_setgroups,
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

/* km's own ioctls on the guest's TCP sockets when a snapshot saves an established connection
 * (km_tcp_repair.c): the send queue's length and its unsent part (FIONREAD is above). */
static const unsigned int km_ioctl_allowed[] = {SIOCOUTQ, SIOCOUTQNSD};

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
	/* A live snapshot's writer (km_snapshot_live.c): a new process with exit signal 0 and no
	 * flags at all (no CLONE_VM, no stack): a copy of km that shares nothing with it. */
	struct scmp_arg_cmp writer = SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, 0);
	if (add(ctx, SYS_clone, 1, &writer, err) < 0)
		return -1;
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SYS_clone3, 0);
	if (rc < 0)
		return km_err_set(err, -rc, "seccomp: clone3");
	/* Every signal, SIGSYS included: a km started by an execve of km runs under this filter and
	 * must install its SIGSYS reporter again (exec reset it). A replaced reporter changes only
	 * what happens after a forbidden call, which is never made (SECCOMP_RET_TRAP). */
	if (add(ctx, SYS_rt_sigaction, 0, NULL, err) < 0)
		return -1;
	if (add_arg_values(ctx, SYS_prctl, 0, prctl_allowed, N(prctl_allowed), err) < 0)
		return -1;
	/* kcmp, only to tell whether a guest fd is one of km's signalfds (km_sigfd.c): every anon
	 * inode file shares one inode number, so only the open file itself tells them apart; and
	 * KCMP_EPOLL_TFD, which file an epoll item watches, for a snapshot's epolls (km_fd_epoll.c). */
	struct scmp_arg_cmp kcmp_file = SCMP_A2(SCMP_CMP_EQ, KCMP_FILE);
	struct scmp_arg_cmp kcmp_epoll = SCMP_A2(SCMP_CMP_EQ, KCMP_EPOLL_TFD);
	if (add(ctx, SYS_kcmp, 1, &kcmp_file, err) < 0 || add(ctx, SYS_kcmp, 1, &kcmp_epoll, err) < 0)
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
	for (size_t i = 0; i < N(km_ioctl_allowed); i++) {
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, km_ioctl_allowed[i]);
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

/* Guest processes (km_fork.c, km_sys_wait.c): km forks itself with glibc's fork(), whose clone
 * has exactly these flags (no stack, no CLONE_VM: a new process, never a thread sharing km);
 * the guest's waits are the host's; prctl's child-process options are forwarded. */
static const int proc_prctl_allowed[] = {PR_GET_PDEATHSIG, PR_SET_CHILD_SUBREAPER, PR_GET_CHILD_SUBREAPER};

static int add_proc_rules(scmp_filter_ctx ctx, km_err_t **err)
{
	struct scmp_arg_cmp fork_flags =
	    SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD);
	if (add(ctx, SYS_clone, 1, &fork_flags, err) < 0 || add(ctx, SYS_waitid, 0, NULL, err) < 0)
		return -1;
#if !defined(__SANITIZE_ADDRESS__) /* san_allowed has it */
	if (add(ctx, SYS_wait4, 0, NULL, err) < 0)
		return -1;
#endif
	return add_arg_values(ctx, SYS_prctl, 0, proc_prctl_allowed, N(proc_prctl_allowed), err);
}

/* execve of the guest (km_exec.c): km re-executes itself, and only itself. Seccomp cannot read
 * the path, so the rule pins what it can see: the dirfd is km's fd on its own binary (opened at
 * start at a fixed number) and the path must be empty (AT_EMPTY_PATH, exactly). execve and any
 * other execveat stay forbidden. docs/decisions.md entry 6 says what is left open. */
static int add_exec(scmp_filter_ctx ctx, km_err_t **err)
{
	struct scmp_arg_cmp self[] = {SCMP_A0(SCMP_CMP_EQ, KM_EXEC_SELF_FD), SCMP_A4(SCMP_CMP_EQ, AT_EMPTY_PATH)};
	if (add(ctx, SYS_execveat, 2, self, err) < 0)
		return -1;
	/* The new km starts under this filter (it stays across exec, and the new km cannot install
	 * another: seccomp(2) is forbidden), so what km does before its own install must pass: the
	 * C library's start (the thread pointer, the tid address), the management listener's own fd
	 * table. */
	struct scmp_arg_cmp set_fs = SCMP_A0(SCMP_CMP_EQ, ARCH_SET_FS);
	struct scmp_arg_cmp files = SCMP_A0(SCMP_CMP_EQ, CLONE_FILES);
	if (add(ctx, SYS_arch_prctl, 1, &set_fs, err) < 0 || add(ctx, SYS_set_tid_address, 0, NULL, err) < 0 ||
	    add(ctx, SYS_unshare, 1, &files, err) < 0)
		return -1;
#if defined(__SANITIZE_ADDRESS__)
	/* The sanitizer build's km is dynamically linked: after an execve its ld.so maps the
	 * libraries' code (file mappings with PROT_EXEC) under this filter. Sanitizer builds only. */
	struct scmp_arg_cmp file = SCMP_A4(SCMP_CMP_NE, (scmp_datum_t)(uint32_t)-1);
	if (add(ctx, SYS_mmap, 1, &file, err) < 0)
		return -1;
#endif
	return 0;
}

static int build(scmp_filter_ctx ctx, km_err_t **err)
{
	int rc;
	/* TSYNC is km's (km_seccomp.c passes the flag); BADARCH: an i386 or x32 syscall is reported
	 * like any other forbidden one. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2)) < 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_TRAP)) < 0)
		return km_err_set(err, -rc, "seccomp: filter attributes");
	return add_list(ctx, allowed, N(allowed), err) < 0 || add_filtered(ctx, err) < 0 ||
		       add_proc_rules(ctx, err) < 0 || add_exec(ctx, err) < 0
		   ? -1
		   : 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: km_seccomp_gen OUT.h\n");
		return 1;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (ctx == NULL || build(ctx, NULL) < 0)
		return 1;
	FILE *tmp = tmpfile();
	if (tmp == NULL || seccomp_export_bpf(ctx, fileno(tmp)) < 0) {
		fprintf(stderr, "km_seccomp_gen: exporting the filter failed\n");
		return 1;
	}
	rewind(tmp);
	FILE *out = fopen(argv[1], "w");
	if (out == NULL) {
		perror(argv[1]);
		return 1;
	}
	fprintf(out, "/* generated by km/gen/km_seccomp_gen.c: km's seccomp filter, classic BPF */\n");
	fprintf(out, "static const struct sock_filter km_seccomp_bpf[] = {\n");
	struct sock_filter f;
	size_t n = 0;
	while (fread(&f, sizeof(f), 1, tmp) == 1) {
		fprintf(out, "\t{%#x, %u, %u, %#x},\n", f.code, f.jt, f.jf, f.k);
		n++;
	}
	fprintf(out, "};\n");
	if (n == 0 || fclose(out) != 0) {
		fprintf(stderr, "km_seccomp_gen: no filter written to %s\n", argv[1]);
		return 1;
	}
	fclose(tmp);
	seccomp_release(ctx);
	return 0;
}
