/* Internals of the dirty tracker (km_dirty.c) shared with the address-space files and its unit
 * test. Not an API: see km_dirty.h. */
#ifndef KM_DIRTY_INTERNAL_H
#define KM_DIRTY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_dirty.h"
#include "km_mm.h"

/* How the tracker reaches KVM's dirty log (km_dirtylog.h in km; a fake in the unit test). */
typedef struct km_dirty_ops {
	/* Turns logging on for a slot registered as km_mm_t.register_slot did. 0 or -errno. */
	int (*log_on)(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host);
	/* The slot's log since the last fetch (bit p: page p of the slot), and a new one. 0 or -errno. */
	int (*fetch)(void *ctx, int slot, uint64_t *bitmap);
	void *ctx;
} km_dirty_ops_t;

/* km_dirty_start, km_dirty_collect and km_dirty_return on an address space, with KVM through ops. */
int km_dirty_start_mm(km_mm_t *mm, const km_dirty_ops_t *ops, km_err_t **err);
int km_dirty_collect_mm(km_mm_t *mm, uint64_t ***holds, km_err_t **err);
void km_dirty_return_mm(km_mm_t *mm, uint64_t **holds);

/* Slot `slot` was just registered (memory grew): logs it too while tracking is on. If KVM refuses,
 * collects fail (full snapshots) until a restart logs every slot again. */
void km_dirty_slot_added(km_mm_t *mm, int slot, uint64_t gpa, uint64_t size);

/* Guest-physical [gpa, gpa+len) changed (km_dirty_mark once the VMA is known). */
void km_dirty_mark_gpa(km_mm_t *mm, uint64_t gpa, uint64_t len);

/* Stops tracking and frees the tracker (a forked child's new VM; km_mm_fini). */
void km_dirty_forget(km_mm_t *mm);

/* Bitmaps (bit p of word p/64). dst[0, n) = src[off, off+n), dst's bits past n cleared. */
void km_bits_extract(uint64_t *dst, const uint64_t *src, uint64_t off, uint64_t n);
/* dst[off, off+n) |= src[0, n), atomically per word (other threads mark at the same time). */
void km_bits_or_at(uint64_t *dst, uint64_t off, const uint64_t *src, uint64_t n);
/* Sets bits [off, off+n) of dst atomically. */
void km_bits_set_range(uint64_t *dst, uint64_t off, uint64_t n);

#endif
