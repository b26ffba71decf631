/*
 * File syscalls. Each is forwarded to the host once every guest pointer in it has been checked
 * and translated: the guest's fds are km's own fds below KM_FD_RESERVED_BASE, and km's cwd and
 * umask are the guest's, so paths go to the host as the guest wrote them.
 *
 * Blocking calls block the vCPU thread; an interrupted host call returns -EINTR to the core,
 * which decides about restarting. Signal masks passed to ppoll/pselect6/epoll_pwait are checked
 * but not applied: the guest's signal state is km's, and km's thread mask must not change.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <linux/magic.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_guest.h"
#include "km_inotify_paths.h"
#include "km_procview.h"
#include "km_sigfd.h"
#include "km_signal.h"
#include "km_sys_util.h"
#include "km_syscall.h"
#include "km_vcpu.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef F_DUPFD_QUERY
#define F_DUPFD_QUERY 1027
#endif
#ifndef F_CREATED_QUERY
#define F_CREATED_QUERY 1028
#endif

#define MM(v) (&(v)->g->mm)

/* Host pieces one guest buffer may become; beyond that a transfer is short, which read and write
 * may always be. */
#define BUF_IOV 64
/* Most a bounce buffer holds when the guest's buffer is not contiguous on the host. */
#define BOUNCE_MAX (64ul << 10)

#define KTERMIOS_SIZE 36 /* the kernel's struct termios, not glibc's larger one */
#define STATX_BYTES 256	 /* struct statx */
#define OPEN_HOW_SIZE0 24

_Static_assert(sizeof(struct stat) == 144, "x86-64 struct stat");
_Static_assert(sizeof(struct statfs) == 120, "x86-64 struct statfs");
_Static_assert(sizeof(struct flock) == 32, "x86-64 struct flock");
_Static_assert(sizeof(struct epoll_event) == 12, "x86-64 struct epoll_event is packed");
_Static_assert(sizeof(struct pollfd) == 8, "struct pollfd");

static int get_path(km_vcpu_t *v, uint64_t gva, char *buf)
{
	return km_copy_str(MM(v), gva, buf, KM_PATH_MAX);
}

/* For the calls Linux lets take a NULL path (utimensat, AT_EMPTY_PATH on 6.11+): NULL goes to the
 * host unchanged, so the host decides. */
static int get_opt_path(km_vcpu_t *v, uint64_t gva, char *buf, const char **out)
{
	*out = gva == 0 ? NULL : buf;
	return gva == 0 ? 0 : get_path(v, gva, buf);
}

/* The host's /proc/self/exe is km: the guest must see its own program there. */
static const char *exe_fix(km_vcpu_t *v, const char *path)
{
	return path != NULL && km_is_self_exe(v->g, path) ? v->g->exe_path : path;
}

/* Finishes a call that fills a struct in km: copies it to the guest if the call worked. */
static long out_struct(km_vcpu_t *v, long r, uint64_t gva, const void *obj, size_t len)
{
	if (r < 0)
		return r;
	return km_copy_to_guest(MM(v), gva, obj, len) < 0 ? -EFAULT : r;
}

/* --- read and write ---------------------------------------------------------------------- */

typedef struct io_nrs {
	long one, vec, pone, pvec, pvec2;
} io_nrs_t;

static const io_nrs_t rd_nrs = {SYS_read, SYS_readv, SYS_pread64, SYS_preadv, SYS_preadv2};
static const io_nrs_t wr_nrs = {SYS_write, SYS_writev, SYS_pwrite64, SYS_pwritev, SYS_pwritev2};

/* Linux's access_ok() on the whole count comes before the count is capped. */
static bool user_range(uint64_t gva, uint64_t len)
{
	return len == 0 || (gva + len > gva && gva + len <= KM_USER_TOP);
}

/* read/write/pread64/pwrite64: reads may be short at the first unmapped byte as on Linux;
 * writes of a partly unmapped buffer fail whole, so a datagram is never cut short. A negative
 * offset is refused before anything else, as Linux does. */
static long buf_io(km_vcpu_t *v, const uint64_t *a, bool rd, bool positioned)
{
	int fd = (int)a[0];
	if (positioned && (int64_t)a[3] < 0)
		return -EINVAL;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	long sfd;
	if (rd && !positioned && km_sigfd_read(v, fd, a[1], a[2], &sfd))
		return sfd;
	if ((!rd || positioned) && km_sigfd_is(v->g, fd))
		return positioned ? -ESPIPE : -EINVAL; /* a signalfd has no write and no position */
	int fd_acc = rd ? KM_ACC_READ : KM_ACC_WRITE;
	if (!user_range(a[1], a[2]))
		return km_fd_err_first(fd, fd_acc, positioned, -EFAULT);
	size_t len = a[2] < KM_MAX_RW_COUNT ? a[2] : KM_MAX_RW_COUNT;
	struct iovec iov[BUF_IOV];
	int n;
	ssize_t got = km_buf_iov(MM(v), a[1], len, rd ? KM_ACC_WRITE : KM_ACC_READ, rd, iov, BUF_IOV, &n);
	if (got < 0)
		return km_fd_err_first(fd, fd_acc, positioned, got);
	const io_nrs_t *nr = rd ? &rd_nrs : &wr_nrs;
	if (n > 1)
		return km_host_ret(positioned ? syscall(nr->pvec, fd, iov, n, a[3], 0)
					      : syscall(nr->vec, fd, iov, n));
	void *p = n == 1 ? iov[0].iov_base : NULL;
	size_t l = n == 1 ? iov[0].iov_len : 0;
	return km_host_ret(positioned ? syscall(nr->pone, fd, p, l, a[3]) : syscall(nr->one, fd, p, l));
}

enum vec_kind { VEC_PLAIN, VEC_POS, VEC_POS2 };

static long vec_host(int fd, bool rd, enum vec_kind kind, const struct iovec *iov, int n, const uint64_t *a)
{
	const io_nrs_t *nr = rd ? &rd_nrs : &wr_nrs;
	if (kind == VEC_PLAIN)
		return km_host_ret(syscall(nr->vec, fd, iov, n));
	if (kind == VEC_POS)
		return km_host_ret(syscall(nr->pvec, fd, iov, n, a[3], a[4]));
	return km_host_ret(syscall(nr->pvec2, fd, iov, n, a[3], a[4], a[5]));
}

/* readv/writev/preadv/pwritev/preadv2/pwritev2 (whose offset -1 means the file position). */
static long vec_io(km_vcpu_t *v, const uint64_t *a, bool rd, enum vec_kind kind)
{
	int fd = (int)a[0];
	bool positioned = kind == VEC_POS || (kind == VEC_POS2 && (int64_t)a[3] != -1);
	if (positioned && (int64_t)a[3] < 0)
		return -EINVAL;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	/* A signalfd read goes through read(2) only (km_sigfd_read); never the eventfd's counter. */
	if (km_sigfd_is(v->g, fd))
		return positioned ? -ESPIPE : -EINVAL;
	struct iovec *iov = malloc(KM_IOV_MAX * sizeof(*iov));
	if (iov == NULL)
		return -ENOMEM;
	int n;
	long r = km_guest_iovs(MM(v), a[1], a[2], rd ? KM_ACC_WRITE : KM_ACC_READ, rd, iov, KM_IOV_MAX, &n);
	if (r >= 0)
		r = vec_host(fd, rd, kind, iov, n, a);
	else
		r = km_fd_err_first(fd, rd ? KM_ACC_READ : KM_ACC_WRITE, positioned, r);
	free(iov);
	return r;
}

KM_SYSCALL(read)
{
	return buf_io(v, a, true, false);
}

KM_SYSCALL(write)
{
	return buf_io(v, a, false, false);
}

KM_SYSCALL(pread64)
{
	return buf_io(v, a, true, true);
}

KM_SYSCALL(pwrite64)
{
	return buf_io(v, a, false, true);
}

KM_SYSCALL(readv)
{
	return vec_io(v, a, true, VEC_PLAIN);
}

