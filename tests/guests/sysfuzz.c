/*
 * The guest-syscall fuzzer: issues random system calls with random arguments, from a seed, to
 * find what makes km (which checks and emulates or forwards each one) crash, hang, leak or
 * report a sanitizer error. Run only under km, by tests/e2e/sysfuzz.sh (make check) and
 * tests/fuzz/sysfuzz.sh (long runs):
 *
 *   sysfuzz [-v] SEED COUNT DIR
 *
 * It chdir()s into DIR (a fresh temporary directory) and makes COUNT calls. Each call is logged
 * before it is made, as "#INDEX NR A0 A1 A2 A3 A4 A5" (hex), with its result "= RET" after it, to
 * DIR/sysfuzz.log, or to stdout with -v; the run is a pure function of SEED, so a finding is
 * replayed with the same SEED and COUNT = INDEX + 1. It ends with "sysfuzz: done SEED COUNT" on
 * stdout and exit status 0.
 *
 * Under km the calls really reach the host, so the fuzzer must be harmless run as root:
 * - never ends or stops itself on purpose: exit, exit_group, rt_sigreturn, execve, fork, ... are
 *   not made; kill, tkill and tgkill name only its own pid and tid, with signals it ignores (and
 *   re-ignores after every rt_sigaction);
 * - never blocks: waits and sleeps get zero timeouts, every fd of its own is made O_NONBLOCK
 *   before a call that takes it, flock gets LOCK_NB, F_SETLKW becomes F_SETLK, open gets
 *   O_NONBLOCK (a FIFO), recv gets MSG_DONTWAIT; calls that block whatever (pause, wait4,
 *   sigsuspend, ...) are not made;
 * - never changes the world outside DIR, nor fd 2 (where km reports): a path argument is one
 *   of a few short relative names (no "/" first, no "..") or an invalid pointer, and the cwd is
 *   checked to stay inside DIR;
 *   no credentials, mounts, reboots, modules, namespaces, clocks, ptrace, SysV IPC, io_uring;
 *   sockets only AF_UNIX/INET/INET6 without protocols or raw types (no module autoload), bound
 *   and connected only to a relative unix name or loopback port 0; ioctl only from a list of
 *   harmless requests (no terminal, network or filesystem ones); device nodes are never made;
 *   fchmod/fchown/ftruncate/fallocate only on fds whose file lives in DIR's filesystem, a pipe
 *   or a socket; copy and allocation lengths are capped at 1 MiB; nothing is made nicer than 0,
 *   no other process's limits, priority or group is touched;
 * - survives its own damage: its image, initial heap (glibc's TLS), stack, the path buffers and
 *   this state are never named by munmap/mprotect/mremap/madvise/mmap(MAP_FIXED)/brk; the
 *   pointers it passes point into an arena, an edge page before a PROT_NONE page, a hole, km's
 *   runtime region near 0x7fffff000000, kernel or non-canonical addresses; the fuzzer itself
 *   never touches that memory (it may be gone), and uses no libc after its setup.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#define PAGE 4096ul
#define ARENA_PAGES 64
#define KM_RT 0x7fffff000000ul /* km's runtime region (km_runtime_layout.h) */
#define FD_ERR 2               /* km's stderr too: never generated as an fd argument */
#define FD_LOG 900             /* nor these */
#define FD_OUT 901
#define MAX_LEN (1ul << 20)
#define NPOOL 16

extern char __executable_start[];

static long sc(long n, long a0, long a1, long a2, long a3, long a4, long a5)
{
	register long r10 __asm__("r10") = a3, r8 __asm__("r8") = a4, r9 __asm__("r9") = a5;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "0"(n), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
			 : "rcx", "r11", "memory");
	return ret;
}
#define SC0(n) sc(n, 0, 0, 0, 0, 0, 0)
#define SC2(n, a, b) sc(n, (long)(a), (long)(b), 0, 0, 0, 0)
#define SC3(n, a, b, c) sc(n, (long)(a), (long)(b), (long)(c), 0, 0, 0)

/* --- state: all of it in this image, which the fuzzer never lets a call unmap ------------- */

static uint64_t rng;
static uint8_t *arena, *edge, *hole, *pathedge;
static uint64_t brk0, stack_lo;
static long pid;
static int verbose;
static char dir[512], cwdbuf[4096];
static size_t dirlen;
static uint64_t fs_base;
static long fds[NPOOL], addrs[NPOOL];
static unsigned nfds, naddrs;
static char paths[2][64];
static char longname[300], longpath[5000];
static struct timespec zero_ts;
static struct { long sec, usec; } zero_tv;
static struct sockaddr_un sa_un;
static struct sockaddr_in sa_in;
static struct sockaddr_in6 sa_in6;
static struct msghdr msgs[2];
static struct iovec iovs[2];
static union { struct cmsghdr h; char b[CMSG_SPACE(3 * sizeof(int))]; } cmsg;
static struct { int type, pid; } owner_ex;
static struct { uint64_t flags, mode, resolve; } how;
static dev_t dir_dev;

struct range {
	uint64_t start, end;
};
static struct range prot_ranges[4];

static uint64_t rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1dull;
}

static uint64_t pick(const uint64_t *v, size_t n)
{
	return v[rnd() % n];
}
#define PICK(...) pick((const uint64_t[]){__VA_ARGS__}, sizeof((const uint64_t[]){__VA_ARGS__}) / 8)

/* --- output without libc ---------------------------------------------------------------- */

static char *put_str(char *p, const char *s)
{
	while (*s)
		*p++ = *s++;
	return p;
}

static char *put_hex(char *p, uint64_t v)
{
	char t[17];
	int n = 0;
	do
		t[n++] = "0123456789abcdef"[v & 15];
	while ((v >>= 4) != 0);
	while (n > 0)
		*p++ = t[--n];
	return p;
}

