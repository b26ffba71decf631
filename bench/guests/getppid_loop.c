/*
 * getppid_loop [N]: N getppid system calls, issued with syscall(SYS_getppid) so no libc caching
 * can skip one, timed with CLOCK_MONOTONIC around the loop (after a warm-up of N/10 calls).
 * Prints: "getppid calls=<N> ns_per_call=<x> ppid=<last result>". Default N = 100000.
 * Exits 0 whatever getppid returns (a monitor may well report 0, as for a namespace's first process).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 100000;
	if (n < 1) {
		fprintf(stderr, "usage: getppid_loop [N>0]\n");
		return 2;
	}
	long r = 0;
	for (long i = 0; i < n / 10; i++)
		r = syscall(SYS_getppid);
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		r = syscall(SYS_getppid);
	double t1 = now_ns();
	printf("getppid calls=%ld ns_per_call=%.1f ppid=%ld\n", n, (t1 - t0) / (double)n, r);
	return 0;
}
