/*
 * Unit tests for the socket syscall handlers (km_sys_net.c) and the msghdr/sockaddr helpers
 * they use, on a real km_mm_t without a VM, with real host sockets (unix pairs, loopback).
 *
 * Guest layout as in test_sys_file.c: A = 16 read/write pages; B and B+PAGE are adjacent guest
 * pages apart on the host; RO = a read-only page; HOLE = unmapped.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_sys_util.h"
#include "km_syscall.h"

#include "guest_fixture.h"


static int setup(void **state)
{
	return fx_setup(state, km_sys_net_defs);
}

static int teardown(void **state)
{
	return fx_teardown(state);
}

/* A socketpair made through the handler. */
static void gpair(fx_t *f, int type, int s[2])
{
	assert_int_equal(SYS(SYS_socketpair, AF_UNIX, type, 0, A + 15 * PG), 0);
	gget(f, A + 15 * PG, s, 2 * sizeof(int));
}

/* A guest msghdr at gva with one or two iovecs (stored right after it). */
static void gmsg(fx_t *f, uint64_t gva, uint64_t base0, size_t len0, uint64_t base1, size_t len1,
		 uint64_t ctl, size_t ctllen)
{
	struct iovec iov[2] = {{(void *)base0, len0}, {(void *)base1, len1}};
	gput(f, gva + 64, iov, sizeof(iov));
	km_guest_msghdr_t m = {.iov = gva + 64, .iovlen = len1 ? 2 : 1, .control = ctl, .controllen = ctllen};
	gput(f, gva, &m, sizeof(m));
}

static void test_sendmsg_recvmsg(void **state)
{
	fx_t *f = *state;
	int s[2];
	gpair(f, SOCK_DGRAM, s);
	/* "abcdef" straddles B's two host pieces, "xyz" is elsewhere. */
	gput(f, B + PG - 3, "abcdef", 6);
	gput(f, A + 8 * PG, "xyz", 3);
	gmsg(f, A, B + PG - 3, 6, A + 8 * PG, 3, 0, 0);
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), 9);
	gmsg(f, A + PG, A + 9 * PG, 100, 0, 0, 0, 7);
	km_guest_msghdr_t m;
	assert_int_equal(SYS(SYS_recvmsg, s[1], A + PG, 0), 9);
	assert_memory_equal(hva(f, A + 9 * PG), "abcdefxyz", 9);
	gget(f, A + PG, &m, sizeof(m));
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.controllen, 0); /* no buffer: nothing, and the length says so */
	/* A short buffer: the rest of the datagram is cut, MSG_TRUNC says so. */
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), 9);
	gmsg(f, A + PG, A + 9 * PG, 4, 0, 0, 0, 0);
	assert_int_equal(SYS(SYS_recvmsg, s[1], A + PG, 0), 4);
	gget(f, A + PG, &m, sizeof(m));
	assert_int_equal(m.flags, MSG_TRUNC);
	/* A send must be whole: a bad iovec fails it. */
	gmsg(f, A, A + 8 * PG, 3, HOLE, 3, 0, 0);
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), -EFAULT);
	assert_int_equal(SYS(SYS_sendmsg, s[0], HOLE, 0), -EFAULT);
	km_guest_msghdr_t big = {.iov = A + 64, .iovlen = KM_IOV_MAX + 1};
	gput(f, A, &big, sizeof(big));
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), -EMSGSIZE);
	close(s[0]);
	close(s[1]);
}

static void test_recvmsg_checks_first(void **state)
{
	fx_t *f = *state;
	int s[2];
	gpair(f, SOCK_DGRAM, s);
	assert_int_equal(send(s[0], "hi", 2, 0), 2);
	/* An unwritable header or control buffer is refused before the message is taken. */
	gmsg(f, A, A + 9 * PG, 100, 0, 0, 0, 0);
	assert_int_equal(SYS(SYS_recvmsg, s[1], RO, 0), -EFAULT);
	gmsg(f, A, A + 9 * PG, 100, 0, 0, RO, 64);
	assert_int_equal(SYS(SYS_recvmsg, s[1], A, 0), -EFAULT);
	gmsg(f, A, A + 9 * PG, 100, 0, 0, 0, 0);
	assert_int_equal(SYS(SYS_recvmsg, s[1], A, 0), 2);
	/* fd errors come first, as on Linux. */
	assert_int_equal(SYS(SYS_recvmsg, 999, HOLE, 0), -EBADF);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(SYS(SYS_recvmsg, p[0], HOLE, 0), -ENOTSOCK);
	close(p[0]);
	close(p[1]);
	close(s[0]);
	close(s[1]);
}

