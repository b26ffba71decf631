/*
 * Helpers for syscall handlers that take guest structures: paths, data buffers turned into host
 * iovecs, guest iovec arrays, msghdr, output buffers the host fills in, and the guard that keeps
 * the guest away from km's own file descriptors.
 *
 * Everything read from the guest that km interprets is copied first, so another guest thread
 * cannot change it between the check and the use. Data buffers are handed to the host in place.
 */
#ifndef KM_SYS_UTIL_H
#define KM_SYS_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_mm.h"

/* km keeps its own fds (/dev/kvm, the VM, vCPUs, ...) at or above this number and limits the
 * guest's RLIMIT_NOFILE below it, so the guest never gets, names or closes one of them. */
#define KM_FD_RESERVED_BASE 1000

#define KM_PATH_MAX 4096	     /* PATH_MAX, including the NUL */
#define KM_MAX_RW_COUNT 0x7ffff000ul /* Linux caps one read/write at INT_MAX rounded down to a page */
#define KM_IOV_MAX 1024		     /* UIO_MAXIOV */
#define KM_CTL_MAX (128ul << 10)     /* ancillary data per message, as net.core.optmem_max */

/* -EBADF if fd is one of km's own, else 0. */
static inline int km_fd_check(int fd)
{
	return fd >= KM_FD_RESERVED_BASE ? -EBADF : 0;
}

/* The dirfd of an *at call: one of km's fds becomes -1, so the host fails with EBADF exactly
 * when it would use the fd (not for an absolute path, which ignores dirfd). */
static inline int km_fd_at(int fd)
{
	return fd >= KM_FD_RESERVED_BASE ? -1 : fd;
}

/* The lowest fd number the guest may not hold: its RLIMIT_NOFILE as it set it (km keeps that
 * limit: km_rlimit.c), never above km's own fds. */
static inline int km_fd_limit(const km_guest_t *g)
{
	if ((g->nofile.rlim_cur != 0 || g->nofile.rlim_max != 0) && g->nofile.rlim_cur < KM_FD_RESERVED_BASE)
		return (int)g->nofile.rlim_cur;
	return KM_FD_RESERVED_BASE;
}

/* For calls that create an fd: one at or past the guest's limit (among km's, or past a limit
 * the guest lowered) is closed again, and the guest sees its table as full, as under Linux's
 * RLIMIT_NOFILE. */
static inline long km_fd_new(const km_guest_t *g, long r)
{
	if (r >= km_fd_limit(g)) {
		close((int)r);
		return -EMFILE;
	}
	return r;
}

/* The path the host has for one of its fds (readlink of /proc/self/fd/N), NUL-terminated in buf.
 * Returns its length or -1. */
ssize_t km_fd_path(int fd, char *buf, size_t size);

/* True if a /proc/self/fd link (or a mapping's recorded path) names a file no path reaches any
 * more: it ends in " (deleted)" (deleted and O_TMPFILE files, memfds). NULL is false. */
bool km_link_deleted(const char *link);

/* A new open file description of fd's file (open of /proc/self/fd/N) with `flags`, O_CLOEXEC
 * added. The host fd, or -1 with errno. */
int km_fd_reopen(int fd, int flags);

/* Turns a host call's result (-1 and errno on failure) into the syscall ABI's -errno. */
static inline long km_host_ret(long r)
{
	return r == -1 ? -errno : r;
}

/* Hands two new fds (pipe, socketpair) to the guest at gva when r >= 0. If the guest cannot take
 * them they are closed again, as Linux installs them only after the copy. Returns r or -errno. */
long km_fd_pair_out(km_guest_t *g, long r, uint64_t gva, const int fds[2]);

/* Linux looks at the fd before the buffer, so when a buffer is bad (err), the fd's own error
 * wins: EBADF for a bad fd or one not open for `access` (KM_ACC_READ/WRITE, 0: any), ESPIPE for
 * positioned I/O on a pipe or socket. Asks the host without side effects. Returns err if the fd
 * is usable. */
long km_fd_err_first(int fd, int access, bool positioned, long err);
/* The same for socket calls: EBADF, then ENOTSOCK. */
long km_sock_err_first(int fd, long err);

/* Copies the NUL-terminated guest string at gva (at most `size` bytes with the NUL) into buf.
 * Returns 0, -EFAULT (unmapped before the NUL) or -ENAMETOOLONG. */
int km_copy_str(km_mm_t *mm, uint64_t gva, char *buf, size_t size);

/* Bytes at the start of [gva, gva+len) that the guest may access with `access`. */
size_t km_guest_prefix(km_mm_t *mm, uint64_t gva, size_t len, int access);

/* 0 if all of [gva, gva+len) is accessible with `access`, else -EFAULT. */
int km_guest_check(km_mm_t *mm, uint64_t gva, size_t len, int access);

