/*
 * Syscall arguments in memory the host cannot provide: a MAP_SHARED file mapping whose file was
 * truncated to 0 (as another process truncating a shared file would). Touching it is SIGBUS for
 * the program; handed to a syscall it is EFAULT (or a short count), as Linux's copy_from_user
 * gives, for every family where the kernel - or km - copies: paths, timespecs, output structs,
 * iovec arrays, msghdr and sockaddr, fd_sets, pollfd and epoll_event arrays, sigactions,
 * getrandom, read/write data. The program must go on running afterwards.
 *
 * Layout: `lead` is an ordinary page right before the two file pages `p`, so a string or buffer
 * can start in good memory and run into the bad one. Uses syscall(2) so libc checks nothing.
 */
// E2E: run 0
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>

#include "check.h"

#define PG 4096
#define FUTEX_WAIT 0 /* <linux/futex.h>, which musl-gcc cannot see */
#define FUTEX_WAKE 1

static char *lead, *p;

static void set_up(void)
{
	int fd = CHECK_SYS(open("sigbus.dat", O_RDWR | O_CREAT | O_TRUNC, 0600), "create the data file");
	CHECK_SYS(ftruncate(fd, 2 * PG), "make it two pages long");
	/* Three pages of address space: an anonymous one, then the file's two over the rest. */
	lead = mmap(NULL, 3 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(lead != MAP_FAILED, "map three pages");
	p = mmap(lead + PG, 2 * PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	CHECK(p == lead + PG, "map the file after the first page");
	strcpy(p, "sigbus.dat");
	CHECK_SYS(ftruncate(fd, 0), "truncate the file under the mapping");
	close(fd);
	memset(lead, 'a', PG);
}

static void paths(void)
{
	struct stat st;
	CHECK_ERR(syscall(SYS_open, p, O_RDONLY), EFAULT, "open(path past EOF)");
	CHECK_ERR(syscall(SYS_openat, AT_FDCWD, p + 100, O_RDONLY), EFAULT, "openat(path past EOF)");
	CHECK_ERR(syscall(SYS_stat, p, &st), EFAULT, "stat(path past EOF)");
	CHECK_ERR(syscall(SYS_access, p, F_OK), EFAULT, "access(path past EOF)");
	CHECK_ERR(syscall(SYS_mkdir, p, 0700), EFAULT, "mkdir(path past EOF)");
	/* A path that starts in good memory and runs on into the bad page. */
	CHECK_ERR(syscall(SYS_open, lead + PG - 10, O_RDONLY), EFAULT, "open(path running past EOF)");
	CHECK_ERR(syscall(SYS_rename, "sigbus.dat", p), EFAULT, "rename(to a path past EOF)");
}

static void times_(void)
{
	CHECK_ERR(syscall(SYS_nanosleep, p, NULL), EFAULT, "nanosleep(request past EOF)");
	struct timespec ts = {0, 1};
	CHECK_SYS(syscall(SYS_nanosleep, &ts, p), "nanosleep(remainder past EOF, not written)");
	CHECK_EQ(syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, p, NULL), -1,
		 "clock_nanosleep(request past EOF) fails");
	CHECK_EQ(errno, EFAULT, "clock_nanosleep(request past EOF) is EFAULT");
	CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, p), EFAULT, "clock_gettime(into EOF)");
	CHECK_ERR(syscall(SYS_clock_getres, CLOCK_MONOTONIC, p), EFAULT, "clock_getres(into EOF)");
	CHECK_ERR(syscall(SYS_gettimeofday, p, NULL), EFAULT, "gettimeofday(into EOF)");
	CHECK_ERR(syscall(SYS_time, p), EFAULT, "time(into EOF)");
	CHECK_ERR(syscall(SYS_times, p), EFAULT, "times(into EOF)");
}

