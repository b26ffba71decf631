/* Process and thread syscalls: exit, ids, arch_prctl, limits, signal dispositions, futex. */
#include <asm/prctl.h>
#include <errno.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_signal.h"
#include "km_sys_util.h"
#include "km_syscall.h"

#define MM(v) (&(v)->g->mm)
#define MSR_GS_BASE 0xc0000101
#define KM_SS_AUTODISARM (1u << 31) /* <asm/signal.h>; glibc does not export it */

KM_SYSCALL(exit_group)
{
	km_guest_t *g = v->g;
	g->exited = true;
	g->exit_status = (int)(a[0] & 0xff);
	return 0;
}

/* One thread per guest for now: a thread exit ends the guest, as the last thread would. */
KM_SYSCALL(exit)
{
	return sys_exit_group(v, a);
}

KM_SYSCALL(getpid)
{
	return v->g->pid;
}

KM_SYSCALL(gettid)
{
	return v->tid;
}

KM_SYSCALL(getppid)
{
	return getppid();
}

KM_SYSCALL(set_tid_address)
{
	v->clear_child_tid = a[0];
	return v->tid;
}

KM_SYSCALL(set_robust_list)
{
	if (a[1] != 24) /* sizeof(struct robust_list_head) */
		return -EINVAL;
	v->robust_list = a[0];
	v->robust_list_len = a[1];
	return 0;
}

KM_SYSCALL(get_robust_list)
{
	if (a[0] != 0 && (pid_t)a[0] != v->tid)
		return -ESRCH;
	if (km_copy_to_guest(MM(v), a[1], &v->robust_list, 8) < 0 ||
	    km_copy_to_guest(MM(v), a[2], &v->robust_list_len, 8) < 0)
		return -EFAULT;
	return 0;
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

KM_SYSCALL(prlimit64)
{
	if (a[0] != 0 && (pid_t)a[0] != v->g->pid)
		return -ESRCH; /* other processes' limits are not the guest's to see */
	struct rlimit nl, ol;
	if (a[2] != 0 && km_copy_from_guest(MM(v), &nl, a[2], sizeof(nl)) < 0)
		return -EFAULT;
	if (a[3] != 0 && km_gva_to_hva(MM(v), a[3], sizeof(ol), KM_ACC_WRITE) == NULL)
		return -EFAULT;
	if (a[2] != 0 && a[1] == RLIMIT_NOFILE &&
	    (nl.rlim_cur > KM_FD_RESERVED_BASE || nl.rlim_max > KM_FD_RESERVED_BASE))
		return -EPERM; /* fds from KM_FD_RESERVED_BASE up are km's own */
	if (prlimit(0, (int)a[1], a[2] && a[1] != RLIMIT_NOFILE ? &nl : NULL, &ol) < 0)
		return -errno;
	if (a[1] == RLIMIT_NOFILE) {
		/* The guest's fds stop below km's reserved ones. */
		if (a[2] != 0)
			v->g->nofile = nl;
		else if (v->g->nofile.rlim_max != 0)
			ol = v->g->nofile;
		else {
			if (ol.rlim_cur > KM_FD_RESERVED_BASE)
				ol.rlim_cur = KM_FD_RESERVED_BASE;
			if (ol.rlim_max > KM_FD_RESERVED_BASE)
				ol.rlim_max = KM_FD_RESERVED_BASE;
		}
	}
	/* As in Linux, a new limit is set even when the old one cannot be handed back. */
	return a[3] != 0 ? km_copy_to_guest(MM(v), a[3], &ol, sizeof(ol)) : 0;
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

KM_SYSCALL(rt_sigaction)
{
	int sig = (int)a[0];
	if (a[3] != 8)
		return -EINVAL;
	if (sig < 1 || sig > KM_NSIG)
		return -EINVAL;
	km_sigaction_t *cur = &v->g->sigactions[sig - 1], act;
	if (a[1] != 0) {
		if (km_copy_from_guest(MM(v), &act, a[1], sizeof(act)) < 0)
			return -EFAULT;
		if (sig == SIGKILL || sig == SIGSTOP)
			return -EINVAL;
	}
	if (a[2] != 0 && km_copy_to_guest(MM(v), a[2], cur, sizeof(*cur)) < 0)
		return -EFAULT;
	if (a[1] != 0) {
		act.mask &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)));
		*cur = act;
	}
	return 0;
}

KM_SYSCALL(rt_sigprocmask)
{
	uint64_t set, old = v->sigmask;
	if (a[3] != 8)
		return -EINVAL;
	if (a[1] != 0) {
		if (km_copy_from_guest(MM(v), &set, a[1], sizeof(set)) < 0)
			return -EFAULT;
		set &= ~((1ull << (SIGKILL - 1)) | (1ull << (SIGSTOP - 1)));
		switch (a[0]) {
		case SIG_BLOCK:
			v->sigmask |= set;
			break;
		case SIG_UNBLOCK:
			v->sigmask &= ~set;
			break;
		case SIG_SETMASK:
			v->sigmask = set;
			break;
		default:
			return -EINVAL;
		}
	}
	if (a[2] != 0 && km_copy_to_guest(MM(v), a[2], &old, sizeof(old)) < 0) {
		v->sigmask = old;
		return -EFAULT;
	}
	return 0;
}

KM_SYSCALL(rt_sigpending)
{
	uint64_t none = 0;
	if (a[1] > 8)
		return -EINVAL;
	return km_copy_to_guest(MM(v), a[0], &none, a[1]);
}