KM_SYSCALL(writev)
{
	return vec_io(v, a, false, VEC_PLAIN);
}

KM_SYSCALL(preadv)
{
	return vec_io(v, a, true, VEC_POS);
}

KM_SYSCALL(pwritev)
{
	return vec_io(v, a, false, VEC_POS);
}

KM_SYSCALL(preadv2)
{
	return vec_io(v, a, true, VEC_POS2);
}

KM_SYSCALL(pwritev2)
{
	return vec_io(v, a, false, VEC_POS2);
}

/* --- open and close ---------------------------------------------------------------------- */

/* Whether the guest may name (dirfd, path): km's own /proc entries are not there for it
 * (km_fd_admit.h). 0 or -errno. */
static long path_ok(km_vcpu_t *v, int dirfd, const char *path, bool follow)
{
	return km_path_admit(v->g, km_fd_at(dirfd), path, follow);
}

/* An open by path: the name is judged first (a link to one of km's fds is not there), then the
 * file it opened (whatever route led there). */
static long open_admit(km_vcpu_t *v, int dirfd, const char *path, long nr, uint64_t a2, uint64_t a3)
{
	long rc = path_ok(v, dirfd, path, false);
	if (rc < 0)
		return rc;
	long fd;
	if (nr == SYS_open)
		fd = syscall(SYS_open, path, a2, a3);
	else if (nr == SYS_creat)
		fd = syscall(SYS_creat, path, a2);
	else
		fd = syscall(SYS_openat, km_fd_at(dirfd), path, a2, a3);
	return km_fd_admit(v->g, km_fd_new(v->g, km_host_ret(fd)));
}

KM_SYSCALL(open)
{
	char path[KM_PATH_MAX];
	int rc = get_path(v, a[0], path);
	if (rc < 0)
		return rc;
	return open_admit(v, AT_FDCWD, exe_fix(v, path), SYS_open, a[1], a[2]);
}

KM_SYSCALL(openat)
{
	char path[KM_PATH_MAX];
	int rc = get_path(v, a[1], path);
	if (rc < 0)
		return rc;
	return open_admit(v, (int)a[0], exe_fix(v, path), SYS_openat, a[2], a[3]);
}

/* struct open_how may grow: the host checks that bytes it does not know are zero (E2BIG). */
KM_SYSCALL(openat2)
{
	if (a[3] < OPEN_HOW_SIZE0)
		return -EINVAL;
	if (a[3] > KM_PAGE_SIZE)
		return -E2BIG;
	uint64_t how[KM_PAGE_SIZE / sizeof(uint64_t)];
	char path[KM_PATH_MAX];
	int rc = get_path(v, a[1], path);
	if (rc < 0)
		return rc;
	if (km_copy_from_guest(MM(v), how, a[2], a[3]) < 0)
		return -EFAULT;
	const char *p = exe_fix(v, path);
	long r = path_ok(v, (int)a[0], p, false);
	if (r < 0)
		return r;
	return km_fd_admit(v->g, km_fd_new(v->g, km_host_ret(syscall(SYS_openat2, km_fd_at((int)a[0]), p, how, a[3]))));
}

KM_SYSCALL(creat)
{
	char path[KM_PATH_MAX];
	int rc = get_path(v, a[0], path);
	if (rc < 0)
		return rc;
	return open_admit(v, AT_FDCWD, path, SYS_creat, a[1], 0);
}

KM_SYSCALL(close)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	return km_host_ret(syscall(SYS_close, fd));
}

/* The range is clipped below km's fds: closefrom(3) is close_range(3, ~0U, 0). UNSHARE is
 * dropped: it would give this vCPU thread an fd table of its own, apart from the rest of km. */
KM_SYSCALL(close_range)
{
	unsigned int first = (unsigned int)a[0], last = (unsigned int)a[1], flags = (unsigned int)a[2];
	if (flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC))
		return -EINVAL;
	if (first > last)
		return -EINVAL;
	if (first >= KM_FD_RESERVED_BASE)
		return 0;
	if (last >= KM_FD_RESERVED_BASE)
		last = KM_FD_RESERVED_BASE - 1;
	return km_host_ret(syscall(SYS_close_range, first, last, flags & ~CLOSE_RANGE_UNSHARE));
}

KM_SYSCALL(lseek)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	return km_host_ret(syscall(SYS_lseek, fd, a[1], a[2]));
}

/* --- stat -------------------------------------------------------------------------------- */

static long path_stat(km_vcpu_t *v, long nr, uint64_t path_gva, uint64_t buf, bool follow)
{
	char path[KM_PATH_MAX];
	int rc = get_path(v, path_gva, path);
	if (rc < 0)
		return rc;
	const char *p = follow ? exe_fix(v, path) : path;
	long r = path_ok(v, AT_FDCWD, p, follow);
	if (r < 0)
		return r;
	struct stat st;
	r = km_host_ret(syscall(nr, p, &st));
	return out_struct(v, r, buf, &st, sizeof(st));
}

KM_SYSCALL(stat)
{
	return path_stat(v, SYS_stat, a[0], a[1], true);
}

KM_SYSCALL(lstat)
{
	return path_stat(v, SYS_lstat, a[0], a[1], false);
}

KM_SYSCALL(fstat)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	struct stat st;
	return out_struct(v, km_host_ret(syscall(SYS_fstat, fd, &st)), a[1], &st, sizeof(st));
}

KM_SYSCALL(newfstatat)
{
	char buf[KM_PATH_MAX];
	const char *path;
	int rc = get_opt_path(v, a[1], buf, &path);
	if (rc < 0)
		return rc;
	if (!(a[3] & AT_SYMLINK_NOFOLLOW))
		path = exe_fix(v, path);
	long r = path_ok(v, (int)a[0], path, !(a[3] & AT_SYMLINK_NOFOLLOW));
	if (r < 0)
		return r;
	struct stat st;
	r = km_host_ret(syscall(SYS_newfstatat, km_fd_at((int)a[0]), path, &st, a[3]));
	return out_struct(v, r, a[2], &st, sizeof(st));
}

KM_SYSCALL(statx)
{
	char buf[KM_PATH_MAX];
	const char *path;
	int rc = get_opt_path(v, a[1], buf, &path);
	if (rc < 0)
		return rc;
	if (!(a[2] & AT_SYMLINK_NOFOLLOW))
		path = exe_fix(v, path);
	long r = path_ok(v, (int)a[0], path, !(a[2] & AT_SYMLINK_NOFOLLOW));
	if (r < 0)
		return r;
	uint64_t stx[STATX_BYTES / sizeof(uint64_t)];
	r = km_host_ret(syscall(SYS_statx, km_fd_at((int)a[0]), path, a[2], a[3], stx));
	return out_struct(v, r, a[4], stx, sizeof(stx));
}

KM_SYSCALL(statfs)
{
	char path[KM_PATH_MAX];
	int rc = get_path(v, a[0], path);
	if (rc < 0)
		return rc;
	long r = path_ok(v, AT_FDCWD, path, true);
	if (r < 0)
		return r;
	struct statfs sf;
	return out_struct(v, km_host_ret(syscall(SYS_statfs, path, &sf)), a[1], &sf, sizeof(sf));
}

KM_SYSCALL(fstatfs)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	struct statfs sf;
	return out_struct(v, km_host_ret(syscall(SYS_fstatfs, fd, &sf)), a[1], &sf, sizeof(sf));
}

/* The host's getdents into buf; in km's own /proc directories the entries of km's threads and
 * fds are taken out (reading on while a whole batch was km's, so 0 still means the end). */
static long proc_dents(km_vcpu_t *v, int fd, long nr, void *buf, size_t len)
{
	char dir[512];
	const char *rel;
	bool proc = km_procview_rel(fd, dir, sizeof(dir), &rel);
	for (;;) {
		long r = km_host_ret(syscall(nr, fd, buf, len));
		if (r <= 0 || !proc)
			return r;
		size_t n = nr == SYS_getdents64 ? km_procview_filter_dents64(v->g, rel, buf, (size_t)r)
						: km_procview_filter_dents(v->g, rel, buf, (size_t)r);
		if (n > 0)
			return (long)n;
	}
}

