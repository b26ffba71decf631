/* Process and thread syscalls: exit, ids, arch_prctl, limits, signal dispositions, futex. */
#include <asm/prctl.h>
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/fsuid.h>
#include <sys/time.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_rlimit.h"
#include "km_signal.h"
#include "km_snapshot_live.h"
#include "km_sys_util.h"
#include "km_syscall.h"
#include "km_vdso.h"

#define MM(v) (&(v)->g->mm)
#define MSR_GS_BASE 0xc0000101
#define NGROUPS_MAX_KERNEL 65536 /* the kernel's NGROUPS_MAX (glibc's header says 65536 too) */
#define KM_SS_AUTODISARM (1u << 31) /* <asm/signal.h>; glibc does not export it */

KM_SYSCALL(getpid)
{
	return v->g->pid;
}

/* A forked child's parent is its parent km, whose guest may see another pid (a resumed one): while
 * that km is the parent, the child sees the pid its parent's getpid() gives. */
KM_SYSCALL(getppid)
{
	pid_t pp = getppid();
	return v->g->ppid_host != 0 && pp == v->g->ppid_host ? v->g->ppid_guest : pp;
}

KM_SYSCALL(arch_prctl)
{
	uint64_t val;
	switch (a[0]) {
	case ARCH_SET_FS:
		if (a[1] >= KM_USER_TOP)
			return -EPERM;
		return km_vcpu_set_fs_base(v, a[1]);
	case ARCH_GET_FS:
		val = km_vcpu_get_fs_base(v);
		return km_copy_to_guest(MM(v), a[1], &val, sizeof(val));
	case ARCH_SET_GS: {
		if (a[1] >= KM_USER_TOP)
			return -EPERM;
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} m = {.h.nmsrs = 1, .e = {.index = MSR_GS_BASE, .data = a[1]}};
		return ioctl(v->fd, KVM_SET_MSRS, &m) == 1 ? 0 : -EINVAL;
	}
	case ARCH_GET_GS: {
		struct {
			struct kvm_msrs h;
			struct kvm_msr_entry e;
		} m = {.h.nmsrs = 1, .e = {.index = MSR_GS_BASE}};
		val = ioctl(v->fd, KVM_GET_MSRS, &m) == 1 ? m.e.data : 0;
		return km_copy_to_guest(MM(v), a[1], &val, sizeof(val));
	}
	default:
		return -EINVAL;
	}
}

/* Each limit is applied on the host or kept for the guest (km_rlimit.h). As in Linux, a new
 * limit is in force even when the old one cannot be written back. */
