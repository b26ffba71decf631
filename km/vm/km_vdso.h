/*
 * The guest's vDSO (runtime/vdso/, layout in km_vdso_layout.h, data page in km_vdso_data.h):
 * km maps its image (read/exec) and the data page (read-only) into every guest, keeps the page's
 * clock lines current from a thread of its own, and answers the clock syscalls from the same
 * lines, so that the vDSO and km agree exactly. It also keeps the one offset by which the guest's
 * monotonic clocks (MONOTONIC, BOOTTIME, MONOTONIC_RAW and MONOTONIC_COARSE) differ from the
 * host's: 0 for a new guest, set at resume so they never go back (docs/decisions.md, entry 14).
 */
#ifndef KM_VDSO_H
#define KM_VDSO_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "km_error.h"
#include "km_vdso_data.h"
#include "km_vdso_layout.h"

struct km_guest;

/* Copies the image in, maps it and the data page, draws the first lines and starts the thread
 * that keeps them current (km_vdso_stop ends it). Sets g->vdso_gva. */
int km_vdso_init(struct km_guest *g, km_err_t **err);

/* In a forked km child (one thread, the guest's memory a copy): takes the vDSO's state over from
 * the parent (whose thread may have held its lock or been mid-write) and starts the child's own
 * updating thread, before the child's guest runs. */
int km_vdso_fork_child(struct km_guest *g, km_err_t **err);

/* Stops the updating thread and frees km's state; safe when never started. */
void km_vdso_stop(struct km_guest *g);

/* Whether gva is in the vDSO or its data page: mapped for the guest, as Linux's [vdso] and [vvar]
 * are (a fault there is SEGV_ACCERR). */
bool km_vdso_holds(struct km_guest *g, uint64_t gva);

/* Gives a new vCPU the host's TSC (KVM's TSC offset 0); where KVM cannot, the vDSO stops using
 * the TSC (every clock read becomes a syscall) and stays correct. */
void km_vdso_vcpu_init(struct km_guest *g, int vcpu_fd);

/* The line that follows `old` (which started at TSC old_base; NULL: none, start afresh) from TSC
 * t1, where the host's clock reads h and runs at r ns per tick (32.32): it starts where `old`
 * stands at t1, so no reader sees a step back, and is slewed (at most 500 ppm) to meet h one
 * period later; a gap over 1 ms steps to h instead: forward only, unless `wall` (REALTIME). */
struct km_vdso_clock km_vdso_next_line(const struct km_vdso_clock *old, uint64_t old_base, bool wall,
				       uint64_t t1, uint64_t h, uint64_t r);

/* The guest's view of clock clk, for km's clock_gettime: true if clk is one the vDSO answers
 * (then *ts is set), false for the others (the host's then). */
bool km_vdso_clock(struct km_guest *g, clockid_t clk, struct timespec *ts);

/* The guest's monotonic clocks minus the host's, in ns: a guest deadline on such a clock is the
 * host's plus this. */
int64_t km_vdso_mono_shift(struct km_guest *g);

/* A deadline on the guest's monotonic clock as the same moment on the host's (a malformed one as
 * it is). */
struct timespec km_vdso_mono_to_host(struct km_guest *g, struct timespec guest);

/* Which vDSO code a thread standing at rip runs: 0 when rip is not in the vDSO's code past its
 * entry slots (which every km of a layout has), else a nonzero identity of this km's image, which
 * a km resuming that thread must have too (its code there may differ). */
uint32_t km_vdso_code_id(const struct km_guest *g, uint64_t rip);

/* Whether a thread recorded with code id `id` (km_vdso_code_id, 0: none) can resume here. */
bool km_vdso_code_ok(uint32_t id);

/* What a snapshot records of the guest's monotonic clocks: MONOTONIC, BOOTTIME, MONOTONIC_RAW. */
void km_vdso_save_clocks(struct km_guest *g, uint64_t ns[3]);

/* At resume: sets the offset so that none of the guest's monotonic clocks reads less than the
 * snapshot recorded (ns[] as km_vdso_save_clocks wrote them; zeros: not recorded). */
void km_vdso_resume_clocks(struct km_guest *g, const uint64_t ns[3]);

#endif
