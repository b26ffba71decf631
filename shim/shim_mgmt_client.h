/*
 * Client of km's management socket (docs/mgmt-protocol.md): one request, one reply.
 *
 * The socket is <state dir>/km.sock, bound by km-shim at create and listened on by km. It is
 * reached through /proc/self/fd/<dirfd>/km.sock so that a long --root cannot exceed sun_path.
 * A descriptor (the checkpoint's image directory) can ride along with the request as
 * SCM_RIGHTS: km runs inside the container and cannot see the host's paths.
 */
#ifndef SHIM_MGMT_CLIENT_H
#define SHIM_MGMT_CLIENT_H

#include "km_error.h"

typedef struct shim_mgmt_reply {
	char *line; /* the reply without its LF ("ok ..." or "error CODE MESSAGE") */
	char *code; /* the error CODE, or NULL for ok */
} shim_mgmt_reply_t;

/* Sends `request` (one line, without LF; values already encoded with shim_mgmt_encode) on a new
 * connection to km.sock in directory fd `dirfd`, with `pass_fd` as SCM_RIGHTS unless it is -1,
 * and reads one reply line, waiting at most timeout_ms. 0 with *reply filled (ok or error: see
 * reply->code); -1 with *err when there is no valid reply (cannot connect: errnum ECONNREFUSED or
 * ENOENT; closed; timed out: ETIMEDOUT). */
int shim_mgmt_request(int dirfd, const char *request, int pass_fd, int timeout_ms, shim_mgmt_reply_t *reply,
		      km_err_t **err);

/* Like shim_mgmt_request, but an error reply becomes -1 with *err "km: MESSAGE (CODE)". */
int shim_mgmt_call(int dirfd, const char *request, int pass_fd, int timeout_ms, shim_mgmt_reply_t *reply,
		   km_err_t **err);

void shim_mgmt_reply_free(shim_mgmt_reply_t *reply);

/* The decoded value of field `key` in an ok reply, or NULL if absent. Caller frees. */
char *shim_mgmt_field(const shim_mgmt_reply_t *reply, const char *key);

/* `s` percent-encoded as the protocol's values are. Caller frees; NULL on allocation failure. */
char *shim_mgmt_encode(const char *s);

#endif
