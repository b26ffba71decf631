/*
 * A snapshot of a large, contiguous, touched memory range (tests/e2e/snapfile.sh).
 *
 *   snap_big MIB FILE   maps MIB MiB of anonymous memory, writes a non-zero word into every
 *                       page (so the snapshot writer sees one run of MIB MiB of data pages, more
 *                       than one pwrite() can move when MIB > 2047), snapshots itself with
 *                       KEEP_RUNNING to FILE and checks every page; resumed from FILE it checks
 *                       every page again. Prints "taken" or "resumed" and exits 0; a failed
 *                       snapshot prints "snapshot failed: <strerror>" and exits 4.
 *   snap_big            the same with 1 MiB and no snapshot (the hypercall is not made): the same
 *                       output natively and under km
 */
// E2E: run 0
#include <stdlib.h>
#include <sys/mman.h>

#include "snap_common.h"

static void check_pages(const unsigned char *m, size_t pages, const char *when)
{
	size_t bad = 0;
	for (size_t i = 0; i < pages; i++) {
		uint64_t w;
		memcpy(&w, m + i * 4096 + (i % 500) * 8, sizeof(w));
		bad += w != (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
	}
	CHECK(bad == 0, "%s: %zu of %zu pages hold what was written", when, pages - bad, pages);
}

int main(int argc, char **argv)
{
	if (argc != 1 && argc != 3) {
		fprintf(stderr, "usage: snap_big [MIB FILE]\n");
		return 2;
	}
	size_t pages = argc == 3 ? strtoul(argv[1], NULL, 10) * 256 : 256;
	unsigned char *m = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap of %zu MiB", pages / 256);
	if (m == MAP_FAILED)
		return check_done();
	for (size_t i = 0; i < pages; i++) {
		uint64_t w = (uint64_t)i * 0x9e3779b97f4a7c15ull + 1;
		memcpy(m + i * 4096 + (i % 500) * 8, &w, sizeof(w));
	}
	long r = argc == 3 ? snap_take("big", KM_SNAPSHOT_KEEP_RUNNING, argv[2], NULL) : KM_SNAPSHOT_TAKEN;
	if (r == KM_SNAPSHOT_RESUMED) {
		printf("resumed\n");
		check_pages(m, pages, "resumed");
		return check_done();
	}
	if (r != KM_SNAPSHOT_TAKEN)
		snap_failed(r);
	printf("taken\n");
	check_pages(m, pages, "after the snapshot");
	return check_done();
}