KM_SYSCALL(sigaltstack)
{
	stack_t ss, old = v->altstack;
	if (a[0] != 0) {
		if (km_copy_from_guest(MM(v), &ss, a[0], sizeof(ss)) < 0)
			return -EFAULT;
		if (ss.ss_flags & ~(SS_DISABLE | KM_SS_AUTODISARM))
			return -EINVAL;
		if (!(ss.ss_flags & SS_DISABLE) && ss.ss_size < 2048)
			return -ENOMEM;
	}
	if (a[1] != 0) {
		if (old.ss_size == 0)
			old.ss_flags = SS_DISABLE;
		if (km_copy_to_guest(MM(v), a[1], &old, sizeof(old)) < 0)
			return -EFAULT;
	}
	if (a[0] != 0)
		v->altstack = (ss.ss_flags & SS_DISABLE) ? (stack_t){.ss_flags = SS_DISABLE} : ss;
	return 0;
}

/* Signals to the guest itself take their default action (km_signal.h); others go to the host. */
static long send_signal(km_vcpu_t *v, pid_t pid, int sig)
{
	if (sig < 0 || sig > KM_NSIG)
		return -EINVAL;
	if (pid == v->g->pid || pid == 0 || pid == -1 * (pid_t)getpgrp()) {
		if (sig != 0)
			km_signal_raise(v, sig);
		if (pid == v->g->pid)
			return 0;
	}
	if (pid == 0)
		return 0; /* the rest of the process group is not the guest's business yet */
	if (pid == -1)
		return -EPERM; /* never let a guest signal every process km may reach */
	return kill(pid, sig) < 0 ? -errno : 0;
}

KM_SYSCALL(kill)
{
	return send_signal(v, (pid_t)a[0], (int)a[1]);
}

KM_SYSCALL(tgkill)
{
	if ((pid_t)a[0] != v->g->pid || (pid_t)a[1] != v->tid)
		return -ESRCH;
	return send_signal(v, v->g->pid, (int)a[2]);
}

KM_SYSCALL(tkill)
{
	if ((pid_t)a[0] != v->tid)
		return -ESRCH;
	return send_signal(v, v->g->pid, (int)a[1]);
}

KM_SYSCALL(futex)
{
	int op = (int)a[1] & FUTEX_CMD_MASK;
	uint32_t *uaddr = km_gva_to_hva(MM(v), a[0], 4, KM_ACC_READ);
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

KM_SYSCALL(sched_yield)
{
	return sched_yield() < 0 ? -errno : 0;
}

KM_SYSCALL(sched_getaffinity)
{
	if ((pid_t)a[0] != 0 && (pid_t)a[0] != v->tid)
		return -ESRCH;
	void *mask = km_gva_to_hva(MM(v), a[2], a[1], KM_ACC_WRITE);
	if (mask == NULL)
		return -EFAULT;
	long rc = syscall(SYS_sched_getaffinity, 0, a[1], mask);
	return rc < 0 ? -errno : rc;
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
	case PR_SET_PDEATHSIG:
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
	return setpriority((int)a[0], (id_t)a[1], (int)a[2]) < 0 ? -errno : 0;
}

KM_SYSCALL(rseq)
{
	return -ENOSYS; /* libcs fall back cleanly; restartable sequences need kernel preemption hooks */
}

const km_sys_def_t km_sys_proc_defs[] = {
    {SYS_exit, "exit", sys_exit, "d"},
    {SYS_exit_group, "exit_group", sys_exit_group, "d"},
    {SYS_getpid, "getpid", sys_getpid, ""},
    {SYS_gettid, "gettid", sys_gettid, ""},
    {SYS_getppid, "getppid", sys_getppid, ""},
    {SYS_set_tid_address, "set_tid_address", sys_set_tid_address, "p"},
    {SYS_set_robust_list, "set_robust_list", sys_set_robust_list, "pu"},
    {SYS_get_robust_list, "get_robust_list", sys_get_robust_list, "dpp"},
    {SYS_arch_prctl, "arch_prctl", sys_arch_prctl, "xp"},
    {SYS_prlimit64, "prlimit64", sys_prlimit64, "ddpp"},
    {SYS_getrlimit, "getrlimit", sys_getrlimit, "dp"},
    {SYS_setrlimit, "setrlimit", sys_setrlimit, "dp"},
    {SYS_getrusage, "getrusage", sys_getrusage, "dp"},
    {SYS_rt_sigaction, "rt_sigaction", sys_rt_sigaction, "dppu"},
    {SYS_rt_sigprocmask, "rt_sigprocmask", sys_rt_sigprocmask, "dppu"},
    {SYS_rt_sigpending, "rt_sigpending", sys_rt_sigpending, "pu"},
    {SYS_sigaltstack, "sigaltstack", sys_sigaltstack, "pp"},
    {SYS_kill, "kill", sys_kill, "dd"},
    {SYS_tgkill, "tgkill", sys_tgkill, "ddd"},
    {SYS_tkill, "tkill", sys_tkill, "dd"},
    {SYS_futex, "futex", sys_futex, "pddppd"},
    {SYS_sched_yield, "sched_yield", sys_sched_yield, ""},
    {SYS_sched_getaffinity, "sched_getaffinity", sys_sched_getaffinity, "dup"},
    {SYS_prctl, "prctl", sys_prctl, "dxxxx"},
    {SYS_getuid, "getuid", sys_getuid, ""},
    {SYS_geteuid, "geteuid", sys_geteuid, ""},
    {SYS_getgid, "getgid", sys_getgid, ""},
    {SYS_getegid, "getegid", sys_getegid, ""},
    {SYS_getgroups, "getgroups", sys_getgroups, "dp"},
    {SYS_getresuid, "getresuid", sys_getresuid, "ppp"},
    {SYS_getresgid, "getresgid", sys_getresgid, "ppp"},
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
