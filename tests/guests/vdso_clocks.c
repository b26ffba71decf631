/*
 * The vDSO's clocks (issue 10), natively and under km, glibc and musl:
 *   (no args)      every clock through libc (the vDSO) lies between two raw syscall readings;
 *                  gettimeofday and time likewise; clock_getres agrees; getcpu names a CPU the
 *                  thread may run on; the monotonic clocks never go back, over many calls, mixed
 *                  with syscalls and across threads; clocks the vDSO does not answer still work
 *   loop N         N rounds of clock_gettime, gettimeofday and time (tests/e2e/vdso.sh checks
 *                  under --trace that none of them leaves the VM)
 *   tai            prints "tai ready", then reads CLOCK_TAI (which the vDSO makes a syscall from
 *                  its own code: vdso.sh snapshots it there from outside) until stdin is
 *                  readable, then prints "tai done"
 *   snap FILE      records the monotonic clocks, snapshots itself into FILE (stopping), and in
 *                  the resumed copy checks that none of them went back (vdso.sh resumes it
 *                  also as on a host booted later: KM_TEST_CLOCK_BEHIND)
 */
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "km_hcall.h"
#include "snap_common.h"

/* <linux/futex.h>'s, which musl's headers lack. */
#define FUTEX_WAIT_BITSET_PRIVATE 137
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu

static const struct {
	clockid_t id;
	const char *name;
} clocks[] = {
    {CLOCK_REALTIME, "REALTIME"},
    {CLOCK_MONOTONIC, "MONOTONIC"},
    {CLOCK_BOOTTIME, "BOOTTIME"},
    {CLOCK_MONOTONIC_RAW, "MONOTONIC_RAW"},
    {CLOCK_REALTIME_COARSE, "REALTIME_COARSE"},
    {CLOCK_MONOTONIC_COARSE, "MONOTONIC_COARSE"},
};
#define NCLOCKS (sizeof(clocks) / sizeof(clocks[0]))

static int64_t ns_of(struct timespec t)
{
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int64_t sys_ns(clockid_t c)
{
	struct timespec t = {0, 0};
	syscall(SYS_clock_gettime, c, &t);
	return ns_of(t);
}

static int64_t libc_ns(clockid_t c)
{
	struct timespec t = {0, 0};
	clock_gettime(c, &t);
	return ns_of(t);
}

/* The vDSO's value lies between the syscall's before and after, every time. */
static void between(void)
{
	for (size_t i = 0; i < NCLOCKS; i++) {
		int bad = 0;
		int64_t a = 0, v = 0, b = 0;
		for (int n = 0; n < 200 && !bad; n++) {
			a = sys_ns(clocks[i].id);
			v = libc_ns(clocks[i].id);
			b = sys_ns(clocks[i].id);
			bad = !(a <= v && v <= b);
		}
		if (bad)
			printf("  %s: syscall %lld, libc %lld, syscall %lld\n", clocks[i].name, (long long)a,
			       (long long)v, (long long)b);
		CHECK(!bad, "%s through libc lies between two syscall readings", clocks[i].name);
	}
	int bad = 0;
	for (int n = 0; n < 200 && !bad; n++) {
		int64_t a = sys_ns(CLOCK_REALTIME) / 1000;
		struct timeval tv;
		gettimeofday(&tv, NULL);
		int64_t b = sys_ns(CLOCK_REALTIME) / 1000;
		int64_t us = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
		bad = !(a <= us && us <= b);
	}
	CHECK(!bad, "gettimeofday lies between two syscall readings");
	bad = 0;
	for (int n = 0; n < 200 && !bad; n++) {
		int64_t a = sys_ns(CLOCK_REALTIME) / 1000000000;
		time_t t2, t = time(&t2);
		int64_t b = sys_ns(CLOCK_REALTIME) / 1000000000;
		bad = !(a <= t && t <= b && t == t2);
	}
	CHECK(!bad, "time lies between two syscall readings");
	struct timezone tz = {1, 1};
	struct timeval tv;
	CHECK(syscall(SYS_gettimeofday, &tv, &tz) == 0 && tz.tz_minuteswest == 0 && tz.tz_dsttime == 0,
	      "gettimeofday's timezone is UTC without DST");
}

static void resolutions(void)
{
	for (size_t i = 0; i < NCLOCKS; i++) {
		struct timespec l = {-1, -1}, s = {-2, -2};
		int rl = clock_getres(clocks[i].id, &l);
		long rs = syscall(SYS_clock_getres, clocks[i].id, &s);
		CHECK(rl == 0 && rs == 0 && l.tv_sec == s.tv_sec && l.tv_nsec == s.tv_nsec,
		      "clock_getres(%s) through libc is the syscall's", clocks[i].name);
	}
}

static void others(void)
{
	/* Clocks the vDSO leaves to the kernel. */
	int64_t a = sys_ns(CLOCK_TAI), v = libc_ns(CLOCK_TAI), b = sys_ns(CLOCK_TAI);
	CHECK(a <= v && v <= b, "CLOCK_TAI through libc lies between two syscall readings");
	struct timespec t;
	CHECK(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t) == 0 && ns_of(t) > 0, "CLOCK_PROCESS_CPUTIME_ID works");
	CHECK(clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) == 0 && ns_of(t) > 0, "CLOCK_THREAD_CPUTIME_ID works");
	CHECK_ERR(clock_gettime((clockid_t)100, &t), EINVAL, "an unknown clock is EINVAL");
	CHECK_ERR(clock_getres((clockid_t)100, &t), EINVAL, "an unknown clock's resolution is EINVAL");
}

