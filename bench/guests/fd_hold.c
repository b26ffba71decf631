/*
 * fd_hold WHAT wait: the program of the `fds` rows (bench/run.sh): it holds many fds, or
 * established TCP connections, while an outside checkpointer (km's management socket, criu dump)
 * takes it; whoever restores it writes one byte to its new stdin to let it go on.
 *
 *   files1000: fills every fd number below 1000 (fds 0-2 included: 1000 is the whole guest table
 *              under km): rounds of a regular file in $FD_HOLD_DIR (default /tmp) opened O_RDWR
 *              at an offset, a pipe holding 4 bytes, and a dup of the file
 *   tcp10:     a listener on 127.0.0.1 and 10 connections to it made and accepted by the program
 *              itself (both ends are the program's: a checkpointer must repair 20 established
 *              sockets), each with 100 bytes queued in each direction
 *
 * It prints "holding fds=<N>" and "ready pid=<pid>", then blocks in read() on stdin. After the
 * restore it writes "resumed" with one write(2) (the first output the bench times), then checks
 * every fd (open; files at their offsets; pipes' bytes; each connection's queued bytes both ways
 * and one more round trip) and prints "verify=ok checked=<n>" or "verify=BAD <what>" (exit 1).
 * Exit status 2 on bad usage, 3 if it cannot build its fds.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define NFDS 1000
#define NCONN 10

enum kind { FREE, FILE_FD, PIPE_R, PIPE_W, DUP };
static enum kind kinds[NFDS];
static int conn_c[NCONN], conn_s[NCONN];

static int fail(const char *what)
{
	printf("error: %s: %s\n", what, strerror(errno));
	return 3;
}

static int build_files(void)
{
	const char *dir = getenv("FD_HOLD_DIR");
	char p[4096];
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < NFDS) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int fd = 3; fd < NFDS; fd++)
		close(fd);
	for (int fd = 3; fd < NFDS;) {
		snprintf(p, sizeof(p), "%s/fd_hold.%d.%d", dir && dir[0] ? dir : "/tmp", (int)getpid(), fd);
		int f = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
		if (f != fd || ftruncate(f, 4096) != 0 || lseek(f, fd, SEEK_SET) != fd)
			return fail(p);
		kinds[fd++] = FILE_FD;
		if (fd + 3 > NFDS)
			continue;
		int pp[2];
		if (pipe(pp) != 0 || pp[0] != fd || write(pp[1], &pp[0], sizeof(int)) != sizeof(int))
			return fail("pipe");
		kinds[fd] = PIPE_R;
		kinds[fd + 1] = PIPE_W;
		if (dup(fd - 1) != fd + 2)
			return fail("dup");
		kinds[fd + 2] = DUP;
		fd += 3;
	}
	return 0;
}

static int build_tcp(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	char buf[100];
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(l, NCONN) != 0 ||
	    getsockname(l, (struct sockaddr *)&a, &al) != 0)
		return fail("listen");
	for (int i = 0; i < NCONN; i++) {
		conn_c[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (conn_c[i] < 0 || connect(conn_c[i], (struct sockaddr *)&a, sizeof(a)) != 0)
			return fail("connect");
		conn_s[i] = accept(l, NULL, NULL);
		if (conn_s[i] < 0)
			return fail("accept");
		memset(buf, 'a' + i, sizeof(buf));
		if (write(conn_c[i], buf, sizeof(buf)) != sizeof(buf) || write(conn_s[i], buf, sizeof(buf)) != sizeof(buf))
			return fail("write");
	}
	return 0;
}

/* Reads exactly n bytes (blocking: after a restore the data must be there or come). */
static int read_all(int fd, char *b, size_t n)
{
	size_t have = 0;
	while (have < n) {
		ssize_t r = read(fd, b + have, n - have);
		if (r <= 0)
			return -1;
		have += (size_t)r;
	}
	return 0;
}

static int verify(int tcp)
{
	int checked = 0;
	char buf[100], want[100];

	if (tcp) {
		for (int i = 0; i < NCONN; i++) {
			memset(want, 'a' + i, sizeof(want));
			if (read_all(conn_s[i], buf, sizeof(buf)) || memcmp(buf, want, sizeof(buf)) ||
			    read_all(conn_c[i], buf, sizeof(buf)) || memcmp(buf, want, sizeof(buf)) ||
			    write(conn_c[i], "x", 1) != 1 || read_all(conn_s[i], buf, 1) || buf[0] != 'x') {
				printf("verify=BAD connection %d: %s\n", i, strerror(errno));
				return 1;
			}
			checked++;
		}
	} else {
		for (int fd = 3; fd < NFDS; fd++) {
			int v = -1, ok = fcntl(fd, F_GETFD) >= 0;
			if (ok && kinds[fd] == FILE_FD)
				ok = lseek(fd, 0, SEEK_CUR) == fd;
			else if (ok && kinds[fd] == PIPE_R)
				ok = read(fd, &v, sizeof(v)) == sizeof(v) && v == fd;
			if (!ok) {
				printf("verify=BAD fd %d\n", fd);
				return 1;
			}
			checked++;
		}
	}
	printf("verify=ok checked=%d\n", checked);
	return 0;
}

int main(int argc, char **argv)
{
	int tcp = argc == 3 && strcmp(argv[1], "tcp10") == 0;
	if (argc != 3 || (!tcp && strcmp(argv[1], "files1000") != 0) || strcmp(argv[2], "wait") != 0) {
		printf("usage: fd_hold files1000|tcp10 wait\n");
		return 2;
	}
	int r = tcp ? build_tcp() : build_files();
	if (r != 0)
		return r;
	printf("holding fds=%d\nready pid=%d\n", tcp ? 2 * NCONN + 1 : NFDS, (int)getpid());
	fflush(stdout);
	char go;
	if (read(0, &go, 1) != 1) {
		printf("error: no go-ahead on stdin\n");
		return 1;
	}
	if (write(1, "resumed\n", 8) != 8)
		return 1;
	return verify(tcp);
}
