/*
 * File locks a description holds, across a snapshot (km_fd_file.c, km_fd_datafile.c).
 *
 * At save they are read from the description's /proc/self/fdinfo "lock:" lines (fs/locks.c:
 * flock locks and OFD locks belong to the description; POSIX locks to the process, listed on
 * the description they were taken through). At restore flock and OFD locks are taken on the
 * rebuilt description at once; POSIX locks once every fd sits at its number (km_fdrest_after),
 * since any close of the file by the process drops them. Leases are not saved.
 */
#ifndef KM_FD_LOCKS_H
#define KM_FD_LOCKS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "km_fdtab.h"

enum { KM_LOCK_FLOCK = 1, KM_LOCK_POSIX = 2, KM_LOCK_OFD = 3 };

#define KM_FDLOCKS_MAX 1024        /* locks one description may carry in a snapshot */
#define KM_LOCK_EOF UINT64_MAX     /* end of a lock that reaches the end of the file */

typedef struct km_fdlock {
	uint32_t type; /* KM_LOCK_* */
	uint32_t mode; /* F_RDLCK or F_WRLCK */
	uint64_t start, end; /* bytes start..end inclusive; end KM_LOCK_EOF: to the end */
} km_fdlock_t;

typedef struct km_fdlocks {
	uint32_t n;
	km_fdlock_t *l; /* malloc'd */
} km_fdlocks_t;

/* Appends the lock list of a description whose fdinfo text is `fdinfo` to rec: u32 count, then
 * per lock u32 type, u32 mode, u64 start, u64 end. -1 with *err if there are too many. */
int km_fdlocks_save(const char *fdinfo, km_buf_t *rec, km_err_t **err);

/* True if this process holds a POSIX lock on file (dev, ino), through any description
 * (/proc/locks). */
bool km_fdlocks_posix_held(dev_t dev, ino_t ino);

/* Reads a lock list back from r, every field checked; a bad list sets r->bad (l stays empty). */
void km_fdlocks_get(km_rec_t *r, km_fdlocks_t *l);
void km_fdlocks_free(km_fdlocks_t *l);

/* Takes l's flock and OFD locks on fd (the rebuilt description of r) now and registers its
 * POSIX locks for guest fd r->first_fd once placed. -1 with *err naming the lock another
 * process holds. */
int km_fdlocks_restore(km_fdrest_t *rs, const km_fdrec_t *r, int fd, const km_fdlocks_t *l, km_err_t **err);

/* Appends " locks=flock:w,posix:r@0-9,..." (nothing without locks). */
void km_fdlocks_describe(const km_fdlocks_t *l, km_buf_t *out);

#endif
