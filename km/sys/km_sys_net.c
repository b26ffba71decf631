/*
 * Socket syscalls, forwarded to the host with every guest pointer checked. Addresses pass through
 * a sockaddr_storage in km, a msghdr is rebuilt for the host (km_msg_t), and SCM_RIGHTS carries
 * host fds, which are the guest's fds, except km's own, which the guest may not send.
 *
 * Blocking calls block the vCPU thread; an interrupted host call returns -EINTR to the core.
 */
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_guest.h"
#include "km_rlimit.h"
#include "km_sys_util.h"
#include "km_syscall.h"
#include "km_vcpu.h"

#ifndef PACKET_FANOUT_DATA
#define PACKET_FANOUT_DATA 22
#endif

/* Netfilter tables are replaced and read through structures holding user pointers. */
#define IPT_SO_SET_REPLACE 64 /* SOL_IP, and IP6T_SO_SET_REPLACE on SOL_IPV6 */
#define ARPT_SO_SET_REPLACE 96
#define EBT_SO_SET_ENTRIES 128
#define EBT_SO_GET_ENTRIES 129
#define EBT_SO_GET_INIT_ENTRIES 131

/* <asm-generic/socket.h> of Linux 6.5; older headers lack them. */
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

#define MM(v) (&(v)->g->mm)

#define BUF_IOV 64		 /* host pieces of one guest buffer, as in km_sys_file.c */
#define SOCK_MAX_LEN 0x7fffffffu /* sendto/recvfrom cap a length at INT_MAX */

static long fd_call(long nr, const uint64_t *a)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	return km_host_ret(syscall(nr, fd, a[1], a[2], a[3], a[4], a[5]));
}

KM_SYSCALL(socket)
{
	return km_fd_new(v->g, km_host_ret(syscall(SYS_socket, (int)a[0], (int)a[1], (int)a[2])));
}

KM_SYSCALL(socketpair)
{
	int fds[2];
	long r = km_host_ret(syscall(SYS_socketpair, (int)a[0], (int)a[1], (int)a[2], fds));
	return km_fd_pair_out(v->g, r, a[3], fds);
}

KM_SYSCALL(listen)
{
	return fd_call(SYS_listen, a);
}

KM_SYSCALL(shutdown)
{
	return fd_call(SYS_shutdown, a);
}

/* bind and connect: (fd, sockaddr *, len). */
static long addr_call(km_vcpu_t *v, long nr, const uint64_t *a)
{
	int fd = (int)a[0], len = (int)a[2];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	struct sockaddr_storage ss;
	int rc = km_sockaddr_in(MM(v), a[1], len, &ss);
	if (rc < 0)
		return km_sock_err_first(fd, rc);
	return km_host_ret(syscall(nr, fd, &ss, len));
}

KM_SYSCALL(bind)
{
	return addr_call(v, SYS_bind, a);
}

KM_SYSCALL(connect)
{
	return addr_call(v, SYS_connect, a);
}

/* getsockname and getpeername: Linux writes the address even when the pointer is NULL, so a
 * NULL buffer with a non-zero length is EFAULT here too. */
static long name_call(km_vcpu_t *v, long nr, const uint64_t *a)
{
	int fd = (int)a[0];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	km_sockaddr_out_t o;
	int rc = km_sockaddr_out_prep(MM(v), a[1], a[2], &o);
	if (rc < 0)
		return km_sock_err_first(fd, rc);
	long r = km_host_ret(syscall(nr, fd, &o.ss, &o.len));
	if (r < 0)
		return r;
	return km_sockaddr_out_put(MM(v), &o) < 0 ? -EFAULT : r;
}

KM_SYSCALL(getsockname)
{
	return name_call(v, SYS_getsockname, a);
}

KM_SYSCALL(getpeername)
{
	return name_call(v, SYS_getpeername, a);
}

/* The peer's address is checked before accepting, so a connection is not taken and then lost to
 * an unwritable buffer. */
