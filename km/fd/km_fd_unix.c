/*
 * The unix kind of the fd table (km_fdtab.h): AF_UNIX stream, datagram and seqpacket sockets.
 *
 * Saved: type, what the socket is (unbound or bound, listening, one end of a connected pair,
 * a datagram socket connected to a name, connected to a peer that is gone), its own address,
 * options (SO_PASSCRED, SO_PEEK_OFF, buffer sizes), shutdown state and the messages in its
 * receive queue (km_unix_queue.h). Who the peer is comes from the kernel's socket diagnostics
 * (km_sockdiag.h): two sockets that are each other's peer are a pair.
 *
 * Restored: a pair with socketpair(2), whichever end comes first making both and leaving the
 * other in the stash; each end's queue is put back by sending from the other. A pair whose other
 * end was outside the program keeps that end in the stash, closed when the table is rebuilt: the
 * program reads the saved bytes, then end of file (stream, seqpacket), and writes get EPIPE; a
 * socket whose peer was already gone is rebuilt the same way. A listening or bound socket is bound
 * again at its address (relative paths against the program's working directory, restored before
 * the table); a socket file there that nobody listens on (connect says ECONNREFUSED: left behind
 * by the program snapshotted) is removed first, anything alive there fails the resume. The record:
 * docs/snapshot-files.md, "Kind 7: unix".
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_fdtab.h"
#include "km_sockdiag.h"
#include "km_sys_util.h"
#include "km_unix_queue.h"

enum {
	U_UNCONNECTED = 0,
	U_LISTEN = 1,
	U_PAIR = 2,
	U_NAMED_PEER = 3,
	U_PEER_GONE = 4,
	U_PENDING = 5, /* connected to a listener of the program that has not accepted it yet */
	U_STATE_MAX = 5
};
#define SHUT_BITS_RCV 1
#define SHUT_BITS_SEND 2
#define NO_BLOB UINT64_MAX
#define NO_FD UINT32_MAX
#define BACKLOG_MAX (1u << 20)
#define NAME_MAX_LEN (sizeof(((struct sockaddr_un *)0)->sun_path))

/* Stash slots: the end made for a socket (keyed by its inode), and a writer into a socket (a
 * second fd of its description, keyed by its inode) for its peer to put its own queue back,
 * with or without the socket's SHUT_WR still to do. */
enum { SLOT_END = 1, SLOT_WRITER = 2, SLOT_WRITER_SHUT = 3 };

static uint32_t slot_kind(int slot)
{
	return KM_FDK_UNIX | (uint32_t)slot << 16;
}

typedef struct unix_rec {
	uint32_t type, state;
	const uint8_t *name; /* sun_path bytes: a path (no NUL), or NUL and an abstract name; or none */
	uint32_t namelen;
	uint64_t ino, peer_ino;
	uint32_t peer_fd;
	const uint8_t *peer_name;
	uint32_t peer_namelen;
	uint32_t backlog, shut, passcred, peek_off, rcvbuf, sndbuf;
	uint32_t nmsgs;
	const uint8_t *lens; /* nmsgs u32, unaligned */
	uint64_t blob;
} unix_rec_t;

static bool read_rec(const km_fdrec_t *r, unix_rec_t *u)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	u->type = km_rec_get_u32(&rec);
	u->state = km_rec_get_u32(&rec);
	u->name = km_rec_get_bytes(&rec, &u->namelen);
	u->ino = km_rec_get_u64(&rec);
	u->peer_ino = km_rec_get_u64(&rec);
	u->peer_fd = km_rec_get_u32(&rec);
	u->peer_name = km_rec_get_bytes(&rec, &u->peer_namelen);
	u->backlog = km_rec_get_u32(&rec);
	u->shut = km_rec_get_u32(&rec);
	u->passcred = km_rec_get_u32(&rec);
	u->peek_off = km_rec_get_u32(&rec);
	u->rcvbuf = km_rec_get_u32(&rec);
	u->sndbuf = km_rec_get_u32(&rec);
	uint32_t lbytes;
	u->lens = km_rec_get_bytes(&rec, &lbytes);
	u->nmsgs = lbytes / 4;
	u->blob = km_rec_get_u64(&rec);
	return km_rec_done(&rec) && lbytes % 4 == 0;
}

