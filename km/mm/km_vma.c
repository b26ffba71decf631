/* The guest's mappings (VMAs) and checked access to guest memory through them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "km_dirty_internal.h"
#include "km_guest_fault.h"
#include "km_mm_internal.h"

/* How deep this thread is in the lock: writers count as deep (KM_WR), so that the read side
 * taken inside a write (a copy to the guest while mapping) does not lock again. */
#define KM_WR 0x40000000
static __thread int lock_depth;

void km_mm_rdlock(km_mm_t *mm)
{
	if (lock_depth++ == 0)
		pthread_rwlock_rdlock(&mm->lock);
}

void km_mm_rdunlock(km_mm_t *mm)
{
	if (--lock_depth == 0)
		pthread_rwlock_unlock(&mm->lock);
}

void km_mm_wrlock(km_mm_t *mm)
{
	pthread_rwlock_wrlock(&mm->lock);
	lock_depth += KM_WR;
}

void km_mm_wrunlock(km_mm_t *mm)
{
	lock_depth -= KM_WR;
	pthread_rwlock_unlock(&mm->lock);
}

size_t km_vma_index(km_mm_t *mm, uint64_t gva)
{
	size_t lo = 0, hi = mm->nvmas;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (mm->vmas[mid].end <= gva)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

km_vma_t *km_vma_find(km_mm_t *mm, uint64_t gva)
{
	size_t i = km_vma_index(mm, gva);
	if (i < mm->nvmas && mm->vmas[i].start <= gva)
		return &mm->vmas[i];
	return NULL;
}

int km_vma_insert(km_mm_t *mm, const km_vma_t *v)
{
	if (mm->nvmas == mm->vma_cap) {
		size_t cap = mm->vma_cap ? mm->vma_cap * 2 : 32;
		km_vma_t *n = realloc(mm->vmas, cap * sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		mm->vmas = n;
		mm->vma_cap = cap;
	}
	size_t i = km_vma_index(mm, v->start);
	memmove(&mm->vmas[i + 1], &mm->vmas[i], (mm->nvmas - i) * sizeof(*mm->vmas));
	mm->vmas[i] = *v;
	mm->nvmas++;
	return 0;
}

void km_vma_remove(km_mm_t *mm, size_t i)
{
	free(mm->vmas[i].path);
	memmove(&mm->vmas[i], &mm->vmas[i + 1], (mm->nvmas - i - 1) * sizeof(*mm->vmas));
	mm->nvmas--;
}

int km_vma_split_at(km_mm_t *mm, uint64_t at)
{
	km_vma_t *v = km_vma_find(mm, at);
	if (v == NULL || v->start == at)
		return 0;
	km_vma_t right = *v;
	uint64_t delta = at - v->start;
	right.start = at;
	right.gpa += delta;
	if (right.kind == KM_VMA_FILE || right.kind == KM_VMA_ELF)
		right.offset += delta;
	right.backing_off += delta;
	right.path = v->path != NULL ? strdup(v->path) : NULL;
	if (v->path != NULL && right.path == NULL)
		return -ENOMEM;
	v->end = at;
	if (km_vma_insert(mm, &right) < 0) {
		v->end = right.end;
		free(right.path);
		return -ENOMEM;
	}
	return 0;
}

bool km_vma_range_free(km_mm_t *mm, uint64_t start, uint64_t end)
{
	size_t i = km_vma_index(mm, start);
	return i >= mm->nvmas || mm->vmas[i].start >= end;
}

uint64_t km_vma_find_gap(km_mm_t *mm, uint64_t len, uint64_t lo, uint64_t hi)
{
	if (hi < lo || hi - lo < len)
		return 0;
	/* Walk gaps from the top down: gap i lies between VMA i-1 and VMA i. */
	size_t i = km_vma_index(mm, hi);
	uint64_t gap_end = hi;
	if (i < mm->nvmas && mm->vmas[i].start < hi)
		gap_end = mm->vmas[i].start;
	for (;;) {
		uint64_t gap_start = i > 0 ? mm->vmas[i - 1].end : 0;
		if (gap_start < lo)
			gap_start = lo;
		if (gap_end > gap_start && gap_end - gap_start >= len)
			return KM_PAGE_DOWN(gap_end - len);
		if (i == 0 || mm->vmas[i - 1].end <= lo)
			return 0;
		i--;
		gap_end = mm->vmas[i].start;
	}
}

static bool prot_allows(int prot, int access)
{
	if (prot == PROT_NONE)
		return false;
	/* On x86 any present page is readable (and a readable one executable unless NX). */
	if ((access & KM_ACC_WRITE) && !(prot & PROT_WRITE))
		return false;
	return true;
}

static int gva_to_iov(km_mm_t *mm, uint64_t gva, size_t len, int access, struct iovec *iov, int max)
{
	if (gva + len < gva)
		return -EFAULT;
	int n = 0;
	size_t i = km_vma_index(mm, gva);
	uint64_t at = gva, end = gva + len;
	while (at < end) {
		if (i >= mm->nvmas || mm->vmas[i].start > at || !prot_allows(mm->vmas[i].prot, access))
			return -EFAULT;
		km_vma_t *v = &mm->vmas[i];
		uint64_t stop = v->end < end ? v->end : end;
		uint8_t *h = mm->host + v->gpa + (at - v->start);
		/* The caller writes through the host pointer, where KVM's dirty log cannot see it. */
		if (access & KM_ACC_WRITE)
			km_dirty_mark_gpa(mm, v->gpa + (at - v->start), stop - at);
		if (n > 0 && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == h) {
			iov[n - 1].iov_len += stop - at;
		} else {
			if (n == max)
				return -EINVAL;
			iov[n].iov_base = h;
			iov[n].iov_len = stop - at;
			n++;
		}
		at = stop;
		i++;
	}
	return n;
}

int km_gva_to_iov(km_mm_t *mm, uint64_t gva, size_t len, int access, struct iovec *iov, int max)
{
	km_mm_rdlock(mm);
	int n = gva_to_iov(mm, gva, len, access, iov, max);
	km_mm_rdunlock(mm);
	return n;
}

void *km_gva_to_hva(km_mm_t *mm, uint64_t gva, size_t len, int access)
{
	struct iovec iov;
	void *h = NULL;
	km_mm_rdlock(mm);
	if (len == 0) {
		km_vma_t *v = km_vma_find(mm, gva);
		h = v != NULL && prot_allows(v->prot, access) ? mm->host + v->gpa + (gva - v->start) : NULL;
	} else if (gva_to_iov(mm, gva, len, access, &iov, 1) == 1) {
		h = iov.iov_base;
	}
	km_mm_rdunlock(mm);
	return h;
}

/* Copies in pieces so that buffers crossing several mappings work. */
static int copy_guest(km_mm_t *mm, uint64_t gva, void *buf, size_t len, int access)
{
	uint8_t *b = buf;
	size_t i = km_vma_index(mm, gva);
	uint64_t at = gva, end = gva + len;
	if (end < gva)
		return -EFAULT;
	while (at < end) {
		if (i >= mm->nvmas || mm->vmas[i].start > at || !prot_allows(mm->vmas[i].prot, access))
			return -EFAULT;
		km_vma_t *v = &mm->vmas[i];
		uint64_t stop = v->end < end ? v->end : end;
		uint8_t *h = mm->host + v->gpa + (at - v->start);
		size_t n = stop - at;
		if (access & KM_ACC_WRITE)
			km_dirty_mark_gpa(mm, v->gpa + (at - v->start), n);
		/* The host may fail to provide the page (a file mapping past its end): EFAULT. */
		if (km_guest_memcpy(access & KM_ACC_WRITE ? h : b, access & KM_ACC_WRITE ? b : h, n, h, n) < 0)
			return -EFAULT;
		b += n;
		at = stop;
		i++;
	}
	return 0;
}

int km_copy_from_guest(km_mm_t *mm, void *dst, uint64_t gva, size_t len)
{
	km_mm_rdlock(mm);
	int rc = copy_guest(mm, gva, dst, len, KM_ACC_READ);
	km_mm_rdunlock(mm);
	return rc;
}

int km_copy_to_guest(km_mm_t *mm, uint64_t gva, const void *src, size_t len)
{
	km_mm_rdlock(mm);
	int rc = copy_guest(mm, gva, (void *)src, len, KM_ACC_WRITE);
	km_mm_rdunlock(mm);
	return rc;
}
