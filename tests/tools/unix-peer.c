/*
 * unix-peer: the other side of a unix stream socket, for tests (tests/e2e/fd_pipes.sh).
 *
 *   unix-peer connect PATH LINE   connects to PATH, sends LINE, prints what comes back until the
 *                                 other side closes; exit 0, or 1 with the failing call
 *   unix-peer serve PATH LINE     binds PATH (removing a file there first), listens, prints
 *                                 "ready", accepts one client, sends it LINE, then reads until end
 *                                 of file and prints "peer closed"; exit 0, or 1
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char *what)
{
	printf("unix-peer: %s: %s\n", what, strerror(errno));
	return 1;
}

static int addr(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(a->sun_path, path);
	return 0;
}

static int client(const char *path, const char *line)
{
	struct sockaddr_un a;
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || addr(path, &a) < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0)
		return fail("connect");
	if (write(s, line, strlen(line)) != (ssize_t)strlen(line))
		return fail("write");
	char buf[256];
	ssize_t n;
	while ((n = read(s, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stdout);
	if (n < 0)
		return fail("read");
	putchar('\n');
	return 0;
}

static int server(const char *path, const char *line)
{
	struct sockaddr_un a;
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (s < 0 || addr(path, &a) < 0)
		return fail("socket");
	unlink(path);
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0)
		return fail("bind");
	printf("ready\n");
	fflush(stdout);
	int c = accept(s, NULL, NULL);
	if (c < 0)
		return fail("accept");
	if (write(c, line, strlen(line)) != (ssize_t)strlen(line))
		return fail("write");
	char buf[256];
	ssize_t n;
	while ((n = read(c, buf, sizeof(buf))) > 0)
		;
	printf("peer closed\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: unix-peer connect|serve PATH LINE\n");
		return 2;
	}
	if (strcmp(argv[1], "connect") == 0)
		return client(argv[2], argv[3]);
	if (strcmp(argv[1], "serve") == 0)
		return server(argv[2], argv[3]);
	fprintf(stderr, "unix-peer: unknown mode %s\n", argv[1]);
	return 2;
}
