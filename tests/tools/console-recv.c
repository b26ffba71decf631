/*
 * console-recv SOCKET [INPUT]: the other end of `km-shim create --console-socket SOCKET`, as
 * containerd and podman are. Listens on the unix socket SOCKET, accepts one connection, receives
 * the pty master by SCM_RIGHTS (the message's bytes are the pty's name, as runc sends it), prints
 * "console-recv: got fd, name NAME" on stderr, writes INPUT (if given) to the master, then copies
 * everything read from the master to stdout until the last slave is closed (EIO) or EOF.
 * Exits 0 if a master arrived, 1 otherwise (with one line on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char *what)
{
	fprintf(stderr, "console-recv: %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: console-recv SOCKET [INPUT]\n");
		return 1;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "console-recv: socket path too long\n");
		return 1;
	}
	strcpy(sa.sun_path, argv[1]);
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0)
		return fail("listen");
	int s = accept(ls, NULL, NULL);
	if (s < 0)
		return fail("accept");
	char name[256] = "", cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	ssize_t n = recvmsg(s, &mh, 0);
	if (n < 0)
		return fail("recvmsg");
	name[n] = 0;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(sizeof(int))) {
		fprintf(stderr, "console-recv: the message carried no descriptor\n");
		return 1;
	}
	int master;
	memcpy(&master, CMSG_DATA(cm), sizeof(int));
	close(s);
	close(ls);
	fprintf(stderr, "console-recv: got fd, name %s\n", name);
	if (argc == 3 && write(master, argv[2], strlen(argv[2])) < 0)
		return fail("writing the input");
	char buf[4096];
	for (;;) {
		n = read(master, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (write(1, buf, (size_t)n) != n)
			return fail("stdout");
	}
	return 0;
}
