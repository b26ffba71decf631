/*
 * fork, vfork and clone without CLONE_THREAD: km forks itself on the host (see km_proc.h). The
 * parent captures what only it can read (a vCPU's ioctls fail in any other process), makes its
 * locks consistent, forks and returns the child's pid. The child drops the parent's VM and vCPU
 * fds, makes a new VM over the same (now copy-on-write) host memory with one vCPU holding the
 * forking thread's state, restarts signal forwarding and runs the guest to its end.
 */
#include "km_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include "km_end.h"
#include "km_exception.h"
#include "km_exec_state.h"
#include "km_machine.h"
#include "km_mgmt.h"
#include "km_signal.h"
#include "km_snapshot.h"
#include "km_snapshot_layers.h"
#include "km_snapshot_lease.h"
#include "km_stopall.h"
#include "km_sys_util.h"
#include "km_threads.h"
#include "km_vdso.h"
#include "km_vfork_wb.h"

#define NAMESPACES                                                                                            \
	(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |             \
	 CLONE_NEWCGROUP | CLONE_NEWTIME)
/* What a new process may ask for beside the exit signal; anything else is refused. */
#define FORK_OK                                                                                               \
	(CLONE_VM | CLONE_VFORK | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID |                    \
	 CLONE_CHILD_CLEARTID | CLONE_DETACHED | CLONE_IO | CLONE_SYSVSEM | CLONE_CLEAR_SIGHAND)

/* The write end of the vfork pipe this process's parent waits on (-1: none): closed by exec
 * (close-on-exec) or exit, and by any child this process forks (it is not theirs to hold). */
static int vfork_fd = -1;
/* What a CLONE_VM|CLONE_VFORK child sends back through vfork_fd if it ends without exec'ing:
 * the parent's memory is not shared, so the writes Linux would leave in it are copied back
 * (km_vfork_wb.h). Empty for any other child. */
static km_vfork_tx_t vfork_tx;

bool km_proc_is_fork(uint64_t flags)
{
	return !(flags & CLONE_THREAD);
}

static long refuse(km_vcpu_t *v, uint64_t flags, long err, const char *why)
{
	if (v->g->opts.trace)
		dprintf(v->g->opts.trace_fd, "km: clone flags %#lx refused: %s\n", (unsigned long)flags, why);
	return err;
}

static long check_flags(km_vcpu_t *v, uint64_t flags, uint64_t tls)
{
	uint64_t f = flags & ~(uint64_t)CSIGNAL;
	if (f & NAMESPACES)
		return refuse(v, flags, -EINVAL, "a new process in new namespaces is not supported");
	if (f & (CLONE_PIDFD | CLONE_PARENT | CLONE_PTRACE | CLONE_UNTRACED))
		return refuse(v, flags, -EINVAL, "pidfds, CLONE_PARENT and ptrace flags are not supported");
	if ((f & CLONE_VM) && !(f & CLONE_VFORK))
		return refuse(v, flags, -EINVAL, "a process sharing its parent's memory is supported only with "
						  "CLONE_VFORK (posix_spawn, system)");
	if (f & ~(uint64_t)FORK_OK)
		return refuse(v, flags, -EINVAL, "a new process sharing files, filesystem or signal handlers with "
						  "its parent is not supported");
	if ((flags & CSIGNAL) != SIGCHLD)
		return refuse(v, flags, -EINVAL, "a child process whose exit signal is not SIGCHLD is not supported");
	if ((f & CLONE_SETTLS) && tls >= KM_USER_TOP)
		return -EPERM;
	return 0;
}

/* What the child starts with, taken in the parent at the syscall (only the parent can read its
 * vCPU). */
typedef struct fork_point {
	km_vcpu_state_t state; /* registers after the syscall with rax 0, FS/GS, XCR0, XSAVE */
	uint64_t sigmask;
	stack_t altstack;
	uint64_t flags, ctid;
	pid_t parent_host, parent_guest;
	int vfork_wr; /* write end of the vfork pipe, or -1 */
} fork_point_t;

static int capture(km_vcpu_t *v, fork_point_t *fp, uint64_t flags, uint64_t stack, uint64_t tls)
{
	km_err_t *err = NULL;
	if (km_vcpu_capture(v, &v->user, &err) < 0) {
		km_err_free(&err);
		return -EAGAIN;
	}
	fp->state = v->state;
	fp->state.regs.rax = 0;
	fp->state.flags = 0;
	if (stack != 0)
		fp->state.regs.rsp = stack;
	if (flags & CLONE_SETTLS)
		fp->state.fs_base = tls;
	fp->sigmask = v->sigmask;
	fp->altstack = v->altstack;
	if (flags & CLONE_VM) { /* Linux: a vfork child sharing memory starts without one */
		memset(&fp->altstack, 0, sizeof(fp->altstack));
		fp->altstack.ss_flags = SS_DISABLE;
	}
	fp->flags = flags;
	fp->parent_host = getpid();
	fp->parent_guest = v->g->pid;
	return 0;
}

