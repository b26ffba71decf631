/*
 * Unit tests for the vfork write-back (km/proc/km_vfork_wb.c). The parent's side is fed crafted
 * streams, as a child that took over its km could send: only pages of the parent's private
 * writable mappings at their own guest-physical addresses may be written, never km's runtime
 * region or page tables, never past guest memory; too many records, a bad header, data after the
 * end or a truncated stream are refused. The child's side is run in a forked process: it sends
 * exactly the pages it wrote.
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
#include <sys/wait.h>
#include <unistd.h>

#include "km_mm.h"
#include "km_vfork_wb.h"

#define P 4096ul
#define LIMIT (64ul << 20)
#define MMAP_BASE 0x7f0000000000ul
#define RW (PROT_READ | PROT_WRITE)

typedef struct fixture {
	km_mm_t mm;
	uint64_t rw, ro, shared; /* 4 pages each: private writable, private read-only, shared */
	km_vfork_rx_t rx;
} fixture_t;

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	km_err_t *err = NULL;
	if (f == NULL || km_mm_init(&f->mm, LIMIT, 46, &err) < 0)
		return -1;
	f->mm.mmap_base = MMAP_BASE;
	f->rw = (uint64_t)km_mm_map(&f->mm, 0, 4 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, KM_VMA_ANON, NULL);
	f->ro = (uint64_t)km_mm_map(&f->mm, 0, 4 * P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0, KM_VMA_ANON, NULL);
	f->shared = (uint64_t)km_mm_map(&f->mm, 0, 4 * P, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0, KM_VMA_ANON, NULL);
	if ((int64_t)f->rw < 0 || (int64_t)f->ro < 0 || (int64_t)f->shared < 0)
		return -1;
	km_vfork_rx_init(&f->rx, &f->mm);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	km_mm_fini(&f->mm);
	free(f);
	return 0;
}

static uint64_t gpa_of(km_mm_t *mm, uint64_t gva)
{
	km_vma_t *v = km_vma_find(mm, gva);
	assert_non_null(v);
	return v->gpa + (gva - v->start);
}

/* Feeds one page record (gva, gpa, every byte `byte`), in pieces of `step` bytes. */
static int feed_page(fixture_t *f, uint64_t gva, uint64_t gpa, int byte, size_t step)
{
	uint8_t rec[sizeof(km_vfork_wb_rec_t) + P];
	km_vfork_wb_rec_t h = {.magic = KM_VFORK_WB_MAGIC, .kind = KM_VFORK_WB_PAGE, .gva = gva, .gpa = gpa};
	memcpy(rec, &h, sizeof(h));
	memset(rec + sizeof(h), byte, P);
	int rc = 0;
	for (size_t at = 0; at < sizeof(rec) && rc == 0; at += step)
		rc = km_vfork_rx_feed(&f->rx, &f->mm, rec + at, sizeof(rec) - at < step ? sizeof(rec) - at : step);
	return rc;
}

static int feed_end(fixture_t *f)
{
	km_vfork_wb_rec_t h = {.magic = KM_VFORK_WB_MAGIC, .kind = KM_VFORK_WB_END};
	return km_vfork_rx_feed(&f->rx, &f->mm, &h, sizeof(h));
}

/* Every byte of guest-physical [gpa, gpa + P) is `byte` (read through the host mapping). */
static void expect_phys(km_mm_t *mm, uint64_t gpa, int byte)
{
	const uint8_t *h = km_gpa_to_hva(mm, gpa);
	for (size_t i = 0; i < P; i++)
		if (h[i] != (uint8_t)byte)
			fail_msg("byte %zu of gpa %#lx is %#x, expected %#x", i, (unsigned long)gpa, h[i], byte & 0xff);
}

static void test_valid_pages_applied(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw), 0x5a, 1), 0); /* byte by byte */
	assert_int_equal(feed_page(f, f->rw + 3 * P, gpa_of(&f->mm, f->rw + 3 * P), 0x33, 1000), 0);
	assert_int_equal(feed_end(f), 0);
	assert_int_equal(km_vfork_rx_finish(&f->rx), 0);
	assert_int_equal(f->rx.applied, 2);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw), 0x5a);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw + P), 0);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw + 3 * P), 0x33);
}

