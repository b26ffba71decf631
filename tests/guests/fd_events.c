/*
 * eventfds, timerfds, an epoll, a signalfd and an inotify across a snapshot the program takes of
 * itself (tests/e2e/fd_events.sh; km's fd table kinds km/fd/km_fd_event.c, km_fd_epoll.c,
 * km_fd_signalfd.c, km_fd_inotify.c).
 *
 *   fd_events check DIR   set up, no snapshot, check: the same output natively and under km
 *   fd_events once DIR    set up, snapshot without KEEP_RUNNING (km ends); resumed, check
 *   fd_events keep DIR    set up, snapshot with KEEP_RUNNING; the original and the resumed copy
 *                         both check (the original goes on unchanged)
 *   fd_events nested      an epoll watching an epoll, snapshot with KEEP_RUNNING (recorded as
 *                         unsupported: its resume fails, saying why)
 * DIR: an empty directory the inotify watches live in.
 *
 * What "check" finds: eventfd counts (a semaphore one read 1 at a time, one above 2^32), a
 * timerfd's remaining time no more than before and its interval exact, a fired timer's unread
 * expiration and its disarmed state, an absolute wall-clock timer still armed, the epoll
 * reporting the same (data, events) for its level-triggered ready targets and not its fired
 * one-shot one, EPOLL_CTL_DEL by number working on restored targets (items are keyed by number),
 * an item added under a number since reused (its file kept under another) still reported and
 * the number's new file intact, a signalfd reading a signal sent after, an inotify reporting a
 * file made after with the same watch numbers, its next watch number unchanged.
 */
// E2E: run 0 check @TMP
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "snap_common.h"

#define BIG_COUNT 0x100000005ull
#define HOUR 3600

static struct {
	int sem, big, lvl, edge, once, idle, moved, reused, t_long, t_fired, t_abs, ep, sfd, in;
	int moved_at; /* the number `moved` was added under, now `reused` */
	int wd_b, wd_c;
	struct itimerspec long_before;
	char dir[512];
} s;

static int efd(uint64_t count, int flags)
{
	int fd = eventfd(0, flags | EFD_NONBLOCK);
	if (count > 0 && write(fd, &count, sizeof(count)) != sizeof(count))
		return -1;
	return fd;
}

static void watch_add(int fd, uint32_t events, uint64_t data, int at)
{
	struct epoll_event ev = {.events = events, .data.u64 = data};
	CHECK_SYS(epoll_ctl(s.ep, EPOLL_CTL_ADD, at >= 0 ? at : fd, &ev), "epoll_ctl ADD data %#lx", (unsigned long)data);
}

static void path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", s.dir, name);
}

static void setup(void)
{
	/* whatever else the caller left open (a test runner's fds) is not this test's business */
	syscall(SYS_close_range, 3, ~0u, 0);
	s.sem = efd(5, EFD_SEMAPHORE);
	s.big = efd(BIG_COUNT, 0);
	s.lvl = efd(1, 0);
	s.edge = efd(1, 0);
	s.once = efd(1, 0);
	s.idle = efd(0, 0);
	CHECK(s.sem >= 0 && s.big >= 0 && s.lvl >= 0 && s.edge >= 0 && s.once >= 0 && s.idle >= 0, "eventfds");

	s.t_long = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	struct itimerspec its = {.it_value = {HOUR, 0}, .it_interval = {2, 500000000}};
	CHECK_SYS(timerfd_settime(s.t_long, 0, &its, NULL), "arm a long timer");
	CHECK_SYS(timerfd_gettime(s.t_long, &s.long_before), "its time left");
	s.t_fired = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK);
	struct itimerspec soon = {.it_value = {0, 1000000}};
	CHECK_SYS(timerfd_settime(s.t_fired, 0, &soon, NULL), "arm a short timer");
	struct pollfd p = {.fd = s.t_fired, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, -1), 1, "the short timer fires");
	s.t_abs = timerfd_create(CLOCK_REALTIME, 0);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct itimerspec at = {.it_value = {now.tv_sec + HOUR, 0}};
	CHECK_SYS(timerfd_settime(s.t_abs, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &at, NULL), "absolute timer");

	s.ep = epoll_create1(0);
	CHECK(s.ep >= 0, "epoll_create1");
	watch_add(s.lvl, EPOLLIN, 0x7, -1);
	watch_add(s.edge, EPOLLIN | EPOLLET, 0x8, -1);
	watch_add(s.once, EPOLLIN | EPOLLONESHOT, 0x9, -1);
	watch_add(s.t_fired, EPOLLIN, 0xa, -1);
	watch_add(s.idle, EPOLLIN, 0xb, -1);
	/* added as moved_at, kept as `moved`; the number then reused by another eventfd */
	s.moved_at = efd(1, 0);
	watch_add(s.moved_at, EPOLLIN, 0xc, -1);
	s.moved = dup(s.moved_at);
	close(s.moved_at);
	s.reused = efd(42, 0);
	CHECK_EQ(s.reused, s.moved_at, "the number is reused");
	CHECK_SYS(fcntl(s.reused, F_SETFD, FD_CLOEXEC), "FD_CLOEXEC on it");
	struct epoll_event out[16];
	CHECK_EQ(epoll_wait(s.ep, out, 16, 0), 5, "first epoll_wait: lvl, edge, once, fired, moved");

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	CHECK_SYS(sigprocmask(SIG_BLOCK, &set, NULL), "block SIGUSR1, SIGUSR2");
	s.sfd = signalfd(-1, &set, SFD_NONBLOCK);
	CHECK(s.sfd >= 0, "signalfd");

	char a[600], b[600];
	s.in = inotify_init1(IN_NONBLOCK);
	CHECK(s.in >= 0, "inotify_init1");
	const char *dirs[] = {"a", "b", "c", "d"};
	for (int i = 0; i < 4; i++) {
		path(a, sizeof(a), dirs[i]);
		mkdir(a, 0755);
	}
	path(a, sizeof(a), "a");
	path(b, sizeof(b), "b");
	int wd_a = inotify_add_watch(s.in, a, IN_CREATE);
	s.wd_b = inotify_add_watch(s.in, b, IN_CREATE | IN_DELETE);
	CHECK_SYS(inotify_rm_watch(s.in, wd_a), "remove the first watch");
	CHECK_SYS(chdir(s.dir), "chdir DIR");
	s.wd_c = inotify_add_watch(s.in, "c", IN_ALL_EVENTS); /* relative: km notes it against the cwd */
	CHECK_SYS(chdir("/"), "chdir /");
	CHECK_EQ(s.wd_b, 2, "watch numbers: b");
	CHECK_EQ(s.wd_c, 3, "watch numbers: c");
	char drain[4096];
	while (read(s.in, drain, sizeof(drain)) > 0)
		;
}

