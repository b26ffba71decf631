/*
 * hostile_sigio km TMPDIR: the kernel signals an fd's owner for O_ASYNC I/O (SIGIO), a broken
 * lease and directory notifications (dnotify); the guest's fds are km's, so the owner would be
 * km's own process, which such a signal killed without a word (the guest-syscall fuzzer found it
 * with F_NOTIFY and an rmdir). Each request is refused (EINVAL) and km survives the events.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "km") != 0) {
		fprintf(stderr, "usage: hostile_sigio km TMPDIR (under km only)\n");
		return 2;
	}
	char dir[512], sub[600], file[600];
	snprintf(dir, sizeof(dir), "%s/watched", argv[2]);
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	snprintf(file, sizeof(file), "%s/file", dir);
	CHECK_SYS(mkdir(dir, 0700), "mkdir");
	int dfd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0, "open the directory");
	CHECK_ERR(fcntl(dfd, F_NOTIFY, DN_CREATE | DN_DELETE | DN_MODIFY | DN_MULTISHOT), EINVAL, "F_NOTIFY refused");
	CHECK_SYS(mkdir(sub, 0700), "an event dnotify would have signalled");
	CHECK_SYS(rmdir(sub), "another");

	int p[2];
	CHECK_SYS(pipe(p), "pipe");
	CHECK_SYS(fcntl(p[0], F_SETOWN, getpid()), "F_SETOWN to ourselves (harmless alone)");
	CHECK_SYS(fcntl(p[0], F_SETSIG, SIGSEGV), "F_SETSIG (harmless alone)");
	CHECK_ERR(fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK), EINVAL, "O_ASYNC refused");
	CHECK(!(fcntl(p[0], F_GETFL) & O_ASYNC), "O_ASYNC is not set");
	CHECK(write(p[1], "x", 1) == 1, "data that O_ASYNC would have signalled");

	int fd = open(file, O_CREAT | O_RDONLY, 0600);
	CHECK(fd >= 0, "open a file of our own");
	CHECK_ERR(fcntl(fd, F_SETLEASE, F_RDLCK), EINVAL, "F_SETLEASE F_RDLCK refused");
	errno = 0;
	long un = fcntl(fd, F_SETLEASE, F_UNLCK);
	CHECK(un == 0 || errno == EAGAIN, "F_SETLEASE F_UNLCK is passed to the host (%ld, %s)", un, strerror(errno));
	int w = open(file, O_WRONLY);
	CHECK(w >= 0, "an open for writing a lease would have signalled");
	CHECK_ERR(fcntl(-1, F_NOTIFY, DN_CREATE), EBADF, "a bad fd is still EBADF first");
	CHECK_EQ(write(1, "", 0), 0, "km is intact");
	return check_done();
}
