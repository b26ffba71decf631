/*
 * A chain of forks: each generation forks the next and ends (an orphan chain: at most two alive at
 * once). With no argument: 50 generations, the last one reporting back through a pipe. With
 * "N stdin": the first and the last generation each print "gen K pid P" and wait for a line on
 * stdin (tests/e2e/procs_fork.sh looks at km's stack between them: it must not grow per
 * generation).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "check.h"

static void wait_line(int gen)
{
	char line[16];
	printf("gen %d pid %d\n", gen, (int)getpid());
	fflush(stdout);
	if (fgets(line, sizeof(line), stdin) == NULL)
		_exit(3);
}

int main(int argc, char **argv)
{
	int n = 50;
	bool serve = argc == 3 && strcmp(argv[2], "stdin") == 0;
	if (serve)
		n = atoi(argv[1]);
	int report[2];
	if (n < 2 || pipe(report) < 0)
		return 2;
	pid_t first = getpid();
	for (int gen = 1; gen <= n; gen++) {
		if (serve && (gen == 1 || gen == n))
			wait_line(gen);
		if (gen == n)
			break;
		pid_t pid = fork();
		if (pid < 0)
			_exit(4);
		if (pid > 0 && getpid() != first)
			_exit(0); /* a middle generation: its child goes on */
		if (pid > 0)
			break; /* the first one waits for the last one's word below */
	}
	if (getpid() != first) {
		char ok = 'k';
		_exit(write(report[1], &ok, 1) == 1 ? 0 : 5);
	}
	close(report[1]);
	char c = 0;
	CHECK(read(report[0], &c, 1) == 1 && c == 'k', "the last of %d generations reports back", n);
	while (wait(NULL) > 0)
		;
	return check_done();
}
