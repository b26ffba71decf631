/*
 * Raw futex operations (issue 7), the ones glibc, musl and Go use: WAIT/WAKE and their _PRIVATE
 * forms, WAIT_BITSET/WAKE_BITSET with absolute CLOCK_MONOTONIC and CLOCK_REALTIME timeouts,
 * relative timeouts, REQUEUE, CMP_REQUEUE, WAKE_OP, LOCK_PI/UNLOCK_PI/TRYLOCK_PI between threads.
 *
 * Counts of woken waiters are deterministic: a waiter is known to sleep only once an operation
 * has found it, so the test repeats wakes and requeues until they have found every waiter, and
 * parks waiters on a word of its own choosing by requeueing them there.
 */
// E2E: run 0
#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include "check.h"
#include "futex_ops.h"

static long futex(volatile int *uaddr, int op, int val, const struct timespec *ts)
{
	return futex6(uaddr, op, val, ts, NULL, 0);
}

/* The count argument of REQUEUE/CMP_REQUEUE/WAKE_OP travels in the timeout's slot. */
static long futex_requeue(volatile int *from, int op, int nr_wake, long nr_second, volatile int *to, int val3)
{
	return futex6(from, op, nr_wake, (const void *)nr_second, to, val3);
}

static long tid(void)
{
	return syscall(SYS_gettid);
}

static void pause_briefly(void)
{
	usleep(1000);
}

static void timespec_add_ms(struct timespec *t, long ms)
{
	t->tv_nsec += ms * 1000000;
	t->tv_sec += t->tv_nsec / 1000000000;
	t->tv_nsec %= 1000000000;
}

static int timespec_ge(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec > b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec >= b->tv_nsec);
}

/* --- waiters ------------------------------------------------------------------------------ */

struct waiter {
	pthread_t thread;
	volatile int *word;
	int op;
	int bitset;
	long result;
	int err;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	errno = 0;
	if (w->bitset)
		w->result = futex6(w->word, w->op, 0, NULL, NULL, w->bitset);
	else
		w->result = futex(w->word, w->op, 0, NULL);
	w->err = errno;
	return NULL;
}

static void start_waiter(struct waiter *w, volatile int *word, int op, int bitset)
{
	w->word = word;
	w->op = op;
	w->bitset = bitset;
	w->result = -2;
	pthread_create(&w->thread, NULL, waiter_main, w);
}

/* Joins the waiter; true if its wait ended by a wake (0). */
static int join_woken(struct waiter *w)
{
	pthread_join(w->thread, NULL);
	return w->result == 0;
}

/* Repeats a wake of word until it has woken n waiters in all; returns how many it woke. */
static long wake_all_eventually(volatile int *word, int op, int n, int bitset)
{
	long total = 0, r;

	while (total < n) {
		r = bitset ? futex6(word, op, n - (int)total, NULL, NULL, bitset) : futex(word, op, n - (int)total, NULL);
		if (r < 0)
			return r;
		total += r;
		if (total < n)
			pause_briefly();
	}
	return total;
}

/* --- the tests ---------------------------------------------------------------------------- */

static volatile int w1, w2, w3;

static void test_eagain(void)
{
	w1 = 5;
	CHECK_ERR(futex(&w1, FUTEX_WAIT, 4, NULL), EAGAIN, "WAIT on a word that differs: EAGAIN");
	CHECK_ERR(futex(&w1, FUTEX_WAIT_PRIVATE, 6, NULL), EAGAIN, "WAIT_PRIVATE on a word that differs: EAGAIN");
	CHECK_ERR(futex6(&w1, FUTEX_WAIT_BITSET, 0, NULL, NULL, 1), EAGAIN, "WAIT_BITSET on a word that differs: EAGAIN");
	CHECK_EQ(futex(&w1, FUTEX_WAKE, 1, NULL), 0, "WAKE with no waiter wakes 0");
	CHECK_EQ(futex(&w1, FUTEX_WAKE_PRIVATE, INT_MAX, NULL), 0, "WAKE_PRIVATE with no waiter wakes 0");
	CHECK_ERR(futex6(&w1, FUTEX_WAIT_BITSET, 5, NULL, NULL, 0), EINVAL, "WAIT_BITSET with an empty bitset: EINVAL");
	CHECK_ERR(futex(&w1, 99, 0, NULL), ENOSYS, "an unknown futex operation: ENOSYS");
	w1 = 0;
}

