/*
 * The inet kind of the fd table (km_fdtab.h): TCP and UDP sockets, IPv4 and IPv6. A socket is
 * recorded with its family, protocol, addresses, what it was doing (km_inet.h) and its options
 * (km_inet_opts.c); an established TCP connection also with its TCP_REPAIR state
 * (km_tcp_repair.c). The record's fields: docs/snapshot-files.md, "Kind 8: inet".
 */
#include <arpa/inet.h>
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

#include "km_inet.h"
#include "km_netlock.h"

#define BACKLOG_MAX 65535u /* net.core.somaxconn's ceiling */
#define NO_BLOB UINT64_MAX

static int sockopt_int(int fd, int level, int name)
{
	int v = -1;
	socklen_t n = sizeof(v);
	return getsockopt(fd, level, name, &v, &n) == 0 ? v : -1;
}

/* TCP or UDP over IPv4 or IPv6; raw, ICMP, SCTP, MPTCP and UDP-Lite sockets are not ours. */
static bool inet_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	if (!S_ISSOCK(p->st.st_mode))
		return false;
	int fam = sockopt_int(p->fd, SOL_SOCKET, SO_DOMAIN);
	int type = sockopt_int(p->fd, SOL_SOCKET, SO_TYPE);
	int proto = sockopt_int(p->fd, SOL_SOCKET, SO_PROTOCOL);
	return (fam == AF_INET || fam == AF_INET6) &&
	       ((type == SOCK_STREAM && proto == IPPROTO_TCP) || (type == SOCK_DGRAM && proto == IPPROTO_UDP));
}

/* --- saving --------------------------------------------------------------------------------- */

static const char *proto_name(const km_inet_t *s)
{
	bool v6 = s->family == AF_INET6;
	if (s->protocol == IPPROTO_TCP)
		return v6 ? "tcp6" : "tcp";
	return v6 ? "udp6" : "udp";
}

/* "tcp 127.0.0.1:8080 -> 127.0.0.1:51234", for messages. */
static const char *conn_name(const km_inet_t *s, char *buf, size_t size)
{
	char l[80], r[80];
	snprintf(buf, size, "%s %s -> %s", proto_name(s), km_inet_addr_str(&s->local, s->local_len, l, sizeof(l)),
		 km_inet_addr_str(&s->peer, s->peer_len, r, sizeof(r)));
	return buf;
}

static bool port_of(const struct sockaddr_storage *a)
{
	return a->ss_family == AF_INET ? ((const struct sockaddr_in *)a)->sin_port != 0
				       : ((const struct sockaddr_in6 *)a)->sin6_port != 0;
}

static int save_addrs(int fd, km_inet_t *s, km_err_t **err)
{
	socklen_t n = sizeof(s->local);
	if (getsockname(fd, (struct sockaddr *)&s->local, &n) < 0)
		return km_err_set(err, errno, "getsockname");
	s->local_len = port_of(&s->local) ? n : 0; /* port 0: never bound (bind picks a port) */
	n = sizeof(s->peer);
	if (getpeername(fd, (struct sockaddr *)&s->peer, &n) == 0)
		s->peer_len = n;
	else if (errno != ENOTCONN)
		return km_err_set(err, errno, "getpeername");
	return 0;
}

/* A TCP connection's bytes not yet read, peeked (CLOSE_WAIT: no repair needed to read them). */
static int save_unread(km_fdsave_t *sv, int fd, km_inet_t *s, km_err_t **err)
{
	int avail = 0;
	if (ioctl(fd, FIONREAD, &avail) < 0)
		return km_err_set(err, errno, "FIONREAD");
	s->conn.in_blob = -1;
	s->conn.in_len = 0;
	if (avail <= 0)
		return 0;
	uint8_t *buf = malloc((size_t)avail + 1);
	if (buf == NULL)
		return km_err_set(err, ENOMEM, "saving unread bytes");
	ssize_t r = recv(fd, buf, (size_t)avail + 1, MSG_PEEK | MSG_DONTWAIT);
	if (r < 0) {
		free(buf);
		return km_err_set(err, errno, "reading the unread bytes");
	}
	s->conn.in_len = (uint64_t)r;
	s->conn.in_blob = km_fdsave_blob_mem(sv, buf, (uint64_t)r, err);
	return s->conn.in_blob < 0 ? -1 : 0;
}