/* getdents and getdents64: the host writes whole records into the guest's buffer directly, or
 * into a bounce buffer when that is not contiguous on the host (fewer records is allowed). */
static long dents(km_vcpu_t *v, const uint64_t *a, long nr)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	km_obuf_t ob;
	int rc = km_obuf_get(MM(v), a[1], (unsigned int)a[2], BOUNCE_MAX, &ob);
	if (rc < 0)
		return km_fd_err_first(fd, 0, false, rc);
	long r = proc_dents(v, fd, nr, ob.p, ob.len);
	rc = km_obuf_put(MM(v), &ob, r > 0 ? (size_t)r : 0);
	return r > 0 && rc < 0 ? rc : r;
}

KM_SYSCALL(getdents64)
{
	return dents(v, a, SYS_getdents64);
}

KM_SYSCALL(getdents)
{
	return dents(v, a, SYS_getdents);
}

/* --- names: access, rename, unlink, mkdir, link, symlink, readlink ------------------------ */

/* One path argument at a[idx] and a dirfd at a[dfd] (-1: none, AT_FDCWD implied). */
static long path_call(km_vcpu_t *v, long nr, const uint64_t *a, int dfd, int idx, bool fix)
{
	char path[KM_PATH_MAX];
	int rc = get_path(v, a[idx], path);
	if (rc < 0)
		return rc;
	const char *p = fix ? exe_fix(v, path) : path;
	/* Judged as followed (a superset): these calls either follow or fail on procfs anyway. */
	long r = path_ok(v, dfd < 0 ? AT_FDCWD : (int)a[dfd], p, true);
	if (r < 0)
		return r;
	if (dfd < 0)
		return km_host_ret(syscall(nr, p, a[idx + 1], a[idx + 2], a[idx + 3]));
	return km_host_ret(syscall(nr, km_fd_at((int)a[dfd]), p, a[idx + 1], a[idx + 2], a[idx + 3]));
}

KM_SYSCALL(access)
{
	return path_call(v, SYS_access, a, -1, 0, true);
}

KM_SYSCALL(faccessat)
{
	return path_call(v, SYS_faccessat, a, 0, 1, true);
}

KM_SYSCALL(faccessat2)
{
	return path_call(v, SYS_faccessat2, a, 0, 1, !(a[3] & AT_SYMLINK_NOFOLLOW));
}

KM_SYSCALL(unlink)
{
	return path_call(v, SYS_unlink, a, -1, 0, false);
}

KM_SYSCALL(unlinkat)
{
	return path_call(v, SYS_unlinkat, a, 0, 1, false);
}

KM_SYSCALL(mkdir)
{
	return path_call(v, SYS_mkdir, a, -1, 0, false);
}

KM_SYSCALL(mkdirat)
{
	return path_call(v, SYS_mkdirat, a, 0, 1, false);
}

KM_SYSCALL(rmdir)
{
	return path_call(v, SYS_rmdir, a, -1, 0, false);
}

KM_SYSCALL(chmod)
{
	return path_call(v, SYS_chmod, a, -1, 0, false);
}

KM_SYSCALL(fchmodat)
{
	return path_call(v, SYS_fchmodat, a, 0, 1, false);
}

KM_SYSCALL(fchmodat2)
{
	return path_call(v, SYS_fchmodat2, a, 0, 1, false);
}

KM_SYSCALL(chown)
{
	return path_call(v, SYS_chown, a, -1, 0, false);
}

KM_SYSCALL(lchown)
{
	return path_call(v, SYS_lchown, a, -1, 0, false);
}

KM_SYSCALL(fchownat)
{
	return path_call(v, SYS_fchownat, a, 0, 1, false);
}

KM_SYSCALL(truncate)
{
	return path_call(v, SYS_truncate, a, -1, 0, false);
}

KM_SYSCALL(chdir)
{
	return path_call(v, SYS_chdir, a, -1, 0, false);
}

KM_SYSCALL(mknod)
{
	return path_call(v, SYS_mknod, a, -1, 0, false);
}

KM_SYSCALL(mknodat)
{
	return path_call(v, SYS_mknodat, a, 0, 1, false);
}

KM_SYSCALL(inotify_add_watch)
{
	if (km_fd_check((int)a[0]) < 0)
		return -EBADF;
	char path[KM_PATH_MAX];
	int rc = get_path(v, a[1], path);
	if (rc < 0)
		return rc;
	/* Judged as followed (a superset); the path is noted for snapshots (km_inotify_paths.h). */
	long r = path_ok(v, AT_FDCWD, path, true);
	if (r < 0)
		return r;
	r = km_host_ret(syscall(SYS_inotify_add_watch, (int)a[0], path, (uint32_t)a[2]));
	if (r >= 0)
		km_inotify_note(v->g, path, (uint32_t)a[2]);
	return r;
}

static int get_paths(km_vcpu_t *v, uint64_t g1, char *p1, uint64_t g2, char *p2)
{
	int rc = get_path(v, g1, p1);
	return rc < 0 ? rc : get_path(v, g2, p2);
}

/* Two paths, each with an optional dirfd: old at a[i1] (dirfd a[i1-1] if d1), new at a[i2]. */
static long path2_call(km_vcpu_t *v, long nr, const uint64_t *a, bool d1, int i1, bool d2, int i2,
		       int flags_idx)
{
	char p1[KM_PATH_MAX], p2[KM_PATH_MAX];
	int rc = get_paths(v, a[i1], p1, a[i2], p2);
	if (rc < 0)
		return rc;
	uint64_t flags = flags_idx >= 0 ? a[flags_idx] : 0;
	/* symlink's first path is the link's text, never resolved here. */
	bool p1_is_name = nr != SYS_symlink && nr != SYS_symlinkat;
	long r = p1_is_name ? path_ok(v, d1 ? (int)a[i1 - 1] : AT_FDCWD, p1, true) : 0;
	if (r == 0)
		r = path_ok(v, d2 ? (int)a[i2 - 1] : AT_FDCWD, p2, false);
	if (r < 0)
		return r;
	if (d1 && d2)
		return km_host_ret(
		    syscall(nr, km_fd_at((int)a[i1 - 1]), p1, km_fd_at((int)a[i2 - 1]), p2, flags));
	if (d2)
		return km_host_ret(syscall(nr, p1, km_fd_at((int)a[i2 - 1]), p2));
	return km_host_ret(syscall(nr, p1, p2));
}

KM_SYSCALL(rename)
{
	return path2_call(v, SYS_rename, a, false, 0, false, 1, -1);
}

KM_SYSCALL(renameat)
{
	return path2_call(v, SYS_renameat, a, true, 1, true, 3, -1);
}

KM_SYSCALL(renameat2)
{
	return path2_call(v, SYS_renameat2, a, true, 1, true, 3, 4);
}

KM_SYSCALL(link)
{
	return path2_call(v, SYS_link, a, false, 0, false, 1, -1);
}

KM_SYSCALL(linkat)
{
	return path2_call(v, SYS_linkat, a, true, 1, true, 3, 4);
}

KM_SYSCALL(symlink)
{
	return path2_call(v, SYS_symlink, a, false, 0, false, 1, -1);
}

KM_SYSCALL(symlinkat)
{
	return path2_call(v, SYS_symlinkat, a, false, 0, true, 2, -1);
}

static long do_readlink(km_vcpu_t *v, int dirfd, uint64_t path_gva, uint64_t buf, int size)
{
	if (size <= 0)
		return -EINVAL;
	char path[KM_PATH_MAX];
	int rc = get_path(v, path_gva, path);
	if (rc < 0)
		return rc;
	if (km_is_self_exe(v->g, path)) {
		size_t n = strlen(v->g->exe_path);
		n = n < (size_t)size ? n : (size_t)size;
		return km_copy_to_guest(MM(v), buf, v->g->exe_path, n) < 0 ? -EFAULT : (long)n;
	}
	long ok = path_ok(v, dirfd, path, false);
	if (ok < 0)
		return ok;
	/* A link's text never exceeds PATH_MAX, so a bigger guest buffer gains nothing. */
	char out[KM_PATH_MAX];
	size_t cap = (size_t)size < sizeof(out) ? (size_t)size : sizeof(out);
	long n = km_host_ret(syscall(SYS_readlinkat, dirfd, path, out, cap));
	if (n < 0)
		return n;
	return km_copy_to_guest(MM(v), buf, out, n) < 0 ? -EFAULT : n;
}