static long do_accept(km_vcpu_t *v, const uint64_t *a, int flags)
{
	int fd = (int)a[0];
	if (flags & ~(SOCK_CLOEXEC | SOCK_NONBLOCK))
		return -EINVAL;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	if (a[1] == 0)
		return km_fd_new(v->g, km_host_ret(syscall(SYS_accept4, fd, NULL, NULL, flags)));
	km_sockaddr_out_t o;
	int rc = km_sockaddr_out_prep(MM(v), a[1], a[2], &o);
	if (rc < 0)
		return km_sock_err_first(fd, rc);
	long r = km_fd_new(v->g, km_host_ret(syscall(SYS_accept4, fd, &o.ss, &o.len, flags)));
	if (r >= 0 && km_sockaddr_out_put(MM(v), &o) < 0) {
		close((int)r);
		return -EFAULT;
	}
	return r;
}

KM_SYSCALL(accept)
{
	return do_accept(v, a, 0);
}

KM_SYSCALL(accept4)
{
	return do_accept(v, a, (int)a[3]);
}

/* Linux's access_ok() on the buffer comes before its length is capped. */
static bool user_range(uint64_t gva, uint64_t len)
{
	return len == 0 || (gva + len > gva && gva + len <= KM_USER_TOP);
}

/* A sendto/recvfrom buffer as host iovecs; a send must be whole (a datagram is never cut). */
static ssize_t sock_buf(km_vcpu_t *v, uint64_t gva, uint64_t len, bool rd, struct iovec *iov, int *n)
{
	if (!user_range(gva, len))
		return -EFAULT;
	len = len < SOCK_MAX_LEN ? len : SOCK_MAX_LEN;
	return km_buf_iov(MM(v), gva, len, rd ? KM_ACC_WRITE : KM_ACC_READ, rd, iov, BUF_IOV, n);
}

KM_SYSCALL(sendto)
{
	int fd = (int)a[0], flags = (int)a[3], alen = (int)a[5];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	struct iovec iov[BUF_IOV];
	int n;
	ssize_t got = sock_buf(v, a[1], a[2], false, iov, &n);
	if (got < 0)
		return km_sock_err_first(fd, got);
	struct sockaddr_storage ss;
	if (a[4] != 0) {
		int rc = km_sockaddr_in(MM(v), a[4], alen, &ss);
		if (rc < 0)
			return km_sock_err_first(fd, rc);
	}
	struct msghdr h = {.msg_name = a[4] != 0 ? &ss : NULL,
			   .msg_namelen = a[4] != 0 ? alen : 0,
			   .msg_iov = iov,
			   .msg_iovlen = n};
	if (n > 1)
		return km_host_ret(syscall(SYS_sendmsg, fd, &h, flags));
	return km_host_ret(syscall(SYS_sendto, fd, n == 1 ? iov[0].iov_base : NULL,
				   n == 1 ? iov[0].iov_len : 0, flags, h.msg_name, h.msg_namelen));
}

KM_SYSCALL(recvfrom)
{
	int fd = (int)a[0], flags = (int)a[3];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	struct iovec iov[BUF_IOV];
	int n;
	ssize_t got = sock_buf(v, a[1], a[2], true, iov, &n);
	if (got < 0)
		return km_sock_err_first(fd, got);
	km_sockaddr_out_t o;
	bool want = a[4] != 0;
	if (want) {
		int rc = km_sockaddr_out_prep(MM(v), a[4], a[5], &o);
		if (rc < 0)
			return km_sock_err_first(fd, rc);
	}
	long r;
	if (n > 1) {
		struct msghdr h = {.msg_name = want ? &o.ss : NULL,
				   .msg_namelen = want ? o.len : 0,
				   .msg_iov = iov,
				   .msg_iovlen = n};
		r = km_host_ret(syscall(SYS_recvmsg, fd, &h, flags));
		o.len = h.msg_namelen;
	} else {
		r = km_host_ret(syscall(SYS_recvfrom, fd, n == 1 ? iov[0].iov_base : NULL,
					n == 1 ? iov[0].iov_len : 0, flags, want ? &o.ss : NULL,
					want ? &o.len : NULL));
	}
	if (r < 0 || !want)
		return r;
	return km_sockaddr_out_put(MM(v), &o) < 0 ? -EFAULT : r;
}

static size_t iov_total(const struct msghdr *h)
{
	size_t n = 0;
	for (size_t i = 0; i < h->msg_iovlen; i++)
		n += h->msg_iov[i].iov_len;
	return n;
}

