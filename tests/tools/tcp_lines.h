/*
 * The client side the scripted TCP test clients share (tcp-convo.c, http-convo.c): one
 * connection, a receive buffer read line by line, sends carried on after short writes, and an
 * acknowledgement sent at once for every receive.
 *
 * Why at once: a client that waits for a test's go-ahead must owe the server nothing, so that a
 * test of a stop-mode snapshot holds even where km could not install its network lock: any
 * segment, a bare delayed ACK included, that reaches the host while no km owns the connection
 * and no lock drops it draws a reset (docs/snapshot-files.md, "Kind 8: inet").
 *
 * A tool includes it once; errors end the tool with "error: WHAT: REASON" and status 1.
 */
#ifndef KM_TEST_TCP_LINES_H
#define KM_TEST_TCP_LINES_H

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int fd;
static char buf[1 << 16];
static size_t have;

__attribute__((noreturn)) static void fail(const char *what)
{
	printf("error: %s: %s\n", what, errno != 0 ? strerror(errno) : "connection closed");
	exit(1);
}

__attribute__((noreturn, unused)) static void failx(const char *what, const char *detail)
{
	printf("error: %s: %s\n", what, detail);
	exit(1);
}

static void send_all(const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			fail("send");
		s += w;
		n -= (size_t)w;
	}
}

/* Reads more bytes into buf; 0 at EOF, -1 with errno. */
static ssize_t fill(void)
{
	if (have == sizeof(buf))
		return errno = EMSGSIZE, -1;
	ssize_t r;
	do
		r = recv(fd, buf + have, sizeof(buf) - have, 0);
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
		have += (size_t)r;
	}
	return r;
}

static void consume(size_t n)
{
	memmove(buf, buf + n, have - n);
	have -= n;
}

/* One line without its LF (or CRLF), into out; `what` names it in the error at EOF. */
static void get_line(char *out, size_t size, const char *what)
{
	char *nl;
	while ((nl = memchr(buf, '\n', have)) == NULL) {
		errno = 0;
		if (fill() <= 0)
			fail(what);
	}
	size_t n = (size_t)(nl - buf);
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	snprintf(out, size, "%.*s", (int)n, buf);
	consume((size_t)(nl - buf) + 1);
}

/* Connects fd to HOST:PORT and prints "connected". */
static void connect_to(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		failx("resolving the address", host);
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0)
		fail("connect");
	freeaddrinfo(ai);
	printf("connected\n");
}

#endif
