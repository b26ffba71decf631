/*
 * Live snapshots' writer (docs/decisions.md entry 17): a child process forked at the pause, whose
 * copy-on-write view of guest memory is the memory at the pause, writes the rest of the file while
 * the program runs on. It is a "clone child" (exit signal 0): the program's wait4/waitid, which
 * are km's host waits, never see it (km_sys_wait.c strips __WALL and __WCLONE). It is forked from
 * a multi-threaded km, so what it runs must take no lock another km thread could have held at the
 * fork: no malloc, no stdio, no pthread calls; it reports through a shared page, not km_err_t.
 */
#ifndef KM_SNAPSHOT_LIVE_H
#define KM_SNAPSHOT_LIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "km_error.h"
#include "km_snapshot.h"

struct km_guest;

/* What the writer says when it ends (filled in by the child, in a page shared with km). */
typedef struct km_live_report {
	int done;          /* 1: the file is complete and published */
	int errnum;        /* else: the errno of the step that failed (0 if none was set) */
	const char *step;  /* a fixed text naming that step (a string in km's image: same address) */
	uint64_t memory_bytes, file_size, disk_bytes;
} km_live_report_t;

/* A writer that runs (km_live_start), until km_live_wait reaps it. */
typedef struct km_live_writer {
	pid_t pid;
	km_live_report_t *rep; /* the shared page */
} km_live_writer_t;

/* The child's work: runs in the writer, fills *rep (done or errnum and step). Lock-free. */
typedef void km_live_fn(void *arg, km_live_report_t *rep);

/* Forks the writer, which keeps only the fds in keep[0..nkeep) (the others closed: the program's
 * pipes and sockets must not outlive its own close through the writer), blocks every signal but
 * the synchronous ones, runs fn(arg) and exits. Returns 0 (the writer runs), or -errno. */
int km_live_start(km_live_fn *fn, void *arg, const int *keep, int nkeep, km_live_writer_t *w);

/* Waits for the writer to end and reaps it. A wait interrupted by a signal (a vCPU's thread is
 * kicked when a stop begins) calls intr(arg), if given, then waits again. *rep gets the report;
 * returns 0 if the file is complete, else -1: *sig the signal that killed the writer, or 0 and
 * rep->errnum and rep->step say what failed. Frees the shared page. */
int km_live_wait(km_live_writer_t *w, km_live_report_t *rep, int *sig, void (*intr)(void *), void *arg);

/* Whether pid is the writer that runs now: km's own helper, which no call the program makes may
 * name (a SIGSTOP would leave km waiting for it for ever, a SIGKILL fail the snapshot). Its pid
 * is published before the program runs again after the pause, and cleared once reaped. */
bool km_live_is_writer(pid_t pid);

/* Waits until no writer is running (another snapshot must not start while one is written; km
 * must not end under one). Does not reap: the writer's own waiter does. Safe from any thread. */
void km_live_wait_idle(void);

/* --- a live snapshot (km_snapshot_write.c) ------------------------------------------------ */

typedef struct km_snapshot_live km_snapshot_live_t;

/* At the pause (every vCPU stopped at a clean point and captured, as for km_snapshot_write):
 * waits for an earlier writer, saves the fd table, builds the notes, writes the open files' data
 * into the temporary file and forks the writer for the rest. The program may run again as soon
 * as this returns. Returns 0 with *out (for km_snapshot_live_finish), or -1 with *err (nothing
 * is left behind). */
int km_snapshot_write_live(struct km_guest *g, const km_snapshot_req_t *req, km_snapshot_live_t **out,
			   km_err_t **err);

/* Waits for the writer (intr as km_live_wait's), fills *res as km_snapshot_write does (elapsed
 * from the pause to the file's publication) and frees lw. Returns 0, or -1 with *err: the step
 * that failed, or the signal that killed the writer (no file is published then). */
int km_snapshot_live_finish(km_snapshot_live_t *lw, km_snapshot_result_t *res, void (*intr)(void *), void *arg,
			    km_err_t **err);

#endif