/* Turns a guest data buffer into at most `max` host iovecs in iov (*niov set). Returns the bytes
 * covered: all of len, or fewer when more than `max` pieces would be needed, or (only with
 * `partial`, for reads) when the buffer stops being accessible part way, as Linux returns a
 * short count at the first fault. -EFAULT if none of it is accessible, or with !partial if any
 * byte is not, or if the range leaves user space. */
ssize_t km_buf_iov(km_mm_t *mm, uint64_t gva, size_t len, int access, bool partial, struct iovec *iov,
		   int max, int *niov);

/* Same for a guest iovec array of `cnt` entries (readv, writev, msghdr): -EINVAL if cnt exceeds
 * KM_IOV_MAX or a length is negative; the total is capped at KM_MAX_RW_COUNT. */
ssize_t km_guest_iovs(km_mm_t *mm, uint64_t iov_gva, uint64_t cnt, int access, bool partial,
		      struct iovec *iov, int max, int *niov);

/* Host memory for a guest buffer the host fills with a variable amount (getdents, epoll_wait):
 * the guest's own memory when it is contiguous on the host, else a bounce buffer. */
typedef struct km_obuf {
	void *p;
	size_t len; /* may be less than asked: the writable prefix, or `cap` when bounced */
	uint64_t gva;
	bool bounced;
} km_obuf_t;

/* 0, or -EFAULT (nothing writable, or the range leaves user space), or -ENOMEM. */
int km_obuf_get(km_mm_t *mm, uint64_t gva, size_t len, size_t cap, km_obuf_t *ob);
/* Copies the first n bytes to the guest when bounced and frees. 0 or -EFAULT. */
int km_obuf_put(km_mm_t *mm, km_obuf_t *ob, size_t n);

/* True if path names the program itself through /proc (self, thread-self or km's pid), where
 * the host would show km's own binary. */
bool km_is_self_exe(km_guest_t *g, const char *path);

/* struct msghdr as an x86-64 guest lays it out (the kernel's user_msghdr). */
typedef struct km_guest_msghdr {
	uint64_t name;
	int32_t namelen;
	uint32_t pad0;
	uint64_t iov;
	uint64_t iovlen;
	uint64_t control;
	uint64_t controllen;
	int32_t flags;
	uint32_t pad1;
} km_guest_msghdr_t;

/* struct mmsghdr: a msghdr and the byte count of that message. */
#define KM_MMSGHDR_SIZE 64
#define KM_MMSGHDR_LEN_OFF 56

/* A guest msghdr translated for one host sendmsg/recvmsg. */
typedef struct km_msg {
	struct msghdr h; /* what the host gets */
	km_guest_msghdr_t g;
	struct sockaddr_storage name;
	struct iovec *iov;
	void *control;
	int guest_namelen; /* the guest's name buffer size, clamped to sockaddr_storage */
} km_msg_t;

/* Reads and checks the guest msghdr at gva. For a send, the name and ancillary data are copied
 * in and SCM_RIGHTS may not carry km's fds; for a receive, the header, name and control buffers
 * must be writable before anything is received. Returns 0 or -errno; km_msg_free() either way. */
int km_msg_in(km_mm_t *mm, uint64_t gva, bool send, km_msg_t *m);
/* After a receive: writes name, ancillary data, msg_namelen, msg_controllen and msg_flags back. */
int km_msg_out(km_mm_t *mm, uint64_t gva, km_msg_t *m);
void km_msg_free(km_msg_t *m);

/* -EINVAL if the ancillary data is malformed, -EBADF if SCM_RIGHTS names one of km's fds. */
int km_cmsg_check(const void *control, size_t len);

/* Reads a guest sockaddr (bind, connect, sendto): len 0..sizeof(sockaddr_storage) or -EINVAL. */
int km_sockaddr_in(km_mm_t *mm, uint64_t gva, int len, struct sockaddr_storage *ss);

/* A guest (sockaddr *, socklen_t *) pair the host fills (accept, getsockname, recvfrom). */
typedef struct km_sockaddr_out {
	uint64_t addr, lenp;
	int guest_len; /* the guest's buffer size */
	struct sockaddr_storage ss;
	socklen_t len; /* what the host reports */
} km_sockaddr_out_t;

/* Checks the pair before the call, so nothing is received that could not be reported: *lenp
 * readable and writable and not negative, the buffer writable for that many bytes. 0 or -errno. */
int km_sockaddr_out_prep(km_mm_t *mm, uint64_t addr, uint64_t lenp, km_sockaddr_out_t *o);
/* Copies the address (truncated to the guest's buffer) and its full length back. */
int km_sockaddr_out_put(km_mm_t *mm, km_sockaddr_out_t *o);

#endif
