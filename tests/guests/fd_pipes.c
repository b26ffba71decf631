/*
 * Pipes, FIFOs and unix sockets across a snapshot (tests/e2e/fd_pipes.sh).
 *
 *   fd_pipes snap DIR [SERVER]   builds the state, snapshots itself to DIR/fd_pipes.snap (km exits);
 *                                `km DIR/fd_pipes.snap` resumes it and the copy checks everything,
 *                                then serves one client on DIR/listen.sock ("listening ready")
 *   fd_pipes keep DIR [SERVER]   the same with KM_SNAPSHOT_KEEP_RUNNING: the original checks that
 *                                the snapshot took none of its buffered bytes; no client is served
 *   fd_pipes scm DIR             a socket with an fd in flight (SCM_RIGHTS): the snapshot must
 *                                fail, leak no fd, and leave the message and its fd in the queue
 *
 * fds 3 and 4, if open, are the read end of a pipe whose writer is outside (it wrote "from
 * outside" and stays) and the write end of a pipe whose reader is outside. SERVER: a unix stream
 * socket path of an outside server that sends "from server" and stays connected. After resume
 * those peers are gone: reads give the saved bytes then end of file, writes EPIPE.
 * Natively the snapshot hypercall fails with ENOSYS: exit 77.
 */
// E2E: usage 2
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "snap_common.h"

#define BIG_CAP (256 << 10)
#define BIG_LEN ((200 << 10) + 3)

static struct {
	int p_both[2], p_rd, p_wr, p_big[2], fifo_r, fifo_w;
	int st[2], dg[2], sq[2], sh[2], lsn, srv, dsrv, dcli;
	bool outside_rd, outside_wr;
	char dir[1024], fifo[1100], lpath[1100], dpath[1100];
} s;

static unsigned char pat(size_t i)
{
	return (unsigned char)(i * 131 + (i >> 9));
}

static void put(int fd, const void *p, size_t n, const char *what)
{
	CHECK_EQ(write(fd, p, n), (long)n, "write %s", what);
}

