/* Internals shared by the address-space files (km_physmem.c, km_vma.c, km_mm.c). Not an API. */
#ifndef KM_MM_INTERNAL_H
#define KM_MM_INTERNAL_H

#include "km_mm.h"

/* Guest-physical allocator over [user_gpa, gpa_size). Allocations of 2 MiB or more are placed
 * congruent to `gva` modulo 2 MiB so the page tables can use 2 MiB pages. Returns 0 if full. */
uint64_t km_phys_alloc(km_mm_t *mm, uint64_t len, uint64_t gva);
/* Takes exactly [gpa, gpa+len) if it is free (in-place growth). Returns 0 or -1. */
int km_phys_take(km_mm_t *mm, uint64_t gpa, uint64_t len);
/* Returns a range to the allocator (except the heap window, which stays reserved) and resets its
 * host memory to fresh anonymous pages, dropping file mappings and freeing what was touched. */
void km_phys_release(km_mm_t *mm, uint64_t gpa, uint64_t len);
/* Makes sure KVM knows guest-physical [gpa, gpa+len). Returns 0 or -ENOMEM. */
int km_phys_make_present(km_mm_t *mm, uint64_t gpa, uint64_t len);
/* Resets host memory behind [gpa, gpa+len) to fresh zero pages. Returns 0 or -errno. */
int km_phys_reset(km_mm_t *mm, uint64_t gpa, uint64_t len);

/* VMA list (km_vma_index and km_vma_find are in km_mm.h). */
/* Inserts a copy of *v (takes ownership of v->path). Returns 0 or -ENOMEM. */
int km_vma_insert(km_mm_t *mm, const km_vma_t *v);
/* Splits the VMA containing `at` so that a VMA boundary falls on `at`. Returns 0 or -ENOMEM. */
int km_vma_split_at(km_mm_t *mm, uint64_t at);
/* Removes VMA i from the list (frees its path; memory untouched). */
void km_vma_remove(km_mm_t *mm, size_t i);
/* True if no VMA overlaps [start, end). */
bool km_vma_range_free(km_mm_t *mm, uint64_t start, uint64_t end);
/* Highest page-aligned a with [a, a+len) inside [lo, hi) overlapping no VMA; 0 if none. */
uint64_t km_vma_find_gap(km_mm_t *mm, uint64_t len, uint64_t lo, uint64_t hi);

#endif