static char *put_dec(char *p, uint64_t v)
{
	char t[21];
	int n = 0;
	do
		t[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n > 0)
		*p++ = t[--n];
	return p;
}

static void out(int fd, const char *b, char *e)
{
	SC3(SYS_write, fd, b, e - b);
}

/* --- argument generators ---------------------------------------------------------------- */

static uint64_t gen_int(void)
{
	switch (rnd() % 12) {
	case 0: return 0;
	case 1: return 1;
	case 2: return rnd() % 16;
	case 3: return (uint64_t)-1;
	case 4: return rnd() % 4096;
	case 5: return 1ul << (rnd() % 64);
	case 6: return rnd() & rnd() & 0xffffffff;
	case 7: return PICK(0x7fffffff, 0x80000000, 0xffffffff, 1ul << 32, 1ul << 63, ~0ul >> 1);
	case 8: return rnd();
	case 9: return (rnd() % 16) * PAGE;
	case 10: return -(rnd() % 16);
	default: return rnd() % 256;
	}
}

static uint64_t gen_len(void)
{
	switch (rnd() % 8) {
	case 0: return 0;
	case 1: return gen_int();
	case 2: return (rnd() % 8) * PAGE;
	default: return rnd() % 512;
	}
}

static uint64_t gen_fd(void)
{
	switch (rnd() % 10) {
	case 0: return rnd() % 2; /* not FD_ERR */
	case 1: case 2: case 3: return nfds ? fds[rnd() % nfds] : 3;
	case 4: case 5: return 3 + rnd() % 61;
	case 6: return 1000 + rnd() % 11; /* km's own fds */
	case 7: return (uint64_t)-1;
	case 8: return (uint64_t)AT_FDCWD;
	default: return PICK(1ul << 31, 0x7fffffff, 65535, 1ul << 32, 999, 1011);
	}
}

/* A pointer the fuzzer never dereferences: valid or not, never into its protected state. */
static uint64_t gen_ptr(void)
{
	switch (rnd() % 16) {
	case 0: return 0;
	case 1: case 2: case 3: case 4: return (uint64_t)arena + rnd() % (ARENA_PAGES * PAGE);
	case 5: return (uint64_t)arena + (rnd() % ARENA_PAGES) * PAGE;
	case 6: return (uint64_t)edge + PAGE - rnd() % 64; /* the next page is PROT_NONE */
	case 7: return (uint64_t)edge + PAGE + rnd() % PAGE;
	case 8: return (uint64_t)hole + rnd() % PAGE;
	case 9: return KM_RT + (rnd() % 4096) * 16 + PICK(0, 8, 0x1000, 0x10000, 0x100000);
	case 10: return PICK(0xffff800000000000, 0xffffffffff600000, 0xffffffff81000000, 0xfffffffffffff000, ~0ul);
	case 11: return PICK(0x800000000000, 0x7ffffffff000, 0x7fffffffffff, 0x0000800000001000, 1ul << 63);
	case 12: return naddrs ? addrs[rnd() % naddrs] + rnd() % 64 : (uint64_t)arena;
	case 13: return PICK(0x1000, 0x10000, 0x400000, 0x1, 0xfff);
	case 14: return (uint64_t)arena + 1 + 8 * (rnd() % 64);
	default: return (uint64_t)arena + ARENA_PAGES * PAGE - rnd() % 64;
	}
}

static const char *const names[] = {"a", "b", "c", "dir", "dir/a", "dir/sub", "f.txt", "fifo", "sock",
				    "link", ".", "x/y", "", "a-rather-long-file-name-0123456789"};

/* A path argument: a short relative name in a path buffer, or something that is no name. */
static uint64_t gen_path(int which)
{
	switch (rnd() % 10) {
	case 0: return PICK(0, 0x1, (uint64_t)edge + PAGE + 8, 0x800000000000, KM_RT);
	case 1: return (uint64_t)pathedge + PAGE - 1 - rnd() % 16; /* unterminated before PROT_NONE */
	case 2: return rnd() & 1 ? (uint64_t)longname : (uint64_t)longpath;
	case 3: return PICK((uint64_t)hole, KM_RT + 0x100, 0xffff800000000000, (uint64_t)edge + PAGE);
	default: {
		const char *n = names[rnd() % (sizeof(names) / sizeof(names[0]))];
		char *p = paths[which];
		while ((*p++ = *n++) != 0)
			;
		return (uint64_t)paths[which];
	}
	}
}

/* --- protected state -------------------------------------------------------------------- */

static int hits_protected(uint64_t addr, uint64_t len)
{
	uint64_t end = addr + ((len + PAGE - 1) & ~(PAGE - 1));
	if (end < addr || len > ~0ul - PAGE)
		end = ~0ul;
	for (size_t i = 0; i < sizeof(prot_ranges) / sizeof(prot_ranges[0]); i++)
		if (addr < prot_ranges[i].end && end > (prot_ranges[i].start & ~(PAGE - 1)))
			return 1;
	return 0;
}

/* Signals the fuzzer ignores: the only ones it sends itself, and those a call may raise. */
static const int ignored[] = {SIGCHLD, SIGURG, SIGWINCH, SIGCONT, SIGPIPE, SIGIO, SIGUSR1, SIGUSR2, SIGALRM,
			      SIGHUP, SIGTERM, SIGINT, SIGQUIT, SIGXFSZ, SIGPROF, SIGVTALRM, SIGTSTP, SIGTTIN,
			      SIGTTOU, 40};

static void ignore_signals(void)
{
	struct { uint64_t handler, flags, restorer, mask; } sa = {(uint64_t)SIG_IGN, 0, 0, 0};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		sc(SYS_rt_sigaction, ignored[i], (long)&sa, 0, 8, 0, 0);
}

