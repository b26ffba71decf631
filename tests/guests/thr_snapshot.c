/*
 * Threads to snapshot from outside (issue 7; tests/e2e/threads.sh takes the snapshots through
 * km's management socket and resumes them). Each mode prints "ready" once every thread is
 * where the snapshot should find it, and at the end a result line that depends only on the
 * arguments, never on scheduling: a run resumed from a snapshot taken at any moment must print
 * what an uninterrupted run prints.
 *
 *   thr_snapshot compute N    4 threads, each a long loop over its quarter of a shared array,
 *                             in 8 rounds separated by a barrier (each round reads the whole
 *                             array the previous one wrote: double-buffered); N = work per round
 *   thr_snapshot condwait N   3 threads parked in pthread_cond_wait while the main thread computes
 *                             (N steps), then woken to compute their own parts
 *   thr_snapshot nanosleep MS 4 threads in nanosleep(MS ms) (which must return 0, also in a
 *                             resumed copy), then computing; the main thread in pthread_join
 *   thr_snapshot churn N      N rounds of 4 short-lived threads created and joined (a snapshot
 *                             finds threads being born and ending: each must be whole, alive
 *                             or gone with its joiner woken)
 */
// E2E: compute 0 compute 20
// E2E: condwait 0 condwait 200000
// E2E: nanosleep 0 nanosleep 20
// E2E: churn 0 churn 50
#include <pthread.h>
#include <stdint.h>
#include <time.h>

#include "check.h"

#define NT 4
#define ROUNDS 8
#define WORDS 65536 /* 512 KiB per buffer */

static uint64_t buf[2][WORDS];
static pthread_barrier_t barrier;
static unsigned long work;
static double fp_acc[NT];

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
	h *= 0x100000001b3ull;
	return h ^ (h >> 29);
}

static void fill(void)
{
	for (uint64_t i = 0; i < WORDS; i++)
		buf[0][i] = i * 0x9E3779B97F4A7C15ull;
}

static uint64_t digest(const uint64_t *a, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = mix(h, a[i]);
	return h;
}

/* One thread's share of one round: its quarter of the next buffer from all of the current. */
static void round_part(int id, int r, unsigned long steps)
{
	const uint64_t *cur = buf[r & 1];
	uint64_t *next = buf[(r + 1) & 1];
	size_t lo = (size_t)id * (WORDS / NT), hi = lo + WORDS / NT;
	double acc = fp_acc[id];

	for (size_t i = lo; i < hi; i++) {
		uint64_t h = cur[i];
		for (unsigned long s = 0; s < steps; s++) {
			h = mix(h, cur[(h ^ s) & (WORDS - 1)]);
			acc = acc * 0.999999 + (double)(h & 0xffff) * 1e-6;
		}
		next[i] = h;
	}
	fp_acc[id] = acc;
}

static void *compute_worker(void *arg)
{
	int id = (int)(uintptr_t)arg;

	pthread_barrier_wait(&barrier); /* all started: main prints "ready" */
	for (int r = 0; r < ROUNDS; r++) {
		round_part(id, r, work);
		pthread_barrier_wait(&barrier);
	}
	return NULL;
}

static void print_result(uint64_t h)
{
	double acc = 0;

	for (int i = 0; i < NT; i++)
		acc += fp_acc[i];
	printf("result: %016llx %.17g\n", (unsigned long long)h, acc);
}

static int compute(void)
{
	pthread_t t[NT];

	fill();
	pthread_barrier_init(&barrier, NULL, NT + 1);
	for (int i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, compute_worker, (void *)(uintptr_t)i);
	pthread_barrier_wait(&barrier);
	printf("ready\n");
	fflush(stdout);
	/* The main thread takes part in the barriers between rounds too. */
	for (int r = 0; r < ROUNDS; r++)
		pthread_barrier_wait(&barrier);
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	print_result(digest(buf[ROUNDS & 1], WORDS));
	return 0;
}

