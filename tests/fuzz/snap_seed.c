/*
 * A tiny static guest that snapshots itself, to make seed inputs for the snapshot-loader fuzz
 * target (tests/fuzz/fuzz_snapshot.c). Build with musl-gcc -static and run under km:
 *
 *     musl-gcc -static -O1 -Iruntime/include -o build/fuzz/snap_seed tests/fuzz/snap_seed.c
 *     build/bin/km --snapshot=/tmp/seed.snap build/fuzz/snap_seed [shared-file]
 *
 * It touches a little heap and an anonymous mapping, and, given a file name, maps that file
 * MAP_SHARED (a mapping the snapshot does not save: NT_KM_VMA with saved = 0 and a path) and
 * MAP_PRIVATE (saved, with a path), so the seeds cover every kind of NT_KM_VMA note.
 * Natively the snapshot call returns -ENOSYS and the program exits with status 77.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_hcall.h"

int main(int argc, char **argv)
{
	char *heap = malloc(100);
	strcpy(heap, "heap data");
	char *anon = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		return 2;
	memset(anon, 0x5a, 100);
	if (argc > 1) {
		int fd = open(argv[1], O_RDONLY);
		if (fd < 0)
			return 3;
		if (mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0) == MAP_FAILED ||
		    mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)
			return 3;
		close(fd);
	}
	long r = km_snapshot("fuzz-seed", 0);
	if (r == KM_SNAPSHOT_RESUMED) {
		printf("resumed: %s %c\n", heap, anon[0]);
		return 0;
	}
	printf("km_snapshot returned %ld\n", r);
	return 77;
}
