/*
 * Unit tests for the guest address space (km_physmem.c, km_vma.c, km_mm.c): mmap, munmap,
 * mprotect, mremap, brk, madvise(DONTNEED) and checked access to guest memory. km_mm_init only
 * reserves host memory and builds page tables in it, so no KVM is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_mm.h"
#include "km_mm_internal.h"

#define P 4096ul
#define M2 (2ul << 20)
#define MIB (1ul << 20)
#define LIMIT (64ul << 20)
#define MMAP_BASE 0x7f0000000000ul /* where km_initstack would put it, roughly */
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)
#define RW (PROT_READ | PROT_WRITE)

/* PTE bits (architecture) for page-table checks. */
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)

static int setup(void **state)
{
	km_mm_t *mm = calloc(1, sizeof(*mm));
	km_err_t *err = NULL;
	if (mm == NULL || km_mm_init(mm, LIMIT, 46, &err) < 0) {
		fprintf(stderr, "km_mm_init: %s\n", err ? err->msg : "calloc");
		return -1;
	}
	mm->mmap_base = MMAP_BASE;
	*state = mm;
	return 0;
}

static int teardown(void **state)
{
	km_mm_t *mm = *state;
	km_mm_fini(mm);
	free(mm);
	return 0;
}

static int64_t map_anon(km_mm_t *mm, uint64_t addr, uint64_t len, int prot, int extra)
{
	return km_mm_map(mm, addr, len, prot, ANON | extra, -1, 0, KM_VMA_ANON, NULL);
}

/* Fills guest memory through its host mapping (no protection check: km-side write). */
static void fill(km_mm_t *mm, uint64_t gva, uint64_t len, int byte)
{
	uint8_t *h = km_gva_to_hva(mm, gva, len, 0);
	assert_non_null(h);
	memset(h, byte, len);
}

/* Page i of [gva, gva + n pages) gets byte base + i. */
static void fill_pages(km_mm_t *mm, uint64_t gva, size_t n, int base)
{
	for (size_t i = 0; i < n; i++)
		fill(mm, gva + i * P, P, base + (int)i);
}

/* Asserts every byte of [gva, gva+len) is `byte`, read with km's checked copy. */
static void expect_bytes(km_mm_t *mm, uint64_t gva, uint64_t len, int byte)
{
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	assert_int_equal(km_copy_from_guest(mm, buf, gva, len), 0);
	for (uint64_t i = 0; i < len; i++)
		if (buf[i] != (uint8_t)byte) {
			unsigned got = buf[i];
			free(buf);
			fail_msg("byte at %#lx is %#x, expected %#x", (unsigned long)(gva + i), got, byte & 0xff);
		}
	free(buf);
}

static void expect_pages(km_mm_t *mm, uint64_t gva, size_t n, int base)
{
	for (size_t i = 0; i < n; i++)
		expect_bytes(mm, gva + i * P, P, base + (int)i);
}

static void expect_vma(km_mm_t *mm, size_t i, uint64_t start, uint64_t end, int prot)
{
	assert_in_range(i, 0, mm->nvmas - 1);
	assert_int_equal(mm->vmas[i].start, start);
	assert_int_equal(mm->vmas[i].end, end);
	assert_int_equal(mm->vmas[i].prot, prot);
}

/* The page tables translate [gva, gva+len) onto the VMA's guest-physical range, or not at all. */
static void expect_pt(km_mm_t *mm, uint64_t gva, uint64_t len, bool present)
{
	for (uint64_t a = gva; a < gva + len; a += P) {
		int64_t gpa = km_pt_walk(&mm->pt, a, NULL);
		if (!present) {
			assert_int_equal(gpa, -1);
			continue;
		}
		km_vma_t *v = km_vma_find(mm, a);
		assert_non_null(v);
		assert_int_equal(gpa, v->gpa + (a - v->start));
	}
}

/* --- init --- */

static void test_init(void **state)
{
	km_mm_t *mm = *state;
	assert_int_equal(mm->limit, LIMIT);
	assert_int_equal(mm->committed, 0);
	assert_int_equal(mm->nvmas, 0);
	assert_non_null(mm->host);
	assert_true(mm->user_gpa >= KM_RT_SIZE);
	/* Room for twice the limit of mappings plus the heap window, and well inside 46 bits. */
	assert_true(mm->gpa_size >= mm->user_gpa + 3 * LIMIT);
	assert_true(mm->gpa_size <= (1ul << 46));
	/* One free guest-physical range: all program memory. */
	assert_int_equal(mm->nfree, 1);
	assert_int_equal(mm->free[0].start, mm->user_gpa);
	assert_int_equal(mm->free[0].end, mm->gpa_size);
	/* The page-table pool lies between the runtime and program memory. */
	assert_int_equal(mm->pt.pool_gpa, KM_RT_SIZE);
	assert_true(mm->pt.pool_gpa + mm->pt.pool_size <= mm->user_gpa);
	assert_null(km_vma_find(mm, 0x400000));
}

static void test_init_phys_bits_too_small(void **state)
{
	(void)state;
	km_mm_t mm;
	km_err_t *err = NULL;
	/* 24 bits (16 MiB) cannot even hold km's runtime region and page tables. */
	assert_int_equal(km_mm_init(&mm, LIMIT, 24, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "24 address bits"));
	assert_non_null(strstr(err->msg, "64 MiB"));
	km_err_free(&err);
	km_mm_fini(&mm);
	km_mm_fini(&mm); /* twice: safe */
	km_mm_t zero = {0};
	km_mm_fini(&zero);
}

/* --- mmap --- */

static void test_map_anon_no_hint(void **state)
{
	km_mm_t *mm = *state;
	int64_t a = map_anon(mm, 0, 3 * P, RW, 0);
	assert_int_equal(a, MMAP_BASE - 3 * P);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, a, a + 3 * P, RW);
	assert_int_equal(mm->vmas[0].kind, KM_VMA_ANON);
	assert_int_equal(mm->vmas[0].flags, ANON);
	assert_null(mm->vmas[0].path);
	assert_int_equal(mm->committed, 3 * P);
	expect_bytes(mm, a, 3 * P, 0);
	expect_pt(mm, a, 3 * P, true);
	uint64_t fl;
	assert_int_equal(km_pt_walk(&mm->pt, a, &fl), mm->vmas[0].gpa);
	assert_int_equal(fl & (PTE_RW | PTE_US | PTE_NX), PTE_RW | PTE_US | PTE_NX);

	/* The next one goes right below (top-down), a partial page rounds up. */
	int64_t b = map_anon(mm, 0, P + 1, PROT_READ, 0);
	assert_int_equal(b, a - 2 * P);
	assert_int_equal(mm->nvmas, 2);
	expect_vma(mm, 0, b, a, PROT_READ);
	assert_int_equal(mm->committed, 5 * P);
	assert_int_equal(km_pt_walk(&mm->pt, b, &fl), mm->vmas[0].gpa);
	assert_int_equal(fl & (PTE_RW | PTE_US | PTE_NX), PTE_US | PTE_NX);

	/* The highest gap below mmap_base that fits is used again once freed. */
	assert_int_equal(km_mm_unmap(mm, a, 3 * P), 0);
	assert_int_equal(map_anon(mm, 0, 2 * P, RW, 0), MMAP_BASE - 2 * P);
	/* [MMAP_BASE-3P, MMAP_BASE-2P) is one page: too small for two, fine for one. */
	assert_int_equal(map_anon(mm, 0, 2 * P, RW, 0), b - 2 * P);
	assert_int_equal(map_anon(mm, 0, P, RW, 0), MMAP_BASE - 3 * P);
	assert_int_equal(mm->nvmas, 4);
	assert_int_equal(mm->committed, 7 * P);
}

