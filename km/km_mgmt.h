/*
 * The management socket (`km --mgmt=PATH`): a unix stream socket on which km takes requests from
 * outside while the guest runs, above all "write a snapshot now" (what `km-shim checkpoint`
 * uses). The protocol is one text line per request and per reply; docs/mgmt-protocol.md is its
 * definition and this file implements it.
 *
 * One listener thread serves up to KM_MGMT_CONN_MAX connections at once (poll), each with its own
 * buffers and deadlines, so an idle or slow client never holds up another. It has its own file descriptor table
 * (unshare(CLONE_FILES)) holding only the socket's fds, so the connections it accepts never take
 * or disturb one of the guest's fd numbers, and all signals are blocked in it so that kicks and
 * signals meant for the guest go to vCPU threads.
 */
#ifndef KM_MGMT_H
#define KM_MGMT_H

#include <stdbool.h>
#include <stddef.h>

#include "km_error.h"
#include "km_guest.h"
#include "km_snapshot.h"

#define KM_MGMT_PROTOCOL 2

#define KM_MGMT_LINE_MAX 16384 /* bytes of one request, LF excluded: a PATH_MAX path, encoded */
#define KM_MGMT_PATH_MAX 4096  /* decoded path, NUL included (PATH_MAX) */
#define KM_MGMT_LABEL_MAX 255  /* decoded label bytes, as HC_snapshot's label */
#define KM_MGMT_REPLY_MAX (3 * KM_MGMT_PATH_MAX + 256)
#define KM_MGMT_IDLE_MS 10000  /* a connection that sends no complete request for this long is closed */
#define KM_MGMT_SEND_MS 5000   /* a client that does not take its reply within this is dropped */
#define KM_MGMT_CONN_MAX 8     /* connections open at once; a new one replaces the longest idle */

/* Error codes: the word after "error" in a reply. */
#define KM_MGMT_E_REQUEST "bad-request"     /* malformed request, bad or missing field */
#define KM_MGMT_E_VERB "unknown-request"    /* the first word names no request */
#define KM_MGMT_E_TOO_LONG "too-long"       /* longer than KM_MGMT_LINE_MAX; connection closed */
#define KM_MGMT_E_SNAPSHOT "snapshot-failed" /* km could not write the snapshot */
#define KM_MGMT_E_ENDED "ended"             /* the guest ended; there is nothing to snapshot */
#define KM_MGMT_E_BUSY "busy"               /* closed to make room, or no room; connection closed */
#define KM_MGMT_E_DENIED "denied"           /* the peer is neither km's user nor root; closed */
#define KM_MGMT_NAME_MAX 255               /* name= of a dir=fd snapshot (NAME_MAX) */
#define KM_MGMT_FDS_MAX 16                 /* fds taken from one recvmsg (one kept; the rest closed) */

typedef enum km_mgmt_verb {
	KM_MGMT_SNAPSHOT = 1,
	KM_MGMT_STATUS,
	KM_MGMT_VERSION,
	KM_MGMT_PAUSE,
	KM_MGMT_RESUME,
} km_mgmt_verb_t;

/* One request, decoded. */
typedef struct km_mgmt_request {
	km_mgmt_verb_t verb;
	char path[KM_MGMT_PATH_MAX];         /* snapshot: the file, as given (maybe relative); with
					      * dir=fd: the name in that directory (name=) */
	bool dir_fd;                         /* snapshot: dir=fd (the directory came with SCM_RIGHTS) */
	char label[KM_MGMT_LABEL_MAX + 1];   /* snapshot: "" when none was given */
	bool has_label;
	bool keep_running;                   /* snapshot: mode=continue */
	int tcp;                             /* snapshot: tcp=, enum km_tcp_policy + 1; 0: km's
					      * --tcp-established */
	char parent[KM_MGMT_PATH_MAX];       /* snapshot: parent= (incremental), "" when none; with
					      * dir=fd a path relative to that directory */
	bool self_contained;                 /* snapshot: self-contained=1 */
} km_mgmt_request_t;

/* Parses one request line (without its LF; a final CR is allowed) of `len` bytes, which may hold
 * any bytes. Returns 0 with *req filled, or -1 with *err saying what is wrong and *code the
 * protocol's error code (KM_MGMT_E_REQUEST or KM_MGMT_E_VERB). */
int km_mgmt_parse(const char *line, size_t len, km_mgmt_request_t *req, const char **code, km_err_t **err);

