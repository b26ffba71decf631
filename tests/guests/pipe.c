/*
 * Pipes: pipe2 with flags, write then read, poll readiness (POLLIN/POLLOUT/POLLHUP, timeouts),
 * O_NONBLOCK EAGAIN on empty and full pipes, EOF after the write end closes, EPIPE is not tested
 * (it would raise SIGPIPE).
 */
// E2E: run 0
#include <fcntl.h>
#include <poll.h>
#include <sys/syscall.h>
#include <time.h>

#include "check.h"

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

int main(void)
{
	int p[2], q[2], i;
	char buf[256];
	struct pollfd pfd[2];
	struct timespec t0;
	static char big[1 << 16];
	long total = 0, n;

	CHECK_SYS(pipe(p), "pipe");
	CHECK(p[0] >= 0 && p[1] >= 0 && p[0] != p[1], "pipe returns two fds");
	CHECK_EQ(write(p[1], "through the pipe", 16), 16, "write to pipe");
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(read(p[0], buf, sizeof(buf)), 16, "read from pipe");
	CHECK_STR(buf, "through the pipe", "pipe data");
	CHECK_ERR(write(p[0], "x", 1), EBADF, "write to the read end fails EBADF");
	close(p[0]);
	close(p[1]);

	CHECK_SYS(pipe2(q, O_CLOEXEC | O_NONBLOCK), "pipe2(O_CLOEXEC|O_NONBLOCK)");
	CHECK_EQ(fcntl(q[0], F_GETFD), FD_CLOEXEC, "pipe2 read end has FD_CLOEXEC");
	CHECK_EQ(fcntl(q[1], F_GETFD), FD_CLOEXEC, "pipe2 write end has FD_CLOEXEC");
	CHECK(fcntl(q[0], F_GETFL) & O_NONBLOCK, "pipe2 read end is O_NONBLOCK");
	CHECK_ERR(read(q[0], buf, 1), EAGAIN, "read from empty non-blocking pipe fails EAGAIN");

	pfd[0].fd = q[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = q[1];
	pfd[1].events = POLLOUT;
	CHECK_EQ(poll(pfd, 1, 0), 0, "poll(timeout 0) on empty pipe: nothing ready");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(poll(pfd, 1, 30), 0, "poll(timeout 30ms) on empty pipe times out");
	CHECK(ms_since(&t0) >= 25, "poll timeout actually waited");
	CHECK_EQ(poll(pfd, 2, 0), 1, "poll: only the write end is ready");
	CHECK_EQ(pfd[1].revents, POLLOUT, "write end revents == POLLOUT");
	CHECK_EQ(pfd[0].revents, 0, "read end revents == 0");

	CHECK_EQ(write(q[1], "abc", 3), 3, "write 3 bytes");
	CHECK_EQ(poll(pfd, 2, -1), 2, "poll(-1): both ends ready after write");
	CHECK_EQ(pfd[0].revents, POLLIN, "read end revents == POLLIN");
	CHECK_EQ(syscall(SYS_poll, pfd, 1, 0), 1, "raw poll syscall agrees");
	CHECK_EQ(read(q[0], buf, 2), 2, "partial read");
	CHECK_EQ(read(q[0], buf + 2, 10), 1, "read the rest");
	CHECK(memcmp(buf, "abc", 3) == 0, "data in order");

	/* Fill the pipe until EAGAIN, then drain it. */
	for (i = 0; i < (int)sizeof(big); i++)
		big[i] = (char)i;
	while ((n = write(q[1], big, sizeof(big))) > 0)
		total += n;
	CHECK(n == -1 && errno == EAGAIN, "write to a full non-blocking pipe fails EAGAIN");
	CHECK(total >= 4096, "pipe buffered at least a page before filling up");
	pfd[1].revents = 0;
	CHECK_EQ(poll(pfd + 1, 1, 0), 0, "poll: full pipe is not writable");
	while (total > 0 && (n = read(q[0], big, sizeof(big))) > 0)
		total -= n;
	CHECK_EQ(total, 0, "drained everything that was written");
	CHECK(big[1] == 1 && big[255] == (char)255, "drained data has the pattern");

	CHECK_SYS(close(q[1]), "close write end");
	CHECK_EQ(poll(pfd, 1, 1000), 1, "poll on read end after writer closed");
	CHECK(pfd[0].revents & POLLHUP, "read end gets POLLHUP");
	CHECK_EQ(read(q[0], buf, sizeof(buf)), 0, "read returns 0 (EOF) after writer closed");
	CHECK_SYS(close(q[0]), "close read end");
	return check_done();
}