/* Makes km's state consistent across the host fork: nothing the child needs may be held or half
 * changed by a thread that will not exist in it. Other vCPUs are parked at clean points first (a
 * KM_STOP_CLEAN stop: none is inside a syscall handler, where it could hold the mapping lock and
 * want the signal lock, or the reverse, both of which km does; a KM_STOP_OUT stop would leave
 * those in host syscalls running). Then the locks of the threads that are not vCPUs (the signal
 * forwarder, the management listener) are taken: the signal lock, the thread group's, the
 * mapping lock written. A stop in progress is parked in first, as about to make this syscall
 * again. Returns false if the guest is ending (nothing held). */
static bool lock_all(km_vcpu_t *v)
{
	km_guest_t *g = v->g;
	struct kvm_regs r = km_syscall_restart_regs(v);
	if (km_stopall_begin(g, v, KM_STOP_CLEAN, &r, KM_CPU_RESTART_SYSCALL) < 0)
		return false;
	km_signal_lock(g);
	pthread_mutex_lock(&g->threads.lock);
	pthread_rwlock_wrlock(&g->mm.lock);
	return true;
}

static void unlock_all(km_guest_t *g)
{
	pthread_rwlock_unlock(&g->mm.lock);
	pthread_mutex_unlock(&g->threads.lock);
	km_signal_unlock(g);
	km_stopall_end(g);
}

/* --- the child ---------------------------------------------------------------------------- */

/* The locks the parent held for the fork are held by a thread id that is not the child's: they
 * are made new (the only thread is this one, and everything they guard is consistent). */
static void reset_locks(km_guest_t *g)
{
	pthread_mutex_init(&g->sig_lock, NULL);
	km_threads_init(&g->threads);
	pthread_rwlock_init(&g->mm.lock, NULL);
	km_fd_transient_reset();
	km_layers_forked();
}

/* Linux: a child starts with no pending signals and no POSIX timers (the host's timers are not
 * inherited either), and no thread of km's but the forking one. */
static void reset_process(km_guest_t *g, const fork_point_t *fp)
{
	g->pid = getpid();
	g->unkillable = false; /* only a namespace's init is, and a child never is */
	g->ppid_host = fp->parent_host;
	g->ppid_guest = fp->parent_guest;
	km_sigqueue_discard(&g->sigpending, ~0ull);
	if (fp->flags & CLONE_CLEAR_SIGHAND) /* clone3: handlers back to SIG_DFL, ignored ones stay */
		for (int i = 0; i < KM_NSIG; i++)
			if (g->sigactions[i].handler != (uint64_t)(uintptr_t)SIG_IGN)
				memset(&g->sigactions[i], 0, sizeof(g->sigactions[i]));
	memset(g->timers, 0, sizeof(g->timers));
	free(g->resume_timers);
	g->resume_timers = NULL;
	g->resume_timers_len = 0;
	g->sigfwd_running = g->sigfwd_stop = false;
	g->sigfwd_tid = 0;
	g->thread_err = NULL;
	for (int i = 0; i < KM_MAX_VCPUS; i++) {
		km_vcpu_forget(g->vcpus[i]);
		g->vcpus[i] = NULL;
	}
	g->nvcpus = 0;
	km_mgmt_forget_in_child();
	km_exec_forget_mgmt();
	/* The socket is the parent's: a km the child execs must not bind its path again (it is in
	 * use: that km would fail), and nothing can ask the child for an incremental snapshot. */
	g->opts.mgmt_path = NULL;
	g->opts.track_changes = false;
}

/* A resumed parent's memory may still map its snapshot file under a lease that is the parent's
 * (a lease belongs to the open file, which the child shares: the child must not release it). The
 * child's memory gets its own copy now, as when no lease could be had. */
static int detach_snapshot(km_guest_t *g, km_err_t **err)
{
	if (g->mm.snapshot_fd < 0)
		return 0;
	g->snap_leased = false;
	return km_snapshot_detach(g, err);
}

