/*
 * tcp-convo: one TCP connection held through a scripted conversation, for tests of servers that
 * are snapshotted and resumed while clients are connected (tests/e2e/fd_inet.sh).
 *
 *   tcp-convo HOST PORT STEP...
 *
 * Steps, in order, on the one connection:
 *   say:TEXT     sends "TEXT\n", reads one reply line and prints "reply: LINE"
 *   send:TEXT    sends "TEXT\n" only
 *   read         reads one line and prints "reply: LINE"
 *   http:PATH    sends a keep-alive HTTP/1.1 GET of PATH, reads the response (Content-Length
 *                body) and prints "http: STATUS-LINE body=N bytes"
 *   wait:FILE    prints "waiting FILE", then waits until FILE exists (the test's go-ahead: the
 *                client sends nothing while no server owns the connection)
 *   end          reads until the connection ends and prints "end: eof", "end: ECONNRESET", ...
 * Prints "connected" first and "done" at the end; exits 0, or 1 with "error: ..." (a reset, an
 * early EOF, a malformed reply).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_lines.h"

static void http(const char *path)
{
	char req[1024], status[512], h[1024];
	long len = -1;
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n", path);
	send_all(req, (size_t)n);
	get_line(status, sizeof(status), "reading a reply");
	for (;;) {
		get_line(h, sizeof(h), "reading a reply");
		if (h[0] == '\0')
			break;
		if (strncasecmp(h, "Content-Length:", 15) == 0)
			len = strtol(h + 15, NULL, 10);
	}
	if (len < 0) {
		errno = 0;
		fail("no Content-Length in the response");
	}
	while ((long)have < len) {
		errno = 0;
		if (fill() <= 0)
			fail("reading the body");
	}
	consume((size_t)len);
	printf("http: %s body=%ld bytes\n", status, len);
}

static void wait_for(const char *file)
{
	printf("waiting %s\n", file);
	while (access(file, F_OK) != 0)
		usleep(20000);
}

static void until_end(void)
{
	for (;;) {
		have = 0;
		ssize_t r = fill();
		if (r == 0) {
			printf("end: eof\n");
			return;
		}
		if (r < 0) {
			printf("end: %s\n", errno == ECONNRESET ? "ECONNRESET" : strerror(errno));
			return;
		}
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 3) {
		fprintf(stderr, "usage: tcp-convo HOST PORT STEP...\n");
		return 2;
	}
	connect_to(argv[1], argv[2]);
	char l[sizeof(buf)];
	for (int i = 3; i < argc; i++) {
		const char *s = argv[i];
		if (strncmp(s, "say:", 4) == 0 || strncmp(s, "send:", 5) == 0) {
			const char *t = strchr(s, ':') + 1;
			send_all(t, strlen(t));
			send_all("\n", 1);
			if (s[1] == 'a') {
				get_line(l, sizeof(l), "reading a reply");
				printf("reply: %s\n", l);
			}
		} else if (strcmp(s, "read") == 0) {
			get_line(l, sizeof(l), "reading a reply");
			printf("reply: %s\n", l);
		} else if (strncmp(s, "http:", 5) == 0) {
			http(s + 5);
		} else if (strncmp(s, "wait:", 5) == 0) {
			wait_for(s + 5);
		} else if (strcmp(s, "end") == 0) {
			until_end();
		} else {
			fprintf(stderr, "tcp-convo: unknown step '%s'\n", s);
			return 2;
		}
	}
	printf("done\n");
	return 0;
}
