/*
 * km-fdpass: an accomplice outside the guest, for the hostile-guest suite. It plays the other
 * process of issue 6's "fds passed back in by another process": it opens files that name km's
 * own process and hands them to the guest over a unix socket.
 *
 *   km-fdpass SOCKET TEMPLATE...
 *
 * Listens on SOCKET, accepts one connection, learns the peer's pid (SO_PEERCRED: km's pid, since
 * the guest is km's process), and for each TEMPLATE (a path with %d for that pid, e.g.
 * /proc/%d/mem; every %d is replaced) opens it (read-write, else read-only) and sends the fd with SCM_RIGHTS in a
 * message of its own whose one data byte is the template's index. Then waits for the peer to
 * close. Exit status 0, or 2 with a message on stderr. Gives up after 30 s.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "km-fdpass: %s: %s\n", what, strerror(errno));
	return 2;
}

static int send_fd(int conn, int fd, unsigned char tag)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof(ctl));
	struct iovec iov = {.iov_base = &tag, .iov_len = 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	return sendmsg(conn, &m, 0) == 1 ? 0 : -1;
}

/* The template with every "%d" replaced by pid. */
static int expand(const char *tmpl, pid_t pid, char *out, size_t size)
{
	char num[16];
	int nl = snprintf(num, sizeof(num), "%d", (int)pid);
	size_t o = 0;
	for (const char *p = tmpl; *p != '\0'; p++) {
		bool hole = p[0] == '%' && p[1] == 'd';
		size_t need = hole ? (size_t)nl : 1;
		if (o + need + 1 > size)
			return -1;
		memcpy(out + o, hole ? num : p, need);
		o += need;
		p += hole;
	}
	out[o] = '\0';
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: km-fdpass SOCKET TEMPLATE...\n");
		return 2;
	}
	alarm(30);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "km-fdpass: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	unlink(argv[1]);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0)
		return fail(argv[1]);
	int conn = accept(ls, NULL, NULL);
	if (conn < 0)
		return fail("accept");
	struct ucred cred;
	socklen_t len = sizeof(cred);
	if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return fail("SO_PEERCRED");
	for (int i = 2; i < argc; i++) {
		char path[512];
		if (expand(argv[i], cred.pid, path, sizeof(path)) < 0) {
			fprintf(stderr, "km-fdpass: template too long: %s\n", argv[i]);
			return 2;
		}
		int fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return fail(path);
		if (send_fd(conn, fd, (unsigned char)(i - 2)) < 0)
			return fail("sendmsg");
		close(fd);
	}
	char c;
	while (read(conn, &c, 1) > 0)
		;
	return 0;
}
