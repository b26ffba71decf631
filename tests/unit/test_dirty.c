/*
 * Unit tests for the dirty tracker (km/mm/km_dirty.c): the bitmap helpers, and collects on a real
 * address space (km_mm_init needs no KVM) with KVM's dirty log faked per slot: translation from
 * guest-physical logs and marks to per-VMA page bitmaps, new intervals, given-back intervals,
 * slots added later, and the failures that must not lose a page.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "km_dirty_internal.h"
#include "km_mm.h"
#include "km_mm_internal.h"

#define P 4096ul
#define LIMIT (512ul << 20)
#define MMAP_BASE 0x7f0000000000ul
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)
#define RW (PROT_READ | PROT_WRITE)
#define MAXSLOTS 64
#define SLOT_WORDS (KM_SLOT_CHUNK / P / 64)

/* --- bitmaps --- */

static int bit(const uint64_t *b, uint64_t i)
{
	return (int)(b[i / 64] >> (i % 64) & 1);
}

static void test_bits_extract(void **state)
{
	(void)state;
	uint64_t src[4] = {0}, dst[3];
	uint64_t set[] = {0, 5, 63, 64, 100, 127, 128, 200, 255};
	for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		src[set[i] / 64] |= 1ull << (set[i] % 64);
	for (uint64_t off = 0; off < 130; off++) {
		for (uint64_t n = 1; off + n <= 256 && n <= 130; n += 7) {
			memset(dst, 0xaa, sizeof(dst));
			km_bits_extract(dst, src, off, n);
			for (uint64_t i = 0; i < (n + 63) / 64 * 64; i++)
				assert_int_equal(bit(dst, i), i < n ? bit(src, off + i) : 0);
		}
	}
}

static void test_bits_or_and_set(void **state)
{
	(void)state;
	uint64_t dst[4] = {0}, src[2] = {~0ull, 0x5};
	km_bits_or_at(dst, 60, src, 67); /* 64 ones, then 1, 0, 1 */
	for (uint64_t i = 0; i < 256; i++)
		assert_int_equal(bit(dst, i), (i >= 60 && i < 124) || i == 124 || i == 126);
	memset(dst, 0, sizeof(dst));
	src[1] = ~0ull;
	km_bits_or_at(dst, 3, src, 65); /* bits past n in src are not copied */
	for (uint64_t i = 0; i < 256; i++)
		assert_int_equal(bit(dst, i), i >= 3 && i < 68);
	memset(dst, 0, sizeof(dst));
	km_bits_set_range(dst, 62, 70);
	km_bits_set_range(dst, 200, 1);
	km_bits_set_range(dst, 10, 0);
	for (uint64_t i = 0; i < 256; i++)
		assert_int_equal(bit(dst, i), (i >= 62 && i < 132) || i == 200);
}

/* --- a fake KVM dirty log --- */

typedef struct fake_kvm {
	bool logging[MAXSLOTS];
	uint64_t *log[MAXSLOTS]; /* pages written since the last fetch, per slot */
	int refuse_log_on;       /* slot whose log_on fails (0: none) */
	int refuse_fetch;        /* slot whose fetch fails (0: none) */
} fake_kvm_t;

static int fake_log_on(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host)
{
	(void)gpa;
	(void)host;
	fake_kvm_t *k = ctx;
	assert_true(slot > 0 && slot < MAXSLOTS); /* slot 0 (runtime, page tables) is never logged */
	assert_int_equal(size, KM_SLOT_CHUNK);
	if (slot == k->refuse_log_on)
		return -EINVAL;
	k->logging[slot] = true;
	return 0;
}

static int fake_fetch(void *ctx, int slot, uint64_t *bitmap)
{
	fake_kvm_t *k = ctx;
	assert_true(slot > 0 && slot < MAXSLOTS);
	if (!k->logging[slot] || slot == k->refuse_fetch)
		return -ENOENT;
	memcpy(bitmap, k->log[slot], SLOT_WORDS * 8);
	memset(k->log[slot], 0, SLOT_WORDS * 8);
	return 0;
}

/* The guest stores to guest-physical page gpa (what KVM would log). */
static void guest_store(km_mm_t *mm, fake_kvm_t *k, uint64_t gva)
{
	km_vma_t *v = km_vma_find(mm, gva);
	assert_non_null(v);
	uint64_t gpa = v->gpa + (gva - v->start) - mm->user_gpa;
	int slot = (int)(1 + gpa / KM_SLOT_CHUNK);
	if (!k->logging[slot])
		return; /* KVM logs nothing for a slot without logging */
	uint64_t p = gpa % KM_SLOT_CHUNK / P;
	k->log[slot][p / 64] |= 1ull << (p % 64);
}

static int fake_register(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host)
{
	(void)ctx;
	(void)slot;
	(void)gpa;
	(void)size;
	(void)host;
	return 0;
}