static const char *type_name(uint32_t t)
{
	return t == SOCK_STREAM ? "stream" : t == SOCK_DGRAM ? "dgram" : t == SOCK_SEQPACKET ? "seqpacket" : "?";
}

/* --- saving --------------------------------------------------------------------------------- */

static bool unix_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	int dom = 0;
	socklen_t l = sizeof(dom);
	return S_ISSOCK(p->st.st_mode) && getsockopt(p->fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 && dom == AF_UNIX;
}

static int sockopt_int(int fd, int opt, int *v)
{
	socklen_t l = sizeof(*v);
	*v = 0;
	return getsockopt(fd, SOL_SOCKET, opt, v, &l);
}

/* sun_path of an address as the kernel gave it: a path without its NUL, or an abstract name. */
static void put_name(km_buf_t *rec, const struct sockaddr_un *a, socklen_t len)
{
	size_t n = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
	if (n > NAME_MAX_LEN)
		n = NAME_MAX_LEN;
	if (n > 0 && a->sun_path[0] != '\0')
		n = strnlen(a->sun_path, n);
	km_rec_put_bytes(rec, a->sun_path, (uint32_t)n);
}

/* The guest fd that holds the socket with inode ino, or NO_FD (for --inspect only). */
/* The program's sockets by inode, made once per save (a lookup per pair end would otherwise
 * fstat every guest fd: quadratic in the sockets a program holds). */
typedef struct sock_index {
	uint32_t n;
	struct sock_at {
		uint64_t ino;
		uint32_t fd;
	} at[];
} sock_index_t;

static void index_free(void *arg, bool goes_on)
{
	(void)goes_on;
	free(arg);
}

static const sock_index_t *sock_index(km_fdsave_t *sv)
{
	void **slot = km_fdsave_state(sv, KM_FDK_UNIX);
	if (*slot != NULL)
		return *slot;
	sock_index_t *x = malloc(sizeof(*x) + KM_FD_RESERVED_BASE * sizeof(x->at[0]));
	km_err_t *e = NULL;
	if (x == NULL || km_fdsave_on_release(sv, index_free, x, &e) < 0) {
		km_err_free(&e); /* the release freed x: --inspect only loses the peer's fd number */
		return NULL;
	}
	x->n = 0;
	for (int fd = 0; fd < KM_FD_RESERVED_BASE; fd++) {
		struct stat st;
		if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
			x->at[x->n++] = (struct sock_at){(uint64_t)st.st_ino, (uint32_t)fd};
	}
	*slot = x;
	return x;
}

/* The lowest guest fd that holds the socket with inode ino, or NO_FD (for --inspect only). */
static uint32_t fd_of_ino(km_fdsave_t *sv, uint64_t ino)
{
	const sock_index_t *x = sock_index(sv);
	for (uint32_t i = 0; x != NULL && i < x->n; i++)
		if (x->at[i].ino == ino)
			return x->at[i].fd;
	return NO_FD;
}

/* The program's listening unix socket that has the connection of client `ino` waiting to be
 * accepted (its pending connections' clients, from the diagnostics), or -1. */
static int pending_listener(uint64_t ino, int type)
{
	for (int fd = 0; fd < KM_FD_RESERVED_BASE; fd++) {
		struct stat st;
		int t;
		km_unix_diag_t ld;
		km_err_t *e = NULL;
		if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode) || sockopt_int(fd, SO_TYPE, &t) < 0 || t != type)
			continue;
		if (km_sockdiag_unix((uint64_t)st.st_ino, &ld, &e) < 0) {
			km_err_free(&e);
			continue;
		}
		for (uint32_t i = 0; ld.state == TCP_LISTEN && i < ld.nicons && i < KM_UNIX_DIAG_ICONS; i++)
			if (ld.icons[i] == ino)
				return fd;
	}
	return -1;
}

