/*
 * File descriptors handed to km by whoever started it (km-shim, inside a container): the KVM
 * device, a listening management socket, the ready and start fds, the snapshot to resume, the
 * guest's seccomp rules (docs/cli.md, "Descriptors passed in").
 *
 * Each one is checked before km uses it (open, the right kind of file) and moved at once into
 * km's own fd range (KM_FD_RESERVED_BASE and up, close-on-exec), so the guest, which owns every
 * fd number below that range, never sees, names, closes or dup2s over one of them.
 */
#ifndef KM_PASSFD_H
#define KM_PASSFD_H

#include <stdbool.h>

#include "km_error.h"

typedef enum km_passfd_kind {
	KM_PASSFD_KVM,      /* a character device (KVM itself is checked when the VM is created) */
	KM_PASSFD_LISTENER, /* a listening AF_UNIX SOCK_STREAM socket; made non-blocking */
	KM_PASSFD_WRITER,   /* open for writing (the ready fd) */
	KM_PASSFD_READER,   /* open for reading (the start fd) */
	KM_PASSFD_REGULAR,  /* a regular file open for reading (snapshot, seccomp rules) */
} km_passfd_kind_t;

/* Checks fd *fd given with option `opt` (e.g. "--kvm-fd") for `kind` and moves it above the
 * guest's fd range; *fd becomes the new number. -1 with *err ("--kvm-fd=5: ...") if it is not
 * open, is km's own stderr copy, or is the wrong kind; *fd is then left as it was. */
int km_passfd_take(int *fd, km_passfd_kind_t kind, const char *opt, km_err_t **err);

/* Writes "ready\n" to fd and closes it. -1 with *err if the write fails (nobody reads it). */
int km_passfd_ready(int fd, km_err_t **err);

/* Blocks until one byte can be read from fd, then closes it. *go: a byte came (run the
 * program); false: end of file (nobody will start it). Signals sent to km while it waits have
 * their default effect on km (SIGTERM, SIGINT, SIGKILL end it at once, without a core; ignored
 * ones stay ignored). -1 with *err on a read error. */
int km_passfd_wait_start(int fd, bool *go, km_err_t **err);

#endif
