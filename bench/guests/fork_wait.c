/*
 * fork_wait [N]: N rounds of fork + _exit(0) in the child + waitpid in the parent, one child at a
 * time (after a warm-up of N/10 rounds), timed with CLOCK_MONOTONIC around the loop: what a shell
 * pays per command before exec. Under km each child is a km process with its own new VM.
 * Prints: "fork_wait forks=<N> ns_per_fork=<x>". Default N = 200.
 * A failed fork or wait prints "fork_wait: <call>: <error>" on stderr and exits 1; bad usage 2.
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

/* One fork + exit + wait. 0, or 1 after the message. */
static int one_fork(void)
{
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "fork_wait: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0)
		_exit(0);
	int st;
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "fork_wait: waitpid: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long n = 200;
	if (argc > 2 || (argc == 2 && (n = strtol(argv[1], NULL, 10)) <= 0)) {
		fprintf(stderr, "usage: fork_wait [N]\n");
		return 2;
	}
	for (long i = 0; i < n / 10; i++)
		if (one_fork())
			return 1;
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (one_fork())
			return 1;
	printf("fork_wait forks=%ld ns_per_fork=%.0f\n", n, (now_ns() - t0) / (double)n);
	return 0;
}
