/*
 * Shared mappings of files no path names, across a snapshot: a memfd mapped MAP_SHARED (and a
 * deleted file), `snap_memfd_map open|closed`. With the fds still open, the resumed program's
 * mappings and fds are one file again: a write through the mapping is read through the fd and the
 * other way round, and two mappings of one memfd see each other's writes. With the fds closed
 * before the snapshot, the mappings keep their bytes. Prints "MEMFD MAP OK" when every check
 * passed. Without an argument it checks the same without a snapshot (the plain e2e run, native
 * and under km); natively the snapshot modes exit 77 (snap_common.h).
 */
// E2E: run 0
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snap_common.h"

#define SIZE 8192

int main(int argc, char **argv)
{
	bool snap = argc > 1;
	bool open_fds = !snap || strcmp(argv[1], "open") == 0;
	int m = memfd_create("mapped", MFD_CLOEXEC);
	CHECK(m >= 0 && ftruncate(m, SIZE) == 0, "a memfd of 8 KiB");
	char *a = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	char *b = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
	CHECK(a != MAP_FAILED && b != MAP_FAILED, "mapped twice");
	strcpy(a + 100, "before the snapshot");
	char tmpl[] = "/tmp/km-memfd-map-XXXXXX";
	int d = mkstemp(tmpl);
	CHECK(d >= 0 && ftruncate(d, SIZE) == 0 && unlink(tmpl) == 0, "a deleted file");
	char *c = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, d, 0);
	CHECK(c != MAP_FAILED, "the deleted file mapped");
	strcpy(c + 5000, "deleted but mapped");
	if (!open_fds) {
		close(m);
		close(d);
	}
	long r = snap ? snap_take("memfd-map", 0, NULL, NULL) : KM_SNAPSHOT_RESUMED;
	if (r == -ENOSYS)
		snap_not_under_km();
	if (r != KM_SNAPSHOT_RESUMED)
		snap_failed(r);
	CHECK(strcmp(a + 100, "before the snapshot") == 0, "the first mapping kept its bytes");
	CHECK(strcmp(b + 100, "before the snapshot") == 0, "the second mapping kept its bytes");
	CHECK(strcmp(c + 5000, "deleted but mapped") == 0, "the deleted file's mapping kept its bytes");
	if (open_fds) {
		strcpy(a + 200, "through a");
		CHECK(strcmp(b + 200, "through a") == 0, "a write through one mapping is seen through the other");
		char buf[32] = {0};
		CHECK(pread(m, buf, 9, 200) == 9 && strcmp(buf, "through a") == 0, "and through the fd");
		CHECK(pwrite(m, "by fd", 5, 300) == 5 && memcmp(a + 300, "by fd", 5) == 0, "a write by fd is seen mapped");
		CHECK(pwrite(d, "by fd", 5, 6000) == 5 && memcmp(c + 6000, "by fd", 5) == 0,
		      "the deleted file: a write by fd is seen mapped");
	}
	if (check_failed == 0)
		printf("MEMFD MAP OK\n");
	return check_done();
}
