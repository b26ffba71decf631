/*
 * Which guest pages changed since the last snapshot, for incremental snapshots (issue 11).
 *
 * Two sources make up the answer: KVM's dirty log for the guest's own writes (memory slots with
 * KVM_MEM_LOG_DIRTY_PAGES), and km's marks for what KVM does not see: km's writes into guest
 * memory on the guest's behalf (syscall results: read(2) into a guest buffer, stat structures,
 * futex words...) and every change of what backs a guest range (mmap, munmap, mremap,
 * MADV_DONTNEED, brk), whose pages read differently afterwards even though nobody wrote them.
 * The answer is per page of guest-VIRTUAL address, laid out as the VMAs are when it is collected,
 * which is how a snapshot's PT_LOADs are laid out.
 *
 * Tracking is off until km_dirty_start (a snapshot was written, or the guest was resumed from
 * one); it costs nothing before that. A forked child starts with it off (its own new VM).
 */
#ifndef KM_DIRTY_H
#define KM_DIRTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_error.h"

struct km_guest;
struct km_mm;

/* Starts (or restarts) tracking with every vCPU stopped: km_dirty_collect then reports the pages
 * changed from now on. Returns 0, or -1 with *err (then tracking stays off). */
int km_dirty_start(struct km_guest *g, km_err_t **err);

/* Optional, ahead of km_dirty_start, while the program runs: turns KVM's log on now, which
 * write-protects all of memory (about 60 ns a page on PVM), so that the start, in the pause, only
 * drains what was logged meanwhile. Tracking is not on until the start. Returns 0, or -1 with *err. */
int km_dirty_arm(struct km_guest *g, km_err_t **err);

/* km wrote, or may have written, guest-virtual [gva, gva+len), or changed what backs it. Cheap, and
 * a no-op while tracking is off; callable from any thread (callers hold the mm lock, read or
 * write, as they already do to reach guest memory). */
void km_dirty_mark(struct km_mm *mm, uint64_t gva, uint64_t len);

/* With every vCPU stopped: for each VMA of g->mm (index order, g->mm.nvmas entries) a bitmap of
 * its pages changed since km_dirty_start or the last collect (bit p of word p/64: page p of the
 * VMA), and a new interval begins. *holds and each bitmap are the caller's (km_dirty_free). Returns
 * 0, or -1 with *err when tracking was off or could not tell (the caller then writes a full
 * snapshot). */
int km_dirty_collect(struct km_guest *g, uint64_t ***holds, km_err_t **err);

/* A collected interval that was not used (its snapshot failed): its pages count again in the next
 * collect. Frees holds. For the holds of the latest collect the VMAs may have changed since (a
 * live snapshot's writer failed while the program ran on); older holds must have been collected
 * with the VMAs as they still are. */
void km_dirty_return(struct km_guest *g, uint64_t **holds);

/* Frees what km_dirty_collect gave: n bitmaps and the array. */
void km_dirty_free(uint64_t **holds, size_t n);

/* True while tracking is on. */
bool km_dirty_on(const struct km_guest *g);

#endif