static uint64_t gen_sig(void)
{
	return rnd() % 8 == 0 ? 0 : (uint64_t)ignored[rnd() % (sizeof(ignored) / sizeof(ignored[0]))];
}

/* --- which calls, with which arguments ---------------------------------------------------- */

/* Calls never made: they end, stop or block the fuzzer, or change the world outside DIR. */
static const int denied[] = {
    SYS_exit, SYS_exit_group, SYS_rt_sigreturn, SYS_pause, SYS_rt_sigsuspend, SYS_rt_sigtimedwait,
    SYS_rt_sigqueueinfo, SYS_rt_tgsigqueueinfo, SYS_wait4, SYS_waitid, SYS_fork, SYS_vfork, SYS_clone,
    SYS_clone3, SYS_execve, SYS_execveat, SYS_ptrace, SYS_reboot, SYS_kexec_load, SYS_kexec_file_load,
    SYS_mount, SYS_umount2, SYS_swapon, SYS_swapoff, SYS_pivot_root, SYS_chroot, SYS_acct,
    SYS_settimeofday, SYS_clock_settime, SYS_adjtimex, SYS_clock_adjtime, SYS_sethostname,
    SYS_setdomainname, SYS_iopl, SYS_ioperm, SYS_init_module, SYS_delete_module, SYS_finit_module,
    SYS_quotactl, 443 /* quotactl_fd */, SYS_setuid, SYS_setgid, SYS_setreuid, SYS_setregid,
    SYS_setgroups, SYS_setresuid, SYS_setresgid, SYS_setfsuid, SYS_setfsgid, SYS_capset, SYS_setsid,
    SYS_vhangup, SYS_syslog, SYS_unshare, SYS_setns, SYS_bpf, SYS_perf_event_open,
    SYS_process_vm_readv, SYS_process_vm_writev, SYS_kcmp, 434 /* pidfd_open */,
    424 /* pidfd_send_signal */, 438 /* pidfd_getfd */, 440 /* process_madvise */,
    448 /* process_mrelease */, SYS_fanotify_init, SYS_fanotify_mark, SYS_open_by_handle_at,
    SYS_keyctl, SYS_add_key, SYS_request_key, 428, 429, 430, 431, 432, 433 /* new mount API */,
    442 /* mount_setattr */, SYS_userfaultfd, 425, 426, 427 /* io_uring */, SYS_io_setup,
    SYS_io_destroy, SYS_io_submit, SYS_io_cancel, SYS_io_getevents, SYS_io_pgetevents,
    SYS_migrate_pages, SYS_move_pages, SYS_mbind, SYS_set_mempolicy, 450 /* set_mempolicy_home_node */,
    SYS_sched_setaffinity, SYS_sched_setscheduler, SYS_sched_setparam, SYS_sched_setattr,
    SYS_ioprio_set, SYS_modify_ldt, SYS_alarm, SYS_setitimer, SYS_timer_create, SYS_msgget,
    SYS_msgsnd, SYS_msgrcv, SYS_msgctl, SYS_semget, SYS_semop, SYS_semctl, SYS_semtimedop,
    SYS_shmget, SYS_shmat, SYS_shmctl, SYS_shmdt, SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend,
    SYS_mq_timedreceive, SYS_mq_notify, SYS_mq_getsetattr, 449 /* futex_waitv */,
    455 /* futex_wait */, 462 /* mseal */, 446 /* landlock_restrict_self */, SYS_nfsservctl,
    SYS_lookup_dcookie, SYS_uselib, SYS_create_module, SYS_get_kernel_syms, SYS_query_module,
    SYS_vserver, SYS__sysctl, SYS_sync, SYS_syncfs, 467 /* open_tree_attr */,
    SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr, SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr,
    463, 466 /* setxattrat, removexattrat */, SYS_remap_file_pages, SYS_vmsplice,
    SYS_sched_rr_get_interval, SYS_inotify_init /* fine, but km's table has it: kept below */};

static int is_denied(uint64_t nr)
{
	uint64_t n = nr & 0xffffffffu & ~0x40000000ul; /* the kernel's view: low 32 bits, x32 bit off */
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++)
		if (n == (uint64_t)denied[i] && n != SYS_inotify_init)
			return 1;
	return 0;
}

/* km's handlers and their argument kinds (km/sys/km_sys_*.c): f fd, p pointer, s path, x flags,
 * d integer, u size, o mode. Calls not listed get arguments of any kind. */
