/*
 * The guest's resource limits. Each RLIMIT_* is either applied on the host, where the kernel
 * enforces it for the calls km forwards exactly as for a native process (its SIGXCPU/SIGXFSZ
 * become the guest's signals, km_signal.h), or kept by km for the guest alone, where applying it
 * to km would cripple km's own work (its memory reservation and mallocs, its main thread's stack,
 * its threads, its kick signals, its fds). docs/syscalls.md has the table and the reasons.
 */
#ifndef KM_RLIMIT_H
#define KM_RLIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

#include "km_guest.h"

/* True if km keeps limit `res` for the guest instead of applying it on the host. */
bool km_rlimit_emulated(int res);

/* The guest's limit `res` as it sees it: what it set for a kept limit, else the host's (the
 * limit it inherited). 0 or -EINVAL for an unknown resource. */
int km_rlimit_get(km_guest_t *g, int res, struct rlimit *rl);

/* setrlimit for the guest, checked as Linux checks it (EINVAL for cur > max, EPERM for raising
 * the hard limit without CAP_SYS_RESOURCE); applied on the host or kept. 0 or -errno. */
int km_rlimit_set(km_guest_t *g, int res, const struct rlimit *rl);

/* A resume: the guest's limits become those a snapshot recorded (lim[res] = {soft, hard} for the
 * first 16 resources, as km_rlimit_get gave them). RLIMIT_NOFILE is restored apart. A host limit
 * this km may not raise (no CAP_SYS_RESOURCE) stays at this km's hard limit, with a warning line
 * naming the snapshot `name`. */
void km_rlimit_restore(km_guest_t *g, const uint64_t lim[16][2], const char *name);

#endif
