/*
 * Internals of the inet kind (km_fd_inet.c): TCP and UDP sockets, IPv4 and IPv6, as the fd
 * table records them (docs/snapshot-files.md, "Kind 8: inet"). Shared by the kind, its options
 * (km_inet_opts.c), established connections (km_tcp_repair.c) and ended ones (km_inet_ended.c).
 */
#ifndef KM_INET_H
#define KM_INET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "km_fdtab.h"

/* What the socket was doing (the record's state field). */
enum km_inet_state {
	KM_INET_OPEN = 0,        /* unconnected: maybe bound, not listening */
	KM_INET_LISTEN = 1,      /* TCP listening */
	KM_INET_CONNECTED = 2,   /* UDP with a default peer */
	KM_INET_ESTABLISHED = 3, /* TCP established, saved with TCP_REPAIR */
	KM_INET_RESET = 4,       /* TCP connection saved as reset (--tcp-established=close, or a
				  * state repair cannot rebuild) */
	KM_INET_PEER_CLOSED = 5, /* TCP connection the peer had closed (CLOSE_WAIT): unread bytes, EOF */
	KM_INET_STATE_MAX = 6
};

#define KM_INET_QUEUE_MAX (64u << 20) /* bytes of one saved queue; more is a corrupt record */
#define KM_INET_OPTS_MAX 32           /* options in one record (the table has fewer) */
#define KM_INET_LOCK_MAX 40           /* bytes of a network lock's table name, NUL included */

/* One socket option as recorded: level, name and an int value (SO_LINGER: onoff and seconds). */
typedef struct km_inet_opt {
	uint32_t level, name;
	int32_t val, val2;
} km_inet_opt_t;

/* The state of an established connection that TCP_REPAIR reads and restores. */
typedef struct km_tcp_conn {
	uint32_t send_seq;   /* write_seq: the sequence number after the last byte queued to send */
	uint32_t recv_seq;   /* rcv_nxt: the sequence number after the last byte received */
	uint32_t mss;
	uint32_t tcpi_options; /* TCPI_OPT_TIMESTAMPS, _SACK, _WSCALE */
	uint32_t snd_wscale, rcv_wscale;
	uint32_t timestamp;  /* TCP_TIMESTAMP */
	uint32_t win[5];     /* struct tcp_repair_window: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup */
	uint64_t out_len;    /* bytes in the send queue, sent or not */
	uint64_t unsent_len; /* of which never sent (the end of the queue) */
	uint64_t in_len;     /* bytes received and not yet read */
	int64_t out_blob, in_blob; /* blob indexes, -1 when the queue is empty */
} km_tcp_conn_t;

/* A socket as the record holds it. */
typedef struct km_inet {
	uint32_t family, type, protocol, state;
	struct sockaddr_storage local, peer;
	uint32_t local_len, peer_len; /* 0: none (unbound; no peer) */
	uint32_t backlog;             /* listening: the accept queue's limit */
	uint32_t pending;             /* listening: connections waiting in it at save (lost) */
	uint32_t nopts;
	km_inet_opt_t opts[KM_INET_OPTS_MAX];
	km_tcp_conn_t conn;           /* ESTABLISHED; PEER_CLOSED uses in_len and in_blob */
	char lock[KM_INET_LOCK_MAX];  /* ESTABLISHED: the network lock's table (km_netlock.h); "" in
				       * older files */
} km_inet_t;

/* --- options (km_inet_opts.c) --- */

/* Reads the options of the table that apply to s's family and protocol into s->opts. */
int km_inet_opts_save(int fd, km_inet_t *s, km_err_t **err);
/* Checks every recorded option: known, applicable to the socket, value in range, not twice. */
int km_inet_opts_check(const km_inet_t *s, km_err_t **err);
/* Sets the recorded options on fd where they differ from what fd has. skip_reuseaddr: leave
 * SO_REUSEADDR (a repaired socket sets it last). */
int km_inet_opts_apply(int fd, const km_inet_t *s, bool skip_reuseaddr, km_err_t **err);
/* The recorded value of (level, name), or dflt. */
int km_inet_opt_get(const km_inet_t *s, uint32_t level, uint32_t name, int dflt);

/* --- established connections (km_tcp_repair.c) --- */

/* Saves fd's connection with TCP_REPAIR into s->conn (queues as blobs) and registers the release
 * that turns repair off when the guest goes on. */
int km_tcp_repair_save(km_fdsave_t *sv, int fd, km_inet_t *s, km_err_t **err);
/* Checks s->conn against the blobs and the limits. */
int km_tcp_repair_check(km_fdrest_t *rs, const km_inet_t *s, km_err_t **err);
/* Rebuilds the connection on a new socket, still in repair mode: it leaves repair mode (and sends
 * what was never sent) on guest fd guest_fd once the whole table is placed. Returns the socket, or
 * -1 with *err. */
int km_tcp_repair_restore(km_fdrest_t *rs, const km_inet_t *s, int guest_fd, km_err_t **err);

/* --- connections that ended (km_inet_ended.c) --- */

/* A connected TCP socket of s->family that behaves like one whose peer reset it (RESET: the
 * first read fails with ECONNRESET, then EOF) or closed it (PEER_CLOSED: the saved unread bytes,
 * then EOF). Made over the loopback interface; without one, an unconnected socket (ENOTCONN). */
int km_inet_ended_restore(km_fdrest_t *rs, const km_inet_t *s, km_err_t **err);

/* --- addresses (km_inet_addr.c) --- */

/* "127.0.0.1:8080", "[::1]:80" or "unbound" into buf. */
const char *km_inet_addr_str(const struct sockaddr_storage *a, uint32_t len, char *buf, size_t size);

#endif
