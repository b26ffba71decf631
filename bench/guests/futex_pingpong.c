/*
 * futex_pingpong [M]: two threads hand one futex word back and forth M times (after a warm-up of
 * M/10 round trips), with raw futex(2) FUTEX_WAIT_PRIVATE / FUTEX_WAKE_PRIVATE, no libc locks. The
 * word counts the hand-offs: the main thread makes it odd (2k+1) and wakes its partner, the
 * partner makes it even (2k+2) and wakes the main thread; each waits while the word still holds
 * the value it left. Every hand-off wakes unconditionally, so a round trip is at least two wakes,
 * plus a wait on each side whenever the other has not answered yet. Timed by the main thread
 * with CLOCK_MONOTONIC around the M round trips.
 * Prints: "futex_pingpong rounds=<M> ns_per_round_trip=<x>". Default M = 20000.
 * Any unexpected futex or pthread error prints "futex_pingpong: <what>: <error>" on stderr and
 * exits 1 (from either thread, so nothing waits forever); bad usage 2.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* <linux/futex.h>, which musl-gcc cannot see */
#define FUTEX_WAIT_PRIVATE (0 | 128)
#define FUTEX_WAKE_PRIVATE (1 | 128)

static _Atomic unsigned word;
static long total; /* warm-up + timed round trips, read by both threads */

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void die(const char *what, int e)
{
	fprintf(stderr, "futex_pingpong: %s: %s\n", what, strerror(e));
	exit(1);
}

/* Waits until the word no longer holds OLD. EAGAIN (it changed first) and EINTR are ordinary. */
static void wait_change(unsigned old)
{
	while (atomic_load_explicit(&word, memory_order_acquire) == old)
		if (syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, old, NULL, NULL, 0) < 0 &&
		    errno != EAGAIN && errno != EINTR)
			die("FUTEX_WAIT_PRIVATE", errno);
}

static void set_and_wake(unsigned v)
{
	atomic_store_explicit(&word, v, memory_order_release);
	if (syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) < 0)
		die("FUTEX_WAKE_PRIVATE", errno);
}

static void *partner(void *arg)
{
	(void)arg;
	for (long k = 0; k < total; k++) {
		wait_change(2 * (unsigned)k);
		set_and_wake(2 * (unsigned)k + 2);
	}
	return NULL;
}

static void rounds(long from, long to)
{
	for (long k = from; k < to; k++) {
		set_and_wake(2 * (unsigned)k + 1);
		wait_change(2 * (unsigned)k + 1);
	}
}

int main(int argc, char **argv)
{
	long m = argc > 1 ? atol(argv[1]) : 20000;
	if (m < 1 || m > 1000000000) {
		fprintf(stderr, "usage: futex_pingpong [M, 1..1e9]\n");
		return 2;
	}
	long warm = m / 10;
	total = warm + m;
	pthread_t t;
	int e = pthread_create(&t, NULL, partner, NULL);
	if (e)
		die("pthread_create", e);
	rounds(0, warm);
	double t0 = now_ns();
	rounds(warm, total);
	double t1 = now_ns();
	e = pthread_join(t, NULL);
	if (e)
		die("pthread_join", e);
	unsigned last = atomic_load(&word);
	if (last != 2 * (unsigned)total) {
		fprintf(stderr, "futex_pingpong: the word ended at %u, not %u\n", last, 2 * (unsigned)total);
		return 1;
	}
	printf("futex_pingpong rounds=%ld ns_per_round_trip=%.1f\n", m, (t1 - t0) / (double)m);
	return 0;
}
