/*
 * x86-64 4-level page tables for the guest, kept in a guest-physical pool that is never mapped
 * into the guest's virtual space (the CPU walks them by physical address; the program cannot see
 * or change them through its mappings).
 *
 * 2 MiB pages are used where a range covers whole aligned 2 MiB chunks; they are split into
 * 4 KiB tables when part of one changes.
 */
#ifndef KM_PAGETABLE_H
#define KM_PAGETABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct km_pt {
	uint8_t *host;      /* host address of guest-physical 0 */
	uint64_t pool_gpa;  /* pool of table pages: [pool_gpa, pool_gpa + pool_size) */
	uint64_t pool_size;
	uint64_t pool_next; /* bump allocator; freed table pages go on the free list */
	uint64_t *free_pages;
	size_t nfree, free_cap;
	uint64_t cr3;       /* guest-physical address of the PML4 */
} km_pt_t;

/* Page protections as PTE bits are derived from PROT_* values (PROT_NONE = not present). Pages are
 * user pages (U=1) unless KM_PROT_KERNEL is or-ed in: those only km's runtime at CPL0 can use. */
#define KM_PROT_KERNEL 0x100

/* Sets up an empty PML4 in the pool. Returns 0 or -ENOMEM. */
int km_pt_init(km_pt_t *pt, uint8_t *host, uint64_t pool_gpa, uint64_t pool_size);

/* Maps guest virtual [gva, gva+len) to guest physical [gpa, gpa+len) with PROT_* `prot`,
 * replacing what was there. Page aligned arguments. Returns 0 or -ENOMEM (pool exhausted). */
int km_pt_map(km_pt_t *pt, uint64_t gva, uint64_t gpa, uint64_t len, int prot);

/* Removes translations for [gva, gva+len). Returns 0 or -ENOMEM (splitting a 2 MiB page needs a
 * table page). */
int km_pt_unmap(km_pt_t *pt, uint64_t gva, uint64_t len);

/* Walks the tables: guest-physical address for gva and its PTE flags, or -1 if not present. */
int64_t km_pt_walk(km_pt_t *pt, uint64_t gva, uint64_t *pte_flags);

#endif
