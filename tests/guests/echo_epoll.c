/*
 * An epoll echo server with per-connection state, for snapshots of servers (tests/e2e/fd_inet.sh).
 *
 *   echo_epoll PORT [UDPPORT]   serves on 127.0.0.1:PORT (and echoes UDP datagrams on
 *                               127.0.0.1:UDPPORT); prints "listening PORT" once it listens.
 *   echo_epoll                  self-test: serves one in-process client over 127.0.0.1:0.
 *
 * Each line a client sends is answered "N LINE" where N counts that connection's lines (state a
 * resumed server must still have). "opts" is answered with the listener's options as they read
 * now, "quit" ends the server. A UDP datagram D is answered "udp D". A read that fails prints
 * "read error: REASON".
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXFD 1024
#define LINE_MAX_LEN 4096

typedef struct conn {
	unsigned long lines;
	size_t have;
	char buf[LINE_MAX_LEN];
} conn_t;

static conn_t *conns[MAXFD];
static int ep, lst = -1, udp = -1;
static int done;

static void die(const char *what)
{
	printf("FAIL %s: %s\n", what, strerror(errno));
	exit(1);
}

static int opt(int fd, int level, int name)
{
	int v = -1;
	socklen_t n = sizeof(v);
	if (getsockopt(fd, level, name, &v, &n) < 0)
		die("getsockopt");
	return v;
}

static void setopt(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)) < 0)
		die("setsockopt");
}

static void watch(int fd)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		die("epoll_ctl");
}

static struct sockaddr_in local(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (fd < 0)
		die("socket");
	setopt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
	setopt(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
	setopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	setopt(fd, IPPROTO_TCP, TCP_KEEPCNT, 5);
	setopt(fd, IPPROTO_TCP, TCP_NODELAY, 1);
	setopt(fd, SOL_SOCKET, SO_RCVBUF, 100000);
	setopt(fd, IPPROTO_IP, IP_TOS, 0x10);
	struct sockaddr_in a = local(port);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 37) < 0)
		die("bind/listen");
	return fd;
}

static void say(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EAGAIN)
			continue; /* replies are short: the buffer drains quickly */
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void line(int fd, conn_t *c, const char *l)
{
	char out[LINE_MAX_LEN + 256];
	int n;
	c->lines++;
	if (strcmp(l, "quit") == 0) {
		done = 1;
		n = snprintf(out, sizeof(out), "%lu bye\n", c->lines);
	} else if (strcmp(l, "opts") == 0) {
		n = snprintf(out, sizeof(out), "%lu reuseaddr=%d keepalive=%d keepidle=%d keepcnt=%d nodelay=%d rcvbuf=%d tos=%d nonblock=%d\n",
			     c->lines, opt(lst, SOL_SOCKET, SO_REUSEADDR), opt(lst, SOL_SOCKET, SO_KEEPALIVE),
			     opt(lst, IPPROTO_TCP, TCP_KEEPIDLE), opt(lst, IPPROTO_TCP, TCP_KEEPCNT),
			     opt(lst, IPPROTO_TCP, TCP_NODELAY), opt(lst, SOL_SOCKET, SO_RCVBUF), opt(lst, IPPROTO_IP, IP_TOS),
			     (fcntl(lst, F_GETFL) & O_NONBLOCK) != 0);
	} else {
		n = snprintf(out, sizeof(out), "%lu %s\n", c->lines, l);
	}
	say(fd, out, (size_t)n);
}

static void drop(int fd)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	free(conns[fd]);
	conns[fd] = NULL;
}

static void readable(int fd)
{
	conn_t *c = conns[fd];
	ssize_t r = read(fd, c->buf + c->have, sizeof(c->buf) - 1 - c->have);
	if (r < 0 && errno == EAGAIN)
		return;
	if (r < 0) /* a connection resumed as reset must say so, never EBADF */
		printf("read error: %s\n", strerror(errno));
	if (r <= 0) {
		drop(fd);
		return;
	}
	c->have += (size_t)r;
	char *nl;
	while ((nl = memchr(c->buf, '\n', c->have)) != NULL) {
		*nl = '\0';
		line(fd, c, c->buf);
		size_t used = (size_t)(nl - c->buf) + 1;
		memmove(c->buf, nl + 1, c->have - used);
		c->have -= used;
	}
	if (c->have == sizeof(c->buf) - 1)
		drop(fd); /* a line too long: not this server's protocol */
}

static void accept_all(void)
{
	for (;;) {
		int fd = accept4(lst, NULL, NULL, SOCK_NONBLOCK);
		if (fd < 0)
			return;
		if (fd >= MAXFD || (conns[fd] = calloc(1, sizeof(conn_t))) == NULL) {
			close(fd);
			continue;
		}
		watch(fd);
	}
}

static void udp_echo(void)
{
	char b[1500], out[1600];
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t r = recvfrom(udp, b, sizeof(b) - 1, MSG_DONTWAIT, (struct sockaddr *)&from, &fl);
	if (r < 0)
		return;
	b[r] = '\0';
	int n = snprintf(out, sizeof(out), "udp %s", b);
	sendto(udp, out, (size_t)n, 0, (struct sockaddr *)&from, fl);
}

/* One round of events; timeout_ms as epoll_wait. */
static void serve(int timeout_ms)
{
	struct epoll_event ev[16];
	int n = epoll_wait(ep, ev, 16, timeout_ms);
	if (n < 0 && errno != EINTR)
		die("epoll_wait");
	for (int i = 0; i < n; i++) {
		int fd = ev[i].data.fd;
		if (fd == lst)
			accept_all();
		else if (fd == udp)
			udp_echo();
		else if (fd >= 0 && fd < MAXFD && conns[fd] != NULL)
			readable(fd);
	}
}

static int selftest(void)
{
	lst = listen_on(0);
	watch(lst);
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	if (getsockname(lst, (struct sockaddr *)&a, &al) < 0)
		die("getsockname");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, al) < 0 || write(c, "hi\nthere\n", 9) != 9)
		die("client");
	char got[64] = {0};
	size_t have = 0;
	while (have < 13) {
		serve(1000);
		ssize_t r = recv(c, got + have, sizeof(got) - 1 - have, MSG_DONTWAIT);
		if (r > 0)
			have += (size_t)r;
		else if (r == 0 || errno != EAGAIN)
			die("client read");
	}
	if (strcmp(got, "1 hi\n2 there\n") != 0) {
		printf("FAIL the self-test got '%s'\n", got);
		return 1;
	}
	printf("self-test ok\n");
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((ep = epoll_create1(0)) < 0)
		die("epoll_create1");
	if (argc < 2)
		return selftest();
	lst = listen_on(atoi(argv[1]));
	watch(lst);
	if (argc > 2) {
		udp = socket(AF_INET, SOCK_DGRAM, 0);
		struct sockaddr_in a = local(atoi(argv[2]));
		if (udp < 0 || bind(udp, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("udp");
		watch(udp);
	}
	printf("listening %s\n", argv[1]);
	while (!done)
		serve(-1);
	return 0;
}
