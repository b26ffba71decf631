/*
 * Threads that write memory as fast as they can, checking every word before they overwrite it,
 * for live snapshots (tests/e2e/live.sh): a snapshot taken while they run must hold exactly the
 * memory of its pause, so a program resumed from it finds each word as the pass before left it.
 *
 * Usage: live_churn [THREADS [MIB_EACH [PASSES [shared]]]] (default 2 4 3; "shared": the memory is
 * MAP_SHARED | MAP_ANONYMOUS, which a fork does not copy). Each thread owns MIB_EACH MiB
 * and makes PASSES passes over it; in pass g it expects word i to hold val(t, g-1, i) and writes
 * val(t, g, i). A word from a later pass (a page written after the pause) or an earlier one (a
 * page the snapshot missed) fails the check: "FAIL ..." and exit status 1. Prints "ready" once
 * every thread has written its memory once, "done" at the end.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct worker {
	int t;
	size_t words;
	long passes;
	uint64_t *mem;
	pthread_t th;
} worker_t;

static volatile int first_passes;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint64_t val(int t, long g, size_t i)
{
	return ((uint64_t)g << 40) ^ ((uint64_t)t << 32) ^ (i * 0x9E3779B97F4A7C15ull >> 24) ^ i;
}

static void *work(void *arg)
{
	worker_t *w = arg;
	for (long g = 1; g <= w->passes; g++) {
		for (size_t i = 0; i < w->words; i++) {
			uint64_t want = val(w->t, g - 1, i);
			if (w->mem[i] != want) {
				printf("FAIL thread %d pass %ld word %zu: %#lx, expected %#lx\n", w->t, g, i,
				       (unsigned long)w->mem[i], (unsigned long)want);
				fflush(stdout);
				_exit(1);
			}
			w->mem[i] = val(w->t, g, i);
		}
		if (g == 1) {
			pthread_mutex_lock(&lock);
			first_passes++;
			pthread_mutex_unlock(&lock);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	long mib = argc > 2 ? atol(argv[2]) : 4;
	long passes = argc > 3 ? atol(argv[3]) : 3;
	int share = argc > 4 && strcmp(argv[4], "shared") == 0 ? MAP_SHARED : MAP_PRIVATE;
	if (threads < 1 || threads > 64 || mib < 1 || passes < 1) {
		fprintf(stderr, "usage: live_churn [THREADS [MIB_EACH [PASSES [shared]]]]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	worker_t *ws = calloc((size_t)threads, sizeof(*ws));
	for (int t = 0; t < threads; t++) {
		ws[t] = (worker_t){.t = t, .words = (size_t)mib << 17, .passes = passes};
		ws[t].mem = mmap(NULL, (size_t)mib << 20, PROT_READ | PROT_WRITE, share | MAP_ANONYMOUS, -1, 0);
		if (ws[t].mem == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		for (size_t i = 0; i < ws[t].words; i++)
			ws[t].mem[i] = val(t, 0, i);
	}
	for (int t = 0; t < threads; t++)
		pthread_create(&ws[t].th, NULL, work, &ws[t]);
	int said = 0;
	while (!said) {
		pthread_mutex_lock(&lock);
		said = first_passes == threads;
		pthread_mutex_unlock(&lock);
		if (!said)
			usleep(1000);
	}
	printf("ready\n");
	for (int t = 0; t < threads; t++)
		pthread_join(ws[t].th, NULL);
	printf("done threads=%d passes=%ld\n", threads, passes);
	return 0;
}