KM_SYSCALL(readlink)
{
	return do_readlink(v, AT_FDCWD, a[0], a[1], (int)a[2]);
}

KM_SYSCALL(readlinkat)
{
	return do_readlink(v, km_fd_at((int)a[0]), a[1], a[2], (int)a[3]);
}

/* --- extended attributes ------------------------------------------------------------------ */

/* Linux's bounds (XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX): km copies through buffers of
 * these sizes, and Linux refuses larger names with ERANGE and caps sizes the same way. */
#define XATTR_NAME_BYTES 256
#define XATTR_VALUE_MAX 65536

/* Where an xattr call finds its file: a path (followed or not) or an fd. */
typedef struct xattr_target {
	const char *path; /* NULL: fd */
	int fd;
	bool follow;
} xattr_target_t;

/* Reads the target from a[0] (a path for the path forms, an fd for the f* forms) and judges it. */
static long xattr_target(km_vcpu_t *v, const uint64_t *a, int kind, char *buf, xattr_target_t *t)
{
	*t = (xattr_target_t){.path = NULL, .fd = (int)a[0], .follow = kind == 0};
	if (kind == 2)
		return km_fd_check(t->fd) < 0 ? -EBADF : 0;
	int rc = get_path(v, a[0], buf);
	if (rc < 0)
		return rc;
	t->path = t->follow ? exe_fix(v, buf) : buf;
	return path_ok(v, AT_FDCWD, t->path, t->follow);
}

/* An attribute name from the guest: ERANGE past Linux's limit, as Linux. */
static long xattr_name(km_vcpu_t *v, uint64_t gva, char *name)
{
	int rc = km_copy_str(MM(v), gva, name, XATTR_NAME_BYTES);
	return rc == -ENAMETOOLONG ? -ERANGE : rc;
}

/* getxattr (kind 0), lgetxattr (1), fgetxattr (2): path/fd, name, value, size. */
static long xattr_get(km_vcpu_t *v, const uint64_t *a, int kind)
{
	char path[KM_PATH_MAX], name[XATTR_NAME_BYTES];
	xattr_target_t t;
	long r = xattr_target(v, a, kind, path, &t);
	if (r == 0)
		r = xattr_name(v, a[1], name);
	if (r < 0)
		return r;
	size_t size = a[3] > XATTR_VALUE_MAX ? XATTR_VALUE_MAX : a[3];
	km_autofree uint8_t *val = size > 0 ? malloc(size) : NULL;
	if (size > 0 && val == NULL)
		return -ENOMEM;
	if (t.path == NULL)
		r = fgetxattr(t.fd, name, val, size);
	else
		r = t.follow ? getxattr(t.path, name, val, size) : lgetxattr(t.path, name, val, size);
	r = km_host_ret(r);
	if (r > 0 && size > 0 && km_copy_to_guest(MM(v), a[2], val, (size_t)r) < 0)
		return -EFAULT;
	return r;
}

/* setxattr (kind 0), lsetxattr (1), fsetxattr (2): path/fd, name, value, size, flags. */
static long xattr_set(km_vcpu_t *v, const uint64_t *a, int kind)
{
	char path[KM_PATH_MAX], name[XATTR_NAME_BYTES];
	xattr_target_t t;
	long r = xattr_target(v, a, kind, path, &t);
	if (r == 0)
		r = xattr_name(v, a[1], name);
	if (r < 0)
		return r;
	if (a[3] > XATTR_VALUE_MAX)
		return -E2BIG;
	km_autofree uint8_t *val = a[3] > 0 ? malloc(a[3]) : NULL;
	if (a[3] > 0 && (val == NULL || km_copy_from_guest(MM(v), val, a[2], a[3]) < 0))
		return val == NULL ? -ENOMEM : -EFAULT;
	int flags = (int)a[4];
	if (t.path == NULL)
		return km_host_ret(fsetxattr(t.fd, name, val, a[3], flags));
	return km_host_ret(t.follow ? setxattr(t.path, name, val, a[3], flags)
				    : lsetxattr(t.path, name, val, a[3], flags));
}

/* listxattr (kind 0), llistxattr (1), flistxattr (2): path/fd, list, size. */
static long xattr_list(km_vcpu_t *v, const uint64_t *a, int kind)
{
	char path[KM_PATH_MAX];
	xattr_target_t t;
	long r = xattr_target(v, a, kind, path, &t);
	if (r < 0)
		return r;
	size_t size = a[2] > XATTR_VALUE_MAX ? XATTR_VALUE_MAX : a[2];
	km_autofree char *list = size > 0 ? malloc(size) : NULL;
	if (size > 0 && list == NULL)
		return -ENOMEM;
	if (t.path == NULL)
		r = flistxattr(t.fd, list, size);
	else
		r = t.follow ? listxattr(t.path, list, size) : llistxattr(t.path, list, size);
	r = km_host_ret(r);
	if (r > 0 && size > 0 && km_copy_to_guest(MM(v), a[1], list, (size_t)r) < 0)
		return -EFAULT;
	return r;
}

/* removexattr (kind 0), lremovexattr (1), fremovexattr (2): path/fd, name. */
static long xattr_remove(km_vcpu_t *v, const uint64_t *a, int kind)
{
	char path[KM_PATH_MAX], name[XATTR_NAME_BYTES];
	xattr_target_t t;
	long r = xattr_target(v, a, kind, path, &t);
	if (r == 0)
		r = xattr_name(v, a[1], name);
	if (r < 0)
		return r;
	if (t.path == NULL)
		return km_host_ret(fremovexattr(t.fd, name));
	return km_host_ret(t.follow ? removexattr(t.path, name) : lremovexattr(t.path, name));
}

KM_SYSCALL(getxattr) { return xattr_get(v, a, 0); }
KM_SYSCALL(lgetxattr) { return xattr_get(v, a, 1); }
KM_SYSCALL(fgetxattr) { return xattr_get(v, a, 2); }
KM_SYSCALL(setxattr) { return xattr_set(v, a, 0); }
KM_SYSCALL(lsetxattr) { return xattr_set(v, a, 1); }
KM_SYSCALL(fsetxattr) { return xattr_set(v, a, 2); }
KM_SYSCALL(listxattr) { return xattr_list(v, a, 0); }
KM_SYSCALL(llistxattr) { return xattr_list(v, a, 1); }
KM_SYSCALL(flistxattr) { return xattr_list(v, a, 2); }
KM_SYSCALL(removexattr) { return xattr_remove(v, a, 0); }
KM_SYSCALL(lremovexattr) { return xattr_remove(v, a, 1); }
KM_SYSCALL(fremovexattr) { return xattr_remove(v, a, 2); }

/* --- calls on one fd with plain arguments ------------------------------------------------ */

static long fd_call(long nr, const uint64_t *a)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	return km_host_ret(syscall(nr, fd, a[1], a[2], a[3], a[4], a[5]));
}

KM_SYSCALL(fchmod)
{
	return fd_call(SYS_fchmod, a);
}

KM_SYSCALL(fchown)
{
	return fd_call(SYS_fchown, a);
}

KM_SYSCALL(ftruncate)
{
	return fd_call(SYS_ftruncate, a);
}

KM_SYSCALL(fsync)
{
	return fd_call(SYS_fsync, a);
}

KM_SYSCALL(fdatasync)
{
	return fd_call(SYS_fdatasync, a);
}

KM_SYSCALL(syncfs)
{
	return fd_call(SYS_syncfs, a);
}

KM_SYSCALL(fallocate)
{
	return fd_call(SYS_fallocate, a);
}

