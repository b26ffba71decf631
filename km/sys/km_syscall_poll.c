/* The exitless syscall path: slot protocol, server threads, allowlist. See km_syscall_poll.h. */
#include "km_syscall_poll.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "km_guest.h"
#include "km_runtime.h"
#include "km_sigfd.h"
#include "km_snapshot_lease.h"
#include "km_signal.h"
#include "km_stopall.h"
#include "km_syscall.h"
#include "km_time.h"
#include "km_vcpu.h"

/* Bounds, in microseconds (docs/decisions.md, "The exitless syscall path"): an exit costs 25-80
 * us of CPU here, so spinning up to about that long costs no more than the exit it saves. */
#define TAKE_US 20  /* the stub waits this long for a server to take its request */
#define DONE_US 30  /* ... and this long for the answer, before its thread sleeps in km */
#define IDLE_US 200 /* a server spins this long after its last request, then sleeps */
#define REKICK_MS 10 /* a kick can land before the host call it should interrupt: sent again */

/* Who handles the vCPU's syscall now (km-private, a futex word). */
enum { OWN_FREE, OWN_SERVER, OWN_VCPU, OWN_HANDBACK };

typedef struct km_poll {
	km_vcpu_t *v;
	pthread_t thread;
	pthread_mutex_t lock; /* orders kicks against `serving` */
	bool serving;         /* running a handler: a kick signals `thread` */
	atomic_int kicked;    /* a kick arrived while serving (set by km's kick handler too) */
	uint32_t own;         /* OWN_* */
	uint32_t wake;        /* futex word a sleeping server waits on */
	uint32_t started;     /* futex word: 1 once the server thread runs its own code */
	atomic_int asleep;
	atomic_int stop;
	bool spinning;        /* holds one of the spin tokens */
	km_poll_handback_t hb; /* valid while own == OWN_HANDBACK */
	uint64_t idle_ticks;
} km_poll_t;

static atomic_ulong served_count, exit_count;
static atomic_int spinners; /* servers spinning now (capped under `auto`) */
static atomic_int nservers; /* servers made (capped under `auto`: each is a host thread, a pid) */
/* A server could not be made (a pids limit, memory): no more attempts, each would be a failing
 * clone on the exit path of every syscall. */
static atomic_bool no_more_servers;

int km_syscall_path_parse(const char *s)
{
	return strcmp(s, "auto") == 0 ? KM_SYSCALL_PATH_AUTO
	     : strcmp(s, "exit") == 0 ? KM_SYSCALL_PATH_EXIT
	     : strcmp(s, "poll") == 0 ? KM_SYSCALL_PATH_POLL
				      : -1;
}

bool km_poll_enabled(const km_guest_t *g)
{
	return g->opts.syscall_path == KM_SYSCALL_PATH_POLL ||
	       (g->opts.syscall_path == KM_SYSCALL_PATH_AUTO && g->opts.usable_cpus > 1);
}

/* How many servers may spin at once (and, under `auto`, exist: a container's pids limit counts
 * them): under `auto` one CPU stays the guest's. */
static int spin_cap(const km_guest_t *g)
{
	return g->opts.syscall_path == KM_SYSCALL_PATH_POLL ? KM_MAX_VCPUS : g->opts.usable_cpus - 1;
}

static void futex_wait(uint32_t *w, uint32_t val, long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
	syscall(SYS_futex, w, FUTEX_WAIT_PRIVATE, val, ms > 0 ? &ts : NULL, NULL, 0);
}