static const struct sig {
	int nr;
	const char *args;
} sigs[] = {
    {SYS_read, "fpu"}, {SYS_write, "fpu"}, {SYS_pread64, "fpud"}, {SYS_pwrite64, "fpud"},
    {SYS_readv, "fpd"}, {SYS_writev, "fpd"}, {SYS_preadv, "fpddd"}, {SYS_pwritev, "fpddd"},
    {SYS_preadv2, "fpdddx"}, {SYS_pwritev2, "fpdddx"}, {SYS_open, "sxo"}, {SYS_openat, "fsxo"},
    {437, "fspu"}, {SYS_creat, "so"}, {SYS_close, "f"}, {436, "uux"}, {SYS_lseek, "fdd"},
    {SYS_stat, "sp"}, {SYS_fstat, "fp"}, {SYS_lstat, "sp"}, {SYS_newfstatat, "fspx"},
    {SYS_statx, "fsxxp"}, {SYS_statfs, "sp"}, {SYS_fstatfs, "fp"}, {SYS_getdents64, "fpu"},
    {SYS_getdents, "fpu"}, {SYS_access, "so"}, {SYS_faccessat, "fso"}, {439, "fsox"},
    {SYS_rename, "ss"}, {SYS_renameat, "fsfs"}, {SYS_renameat2, "fsfsx"}, {SYS_unlink, "s"},
    {SYS_unlinkat, "fsx"}, {SYS_mkdir, "so"}, {SYS_mkdirat, "fso"}, {SYS_rmdir, "s"},
    {SYS_link, "ss"}, {SYS_linkat, "fsfsx"}, {SYS_symlink, "ss"}, {SYS_symlinkat, "sfs"},
    {SYS_readlink, "spd"}, {SYS_readlinkat, "fspd"}, {SYS_chmod, "so"}, {SYS_fchmod, "fo"},
    {SYS_fchmodat, "fso"}, {452, "fsox"}, {SYS_chown, "sdd"}, {SYS_fchown, "fdd"},
    {SYS_lchown, "sdd"}, {SYS_fchownat, "fsddx"}, {SYS_umask, "o"}, {SYS_truncate, "sd"},
    {SYS_ftruncate, "fd"}, {SYS_fsync, "f"}, {SYS_fdatasync, "f"}, {SYS_fallocate, "fxdd"},
    {SYS_fadvise64, "fddd"}, {SYS_sync_file_range, "fddx"}, {SYS_utimensat, "fspx"},
    {SYS_futimesat, "fsp"}, {SYS_utime, "sp"}, {SYS_utimes, "sp"}, {SYS_getcwd, "pu"},
    {SYS_chdir, "s"}, {SYS_fchdir, "f"}, {SYS_pipe, "p"}, {SYS_pipe2, "px"}, {SYS_dup, "f"},
    {SYS_dup2, "ff"}, {SYS_dup3, "ffx"}, {SYS_fcntl, "fdx"}, {SYS_flock, "fd"}, {SYS_ioctl, "fxp"},
    {SYS_poll, "pud"}, {SYS_ppoll, "puppu"}, {SYS_select, "dpppp"}, {SYS_pselect6, "dppppp"},
    {SYS_sendfile, "ffpu"}, {SYS_copy_file_range, "fpfpux"}, {SYS_splice, "fpfpux"},
    {SYS_tee, "ffux"}, {SYS_mknod, "sox"}, {SYS_mknodat, "fsox"}, {SYS_memfd_create, "sx"},
    {SYS_eventfd, "u"}, {SYS_eventfd2, "ux"}, {SYS_inotify_init, ""}, {SYS_inotify_init1, "x"},
    {SYS_inotify_add_watch, "fsx"}, {SYS_inotify_rm_watch, "fd"}, {SYS_name_to_handle_at, "fsppx"},
    {SYS_epoll_create, "d"}, {SYS_epoll_create1, "x"}, {SYS_epoll_ctl, "fdfp"},
    {SYS_epoll_wait, "fpdd"}, {SYS_epoll_pwait, "fpddpu"}, {441, "fpdppu"},
    {SYS_brk, "p"}, {SYS_mmap, "puxxfx"}, {SYS_munmap, "pu"}, {SYS_mprotect, "pux"},
    {SYS_mremap, "puuxp"}, {SYS_madvise, "pud"}, {SYS_msync, "pux"}, {SYS_mincore, "pup"},
    {SYS_mlock, "pu"}, {SYS_munlock, "pu"}, {SYS_mlockall, "x"}, {SYS_munlockall, ""},
    {SYS_uname, "p"}, {SYS_getrandom, "pux"}, {SYS_sysinfo, "p"}, {SYS_getcpu, "ppp"},
    {SYS_personality, "x"}, {SYS_socket, "ddd"}, {SYS_socketpair, "dddp"}, {SYS_bind, "fpd"},
    {SYS_connect, "fpd"}, {SYS_listen, "fd"}, {SYS_accept, "fpp"}, {SYS_accept4, "fppx"},
    {SYS_getsockname, "fpp"}, {SYS_getpeername, "fpp"}, {SYS_sendto, "fpuxpd"},
    {SYS_recvfrom, "fpuxpp"}, {SYS_sendmsg, "fpx"}, {SYS_recvmsg, "fpx"}, {SYS_sendmmsg, "fpux"},
    {SYS_recvmmsg, "fpuxp"}, {SYS_shutdown, "fd"}, {SYS_setsockopt, "fddpd"},
    {SYS_getsockopt, "fddpp"}, {SYS_getpid, ""}, {SYS_gettid, ""}, {SYS_getppid, ""},
    {SYS_set_tid_address, "p"}, {SYS_set_robust_list, "pu"}, {SYS_get_robust_list, "dpp"},
    {SYS_arch_prctl, "xp"}, {SYS_prlimit64, "ddpp"}, {SYS_getrlimit, "dp"}, {SYS_setrlimit, "dp"},
    {SYS_getrusage, "dp"}, {SYS_rt_sigaction, "dppu"}, {SYS_rt_sigprocmask, "dppu"},
    {SYS_rt_sigpending, "pu"}, {SYS_sigaltstack, "pp"}, {SYS_kill, "dd"}, {SYS_tgkill, "ddd"},
    {SYS_tkill, "dd"}, {SYS_futex, "pddppd"}, {SYS_sched_yield, ""}, {SYS_sched_getaffinity, "dup"},
    {SYS_prctl, "dxxxx"}, {SYS_getuid, ""}, {SYS_geteuid, ""}, {SYS_getgid, ""}, {SYS_getegid, ""},
    {SYS_getgroups, "dp"}, {SYS_getresuid, "ppp"}, {SYS_getresgid, "ppp"}, {SYS_getpgrp, ""},
    {SYS_getpgid, "d"}, {SYS_getsid, "d"}, {SYS_setpgid, "dd"}, {SYS_getpriority, "dd"},
    {SYS_setpriority, "ddd"}, {SYS_rseq, "puxx"}, {SYS_clock_gettime, "dp"},
    {SYS_clock_getres, "dp"}, {SYS_gettimeofday, "pp"}, {SYS_time, "p"}, {SYS_nanosleep, "pp"},
    {SYS_clock_nanosleep, "ddpp"}, {SYS_times, "p"},
};
#define NSIGS (sizeof(sigs) / sizeof(sigs[0]))

