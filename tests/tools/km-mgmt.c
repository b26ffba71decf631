/*
 * km-mgmt: a client for km's management socket (docs/mgmt-protocol.md), for tests and by hand.
 *
 *   km-mgmt [--wait-socket SECONDS] [--spin] [--timeout SECONDS] [--raw] [--dir DIR]
 *           [--send-fd FILE] SOCKET REQUEST...
 *
 * Sends one request and prints km's reply line on stdout. REQUEST is the verb followed by
 * key=value words with plain values, which km-mgmt percent-encodes:
 *
 *   km-mgmt /run/km.sock snapshot "path=my snap" mode=continue label=before-upgrade
 *   -> snapshot path=my%20snap mode=continue label=before-upgrade
 *
 * --raw sends the words joined by single spaces exactly as given (to test malformed requests).
 * --wait-socket retries the connection until km listens, for at most SECONDS.
 * --spin retries without pausing, so the request reaches km in its first moments (start-up
 * races); started before km, it is connected as soon as km listens.
 * --timeout gives up if no reply arrives within SECONDS (default: wait as long as it takes).
 * --dir opens the directory DIR and passes it with the request (SCM_RIGHTS, in the same sendmsg
 * as the request's first byte): what `snapshot dir=fd name=FILE` writes into.
 * --send-fd passes FILE (opened for reading) the same way, for any request (tests: km must close
 * an fd a request did not ask for).
 *
 * Exit status: 0 for an `ok` reply, 1 for an `error` reply, 2 when there is no valid reply
 * (cannot connect, connection closed, timeout, malformed reply) or bad usage.
 *
 * Standalone on purpose (no km code): it is a second implementation of the protocol, as
 * km-shim's will be.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define REQUEST_MAX 16384 /* km's limit on one request line */
#define REPLY_MAX 65536

static int usage(void)
{
	fprintf(stderr, "usage: km-mgmt [--wait-socket SECONDS] [--spin] [--timeout SECONDS] [--raw] [--dir DIR] "
			"[--send-fd FILE] SOCKET REQUEST...\n");
	return 2;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Seconds as a decimal number (e.g. "5", "0.5") -> milliseconds; -1 if malformed. */
static int64_t parse_seconds(const char *s)
{
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(d >= 0) || d > 86400.0 * 365)
		return -1;
	return (int64_t)(d * 1000.0);
}

/* Appends text to the request buffer; false if it would not fit. */
static bool append(char *buf, size_t *len, const char *s, size_t n)
{
	if (*len + n >= REQUEST_MAX + 2)
		return false;
	memcpy(buf + *len, s, n);
	*len += n;
	return true;
}

/* Appends a value percent-encoded: bytes outside 0x21..0x7e, and '%', as %XX. */
static bool append_encoded(char *buf, size_t *len, const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)v; *p != '\0'; p++) {
		char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
		bool raw = *p >= 0x21 && *p <= 0x7e && *p != '%';
		if (!append(buf, len, raw ? (const char *)p : e, raw ? 1 : 3))
			return false;
	}
	return true;
}

/* Builds the request line (with its LF) from the words. */
static bool build_request(char **words, int n, bool raw, char *buf, size_t *len)
{
	*len = 0;
	for (int i = 0; i < n; i++) {
		if (i > 0 && !append(buf, len, " ", 1))
			return false;
		const char *eq = strchr(words[i], '=');
		if (raw || i == 0 || eq == NULL) {
			if (!append(buf, len, words[i], strlen(words[i])))
				return false;
		} else if (!append(buf, len, words[i], (size_t)(eq - words[i]) + 1) ||
			   !append_encoded(buf, len, eq + 1)) {
			return false;
		}
	}
	return append(buf, len, "\n", 1);
}

/* Connects, retrying while the socket is missing or not listening yet until wait_ms has
 * passed. Returns the fd or -1 (message printed). */
static int connect_socket(const char *path, int64_t wait_ms, bool spin)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "km-mgmt: %s: socket path too long\n", path);
		return -1;
	}
	strcpy(sa.sun_path, path);
	int64_t deadline = now_ms() + wait_ms;
	for (;;) {
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			fprintf(stderr, "km-mgmt: socket: %s\n", strerror(errno));
			return -1;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		int e = errno;
		close(fd);
		if ((e != ENOENT && e != ECONNREFUSED) || now_ms() >= deadline) {
			fprintf(stderr, "km-mgmt: %s: %s\n", path, strerror(e));
			return -1;
		}
		if (!spin)
			usleep(20000);
	}
}