/* One sendmsg; *all tells whether every byte went (sendmmsg stops after a partial one). */
static long do_sendmsg(km_vcpu_t *v, int fd, uint64_t gva, int flags, bool *all)
{
	km_msg_t m;
	int rc = km_msg_in(MM(v), gva, true, &m);
	long r = rc < 0 ? km_sock_err_first(fd, rc) : km_host_ret(syscall(SYS_sendmsg, fd, &m.h, flags));
	*all = r >= 0 && (size_t)r == iov_total(&m.h);
	km_msg_free(&m);
	return r;
}

/* --- fds received with a message ------------------------------------------------------- */

/* The host installed received fds at its lowest free numbers, which may lie past the guest's
 * RLIMIT_NOFILE or among km's own. As Linux's scm_detach_fds does, the guest gets them in order
 * up to the first that it cannot take (past its limit, or refused by km_fd_admit); that one and
 * the rest are closed. Returns how many the guest got, their numbers moved to the front. */
static size_t admit_fds(km_guest_t *g, uint8_t *p, size_t n)
{
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		int fd;
		memcpy(&fd, p + i * sizeof(int), sizeof(int));
		if (kept < i) {
			close(fd);
			continue;
		}
		/* km_fd_admit judges the limit too (and any replacement it makes); it closes what it
		 * refuses. */
		long r = km_fd_admit(g, fd);
		if (r < 0)
			continue;
		int got = (int)r;
		memcpy(p + kept * sizeof(int), &got, sizeof(int));
		kept++;
	}
	return kept;
}

static bool carries_fds(const struct cmsghdr *c)
{
	return c->cmsg_level == SOL_SOCKET && (c->cmsg_type == SCM_RIGHTS || c->cmsg_type == SCM_PIDFD);
}

/* Cuts the fds the guest could not take out of the ancillary data the host wrote: an SCM_RIGHTS
 * message keeps the fds that were installed (cmsg_len shrinks, as Linux writes it) or goes
 * when none was, later messages move up, msg_controllen shrinks and MSG_CTRUNC is set. An
 * SCM_PIDFD that cannot be installed goes without MSG_CTRUNC, as in Linux. */
static void admit_received(km_guest_t *g, struct msghdr *h)
{
	uint8_t *base = h->msg_control;
	size_t len = base != NULL ? h->msg_controllen : 0, off = 0;
	while (len - off >= sizeof(struct cmsghdr)) {
		struct cmsghdr c;
		memcpy(&c, base + off, sizeof(c));
		if (c.cmsg_len < sizeof(c) || c.cmsg_len > len - off)
			break;
		size_t space = CMSG_ALIGN(c.cmsg_len) < len - off ? CMSG_ALIGN(c.cmsg_len) : len - off;
		if (carries_fds(&c)) {
			size_t n = (c.cmsg_len - CMSG_LEN(0)) / sizeof(int);
			size_t kept = admit_fds(g, base + off + CMSG_LEN(0), n);
			if (kept < n) {
				size_t cut = kept > 0 ? CMSG_SPACE(kept * sizeof(int)) : 0;
				if (c.cmsg_type == SCM_RIGHTS)
					h->msg_flags |= MSG_CTRUNC;
				if (kept > 0) {
					c.cmsg_len = CMSG_LEN(kept * sizeof(int));
					memcpy(base + off, &c, sizeof(c));
				}
				memmove(base + off + cut, base + off + space, len - off - space);
				len -= space - cut;
				space = cut;
			}
		}
		off += space;
	}
	if (base != NULL)
		h->msg_controllen = len;
}

