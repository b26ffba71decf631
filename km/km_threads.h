/*
 * Guest threads: each is one vCPU driven by one host thread of km. clone creates them, exit ends
 * one, exit_group (km_guest_end) all; the main thread of km drives the first and waits for the
 * rest. A thread's id is its host thread's id when it is created (the first thread's is the
 * guest's pid), so that PI futexes, whose words the host kernel reads as thread ids, work. Ids
 * are kept across snapshot and resume; a thread created after a resume whose host id an old
 * thread still has gets an unused number instead. kill/tgkill naming the guest's ids reach its
 * own threads, never a host task (km_signal.h).
 */
#ifndef KM_THREADS_H
#define KM_THREADS_H

#include <stdint.h>

#include "km_guest.h"

/* Most threads a guest may have at once (one per vCPU): clone beyond it fails with EAGAIN. */
#define KM_MAX_THREADS KM_MAX_VCPUS

/* Registers vCPU v (already created, its id its slot) as a live thread, before the guest runs:
 * the program's first thread, or each thread of a resumed snapshot. */
void km_threads_add_initial(km_guest_t *g, km_vcpu_t *v);

/* Runs the guest: the first live vCPU on the calling thread, every other on a host thread of its
 * own, until all have ended. Returns 0 (the guest ended: km_guest_t says how) or -1 with *err
 * when km failed on any of them. */
int km_threads_run(km_guest_t *g, km_err_t **err);

/* clone(2) for a new thread of the guest, from vCPU v at its syscall: flags, the new thread's
 * stack (0: the caller's), parent_tid and child_tid addresses, TLS base. Returns the new
 * thread's id, or -errno (EINVAL/ENOSYS for what km does not support, said on --trace; EAGAIN
 * past KM_MAX_THREADS or when the guest is ending). */
long km_threads_clone(km_vcpu_t *v, uint64_t flags, uint64_t stack, uint64_t parent_tid, uint64_t child_tid,
		      uint64_t tls);

/* exit(2) of v's thread: clears and wakes its clear_child_tid, marks its robust futexes as
 * owner-died, and ends its run loop, all at once with respect to stops (a stop in progress is
 * waited for first); the last thread to exit ends the guest with `status`. */
void km_threads_exit(km_vcpu_t *v, int status);

#endif
