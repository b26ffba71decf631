/*
 * Unit tests for km_pagetable.c: 4-level x86-64 guest page tables built in a pool of host memory.
 * No KVM needed: the tables are walked with km_pt_walk, and the guest-physical addresses they
 * point to are only numbers (nothing behind them is touched).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "km_pagetable.h"

/* PTE bits as the x86-64 architecture defines them (independent of km's own macros). */
#define P (1ull << 0)
#define RW (1ull << 1)
#define US (1ull << 2)
#define ACC (1ull << 5)
#define DIRTY (1ull << 6)
#define PS (1ull << 7)
#define NX (1ull << 63)

#define K4 0x1000ull
#define M2 0x200000ull
#define G1 0x40000000ull

/* Pool placement: guest-physical 1 MiB onwards (0 is not a usable table address). */
#define POOL_GPA 0x100000ull
#define BIG_POOL (256 * K4)

typedef struct fixture {
	uint8_t *host;
	size_t host_size;
	km_pt_t pt;
} fixture_t;

static fixture_t *fixture_new(uint64_t pool_size)
{
	fixture_t *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->host_size = POOL_GPA + pool_size;
	f->host = mmap(NULL, f->host_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	assert_true(f->host != MAP_FAILED);
	assert_int_equal(km_pt_init(&f->pt, f->host, POOL_GPA, pool_size), 0);
	return f;
}

static void fixture_free(fixture_t *f)
{
	free(f->pt.free_pages);
	munmap(f->host, f->host_size);
	free(f);
}

static int setup_big(void **state)
{
	*state = fixture_new(BIG_POOL);
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

/* Walks gva; returns the translation, flags in *fl (set to 0xdead when not present). */
static int64_t walk(fixture_t *f, uint64_t gva, uint64_t *fl)
{
	*fl = 0xdead;
	return km_pt_walk(&f->pt, gva, fl);
}

/* Flags of a 4 KiB leaf for the given access bits. */
static uint64_t small_flags(uint64_t extra)
{
	return P | ACC | DIRTY | extra;
}

static void test_init(void **state)
{
	fixture_t *f = *state;
	/* The PML4 is the pool's first page, page aligned, inside the pool. */
	assert_int_equal(f->pt.cr3, POOL_GPA);
	assert_int_equal(f->pt.pool_next, POOL_GPA + K4);
	/* An empty table translates nothing. */
	uint64_t fl;
	assert_int_equal(walk(f, 0, &fl), -1);
	assert_int_equal(walk(f, 0x400000, &fl), -1);
	assert_int_equal(walk(f, 0x7ffffffff000ull, &fl), -1);
	/* NULL flags pointer is accepted. */
	assert_int_equal(km_pt_walk(&f->pt, 0x400000, NULL), -1);
}

static void test_init_no_pool(void **state)
{
	(void)state;
	km_pt_t pt;
	uint8_t host[8192];
	/* No room for even the PML4. */
	assert_int_equal(km_pt_init(&pt, host, 4096, 0), -ENOMEM);
	assert_int_equal(km_pt_init(&pt, host, 4096, 4095), -ENOMEM);
	free(pt.free_pages);
}

static void test_map_4k(void **state)
{
	fixture_t *f = *state;
	uint64_t gva = 0x401000, gpa = 0x12345000, fl;
	assert_int_equal(km_pt_map(&f->pt, gva, gpa, 3 * K4, PROT_READ | PROT_WRITE), 0);
	for (uint64_t off = 0; off < 3 * K4; off += K4) {
		assert_int_equal(walk(f, gva + off, &fl), gpa + off);
		assert_int_equal(fl, small_flags(RW | US | NX));
	}
	/* The offset inside the page carries over. */
	assert_int_equal(walk(f, gva + K4 + 0x123, &fl), gpa + K4 + 0x123);
	assert_int_equal(walk(f, gva + 3 * K4 - 1, &fl), gpa + 3 * K4 - 1);
	/* Neighbours are untouched. */
	assert_int_equal(walk(f, gva - K4, &fl), -1);
	assert_int_equal(fl, 0xdead);
	assert_int_equal(walk(f, gva + 3 * K4, &fl), -1);
	/* Same 4 KiB slot in the next 2 MiB, 1 GiB and 512 GiB regions: not mapped. */
	assert_int_equal(walk(f, gva + M2, &fl), -1);
	assert_int_equal(walk(f, gva + G1, &fl), -1);
	assert_int_equal(walk(f, gva + (512 * G1), &fl), -1);
}

static void test_map_huge(void **state)
{
	fixture_t *f = *state;
	uint64_t gva = 0x40000000, gpa = 0x80000000, fl;
	assert_int_equal(km_pt_map(&f->pt, gva, gpa, 2 * M2, PROT_READ | PROT_EXEC), 0);
	/* Two 2 MiB pages: present, user, read-only, executable, PS set. */
	assert_int_equal(walk(f, gva, &fl), gpa);
	assert_int_equal(fl, P | US | ACC | DIRTY | PS);
	assert_int_equal(walk(f, gva + M2 - 1, &fl), gpa + M2 - 1);
	assert_int_equal(walk(f, gva + M2 + 0x12345, &fl), gpa + M2 + 0x12345);
	assert_int_equal(fl, P | US | ACC | DIRTY | PS);
	assert_int_equal(walk(f, gva + 2 * M2, &fl), -1);
	assert_int_equal(walk(f, gva - 1, &fl), -1);
	/* Huge pages need no 4 KiB table: PML4 + PDPT + PD only. */
	assert_int_equal(f->pt.pool_next, POOL_GPA + 3 * K4);
}

static void test_huge_needs_aligned_gpa(void **state)
{
	fixture_t *f = *state;
	uint64_t gva = 0x40000000, gpa = 0x80001000, fl;
	/* A whole aligned 2 MiB of virtual space onto an unaligned physical range: 4 KiB pages. */
	assert_int_equal(km_pt_map(&f->pt, gva, gpa, M2, PROT_READ), 0);
	for (uint64_t off = 0; off < M2; off += 0x7f000) {
		assert_int_equal(walk(f, gva + off, &fl), gpa + off);
		assert_int_equal(fl, small_flags(US | NX));
	}
	assert_int_equal(walk(f, gva + M2 - K4, &fl), gpa + M2 - K4);
	assert_int_equal(fl & PS, 0);
}

static void test_map_mixed_range(void **state)
{
	fixture_t *f = *state;
	/* [2M-4K, 4M+4K): one small page, one huge page, one small page. */
	uint64_t gva = M2 - K4, len = M2 + 2 * K4, gpa = 0x3ff000, fl;
	assert_int_equal(km_pt_map(&f->pt, gva, gpa, len, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(walk(f, gva, &fl), gpa);
	assert_int_equal(fl, small_flags(RW | US | NX));
	assert_int_equal(walk(f, M2, &fl), 0x400000);
	assert_int_equal(fl, P | RW | US | ACC | DIRTY | PS | NX);
	assert_int_equal(walk(f, 2 * M2 - 1, &fl), 0x5fffff);
	assert_int_equal(walk(f, 2 * M2, &fl), 0x600000);
	assert_int_equal(fl, small_flags(RW | US | NX));
	assert_int_equal(walk(f, 2 * M2 + K4, &fl), -1);
	assert_int_equal(walk(f, gva - K4, &fl), -1);
}

static void test_prot_bits(void **state)
{
	fixture_t *f = *state;
	static const struct {
		int prot;
		uint64_t want; /* access bits beyond P|A|D */
	} cases[] = {
	    {PROT_READ, US | NX},
	    {PROT_READ | PROT_WRITE, RW | US | NX},
	    {PROT_READ | PROT_EXEC, US},
	    {PROT_READ | PROT_WRITE | PROT_EXEC, RW | US},
	    {PROT_WRITE, RW | US | NX}, /* x86 cannot have write without read */
	    {PROT_EXEC, US},
	    {PROT_READ | KM_PROT_KERNEL, NX},
	    {PROT_READ | PROT_WRITE | KM_PROT_KERNEL, RW | NX},
	    {PROT_READ | PROT_EXEC | KM_PROT_KERNEL, 0},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t gva = 0x10000000 + i * K4, gpa = 0x20000000 + i * K4, fl;
		assert_int_equal(km_pt_map(&f->pt, gva, gpa, K4, cases[i].prot), 0);
		assert_int_equal(walk(f, gva, &fl), gpa);
		assert_int_equal(fl, small_flags(cases[i].want));
	}
	/* The same on 2 MiB pages: kernel pages clear the user bit (bit 2). */
	uint64_t fl;
	assert_int_equal(km_pt_map(&f->pt, 0x40000000, 0x40000000, M2, PROT_READ | PROT_EXEC | KM_PROT_KERNEL), 0);
	assert_int_equal(walk(f, 0x40000000, &fl), 0x40000000);
	assert_int_equal(fl, P | ACC | DIRTY | PS);
	assert_int_equal(fl & (1ull << 2), 0);
	assert_int_equal(km_pt_map(&f->pt, 0x40200000, 0x40200000, M2, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(walk(f, 0x40200000, &fl), 0x40200000);
	assert_int_equal(fl, P | RW | US | ACC | DIRTY | PS | NX);
}

static void test_prot_none_not_present(void **state)
{
	fixture_t *f = *state;
	uint64_t fl;
	/* Mapping PROT_NONE from scratch creates nothing. */
	assert_int_equal(km_pt_map(&f->pt, 0x400000, 0x400000, 4 * K4, PROT_NONE), 0);
	assert_int_equal(walk(f, 0x400000, &fl), -1);
	assert_int_equal(walk(f, 0x403000, &fl), -1);
	/* PROT_NONE over present 4 KiB pages removes exactly those. */
	assert_int_equal(km_pt_map(&f->pt, 0x400000, 0x800000, 4 * K4, PROT_READ), 0);
	assert_int_equal(km_pt_map(&f->pt, 0x401000, 0x801000, 2 * K4, PROT_NONE), 0);
	assert_int_equal(walk(f, 0x400000, &fl), 0x800000);
	assert_int_equal(walk(f, 0x401000, &fl), -1);
	assert_int_equal(walk(f, 0x402000, &fl), -1);
	assert_int_equal(walk(f, 0x403000, &fl), 0x803000);
	/* PROT_NONE over a whole 2 MiB page. */
	assert_int_equal(km_pt_map(&f->pt, 0x40000000, 0x40000000, M2, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(km_pt_map(&f->pt, 0x40000000, 0x40000000, M2, PROT_NONE), 0);
	assert_int_equal(walk(f, 0x40000000, &fl), -1);
	assert_int_equal(walk(f, 0x401ff000, &fl), -1);
	/* PROT_NONE over part of a 2 MiB page: split, the rest stays. */
	assert_int_equal(km_pt_map(&f->pt, 0x40200000, 0x40200000, M2, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(km_pt_map(&f->pt, 0x40300000, 0x40300000, K4, PROT_NONE), 0);
	assert_int_equal(walk(f, 0x40300000, &fl), -1);
	assert_int_equal(walk(f, 0x402ff000, &fl), 0x402ff000);
	assert_int_equal(fl, small_flags(RW | US | NX));
	assert_int_equal(walk(f, 0x40301000, &fl), 0x40301000);
}

static void test_split_huge_keeps_neighbours(void **state)
{
	fixture_t *f = *state;
	uint64_t gva = 0x40000000, gpa = 0x80000000, fl;
	assert_int_equal(km_pt_map(&f->pt, gva, gpa, M2, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(walk(f, gva, &fl), gpa);
	assert_int_equal(fl & PS, PS);
	/* Remap one page in the middle elsewhere, read-only and executable. */
	uint64_t mid = gva + 0x100000;
	assert_int_equal(km_pt_map(&f->pt, mid, 0x90000000, K4, PROT_READ | PROT_EXEC), 0);
	assert_int_equal(walk(f, mid, &fl), 0x90000000);
	assert_int_equal(fl, small_flags(US));
	assert_int_equal(walk(f, mid + 0x10, &fl), 0x90000010);
	/* Every other page keeps its translation and flags, now as a 4 KiB page. */
	for (uint64_t off = 0; off < M2; off += K4) {
		if (gva + off == mid)
			continue;
		assert_int_equal(walk(f, gva + off + 0x44, &fl), gpa + off + 0x44);
		assert_int_equal(fl, small_flags(RW | US | NX));
	}
	/* Unmapping a page of another huge page splits it the same way. */
	assert_int_equal(km_pt_map(&f->pt, gva + M2, gpa + M2, M2, PROT_READ), 0);
	assert_int_equal(km_pt_unmap(&f->pt, gva + M2, K4), 0);
	assert_int_equal(walk(f, gva + M2, &fl), -1);
	assert_int_equal(walk(f, gva + M2 + K4, &fl), gpa + M2 + K4);
	assert_int_equal(fl, small_flags(US | NX));
	assert_int_equal(walk(f, gva + 2 * M2 - K4, &fl), gpa + 2 * M2 - K4);
	assert_int_equal(fl, small_flags(US | NX));
}

static void test_huge_replaces_table(void **state)
{
	fixture_t *f = *state;
	uint64_t fl;
	/* 4 KiB pages first, then a huge mapping over the whole 2 MiB: the table goes away. */
	assert_int_equal(km_pt_map(&f->pt, 0x40000000, 0x1000000, 3 * K4, PROT_READ), 0);
	assert_int_equal(f->pt.nfree, 0);
	assert_int_equal(km_pt_map(&f->pt, 0x40000000, 0x2000000, M2, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(f->pt.nfree, 1);
	assert_int_equal(walk(f, 0x40001000, &fl), 0x2001000);
	assert_int_equal(fl, P | RW | US | ACC | DIRTY | PS | NX);
}

static void test_unmap(void **state)
{
	fixture_t *f = *state;
	uint64_t fl, used = f->pt.pool_next;
	/* Unmapping where nothing was ever mapped: harmless, allocates nothing. */
	assert_int_equal(km_pt_unmap(&f->pt, 0, 4 * G1), 0);
	assert_int_equal(km_pt_unmap(&f->pt, 0x7fff00000000ull, K4), 0);
	assert_int_equal(km_pt_unmap(&f->pt, M2 + K4, 3 * K4), 0);
	assert_int_equal(f->pt.pool_next, used);
	/* Unmap partially mapped ranges: only what is inside goes. */
	assert_int_equal(km_pt_map(&f->pt, 0x400000, 0x400000, 8 * K4, PROT_READ), 0);
	assert_int_equal(km_pt_unmap(&f->pt, 0x3fe000, 4 * K4), 0);
	assert_int_equal(walk(f, 0x400000, &fl), -1);
	assert_int_equal(walk(f, 0x401000, &fl), -1);
	assert_int_equal(walk(f, 0x402000, &fl), 0x402000);
	assert_int_equal(fl, small_flags(US | NX));
	/* Twice is fine. */
	assert_int_equal(km_pt_unmap(&f->pt, 0x3fe000, 4 * K4), 0);
	assert_int_equal(walk(f, 0x402000, &fl), 0x402000);
	/* An unmap of a huge range covering everything. */
	assert_int_equal(km_pt_map(&f->pt, 0x40000000, 0x40000000, 2 * M2, PROT_READ), 0);
	assert_int_equal(km_pt_unmap(&f->pt, 0, 2 * G1), 0);
	assert_int_equal(walk(f, 0x402000, &fl), -1);
	assert_int_equal(walk(f, 0x40000000, &fl), -1);
	assert_int_equal(walk(f, 0x40200000, &fl), -1);
	/* Mapping again after an unmap works. */
	assert_int_equal(km_pt_map(&f->pt, 0x402000, 0x777000, K4, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(walk(f, 0x402000, &fl), 0x777000);
	assert_int_equal(fl, small_flags(RW | US | NX));
}

static void test_upper_level_boundaries(void **state)
{
	fixture_t *f = *state;
	uint64_t fl;
	/* Crossing a 1 GiB (PDPT entry) and a 512 GiB (PML4 entry) boundary. */
	assert_int_equal(km_pt_map(&f->pt, G1 - K4, 0x5000000, 2 * K4, PROT_READ), 0);
	assert_int_equal(walk(f, G1 - K4, &fl), 0x5000000);
	assert_int_equal(walk(f, G1, &fl), 0x5001000);
	uint64_t b = 512 * G1;
	assert_int_equal(km_pt_map(&f->pt, b - K4, 0x6000000, 2 * K4, PROT_READ | PROT_WRITE), 0);
	assert_int_equal(walk(f, b - K4, &fl), 0x6000000);
	assert_int_equal(walk(f, b, &fl), 0x6001000);
	assert_int_equal(fl, small_flags(RW | US | NX));
	/* Near the top of the lower half (where km's runtime lives), with a high physical address. */
	uint64_t top = 0x7fffff000000ull, hgpa = 0x3fff00000000ull;
	assert_int_equal(km_pt_map(&f->pt, top, hgpa, 2 * M2, PROT_READ | PROT_EXEC | KM_PROT_KERNEL), 0);
	assert_int_equal(walk(f, top + M2 + 5, &fl), hgpa + M2 + 5);
	assert_int_equal(fl, P | ACC | DIRTY | PS);
	/* None of these leaked into the other half of their tables. */
	assert_int_equal(walk(f, 0, &fl), -1);
	assert_int_equal(walk(f, 2 * G1 - K4, &fl), -1);
}

/* Pool exhaustion with a pool of exactly four pages: PML4, PDPT, PD and one PT. */
static void test_pool_exhaustion(void **state)
{
	(void)state;
	fixture_t *f = fixture_new(4 * K4);
	uint64_t fl, r1 = 0x40000000, r2 = 0x40200000;
	assert_int_equal(km_pt_map(&f->pt, r1, 0x1000000, K4, PROT_READ), 0);
	assert_int_equal(f->pt.pool_next, POOL_GPA + 4 * K4);
	/* A 4 KiB page in another 2 MiB region needs a fifth page. */
	assert_int_equal(km_pt_map(&f->pt, r2, 0x2000000, K4, PROT_READ), -ENOMEM);
	/* A new PDPT/PD for another 1 GiB region too. */
	assert_int_equal(km_pt_map(&f->pt, 4 * G1, 0x2000000, M2, PROT_READ), -ENOMEM);
	/* A huge page needs no table. */
	assert_int_equal(km_pt_map(&f->pt, r2, 0x2000000, M2, PROT_READ | PROT_WRITE), 0);
	/* Splitting it needs one: ENOMEM, and the huge page is untouched. */
	assert_int_equal(km_pt_unmap(&f->pt, r2 + K4, K4), -ENOMEM);
	assert_int_equal(km_pt_map(&f->pt, r2 + K4, 0x3000000, K4, PROT_READ), -ENOMEM);
	assert_int_equal(walk(f, r2 + K4, &fl), 0x2001000);
	assert_int_equal(fl, P | RW | US | ACC | DIRTY | PS | NX);
	/* The first mapping still works after the failures. */
	assert_int_equal(walk(f, r1, &fl), 0x1000000);
	assert_int_equal(fl, small_flags(US | NX));
	fixture_free(f);
}

/* A table freed by a huge mapping is reused, and comes back empty. */
static void test_pool_reuse_is_zeroed(void **state)
{
	(void)state;
	fixture_t *f = fixture_new(4 * K4);
	uint64_t fl, r1 = 0x40000000, r2 = 0x40200000;
	assert_int_equal(km_pt_map(&f->pt, r1, 0x1000000, K4, PROT_READ), 0);
	assert_int_equal(km_pt_map(&f->pt, r1 + 5 * K4, 0x1005000, K4, PROT_READ | PROT_WRITE), 0);
	/* Replace region 1 by a huge page: its page table returns to the pool. */
	assert_int_equal(km_pt_map(&f->pt, r1, 0x4000000, M2, PROT_READ), 0);
	/* Region 2 gets that page as its table; slot 5 must not show region 1's old entry. */
	assert_int_equal(km_pt_map(&f->pt, r2, 0x2000000, K4, PROT_READ), 0);
	assert_int_equal(walk(f, r2, &fl), 0x2000000);
	assert_int_equal(walk(f, r2 + 5 * K4, &fl), -1);
	assert_int_equal(walk(f, r1 + 5 * K4, &fl), 0x4005000);
	assert_int_equal(fl, P | US | ACC | DIRTY | PS | NX);
	/* And the pool is exhausted again. */
	assert_int_equal(km_pt_map(&f->pt, r1 + 2 * M2, 0x6000000, K4, PROT_READ), -ENOMEM);
	fixture_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_init, setup_big, teardown),
	    cmocka_unit_test(test_init_no_pool),
	    cmocka_unit_test_setup_teardown(test_map_4k, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_map_huge, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_huge_needs_aligned_gpa, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_map_mixed_range, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_prot_bits, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_prot_none_not_present, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_split_huge_keeps_neighbours, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_huge_replaces_table, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_unmap, setup_big, teardown),
	    cmocka_unit_test_setup_teardown(test_upper_level_boundaries, setup_big, teardown),
	    cmocka_unit_test(test_pool_exhaustion),
	    cmocka_unit_test(test_pool_reuse_is_zeroed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
