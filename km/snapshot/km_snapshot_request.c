/*
 * Snapshots of a running guest, on top of stop-all (km_stopall.h): every thread parks at a clean
 * point with its state captured, the file is written, and the threads go on or the guest ends.
 * Asked for from outside the program (the management socket, km_snapshot_request) or by one of
 * its threads (HC_snapshot, km_snapshot_take). A request may come at any moment of km's life:
 * before a vCPU's thread runs (its first KVM_RUN returns at once, at the entry point: a clean
 * point), while threads are created or end (stops and clone exclude each other), while the
 * guest is ending and after (refused).
 */
#include <errno.h>
#include <string.h>

#include "km_guest.h"
#include "km_snapshot.h"
#include "km_stopall.h"

/* Every recorded thread must have been captured. */
static int check_captured(km_guest_t *g, const km_vcpu_t *self, km_err_t **err)
{
	for (int i = 0; i < g->nvcpus; i++) {
		km_vcpu_t *v = g->vcpus[i];
		if (v != NULL && v->live && v != self && v->capture_rc != 0)
			return km_err_set(err, EIO, "reading the state of the program's thread %d (vCPU %d)", v->tid,
					  v->id);
	}
	return 0;
}

/* With every other thread stopped: writes, then ends the guest if asked to. */
static int write_stopped(km_guest_t *g, const km_vcpu_t *self, const km_snapshot_req_t *req,
			 km_snapshot_result_t *res, km_err_t **err)
{
	int rc = check_captured(g, self, err);
	if (rc == 0) {
		km_mm_rdlock(&g->mm);
		rc = km_snapshot_write(g, req, res, err);
		km_mm_rdunlock(&g->mm);
	}
	if (rc == 0 && !req->keep_running)
		km_guest_end(g, 0, 0);
	return rc;
}

/* A request from outside, carried to the vCPU that serves it. */
typedef struct job {
	const km_snapshot_req_t *req;
	km_snapshot_result_t *res;
	km_err_t *err;
	int rc;
} job_t;

static bool serve(km_vcpu_t *v, const struct kvm_regs *u, uint64_t cpu_flags, void *arg)
{
	job_t *j = arg;
	j->rc = km_snapshot_take(v, u, cpu_flags, j->req, j->res, &j->err);
	return km_guest_ended(v->g);
}

/* Written by one of the guest's own vCPUs, not by the asking thread: the listener has an fd
 * table of its own, and the snapshot reads through the guest's (the file it was resumed from,
 * and its open files as they come to be saved). */
int km_snapshot_request(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	job_t j = {.req = req, .res = res, .err = NULL, .rc = -1};
	int rc = km_stopall_run_on_vcpu(g, serve, &j);
	if (rc == -2)
		return km_err_set(err, EBUSY, "another snapshot is being taken");
	if (rc < 0)
		return km_err_set(err, ESRCH, "the program is not running");
	if (j.rc < 0) {
		km_err_free(err);
		*err = j.err;
	}
	return j.rc;
}

static bool serve_paused(km_vcpu_t *v, const struct kvm_regs *u, uint64_t cpu_flags, void *arg)
{
	(void)u;
	(void)cpu_flags;
	job_t *j = arg;
	j->rc = write_stopped(v->g, NULL, j->req, j->res, &j->err); /* v too was captured when it parked */
	return km_guest_ended(v->g);
}

int km_snapshot_request_paused(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res,
			       km_err_t **err)
{
	job_t j = {.req = req, .res = res, .err = NULL, .rc = -1};
	int rc = km_stopall_run_on_vcpu(g, serve_paused, &j);
	if (rc == -2)
		return km_err_set(err, EBUSY, "another snapshot is being taken");
	if (rc < 0)
		return km_err_set(err, ESRCH, "the program is not running");
	if (j.rc < 0) {
		km_err_free(err);
		*err = j.err;
	}
	return j.rc;
}

int km_snapshot_take(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags, const km_snapshot_req_t *req,
		     km_snapshot_result_t *res, km_err_t **err)
{
	km_guest_t *g = v->g;
	/* Our own state first: if another stop is in progress we park in it with these registers. */
	v->state.flags = cpu_flags;
	if (km_vcpu_capture(v, user, err) < 0)
		return -1;
	if (km_stopall_begin(g, v, KM_STOP_CLEAN, user, cpu_flags) < 0)
		return km_err_set(err, ESRCH, "the program is ending");
	/* Parking in another stop may have captured us again, as we are: the same registers. */
	v->state.flags = cpu_flags;
	int rc = km_vcpu_capture(v, user, err);
	if (rc == 0)
		rc = write_stopped(g, v, req, res, err);
	km_stopall_end(g);
	return rc;
}