static void cpu(void)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CHECK(sched_getaffinity(0, sizeof(set), &set) == 0, "sched_getaffinity");
	int ok = 1;
	for (int n = 0; n < 100 && ok; n++) {
		int c = sched_getcpu();
		unsigned sc = ~0u, node = ~0u;
		ok = c >= 0 && c < CPU_SETSIZE && CPU_ISSET(c, &set) &&
		     syscall(SYS_getcpu, &sc, &node, NULL) == 0 && CPU_ISSET(sc, &set);
	}
	CHECK(ok, "getcpu names a CPU the thread may run on");
}

/* Loops run this long (km redraws the vDSO's lines every 100 ms: several redraws fall inside),
 * or this many rounds where each read is a syscall of tens of microseconds. */
#define SPAN_NS 250000000
#define MAX_ROUNDS 5000000

/* The monotonic clocks never go back: many calls, syscalls among them. */
static void never_back(void)
{
	static const clockid_t mono[] = {CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE};
	for (size_t i = 0; i < sizeof(mono) / sizeof(mono[0]); i++) {
		int64_t first = libc_ns(mono[i]), last = 0, back = 0;
		for (int n = 0; n < MAX_ROUNDS && last - first < SPAN_NS; n++) {
			int64_t t = n % 1000 == 0 ? sys_ns(mono[i]) : libc_ns(mono[i]);
			if (t < last && back == 0)
				back = last - t;
			last = t;
		}
		if (back != 0)
			printf("  clock %d went back %lld ns\n", (int)mono[i], (long long)back);
		CHECK(back == 0, "clock %d never goes back over a quarter second of calls", (int)mono[i]);
	}
}

/* Across threads: a reading taken after another thread's published one is not earlier. */
static _Atomic int64_t latest;
static _Atomic int across_bad;

static void *reader(void *arg)
{
	(void)arg;
	int64_t first = libc_ns(CLOCK_MONOTONIC);
	for (int n = 0; n < MAX_ROUNDS; n++) {
		int64_t seen = atomic_load(&latest);
		int64_t t = libc_ns(CLOCK_MONOTONIC);
		if (t < seen)
			atomic_store(&across_bad, 1);
		int64_t cur = seen;
		while (t > cur && !atomic_compare_exchange_weak(&latest, &cur, t))
			;
		if (t - first > SPAN_NS)
			break;
	}
	return NULL;
}

static void across_threads(void)
{
	pthread_t t[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, reader, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	CHECK(!atomic_load(&across_bad), "MONOTONIC never goes back across threads");
}

static int loop(long n)
{
	struct timespec t;
	struct timeval tv;
	long sum = 0;
	for (long i = 0; i < n; i++) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		clock_gettime(CLOCK_REALTIME, &t);
		gettimeofday(&tv, NULL);
		sum += time(NULL) & 1;
	}
	printf("loop done (%ld)\n", sum >= 0 ? n : -1);
	return 0;
}

/* Absolute deadlines on MONOTONIC, 20 ms from the guest's now, end (not hours later on a host
 * whose clock is behind the guest's after a resume). */
static void deadlines(void)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_nsec += 20000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	CHECK(clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &dl, NULL) == 0,
	      "clock_nanosleep(MONOTONIC, TIMER_ABSTIME) ends");
	dl.tv_sec++; /* a second on: futex deadlines */
	static uint32_t word;
	CHECK_ERR(syscall(SYS_futex, &word, FUTEX_WAIT_BITSET_PRIVATE, 0, &dl, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT,
		  "FUTEX_WAIT_BITSET with a MONOTONIC deadline times out");
}

static int snap(const char *file)
{
	static const clockid_t mono[] = {CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW, CLOCK_MONOTONIC_COARSE};
	int64_t before[4];
	for (int i = 0; i < 4; i++)
		before[i] = libc_ns(mono[i]);
	long r = snap_take("vdso", 0, file, NULL);
	if (r != KM_SNAPSHOT_RESUMED)
		snap_failed(r);
	for (int i = 0; i < 4; i++) {
		int64_t l = libc_ns(mono[i]), s = sys_ns(mono[i]);
		if (l < before[i] || s < before[i])
			printf("  clock %d: %lld before the snapshot, %lld (libc) and %lld (syscall) after\n",
			       (int)mono[i], (long long)before[i], (long long)l, (long long)s);
		CHECK(l >= before[i] && s >= before[i], "clock %d did not go back across the resume", (int)mono[i]);
	}
	between();
	never_back();
	deadlines();
	return check_done();
}

static int tai(void)
{
	printf("tai ready\n");
	fflush(stdout);
	int64_t last = 0;
	int back = 0;
	struct pollfd in = {.fd = 0, .events = POLLIN};
	do {
		for (int i = 0; i < 1000; i++) {
			int64_t t = libc_ns(CLOCK_TAI);
			back |= t < last;
			last = t;
		}
	} while (poll(&in, 1, 0) == 0);
	printf("tai done\n");
	CHECK(!back, "CLOCK_TAI never went back");
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc > 2 && strcmp(argv[1], "loop") == 0)
		return loop(atol(argv[2]));
	if (argc > 1 && strcmp(argv[1], "tai") == 0)
		return tai();
	if (argc > 2 && strcmp(argv[1], "snap") == 0)
		return snap(argv[2]);
	CHECK(getauxval(AT_SYSINFO_EHDR) != 0, "the program has a vDSO (AT_SYSINFO_EHDR)");
	between();
	resolutions();
	others();
	cpu();
	never_back();
	across_threads();
	deadlines();
	return check_done();
}
