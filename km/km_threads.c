/* Guest threads: clone, exit, and running them all. See km_threads.h. */
#include "km_threads.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "km_exception.h"
#include "km_snapshot.h" /* KM_CPU_RESTART_SYSCALL */
#include "km_stopall.h"

#define MSR_FS_BASE 0xc0000100
#define MSR_GS_BASE 0xc0000101
#define KM_PID_MAX 4194304 /* Linux's largest pid_max: thread ids stay below it */

/* What a thread must share to be a thread (a clone without CLONE_THREAD is a process: km_fork.c). */
#define THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD)
#define THREAD_OPTIONAL                                                                                       \
	(CLONE_SYSVSEM | CLONE_SETTLS | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID |       \
	 CLONE_DETACHED | CLONE_IO)

/* --- bookkeeping (under g->threads.lock) -------------------------------------------------- */

static void set_slot(km_guest_t *g, km_vcpu_t *v)
{
	__atomic_store_n(&g->vcpus[v->id], v, __ATOMIC_RELEASE);
	if (v->id >= g->nvcpus)
		g->nvcpus = v->id + 1;
}

void km_threads_add_initial(km_guest_t *g, km_vcpu_t *v)
{
	v->born = 1;
	pthread_mutex_lock(&g->threads.lock);
	set_slot(g, v);
	v->live = true;
	g->threads.nlive++;
	if (v->tid >= g->threads.next_tid)
		g->threads.next_tid = v->tid + 1;
	pthread_mutex_unlock(&g->threads.lock);
}

static bool tid_in_use(km_guest_t *g, pid_t tid)
{
	if (tid == g->pid)
		return true;
	for (int i = 0; i < g->nvcpus; i++)
		if (g->vcpus[i] != NULL && g->vcpus[i]->live && g->vcpus[i]->tid == tid)
			return true;
	return false;
}

/* The next thread id no live thread has (at most KM_MAX_THREADS are taken, so this ends). */
static pid_t alloc_tid(km_guest_t *g)
{
	pid_t tid = g->threads.next_tid;
	for (;;) {
		if (tid <= g->pid || tid >= KM_PID_MAX)
			tid = g->pid + 1 < KM_PID_MAX ? g->pid + 1 : 2;
		if (!tid_in_use(g, tid))
			break;
		tid++;
	}
	g->threads.next_tid = tid + 1;
	return tid;
}

/* A slot for a new thread: one never used, or one whose thread has ended and left. -1: full. */
static int free_slot(km_guest_t *g)
{
	for (int i = 0; i < KM_MAX_THREADS; i++) {
		km_vcpu_t *v = g->vcpus[i];
		if (v == NULL || (!v->live && !v->thread_running))
			return i;
	}
	return -1;
}

/* The host thread of v is gone (or about to return): its slot can be reused. */
static void thread_done(km_vcpu_t *v)
{
	km_guest_t *g = v->g;
	pthread_mutex_lock(&g->threads.lock);
	if (v->live) {
		v->live = false;
		g->threads.nlive--;
	}
	__atomic_store_n(&v->host_tid, 0, __ATOMIC_RELEASE); /* the number may go to another task */
	v->thread_running = false;
	pthread_cond_broadcast(&g->threads.cond);
	pthread_mutex_unlock(&g->threads.lock);
}

/* km failed on a thread: the guest cannot go on; the first failure is what main reports. */
static void thread_failed(km_guest_t *g, km_err_t *err)
{
	pthread_mutex_lock(&g->threads.lock);
	if (g->thread_err == NULL) {
		g->thread_err = err;
		err = NULL;
	}
	pthread_mutex_unlock(&g->threads.lock);
	km_err_free(&err);
	km_guest_end(g, 1, 0);
}

/* Futex helpers for the birth handshake of a cloned thread. */
static void word_wait(uint32_t *w, uint32_t while_is)
{
	while (__atomic_load_n(w, __ATOMIC_ACQUIRE) == while_is)
		syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, while_is, NULL, NULL, 0);
}

