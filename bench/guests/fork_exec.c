/*
 * fork_exec [N]: N rounds of fork + execve of the hello guest beside this program (its directory
 * taken from argv[0], so run it by its full path) with stdout on /dev/null + waitpid, one child at
 * a time (after a warm-up of N/10 rounds), timed with CLOCK_MONOTONIC around the loop. Under km
 * the execve re-executes km for hello (km/proc/km_proc.h): a whole km start per round.
 * Prints: "fork_exec execs=<N> ns_per_exec=<x>". Default N = 100.
 * A failed fork, exec or wait, or a hello that did not exit 0, prints "fork_exec: <what>: <error>"
 * on stderr and exits 1 (a failed exec: the child exits 127); bad usage 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* One fork + exec of hello + wait: 0, or 1 after the message. */
static int one_exec(const char *hello)
{
	char *argv[] = {(char *)hello, NULL};
	int st;
	pid_t p = fork();

	if (p == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(126);
		execve(hello, argv, environ);
		fprintf(stderr, "fork_exec: execve %s: %s\n", hello, strerror(errno));
		_exit(127);
	}
	if (p < 0) {
		fprintf(stderr, "fork_exec: fork: %s\n", strerror(errno));
		return 1;
	}
	if (waitpid(p, &st, 0) != p) {
		fprintf(stderr, "fork_exec: waitpid: %s\n", strerror(errno));
		return 1;
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "fork_exec: %s ended with wait status 0x%x\n", hello, st);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100, i;
	char self[PATH_MAX], hello[PATH_MAX + 8];
	double t0;

	if (n <= 0) {
		fprintf(stderr, "usage: fork_exec [N > 0]\n");
		return 2;
	}
	snprintf(self, sizeof(self), "%s", argv[0]);
	snprintf(hello, sizeof(hello), "%s/hello", dirname(self));
	for (i = 0; i < n / 10; i++)
		if (one_exec(hello))
			return 1;
	t0 = now_ns();
	for (i = 0; i < n; i++)
		if (one_exec(hello))
			return 1;
	printf("fork_exec execs=%ld ns_per_exec=%.0f\n", n, (now_ns() - t0) / (double)n);
	return 0;
}
