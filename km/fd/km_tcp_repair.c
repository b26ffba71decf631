/*
 * Established TCP connections across a snapshot, with the kernel's TCP_REPAIR (km_inet.h): the
 * save reads the connection's sequence numbers, negotiated options, window and both queues
 * without disturbing it; the resume builds a socket in repair mode that takes over exactly that
 * state and leaves repair mode, and the peer never notices (docs/snapshot-files.md, "Kind 8").
 * Needs CAP_NET_ADMIN in the socket's network namespace, at save and at resume.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/sockios.h>

#include "km_inet.h"
#include "km_sys_util.h"

#define TCPI_TS 1    /* TCPI_OPT_TIMESTAMPS */
#define TCPI_SACK 2  /* TCPI_OPT_SACK */
#define TCPI_WSCALE 4 /* TCPI_OPT_WSCALE */
#define WSCALE_MAX 14
#define CHUNK (256u << 10)

static int repair_mode(int fd, int how)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &how, sizeof(how));
}

static int pick_queue(int fd, int q)
{
	return setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_QUEUE, &q, sizeof(q));
}

static int get_u32(int fd, int name, uint32_t *v)
{
	socklen_t n = sizeof(*v);
	return getsockopt(fd, IPPROTO_TCP, name, v, &n);
}

/* --- saving --------------------------------------------------------------------------------- */

typedef struct release_arg {
	int fd;     /* km's own copy of the socket, above the guest's range */
	int reuse;  /* SO_REUSEADDR as the program had it: leaving repair mode clears it */
} release_arg_t;

/* After the snapshot: if the guest goes on, the connection goes back to normal (no window probe:
 * nothing changed for the peer). If km ends the guest, repair mode stays on, so that the socket's
 * close when km exits sends neither FIN nor RST (a repaired socket is dropped silently): the
 * connection lives on in the snapshot and the peer keeps waiting for the resumed program. */
static void release(void *arg, bool guest_goes_on)
{
	release_arg_t *a = arg;
	if (guest_goes_on) {
		(void)pick_queue(a->fd, TCP_NO_QUEUE);
		(void)repair_mode(a->fd, TCP_REPAIR_OFF_NO_WP);
		if (a->reuse)
			(void)setsockopt(a->fd, SOL_SOCKET, SO_REUSEADDR, &a->reuse, sizeof(a->reuse));
	}
	close(a->fd);
	free(a);
}

static int enter_repair(km_fdsave_t *sv, int fd, const km_inet_t *s, km_err_t **err)
{
	release_arg_t *a = malloc(sizeof(*a));
	if (a == NULL)
		return km_err_set(err, ENOMEM, "saving a connection");
	a->reuse = km_inet_opt_get(s, SOL_SOCKET, SO_REUSEADDR, 0);
	a->fd = fcntl(fd, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE);
	if (a->fd < 0) {
		free(a);
		return km_err_set(err, errno, "keeping the socket");
	}
	if (repair_mode(a->fd, TCP_REPAIR_ON) < 0) {
		int e = errno;
		close(a->fd);
		free(a);
		if (e == EPERM)
			return km_err_set(err, e, "saving an established connection needs TCP_REPAIR, which needs "
						  "CAP_NET_ADMIN (or pass --tcp-established=close to save it as reset)");
		return km_err_set(err, e, "entering TCP repair mode");
	}
	return km_fdsave_on_release(sv, release, a, err);
}

/* Peeks a whole queue (repair mode, queue selected) of at most `max` bytes into a new buffer. */
static int peek_queue(int fd, uint64_t max, uint8_t **out, uint64_t *len, km_err_t **err)
{
	if (max > KM_INET_QUEUE_MAX)
		return km_err_set(err, EFBIG, "a queue of %lu bytes", (unsigned long)max);
	uint8_t *buf = malloc(max + 1);
	if (buf == NULL)
		return km_err_set(err, ENOMEM, "saving a queue");
	ssize_t r = max == 0 ? 0 : recv(fd, buf, max + 1, MSG_PEEK | MSG_DONTWAIT);
	if (r < 0 && errno == EAGAIN)
		r = 0;
	if (r < 0 || (uint64_t)r > max) {
		int e = r < 0 ? errno : EAGAIN;
		free(buf);
		return km_err_set(err, e, "reading a queue");
	}
	*out = buf;
	*len = (uint64_t)r;
	return 0;
}

/* The send queue: all that was written and not acknowledged; the peek goes before SIOCOUTQNSD
 * because the kernel may still send while the guest is stopped, and counting a sent byte as
 * unsent would send it twice after resume (the other way it is only retransmitted). */