typedef struct fixture {
	km_mm_t mm;
	fake_kvm_t kvm;
	km_dirty_ops_t ops;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	km_err_t *err = NULL;
	if (f == NULL || km_mm_init(&f->mm, LIMIT, 46, &err) < 0 ||
	    km_mm_attach(&f->mm, fake_register, NULL, &err) < 0) {
		fprintf(stderr, "setup: %s\n", err ? err->msg : "calloc");
		return -1;
	}
	f->mm.mmap_base = MMAP_BASE;
	for (int s = 0; s < MAXSLOTS; s++)
		if ((f->kvm.log[s] = calloc(SLOT_WORDS, 8)) == NULL)
			return -1;
	f->ops = (km_dirty_ops_t){fake_log_on, fake_fetch, &f->kvm};
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	km_mm_fini(&f->mm);
	for (int s = 0; s < MAXSLOTS; s++)
		free(f->kvm.log[s]);
	free(f);
	return 0;
}

static uint64_t map(km_mm_t *mm, uint64_t addr, uint64_t pages, int flags)
{
	int64_t a = km_mm_map(mm, addr, pages * P, RW, ANON | flags, -1, 0, KM_VMA_ANON, NULL);
	assert_true(a > 0);
	return (uint64_t)a;
}

static void start(fixture_t *f)
{
	km_err_t *err = NULL;
	assert_int_equal(km_dirty_start_mm(&f->mm, &f->ops, &err), 0);
}

static uint64_t **collect(fixture_t *f)
{
	uint64_t **holds = NULL;
	km_err_t *err = NULL;
	if (km_dirty_collect_mm(&f->mm, &holds, &err) < 0)
		fail_msg("collect: %s", err->msg);
	assert_non_null(holds);
	return holds;
}

/* The pages of the VMA holding gva that holds reports changed, as '0'/'1' from gva on. */
static void expect(fixture_t *f, uint64_t **holds, uint64_t gva, const char *want)
{
	km_mm_t *mm = &f->mm;
	size_t i = km_vma_index(mm, gva);
	assert_true(i < mm->nvmas && mm->vmas[i].start <= gva);
	uint64_t first = (gva - mm->vmas[i].start) / P;
	char got[256];
	size_t n = strlen(want);
	for (size_t p = 0; p < n; p++)
		got[p] = bit(holds[i], first + p) ? '1' : '0';
	got[n] = '\0';
	assert_string_equal(got, want);
}

static void test_off_until_started(void **state)
{
	fixture_t *f = *state;
	uint64_t a = map(&f->mm, 0, 4, 0);
	km_dirty_mark(&f->mm, a, P); /* a no-op while off */
	uint64_t **holds = (uint64_t **)1;
	km_err_t *err = NULL;
	assert_int_equal(km_dirty_collect_mm(&f->mm, &holds, &err), -1);
	assert_null(holds);
	km_err_free(&err);
	assert_null(f->mm.dirty);
}

static void test_log_and_marks_per_vma(void **state)
{
	fixture_t *f = *state;
	km_mm_t *mm = &f->mm;
	uint64_t a = map(mm, 0, 8, 0), b = map(mm, 0, 70, 0);
	start(f);
	uint64_t **h = collect(f);
	expect(f, h, a, "00000000");
	km_dirty_free(h, mm->nvmas);
	guest_store(mm, &f->kvm, a + 1 * P);
	guest_store(mm, &f->kvm, b + 69 * P);
	guest_store(mm, &f->kvm, b + 63 * P);
	char byte = 1;
	assert_int_equal(km_copy_to_guest(mm, a + 6 * P + P - 1, &byte, 2), 0); /* km's store across pages */
	h = collect(f);
	expect(f, h, a, "01000011");
	expect(f, h, b + 60 * P, "0001000001");
	km_dirty_free(h, mm->nvmas);
	h = collect(f); /* a new interval */
	expect(f, h, a, "00000000");
	expect(f, h, b + 60 * P, "0000000000");
	km_dirty_free(h, mm->nvmas);
}

static void test_mapping_changes(void **state)
{
	fixture_t *f = *state;
	km_mm_t *mm = &f->mm;
	uint64_t a = map(mm, 0, 8, 0);
	start(f);
	uint64_t b = map(mm, 0, 3, 0);
	assert_int_equal(map(mm, a + 2 * P, 1, MAP_FIXED), a + 2 * P);
	assert_int_equal(km_mm_dontneed(mm, a + 5 * P, P), 0);
	uint64_t **h = collect(f);
	expect(f, h, b, "111");
	expect(f, h, a, "00");
	expect(f, h, a + 2 * P, "1");
	expect(f, h, a + 3 * P, "00100");
	km_dirty_free(h, mm->nvmas);
	int64_t c = km_mm_remap(mm, a + 6 * P, 2 * P, 4 * P, MREMAP_MAYMOVE, 0);
	assert_true(c > 0);
	h = collect(f);
	expect(f, h, (uint64_t)c, "1111");
	expect(f, h, a + 3 * P, "000");
	km_dirty_free(h, mm->nvmas);
}