static uint64_t gen_nr(void)
{
	switch (rnd() % 32) {
	case 0: return 471 + rnd() % 130;
	case 1: return PICK(0x40000000ul | 1, 0x40000000ul | 39, (1ul << 32) | 39, ~0ul, 0x80000000ul, 1ul << 63);
	case 2: case 3: case 4: case 5: case 6: case 7: return rnd() % 471;
	default: return (uint64_t)sigs[rnd() % NSIGS].nr;
	}
}

static const char *args_of(uint64_t nr)
{
	for (size_t i = 0; i < NSIGS; i++)
		if ((uint64_t)sigs[i].nr == nr)
			return sigs[i].args;
	return NULL;
}

static uint64_t gen_arg(char kind, int *npath)
{
	switch (kind) {
	case 'f': return gen_fd();
	case 'p': return gen_ptr();
	case 's': return gen_path((*npath)++ & 1);
	case 'u': return gen_len();
	case 'o': return rnd() % 3 ? rnd() % 010000 : gen_int();
	default: return gen_int();
	}
}

/* --- making one call safe (see the header) ------------------------------------------------ */

static uint64_t safe_ptr_or(uint64_t good)
{
	return rnd() % 8 ? good : PICK((uint64_t)hole, (uint64_t)edge + PAGE, KM_RT, 0xffff800000000000, 0x800000000000);
}

static uint64_t safe_sockaddr(uint64_t *len)
{
	switch (rnd() % 5) {
	case 0:
		sa_un.sun_family = AF_UNIX;
		memcpy(sa_un.sun_path, rnd() & 1 ? "sock" : "dir/s", 6);
		*len = rnd() % 4 ? sizeof(sa_un) : rnd() % 200;
		return (uint64_t)&sa_un;
	case 1:
		sa_in = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		*len = rnd() % 4 ? sizeof(sa_in) : rnd() % 64;
		return (uint64_t)&sa_in;
	case 2:
		sa_in6 = (struct sockaddr_in6){.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		*len = rnd() % 4 ? sizeof(sa_in6) : rnd() % 64;
		return (uint64_t)&sa_in6;
	case 3:
		sa_in = (struct sockaddr_in){.sin_family = (sa_family_t)PICK(AF_UNSPEC, 0xffff, 17, 16)};
		*len = sizeof(sa_in);
		return (uint64_t)&sa_in;
	default:
		*len = gen_len();
		return safe_ptr_or(0);
	}
}

static void build_msgs(void)
{
	for (int i = 0; i < 2; i++) {
		uint64_t len = 0;
		iovs[i] = (struct iovec){(void *)gen_ptr(), gen_len()};
		msgs[i] = (struct msghdr){.msg_iov = rnd() % 4 ? &iovs[i] : (void *)gen_ptr(), .msg_iovlen = rnd() % 3};
		if (rnd() & 1) {
			msgs[i].msg_name = (void *)safe_sockaddr(&len);
			msgs[i].msg_namelen = (socklen_t)len;
		}
		if (rnd() % 3 == 0) {
			cmsg.h.cmsg_level = SOL_SOCKET;
			cmsg.h.cmsg_type = SCM_RIGHTS;
			cmsg.h.cmsg_len = CMSG_LEN(3 * sizeof(int));
			for (int k = 0; k < 3; k++)
				((int *)CMSG_DATA(&cmsg.h))[k] = (int)gen_fd();
			msgs[i].msg_control = &cmsg;
			msgs[i].msg_controllen = rnd() % 4 ? sizeof(cmsg) : gen_len();
		}
	}
}

/* Whether fd's file may have its metadata or size changed: in DIR's filesystem, a pipe or a
 * socket (never a device, never km's). */
static int own_file(uint64_t fd)
{
	struct stat st;
	if ((uint32_t)fd == FD_ERR || (uint32_t)fd == FD_LOG || (uint32_t)fd == FD_OUT || (uint32_t)fd >= 1000)
		return 0;
	if (SC2(SYS_fstat, fd, &st) < 0)
		return 1; /* EBADF either way */
	return st.st_dev == dir_dev || S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode);
}

/* Whether a path buffer names a FIFO (opening one without O_NONBLOCK blocks). */
static int is_fifo(uint64_t path)
{
	struct stat st;
	return (path == (uint64_t)paths[0] || path == (uint64_t)paths[1]) && SC2(SYS_stat, path, &st) == 0 &&
	       S_ISFIFO(st.st_mode);
}

static const uint64_t ioctls[] = {
    0x541B /* FIONREAD */, 0x5421 /* FIONBIO */, 0x5450 /* FIONCLEX */, 0x5451 /* FIOCLEX */,
    0x5452 /* FIOASYNC */, 0x5460 /* FIOQSIZE */, 0x5401 /* TCGETS */, 0x5413 /* TIOCGWINSZ */,
    0x80086601 /* FS_IOC_GETFLAGS */, 0x80087601 /* FS_IOC_GETVERSION */, 0x80081272 /* BLKGETSIZE64 */,
    0x8912 /* SIOCGIFCONF */, 0x8933 /* SIOCGIFINDEX */, 0xAE00 /* KVM_GET_API_VERSION */,
    0xAE01 /* KVM_CREATE_VM */, 0xAE80 /* KVM_RUN */, 0x4020AE46 /* KVM_SET_USER_MEMORY_REGION */,
    0x8090AE81 /* KVM_GET_REGS */, 0x4090AE82 /* KVM_SET_REGS */, 0, 0xffffffff};

/* Rewrites a[] so that the call is harmless to the host and to the fuzzer (see the header);
 * returns 0 to skip the call. */
