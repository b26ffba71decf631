/*
 * Orphan reparenting (issue 10): a child forks a grandchild and exits; the grandchild must be
 * reparented to the reaper and reaped by its wait(), exactly as under Linux.
 *   proc_orphan subreaper   the reaper is this process, made a child subreaper with prctl
 *   proc_orphan init        this process must be pid 1 of its pid namespace (a container:
 *                           tests/e2e/procs.sh runs it under unshare and km-shim), the reaper
 *                           of every orphan in it
 * No timing: the grandchild learns that its parent is gone from a pipe the reaper writes only
 * after it has reaped the child (Linux reparents before the parent becomes a zombie).
 */
// E2E: subreaper 0 subreaper
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "check.h"

/* The grandchild: waits for the go byte, exits 0 if its parent is now `reaper`, else 1. */
static void grandchild(int go, pid_t reaper)
{
	char c;

	if (read(go, &c, 1) != 1)
		_exit(2);
	_exit(getppid() == reaper ? 0 : 1);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "subreaper";
	pid_t me = getpid(), child, gc = -1, w;
	int go[2], info[2], st;

	if (!strcmp(mode, "init")) {
		CHECK_EQ(me, 1, "this process is pid 1 of its namespace");
		CHECK_EQ(getppid(), 0, "pid 1's parent is outside the namespace (0)");
	} else {
		CHECK_SYS(prctl(PR_SET_CHILD_SUBREAPER, 1), "prctl(PR_SET_CHILD_SUBREAPER)");
		int on = 0;
		CHECK_SYS(prctl(PR_GET_CHILD_SUBREAPER, &on), "prctl(PR_GET_CHILD_SUBREAPER)");
		CHECK_EQ(on, 1, "this process is a child subreaper");
	}
	CHECK_SYS(pipe(go), "pipe (go)");
	CHECK_SYS(pipe(info), "pipe (grandchild's pid)");

	child = fork();
	if (child == 0) {
		close(go[1]);
		close(info[0]);
		pid_t g = fork();
		if (g == 0)
			grandchild(go[0], me);
		if (g < 0 || write(info[1], &g, sizeof(g)) != sizeof(g))
			_exit(3);
		_exit(0); /* orphans the grandchild */
	}
	if (!CHECK(child > 0, "fork the child"))
		return check_done();
	close(go[0]);
	close(info[1]);
	if (!CHECK(read(info[0], &gc, sizeof(gc)) == sizeof(gc) && gc > 0, "the child forked a grandchild"))
		return check_done();
	close(info[0]);

	w = waitpid(child, &st, 0);
	CHECK(w == child && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child exited 0 and was reaped");
	CHECK_EQ(write(go[1], "g", 1), 1, "tell the grandchild its parent is gone");
	close(go[1]);

	/* The grandchild is ours now: wait(-1) must return it. */
	w = wait(&st);
	CHECK(w == gc, "wait() returns the reparented grandchild");
	CHECK(w == gc && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the grandchild saw this process as its parent");
	CHECK_ERR(wait(&st), ECHILD, "then no children are left");

	/* A SIGCHLD for the orphan's death arrives here too: the zombie of an orphan whose reaper
	 * ignores SIGCHLD is reaped automatically, so wait finds nothing. */
	signal(SIGCHLD, SIG_IGN);
	child = fork();
	if (child == 0) {
		if (fork() == 0)
			_exit(0);
		_exit(0);
	}
	CHECK_ERR(waitpid(-1, &st, 0), ECHILD, "with SIGCHLD ignored, child and orphan reap themselves");
	return check_done();
}