static void test_map_hint(void **state)
{
	km_mm_t *mm = *state;
	uint64_t hint = 0x200000000ul;
	/* Free hint: honoured exactly. */
	assert_int_equal(map_anon(mm, hint, 4 * P, RW, 0), hint);
	/* Unaligned hint: rounded down to its page, as on x86-64. */
	assert_int_equal(map_anon(mm, hint + 8 * P + 0x123, P, RW, 0), hint + 8 * P);
	/* Taken hint (and one overlapping its end): placed below mmap_base instead. */
	assert_int_equal(map_anon(mm, hint, P, RW, 0), MMAP_BASE - P);
	assert_int_equal(map_anon(mm, hint - P, 2 * P, RW, 0), MMAP_BASE - 3 * P);
	/* A hint whose range would leave user space is ignored. */
	assert_int_equal(map_anon(mm, KM_USER_TOP - P, 2 * P, RW, 0), MMAP_BASE - 5 * P);
	/* The hint mapping was not disturbed. */
	assert_non_null(km_vma_find(mm, hint));
	assert_int_equal(km_vma_find(mm, hint)->end, hint + 4 * P);
	assert_int_equal(mm->nvmas, 5);
	assert_int_equal(mm->committed, 10 * P);
}

static void test_map_32bit(void **state)
{
	km_mm_t *mm = *state;
	int64_t a = map_anon(mm, 0, 4 * P, RW, MAP_32BIT);
	assert_true(a >= 0x40000000);
	assert_true(a + 4 * P <= 0x80000000);
}

static void test_map_bad_args(void **state)
{
	km_mm_t *mm = *state;
	assert_int_equal(map_anon(mm, 0, 0, RW, 0), -EINVAL);
	assert_int_equal(map_anon(mm, 0, ~0ul - 5, RW, 0), -EINVAL);
	assert_int_equal(map_anon(mm, 0, P, 0x10, 0), -EINVAL);
	assert_int_equal(km_mm_map(mm, 0, P, RW, MAP_ANONYMOUS, -1, 0, KM_VMA_ANON, NULL), -EINVAL);
	assert_int_equal(km_mm_map(mm, 0, P, RW, ANON, -1, 100, KM_VMA_ANON, NULL), -EINVAL);
	assert_int_equal(map_anon(mm, 0x200000100ul, P, RW, MAP_FIXED), -EINVAL);
	assert_int_equal(map_anon(mm, KM_USER_TOP - P, 2 * P, RW, MAP_FIXED), -ENOMEM);
	assert_int_equal(map_anon(mm, 0x1000, P, RW, MAP_FIXED), -ENOMEM); /* below mmap_min_addr */
	assert_int_equal(mm->nvmas, 0);
	assert_int_equal(mm->committed, 0);
}

static void test_map_fixed_splits(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 8 * P, RW, MAP_FIXED), x);
	fill_pages(mm, x, 8, 'a');
	uint64_t old_gpa = mm->vmas[0].gpa;
	/* A new read-only mapping over pages 3-4. */
	assert_int_equal(map_anon(mm, x + 3 * P, 2 * P, PROT_READ, MAP_FIXED), x + 3 * P);
	assert_int_equal(mm->nvmas, 3);
	expect_vma(mm, 0, x, x + 3 * P, RW);
	expect_vma(mm, 1, x + 3 * P, x + 5 * P, PROT_READ);
	expect_vma(mm, 2, x + 5 * P, x + 8 * P, RW);
	/* The pieces left keep their memory (same guest-physical pages) and contents. */
	assert_int_equal(mm->vmas[0].gpa, old_gpa);
	assert_int_equal(mm->vmas[2].gpa, old_gpa + 5 * P);
	expect_pages(mm, x, 3, 'a');
	expect_bytes(mm, x + 3 * P, 2 * P, 0);
	expect_pages(mm, x + 5 * P, 3, 'a' + 5);
	expect_pt(mm, x, 8 * P, true);
	assert_int_equal(mm->committed, 8 * P);
	/* At the edges: first and last page replaced. */
	assert_int_equal(map_anon(mm, x, P, RW, MAP_FIXED), x);
	assert_int_equal(map_anon(mm, x + 7 * P, P, RW, MAP_FIXED), x + 7 * P);
	assert_int_equal(mm->nvmas, 5);
	expect_bytes(mm, x, P, 0);
	expect_pages(mm, x + P, 2, 'a' + 1);
	expect_pages(mm, x + 5 * P, 2, 'a' + 5);
	expect_bytes(mm, x + 7 * P, P, 0);
	assert_int_equal(mm->committed, 8 * P);
	/* One mapping over several, reaching into free space. */
	assert_int_equal(map_anon(mm, x + 2 * P, 8 * P, PROT_READ | PROT_EXEC, MAP_FIXED), x + 2 * P);
	assert_int_equal(mm->nvmas, 3);
	expect_vma(mm, 0, x, x + P, RW);
	expect_vma(mm, 1, x + P, x + 2 * P, RW);
	expect_vma(mm, 2, x + 2 * P, x + 10 * P, PROT_READ | PROT_EXEC);
	expect_pages(mm, x + P, 1, 'a' + 1);
	expect_bytes(mm, x + 2 * P, 8 * P, 0);
	assert_int_equal(mm->committed, 10 * P);
}

