/*
 * Time: clock_gettime REALTIME/MONOTONIC are sane and monotonic, gettimeofday and time() agree
 * with CLOCK_REALTIME, nanosleep (libc and raw syscalls) of ~20ms actually sleeps. Output has
 * no times in it, only ok/FAIL lines.
 */
// E2E: run 0
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>

#include "check.h"

static int64_t ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int64_t mono_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return ns(&t);
}

int main(void)
{
	struct timespec rt, mono, prev, req, rem;
	struct timeval tv;
	int i, backwards = 0, nsec_ok = 1;
	int64_t t0, slept;
	time_t now;

	CHECK_SYS(clock_gettime(CLOCK_REALTIME, &rt), "clock_gettime(CLOCK_REALTIME)");
	CHECK(rt.tv_sec > 1577836800 /* 2020-01-01 */ && rt.tv_sec < 4102444800 /* 2100 */,
	      "CLOCK_REALTIME is a plausible date");
	CHECK(rt.tv_nsec >= 0 && rt.tv_nsec < 1000000000, "CLOCK_REALTIME tv_nsec in range");
	CHECK_SYS(syscall(SYS_clock_gettime, CLOCK_REALTIME, &rt), "raw clock_gettime syscall");
	CHECK(rt.tv_sec > 1577836800, "raw syscall result plausible too");

	CHECK_SYS(clock_gettime(CLOCK_MONOTONIC, &prev), "clock_gettime(CLOCK_MONOTONIC)");
	for (i = 0; i < 10000; i++) {
		clock_gettime(CLOCK_MONOTONIC, &mono);
		if (ns(&mono) < ns(&prev))
			backwards++;
		if (mono.tv_nsec < 0 || mono.tv_nsec >= 1000000000)
			nsec_ok = 0;
		prev = mono;
	}
	CHECK_EQ(backwards, 0, "CLOCK_MONOTONIC never goes backwards over 10000 reads");
	CHECK(nsec_ok, "CLOCK_MONOTONIC tv_nsec always in range");
	CHECK_ERR(clock_gettime((clockid_t)12345, &mono), EINVAL, "clock_gettime of a bad clock fails EINVAL");

	CHECK_SYS(gettimeofday(&tv, NULL), "gettimeofday");
	clock_gettime(CLOCK_REALTIME, &rt);
	CHECK(tv.tv_usec >= 0 && tv.tv_usec < 1000000, "gettimeofday tv_usec in range");
	CHECK(rt.tv_sec - tv.tv_sec >= 0 && rt.tv_sec - tv.tv_sec <= 2, "gettimeofday agrees with CLOCK_REALTIME");
	now = time(NULL);
	clock_gettime(CLOCK_REALTIME, &rt);
	CHECK(now > 1577836800 && rt.tv_sec - now >= 0 && rt.tv_sec - now <= 2, "time(NULL) agrees with CLOCK_REALTIME");
	CHECK(time(&now) == now, "time(&t) stores what it returns");
	CHECK_SYS(syscall(SYS_gettimeofday, &tv, NULL), "raw gettimeofday syscall");
	CHECK(syscall(SYS_time, NULL) > 1577836800, "raw time syscall");

	req.tv_sec = 0;
	req.tv_nsec = 20 * 1000000;
	t0 = mono_ns();
	CHECK_SYS(nanosleep(&req, &rem), "nanosleep 20ms");
	slept = mono_ns() - t0;
	CHECK(slept >= 20000000, "nanosleep slept at least 20ms");
	CHECK(slept < 2000000000, "nanosleep slept less than 2s");

	t0 = mono_ns();
	CHECK_SYS(syscall(SYS_nanosleep, &req, NULL), "raw nanosleep syscall 20ms");
	slept = mono_ns() - t0;
	CHECK(slept >= 20000000 && slept < 2000000000, "raw nanosleep slept 20ms..2s");

	t0 = mono_ns();
	CHECK_SYS(syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &req, NULL), "raw clock_nanosleep 20ms");
	slept = mono_ns() - t0;
	CHECK(slept >= 20000000 && slept < 2000000000, "clock_nanosleep slept 20ms..2s");

	clock_gettime(CLOCK_MONOTONIC, &mono);
	req.tv_sec = mono.tv_sec;
	req.tv_nsec = mono.tv_nsec + 20000000;
	if (req.tv_nsec >= 1000000000) {
		req.tv_sec++;
		req.tv_nsec -= 1000000000;
	}
	CHECK_EQ(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &req, NULL), 0, "clock_nanosleep TIMER_ABSTIME");
	CHECK(mono_ns() >= ns(&req), "absolute sleep lasted until the deadline");

	req.tv_sec = 0;
	req.tv_nsec = 1000000000;
	CHECK_ERR(nanosleep(&req, NULL), EINVAL, "nanosleep with tv_nsec = 1e9 fails EINVAL");
	req.tv_nsec = 0;
	CHECK_SYS(nanosleep(&req, NULL), "nanosleep of zero");
	return check_done();
}
