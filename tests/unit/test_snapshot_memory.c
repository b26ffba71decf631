/*
 * Unit tests for the snapshot writer's memory pass (km_snap_write_memory, km_snapshot_memory.c)
 * on a guest made by hand: a few VMAs over an ordinary host mapping, no KVM. What the file must
 * hold is computed here from the memory itself: each held page that is not all zero at its
 * offset, every other page a hole (zero, no disk block), and per segment the CRC32C of exactly
 * those bytes. The cases: data, zero and untouched pages across the writer's batch and buffer
 * boundaries, a held-page bitmap, a segment not saved, pages that fault (a private file mapping
 * past the end of its file) in the middle of a batch, and a write that fails part way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_crc32c.h"
#include "km_guest.h"
#include "km_guest_fault.h"
#include "km_snapshot_writer.h"

#define PG 4096ul

/* A guest with `n` VMAs laid out one after another from guest-physical 0 of `host`. */
typedef struct fake {
	km_guest_t *g;
	km_vma_t vmas[4];
	Elf64_Phdr ph[5];
	uint32_t crcs[4];
} fake_t;

static void fake_init(fake_t *f, uint8_t *host, const uint64_t *pages, const bool *saved, size_t n,
		      enum km_backing backing)
{
	memset(f, 0, sizeof(*f));
	f->g = calloc(1, sizeof(*f->g));
	assert_non_null(f->g);
	f->g->mm.host = host;
	f->g->mm.vmas = f->vmas;
	f->g->mm.nvmas = n;
	f->g->mm.snapshot_fd = -1;
	uint64_t gpa = 0, off = 3 * PG; /* as if headers and notes came first */
	for (size_t i = 0; i < n; i++) {
		uint64_t len = pages[i] * PG;
		f->vmas[i] = (km_vma_t){.start = 0x10000000 + gpa, .end = 0x10000000 + gpa + len, .gpa = gpa,
					.prot = PROT_READ | PROT_WRITE, .flags = MAP_PRIVATE | MAP_ANONYMOUS,
					.backing = backing};
		f->ph[1 + i] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = off, .p_filesz = saved[i] ? len : 0,
					    .p_memsz = len};
		gpa += len;
		off += saved[i] ? len : 0;
	}
}

