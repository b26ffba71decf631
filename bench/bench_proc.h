/*
 * Small helpers the process-timing benchmarks share (snaptime.c, copytime.c): a monotonic clock,
 * a fatal error naming the tool, pipes kept clear of the fds a child is given, and a wait status
 * as a shell would report it.
 */
#ifndef BENCH_PROC_H
#define BENCH_PROC_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static inline long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* "TOOL: WHAT: strerror(errno)" and exit 1. */
static inline void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(1);
}

/* A pipe whose two ends are close-on-exec and numbered 10 or above (clear of the fds a child gets). */
static inline void hi_pipe(int p[2])
{
	int q[2];
	if (pipe2(q, O_CLOEXEC) < 0)
		die("pipe");
	for (int i = 0; i < 2; i++) {
		p[i] = fcntl(q[i], F_DUPFD_CLOEXEC, 10);
		if (p[i] < 0)
			die("fcntl");
		close(q[i]);
	}
}

/* A wait status as a shell's $?: the exit code, or 128 + the signal; -1 for anything else. */
static inline int status_code(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

#endif
