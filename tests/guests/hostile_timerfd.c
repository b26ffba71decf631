/*
 * Hostile guest: timerfd (km forwards it to the host's) must not reach km's fds or memory:
 * timerfd_settime/gettime on km's fds (1000 up) fail with EBADF, itimerspecs at addresses the
 * guest cannot read or write (unmapped, km's runtime area at the top of the lower half, kernel
 * addresses) fail with EFAULT without touching the timer, and a timer used normally works.
 */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "check.h"

#define KM_FDS 1000

static long settime(int fd, int flags, const void *nv, void *ov)
{
	return syscall(SYS_timerfd_settime, fd, flags, nv, ov);
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct itimerspec its = {.it_value = {.tv_sec = 100}, .it_interval = {.tv_sec = 3}}, got;
	for (int fd = KM_FDS; fd < KM_FDS + 16; fd++) {
		CHECK(settime(fd, 0, &its, NULL) == -1 && errno == EBADF, "timerfd_settime(%d) = EBADF", fd);
		CHECK(syscall(SYS_timerfd_gettime, fd, &got) == -1 && errno == EBADF, "timerfd_gettime(%d) = EBADF", fd);
	}
	int t = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	CHECK(t >= 0 && t < KM_FDS, "timerfd_create gives a guest fd (%d)", t);
	void *hole = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(hole != MAP_FAILED, "a PROT_NONE page");
	const uintptr_t bad[] = {(uintptr_t)hole, 0x7fffff000000ull, 0x7ffffffff000ull, 0xffff800000000000ull, 8};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		void *p = (void *)bad[i];
		CHECK(settime(t, 0, p, NULL) == -1 && errno == EFAULT, "settime from bad address %zu = EFAULT", i);
		CHECK(settime(t, 0, &its, p) == -1 && errno == EFAULT, "settime old value to bad address %zu = EFAULT",
		      i);
		CHECK(syscall(SYS_timerfd_gettime, t, p) == -1 && errno == EFAULT, "gettime to bad address %zu = EFAULT",
		      i);
	}
	/* The settime whose old value could not be stored did arm the timer (as in Linux); rearm it
	 * short and see it fire. */
	struct itimerspec shortly = {.it_value = {.tv_nsec = 1000000}};
	CHECK(settime(t, 0, &shortly, &got) == 0, "settime (%m)");
	CHECK(got.it_interval.tv_sec == 3, "the old interval read back (%ld)", (long)got.it_interval.tv_sec);
	usleep(20000);
	uint64_t n = 0;
	CHECK(read(t, &n, sizeof(n)) == sizeof(n) && n >= 1, "the timer fired (%lu)", (unsigned long)n);
	CHECK(syscall(SYS_timerfd_settime, t, 0x1000, &its, NULL) == -1 && errno == EINVAL, "bad flags = EINVAL");
	close(t);
	return check_done();
}
