/*
 * execve from a second thread while the first one runs: the pid stays, the thread that exec'd is
 * the only one left (and its tid is the pid, as Linux's de_thread makes it the leader).
 */
// E2E: run 0
#include <pthread.h>
#include <sys/syscall.h>

#include "check.h"

static volatile int spinning;
static char pid[32];

static void *execer(void *arg)
{
	char **argv0 = arg;
	while (!spinning)
		;
	char *argv[] = {*argv0, "after", pid, NULL};
	fflush(stdout);
	execve("/proc/self/exe", argv, (char *[]){NULL});
	printf("FAIL execve: %s\n", strerror(errno));
	exit(1);
}

static int threads(void)
{
	char line[256];
	int n = -1;
	FILE *f = fopen("/proc/self/status", "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		sscanf(line, "Threads: %d", &n);
	if (f != NULL)
		fclose(f);
	return n;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "after") == 0) {
		CHECK(atoi(argv[2]) == getpid(), "the pid stays when a second thread execs");
		CHECK(syscall(SYS_gettid) == getpid(), "the thread that exec'd is the leader");
		CHECK(threads() == 1, "the other thread is gone");
		return check_done();
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	pthread_t t;
	CHECK(pthread_create(&t, NULL, execer, argv) == 0, "second thread started");
	for (;;)
		spinning = 1; /* runs until the exec ends this thread */
}