/* The guest never learnt of these fds (its msghdr could not be written): close them. */
static void close_received(struct msghdr *h)
{
	uint8_t *base = h->msg_control;
	size_t len = base != NULL ? h->msg_controllen : 0, off = 0;
	while (len - off >= sizeof(struct cmsghdr)) {
		struct cmsghdr c;
		memcpy(&c, base + off, sizeof(c));
		if (c.cmsg_len < sizeof(c) || c.cmsg_len > len - off)
			break;
		for (size_t i = 0; carries_fds(&c) && i < (c.cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int fd;
			memcpy(&fd, base + off + CMSG_LEN(0) + i * sizeof(int), sizeof(int));
			close(fd);
		}
		off += CMSG_ALIGN(c.cmsg_len) < len - off ? CMSG_ALIGN(c.cmsg_len) : len - off;
	}
}

/* One recvmsg; *mflags gets the message's msg_flags (recvmmsg stops after MSG_OOB). */
static long do_recvmsg(km_vcpu_t *v, int fd, uint64_t gva, int flags, int *mflags)
{
	km_msg_t m;
	int rc = km_msg_in(MM(v), gva, false, &m);
	long r = rc < 0 ? km_sock_err_first(fd, rc) : km_host_ret(syscall(SYS_recvmsg, fd, &m.h, flags));
	if (r >= 0)
		admit_received(v->g, &m.h);
	if (r >= 0 && km_msg_out(MM(v), gva, &m) < 0) {
		close_received(&m.h);
		r = -EFAULT;
	}
	*mflags = m.h.msg_flags;
	km_msg_free(&m);
	return r;
}

KM_SYSCALL(sendmsg)
{
	int fd = (int)a[0];
	bool all;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	return do_sendmsg(v, fd, a[1], (int)a[2], &all);
}

KM_SYSCALL(recvmsg)
{
	int fd = (int)a[0], mflags;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	return do_recvmsg(v, fd, a[1], (int)a[2], &mflags);
}

static int put_msg_len(km_vcpu_t *v, uint64_t vec, unsigned int i, long r)
{
	uint32_t len = (uint32_t)r;
	uint64_t at = vec + (uint64_t)i * KM_MMSGHDR_SIZE + KM_MMSGHDR_LEN_OFF;
	return km_copy_to_guest(MM(v), at, &len, sizeof(len)) < 0 ? -EFAULT : 0;
}

/* Message by message, as Linux's own loop goes: an error after the first message ends the batch
 * and the count so far is returned. */
KM_SYSCALL(sendmmsg)
{
	int fd = (int)a[0], flags = (int)a[3];
	unsigned int vlen = (unsigned int)a[2] < KM_IOV_MAX ? (unsigned int)a[2] : KM_IOV_MAX;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	long r = 0;
	unsigned int i;
	for (i = 0; i < vlen; i++) {
		bool all;
		r = do_sendmsg(v, fd, a[1] + (uint64_t)i * KM_MMSGHDR_SIZE, flags, &all);
		if (r >= 0)
			r = put_msg_len(v, a[1], i, r);
		if (r < 0)
			break;
		if (!all) {
			i++;
			break;
		}
	}
	return i > 0 ? (long)i : r;
}

#define NSEC 1000000000l

static struct timespec ts_norm(struct timespec t)
{
	if (t.tv_nsec < 0) {
		t.tv_sec--;
		t.tv_nsec += NSEC;
	} else if (t.tv_nsec >= NSEC) {
		t.tv_sec++;
		t.tv_nsec -= NSEC;
	}
	return t;
}

static struct timespec ts_sub(struct timespec x, struct timespec y)
{
	return ts_norm((struct timespec){x.tv_sec - y.tv_sec, x.tv_nsec - y.tv_nsec});
}

/* recvmmsg's timeout is only looked at between messages (Linux's documented behaviour); *left
 * becomes the time left. True when it has run out. */
static bool mmsg_expired(const struct timespec *end, struct timespec *left)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	*left = ts_sub(*end, now);
	if (left->tv_sec < 0)
		*left = (struct timespec){0, 0};
	return left->tv_sec == 0 && left->tv_nsec == 0;
}

static int mmsg_timeout(km_vcpu_t *v, uint64_t gva, struct timespec *left, struct timespec *end)
{
	if (km_copy_from_guest(MM(v), left, gva, sizeof(*left)) < 0)
		return -EFAULT;
	if (left->tv_sec < 0 || left->tv_nsec < 0 || left->tv_nsec >= NSEC)
		return -EINVAL;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	*end = ts_norm((struct timespec){now.tv_sec + left->tv_sec, now.tv_nsec + left->tv_nsec});
	return 0;
}

static long recv_batch(km_vcpu_t *v, int fd, uint64_t vec, unsigned int vlen, int flags, struct timespec *end,
		       struct timespec *left)
{
	long r = 0;
	unsigned int i = 0;
	while (i < vlen) {
		int mflags;
		r = do_recvmsg(v, fd, vec + (uint64_t)i * KM_MMSGHDR_SIZE, flags & ~MSG_WAITFORONE, &mflags);
		if (r >= 0)
			r = put_msg_len(v, vec, i, r);
		if (r < 0)
			break;
		i++;
		if (flags & MSG_WAITFORONE)
			flags |= MSG_DONTWAIT;
		if ((end != NULL && mmsg_expired(end, left)) || (mflags & MSG_OOB))
			break;
	}
	return i > 0 ? (long)i : r;
}

