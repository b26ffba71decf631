/* Guest-physical memory: the host reservation and the allocator of guest-physical ranges. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_dirty_internal.h"
#include "km_guest_fault.h"
#include "km_mm_internal.h"
#include "km_runtime_layout.h"

#define GIB (1ull << 30)
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((a) - 1))

/* Page tables for `limit` bytes mapped with 4 KiB pages need limit/512 bytes, plus upper levels. */
static uint64_t pt_pool_size(uint64_t limit)
{
	return ALIGN_UP(limit / 512 + limit / 4096 + (8ull << 20), KM_HUGE_SIZE);
}

/* Anonymous host memory starting on a 2 MiB boundary: a 2 MiB guest page (guest-physical 2 MiB
 * aligned) can then sit on one host huge page, which is what lets the hypervisor map it at once. */
static uint8_t *reserve_aligned(uint64_t size)
{
	uint8_t *raw = mmap(NULL, size + KM_HUGE_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	uint8_t *host = (uint8_t *)ALIGN_UP((uintptr_t)raw, KM_HUGE_SIZE);
	if (host > raw)
		munmap(raw, (size_t)(host - raw));
	munmap(host + size, (size_t)(raw + KM_HUGE_SIZE - host));
	return host;
}

static int free_insert(km_mm_t *mm, size_t at, uint64_t start, uint64_t end)
{
	if (mm->nfree == mm->free_cap) {
		size_t cap = mm->free_cap ? mm->free_cap * 2 : 16;
		km_phys_range_t *n = realloc(mm->free, cap * sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		mm->free = n;
		mm->free_cap = cap;
	}
	memmove(&mm->free[at + 1], &mm->free[at], (mm->nfree - at) * sizeof(*mm->free));
	mm->free[at] = (km_phys_range_t){start, end};
	mm->nfree++;
	return 0;
}

static void free_remove(km_mm_t *mm, size_t at)
{
	memmove(&mm->free[at], &mm->free[at + 1], (mm->nfree - at - 1) * sizeof(*mm->free));
	mm->nfree--;
}

int km_mm_init(km_mm_t *mm, uint64_t limit, int phys_bits, km_err_t **err)
{
	memset(mm, 0, sizeof(*mm));
	mm->snapshot_fd = -1;
	pthread_rwlock_init(&mm->lock, NULL);
	mm->epoch = 1;
	mm->limit = ALIGN_UP(limit, KM_PAGE_SIZE);
	mm->as_limit = UINT64_MAX;
	uint64_t pool = pt_pool_size(limit);
	mm->user_gpa = ALIGN_UP(KM_RT_SIZE + pool, KM_SLOT_CHUNK);
	/* Program mappings get twice the limit (alignment slack, fragmentation) plus the heap window. */
	uint64_t user = ALIGN_UP(limit, KM_SLOT_CHUNK) * 3;
	mm->gpa_size = mm->user_gpa + user;
	if (phys_bits < 64 && mm->gpa_size > (1ull << phys_bits))
		return km_err_set(err, 0, "guest memory limit %lu MiB needs more guest-physical space than this "
					  "CPU's %d address bits; use a smaller --memory",
				  (unsigned long)(limit >> 20), phys_bits);
	uint8_t *host = reserve_aligned(mm->gpa_size);
	if (host == NULL)
		return km_err_set(err, errno, "reserving %lu GiB of address space for guest memory",
				  (unsigned long)(mm->gpa_size >> 30));
	mm->host = host;
	/* The program's memory in huge pages where the host has them (THP in madvise mode): a live
	 * snapshot forks km, and fork copies one page-table entry per 2 MiB instead of 512 (1 GiB:
	 * about 1 ms instead of 10; docs/decisions.md entry 17); first touches are cheaper too. Not
	 * km's runtime and page-table pool: small, and touched a page at a time. Advice only: a host
	 * without THP ignores it. */
	(void)madvise(host + mm->user_gpa, mm->gpa_size - mm->user_gpa, MADV_HUGEPAGE);
	/* km's own copies to and from guest memory turn the host's faults on it into EFAULT. */
	if (km_guest_fault_init(err) < 0)
		return -1;
	if (km_pt_init(&mm->pt, mm->host, KM_RT_SIZE, pool) < 0 ||
	    free_insert(mm, 0, mm->user_gpa, mm->gpa_size) < 0)
		return km_err_set(err, ENOMEM, "setting up guest page tables");
	return 0;
}

int km_mm_attach(km_mm_t *mm, int (*reg)(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host),
		 void *ctx, km_err_t **err)
{
	mm->register_slot = reg;
	mm->slot_ctx = ctx;
	mm->slot_present = calloc((mm->gpa_size - mm->user_gpa) / KM_SLOT_CHUNK + 1, 1);
	if (mm->slot_present == NULL)
		return km_err_set(err, ENOMEM, "allocating the memory slot map");
	if (reg(ctx, 0, 0, mm->user_gpa, mm->host) < 0)
		return km_err_set(err, errno, "registering km's runtime memory with KVM");
	return 0;
}

int km_phys_make_present(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	if (mm->register_slot == NULL || len == 0)
		return 0;
	uint64_t first = (gpa - mm->user_gpa) / KM_SLOT_CHUNK, last = (gpa + len - 1 - mm->user_gpa) / KM_SLOT_CHUNK;
	for (uint64_t c = first; c <= last; c++) {
		if (mm->slot_present[c])
			continue;
		uint64_t start = mm->user_gpa + c * KM_SLOT_CHUNK;
		uint64_t size = start + KM_SLOT_CHUNK > mm->gpa_size ? mm->gpa_size - start : KM_SLOT_CHUNK;
		if (mm->register_slot(mm->slot_ctx, (int)(1 + c), start, size, mm->host + start) < 0)
			return -ENOMEM;
		mm->slot_present[c] = 1;
		km_dirty_slot_added(mm, (int)(1 + c), start, size);
	}
	return 0;
}

int km_mm_register_all(km_mm_t *mm)
{
	km_dirty_forget(mm); /* the new VM logs nothing: a forked child starts untracked */
	if (mm->register_slot == NULL)
		return 0;
	if (mm->register_slot(mm->slot_ctx, 0, 0, mm->user_gpa, mm->host) < 0)
		return -1;
	for (uint64_t c = 0; mm->user_gpa + c * KM_SLOT_CHUNK < mm->gpa_size; c++) {
		if (!mm->slot_present[c])
			continue;
		uint64_t start = mm->user_gpa + c * KM_SLOT_CHUNK;
		uint64_t size = start + KM_SLOT_CHUNK > mm->gpa_size ? mm->gpa_size - start : KM_SLOT_CHUNK;
		if (mm->register_slot(mm->slot_ctx, (int)(1 + c), start, size, mm->host + start) < 0)
			return -1;
	}
	return 0;
}

void km_mm_fini(km_mm_t *mm)
{
	if (mm->snapshot_fd >= 0)
		close(mm->snapshot_fd);
	mm->snapshot_fd = -1;
	km_dirty_forget(mm);
	free(mm->slot_present);
	mm->slot_present = NULL;
	if (mm->host != NULL)
		munmap(mm->host, mm->gpa_size);
	for (size_t i = 0; i < mm->nvmas; i++)
		free(mm->vmas[i].path);
	free(mm->vmas);
	free(mm->free);
	free(mm->deferred);
	mm->deferred = NULL;
	mm->ndeferred = 0;
	free(mm->pt.free_pages);
	mm->host = NULL;
	mm->vmas = NULL;
	mm->free = NULL;
	mm->nvmas = mm->nfree = 0;
}

/* Removes [start, start+len) from free range i, which contains it. Returns 0 or -1 (no memory to
 * split the range in two). */
static int take_from(km_mm_t *mm, size_t i, uint64_t start, uint64_t len)
{
	km_phys_range_t *r = &mm->free[i];
	uint64_t end = r->end;
	if (start == r->start && start + len == end) {
		free_remove(mm, i);
	} else if (start == r->start) {
		r->start += len;
	} else if (start + len == end) {
		r->end = start;
	} else {
		r->end = start;
		if (free_insert(mm, i + 1, start + len, end) < 0) {
			mm->free[i].end = end;
			return -1;
		}
	}
	return 0;
}

static void release_now(km_mm_t *mm, uint64_t gpa, uint64_t len);

/* Puts back the deferred ranges no syscall in flight can still hold. */
static void reclaim(km_mm_t *mm)
{
	if (mm->ndeferred == 0)
		return;
	uint64_t oldest = mm->oldest_busy != NULL ? mm->oldest_busy(mm->busy_ctx) : UINT64_MAX;
	size_t kept = 0;
	for (size_t i = 0; i < mm->ndeferred; i++) {
		km_phys_deferred_t d = mm->deferred[i];
		if (oldest > d.epoch)
			release_now(mm, d.start, d.end - d.start); /* resets again: a late write is gone */
		else
			mm->deferred[kept++] = d;
	}
	mm->ndeferred = kept;
}

/* Holds a freed range back while syscalls that started before its release are in flight.
 * Returns false (release it now) when none is, or when there is no memory to remember it. */
static bool defer(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	uint64_t ep = __atomic_add_fetch(&mm->epoch, 1, __ATOMIC_ACQ_REL);
	if (mm->oldest_busy == NULL || mm->oldest_busy(mm->busy_ctx) >= ep)
		return false;
	if (mm->ndeferred == mm->deferred_cap) {
		size_t cap = mm->deferred_cap ? mm->deferred_cap * 2 : 16;
		km_phys_deferred_t *d = realloc(mm->deferred, cap * sizeof(*d));
		if (d == NULL)
			return false;
		mm->deferred = d;
		mm->deferred_cap = cap;
	}
	mm->deferred[mm->ndeferred++] = (km_phys_deferred_t){gpa, gpa + len, ep};
	return true;
}

uint64_t km_phys_alloc(km_mm_t *mm, uint64_t len, uint64_t gva)
{
	reclaim(mm);
	for (size_t i = 0; i < mm->nfree; i++) {
		km_phys_range_t *r = &mm->free[i];
		uint64_t start = r->start;
		if (len >= KM_HUGE_SIZE) {
			/* same offset inside a 2 MiB page as the virtual address */
			start = (start & ~(KM_HUGE_SIZE - 1)) + (gva & (KM_HUGE_SIZE - 1));
			if (start < r->start)
				start += KM_HUGE_SIZE;
		}
		if (start + len > r->end || start + len < start)
			continue;
		return take_from(mm, i, start, len) == 0 ? start : 0;
	}
	return 0;
}

int km_phys_take(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	reclaim(mm);
	for (size_t i = 0; i < mm->nfree; i++)
		if (gpa >= mm->free[i].start && gpa + len <= mm->free[i].end)
			return take_from(mm, i, gpa, len);
	return -1;
}

int km_phys_reset(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	if (mmap(mm->host + gpa, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
		 -1, 0) == MAP_FAILED)
		return -errno;
	/* A new mapping does not inherit the reservation's MADV_HUGEPAGE: without it, memory the
	 * program maps again after an munmap (or a heap trimmed by brk and grown back) would be
	 * backed by 4 KiB host pages, each first touch a fault of its own (about 40x slower here). */
	if (gpa >= mm->user_gpa)
		(void)madvise(mm->host + gpa, len, MADV_HUGEPAGE);
	return 0;
}

void km_phys_release(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	if (gpa >= mm->brk_gpa && gpa < mm->brk_gpa_end) {
		km_phys_reset(mm, gpa, len);
		return; /* the heap window stays reserved for brk */
	}
	if (defer(mm, gpa, len)) {
		km_phys_reset(mm, gpa, len);
		return;
	}
	release_now(mm, gpa, len);
}

static void release_now(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	km_phys_reset(mm, gpa, len);
	size_t i = 0;
	while (i < mm->nfree && mm->free[i].start < gpa)
		i++;
	bool merge_prev = i > 0 && mm->free[i - 1].end == gpa;
	bool merge_next = i < mm->nfree && mm->free[i].start == gpa + len;
	if (merge_prev && merge_next) {
		mm->free[i - 1].end = mm->free[i].end;
		free_remove(mm, i);
	} else if (merge_prev) {
		mm->free[i - 1].end += len;
	} else if (merge_next) {
		mm->free[i].start = gpa;
	} else {
		free_insert(mm, i, gpa, gpa + len); /* on ENOMEM the range is lost, not corrupted */
	}
}