static bool page_zero(const uint8_t *p)
{
	for (size_t i = 0; i < PG; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static bool held(const uint64_t *hold, uint64_t pg)
{
	return hold == NULL || (hold[pg / 64] >> (pg % 64) & 1);
}

/* Checks segment i of the file against the memory: its bytes, its CRC, and that every page not
 * written is a hole. `bad` (may be NULL): pages that cannot be read (they must be holes).
 * Returns the bytes of data expected. */
static uint64_t check_segment(const fake_t *f, int fd, size_t i, const uint64_t *hold, const bool *bad)
{
	const km_vma_t *v = &f->vmas[i];
	uint64_t npages = (v->end - v->start) / PG, off = f->ph[1 + i].p_offset, data = 0;
	uint8_t *want = calloc(npages, PG), *got = malloc(PG);
	assert_non_null(want);
	assert_non_null(got);
	for (uint64_t p = 0; p < npages; p++) {
		const uint8_t *m = f->g->mm.host + v->gpa + p * PG;
		bool readable = bad == NULL || !bad[p];
		if (readable && held(hold, p) && !page_zero(m)) {
			memcpy(want + p * PG, m, PG);
			data += PG;
		}
		assert_int_equal(pread(fd, got, PG, (off_t)(off + p * PG)), PG);
		assert_memory_equal(got, want + p * PG, PG);
		/* A hole: the data after this page's start begins later (or nowhere). */
		off_t d = lseek(fd, (off_t)(off + p * PG), SEEK_DATA);
		if (page_zero(want + p * PG))
			assert_true(d < 0 || d >= (off_t)(off + (p + 1) * PG));
		else
			assert_int_equal(d, (off_t)(off + p * PG));
	}
	assert_int_equal(f->crcs[i], km_crc32c(0, want, npages * PG));
	free(want);
	free(got);
	return data;
}

static void fill(uint8_t *p, uint64_t seed)
{
	for (size_t i = 0; i < PG; i += 8) {
		uint64_t w = (seed * 0x9E3779B97F4A7C15ull + i) | 1;
		memcpy(p + i, &w, 8);
	}
}

/* Three segments; the first two larger than one pagemap batch (4096 pages) and many bounce
 * buffers, with runs of data broken by zero pages, untouched pages and pages not held. */
static void test_batches_holds_zeros(void **state)
{
	(void)state;
	uint64_t pages[3] = {4096 + 700, 4096 * 2 + 3, 64};
	bool saved[3] = {true, true, false};
	uint64_t total = pages[0] + pages[1] + pages[2];
	uint8_t *host = mmap(NULL, total * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(host != MAP_FAILED);
	for (uint64_t p = 0; p < total; p++) {
		if (p >= 5000 && p < 5300)
			continue; /* never touched */
		if (p % 500 >= 100 && p % 500 < 110)
			continue;
		fill(host + p * PG, p);
		if (p % 13 == 0)
			memset(host + p * PG, 0, PG); /* touched, but zero again */
		if (p % 17 == 0)
			host[p * PG + PG - 1] = 0; /* data only in its first byte would still be data */
	}
	host[4095 * PG + 77] = 9; /* a page just before the batch boundary with one non-zero byte */
	uint64_t *hold = calloc((pages[0] + 63) / 64, 8);
	assert_non_null(hold);
	for (uint64_t p = 0; p < pages[0]; p++)
		if (p % 11 != 5 && (p < 250 || p >= 300))
			hold[p / 64] |= 1ull << (p % 64);
	const uint64_t *holds[3] = {hold, NULL, NULL};
	fake_t f;
	fake_init(&f, host, pages, saved, 3, KM_BACK_ANON);
	int fd = memfd_create("snapmem", MFD_CLOEXEC);
	assert_true(fd >= 0);
	uint64_t end = f.ph[2].p_offset + pages[1] * PG;
	assert_int_equal(ftruncate(fd, (off_t)end), 0);
	km_snapshot_result_t res;
	memset(&res, 0, sizeof(res));
	km_err_t *err = NULL;
	f.crcs[2] = 0xdeadbeef;
	assert_int_equal(km_snap_write_memory(f.g, fd, f.ph, holds, f.crcs, &res, "t", &err), 0);
	assert_null(err);
	uint64_t data = check_segment(&f, fd, 0, hold, NULL) + check_segment(&f, fd, 1, NULL, NULL);
	assert_int_equal(f.crcs[2], 0); /* not saved: no CRC, nothing written */
	assert_int_equal(res.memory_bytes, data);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal((uint64_t)st.st_blocks * 512, data);
	assert_int_equal(st.st_size, (off_t)end);
	close(fd);
	free(hold);
	free(f.g);
	munmap(host, total * PG);
}

/* Pages the host cannot provide (a private mapping of a 5-page file over pages [10, 20): pages 15
 * to 19 raise SIGBUS) in the middle of a batch and of a bounce buffer: each becomes a hole, and
 * the pages after them are still written. File-backed memory: every page is read. */
static void test_fault_mid_batch(void **state)
{
	(void)state;
	km_err_t *err = NULL;
	assert_int_equal(km_guest_fault_init(&err), 0);
	uint64_t pages[1] = {64};
	bool saved[1] = {true};
	uint8_t *host = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(host != MAP_FAILED);
	for (uint64_t p = 0; p < 64; p++)
		fill(host + p * PG, p + 1000);
	int file = memfd_create("short", MFD_CLOEXEC);
	assert_true(file >= 0);
	uint8_t page[PG];
	for (uint64_t p = 0; p < 5; p++) {
		fill(page, p + 7);
		assert_int_equal(pwrite(file, page, PG, (off_t)(p * PG)), PG);
	}
	assert_true(mmap(host + 10 * PG, 10 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, file, 0) != MAP_FAILED);
	bool bad[64] = {false};
	for (int p = 15; p < 20; p++)
		bad[p] = true;
	fake_t f;
	fake_init(&f, host, pages, saved, 1, KM_BACK_FILE);
	int fd = memfd_create("snapmem", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)(f.ph[1].p_offset + 64 * PG)), 0);
	km_snapshot_result_t res;
	memset(&res, 0, sizeof(res));
	assert_int_equal(km_snap_write_memory(f.g, fd, f.ph, NULL, f.crcs, &res, "t", &err), 0);
	assert_int_equal(check_segment(&f, fd, 0, NULL, bad), 59 * PG);
	assert_int_equal(res.memory_bytes, 59 * PG);
	close(fd);
	close(file);
	free(f.g);
	munmap(host, 64 * PG);
}

/* A write that fails part way (RLIMIT_FSIZE: the first writes fit, a later one gets EFBIG): -1
 * with the errno and the mapping and file offset named. */
static void test_write_fails(void **state)
{
	(void)state;
	uint64_t pages[1] = {1024};
	bool saved[1] = {true};
	uint8_t *host = mmap(NULL, 1024 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(host != MAP_FAILED);
	for (uint64_t p = 0; p < 1024; p++)
		fill(host + p * PG, p);
	fake_t f;
	fake_init(&f, host, pages, saved, 1, KM_BACK_ANON);
	int fd = memfd_create("snapmem", MFD_CLOEXEC);
	assert_true(fd >= 0);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 2 << 20;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	km_snapshot_result_t res;
	memset(&res, 0, sizeof(res));
	km_err_t *err = NULL;
	int rc = km_snap_write_memory(f.g, fd, f.ph, NULL, f.crcs, &res, "snap.km", &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	assert_int_equal(rc, -1);
	assert_non_null(err);
	assert_int_equal(err->errnum, EFBIG);
	assert_non_null(strstr(err->msg, "snap.km: writing the memory mapped at 0x10000000-0x10400000"));
	km_err_free(&err);
	close(fd);
	free(f.g);
	munmap(host, 1024 * PG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batches_holds_zeros),
		cmocka_unit_test(test_fault_mid_batch),
		cmocka_unit_test(test_write_fails),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
