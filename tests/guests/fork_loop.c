/*
 * Many children one after another: each forked, exiting and reaped (a shell's loop). With no
 * argument: 200 of them, checked. With "stdin": for each line N read, N of them, then "done N" on
 * stdout, until EOF (tests/e2e/procs_fork.sh counts km's fds between rounds: none may leak).
 */
#include <stdlib.h>
#include <sys/wait.h>

#include "check.h"

/* Forks n children that exit with i & 0x7f; returns how many were reaped with that status. */
static int round_of(int n)
{
	int good = 0;
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(i & 0x7f);
		int st = 0;
		if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == (i & 0x7f))
			good++;
	}
	return good;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "stdin") == 0) {
		char line[32];
		while (fgets(line, sizeof(line), stdin) != NULL) {
			int n = atoi(line);
			printf("done %d\n", round_of(n));
			fflush(stdout);
		}
		return 0;
	}
	CHECK(round_of(200) == 200, "200 children forked, exited and reaped in turn");
	return check_done();
}