static void outputs(void)
{
	CHECK_ERR(syscall(SYS_fstat, 1, p), EFAULT, "fstat(into EOF)");
	CHECK_ERR(syscall(SYS_stat, ".", p), EFAULT, "stat(into EOF)");
	CHECK_ERR(syscall(SYS_newfstatat, AT_FDCWD, ".", p, 0), EFAULT, "newfstatat(into EOF)");
	CHECK_ERR(syscall(SYS_statfs, ".", p), EFAULT, "statfs(into EOF)");
	CHECK_ERR(syscall(SYS_uname, p), EFAULT, "uname(into EOF)");
	CHECK_ERR(syscall(SYS_getrusage, RUSAGE_SELF, p), EFAULT, "getrusage(into EOF)");
	CHECK_ERR(syscall(SYS_sysinfo, p), EFAULT, "sysinfo(into EOF)");
	CHECK_ERR(syscall(SYS_getrlimit, RLIMIT_STACK, p), EFAULT, "getrlimit(into EOF)");
	CHECK_ERR(syscall(SYS_prlimit64, 0, RLIMIT_STACK, NULL, p), EFAULT, "prlimit64(old into EOF)");
	CHECK_ERR(syscall(SYS_prlimit64, 0, RLIMIT_STACK, p, NULL), EFAULT, "prlimit64(new past EOF)");
	CHECK_ERR(syscall(SYS_getcwd, p, 4096), EFAULT, "getcwd(into EOF)");
	CHECK_ERR(syscall(SYS_readlink, "/proc/self/exe", p, 100), EFAULT, "readlink(into EOF)");
	CHECK_ERR(syscall(SYS_pipe, p), EFAULT, "pipe(fds into EOF)");
	CHECK_ERR(syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, p), EFAULT, "socketpair(fds into EOF)");
	CHECK_ERR(syscall(SYS_getrandom, p, 16, 0), EFAULT, "getrandom(into EOF)");
	CHECK_ERR(syscall(SYS_sched_getaffinity, 0, 128, p), EFAULT, "sched_getaffinity(into EOF)");
	CHECK_ERR(syscall(SYS_prctl, PR_SET_NAME, p, 0, 0, 0), EFAULT, "prctl(PR_SET_NAME past EOF)");
	CHECK_ERR(syscall(SYS_futex, p, FUTEX_WAKE, 1, NULL, NULL, 0), EFAULT, "futex(FUTEX_WAKE on a word past EOF)");
	CHECK_ERR(syscall(SYS_futex, p, FUTEX_WAIT, 0, NULL, NULL, 0), EFAULT, "futex(FUTEX_WAIT on a word past EOF)");
	CHECK_ERR(syscall(SYS_mincore, lead, PG, p), EFAULT, "mincore(vector into EOF)");
	/* A struct that starts in good memory and ends in the bad page. */
	CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, lead + PG - 8), EFAULT,
		  "clock_gettime(into a struct running past EOF)");
}

static void signals(void)
{
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGUSR1, p, NULL, 8), EFAULT, "rt_sigaction(new past EOF)");
	CHECK_ERR(syscall(SYS_rt_sigaction, SIGUSR1, NULL, p, 8), EFAULT, "rt_sigaction(old into EOF)");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, p, NULL, 8), EFAULT, "rt_sigprocmask(set past EOF)");
	CHECK_ERR(syscall(SYS_rt_sigprocmask, SIG_BLOCK, NULL, p, 8), EFAULT, "rt_sigprocmask(old into EOF)");
	CHECK_ERR(syscall(SYS_sigaltstack, p, NULL), EFAULT, "sigaltstack(new past EOF)");
	CHECK_ERR(syscall(SYS_rt_sigpending, p, 8), EFAULT, "rt_sigpending(into EOF)");
}

static void io(void)
{
	int fds[2];
	struct iovec iov[2];
	char buf[64];
	CHECK_SYS(pipe(fds), "pipe");
	CHECK_EQ(write(fds[1], "0123456789", 10), 10, "fill the pipe");
	CHECK_ERR(syscall(SYS_read, fds[0], p, 4), EFAULT, "read(into EOF)");
	CHECK_ERR(syscall(SYS_write, fds[1], p, 4), EFAULT, "write(from EOF)");
	CHECK_ERR(syscall(SYS_readv, fds[0], p, 1), EFAULT, "readv(iovec array past EOF)");
	CHECK_ERR(syscall(SYS_writev, fds[1], p, 1), EFAULT, "writev(iovec array past EOF)");
	iov[0] = (struct iovec){p, 4};
	CHECK_ERR(syscall(SYS_readv, fds[0], iov, 1), EFAULT, "readv(into EOF)");
	CHECK_ERR(syscall(SYS_preadv, fds[0], iov, 1, 0), ESPIPE, "preadv on a pipe: ESPIPE first");
	/* A pipe takes all of a buffer or nothing... */
	iov[0] = (struct iovec){buf, 3};
	iov[1] = (struct iovec){p, 4};
	CHECK_ERR(syscall(SYS_writev, fds[1], iov, 2), EFAULT, "writev(pipe, good, then past EOF)");
	CHECK_ERR(syscall(SYS_readv, fds[0], iov, 2), EFAULT, "readv(pipe, good, then into EOF)");
	/* ...a file takes what the kernel could copy: a short count at the first byte it could not. */
	int f = CHECK_SYS(open("data.txt", O_RDWR | O_CREAT | O_TRUNC, 0600), "create a file");
	CHECK_EQ(syscall(SYS_write, f, lead + PG - 5, 10), 5, "write(file, running past EOF): short count");
	CHECK_EQ(syscall(SYS_writev, f, iov, 2), 3, "writev(file, good, then past EOF): short count");
	CHECK_EQ(syscall(SYS_pread64, f, lead + PG - 5, 8, 0), 5, "pread(file, running into EOF): short count");
	CHECK_EQ(syscall(SYS_preadv, f, iov, 2, 0), 3, "preadv(file, good, then into EOF): short count");
	CHECK_ERR(syscall(SYS_pread64, f, p, 8, 0), EFAULT, "pread(file, into EOF)");
	close(f);
	close(fds[0]);
	close(fds[1]);

	int dfd = CHECK_SYS(open(".", O_RDONLY | O_DIRECTORY), "open .");
	CHECK_ERR(syscall(SYS_getdents64, dfd, p, 4096), EFAULT, "getdents64(into EOF)");
	close(dfd);
}