/* What the socket is, from the diagnostics of it and of its peer. A datagram socket that others
 * connected to is "established" with no peer of its own: getpeername tells. A connection not yet
 * accepted has peer 0 in the diagnostics (it is no socket of its own yet): its listener lists it. */
static uint32_t classify(int fd, int type, const km_unix_diag_t *d, uint64_t ino, int *listener)
{
	*listener = -1;
	if (d->state == TCP_LISTEN)
		return U_LISTEN;
	if (d->peer_ino != 0) {
		km_unix_diag_t pd;
		km_err_t *e = NULL;
		if (km_sockdiag_unix(d->peer_ino, &pd, &e) == 0 && pd.peer_ino == ino)
			return U_PAIR;
		km_err_free(&e);
		return type == SOCK_DGRAM ? U_NAMED_PEER : U_PEER_GONE;
	}
	struct sockaddr_un pa;
	socklen_t pal = sizeof(pa);
	if (type == SOCK_DGRAM && getpeername(fd, (struct sockaddr *)&pa, &pal) < 0 && errno == ENOTCONN)
		return U_UNCONNECTED;
	if (d->state != TCP_ESTABLISHED)
		return U_UNCONNECTED;
	/* the diagnostics name a connection not yet accepted as peer 0: it has no inode yet */
	if (type != SOCK_DGRAM && (*listener = pending_listener(ino, type)) >= 0)
		return U_PENDING;
	return U_PEER_GONE;
}

static int save_queue(km_fdsave_t *sv, const km_fdprobe_t *p, int type, const km_unix_diag_t *d, km_buf_t *rec,
		      km_err_t **err)
{
	km_unix_queue_t q = {0};
	if (d->state != TCP_LISTEN && km_unix_queue_peek(p->fd, type, d->shutdown & SHUT_BITS_RCV, &q, err) < 0)
		return -1;
	km_rec_put_bytes(rec, q.lens, q.n * 4);
	free(q.lens);
	if (q.len == 0) {
		free(q.data);
		km_rec_put_u64(rec, NO_BLOB);
		return 0;
	}
	int64_t b = km_fdsave_blob_mem(sv, q.data, q.len, err);
	if (b < 0)
		return -1;
	km_rec_put_u64(rec, (uint64_t)b);
	return 0;
}

