/*
 * Unit tests for the checked-access helpers (km_sys_util.c) and the file syscall handlers
 * (km_sys_file.c). They run on a real km_mm_t without a VM: handlers are called through
 * km_sys_file_defs with guest addresses, exactly as the dispatcher calls them.
 *
 * Guest layout: A = 16 read/write pages; B and B+PAGE are adjacent guest pages whose host memory
 * is not adjacent (a buffer there becomes two host pieces); RO = a read-only page; HOLE = unmapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_sys_util.h"
#include "km_syscall.h"

#include "guest_fixture.h"

#define KERNEL_HALF 0xffff880000001000ul

static int setup(void **state)
{
	return fx_setup(state, km_sys_file_defs);
}

static int teardown(void **state)
{
	return fx_teardown(state);
}

/* A pipe made through the handler, its fds read back from guest memory. */
static void gpipe(fx_t *f, int p[2])
{
	assert_int_equal(SYS(SYS_pipe2, A + 15 * PG, 0), 0);
	gget(f, A + 15 * PG, p, 2 * sizeof(int));
}

static uint64_t gpath(fx_t *f, uint64_t gva, const char *name)
{
	char path[256];
	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	return gstr(f, gva, path);
}

/* --- helpers ------------------------------------------------------------------------------ */

static void test_layout(void **state)
{
	fx_t *f = *state;
	/* The tests below rely on B's two pages being apart on the host. */
	assert_ptr_not_equal((uint8_t *)hva(f, B) + PG, hva(f, B + PG));
}