static void test_wait_wake(void)
{
	static const int ops[2][2] = {{FUTEX_WAIT, FUTEX_WAKE}, {FUTEX_WAIT_PRIVATE, FUTEX_WAKE_PRIVATE}};
	struct waiter w[3];

	for (int p = 0; p < 2; p++) {
		const char *kind = p ? "_PRIVATE" : "";
		w1 = 0;
		for (int i = 0; i < 3; i++)
			start_waiter(&w[i], &w1, ops[p][0], 0);
		CHECK_EQ(wake_all_eventually(&w1, ops[p][1], 3, 0), 3, "WAKE%s woke the 3 WAIT%s waiters", kind, kind);
		int all = 1;
		for (int i = 0; i < 3; i++)
			all &= join_woken(&w[i]);
		CHECK(all, "each WAIT%s returned 0 when woken", kind);
	}
}

static void test_bitset(void)
{
	struct waiter a, b;

	w1 = 0;
	start_waiter(&a, &w1, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0x1);
	start_waiter(&b, &w1, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, 0x6);
	CHECK_EQ(futex6(&w1, FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG, INT_MAX, NULL, NULL, 0x8), 0,
		 "WAKE_BITSET with a bitset no waiter has wakes 0");
	CHECK_EQ(wake_all_eventually(&w1, FUTEX_WAKE_BITSET | FUTEX_PRIVATE_FLAG, 1, 0x4), 1,
		 "WAKE_BITSET 0x4 wakes the waiter with 0x6");
	CHECK(join_woken(&b), "the 0x6 waiter returned 0");
	CHECK_EQ(wake_all_eventually(&w1, FUTEX_WAKE_PRIVATE, 1, 0), 1,
		 "plain WAKE wakes the remaining bitset waiter (it matches any)");
	CHECK(join_woken(&a), "the 0x1 waiter returned 0");
}