KM_SYSCALL(recvmmsg)
{
	int fd = (int)a[0];
	unsigned int vlen = (unsigned int)a[2] < KM_IOV_MAX ? (unsigned int)a[2] : KM_IOV_MAX;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	struct timespec left, end, *endp = NULL;
	if (a[4] != 0) {
		int rc = mmsg_timeout(v, a[4], &left, &end);
		if (rc < 0)
			return rc;
		endp = &end;
	}
	long r = recv_batch(v, fd, a[1], vlen, (int)a[3], endp, &left);
	if (r > 0 && endp != NULL && km_copy_to_guest(MM(v), a[4], &left, sizeof(left)) < 0)
		return -EFAULT;
	return r;
}

/* --- socket options ---------------------------------------------------------------------- */

/* Options whose value holds a pointer the host would follow into km's memory. Those km does not
 * translate are refused; classic BPF programs are translated (sockopt_fprog). */
static bool sockopt_untranslated(int level, int name, bool set)
{
	switch (level) {
	case SOL_XDP: /* XDP_UMEM_REG names the umem by address */
		return true;
	case SOL_IP:
		if (set)
			return name == IPT_SO_SET_REPLACE || name == ARPT_SO_SET_REPLACE ||
			       name == EBT_SO_SET_ENTRIES;
		return name == EBT_SO_GET_ENTRIES || name == EBT_SO_GET_INIT_ENTRIES;
	case SOL_IPV6:
		return set && name == IPT_SO_SET_REPLACE;
	case IPPROTO_TCP:
		return !set && name == TCP_ZEROCOPY_RECEIVE;
	default:
		return false;
	}
}

static bool sockopt_is_fprog(int level, int name, size_t len)
{
	if (len != sizeof(struct sock_fprog))
		return false;
	if (level == SOL_SOCKET)
		return name == SO_ATTACH_FILTER || name == SO_ATTACH_REUSEPORT_CBPF;
	/* PACKET_FANOUT_DATA takes a program for PACKET_FANOUT_CBPF, an fd (4 bytes) for eBPF. */
	return level == SOL_PACKET && name == PACKET_FANOUT_DATA;
}

/* Replaces the guest's filter pointer in a copied sock_fprog by a copy of the program. */
static int sockopt_fprog(km_vcpu_t *v, void *opt, struct sock_filter **prog)
{
	struct sock_fprog fp;
	memcpy(&fp, opt, sizeof(fp));
	if (fp.len == 0 || fp.len > BPF_MAXINSNS)
		return -EINVAL;
	*prog = malloc(fp.len * sizeof(**prog));
	if (*prog == NULL)
		return -ENOMEM;
	if (km_copy_from_guest(MM(v), *prog, (uint64_t)(uintptr_t)fp.filter, fp.len * sizeof(**prog)) < 0)
		return -EFAULT;
	fp.filter = *prog;
	memcpy(opt, &fp, sizeof(fp));
	return 0;
}

/* The option value as km hands it to the host: a copy of at most KM_CTL_MAX bytes (Linux's
 * optmem_max), cut at the first inaccessible byte: Linux reads only what an option needs, so a
 * length larger than the value is harmless there too. */
static int sockopt_buf(km_vcpu_t *v, uint64_t gva, size_t len, int access, void **buf, size_t *blen)
{
	len = len < KM_CTL_MAX ? len : KM_CTL_MAX;
	*blen = km_guest_prefix(MM(v), gva, len, access);
	if (len > 0 && *blen == 0)
		return -EFAULT;
	*buf = calloc(1, *blen > 0 ? *blen : 1);
	if (*buf == NULL)
		return -ENOMEM;
	return *blen > 0 && km_copy_from_guest(MM(v), *buf, gva, *blen) < 0 ? -EFAULT : 0;
}