static int new_machine(km_guest_t *g, const fork_point_t *fp, km_err_t **err)
{
	if (km_machine_new_vm(&g->machine, err) < 0)
		return -1;
	if (km_mm_register_all(&g->mm) < 0)
		return km_err_set(err, errno, "registering the guest's memory with the new VM");
	km_vcpu_t *c;
	if (km_vcpu_create(g, 0, &c, err) < 0)
		return -1;
	c->state = fp->state;
	c->tid = g->pid;
	c->sigmask = fp->sigmask;
	c->altstack = fp->altstack;
	c->clear_child_tid = (fp->flags & CLONE_CHILD_CLEARTID) ? fp->ctid : 0;
	if (km_vcpu_load_state(c, err) < 0) {
		km_vcpu_destroy(c);
		return -1;
	}
	km_threads_add_initial(g, c);
	if (fp->flags & CLONE_CHILD_SETTID) { /* as in Linux, an address that cannot be written is no error */
		uint32_t t = (uint32_t)g->pid;
		km_copy_to_guest(&g->mm, fp->ctid, &t, sizeof(t));
	}
	return 0;
}

/* A CLONE_VM|CLONE_VFORK child at its end without an exec (exit, exit_group, a fatal signal):
 * its parent is still waiting, and gets the pages this child wrote before it goes on. A failure
 * loses them, as before this existed; --trace says so. */
static void vfork_write_back(km_guest_t *g)
{
	if (vfork_fd < 0 || vfork_tx.ranges == NULL)
		return;
	long n = km_vfork_tx_send(&vfork_tx, &g->mm, vfork_fd);
	if (g->opts.trace && n < 0)
		dprintf(g->opts.trace_fd, "km: vfork child: sending its writes to its parent failed: %s\n",
			strerror((int)-n));
	else if (g->opts.trace)
		dprintf(g->opts.trace_fd, "km: vfork child: %ld pages written back to its parent\n", n);
	km_vfork_tx_free(&vfork_tx);
}

/* Runs in the child process on the forking thread, its only thread; never returns. */
static _Noreturn void child_main(km_guest_t *g, fork_point_t *fp)
{
	km_err_t *err = NULL;
	if (vfork_fd >= 0)
		close(vfork_fd); /* our parent's parent's vfork wait is not ours to hold up */
	vfork_fd = fp->vfork_wr;
	km_vfork_tx_free(&vfork_tx); /* our parent's, if it was a vfork child too */
	reset_locks(g);
	reset_process(g, fp);
	int rc = 0;
	/* The mappings as the parent had them, before the snapshot's copy-out or the guest. */
	if ((fp->flags & CLONE_VM) && vfork_fd >= 0 && km_vfork_tx_begin(&vfork_tx, &g->mm) < 0)
		rc = km_err_set(&err, ENOMEM, "remembering the parent's mappings");
	if (rc == 0)
		rc = detach_snapshot(g, &err);
	if (rc == 0) /* before the vCPU: its setup may take the vDSO's lock, maybe held at the fork */
		rc = km_vdso_fork_child(g, &err);
	if (rc == 0)
		rc = new_machine(g, fp, &err);
	free(fp);
	if (rc == 0)
		rc = km_signal_forward_start(g, &err);
	if (rc == 0) {
		rc = km_guest_run(g, &err);
		if (rc == 0)
			vfork_write_back(g);
	} else
		km_err_wrap(&err, "starting the child process");
	km_end_child(g, rc, err);
}

/* The child goes on from the forking thread's stack, deep in the parent's syscall handler frames
 * that it never returns to: it moves to a stack of its own first, so that a chain of forks (a
 * child forking a child...) does not pile up frames per generation. The stack it leaves, if it
 * was one of these (its parent was itself a forked child), is released. */
#define CHILD_STACK_SIZE (8ul << 20) /* glibc's default thread stack */

#if defined(__SANITIZE_ADDRESS__)
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom, size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old, size_t *size_old);
#endif

static void *own_stack;      /* the stack this km runs on if it is a forked child (NULL: none) */
static void *left_stack;     /* the one it left, to release once off it */
static km_guest_t *start_g;  /* child_main's arguments across the switch */
static fork_point_t *start_fp;

static void child_on_own_stack(void)
{
#if defined(__SANITIZE_ADDRESS__)
	__sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
	if (left_stack != NULL)
		munmap(left_stack, CHILD_STACK_SIZE);
	left_stack = NULL;
	child_main(start_g, start_fp);
}