static void put_rights(fx_t *f, uint64_t gva, int fd)
{
	char buf[CMSG_SPACE(sizeof(int))] = {0};
	struct cmsghdr *c = (struct cmsghdr *)buf;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(fd));
	gput(f, gva, buf, sizeof(buf));
}

static void test_scm_rights(void **state)
{
	fx_t *f = *state;
	int s[2], p[2];
	gpair(f, SOCK_STREAM, s);
	assert_int_equal(pipe(p), 0);
	gput(f, A + 8 * PG, "x", 1);
	put_rights(f, A + 10 * PG, p[0]);
	gmsg(f, A, A + 8 * PG, 1, 0, 0, A + 10 * PG, CMSG_SPACE(sizeof(int)));
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), 1);
	/* Received into control space that straddles B's two host pieces. */
	uint64_t ctl = B + PG - 8;
	gmsg(f, A + PG, A + 9 * PG, 16, 0, 0, ctl, 64);
	assert_int_equal(SYS(SYS_recvmsg, s[1], A + PG, MSG_CMSG_CLOEXEC), 1);
	km_guest_msghdr_t m;
	gget(f, A + PG, &m, sizeof(m));
	assert_int_equal(m.controllen, CMSG_SPACE(sizeof(int)));
	char cbuf[CMSG_SPACE(sizeof(int))];
	gget(f, ctl, cbuf, sizeof(cbuf));
	struct cmsghdr *c = (struct cmsghdr *)cbuf;
	assert_int_equal(c->cmsg_type, SCM_RIGHTS);
	int got;
	memcpy(&got, CMSG_DATA(c), sizeof(got));
	assert_int_equal(write(p[1], "z", 1), 1);
	char z = 0;
	assert_int_equal(read(got, &z, 1), 1);
	assert_int_equal(z, 'z');
	close(got);
	/* km's fds cannot be sent. */
	int km_fd = KM_FD_RESERVED_BASE + 2;
	assert_int_equal(dup2(p[0], km_fd), km_fd);
	put_rights(f, A + 10 * PG, km_fd);
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), -EBADF);
	close(km_fd);
	/* Malformed ancillary data. */
	struct cmsghdr bad = {.cmsg_len = 4, .cmsg_level = SOL_SOCKET, .cmsg_type = SCM_RIGHTS};
	gput(f, A + 10 * PG, &bad, sizeof(bad));
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), -EINVAL);
	gmsg(f, A, A + 8 * PG, 1, 0, 0, A + 10 * PG, KM_CTL_MAX + 1);
	assert_int_equal(SYS(SYS_sendmsg, s[0], A, 0), -ENOBUFS);
	close(p[0]);
	close(p[1]);
	close(s[0]);
	close(s[1]);
}

/* Sends `n` copies of fd in one SCM_RIGHTS message through the handler. */
static void send_rights(fx_t *f, int sock, int fd, int n)
{
	char buf[CMSG_SPACE(3 * sizeof(int))] = {0};
	struct cmsghdr *c = (struct cmsghdr *)buf;
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(n * sizeof(int));
	for (int i = 0; i < n; i++)
		memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(fd));
	gput(f, A + 10 * PG, buf, sizeof(buf));
	gput(f, A + 8 * PG, "x", 1);
	gmsg(f, A, A + 8 * PG, 1, 0, 0, A + 10 * PG, CMSG_SPACE(n * sizeof(int)));
	assert_int_equal(SYS(SYS_sendmsg, sock, A, 0), 1);
}

/* Defect 7 of issue 6: fds past the guest's RLIMIT_NOFILE are not installed; the message is cut
 * to those that were and MSG_CTRUNC is set, as in Linux's scm_detach_fds. */