static void test_timeouts(void)
{
	struct timespec deadline, now, rel = {0, 20 * 1000000}, past = {0, 0}, bad = {0, 1000000000};

	w1 = 0;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	timespec_add_ms(&deadline, 20);
	CHECK_ERR(futex6(&w1, FUTEX_WAIT_BITSET, 0, &deadline, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT,
		  "WAIT_BITSET until an absolute CLOCK_MONOTONIC time: ETIMEDOUT");
	clock_gettime(CLOCK_MONOTONIC, &now);
	CHECK(timespec_ge(&now, &deadline), "... and not before that time");

	clock_gettime(CLOCK_REALTIME, &deadline);
	timespec_add_ms(&deadline, 20);
	CHECK_ERR(futex6(&w1, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME | FUTEX_PRIVATE_FLAG, 0, &deadline,
			 NULL, FUTEX_BITSET_MATCH_ANY),
		  ETIMEDOUT, "WAIT_BITSET_PRIVATE until an absolute CLOCK_REALTIME time: ETIMEDOUT");
	clock_gettime(CLOCK_REALTIME, &now);
	CHECK(timespec_ge(&now, &deadline), "... and not before that time");

	CHECK_ERR(futex6(&w1, FUTEX_WAIT_BITSET, 0, &past, NULL, FUTEX_BITSET_MATCH_ANY), ETIMEDOUT,
		  "WAIT_BITSET until a time long past: ETIMEDOUT at once");

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_ERR(futex(&w1, FUTEX_WAIT, 0, &rel), ETIMEDOUT, "WAIT with a relative 20 ms timeout: ETIMEDOUT");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	timespec_add_ms(&t0, 20);
	CHECK(timespec_ge(&t1, &t0), "... after at least 20 ms");
	CHECK_ERR(futex(&w1, FUTEX_WAIT_PRIVATE, 0, &rel), ETIMEDOUT, "WAIT_PRIVATE with a relative timeout: ETIMEDOUT");
	CHECK_ERR(futex(&w1, FUTEX_WAIT, 0, &bad), EINVAL, "WAIT with tv_nsec of a full second: EINVAL");
}

static void test_requeue(void)
{
	const int op_rq = FUTEX_REQUEUE | FUTEX_PRIVATE_FLAG, op_cmp = FUTEX_CMP_REQUEUE | FUTEX_PRIVATE_FLAG;
	struct waiter w[3];
	long moved = 0, r;

	w1 = w2 = 0;
	for (int i = 0; i < 3; i++)
		start_waiter(&w[i], &w1, FUTEX_WAIT_PRIVATE, 0);
	/* REQUEUE without waking: every waiter ends up asleep on w2, found one call at a time. */
	while (moved < 3) {
		r = futex_requeue(&w1, op_rq, 0, INT_MAX, &w2, 0);
		if (r < 0)
			break;
		moved += r;
		if (moved < 3)
			pause_briefly();
	}
	CHECK_EQ(moved, 3, "REQUEUE moved the 3 waiters from one word to another");
	CHECK_EQ(futex(&w1, FUTEX_WAKE_PRIVATE, INT_MAX, NULL), 0, "none is left on the first word");

	w2 = 7;
	CHECK_ERR(futex_requeue(&w2, op_cmp, 1, INT_MAX, &w1, 8), EAGAIN,
		  "CMP_REQUEUE when the word is not the value given: EAGAIN");
	CHECK_EQ(futex_requeue(&w2, op_cmp, 1, INT_MAX, &w1, 7), 3,
		 "CMP_REQUEUE woke 1 and requeued 2 (returns 3)");
	CHECK_EQ(futex(&w2, FUTEX_WAKE_PRIVATE, INT_MAX, NULL), 0, "none is left on the second word");
	CHECK_EQ(futex(&w1, FUTEX_WAKE_PRIVATE, INT_MAX, NULL), 2, "the 2 requeued are back on the first word");
	int all = 1;
	for (int i = 0; i < 3; i++)
		all &= join_woken(&w[i]);
	CHECK(all, "every requeued waiter returned 0 when woken");
}

static void test_wake_op(void)
{
	const int op = FUTEX_WAKE_OP | FUTEX_PRIVATE_FLAG;
	struct waiter a, b;
	long parked = 0, r;

	w1 = w2 = w3 = 0;
	CHECK_EQ(futex_requeue(&w1, op, 1, 1, &w2, FUTEX_OP(FUTEX_OP_ADD, 3, FUTEX_OP_CMP_EQ, 0)), 0,
		 "WAKE_OP with no waiters wakes 0");
	CHECK_EQ(w2, 3, "WAKE_OP's ADD changed the second word");
	w2 = 0;

	/* Park both on w3 first, then one on w1 and one on w2. */
	start_waiter(&a, &w3, FUTEX_WAIT_PRIVATE, 0);
	start_waiter(&b, &w3, FUTEX_WAIT_PRIVATE, 0);
	while (parked < 2) {
		r = futex_requeue(&w3, FUTEX_REQUEUE | FUTEX_PRIVATE_FLAG, 0, 1, parked ? &w2 : &w1, 0);
		if (r < 0)
			break;
		parked += r;
		if (parked < 2)
			pause_briefly();
	}
	CHECK_EQ(parked, 2, "one waiter parked on each of two words");
	CHECK_EQ(futex_requeue(&w1, op, 1, 1, &w2, FUTEX_OP(FUTEX_OP_SET, 5, FUTEX_OP_CMP_GT, 9)), 1,
		 "WAKE_OP whose condition fails wakes only the first word's waiter");
	CHECK_EQ(w2, 5, "WAKE_OP's SET stored into the second word");
	CHECK_EQ(futex_requeue(&w1, op, 1, 1, &w2, FUTEX_OP(FUTEX_OP_SET, 6, FUTEX_OP_CMP_EQ, 5)), 1,
		 "WAKE_OP whose condition holds wakes the second word's waiter too");
	CHECK_EQ(w2, 6, "WAKE_OP's SET stored again");
	CHECK(join_woken(&a) && join_woken(&b), "both WAKE_OP waiters returned 0");
}

/* --- priority inheritance ------------------------------------------------------------------ */

static volatile int pi_word;
static int pi_counter;
static long pi_thread_tid, pi_thread_lock, pi_thread_trylock_err, pi_thread_owner_ok, pi_thread_seen;

static void *pi_thread(void *arg)
{
	(void)arg;
	pi_thread_tid = tid();
	errno = 0;
	if (futex(&pi_word, FUTEX_TRYLOCK_PI, 0, NULL) == -1)
		pi_thread_trylock_err = errno;
	pi_thread_lock = futex(&pi_word, FUTEX_LOCK_PI, 0, NULL); /* blocks: main holds it */
	pi_thread_owner_ok = (pi_word & FUTEX_TID_MASK) == pi_thread_tid;
	pi_thread_seen = pi_counter;
	pi_counter++;
	futex(&pi_word, FUTEX_UNLOCK_PI, 0, NULL);
	return NULL;
}

static void test_pi(void)
{
	pthread_t t;

	pi_word = 0;
	CHECK_EQ(futex(&pi_word, FUTEX_TRYLOCK_PI, 0, NULL), 0, "TRYLOCK_PI of a free lock");
	CHECK_EQ(pi_word & FUTEX_TID_MASK, tid(), "the lock word holds the owner's tid");
	pthread_create(&t, NULL, pi_thread, NULL);
	/* The kernel marks the word once the other thread sleeps in LOCK_PI. */
	while (!(__atomic_load_n(&pi_word, __ATOMIC_ACQUIRE) & FUTEX_WAITERS))
		pause_briefly();
	CHECK_EQ(pi_thread_trylock_err, EAGAIN, "TRYLOCK_PI of a lock another thread holds: EAGAIN");
	pi_counter = 41;
	CHECK_EQ(futex(&pi_word, FUTEX_UNLOCK_PI, 0, NULL), 0, "UNLOCK_PI hands the lock over");
	pthread_join(t, NULL);
	CHECK_EQ(pi_thread_lock, 0, "LOCK_PI returned 0 in the waiting thread");
	CHECK(pi_thread_owner_ok, "the word held the new owner's tid while it owned the lock");
	CHECK_EQ(pi_thread_seen, 41, "the new owner saw what the old one wrote under the lock");
	CHECK_EQ(pi_word, 0, "the lock is free after both unlocked");
	CHECK_EQ(futex(&pi_word, FUTEX_LOCK_PI, 0, NULL), 0, "LOCK_PI of a free lock");
	CHECK_EQ(pi_word & FUTEX_TID_MASK, tid(), "... stores the caller's tid");
	CHECK_ERR(futex(&pi_word, FUTEX_LOCK_PI, 0, NULL), EDEADLK, "LOCK_PI of a lock the caller holds: EDEADLK");
	CHECK_EQ(futex(&pi_word, FUTEX_UNLOCK_PI, 0, NULL), 0, "UNLOCK_PI");
	CHECK_ERR(futex(&pi_word, FUTEX_UNLOCK_PI, 0, NULL), EPERM, "UNLOCK_PI of a lock the caller does not hold: EPERM");
}

/* A mutex-protected counter through pthread's own PI mutexes (glibc and musl use LOCK_PI). */
static pthread_mutex_t pim;
static unsigned long pim_count;

static void *pim_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < 3000; i++) {
		pthread_mutex_lock(&pim);
		pim_count++;
		pthread_mutex_unlock(&pim);
	}
	return NULL;
}

static void test_pi_mutex(void)
{
	pthread_mutexattr_t a;
	pthread_t t[4];

	pthread_mutexattr_init(&a);
	CHECK_EQ(pthread_mutexattr_setprotocol(&a, PTHREAD_PRIO_INHERIT), 0, "PTHREAD_PRIO_INHERIT attribute");
	pthread_mutex_init(&pim, &a);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, pim_worker, NULL);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(pim_count, 12000, "a PI mutex counted exactly by 4 threads");
	pthread_mutex_destroy(&pim);
	pthread_mutexattr_destroy(&a);
}

int main(void)
{
	test_eagain();
	test_wait_wake();
	test_bitset();
	test_timeouts();
	test_requeue();
	test_wake_op();
	test_pi();
	test_pi_mutex();
	return check_done();
}