static void test_shared_is_whole(void **state)
{
	fixture_t *f = *state;
	km_mm_t *mm = &f->mm;
	uint64_t s = (uint64_t)km_mm_map(mm, 0, 3 * P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0, KM_VMA_ANON, NULL);
	start(f);
	uint64_t **h = collect(f);
	expect(f, h, s, "111"); /* another process may have written it */
	km_dirty_free(h, mm->nvmas);
}

static void test_return(void **state)
{
	fixture_t *f = *state;
	km_mm_t *mm = &f->mm;
	uint64_t a = map(mm, 0, 4, 0);
	start(f);
	guest_store(mm, &f->kvm, a + 2 * P);
	uint64_t **h = collect(f);
	expect(f, h, a, "0010");
	km_dirty_return_mm(mm, h); /* the snapshot failed */
	guest_store(mm, &f->kvm, a);
	h = collect(f);
	expect(f, h, a, "1010");
	km_dirty_free(h, mm->nvmas);
}

static void test_restart_drops(void **state)
{
	fixture_t *f = *state;
	km_mm_t *mm = &f->mm;
	uint64_t a = map(mm, 0, 4, 0);
	start(f);
	guest_store(mm, &f->kvm, a + P);
	km_dirty_mark(mm, a + 3 * P, 1);
	start(f);
	uint64_t **h = collect(f);
	expect(f, h, a, "0000");
	km_dirty_free(h, mm->nvmas);
}

/* A slot registered after the start is logged; one KVM refuses fails collects until a restart. */
static void test_slots_added_later(void **state)
{
	fixture_t *f = *state;
	km_mm_t *mm = &f->mm;
	start(f);
	uint64_t big = map(mm, 0, (300ul << 20) / P, MAP_NORESERVE);
	uint64_t last = big + (300ul << 20) - P;
	uint64_t **h = collect(f);
	km_dirty_free(h, mm->nvmas);
	guest_store(mm, &f->kvm, last);
	h = collect(f);
	expect(f, h, last - P, "01");
	km_dirty_free(h, mm->nvmas);

	f->kvm.refuse_log_on = 1 + (int)((mm->gpa_size - mm->user_gpa) / KM_SLOT_CHUNK) - 1; /* the last */
	km_err_t *err = NULL;
	uint64_t top = mm->gpa_size - KM_SLOT_CHUNK;
	assert_int_equal(km_phys_make_present(mm, top, P), 0); /* the mapping itself goes on */
	assert_int_equal(km_dirty_collect_mm(mm, &h, &err), -1);
	km_err_free(&err);
	f->kvm.refuse_log_on = 0;
	start(f); /* a restart logs every slot again */
	h = collect(f);
	km_dirty_free(h, mm->nvmas);
}

/* A fetch that fails loses nothing: what was already fetched counts in the next collect. */
static void test_fetch_failure_keeps_pages(void **state)
{
	fixture_t *f = *state;
	km_mm_t *mm = &f->mm;
	uint64_t a = map(mm, 0, 4, 0);
	start(f);
	uint64_t big = map(mm, 0, (300ul << 20) / P, MAP_NORESERVE); /* a second slot */
	km_vma_t *v = km_vma_find(mm, big + (300ul << 20) - P);
	int second = (int)(1 + (v->gpa + (v->end - v->start) - P - mm->user_gpa) / KM_SLOT_CHUNK);
	int first = (int)(1 + (km_vma_find(mm, a)->gpa - mm->user_gpa) / KM_SLOT_CHUNK);
	assert_true(first < second);
	uint64_t **h = collect(f);
	km_dirty_free(h, mm->nvmas);
	guest_store(mm, &f->kvm, a + P);
	km_dirty_mark(mm, a + 3 * P, 1);
	f->kvm.refuse_fetch = second;
	km_err_t *err = NULL;
	assert_int_equal(km_dirty_collect_mm(mm, &h, &err), -1);
	km_err_free(&err);
	f->kvm.refuse_fetch = 0;
	h = collect(f);
	expect(f, h, a, "0101");
	km_dirty_free(h, mm->nvmas);
}

/* A forked child's new VM: tracking off. */
static void test_register_all_forgets(void **state)
{
	fixture_t *f = *state;
	start(f);
	assert_non_null(f->mm.dirty);
	assert_int_equal(km_mm_register_all(&f->mm), 0);
	assert_null(f->mm.dirty);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bits_extract),
	    cmocka_unit_test(test_bits_or_and_set),
	    T(test_off_until_started),
	    T(test_log_and_marks_per_vma),
	    T(test_mapping_changes),
	    T(test_shared_is_whole),
	    T(test_return),
	    T(test_restart_drops),
	    T(test_slots_added_later),
	    T(test_fetch_failure_keeps_pages),
	    T(test_register_all_forgets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
