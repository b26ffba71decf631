/*
 * TCP connections that resume as ended (km_inet.h): saved with --tcp-established=close, caught
 * half-way through opening or closing, or closed by their peer. The program must find a socket
 * that behaves as a connection whose peer reset or closed it, never a closed fd: km makes a real
 * connection over the loopback interface and ends it from the other side, with a RST (the first
 * read fails with ECONNRESET, later ones return 0, a write fails with EPIPE) or, after writing the
 * bytes the program had not read, a FIN (those bytes, then EOF). Its addresses are loopback ones.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "km_inet.h"

#define SETTLE_MS 1000 /* loopback delivers at once; this only bounds a pathological wait */

static socklen_t loopback(uint32_t family, struct sockaddr_storage *a)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		struct sockaddr_in *s = (void *)a;
		s->sin_family = AF_INET;
		s->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*s);
	}
	struct sockaddr_in6 *s = (void *)a;
	s->sin6_family = AF_INET6;
	s->sin6_addr = in6addr_loopback;
	return sizeof(*s);
}

/* A connected pair over loopback: *cli (with the recorded options) and *srv, its peer. */
static int pair(const km_inet_t *s, int *cli, int *srv, km_err_t **err)
{
	struct sockaddr_storage a;
	socklen_t alen = loopback(s->family, &a);
	int lst = socket((int)s->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	*cli = socket((int)s->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	*srv = -1;
	int rc = -1;
	if (lst < 0 || *cli < 0)
		km_err_set(err, errno, "creating a TCP socket");
	else if (bind(lst, (struct sockaddr *)&a, alen) < 0 || listen(lst, 1) < 0 ||
		 getsockname(lst, (struct sockaddr *)&a, &alen) < 0)
		km_err_set(err, errno, "listening on the loopback interface");
	else if (km_inet_opts_apply(*cli, s, false, err) < 0)
		;
	else if (connect(*cli, (struct sockaddr *)&a, alen) < 0 || (*srv = accept4(lst, NULL, NULL, SOCK_CLOEXEC)) < 0)
		km_err_set(err, errno, "connecting over the loopback interface");
	else
		rc = 0;
	if (lst >= 0)
		close(lst);
	if (rc < 0 && *cli >= 0)
		close(*cli);
	return rc;
}

static int write_all(int fd, const uint8_t *p, uint64_t len, km_err_t **err)
{
	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {.fd = fd, .events = POLLOUT};
			if (poll(&pf, 1, SETTLE_MS) > 0)
				continue;
			return km_err_set(err, 0, "the %lu unread bytes do not fit the socket's buffers", (unsigned long)len);
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return km_err_set(err, w < 0 ? errno : EIO, "putting the unread bytes back");
		p += w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* The unread bytes of a connection the peer closed (NULL, *len 0: none). */
static int load_unread(km_fdrest_t *rs, const km_inet_t *s, uint8_t **buf, km_err_t **err)
{
	const km_tcp_conn_t *c = &s->conn;
	uint64_t blen = 0;
	*buf = NULL;
	if (s->state != KM_INET_PEER_CLOSED || (c->in_len == 0 && c->in_blob < 0))
		return 0;
	if (c->in_len == 0 || c->in_blob < 0 || c->in_len > KM_INET_QUEUE_MAX ||
	    km_fdrest_blob_len(rs, (uint64_t)c->in_blob, &blen, err) < 0 || blen != c->in_len)
		return *err != NULL ? -1 : km_err_set(err, 0, "corrupt record: the unread bytes");
	if ((*buf = malloc(c->in_len)) == NULL)
		return km_err_set(err, ENOMEM, "restoring unread bytes");
	if (km_fdrest_blob_read(rs, (uint64_t)c->in_blob, *buf, c->in_len, err) < 0) {
		free(*buf);
		*buf = NULL;
		return -1;
	}
	return 0;
}

/* Ends the pair from srv's side; waits (bounded) until cli has seen it. */
static int end_from_peer(const km_inet_t *s, int cli, int srv, const uint8_t *data, km_err_t **err)
{
	if (s->state == KM_INET_RESET) {
		struct linger l = {.l_onoff = 1, .l_linger = 0}; /* close sends a RST */
		if (setsockopt(srv, SOL_SOCKET, SO_LINGER, &l, sizeof(l)) < 0) {
			close(srv);
			return km_err_set(err, errno, "SO_LINGER");
		}
	} else if (data != NULL && write_all(srv, data, s->conn.in_len, err) < 0) {
		close(srv);
		return -1;
	}
	close(srv);
	struct pollfd pf = {.fd = cli, .events = POLLRDHUP};
	(void)poll(&pf, 1, SETTLE_MS);
	return 0;
}

int km_inet_ended_restore(km_fdrest_t *rs, const km_inet_t *s, km_err_t **err)
{
	uint8_t *data;
	int cli, srv;
	if (load_unread(rs, s, &data, err) < 0)
		return -1;
	if (pair(s, &cli, &srv, err) < 0) {
		free(data);
		/* no loopback interface: a socket that was never connected, whose reads and writes
		 * fail with ENOTCONN, is still a connection that is gone, not a closed fd */
		fprintf(stderr, "km: %s: a TCP connection that resumes as closed is an unconnected socket (%s)\n",
			km_fdrest_name(rs), (*err)->msg);
		km_err_free(err);
		int fd = socket((int)s->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
		return fd >= 0 ? fd : km_err_set(err, errno, "creating a TCP socket");
	}
	int rc = end_from_peer(s, cli, srv, data, err);
	free(data);
	if (rc < 0) {
		close(cli);
		return -1;
	}
	return cli;
}