/* Percent-encodes s for a reply: bytes outside 0x21..0x7e, and '%', become %XX. Returns the
 * encoded length, or -1 if it (with its NUL) does not fit in `size`. */
int km_mgmt_encode(const char *s, char *out, size_t size);

/* Turns a request's path into the absolute path km writes: a relative path is taken from `base`
 * (km's working directory when it started listening); "." components and repeated slashes are
 * dropped ("..": kept, as symlinks make it mean something). Returns 0, or -1 with *err if the
 * result does not fit in KM_MGMT_PATH_MAX or path ends with '/' (names a directory). */
int km_mgmt_abs_path(const char *base, const char *path, char out[KM_MGMT_PATH_MAX], km_err_t **err);

/* What the listener calls to take a snapshot: km_snapshot_request, or a test's stand-in. It runs
 * in the listener thread, whose fd table holds only the socket's fds: it must not use guest fd
 * numbers, and any fd it opens is private to the call. */
typedef int km_mgmt_snapshot_fn(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res,
				km_err_t **err);

typedef struct km_mgmt_opts {
	km_mgmt_snapshot_fn *snapshot; /* NULL: km_snapshot_request */
	int idle_ms;                   /* 0: KM_MGMT_IDLE_MS */
	int send_ms;                   /* 0: KM_MGMT_SEND_MS */
	bool shared_fds;               /* tests: skip the private fd table (the fallback path) */
	bool serve_own_process;        /* tests: serve clients in km's own process (else: denied) */
	/* km_mgmt_start_fd in a km an execve started (km_exec_state.h): the socket file the km
	 * before created at this absolute path (its identity: owned_dev, owned_ino), which this km
	 * removes at its end and whose peers it checks by uid, as km_mgmt_start's. NULL: a socket
	 * someone else made (--mgmt-fd). */
	const char *owned_path;
	uint64_t owned_dev, owned_ino;
} km_mgmt_opts_t;

typedef struct km_mgmt km_mgmt_t;

/* Listens on unix socket `sock_path` (created 0600) for requests about guest g and starts the
 * listener thread. Only km's user and root are served, never km's own process (the guest). A
 * relative sock_path is taken from the current directory now, and removed from there by
 * km_mgmt_stop even if the guest has changed directory since. A stale socket file there (one
 * nobody listens on) is replaced; anything else (a live socket, a regular file, a directory) is
 * refused. Call before the guest starts running and while km has no other thread: the thread's
 * fd table is copied from km's at that moment, and the socket is created under a temporary
 * umask. */
int km_mgmt_start(km_guest_t *g, const char *sock_path, km_mgmt_t **out, km_err_t **err);
int km_mgmt_start_opts(km_guest_t *g, const char *sock_path, const km_mgmt_opts_t *opts, km_mgmt_t **out,
		       km_err_t **err);

/* The same on a socket someone else bound and listens on (--mgmt-fd: km-shim made it; km never
 * removes a file for it). listen_fd is in km's fd range, non-blocking; km_mgmt takes it over.
 * Peers are not checked by uid (in a container km's user namespace shows km-shim's root as an
 * unmapped uid; who may connect was decided by the socket's maker), only km's own process is
 * refused. */
int km_mgmt_start_fd(km_guest_t *g, int listen_fd, const km_mgmt_opts_t *opts, km_mgmt_t **out, km_err_t **err);

/* For an execve of km (km_exec.c): an fd on m's listening socket in km's own fd table (km's
 * range, close-on-exec; m keeps and closes it), -1 if there is none; *dev and *ino the identity
 * of the socket file km created for it by path, 0 for a socket given as --mgmt-fd. */
int km_mgmt_handover(const km_mgmt_t *m, uint64_t *dev, uint64_t *ino);

/* Stops listening (the guest has ended): a request being served (a snapshot in progress) is
 * finished and answered first, a request already received on any connection is answered
 * "ended", and every connection is closed (within KM_MGMT_SEND_MS for clients to take those
 * replies). Joins the thread, removes the socket file if it is still the one km created, frees
 * m. Call before the guest is destroyed. Safe on NULL. */
void km_mgmt_stop(km_mgmt_t *m);

/* After a host fork, in the child: the child neither serves the parent's socket nor removes it.
 * Closes km's fds of the listener this process ran (if any) and forgets it. */
void km_mgmt_forget_in_child(void);

#endif