static void test_scm_rights_past_limit(void **state)
{
	fx_t *f = *state;
	int s[2], p[2];
	gpair(f, SOCK_DGRAM, s);
	assert_int_equal(pipe(p), 0);
	int lowest = dup(0);
	close(lowest);
	f->g.nofile = (struct rlimit){lowest + 1, lowest + 1}; /* room for one */
	send_rights(f, s[0], p[0], 3);
	gmsg(f, A + PG, A + 9 * PG, 16, 0, 0, A + 12 * PG, 64);
	assert_int_equal(SYS(SYS_recvmsg, s[1], A + PG, 0), 1);
	km_guest_msghdr_t m;
	gget(f, A + PG, &m, sizeof(m));
	assert_true(m.flags & MSG_CTRUNC);
	assert_int_equal(m.controllen, CMSG_SPACE(sizeof(int)));
	struct cmsghdr c;
	gget(f, A + 12 * PG, &c, sizeof(c));
	assert_int_equal(c.cmsg_type, SCM_RIGHTS);
	assert_int_equal(c.cmsg_len, CMSG_LEN(sizeof(int)));
	int got;
	gget(f, A + 12 * PG + CMSG_LEN(0), &got, sizeof(got));
	assert_int_equal(got, lowest);
	/* The two that did not fit were closed on the host. */
	assert_int_equal(fcntl(lowest + 1, F_GETFD), -1);
	assert_int_equal(fcntl(lowest + 2, F_GETFD), -1);
	/* A full table: nothing installed, no control message at all. */
	send_rights(f, s[0], p[0], 2);
	gmsg(f, A + PG, A + 9 * PG, 16, 0, 0, A + 12 * PG, 64);
	assert_int_equal(SYS(SYS_recvmsg, s[1], A + PG, 0), 1);
	gget(f, A + PG, &m, sizeof(m));
	assert_true(m.flags & MSG_CTRUNC);
	assert_int_equal(m.controllen, 0);
	assert_int_equal(fcntl(lowest + 1, F_GETFD), -1);
	close(got);
	close(p[0]);
	close(p[1]);
	close(s[0]);
	close(s[1]);
}

static uint64_t put_sin(fx_t *f, uint64_t gva, uint16_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	gput(f, gva, &sin, sizeof(sin));
	return gva;
}

static void test_udp_addresses(void **state)
{
	fx_t *f = *state;
	long r = SYS(SYS_socket, AF_INET, SOCK_DGRAM, 0), s = SYS(SYS_socket, AF_INET, SOCK_DGRAM, 0);
	assert_true(r >= 0 && s >= 0);
	assert_int_equal(SYS(SYS_bind, r, put_sin(f, A, 0), sizeof(struct sockaddr_in)), 0);
	assert_int_equal(SYS(SYS_bind, r, A, 129), -EINVAL);
	assert_int_equal(SYS(SYS_bind, r, HOLE, 16), -EFAULT);
	int len = sizeof(struct sockaddr_in);
	gput(f, A + 64, &len, sizeof(len));
	assert_int_equal(SYS(SYS_getsockname, r, A, A + 64), 0);
	struct sockaddr_in bound;
	gget(f, A, &bound, sizeof(bound));
	assert_int_not_equal(bound.sin_port, 0);
	assert_int_equal(SYS(SYS_getsockname, r, A, RO), -EFAULT);

	gput(f, A + 8 * PG, "ping", 4);
	assert_int_equal(SYS(SYS_sendto, s, A + 8 * PG, 4, 0, A, sizeof(bound)), 4);
	assert_int_equal(SYS(SYS_sendto, s, A + 8 * PG, 4, 0, HOLE, sizeof(bound)), -EFAULT);
	/* The address is checked before receiving: the datagram stays queued. */
	assert_int_equal(SYS(SYS_recvfrom, r, A + 9 * PG, 100, 0, A + PG, RO), -EFAULT);
	/* A 4-byte address buffer gets 4 bytes; the length says how long the address was. */
	len = 4;
	gput(f, A + 64, &len, sizeof(len));
	memset(hva(f, A + PG), 0xee, 16);
	assert_int_equal(SYS(SYS_recvfrom, r, A + 9 * PG, 100, 0, A + PG, A + 64), 4);
	assert_memory_equal(hva(f, A + 9 * PG), "ping", 4);
	assert_int_equal(gint(f, A + 64), sizeof(struct sockaddr_in));
	assert_int_equal(((uint8_t *)hva(f, A + PG))[4], 0xee);
	assert_int_equal(((struct sockaddr_in *)hva(f, A + PG))->sin_family, AF_INET);
	/* Into a buffer that is two host pieces. */
	assert_int_equal(SYS(SYS_sendto, s, A + 8 * PG, 4, 0, A, sizeof(bound)), 4);
	assert_int_equal(SYS(SYS_recvfrom, r, B + PG - 2, 4, 0, 0, 0), 4);
	char back[4];
	gget(f, B + PG - 2, back, 4);
	assert_memory_equal(back, "ping", 4);
	len = -1;
	gput(f, A + 64, &len, sizeof(len));
	assert_int_equal(SYS(SYS_recvfrom, r, A + 9 * PG, 100, MSG_DONTWAIT, A + PG, A + 64), -EINVAL);
	close(r);
	close(s);
}