static void sockets(void)
{
	int sv[2];
	char buf[16] = "x";
	struct iovec iov = {buf, 1};
	struct msghdr mh;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len = sizeof(sa);
	CHECK_SYS(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), "socketpair");
	CHECK_ERR(syscall(SYS_sendmsg, sv[0], p, 0), EFAULT, "sendmsg(msghdr past EOF)");
	CHECK_ERR(syscall(SYS_recvmsg, sv[1], p, MSG_DONTWAIT), EFAULT, "recvmsg(msghdr into EOF)");
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = (struct iovec *)p;
	mh.msg_iovlen = 1;
	CHECK_ERR(syscall(SYS_sendmsg, sv[0], &mh, 0), EFAULT, "sendmsg(iovec array past EOF)");
	mh.msg_iov = &iov;
	mh.msg_control = p;
	mh.msg_controllen = 32;
	CHECK_ERR(syscall(SYS_sendmsg, sv[0], &mh, 0), EFAULT, "sendmsg(control past EOF)");
	mh.msg_control = NULL;
	mh.msg_controllen = 0;
	mh.msg_name = p;
	mh.msg_namelen = sizeof(sa);
	CHECK_ERR(syscall(SYS_sendmsg, sv[0], &mh, 0), EFAULT, "sendmsg(name past EOF)");
	CHECK_ERR(syscall(SYS_sendto, sv[0], p, 4, 0, NULL, 0), EFAULT, "sendto(data past EOF)");
	CHECK_ERR(syscall(SYS_sendto, sv[0], buf, 1, 0, p, sizeof(sa)), EFAULT, "sendto(address past EOF)");
	CHECK_ERR(syscall(SYS_getsockname, sv[0], p, &len), EFAULT, "getsockname(into EOF)");
	CHECK_ERR(syscall(SYS_getsockname, sv[0], &sa, p), EFAULT, "getsockname(length past EOF)");
	CHECK_ERR(syscall(SYS_setsockopt, sv[0], SOL_SOCKET, SO_SNDBUF, p, 4), EFAULT, "setsockopt(value past EOF)");
	close(sv[0]);
	close(sv[1]);

	int s = CHECK_SYS(socket(AF_UNIX, SOCK_STREAM, 0), "socket");
	CHECK_ERR(syscall(SYS_bind, s, p, sizeof(sa)), EFAULT, "bind(address past EOF)");
	CHECK_ERR(syscall(SYS_connect, s, p, sizeof(sa)), EFAULT, "connect(address past EOF)");
	close(s);
}

static void waits(void)
{
	int fds[2];
	struct timeval tv = {0, 0};
	fd_set set;
	CHECK_SYS(pipe(fds), "pipe");
	CHECK_EQ(write(fds[1], "x", 1), 1, "make the pipe readable");
	FD_ZERO(&set);
	FD_SET(fds[0], &set);
	CHECK_ERR(syscall(SYS_select, fds[0] + 1, p, NULL, NULL, &tv), EFAULT, "select(fd_set past EOF)");
	CHECK_ERR(syscall(SYS_select, fds[0] + 1, &set, NULL, NULL, p), EFAULT, "select(timeout past EOF)");
	CHECK_ERR(syscall(SYS_poll, p, 1, 0), EFAULT, "poll(pollfd array past EOF)");
	CHECK_ERR(syscall(SYS_ppoll, p, 1, NULL, NULL, 8), EFAULT, "ppoll(pollfd array past EOF)");

	int ep = CHECK_SYS(epoll_create1(0), "epoll_create1");
	struct epoll_event ev = {.events = EPOLLIN};
	CHECK_ERR(syscall(SYS_epoll_ctl, ep, EPOLL_CTL_ADD, fds[0], p), EFAULT, "epoll_ctl(event past EOF)");
	CHECK_SYS(epoll_ctl(ep, EPOLL_CTL_ADD, fds[0], &ev), "epoll_ctl");
	CHECK_ERR(syscall(SYS_epoll_wait, ep, p, 4, 0), EFAULT, "epoll_wait(events into EOF)");
	CHECK_EQ(syscall(SYS_epoll_wait, ep, &ev, 1, 0), 1, "epoll_wait still sees the event");
	close(ep);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	set_up();
	paths();
	times_();
	outputs();
	signals();
	io();
	sockets();
	waits();
	/* Still alive, and ordinary I/O works. */
	CHECK_EQ(syscall(SYS_write, 1, "still running\n", 14), 14, "write after all the EFAULTs");
	return check_done();
}
