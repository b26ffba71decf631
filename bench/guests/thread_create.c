/*
 * thread_create [N]: N rounds of pthread_create + pthread_join of a thread that does nothing but
 * hand its argument back, one thread at a time (after a warm-up of N/10 rounds), timed with
 * CLOCK_MONOTONIC around the loop. Default attributes, as most programs use them: the libc may
 * reuse the stack of the thread just joined, natively and under km alike.
 * Prints: "thread_create threads=<N> ns_per_thread=<x>". Default N = 2000.
 * A failed create or join prints "thread_create: <call>: <error>" on stderr and exits 1; bad usage 2.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void *echo_arg(void *arg)
{
	return arg;
}

/* One create + join; the joined value proves the thread itself ran. 0, or 1 after the message. */
static int one_thread(long i)
{
	pthread_t t;
	void *ret = NULL;
	int e = pthread_create(&t, NULL, echo_arg, (void *)(intptr_t)(i + 1));
	if (e) {
		fprintf(stderr, "thread_create: pthread_create: %s\n", strerror(e));
		return 1;
	}
	e = pthread_join(t, &ret);
	if (e) {
		fprintf(stderr, "thread_create: pthread_join: %s\n", strerror(e));
		return 1;
	}
	if (ret != (void *)(intptr_t)(i + 1)) {
		fprintf(stderr, "thread_create: thread %ld returned %p, not %ld\n", i, ret, i + 1);
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 2000;
	if (n < 1) {
		fprintf(stderr, "usage: thread_create [N>0]\n");
		return 2;
	}
	for (long i = 0; i < n / 10; i++)
		if (one_thread(i))
			return 1;
	double t0 = now_ns();
	for (long i = 0; i < n; i++)
		if (one_thread(i))
			return 1;
	double t1 = now_ns();
	printf("thread_create threads=%ld ns_per_thread=%.1f\n", n, (t1 - t0) / (double)n);
	return 0;
}
