/*
 * Snapshots and processes (tests/e2e/procs_fork.sh):
 *   fork_snap refuse FILE   a snapshot while a child lives is refused (EBUSY, one km line naming
 *                           it); the program goes on, and once the child is reaped one is taken.
 *   fork_snap resume FILE   takes a snapshot and goes on; the program resumed from it (whose pid
 *                           is its old one) forks: the child's getppid() is what the parent's
 *                           getpid() says, and its memory is the parent's at the fork.
 * Natively the hypercall is ENOSYS: exit 77.
 */
// E2E: usage 2
#include <sys/wait.h>

#include "snap_common.h"

static int refuse(const char *file)
{
	int go[2];
	if (pipe(go) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		_exit(read(go[0], &c, 1) == 1 ? 0 : 1);
	}
	long r = snap_take("with a child", KM_SNAPSHOT_KEEP_RUNNING, file, NULL);
	if (r == -ENOSYS)
		snap_not_under_km();
	CHECK(r == -EBUSY, "a snapshot with a live child is refused with EBUSY (got %ld)", r);
	CHECK(write(go[1], "g", 1) == 1, "the program goes on after the refusal");
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "its child too");
	r = snap_take("no child", KM_SNAPSHOT_KEEP_RUNNING, file, NULL);
	CHECK(r == KM_SNAPSHOT_TAKEN, "with the child reaped the snapshot is taken (got %ld)", r);
	return check_done();
}

static volatile long marker;

static int resume(const char *file)
{
	marker = 1234;
	long r = snap_take("before fork", KM_SNAPSHOT_KEEP_RUNNING, file, NULL);
	if (r == -ENOSYS)
		snap_not_under_km();
	if (r == KM_SNAPSHOT_TAKEN) {
		printf("snapshot taken\n");
		return 0;
	}
	CHECK(r == KM_SNAPSHOT_RESUMED, "resumed from the snapshot");
	pid_t me = getpid();
	pid_t pid = fork();
	if (pid == 0)
		_exit(getppid() != me ? 1 : marker != 1234 ? 2 : 0);
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid, "a resumed program forks and reaps its child");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the child's getppid() is the resumed parent's getpid() and its memory the parent's (child says %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "refuse") == 0)
		return refuse(argv[2]);
	if (argc == 3 && strcmp(argv[1], "resume") == 0)
		return resume(argv[2]);
	fprintf(stderr, "usage: fork_snap refuse|resume FILE\n");
	return 2;
}
