/*
 * Hypercalls: syscall numbers KM_HCALL_BASE + n (runtime/include/km_hcall.h) that a program
 * uses to ask km itself for something, such as a snapshot.
 */
#ifndef KM_HYPERCALL_H
#define KM_HYPERCALL_H

#include <stdbool.h>
#include <stdint.h>

#include "km_hcall.h" /* runtime/include: the program's side */
#include "km_vcpu.h"

/* True for the syscall numbers hypercalls use. */
static inline bool km_is_hcall(uint64_t nr)
{
	return nr >= KM_HCALL_BASE && nr < KM_HCALL_BASE + 64;
}

/* Runs hypercall nr (relative to KM_HCALL_BASE) with the guest's km_hc_args_t at args_gva.
 * v->user holds the program's registers as they will be when the call returns. Returns the
 * call's result (also stored in hc_ret), or ends the guest (HC_snapshot without KEEP_RUNNING). */
long km_hcall_handle(km_vcpu_t *v, uint64_t nr, uint64_t args_gva);

#endif