static int unix_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	int type, passcred, peek, rcvbuf, sndbuf;
	if (sockopt_int(p->fd, SO_TYPE, &type) < 0 || sockopt_int(p->fd, SO_PASSCRED, &passcred) < 0 ||
	    sockopt_int(p->fd, SO_PEEK_OFF, &peek) < 0 || sockopt_int(p->fd, SO_RCVBUF, &rcvbuf) < 0 ||
	    sockopt_int(p->fd, SO_SNDBUF, &sndbuf) < 0)
		return km_err_set(err, errno, "reading the socket's options");
	if (type != SOCK_STREAM && type != SOCK_DGRAM && type != SOCK_SEQPACKET)
		return km_err_set(err, 0, "a unix socket of type %d", type);
	km_unix_diag_t d;
	if (km_sockdiag_unix((uint64_t)p->st.st_ino, &d, err) < 0)
		return -1;
	int listener;
	uint32_t state = classify(p->fd, type, &d, (uint64_t)p->st.st_ino, &listener);
	struct sockaddr_un a = {0}, pa = {0};
	socklen_t al = sizeof(a), pal = 0;
	if (getsockname(p->fd, (struct sockaddr *)&a, &al) < 0)
		return km_err_set(err, errno, "getsockname");
	if (state == U_NAMED_PEER || state == U_PENDING) {
		pal = sizeof(pa);
		if (getpeername(p->fd, (struct sockaddr *)&pa, &pal) < 0 || pal <= offsetof(struct sockaddr_un, sun_path))
			state = U_PEER_GONE, pal = 0;
	}
	if (state == U_PENDING) {
		/* What it sent waits in the connection the listener has not accepted: no call reads it
		 * there without accepting it, which would take it from the program. */
		int unread = 0;
		if (ioctl(p->fd, SIOCOUTQ, &unread) < 0 || unread > 0) {
			km_err_set(err, 0, "its connection to fd %d was not accepted yet and holds bytes it sent, which km "
					   "cannot read without accepting it", listener);
			return 1;
		}
	}
	km_rec_put_u32(rec, (uint32_t)type);
	km_rec_put_u32(rec, state);
	put_name(rec, &a, al);
	km_rec_put_u64(rec, (uint64_t)p->st.st_ino);
	km_rec_put_u64(rec, state == U_PAIR ? d.peer_ino : 0);
	km_rec_put_u32(rec, state == U_PAIR ? fd_of_ino(sv, d.peer_ino) : state == U_PENDING ? (uint32_t)listener : NO_FD);
	put_name(rec, &pa, pal);
	km_rec_put_u32(rec, state == U_LISTEN ? d.wqueue : 0);
	km_rec_put_u32(rec, d.shutdown);
	km_rec_put_u32(rec, (uint32_t)passcred);
	km_rec_put_u32(rec, (uint32_t)peek);
	km_rec_put_u32(rec, (uint32_t)rcvbuf);
	km_rec_put_u32(rec, (uint32_t)sndbuf);
	return save_queue(sv, p, type, &d, rec, err);
}

/* --- restoring ------------------------------------------------------------------------------ */

static int check_rec(km_fdrest_t *rs, const unix_rec_t *u, km_unix_queue_t *q, km_err_t **err)
{
	if (u->type != SOCK_STREAM && u->type != SOCK_DGRAM && u->type != SOCK_SEQPACKET)
		return km_err_set(err, 0, "corrupt record: socket type %u", u->type);
	if (u->state > U_STATE_MAX || (u->state == U_LISTEN && u->type == SOCK_DGRAM) ||
	    (u->state == U_NAMED_PEER && (u->type != SOCK_DGRAM || u->peer_namelen == 0)) ||
	    (u->state == U_PENDING && (u->type == SOCK_DGRAM || u->peer_namelen == 0)))
		return km_err_set(err, 0, "corrupt record: state %u of a %s socket", u->state, type_name(u->type));
	if (u->namelen > NAME_MAX_LEN || u->peer_namelen > NAME_MAX_LEN || u->backlog > BACKLOG_MAX || u->shut > 3)
		return km_err_set(err, 0, "corrupt record: an address, backlog or shutdown state out of range");
	if (u->namelen > 0 && u->name[0] != '\0' && memchr(u->name, '\0', u->namelen) != NULL)
		return km_err_set(err, 0, "corrupt record: a socket path with a NUL inside");
	if (u->peer_namelen > 0 && u->peer_name[0] != '\0' && memchr(u->peer_name, '\0', u->peer_namelen) != NULL)
		return km_err_set(err, 0, "corrupt record: a peer's path with a NUL inside");
	bool takes = u->state == U_PAIR || u->state == U_PEER_GONE || (u->type == SOCK_DGRAM && u->namelen > 0);
	if (u->nmsgs > KM_UNIX_QUEUE_MSGS_MAX || (u->nmsgs > 0 && !takes) || (u->type == SOCK_STREAM && u->nmsgs > 1))
		return km_err_set(err, 0, "corrupt record: %u queued messages on a socket that cannot hold them",
				  u->nmsgs);
	uint64_t total = 0, blen = 0;
	for (uint32_t i = 0; i < u->nmsgs; i++) {
		uint32_t l;
		memcpy(&l, u->lens + 4 * i, 4);
		total += l;
	}
	if (total > KM_UNIX_QUEUE_BYTES_MAX)
		return km_err_set(err, 0, "corrupt record: %lu queued bytes, more than a socket holds", (unsigned long)total);
	if (total > 0 && km_fdrest_blob_len(rs, u->blob, &blen, err) < 0)
		return -1;
	if (blen != total)
		return km_err_set(err, 0, "corrupt record: %lu queued bytes saved as %lu", (unsigned long)total,
				  (unsigned long)blen);
	if (total == 0)
		return 0;
	q->n = u->nmsgs;
	q->len = total;
	q->data = malloc(total);
	q->lens = malloc((size_t)u->nmsgs * 4);
	if (q->data == NULL || q->lens == NULL)
		return km_err_set(err, ENOMEM, "the socket's saved queue");
	memcpy(q->lens, u->lens, (size_t)u->nmsgs * 4);
	return km_fdrest_blob_read(rs, u->blob, q->data, total, err);
}