static bool send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Sends the request, with fd (if >= 0) attached to its first bytes. */
static bool send_request(int fd, const char *p, size_t n, int pass)
{
	if (pass < 0)
		return send_all(fd, p, n);
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {(void *)p, n};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &pass, sizeof(int));
	ssize_t w;
	do
		w = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	if (w <= 0)
		return false;
	return send_all(fd, p + w, n - (size_t)w);
}

/* Reads up to and including the first LF. Returns the line's length (LF included) or -1. */
static ssize_t read_reply(int fd, char *buf, size_t size, int64_t timeout_ms)
{
	size_t len = 0;
	int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
	while (len < size) {
		int wait = -1;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();
			if (left <= 0) {
				fprintf(stderr, "km-mgmt: no reply within the timeout\n");
				return -1;
			}
			wait = left > 1000000 ? 1000000 : (int)left;
		}
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, wait);
		if (r < 0 && errno != EINTR) {
			fprintf(stderr, "km-mgmt: poll: %s\n", strerror(errno));
			return -1;
		}
		if (r <= 0)
			continue;
		ssize_t n = recv(fd, buf + len, size - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			fprintf(stderr, "km-mgmt: connection closed before a complete reply%s%s\n",
				n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
			return -1;
		}
		char *nl = memchr(buf + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl != NULL)
			return nl - buf + 1;
	}
	fprintf(stderr, "km-mgmt: reply longer than %zu bytes\n", size);
	return -1;
}

/* 0 for "ok", 1 for "error", 2 for anything else. */
static int classify(const char *line, size_t len)
{
	if ((len == 3 && memcmp(line, "ok\n", 3) == 0) || (len > 3 && memcmp(line, "ok ", 3) == 0))
		return 0;
	if (len > 6 && memcmp(line, "error ", 6) == 0)
		return 1;
	fprintf(stderr, "km-mgmt: malformed reply\n");
	return 2;
}

int main(int argc, char **argv)
{
	int64_t wait_ms = 0, timeout_ms = -1;
	bool raw = false, spin = false;
	int i = 1, pass = -1;
	for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
		if (strcmp(argv[i], "--raw") == 0) {
			raw = true;
		} else if (strcmp(argv[i], "--spin") == 0) {
			spin = true;
		} else if (strcmp(argv[i], "--wait-socket") == 0 && i + 1 < argc) {
			if ((wait_ms = parse_seconds(argv[++i])) < 0)
				return usage();
		} else if ((strcmp(argv[i], "--dir") == 0 || strcmp(argv[i], "--send-fd") == 0) && i + 1 < argc && pass < 0) {
			bool dir = argv[i][2] == 'd';
			pass = open(argv[i + 1], O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
			if (pass < 0) {
				fprintf(stderr, "km-mgmt: %s: %s\n", argv[i + 1], strerror(errno));
				return 2;
			}
			i++;
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			if ((timeout_ms = parse_seconds(argv[++i])) < 0)
				return usage();
		} else {
			return usage();
		}
	}
	if (argc - i < 2)
		return usage();
	static char req[REQUEST_MAX + 2], reply[REPLY_MAX];
	size_t req_len;
	if (!build_request(&argv[i + 1], argc - i - 1, raw, req, &req_len)) {
		fprintf(stderr, "km-mgmt: request longer than %d bytes\n", REQUEST_MAX);
		return 2;
	}
	int fd = connect_socket(argv[i], wait_ms, spin);
	if (fd < 0)
		return 2;
	if (!send_request(fd, req, req_len, pass)) {
		fprintf(stderr, "km-mgmt: sending the request: %s\n", strerror(errno));
		close(fd);
		return 2;
	}
	ssize_t n = read_reply(fd, reply, sizeof(reply), timeout_ms);
	close(fd);
	if (n < 0)
		return 2;
	fwrite(reply, 1, (size_t)n, stdout);
	return fflush(stdout) == 0 ? classify(reply, (size_t)n) : 2;
}
