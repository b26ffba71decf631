/*
 * tcp_echo: a 1-byte request/response over TCP on loopback (127.0.0.1), TCP_NODELAY on both ends.
 *   tcp_echo threads [M]      a server thread and the client in this process: M requests
 *   tcp_echo client PORT [M]  the client only, against a server on 127.0.0.1:PORT
 *   tcp_echo server           the server only: listens on an ephemeral port, prints "port=<P>"
 *                             and serves connections one after another until killed
 * The client connects, makes M/10 warm-up requests, then M requests timed with CLOCK_MONOTONIC:
 * each writes one byte and reads the byte back. It prints
 *   "tcp_echo mode=<mode> requests=<M> ns_per_request=<x> requests_per_s=<r>". Default M = 20000.
 * A failed socket call prints "tcp_echo: <what>: <error>" on stderr and exits 1; bad usage 2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "tcp_echo: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void nodelay(int fd)
{
	int one = 1;
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
		die("setsockopt TCP_NODELAY");
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a;
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

/* A listening socket on an ephemeral loopback port; *port gets the port. */
static int listen_any(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	struct sockaddr_in a = loopback(0);
	socklen_t len = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 8) < 0)
		die("bind/listen");
	if (getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("getsockname");
	*port = ntohs(a.sin_port);
	return fd;
}

/* Echoes every byte of one connection until the peer closes it. */
static void serve(int c)
{
	char buf[64];
	nodelay(c);
	for (;;) {
		ssize_t r = read(c, buf, sizeof buf);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (write(c, buf, (size_t)r) != r)
			break;
	}
	close(c);
}

static void *server_thread(void *arg)
{
	int l = *(int *)arg;
	int c = accept(l, NULL, NULL);
	if (c < 0)
		die("accept");
	serve(c);
	return NULL;
}

static void requests(int fd, long n)
{
	for (long i = 0; i < n; i++) {
		char c = (char)i, back;
		if (write(fd, &c, 1) != 1)
			die("write");
		ssize_t r;
		do
			r = read(fd, &back, 1);
		while (r < 0 && errno == EINTR);
		if (r != 1 || back != c) {
			if (r >= 0)
				errno = EPROTO;
			die("read the echo");
		}
	}
}

/* Connects to the port, runs the warm-up and the timed requests, prints the result. */
static void client(const char *mode, int port, long m)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket");
	struct sockaddr_in a = loopback(port);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect");
	nodelay(fd);
	requests(fd, m / 10);
	double t0 = now_ns();
	requests(fd, m);
	double t1 = now_ns();
	close(fd);
	double per = (t1 - t0) / (double)m;
	printf("tcp_echo mode=%s requests=%ld ns_per_request=%.1f requests_per_s=%.0f\n", mode, m, per, 1e9 / per);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int port;
	if (strcmp(mode, "server") == 0 && argc == 2) {
		int l = listen_any(&port);
		printf("port=%d\n", port);
		fflush(stdout);
		for (;;) {
			int c = accept(l, NULL, NULL);
			if (c < 0 && errno == EINTR)
				continue;
			if (c < 0)
				die("accept");
			serve(c);
		}
	}
	if (strcmp(mode, "client") == 0 && (argc == 3 || argc == 4)) {
		port = atoi(argv[2]);
		long m = argc > 3 ? atol(argv[3]) : 20000;
		if (port > 0 && port < 65536 && m > 0) {
			client(mode, port, m);
			return 0;
		}
	}
	if (strcmp(mode, "threads") == 0 && argc <= 3) {
		long m = argc > 2 ? atol(argv[2]) : 20000;
		if (m > 0) {
			int l = listen_any(&port);
			pthread_t t;
			int e = pthread_create(&t, NULL, server_thread, &l);
			if (e != 0) {
				errno = e;
				die("pthread_create");
			}
			client(mode, port, m);
			pthread_join(t, NULL);
			close(l);
			return 0;
		}
	}
	fprintf(stderr, "usage: tcp_echo threads [M] | client PORT [M] | server\n");
	return 2;
}