static void futex_wake(uint32_t *w)
{
	syscall(SYS_futex, w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

static km_poll_t *poll_of(km_vcpu_t *v)
{
	return __atomic_load_n(&v->poll, __ATOMIC_ACQUIRE);
}

/* --- the slot (guest memory: read each field once, trust nothing) ----------------------- */

static uint8_t *slot_of(km_vcpu_t *v)
{
	return km_runtime_poll_slot(&v->g->mm, v->id);
}

static uint32_t *slot_state(uint8_t *slot)
{
	return (uint32_t *)(slot + KM_SLOT_STATE);
}

static bool slot_cas(uint8_t *slot, uint32_t from, uint32_t to)
{
	return __atomic_compare_exchange_n(slot_state(slot), &from, to, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static uint64_t slot_load(uint8_t *slot, int off)
{
	return __atomic_load_n((uint64_t *)(slot + off), __ATOMIC_RELAXED);
}

static void slot_store(uint8_t *slot, int off, uint64_t val)
{
	__atomic_store_n((uint64_t *)(slot + off), val, __ATOMIC_RELEASE);
}

/* --- the allowlist ------------------------------------------------------------------------ */

/* Calls a server may run: they use nothing of the vCPU's host thread (its thread id, signal
 * mask, affinity, credentials, TLS), never stop other vCPUs or narrow a mapping, never wait in
 * km_signal_wait (kicks reach a server's host call, not that wait) and never end or create a
 * thread. No call that takes a path: the host resolves /proc/thread-self (and the like) for the
 * thread that makes the call, and a server is a thread of km's that km's /proc view does not
 * know as the program's. docs/decisions.md lists why each of the others stays on the exit path. */
static bool admitted(km_vcpu_t *v, uint64_t nr, const uint64_t *a)
{
	km_guest_t *g = v->g;
	if (g->gseccomp != NULL)
		return false; /* the guest's filter may trap, kill or log: the vCPU thread's work */
	switch (nr) {
	case SYS_getpid:
	case SYS_getppid:
	case SYS_getuid:
	case SYS_geteuid:
	case SYS_getgid:
	case SYS_getegid:
	case SYS_write:
	case SYS_pread64:
	case SYS_pwrite64:
	case SYS_readv:
	case SYS_writev:
	case SYS_lseek:
	case SYS_fstat:
	case SYS_close:
	case SYS_fsync:
	case SYS_fdatasync:
	case SYS_recvfrom:
	case SYS_sendto:
	case SYS_recvmsg:
	case SYS_sendmsg:
	case SYS_poll:
	case SYS_getrandom:
	case SYS_gettimeofday:
		return true;
	case SYS_clock_gettime: /* not the calling thread's CPU clock, nor one named by a tid */
		return (int)a[0] >= 0 && a[0] != CLOCK_THREAD_CPUTIME_ID;
	case SYS_read: /* a signalfd's read waits for signals in km_signal_wait */
		return !km_sigfd_is(g, (int)a[0]);
	case SYS_fcntl: /* not record locks: a blocking one waits in km's lock table */
		return a[1] == F_GETFD || a[1] == F_SETFD || a[1] == F_GETFL || a[1] == F_SETFL;
	case SYS_mmap: /* without MAP_FIXED it only adds: no stop, nothing narrowed */
		return !(a[3] & MAP_FIXED);
	case SYS_brk: /* not one that lowers the break (it narrows), nor with other threads (one of
		       * them could raise it meanwhile, making this one lower it under a stop) */
		return km_threads_live(g) == 1 &&
		       (a[0] == 0 || a[0] >= __atomic_load_n(&g->mm.brk_cur, __ATOMIC_RELAXED));
	default:
		return false;
	}
}

/* Work of the vCPU thread's own that cannot wait for the served call (a blocking one) to end:
 * the guest ending, a stop, a signal to deliver, the snapshot file's lease broken (its signal
 * reaches a vCPU thread, km_snapshot_lease.h). */
static bool urgent_for_vcpu(km_vcpu_t *v)
{
	km_guest_t *g = v->g;
	return km_guest_ended(g) || km_stopall_pending(g) || km_signal_deliverable(v) || km_snapshot_lease_broken(g);
}

/* Something only the vCPU's own thread can do is due: it must see the call's end. */
static bool needs_vcpu_thread(km_vcpu_t *v)
{
	km_guest_t *g = v->g;
	return urgent_for_vcpu(v) || v->restore_sigmask || v->thread_exit ||
	       __atomic_load_n(&g->mm.tlb_gen, __ATOMIC_ACQUIRE) != __atomic_load_n(&v->tlb_gen, __ATOMIC_ACQUIRE);
}

/* --- the server --------------------------------------------------------------------------- */

static void own_set(km_poll_t *p, uint32_t own)
{
	__atomic_store_n(&p->own, own, __ATOMIC_RELEASE);
	futex_wake(&p->own);
}

/* Marks the server as running a handler unless the vCPU thread's work is already due (checked
 * under the lock a kick takes, so a later kick finds `serving` and signals the server). */
static bool serve_begin(km_poll_t *p)
{
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->kicked, 0);
	bool ok = !needs_vcpu_thread(p->v);
	p->serving = ok;
	pthread_mutex_unlock(&p->lock);
	return ok;
}

static bool serve_end(km_poll_t *p)
{
	pthread_mutex_lock(&p->lock);
	p->serving = false;
	bool kicked = atomic_exchange(&p->kicked, 0);
	pthread_mutex_unlock(&p->lock);
	return kicked;
}

static void hand_back(km_poll_t *p, uint8_t *slot, uint64_t nr, long ret, bool kicked)
{
	p->hb = (km_poll_handback_t){.nr = nr, .ret = ret, .kicked = kicked};
	own_set(p, OWN_HANDBACK);
	slot_cas(slot, KM_POLL_TAKEN, KM_POLL_FINISH);
}

/* One request posted in the slot. */
static void serve(km_poll_t *p, uint8_t *slot)
{
	km_vcpu_t *v = p->v;
	uint32_t free_ = OWN_FREE;
	if (!__atomic_compare_exchange_n(&p->own, &free_, OWN_SERVER, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
		return; /* the vCPU thread handles a syscall, or has one to pick up */
	if (!slot_cas(slot, KM_POLL_REQ, KM_POLL_TAKEN)) {
		own_set(p, OWN_FREE);
		return;
	}
	uint64_t nr = slot_load(slot, KM_SLOT_NR), a[6];
	for (int i = 0; i < 6; i++)
		a[i] = slot_load(slot, KM_SLOT_ARGS + 8 * i);
	if (!admitted(v, nr, a) || !serve_begin(p)) {
		own_set(p, OWN_FREE);
		slot_cas(slot, KM_POLL_TAKEN, KM_POLL_REFUSED);
		return;
	}
	long ret = km_syscall_run_unfiltered(v, nr, a);
	bool kicked = serve_end(p);
	atomic_fetch_add(&served_count, 1);
	if ((ret == -EINTR && kicked) || ret == -KM_ERESTART || needs_vcpu_thread(v)) {
		hand_back(p, slot, nr, ret, kicked);
		return;
	}
	slot_store(slot, KM_SLOT_RESULT, (uint64_t)ret);
	if (slot_cas(slot, KM_POLL_TAKEN, KM_POLL_DONE))
		own_set(p, OWN_FREE);
	else /* the stub stopped waiting (or the program scribbled): its int3 picks this up */
		hand_back(p, slot, nr, ret, kicked);
}

static bool take_token(km_poll_t *p)
{
	if (p->spinning)
		return true;
	int cap = spin_cap(p->v->g), n = atomic_load(&spinners);
	while (n < cap)
		if (atomic_compare_exchange_weak(&spinners, &n, n + 1))
			return p->spinning = true;
	return false;
}

static void put_token(km_poll_t *p)
{
	if (p->spinning)
		atomic_fetch_sub(&spinners, 1);
	p->spinning = false;
}

/* Sleeps until the vCPU thread wakes it (after an exit-path syscall) or teardown. The slot says
 * ASLEEP so the stub goes straight to the exit path; a request already posted is turned away the
 * same way (the stub's withdrawal fails and it exits: km's state says nobody took it). A slot
 * left DONE or REFUSED belongs to the stub still: left as it is. */
static void server_sleep(km_poll_t *p, uint8_t *slot)
{
	put_token(p);
	uint32_t seq = __atomic_load_n(&p->wake, __ATOMIC_ACQUIRE);
	atomic_store(&p->asleep, 1);
	if (!slot_cas(slot, KM_POLL_IDLE, KM_POLL_ASLEEP))
		slot_cas(slot, KM_POLL_REQ, KM_POLL_ASLEEP);
	if (!atomic_load(&p->stop))
		futex_wait(&p->wake, seq, 0);
	atomic_store(&p->asleep, 0);
}

static void *server_main(void *arg)
{
	km_poll_t *p = arg;
	km_vcpu_kick_flag(&p->kicked);
	__atomic_store_n(&p->started, 1, __ATOMIC_RELEASE);
	futex_wake(&p->started);
	uint8_t *slot = slot_of(p->v);
	uint64_t last = __rdtsc();
	bool woken = true;
	while (!atomic_load(&p->stop)) {
		if (km_guest_ended(p->v->g) || !take_token(p)) {
			server_sleep(p, slot);
			last = __rdtsc();
			woken = true;
			continue;
		}
		if (woken) /* the stub may post again */
			slot_cas(slot, KM_POLL_ASLEEP, KM_POLL_IDLE);
		woken = false;
		if (__atomic_load_n(slot_state(slot), __ATOMIC_ACQUIRE) == KM_POLL_REQ) {
			serve(p, slot);
			last = __rdtsc();
		} else if (__rdtsc() - last > p->idle_ticks) {
			server_sleep(p, slot);
			last = __rdtsc();
			woken = true;
		} else {
			_mm_pause();
		}
	}
	put_token(p);
	return NULL;
}

/* TSC ticks per microsecond of the vCPU's TSC (the host's: km_vdso_vcpu_init), 1 GHz if KVM
 * cannot say (the bounds are then off by the ratio, nothing worse). */
static uint64_t ticks_per_us(km_vcpu_t *v)
{
	long khz = ioctl(v->fd, KVM_GET_TSC_KHZ, 0);
	return khz > 0 ? (uint64_t)khz / 1000 : 1000;
}

static km_poll_t *server_start(km_vcpu_t *v)
{
	km_poll_t *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->v = v;
	pthread_mutex_init(&p->lock, NULL);
	uint64_t tpu = ticks_per_us(v), test = v->g->opts.poll_spin_us;
	p->idle_ticks = (test ? test : IDLE_US) * tpu;
	uint8_t *stub = km_runtime_poll_stub(&v->g->mm, v->id);
	slot_store(stub, KM_POLL_TAKE_TICKS, (test ? test : TAKE_US) * tpu);
	slot_store(stub, KM_POLL_DONE_TICKS, (test ? test : DONE_US) * tpu);
	/* SIGXCPU goes to a vCPU thread (km_signal_host_block); the kick stays deliverable. */
	sigset_t old;
	km_signal_host_block(&old);
	int rc = pthread_create(&p->thread, NULL, server_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_mutex_destroy(&p->lock);
		free(p);
		return NULL;
	}
	/* A thread still starting up may hold the allocator's locks (the sanitizers' allocator has
	 * no fork handler): the guest's next call can be a fork, whose child would inherit them
	 * held and hang. So no server is left half started. */
	while (__atomic_load_n(&p->started, __ATOMIC_ACQUIRE) == 0)
		futex_wait(&p->started, 0, 0);
	return p;
}

/* --- the vCPU thread's side --------------------------------------------------------------- */

/* The vCPU is in km, so its stub is not running: a state only the stub moves on from (it left
 * an answer behind, or gave up) would keep every later call on the exit path. Reset to IDLE; a
 * request (REQ) is left to the server, ASLEEP to the server's sleep. */
static void slot_settle(km_vcpu_t *v)
{
	uint8_t *slot = slot_of(v);
	uint32_t st = __atomic_load_n(slot_state(slot), __ATOMIC_ACQUIRE);
	if (st != KM_POLL_IDLE && st != KM_POLL_REQ && st != KM_POLL_ASLEEP)
		slot_cas(slot, st, KM_POLL_IDLE);
}

bool km_poll_claim(km_vcpu_t *v, km_poll_handback_t *hb)
{
	km_poll_t *p = poll_of(v);
	if (p == NULL)
		return false;
	for (;;) {
		uint32_t o = __atomic_load_n(&p->own, __ATOMIC_ACQUIRE);
		if (o == OWN_HANDBACK) {
			*hb = p->hb;
			__atomic_store_n(&p->own, OWN_VCPU, __ATOMIC_RELEASE);
			slot_settle(v);
			return true;
		}
		if (o == OWN_FREE) {
			if (!__atomic_compare_exchange_n(&p->own, &o, OWN_VCPU, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				continue;
			slot_settle(v);
			return false;
		}
		if (o == OWN_VCPU)
			return false;
		/* A server runs it (it blocks: the stub gave up spinning). A kick that came just
		 * before its host call began was lost: while the vCPU thread's work is due, kick on. */
		futex_wait(&p->own, OWN_SERVER, REKICK_MS);
		if (urgent_for_vcpu(v))
			km_poll_kick(v);
	}
}

void km_poll_release(km_vcpu_t *v)
{
	km_poll_t *p = poll_of(v);
	if (p != NULL)
		own_set(p, OWN_FREE);
}

void km_poll_after_exit(km_vcpu_t *v)
{
	atomic_fetch_add(&exit_count, 1);
	if (!km_poll_enabled(v->g) || km_guest_ended(v->g) || v->thread_exit)
		return;
	km_poll_t *p = poll_of(v);
	if (p == NULL) {
		if (atomic_load(&no_more_servers))
			return;
		if (atomic_fetch_add(&nservers, 1) >= spin_cap(v->g)) {
			atomic_fetch_sub(&nservers, 1); /* `auto`'s share is taken: the exit path */
			return;
		}
		p = server_start(v); /* on failure the vCPU keeps the exit path (slot ASLEEP) */
		if (p == NULL) {
			atomic_fetch_sub(&nservers, 1);
			atomic_store(&no_more_servers, true);
		}
		__atomic_store_n(&v->poll, p, __ATOMIC_RELEASE);
		return;
	}
	if (atomic_load(&p->asleep) && atomic_load(&spinners) < spin_cap(v->g)) {
		__atomic_add_fetch(&p->wake, 1, __ATOMIC_RELEASE);
		futex_wake(&p->wake);
	}
}

void km_poll_kick(km_vcpu_t *v)
{
	km_poll_t *p = poll_of(v);
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	if (p->serving) {
		atomic_store(&p->kicked, 1);
		pthread_kill(p->thread, KM_SIG_KICK);
	}
	pthread_mutex_unlock(&p->lock);
}

void km_poll_vcpu_reset(km_vcpu_t *v)
{
	km_poll_t *p = poll_of(v);
	uint32_t hb = OWN_HANDBACK;
	if (p != NULL)
		__atomic_compare_exchange_n(&p->own, &hb, OWN_FREE, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

void km_poll_destroy(km_vcpu_t *v)
{
	km_poll_t *p = poll_of(v);
	if (p == NULL)
		return;
	atomic_store(&p->stop, 1);
	for (;;) {
		__atomic_add_fetch(&p->wake, 1, __ATOMIC_RELEASE);
		futex_wake(&p->wake);
		km_poll_kick(v);
		struct timespec ts = km_clock_in(CLOCK_REALTIME, REKICK_MS * 1000000ull);
		if (pthread_timedjoin_np(p->thread, NULL, &ts) == 0)
			break;
	}
	__atomic_store_n(&v->poll, NULL, __ATOMIC_RELEASE);
	atomic_fetch_sub(&nservers, 1);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void km_poll_stop_all(km_guest_t *g)
{
	for (int i = 0; i < KM_MAX_VCPUS; i++)
		if (g->vcpus[i] != NULL)
			km_poll_destroy(g->vcpus[i]);
}

void km_poll_forget(km_vcpu_t *v)
{
	km_poll_t *p = poll_of(v);
	atomic_store(&spinners, 0); /* no server thread crossed the fork */
	atomic_store(&nservers, 0);
	atomic_store(&no_more_servers, false);
	if (p == NULL)
		return;
	v->poll = NULL;
	free(p); /* its lock may have been held by a thread of the parent: not destroyed */
}

void km_poll_print_timing(int fd)
{
	dprintf(fd, "km-timing: syscalls_served=%lu syscalls_exit=%lu\n", (unsigned long)atomic_load(&served_count),
		(unsigned long)atomic_load(&exit_count));
}