static int make_safe(uint64_t nr, uint64_t *a)
{
	uint64_t len;
	switch (nr) {
	case SYS_open: a[1] |= O_NONBLOCK; break;
	case SYS_creat: if (is_fifo(a[0])) return 0; break;
	case SYS_openat: a[2] |= O_NONBLOCK; break;
	case 437: /* openat2 */
		how.flags = gen_int() | O_NONBLOCK;
		how.mode = rnd() % 010000;
		how.resolve = gen_int() & 0x3f;
		a[2] = safe_ptr_or((uint64_t)&how);
		a[3] = rnd() % 4 ? sizeof(how) : gen_len();
		break;
	case SYS_mknod: case SYS_mknodat: {
		int m = nr == SYS_mknod ? 1 : 2;
		a[m] = (a[m] & 07777) | PICK(S_IFREG, S_IFIFO, S_IFSOCK, 0);
		break;
	}
	case SYS_flock: a[1] |= LOCK_NB; break;
	case SYS_fcntl:
		a[1] = rnd() % 2 ? PICK(F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_GETLK, F_SETLK, F_SETLKW,
					F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG, F_SETOWN_EX, F_GETOWN_EX, F_OFD_GETLK,
					F_OFD_SETLK, F_OFD_SETLKW, F_SETLEASE, F_GETLEASE, F_NOTIFY, F_DUPFD_CLOEXEC,
					F_SETPIPE_SZ, F_GETPIPE_SZ, F_ADD_SEALS, F_GET_SEALS, 1027 /* F_DUPFD_QUERY */)
				 : gen_int();
		if (a[1] == F_SETLEASE) /* a lease makes the next open or truncate of the file wait */
			a[1] = F_GETLEASE;
		if (a[1] == F_SETLKW || a[1] == F_OFD_SETLKW)
			a[1] = a[1] == F_SETLKW ? F_SETLK : F_OFD_SETLK;
		if (a[1] == F_SETOWN)
			a[2] = rnd() & 1 ? 0 : (uint64_t)pid;
		if (a[1] == F_SETOWN_EX) {
			owner_ex.type = (int)PICK(0 /* F_OWNER_TID */, 1 /* F_OWNER_PID */);
			owner_ex.pid = (int)pid;
			a[2] = safe_ptr_or((uint64_t)&owner_ex);
		}
		if (a[1] == F_SETSIG)
			a[2] = gen_sig();
		if ((a[1] == F_GETLK || a[1] == F_SETLK || a[1] == F_OFD_GETLK || a[1] == F_OFD_SETLK) && rnd() % 2)
			a[2] = gen_ptr();
		if (a[1] == F_SETPIPE_SZ && a[2] > MAX_LEN)
			a[2] = MAX_LEN;
		break;
	case SYS_ioctl: a[1] = ioctls[rnd() % (sizeof(ioctls) / sizeof(ioctls[0]))]; break;
	case SYS_fchmod: case SYS_fchown: case SYS_ftruncate: case SYS_fallocate:
		if (!own_file(a[0]))
			return 0;
		if (nr == SYS_fallocate && a[3] > MAX_LEN)
			a[3] = rnd() % MAX_LEN;
		break;
	case SYS_sendfile: if (a[3] > MAX_LEN) a[3] = rnd() % MAX_LEN; break;
	case SYS_copy_file_range: case SYS_splice:
		if (a[4] > MAX_LEN)
			a[4] = rnd() % MAX_LEN;
		if (nr == SYS_splice)
			a[5] |= 2; /* SPLICE_F_NONBLOCK */
		break;
	case SYS_tee: if (a[2] > MAX_LEN) a[2] = rnd() % MAX_LEN; a[3] |= 2; break;
	case SYS_poll: a[2] = 0; break;
	case SYS_ppoll: zero_ts = (struct timespec){0, 0}; a[2] = safe_ptr_or((uint64_t)&zero_ts); break;
	case SYS_select: zero_tv.sec = zero_tv.usec = 0; a[4] = safe_ptr_or((uint64_t)&zero_tv); break;
	case SYS_pselect6: zero_ts = (struct timespec){0, 0}; a[4] = safe_ptr_or((uint64_t)&zero_ts); break;
	case SYS_epoll_wait: case SYS_epoll_pwait: a[3] = 0; break;
	case 441: zero_ts = (struct timespec){0, 0}; a[3] = safe_ptr_or((uint64_t)&zero_ts); break;
	case SYS_futex: zero_ts = (struct timespec){0, 0}; a[3] = safe_ptr_or((uint64_t)&zero_ts); break;
	case SYS_nanosleep: zero_ts = (struct timespec){0, 0}; a[0] = safe_ptr_or((uint64_t)&zero_ts); break;
	case SYS_clock_nanosleep: zero_ts = (struct timespec){0, 0}; a[2] = safe_ptr_or((uint64_t)&zero_ts); break;
	case SYS_recvfrom: case SYS_recvmsg: a[nr == SYS_recvfrom ? 3 : 2] |= MSG_DONTWAIT; break;
	case SYS_recvmmsg:
		a[3] |= MSG_DONTWAIT;
		zero_ts = (struct timespec){0, 0};
		a[4] = rnd() & 1 ? 0 : safe_ptr_or((uint64_t)&zero_ts);
		break;
	case SYS_kill: a[0] = (uint64_t)pid; a[1] = gen_sig(); break;
	case SYS_tkill: a[0] = (uint64_t)pid; a[1] = gen_sig(); break;
	case SYS_tgkill: a[0] = a[1] = (uint64_t)pid; a[2] = gen_sig(); break;
	case SYS_setpgid: a[0] = rnd() & 1 ? 0 : (uint64_t)pid; a[1] = rnd() & 1 ? 0 : (uint64_t)pid; break;
	case SYS_setpriority: a[0] = 0 /* PRIO_PROCESS */; a[1] = rnd() & 1 ? 0 : (uint64_t)pid; a[2] = rnd() % 20; break;
	case SYS_prlimit64: case SYS_setrlimit: {
		/* km applies these to itself (RLIMIT_NOFILE excepted): a CPU, file size, address space
		 * or data limit then ends or starves km, not the guest (reported, not fuzzed). */
		int r = nr == SYS_prlimit64;
		if (r)
			a[0] = rnd() & 1 ? 0 : (uint64_t)pid;
		uint32_t res = (uint32_t)a[r]; /* the kernel and km read an int */
		if (res == RLIMIT_CPU || res == RLIMIT_FSIZE || res == RLIMIT_AS || res == RLIMIT_DATA)
			a[r] = RLIMIT_NOFILE;
		break;
	}
	case SYS_socket: case SYS_socketpair:
		a[0] = nr == SYS_socketpair ? PICK(AF_UNIX, 1000, ~0ul) : PICK(AF_UNIX, AF_INET, AF_INET6, 1000, ~0ul);
		a[1] = PICK(SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, 1000) | (rnd() & (SOCK_NONBLOCK | SOCK_CLOEXEC));
		a[2] = rnd() % 8 ? 0 : ~0ul;
		break;
	case SYS_bind: case SYS_connect: a[1] = safe_sockaddr(&len); a[2] = len; break;
	case SYS_sendto: a[3] |= MSG_DONTWAIT; a[4] = safe_sockaddr(&len); a[5] = len; break;
	case SYS_sendmsg: build_msgs(); a[1] = safe_ptr_or((uint64_t)&msgs[0]); a[2] |= MSG_DONTWAIT; break;
	case SYS_sendmmsg: build_msgs(); a[1] = safe_ptr_or((uint64_t)msgs); a[2] %= 4; a[3] |= MSG_DONTWAIT; break;
	case SYS_setsockopt: a[1] = PICK(SOL_SOCKET, IPPROTO_TCP, 9999); break;
	case SYS_close_range:
		if ((uint32_t)a[0] <= FD_ERR && (uint32_t)a[1] >= FD_ERR)
			a[0] = FD_ERR + 1;
		if (a[0] <= FD_OUT && a[1] >= FD_LOG) {
			if (rnd() & 1)
				a[1] = FD_LOG - 1;
			else
				a[0] = FD_OUT + 1;
		}
		break;
	case SYS_brk: if (a[0] != 0 && a[0] < brk0) a[0] = brk0; break;
	case SYS_mmap:
		if ((a[3] & (MAP_FIXED | MAP_FIXED_NOREPLACE)) && hits_protected(a[0], a[1]))
			return 0;
		if (a[4] < 64 && rnd() % 2)
			a[3] &= ~(uint64_t)MAP_ANONYMOUS;
		break;
	case SYS_munmap: case SYS_mprotect: case SYS_madvise:
		if (hits_protected(a[0], a[1]))
			return 0;
		if (nr == SYS_madvise && (a[2] == 100 || a[2] == 101)) /* MADV_HWPOISON, MADV_SOFT_OFFLINE */
			return 0;
		break;
	case SYS_mremap:
		if (hits_protected(a[0], a[1]) || ((a[3] & MREMAP_FIXED) && hits_protected(a[4], a[2])))
			return 0;
		break;
	case SYS_arch_prctl:
		if (rnd() & 1)
			a[0] = PICK(0x1001, 0x1002, 0x1003, 0x1004, 0x1011, 0x1012, 0x2001, 0x2002, 0x3001);
		break;
	}
	return 1;
}