static void test_map_fixed_noreplace(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 4 * P, RW, MAP_FIXED), x);
	fill(mm, x, 4 * P, 0x5a);
	assert_int_equal(map_anon(mm, x + 3 * P, 2 * P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	assert_int_equal(map_anon(mm, x - P, 2 * P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	assert_int_equal(map_anon(mm, x + P, P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	assert_int_equal(map_anon(mm, x - P, 6 * P, RW, MAP_FIXED_NOREPLACE), -EEXIST);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, x, x + 4 * P, RW);
	expect_bytes(mm, x, 4 * P, 0x5a);
	assert_int_equal(mm->committed, 4 * P);
	/* Touching but not overlapping: fine, at exactly that address. */
	assert_int_equal(map_anon(mm, x + 4 * P, P, PROT_READ, MAP_FIXED_NOREPLACE), x + 4 * P);
	assert_int_equal(map_anon(mm, x - 2 * P, 2 * P, PROT_READ, MAP_FIXED_NOREPLACE), x - 2 * P);
	assert_int_equal(mm->nvmas, 3);
	assert_int_equal(mm->committed, 7 * P);
}

static void test_map_huge_pages(void **state)
{
	km_mm_t *mm = *state;
	uint64_t fl, x = 0x400000000ul;
	/* 2 MiB aligned mappings of whole 2 MiB pages use huge pages... */
	assert_int_equal(map_anon(mm, x, 2 * M2, RW, MAP_FIXED), x);
	assert_int_equal(mm->vmas[0].gpa % M2, 0);
	assert_int_equal(km_pt_walk(&mm->pt, x + M2 + 5, &fl), mm->vmas[0].gpa + M2 + 5);
	assert_int_equal(fl & PTE_PS, PTE_PS);
	/* ...and so does the aligned middle of an unaligned one (physical congruent to virtual). */
	uint64_t y = 0x500000000ul + P;
	assert_int_equal(map_anon(mm, y, 2 * M2, RW, MAP_FIXED), y);
	km_vma_t *v = km_vma_find(mm, y);
	assert_int_equal(v->gpa % M2, P);
	uint64_t mid = 0x500000000ul + M2;
	assert_int_equal(km_pt_walk(&mm->pt, mid, &fl), v->gpa + (mid - y));
	assert_int_equal(fl & PTE_PS, PTE_PS);
	assert_int_equal(km_pt_walk(&mm->pt, y, &fl), v->gpa);
	assert_int_equal(fl & PTE_PS, 0);
	/* mprotect of one page inside splits the huge page; the rest keeps its translation. */
	fill(mm, x, 2 * M2, 0x11);
	assert_int_equal(km_mm_protect(mm, x + 10 * P, P, PROT_READ), 0);
	expect_pt(mm, x, 2 * M2, true);
	assert_int_equal(km_pt_walk(&mm->pt, x + 10 * P, &fl), mm->vmas[1].gpa);
	assert_int_equal(fl & (PTE_RW | PTE_PS), 0);
	assert_int_equal(km_pt_walk(&mm->pt, x + 11 * P, &fl), mm->vmas[2].gpa);
	assert_int_equal(fl & (PTE_RW | PTE_PS), PTE_RW);
	expect_bytes(mm, x, 2 * M2, 0x11);
}

static void test_freed_memory_reads_zero(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 4 * P, RW, MAP_FIXED), x);
	fill(mm, x, 4 * P, 0xee);
	uint64_t gpa = mm->vmas[0].gpa;
	assert_int_equal(km_mm_unmap(mm, x, 4 * P), 0);
	/* The next allocation reuses the same guest-physical pages: they must be fresh. */
	int64_t y = map_anon(mm, 0, 4 * P, RW, 0);
	assert_true(y > 0);
	assert_int_equal(km_vma_find(mm, y)->gpa, gpa);
	expect_bytes(mm, y, 4 * P, 0);
	/* Same through MAP_FIXED replacement. */
	fill(mm, y, 4 * P, 0xdd);
	assert_int_equal(map_anon(mm, y, 4 * P, RW, MAP_FIXED), y);
	expect_bytes(mm, y, 4 * P, 0);
}

/* --- munmap --- */

static void test_unmap(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 5 * P, RW, MAP_FIXED), x);
	fill_pages(mm, x, 5, 'A');
	assert_int_equal(km_mm_unmap(mm, x + 2 * P, P), 0);
	assert_int_equal(mm->nvmas, 2);
	expect_vma(mm, 0, x, x + 2 * P, RW);
	expect_vma(mm, 1, x + 3 * P, x + 5 * P, RW);
	assert_int_equal(mm->committed, 4 * P);
	expect_pages(mm, x, 2, 'A');
	expect_pages(mm, x + 3 * P, 2, 'A' + 3);
	assert_null(km_vma_find(mm, x + 2 * P));
	assert_null(km_gva_to_hva(mm, x + 2 * P, 1, KM_ACC_READ));
	assert_null(km_gva_to_hva(mm, x + 2 * P, 0, KM_ACC_READ));
	expect_pt(mm, x + 2 * P, P, false);
	expect_pt(mm, x, 2 * P, true);
	expect_pt(mm, x + 3 * P, 2 * P, true);
	uint64_t gen = mm->tlb_gen;
	/* Unaligned address, zero length, wrap-around: EINVAL. */
	assert_int_equal(km_mm_unmap(mm, x + 1, P), -EINVAL);
	assert_int_equal(km_mm_unmap(mm, x, 0), -EINVAL);
	assert_int_equal(km_mm_unmap(mm, x, ~0ul - P), -EINVAL);
	assert_int_equal(km_mm_unmap(mm, KM_USER_TOP, P), -EINVAL);
	/* Unmapping a hole, or a range that covers a hole and a mapping. */
	assert_int_equal(km_mm_unmap(mm, 0x100000000ul, 100 * P), 0);
	assert_int_equal(mm->nvmas, 2);
	assert_int_equal(km_mm_unmap(mm, x + P, 3 * P), 0);
	assert_int_equal(mm->nvmas, 2);
	expect_vma(mm, 0, x, x + P, RW);
	expect_vma(mm, 1, x + 4 * P, x + 5 * P, RW);
	assert_int_equal(mm->committed, 2 * P);
	assert_true(mm->tlb_gen > gen);
	/* A partial length is rounded up to a page. */
	assert_int_equal(km_mm_unmap(mm, x + 4 * P, 1), 0);
	assert_int_equal(mm->nvmas, 1);
	assert_int_equal(mm->committed, P);
}

/* --- mprotect --- */

static void test_protect(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul, fl;
	assert_int_equal(map_anon(mm, x, 4 * P, RW, MAP_FIXED), x);
	fill_pages(mm, x, 4, '0');
	uint64_t gen = mm->tlb_gen;
	assert_int_equal(km_mm_protect(mm, x + P, 2 * P, PROT_READ), 0);
	assert_true(mm->tlb_gen > gen);
	assert_int_equal(mm->nvmas, 3);
	expect_vma(mm, 0, x, x + P, RW);
	expect_vma(mm, 1, x + P, x + 3 * P, PROT_READ);
	expect_vma(mm, 2, x + 3 * P, x + 4 * P, RW);
	expect_pages(mm, x, 4, '0');
	assert_int_equal(km_pt_walk(&mm->pt, x + P, &fl), mm->vmas[1].gpa);
	assert_int_equal(fl & (PTE_RW | PTE_NX), PTE_NX);
	assert_int_equal(km_pt_walk(&mm->pt, x, &fl), mm->vmas[0].gpa);
	assert_int_equal(fl & (PTE_RW | PTE_NX), PTE_RW | PTE_NX);
	/* Writes through km's checked access now fail there. */
	char c = 'z';
	assert_int_equal(km_copy_to_guest(mm, x + 2 * P, &c, 1), -EFAULT);
	assert_null(km_gva_to_hva(mm, x + P, P, KM_ACC_WRITE));
	assert_non_null(km_gva_to_hva(mm, x + P, P, KM_ACC_READ));
	/* Executable. */
	assert_int_equal(km_mm_protect(mm, x + 3 * P, P, PROT_READ | PROT_EXEC), 0);
	assert_int_equal(km_pt_walk(&mm->pt, x + 3 * P, &fl), mm->vmas[2].gpa);
	assert_int_equal(fl & (PTE_RW | PTE_NX), 0);
	/* PROT_NONE: no translation, no access. */
	assert_int_equal(km_mm_protect(mm, x, P, PROT_NONE), 0);
	expect_pt(mm, x, P, false);
	assert_null(km_gva_to_hva(mm, x, 1, KM_ACC_READ));
	assert_int_equal(km_copy_from_guest(mm, &c, x, 1), -EFAULT);
	/* And back: contents survived. */
	assert_int_equal(km_mm_protect(mm, x, 4 * P, RW), 0);
	expect_pages(mm, x, 4, '0');
	expect_pt(mm, x, 4 * P, true);
	for (size_t i = 0; i < mm->nvmas; i++)
		assert_int_equal(mm->vmas[i].prot, RW);
	/* Length 0 is a no-op; unaligned address and unknown bits are EINVAL. */
	assert_int_equal(km_mm_protect(mm, 0x100000000ul, 0, PROT_READ), 0);
	assert_int_equal(km_mm_protect(mm, x + 1, P, PROT_READ), -EINVAL);
	assert_int_equal(km_mm_protect(mm, x, P, 0x40), -EINVAL);
}

