/*
 * pthread synchronisation under load (issue 7): mutex, condition variable, barrier and rwlock
 * stress with 8 threads and with 3 x the host's cores (more threads than vCPUs can run at once).
 * Every shared counter is checked exactly; the totals are printed per thread, and the thread
 * count as "8" or "3 x cores", so that the output is the same on every host.
 */
// E2E: run 0
#include <pthread.h>
#include <stdint.h>

#include "check.h"

#define MAX_THREADS 512
#define MUTEX_ROUNDS 4000
#define BARRIER_ROUNDS 60
#define RW_ROUNDS 1500
#define QUEUE_ITEMS 3000

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t barrier;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;

static int nthreads;
static unsigned long long counter;      /* under mu */
static unsigned long long barrier_sum;  /* under mu; checked between barriers */
static unsigned long long barrier_bad;  /* rounds where a thread saw a wrong sum */
static unsigned long long rw_a, rw_b;   /* written together under the write lock */
static unsigned long long rw_torn;      /* readers that saw rw_a != rw_b */
static unsigned long long rw_reads;     /* under mu */

/* A bounded queue of one slot per thread: producers and consumers on one condvar pair. */
static int q_len, q_cap;
static unsigned long long q_sum_in, q_sum_out;
static int q_produced, q_consumed;
static pthread_cond_t q_not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_not_empty = PTHREAD_COND_INITIALIZER;
static unsigned long long q_slots[MAX_THREADS];
static int q_head, q_tail;

static void *mutex_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < MUTEX_ROUNDS; i++) {
		pthread_mutex_lock(&mu);
		counter++;
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

static void *barrier_worker(void *arg)
{
	unsigned long long id = (unsigned long long)(uintptr_t)arg;

	for (int r = 0; r < BARRIER_ROUNDS; r++) {
		pthread_mutex_lock(&mu);
		barrier_sum += id + 1;
		pthread_mutex_unlock(&mu);
		pthread_barrier_wait(&barrier);
		/* Everyone added: the sum is exactly r+1 rounds of 1..n. */
		pthread_mutex_lock(&mu);
		if (barrier_sum != (unsigned long long)(r + 1) * nthreads * (nthreads + 1) / 2)
			barrier_bad++;
		pthread_mutex_unlock(&mu);
		pthread_barrier_wait(&barrier);
	}
	return NULL;
}

static void *rw_worker(void *arg)
{
	unsigned long long id = (unsigned long long)(uintptr_t)arg;
	unsigned long long reads = 0, torn = 0;

	for (int i = 0; i < RW_ROUNDS; i++) {
		if ((i + id) % 4 == 0) {
			pthread_rwlock_wrlock(&rw);
			rw_a++;
			sched_yield(); /* widen the window in which a reader would see a torn pair */
			rw_b++;
			pthread_rwlock_unlock(&rw);
		} else {
			pthread_rwlock_rdlock(&rw);
			if (rw_a != rw_b)
				torn++;
			reads++;
			pthread_rwlock_unlock(&rw);
		}
	}
	pthread_mutex_lock(&mu);
	rw_torn += torn;
	rw_reads += reads;
	pthread_mutex_unlock(&mu);
	return NULL;
}

static void *producer(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mu);
		if (q_produced == QUEUE_ITEMS) {
			pthread_mutex_unlock(&mu);
			return NULL;
		}
		unsigned long long item = (unsigned long long)++q_produced;
		while (q_len == q_cap)
			pthread_cond_wait(&q_not_full, &mu);
		q_slots[q_tail] = item * item;
		q_tail = (q_tail + 1) % q_cap;
		q_len++;
		q_sum_in += item * item;
		pthread_cond_signal(&q_not_empty);
		pthread_mutex_unlock(&mu);
	}
}