KM_SYSCALL(prlimit64)
{
	int res = (int)a[1];
	struct rlimit nl, ol;
	if (a[2] != 0 && km_copy_from_guest(MM(v), &nl, a[2], sizeof(nl)) < 0)
		return -EFAULT;
	if (a[0] != 0 && (pid_t)a[0] != v->g->pid)
		return -ESRCH; /* other processes' limits are not the guest's to see */
	if (res < 0 || res >= RLIM_NLIMITS)
		return -EINVAL;
	if (a[2] != 0 && !km_rlimit_emulated(res)) {
		if (nl.rlim_cur > nl.rlim_max)
			return -EINVAL;
		if (prlimit(0, res, &nl, &ol) < 0) /* atomic exchange, as the guest asked */
			return -errno;
	} else {
		km_rlimit_get(v->g, res, &ol);
		int rc = a[2] != 0 ? km_rlimit_set(v->g, res, &nl) : 0;
		if (rc < 0)
			return rc;
	}
	if (a[3] != 0 && km_copy_to_guest(MM(v), a[3], &ol, sizeof(ol)) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(getrlimit)
{
	uint64_t b[4] = {0, a[0], 0, a[1]};
	return sys_prlimit64(v, b);
}

KM_SYSCALL(setrlimit)
{
	uint64_t b[4] = {0, a[0], a[1], 0};
	return sys_prlimit64(v, b);
}

KM_SYSCALL(getrusage)
{
	struct rusage ru;
	if (getrusage((int)a[0], &ru) < 0)
		return -errno;
	return km_copy_to_guest(MM(v), a[1], &ru, sizeof(ru));
}

KM_SYSCALL(futex)
{
	int op = (int)a[1] & FUTEX_CMD_MASK;
	/* The PI operations store to the word (the owner's tid): as in Linux they need it writable,
	 * and asking for write access tells the dirty tracker (km_dirty.h) km's host call stores. */
	bool pi = op == FUTEX_LOCK_PI || op == FUTEX_UNLOCK_PI || op == FUTEX_TRYLOCK_PI;
	uint32_t *uaddr = km_gva_to_hva(MM(v), a[0], 4, pi ? KM_ACC_WRITE : KM_ACC_READ);
	if (uaddr == NULL || (a[0] & 3))
		return uaddr == NULL ? -EFAULT : -EINVAL;
	struct timespec ts, *tsp = NULL;
	uint32_t *uaddr2 = NULL;
	switch (op) {
	case FUTEX_WAIT:
	case FUTEX_WAIT_BITSET:
	case FUTEX_LOCK_PI:
	case FUTEX_WAIT_REQUEUE_PI:
		if (a[3] != 0) {
			if (km_copy_from_guest(MM(v), &ts, a[3], sizeof(ts)) < 0)
				return -EFAULT;
			/* These two take an absolute deadline, on the guest's MONOTONIC unless told
			 * otherwise: the host's is offset from it after some resumes (km_vdso.h). */
			if ((op == FUTEX_WAIT_BITSET || op == FUTEX_WAIT_REQUEUE_PI) && !((int)a[1] & FUTEX_CLOCK_REALTIME))
				ts = km_vdso_mono_to_host(v->g, ts);
			tsp = &ts;
		}
		break;
	case FUTEX_REQUEUE:
	case FUTEX_CMP_REQUEUE:
	case FUTEX_WAKE_OP:
	case FUTEX_CMP_REQUEUE_PI:
		if ((uaddr2 = km_gva_to_hva(MM(v), a[4], 4, KM_ACC_WRITE)) == NULL)
			return -EFAULT;
		tsp = (struct timespec *)(uintptr_t)a[3]; /* val2, passed through as a number */
		break;
	case FUTEX_WAKE:
	case FUTEX_WAKE_BITSET:
	case FUTEX_UNLOCK_PI:
	case FUTEX_TRYLOCK_PI:
		break;
	default:
		return -ENOSYS;
	}
	/* Guest memory is km's memory: the host futex works on it directly, across vCPU threads. */
	long rc = syscall(SYS_futex, uaddr, (int)a[1], (uint32_t)a[2], tsp, uaddr2, (uint32_t)a[5]);
	return rc < 0 ? -errno : rc;
}

/* A prctl whose answer is an int the kernel stores at a user address: km's copy, then the guest's. */
static long prctl_int_out(km_vcpu_t *v, int option, uint64_t addr)
{
	int val = 0;
	if (prctl(option, &val, 0, 0, 0) < 0)
		return -errno;
	return km_copy_to_guest(MM(v), addr, &val, sizeof(val)) < 0 ? -EFAULT : 0;
}

KM_SYSCALL(prctl)
{
	char name[16];
	switch (a[0]) {
	case PR_SET_NAME: {
		/* Linux copies 16 bytes and terminates them: a longer name is cut, not refused. */
		size_t n = km_guest_prefix(MM(v), a[1], sizeof(name) - 1, KM_ACC_READ);
		if (n == 0)
			return -EFAULT;
		if (km_copy_from_guest(MM(v), name, a[1], n) < 0)
			return -EFAULT; /* mapped, but the host could not provide it */
		name[n] = '\0';
		return prctl(PR_SET_NAME, name) < 0 ? -errno : 0;
	}
	case PR_GET_NAME:
		if (prctl(PR_GET_NAME, name) < 0)
			return -errno;
		return km_copy_to_guest(MM(v), a[1], name, sizeof(name));
	case PR_GET_DUMPABLE:
		return 1;
	case PR_SET_DUMPABLE:
		return a[1] <= 1 ? 0 : -EINVAL;
	case PR_GET_PDEATHSIG:
	case PR_GET_CHILD_SUBREAPER: /* int results written by the host into guest memory */
		return prctl_int_out(v, (int)a[0], a[1]);
	case PR_SET_PDEATHSIG:
	case PR_SET_CHILD_SUBREAPER:
	case PR_SET_NO_NEW_PRIVS:
		return prctl((int)a[0], a[1], a[2], a[3], a[4]) < 0 ? -errno : 0;
	case PR_GET_NO_NEW_PRIVS:
		return prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	default:
		return -EINVAL;
	}
}

/* Credentials are km's own: km is the process the host sees. */
KM_SYSCALL(getuid)
{
	return getuid();
}
KM_SYSCALL(geteuid)
{
	return geteuid();
}
KM_SYSCALL(getgid)
{
	return getgid();
}
KM_SYSCALL(getegid)
{
	return getegid();
}

KM_SYSCALL(getgroups)
{
	int n = (int)a[0];
	if (n < 0)
		return -EINVAL;
	gid_t *list = n > 0 ? km_gva_to_hva(MM(v), a[1], (size_t)n * sizeof(gid_t), KM_ACC_WRITE) : NULL;
	if (n > 0 && list == NULL)
		return -EFAULT;
	int rc = getgroups(n, list);
	return rc < 0 ? -errno : rc;
}

KM_SYSCALL(getresuid)
{
	uid_t r, e, s;
	getresuid(&r, &e, &s);
	if (km_copy_to_guest(MM(v), a[0], &r, sizeof(r)) || km_copy_to_guest(MM(v), a[1], &e, sizeof(e)) ||
	    km_copy_to_guest(MM(v), a[2], &s, sizeof(s)))
		return -EFAULT;
	return 0;
}

KM_SYSCALL(getresgid)
{
	gid_t r, e, s;
	getresgid(&r, &e, &s);
	if (km_copy_to_guest(MM(v), a[0], &r, sizeof(r)) || km_copy_to_guest(MM(v), a[1], &e, sizeof(e)) ||
	    km_copy_to_guest(MM(v), a[2], &s, sizeof(s)))
		return -EFAULT;
	return 0;
}

/*
 * The set*id family. Credentials are per thread in the kernel; the C library makes them the
 * process's by running the call in every thread (glibc: SIGSETXID to each, musl: __synccall).
 * The guest's C library does so for the guest's threads, each a vCPU thread; km's own calls here
 * go through glibc's wrappers, which do the same for all of km's threads (the forwarding, vDSO
 * and management threads too), so no km thread keeps credentials the guest gave up. The host's
 * rules decide what is allowed; a repeat of the same change by the guest's other threads is
 * allowed by them too. setfsuid/setfsgid are per thread in both C libraries, as here.
 * docs/syscalls.md has what a guest that dropped its ids can still reach.
 */
#define ID(x) ((uint32_t)(x))

KM_SYSCALL(setuid)
{
	return setuid(ID(a[0])) < 0 ? -errno : 0;
}

KM_SYSCALL(setgid)
{
	return setgid(ID(a[0])) < 0 ? -errno : 0;
}

KM_SYSCALL(setreuid)
{
	return setreuid(ID(a[0]), ID(a[1])) < 0 ? -errno : 0;
}

KM_SYSCALL(setregid)
{
	return setregid(ID(a[0]), ID(a[1])) < 0 ? -errno : 0;
}

KM_SYSCALL(setresuid)
{
	return setresuid(ID(a[0]), ID(a[1]), ID(a[2])) < 0 ? -errno : 0;
}

KM_SYSCALL(setresgid)
{
	return setresgid(ID(a[0]), ID(a[1]), ID(a[2])) < 0 ? -errno : 0;
}

/* Returns the previous fsuid, never an error (as the kernel's). */
KM_SYSCALL(setfsuid)
{
	return setfsuid(ID(a[0]));
}

KM_SYSCALL(setfsgid)
{
	return setfsgid(ID(a[0]));
}

KM_SYSCALL(setgroups)
{
	long n = (long)(int)a[0];
	if (n < 0 || n > NGROUPS_MAX_KERNEL)
		return -EINVAL;
	const gid_t *list = n > 0 ? km_gva_to_hva(MM(v), a[1], (size_t)n * sizeof(gid_t), KM_ACC_READ) : NULL;
	if (n > 0 && list == NULL)
		return -EFAULT;
	return setgroups((size_t)n, list) < 0 ? -errno : 0;
}

KM_SYSCALL(getpgrp)
{
	return getpgrp();
}

KM_SYSCALL(getpgid)
{
	pid_t pid = (pid_t)a[0] == v->g->pid ? 0 : (pid_t)a[0];
	pid_t rc = getpgid(pid);
	return rc < 0 ? -errno : rc;
}

KM_SYSCALL(getsid)
{
	pid_t pid = (pid_t)a[0] == v->g->pid ? 0 : (pid_t)a[0];
	pid_t rc = getsid(pid);
	return rc < 0 ? -errno : rc;
}

KM_SYSCALL(setsid)
{
	pid_t rc = setsid();
	return rc < 0 ? -errno : rc;
}

KM_SYSCALL(setpgid)
{
	pid_t pid = (pid_t)a[0] == v->g->pid ? 0 : (pid_t)a[0];
	if (km_live_is_writer(pid)) /* km's child, not the program's: moved, the program could stop it */
		return -ESRCH;
	return setpgid(pid, (pid_t)a[1]) < 0 ? -errno : 0;
}

KM_SYSCALL(getpriority)
{
	errno = 0;
	int rc = getpriority((int)a[0], (id_t)a[1]);
	return errno ? -errno : 20 - rc; /* the raw syscall returns 20 - nice */
}

KM_SYSCALL(setpriority)
{
	if ((int)a[0] == PRIO_PROCESS && km_live_is_writer((pid_t)a[1]))
		return -ESRCH;
	return setpriority((int)a[0], (id_t)a[1], (int)a[2]) < 0 ? -errno : 0;
}

KM_SYSCALL(rseq)
{
	return -ENOSYS; /* libcs fall back cleanly; restartable sequences need kernel preemption hooks */
}

const km_sys_def_t km_sys_proc_defs[] = {
    {SYS_getpid, "getpid", sys_getpid, ""},
    {SYS_getppid, "getppid", sys_getppid, ""},
    {SYS_arch_prctl, "arch_prctl", sys_arch_prctl, "xp"},
    {SYS_prlimit64, "prlimit64", sys_prlimit64, "ddpp"},
    {SYS_getrlimit, "getrlimit", sys_getrlimit, "dp"},
    {SYS_setrlimit, "setrlimit", sys_setrlimit, "dp"},
    {SYS_getrusage, "getrusage", sys_getrusage, "dp"},
    {SYS_futex, "futex", sys_futex, "pddppd"},
    {SYS_prctl, "prctl", sys_prctl, "dxxxx"},
    {SYS_getuid, "getuid", sys_getuid, ""},
    {SYS_geteuid, "geteuid", sys_geteuid, ""},
    {SYS_getgid, "getgid", sys_getgid, ""},
    {SYS_getegid, "getegid", sys_getegid, ""},
    {SYS_getgroups, "getgroups", sys_getgroups, "dp"},
    {SYS_getresuid, "getresuid", sys_getresuid, "ppp"},
    {SYS_getresgid, "getresgid", sys_getresgid, "ppp"},
    {SYS_setuid, "setuid", sys_setuid, "d"},
    {SYS_setgid, "setgid", sys_setgid, "d"},
    {SYS_setreuid, "setreuid", sys_setreuid, "dd"},
    {SYS_setregid, "setregid", sys_setregid, "dd"},
    {SYS_setresuid, "setresuid", sys_setresuid, "ddd"},
    {SYS_setresgid, "setresgid", sys_setresgid, "ddd"},
    {SYS_setfsuid, "setfsuid", sys_setfsuid, "d"},
    {SYS_setfsgid, "setfsgid", sys_setfsgid, "d"},
    {SYS_setgroups, "setgroups", sys_setgroups, "dp"},
    {SYS_getpgrp, "getpgrp", sys_getpgrp, ""},
    {SYS_getpgid, "getpgid", sys_getpgid, "d"},
    {SYS_getsid, "getsid", sys_getsid, "d"},
    {SYS_setsid, "setsid", sys_setsid, ""},
    {SYS_setpgid, "setpgid", sys_setpgid, "dd"},
    {SYS_getpriority, "getpriority", sys_getpriority, "dd"},
    {SYS_setpriority, "setpriority", sys_setpriority, "ddd"},
    {SYS_rseq, "rseq", sys_rseq, "puxx"},
    {0, NULL, NULL, NULL},
};
