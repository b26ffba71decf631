/*
 * Hostile guest: fds received with a message (SCM_RIGHTS, SCM_PIDFD, SO_PEERPIDFD) when the fd
 * table is full must not land past the guest's RLIMIT_NOFILE or among km's own fds (1000 up):
 * as in Linux, the fds that do not fit are not installed, the SCM_RIGHTS message is cut to those
 * that were and MSG_CTRUNC is set (issue 6, defect 7). Also: km's fds stay out of reach (fcntl,
 * dup2, close_range on 1000...) and none leaks (the /proc/self/fd count does not grow).
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

#ifndef SO_PASSPIDFD
#define SO_PASSPIDFD 76
#endif
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif
#ifndef SCM_PIDFD
#define SCM_PIDFD 0x04
#endif

#define KM_FDS 1000 /* km keeps its own fds from here up */
#define NSEND 3

static DIR *proc_fd; /* opened before the table fills up */

static int proc_fd_count(void)
{
	int n = 0;
	rewinddir(proc_fd);
	while (readdir(proc_fd) != NULL)
		n++;
	return n;
}

static int send_fds(int sock, const int *fds, int n)
{
	char data = 'x';
	struct iovec iov = {&data, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int) * NSEND)];
		struct cmsghdr align;
	} u;
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			   .msg_controllen = CMSG_SPACE(sizeof(int) * n)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(sock, &m, 0) == 1 ? 0 : -1;
}

typedef struct got {
	int flags, nfds, fds[16];
	size_t controllen;
	int bad_cmsg; /* a cmsg carrying fds that is not SCM_RIGHTS */
} got_t;

/* Walks what a receive wrote back. */
static void parse(struct msghdr *m, got_t *g)
{
	memset(g, 0, sizeof(*g));
	g->flags = m->msg_flags;
	g->controllen = m->msg_controllen;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c != NULL; c = CMSG_NXTHDR(m, c)) {
		if (c->cmsg_level != SOL_SOCKET || (c->cmsg_type != SCM_RIGHTS && c->cmsg_type != SCM_PIDFD))
			continue;
		int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < n && g->nfds < 16; i++)
			memcpy(&g->fds[g->nfds++], CMSG_DATA(c) + i * sizeof(int), sizeof(int));
		if (c->cmsg_type == SCM_RIGHTS && c->cmsg_len != CMSG_LEN(n * sizeof(int)))
			g->bad_cmsg = 1;
	}
}

