/*
 * Hostile guest: a forked child must get nothing of km's but what a native child gets. km's own
 * fds (1000 up: /dev/kvm, the parent's VM and vCPUs, its management socket) are not the child's,
 * the child sees exactly the fds its parent saw, and the parent's memory after the fork is out of
 * its reach both ways (a write on either side is not seen by the other).
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define KM_FDS 1000

static int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;
	while (d != NULL && readdir(d) != NULL)
		n++;
	if (d != NULL)
		closedir(d);
	return n;
}

/* The child's verdict as its exit status (0: nothing reached). */
static int child(int parent_fds, volatile char *page, int go, int back)
{
	for (int fd = KM_FDS; fd < KM_FDS + 64; fd++)
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			return 1;
	if (dup2(0, KM_FDS) >= 0)
		return 2;
	if (fd_count() != parent_fds)
		return 3;
	char c;
	if (page[0] != 'A')
		return 4;
	page[0] = 'C'; /* the parent must not see this */
	if (write(back, "c", 1) != 1 || read(go, &c, 1) != 1)
		return 5;
	return page[0] == 'C' ? 0 : 6; /* and we must not see the parent's 'B' */
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	volatile char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int go[2], back[2];
	if (page == MAP_FAILED || pipe(go) < 0 || pipe(back) < 0)
		return 1;
	page[0] = 'A';
	int n = fd_count();
	pid_t pid = fork();
	if (pid == 0)
		_exit(child(n, page, go[0], back[1]));
	char c;
	CHECK(read(back[0], &c, 1) == 1, "the child reached its write");
	CHECK(page[0] == 'A', "the child's write to private memory is not the parent's");
	page[0] = 'B';
	CHECK(write(go[1], "g", 1) == 1, "the parent wrote after the fork");
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "the child reached none of km's fds and none of the parent's memory (child says %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	CHECK(fd_count() == n, "the fork left the parent no new fd");
	return check_done();
}
