/*
 * walltime: runs a command many times and reports the distribution of its wall time, from just
 * before posix_spawn to waitpid's return, with CLOCK_MONOTONIC. stdin, stdout and stderr of the
 * command are /dev/null, so terminal output costs nothing. A C timer rather than a shell loop or
 * hyperfine's shell-less mode because the values are fractions of a millisecond.
 *
 * Usage: walltime [-n runs] [-w warmup] [-t timeout_s] -- command [args...]
 * Prints: "runs=<n> median_us=<..> p90_us=<..> min_us=<..> mean_us=<..>"
 * Exit status 0; 1 (with a message on stderr, nothing on stdout) if any run of the command exited
 * non-zero, was killed by a signal, or ran past the timeout (then it is killed).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

static double now_us(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of sorted xs. */
static double quantile(const double *xs, int n, double q)
{
	int i = (int)(q * n + 0.999999);
	if (i < 1)
		i = 1;
	if (i > n)
		i = n;
	return xs[i - 1];
}

static void usage(void)
{
	fprintf(stderr, "usage: walltime [-n runs] [-w warmup] [-t timeout_s] -- command [args...]\n");
	exit(2);
}

/* Runs the command once; returns its wall time in microseconds, or -1 if it failed. */
static double run_once(char **cmd, posix_spawn_file_actions_t *fa, unsigned timeout)
{
	pid_t pid;
	double t0 = now_us();
	int e = posix_spawn(&pid, cmd[0], fa, NULL, cmd, environ);
	if (e) {
		fprintf(stderr, "walltime: cannot run %s: %s\n", cmd[0], strerror(e));
		return -1;
	}
	int st;
	timed_out = 0;
	alarm(timeout);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			perror("walltime: waitpid");
			return -1;
		}
		if (timed_out) {
			kill(pid, SIGKILL);
			timed_out = 0;
			fprintf(stderr, "walltime: %s ran longer than %u s, killed\n", cmd[0], timeout);
			timeout = 0;
		}
	}
	double t1 = now_us();
	alarm(0);
	if (timeout == 0)
		return -1;
	if (WIFSIGNALED(st)) {
		fprintf(stderr, "walltime: %s killed by signal %d\n", cmd[0], WTERMSIG(st));
		return -1;
	}
	if (WEXITSTATUS(st) != 0) {
		fprintf(stderr, "walltime: %s exited with status %d\n", cmd[0], WEXITSTATUS(st));
		return -1;
	}
	return t1 - t0;
}

int main(int argc, char **argv)
{
	int runs = 100, warmup = 5, opt;
	unsigned timeout = 10;
	while ((opt = getopt(argc, argv, "+n:w:t:")) != -1) {
		switch (opt) {
		case 'n':
			runs = atoi(optarg);
			break;
		case 'w':
			warmup = atoi(optarg);
			break;
		case 't':
			timeout = (unsigned)atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (optind >= argc || runs < 1 || warmup < 0 || timeout < 1)
		usage();
	char **cmd = argv + optind;

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_alarm; /* no SA_RESTART: waitpid returns EINTR on the alarm */
	sigaction(SIGALRM, &sa, NULL);

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);

	double *t = calloc((size_t)runs, sizeof *t);
	if (!t) {
		perror("walltime: calloc");
		return 2;
	}
	for (int i = 0; i < warmup; i++)
		if (run_once(cmd, &fa, timeout) < 0)
			return 1;
	double sum = 0;
	for (int i = 0; i < runs; i++) {
		t[i] = run_once(cmd, &fa, timeout);
		if (t[i] < 0)
			return 1;
		sum += t[i];
	}
	qsort(t, (size_t)runs, sizeof *t, cmp);
	printf("runs=%d median_us=%.1f p90_us=%.1f min_us=%.1f mean_us=%.1f\n", runs, quantile(t, runs, 0.5),
	       quantile(t, runs, 0.9), t[0], sum / runs);
	posix_spawn_file_actions_destroy(&fa);
	free(t);
	return 0;
}