KM_SYSCALL(fadvise64)
{
	return fd_call(SYS_fadvise64, a);
}

KM_SYSCALL(sync_file_range)
{
	return fd_call(SYS_sync_file_range, a);
}

KM_SYSCALL(fchdir)
{
	return fd_call(SYS_fchdir, a);
}

KM_SYSCALL(flock)
{
	return fd_call(SYS_flock, a);
}

KM_SYSCALL(inotify_rm_watch)
{
	return fd_call(SYS_inotify_rm_watch, a);
}

KM_SYSCALL(epoll_create)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_epoll_create, (int)a[0])));
}

KM_SYSCALL(epoll_create1)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_epoll_create1, (int)a[0])));
}

KM_SYSCALL(eventfd)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_eventfd, (unsigned int)a[0])));
}

KM_SYSCALL(eventfd2)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_eventfd2, (unsigned int)a[0], (int)a[1])));
}

KM_SYSCALL(inotify_init)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_inotify_init)));
}

KM_SYSCALL(inotify_init1)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_inotify_init1, (int)a[0])));
}

KM_SYSCALL(sync)
{
	sync();
	return 0;
}

KM_SYSCALL(umask)
{
	return umask((mode_t)(a[0] & 0777));
}

KM_SYSCALL(memfd_create)
{
	char name[KM_PATH_MAX];
	int rc = get_path(v, a[0], name);
	if (rc < 0)
		return rc == -ENAMETOOLONG ? -EINVAL : rc;
	return km_fd_new(v->g, km_host_ret(syscall(SYS_memfd_create, name, a[1])));
}

KM_SYSCALL(name_to_handle_at)
{
	return -ENOSYS;
}

/* --- times ------------------------------------------------------------------------------- */

/* utimensat, futimesat, utimes, utime: an optional path, an optional array of `tlen` bytes of
 * times, and for the *at forms a dirfd (Linux lets the path be NULL: then dirfd is the file). */
static long times_call(km_vcpu_t *v, long nr, bool at, uint64_t dirfd, uint64_t path_gva, uint64_t times_gva,
		       size_t tlen, uint64_t flags)
{
	char buf[KM_PATH_MAX];
	const char *path;
	int rc = get_opt_path(v, path_gva, buf, &path);
	if (rc < 0)
		return rc;
	uint64_t times[4];
	if (times_gva != 0 && km_copy_from_guest(MM(v), times, times_gva, tlen) < 0)
		return -EFAULT;
	long ok = path_ok(v, at ? (int)dirfd : AT_FDCWD, path, true);
	if (ok < 0)
		return ok;
	void *tp = times_gva != 0 ? times : NULL;
	if (at)
		return km_host_ret(syscall(nr, km_fd_at((int)dirfd), path, tp, flags));
	return km_host_ret(syscall(nr, path, tp));
}

KM_SYSCALL(utimensat)
{
	return times_call(v, SYS_utimensat, true, a[0], a[1], a[2], 2 * sizeof(struct timespec), a[3]);
}

KM_SYSCALL(futimesat)
{
	return times_call(v, SYS_futimesat, true, a[0], a[1], a[2], 2 * sizeof(struct timeval), 0);
}

KM_SYSCALL(utimes)
{
	if (a[0] == 0)
		return -EFAULT;
	return times_call(v, SYS_utimes, false, 0, a[0], a[1], 2 * sizeof(struct timeval), 0);
}

KM_SYSCALL(utime)
{
	if (a[0] == 0)
		return -EFAULT;
	return times_call(v, SYS_utime, false, 0, a[0], a[1], 2 * sizeof(int64_t), 0);
}

/* --- cwd, pipes, dup --------------------------------------------------------------------- */

KM_SYSCALL(getcwd)
{
	char out[KM_PATH_MAX];
	size_t cap = a[1] < sizeof(out) ? a[1] : sizeof(out);
	long n = km_host_ret(syscall(SYS_getcwd, out, cap));
	if (n < 0)
		return n;
	return km_copy_to_guest(MM(v), a[0], out, n) < 0 ? -EFAULT : n;
}

KM_SYSCALL(pipe)
{
	int fds[2];
	return km_fd_pair_out(v->g, km_host_ret(syscall(SYS_pipe2, fds, 0)), a[0], fds);
}

KM_SYSCALL(pipe2)
{
	int fds[2];
	return km_fd_pair_out(v->g, km_host_ret(syscall(SYS_pipe2, fds, a[1])), a[0], fds);
}

KM_SYSCALL(dup)
{
	return km_fd_new(v->g, fd_call(SYS_dup, a));
}

KM_SYSCALL(dup2)
{
	if (km_fd_check((int)a[0]) < 0 || (int)a[1] < 0 || (int)a[1] >= km_fd_limit(v->g))
		return -EBADF;
	return km_host_ret(syscall(SYS_dup2, (int)a[0], (int)a[1]));
}

KM_SYSCALL(dup3)
{
	if (km_fd_check((int)a[0]) < 0 || (int)a[1] < 0 || (int)a[1] >= km_fd_limit(v->g))
		return -EBADF;
	return km_host_ret(syscall(SYS_dup3, (int)a[0], (int)a[1], (int)a[2]));
}

/* --- fcntl ------------------------------------------------------------------------------- */

enum fcntl_arg {
	FA_BAD,
	FA_INT,
	FA_DUP,
	FA_FD,
	FA_FLOCK_IN,
	FA_FLOCK_INOUT,
	FA_OWNER_IN,
	FA_OWNER_OUT,
	FA_U64_IN,
	FA_U64_OUT
};

static enum fcntl_arg fcntl_kind(int cmd)
{
	switch (cmd) {
	case F_GETFD:
	case F_SETFD:
	case F_GETFL:
	case F_SETFL:
	case F_GETOWN:
	case F_SETOWN:
	case F_GETSIG:
	case F_SETSIG:
	case F_SETLEASE:
	case F_GETLEASE:
	case F_NOTIFY:
	case F_SETPIPE_SZ:
	case F_GETPIPE_SZ:
	case F_ADD_SEALS:
	case F_GET_SEALS:
	case F_CREATED_QUERY:
		return FA_INT;
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		return FA_DUP;
	case F_DUPFD_QUERY:
		return FA_FD;
	case F_SETLK:
	case F_SETLKW:
	case F_OFD_SETLK:
	case F_OFD_SETLKW:
		return FA_FLOCK_IN;
	case F_GETLK:
	case F_OFD_GETLK:
		return FA_FLOCK_INOUT;
	case F_SETOWN_EX:
		return FA_OWNER_IN;
	case F_GETOWN_EX:
		return FA_OWNER_OUT;
	case F_SET_RW_HINT:
	case F_SET_FILE_RW_HINT:
		return FA_U64_IN;
	case F_GET_RW_HINT:
	case F_GET_FILE_RW_HINT:
		return FA_U64_OUT;
	default:
		return FA_BAD;
	}
}

static long fcntl_struct(km_vcpu_t *v, int fd, int cmd, uint64_t gva, size_t len, bool in, bool out)
{
	uint64_t buf[4] = {0};
	if (in && km_copy_from_guest(MM(v), buf, gva, len) < 0)
		return km_fd_err_first(fd, 0, false, -EFAULT);
	long r = km_host_ret(syscall(SYS_fcntl, fd, cmd, buf));
	return out ? out_struct(v, r, gva, buf, len) : r;
}

/* F_GETLK, F_OFD_GETLK: a lock km's process holds is the program's, under the pid the program
 * knows (a resumed program keeps the pid it had, and km's own is another). */
static long fcntl_getlk(km_vcpu_t *v, int fd, int cmd, uint64_t gva)
{
	struct flock fl;
	if (km_copy_from_guest(MM(v), &fl, gva, sizeof(fl)) < 0)
		return km_fd_err_first(fd, 0, false, -EFAULT);
	long r = km_host_ret(syscall(SYS_fcntl, fd, cmd, &fl));
	if (r == 0 && fl.l_type != F_UNLCK && fl.l_pid == getpid())
		fl.l_pid = v->g->pid;
	return out_struct(v, r, gva, &fl, sizeof(fl));
}

