/* Thread syscalls: clone, clone3, exit, exit_group, thread ids, robust lists, scheduling. */
#include <errno.h>
#include <signal.h>
#include <linux/membarrier.h>
#include <linux/sched.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_proc.h"
#include "km_signal.h"
#include "km_sys_util.h"
#include "km_syscall.h"
#include "km_threads.h"

#define MM(v) (&(v)->g->mm)

KM_SYSCALL(exit_group)
{
	km_guest_end(v->g, (int)(a[0] & 0xff), 0);
	return 0;
}

KM_SYSCALL(exit)
{
	km_threads_exit(v, (int)a[0]);
	return 0;
}

/* x86-64 argument order: flags, stack, parent_tid, child_tid, tls. */
KM_SYSCALL(clone)
{
	if (km_proc_is_fork(a[0]))
		return km_proc_fork(v, a[0], a[1], a[2], a[3], a[4]);
	return km_threads_clone(v, a[0], a[1], a[2], a[3], a[4]);
}

KM_SYSCALL(fork)
{
	return km_proc_fork(v, SIGCHLD, 0, 0, 0, 0);
}

KM_SYSCALL(vfork)
{
	return km_proc_fork(v, CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0);
}

/* struct clone_args, as far as CLONE_ARGS_SIZE_VER0 (64 bytes); later fields must be zero. */
KM_SYSCALL(clone3)
{
	struct clone_args ca;
	size_t size = a[1];
	/* Linux's order: a size past a page is E2BIG, one short of the first version EINVAL. */
	if (size > 4096)
		return -E2BIG;
	if (size < 64)
		return -EINVAL;
	memset(&ca, 0, sizeof(ca));
	if (km_copy_from_guest(MM(v), &ca, a[0], size < sizeof(ca) ? size : sizeof(ca)) < 0)
		return -EFAULT;
	/* Fields km does not know (a newer libc) must be zero, as Linux requires. */
	for (size_t off = sizeof(ca); off < size; off += 8) {
		uint64_t x = 0;
		size_t n = size - off < 8 ? size - off : 8;
		if (km_copy_from_guest(MM(v), &x, a[0] + off, n) < 0)
			return -EFAULT;
		if (x != 0)
			return -E2BIG;
	}
	/* pidfd is read only with CLONE_PIDFD (refused with the flags); glibc fills it anyway. */
	/* set_tid is refused outright; with set_tid_size 0 it still is, as Linux refuses the pair. */
	/* A new process's exit signal is its own field here (km_proc_fork checks it); a thread has
	 * none. */
	bool process = km_proc_is_fork(ca.flags);
	if ((!process && ca.exit_signal != 0) || ca.exit_signal > 64 || (ca.flags & CSIGNAL) || (size >= 80 && (ca.set_tid_size != 0 || ca.set_tid != 0)) ||
	    (size >= 88 && ca.cgroup != 0))
		return -EINVAL;
	if ((ca.stack == 0) != (ca.stack_size == 0))
		return -EINVAL;
	uint64_t top = ca.stack != 0 ? ca.stack + ca.stack_size : 0;
	if (process)
		return km_proc_fork(v, ca.flags | ca.exit_signal, top, ca.parent_tid, ca.child_tid, ca.tls);
	return km_threads_clone(v, ca.flags, top, ca.parent_tid, ca.child_tid, ca.tls);
}

KM_SYSCALL(gettid)
{
	return v->tid;
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
	km_vcpu_t *t = a[0] == 0 ? v : km_signal_guest_thread(v->g, (pid_t)a[0]);
	if (t == NULL)
		return -ESRCH;
	if (km_copy_to_guest(MM(v), a[1], &t->robust_list, 8) < 0 ||
	    km_copy_to_guest(MM(v), a[2], &t->robust_list_len, 8) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(sched_yield)
{
	return sched_yield() < 0 ? -errno : 0;
}

/* Affinity is the host thread's: every vCPU thread of km may run on the CPUs km may. A thread
 * id names a guest thread (0: the caller); affinity of other processes is not the guest's. */
static long affinity(km_vcpu_t *v, const uint64_t *a, bool set)
{
	km_vcpu_t *t = (pid_t)a[0] == 0 ? v : km_signal_guest_thread(v->g, (pid_t)a[0]);
	if (t == NULL)
		return -ESRCH;
	pid_t host = __atomic_load_n(&t->host_tid, __ATOMIC_ACQUIRE);
	if (a[1] == 0 || a[1] > 1024 * 1024)
		return -EINVAL;
	void *mask = km_gva_to_hva(MM(v), a[2], a[1], set ? KM_ACC_READ : KM_ACC_WRITE);
	if (mask == NULL)
		return -EFAULT;
	long rc = syscall(set ? SYS_sched_setaffinity : SYS_sched_getaffinity, host, a[1], mask);
	return rc < 0 ? -errno : rc;
}

KM_SYSCALL(sched_getaffinity)
{
	return affinity(v, a, false);
}

KM_SYSCALL(sched_setaffinity)
{
	return affinity(v, a, true);
}

/* membarrier: the host's, which covers every vCPU thread of km (guest threads are km's threads;
 * KVM_RUN returns through the kernel, a full barrier). Registration commands are kept simple:
 * the private expedited barrier needs km's process registered, which km does on first use. */
KM_SYSCALL(membarrier)
{
	int cmd = (int)a[0];
	unsigned int flags = (unsigned int)a[1];
	if (flags != 0)
		return -EINVAL;
	switch (cmd) {
	case MEMBARRIER_CMD_QUERY:
		return MEMBARRIER_CMD_GLOBAL | MEMBARRIER_CMD_PRIVATE_EXPEDITED |
		       MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED;
	case MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED:
	case MEMBARRIER_CMD_PRIVATE_EXPEDITED:
	case MEMBARRIER_CMD_GLOBAL: {
		long rc = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
		if (rc == 0 && cmd != MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED)
			rc = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
		return rc < 0 ? -errno : 0;
	}
	default:
		return -EINVAL;
	}
}

const km_sys_def_t km_sys_thread_defs[] = {
    {SYS_exit, "exit", sys_exit, "d"},
    {SYS_exit_group, "exit_group", sys_exit_group, "d"},
    {SYS_clone, "clone", sys_clone, "xpppx"},
    {SYS_clone3, "clone3", sys_clone3, "pu"},
    {SYS_fork, "fork", sys_fork, ""},
    {SYS_vfork, "vfork", sys_vfork, ""},
    {SYS_gettid, "gettid", sys_gettid, ""},
    {SYS_set_tid_address, "set_tid_address", sys_set_tid_address, "p"},
    {SYS_set_robust_list, "set_robust_list", sys_set_robust_list, "pu"},
    {SYS_get_robust_list, "get_robust_list", sys_get_robust_list, "dpp"},
    {SYS_sched_yield, "sched_yield", sys_sched_yield, ""},
    {SYS_sched_getaffinity, "sched_getaffinity", sys_sched_getaffinity, "dup"},
    {SYS_sched_setaffinity, "sched_setaffinity", sys_sched_setaffinity, "dup"},
    {SYS_membarrier, "membarrier", sys_membarrier, "dud"},
    {0, NULL, NULL, NULL},
};
