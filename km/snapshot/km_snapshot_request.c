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

int km_snapshot_request(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	if (km_guest_ended(g) || km_threads_live(g) == 0 ||
	    km_stopall_begin(g, NULL, KM_STOP_CLEAN, NULL, 0) < 0)
		return km_err_set(err, ESRCH, "the program is not running");
	int rc = write_stopped(g, NULL, req, res, err);
	km_stopall_end(g);
	return rc;
}

int km_snapshot_take(km_vcpu_t *v, const struct kvm_regs *user, const km_snapshot_req_t *req,
		     km_snapshot_result_t *res, km_err_t **err)
{
	km_guest_t *g = v->g;
	/* Our own state first: if another stop is in progress we park in it with these registers. */
	v->state.flags = 0;
	if (km_vcpu_capture(v, user, err) < 0)
		return -1;
	if (km_stopall_begin(g, v, KM_STOP_CLEAN, user, 0) < 0)
		return km_err_set(err, ESRCH, "the program is ending");
	/* Parking in another stop may have captured us again, as we are: the same registers. */
	v->state.flags = 0;
	int rc = km_vcpu_capture(v, user, err);
	if (rc == 0)
		rc = write_stopped(g, v, req, res, err);
	km_stopall_end(g);
	return rc;
}