static void test_accept(void **state)
{
	fx_t *f = *state;
	long l = SYS(SYS_socket, AF_INET, SOCK_STREAM, 0), c = SYS(SYS_socket, AF_INET, SOCK_STREAM, 0);
	assert_true(l >= 0 && c >= 0);
	assert_int_equal(SYS(SYS_bind, l, put_sin(f, A, 0), sizeof(struct sockaddr_in)), 0);
	assert_int_equal(SYS(SYS_listen, l, 4), 0);
	int len = sizeof(struct sockaddr_in);
	gput(f, A + 64, &len, sizeof(len));
	assert_int_equal(SYS(SYS_getsockname, l, A, A + 64), 0);
	assert_int_equal(SYS(SYS_connect, c, A, sizeof(struct sockaddr_in)), 0);
	/* A bad address buffer is found before the connection is taken. */
	assert_int_equal(SYS(SYS_accept, l, HOLE, A + 64), -EFAULT);
	assert_int_equal(SYS(SYS_accept, l, A + PG, HOLE), -EFAULT);
	long a = SYS(SYS_accept4, l, A + PG, A + 64, SOCK_CLOEXEC);
	assert_true(a >= 0);
	assert_int_equal(((struct sockaddr_in *)hva(f, A + PG))->sin_family, AF_INET);
	assert_int_equal(fcntl(a, F_GETFD), FD_CLOEXEC);
	assert_int_equal(SYS(SYS_getpeername, a, A + 2 * PG, A + 64), 0);
	assert_int_equal(SYS(SYS_shutdown, a, SHUT_RDWR), 0);
	close(a);
	close(c);
	close(l);
}

static void test_sockopts(void **state)
{
	fx_t *f = *state;
	long s = SYS(SYS_socket, AF_INET, SOCK_DGRAM, 0);
	assert_true(s >= 0);
	int one = 1, len;
	gput(f, A, &one, sizeof(one));
	assert_int_equal(SYS(SYS_setsockopt, s, SOL_SOCKET, SO_REUSEADDR, A, sizeof(one)), 0);
	assert_int_equal(SYS(SYS_setsockopt, s, SOL_SOCKET, SO_REUSEADDR, A, -1), -EINVAL);
	assert_int_equal(SYS(SYS_setsockopt, s, SOL_SOCKET, SO_REUSEADDR, HOLE, 4), -EFAULT);
	/* A length past the end of the value is fine while the option reads only what it needs. */
	gput(f, A + 16 * PG - 4, &one, sizeof(one));
	assert_int_equal(SYS(SYS_setsockopt, s, SOL_SOCKET, SO_REUSEADDR, A + 16 * PG - 4, 64), 0);
	len = 64;
	gput(f, A + 64, &len, sizeof(len));
	assert_int_equal(SYS(SYS_getsockopt, s, SOL_SOCKET, SO_REUSEADDR, A + PG, A + 64), 0);
	assert_int_equal(gint(f, A + 64), sizeof(int));
	assert_int_equal(gint(f, A + PG), 1);
	assert_int_equal(SYS(SYS_getsockopt, s, SOL_SOCKET, SO_TYPE, A + PG, RO), -EFAULT);
	len = -1;
	gput(f, A + 64, &len, sizeof(len));
	assert_int_equal(SYS(SYS_getsockopt, s, SOL_SOCKET, SO_TYPE, A + PG, A + 64), -EINVAL);
	/* A classic BPF program: the pointer inside sock_fprog is translated. */
	struct sock_filter prog[1] = {BPF_STMT(BPF_RET | BPF_K, 0xffff)};
	gput(f, A + 2 * PG, prog, sizeof(prog));
	struct sock_fprog fp = {.len = 1, .filter = (struct sock_filter *)(A + 2 * PG)};
	gput(f, A + 3 * PG, &fp, sizeof(fp));
	assert_int_equal(SYS(SYS_setsockopt, s, SOL_SOCKET, SO_ATTACH_FILTER, A + 3 * PG, sizeof(fp)), 0);
	fp.filter = (struct sock_filter *)HOLE;
	gput(f, A + 3 * PG, &fp, sizeof(fp));
	assert_int_equal(SYS(SYS_setsockopt, s, SOL_SOCKET, SO_ATTACH_FILTER, A + 3 * PG, sizeof(fp)),
			 -EFAULT);
	/* Options holding pointers km does not translate are refused. */
	assert_int_equal(SYS(SYS_setsockopt, s, IPPROTO_IP, 64, A, 4), -ENOPROTOOPT);
	assert_int_equal(SYS(SYS_setsockopt, 999, SOL_SOCKET, SO_REUSEADDR, HOLE, 4), -EBADF);
	close(s);
}