static void *consumer(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_mutex_lock(&mu);
		while (q_len == 0 && q_consumed < QUEUE_ITEMS)
			pthread_cond_wait(&q_not_empty, &mu);
		if (q_consumed == QUEUE_ITEMS) {
			pthread_cond_broadcast(&q_not_empty); /* wake the other consumers to leave */
			pthread_mutex_unlock(&mu);
			return NULL;
		}
		q_sum_out += q_slots[q_head];
		q_head = (q_head + 1) % q_cap;
		q_len--;
		q_consumed++;
		pthread_cond_signal(&q_not_full);
		if (q_consumed == QUEUE_ITEMS)
			pthread_cond_broadcast(&q_not_empty);
		pthread_mutex_unlock(&mu);
	}
}

/* Runs fn in n threads (arg = thread index) and joins them all; false if any call failed. */
static int run_threads(int n, void *(*fn)(void *))
{
	pthread_t t[MAX_THREADS];
	int ok = 1, i;

	for (i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, fn, (void *)(uintptr_t)i) != 0) {
			ok = 0;
			break;
		}
	for (int j = 0; j < i; j++)
		if (pthread_join(t[j], NULL) != 0)
			ok = 0;
	return ok;
}

/* Half producers, half consumers (at least one of each). */
static int run_queue(int n)
{
	pthread_t t[MAX_THREADS];
	int ok = 1, i, np = n / 2 > 0 ? n / 2 : 1;

	q_len = q_head = q_tail = q_produced = q_consumed = 0;
	q_sum_in = q_sum_out = 0;
	q_cap = n < 4 ? 2 : n / 2;
	for (i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, i < np ? producer : consumer, NULL) != 0) {
			ok = 0;
			break;
		}
	for (int j = 0; j < i; j++)
		if (pthread_join(t[j], NULL) != 0)
			ok = 0;
	return ok;
}

static void stress(int n, const char *label)
{
	unsigned long long want_q = 0;

	nthreads = n;
	counter = 0;
	CHECK(run_threads(n, mutex_worker), "%s: mutex threads created and joined", label);
	CHECK_EQ(counter, (unsigned long long)n * MUTEX_ROUNDS, "%s: mutex counter exact", label);

	barrier_sum = barrier_bad = 0;
	CHECK(pthread_barrier_init(&barrier, NULL, (unsigned)n) == 0, "%s: barrier init", label);
	CHECK(run_threads(n, barrier_worker), "%s: barrier threads created and joined", label);
	CHECK_EQ(barrier_bad, 0, "%s: every thread saw every round's full sum at the barrier", label);
	CHECK_EQ(barrier_sum, (unsigned long long)BARRIER_ROUNDS * n * (n + 1) / 2,
		 "%s: barrier sum exact", label);
	pthread_barrier_destroy(&barrier);

	rw_a = rw_b = rw_torn = rw_reads = 0;
	CHECK(run_threads(n, rw_worker), "%s: rwlock threads created and joined", label);
	CHECK_EQ(rw_torn, 0, "%s: no reader saw a half-done write", label);
	CHECK_EQ(rw_a, rw_b, "%s: both rwlock counters agree", label);
	CHECK_EQ(rw_a + rw_reads, (unsigned long long)n * RW_ROUNDS, "%s: every rwlock round counted", label);

	CHECK(run_queue(n), "%s: producer/consumer threads created and joined", label);
	for (unsigned long long i = 1; i <= QUEUE_ITEMS; i++)
		want_q += i * i;
	CHECK_EQ(q_consumed, QUEUE_ITEMS, "%s: every queued item consumed", label);
	CHECK_EQ(q_sum_out, want_q, "%s: condvar queue sum exact", label);
	CHECK_EQ(q_sum_in, q_sum_out, "%s: queue sums in and out agree", label);
	/* Per thread, so that the line is the same whatever the host's core count. */
	printf("%s: per thread mutex %llu barrier rounds %llu rwlock rounds %llu; queue sum %llu\n",
	       label, counter / n, barrier_sum / ((unsigned long long)n * (n + 1) / 2),
	       (rw_a + rw_reads) / n, q_sum_out);
}

int main(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	int many;

	CHECK(cores >= 1, "sysconf(_SC_NPROCESSORS_ONLN) is positive");
	if (cores < 1)
		cores = 1;
	many = cores * 3 > MAX_THREADS ? MAX_THREADS : (int)cores * 3;
	stress(8, "8 threads");
	stress(many, "3 x cores threads");
	return check_done();
}
