/*
 * Snapshots of a running guest, on top of stop-all (km_stopall.h): every thread parks at a clean
 * point with its state captured, the file is written, and the threads go on or the guest ends.
 * Asked for from outside the program (the management socket, km_snapshot_request) or by one of
 * its threads (HC_snapshot, km_snapshot_take). A request may come at any moment of km's life:
 * before a vCPU's thread runs (its first KVM_RUN returns at once, at the entry point: a clean
 * point), while threads are created or end (stops and clone exclude each other), while the
 * guest is ending and after (refused).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_proc.h"
#include "km_dirty.h"
#include "km_snapshot.h"
#include "km_snapshot_live.h"
#include "km_stopall.h"
#include "km_time.h"

/* A snapshot the program survives, taken while it runs (not paused from outside): its memory is
 * written by a forked writer while the program goes on (km_snapshot_live.h). */
static bool is_live(const km_snapshot_req_t *req)
{
	return req->keep_running && req->reason != KM_REASON_CORE;
}

static int take_pause(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags, const km_snapshot_req_t *req,
		      km_snapshot_result_t *res, km_snapshot_live_t **live, km_err_t **err);

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

/* Appends the pids of km's children (each thread's, from /proc) to buf, at most a few. */
static void list_children(char *buf, size_t size)
{
	size_t used = 0;
	int shown = 0;
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL && shown < 8) {
		char path[64], kids[256];
		if (e->d_name[0] == '.' || snprintf(path, sizeof(path), "/proc/self/task/%.20s/children", e->d_name) < 0)
			continue;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, kids, sizeof(kids) - 1) : -1;
		if (fd >= 0)
			close(fd);
		if (n <= 0)
			continue;
		kids[n] = '\0';
		for (char *t = strtok(kids, " \n"); t != NULL && shown < 8; t = strtok(NULL, " \n"), shown++) {
			int w = snprintf(buf + used, size - used, "%s%s", shown ? ", " : "", t);
			if (w < 0 || (size_t)w >= size - used)
				break;
			used += (size_t)w;
		}
	}
	if (d != NULL)
		closedir(d);
	if (shown == 0)
		snprintf(buf, size, "one that has ended and was not waited for");
}

/* km snapshots one process: a snapshot of a parent without its children would be a silent partial
 * one of the program (its children go on, and a resume would have none). Refused before anything
 * is written; the program goes on. */
static int refuse_children(km_guest_t *g, km_err_t **err)
{
	int rc = km_proc_has_children(g, err);
	if (rc <= 0)
		return rc;
	char pids[160] = "";
	list_children(pids, sizeof(pids));
	km_err_set(err, 0, "the program has child processes (pid %s); km snapshots one process", pids);
	if (err != NULL && *err != NULL)
		(*err)->errnum = EBUSY; /* what the program's hypercall returns; the message says why */
	return -1;
}

/* With every other thread stopped: writes, then ends the guest if asked to. With `live` (a
 * snapshot the program survives, taken from a running program), only what needs the program
 * stopped is done here and a writer forked for the rest (*live, for km_snapshot_live_finish once
 * the program runs again). */
