/*
 * signalfd: a guest fd that reads the thread's (and process's) pending signals among a mask as
 * struct signalfd_siginfo records. km's signals never reach the host's signal queues, so the
 * host's signalfd cannot serve it: the fd is a host eventfd (so that poll, select and epoll see
 * it readable while a signal it takes is pending) that km keeps a copy of, and recognises on
 * read by comparing the files (kcmp KCMP_FILE: every anonymous-inode file shares one inode).
 */
#ifndef KM_SIGFD_H
#define KM_SIGFD_H

#include <stdbool.h>
#include <stdint.h>

#include "km_guest.h"

/* signalfd4(fd, mask, flags): a new one (fd -1) or a new mask for an existing one. Returns the
 * fd or -errno. */
long km_sigfd_create(km_vcpu_t *v, int fd, uint64_t mask, int flags);

/* If fd is one of the guest's signalfds: reads up to len bytes of records into guest buf and
 * sets *ret (bytes or -errno); returns true. False: not a signalfd, read it as any fd. */
bool km_sigfd_read(km_vcpu_t *v, int fd, uint64_t buf, uint64_t len, long *ret);

/* fd is one of the guest's signalfds. Their writes and vectored or positioned reads are refused
 * before they reach the eventfd underneath (whose counter is km's: a guest that could set it
 * would make km's own read or write of it block with the signal lock held). */
bool km_sigfd_is(km_guest_t *g, int fd);

/* If fd is one of the guest's signalfds: its mask in *mask, true (a snapshot records it). */
bool km_sigfd_mask(km_guest_t *g, int fd, uint64_t *mask);

/* Makes eventfd `fd` (a resume's rebuilt signalfd, as km_sigfd_create makes them) one of the
 * guest's signalfds reading `mask`, and syncs readiness. 0 or -errno (EMFILE: table full). */
int km_sigfd_adopt(km_guest_t *g, int fd, uint64_t mask);

/* Brings every signalfd's readiness in line with what is pending (after signals are posted or
 * taken). Cheap when the guest has none. */
void km_sigfd_sync(km_guest_t *g);

#endif
