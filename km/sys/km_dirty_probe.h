/*
 * A test-only view of the dirty tracker (km_dirty.h) for tests/e2e/dirty.sh: hypercall
 * HC_dirty_probe, refused (-ENOSYS) unless km runs with the internal option --test-dirty-probe,
 * which no guest can give (a guest's execve re-runs km with km's own options, never the guest's).
 */
#ifndef KM_DIRTY_PROBE_H
#define KM_DIRTY_PROBE_H

#include "km_hcall.h"
#include "km_vcpu.h"

/* arg1 KM_DIRTY_PROBE_START: starts (or restarts) tracking; returns 0.
 * arg1 KM_DIRTY_PROBE_COLLECT: collects; writes the guest-virtual address of each changed page,
 * ascending, to arg2 (room for arg3 of them); returns how many there are (more than arg3: only
 * arg3 written).
 * arg1 KM_DIRTY_PROBE_RETURN: collects and gives the interval back (km_dirty_return); returns 0.
 * Every vCPU but the caller is stopped meanwhile. Errors: -errno. */
long km_dirty_probe(km_vcpu_t *v, const km_hc_args_t *args);

#endif
