/*
 * Counts for tests/e2e/container_km.sh (pause, resume and snapshots through km's management
 * socket): prints "tick N" for N = 1, 2, ... waiting up to 1 ms for stdin between ticks, and once
 * stdin is readable (a line, or end of file) prints "done N" for the last N and exits 0. A
 * paused program prints no tick; a copy resumed from a snapshot taken at tick N goes on from N.
 * Gives up (exit 1) after 600000 ticks.
 */
// E2E: run 0
#include <poll.h>
#include <stdio.h>

int main(void)
{
	for (unsigned long n = 1; n <= 600000; n++) {
		printf("tick %lu\n", n);
		fflush(stdout);
		struct pollfd p = {.fd = 0, .events = POLLIN};
		if (poll(&p, 1, 1) > 0) {
			printf("done %lu\n", n);
			return 0;
		}
	}
	printf("FAIL: nobody said stop\n");
	return 1;
}