/* fds below FD_LOG are the fuzzer's own: made non-blocking before a call that takes one. */
static void nonblock(const char *args, const uint64_t *a)
{
	for (int i = 0; args != NULL && args[i]; i++) {
		/* The kernel takes an fd as a 32-bit int: 0x100000000 is fd 0. */
		uint32_t fd = (uint32_t)a[i];
		if (args[i] != 'f' || fd >= FD_LOG)
			continue;
		long fl = SC3(SYS_fcntl, fd, F_GETFL, 0);
		if (fl >= 0 && !(fl & O_NONBLOCK))
			SC3(SYS_fcntl, fd, F_SETFL, fl | O_NONBLOCK);
	}
}

static void remember(uint64_t nr, long ret)
{
	if (ret < 0 && ret > -4096)
		return;
	switch (nr) {
	case SYS_open: case SYS_openat: case 437: case SYS_creat: case SYS_dup: case SYS_dup2:
	case SYS_dup3: case SYS_socket: case SYS_accept: case SYS_accept4: case SYS_eventfd:
	case SYS_eventfd2: case SYS_epoll_create: case SYS_epoll_create1: case SYS_inotify_init:
	case SYS_inotify_init1: case SYS_memfd_create:
		if (ret < FD_LOG && ret != FD_ERR)
			fds[nfds < NPOOL ? nfds++ : rnd() % NPOOL] = ret;
		break;
	case SYS_mmap: case SYS_mremap:
		addrs[naddrs < NPOOL ? naddrs++ : rnd() % NPOOL] = ret;
		break;
	}
}

/* After the call: what the fuzzer relies on, put back. */
static void repair(uint64_t nr)
{
	if (nr == SYS_rt_sigaction)
		ignore_signals();
	if (nr == SYS_arch_prctl)
		SC2(SYS_arch_prctl, 0x1002 /* ARCH_SET_FS */, fs_base);
	if (nr == SYS_chdir || nr == SYS_fchdir) {
		long n = SC2(SYS_getcwd, cwdbuf, sizeof(cwdbuf));
		if (n <= 0 || memcmp(cwdbuf, dir, dirlen) != 0 || (cwdbuf[dirlen] != '/' && cwdbuf[dirlen] != 0))
			SC2(SYS_chdir, dir, 0);
	}
}

