/*
 * incr_touch MIB: the program of the bench's incremental rows (section incr). Touches MIB MiB with
 * non-zero data, prints "ready", then for each line "change N" on stdin writes new data over the
 * first N MiB and prints "changed"; ends at end of file. A snapshot taken after "ready" holds
 * everything; one taken after "changed" naming it as its parent holds only the N MiB.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
	long mib = argc > 1 ? atol(argv[1]) : 0;
	if (mib < 1) {
		printf("usage: incr_touch MIB(>0)\n");
		return 2;
	}
	size_t len = (size_t)mib << 20;
	uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("error: mmap of %ld MiB\n", mib);
		return 1;
	}
	uint64_t round = 1;
	for (size_t i = 0; i < len / 8; i++)
		mem[i] = (i * 0x9E3779B97F4A7C15ull) | 1;
	printf("ready\n");
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof(line), stdin) != NULL) {
		long n = strncmp(line, "change ", 7) == 0 ? atol(line + 7) : 0;
		if (n < 0 || n > mib)
			n = mib;
		round++;
		for (size_t i = 0; i < ((size_t)n << 20) / 8; i++)
			mem[i] = (i * 0x9E3779B97F4A7C15ull) ^ round;
		printf("changed\n");
		fflush(stdout);
	}
	return 0;
}