static int recv_fds(int sock, int flags, bool mmsg, got_t *g)
{
	char data;
	struct iovec iov = {&data, 1};
	union {
		char buf[CMSG_SPACE(sizeof(int) * NSEND) + CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct mmsghdr mm = {.msg_hdr = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
					 .msg_controllen = sizeof(u.buf)}};
	long r = mmsg ? syscall(SYS_recvmmsg, sock, &mm, 1, flags, NULL) : recvmsg(sock, &mm.msg_hdr, flags);
	if (r < 0)
		return -1;
	parse(&mm.msg_hdr, g);
	return 0;
}

static bool all_below(const got_t *g, int limit)
{
	for (int i = 0; i < g->nfds; i++)
		if (g->fds[i] < 0 || g->fds[i] >= limit)
			return false;
	return true;
}

/* Fills every free fd below `limit` with a copy of `fd`. */
static void fill(int fd, int limit)
{
	for (int i = 0; i < limit; i++)
		if (fcntl(i, F_GETFD) < 0)
			dup2(fd, i);
}

static void full_table(int sp[2], int limit, const char *what)
{
	int send[NSEND] = {sp[0], sp[0], sp[1]};
	got_t g;
	int before = proc_fd_count();
	CHECK(send_fds(sp[0], send, NSEND) == 0, "%s: sent %d fds", what, NSEND);
	CHECK(recv_fds(sp[1], 0, false, &g) == 0, "%s: recvmsg with a full table", what);
	CHECK(g.flags & MSG_CTRUNC, "%s: MSG_CTRUNC set", what);
	CHECK_EQ(g.nfds, 0, "%s: no fd installed", what);
	CHECK_EQ(g.controllen, 0, "%s: no control message left", what);
	CHECK_EQ(proc_fd_count(), before, "%s: no fd leaked (/proc/self/fd count)", what);
	CHECK(all_below(&g, limit), "%s: nothing at or above the limit", what);
}

static void partial(int sp[2], int limit, int flags, bool mmsg, const char *what)
{
	int send[NSEND] = {sp[0], sp[0], sp[1]};
	got_t g;
	close(limit - 1);
	close(limit - 2);
	int before = proc_fd_count();
	CHECK(send_fds(sp[0], send, NSEND) == 0, "%s: sent %d fds", what, NSEND);
	CHECK(recv_fds(sp[1], flags, mmsg, &g) == 0, "%s: received with room for 2", what);
	CHECK(g.flags & MSG_CTRUNC, "%s: MSG_CTRUNC set", what);
	CHECK_EQ(g.nfds, 2, "%s: the 2 fds that fit installed", what);
	CHECK(!g.bad_cmsg, "%s: cmsg_len is CMSG_LEN(2 fds)", what);
	CHECK_EQ(g.controllen, CMSG_SPACE(2 * sizeof(int)), "%s: msg_controllen cut to 2 fds", what);
	CHECK(all_below(&g, limit), "%s: both below the limit", what);
	CHECK_EQ(proc_fd_count(), before + 2, "%s: just those 2 more fds (/proc/self/fd count)", what);
	for (int i = 0; i < g.nfds; i++) {
		int fdf = fcntl(g.fds[i], F_GETFD);
		CHECK(fdf >= 0, "%s: fd %d usable", what, i);
		CHECK_EQ(!!(fdf & FD_CLOEXEC), !!(flags & MSG_CMSG_CLOEXEC), "%s: fd %d close-on-exec as asked", what, i);
	}
}

static void pidfds(int sp[2], int limit)
{
	int one = 1, fd = -1;
	socklen_t len = sizeof(fd);
	CHECK_ERR(getsockopt(sp[1], SOL_SOCKET, SO_PEERPIDFD, &fd, &len), EMFILE, "SO_PEERPIDFD with a full table");
	if (setsockopt(sp[1], SOL_SOCKET, SO_PASSPIDFD, &one, sizeof(one)) == 0) {
		int send[1] = {sp[0]};
		got_t g;
		int before = proc_fd_count();
		CHECK(send_fds(sp[0], send, 1) == 0, "SCM_PIDFD: sent");
		CHECK(recv_fds(sp[1], 0, false, &g) == 0, "SCM_PIDFD: received with a full table");
		CHECK_EQ(g.nfds, 0, "SCM_PIDFD: no fd installed");
		CHECK_EQ(proc_fd_count(), before, "SCM_PIDFD: no fd leaked");
		one = 0;
		setsockopt(sp[1], SOL_SOCKET, SO_PASSPIDFD, &one, sizeof(one));
	}
	close(limit - 1);
	len = sizeof(fd);
	/* The pidfd names km's process: km_fd_admit may refuse it (EACCES). */
	long r = getsockopt(sp[1], SOL_SOCKET, SO_PEERPIDFD, &fd, &len);
	CHECK((r == 0 && fd == limit - 1) || (r < 0 && errno == EACCES), "SO_PEERPIDFD with one free slot takes it");
}

/* km's own fds: not reachable by number whatever the guest does. */
static void km_fds(void)
{
	int bad = 0;
	for (int fd = KM_FDS; fd < KM_FDS + 16; fd++)
		bad += fcntl(fd, F_GETFD) >= 0 || errno != EBADF;
	CHECK_EQ(bad, 0, "fcntl(F_GETFD) on 1000..1015 is EBADF");
	bad = 0;
	for (int fd = KM_FDS; fd < KM_FDS + 16; fd++)
		bad += dup2(1, fd) >= 0;
	CHECK_EQ(bad, 0, "dup2 onto 1000..1015 refused");
	CHECK_SYS(syscall(SYS_close_range, KM_FDS, KM_FDS + 64, 0), "close_range over 1000..1064");
	CHECK_SYS(write(1, "", 0), "km still serves syscalls");
}

int main(void)
{
	int sp[2];
	CHECK_SYS(socketpair(AF_UNIX, SOCK_DGRAM, 0, sp), "socketpair");
	int devnull = open("/dev/null", O_RDONLY);
	proc_fd = opendir("/proc/self/fd");
	CHECK(proc_fd != NULL, "opendir /proc/self/fd");

	/* A lowered limit. */
	struct rlimit rl = {16, KM_FDS};
	CHECK_SYS(setrlimit(RLIMIT_NOFILE, &rl), "RLIMIT_NOFILE lowered to 16");
	fill(devnull, 16);
	full_table(sp, 16, "limit 16");
	partial(sp, 16, 0, false, "recvmsg");
	fill(devnull, 16);
	partial(sp, 16, MSG_CMSG_CLOEXEC, false, "recvmsg MSG_CMSG_CLOEXEC");
	fill(devnull, 16);
	partial(sp, 16, 0, true, "recvmmsg");
	fill(devnull, 16);
	partial(sp, 16, MSG_CMSG_CLOEXEC, true, "recvmmsg MSG_CMSG_CLOEXEC");
	fill(devnull, 16);
	pidfds(sp, 16);

	/* The whole table as km gives it (the limit is km's reserved base): the fds the host
	 * installs next are km's numbers. */
	for (int fd = 16; fd < KM_FDS; fd++)
		close(fd);
	rl = (struct rlimit){KM_FDS, KM_FDS};
	CHECK_SYS(setrlimit(RLIMIT_NOFILE, &rl), "RLIMIT_NOFILE back to %d", KM_FDS);
	fill(devnull, KM_FDS);
	full_table(sp, KM_FDS, "full table");
	partial(sp, KM_FDS, 0, false, "full table recvmsg");
	fill(devnull, KM_FDS);
	partial(sp, KM_FDS, 0, true, "full table recvmmsg");
	km_fds();
	return check_done();
}