static _Noreturn void child_start(km_guest_t *g, fork_point_t *fp)
{
	void *stack = mmap(NULL, CHILD_STACK_SIZE, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	ucontext_t uc;
	if (stack == MAP_FAILED || mprotect(stack, 4096, PROT_NONE) < 0 || getcontext(&uc) < 0)
		child_main(g, fp); /* stays where it is: a few KiB per generation */
	left_stack = own_stack;
	own_stack = stack;
	start_g = g;
	start_fp = fp;
	uc.uc_stack.ss_sp = stack;
	uc.uc_stack.ss_size = CHILD_STACK_SIZE;
	uc.uc_link = NULL;
	makecontext(&uc, child_on_own_stack, 0);
#if defined(__SANITIZE_ADDRESS__)
	__sanitizer_start_switch_fiber(NULL, stack, CHILD_STACK_SIZE); /* the old stack is not coming back */
#endif
	setcontext(&uc);
	child_main(g, fp); /* setcontext failed */
}

/* --- the parent --------------------------------------------------------------------------- */

/* CLONE_VFORK: the parent goes on once the child has exec'd or ended, which closes the pipe's
 * write end, the child's only (close-on-exec). A CLONE_VM child that ends without exec'ing first
 * sends the pages it wrote through it (km_vfork_wb.h), applied here as they come; any other
 * child's bytes are ignored. Stops are served meanwhile at this clean point (the syscall done,
 * returning pid); the guest ending ends the wait. */
static void wait_vfork(km_vcpu_t *v, int rd, pid_t pid, bool shared_vm)
{
	km_vfork_rx_t *rx = shared_vm ? malloc(sizeof(*rx)) : NULL;
	uint8_t buf[16384];
	if (rx != NULL)
		km_vfork_rx_init(rx, &v->g->mm);
	for (;;) {
		ssize_t n = read(rd, buf, sizeof(buf));
		if (n > 0) {
			if (rx != NULL)
				km_vfork_rx_feed(rx, &v->g->mm, buf, (size_t)n);
			continue;
		}
		if (n == 0 || (errno != EINTR && errno != EAGAIN))
			break;
		if (km_guest_ended(v->g))
			break;
		if (km_stopall_pending(v->g)) {
			struct kvm_regs r = v->user;
			r.rax = (uint64_t)pid;
			if (km_stopall_park(v, &r, 0))
				break;
		}
	}
	int e = rx != NULL ? km_vfork_rx_finish(rx) : 0;
	if (rx != NULL && v->g->opts.trace && (rx->records > 0 || e < 0))
		dprintf(v->g->opts.trace_fd, "km: vfork child %d: %lu pages written back, %lu skipped%s%s\n", (int)pid,
			(unsigned long)rx->applied, (unsigned long)rx->skipped, e < 0 ? "; stream refused: " : "",
			e < 0 ? strerror(-e) : "");
	free(rx);
}

static int vfork_pipe(int fds[2])
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	fds[0] = km_fd_reserve(fds[0]);
	fds[1] = km_fd_reserve(fds[1]);
	if (fds[0] < 0 || fds[1] < 0) {
		int e = errno;
		if (fds[0] >= 0)
			close(fds[0]);
		if (fds[1] >= 0)
			close(fds[1]);
		return -e;
	}
	return 0;
}

long km_proc_fork(km_vcpu_t *v, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
	km_guest_t *g = v->g;
	long rc = check_flags(v, flags, tls);
	if (rc < 0)
		return rc;
	fork_point_t *fp = calloc(1, sizeof(*fp));
	if (fp == NULL)
		return -ENOMEM;
	fp->ctid = ctid;
	fp->vfork_wr = -1;
	int pfd[2] = {-1, -1};
	if ((rc = capture(v, fp, flags, stack, tls)) < 0) {
		free(fp);
		return rc;
	}
	if (!lock_all(v)) {
		free(fp);
		return -EAGAIN;
	}
	/* The vfork pipe is made and its write end closed in the parent while forks are excluded:
	 * no other child can inherit it and hold up this parent's wait. */
	if ((flags & CLONE_VFORK) && (rc = vfork_pipe(pfd)) < 0) {
		unlock_all(g);
		free(fp);
		return rc;
	}
	fp->vfork_wr = pfd[1];
	/* No kick of this thread may be under way across the fork: glibc's pthread_kill holds the
	 * target thread's lock meanwhile, and the child (this thread) would inherit it locked, so
	 * that its first kick of itself (exit_group) hangs. Kicks take kick_lock first. */
	pthread_mutex_lock(&v->kick_lock);
	pid_t pid = fork();
	int e = errno;
	pthread_mutex_unlock(&v->kick_lock);
	if (pid == 0) {
		if (pfd[0] >= 0)
			close(pfd[0]);
		child_start(g, fp);
	}
	if (pfd[1] >= 0)
		close(pfd[1]);
	unlock_all(g);
	free(fp);
	if (pid < 0) {
		if (pfd[0] >= 0)
			close(pfd[0]);
		return e == ENOMEM ? -ENOMEM : -EAGAIN;
	}
	if (flags & CLONE_PARENT_SETTID) {
		uint32_t t = (uint32_t)pid;
		km_copy_to_guest(&g->mm, ptid, &t, sizeof(t));
	}
	if (pfd[0] >= 0) {
		wait_vfork(v, pfd[0], pid, (flags & CLONE_VM) != 0);
		close(pfd[0]);
	}
	return pid;
}