static void test_protect_hole(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 2 * P, RW, MAP_FIXED), x);
	assert_int_equal(map_anon(mm, x + 3 * P, 2 * P, RW, MAP_FIXED), x + 3 * P);
	/* Covers the hole at x + 2P: ENOMEM, nothing changed or split. */
	assert_int_equal(km_mm_protect(mm, x + P, 3 * P, PROT_READ), -ENOMEM);
	assert_int_equal(mm->nvmas, 2);
	expect_vma(mm, 0, x, x + 2 * P, RW);
	expect_vma(mm, 1, x + 3 * P, x + 5 * P, RW);
	/* Starting in a hole, or entirely unmapped. */
	assert_int_equal(km_mm_protect(mm, x - P, 2 * P, PROT_READ), -ENOMEM);
	assert_int_equal(km_mm_protect(mm, 0x100000000ul, P, PROT_READ), -ENOMEM);
	/* Running past the last mapping. */
	assert_int_equal(km_mm_protect(mm, x + 4 * P, 2 * P, PROT_READ), -ENOMEM);
	assert_int_equal(mm->nvmas, 2);
	/* Two adjacent VMAs are one range. */
	assert_int_equal(map_anon(mm, x + 2 * P, P, PROT_READ, MAP_FIXED), x + 2 * P);
	assert_int_equal(km_mm_protect(mm, x + P, 3 * P, PROT_READ), 0);
	assert_int_equal(mm->vmas[1].prot, PROT_READ);
}

/* --- mremap --- */

static void test_remap_shrink(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 4 * P, RW, MAP_FIXED), x);
	fill_pages(mm, x, 4, 'k');
	assert_int_equal(km_mm_remap(mm, x, 4 * P, 2 * P, 0, 0), x);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, x, x + 2 * P, RW);
	assert_int_equal(mm->committed, 2 * P);
	expect_pages(mm, x, 2, 'k');
	expect_pt(mm, x + 2 * P, 2 * P, false);
	/* Shrinking a middle piece of a mapping leaves the part after it mapped. */
	assert_int_equal(map_anon(mm, x + 2 * P, 4 * P, RW, MAP_FIXED), x + 2 * P);
	fill_pages(mm, x + 2 * P, 4, 'p');
	assert_int_equal(km_mm_remap(mm, x + 3 * P, 2 * P, P, MREMAP_MAYMOVE, 0), x + 3 * P);
	assert_null(km_vma_find(mm, x + 4 * P));
	expect_pages(mm, x + 2 * P, 2, 'p');
	expect_pages(mm, x + 5 * P, 1, 'p' + 3);
	assert_int_equal(mm->committed, 5 * P);
}

static void test_remap_grow_in_place(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 2 * P, RW, MAP_FIXED), x);
	fill_pages(mm, x, 2, 'g');
	uint64_t gpa = mm->vmas[0].gpa;
	assert_int_equal(km_mm_remap(mm, x, 2 * P, 4 * P, 0, 0), x);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, x, x + 4 * P, RW);
	assert_int_equal(mm->vmas[0].gpa, gpa);
	assert_int_equal(mm->committed, 4 * P);
	expect_pages(mm, x, 2, 'g');
	expect_bytes(mm, x + 2 * P, 2 * P, 0);
	expect_pt(mm, x, 4 * P, true);
	/* Blocked by a mapping after it, without MREMAP_MAYMOVE: ENOMEM, nothing changes. */
	assert_int_equal(map_anon(mm, x + 5 * P, P, RW, MAP_FIXED), x + 5 * P);
	assert_int_equal(km_mm_remap(mm, x, 4 * P, 6 * P, 0, 0), -ENOMEM);
	assert_int_equal(km_vma_find(mm, x)->end, x + 4 * P);
	assert_null(km_vma_find(mm, x + 4 * P));
	assert_int_equal(mm->committed, 5 * P);
	expect_pages(mm, x, 2, 'g');
	/* Blocked virtually while the guest-physical pages after it are free (the blocker was mapped
	 * first, so its memory lies below): still ENOMEM, the blocker untouched. */
	uint64_t y = 0x310000000ul;
	assert_int_equal(map_anon(mm, y + 3 * P, P, RW, MAP_FIXED), y + 3 * P);
	fill(mm, y + 3 * P, P, 0xb1);
	assert_int_equal(map_anon(mm, y, 2 * P, RW, MAP_FIXED), y);
	assert_int_equal(km_mm_remap(mm, y, 2 * P, 4 * P, 0, 0), -ENOMEM);
	assert_int_equal(km_vma_find(mm, y)->end, y + 2 * P);
	expect_vma(mm, 3, y + 3 * P, y + 4 * P, RW);
	expect_bytes(mm, y + 3 * P, P, 0xb1);
	/* Growing by one page up to it is fine. */
	assert_int_equal(km_mm_remap(mm, y, 2 * P, 3 * P, 0, 0), y);
	assert_int_equal(km_vma_find(mm, y)->end, y + 3 * P);
	assert_int_equal(mm->committed, 9 * P);
}

static void test_remap_move(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 2 * P, PROT_READ, MAP_FIXED), x);
	assert_int_equal(map_anon(mm, x + 2 * P, P, RW, MAP_FIXED), x + 2 * P); /* blocks growth */
	fill_pages(mm, x, 2, 'm');
	int64_t n = km_mm_remap(mm, x, 2 * P, 4 * P, MREMAP_MAYMOVE, 0);
	assert_true(n > 0);
	assert_int_not_equal(n, x);
	assert_int_equal(n % P, 0);
	km_vma_t *v = km_vma_find(mm, n);
	assert_non_null(v);
	assert_int_equal(v->start, n);
	assert_int_equal(v->end, n + 4 * P);
	assert_int_equal(v->prot, PROT_READ);
	expect_pages(mm, n, 2, 'm');
	expect_bytes(mm, n + 2 * P, 2 * P, 0);
	expect_pt(mm, n, 4 * P, true);
	/* The old range is gone; the blocker is still there. */
	assert_null(km_vma_find(mm, x));
	assert_null(km_vma_find(mm, x + P));
	expect_pt(mm, x, 2 * P, false);
	assert_non_null(km_vma_find(mm, x + 2 * P));
	assert_int_equal(mm->nvmas, 2);
	assert_int_equal(mm->committed, 5 * P);

	/* MREMAP_FIXED: to exactly the given address, replacing what is there. */
	uint64_t y = 0x310000000ul;
	assert_int_equal(map_anon(mm, y, P, RW, MAP_FIXED), y);
	fill(mm, y, P, 0x77);
	assert_int_equal(km_mm_remap(mm, n, 4 * P, 3 * P, MREMAP_MAYMOVE | MREMAP_FIXED, y), y);
	expect_vma(mm, 1, y, y + 3 * P, PROT_READ);
	assert_int_equal(mm->nvmas, 2);
	expect_pages(mm, y, 2, 'm');
	expect_bytes(mm, y + 2 * P, P, 0);
	assert_null(km_vma_find(mm, (uint64_t)n));
	assert_int_equal(mm->committed, 4 * P);
}

