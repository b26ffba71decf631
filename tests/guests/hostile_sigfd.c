/*
 * Hostile guest: signalfd abused (issue 7, "a new fd kind comes with a test"). km's signalfd is a
 * host eventfd that km keeps ready while a signal it reads is pending (km/sys/km_sigfd.c); the
 * guest must not be able to reach the eventfd underneath (write to it, read its counter, make
 * km block on it) or km's own fds, and the table of KM_MAX_SIGFDS (64) must reap closed ones.
 * Expected errnos are Linux's for a signalfd: write EINVAL, a read shorter than a record EINVAL,
 * mmap ENODEV, ioctl ENOTTY, pread ESPIPE.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <termios.h>

#include "check.h"

#define KM_MAX_SIGFDS 64

static int sfd_new(int sig)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, sig);
	return signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC);
}

static int readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static void abuse_one(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigprocmask(SIG_BLOCK, &m, NULL);
	int sfd = sfd_new(SIGUSR1);
	CHECK(sfd >= 0, "a signalfd for SIGUSR1");
	uint64_t n = 1;
	struct signalfd_siginfo rec;
	CHECK_ERR(write(sfd, &n, 8), EINVAL, "write 8 bytes to a signalfd");
	n = 0xfffffffffffffffeULL;
	CHECK_ERR(write(sfd, &n, 8), EINVAL, "write a near-overflow count to a signalfd");
	struct iovec iv = {.iov_base = &n, .iov_len = 8};
	CHECK_ERR(writev(sfd, &iv, 1), EINVAL, "writev to a signalfd");
	CHECK_ERR(pwrite(sfd, &n, 8, 0), ESPIPE, "pwrite to a signalfd");
	CHECK(!readable(sfd), "nothing pending: not readable after the writes");
	CHECK_ERR(read(sfd, &rec, sizeof(rec)), EAGAIN, "nothing pending: read says EAGAIN");
	char tiny[8];
	CHECK_ERR(read(sfd, tiny, sizeof(tiny)), EINVAL, "read with an 8-byte buffer");
	CHECK_ERR(read(sfd, tiny, 1), EINVAL, "read with a 1-byte buffer");
	iv.iov_base = tiny;
	iv.iov_len = sizeof(tiny);
	CHECK(readv(sfd, &iv, 1) < 0, "readv of 8 bytes does not return the eventfd's counter");
	CHECK_ERR(pread(sfd, &rec, sizeof(rec), 0), ESPIPE, "pread on a signalfd");
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_SHARED, sfd, 0) == MAP_FAILED && errno == ENODEV,
	      "mmap of a signalfd: ENODEV");
	CHECK(mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, sfd, 0) == MAP_FAILED && errno == ENODEV,
	      "private mmap of a signalfd: ENODEV");
	struct termios t;
	CHECK_ERR(ioctl(sfd, TCGETS, &t), ENOTTY, "ioctl TCGETS on a signalfd");
	int avail = -1;
	CHECK_ERR(ioctl(sfd, FIONREAD, &avail), ENOTTY, "ioctl FIONREAD on a signalfd");

	/* A signal arrives: readable, one record, then not readable again. */
	CHECK_SYS(kill(getpid(), SIGUSR1), "kill(self, SIGUSR1)");
	CHECK(readable(sfd), "readable with SIGUSR1 pending");
	CHECK_ERR(read(sfd, tiny, sizeof(tiny)), EINVAL, "a short read with a signal pending: EINVAL");
	CHECK(readable(sfd), "still readable after the short read (nothing taken)");
	CHECK_EQ(read(sfd, &rec, sizeof(rec)), (long)sizeof(rec), "one record read");
	CHECK_EQ(rec.ssi_signo, SIGUSR1, "the record is SIGUSR1's");
	CHECK(!readable(sfd), "not readable once taken");
	CHECK_ERR(read(sfd, (void *)0x7fffff002000UL, sizeof(rec)), EAGAIN, "nothing pending into km's region: EAGAIN");
	CHECK_SYS(kill(getpid(), SIGUSR1), "kill(self, SIGUSR1) again");
	CHECK_ERR(read(sfd, (void *)0x7fffff002000UL, sizeof(rec)), EFAULT, "a record into km's region: EFAULT");
	close(sfd);
	struct timespec z = {0, 0};
	siginfo_t si;
	while (sigtimedwait(&m, &si, &z) > 0)
		;
}