static int save_sendq(km_fdsave_t *sv, int fd, km_tcp_conn_t *c, km_err_t **err)
{
	int outq = 0, unsent = 0;
	uint8_t *buf;
	if (pick_queue(fd, TCP_SEND_QUEUE) < 0 || get_u32(fd, TCP_QUEUE_SEQ, &c->send_seq) < 0 ||
	    ioctl(fd, SIOCOUTQ, &outq) < 0)
		return km_err_set(err, errno, "reading the send queue");
	if (peek_queue(fd, (uint64_t)(outq < 0 ? 0 : outq), &buf, &c->out_len, err) < 0)
		return km_err_wrap(err, "the send queue");
	if (ioctl(fd, SIOCOUTQNSD, &unsent) < 0) {
		free(buf);
		return km_err_set(err, errno, "reading the send queue's unsent bytes");
	}
	c->unsent_len = unsent < 0 ? 0 : (uint64_t)unsent > c->out_len ? c->out_len : (uint64_t)unsent;
	if (c->out_len == 0) {
		free(buf);
		c->out_blob = -1;
		return 0;
	}
	c->out_blob = km_fdsave_blob_mem(sv, buf, c->out_len, err);
	return c->out_blob < 0 ? -1 : 0;
}

/* The receive queue with rcv_nxt; bytes may still arrive while the guest is stopped, so the two
 * are read again until they agree. */
static int save_recvq(km_fdsave_t *sv, int fd, km_tcp_conn_t *c, km_err_t **err)
{
	if (pick_queue(fd, TCP_RECV_QUEUE) < 0)
		return km_err_set(err, errno, "selecting the receive queue");
	for (int tries = 0; tries < 16; tries++) {
		uint32_t seq2 = 0;
		int inq = 0;
		uint8_t *buf;
		if (get_u32(fd, TCP_QUEUE_SEQ, &c->recv_seq) < 0 || ioctl(fd, FIONREAD, &inq) < 0)
			return km_err_set(err, errno, "reading the receive queue");
		if (peek_queue(fd, (uint64_t)(inq < 0 ? 0 : inq), &buf, &c->in_len, err) < 0)
			return km_err_wrap(err, "the receive queue");
		if (get_u32(fd, TCP_QUEUE_SEQ, &seq2) < 0 || seq2 != c->recv_seq) {
			free(buf);
			continue;
		}
		if (c->in_len == 0) {
			free(buf);
			c->in_blob = -1;
			return 0;
		}
		c->in_blob = km_fdsave_blob_mem(sv, buf, c->in_len, err);
		return c->in_blob < 0 ? -1 : 0;
	}
	return km_err_set(err, EAGAIN, "the receive queue kept changing while saved");
}

static int save_params(int fd, km_tcp_conn_t *c, km_err_t **err)
{
	struct tcp_info ti;
	struct tcp_repair_window w;
	socklen_t n = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n) < 0 || get_u32(fd, TCP_MAXSEG, &c->mss) < 0 ||
	    get_u32(fd, TCP_TIMESTAMP, &c->timestamp) < 0)
		return km_err_set(err, errno, "reading the connection's parameters");
	c->tcpi_options = ti.tcpi_options & (TCPI_TS | TCPI_SACK | TCPI_WSCALE);
	c->snd_wscale = ti.tcpi_snd_wscale;
	c->rcv_wscale = ti.tcpi_rcv_wscale;
	n = sizeof(w);
	if (getsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &n) < 0)
		return km_err_set(err, errno, "reading the connection's window");
	c->win[0] = w.snd_wl1;
	c->win[1] = w.snd_wnd;
	c->win[2] = w.max_window;
	c->win[3] = w.rcv_wnd;
	c->win[4] = w.rcv_wup;
	return 0;
}

int km_tcp_repair_save(km_fdsave_t *sv, int fd, km_inet_t *s, km_err_t **err)
{
	km_tcp_conn_t *c = &s->conn;
	if (enter_repair(sv, fd, s, err) < 0 || save_params(fd, c, err) < 0 || save_sendq(sv, fd, c, err) < 0 ||
	    save_recvq(sv, fd, c, err) < 0)
		return -1;
	(void)pick_queue(fd, TCP_NO_QUEUE);
	return 0;
}

/* --- restoring ------------------------------------------------------------------------------ */

static int check_queue(km_fdrest_t *rs, uint64_t len, int64_t blob, const char *what, km_err_t **err)
{
	uint64_t blen = 0;
	if (len > KM_INET_QUEUE_MAX)
		return km_err_set(err, 0, "corrupt record: a %s of %lu bytes", what, (unsigned long)len);
	if ((len == 0) != (blob < 0))
		return km_err_set(err, 0, "corrupt record: the %s's data", what);
	if (blob >= 0 && km_fdrest_blob_len(rs, (uint64_t)blob, &blen, err) < 0)
		return -1;
	if (blob >= 0 && blen != len)
		return km_err_set(err, 0, "corrupt record: the %s has %lu bytes, its data %lu", what, (unsigned long)len,
				  (unsigned long)blen);
	return 0;
}

