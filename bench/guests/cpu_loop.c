/*
 * cpu_loop [N]: pure integer computation, no system calls and no memory traffic inside the timed
 * loop: N rounds of a 64-bit mix function (multiply, xor, shift) in one dependency chain, so the
 * compiler can neither vectorise nor remove it. Timed with CLOCK_MONOTONIC around the loop.
 * Prints: "cpu rounds=<N> seconds=<s> hash=<h>". Default N = 200000000.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	uint64_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000000ULL;
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
	double t0 = now_s();
	for (uint64_t i = 0; i < n; i++) {
		h ^= h >> 31;
		h *= 0xbf58476d1ce4e5b9ULL;
		h ^= i;
		h ^= h >> 27;
		h *= 0x94d049bb133111ebULL;
	}
	double t1 = now_s();
	printf("cpu rounds=%llu seconds=%.4f hash=%016llx\n", (unsigned long long)n, t1 - t0,
	       (unsigned long long)h);
	return 0;
}
