/*
 * A small single-process HTTP/1.1 file server with keep-alive on poll(), for snapshots of servers
 * holding several client connections (tests/e2e/fd_servers.sh).
 *
 *   http_keepalive PORT DIR   serves the files of DIR on 127.0.0.1:PORT; prints "listening PORT"
 *                             once it listens
 *   http_keepalive            self-test: serves one in-process client over 127.0.0.1:0
 *
 * GET and HEAD of /NAME (letters, digits, '.', '_', '-', '/'; no ".."; "/" is /index.html)
 * answer the file with Content-Length and "X-Request: N", N counting that connection's requests
 * (state a resumed server must still have). Connections are kept alive unless the request says
 * "Connection: close" or is HTTP/1.0 without "Connection: keep-alive". Requests may come in
 * pieces and pipelined. GET /quit answers "bye\n" and ends the server, which then prints
 * "served R requests on C connections" (totals over the whole life, snapshots included).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXCONN 64
#define REQ_MAX 8192
#define FILE_MAX (4 << 20)

typedef struct conn {
	int fd;
	unsigned long requests;
	size_t have;
	char in[REQ_MAX];
	char *out;
	size_t out_len, out_off;
	int close_after;
} conn_t;

static conn_t *conns[MAXCONN];
static int lst = -1, dir = -1;
static int quitting, done;
static unsigned long total_requests, total_conns;

static void die(const char *what)
{
	printf("FAIL %s: %s\n", what, strerror(errno));
	exit(1);
}

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		die("socket");
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
		die("bind/listen");
	return fd;
}

static void drop(int i)
{
	close(conns[i]->fd);
	free(conns[i]->out);
	free(conns[i]);
	conns[i] = NULL;
}

/* Queues a response; body may be NULL (HEAD, errors without a body). */
static void respond(conn_t *c, const char *status, const char *body, size_t len, int send_body)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %s\r\nContent-Length: %zu\r\nContent-Type: application/octet-stream\r\n"
			 "X-Request: %lu\r\nConnection: %s\r\n\r\n",
			 status, len, c->requests, c->close_after ? "close" : "keep-alive");
	size_t total = (size_t)n + (send_body ? len : 0);
	c->out = malloc(total);
	if (c->out == NULL)
		die("malloc");
	memcpy(c->out, head, (size_t)n);
	if (send_body && len > 0)
		memcpy(c->out + n, body, len);
	c->out_len = total;
	c->out_off = 0;
}

/* The file's contents, or NULL with *status set. A name that could leave DIR is refused. */
static char *load(const char *path, size_t *len, const char **status)
{
	if (strcmp(path, "/") == 0)
		path = "/index.html";
	if (path[0] != '/' || path[1] == '\0' || strstr(path, "..") != NULL ||
	    strspn(path + 1, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/") != strlen(path + 1)) {
		*status = "400 Bad Request";
		return NULL;
	}
	*status = "404 Not Found";
	int fd = openat(dir, path + 1, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *b = NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= FILE_MAX && (b = malloc((size_t)st.st_size + 1)) != NULL) {
		size_t got = 0;
		ssize_t r;
		while (got < (size_t)st.st_size && (r = read(fd, b + got, (size_t)st.st_size - got)) > 0)
			got += (size_t)r;
		*len = got;
		*status = "200 OK";
	}
	close(fd);
	return b;
}

static int header_is(const char *h, const char *name, const char *value)
{
	size_t n = strlen(name);
	if (strncasecmp(h, name, n) != 0 || h[n] != ':')
		return 0;
	h += n + 1;
	h += strspn(h, " \t");
	return strncasecmp(h, value, strlen(value)) == 0;
}

/* Handles the request in c->in[0..end) (end is just past its blank line). */
static void request(conn_t *c, size_t end)
{
	char method[16], path[1024], version[16];
	c->in[end - 1] = '\0';
	c->requests++;
	total_requests++;
	if (sscanf(c->in, "%15s %1023s %15s", method, path, version) != 3 || strncmp(version, "HTTP/1.", 7) != 0) {
		c->close_after = 1;
		respond(c, "400 Bad Request", NULL, 0, 0);
		return;
	}
	int keep = strcmp(version, "HTTP/1.0") != 0;
	for (char *h = strstr(c->in, "\r\n"); h != NULL && h[2] != '\0'; h = strstr(h + 2, "\r\n")) {
		if (header_is(h + 2, "Connection", "close"))
			keep = 0;
		else if (header_is(h + 2, "Connection", "keep-alive"))
			keep = 1;
	}
	c->close_after = !keep;
	int get = strcmp(method, "GET") == 0;
	if (!get && strcmp(method, "HEAD") != 0) {
		respond(c, "405 Method Not Allowed", NULL, 0, 0);
		return;
	}
	if (get && strcmp(path, "/quit") == 0) {
		quitting = 1;
		c->close_after = 1;
		respond(c, "200 OK", "bye\n", 4, 1);
		return;
	}
	size_t len = 0;
	const char *status;
	char *body = load(path, &len, &status);
	respond(c, status, body, len, get);
	free(body);
}

/* Starts the next complete request in the buffer, if any and if no response is pending. */
static void next_request(conn_t *c)
{
	if (c->out != NULL || c->have == 0)
		return;
	c->in[c->have] = '\0';
	char *e = strstr(c->in, "\r\n\r\n");
	if (e == NULL) {
		if (c->have == sizeof(c->in) - 1) {
			c->close_after = 1;
			respond(c, "431 Request Header Fields Too Large", NULL, 0, 0);
			c->have = 0;
		}
		return;
	}
	size_t used = (size_t)(e - c->in) + 4;
	request(c, used);
	memmove(c->in, c->in + used, c->have - used);
	c->have -= used;
}

/* Writes what it can of the pending response; 0 once the connection must be dropped. */
static int flush(conn_t *c)
{
	while (c->out != NULL) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN)
			return 1;
		if (w < 0)
			return 0;
		c->out_off += (size_t)w;
		if (c->out_off < c->out_len)
			continue;
		free(c->out);
		c->out = NULL;
		if (c->close_after) {
			if (quitting)
				done = 1;
			return 0;
		}
		next_request(c);
	}
	return 1;
}