static void test_copy_str(void **state)
{
	fx_t *f = *state;
	char buf[KM_PATH_MAX];
	assert_int_equal(km_copy_str(&f->g.mm, gstr(f, A, "hello"), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "hello");
	/* Across two mappings that are apart on the host. */
	gstr(f, B + PG - 5, "0123456789");
	assert_int_equal(km_copy_str(&f->g.mm, B + PG - 5, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "0123456789");
	/* Running into unmapped memory before a NUL. */
	memset(hva(f, A), 'x', 16 * PG);
	assert_int_equal(km_copy_str(&f->g.mm, A + 15 * PG + 100, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(km_copy_str(&f->g.mm, A, buf, sizeof(buf)), -ENAMETOOLONG);
	assert_int_equal(km_copy_str(&f->g.mm, HOLE, buf, sizeof(buf)), -EFAULT);
	/* The NUL at the last allowed byte. */
	((char *)hva(f, A))[9] = 0;
	assert_int_equal(km_copy_str(&f->g.mm, A, buf, 10), 0);
	assert_int_equal(km_copy_str(&f->g.mm, A, buf, 9), -ENAMETOOLONG);
}

static void test_buf_iov(void **state)
{
	fx_t *f = *state;
	struct iovec iov[4];
	int n;
	assert_int_equal(km_buf_iov(&f->g.mm, B, 2 * PG, KM_ACC_WRITE, false, iov, 4, &n), 2 * PG);
	assert_int_equal(n, 2);
	assert_ptr_equal(iov[0].iov_base, hva(f, B));
	assert_int_equal(iov[0].iov_len, PG);
	assert_ptr_equal(iov[1].iov_base, hva(f, B + PG));
	/* Out of iovecs: a short transfer. */
	assert_int_equal(km_buf_iov(&f->g.mm, B, 2 * PG, KM_ACC_WRITE, false, iov, 1, &n), PG);
	assert_int_equal(n, 1);
	/* Running into unmapped memory: short for reads, EFAULT for writes. */
	assert_int_equal(km_buf_iov(&f->g.mm, A + 15 * PG, 2 * PG, KM_ACC_WRITE, true, iov, 4, &n), PG);
	assert_int_equal(km_buf_iov(&f->g.mm, A + 15 * PG, 2 * PG, KM_ACC_READ, false, iov, 4, &n), -EFAULT);
	assert_int_equal(km_buf_iov(&f->g.mm, RO, 8, KM_ACC_WRITE, true, iov, 4, &n), -EFAULT);
	assert_int_equal(km_buf_iov(&f->g.mm, RO, 8, KM_ACC_READ, false, iov, 4, &n), 8);
	assert_int_equal(km_buf_iov(&f->g.mm, HOLE, 8, KM_ACC_READ, true, iov, 4, &n), -EFAULT);
	assert_int_equal(km_buf_iov(&f->g.mm, KERNEL_HALF, 8, KM_ACC_READ, true, iov, 4, &n), -EFAULT);
	assert_int_equal(km_buf_iov(&f->g.mm, A, -1ul, KM_ACC_READ, true, iov, 4, &n), -EFAULT);
	assert_int_equal(km_buf_iov(&f->g.mm, HOLE, 0, KM_ACC_READ, false, iov, 4, &n), 0);
	assert_int_equal(n, 0);
}

static void test_guest_iovs(void **state)
{
	fx_t *f = *state;
	struct iovec host[8];
	int n;
	struct iovec g[3] = {{(void *)B, 2 * PG}, {(void *)A, 0}, {(void *)HOLE, 10}};
	gput(f, A + PG, g, sizeof(g));
	assert_int_equal(km_guest_iovs(&f->g.mm, A + PG, 2, KM_ACC_READ, false, host, 8, &n), 2 * PG);
	assert_int_equal(n, 2);
	/* A bad segment after good ones: short for reads, EFAULT for writes. */
	assert_int_equal(km_guest_iovs(&f->g.mm, A + PG, 3, KM_ACC_WRITE, true, host, 8, &n), 2 * PG);
	assert_int_equal(km_guest_iovs(&f->g.mm, A + PG, 3, KM_ACC_READ, false, host, 8, &n), -EFAULT);
	assert_int_equal(km_guest_iovs(&f->g.mm, A + PG, KM_IOV_MAX + 1, KM_ACC_READ, false, host, 8, &n),
			 -EINVAL);
	assert_int_equal(km_guest_iovs(&f->g.mm, HOLE, 2, KM_ACC_READ, false, host, 8, &n), -EFAULT);
	assert_int_equal(km_guest_iovs(&f->g.mm, HOLE, 0, KM_ACC_READ, false, host, 8, &n), 0);
	/* A negative length is EINVAL even after a bad range, as Linux checks lengths first. */
	struct iovec neg[2] = {{(void *)KERNEL_HALF, 1}, {(void *)A, (size_t)-1}};
	gput(f, A + PG, neg, sizeof(neg));
	assert_int_equal(km_guest_iovs(&f->g.mm, A + PG, 2, KM_ACC_READ, false, host, 8, &n), -EINVAL);
}

static void test_guest_prefix_and_check(void **state)
{
	fx_t *f = *state;
	assert_int_equal(km_guest_prefix(&f->g.mm, A + 15 * PG + 100, 10 * PG, KM_ACC_READ), PG - 100);
	assert_int_equal(km_guest_prefix(&f->g.mm, B, 3 * PG, KM_ACC_WRITE), 2 * PG);
	assert_int_equal(km_guest_prefix(&f->g.mm, RO, 8, KM_ACC_WRITE), 0);
	assert_int_equal(km_guest_check(&f->g.mm, RO, 8, KM_ACC_READ), 0);
	assert_int_equal(km_guest_check(&f->g.mm, RO, 8, KM_ACC_WRITE), -EFAULT);
	assert_int_equal(km_guest_check(&f->g.mm, HOLE, 0, KM_ACC_WRITE), 0);
}

static void test_obuf(void **state)
{
	fx_t *f = *state;
	km_obuf_t ob;
	/* Contiguous: the guest's own memory. */
	assert_int_equal(km_obuf_get(&f->g.mm, A, 100, 64, &ob), 0);
	assert_ptr_equal(ob.p, hva(f, A));
	assert_false(ob.bounced);
	assert_int_equal(km_obuf_put(&f->g.mm, &ob, 100), 0);
	/* Apart on the host: a bounce buffer of at most cap bytes, copied back on put. */
	assert_int_equal(km_obuf_get(&f->g.mm, B + PG - 8, 16, 64, &ob), 0);
	assert_true(ob.bounced);
	assert_int_equal(ob.len, 16);
	memcpy(ob.p, "ABCDEFGHIJKLMNOP", 16);
	assert_int_equal(km_obuf_put(&f->g.mm, &ob, 16), 0);
	char back[17] = {0};
	gget(f, B + PG - 8, back, 16);
	assert_string_equal(back, "ABCDEFGHIJKLMNOP");
	/* Shrinks to the writable part. */
	assert_int_equal(km_obuf_get(&f->g.mm, A + 16 * PG - 24, 1000, 64, &ob), 0);
	assert_int_equal(ob.len, 24);
	km_obuf_put(&f->g.mm, &ob, 0);
	assert_int_equal(km_obuf_get(&f->g.mm, RO, 10, 64, &ob), -EFAULT);
	assert_int_equal(km_obuf_get(&f->g.mm, KERNEL_HALF, 10, 64, &ob), -EFAULT);
}

static void test_cmsg_check(void **state)
{
	(void)state;
	union {
		char buf[CMSG_SPACE(2 * sizeof(int)) + CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct cmsghdr *c = (struct cmsghdr *)u.buf;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	int fds[2] = {0, 999};
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	assert_int_equal(km_cmsg_check(u.buf, CMSG_SPACE(2 * sizeof(int))), 0);
	/* Short trailing bytes are not a header. */
	assert_int_equal(km_cmsg_check(u.buf, CMSG_SPACE(2 * sizeof(int)) + 4), 0);
	struct cmsghdr *c2 = (struct cmsghdr *)(u.buf + CMSG_SPACE(2 * sizeof(int)));
	c2->cmsg_level = SOL_SOCKET;
	c2->cmsg_type = SCM_RIGHTS;
	c2->cmsg_len = CMSG_LEN(sizeof(int));
	int km_fd = KM_FD_RESERVED_BASE + 3;
	memcpy(CMSG_DATA(c2), &km_fd, sizeof(km_fd));
	assert_int_equal(km_cmsg_check(u.buf, sizeof(u.buf)), -EBADF);
	c->cmsg_len = 8;
	assert_int_equal(km_cmsg_check(u.buf, sizeof(u.buf)), -EINVAL);
	c->cmsg_len = sizeof(u.buf) + 1;
	assert_int_equal(km_cmsg_check(u.buf, sizeof(u.buf)), -EINVAL);
	/* Other levels are not looked into. */
	c->cmsg_len = CMSG_LEN(2 * sizeof(int));
	c2->cmsg_level = SOL_SOCKET + 1;
	assert_int_equal(km_cmsg_check(u.buf, sizeof(u.buf)), 0);
}

static void test_is_self_exe(void **state)
{
	fx_t *f = *state;
	char p[64];
	assert_true(km_is_self_exe(&f->g, "/proc/self/exe"));
	assert_true(km_is_self_exe(&f->g, "/proc/thread-self/exe"));
	snprintf(p, sizeof(p), "/proc/%d/exe", getpid());
	assert_true(km_is_self_exe(&f->g, p));
	f->g.pid = 4242; /* after a restore the guest's pid need not be km's */
	assert_true(km_is_self_exe(&f->g, "/proc/4242/exe"));
	assert_true(km_is_self_exe(&f->g, p));
	f->g.pid = getpid();
	assert_false(km_is_self_exe(&f->g, "/proc/1/exe"));
	assert_false(km_is_self_exe(&f->g, "/proc/04242/exe"));
	assert_false(km_is_self_exe(&f->g, "/proc/self/exe/"));
	assert_false(km_is_self_exe(&f->g, "/proc/self/cwd"));
	assert_false(km_is_self_exe(&f->g, "/proc/selfexe"));
	assert_false(km_is_self_exe(&f->g, "self/exe"));
	char *exe = f->g.exe_path;
	f->g.exe_path = NULL;
	assert_false(km_is_self_exe(&f->g, "/proc/self/exe"));
	f->g.exe_path = exe;
}

static void test_fd_guard(void **state)
{
	fx_t *f = *state;
	assert_int_equal(km_fd_check(KM_FD_RESERVED_BASE - 1), 0);
	assert_int_equal(km_fd_check(KM_FD_RESERVED_BASE), -EBADF);
	assert_int_equal(km_fd_check(-1), 0); /* the host says EBADF itself */
	assert_int_equal(km_fd_at(AT_FDCWD), AT_FDCWD);
	assert_int_equal(km_fd_at(KM_FD_RESERVED_BASE + 1), -1);
	/* A new fd among km's never reaches the guest. */
	int high = KM_FD_RESERVED_BASE + 3;
	assert_int_equal(dup2(0, high), high);
	assert_int_equal(km_fd_new(&f->g, high), -EMFILE);
	assert_int_equal(fcntl(high, F_GETFD), -1);
	assert_int_equal(km_fd_new(&f->g, 5), 5);
	assert_int_equal(km_fd_new(&f->g, -EINTR), -EINTR);
	/* A limit the guest lowered holds for every new fd, as Linux's RLIMIT_NOFILE. */
	f->g.nofile = (struct rlimit){8, 8};
	int seven = dup2(0, 7), eight = dup2(0, 8);
	assert_int_equal(km_fd_new(&f->g, seven), 7);
	assert_int_equal(km_fd_new(&f->g, eight), -EMFILE);
	assert_int_equal(fcntl(8, F_GETFD), -1);
	assert_int_equal(SYS(SYS_dup2, 0, 8), -EBADF);
	assert_int_equal(SYS(SYS_fcntl, 0, F_DUPFD, 8), -EINVAL);
	assert_int_equal(SYS(SYS_poll, A, 9, 0), -EINVAL); /* nfds past the guest's limit, as Linux */
	long d = SYS(SYS_dup, 0);
	assert_true(d < 8 || d == -EMFILE);
	if (d >= 0)
		close((int)d);
	close(7);
	f->g.nofile = (struct rlimit){0, 0};
}

/* --- read and write ---------------------------------------------------------------------- */

static void test_rw_split_buffer(void **state)
{
	fx_t *f = *state;
	int p[2];
	gpipe(f, p);
	for (size_t i = 0; i < 2 * PG; i++)
		((uint8_t *)hva(f, B + (i / PG) * PG))[i % PG] = (uint8_t)i;
	assert_int_equal(SYS(SYS_write, p[1], B, 2 * PG), 2 * PG);
	assert_int_equal(SYS(SYS_read, p[0], A, 2 * PG), 2 * PG);
	for (size_t i = 0; i < 2 * PG; i++)
		assert_int_equal(((uint8_t *)hva(f, A))[i], (uint8_t)i);
	close(p[0]);
	close(p[1]);
}

static void test_rw_partial(void **state)
{
	fx_t *f = *state;
	int p[2], avail;
	gpipe(f, p);
	assert_int_equal(SYS(SYS_write, p[1], A, 100), 100);
	/* 96 bytes fit before the unmapped page: a short read, as on Linux. */
	assert_int_equal(SYS(SYS_read, p[0], A + 16 * PG - 96, 200), 96);
	assert_int_equal(ioctl(p[0], FIONREAD, &avail), 0);
	assert_int_equal(avail, 4);
	/* A write from a partly unmapped buffer fails whole. */
	assert_int_equal(SYS(SYS_write, p[1], A + 16 * PG - 10, 20), -EFAULT);
	assert_int_equal(ioctl(p[0], FIONREAD, &avail), 0);
	assert_int_equal(avail, 4);
	assert_int_equal(SYS(SYS_read, p[0], RO, 4), -EFAULT);
	assert_int_equal(SYS(SYS_read, p[0], A, 0), 0);
	assert_int_equal(SYS(SYS_write, p[1], A, -1ul), -EFAULT);
	close(p[0]);
	close(p[1]);
}

static void test_rw_error_order(void **state)
{
	fx_t *f = *state;
	int p[2];
	gpipe(f, p);
	assert_int_equal(SYS(SYS_pread64, p[0], HOLE, 4, 0), -ESPIPE);
	assert_int_equal(SYS(SYS_pread64, p[0], A, 4, -1ul), -EINVAL);
	assert_int_equal(SYS(SYS_read, p[1], HOLE, 4), -EBADF);
	assert_int_equal(SYS(SYS_write, p[0], HOLE, 4), -EBADF);
	close(p[1]);
	assert_int_equal(SYS(SYS_read, p[1], HOLE, 4), -EBADF);
	assert_int_equal(SYS(SYS_readv, p[1], HOLE, 2), -EBADF);
	assert_int_equal(SYS(SYS_readv, p[0], HOLE, 2), -EFAULT);
	assert_int_equal(SYS(SYS_readv, p[0], A, KM_IOV_MAX + 1), -EINVAL);
	close(p[0]);
}

static void test_vec_io(void **state)
{
	fx_t *f = *state;
	int fd = open(f->dir, O_TMPFILE | O_RDWR, 0600);
	assert_true(fd >= 0);
	struct iovec g[2] = {{(void *)gstr(f, A, "hello "), 6}, {(void *)gstr(f, B + PG - 3, "world"), 5}};
	gput(f, A + PG, g, sizeof(g));
	assert_int_equal(SYS(SYS_pwritev, fd, A + PG, 2, 11, 0), 11);
	assert_int_equal(SYS(SYS_pwritev2, fd, A + PG, 2, -1ul, 0, 0), 11); /* -1: the file position */
	assert_int_equal(lseek(fd, 0, SEEK_CUR), 11);
	struct iovec r[1] = {{(void *)(A + 2 * PG), 32}};
	gput(f, A + PG, r, sizeof(r));
	assert_int_equal(SYS(SYS_preadv, fd, A + PG, 1, 11, 0), 11);
	assert_memory_equal(hva(f, A + 2 * PG), "hello world", 11);
	assert_int_equal(SYS(SYS_pread64, fd, A + 3 * PG, 5, 0), 5);
	assert_memory_equal(hva(f, A + 3 * PG), "hello", 5);
	close(fd);
}

/* --- fds that belong to km --------------------------------------------------------------- */

static void test_km_fds(void **state)
{
	fx_t *f = *state;
	int km_fd = KM_FD_RESERVED_BASE + 1, low = KM_FD_RESERVED_BASE - 5;
	assert_int_equal(dup2(0, km_fd), km_fd);
	assert_int_equal(dup2(0, low), low);
	assert_int_equal(SYS(SYS_close, km_fd), -EBADF);
	assert_int_equal(SYS(SYS_dup2, 0, km_fd), -EBADF);
	assert_int_equal(SYS(SYS_dup3, km_fd, 5, 0), -EBADF);
	assert_int_equal(SYS(SYS_read, km_fd, A, 1), -EBADF);
	assert_int_equal(SYS(SYS_fcntl, 0, F_DUPFD, KM_FD_RESERVED_BASE), -EINVAL);
	assert_int_equal(SYS(SYS_fstat, km_fd, A), -EBADF);
	assert_int_equal(SYS(SYS_fcntl, km_fd, F_GETFD), -EBADF);
	assert_int_equal(SYS(SYS_ioctl, km_fd, FIONREAD, A), -EBADF);
	assert_int_equal(SYS(SYS_epoll_ctl, 0, EPOLL_CTL_DEL, km_fd, 0), -EBADF);
	/* An absolute path ignores the dirfd, as on Linux; a relative one needs it. */
	assert_true(SYS(SYS_newfstatat, km_fd, gstr(f, A, "/"), A + PG, 0) == 0);
	assert_int_equal(SYS(SYS_newfstatat, km_fd, gstr(f, A, "."), A + PG, 0), -EBADF);
	/* closefrom() closes the guest's fds only. */
	assert_int_equal(SYS(SYS_close_range, low - 1, ~0u, 0), 0);
	assert_int_equal(fcntl(low, F_GETFD), -1);
	assert_true(fcntl(km_fd, F_GETFD) >= 0);
	assert_int_equal(SYS(SYS_close_range, km_fd, km_fd + 5, 0), 0);
	assert_true(fcntl(km_fd, F_GETFD) >= 0);
	assert_int_equal(SYS(SYS_close_range, 10, 9, 0), -EINVAL);
	assert_int_equal(SYS(SYS_close_range, 10, 11, 0x80), -EINVAL);
	/* poll: km's fd is POLLNVAL and makes the call return at once. */
	struct pollfd pf[2] = {{km_fd, POLLIN, 0}, {-1, POLLIN, 0}};
	gput(f, A, pf, sizeof(pf));
	assert_int_equal(SYS(SYS_poll, A, 2, -1ul), 1);
	gget(f, A, pf, sizeof(pf));
	assert_int_equal(pf[0].revents, POLLNVAL);
	assert_int_equal(pf[0].fd, km_fd);
	assert_int_equal(pf[1].revents, 0);
	close(km_fd);
}

/* --- names and metadata ------------------------------------------------------------------- */

static void test_open_stat(void **state)
{
	fx_t *f = *state;
	uint64_t path = gpath(f, A, "f1");
	long fd = SYS(SYS_openat, AT_FDCWD, path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(SYS(SYS_write, fd, gstr(f, A + PG, "abc"), 3), 3);
	assert_int_equal(SYS(SYS_fstat, fd, A + 2 * PG), 0);
	struct stat st;
	gget(f, A + 2 * PG, &st, sizeof(st));
	assert_int_equal(st.st_size, 3);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(SYS(SYS_stat, path, RO), -EFAULT);
	assert_int_equal(SYS(SYS_stat, HOLE, A + 2 * PG), -EFAULT);
	assert_int_equal(SYS(SYS_newfstatat, AT_FDCWD, path, A + 2 * PG, 0), 0);
	assert_int_equal(SYS(SYS_newfstatat, fd, gstr(f, A + PG, ""), A + 2 * PG, AT_EMPTY_PATH), 0);
	assert_int_equal(SYS(SYS_statx, AT_FDCWD, path, 0, 0x7ff, A + 2 * PG), 0);
	uint64_t stx_size;
	gget(f, A + 2 * PG + 40, &stx_size, sizeof(stx_size)); /* statx.stx_size */
	assert_int_equal(stx_size, 3);
	assert_int_equal(SYS(SYS_access, path, R_OK), 0);
	assert_int_equal(SYS(SYS_faccessat2, AT_FDCWD, path, X_OK, 0), -EACCES);
	assert_int_equal(SYS(SYS_close, fd), 0);
	assert_int_equal(SYS(SYS_close, fd), -EBADF);
	/* A path of PATH_MAX bytes or more is ENAMETOOLONG. */
	memset(hva(f, A + 4 * PG), 'a', 2 * PG);
	assert_int_equal(SYS(SYS_open, A + 4 * PG, O_RDONLY), -ENAMETOOLONG);
}

static void test_names(void **state)
{
	fx_t *f = *state;
	uint64_t d = gpath(f, A, "d"), d2 = gpath(f, A + 256, "d2"), l = gpath(f, A + 512, "lnk");
	assert_int_equal(SYS(SYS_mkdir, d, 0700), 0);
	assert_int_equal(SYS(SYS_rename, d, d2), 0);
	assert_int_equal(SYS(SYS_symlinkat, gstr(f, A + 768, "d2"), AT_FDCWD, l), 0);
	assert_int_equal(SYS(SYS_readlink, l, A + PG, 100), 2);
	assert_memory_equal(hva(f, A + PG), "d2", 2);
	assert_int_equal(SYS(SYS_readlinkat, AT_FDCWD, l, A + PG, 1), 1);
	assert_int_equal(SYS(SYS_readlink, l, HOLE, 100), -EFAULT);
	assert_int_equal(SYS(SYS_readlink, l, A + PG, 0), -EINVAL);
	assert_int_equal(SYS(SYS_unlink, l), 0);
	assert_int_equal(SYS(SYS_rmdir, d2), 0);
	assert_int_equal(SYS(SYS_rmdir, d2), -ENOENT);
	assert_int_equal(SYS(SYS_renameat2, AT_FDCWD, HOLE, AT_FDCWD, d, 0), -EFAULT);
}

static void test_self_exe(void **state)
{
	fx_t *f = *state;
	uint64_t p = gstr(f, A, "/proc/self/exe");
	assert_int_equal(SYS(SYS_readlink, p, A + PG, 100), strlen("/opt/app/prog"));
	assert_memory_equal(hva(f, A + PG), "/opt/app/prog", strlen("/opt/app/prog"));
	assert_int_equal(SYS(SYS_readlinkat, AT_FDCWD, p, A + 2 * PG, 4), 4);
	assert_memory_equal(hva(f, A + 2 * PG), "/opt", 4);
	assert_int_equal(SYS(SYS_readlink, p, RO, 100), -EFAULT);
	/* open follows it to the program too (here a file that does not exist). */
	assert_int_equal(SYS(SYS_open, p, O_RDONLY), -ENOENT);
	free(f->g.exe_path);
	f->g.exe_path = strdup("/bin/sh");
	assert_int_equal(SYS(SYS_stat, p, A + PG), 0);
	assert_int_equal(SYS(SYS_lstat, p, A + PG), 0);
	struct stat st;
	gget(f, A + PG, &st, sizeof(st));
	assert_true(S_ISLNK(st.st_mode));
	free(f->g.exe_path);
	f->g.exe_path = strdup("/opt/app/prog");
}

static void test_getdents(void **state)
{
	fx_t *f = *state;
	for (int i = 0; i < 3; i++) {
		char n[16];
		snprintf(n, sizeof(n), "e%d", i);
		close(SYS(SYS_open, gpath(f, A, n), O_CREAT | O_WRONLY, 0600));
	}
	long fd = SYS(SYS_open, gstr(f, A, f->dir), O_RDONLY | O_DIRECTORY);
	assert_true(fd >= 0);
	assert_int_equal(SYS(SYS_getdents64, fd, RO, 4096), -EFAULT);
	assert_int_equal(SYS(SYS_getdents64, 999, HOLE, 4096), -EBADF);
	/* Into a buffer that is two pieces on the host: bounced. */
	long n = SYS(SYS_getdents64, fd, B + PG - 512, 1024);
	assert_true(n > 0);
	char buf[1024];
	gget(f, B + PG - 512, buf, n);
	int seen = 0;
	for (long off = 0; off < n;) {
		struct dirent64 *e = (struct dirent64 *)(buf + off);
		seen += e->d_name[0] == 'e';
		off += e->d_reclen;
	}
	assert_int_equal(seen, 3);
	assert_int_equal(SYS(SYS_getdents64, fd, A, 4096), 0);
	close(fd);
}

static void test_cwd(void **state)
{
	fx_t *f = *state;
	char *cwd = getcwd(NULL, 0);
	assert_int_equal(SYS(SYS_chdir, gstr(f, A, f->dir)), 0);
	assert_int_equal(SYS(SYS_getcwd, A + PG, 4096), strlen(f->dir) + 1);
	assert_string_equal(hva(f, A + PG), f->dir);
	assert_int_equal(SYS(SYS_getcwd, A + PG, 2), -ERANGE);
	assert_int_equal(SYS(SYS_getcwd, HOLE, 4096), -EFAULT);
	assert_int_equal(chdir(cwd), 0);
	free(cwd);
}

static void test_times(void **state)
{
	fx_t *f = *state;
	uint64_t path = gpath(f, A, "t");
	close(SYS(SYS_open, path, O_CREAT | O_WRONLY, 0600));
	struct timespec ts[2] = {{1000, 0}, {2000, 0}};
	gput(f, A + PG, ts, sizeof(ts));
	assert_int_equal(SYS(SYS_utimensat, AT_FDCWD, path, A + PG, 0), 0);
	struct stat st;
	assert_int_equal(stat(hva(f, path), &st), 0);
	assert_int_equal(st.st_mtime, 2000);
	assert_int_equal(SYS(SYS_utimensat, AT_FDCWD, path, HOLE, 0), -EFAULT);
	assert_int_equal(SYS(SYS_utimensat, AT_FDCWD, path, 0, 0), 0); /* NULL times: now */
}

/* --- pipes, fcntl, ioctl ----------------------------------------------------------------- */

static void test_pipe_bad_array(void **state)
{
	fx_t *f = *state;
	int next = dup(0);
	close(next);
	assert_int_equal(SYS(SYS_pipe2, HOLE, 0), -EFAULT);
	assert_int_equal(SYS(SYS_pipe, RO), -EFAULT);
	int again = dup(0);
	close(again);
	assert_int_equal(again, next); /* the pipe's fds were closed again */
}

static void test_fcntl(void **state)
{
	fx_t *f = *state;
	int fd = open(f->dir, O_TMPFILE | O_RDWR, 0600);
	assert_true(fd >= 0);
	struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 10};
	gput(f, A, &fl, sizeof(fl));
	assert_int_equal(SYS(SYS_fcntl, fd, F_SETLK, A), 0);
	assert_int_equal(SYS(SYS_fcntl, fd, F_OFD_GETLK, A), 0);
	gget(f, A, &fl, sizeof(fl));
	assert_int_equal(fl.l_type, F_WRLCK); /* the process's own lock conflicts with an OFD lock */
	assert_int_equal(SYS(SYS_fcntl, fd, F_GETLK, HOLE), -EFAULT);
	assert_int_equal(SYS(SYS_fcntl, 999, F_SETLK, HOLE), -EBADF);
	assert_int_equal(SYS(SYS_fcntl, fd, F_GETFL) & O_ACCMODE, O_RDWR);
	assert_int_equal(SYS(SYS_fcntl, fd, 9999, A), -EINVAL);
	long d = SYS(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 100);
	assert_true(d >= 100);
	assert_int_equal(SYS(SYS_fcntl, d, F_GETFD), FD_CLOEXEC);
	assert_int_equal(SYS(SYS_fcntl, fd, F_GETOWN_EX, A), 0);
	assert_int_equal(SYS(SYS_fcntl, fd, F_GETOWN_EX, RO), -EFAULT);
	close(d);
	close(fd);
}

static void test_ioctl(void **state)
{
	fx_t *f = *state;
	int p[2];
	gpipe(f, p);
	assert_int_equal(write(p[1], "12345", 5), 5);
	assert_int_equal(SYS(SYS_ioctl, p[0], FIONREAD, A), 0);
	assert_int_equal(gint(f, A), 5);
	assert_int_equal(SYS(SYS_ioctl, p[0], FIONREAD, RO), -EFAULT);
	assert_int_equal(SYS(SYS_ioctl, p[0], TCGETS, A), -ENOTTY);
	assert_int_equal(SYS(SYS_ioctl, p[0], TCSETS, HOLE), -ENOTTY);
	assert_int_equal(SYS(SYS_ioctl, p[0], 0x1234, A), -ENOTTY);
	assert_int_equal(SYS(SYS_ioctl, 999, 0x1234, A), -EBADF);
	assert_int_equal(SYS(SYS_ioctl, p[0], FIONBIO, HOLE), -EFAULT);
	int one = 1;
	gput(f, A, &one, sizeof(one));
	assert_int_equal(SYS(SYS_ioctl, p[0], FIONBIO, A), 0);
	assert_true(fcntl(p[0], F_GETFL) & O_NONBLOCK);
	assert_int_equal(SYS(SYS_ioctl, p[0], FIOCLEX, 0), 0);
	assert_int_equal(fcntl(p[0], F_GETFD), FD_CLOEXEC);
	close(p[0]);
	close(p[1]);
}

/* --- waiting ----------------------------------------------------------------------------- */

static void test_poll_select(void **state)
{
	fx_t *f = *state;
	int p[2];
	gpipe(f, p);
	assert_int_equal(write(p[1], "x", 1), 1);
	struct pollfd pf[2] = {{p[0], POLLIN, 0}, {p[1], POLLIN, 0}};
	gput(f, A, pf, sizeof(pf));
	assert_int_equal(SYS(SYS_poll, A, 2, 0), 1);
	gget(f, A, pf, sizeof(pf));
	assert_int_equal(pf[0].revents, POLLIN);
	assert_int_equal(pf[1].revents, 0);
	assert_int_equal(SYS(SYS_poll, RO, 1, 0), -EFAULT);
	assert_int_equal(SYS(SYS_poll, A, 1ul << 40, 0), -EINVAL);
	struct timespec ts = {0, 1000};
	gput(f, A + PG, &ts, sizeof(ts));
	assert_int_equal(SYS(SYS_ppoll, A, 1, A + PG, A + 2 * PG, 4), -EINVAL); /* sigsetsize must be 8 */
	assert_int_equal(SYS(SYS_ppoll, A, 1, A + PG, HOLE, 8), -EFAULT);
	assert_int_equal(SYS(SYS_ppoll, A, 1, A + PG, A + 2 * PG, 8), 1);

	fd_set rs;
	FD_ZERO(&rs);
	FD_SET(p[0], &rs);
	FD_SET(p[1], &rs);
	gput(f, A, &rs, sizeof(rs));
	struct timeval tv = {0, 0};
	gput(f, A + PG, &tv, sizeof(tv));
	assert_int_equal(SYS(SYS_select, p[1] + 1, A, 0, 0, A + PG), 1);
	gget(f, A, &rs, sizeof(rs));
	assert_true(FD_ISSET(p[0], &rs));
	assert_false(FD_ISSET(p[1], &rs));
	assert_int_equal(SYS(SYS_select, -1, 0, 0, 0, A + PG), -EINVAL);
	assert_int_equal(SYS(SYS_select, p[1] + 1, HOLE, 0, 0, A + PG), -EFAULT);
	uint64_t sig[2] = {A + 3 * PG, 16};
	gput(f, A + 2 * PG, sig, sizeof(sig));
	assert_int_equal(SYS(SYS_pselect6, p[1] + 1, A, 0, 0, 0, A + 2 * PG), -EINVAL);
	close(p[0]);
	close(p[1]);
}

static void test_epoll(void **state)
{
	fx_t *f = *state;
	int p[2];
	gpipe(f, p);
	long ep = SYS(SYS_epoll_create1, EPOLL_CLOEXEC);
	assert_true(ep >= 0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x1122334455667788ul};
	gput(f, A, &ev, sizeof(ev));
	assert_int_equal(SYS(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, p[0], A), 0);
	assert_int_equal(SYS(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, p[1], HOLE), -EFAULT);
	assert_int_equal(write(p[1], "x", 1), 1);
	/* The event straddles two host pieces: bounced. */
	uint64_t at = B + PG - 6;
	assert_int_equal(SYS(SYS_epoll_wait, ep, at, 4, 0), 1);
	gget(f, at, &ev, sizeof(ev));
	assert_int_equal(ev.events, EPOLLIN);
	assert_int_equal(ev.data.u64, 0x1122334455667788ul);
	assert_int_equal(SYS(SYS_epoll_wait, ep, A, 0, 0), -EINVAL);
	assert_int_equal(SYS(SYS_epoll_wait, ep, RO, 1, 0), -EFAULT);
	assert_int_equal(SYS(SYS_epoll_pwait, ep, A, 1, 0, A + PG, 4), -EINVAL);
	assert_int_equal(SYS(SYS_epoll_pwait2, ep, A, 1, 0, 0, 8), 1);
	assert_int_equal(SYS(SYS_epoll_ctl, ep, EPOLL_CTL_DEL, p[0], 0), 0);
	close(ep);
	close(p[0]);
	close(p[1]);
}

/* --- moving data between fds ------------------------------------------------------------- */

static void test_sendfile(void **state)
{
	fx_t *f = *state;
	int p[2];
	gpipe(f, p);
	int fd = open(f->dir, O_TMPFILE | O_RDWR, 0600);
	assert_int_equal(write(fd, "hello world", 11), 11);
	int64_t off = 6;
	gput(f, A, &off, sizeof(off));
	assert_int_equal(SYS(SYS_sendfile, p[1], fd, A, 5), 5);
	gget(f, A, &off, sizeof(off));
	assert_int_equal(off, 11);
	char buf[8] = {0};
	assert_int_equal(read(p[0], buf, sizeof(buf)), 5);
	assert_string_equal(buf, "world");
	assert_int_equal(SYS(SYS_sendfile, p[1], fd, RO, 5), -EFAULT);
	off = 0;
	gput(f, A, &off, sizeof(off));
	assert_int_equal(SYS(SYS_splice, fd, A, p[1], 0, 5, 0), 5);
	gget(f, A, &off, sizeof(off));
	assert_int_equal(off, 5);
	close(fd);
	close(p[0]);
	close(p[1]);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_layout),
	    T(test_copy_str),
	    T(test_buf_iov),
	    T(test_guest_iovs),
	    T(test_guest_prefix_and_check),
	    T(test_obuf),
	    T(test_cmsg_check),
	    T(test_is_self_exe),
	    T(test_fd_guard),
	    T(test_rw_split_buffer),
	    T(test_rw_partial),
	    T(test_rw_error_order),
	    T(test_vec_io),
	    T(test_km_fds),
	    T(test_open_stat),
	    T(test_names),
	    T(test_self_exe),
	    T(test_getdents),
	    T(test_cwd),
	    T(test_times),
	    T(test_pipe_bad_array),
	    T(test_fcntl),
	    T(test_ioctl),
	    T(test_poll_select),
	    T(test_epoll),
	    T(test_sendfile),
	};
	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