static void test_remap_errors(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 2 * P, RW, MAP_FIXED), x);
	/* Not mapped, or running past the mapping: EFAULT. */
	assert_int_equal(km_mm_remap(mm, 0x100000000ul, P, 2 * P, MREMAP_MAYMOVE, 0), -EFAULT);
	assert_int_equal(km_mm_remap(mm, x + P, 2 * P, 3 * P, MREMAP_MAYMOVE, 0), -EFAULT);
	/* Bad flags and arguments: EINVAL. */
	assert_int_equal(km_mm_remap(mm, x + 1, P, 2 * P, MREMAP_MAYMOVE, 0), -EINVAL);
	assert_int_equal(km_mm_remap(mm, x, 2 * P, 2 * P, MREMAP_FIXED, 0x310000000ul), -EINVAL);
	assert_int_equal(km_mm_remap(mm, x, 2 * P, 0, MREMAP_MAYMOVE, 0), -EINVAL);
	assert_int_equal(km_mm_remap(mm, x, 2 * P, 2 * P, 0x80, 0), -EINVAL);
	/* A fixed destination overlapping the source. */
	assert_int_equal(km_mm_remap(mm, x, 2 * P, 2 * P, MREMAP_MAYMOVE | MREMAP_FIXED, x + P), -EINVAL);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, x, x + 2 * P, RW);
	assert_int_equal(mm->committed, 2 * P);
}

/* --- memory limit --- */

static void test_limit(void **state)
{
	km_mm_t *mm = *state;
	int64_t a = map_anon(mm, 0, LIMIT, RW, 0);
	assert_true(a > 0);
	assert_int_equal(mm->committed, LIMIT);
	assert_int_equal(map_anon(mm, 0, P, RW, 0), -ENOMEM);
	assert_int_equal(map_anon(mm, 0x300000000ul, P, RW, MAP_FIXED), -ENOMEM);
	assert_int_equal(km_mm_remap(mm, a, P, 2 * P, MREMAP_MAYMOVE, 0), -ENOMEM);
	/* Replacing mapped memory with MAP_FIXED costs nothing extra. */
	assert_int_equal(map_anon(mm, a + P, 4 * P, PROT_READ, MAP_FIXED), a + P);
	assert_int_equal(mm->committed, LIMIT);
	/* Unmapping gives the bytes back. */
	assert_int_equal(km_mm_unmap(mm, a, MIB), 0);
	assert_int_equal(mm->committed, LIMIT - MIB);
	assert_true(map_anon(mm, 0, MIB - P, RW, 0) > 0);
	assert_int_equal(mm->committed, LIMIT - P);
	assert_int_equal(map_anon(mm, 0, 2 * P, RW, 0), -ENOMEM);
	assert_true(map_anon(mm, 0, P, RW, 0) > 0);
	assert_int_equal(mm->committed, LIMIT);
	assert_int_equal(map_anon(mm, 0, P, RW, 0), -ENOMEM);
	/* A fresh mm: one mapping larger than the limit. */
	assert_int_equal(km_mm_unmap(mm, MMAP_BASE - 2 * LIMIT, 2 * LIMIT), 0);
	assert_int_equal(mm->committed, 0);
	assert_int_equal(mm->nvmas, 0);
	assert_int_equal(map_anon(mm, 0, LIMIT + P, RW, 0), -ENOMEM);
	assert_int_equal(mm->committed, 0);
}

/* --- brk --- */

static void test_brk(void **state)
{
	km_mm_t *mm = *state;
	km_mm_set_brk_start(mm, 0x1000123);
	uint64_t s = 0x1001000;
	assert_int_equal(mm->brk_start, s);
	assert_int_not_equal(mm->brk_gpa, 0);
	assert_int_equal(km_mm_brk(mm, 0), s); /* query */
	assert_int_equal(mm->nvmas, 0);
	/* Grow: one heap VMA up to the page after the break. */
	assert_int_equal(km_mm_brk(mm, s + 0x2500), s + 0x2500);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, s, s + 3 * P, RW);
	assert_int_equal(mm->vmas[0].kind, KM_VMA_BRK);
	assert_int_equal(mm->vmas[0].gpa, mm->brk_gpa);
	assert_int_equal(mm->committed, 3 * P);
	expect_bytes(mm, s, 3 * P, 0);
	expect_pt(mm, s, 3 * P, true);
	fill_pages(mm, s, 3, 'h');
	/* Shrink: pages above the new break go. */
	assert_int_equal(km_mm_brk(mm, s + 0x800), s + 0x800);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, s, s + P, RW);
	assert_int_equal(mm->committed, P);
	expect_pt(mm, s + P, 2 * P, false);
	expect_pages(mm, s, 1, 'h');
	/* Grow again: one VMA, the returned pages are zero. */
	assert_int_equal(km_mm_brk(mm, s + 4 * P), s + 4 * P);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, s, s + 4 * P, RW);
	expect_pages(mm, s, 1, 'h');
	expect_bytes(mm, s + P, 3 * P, 0);
	assert_int_equal(mm->committed, 4 * P);
	/* Below the start: refused, break unchanged. */
	assert_int_equal(km_mm_brk(mm, s - P), s + 4 * P);
	/* Into another mapping: refused, break and heap unchanged. */
	uint64_t other = s + 16 * P;
	assert_int_equal(map_anon(mm, other, P, PROT_READ, MAP_FIXED), other);
	assert_int_equal(km_mm_brk(mm, other + P), s + 4 * P);
	assert_int_equal(km_mm_brk(mm, other + 1), s + 4 * P);
	assert_int_equal(km_vma_find(mm, s)->end, s + 4 * P);
	assert_int_equal(mm->committed, 5 * P);
	/* Right up to it: fine. */
	assert_int_equal(km_mm_brk(mm, other), other);
	assert_int_equal(km_vma_find(mm, s)->end, other);
	/* Shrink back to the start: no heap VMA left. */
	assert_int_equal(km_mm_brk(mm, s), s);
	assert_null(km_vma_find(mm, s));
	assert_int_equal(mm->nvmas, 1);
	assert_int_equal(mm->committed, P);
	/* Past the memory limit: refused. */
	assert_int_equal(km_mm_brk(mm, s + LIMIT), s);
	assert_int_equal(mm->committed, P);
}

static void test_brk_without_start(void **state)
{
	km_mm_t *mm = *state;
	/* No heap was set up: brk reports the (zero) break and maps nothing. */
	assert_int_equal(km_mm_brk(mm, 0x1000000), 0);
	assert_int_equal(mm->nvmas, 0);
}

/* --- guest memory access --- */

