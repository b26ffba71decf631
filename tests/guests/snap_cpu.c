/*
 * A CPU-bound program for snapshots taken from outside (tests/e2e/snapshot.sh, through km's
 * management socket): prints "started", then runs ITERATIONS rounds of a hash over a 64 KiB
 * table with two floating-point accumulators (state in memory, general and SSE registers, no
 * syscalls), and prints the result. Deterministic: a run resumed from a snapshot taken at any
 * point must print what an uninterrupted run prints.
 *
 *   snap_cpu [ITERATIONS]   default 300000 (fast, for the plain e2e run)
 */
// E2E: run 0
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t table[8192];

int main(int argc, char **argv)
{
	unsigned long long n = argc > 1 ? strtoull(argv[1], NULL, 0) : 300000, i;
	uint64_t h = 0xcbf29ce484222325ull;
	double acc = 0, acc2 = 1;

	for (i = 0; i < 8192; i++)
		table[i] = i * 0x9E3779B97F4A7C15ull;
	printf("started\n");
	fflush(stdout);
	for (i = 0; i < n; i++) {
		uint64_t *t = &table[h & 8191];
		*t = (*t ^ h) * 0x100000001b3ull + i;
		h = (h ^ *t) * 0x100000001b3ull;
		h ^= h >> 29;
		acc += (double)(h & 0xffff) * 1e-3;
		acc2 = acc2 * 0.999999 + (double)(h >> 48);
	}
	for (i = 0; i < 8192; i++)
		h = (h ^ table[i]) * 0x100000001b3ull;
	printf("result: %016llx %.17g %.17g\n", (unsigned long long)h, acc, acc2);
	return 0;
}
