/*
 * fork_wait [N]: N rounds of fork + _exit(0) in the child + waitpid in the parent, one child at a
 * time (after a warm-up of N/10 rounds), timed with CLOCK_MONOTONIC around the loop. Under km each
 * fork is a fork of km itself with a new VM in the child (km/proc/km_proc.h).
 * Prints: "fork_wait forks=<N> ns_per_fork=<x>". Default N = 200.
 * A failed fork or wait, or a child that did not exit 0, prints "fork_wait: <what>: <error>" on
 * stderr and exits 1; bad usage 2.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* One fork + exit + wait: 0, or 1 after the message. */
static int one_fork(void)
{
	int st;
	pid_t p = fork();

	if (p == 0)
		_exit(0);
	if (p < 0) {
		fprintf(stderr, "fork_wait: fork: %s\n", strerror(errno));
		return 1;
	}
	if (waitpid(p, &st, 0) != p) {
		fprintf(stderr, "fork_wait: waitpid: %s\n", strerror(errno));
		return 1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "fork_wait: the child ended with wait status 0x%x\n", st);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 200, i;
	double t0;

	if (n <= 0) {
		fprintf(stderr, "usage: fork_wait [N > 0]\n");
		return 2;
	}
	for (i = 0; i < n / 10; i++)
		if (one_fork())
			return 1;
	t0 = now_ns();
	for (i = 0; i < n; i++)
		if (one_fork())
			return 1;
	printf("fork_wait forks=%ld ns_per_fork=%.0f\n", n, (now_ns() - t0) / (double)n);
	return 0;
}