static void bad_fds(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	const int km_fds[] = {1000, 1001, 1023, 1024, 2047, 4095, 65535, 0x7fffffff, -2};
	for (size_t i = 0; i < sizeof(km_fds) / sizeof(km_fds[0]); i++)
		CHECK_ERR(signalfd(km_fds[i], &m, 0), EBADF, "signalfd(%d): km's range or none", km_fds[i]);
	int p[2];
	CHECK_SYS(pipe(p), "pipe");
	CHECK_ERR(signalfd(p[0], &m, 0), EINVAL, "signalfd4 on a pipe");
	int e = (int)syscall(SYS_eventfd2, 0, 0);
	CHECK_ERR(signalfd(e, &m, 0), EINVAL, "signalfd4 on a plain eventfd");
	CHECK_ERR(syscall(SYS_signalfd4, -1, &m, 16, 0), EINVAL, "signalfd4 with sizemask 16");
	CHECK_ERR(syscall(SYS_signalfd4, -1, &m, 8, 0x1), EINVAL, "signalfd4 with unknown flags");
	CHECK_ERR(syscall(SYS_signalfd4, -1, (void *)0x7fffff002000UL, 8, 0), EFAULT, "signalfd4 with its mask in km's region");
	CHECK_ERR(syscall(SYS_signalfd, -1, (void *)0xdead0000UL, 8), EFAULT, "signalfd with an unmapped mask");
	close(p[0]);
	close(p[1]);
	/* A guest eventfd taking a closed signalfd's number is an eventfd, not a signalfd. */
	int sfd = sfd_new(SIGUSR2);
	close(e);
	close(sfd);
	e = (int)syscall(SYS_eventfd2, 0, 0);
	CHECK_EQ(e, sfd, "an eventfd takes the closed signalfd's number");
	uint64_t n = 5;
	CHECK_EQ(write(e, &n, 8), 8, "it can be written");
	n = 0;
	CHECK_EQ(read(e, &n, 8), 8, "and read");
	CHECK_EQ(n, 5, "its own counter");
	close(e);
}

static void table(void)
{
	sigset_t m;
	sigemptyset(&m);
	sigaddset(&m, SIGUSR2);
	sigprocmask(SIG_BLOCK, &m, NULL);
	/* A dup outlives its original: the entry must not be reaped while the dup is open. */
	int keep = sfd_new(SIGUSR2);
	int kept = fcntl(keep, F_DUPFD, 200);
	close(keep);
	int ok = 0;
	for (int i = 0; i < 100; i++) {
		int s = sfd_new(SIGUSR2);
		if (s >= 0) {
			ok++;
			close(s);
		}
	}
	CHECK_EQ(ok, 100, "100 signalfds made and closed, one after the other");
	int held[KM_MAX_SIGFDS + 8], nheld = 0, err = 0;
	for (int i = 0; i < KM_MAX_SIGFDS + 8; i++) {
		int s = sfd_new(SIGUSR2);
		if (s < 0) {
			err = errno;
			break;
		}
		held[nheld++] = s;
	}
	/* The dup holds one entry: the table gives the rest, then EMFILE. */
	CHECK_EQ(nheld, KM_MAX_SIGFDS - 1, "signalfds held open at once beside the dup");
	CHECK_EQ(err, EMFILE, "past the table: EMFILE");
	for (int i = 0; i < nheld; i++)
		close(held[i]);
	CHECK(sfd_new(SIGUSR2) >= 0, "the table has room again once they are closed");
	CHECK_SYS(kill(getpid(), SIGUSR2), "kill(self, SIGUSR2)");
	struct signalfd_siginfo rec;
	CHECK_EQ(read(kept, &rec, sizeof(rec)), (long)sizeof(rec), "the dup of the first still reads signals");
	CHECK_EQ(rec.ssi_signo, SIGUSR2, "SIGUSR2's record");
}

int main(void)
{
	abuse_one();
	bad_fds();
	table();
	CHECK_EQ(write(1, "", 0), 0, "km is intact: it still serves syscalls");
	return check_done();
}
