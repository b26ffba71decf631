/*
 * timespec arithmetic in nanoseconds, one place for it (deadlines of waits, sleeps carried in
 * snapshots, timers). Times here are never negative except the difference, which is signed.
 */
#ifndef KM_TIME_H
#define KM_TIME_H

#include <stdint.h>
#include <time.h>

#define KM_NS_PER_SEC 1000000000ull

static inline uint64_t km_ts_ns(struct timespec t)
{
	return (uint64_t)t.tv_sec * KM_NS_PER_SEC + (uint64_t)t.tv_nsec;
}

static inline struct timespec km_ns_ts(uint64_t ns)
{
	return (struct timespec){(time_t)(ns / KM_NS_PER_SEC), (long)(ns % KM_NS_PER_SEC)};
}

/* a - b, in nanoseconds (negative when b is later). */
static inline int64_t km_ts_diff_ns(struct timespec a, struct timespec b)
{
	return (int64_t)(a.tv_sec - b.tv_sec) * (int64_t)KM_NS_PER_SEC + (a.tv_nsec - b.tv_nsec);
}

static inline struct timespec km_ts_add_ns(struct timespec t, uint64_t ns)
{
	struct timespec d = km_ns_ts(ns);
	t.tv_sec += d.tv_sec;
	t.tv_nsec += d.tv_nsec;
	if (t.tv_nsec >= (long)KM_NS_PER_SEC) {
		t.tv_sec++;
		t.tv_nsec -= (long)KM_NS_PER_SEC;
	}
	return t;
}

/* The time on clock c, ns from now (an absolute deadline for clock c). */
static inline struct timespec km_clock_in(clockid_t c, uint64_t ns)
{
	struct timespec now = {0, 0};
	clock_gettime(c, &now);
	return km_ts_add_ns(now, ns);
}

#endif