/* An address whose sun_path a 108-byte path fills: `end` (always 0) makes it a C string still. */
typedef struct unix_addr {
	struct sockaddr_un a;
	char end;
} unix_addr_t;

static socklen_t make_addr(unix_addr_t *ua, const uint8_t *name, uint32_t len)
{
	memset(ua, 0, sizeof(*ua));
	struct sockaddr_un *a = &ua->a;
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, name, len);
	/* a path's length with its NUL (it fits: NAME_MAX_LEN includes room only when shorter) */
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (len > 0 && name[0] != '\0' && len < NAME_MAX_LEN));
}

/* The name as the guest could name it (km_fd_admit.h); abstract names name no file. */
static int admit_path(km_fdrest_t *rs, const struct sockaddr_un *a, km_err_t **err)
{
	if (a->sun_path[0] == '\0')
		return 0;
	char path[NAME_MAX_LEN + 1];
	memcpy(path, a->sun_path, NAME_MAX_LEN);
	path[NAME_MAX_LEN] = '\0';
	long rc = km_path_admit(km_fdrest_guest(rs), AT_FDCWD, path, false);
	return rc < 0 ? km_err_set(err, (int)-rc, "%s", path) : 0;
}

/* A socket file at a's path that nobody is bound to: connect is refused. */
static bool stale_socket(const struct sockaddr_un *a, socklen_t al, int type)
{
	struct stat st;
	if (a->sun_path[0] == '\0' || lstat(a->sun_path, &st) < 0 || !S_ISSOCK(st.st_mode))
		return false;
	int probe = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return false;
	bool refused = connect(probe, (const struct sockaddr *)a, al) < 0 && errno == ECONNREFUSED;
	close(probe);
	return refused;
}

/* An autobound name: NUL and five hex digits, as Linux picks them. */
static bool autobound(const uint8_t *name, uint32_t len)
{
	if (len != 6 || name[0] != '\0')
		return false;
	for (int i = 1; i < 6; i++)
		if (!strchr("0123456789abcdef", name[i]) || name[i] == '\0')
			return false;
	return true;
}

static int bind_name(km_fdrest_t *rs, int s, const unix_rec_t *u, km_err_t **err)
{
	if (u->namelen == 0)
		return 0;
	unix_addr_t ua;
	socklen_t al = make_addr(&ua, u->name, u->namelen);
	const struct sockaddr_un *a = &ua.a; /* sun_path read as a string ends at ua.end at last */
	if (admit_path(rs, a, err) < 0)
		return -1;
	if (bind(s, (const struct sockaddr *)a, al) == 0)
		return 0;
	if (errno == EADDRINUSE && stale_socket(a, al, (int)u->type) && unlink(a->sun_path) == 0 &&
	    bind(s, (const struct sockaddr *)a, al) == 0)
		return 0;
	if (errno == EADDRINUSE && autobound(u->name, u->namelen) &&
	    bind(s, (const struct sockaddr *)a, sizeof(sa_family_t)) == 0)
		return 0; /* another autobound name: nobody could have known this one */
	int e = errno;
	if (a->sun_path[0] == '\0')
		return km_err_set(err, e, "binding the abstract name @%.*s", (int)u->namelen - 1, (const char *)u->name + 1);
	return km_err_set(err, e, "binding %s", a->sun_path);
}

