/*
 * clock_loop [N]: N clock_gettime(CLOCK_MONOTONIC) calls through libc (the vDSO, natively and
 * under km), timed with CLOCK_MONOTONIC around the loop (after a warm-up of N/10 calls).
 * Prints: "clock_gettime calls=<N> ns_per_call=<x>". Default N = 1000000.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	if (n < 1) {
		fprintf(stderr, "usage: clock_loop [N>0]\n");
		return 2;
	}
	struct timespec t;
	for (long i = 0; i < n / 10; i++)
		clock_gettime(CLOCK_MONOTONIC, &t);
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		clock_gettime(CLOCK_MONOTONIC, &t);
	double t1 = now_ns();
	printf("clock_gettime calls=%ld ns_per_call=%.1f\n", n, (t1 - t0) / (double)n);
	return 0;
}
