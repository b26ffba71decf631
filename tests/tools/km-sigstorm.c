/*
 * km-sigstorm PID SIGNAL COUNT: sends SIGNAL to PID COUNT times as fast as kill(2) goes (a storm
 * from outside, tests/e2e/threads.sh), then prints how many were sent. Exits 1 if a kill failed.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: km-sigstorm PID SIGNAL COUNT\n");
		return 2;
	}
	pid_t pid = (pid_t)atoi(argv[1]);
	int sig = atoi(argv[2]);
	long n = atol(argv[3]);
	for (long i = 0; i < n; i++)
		if (kill(pid, sig) < 0) {
			fprintf(stderr, "km-sigstorm: kill %d %d after %ld: %s\n", (int)pid, sig, i, strerror(errno));
			return 1;
		}
	printf("sent %ld\n", n);
	return 0;
}