/* Options and status flags as saved (buffer sizes as given: the kernel doubles them). */
static int set_opts(int s, const km_fdrec_t *r, const unix_rec_t *u, km_err_t **err)
{
	int v = u->passcred != 0, peek = (int)u->peek_off, cur;
	if (setsockopt(s, SOL_SOCKET, SO_PASSCRED, &v, sizeof(v)) < 0)
		return km_err_set(err, errno, "setting SO_PASSCRED");
	if (peek >= 0 && setsockopt(s, SOL_SOCKET, SO_PEEK_OFF, &peek, sizeof(peek)) < 0)
		return km_err_set(err, errno, "setting SO_PEEK_OFF");
	const struct { int opt, force; uint32_t val; } bufs[2] = {{SO_RCVBUF, SO_RCVBUFFORCE, u->rcvbuf},
								   {SO_SNDBUF, SO_SNDBUFFORCE, u->sndbuf}};
	for (int i = 0; i < 2; i++) {
		int half = (int)(bufs[i].val / 2);
		if (half <= 0 || (sockopt_int(s, bufs[i].opt, &cur) == 0 && (uint32_t)cur == bufs[i].val))
			continue;
		if (setsockopt(s, SOL_SOCKET, bufs[i].force, &half, sizeof(half)) < 0)
			(void)setsockopt(s, SOL_SOCKET, bufs[i].opt, &half, sizeof(half)); /* capped: best effort */
	}
	if (fcntl(s, F_SETFL, (int)(r->oflags & O_NONBLOCK)) < 0)
		return km_err_set(err, errno, "setting the saved flags");
	return 0;
}

static int shut(int s, int how, km_err_t **err)
{
	if (shutdown(s, how) < 0 && errno != ENOTCONN)
		return km_err_set(err, errno, "shutting the socket down as it was");
	return 0;
}

/* Unconnected (bound or not), listening, or a datagram socket connected to a name. Queued
 * datagrams are sent to its own name before it connects (connected, only its peer may send). */
static int named_restore(km_fdrest_t *rs, const unix_rec_t *u, const km_unix_queue_t *q, km_err_t **err)
{
	km_autoclose int s = socket(AF_UNIX, (int)u->type | SOCK_CLOEXEC, 0);
	if (s < 0)
		return km_err_set(err, errno, "creating a unix socket");
	if (bind_name(rs, s, u, err) < 0)
		return -1;
	if (q->n > 0) {
		unix_addr_t ua;
		socklen_t al = make_addr(&ua, u->name, u->namelen);
		km_autoclose int from = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (from < 0 || km_unix_queue_send(from, SOCK_DGRAM, q, &ua.a, al, err) < 0)
			return from < 0 ? km_err_set(err, errno, "a socket to put the queue back") : -1;
	}
	if (u->state == U_LISTEN && listen(s, (int)u->backlog) < 0)
		return km_err_set(err, errno, "listen");
	if (u->state == U_NAMED_PEER) {
		unix_addr_t upa;
		socklen_t pal = make_addr(&upa, u->peer_name, u->peer_namelen);
		const struct sockaddr_un *pa = &upa.a;
		if (admit_path(rs, pa, err) < 0)
			return -1;
		/* nobody there any more: left unconnected, sends fail as to a peer gone */
		if (connect(s, (const struct sockaddr *)pa, pal) < 0 && errno != ECONNREFUSED && errno != ENOENT)
			return km_err_set(err, errno, "connecting to its peer %s%.*s", pa->sun_path[0] ? "" : "@",
					  (int)u->peer_namelen - !pa->sun_path[0], pa->sun_path + !pa->sun_path[0]);
	}
	int fd = s;
	s = -1;
	return fd;
}