static void test_mmsg(void **state)
{
	fx_t *f = *state;
	int s[2];
	gpair(f, SOCK_DGRAM, s);
	/* Three messages of 1, 2 and 3 bytes. */
	gput(f, A + 8 * PG, "abc", 3);
	for (int i = 0; i < 3; i++)
		gmsg(f, A + i * 128, A + 8 * PG, i + 1, 0, 0, 0, 0);
	/* mmsghdr is 64 bytes: lay the three msghdrs out as an array. */
	for (int i = 0; i < 3; i++)
		memcpy(hva(f, A + PG + i * KM_MMSGHDR_SIZE), hva(f, A + i * 128), sizeof(km_guest_msghdr_t));
	assert_int_equal(SYS(SYS_sendmmsg, s[0], A + PG, 3, 0), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(gint(f, A + PG + i * KM_MMSGHDR_SIZE + KM_MMSGHDR_LEN_OFF), i + 1);
	/* Receive into five slots: three arrive, MSG_WAITFORONE stops waiting after the first. */
	for (int i = 0; i < 5; i++) {
		gmsg(f, A + 4 * PG + i * 128, A + 9 * PG + i * 16, 16, 0, 0, 0, 0);
		memcpy(hva(f, A + 2 * PG + i * KM_MMSGHDR_SIZE), hva(f, A + 4 * PG + i * 128),
		       sizeof(km_guest_msghdr_t));
	}
	struct timespec ts = {5, 0};
	gput(f, A + 3 * PG, &ts, sizeof(ts));
	assert_int_equal(SYS(SYS_recvmmsg, s[1], A + 2 * PG, 5, MSG_WAITFORONE, A + 3 * PG), 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(gint(f, A + 2 * PG + i * KM_MMSGHDR_SIZE + KM_MMSGHDR_LEN_OFF), i + 1);
	assert_memory_equal(hva(f, A + 9 * PG + 32), "abc", 3);
	gget(f, A + 3 * PG, &ts, sizeof(ts));
	assert_true(ts.tv_sec <= 5 && ts.tv_sec >= 4); /* the time left went back */
	assert_int_equal(SYS(SYS_recvmmsg, s[1], A + 2 * PG, 5, MSG_DONTWAIT, 0), -EAGAIN);
	ts.tv_nsec = -1;
	gput(f, A + 3 * PG, &ts, sizeof(ts));
	assert_int_equal(SYS(SYS_recvmmsg, s[1], A + 2 * PG, 5, 0, A + 3 * PG), -EINVAL);
	/* An error after the first message ends the batch with the count so far. */
	gmsg(f, A + 5 * PG, HOLE, 4, 0, 0, 0, 0);
	memcpy(hva(f, A + PG + KM_MMSGHDR_SIZE), hva(f, A + 5 * PG), sizeof(km_guest_msghdr_t));
	assert_int_equal(SYS(SYS_sendmmsg, s[0], A + PG, 3, 0), 1);
	assert_int_equal(SYS(SYS_sendmmsg, s[0], A + PG + KM_MMSGHDR_SIZE, 1, 0), -EFAULT);
	close(s[0]);
	close(s[1]);
}

static void test_socketpair_bad_array(void **state)
{
	fx_t *f = *state;
	int next = dup(0);
	close(next);
	assert_int_equal(SYS(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, RO), -EFAULT);
	int again = dup(0);
	close(again);
	assert_int_equal(again, next);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_sendmsg_recvmsg),
	    T(test_recvmsg_checks_first),
	    T(test_scm_rights_past_limit),
	    T(test_scm_rights),
	    T(test_udp_addresses),
	    T(test_accept),
	    T(test_sockopts),
	    T(test_mmsg),
	    T(test_socketpair_bad_array),
	};
	return cmocka_run_group_tests(tests, NULL, NULL) ? 1 : 0;
}