/* Commands are allowed by name: an unknown one might take a pointer km would not translate, and
 * Linux answers EINVAL to unknown commands anyway. */
/* Requests that make the kernel signal the fd's owner (O_ASYNC's SIGIO, a lease break, dnotify)
 * would signal km's own process: the guest's fds are km's. Until km delivers signals to the guest
 * (threads and signals issue) they are refused, so no host signal the guest arranges reaches km. */
static bool signals_owner(int cmd, uint64_t arg)
{
	return (cmd == F_SETFL && (arg & O_ASYNC)) || cmd == F_NOTIFY ||
	       (cmd == F_SETLEASE && (int)arg != F_UNLCK);
}

KM_SYSCALL(fcntl)
{
	int fd = (int)a[0], cmd = (int)a[1];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	switch (fcntl_kind(cmd)) {
	case FA_INT:
		if (signals_owner(cmd, a[2]))
			return fcntl(fd, F_GETFD) < 0 ? -EBADF : -EINVAL;
		return km_host_ret(syscall(SYS_fcntl, fd, cmd, a[2]));
	case FA_DUP:
		/* The lowest fd the guest may ask for is below its RLIMIT_NOFILE (and so below km's). */
		return a[2] >= (uint64_t)km_fd_limit(v->g)
			   ? -EINVAL
			   : km_fd_new(v->g, km_host_ret(syscall(SYS_fcntl, fd, cmd, a[2])));
	case FA_FD:
		return km_fd_check((int)a[2]) < 0 ? -EBADF : km_host_ret(syscall(SYS_fcntl, fd, cmd, a[2]));
	case FA_FLOCK_IN:
		return fcntl_struct(v, fd, cmd, a[2], sizeof(struct flock), true, false);
	case FA_FLOCK_INOUT:
		return fcntl_getlk(v, fd, cmd, a[2]);
	case FA_OWNER_IN:
		return fcntl_struct(v, fd, cmd, a[2], sizeof(struct f_owner_ex), true, false);
	case FA_OWNER_OUT:
		return fcntl_struct(v, fd, cmd, a[2], sizeof(struct f_owner_ex), false, true);
	case FA_U64_IN:
		return fcntl_struct(v, fd, cmd, a[2], sizeof(uint64_t), true, false);
	case FA_U64_OUT:
		return fcntl_struct(v, fd, cmd, a[2], sizeof(uint64_t), false, true);
	default:
		return -EINVAL;
	}
}

/* --- ioctl ------------------------------------------------------------------------------- */

typedef struct ioctl_def {
	unsigned int req;
	unsigned char len; /* bytes the argument points to */
	bool in, out;
} ioctl_def_t;

static const ioctl_def_t ioctl_defs[] = {
    {TCGETS, KTERMIOS_SIZE, false, true},
    {TCSETS, KTERMIOS_SIZE, true, false},
    {TCSETSW, KTERMIOS_SIZE, true, false},
    {TCSETSF, KTERMIOS_SIZE, true, false},
    {TIOCGWINSZ, sizeof(struct winsize), false, true},
    {TIOCSWINSZ, sizeof(struct winsize), true, false},
    {TIOCGPGRP, sizeof(pid_t), false, true},
    {TIOCSPGRP, sizeof(pid_t), true, false},
    {FIONREAD, sizeof(int), false, true},
    {FIONBIO, sizeof(int), true, false},
    {FIOCLEX, 0, false, false},
    {FIONCLEX, 0, false, false},
};

static const ioctl_def_t *ioctl_find(unsigned int req)
{
	for (size_t i = 0; i < sizeof(ioctl_defs) / sizeof(ioctl_defs[0]); i++)
		if (ioctl_defs[i].req == req)
			return &ioctl_defs[i];
	return NULL;
}

/* An unreadable argument is reported after what Linux checks first: the fd, then (for terminal
 * requests) whether it is a terminal. TCGETS into km asks that without side effects. */
static long ioctl_bad_arg(int fd, unsigned int req)
{
	uint64_t t[8];
	if (fcntl(fd, F_GETFD) < 0)
		return -EBADF;
	if (req != FIONBIO && syscall(SYS_ioctl, fd, TCGETS, t) < 0 && errno == ENOTTY)
		return -ENOTTY;
	return -EFAULT;
}

/* Only requests whose argument km knows the size of are forwarded; the rest, after the fd is
 * found valid, get ENOTTY as from a file that has no such request. */
KM_SYSCALL(ioctl)
{
	int fd = (int)a[0];
	unsigned int req = (unsigned int)a[1];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	const ioctl_def_t *d = ioctl_find(req);
	if (d == NULL)
		return fcntl(fd, F_GETFD) < 0 ? -EBADF : -ENOTTY;
	uint64_t buf[8] = {0};
	if (d->in && km_copy_from_guest(MM(v), buf, a[2], d->len) < 0)
		return ioctl_bad_arg(fd, req);
	long r = km_host_ret(syscall(SYS_ioctl, fd, req, d->len > 0 ? buf : NULL));
	return d->out ? out_struct(v, r, a[2], buf, d->len) : r;
}

/* --- poll and select --------------------------------------------------------------------- */

/* Linux refuses more entries than RLIMIT_NOFILE; the guest's limit is below km's fds. */
/* The guest's RLIMIT_NOFILE as poll judges nfds by it: a limit it lowered (km keeps it), else the
 * host's, never past km's own fds. */
static uint64_t nofile_limit(km_guest_t *g)
{
	struct rlimit rl;
	uint64_t lim = (uint64_t)km_fd_limit(g);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < lim)
		lim = rl.rlim_cur;
	return lim;
}

typedef struct pollset {
	struct pollfd *fds;
	uint8_t *km_fd; /* entry names one of km's fds: the host ignores it, the guest sees POLLNVAL */
	uint64_t n;
	int nkm;
} pollset_t;

static int poll_load(km_vcpu_t *v, uint64_t gva, uint64_t n, pollset_t *ps)
{
	memset(ps, 0, sizeof(*ps));
	if (n > nofile_limit(v->g))
		return -EINVAL;
	ps->n = n;
	if (n == 0)
		return 0;
	ps->fds = malloc(n * (sizeof(struct pollfd) + 1));
	if (ps->fds == NULL)
		return -ENOMEM;
	ps->km_fd = (uint8_t *)(ps->fds + n);
	/* revents goes back after the wait: check it can before waiting. */
	if (km_copy_from_guest(MM(v), ps->fds, gva, n * sizeof(struct pollfd)) < 0 ||
	    km_guest_check(MM(v), gva, n * sizeof(struct pollfd), KM_ACC_WRITE) < 0)
		return -EFAULT;
	for (uint64_t i = 0; i < n; i++) {
		ps->km_fd[i] = km_fd_check(ps->fds[i].fd) < 0;
		if (ps->km_fd[i]) {
			ps->fds[i].fd = -1;
			ps->nkm++;
		}
	}
	return 0;
}

/* Writes back revents only, as Linux does; adds the POLLNVAL entries to the count. */
static long poll_store(km_vcpu_t *v, uint64_t gva, pollset_t *ps, long r)
{
	if (r < 0)
		return r;
	for (uint64_t i = 0; i < ps->n; i++) {
		if (ps->km_fd[i])
			ps->fds[i].revents = POLLNVAL;
		uint64_t at = gva + i * sizeof(struct pollfd) + offsetof(struct pollfd, revents);
		if (km_copy_to_guest(MM(v), at, &ps->fds[i].revents, sizeof(short)) < 0)
			return -EFAULT;
	}
	return r + ps->nkm;
}

KM_SYSCALL(poll)
{
	pollset_t ps;
	int rc = poll_load(v, a[0], a[1], &ps);
	long r = rc;
	if (rc == 0) {
		/* A POLLNVAL entry is ready at once. */
		int timeout = ps.nkm > 0 ? 0 : (int)a[2];
		r = poll_store(v, a[0], &ps, km_host_ret(syscall(SYS_poll, ps.fds, ps.n, timeout)));
	}
	free(ps.fds);
	return r;
}