static void test_gva_to_iov(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	struct iovec iov[4];
	/* Two adjacent VMAs whose memory is not adjacent on the host: higher one mapped first. */
	assert_int_equal(map_anon(mm, x + 2 * P, 2 * P, RW, MAP_FIXED), x + 2 * P);
	assert_int_equal(map_anon(mm, x, 2 * P, PROT_READ, MAP_FIXED), x);
	uint8_t *h0 = km_gva_to_hva(mm, x, 2 * P, 0), *h1 = km_gva_to_hva(mm, x + 2 * P, 2 * P, 0);
	assert_non_null(h0);
	assert_non_null(h1);
	assert_ptr_not_equal(h0 + 2 * P, h1);
	uint64_t start = x + P + 100, len = 2 * P - 150;
	assert_int_equal(km_gva_to_iov(mm, start, len, KM_ACC_READ, iov, 4), 2);
	assert_ptr_equal(iov[0].iov_base, h0 + P + 100);
	assert_int_equal(iov[0].iov_len, P - 100);
	assert_ptr_equal(iov[1].iov_base, h1);
	assert_int_equal(iov[1].iov_len, P - 50);
	/* Not enough iovecs: EINVAL; not contiguous on the host: no single pointer. */
	assert_int_equal(km_gva_to_iov(mm, start, len, KM_ACC_READ, iov, 1), -EINVAL);
	assert_null(km_gva_to_hva(mm, start, len, KM_ACC_READ));
	/* Write access fails on the read-only part. */
	assert_int_equal(km_gva_to_iov(mm, start, len, KM_ACC_WRITE, iov, 4), -EFAULT);
	assert_int_equal(km_gva_to_iov(mm, x + 2 * P, P, KM_ACC_WRITE, iov, 4), 1);
	/* Running past the end, or starting before the first mapping. */
	assert_int_equal(km_gva_to_iov(mm, x + 3 * P, P + 1, KM_ACC_READ, iov, 4), -EFAULT);
	assert_int_equal(km_gva_to_iov(mm, x - 1, 2, KM_ACC_READ, iov, 4), -EFAULT);
	assert_int_equal(km_gva_to_iov(mm, ~0ul - 10, 20, KM_ACC_READ, iov, 4), -EFAULT);
	/* Zero length: nothing needed. */
	assert_int_equal(km_gva_to_iov(mm, x, 0, KM_ACC_READ, iov, 4), 0);
	/* Copies across the two VMAs land in the right place. */
	char msg[] = "across-the-boundary";
	uint64_t at = x + 2 * P - 6;
	memcpy(h0 + 2 * P - 6, msg, 6);
	memcpy(h1, msg + 6, sizeof(msg) - 6);
	char back[sizeof(msg)];
	assert_int_equal(km_copy_from_guest(mm, back, at, sizeof(msg)), 0);
	assert_string_equal(back, msg);

	/* A VMA split by mprotect stays contiguous on the host: one iovec. */
	uint64_t y = 0x310000000ul;
	assert_int_equal(map_anon(mm, y, 4 * P, RW, MAP_FIXED), y);
	assert_int_equal(km_mm_protect(mm, y + 2 * P, 2 * P, PROT_READ), 0);
	assert_int_equal(km_gva_to_iov(mm, y + 10, 3 * P, KM_ACC_READ, iov, 4), 1);
	assert_ptr_equal(iov[0].iov_base, (uint8_t *)km_gva_to_hva(mm, y, 0, 0) + 10);
	assert_int_equal(iov[0].iov_len, 3 * P);
}

static void test_copy(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, P, RW, MAP_FIXED), x);
	assert_int_equal(map_anon(mm, x + P, P, PROT_READ, MAP_FIXED), x + P);
	assert_int_equal(map_anon(mm, x + 2 * P, P, PROT_NONE, MAP_FIXED), x + 2 * P);
	fill(mm, x + P, P, 0x42);
	char buf[16] = "0123456789abcde";
	/* Into read/write memory: the bytes arrive. */
	assert_int_equal(km_copy_to_guest(mm, x + 8, buf, sizeof(buf)), 0);
	assert_memory_equal(km_gva_to_hva(mm, x + 8, sizeof(buf), KM_ACC_READ), buf, sizeof(buf));
	/* Into read-only memory: EFAULT, memory unchanged. */
	assert_int_equal(km_copy_to_guest(mm, x + P + 8, buf, sizeof(buf)), -EFAULT);
	expect_bytes(mm, x + P, P, 0x42);
	/* Straddling into it: EFAULT too. */
	assert_int_equal(km_copy_to_guest(mm, x + P - 4, buf, sizeof(buf)), -EFAULT);
	/* Reading read-only memory is fine, PROT_NONE and unmapped memory are not. */
	char in[16];
	assert_int_equal(km_copy_from_guest(mm, in, x + P + 100, sizeof(in)), 0);
	for (size_t i = 0; i < sizeof(in); i++)
		assert_int_equal((uint8_t)in[i], 0x42);
	assert_int_equal(km_copy_from_guest(mm, in, x + 2 * P, 1), -EFAULT);
	assert_int_equal(km_copy_from_guest(mm, in, x + 2 * P - 8, sizeof(in)), -EFAULT);
	assert_int_equal(km_copy_from_guest(mm, in, x + 3 * P, 1), -EFAULT);
	assert_int_equal(km_copy_from_guest(mm, in, 0x100000000ul, 1), -EFAULT);
	assert_int_equal(km_copy_to_guest(mm, 0x100000000ul, buf, 1), -EFAULT);
	assert_null(km_gva_to_hva(mm, x + 2 * P, 0, KM_ACC_READ));
	assert_null(km_gva_to_hva(mm, x + P, 0, KM_ACC_WRITE));
	assert_non_null(km_gva_to_hva(mm, x + P, 0, KM_ACC_READ));
}

/* --- madvise(MADV_DONTNEED) --- */

static void test_dontneed(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 3 * P, RW, MAP_FIXED), x);
	fill_pages(mm, x, 3, 'd');
	assert_int_equal(km_mm_dontneed(mm, x + P, P), 0);
	expect_pages(mm, x, 1, 'd');
	expect_bytes(mm, x + P, P, 0);
	expect_pages(mm, x + 2 * P, 1, 'd' + 2);
	/* The mapping is still there and usable. */
	assert_int_equal(mm->nvmas, 1);
	expect_pt(mm, x, 3 * P, true);
	fill(mm, x + P, P, 0x31);
	expect_bytes(mm, x + P, P, 0x31);
	/* Unmapped, unaligned. */
	assert_int_equal(km_mm_dontneed(mm, x + 2 * P, 2 * P), -ENOMEM);
	assert_int_equal(km_mm_dontneed(mm, x + 1, P), -EINVAL);
	expect_pages(mm, x + 2 * P, 1, 'd' + 2);
}

/* --- file mappings --- */

static int make_file(char *path, size_t npages)
{
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	char page[P];
	for (size_t i = 0; i < npages; i++) {
		memset(page, 'A' + (int)i, P);
		assert_int_equal(write(fd, page, P), (ssize_t)P);
	}
	return fd;
}