int km_tcp_repair_check(km_fdrest_t *rs, const km_inet_t *s, km_err_t **err)
{
	const km_tcp_conn_t *c = &s->conn;
	if (c->mss < 64 || c->mss > 65535 || (c->tcpi_options & ~(uint32_t)(TCPI_TS | TCPI_SACK | TCPI_WSCALE)) ||
	    c->snd_wscale > WSCALE_MAX || c->rcv_wscale > WSCALE_MAX || c->unsent_len > c->out_len ||
	    c->win[2] < c->win[1])
		return km_err_set(err, 0, "corrupt record: the connection's parameters are impossible");
	if (check_queue(rs, c->out_len, c->out_blob, "send queue", err) < 0 ||
	    check_queue(rs, c->in_len, c->in_blob, "receive queue", err) < 0)
		return -1;
	return 0;
}

/* The queue's bytes from the snapshot (NULL for an empty one). */
static uint8_t *load(km_fdrest_t *rs, uint64_t len, int64_t blob, km_err_t **err)
{
	uint8_t *buf = malloc(len + 1);
	if (buf == NULL) {
		km_err_set(err, ENOMEM, "restoring a queue");
		return NULL;
	}
	if (len > 0 && km_fdrest_blob_read(rs, (uint64_t)blob, buf, len, err) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Sends len bytes in chunks the kernel takes (in repair mode, into the selected queue). */
static int push(int fd, const uint8_t *p, uint64_t len, const char *what, km_err_t **err)
{
	while (len > 0) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return km_err_set(err, w < 0 ? errno : EIO, "refilling the %s (%lu bytes left)", what,
					  (unsigned long)len);
		p += w;
		len -= (uint64_t)w;
	}
	return 0;
}

static int set_options(int fd, const km_tcp_conn_t *c, km_err_t **err)
{
	struct tcp_repair_opt o[4];
	int n = 0;
	o[n++] = (struct tcp_repair_opt){TCPOPT_MAXSEG, c->mss};
	if (c->tcpi_options & TCPI_WSCALE)
		o[n++] = (struct tcp_repair_opt){TCPOPT_WINDOW, c->snd_wscale | c->rcv_wscale << 16};
	if (c->tcpi_options & TCPI_SACK)
		o[n++] = (struct tcp_repair_opt){TCPOPT_SACK_PERMITTED, 0};
	if (c->tcpi_options & TCPI_TS)
		o[n++] = (struct tcp_repair_opt){TCPOPT_TIMESTAMP, 0};
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_OPTIONS, o, (socklen_t)(n * sizeof(o[0]))) < 0)
		return km_err_set(err, errno, "setting the connection's options (mss, window scale, SACK, timestamps)");
	if ((c->tcpi_options & TCPI_TS) &&
	    setsockopt(fd, IPPROTO_TCP, TCP_TIMESTAMP, &c->timestamp, sizeof(c->timestamp)) < 0)
		return km_err_set(err, errno, "setting the connection's timestamp");
	return 0;
}

/* Socket, repair mode, options, the local address and both sequence numbers, then connect: in
 * repair mode that only sets the state, nothing is sent. */