/* The signal mask a waiting call gives (ppoll, pselect6, epoll_pwait): in force for the call,
 * the old one back on the way out (after a handler it interrupted). -EINTR if a signal it lets
 * through is already pending. */
static int check_sigmask(km_vcpu_t *v, uint64_t gva, uint64_t size)
{
	uint64_t set;
	if (gva == 0)
		return 0;
	if (size != sizeof(set))
		return -EINVAL;
	if (km_copy_from_guest(MM(v), &set, gva, sizeof(set)) < 0)
		return -EFAULT;
	return km_signal_call_mask(v, set);
}

/* An optional timespec the host may update with the time left; the update goes back to the
 * guest, and as on Linux a failure to write it is ignored. */
static int ts_load(km_vcpu_t *v, uint64_t gva, struct timespec *ts, struct timespec **tsp)
{
	*tsp = NULL;
	if (gva == 0)
		return 0;
	if (km_copy_from_guest(MM(v), ts, gva, sizeof(*ts)) < 0)
		return -EFAULT;
	*tsp = ts;
	return 0;
}

KM_SYSCALL(ppoll)
{
	struct timespec ts, *tsp, zero = {0, 0};
	int rc = ts_load(v, a[2], &ts, &tsp);
	if (rc == 0)
		rc = check_sigmask(v, a[3], a[4]);
	if (rc < 0)
		return rc;
	pollset_t ps;
	rc = poll_load(v, a[0], a[1], &ps);
	long r = rc;
	if (rc == 0) {
		r = km_host_ret(syscall(SYS_ppoll, ps.fds, ps.n, ps.nkm > 0 ? &zero : tsp, NULL, 8));
		if (tsp != NULL && ps.nkm == 0)
			km_copy_to_guest(MM(v), a[2], tsp, sizeof(*tsp));
		r = poll_store(v, a[0], &ps, r);
	}
	free(ps.fds);
	return r;
}

/* select's sets, as many bytes as Linux reads for nfds. nfds is clipped to km's fds: the guest's
 * fd table ends below them, and Linux ignores bits beyond the end of the table. */
typedef struct fdsets {
	uint64_t gva[3];
	fd_set set[3];
	int n;
	size_t bytes;
} fdsets_t;

_Static_assert(KM_FD_RESERVED_BASE <= FD_SETSIZE, "select's sets must cover every guest fd");

static int sets_load(km_vcpu_t *v, const uint64_t *a, fdsets_t *s)
{
	int nfds = (int)a[0];
	if (nfds < 0)
		return -EINVAL;
	s->n = nfds < KM_FD_RESERVED_BASE ? nfds : KM_FD_RESERVED_BASE;
	s->bytes = (s->n + 63) / 64 * 8;
	for (int i = 0; i < 3; i++) {
		s->gva[i] = a[1 + i];
		memset(&s->set[i], 0, sizeof(s->set[i]));
		if (s->gva[i] != 0 && km_copy_from_guest(MM(v), &s->set[i], s->gva[i], s->bytes) < 0)
			return -EFAULT;
	}
	return 0;
}

static fd_set *set_ptr(fdsets_t *s, int i)
{
	return s->gva[i] != 0 ? &s->set[i] : NULL;
}

static long sets_store(km_vcpu_t *v, fdsets_t *s, long r)
{
	if (r < 0)
		return r;
	for (int i = 0; i < 3; i++)
		if (s->gva[i] != 0 && km_copy_to_guest(MM(v), s->gva[i], &s->set[i], s->bytes) < 0)
			return -EFAULT;
	return r;
}

KM_SYSCALL(select)
{
	fdsets_t s;
	struct timeval tv, *tvp = NULL;
	int rc = sets_load(v, a, &s);
	if (rc < 0)
		return rc;
	if (a[4] != 0) {
		if (km_copy_from_guest(MM(v), &tv, a[4], sizeof(tv)) < 0)
			return -EFAULT;
		tvp = &tv;
	}
	long r = km_host_ret(syscall(SYS_select, s.n, set_ptr(&s, 0), set_ptr(&s, 1), set_ptr(&s, 2), tvp));
	if (tvp != NULL)
		km_copy_to_guest(MM(v), a[4], tvp, sizeof(*tvp));
	return sets_store(v, &s, r);
}

/* pselect6's sixth argument points to {const sigset_t *ss; size_t ss_len}. */
static int pselect_sig(km_vcpu_t *v, uint64_t gva)
{
	uint64_t sig[2];
	if (gva == 0)
		return 0;
	if (km_copy_from_guest(MM(v), sig, gva, sizeof(sig)) < 0)
		return -EFAULT;
	return check_sigmask(v, sig[0], sig[1]);
}

KM_SYSCALL(pselect6)
{
	fdsets_t s;
	struct timespec ts, *tsp;
	int rc = sets_load(v, a, &s);
	if (rc == 0)
		rc = ts_load(v, a[4], &ts, &tsp);
	if (rc == 0)
		rc = pselect_sig(v, a[5]);
	if (rc < 0)
		return rc;
	long r = km_host_ret(
	    syscall(SYS_pselect6, s.n, set_ptr(&s, 0), set_ptr(&s, 1), set_ptr(&s, 2), tsp, NULL));
	if (tsp != NULL)
		km_copy_to_guest(MM(v), a[4], tsp, sizeof(*tsp));
	return sets_store(v, &s, r);
}

/* --- epoll ------------------------------------------------------------------------------- */

#define EP_MAX_EVENTS (INT_MAX / (int)sizeof(struct epoll_event))

KM_SYSCALL(epoll_ctl)
{
	int epfd = (int)a[0], op = (int)a[1], fd = (int)a[2];
	if (km_fd_check(epfd) < 0 || km_fd_check(fd) < 0)
		return -EBADF;
	struct epoll_event ev, *evp = NULL;
	if (op != EPOLL_CTL_DEL) {
		if (km_copy_from_guest(MM(v), &ev, a[3], sizeof(ev)) < 0)
			return -EFAULT;
		evp = &ev;
	}
	return km_host_ret(syscall(SYS_epoll_ctl, epfd, op, fd, evp));
}

/* Returning fewer events than asked is allowed: those not returned stay ready in the epoll set,
 * so a bounce buffer may hold fewer than maxevents. */
static long ep_wait(km_vcpu_t *v, const uint64_t *a, bool with_ts, const struct timespec *ts)
{
	int epfd = (int)a[0], max = (int)a[2];
	if (km_fd_check(epfd) < 0)
		return -EBADF;
	if (max <= 0 || max > EP_MAX_EVENTS)
		return -EINVAL;
	km_obuf_t ob;
	int rc = km_obuf_get(MM(v), a[1], (size_t)max * sizeof(struct epoll_event), BOUNCE_MAX, &ob);
	if (rc < 0)
		return km_fd_err_first(epfd, 0, false, rc);
	size_t n = ob.len / sizeof(struct epoll_event);
	long r = -EFAULT;
	if (n > 0 && with_ts)
		r = km_host_ret(syscall(SYS_epoll_pwait2, epfd, ob.p, n, ts, NULL, 8));
	else if (n > 0)
		r = km_host_ret(syscall(SYS_epoll_wait, epfd, ob.p, n, (int)a[3]));
	rc = km_obuf_put(MM(v), &ob, r > 0 ? r * sizeof(struct epoll_event) : 0);
	return r > 0 && rc < 0 ? rc : r;
}

KM_SYSCALL(epoll_wait)
{
	return ep_wait(v, a, false, NULL);
}

KM_SYSCALL(epoll_pwait)
{
	int rc = check_sigmask(v, a[4], a[5]);
	return rc < 0 ? rc : ep_wait(v, a, false, NULL);
}

KM_SYSCALL(epoll_pwait2)
{
	struct timespec ts, *tsp;
	int rc = ts_load(v, a[3], &ts, &tsp);
	if (rc == 0)
		rc = check_sigmask(v, a[4], a[5]);
	return rc < 0 ? rc : ep_wait(v, a, true, tsp);
}