/* A connected TCP socket, by the save's policy. */
static int save_conn(km_fdsave_t *sv, int fd, km_inet_t *s, int tcp_state, km_err_t **err)
{
	char name[200];
	enum km_tcp_policy pol = km_fdsave_tcp(sv);
	if (pol == KM_TCP_REFUSE)
		return km_err_set(err, 0, "%s is a TCP connection (%s); pass --tcp-established=repair (or tcp=repair to "
					  "the management socket, --tcp-established to km-shim checkpoint) to save it, or "
					  "=close to save it as reset",
				  conn_name(s, name, sizeof(name)), tcp_state == TCP_ESTABLISHED ? "established" : "closing");
	if (pol == KM_TCP_REPAIR && tcp_state == TCP_ESTABLISHED) {
		s->state = KM_INET_ESTABLISHED;
		if (km_netlock_cover(sv, err) < 0 || km_tcp_repair_save(sv, fd, s, err) < 0)
			return km_err_wrap(err, "%s", conn_name(s, name, sizeof(name)));
		km_netlock_held(sv, s->lock, sizeof(s->lock)); /* "" when none: a resume has nothing to delete */
		return 0;
	}
	if (pol == KM_TCP_REPAIR && tcp_state == TCP_CLOSE_WAIT) {
		s->state = KM_INET_PEER_CLOSED;
		return save_unread(sv, fd, s, err);
	}
	/* close, or a connection half-way through opening or closing: the program will see it reset */
	s->state = KM_INET_RESET;
	return 0;
}

static int save_tcp(km_fdsave_t *sv, int fd, km_inet_t *s, km_err_t **err)
{
	struct tcp_info ti;
	socklen_t n = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &n) < 0)
		return km_err_set(err, errno, "TCP_INFO");
	switch (ti.tcpi_state) {
	case TCP_LISTEN:
		/* a listener's TCP_INFO: tcpi_sacked is its backlog limit, tcpi_unacked the
		 * connections waiting to be accepted */
		s->state = KM_INET_LISTEN;
		s->backlog = ti.tcpi_sacked;
		s->pending = ti.tcpi_unacked;
		return 0;
	case TCP_CLOSE:
		s->state = KM_INET_OPEN;
		s->peer_len = 0;
		return 0;
	default:
		return save_conn(sv, fd, s, ti.tcpi_state, err);
	}
}

static void put_rec(km_buf_t *rec, const km_inet_t *s)
{
	km_rec_put_u32(rec, s->family);
	km_rec_put_u32(rec, s->type);
	km_rec_put_u32(rec, s->protocol);
	km_rec_put_u32(rec, s->state);
	km_rec_put_bytes(rec, &s->local, s->local_len);
	km_rec_put_bytes(rec, &s->peer, s->peer_len);
	km_rec_put_u32(rec, s->backlog);
	km_rec_put_u32(rec, s->pending);
	km_rec_put_u32(rec, s->nopts);
	for (uint32_t i = 0; i < s->nopts; i++) {
		km_rec_put_u32(rec, s->opts[i].level);
		km_rec_put_u32(rec, s->opts[i].name);
		km_rec_put_u32(rec, (uint32_t)s->opts[i].val);
		km_rec_put_u32(rec, (uint32_t)s->opts[i].val2);
	}
	const km_tcp_conn_t *c = &s->conn;
	if (s->state == KM_INET_ESTABLISHED) {
		const uint32_t f[] = {c->send_seq,   c->recv_seq,   c->mss,    c->tcpi_options, c->snd_wscale,
				      c->rcv_wscale, c->timestamp,  c->win[0], c->win[1],       c->win[2],
				      c->win[3],     c->win[4]};
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			km_rec_put_u32(rec, f[i]);
		km_rec_put_u64(rec, c->out_len);
		km_rec_put_u64(rec, c->unsent_len);
		km_rec_put_u64(rec, c->out_blob < 0 ? NO_BLOB : (uint64_t)c->out_blob);
	}
	if (s->state == KM_INET_ESTABLISHED || s->state == KM_INET_PEER_CLOSED) {
		km_rec_put_u64(rec, c->in_len);
		km_rec_put_u64(rec, c->in_blob < 0 ? NO_BLOB : (uint64_t)c->in_blob);
	}
	if (s->state == KM_INET_ESTABLISHED)
		km_rec_put_str(rec, s->lock);
}