static void test_file_private(void **state)
{
	km_mm_t *mm = *state;
	char path[] = "/tmp/km-test-mm-XXXXXX";
	int fd = make_file(path, 3);
	uint64_t x = 0x300000000ul;
	assert_int_equal(km_mm_map(mm, x, 3 * P, RW, MAP_PRIVATE | MAP_FIXED, fd, 0, KM_VMA_FILE, "/some/file"), x);
	expect_pages(mm, x, 3, 'A');
	assert_int_equal(mm->vmas[0].kind, KM_VMA_FILE);
	assert_string_equal(mm->vmas[0].path, "/some/file");
	/* Private: writes stay in the guest. */
	fill(mm, x, P, 'Q');
	char c;
	assert_int_equal(pread(fd, &c, 1, 0), 1);
	assert_int_equal(c, 'A');
	/* MADV_DONTNEED on a private file page brings back the file's contents. */
	assert_int_equal(km_mm_dontneed(mm, x, P), 0);
	expect_pages(mm, x, 1, 'A');
	/* Splitting keeps the file offset and path of the right piece. */
	assert_int_equal(map_anon(mm, x + P, P, RW, MAP_FIXED), x + P);
	assert_int_equal(mm->nvmas, 3);
	assert_int_equal(mm->vmas[2].start, x + 2 * P);
	assert_int_equal(mm->vmas[2].offset, 2 * P);
	assert_int_equal(mm->vmas[2].kind, KM_VMA_FILE);
	assert_string_equal(mm->vmas[2].path, "/some/file");
	assert_ptr_not_equal(mm->vmas[2].path, mm->vmas[0].path);
	expect_pages(mm, x + 2 * P, 1, 'C');
	/* Mapping at a file offset. */
	int64_t y = km_mm_map(mm, 0, P, PROT_READ, MAP_PRIVATE, fd, P, KM_VMA_FILE, NULL);
	assert_true(y > 0);
	expect_pages(mm, y, 1, 'B');
	close(fd);
}

static void test_file_shared(void **state)
{
	km_mm_t *mm = *state;
	char path[] = "/tmp/km-test-mm-XXXXXX";
	int fd = make_file(path, 2);
	int64_t x = km_mm_map(mm, 0, 2 * P, RW, MAP_SHARED, fd, 0, KM_VMA_FILE, NULL);
	assert_true(x > 0);
	/* Shared: a guest write reaches the file. */
	char c = '!';
	assert_int_equal(km_copy_to_guest(mm, x + P + 7, &c, 1), 0);
	char r;
	assert_int_equal(pread(fd, &r, 1, P + 7), 1);
	assert_int_equal(r, '!');
	close(fd);
	/* A read-only fd cannot back a writable shared mapping (the host refuses). */
	char path2[] = "/tmp/km-test-mm-XXXXXX";
	int wfd = make_file(path2, 1);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", wfd);
	int rfd = open(proc, O_RDONLY);
	assert_true(rfd >= 0);
	close(wfd);
	size_t before = mm->nvmas;
	assert_int_equal(km_mm_map(mm, 0, P, RW, MAP_SHARED, rfd, 0, KM_VMA_FILE, NULL), -EACCES);
	assert_int_equal(mm->nvmas, before);
	/* Read-only is fine; mprotect to writable is refused by the host, nothing changes. */
	int64_t y = km_mm_map(mm, 0, P, PROT_READ, MAP_SHARED, rfd, 0, KM_VMA_FILE, NULL);
	assert_true(y > 0);
	expect_bytes(mm, y, P, 'A');
	assert_int_equal(km_mm_protect(mm, y, P, RW), -EACCES);
	assert_int_equal(km_vma_find(mm, y)->prot, PROT_READ);
	close(rfd);
}

/* --- KVM memory slots, registered lazily (km_mm_attach / km_phys_make_present) --- */

typedef struct slot_log {
	int n;
	int slot[16];
	uint64_t gpa[16], size[16];
	void *host[16];
	int fail_slot; /* this slot number fails (with EEXIST), -1: none */
} slot_log_t;

static int record_slot(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host)
{
	slot_log_t *l = ctx;
	if (slot == l->fail_slot) {
		errno = EEXIST;
		return -1;
	}
	if (l->n < 16) {
		l->slot[l->n] = slot;
		l->gpa[l->n] = gpa;
		l->size[l->n] = size;
		l->host[l->n] = host;
	}
	l->n++;
	return 0;
}

static void test_slots(void **state)
{
	km_mm_t *mm = *state;
	slot_log_t log = {.fail_slot = -1};
	km_err_t *err = NULL;
	assert_int_equal(km_mm_attach(mm, record_slot, &log, &err), 0);
	/* Slot 0: the runtime and page tables, [0, user_gpa). */
	assert_int_equal(log.n, 1);
	assert_int_equal(log.slot[0], 0);
	assert_int_equal(log.gpa[0], 0);
	assert_int_equal(log.size[0], mm->user_gpa);
	assert_ptr_equal(log.host[0], mm->host);
	/* The first mapping registers the chunk its memory is in, once. */
	int64_t a = map_anon(mm, 0, 4 * P, RW, 0);
	assert_true(a > 0);
	uint64_t gpa = km_vma_find(mm, a)->gpa;
	uint64_t chunk = (gpa - mm->user_gpa) / KM_SLOT_CHUNK;
	assert_int_equal(log.n, 2);
	assert_int_equal(log.slot[1], 1 + (int)chunk);
	assert_int_equal(log.gpa[1], mm->user_gpa + chunk * KM_SLOT_CHUNK);
	assert_int_equal(log.size[1], KM_SLOT_CHUNK);
	assert_ptr_equal(log.host[1], mm->host + log.gpa[1]);
	assert_true(map_anon(mm, 0, P, RW, 0) > 0);
	km_mm_set_brk_start(mm, 0x1000000);
	assert_int_equal(km_mm_brk(mm, 0x1000000 + P), 0x1000000 + P);
	assert_int_equal(log.n, 2);
	/* A range crossing into the next chunk registers only that one. */
	uint64_t edge = mm->user_gpa + KM_SLOT_CHUNK - P;
	assert_int_equal(km_phys_make_present(mm, edge, 2 * P), 0);
	assert_int_equal(log.n, 3);
	assert_int_equal(log.slot[2], 2);
	assert_int_equal(log.gpa[2], mm->user_gpa + KM_SLOT_CHUNK);
	/* The last chunk ends at gpa_size. */
	assert_int_equal(km_phys_make_present(mm, mm->gpa_size - P, P), 0);
	assert_int_equal(log.n, 4);
	assert_int_equal(log.gpa[3] + log.size[3], mm->gpa_size);
	assert_int_equal(km_phys_make_present(mm, mm->gpa_size - 2 * P, 2 * P), 0);
	assert_int_equal(km_phys_make_present(mm, edge, 0), 0);
	assert_int_equal(log.n, 4);
}

