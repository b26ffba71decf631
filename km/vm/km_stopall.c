/* The guest's threads as a group, and stop-all. See km_stopall.h. */
#include "km_stopall.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "km_guest.h"
#include "km_time.h"
#include "km_vcpu.h"

/* A kick can be lost (one that lands after a vCPU looked and before its host syscall started
 * blocking leaves it blocked), so a stop kicks again every so often while it waits. */
#define KICK_AGAIN_NS 100000000l /* 100 ms */

void km_threads_init(km_threads_t *t)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	/* Monotonic: the re-kick deadline must not move when the wall clock does. */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
}

void km_threads_fini(km_threads_t *t)
{
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
}

/* A kick that lands where a vCPU cannot stop (km's vDSO, where a program reading the clock in a
 * loop spends most of its time; km's stubs) is not repeated by that vCPU: the stop kicks it again
 * soon, not after KICK_AGAIN_NS, or every stop of such a program would take 100 ms or more. */
#define KICK_SOON_NS 1000000l /* 1 ms */

static bool wait_briefly(km_threads_t *t)
{
	struct timespec ts = km_clock_in(CLOCK_MONOTONIC, KICK_SOON_NS);
	return pthread_cond_timedwait(&t->cond, &t->lock, &ts) == ETIMEDOUT;
}

bool km_threads_wait_a_while(km_threads_t *t)
{
	struct timespec ts = km_clock_in(CLOCK_MONOTONIC, KICK_AGAIN_NS);
	return pthread_cond_timedwait(&t->cond, &t->lock, &ts) == ETIMEDOUT;
}

static bool is_live(const km_vcpu_t *v)
{
	return v != NULL && v->live;
}

void km_threads_kick_all(km_guest_t *g)
{
	for (int i = 0; i < KM_MAX_VCPUS; i++) {
		km_vcpu_t *v = __atomic_load_n(&g->vcpus[i], __ATOMIC_ACQUIRE);
		if (v != NULL)
			km_vcpu_kick(v); /* safe on a vCPU whose thread has ended: ignored */
	}
}

int km_threads_live(km_guest_t *g)
{
	pthread_mutex_lock(&g->threads.lock);
	int n = g->threads.nlive;
	pthread_mutex_unlock(&g->threads.lock);
	return n;
}

/* True when every vCPU but the owner is where the stop needs it. Called with the lock held. */
static bool all_stopped(km_guest_t *g)
{
	km_threads_t *t = &g->threads;
	if (t->stop == KM_STOP_CLEAN)
		return t->nparked >= t->nlive - (t->owner != NULL ? 1 : 0);
	for (int i = 0; i < KM_MAX_VCPUS; i++) {
		km_vcpu_t *v = g->vcpus[i];
		if (is_live(v) && v != t->owner && atomic_load(&v->in_guest))
			return false;
	}
	return true;
}

/* Kicks the vCPUs the stop still waits for. Called with the lock held. */
static void kick_laggards(km_guest_t *g)
{
	km_threads_t *t = &g->threads;
	for (int i = 0; i < KM_MAX_VCPUS; i++) {
		km_vcpu_t *v = g->vcpus[i];
		if (!is_live(v) || v == t->owner || v->parked)
			continue;
		if (t->stop == KM_STOP_CLEAN || atomic_load(&v->in_guest))
			km_vcpu_kick(v);
	}
}

static bool run_job(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags, bool *ended);

/* Parks v in the stop in progress until it ends. Called with the lock held; returns with it.
 * In a clean stop that no vCPU owns (the guest paused from outside, km_stopall.h) a parked vCPU
 * serves jobs meanwhile: it stands at a clean point, its state captured, the others parked. */
static void park_locked(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags)
{
	km_guest_t *g = v->g;
	km_threads_t *t = &g->threads;
	if (t->stop == KM_STOP_CLEAN) {
		km_err_t *err = NULL;
		v->state.flags = cpu_flags;
		v->capture_rc = km_vcpu_capture(v, user, &err);
		km_err_free(&err);
	}
	uint64_t gen = t->stop_gen;
	v->parked = true;
	t->nparked++;
	pthread_cond_broadcast(&t->cond);
	while (t->stop_gen == gen) {
		bool ended = false;
		if (t->stop == KM_STOP_CLEAN && t->owner == NULL && run_job(v, user, cpu_flags, &ended))
			continue;
		pthread_cond_wait(&t->cond, &t->lock);
	}
	v->parked = false;
}