static void test_empty_stream(void **state)
{
	fixture_t *f = *state; /* the child exec'd: nothing, and no end record */
	assert_int_equal(km_vfork_rx_finish(&f->rx), 0);
}

static void test_equal_page_skipped(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw), 0, P), 0);
	assert_int_equal(f->rx.applied, 0);
	assert_int_equal(f->rx.skipped, 1);
}

/* Below user_gpa: km's runtime region and the page tables. */
static void test_runtime_and_page_tables_refused(void **state)
{
	fixture_t *f = *state;
	uint64_t pt = f->mm.user_gpa - P; /* the last page below program memory */
	uint8_t before[P];
	memcpy(before, km_gpa_to_hva(&f->mm, pt), P);
	assert_int_equal(feed_page(f, f->rw, pt, 0x77, 64), -EFAULT);
	assert_memory_equal(km_gpa_to_hva(&f->mm, pt), before, P);
	memcpy(before, km_gpa_to_hva(&f->mm, 0), P);
	assert_int_equal(km_vfork_rx_feed(&f->rx, &f->mm, "x", 1), -EFAULT); /* refused for good */
	assert_int_equal(km_vfork_rx_finish(&f->rx), -EFAULT);
	fixture_t g = {.mm = f->mm};
	km_vfork_rx_init(&g.rx, &f->mm);
	assert_int_equal(feed_page(&g, f->rw, 0, 0x77, P), -EFAULT);
	assert_memory_equal(km_gpa_to_hva(&f->mm, 0), before, P);
	assert_int_equal(f->rx.applied + g.rx.applied, 0);
}

static void test_outside_guest_memory_refused(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(feed_page(f, f->rw, f->mm.gpa_size, 1, P), -EFAULT);
	km_vfork_rx_init(&f->rx, &f->mm);
	assert_int_equal(feed_page(f, f->rw, UINT64_MAX & ~(P - 1), 1, P), -EFAULT);
	km_vfork_rx_init(&f->rx, &f->mm);
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw) + 8, 1, P), -EFAULT); /* unaligned */
	km_vfork_rx_init(&f->rx, &f->mm);
	assert_int_equal(feed_page(f, KM_USER_TOP, gpa_of(&f->mm, f->rw), 1, P), -EFAULT);
	assert_int_equal(f->rx.applied, 0);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw), 0);
}

/* Well-formed, but not a page the parent maps privately and writable at that guest-physical
 * address: skipped, nothing written, the stream goes on. */
static void test_mismatched_pages_skipped(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->ro), 9, P), 0);        /* another VMA's page */
	assert_int_equal(feed_page(f, f->ro, gpa_of(&f->mm, f->ro), 9, P), 0);        /* read-only */
	assert_int_equal(feed_page(f, f->shared, gpa_of(&f->mm, f->shared), 9, P), 0); /* shared */
	assert_int_equal(feed_page(f, 0x10000, gpa_of(&f->mm, f->rw), 9, P), 0);       /* not mapped */
	assert_int_equal(f->rx.skipped, 4);
	assert_int_equal(f->rx.applied, 0);
	expect_phys(&f->mm, gpa_of(&f->mm, f->ro), 0);
	expect_phys(&f->mm, gpa_of(&f->mm, f->shared), 0);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw), 0);
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw), 9, P), 0);
	assert_int_equal(f->rx.applied, 1);
}

static void test_too_many_records_refused(void **state)
{
	fixture_t *f = *state;
	f->rx.max = 2;
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw), 1, P), 0);
	assert_int_equal(feed_page(f, f->rw + P, gpa_of(&f->mm, f->rw + P), 2, P), 0);
	assert_int_equal(feed_page(f, f->rw + 2 * P, gpa_of(&f->mm, f->rw + 2 * P), 3, P), -EPROTO);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw + 2 * P), 0);
	assert_int_equal(f->rx.applied, 2);
	km_vfork_rx_init(&f->rx, &f->mm);
	assert_int_equal(f->rx.max, LIMIT / P);
}