static void word_set(uint32_t *w, uint32_t val)
{
	__atomic_store_n(w, val, __ATOMIC_RELEASE);
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *thread_main(void *arg)
{
	km_vcpu_t *v = arg;
	km_err_t *err = NULL;
	/* The parent names the thread after this host thread (so that PI futexes, whose words the
	 * host kernel reads as host thread ids, work), then lets it run. */
	word_set((uint32_t *)&v->host_tid, (uint32_t)gettid());
	word_wait(&v->born, 0);
	if (km_vcpu_run(v, &err) < 0)
		thread_failed(v->g, err);
	thread_done(v);
	return NULL;
}

/* Starts v's host thread. Called with the lock held. Returns 0 or an errno. */
static int start_thread(km_vcpu_t *v)
{
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	v->thread_running = true;
	int rc = pthread_create(&t, &attr, thread_main, v);
	pthread_attr_destroy(&attr);
	if (rc != 0)
		v->thread_running = false;
	return rc;
}

/* --- running ------------------------------------------------------------------------------ */

/* Waits until no host thread runs a vCPU, kicking them again while the guest is ending (a kick
 * can be lost, see km_stopall.c). */
static void wait_all(km_guest_t *g)
{
	km_threads_t *t = &g->threads;
	pthread_mutex_lock(&t->lock);
	for (;;) {
		bool running = false;
		for (int i = 0; i < g->nvcpus && !running; i++)
			running = g->vcpus[i] != NULL && g->vcpus[i]->thread_running;
		if (!running)
			break;
		if (km_threads_wait_a_while(t) && km_guest_ended(g)) {
			pthread_mutex_unlock(&t->lock);
			km_threads_kick_all(g);
			pthread_mutex_lock(&t->lock);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

int km_threads_run(km_guest_t *g, km_err_t **err)
{
	km_vcpu_t *first = NULL;
	int rc = 0;
	pthread_mutex_lock(&g->threads.lock);
	for (int i = 0; i < g->nvcpus; i++) {
		km_vcpu_t *v = g->vcpus[i];
		if (v == NULL || !v->live)
			continue;
		if (first == NULL) {
			first = v;
			v->thread_running = true;
		} else if ((rc = start_thread(v)) != 0) {
			break;
		}
	}
	pthread_mutex_unlock(&g->threads.lock);
	if (rc != 0) {
		km_guest_end(g, 1, 0);
		km_err_set(err, rc, "starting the guest's threads");
	} else if (first != NULL && km_vcpu_run(first, err) < 0) {
		rc = -1;
		km_guest_end(g, 1, 0);
	}
	if (first != NULL)
		thread_done(first);
	wait_all(g);
	if (rc == 0 && g->thread_err != NULL) {
		*err = g->thread_err;
		g->thread_err = NULL;
		rc = -1;
	}
	return rc == 0 ? 0 : -1;
}

/* --- clone -------------------------------------------------------------------------------- */

static long refuse(km_vcpu_t *v, uint64_t flags, long err, const char *why)
{
	if (v->g->opts.trace)
		dprintf(v->g->opts.trace_fd, "km: clone flags %#lx refused: %s\n", (unsigned long)flags, why);
	return err;
}

static long check_flags(km_vcpu_t *v, uint64_t flags)
{
	uint64_t f = flags & ~(uint64_t)CSIGNAL;
	/* Without CLONE_THREAD it is a new process (km_proc_fork), never here. */
	if ((f & THREAD_FLAGS) != THREAD_FLAGS)
		return refuse(v, flags, -EINVAL, "a thread must share memory, files, filesystem and signal handlers");
	if (f & ~(uint64_t)(THREAD_FLAGS | THREAD_OPTIONAL))
		return refuse(v, flags, -EINVAL, "namespaces, pidfds, ptrace and other clone flags are not supported");
	return 0;
}

/* The new thread's state: the caller's registers at its syscall with rax 0 (and the new stack),
 * its FPU state, FS/GS bases (FS from CLONE_SETTLS), signal mask; no alternate stack. */
static int copy_cpu(km_vcpu_t *v, km_vcpu_t *c, uint64_t flags, uint64_t stack, uint64_t tls)
{
	struct kvm_regs r = v->user;
	r.rax = 0;
	if (stack != 0)
		r.rsp = stack;
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e[2];
	} m = {.h.nmsrs = 2, .e = {{.index = MSR_FS_BASE}, {.index = MSR_GS_BASE}}};
	if (ioctl(v->fd, KVM_GET_MSRS, &m) != 2)
		return -EAGAIN;
	if (flags & CLONE_SETTLS)
		m.e[0].data = tls;
	struct kvm_xsave *xs = malloc(sizeof(*xs));
	if (xs == NULL)
		return -ENOMEM;
	int rc = 0;
	if (ioctl(v->fd, KVM_GET_XSAVE, xs) < 0 || ioctl(c->fd, KVM_SET_XSAVE, xs) < 0 ||
	    ioctl(c->fd, KVM_SET_MSRS, &m) != 2 || ioctl(c->fd, KVM_SET_REGS, &r) < 0)
		rc = -EAGAIN;
	free(xs);
	c->sigmask = v->sigmask;
	return rc;
}

/* Writes the new thread's id where CLONE_PARENT_SETTID / CLONE_CHILD_SETTID ask, before it runs.
 * As in Linux, an address that cannot be written is no error. */
static void store_tids(km_vcpu_t *v, uint64_t flags, pid_t tid, uint64_t ptid, uint64_t ctid)
{
	uint32_t t = (uint32_t)tid;
	if (flags & CLONE_PARENT_SETTID)
		km_copy_to_guest(&v->g->mm, ptid, &t, sizeof(t));
	if (flags & CLONE_CHILD_SETTID)
		km_copy_to_guest(&v->g->mm, ctid, &t, sizeof(t));
}

/* True if a thread that has ended still has its host thread finishing (its slot frees soon). */
static bool slot_freeing(km_guest_t *g)
{
	for (int i = 0; i < KM_MAX_THREADS; i++)
		if (g->vcpus[i] != NULL && !g->vcpus[i]->live && g->vcpus[i]->thread_running)
			return true;
	return false;
}

/* Takes a slot and a vCPU for the new thread. Called with the lock held; returns with it. A
 * joined thread's host thread may still be on its way out (pthread_join returns when the guest
 * thread cleared its tid): its slot is waited for, not refused. */
static long new_vcpu(km_guest_t *g, km_vcpu_t **out)
{
	int slot;
	while ((slot = free_slot(g)) < 0 && slot_freeing(g) && !km_guest_ended(g) && g->threads.stop == KM_STOP_NONE)
		pthread_cond_wait(&g->threads.cond, &g->threads.lock);
	if (slot < 0 && g->threads.stop != KM_STOP_NONE)
		return 1; /* a stop began while we waited: park in it, then try again */
	if (slot < 0)
		return -EAGAIN;
	km_err_t *err = NULL;
	km_vcpu_t *c = g->vcpus[slot];
	int rc = c == NULL ? km_vcpu_create(g, slot, &c, &err) : km_vcpu_reset(c, &err);
	if (rc < 0) {
		km_err_free(&err);
		return -EAGAIN;
	}
	set_slot(g, c);
	*out = c;
	return 0;
}

long km_threads_clone(km_vcpu_t *v, uint64_t flags, uint64_t stack, uint64_t ptid, uint64_t ctid, uint64_t tls)
{
	km_guest_t *g = v->g;
	long rc = check_flags(v, flags);
	if (rc < 0)
		return rc;
	if ((flags & CLONE_SETTLS) && tls >= KM_USER_TOP)
		return -EPERM;
	km_threads_t *t = &g->threads;
	km_vcpu_t *c = NULL;
	pthread_mutex_lock(&t->lock);
	do {
		/* No thread appears in the middle of a stop: it would run while the others are
		 * stopped. */
		while (t->stop != KM_STOP_NONE && !km_guest_ended(g)) {
			pthread_mutex_unlock(&t->lock);
			struct kvm_regs r = km_syscall_restart_regs(v);
			km_stopall_park(v, &r, KM_CPU_RESTART_SYSCALL);
			pthread_mutex_lock(&t->lock);
		}
		rc = km_guest_ended(g) ? -EAGAIN : new_vcpu(g, &c);
	} while (rc == 1);
	if (rc == 0 && (rc = copy_cpu(v, c, flags, stack, tls)) == 0) {
		c->clear_child_tid = (flags & CLONE_CHILD_CLEARTID) ? ctid : 0;
		c->born = 0;
		c->host_tid = 0;
		if (start_thread(c) != 0) {
			rc = -EAGAIN;
		} else {
			word_wait((uint32_t *)&c->host_tid, 0);
			pid_t host = __atomic_load_n(&c->host_tid, __ATOMIC_ACQUIRE);
			/* A resumed guest's ids are old hosts': a new thread whose host id one of them
			 * has gets a free one instead (PI futexes cannot work for it then). */
			c->tid = tid_in_use(g, host) ? alloc_tid(g) : host;
			store_tids(v, flags, c->tid, ptid, ctid);
			c->live = true;
			t->nlive++;
			rc = c->tid;
			word_set(&c->born, 1);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* --- exit --------------------------------------------------------------------------------- */

/* Wakes whoever waits on the futex word at gva (pthread_join), private or shared waiters. */
static void futex_wake_all(km_vcpu_t *v, uint64_t gva)
{
	uint32_t *w = km_gva_to_hva(&v->g->mm, gva, sizeof(uint32_t), KM_ACC_WRITE);
	if (w == NULL)
		return;
	syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#define ROBUST_LIST_LIMIT 2048 /* Linux's bound on a list walk: a looped list cannot hang km */
#define FUTEX_OWNER_DIED_BIT 0x40000000u
#define FUTEX_WAITERS_BIT 0x80000000u
#define FUTEX_TID_BITS 0x3fffffffu

/* A robust futex whose owner is this thread: marked owner-died, a waiter woken (what Linux does
 * at thread exit, so that a mutex held by a dead thread is not held forever). */
static void robust_one(km_vcpu_t *v, uint64_t word)
{
	uint32_t *w = km_gva_to_hva(&v->g->mm, word, sizeof(uint32_t), KM_ACC_WRITE);
	if (w == NULL || (word & 3))
		return;
	uint32_t old = __atomic_load_n(w, __ATOMIC_ACQUIRE);
	for (;;) {
		if ((old & FUTEX_TID_BITS) != (uint32_t)v->tid)
			return;
		uint32_t nw = (old & FUTEX_WAITERS_BIT) | FUTEX_OWNER_DIED_BIT;
		if (__atomic_compare_exchange_n(w, &old, nw, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
	}
	if (old & FUTEX_WAITERS_BIT)
		syscall(SYS_futex, w, FUTEX_WAKE, 1, NULL, NULL, 0);
}

/* struct robust_list_head: {next, futex_offset, list_op_pending}; entries are `next` pointers. */
static void robust_walk(km_vcpu_t *v)
{
	km_mm_t *mm = &v->g->mm;
	uint64_t head[3];
	if (v->robust_list == 0 || km_copy_from_guest(mm, head, v->robust_list, sizeof(head)) < 0)
		return;
	int64_t off = (int64_t)head[1];
	uint64_t entry = head[0], pending = head[2] & ~1ull;
	for (int n = 0; entry != v->robust_list && n < ROBUST_LIST_LIMIT; n++) {
		uint64_t next;
		if (km_copy_from_guest(mm, &next, entry & ~1ull, sizeof(next)) < 0)
			break;
		if ((entry & ~1ull) != pending)
			robust_one(v, (entry & ~1ull) + (uint64_t)off);
		entry = next;
	}
	if (pending != 0)
		robust_one(v, pending + (uint64_t)off);
}

void km_threads_exit(km_vcpu_t *v, int status)
{
	km_guest_t *g = v->g;
	km_threads_t *t = &g->threads;
	pthread_mutex_lock(&t->lock);
	/* A thread does not end in the middle of a stop: a snapshot must see it either alive, about
	 * to call exit, or gone with its tid word cleared (a joiner waits on that word). */
	while (t->stop != KM_STOP_NONE && t->owner != v && !km_guest_ended(g)) {
		pthread_mutex_unlock(&t->lock);
		struct kvm_regs r = km_syscall_restart_regs(v);
		km_stopall_park(v, &r, KM_CPU_RESTART_SYSCALL);
		pthread_mutex_lock(&t->lock);
	}
	bool last = t->nlive <= 1;
	if (!last) {
		robust_walk(v);
		if (v->clear_child_tid != 0) {
			uint32_t zero = 0;
			if (km_copy_to_guest(&g->mm, v->clear_child_tid, &zero, sizeof(zero)) == 0)
				futex_wake_all(v, v->clear_child_tid);
		}
		v->live = false;
		t->nlive--;
		v->thread_exit = true;
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	if (last)
		km_guest_end(g, status & 0xff, 0);
}
