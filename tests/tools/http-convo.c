/*
 * http-convo: one keep-alive HTTP/1.1 connection held through a scripted conversation, for tests
 * of web servers snapshotted and resumed while clients are mid-request (tests/e2e/fd_servers.sh).
 *
 *   http-convo HOST PORT DOCROOT STEP...
 *
 * Steps, in order, on the one connection:
 *   req:PATH    sends the request line "GET PATH HTTP/1.1" alone (the request is now open)
 *   hdr:TEXT    sends the header line "TEXT"
 *   part:TEXT   sends TEXT with no line end (a header cut short)
 *   end         sends the blank line that ends the request, reads the response and checks it
 *   get:PATH    a whole request for PATH ("Host: localhost"), its response read and checked
 *   wait:FILE   waits until the server has acknowledged every byte sent, prints "waiting FILE",
 *               then waits until FILE exists (the test's go-ahead: the client sends nothing while
 *               no server owns the connection)
 *   eof         reads until the connection ends; prints "eof", or "error: ..." and fails
 * A response is checked: a status line, a Content-Length, and for 200 a body equal to the file
 * DOCROOT/PATH ("/" is /index.html). Each prints "PATH: STATUS-CODE request N, LEN bytes" (N
 * from the server's X-Request header). Prints "connected" first and "done" at the end; exits 0,
 * or 1 with "error: ..." (a reset, an early EOF, a malformed or wrong response).
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp_lines.h"

static const char *docroot;
static char path[1024];

static void send_str(const char *s)
{
	send_all(s, strlen(s));
}

/* The file PATH stands for, whole, or NULL if there is none. */
static char *expected(size_t *len)
{
	char file[2048];
	snprintf(file, sizeof(file), "%s/%s", docroot, strcmp(path, "/") == 0 ? "index.html" : path + 1);
	FILE *f = fopen(file, "rb");
	if (f == NULL)
		return NULL;
	char *b = malloc(sizeof(buf) * 64);
	if (b == NULL)
		failx("malloc", file);
	*len = fread(b, 1, sizeof(buf) * 64, f);
	fclose(f);
	return b;
}

/* Reads and checks the response to the open request. */
static void response(void)
{
	char status[512], h[2048];
	long len = -1, reqno = -1;
	int code;
	get_line(status, sizeof(status), "reading a response");
	if (sscanf(status, "HTTP/1.1 %d", &code) != 1)
		failx("not an HTTP/1.1 status line", status);
	for (;;) {
		get_line(h, sizeof(h), "reading a response");
		if (h[0] == '\0')
			break;
		if (strncasecmp(h, "Content-Length:", 15) == 0)
			len = strtol(h + 15, NULL, 10);
		else if (strncasecmp(h, "X-Request:", 10) == 0)
			reqno = strtol(h + 10, NULL, 10);
	}
	if (len < 0 || len > (long)sizeof(buf) * 64)
		failx("no usable Content-Length in the response to", path);
	char *body = malloc((size_t)len + 1);
	if (body == NULL)
		failx("malloc", path);
	size_t got = 0;
	while (got < (size_t)len) {
		if (have == 0) {
			errno = 0;
			if (fill() <= 0)
				fail("reading the body");
		}
		size_t n = have < (size_t)len - got ? have : (size_t)len - got;
		memcpy(body + got, buf, n);
		consume(n);
		got += n;
	}
	if (code == 200) {
		size_t flen = 0;
		char *want = expected(&flen);
		if (want == NULL || flen != (size_t)len || memcmp(want, body, flen) != 0)
			failx("the body differs from the file", path);
		free(want);
	}
	free(body);
	printf("%s: %d request %ld, %ld bytes\n", path, code, reqno, len);
}

static void request_line(const char *p)
{
	char l[2048];
	snprintf(path, sizeof(path), "%s", p);
	snprintf(l, sizeof(l), "GET %s HTTP/1.1\r\n", p);
	send_str(l);
}

/* Waits until the peer has acknowledged every byte sent: a byte still unacknowledged would be
 * retransmitted, perhaps while no server owns the connection. */
static void settle(void)
{
	int unacked;
	while (ioctl(fd, SIOCOUTQ, &unacked) == 0 && unacked > 0)
		usleep(2000);
}

static void wait_for(const char *file)
{
	settle();
	printf("waiting %s\n", file);
	while (access(file, F_OK) != 0)
		usleep(20000);
}

static void until_eof(void)
{
	for (;;) {
		have = 0;
		errno = 0;
		ssize_t r = fill();
		if (r == 0) {
			printf("eof\n");
			return;
		}
		if (r < 0)
			fail("waiting for the end");
		failx("bytes after the last response", "unexpected");
	}
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 4) {
		fprintf(stderr, "usage: http-convo HOST PORT DOCROOT STEP...\n");
		return 2;
	}
	docroot = argv[3];
	connect_to(argv[1], argv[2]);
	for (int i = 4; i < argc; i++) {
		const char *s = argv[i];
		if (strncmp(s, "req:", 4) == 0) {
			request_line(s + 4);
		} else if (strncmp(s, "hdr:", 4) == 0) {
			send_str(s + 4);
			send_str("\r\n");
		} else if (strncmp(s, "part:", 5) == 0) {
			send_str(s + 5);
		} else if (strcmp(s, "end") == 0) {
			send_str("\r\n");
			response();
		} else if (strncmp(s, "get:", 4) == 0) {
			char r[2048];
			snprintf(path, sizeof(path), "%s", s + 4);
			snprintf(r, sizeof(r), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", path);
			send_str(r);
			response();
		} else if (strncmp(s, "wait:", 5) == 0) {
			wait_for(s + 5);
		} else if (strcmp(s, "eof") == 0) {
			until_eof();
		} else {
			fprintf(stderr, "http-convo: unknown step '%s'\n", s);
			return 2;
		}
	}
	printf("done\n");
	return 0;
}