int km_stopall_begin(km_guest_t *g, km_vcpu_t *self, km_stop_kind_t kind, const struct kvm_regs *self_regs,
		     uint64_t cpu_flags)
{
	km_threads_t *t = &g->threads;
	pthread_mutex_lock(&t->lock);
	while (t->stop != KM_STOP_NONE && !km_guest_ended(g)) {
		if (self != NULL && self_regs == NULL) {
			pthread_mutex_unlock(&t->lock);
			return -1; /* not at a clean point: the caller tries again later */
		}
		if (self != NULL)
			park_locked(self, self_regs, cpu_flags);
		else
			pthread_cond_wait(&t->cond, &t->lock);
	}
	if (km_guest_ended(g)) {
		pthread_mutex_unlock(&t->lock);
		return -1;
	}
	t->stop = kind;
	t->owner = self;
	t->nparked = 0;
	__atomic_store_n(&t->stop_posted, true, __ATOMIC_SEQ_CST);
	/* Posted before the kicks, so a vCPU that sees its kick sees the stop. */
	kick_laggards(g);
	while (!all_stopped(g) && !km_guest_ended(g))
		if (wait_briefly(t))
			kick_laggards(g);
	if (km_guest_ended(g)) {
		/* Some thread ended the guest while we waited: nothing to stop any more. */
		pthread_mutex_unlock(&t->lock);
		km_stopall_end(g);
		return -1;
	}
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void km_stopall_end(km_guest_t *g)
{
	km_threads_t *t = &g->threads;
	pthread_mutex_lock(&t->lock);
	t->stop = KM_STOP_NONE;
	t->owner = NULL;
	t->nparked = 0;
	t->stop_gen++;
	__atomic_store_n(&t->stop_posted, false, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}

bool km_stopall_pending(km_guest_t *g)
{
	return __atomic_load_n(&g->threads.stop_posted, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&g->threads.job_posted, __ATOMIC_ACQUIRE);
}

int km_stopall_run_on_vcpu(km_guest_t *g, km_vcpu_job_fn fn, void *arg)
{
	km_threads_t *t = &g->threads;
	pthread_mutex_lock(&t->lock);
	if (t->job != NULL) {
		pthread_mutex_unlock(&t->lock);
		return -2;
	}
	if (km_guest_ended(g) || t->nlive == 0) {
		pthread_mutex_unlock(&t->lock);
		return -1;
	}
	t->job = fn;
	t->job_arg = arg;
	t->job_done = false;
	__atomic_store_n(&t->job_posted, true, __ATOMIC_SEQ_CST);
	pthread_cond_broadcast(&t->cond); /* vCPUs parked in a pause take jobs too */
	pthread_mutex_unlock(&t->lock);
	km_threads_kick_all(g);
	pthread_mutex_lock(&t->lock);
	/* Taken (job_posted cleared) it runs to its end; untaken it is withdrawn if the guest ends. */
	while (!t->job_done && (!km_guest_ended(g) || !__atomic_load_n(&t->job_posted, __ATOMIC_ACQUIRE)))
		if (km_threads_wait_a_while(t) && __atomic_load_n(&t->job_posted, __ATOMIC_ACQUIRE)) {
			pthread_mutex_unlock(&t->lock);
			km_threads_kick_all(g);
			pthread_mutex_lock(&t->lock);
		}
	bool done = t->job_done;
	__atomic_store_n(&t->job_posted, false, __ATOMIC_SEQ_CST);
	t->job = NULL;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	return done ? 0 : -1;
}

/* Takes the posted job, if any, and runs it on v. Called with the lock held; returns with it.
 * True if a job ran. */
static bool run_job(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags, bool *ended)
{
	km_threads_t *t = &v->g->threads;
	if (!__atomic_load_n(&t->job_posted, __ATOMIC_ACQUIRE) || t->job == NULL)
		return false;
	__atomic_store_n(&t->job_posted, false, __ATOMIC_SEQ_CST);
	km_vcpu_job_fn fn = t->job;
	void *arg = t->job_arg;
	pthread_mutex_unlock(&t->lock);
	*ended = fn(v, user, cpu_flags, arg);
	pthread_mutex_lock(&t->lock);
	t->job_done = true;
	pthread_cond_broadcast(&t->cond);
	return true;
}

bool km_stopall_park(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags)
{
	km_guest_t *g = v->g;
	km_threads_t *t = &g->threads;
	bool ended = false;
	pthread_mutex_lock(&t->lock);
	if (!run_job(v, user, cpu_flags, &ended) && t->stop != KM_STOP_NONE && t->owner != v)
		park_locked(v, user, cpu_flags);
	pthread_mutex_unlock(&t->lock);
	return ended || km_guest_ended(g);
}

bool km_stopall_gate(km_vcpu_t *v)
{
	km_guest_t *g = v->g;
	for (;;) {
		/* Marked in the guest before looking (both seq_cst): a stop posted after the look
		 * sees the mark and kicks this vCPU out of the KVM_RUN it is about to enter. */
		atomic_store(&v->in_guest, 1);
		if (km_guest_ended(g)) {
			atomic_store(&v->in_guest, 0);
			return true;
		}
		if (!__atomic_load_n(&g->threads.stop_posted, __ATOMIC_SEQ_CST))
			return false;
		atomic_store(&v->in_guest, 0);
		km_threads_t *t = &g->threads;
		pthread_mutex_lock(&t->lock);
		/* A clean stop is served at clean points only (the vCPU may stand in km's stub here):
		 * it goes on into the guest, where its kick stops it at one. */
		if (t->stop == KM_STOP_OUT && t->owner != v) {
			pthread_cond_broadcast(&t->cond);
			uint64_t gen = t->stop_gen;
			while (t->stop_gen == gen)
				pthread_cond_wait(&t->cond, &t->lock);
			pthread_mutex_unlock(&t->lock);
			continue;
		}
		pthread_mutex_unlock(&t->lock);
		atomic_store(&v->in_guest, 1);
		return km_guest_ended(g);
	}
}

void km_stopall_left_guest(km_vcpu_t *v)
{
	atomic_store(&v->in_guest, 0);
	/* The owner of a stop may be waiting for exactly this. */
	if (__atomic_load_n(&v->g->threads.stop_posted, __ATOMIC_SEQ_CST)) {
		pthread_mutex_lock(&v->g->threads.lock);
		pthread_cond_broadcast(&v->g->threads.cond);
		pthread_mutex_unlock(&v->g->threads.lock);
	}
}