/* One end of a pair: made with its peer's end (stashed for it) if first, else taken from the
 * stash; its queue is sent by the other end. A peer that was gone is closed at once. */
static int pair_restore(km_fdrest_t *rs, const unix_rec_t *u, const km_unix_queue_t *q, km_err_t **err)
{
	int fd = u->state == U_PAIR ? km_fdrest_stash_take(rs, slot_kind(SLOT_END), u->ino) : -1;
	bool first = fd < 0;
	int rc = 0;
	if (first) {
		int sv[2];
		if (socketpair(AF_UNIX, (int)u->type | SOCK_CLOEXEC, 0, sv) < 0)
			return km_err_set(err, errno, "creating a socket pair");
		fd = sv[0];
		rc = km_unix_queue_send(sv[1], (int)u->type, q, NULL, 0, err);
		if (rc == 0 && u->state == U_PAIR)
			rc = km_fdrest_stash_put(rs, slot_kind(SLOT_END), u->peer_ino, sv[1], err);
		else
			close(sv[1]);
		if (rc == 0 && u->state == U_PAIR) { /* its SHUT_WR waits until the peer's queue is back */
			int w = fcntl(fd, F_DUPFD_CLOEXEC, 0);
			rc = w < 0 ? km_err_set(err, errno, "keeping a writer for its peer")
				   : km_fdrest_stash_put(rs, slot_kind(u->shut & SHUT_BITS_SEND ? SLOT_WRITER_SHUT : SLOT_WRITER),
							 u->ino, w, err);
		}
	} else {
		bool later_shut = false;
		int w = km_fdrest_stash_take(rs, slot_kind(SLOT_WRITER), u->peer_ino);
		if (w < 0 && (w = km_fdrest_stash_take(rs, slot_kind(SLOT_WRITER_SHUT), u->peer_ino)) >= 0)
			later_shut = true;
		if (w < 0 && q->n > 0)
			rc = km_err_set(err, 0, "its peer's end is gone: the saved queue cannot be put back");
		else if (w >= 0)
			rc = km_unix_queue_send(w, (int)u->type, q, NULL, 0, err);
		if (rc == 0 && later_shut)
			rc = shut(w, SHUT_WR, err);
		if (w >= 0)
			close(w);
	}
	if (rc == 0 && (u->shut & SHUT_BITS_RCV))
		rc = shut(fd, SHUT_RD, err);
	if (rc == 0 && (u->shut & SHUT_BITS_SEND) && (!first || u->state != U_PAIR))
		rc = shut(fd, SHUT_WR, err);
	if (rc < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A connection the listener had not accepted: connected again, from the guest's fd once every fd
 * (the listener among them) is in place, so that it waits in the listener's backlog as it did.
 * Several come back in fd order, not necessarily the order they had in the backlog. */
typedef struct pending {
	int fd;
	socklen_t al;
	unix_addr_t ua;
} pending_t;

static int connect_pending(void *arg, km_err_t **err)
{
	pending_t *p = arg;
	int fl = fcntl(p->fd, F_GETFL);
	fcntl(p->fd, F_SETFL, fl | O_NONBLOCK); /* a full backlog must fail, not block the resume */
	const struct sockaddr_un *a = &p->ua.a;
	int rc = connect(p->fd, (const struct sockaddr *)a, p->al);
	int e = errno;
	fcntl(p->fd, F_SETFL, fl);
	if (rc < 0)
		return km_err_set(err, e, "connecting again to its listener %s%s", a->sun_path[0] ? "" : "@",
				  a->sun_path + !a->sun_path[0]);
	return 0;
}

static int pending_restore(km_fdrest_t *rs, const km_fdrec_t *r, const unix_rec_t *u, km_err_t **err)
{
	km_autoclose int s = socket(AF_UNIX, (int)u->type | SOCK_CLOEXEC, 0);
	if (s < 0)
		return km_err_set(err, errno, "creating a unix socket");
	if (bind_name(rs, s, u, err) < 0)
		return -1;
	pending_t *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return km_err_set(err, ENOMEM, "restoring a connection");
	p->fd = r->first_fd;
	p->al = make_addr(&p->ua, u->peer_name, u->peer_namelen);
	if (admit_path(rs, &p->ua.a, err) < 0) {
		free(p);
		return -1;
	}
	if (km_fdrest_after(rs, connect_pending, p, err) < 0)
		return -1;
	int fd = s;
	s = -1;
	return fd;
}

static int unix_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	unix_rec_t u;
	if (!read_rec(r, &u))
		return km_err_set(err, 0, "corrupt record");
	km_unix_queue_t q = {0};
	int fd = check_rec(rs, &u, &q, err);
	if (fd == 0)
		fd = u.state == U_PAIR || u.state == U_PEER_GONE ? pair_restore(rs, &u, &q, err)
		     : u.state == U_PENDING			 ? pending_restore(rs, r, &u, err)
								 : named_restore(rs, &u, &q, err);
	km_unix_queue_free(&q);
	if (fd >= 0 && set_opts(fd, r, &u, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* --- --inspect ------------------------------------------------------------------------------ */

static void put_addr(km_buf_t *out, const uint8_t *name, uint32_t len)
{
	if (len > 0 && name[0] == '\0')
		km_buf_printf(out, "@%.*s", (int)len - 1, (const char *)name + 1);
	else
		km_buf_printf(out, "%.*s", (int)len, (const char *)name);
}

static void unix_describe(const km_fdrec_t *r, km_buf_t *out)
{
	unix_rec_t u;
	if (!read_rec(r, &u) || u.state > U_STATE_MAX) {
		km_buf_printf(out, "(corrupt record)");
		return;
	}
	static const char *const states[] = {"unconnected", "listening", "connected", "connected", "connected",
					     "connected"};
	km_buf_printf(out, "unix %s %s", type_name(u.type), states[u.state]);
	if (u.namelen > 0) {
		km_buf_printf(out, " ");
		put_addr(out, u.name, u.namelen);
	}
	if (u.state == U_LISTEN)
		km_buf_printf(out, " backlog %u", u.backlog);
	else if (u.state == U_PAIR && u.peer_fd != NO_FD)
		km_buf_printf(out, " peer=fd %u", u.peer_fd);
	else if (u.state == U_PAIR)
		km_buf_printf(out, " peer outside the program (gone after resume)");
	else if (u.state == U_PEER_GONE)
		km_buf_printf(out, " peer gone");
	else if (u.state == U_PENDING) {
		km_buf_printf(out, " to ");
		put_addr(out, u.peer_name, u.peer_namelen);
		if (u.peer_fd != NO_FD)
			km_buf_printf(out, " not yet accepted by fd %u", u.peer_fd);
	}
	else if (u.state == U_NAMED_PEER) {
		km_buf_printf(out, " to ");
		put_addr(out, u.peer_name, u.peer_namelen);
	}
	uint64_t total = 0;
	for (uint32_t i = 0; i < u.nmsgs; i++) {
		uint32_t l;
		memcpy(&l, u.lens + 4 * i, 4);
		total += l;
	}
	if (u.type == SOCK_STREAM)
		km_buf_printf(out, " %lu bytes queued", (unsigned long)total);
	else
		km_buf_printf(out, " %u messages (%lu bytes) queued", u.nmsgs, (unsigned long)total);
	if (u.shut != 0)
		km_buf_printf(out, " shutdown%s%s", u.shut & SHUT_BITS_RCV ? " rd" : "", u.shut & SHUT_BITS_SEND ? " wr" : "");
}

const km_fdkind_t km_fdkind_unix = {
    .kind = KM_FDK_UNIX,
    .name = "unix",
    .match = unix_match,
    .save = unix_save,
    .restore = unix_restore,
    .describe = unix_describe,
};
