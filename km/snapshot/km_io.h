/* File writes that finish or say why not. */
#ifndef KM_IO_H
#define KM_IO_H

#include <stddef.h>
#include <stdint.h>

/* Writes all `len` bytes of buf at offset `off` of fd: a short write (one pwrite moves at most
 * 0x7ffff000 bytes; a filling disk or RLIMIT_FSIZE writes what fits first) is continued and
 * EINTR retried. Returns 0, or -errno of the write that failed (-EIO if one wrote nothing and
 * gave no reason). */
int km_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

#endif
