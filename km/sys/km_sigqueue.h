/*
 * Pending signals: one queue per thread and one for the process, as Linux keeps them. A standard
 * signal (1-31) is pending at most once (a second one while it waits is merged into it); a
 * real-time signal (32-64) queues every instance with its own siginfo, in order. Taking picks
 * what Linux's dequeue picks: the synchronous fault signals first, then the lowest number.
 * Not locked: the owner (km_signal.c) holds its lock.
 */
#ifndef KM_SIGQUEUE_H
#define KM_SIGQUEUE_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Most signals one queue holds at once; a real-time signal past it is refused with EAGAIN
 * (sigqueue) or dropped (kill), as past Linux's RLIMIT_SIGPENDING. */
#define KM_SIGQUEUE_MAX 1024

#define KM_SIGBIT(sig) (1ull << ((sig) - 1))

typedef struct km_sigqueue {
	uint64_t set;    /* signals with at least one entry (bit sig-1) */
	siginfo_t *info; /* entries, in the order they came */
	size_t n, cap;
} km_sigqueue_t;

/* Adds info (si_signo 1..64). Returns 0 if queued, 1 if a standard signal already pending took
 * it, -EAGAIN if the queue is full, -ENOMEM. */
int km_sigqueue_add(km_sigqueue_t *q, const siginfo_t *info);

/* Takes the next signal among `allowed` (a mask, bit sig-1) into *out. False if none. */
bool km_sigqueue_take(km_sigqueue_t *q, uint64_t allowed, siginfo_t *out);

/* Takes the next instance of exactly `sig` (false if none). */
bool km_sigqueue_take_sig(km_sigqueue_t *q, int sig, siginfo_t *out);

/* Drops every instance of the signals in `mask` (a disposition became "ignore"). */
void km_sigqueue_discard(km_sigqueue_t *q, uint64_t mask);

/* Entry i (0 <= i < q->n), in arrival order: what a snapshot records. */
const siginfo_t *km_sigqueue_at(const km_sigqueue_t *q, size_t i);

void km_sigqueue_free(km_sigqueue_t *q);

#endif