static uint64_t rd(int fd)
{
	uint64_t v = 0;
	return read(fd, &v, sizeof(v)) == sizeof(v) ? v : (uint64_t)-1;
}

static void check_epoll(void)
{
	struct epoll_event out[16];
	int n = epoll_wait(s.ep, out, 16, 0);
	uint32_t seen = 0;
	for (int i = 0; i < n; i++) {
		uint64_t d = out[i].data.u64;
		if (d == 0x8)
			continue; /* edge-triggered: may report once more after a resume (documented) */
		CHECK_EQ(out[i].events, EPOLLIN, "events of data %#lx", (unsigned long)d);
		if (d < 32)
			seen |= 1u << d;
	}
	CHECK_EQ(seen, (1u << 0x7) | (1u << 0xa) | (1u << 0xc), "epoll reports lvl (7), fired (a), moved (c); not once (9), idle (b)");
	CHECK_SYS(epoll_ctl(s.ep, EPOLL_CTL_DEL, s.lvl, NULL), "EPOLL_CTL_DEL lvl by its number");
	CHECK_SYS(epoll_ctl(s.ep, EPOLL_CTL_DEL, s.idle, NULL), "EPOLL_CTL_DEL idle by its number");
	CHECK_ERR(epoll_ctl(s.ep, EPOLL_CTL_DEL, s.reused, NULL), ENOENT, "the reused number is not watched");
	struct epoll_event mod = {.events = EPOLLIN, .data.u64 = 0xd};
	CHECK_SYS(epoll_ctl(s.ep, EPOLL_CTL_MOD, s.once, &mod), "EPOLL_CTL_MOD re-arms the one-shot");
	n = epoll_wait(s.ep, out, 16, 0);
	seen = 0;
	for (int i = 0; i < n; i++)
		if (out[i].data.u64 < 32)
			seen |= 1u << out[i].data.u64;
	CHECK_EQ(seen & ~(1u << 0x8), (1u << 0xa) | (1u << 0xc) | (1u << 0xd), "after DEL and MOD");
}

static void check_timers(void)
{
	struct itimerspec now;
	CHECK_SYS(timerfd_gettime(s.t_long, &now), "timerfd_gettime");
	CHECK(now.it_value.tv_sec > 0 && (now.it_value.tv_sec < s.long_before.it_value.tv_sec ||
					  (now.it_value.tv_sec == s.long_before.it_value.tv_sec &&
					   now.it_value.tv_nsec <= s.long_before.it_value.tv_nsec)),
	      "the long timer has no more time left than before, and some");
	CHECK(now.it_interval.tv_sec == 2 && now.it_interval.tv_nsec == 500000000, "its interval is exact");
	CHECK_SYS(timerfd_gettime(s.t_fired, &now), "timerfd_gettime fired");
	CHECK(now.it_value.tv_sec == 0 && now.it_value.tv_nsec == 0, "the fired timer stays disarmed");
	CHECK_EQ(rd(s.t_fired), 1, "its expiration not read yet");
	CHECK_EQ(rd(s.t_fired), (uint64_t)-1, "and no more");
	CHECK_SYS(timerfd_gettime(s.t_abs, &now), "timerfd_gettime absolute");
	CHECK(now.it_value.tv_sec > 0 && now.it_value.tv_sec <= HOUR, "the absolute timer is armed within its hour");
	CHECK_EQ(fcntl(s.t_abs, F_GETFL) & O_NONBLOCK, 0, "and blocking");
}