static int readable(conn_t *c)
{
	ssize_t r = recv(c->fd, c->in + c->have, sizeof(c->in) - 1 - c->have, 0);
	if (r < 0 && errno == EAGAIN)
		return 1;
	if (r < 0) /* a connection resumed as reset must say so, never EBADF */
		printf("read error: %s\n", strerror(errno));
	if (r <= 0)
		return 0;
	c->have += (size_t)r;
	next_request(c);
	return flush(c);
}

static void accept_all(void)
{
	for (;;) {
		int fd = accept4(lst, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		int i = 0;
		while (i < MAXCONN && conns[i] != NULL)
			i++;
		if (i == MAXCONN || (conns[i] = calloc(1, sizeof(conn_t))) == NULL) {
			close(fd);
			continue;
		}
		conns[i]->fd = fd;
		total_conns++;
	}
}

/* One round of poll over the listener and every connection; timeout_ms as poll. */
static void serve(int timeout_ms)
{
	struct pollfd p[MAXCONN + 1];
	int idx[MAXCONN + 1], n = 0;
	p[n] = (struct pollfd){.fd = lst, .events = POLLIN};
	idx[n++] = -1;
	for (int i = 0; i < MAXCONN; i++) {
		if (conns[i] == NULL)
			continue;
		p[n] = (struct pollfd){.fd = conns[i]->fd, .events = conns[i]->out != NULL ? POLLOUT : POLLIN};
		idx[n++] = i;
	}
	int r = poll(p, (nfds_t)n, timeout_ms);
	if (r < 0 && errno != EINTR)
		die("poll");
	for (int k = 0; r > 0 && k < n; k++) {
		if (p[k].revents == 0)
			continue;
		if (idx[k] < 0) {
			accept_all();
			continue;
		}
		conn_t *c = conns[idx[k]];
		int keep = (p[k].revents & POLLOUT) ? flush(c) : readable(c);
		if (!keep)
			drop(idx[k]);
	}
}

/* The in-process client of the self-test: sends req in pieces, one per serve round, then reads
 * until it holds want bytes. */
static int exchange(int c, const char *const *pieces, char *got, size_t want)
{
	size_t have = 0;
	for (int i = 0; pieces[i] != NULL; i++) {
		if (write(c, pieces[i], strlen(pieces[i])) != (ssize_t)strlen(pieces[i]))
			die("client write");
		serve(100);
	}
	while (have < want) {
		serve(1000);
		ssize_t r = recv(c, got + have, want - have, MSG_DONTWAIT);
		if (r > 0)
			have += (size_t)r;
		else if (r == 0 || errno != EAGAIN)
			die("client read");
	}
	got[have] = '\0';
	return 0;
}

static int selftest(void)
{
	char tmpl[] = "/tmp/http_keepalive.XXXXXX", file[64], got[1024];
	if (mkdtemp(tmpl) == NULL)
		die("mkdtemp");
	snprintf(file, sizeof(file), "%s/a.txt", tmpl);
	FILE *f = fopen(file, "w");
	if (f == NULL || fputs("alpha\n", f) < 0 || fclose(f) != 0)
		die("writing a.txt");
	if ((dir = open(tmpl, O_RDONLY | O_DIRECTORY)) < 0)
		die("open dir");
	lst = listen_on(0);
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	if (getsockname(lst, (struct sockaddr *)&a, &al) < 0)
		die("getsockname");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (struct sockaddr *)&a, al) < 0)
		die("client");
	const char *one[] = {"GET /a.txt HTTP/1.1\r\n", "Host: x\r\n", "\r\n", NULL};
	const char *two[] = {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\nHEAD /a.txt HTTP/1.1\r\n\r\n", NULL};
	static const char want1[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: application/octet-stream\r\n"
				    "X-Request: 1\r\nConnection: keep-alive\r\n\r\nalpha\n";
	static const char want2[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nContent-Type: application/octet-stream\r\n"
				    "X-Request: 2\r\nConnection: keep-alive\r\n\r\n"
				    "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: application/octet-stream\r\n"
				    "X-Request: 3\r\nConnection: keep-alive\r\n\r\n";
	int ok = 1;
	exchange(c, one, got, sizeof(want1) - 1);
	if (strcmp(got, want1) != 0)
		ok = 0, printf("FAIL the first response was '%s'\n", got);
	exchange(c, two, got, sizeof(want2) - 1);
	if (strcmp(got, want2) != 0)
		ok = 0, printf("FAIL the pipelined responses were '%s'\n", got);
	close(c);
	unlink(file);
	rmdir(tmpl);
	if (ok)
		printf("self-test ok\n");
	return !ok;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2)
		return selftest();
	if (argc != 3)
		return fprintf(stderr, "usage: http_keepalive [PORT DIR]\n"), 2;
	if ((dir = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		die("open DIR");
	lst = listen_on(atoi(argv[1]));
	printf("listening %s\n", argv[1]);
	while (!done)
		serve(-1);
	printf("served %lu requests on %lu connections\n", total_requests, total_conns);
	return 0;
}