/* --- condwait ------------------------------------------------------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int parked, go;

static void *parked_worker(void *arg)
{
	int id = (int)(uintptr_t)arg;

	pthread_mutex_lock(&mu);
	parked++;
	pthread_cond_broadcast(&cv);
	while (!go)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	/* Reads what main wrote before it set go: ordered by the mutex. */
	round_part(id, 0, 3);
	return NULL;
}

static int condwait(unsigned long steps)
{
	pthread_t t[NT - 1];
	uint64_t h = 1;

	fill();
	for (int i = 0; i < NT - 1; i++)
		pthread_create(&t[i], NULL, parked_worker, (void *)(uintptr_t)i);
	pthread_mutex_lock(&mu);
	while (parked < NT - 1)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	/* Every worker is in pthread_cond_wait (or on its way into it holding nothing). */
	printf("ready\n");
	fflush(stdout);
	for (unsigned long s = 0; s < steps; s++)
		h = mix(h, buf[0][(h ^ s) & (WORDS - 1)]);
	pthread_mutex_lock(&mu);
	for (int i = 0; i < NT; i++)
		buf[0][i] = mix(h, (uint64_t)i);
	go = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < NT - 1; i++)
		pthread_join(t[i], NULL);
	print_result(mix(h, digest(buf[1], (WORDS / NT) * (NT - 1))));
	return 0;
}

/* --- nanosleep ----------------------------------------------------------------------------- */

static long sleep_ms;
static int sleep_failed[NT];

static void *sleeper(void *arg)
{
	int id = (int)(uintptr_t)arg;
	struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000}, rem;

	pthread_barrier_wait(&barrier);
	while (nanosleep(&ts, &rem) != 0) {
		if (errno != EINTR) {
			sleep_failed[id] = errno;
			break;
		}
		sleep_failed[id] = EINTR; /* nothing here sends signals: an EINTR is km's doing */
		ts = rem;
	}
	round_part(id, 0, 5);
	return NULL;
}

static int sleeping(void)
{
	pthread_t t[NT];
	int bad = 0;

	fill();
	pthread_barrier_init(&barrier, NULL, NT + 1);
	for (int i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, sleeper, (void *)(uintptr_t)i);
	pthread_barrier_wait(&barrier);
	printf("ready\n");
	fflush(stdout);
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NT; i++)
		if (sleep_failed[i]) {
			printf("FAIL thread %d: nanosleep failed: %s\n", i, strerror(sleep_failed[i]));
			bad = 1;
		}
	print_result(digest(buf[1], WORDS));
	return bad;
}

static void *churner(void *arg)
{
	uint64_t *slot = arg, h = *slot;
	for (int i = 0; i < 2000; i++)
		h = mix(h, (uint64_t)i);
	*slot = h;
	return NULL;
}

static int churn(unsigned long rounds)
{
	uint64_t acc = 7;
	printf("ready\n");
	fflush(stdout);
	for (unsigned long r = 0; r < rounds; r++) {
		pthread_t t[NT];
		uint64_t v[NT];
		for (int i = 0; i < NT; i++) {
			v[i] = acc + (uint64_t)i;
			if (pthread_create(&t[i], NULL, churner, &v[i]) != 0) {
				printf("FAIL pthread_create in round %lu\n", r);
				return 1;
			}
		}
		for (int i = 0; i < NT; i++) {
			pthread_join(t[i], NULL);
			acc = mix(acc, v[i]);
		}
	}
	print_result(acc);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	unsigned long n = argc > 2 ? strtoul(argv[2], NULL, 0) : 0;

	if (strcmp(mode, "compute") == 0) {
		work = n;
		return compute();
	}
	if (strcmp(mode, "condwait") == 0)
		return condwait(n);
	if (strcmp(mode, "nanosleep") == 0) {
		sleep_ms = (long)n;
		return sleeping();
	}
	if (strcmp(mode, "churn") == 0)
		return churn(n);
	printf("usage: thr_snapshot compute|condwait|nanosleep|churn N\n");
	return 2;
}
