/*
 * Unit tests for the huge-page advice on the program's host memory (km_physmem.c): every range of
 * the program's guest-physical memory stays advised MADV_HUGEPAGE, including ranges km has reset
 * to fresh memory (munmap, brk shrink), whose new host mapping would otherwise lose the advice.
 * The advice is read back from /proc/self/smaps (VmFlags "hg"). Needs no KVM.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "km_mm.h"
#include "km_mm_internal.h"

#define M2 (2ul << 20)
#define LIMIT (64ul << 20)
#define MMAP_BASE 0x7f0000000000ul

/* 1 if the host mapping holding `addr` is advised MADV_HUGEPAGE, 0 if not, -1 if not found. */
static int advised_huge(const void *addr)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	char line[512];
	int in = 0, found = -1;
	uintptr_t a = (uintptr_t)addr;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned long lo, hi;
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= lo && a < hi;
			continue;
		}
		if (in && strncmp(line, "VmFlags:", 8) == 0) {
			found = strstr(line, " hg") != NULL;
			break;
		}
	}
	fclose(f);
	return found;
}

static int setup(void **state)
{
	km_mm_t *mm = calloc(1, sizeof(*mm));
	km_err_t *err = NULL;
	if (mm == NULL || km_mm_init(mm, LIMIT, 46, &err) < 0)
		return -1;
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

static void test_fresh_memory_is_advised(void **state)
{
	km_mm_t *mm = *state;
	assert_int_equal(advised_huge(mm->host + mm->user_gpa), 1);
}

static void test_reset_keeps_advice(void **state)
{
	km_mm_t *mm = *state;
	uint64_t gpa = mm->user_gpa + 4 * M2;
	assert_int_equal(km_phys_reset(mm, gpa, 2 * M2), 0);
	assert_int_equal(advised_huge(mm->host + gpa), 1);
	assert_int_equal(advised_huge(mm->host + gpa + 2 * M2 - 1), 1);
}

/* What a program does: map, touch, unmap, map again at the same guest-physical memory. */
static void test_remapped_memory_is_advised(void **state)
{
	km_mm_t *mm = *state;
	int64_t a = km_mm_map(mm, 0, 8 * M2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0,
			      KM_VMA_ANON, NULL);
	assert_true(a > 0);
	uint8_t *h = km_gva_to_hva(mm, (uint64_t)a, 8 * M2, 0);
	assert_non_null(h);
	memset(h, 1, 8 * M2);
	assert_int_equal(km_mm_unmap(mm, (uint64_t)a, 8 * M2), 0);
	assert_int_equal(advised_huge(h), 1);
	int64_t b = km_mm_map(mm, 0, 8 * M2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0,
			      KM_VMA_ANON, NULL);
	assert_true(b > 0);
	uint8_t *g = km_gva_to_hva(mm, (uint64_t)b, 8 * M2, 0);
	assert_non_null(g);
	assert_int_equal(advised_huge(g), 1);
	assert_int_equal(g[0], 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_fresh_memory_is_advised, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reset_keeps_advice, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remapped_memory_is_advised, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
