/*
 * A counter for km-shim's checkpoint/restore tests (tests/e2e/shim.sh): prints "count N" for
 * N = 1..LIMIT, one line every INTERVAL_MS milliseconds, then exits with status EXIT. The count
 * lives in memory only, so a restored copy that goes on from where its checkpoint was taken shows
 * that the snapshot carried it. Also prints its hostname once, so a test can see the container's.
 * With "handle" as fourth argument, SIGTERM and SIGUSR1 have a handler that prints "signal N" and
 * exits 128+N (a container's init needs one: signals at their default action do not reach it).
 *
 *   shim_count [LIMIT [INTERVAL_MS [EXIT [handle]]]]   defaults 5 0 0
 */
// E2E: run 0
// E2E: exit-status 7 3 0 7
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int sig)
{
	char line[32] = "signal ";
	size_t n = strlen(line);
	if (sig >= 10)
		line[n++] = (char)('0' + sig / 10);
	line[n++] = (char)('0' + sig % 10);
	line[n++] = '\n';
	(void)!write(1, line, n);
	_exit(128 + sig);
}

int main(int argc, char **argv)
{
	long limit = argc > 1 ? strtol(argv[1], NULL, 0) : 5;
	long interval = argc > 2 ? strtol(argv[2], NULL, 0) : 0;
	int status = argc > 3 ? atoi(argv[3]) : 0;
	if (argc > 4 && strcmp(argv[4], "handle") == 0) {
		signal(SIGTERM, on_signal);
		signal(SIGUSR1, on_signal);
	}
	char host[256] = "";
	if (gethostname(host, sizeof(host) - 1) == 0 && argc > 1)
		printf("hostname %s\n", host);
	for (long n = 1; n <= limit; n++) {
		printf("count %ld\n", n);
		fflush(stdout);
		if (interval > 0) {
			struct timespec ts = {interval / 1000, (interval % 1000) * 1000000L};
			while (nanosleep(&ts, &ts) != 0)
				;
		}
	}
	return status;
}
