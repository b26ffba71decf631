/*
 * A unix socket's receive queue across a snapshot (km_fd_unix.c): read without taking anything
 * from it, message by message, and put back by sending from a socket that may send to it.
 */
#ifndef KM_UNIX_QUEUE_H
#define KM_UNIX_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "km_error.h"

/* What a snapshot may carry in one socket's queue: a socket buffer holds no more (Linux caps
 * SO_RCVBUF/SO_SNDBUF at 2 x INT_MAX/2 but nobody sets that; a record asking more is refused). */
#define KM_UNIX_QUEUE_BYTES_MAX (64u << 20)
#define KM_UNIX_QUEUE_MSGS_MAX 65536u

typedef struct km_unix_queue {
	uint8_t *data;  /* the messages, one after another (malloc'd) */
	uint64_t len;
	uint32_t *lens; /* each message's length (malloc'd); a stream's queue is one "message" */
	uint32_t n;
} km_unix_queue_t;

/* Reads socket fd's queue with MSG_PEEK, walking it with SO_PEEK_OFF so that datagram and
 * seqpacket boundaries are kept, and sets SO_PEEK_OFF back as it was. rcv_shut: the socket's
 * receiving side is shut down (then an empty read is its end). Fails (with the reason) if a
 * message carries fds (SCM_RIGHTS; those the peek installed are closed), if the queue holds an
 * empty datagram first, or more than the limits above. */
int km_unix_queue_peek(int fd, int type, bool rcv_shut, km_unix_queue_t *q, km_err_t **err);

/* Sends the messages of q from `from` without blocking (MSG_DONTWAIT): to its peer, or with `to`
 * (not NULL) to that address. Raises from's SO_SNDBUF as far as it may for the duration, so that
 * what fitted in the queue fits again. Fails with "do not fit" if the receiver would block. */
int km_unix_queue_send(int from, int type, const km_unix_queue_t *q, const struct sockaddr_un *to,
		       socklen_t tolen, km_err_t **err);

void km_unix_queue_free(km_unix_queue_t *q);

#endif