static void test_slot_failure(void **state)
{
	km_mm_t *mm = *state;
	slot_log_t log = {.fail_slot = 1};
	km_err_t *err = NULL;
	assert_int_equal(km_mm_attach(mm, record_slot, &log, &err), 0);
	/* KVM refusing the memory: the mapping fails with ENOMEM and leaves nothing behind. */
	assert_int_equal(map_anon(mm, 0, 4 * P, RW, 0), -ENOMEM);
	assert_int_equal(map_anon(mm, 0x300000000ul, 4 * P, RW, MAP_FIXED), -ENOMEM);
	assert_int_equal(mm->nvmas, 0);
	assert_int_equal(mm->committed, 0);
	assert_int_equal(mm->nfree, 1);
	assert_int_equal(mm->free[0].start, mm->user_gpa);
	expect_pt(mm, 0x300000000ul, 4 * P, false);
	/* Once it accepts, the same mapping works. */
	log.fail_slot = -1;
	assert_int_equal(map_anon(mm, 0x300000000ul, 4 * P, RW, MAP_FIXED), 0x300000000ul);
	assert_int_equal(mm->committed, 4 * P);
}

static void test_attach_failure(void **state)
{
	km_mm_t *mm = *state;
	slot_log_t log = {.fail_slot = 0};
	km_err_t *err = NULL;
	assert_int_equal(km_mm_attach(mm, record_slot, &log, &err), -1);
	assert_non_null(err);
	assert_int_equal(err->errnum, EEXIST);
	assert_non_null(strstr(err->msg, "runtime memory"));
	assert_non_null(strstr(err->msg, strerror(EEXIST)));
	km_err_free(&err);
}

/* Regression: Linux checks MAP_FIXED_NOREPLACE whether or not MAP_FIXED is also set, so
 * MAP_FIXED | MAP_FIXED_NOREPLACE over an existing mapping fails with EEXIST; km_mm_map used to
 * check only when MAP_FIXED was absent and replaced the mapping. */
static void test_map_fixed_and_noreplace(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 2 * P, RW, MAP_FIXED), x);
	fill(mm, x, 2 * P, 0x6b);
	assert_int_equal(map_anon(mm, x + P, 2 * P, PROT_READ, MAP_FIXED | MAP_FIXED_NOREPLACE), -EEXIST);
	assert_int_equal(mm->nvmas, 1);
	expect_vma(mm, 0, x, x + 2 * P, RW);
	expect_bytes(mm, x, 2 * P, 0x6b);
}

/* Regression: Linux's mprotect rounds len up to a page first and fails with ENOMEM when start +
 * len then wraps (end <= start). km_mm_protect used to check for wrap-around before rounding: a
 * len that wraps only once rounded (x + (~0 - x) is ~0; rounded up it is 0) made fully_mapped()
 * loop over nothing and the call "succeeded" with nothing changed; a len that wraps before
 * rounding gave EINVAL instead of ENOMEM. */
static void test_protect_wrapping_range(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, P, RW, MAP_FIXED), x);
	assert_int_equal(km_mm_protect(mm, x, ~0ul - x, PROT_READ), -ENOMEM);
	assert_int_equal(mm->vmas[0].prot, RW);
	assert_int_equal(km_mm_protect(mm, x, ~0ul, PROT_READ), -ENOMEM);
}

/* BUG: carve() (munmap, MAP_FIXED replacement, mremap shrink, brk shrink) ignores the result of
 * km_pt_unmap(). Unmapping part of a 2 MiB page needs a page-table page to split it; when the
 * table pool is used up (a guest can do that with 4 KiB mappings 2 MiB apart: ~2,500 of them
 * under a 64 MiB limit), km_pt_unmap() fails, yet the VMA is removed, its memory released to the
 * allocator and munmap returns 0: the page stays accessible to the guest through the old
 * translation, aliasing whatever that memory is given to next. Either the unmap fails and
 * nothing changes, or the translation must be gone. */
static void test_unmap_with_pool_exhausted(void **state)
{
	km_mm_t *mm = *state;
	uint64_t h = 0x40000000ul;
	assert_int_equal(map_anon(mm, h, M2, RW, MAP_FIXED), h);
	uint64_t fl;
	assert_int_equal(km_pt_walk(&mm->pt, h + P, &fl), mm->vmas[0].gpa + P);
	assert_int_equal(fl & PTE_PS, PTE_PS);
	/* Use up the page-table pool. */
	int64_t rc = 0;
	int n = 0;
	for (uint64_t a = 0x100000000ul; n < 100000; a += M2, n++)
		if ((rc = map_anon(mm, a, P, RW, MAP_FIXED)) < 0)
			break;
	assert_int_equal(rc, -ENOMEM);
	assert_true(mm->committed < LIMIT); /* the pool ran out, not the memory limit */
	/* Unmap one 4 KiB page of the 2 MiB page. */
	int u = km_mm_unmap(mm, h + P, P);
	km_vma_t *v = km_vma_find(mm, h + P);
	int64_t gpa = km_pt_walk(&mm->pt, h + P, NULL);
	if (u == 0) {
		assert_null(v);
		if (gpa != -1)
			fail_msg("munmap returned 0 but %#lx still translates to %#lx", h + P, (unsigned long)gpa);
	} else {
		assert_int_equal(u, -ENOMEM);
		assert_non_null(v);
		assert_int_equal(gpa, v->gpa + (h + P - v->start));
	}
}

/* BUG: km_mm_remap rounds old_len up to pages and then checks old + old_len > vma end, which a
 * wrapping sum passes: mremap(x, ~0 - x, P) (old_len rounds to 2^64 - x, so old + old_len is 0)
 * takes the shrink path with carve(x + P, 0), an empty range, and returns x: "shrunk", yet the
 * second page is still mapped (and the VMA was split). Linux fails with EINVAL (it unmaps
 * [x + P, x + old_len), which leaves user space). Same family as the mprotect/munmap/madvise
 * wrap-arounds fixed in km_mm. */
static void test_remap_wrapping_old_len(void **state)
{
	km_mm_t *mm = *state;
	uint64_t x = 0x300000000ul;
	assert_int_equal(map_anon(mm, x, 2 * P, RW, MAP_FIXED), x);
	fill_pages(mm, x, 2, 'w');
	assert_int_equal(km_mm_remap(mm, x, ~0ul - x, P, 0, 0), -EINVAL);
	assert_int_equal(km_mm_remap(mm, x, ~0ul - x, P, MREMAP_MAYMOVE, 0), -EINVAL);
	assert_int_equal(mm->committed, 2 * P);
	expect_pages(mm, x, 2, 'w');
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_init),
	    cmocka_unit_test(test_init_phys_bits_too_small),
	    T(test_map_anon_no_hint),
	    T(test_map_hint),
	    T(test_map_32bit),
	    T(test_map_bad_args),
	    T(test_map_fixed_splits),
	    T(test_map_fixed_noreplace),
	    T(test_map_huge_pages),
	    T(test_freed_memory_reads_zero),
	    T(test_unmap),
	    T(test_protect),
	    T(test_protect_hole),
	    T(test_remap_shrink),
	    T(test_remap_grow_in_place),
	    T(test_remap_move),
	    T(test_remap_errors),
	    T(test_limit),
	    T(test_brk),
	    T(test_brk_without_start),
	    T(test_gva_to_iov),
	    T(test_copy),
	    T(test_dontneed),
	    T(test_file_private),
	    T(test_file_shared),
	    T(test_slots),
	    T(test_slot_failure),
	    T(test_attach_failure),
	    T(test_map_fixed_and_noreplace),
	    T(test_protect_wrapping_range),
	    T(test_unmap_with_pool_exhausted),
	    T(test_remap_wrapping_old_len),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
