/*
 * CLONE_VM for a CLONE_VFORK child that ends without exec'ing (glibc's posix_spawn writes the
 * exec's errno into its parent's stack and _exits 127): the child km's memory is a copy-on-write
 * copy of its parent's, so before it ends it sends the guest pages it wrote back to the parent,
 * which applies them before its vfork returns.
 *
 * The child (tx) remembers the parent's private writable mappings at the fork, and at its end
 * streams, over the vfork pipe, each page of those that its own /proc/self/pagemap marks
 * exclusive (written, or faulted in fresh, since the fork; see km_vfork_wb.c for what that
 * catches). The parent (rx) treats the stream as hostile: every record is checked against its
 * own mappings as they are now and applied with km_copy_to_guest.
 */
#ifndef KM_VFORK_WB_H
#define KM_VFORK_WB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_mm.h"

#define KM_VFORK_WB_MAGIC 0x4b4d5642u /* "BVMK" */
enum { KM_VFORK_WB_PAGE = 1, KM_VFORK_WB_END = 2 };

/* One record: a header, then (KM_VFORK_WB_PAGE) the page's KM_PAGE_SIZE bytes. */
typedef struct km_vfork_wb_rec {
	uint32_t magic;
	uint32_t kind;
	uint64_t gva; /* the page's guest-virtual address (page aligned) */
	uint64_t gpa; /* and its guest-physical one, which the parent's mapping must agree with */
} km_vfork_wb_rec_t;

/* --- the child ---------------------------------------------------------------------------- */

typedef struct km_vfork_tx {
	km_vma_t *ranges; /* the parent's private writable mappings at the fork (start, end, gpa) */
	size_t n;
} km_vfork_tx_t;

/* Remembers mm's private writable mappings (called in the child before anything changes them).
 * Returns 0 or -ENOMEM. */
int km_vfork_tx_begin(km_vfork_tx_t *tx, km_mm_t *mm);

/* Sends every page the child wrote since the fork, of the remembered mappings that still map
 * the same guest-physical pages, to fd, then an end record. Returns the pages sent or -errno
 * (the parent then has what was sent before). Takes mm's lock for reading. */
long km_vfork_tx_send(const km_vfork_tx_t *tx, km_mm_t *mm, int fd);

void km_vfork_tx_free(km_vfork_tx_t *tx);

/* --- the parent --------------------------------------------------------------------------- */

typedef struct km_vfork_rx {
	km_vfork_wb_rec_t hdr;
	uint8_t page[KM_PAGE_SIZE];
	size_t have;        /* bytes of the current record received */
	uint64_t records;   /* page records received */
	uint64_t max;       /* most page records accepted */
	uint64_t applied;   /* pages copied into guest memory */
	uint64_t skipped;   /* well-formed records for pages the parent no longer maps so */
	bool ended;         /* an end record came */
	int error;          /* the stream was refused (-errno): the rest is ignored */
} km_vfork_rx_t;

/* Starts a stream for mm: at most as many page records as mm's memory limit has pages. */
void km_vfork_rx_init(km_vfork_rx_t *rx, const km_mm_t *mm);

/* Takes the next n bytes of the stream; applies each whole record as it completes. A record
 * that is malformed (magic, kind, alignment, a guest-physical address outside program memory,
 * more records than the limit, data after the end) refuses the stream: returns its -errno, and
 * every later call does too without looking. A well-formed page the parent no longer maps
 * privately and writable at that guest-physical address is skipped. Returns 0 otherwise. */
int km_vfork_rx_feed(km_vfork_rx_t *rx, km_mm_t *mm, const void *buf, size_t n);

/* At the end of the stream (EOF): 0 if it was empty (the child exec'd) or ended with its end
 * record, -EPROTO if it stopped in the middle (the child was killed while sending: whole records
 * before that are applied), or the error that refused it. */
int km_vfork_rx_finish(const km_vfork_rx_t *rx);

#endif
