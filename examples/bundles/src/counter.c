/* counter: counts in memory and prints the count every second ("count N"). The count lives only
 * in this process's memory, so a checkpoint/restore that loses or rewinds memory shows as a gap or
 * a repeat in the numbers. SIGTERM ends it with "counter: SIGTERM at count N" and status 0: as a
 * container's pid 1 it would otherwise ignore SIGTERM (the kernel drops signals a pid namespace's
 * init has no handler for), and `podman stop`/`ctr task kill` send SIGTERM first. An optional
 * argument sets the interval in milliseconds. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t terminated;

static void on_sigterm(int sig)
{
	(void)sig;
	terminated = 1;
}

int main(int argc, char **argv)
{
	long ms = argc > 1 ? atol(argv[1]) : 1000;
	struct timespec interval = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	struct sigaction sa;
	unsigned long count = 0;

	if (ms <= 0) {
		fprintf(stderr, "counter: interval must be a positive number of milliseconds\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigterm;
	sigaction(SIGTERM, &sa, NULL);
	while (!terminated) {
		printf("count %lu\n", ++count);
		fflush(stdout);
		/* A sleep cut short (a signal, a stop for a checkpoint) just prints the next count early. */
		nanosleep(&interval, NULL);
	}
	printf("counter: SIGTERM at count %lu\n", count);
	return 0;
}
