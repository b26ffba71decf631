/*
 * What the host kernel's socket diagnostics (NETLINK_SOCK_DIAG) say about one AF_UNIX socket of
 * km's own process: the facts no getsockopt gives - which socket is its peer, its shutdown state,
 * a listener's backlog. Used by the unix kind of the fd table (km_fd_unix.c) when saving.
 */
#ifndef KM_SOCKDIAG_H
#define KM_SOCKDIAG_H

#include <stdbool.h>
#include <stdint.h>

#include "km_error.h"

#define KM_UNIX_DIAG_ICONS 64

typedef struct km_unix_diag {
	uint8_t state;     /* TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE (<netinet/tcp.h> values) */
	uint64_t peer_ino; /* inode of the socket it is connected to, 0 if none */
	bool has_shutdown;
	uint8_t shutdown;  /* with has_shutdown: RCV_SHUTDOWN 1 | SEND_SHUTDOWN 2, as the kernel keeps */
	uint32_t rqueue;   /* a listener: connections waiting to be accepted; else bytes queued */
	uint32_t wqueue;   /* a listener: its backlog (listen's argument as the kernel keeps it) */
	uint32_t nicons;   /* a listener: connections not yet accepted, whose clients' inodes... */
	uint64_t icons[KM_UNIX_DIAG_ICONS]; /* ... are these (the first KM_UNIX_DIAG_ICONS of them) */
} km_unix_diag_t;

/* Asks the kernel about the unix socket with inode ino. 0 and *d, or -1 with *err (no such
 * socket, or sock_diag is not available: unix_diag not built or the call refused). */
int km_sockdiag_unix(uint64_t ino, km_unix_diag_t *d, km_err_t **err);

#endif