static void build(const char *server)
{
	s.outside_rd = fcntl(3, F_GETFD) >= 0; /* before this program opens anything */
	s.outside_wr = fcntl(4, F_GETFD) >= 0;
	CHECK_SYS(pipe(s.p_both), "pipe with both ends");
	put(s.p_both[1], "hello pipe", 10, "into the pipe with both ends");

	int p[2];
	CHECK_SYS(pipe(p), "pipe for a read end only");
	put(p[1], "reader's bytes", 14, "into the read-only pipe");
	close(p[1]);
	s.p_rd = p[0];
	CHECK_SYS(pipe(p), "pipe for a write end only");
	close(p[0]);
	s.p_wr = p[1];

	CHECK_SYS(pipe2(s.p_big, O_NONBLOCK), "pipe to fill");
	CHECK_EQ(fcntl(s.p_big[1], F_SETPIPE_SZ, BIG_CAP), BIG_CAP, "F_SETPIPE_SZ 256 KiB");
	static unsigned char big[BIG_LEN];
	for (size_t i = 0; i < BIG_LEN; i++)
		big[i] = pat(i);
	put(s.p_big[1], big, BIG_LEN - 3, "200 KiB into the big pipe");
	for (size_t i = BIG_LEN - 3; i < BIG_LEN; i++) /* small writes: more than one buffer slot */
		put(s.p_big[1], &big[i], 1, "one byte");

	snprintf(s.fifo, sizeof(s.fifo), "%s/f.fifo", s.dir);
	unlink(s.fifo);
	CHECK_SYS(mkfifo(s.fifo, 0600), "mkfifo");
	CHECK_SYS(s.fifo_r = open(s.fifo, O_RDONLY | O_NONBLOCK), "open the FIFO for reading");
	CHECK_SYS(s.fifo_w = open(s.fifo, O_WRONLY), "open the FIFO for writing");
	put(s.fifo_w, "fifo bytes", 10, "into the FIFO");

	CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM, 0, s.st), "stream socketpair");
	put(s.st[0], "ping stream", 11, "stream a->b");
	put(s.st[1], "pong", 4, "stream b->a");
	int sb = 65536;
	CHECK_SYS(setsockopt(s.st[0], SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb)), "SO_SNDBUF");
	CHECK_SYS(socketpair(AF_UNIX, SOCK_DGRAM, 0, s.dg), "dgram socketpair");
	CHECK_SYS(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s.sq), "seqpacket socketpair");
	const char *msgs[] = {"d1", "datagram two", "third"};
	for (int i = 0; i < 3; i++) {
		put(s.dg[0], msgs[i], strlen(msgs[i]), "datagram a->b");
		put(s.sq[0], msgs[i], strlen(msgs[i]), "seqpacket a->b");
	}
	put(s.dg[1], "back", 4, "datagram b->a");
	put(s.sq[1], "back", 4, "seqpacket b->a");
	int on = 1;
	CHECK_SYS(setsockopt(s.dg[1], SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), "SO_PASSCRED");

	CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM, 0, s.sh), "stream socketpair to shut down");
	put(s.sh[0], "last words", 10, "before shutdown");
	CHECK_SYS(shutdown(s.sh[0], SHUT_WR), "shutdown(SHUT_WR)");

	snprintf(s.lpath, sizeof(s.lpath), "%s/listen.sock", s.dir);
	unlink(s.lpath);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%.100s", s.lpath);
	CHECK_SYS(s.lsn = socket(AF_UNIX, SOCK_STREAM, 0), "listening socket");
	CHECK_SYS(bind(s.lsn, (struct sockaddr *)&a, sizeof(a)), "bind %s", "listen.sock");
	CHECK_SYS(listen(s.lsn, 16), "listen");

	/* a bound datagram socket and a client connected to it one way, two datagrams queued */
	snprintf(s.dpath, sizeof(s.dpath), "%s/dgram.sock", s.dir);
	unlink(s.dpath);
	struct sockaddr_un da = {.sun_family = AF_UNIX};
	snprintf(da.sun_path, sizeof(da.sun_path), "%.100s", s.dpath);
	CHECK_SYS(s.dsrv = socket(AF_UNIX, SOCK_DGRAM, 0), "datagram server");
	CHECK_SYS(bind(s.dsrv, (struct sockaddr *)&da, sizeof(da)), "bind dgram.sock");
	CHECK_SYS(s.dcli = socket(AF_UNIX, SOCK_DGRAM, 0), "datagram client");
	CHECK_SYS(connect(s.dcli, (struct sockaddr *)&da, sizeof(da)), "connect to dgram.sock");
	put(s.dcli, "q1", 2, "datagram to the server");
	put(s.dcli, "second q", 8, "datagram to the server");

	s.srv = -1;
	if (server != NULL) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%.100s", server);
		CHECK_SYS(s.srv = socket(AF_UNIX, SOCK_STREAM, 0), "client socket");
		CHECK_SYS(connect(s.srv, (struct sockaddr *)&sa, sizeof(sa)), "connect to the outside server");
		char c;
		CHECK_EQ(recv(s.srv, &c, 1, MSG_PEEK), 1, "the server's bytes arrived");
	}
	if (s.outside_rd) {
		int n = 0;
		for (int i = 0; i < 1000 && ioctl(3, FIONREAD, &n) == 0 && n < 12; i++)
			usleep(10000); /* waits for the outside writer to have written: not a timed check */
		CHECK_EQ(n, 12, "fd 3 has the outside writer's 12 bytes");
	}
}

static void expect(int fd, const char *want, const char *what)
{
	char buf[256] = {0};
	size_t n = strlen(want);
	CHECK_EQ(read(fd, buf, sizeof(buf) - 1), (long)n, "%s: length", what);
	CHECK_STR(buf, want, "%s", what);
}

static void expect_msg(int fd, const char *want, const char *what)
{
	char buf[256] = {0};
	CHECK_EQ(recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT), (long)strlen(want), "%s: one message", what);
	CHECK_STR(buf, want, "%s", what);
}

/* End of file if the peer is gone (resumed), else no data yet (the original's peer lives on). */
static void expect_end(int fd, bool gone, const char *what)
{
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	char c;
	errno = 0;
	ssize_t r = read(fd, &c, 1);
	int e = errno;
	fcntl(fd, F_SETFL, fl);
	if (gone)
		CHECK_EQ(r, 0, "%s: end of file", what);
	else
		CHECK(r < 0 && e == EAGAIN, "%s: nothing more yet (%zd, %s)", what, r, strerror(e));
}

