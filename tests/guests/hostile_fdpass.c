/*
 * hostile_fdpass km TMPDIR: an accomplice outside the guest (tests/tools/km-fdpass) opens files
 * of km's own process and passes them in with SCM_RIGHTS (issue 6, defect 1: "fds passed back in
 * by another process"). km's memory must not arrive (the fd is dropped, MSG_CTRUNC, as for a
 * full table); km's maps arrives as the guest's own maps; nothing lands among km's fds.
 */
// HOSTILE-HELPER: @TOOLS/km-fdpass @TMP/fdpass.sock /proc/%d/mem /proc/%d/task/%d/mem /proc/%d/maps /proc/%d/pagemap
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* Receives one message; returns the tag byte and the fds it carried (-1 if none). */
static int recv_one(int s, int *fd, int *flags)
{
	unsigned char tag = 0xff;
	char ctl[CMSG_SPACE(4 * sizeof(int))];
	struct iovec iov = {.iov_base = &tag, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	*fd = -1;
	ssize_t n = recvmsg(s, &m, 0);
	if (n != 1)
		return -1;
	*flags = m.msg_flags;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
	return tag;
}

static int highest_fd(void)
{
	int hi = -1;
	for (int fd = 0; fd < 2000; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			hi = fd;
	return hi;
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "km") != 0) {
		fprintf(stderr, "usage: hostile_fdpass km TMPDIR (under km only)\n");
		return 2;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/fdpass.sock", argv[2]);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	int rc = -1;
	for (int i = 0; i < 200 && rc < 0; i++) {
		rc = connect(s, (struct sockaddr *)&sa, sizeof(sa));
		if (rc < 0) {
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	CHECK(rc == 0, "connected to the accomplice");
	int before = highest_fd();
	const char *names[] = {"/proc/<km>/mem", "/proc/<km>/task/<km>/mem", "/proc/<km>/maps", "/proc/<km>/pagemap"};
	for (int i = 0; i < 4; i++) {
		int fd, flags = 0;
		int tag = recv_one(s, &fd, &flags);
		CHECK(tag == i, "message %d arrived (tag %d)", i, tag);
		if (i != 2) {
			CHECK(fd < 0 && (flags & MSG_CTRUNC), "%s passed in is dropped with MSG_CTRUNC (fd %d, flags %#x)",
			      names[i], fd, flags);
			if (fd >= 0)
				close(fd);
			continue;
		}
		CHECK(fd >= 0 && fd < 1000, "%s passed in arrives (fd %d)", names[i], fd);
		char buf[8192];
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		buf[n > 0 ? n : 0] = '\0';
		/* km's own maps would name its binary (.../bin/km) and the shared libc it loads; the
		 * guest is static. (Not "/km": a checkout under a directory named km... has that.) */
		CHECK(n > 0 && strstr(buf, "[stack]") != NULL && strstr(buf, "hostile_fdpass") != NULL &&
			  strstr(buf, "/bin/km\n") == NULL && strstr(buf, "libc.so") == NULL,
		      "%s passed in describes the guest", names[i]);
		if (fd >= 0)
			close(fd);
	}
	CHECK(highest_fd() == before, "no fd was left behind (highest %d, before %d)", highest_fd(), before);
	close(s);
	return check_done();
}
