/*
 * Unit tests for mapping a resumed segment's pages from the layers below it (km_layers_map_vma,
 * km_snapshot_chain.c) on a chain made by hand: no file on disk but the data file the pages are
 * left to. The case: one segment of the top snapshot whose pages the parent saw as more
 * one-page private file mappings than the resume once kept files open for (it closed all eight
 * on the ninth, one of them still used by the run being built: EBADF).
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
#include <sys/stat.h>
#include <unistd.h>

#include "km_mm.h"
#include "km_snapshot.h"
#include "km_snapshot_layers.h"

#define PG 4096ul
#define NPARENT 20 /* parent segments below the one top segment */
#define START 0x10000000ul

static void test_many_files_below_one_segment(void **state)
{
	(void)state;
	char path[] = "/tmp/km-test-chain-XXXXXX";
	int dfd = mkstemp(path);
	assert_true(dfd >= 0);
	static uint8_t data[NPARENT * PG];
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + i / PG);
	assert_int_equal(write(dfd, data, sizeof(data)), (ssize_t)sizeof(data));
	struct stat st;
	assert_int_equal(fstat(dfd, &st), 0);

	/* The parent: NPARENT one-page private mappings of the file, none of their pages held. */
	static uint64_t none[1];
	static km_snap_vma_t pv[NPARENT];
	static km_nt_mapfile_t mf[NPARENT];
	for (uint32_t k = 0; k < NPARENT; k++) {
		pv[k] = (km_snap_vma_t){.path = path, .below = KM_BELOW_FILE, .held = (const uint8_t *)none};
		pv[k].nt.start = START + k * PG;
		pv[k].nt.end = START + (k + 1) * PG;
		pv[k].nt.saved = 2;
		pv[k].nt.offset = k * PG;
		pv[k].nt.flags = MAP_PRIVATE;
		mf[k] = (km_nt_mapfile_t){.vma = k, .id = {.size = (uint64_t)st.st_size, .mtime_sec = st.st_mtim.tv_sec,
							  .mtime_nsec = st.st_mtim.tv_nsec}};
	}
	km_snapshot_t parent = {.fd = -1, .vmas = pv, .nvmas = NPARENT, .mapfiles = (const uint8_t *)mf,
				.nmapfiles = NPARENT};
	/* The top: one segment over all of them, its pages the parent's. */
	km_snap_vma_t tv = {.below = KM_BELOW_PARENT, .held = (const uint8_t *)none};
	tv.nt.start = START;
	tv.nt.end = START + NPARENT * PG;
	tv.nt.saved = 2;
	km_snapshot_t top = {.fd = -1, .vmas = &tv, .nvmas = 1, .parent = &parent};

	uint8_t *host = mmap(NULL, NPARENT * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(host != MAP_FAILED);
	km_vma_t vma = {.start = START, .end = START + NPARENT * PG, .gpa = 0, .prot = PROT_READ | PROT_WRITE,
			.flags = MAP_PRIVATE | MAP_ANONYMOUS, .backing = KM_BACK_SNAPSHOT};
	km_mm_t mm;
	memset(&mm, 0, sizeof(mm));
	mm.host = host;
	mm.vmas = &vma;
	mm.nvmas = 1;
	mm.snapshot_fd = -1;

	km_err_t *err = NULL;
	int rc = km_layers_map_vma(&mm, &top, 0, "top", &err);
	if (rc < 0)
		fail_msg("km_layers_map_vma: %s", err != NULL ? err->msg : "?");
	assert_memory_equal(host, data, sizeof(data));
	km_err_free(&err);
	munmap(host, NPARENT * PG);
	close(dfd);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_many_files_below_one_segment),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
