/*
 * The guest's threads as a group, and the one primitive that stops them: stop-all.
 *
 * A stop gets every vCPU but the caller's out of the program, and keeps them out until the
 * caller ends it. Two kinds:
 *   KM_STOP_CLEAN  every vCPU parks at a clean point with its state captured (km_vcpu_capture):
 *                  what a snapshot needs. A vCPU blocked in a host syscall is kicked out of it
 *                  and parks as "about to make that syscall" (it makes it again afterwards).
 *   KM_STOP_OUT    every vCPU is out of KVM_RUN and stays out: what narrowing a mapping needs
 *                  (TLB shootdown, the host-protection toggle of decisions.md entry 4). vCPUs in
 *                  host syscalls are left alone; they wait at the gate before re-entering.
 * Stops are serialised; a vCPU that asks for a stop while another's is in progress parks in it
 * first (its caller passes the registers it has at that point, a clean one).
 *
 * The exit of the whole group (exit_group, a fatal signal) is not a stop: the guest is marked
 * ended, every vCPU kicked, and each leaves at its next look (km_threads_kick_all).
 */
#ifndef KM_STOPALL_H
#define KM_STOPALL_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct km_guest;
struct km_vcpu;

typedef enum km_stop_kind { KM_STOP_NONE, KM_STOP_CLEAN, KM_STOP_OUT } km_stop_kind_t;

/* Work that must run on one of the guest's vCPUs at a clean point (u: its registers there,
 * cpu_flags: KM_CPU_*), asked for by a thread of km that is not a vCPU. Returns true if the guest
 * has ended. */
typedef bool (*km_vcpu_job_fn)(struct km_vcpu *v, const struct kvm_regs *u, uint64_t cpu_flags, void *arg);

typedef struct km_threads {
	pthread_mutex_t lock;  /* guards everything here and the vcpus[] slots of km_guest_t */
	pthread_cond_t cond;   /* parked counts, stops ending, threads ending (CLOCK_MONOTONIC) */
	int nlive;             /* vCPUs whose guest thread has not ended */
	pid_t next_tid;        /* the next thread id to try for a new thread */
	km_stop_kind_t stop;   /* the stop in progress */
	bool stop_posted;      /* stop != NONE, read without the lock (atomics) */
	struct km_vcpu *owner; /* who asked for it (NULL: a thread of km that is not a vCPU) */
	int nparked;           /* vCPUs parked in it */
	uint64_t stop_gen;     /* bumped when a stop ends: parked vCPUs wait for this */
	/* A job for the first vCPU at a clean point (km_stopall_run_on_vcpu). */
	km_vcpu_job_fn job;
	void *job_arg;
	bool job_posted;       /* waiting for a vCPU (atomics: checked with stop_posted) */
	bool job_done;
} km_threads_t;

/* Initialises the group (no threads). */
void km_threads_init(km_threads_t *t);
void km_threads_fini(km_threads_t *t);

/* Stops every vCPU but `self` (NULL: the caller is not a vCPU). A vCPU caller is at a clean
 * point with registers *self_regs (cpu_flags KM_CPU_*): if another stop is in progress it parks
 * in that one first; with self_regs NULL it is not at one, and gets -1 instead (try later).
 * Returns 0 when stopped, -1 if the guest ended meanwhile (nothing stopped).
 * For KM_STOP_CLEAN every stopped vCPU's v->state holds its captured state and v->capture_rc
 * whether capturing worked. */
int km_stopall_begin(struct km_guest *g, struct km_vcpu *self, km_stop_kind_t kind,
		     const struct kvm_regs *self_regs, uint64_t cpu_flags);

/* A KM_STOP_CLEAN stop begun by a thread that is not a vCPU (self NULL) is a pause: it lasts
 * until that thread ends it, and meanwhile jobs (km_stopall_run_on_vcpu) are run by a parked
 * vCPU, with every other one still parked. */

/* Lets the stopped vCPUs go on (or leave, if the guest ended meanwhile). */
void km_stopall_end(struct km_guest *g);

/* Runs fn on the first vCPU that reaches a clean point (or on a parked one while the guest is
 * paused; fn must then not begin a stop of its) (kicking them all until one does) and
 * waits for it: how a thread with an fd table of its own (the management listener) gets work
 * done in the guest's. Returns 0 when done, -1 if the guest ended first, -2 if another job is
 * in progress. */
int km_stopall_run_on_vcpu(struct km_guest *g, km_vcpu_job_fn fn, void *arg);

/* True if a stop or a job waits for vCPUs (a plain atomic load: cheap on every syscall). */
bool km_stopall_pending(struct km_guest *g);

/* The vCPU side, at a clean point with the program's registers *user: runs a posted job, or
 * parks in a stop in progress until it ends. Returns true if the guest has ended (the vCPU
 * must leave). */
bool km_stopall_park(struct km_vcpu *v, const struct kvm_regs *user, uint64_t cpu_flags);

/* Before each KVM_RUN: marks the vCPU in the guest, or, while a KM_STOP_OUT stop is in progress,
 * waits for it to end first. Returns true if the guest has ended. km_stopall_left_guest after
 * KVM_RUN returns. */
bool km_stopall_gate(struct km_vcpu *v);
void km_stopall_left_guest(struct km_vcpu *v);

/* Waits on the group's condition (lock held) for at most the re-kick interval (100 ms: a kick
 * can be lost, so waiters for vCPUs kick again that often). True if the interval passed. */
bool km_threads_wait_a_while(km_threads_t *t);

/* Kicks every vCPU of the guest (to make them see the guest ending, or a stop). */
void km_threads_kick_all(struct km_guest *g);

/* Number of vCPUs whose guest thread has not ended. */
int km_threads_live(struct km_guest *g);

#endif