static void check_eventfds(void)
{
	for (int i = 0; i < 5; i++)
		CHECK_EQ(rd(s.sem), 1, "semaphore read %d", i);
	CHECK_EQ(rd(s.sem), (uint64_t)-1, "semaphore empty");
	CHECK_EQ(rd(s.big), BIG_COUNT, "count above 2^32");
	CHECK_EQ(rd(s.reused), 42, "the reused number's eventfd");
	CHECK_EQ(fcntl(s.reused, F_GETFD), FD_CLOEXEC, "with FD_CLOEXEC");
	CHECK_EQ(rd(s.moved), 1, "the moved eventfd");
	CHECK(fcntl(s.sem, F_GETFL) & O_NONBLOCK, "O_NONBLOCK kept");
}

static void check_signalfd(void)
{
	struct signalfd_siginfo si;
	struct pollfd p = {.fd = s.sfd, .events = POLLIN};
	CHECK_EQ(poll(&p, 1, 0), 0, "signalfd not readable");
	CHECK_ERR(read(s.sfd, &si, sizeof(si)), EAGAIN, "nothing to read");
	CHECK_SYS(kill(getpid(), SIGUSR2), "kill SIGUSR2");
	CHECK_EQ(poll(&p, 1, -1), 1, "signalfd readable");
	CHECK_EQ(read(s.sfd, &si, sizeof(si)), (long)sizeof(si), "read a signalfd_siginfo");
	CHECK_EQ(si.ssi_signo, SIGUSR2, "it is SIGUSR2");
}

/* Reads events until one for wd with `name` and mask bit `bit`. */
static int inotify_saw(int wd, const char *name, uint32_t bit)
{
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n;
	while ((n = read(s.in, buf, sizeof(buf))) > 0)
		for (char *q = buf; q < buf + n;) {
			struct inotify_event *e = (struct inotify_event *)q;
			if (e->wd == wd && (e->mask & bit) && e->len > 0 && strcmp(e->name, name) == 0)
				return 1;
			q += sizeof(*e) + e->len;
		}
	return 0;
}

static void check_inotify(void)
{
	char f[700], d[600];
	snprintf(f, sizeof(f), "%s/b/new", s.dir);
	int fd = open(f, O_CREAT | O_WRONLY | O_EXCL, 0644);
	CHECK(fd >= 0, "create b/new");
	close(fd);
	unlink(f);
	CHECK(inotify_saw(s.wd_b, "new", IN_CREATE), "inotify: wd %d IN_CREATE new", s.wd_b);
	snprintf(f, sizeof(f), "%s/c/x", s.dir);
	CHECK_SYS(mkdir(f, 0755), "mkdir c/x");
	rmdir(f);
	CHECK(inotify_saw(s.wd_c, "x", IN_CREATE), "inotify: wd %d IN_CREATE x", s.wd_c);
	snprintf(d, sizeof(d), "%s/d", s.dir);
	int wd = inotify_add_watch(s.in, d, IN_CREATE);
	CHECK_EQ(wd, 4, "the next watch number");
	inotify_rm_watch(s.in, wd);
}

static int check(const char *when)
{
	printf("-- %s\n", when);
	check_epoll();
	check_timers();
	check_eventfds();
	check_signalfd();
	check_inotify();
	printf("PASSED all %d checks\n", check_total);
	return check_failed ? 1 : 0;
}

/* An epoll watching an epoll: the snapshot records the outer one as unsupported, saying why. */
static int nested(void)
{
	syscall(SYS_close_range, 3, ~0u, 0);
	int inner = epoll_create1(0), outer = epoll_create1(0), e = efd(1, 0);
	struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 1};
	CHECK_SYS(epoll_ctl(inner, EPOLL_CTL_ADD, e, &ev), "inner watches an eventfd");
	CHECK_SYS(epoll_ctl(outer, EPOLL_CTL_ADD, inner, &ev), "outer watches inner");
	long r = snap_take("nested", KM_SNAPSHOT_KEEP_RUNNING, NULL, NULL);
	if (r != KM_SNAPSHOT_TAKEN)
		snap_failed(r);
	printf("PASSED all %d checks\n", check_total);
	return check_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "nested") == 0)
		return nested();
	if (argc != 3) {
		printf("usage: fd_events check|once|keep DIR\n");
		return 2;
	}
	snprintf(s.dir, sizeof(s.dir), "%s", argv[2]);
	setup();
	if (strcmp(argv[1], "check") == 0)
		return check("checked");
	int keep = strcmp(argv[1], "keep") == 0;
	long r = snap_take("fd_events", keep ? KM_SNAPSHOT_KEEP_RUNNING : 0, NULL, NULL);
	if (r == KM_SNAPSHOT_RESUMED)
		return check("resumed");
	if (r != KM_SNAPSHOT_TAKEN || !keep)
		snap_failed(r);
	return check("original");
}
