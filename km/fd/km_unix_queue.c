/* A unix socket's receive queue: peeked at save, sent back at restore (km_unix_queue.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "km_unix_queue.h"

#define SCM_FDS_MAX 253 /* SCM_MAX_FD: the most fds one message carries */
#define PEEK_FIRST (64u << 10)

void km_unix_queue_free(km_unix_queue_t *q)
{
	free(q->data);
	free(q->lens);
	memset(q, 0, sizeof(*q));
}

/* Closes the fds a peek installed in km's table; true if there were any. */
static bool drop_passed_fds(struct msghdr *m)
{
	bool any = false;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
			close(fd);
		}
		any = true;
	}
	return any || (m->msg_flags & MSG_CTRUNC) != 0;
}

static int add_msg(km_unix_queue_t *q, const uint8_t *p, size_t n, km_err_t **err)
{
	if (q->n >= KM_UNIX_QUEUE_MSGS_MAX || q->len + n > KM_UNIX_QUEUE_BYTES_MAX)
		return km_err_set(err, 0, "more than %u messages or %u bytes are queued, more than a snapshot keeps",
				  KM_UNIX_QUEUE_MSGS_MAX, KM_UNIX_QUEUE_BYTES_MAX);
	uint8_t *d = realloc(q->data, q->len + n + 1);
	uint32_t *l = d != NULL ? realloc(q->lens, (q->n + 1) * sizeof(*l)) : NULL;
	if (d != NULL)
		q->data = d;
	if (l == NULL)
		return km_err_set(err, ENOMEM, "saving the socket's queue");
	q->lens = l;
	memcpy(q->data + q->len, p, n);
	q->len += n;
	q->lens[q->n++] = (uint32_t)n;
	return 0;
}

/* One peek at offset off into *buf (grown to a datagram's whole length). Returns its length,
 * 0 at the end of the queue, or -1. */
static ssize_t peek_one(int fd, int type, uint64_t off, uint8_t **buf, size_t *cap, bool *end, km_err_t **err)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(SCM_FDS_MAX * sizeof(int)) + CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	*end = false;
	for (;;) {
		int po = (int)off;
		if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &po, sizeof(po)) < 0)
			return km_err_set(err, errno, "walking the socket's queue (SO_PEEK_OFF)");
		struct iovec iov = {*buf, *cap};
		struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
		int fl = MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | (type == SOCK_STREAM ? 0 : MSG_TRUNC);
		ssize_t n = recvmsg(fd, &m, fl);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			*end = true;
			return 0;
		}
		if (n < 0)
			return km_err_set(err, errno, "reading the socket's queue");
		if (drop_passed_fds(&m))
			return km_err_set(err, 0, "a message in its queue carries open fds (SCM_RIGHTS), which a "
						  "snapshot cannot keep");
		if ((size_t)n <= *cap || type == SOCK_STREAM)
			return n;
		if ((size_t)n > KM_UNIX_QUEUE_BYTES_MAX)
			return km_err_set(err, 0, "a message of %zd bytes is queued, more than a snapshot keeps", n);
		uint8_t *b = realloc(*buf, (size_t)n);
		if (b == NULL)
			return km_err_set(err, ENOMEM, "saving the socket's queue");
		*buf = b;
		*cap = (size_t)n;
	}
}

static int walk(int fd, int type, bool rcv_shut, km_unix_queue_t *q, km_err_t **err)
{
	size_t cap = PEEK_FIRST;
	km_autofree uint8_t *buf = malloc(cap);
	if (buf == NULL)
		return km_err_set(err, ENOMEM, "saving the socket's queue");
	for (;;) {
		bool end;
		ssize_t n = peek_one(fd, type, q->len, &buf, &cap, &end, err);
		if (n < 0)
			return -1;
		if (end || (n == 0 && (type == SOCK_STREAM || rcv_shut)))
			return 0;
		if (n == 0) /* at offset 0 only: later ones are skipped by SO_PEEK_OFF, so lost */
			return km_err_set(err, 0, "an empty datagram is queued, which km cannot save");
		if (add_msg(q, buf, (size_t)n, err) < 0)
			return -1;
	}
}

int km_unix_queue_peek(int fd, int type, bool rcv_shut, km_unix_queue_t *q, km_err_t **err)
{
	memset(q, 0, sizeof(*q));
	int saved = -1;
	socklen_t sl = sizeof(saved);
	if (getsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &saved, &sl) < 0)
		return km_err_set(err, errno, "reading SO_PEEK_OFF");
	int rc = walk(fd, type, rcv_shut, q, err);
	if (setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, &saved, sizeof(saved)) < 0 && rc == 0)
		rc = km_err_set(err, errno, "setting SO_PEEK_OFF back");
	if (rc < 0)
		km_unix_queue_free(q);
	else if (type == SOCK_STREAM && q->n > 1) /* a stream has no boundaries: one message */
		q->lens[0] = (uint32_t)q->len, q->n = 1;
	return rc;
}

static int send_one(int from, const uint8_t *p, size_t n, bool stream, const struct sockaddr_un *to, socklen_t tolen)
{
	do {
		ssize_t w = sendto(from, p, n, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)to, to ? tolen : 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		if (!stream && (size_t)w != n) {
			errno = EMSGSIZE;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	} while (n > 0);
	return 0;
}

/* As large a send buffer as km may set; returns the size it had (as getsockopt says it). */
static int raise_sndbuf(int fd, uint64_t need)
{
	int had = 0, want = need > INT32_MAX / 4 ? INT32_MAX / 4 : (int)need * 2 + (1 << 20);
	socklen_t sl = sizeof(had);
	getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &had, &sl);
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	return had;
}

int km_unix_queue_send(int from, int type, const km_unix_queue_t *q, const struct sockaddr_un *to, socklen_t tolen,
		       km_err_t **err)
{
	if (q->n == 0)
		return 0;
	int had = raise_sndbuf(from, q->len);
	const uint8_t *p = q->data;
	int rc = 0;
	for (uint32_t i = 0; i < q->n && rc == 0; p += q->lens[i++])
		if (send_one(from, p, q->lens[i], type == SOCK_STREAM, to, tolen) < 0)
			rc = km_err_set(err, errno, errno == EAGAIN ? "%u saved messages (%lu bytes) do not fit in "
								      "the socket's queue"
								    : "putting back %u saved messages (%lu bytes)",
					q->n, (unsigned long)q->len);
	int half = had / 2; /* the kernel doubles what it is given */
	if (had > 0 && setsockopt(from, SOL_SOCKET, SO_SNDBUFFORCE, &half, sizeof(half)) < 0)
		(void)setsockopt(from, SOL_SOCKET, SO_SNDBUF, &half, sizeof(half));
	return rc;
}