/* --- moving data between fds ------------------------------------------------------------- */

/* An optional loff_t the host reads and updates; it must be writable before data moves. */
static int off_load(km_vcpu_t *v, uint64_t gva, int64_t *off, int64_t **offp)
{
	*offp = NULL;
	if (gva == 0)
		return 0;
	if (km_copy_from_guest(MM(v), off, gva, sizeof(*off)) < 0 ||
	    km_guest_check(MM(v), gva, sizeof(*off), KM_ACC_WRITE) < 0)
		return -EFAULT;
	*offp = off;
	return 0;
}

static long off_store(km_vcpu_t *v, uint64_t gva, const int64_t *offp, long r)
{
	if (offp != NULL && km_copy_to_guest(MM(v), gva, offp, sizeof(*offp)) < 0)
		return -EFAULT;
	return r;
}

KM_SYSCALL(sendfile)
{
	int out = (int)a[0], in = (int)a[1];
	if (km_fd_check(out) < 0 || km_fd_check(in) < 0)
		return -EBADF;
	if (km_sigfd_is(v->g, in) || km_sigfd_is(v->g, out))
		return -EINVAL; /* a signalfd's eventfd is km's to read (km_sigfd.h) */
	int64_t off, *offp;
	int rc = off_load(v, a[2], &off, &offp);
	if (rc < 0)
		return rc;
	long r = km_host_ret(syscall(SYS_sendfile, out, in, offp, a[3]));
	return off_store(v, a[2], offp, r);
}

/* copy_file_range and splice: (fd_in, off_in *, fd_out, off_out *, len, flags). */
static long two_off_call(km_vcpu_t *v, long nr, const uint64_t *a)
{
	int in = (int)a[0], out = (int)a[2];
	if (km_fd_check(in) < 0 || km_fd_check(out) < 0)
		return -EBADF;
	if (km_sigfd_is(v->g, in) || km_sigfd_is(v->g, out))
		return -EINVAL; /* a signalfd's eventfd is km's to read (km_sigfd.h) */
	int64_t off_in, off_out, *pin, *pout;
	int rc = off_load(v, a[1], &off_in, &pin);
	if (rc == 0)
		rc = off_load(v, a[3], &off_out, &pout);
	if (rc < 0)
		return rc;
	long r = km_host_ret(syscall(nr, in, pin, out, pout, a[4], a[5]));
	if (r <= 0)
		return r;
	r = off_store(v, a[1], pin, r);
	return r < 0 ? r : off_store(v, a[3], pout, r);
}

KM_SYSCALL(copy_file_range)
{
	return two_off_call(v, SYS_copy_file_range, a);
}

KM_SYSCALL(splice)
{
	return two_off_call(v, SYS_splice, a);
}

KM_SYSCALL(tee)
{
	if (km_fd_check((int)a[0]) < 0 || km_fd_check((int)a[1]) < 0)
		return -EBADF;
	if (km_sigfd_is(v->g, (int)a[0]) || km_sigfd_is(v->g, (int)a[1]))
		return -EINVAL;
	return km_host_ret(syscall(SYS_tee, (int)a[0], (int)a[1], a[2], a[3]));
}

/* --- table ------------------------------------------------------------------------------- */

/* clang-format off */
#define DEF(name, fmt) {SYS_##name, #name, sys_##name, fmt}
/* clang-format on */

const km_sys_def_t km_sys_file_defs[] = {
    DEF(read, "fpu"),
    DEF(write, "fpu"),
    DEF(pread64, "fpud"),
    DEF(pwrite64, "fpud"),
    DEF(readv, "fpd"),
    DEF(writev, "fpd"),
    DEF(preadv, "fpddd"),
    DEF(pwritev, "fpddd"),
    DEF(preadv2, "fpdddx"),
    DEF(pwritev2, "fpdddx"),
    DEF(open, "sxo"),
    DEF(openat, "fsxo"),
    DEF(openat2, "fspu"),
    DEF(creat, "so"),
    DEF(close, "f"),
    DEF(close_range, "uux"),
    DEF(lseek, "fdd"),
    DEF(stat, "sp"),
    DEF(fstat, "fp"),
    DEF(lstat, "sp"),
    DEF(newfstatat, "fspx"),
    DEF(statx, "fsxxp"),
    DEF(statfs, "sp"),
    DEF(getxattr, "sspu"),
    DEF(lgetxattr, "sspu"),
    DEF(fgetxattr, "fspu"),
    DEF(setxattr, "sspux"),
    DEF(lsetxattr, "sspux"),
    DEF(fsetxattr, "fspux"),
    DEF(listxattr, "spu"),
    DEF(llistxattr, "spu"),
    DEF(flistxattr, "fpu"),
    DEF(removexattr, "ss"),
    DEF(lremovexattr, "ss"),
    DEF(fremovexattr, "fs"),
    DEF(fstatfs, "fp"),
    DEF(getdents64, "fpu"),
    DEF(getdents, "fpu"),
    DEF(access, "so"),
    DEF(faccessat, "fso"),
    DEF(faccessat2, "fsox"),
    DEF(rename, "ss"),
    DEF(renameat, "fsfs"),
    DEF(renameat2, "fsfsx"),
    DEF(unlink, "s"),
    DEF(unlinkat, "fsx"),
    DEF(mkdir, "so"),
    DEF(mkdirat, "fso"),
    DEF(rmdir, "s"),
    DEF(link, "ss"),
    DEF(linkat, "fsfsx"),
    DEF(symlink, "ss"),
    DEF(symlinkat, "sfs"),
    DEF(readlink, "spd"),
    DEF(readlinkat, "fspd"),
    DEF(chmod, "so"),
    DEF(fchmod, "fo"),
    DEF(fchmodat, "fso"),
    DEF(fchmodat2, "fsox"),
    DEF(chown, "sdd"),
    DEF(fchown, "fdd"),
    DEF(lchown, "sdd"),
    DEF(fchownat, "fsddx"),
    DEF(umask, "o"),
    DEF(truncate, "sd"),
    DEF(ftruncate, "fd"),
    DEF(fsync, "f"),
    DEF(fdatasync, "f"),
    DEF(sync, ""),
    DEF(syncfs, "f"),
    DEF(fallocate, "fxdd"),
    DEF(fadvise64, "fddd"),
    DEF(sync_file_range, "fddx"),
    DEF(utimensat, "fspx"),
    DEF(futimesat, "fsp"),
    DEF(utime, "sp"),
    DEF(utimes, "sp"),
    DEF(getcwd, "pu"),
    DEF(chdir, "s"),
    DEF(fchdir, "f"),
    DEF(pipe, "p"),
    DEF(pipe2, "px"),
    DEF(dup, "f"),
    DEF(dup2, "ff"),
    DEF(dup3, "ffx"),
    DEF(fcntl, "fdx"),
    DEF(flock, "fd"),
    DEF(ioctl, "fxp"),
    DEF(poll, "pud"),
    DEF(ppoll, "puppu"),
    DEF(select, "dpppp"),
    DEF(pselect6, "dppppp"),
    DEF(sendfile, "ffpu"),
    DEF(copy_file_range, "fpfpux"),
    DEF(splice, "fpfpux"),
    DEF(tee, "ffux"),
    DEF(mknod, "sox"),
    DEF(mknodat, "fsox"),
    DEF(memfd_create, "sx"),
    DEF(eventfd, "u"),
    DEF(eventfd2, "ux"),
    DEF(inotify_init, ""),
    DEF(inotify_init1, "x"),
    DEF(inotify_add_watch, "fsx"),
    DEF(inotify_rm_watch, "fd"),
    DEF(name_to_handle_at, "fsppx"),
    DEF(epoll_create, "d"),
    DEF(epoll_create1, "x"),
    DEF(epoll_ctl, "fdfp"),
    DEF(epoll_wait, "fpdd"),
    DEF(epoll_pwait, "fpddpu"),
    DEF(epoll_pwait2, "fpdppu"),
    {0, NULL, NULL, NULL},
};