static void check_pipes(bool resumed)
{
	expect(s.p_both[0], "hello pipe", "pipe with both ends: its bytes");
	put(s.p_both[1], "more", 4, "into the pipe again");
	expect(s.p_both[0], "more", "pipe with both ends: new bytes");
	CHECK_EQ(fcntl(s.p_both[0], F_GETFL) & O_ACCMODE, O_RDONLY, "read end is read-only");
	CHECK_EQ(fcntl(s.p_both[1], F_GETFL) & O_ACCMODE, O_WRONLY, "write end is write-only");

	expect(s.p_rd, "reader's bytes", "read end only: its bytes");
	expect_end(s.p_rd, true, "read end only");
	CHECK_ERR(write(s.p_wr, "x", 1), EPIPE, "write end only: EPIPE");

	CHECK_EQ(fcntl(s.p_big[0], F_GETPIPE_SZ), BIG_CAP, "big pipe keeps its capacity");
	CHECK_EQ(fcntl(s.p_big[0], F_GETFL) & O_NONBLOCK, O_NONBLOCK, "big pipe's read end is nonblocking");
	static unsigned char got[BIG_LEN + 16];
	size_t n = 0;
	ssize_t r;
	while ((r = read(s.p_big[0], got + n, sizeof(got) - n)) > 0)
		n += (size_t)r;
	CHECK_EQ(n, BIG_LEN, "big pipe: every byte");
	size_t bad = 0;
	for (size_t i = 0; i < n; i++)
		bad += got[i] != pat(i);
	CHECK_EQ(bad, 0, "big pipe: bytes in order");

	CHECK_EQ(fcntl(s.fifo_r, F_GETFL) & O_NONBLOCK, O_NONBLOCK, "FIFO reader is nonblocking");
	expect(s.fifo_r, "fifo bytes", "FIFO: its bytes");
	put(s.fifo_w, "again", 5, "into the FIFO again");
	expect(s.fifo_r, "again", "FIFO: new bytes");
	struct stat a, b;
	CHECK(stat(s.fifo, &a) == 0 && fstat(s.fifo_r, &b) == 0 && a.st_ino == b.st_ino, "FIFO is the file at its path");

	if (s.outside_rd) {
		expect(3, "from outside", "pipe from outside: its bytes");
		expect_end(3, resumed, "pipe from outside");
	}
	if (s.outside_wr) {
		if (resumed)
			CHECK_ERR(write(4, "x", 1), EPIPE, "pipe to outside: EPIPE");
		else
			CHECK_EQ(write(4, "x", 1), 1, "pipe to outside: its reader is there");
	}
}

static void check_sockets(bool resumed)
{
	int t = 0;
	socklen_t l = sizeof(t);
	expect(s.st[1], "ping stream", "stream a->b");
	expect(s.st[0], "pong", "stream b->a");
	put(s.st[1], "new", 3, "stream after");
	expect(s.st[0], "new", "stream pair still connected");
	CHECK(getsockopt(s.st[0], SOL_SOCKET, SO_SNDBUF, &t, &l) == 0 && t == 131072, "SO_SNDBUF kept (%d)", t);

	const char *msgs[] = {"d1", "datagram two", "third"};
	for (int i = 0; i < 3; i++) {
		expect_msg(s.dg[1], msgs[i], "datagram a->b, boundary kept");
		expect_msg(s.sq[1], msgs[i], "seqpacket a->b, boundary kept");
	}
	expect_msg(s.dg[0], "back", "datagram b->a");
	expect_msg(s.sq[0], "back", "seqpacket b->a");
	put(s.dg[0], "x", 1, "datagram after");
	expect_msg(s.dg[1], "x", "dgram pair still connected");
	t = 0;
	CHECK(getsockopt(s.sq[0], SOL_SOCKET, SO_TYPE, &t, &l) == 0 && t == SOCK_SEQPACKET, "seqpacket type");
	CHECK(getsockopt(s.dg[1], SOL_SOCKET, SO_PASSCRED, &t, &l) == 0 && t == 1, "SO_PASSCRED kept");

	expect(s.sh[1], "last words", "shut down pair: the bytes");
	expect_end(s.sh[1], true, "shut down pair");
	put(s.sh[1], "reply", 5, "the other way still open");
	expect(s.sh[0], "reply", "shut down pair: the other way");
	CHECK_ERR(send(s.sh[0], "x", 1, MSG_NOSIGNAL), EPIPE, "shut down pair: no more writing");

	t = 0;
	CHECK(getsockopt(s.lsn, SOL_SOCKET, SO_ACCEPTCONN, &t, &l) == 0 && t == 1, "listening socket listens");
	struct sockaddr_un a;
	socklen_t al = sizeof(a);
	CHECK(getsockname(s.lsn, (struct sockaddr *)&a, &al) == 0 && strcmp(a.sun_path, s.lpath) == 0,
	      "listening socket's name");

	expect_msg(s.dsrv, "q1", "bound datagram socket: first datagram");
	expect_msg(s.dsrv, "second q", "bound datagram socket: second datagram");
	put(s.dcli, "q3", 2, "the client is still connected to the server");
	expect_msg(s.dsrv, "q3", "bound datagram socket: a new datagram");
	al = sizeof(a);
	CHECK(getpeername(s.dcli, (struct sockaddr *)&a, &al) == 0 && strcmp(a.sun_path, s.dpath) == 0,
	      "datagram client's peer");

	if (s.srv >= 0) {
		expect(s.srv, "from server", "connected to outside: its bytes");
		expect_end(s.srv, resumed, "connected to outside");
		if (resumed)
			CHECK_ERR(send(s.srv, "x", 1, MSG_NOSIGNAL), EPIPE, "connected to outside: EPIPE");
	}
}