static void log_call(uint64_t i, uint64_t nr, const uint64_t *a, const char *note)
{
	char b[256], *p = b;
	*p++ = '#';
	p = put_dec(p, i);
	*p++ = ' ';
	p = put_dec(p, nr);
	for (int k = 0; k < 6; k++) {
		*p++ = ' ';
		p = put_hex(p, a[k]);
	}
	if (note != NULL)
		p = put_str(p, note);
	*p++ = '\n';
	out(FD_LOG, b, p);
}

static void log_ret(long ret)
{
	char b[32], *p = b;
	p = put_str(p, "= ");
	if (ret < 0) {
		*p++ = '-';
		p = put_dec(p, (uint64_t)-ret);
	} else {
		p = put_hex(p, (uint64_t)ret);
	}
	*p++ = '\n';
	out(FD_LOG, b, p);
}

/* --- setup: libc may be used here, not after ---------------------------------------------- */

static void *map(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		write(2, "sysfuzz: mmap failed\n", 21);
		exit(2);
	}
	return p;
}

static void setup(uint64_t seed, const char *d)
{
	rng = seed * 0x9e3779b97f4a7c15ull + 0x1234567;
	if (rng == 0)
		rng = 1;
	size_t n = strlen(d);
	if (d[0] != '/' || n + 1 >= sizeof(dir) || chdir(d) < 0) {
		write(2, "sysfuzz: DIR must be an absolute path to an existing directory\n", 63);
		exit(2);
	}
	memcpy(dir, d, n + 1);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = 0;
	dirlen = n;
	struct stat st;
	if (stat(".", &st) < 0)
		exit(2);
	dir_dev = st.st_dev;
	pid = getpid();
	SC2(SYS_arch_prctl, 0x1003 /* ARCH_GET_FS */, &fs_base);

	/* stdin and stdout become a file in DIR; the log and the closing line keep stdout's file.
	 * fd 2 is left alone and never named by a call: it is km's too, where km reports. */
	if (dup2(1, FD_OUT) < 0)
		exit(2);
	int lf = verbose ? FD_OUT : open("sysfuzz.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	if (lf < 0 || dup2(lf, FD_LOG) < 0)
		exit(2);
	int sf = open("stdio", O_RDWR | O_CREAT | O_TRUNC, 0644);
	if (sf < 0 || dup2(sf, 0) < 0 || dup2(sf, 1) < 0)
		exit(2);
	if (lf != FD_OUT)
		close(lf);
	close(sf);

	arena = map(ARENA_PAGES * PAGE, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < ARENA_PAGES * PAGE; i++) {
		arena[i] = (uint8_t)rnd();
		if (arena[i] == '/') /* what a call reads as a path from here is never absolute */
			arena[i] = 'x';
	}
	edge = map(2 * PAGE, PROT_READ | PROT_WRITE);
	mprotect(edge + PAGE, PAGE, PROT_NONE);
	pathedge = map(2 * PAGE, PROT_READ | PROT_WRITE);
	memset(pathedge, 'a', PAGE);
	mprotect(pathedge + PAGE, PAGE, PROT_NONE);
	hole = map(PAGE, PROT_READ);
	munmap(hole, PAGE);
	memset(longname, 'n', sizeof(longname) - 1);
	for (size_t i = 0; i + 1 < sizeof(longpath); i++)
		longpath[i] = i % 2 ? '/' : 'p';

	brk0 = (uint64_t)sbrk(0);
	uint64_t sp = (uint64_t)__builtin_frame_address(0);
	stack_lo = (sp & ~(PAGE - 1)) - (32ul << 20);
	prot_ranges[0] = (struct range){(uint64_t)__executable_start, brk0};
	prot_ranges[1] = (struct range){stack_lo, KM_RT};
	prot_ranges[2] = (struct range){(uint64_t)pathedge, (uint64_t)pathedge + 2 * PAGE};
	prot_ranges[3] = prot_ranges[2];
	ignore_signals();
}

static uint64_t number(const char *s)
{
	char *end;
	uint64_t v = strtoull(s, &end, 0);
	if (*s == 0 || *end != 0) {
		write(2, "usage: sysfuzz [-v] SEED COUNT DIR\n", 35);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	int k = 1;
	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = 1;
		k++;
	}
	if (argc - k != 3) {
		write(2, "usage: sysfuzz [-v] SEED COUNT DIR\n", 35);
		return 2;
	}
	uint64_t seed = number(argv[k]), count = number(argv[k + 1]);
	setup(seed, argv[k + 2]);

	for (uint64_t i = 0; i < count; i++) {
		uint64_t nr = gen_nr(), a[6];
		const char *args = args_of(nr);
		int npath = 0;
		for (int j = 0; j < 6; j++)
			a[j] = args != NULL ? (args[j] ? gen_arg(args[j], &npath) : gen_int())
					    : gen_arg("fpsxdu"[rnd() % 6], &npath);
		if (is_denied(nr) || !make_safe(nr, a)) {
			log_call(i, nr, a, " skipped");
			continue;
		}
		log_call(i, nr, a, NULL);
		nonblock(args, a);
		long ret = sc((long)nr, (long)a[0], (long)a[1], (long)a[2], (long)a[3], (long)a[4], (long)a[5]);
		log_ret(ret);
		remember(nr, ret);
		repair(nr);
	}
	char b[96], *p = b;
	p = put_str(p, "sysfuzz: done ");
	p = put_dec(p, seed);
	*p++ = ' ';
	p = put_dec(p, count);
	*p++ = '\n';
	out(FD_OUT, b, p);
	sc(SYS_exit_group, 0, 0, 0, 0, 0, 0); /* not exit(): no libc after setup */
	return 0;
}