static int inet_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	km_inet_t *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return km_err_set(err, ENOMEM, "saving a socket");
	s->family = (uint32_t)sockopt_int(p->fd, SOL_SOCKET, SO_DOMAIN);
	s->type = (uint32_t)sockopt_int(p->fd, SOL_SOCKET, SO_TYPE);
	s->protocol = (uint32_t)sockopt_int(p->fd, SOL_SOCKET, SO_PROTOCOL);
	s->conn.out_blob = s->conn.in_blob = -1;
	int rc = save_addrs(p->fd, s, err);
	/* the options first: repair mode changes what SO_REUSEADDR reads */
	if (rc == 0)
		rc = km_inet_opts_save(p->fd, s, err);
	if (rc == 0 && s->protocol == IPPROTO_TCP)
		rc = save_tcp(sv, p->fd, s, err);
	else if (rc == 0)
		s->state = s->peer_len > 0 ? KM_INET_CONNECTED : KM_INET_OPEN;
	if (rc == 0)
		put_rec(rec, s);
	free(s);
	return rc;
}

/* --- reading a record ----------------------------------------------------------------------- */

static bool addr_ok(const struct sockaddr_storage *a, uint32_t len, uint32_t family)
{
	if (len == 0)
		return true;
	if (a->ss_family != family)
		return false;
	return len == (family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

static void get_addr(km_rec_t *r, struct sockaddr_storage *a, uint32_t *len)
{
	uint32_t n = 0;
	const void *p = km_rec_get_bytes(r, &n);
	memset(a, 0, sizeof(*a));
	if (n > sizeof(*a)) {
		r->bad = true;
		n = 0;
	}
	if (n > 0 && p != NULL)
		memcpy(a, p, n);
	*len = n;
}

/* Reads the record into s; checks its structure (not yet the blobs). */
static int parse(const km_fdrec_t *fr, km_inet_t *s, km_err_t **err)
{
	km_rec_t r = {.p = fr->data, .len = fr->len};
	memset(s, 0, sizeof(*s));
	s->family = km_rec_get_u32(&r);
	s->type = km_rec_get_u32(&r);
	s->protocol = km_rec_get_u32(&r);
	s->state = km_rec_get_u32(&r);
	get_addr(&r, &s->local, &s->local_len);
	get_addr(&r, &s->peer, &s->peer_len);
	s->backlog = km_rec_get_u32(&r);
	s->pending = km_rec_get_u32(&r);
	s->nopts = km_rec_get_u32(&r);
	if (s->nopts > KM_INET_OPTS_MAX)
		return km_err_set(err, 0, "corrupt record: %u socket options", s->nopts);
	for (uint32_t i = 0; i < s->nopts; i++) {
		s->opts[i].level = km_rec_get_u32(&r);
		s->opts[i].name = km_rec_get_u32(&r);
		s->opts[i].val = (int32_t)km_rec_get_u32(&r);
		s->opts[i].val2 = (int32_t)km_rec_get_u32(&r);
	}
	km_tcp_conn_t *c = &s->conn;
	c->out_blob = c->in_blob = -1;
	if (s->state == KM_INET_ESTABLISHED) {
		uint32_t *f[] = {&c->send_seq,   &c->recv_seq,  &c->mss,    &c->tcpi_options, &c->snd_wscale,
				 &c->rcv_wscale, &c->timestamp, &c->win[0], &c->win[1],       &c->win[2],
				 &c->win[3],     &c->win[4]};
		for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
			*f[i] = km_rec_get_u32(&r);
		c->out_len = km_rec_get_u64(&r);
		c->unsent_len = km_rec_get_u64(&r);
		uint64_t b = km_rec_get_u64(&r);
		c->out_blob = b == NO_BLOB ? -1 : b > INT32_MAX ? INT32_MAX : (int64_t)b;
	}
	if (s->state == KM_INET_ESTABLISHED || s->state == KM_INET_PEER_CLOSED) {
		c->in_len = km_rec_get_u64(&r);
		uint64_t b = km_rec_get_u64(&r);
		c->in_blob = b == NO_BLOB ? -1 : b > INT32_MAX ? INT32_MAX : (int64_t)b;
	}
	/* the network lock's name came later: older records end before it */
	if (s->state == KM_INET_ESTABLISHED && !r.bad && r.at < r.len) {
		const char *lock = km_rec_get_str(&r, sizeof(s->lock));
		if (lock != NULL)
			memcpy(s->lock, lock, strlen(lock) + 1);
	}
	if (!km_rec_done(&r))
		return km_err_set(err, 0, "corrupt record");
	return 0;
}

/* Everything a restore relies on, checked: a snapshot is attacker input. */
static int check(const km_inet_t *s, km_err_t **err)
{
	bool tcp = s->type == SOCK_STREAM && s->protocol == IPPROTO_TCP;
	bool udp = s->type == SOCK_DGRAM && s->protocol == IPPROTO_UDP;
	if (s->family != AF_INET && s->family != AF_INET6)
		return km_err_set(err, 0, "corrupt record: address family %u", s->family);
	if (!tcp && !udp)
		return km_err_set(err, 0, "corrupt record: socket type %u protocol %u", s->type, s->protocol);
	if (!addr_ok(&s->local, s->local_len, s->family) || !addr_ok(&s->peer, s->peer_len, s->family))
		return km_err_set(err, 0, "corrupt record: an address is not of the socket's family");
	if (s->state >= KM_INET_STATE_MAX || (udp && s->state != KM_INET_OPEN && s->state != KM_INET_CONNECTED) ||
	    (tcp && s->state == KM_INET_CONNECTED))
		return km_err_set(err, 0, "corrupt record: state %u", s->state);
	bool needs_local = s->state == KM_INET_LISTEN || s->state == KM_INET_ESTABLISHED;
	bool needs_peer = s->state == KM_INET_CONNECTED || s->state == KM_INET_ESTABLISHED;
	if ((needs_local && s->local_len == 0) || (needs_peer && s->peer_len == 0) ||
	    (s->state == KM_INET_OPEN && s->peer_len != 0))
		return km_err_set(err, 0, "corrupt record: addresses do not match the state");
	if (s->backlog > BACKLOG_MAX || (s->state != KM_INET_LISTEN && s->backlog != 0))
		return km_err_set(err, 0, "corrupt record: backlog %u", s->backlog);
	if (s->lock[0] != '\0' && !km_netlock_name_ok(s->lock))
		return km_err_set(err, 0, "corrupt record: a network lock named '%.40s'", s->lock);
	return km_inet_opts_check(s, err);
}

/* --- restoring ------------------------------------------------------------------------------ */

static int set_nonblock(int fd, uint32_t oflags, km_err_t **err)
{
	if ((oflags & O_NONBLOCK) && fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return km_err_set(err, errno, "O_NONBLOCK");
	return 0;
}

/* Unconnected, listening, or connected UDP: socket, options, bind, listen or connect. */
static int restore_plain(const km_inet_t *s, km_err_t **err)
{
	char a[80];
	int fd = socket((int)s->family, (int)s->type | SOCK_CLOEXEC, (int)s->protocol);
	if (fd < 0)
		return km_err_set(err, errno, "creating a %s socket", proto_name(s));
	if (km_inet_opts_apply(fd, s, false, err) < 0)
		goto fail;
	if (s->local_len > 0 && bind(fd, (const struct sockaddr *)&s->local, s->local_len) < 0) {
		km_err_set(err, errno, "binding to %s", km_inet_addr_str(&s->local, s->local_len, a, sizeof(a)));
		goto fail;
	}
	if (s->state == KM_INET_LISTEN && listen(fd, (int)s->backlog) < 0) {
		km_err_set(err, errno, "listening on %s", km_inet_addr_str(&s->local, s->local_len, a, sizeof(a)));
		goto fail;
	}
	if (s->state == KM_INET_CONNECTED && connect(fd, (const struct sockaddr *)&s->peer, s->peer_len) < 0) {
		km_err_set(err, errno, "connecting to %s", km_inet_addr_str(&s->peer, s->peer_len, a, sizeof(a)));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

static int inet_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	km_inet_t *s = malloc(sizeof(*s));
	if (s == NULL)
		return km_err_set(err, ENOMEM, "restoring a socket");
	int fd = -1;
	if (parse(r, s, err) == 0 && check(s, err) == 0) {
		switch (s->state) {
		case KM_INET_ESTABLISHED:
			if (km_tcp_repair_check(rs, s, err) == 0)
				fd = km_tcp_repair_restore(rs, s, r->first_fd, err);
			break;
		case KM_INET_RESET:
		case KM_INET_PEER_CLOSED:
			fd = km_inet_ended_restore(rs, s, err);
			break;
		default:
			fd = restore_plain(s, err);
		}
	}
	if (fd >= 0 && set_nonblock(fd, r->oflags, err) < 0) {
		close(fd);
		fd = -1;
	}
	free(s);
	return fd;
}

/* --- --inspect ------------------------------------------------------------------------------ */

static void inet_describe(const km_fdrec_t *r, km_buf_t *out)
{
	km_inet_t *s = malloc(sizeof(*s));
	km_err_t *err = NULL;
	char l[80], p[80];
	if (s == NULL || parse(r, s, &err) < 0 || check(s, &err) < 0) {
		km_buf_printf(out, "(%s)", err != NULL ? err->msg : "out of memory");
		km_err_free(&err);
		free(s);
		return;
	}
	km_buf_printf(out, "%s %s", proto_name(s), km_inet_addr_str(&s->local, s->local_len, l, sizeof(l)));
	if (s->peer_len > 0)
		km_buf_printf(out, " -> %s", km_inet_addr_str(&s->peer, s->peer_len, p, sizeof(p)));
	switch (s->state) {
	case KM_INET_OPEN:
		km_buf_printf(out, "%s", s->local_len > 0 ? " bound" : "");
		break;
	case KM_INET_LISTEN:
		km_buf_printf(out, " listening backlog %u", s->backlog);
		if (s->pending > 0)
			km_buf_printf(out, " (%u pending connections not kept)", s->pending);
		break;
	case KM_INET_CONNECTED:
		km_buf_printf(out, " connected");
		break;
	case KM_INET_ESTABLISHED:
		km_buf_printf(out, " established, %lu bytes unsent, %lu bytes unacknowledged, %lu bytes unread",
			      (unsigned long)s->conn.unsent_len, (unsigned long)(s->conn.out_len > s->conn.unsent_len ? s->conn.out_len - s->conn.unsent_len : 0),
			      (unsigned long)s->conn.in_len);
		if (s->lock[0] != '\0')
			km_buf_printf(out, ", locked by nft table inet %s until the resume (never resumed: "
					   "nft delete table inet %s)",
				      s->lock, s->lock);
		break;
	case KM_INET_RESET:
		km_buf_printf(out, " reset (resumes as reset by the peer)");
		break;
	case KM_INET_PEER_CLOSED:
		km_buf_printf(out, " closed by the peer, %lu bytes unread", (unsigned long)s->conn.in_len);
		break;
	}
	free(s);
}

/* Once the resume is over, whether it worked or not: the network lock the save left on the host
 * goes (a connection rebuilt is out of repair mode by then and owns its segments; one not rebuilt
 * is gone, and its peer is better told so by a reset than left waiting). */
static void inet_finish(const km_fdrec_t *r)
{
	km_inet_t *s = malloc(sizeof(*s));
	km_err_t *err = NULL;
	if (s != NULL && parse(r, s, &err) == 0 && s->state == KM_INET_ESTABLISHED && km_netlock_name_ok(s->lock) &&
	    km_netlock_remove(s->lock, &err) < 0)
		fprintf(stderr, "km: warning: %s (remove it with `nft delete table inet %s`)\n", err->msg, s->lock);
	km_err_free(&err);
	free(s);
}

const km_fdkind_t km_fdkind_inet = {
    .kind = KM_FDK_INET,
    .name = "inet",
    .match = inet_match,
    .save = inet_save,
    .restore = inet_restore,
    .describe = inet_describe,
    .finish = inet_finish,
};
