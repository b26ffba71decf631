/*
 * Snapshots asked for from outside the program (the management socket): the asking thread posts
 * a request and kicks every vCPU; a vCPU serves it at its next clean point (see km_snapshot.h)
 * and wakes the asker. A request may come at any moment of km's life: before a vCPU's thread
 * runs (the kick waits for its first KVM_RUN, see km_vcpu_kick), while it runs, while the guest
 * is ending (km_snapshot_cancel answers it) and after (refused at once).
 */
#include <errno.h>
#include <time.h>
#include <string.h>

#include "km_guest.h"
#include "km_snapshot.h"

#define KICK_AGAIN_NS 100000000l /* 100 ms */

/* Gets every vCPU out of KVM_RUN (or its host syscall) soon, started or not. */
static void kick_all(km_guest_t *g)
{
	for (int i = 0; i < g->nvcpus; i++)
		if (g->vcpus[i] != NULL)
			km_vcpu_kick(g->vcpus[i]);
}

int km_snapshot_request(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	pthread_mutex_lock(&g->snap_lock);
	if (g->exited || g->nvcpus == 0) {
		pthread_mutex_unlock(&g->snap_lock);
		return km_err_set(err, ESRCH, "the program is not running");
	}
	if (g->snap_req != NULL) {
		pthread_mutex_unlock(&g->snap_lock);
		return km_err_set(err, EBUSY, "another snapshot is being taken");
	}
	g->snap_req = req;
	g->snap_res = res;
	g->snap_done = false;
	g->snap_err = NULL;
	/* Posted before the kicks, so a vCPU that sees its kick sees the request. */
	__atomic_store_n(&g->snap_posted, true, __ATOMIC_RELEASE);
	kick_all(g);
	/* A kick can be lost: one that lands after the vCPU thread looked for requests and before
	 * its host syscall started blocking leaves it blocked. So kick again while nobody serves
	 * (serving holds snap_lock, so no kick lands in the middle of writing the file). */
	while (!g->snap_done) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t); /* snap_done_cond's clock (km_guest.c) */
		t.tv_nsec += KICK_AGAIN_NS;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		if (pthread_cond_timedwait(&g->snap_done_cond, &g->snap_lock, &t) == ETIMEDOUT && !g->snap_done)
			kick_all(g);
	}
	int rc = g->snap_rc;
	if (rc < 0) {
		km_err_free(err);
		*err = g->snap_err;
	}
	g->snap_req = NULL;
	g->snap_err = NULL;
	pthread_mutex_unlock(&g->snap_lock);
	return rc;
}

/* Wakes the asker with the outcome. Called with snap_lock held. */
static void finish(km_guest_t *g, int rc, km_err_t *err)
{
	g->snap_rc = rc;
	g->snap_err = err;
	g->snap_done = true;
	__atomic_store_n(&g->snap_posted, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&g->snap_done_cond);
}

bool km_snapshot_serve(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags)
{
	km_guest_t *g = v->g;
	pthread_mutex_lock(&g->snap_lock);
	const km_snapshot_req_t *req = g->snap_req;
	if (req == NULL || g->snap_done) {
		pthread_mutex_unlock(&g->snap_lock);
		return false;
	}
	km_err_t *err = NULL;
	v->state.flags = cpu_flags;
	int rc = km_vcpu_capture(v, user, &err);
	if (rc == 0)
		rc = km_snapshot_write(g, req, g->snap_res, &err);
	bool ended = rc == 0 && !req->keep_running;
	if (ended) {
		g->exited = true;
		g->exit_status = 0;
	}
	finish(g, rc, err);
	pthread_mutex_unlock(&g->snap_lock);
	return ended;
}

void km_snapshot_cancel(km_guest_t *g)
{
	pthread_mutex_lock(&g->snap_lock);
	g->exited = true;
	if (g->snap_req != NULL && !g->snap_done) {
		km_err_t *err = NULL;
		km_err_set(&err, ESRCH, "the program ended before the snapshot was taken");
		finish(g, -1, err);
	}
	pthread_mutex_unlock(&g->snap_lock);
}

bool km_snapshot_pending(km_guest_t *g)
{
	/* On every syscall: a plain atomic load; km_snapshot_serve re-checks under the lock. */
	return __atomic_load_n(&g->snap_posted, __ATOMIC_ACQUIRE);
}