KM_SYSCALL(setsockopt)
{
	int fd = (int)a[0], level = (int)a[1], name = (int)a[2], optlen = (int)a[4];
	if (km_fd_check(fd) < 0)
		return -EBADF;
	if (optlen < 0)
		return -EINVAL;
	if (sockopt_untranslated(level, name, true))
		return km_sock_err_first(fd, -ENOPROTOOPT);
	void *buf = NULL;
	size_t blen;
	struct sock_filter *prog = NULL;
	int rc = sockopt_buf(v, a[3], optlen, KM_ACC_READ, &buf, &blen);
	if (rc == 0 && sockopt_is_fprog(level, name, blen))
		rc = sockopt_fprog(v, buf, &prog);
	long r = rc < 0 ? km_sock_err_first(fd, rc) : 0;
	if (rc == 0)
		r = km_host_ret(syscall(SYS_setsockopt, fd, level, name, a[3] != 0 ? buf : NULL, blen));
	free(prog);
	free(buf);
	return r;
}

/* SO_PEERPIDFD installs a new fd as the option's value: it must fit the guest's table and pass
 * km_fd_admit like any other, or the call fails as Linux's does when the table is full. */
static long peer_pidfd(km_vcpu_t *v, void *buf)
{
	int fd;
	memcpy(&fd, buf, sizeof(fd));
	long r = km_fd_admit(v->g, fd); /* the limit included; closes what it refuses */
	if (r < 0)
		return r;
	fd = (int)r;
	memcpy(buf, &fd, sizeof(fd));
	return 0;
}

/* Some options read their value before answering (IP_MSFILTER, SCTP, ...), so the buffer goes
 * in as well as out. The length goes back even on error: ERANGE answers carry the size needed. */
KM_SYSCALL(getsockopt)
{
	int fd = (int)a[0], level = (int)a[1], name = (int)a[2];
	int32_t len;
	if (km_fd_check(fd) < 0)
		return -EBADF;
	if (sockopt_untranslated(level, name, false))
		return km_sock_err_first(fd, -ENOPROTOOPT);
	if (km_copy_from_guest(MM(v), &len, a[4], sizeof(len)) < 0 ||
	    km_guest_check(MM(v), a[4], sizeof(len), KM_ACC_WRITE) < 0)
		return km_sock_err_first(fd, -EFAULT);
	if (len < 0)
		return km_sock_err_first(fd, -EINVAL);
	void *buf = NULL;
	size_t blen;
	int rc = sockopt_buf(v, a[3], (size_t)len, KM_ACC_WRITE, &buf, &blen);
	long r = rc < 0 ? km_sock_err_first(fd, rc) : 0;
	socklen_t hlen = blen;
	if (rc == 0)
		r = km_host_ret(syscall(SYS_getsockopt, fd, level, name, buf, &hlen));
	bool pidfd = r >= 0 && level == SOL_SOCKET && name == SO_PEERPIDFD && hlen == sizeof(int);
	if (pidfd)
		r = peer_pidfd(v, buf);
	if (r >= 0 && km_copy_to_guest(MM(v), a[3], buf, hlen < blen ? hlen : blen) < 0) {
		if (pidfd)
			close(*(int *)buf);
		r = -EFAULT;
	}
	len = (int32_t)hlen;
	if ((r >= 0 || (rc == 0 && hlen != blen)) && km_copy_to_guest(MM(v), a[4], &len, sizeof(len)) < 0)
		r = -EFAULT;
	free(buf);
	return r;
}

/* --- table ------------------------------------------------------------------------------- */

/* clang-format off */
#define DEF(name, fmt) {SYS_##name, #name, sys_##name, fmt}
/* clang-format on */

const km_sys_def_t km_sys_net_defs[] = {
    DEF(socket, "ddd"),	      DEF(socketpair, "dddp"),	DEF(bind, "fpd"),	 DEF(connect, "fpd"),
    DEF(listen, "fd"),	      DEF(accept, "fpp"),	DEF(accept4, "fppx"),	 DEF(getsockname, "fpp"),
    DEF(getpeername, "fpp"),  DEF(sendto, "fpuxpd"),	DEF(recvfrom, "fpuxpp"), DEF(sendmsg, "fpx"),
    DEF(recvmsg, "fpx"),      DEF(sendmmsg, "fpux"),	DEF(recvmmsg, "fpuxp"),	 DEF(shutdown, "fd"),
    DEF(setsockopt, "fddpd"), DEF(getsockopt, "fddpp"), {0, NULL, NULL, NULL},
};
