/*
 * km-mgmt-flood: misbehaving clients of km's management socket, for tests (tests/e2e/mgmt.sh).
 *
 *   km-mgmt-flood hold N SECONDS SOCKET   opens N connections and sends nothing on them; prints
 *                                         "connected N" once all are open, holds them SECONDS
 *                                         (or until killed), then prints "closed-by-km K": how
 *                                         many km had closed by then.
 *   km-mgmt-flood endless SOCKET          sends one request line that never ends until km
 *                                         answers; prints km's reply line, exits 0 if km then
 *                                         closed the connection.
 *
 * Exit status 2 on any failure to connect or a missing reply (message on stderr).
 * Standalone on purpose (no km code), like km-mgmt.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_CONNS 4096

static int usage(void)
{
	fprintf(stderr, "usage: km-mgmt-flood hold N SECONDS SOCKET | km-mgmt-flood endless SOCKET\n");
	return 2;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "km-mgmt-flood: %s: socket path too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "km-mgmt-flood: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* True if km has closed this connection (EOF or reset once what it sent is read). */
static int closed_by_peer(int fd)
{
	char buf[512];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r > 0)
			continue; /* e.g. km's "busy" line before it hung up */
		return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
	}
}

static int hold(int n, int seconds, const char *path)
{
	static int fds[MAX_CONNS];
	for (int i = 0; i < n; i++)
		if ((fds[i] = connect_to(path)) < 0)
			return 2;
	printf("connected %d\n", n);
	fflush(stdout);
	sleep((unsigned)seconds);
	int closed = 0;
	for (int i = 0; i < n; i++)
		closed += closed_by_peer(fds[i]);
	printf("closed-by-km %d\n", closed);
	return 0;
}

/* Reads km's reply line, then expects EOF. */
static int read_reply_then_eof(int fd)
{
	char buf[65536];
	size_t len = 0;
	while (len < sizeof(buf)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 20000) != 1) {
			fprintf(stderr, "km-mgmt-flood: no reply or EOF within 20 s\n");
			return 2;
		}
		ssize_t r = recv(fd, buf + len, sizeof(buf) - len, 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			char *nl = memchr(buf, '\n', len);
			if (nl == NULL) {
				fprintf(stderr, "km-mgmt-flood: connection closed without a reply line\n");
				return 2;
			}
			fwrite(buf, 1, (size_t)(nl - buf) + 1, stdout);
			return nl + 1 == buf + len ? 0 : 2; /* nothing after the reply but EOF */
		}
		len += (size_t)r;
	}
	fprintf(stderr, "km-mgmt-flood: more than %zu bytes from km without EOF\n", sizeof(buf));
	return 2;
}

static int endless(const char *path)
{
	int fd = connect_to(path);
	if (fd < 0)
		return 2;
	static char junk[4096];
	memset(junk, 'x', sizeof(junk));
	memcpy(junk, "snapshot path=", 14);
	size_t sent = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
		if (poll(&p, 1, 20000) != 1) {
			fprintf(stderr, "km-mgmt-flood: km neither reads nor answers (after %zu bytes)\n", sent);
			return 2;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			break;
		ssize_t w = send(fd, sent == 0 ? junk : junk + 14, sent == 0 ? sizeof(junk) : sizeof(junk) - 14,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno != EAGAIN && errno != EINTR)
			break; /* km hung up: its reply, if any, is still to be read */
		if (w > 0)
			sent += (size_t)w;
		if (sent > (256u << 20)) {
			fprintf(stderr, "km-mgmt-flood: km took 256 MiB of one line without answering\n");
			return 2;
		}
	}
	return read_reply_then_eof(fd);
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "hold") == 0) {
		int n = atoi(argv[2]), s = atoi(argv[3]);
		if (n < 1 || n > MAX_CONNS || s < 0)
			return usage();
		return hold(n, s, argv[4]);
	}
	if (argc == 3 && strcmp(argv[1], "endless") == 0)
		return endless(argv[2]);
	return usage();
}