static int write_stopped(km_guest_t *g, const km_vcpu_t *self, const km_snapshot_req_t *req,
			 km_snapshot_result_t *res, km_snapshot_live_t **live, km_err_t **err)
{
	int rc = refuse_children(g, err);
	if (rc == 0)
		rc = check_captured(g, self, err);
	if (rc == 0) {
		km_mm_rdlock(&g->mm);
		rc = live != NULL ? km_snapshot_write_live(g, req, live, err) : km_snapshot_write(g, req, res, err);
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
	km_snapshot_live_t *live; /* a live snapshot's writer, which the asking thread waits for */
	km_err_t *err;
	int rc;
} job_t;

static bool serve(km_vcpu_t *v, const struct kvm_regs *u, uint64_t cpu_flags, void *arg)
{
	job_t *j = arg;
	j->rc = take_pause(v, u, cpu_flags, j->req, j->res, &j->live, &j->err);
	return km_guest_ended(v->g);
}

/* Written by one of the guest's own vCPUs, not by the asking thread: the listener has an fd
 * table of its own, and the snapshot reads through the guest's (the file it was resumed from,
 * and its open files as they come to be saved). A live snapshot's writer is waited for here, so
 * that the vCPU that took the pause runs on at once. */
int km_snapshot_request(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	job_t j = {.req = req, .res = res, .live = NULL, .err = NULL, .rc = -1};
	/* The first snapshot that will start change tracking (incremental snapshots may follow)
	 * write-protects all of memory: done now, while the program runs, so that the pause only
	 * drains (docs/decisions.md entry 16). */
	if (g->opts.track_changes && req->keep_running && !km_dirty_on(g)) {
		km_err_t *e = NULL;
		if (km_dirty_arm(g, &e) < 0)
			km_err_free(&e); /* the start in the pause does it all then */
	}
	int rc = km_stopall_run_on_vcpu(g, serve, &j);
	if (j.rc == 0 && j.live != NULL) /* even if the program ended meanwhile: the answer is owed */
		j.rc = km_snapshot_live_finish(j.live, res, NULL, NULL, &j.err);
	else if (rc == -2)
		return km_err_set(err, EBUSY, "another snapshot is being taken");
	else if (rc < 0)
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
	j->rc = write_stopped(v->g, NULL, j->req, j->res, NULL, &j->err); /* v too was captured when it parked */
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

/* The pause: v (at a clean point with registers *user) stops the others, and the file is
 * written (or, live, its writer forked: *live) before they go on. */
static int take_pause(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags, const km_snapshot_req_t *req,
		      km_snapshot_result_t *res, km_snapshot_live_t **live, km_err_t **err)
{
	km_guest_t *g = v->g;
	*live = NULL;
	/* Our own state first: if another stop is in progress we park in it with these registers. */
	v->state.flags = cpu_flags;
	if (km_vcpu_capture(v, user, err) < 0)
		return -1;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (km_stopall_begin(g, v, KM_STOP_CLEAN, user, cpu_flags) < 0)
		return km_err_set(err, ESRCH, "the program is ending");
	/* Parking in another stop may have captured us again, as we are: the same registers. */
	v->state.flags = cpu_flags;
	int rc = km_vcpu_capture(v, user, err);
	if (rc == 0)
		rc = write_stopped(g, v, req, res, is_live(req) ? live : NULL, err);
	km_stopall_end(g);
	if (rc == 0 && *live != NULL && g->opts.timing) {
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		fprintf(stderr, "km-timing: snapshot_pause_ns=%lu\n", (unsigned long)km_ts_diff_ns(t1, t0));
	}
	return rc;
}

/* The vCPU that asked waits for its writer; a stop begun meanwhile (another snapshot, a
 * mapping narrowed by another thread) must not wait for the writer too: park in it, as at the
 * hypercall's return. */
typedef struct waiter {
	km_vcpu_t *v;
	const struct kvm_regs *user;
	uint64_t cpu_flags;
} waiter_t;

static void park_if_asked(void *arg)
{
	waiter_t *w = arg;
	if (km_stopall_pending(w->v->g))
		(void)km_stopall_park(w->v, w->user, w->cpu_flags); /* ended or not, the writer's answer is owed */
}

int km_snapshot_take(km_vcpu_t *v, const struct kvm_regs *user, uint64_t cpu_flags, const km_snapshot_req_t *req,
		     km_snapshot_result_t *res, km_err_t **err)
{
	km_snapshot_live_t *live = NULL;
	int rc = take_pause(v, user, cpu_flags, req, res, &live, err);
	if (rc == 0 && live != NULL) {
		waiter_t w = {v, user, cpu_flags};
		rc = km_snapshot_live_finish(live, res, park_if_asked, &w, err);
	}
	return rc;
}