static void serve_one(void)
{
	printf("listening ready\n");
	fflush(stdout);
	int c;
	CHECK_SYS(c = accept(s.lsn, NULL, NULL), "accept a new client after resume");
	char buf[64] = {0};
	CHECK_SYS(read(c, buf, sizeof(buf) - 1), "read the client's line");
	char reply[128];
	snprintf(reply, sizeof(reply), "hi %s", buf);
	put(c, reply, strlen(reply), "reply to the client");
	close(c);
}

/* An fd in flight in a queue: the snapshot fails, no fd leaks, the message and its fd stay. */
static int scm_mode(void)
{
	int sv[2];
	CHECK_SYS(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), "socketpair");
	int devnull = open("/dev/null", O_RDONLY);
	char ctl[CMSG_SPACE(sizeof(int))] = {0};
	struct iovec iov = {"m", 1};
	struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &devnull, sizeof(int));
	CHECK_EQ(sendmsg(sv[0], &m, 0), 1, "send an fd");
	close(devnull);
	int probe = dup(0);
	close(probe);
	long r = snap_take("fd_pipes scm", KM_SNAPSHOT_KEEP_RUNNING, NULL, NULL);
	if (r == -ENOSYS)
		snap_not_under_km();
	CHECK(r < 0, "the snapshot fails (%ld)", r);
	int after = dup(0);
	CHECK_EQ(after, probe, "no fd leaked by the snapshot");
	close(after);
	char buf[4];
	memset(ctl, 0, sizeof(ctl));
	m.msg_iov->iov_base = buf;
	m.msg_controllen = sizeof(ctl);
	CHECK_EQ(recvmsg(sv[1], &m, MSG_DONTWAIT), 1, "the message is still queued");
	c = CMSG_FIRSTHDR(&m);
	CHECK(c != NULL && c->cmsg_type == SCM_RIGHTS, "with its fd");
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		printf("usage: fd_pipes snap|keep|scm DIR [SERVER]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(s.dir, sizeof(s.dir), "%s", argv[2]);
	if (strcmp(argv[1], "scm") == 0)
		return scm_mode();
	bool keep = strcmp(argv[1], "keep") == 0;
	build(argc > 3 ? argv[3] : NULL);
	char snap[1200];
	snprintf(snap, sizeof(snap), "%s/fd_pipes.snap", s.dir);
	long r = snap_take("fd_pipes", keep ? KM_SNAPSHOT_KEEP_RUNNING : 0, snap, NULL);
	if (r != KM_SNAPSHOT_TAKEN && r != KM_SNAPSHOT_RESUMED)
		snap_failed(r);
	bool resumed = r == KM_SNAPSHOT_RESUMED;
	printf("%s\n", resumed ? "RESUMED" : "ORIGINAL");
	check_pipes(resumed);
	check_sockets(resumed);
	if (resumed && !keep)
		serve_one();
	return check_done();
}