static int open_repaired(const km_inet_t *s, km_err_t **err)
{
	const km_tcp_conn_t *c = &s->conn;
	char a[80];
	uint32_t sseq = c->send_seq - (uint32_t)c->out_len, rseq = c->recv_seq - (uint32_t)c->in_len;
	int fd = socket((int)s->family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return km_err_set(err, errno, "creating a TCP socket");
	if (repair_mode(fd, TCP_REPAIR_ON) < 0) {
		km_err_set(err, errno, errno == EPERM ? "restoring an established connection needs TCP_REPAIR, which "
							 "needs CAP_NET_ADMIN"
						      : "entering TCP repair mode");
		goto fail;
	}
	if (km_inet_opts_apply(fd, s, true, err) < 0)
		goto fail;
	/* repair mode binds even where the listener (or TIME_WAIT) holds the port */
	if (bind(fd, (const struct sockaddr *)&s->local, s->local_len) < 0) {
		km_err_set(err, errno, "binding to %s", km_inet_addr_str(&s->local, s->local_len, a, sizeof(a)));
		goto fail;
	}
	if (pick_queue(fd, TCP_SEND_QUEUE) < 0 || setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &sseq, sizeof(sseq)) < 0 ||
	    pick_queue(fd, TCP_RECV_QUEUE) < 0 || setsockopt(fd, IPPROTO_TCP, TCP_QUEUE_SEQ, &rseq, sizeof(rseq)) < 0) {
		km_err_set(err, errno, "setting the sequence numbers");
		goto fail;
	}
	if (connect(fd, (const struct sockaddr *)&s->peer, s->peer_len) < 0) {
		km_err_set(err, errno, "connecting (in repair mode) to %s",
			   km_inet_addr_str(&s->peer, s->peer_len, a, sizeof(a)));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static int set_window(int fd, const km_tcp_conn_t *c, km_err_t **err)
{
	struct tcp_repair_window w = {.snd_wl1 = c->win[0], .snd_wnd = c->win[1], .max_window = c->win[2],
				      .rcv_wnd = c->win[3], .rcv_wup = c->win[4]};
	if (setsockopt(fd, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)) < 0)
		return km_err_set(err, errno, "setting the connection's window");
	return 0;
}

/* Leaving repair mode, once every fd of the table sits at its number (km_fdrest_after): the
 * kernel then sends a window probe, and a connection whose peer is in the program too (both
 * ends of a loopback connection) must find that peer already there, or the probe meets no socket
 * (or the listener) and the answer is a reset. Then the never-sent bytes go out as the program
 * would have sent them. */
typedef struct leave {
	int fd; /* the guest's fd of the connection */
	int reuse;
	uint64_t unsent_len;
	uint8_t unsent[];
} leave_t;

static int leave_repair(void *arg, km_err_t **err)
{
	leave_t *l = arg;
	if (pick_queue(l->fd, TCP_NO_QUEUE) < 0 || repair_mode(l->fd, TCP_REPAIR_OFF) < 0)
		return km_err_set(err, errno, "leaving TCP repair mode");
	if (push(l->fd, l->unsent, l->unsent_len, "send queue", err) < 0)
		return km_err_wrap(err, "sending the bytes not sent before the snapshot");
	/* leaving repair mode cleared it (repair mode had forced reuse) */
	if (l->reuse && setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &l->reuse, sizeof(l->reuse)) < 0)
		return km_err_set(err, errno, "setting SO_REUSEADDR");
	return 0;
}

/* The queues in repair mode: the sent-but-unacknowledged bytes and the unread ones (the peer has
 * or sent them already); the rest waits for leave_repair. */
static int refill(km_fdrest_t *rs, int fd, int guest_fd, const km_inet_t *s, km_err_t **err)
{
	const km_tcp_conn_t *c = &s->conn;
	uint8_t *out = load(rs, c->out_len, c->out_blob, err);
	uint8_t *in = out != NULL ? load(rs, c->in_len, c->in_blob, err) : NULL;
	int rc = -1;
	uint64_t sent = c->out_len - c->unsent_len;
	int reuse = km_inet_opt_get(s, SOL_SOCKET, SO_REUSEADDR, 0);
	if (in == NULL)
		;
	else if (pick_queue(fd, TCP_SEND_QUEUE) < 0 || push(fd, out, sent, "send queue", err) < 0)
		km_err_wrap(err, "restoring the sent bytes");
	else if (pick_queue(fd, TCP_RECV_QUEUE) < 0 || push(fd, in, c->in_len, "receive queue", err) < 0)
		km_err_wrap(err, "restoring the unread bytes");
	else if (set_window(fd, c, err) < 0)
		;
	else {
		leave_t *l = malloc(sizeof(*l) + c->unsent_len);
		if (l == NULL) {
			km_err_set(err, ENOMEM, "keeping the bytes not sent before the snapshot");
		} else {
			*l = (leave_t){.fd = guest_fd, .reuse = reuse, .unsent_len = c->unsent_len};
			memcpy(l->unsent, out + sent, c->unsent_len);
			rc = km_fdrest_after(rs, leave_repair, l, err);
		}
	}
	free(out);
	free(in);
	return rc;
}

int km_tcp_repair_restore(km_fdrest_t *rs, const km_inet_t *s, int guest_fd, km_err_t **err)
{
	char name[200], l[80], p[80];
	int fd = open_repaired(s, err);
	if (fd >= 0 && (set_options(fd, &s->conn, err) < 0 || refill(rs, fd, guest_fd, s, err) < 0)) {
		close(fd); /* still in repair mode when it failed there: closing sends nothing */
		fd = -1;
	}
	if (fd < 0) {
		snprintf(name, sizeof(name), "%s -> %s", km_inet_addr_str(&s->local, s->local_len, l, sizeof(l)),
			 km_inet_addr_str(&s->peer, s->peer_len, p, sizeof(p)));
		km_err_wrap(err, "established connection %s", name);
	}
	return fd;
}
