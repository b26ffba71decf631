/*
 * The set*id family (setuid ... setgroups), run as root natively and under km.
 *
 *   (no args)   a child drops to nobody (setgroups, setresgid, setresuid) while a thread of its
 *               own runs: getresuid/getresgid say so in both threads, a root-only file cannot be
 *               opened, root cannot be taken back; make's posix_spawn call setresuid(-1, uid, -1)
 *               and the rest of the family succeed as root. Not root: says so and passes.
 *   snap DIR    km only (procs_fork.sh): a child drops to nobody, then snapshots itself into DIR
 *               (which nobody may write: taken) and into DIR/root/ (root's only: refused with
 *               EACCES, and no file there), and goes on running.
 */
// E2E: run 0
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "snap_common.h"

#define NOBODY 65534

static void check_ids(const char *who, unsigned id)
{
	uid_t r = 1, e = 1, s = 1;
	gid_t gr = 1, ge = 1, gs = 1;
	CHECK(getresuid(&r, &e, &s) == 0 && r == id && e == id && s == id, "%s: getresuid gives %u thrice", who, id);
	CHECK(getresgid(&gr, &ge, &gs) == 0 && gr == id && ge == id && gs == id, "%s: getresgid gives %u thrice", who,
	      id);
	CHECK(getgroups(0, NULL) == 0, "%s: no supplementary groups", who);
}

static int drop(void)
{
	return setgroups(0, NULL) == 0 && setresgid(NOBODY, NOBODY, NOBODY) == 0 &&
	       setresuid(NOBODY, NOBODY, NOBODY) == 0
		   ? 0
		   : -1;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int dropped;

/* A thread that exists before the drop: the C library changes its ids too. */
static void *other(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	while (!dropped)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	check_ids("the other thread", NOBODY);
	return NULL;
}

static int child(void)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, other, NULL) == 0, "a second thread");
	CHECK(drop() == 0, "setgroups, setresgid, setresuid to nobody");
	pthread_mutex_lock(&lock);
	dropped = 1;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	check_ids("the dropping thread", NOBODY);
	errno = 0;
	CHECK(open("rootonly", O_RDONLY) < 0 && errno == EACCES, "nobody cannot open a root-only file (EACCES)");
	CHECK_ERR(setuid(0), EPERM, "nobody cannot become root again");
	CHECK_ERR(setresuid(0, 0, 0), EPERM, "nor by setresuid");
	CHECK_ERR(setgroups(0, NULL), EPERM, "nor set groups");
	CHECK(setresuid(-1, NOBODY, -1) == 0, "nobody may set its euid to its own uid");
	CHECK(setfsuid(-1) == NOBODY, "setfsuid(-1) gives the fsuid, nobody");
	return check_done();
}

static void as_root(void)
{
	uid_t uid = getuid();
	gid_t gid = getgid();
	CHECK(setresuid(-1, uid, -1) == 0, "setresuid(-1, uid, -1), as make's posix_spawn child");
	CHECK(setresgid(-1, gid, -1) == 0, "setresgid(-1, gid, -1)");
	CHECK(setuid(uid) == 0 && setgid(gid) == 0, "setuid and setgid to the same ids");
	CHECK(setreuid(-1, uid) == 0 && setregid(-1, gid) == 0, "setreuid and setregid");
	CHECK(setfsuid(uid) == (int)uid && setfsgid(gid) == (int)gid, "setfsuid and setfsgid give the old ids");
	errno = 0;
	CHECK(setgroups((size_t)1 << 20, NULL) < 0 && errno == EINVAL, "setgroups of too many: EINVAL");
	errno = 0;
	CHECK(setgroups(2, (const gid_t *)8) < 0 && errno == EFAULT, "setgroups of a bad list: EFAULT");
}

static int run(void)
{
	if (geteuid() != 0) {
		printf("not root: nothing to test\n");
		return check_done();
	}
	as_root();
	int fd = open("rootonly", O_CREAT | O_TRUNC | O_WRONLY, 0600);
	CHECK(fd >= 0, "a root-only file");
	close(fd);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(child());
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the child's checks passed");
	uid_t r, e, s;
	CHECK(getresuid(&r, &e, &s) == 0 && r == 0 && e == 0 && s == 0, "the parent is still root");
	unlink("rootonly");
	return check_done();
}

/* km only: the snapshots a dropped child may and may not write. */
static int snap(const char *dir)
{
	char ok[4096], denied[4096];
	snprintf(ok, sizeof(ok), "%s/nobody.snap", dir);
	snprintf(denied, sizeof(denied), "%s/root/nobody.snap", dir);
	pid_t pid = fork();
	if (pid == 0) {
		CHECK(drop() == 0, "dropped to nobody");
		long r = snap_take("setid", KM_SNAPSHOT_KEEP_RUNNING, ok, NULL);
		if (r == -ENOSYS)
			snap_not_under_km();
		CHECK(r == KM_SNAPSHOT_TAKEN, "a snapshot into a directory nobody may write (%ld)", r);
		r = snap_take("setid", KM_SNAPSHOT_KEEP_RUNNING, denied, NULL);
		CHECK(r == -EACCES, "a snapshot into root's directory: EACCES (%ld)", r);
		CHECK(access(denied, F_OK) < 0, "and no file there");
		_exit(check_done());
	}
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the child's checks passed");
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "snap") == 0)
		return snap(argv[2]);
	return run();
}