static void test_bad_header_refused(void **state)
{
	fixture_t *f = *state;
	km_vfork_wb_rec_t h = {.magic = KM_VFORK_WB_MAGIC ^ 1, .kind = KM_VFORK_WB_PAGE};
	assert_int_equal(km_vfork_rx_feed(&f->rx, &f->mm, &h, sizeof(h)), -EPROTO);
	km_vfork_rx_init(&f->rx, &f->mm);
	h.magic = KM_VFORK_WB_MAGIC;
	h.kind = 7;
	assert_int_equal(km_vfork_rx_feed(&f->rx, &f->mm, &h, sizeof(h)), -EPROTO);
}

static void test_data_after_end_refused(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(feed_end(f), 0);
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw), 1, P), -EPROTO);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw), 0);
	assert_int_equal(km_vfork_rx_finish(&f->rx), -EPROTO);
}

/* A child killed while sending: whole records count, the partial one does not. */
static void test_truncated_stream(void **state)
{
	fixture_t *f = *state;
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw), 1, P), 0);
	uint8_t rec[sizeof(km_vfork_wb_rec_t) + 100];
	km_vfork_wb_rec_t h = {.magic = KM_VFORK_WB_MAGIC, .kind = KM_VFORK_WB_PAGE, .gva = f->rw + P,
			       .gpa = gpa_of(&f->mm, f->rw + P)};
	memcpy(rec, &h, sizeof(h));
	memset(rec + sizeof(h), 2, 100);
	assert_int_equal(km_vfork_rx_feed(&f->rx, &f->mm, rec, sizeof(rec)), 0);
	assert_int_equal(km_vfork_rx_finish(&f->rx), -EPROTO);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw), 1);
	expect_phys(&f->mm, gpa_of(&f->mm, f->rw + P), 0);
	km_vfork_rx_init(&f->rx, &f->mm); /* whole records but no end record */
	assert_int_equal(feed_page(f, f->rw, gpa_of(&f->mm, f->rw), 3, P), 0);
	assert_int_equal(km_vfork_rx_finish(&f->rx), -EPROTO);
}

/* The child's side in a forked process: of pages the parent had touched, only those the child
 * writes are sent; a page the child only reads is not. */
static void test_child_sends_what_it_wrote(void **state)
{
	fixture_t *f = *state;
	uint8_t *h = km_gpa_to_hva(&f->mm, gpa_of(&f->mm, f->rw));
	memset(h, 0x11, 4 * P); /* present in the parent: shared with the child after the fork */
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		km_vfork_tx_t tx;
		if (km_vfork_tx_begin(&tx, &f->mm) < 0 || tx.n != 1)
			_exit(10);
		volatile uint8_t sum = h[2 * P];
		(void)sum;
		h[P + 5] = 0x22;
		h[3 * P] = 0x44;
		long n = km_vfork_tx_send(&tx, &f->mm, pfd[1]);
		km_vfork_tx_free(&tx);
		_exit(n == 2 ? 0 : 11);
	}
	close(pfd[1]);
	uint8_t buf[3000];
	ssize_t n;
	while ((n = read(pfd[0], buf, sizeof(buf))) > 0)
		assert_int_equal(km_vfork_rx_feed(&f->rx, &f->mm, buf, (size_t)n), 0);
	close(pfd[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(km_vfork_rx_finish(&f->rx), 0);
	assert_int_equal(f->rx.records, 2);
	assert_int_equal(f->rx.applied, 2);
	assert_int_equal(h[P + 5], 0x22);
	assert_int_equal(h[P + 4], 0x11);
	assert_int_equal(h[3 * P], 0x44);
	assert_int_equal(h[2 * P], 0x11);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_valid_pages_applied),
	    T(test_empty_stream),
	    T(test_equal_page_skipped),
	    T(test_runtime_and_page_tables_refused),
	    T(test_outside_guest_memory_refused),
	    T(test_mismatched_pages_skipped),
	    T(test_too_many_records_refused),
	    T(test_bad_header_refused),
	    T(test_data_after_end_refused),
	    T(test_truncated_stream),
	    T(test_child_sends_what_it_wrote),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
