/*
 * snap_threads MIB wait: the 4-thread program of the snapshot rows; snap_touch's wait mode with
 * every thread busy when the snapshot is taken.
 *
 * The main thread maps MIB MiB and starts 3 workers; each of the 4 threads writes the same
 * non-zero, different-in-every-word pattern as snap_touch into its own quarter. Once all four are
 * done the main thread prints "touched mib=<N> threads=4" and "ready pid=<pid>" and blocks in
 * read() on stdin, where an outside checkpointer (criu dump, km's management socket) takes the
 * program; meanwhile the 3 workers keep working without a syscall: each rewrites its quarter, one
 * page at a time and round and round, with the values already there (so the memory stays
 * checkable while its pages are dirtied) and counts the pages it wrote.
 *
 * Whoever restores it writes one byte to its new stdin. The main thread then writes "resumed"
 * with one write(2) (the first output the bench times), waits until every worker's count has
 * moved (each worker runs again after the resume; there is no time limit here, the caller's
 * timeout catches a worker that never does), stops and joins them, checks the first word of every
 * 64th page and the last word, and prints "verify=ok checked=<n> threads=4" (or "verify=BAD ..."
 * and exits 1). Everything goes to stdout (a checkpointer may have replaced stderr with
 * /dev/null). Exit status 0 when resumed and verified, 1 on failure, 2 on bad usage.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ul
#define THREADS 4
#define PAGE_WORDS (PAGE / sizeof(uint64_t))

static inline uint64_t pattern(uint64_t i)
{
	return (i * 0x9E3779B97F4A7C15ull) | 1;
}

struct part {
	uint64_t *mem;
	size_t first, end; /* word range of this thread's quarter */
	pthread_t tid;
	_Atomic unsigned long pages; /* pages rewritten since the touch */
	char pad[64];                /* keep the counters on separate cache lines */
};

static struct part parts[THREADS];
static pthread_barrier_t touched;
static atomic_int stop;

static void touch(struct part *p)
{
	for (size_t i = p->first; i < p->end; i++)
		p->mem[i] = pattern(i);
}

static void *worker(void *arg)
{
	struct part *p = arg;
	touch(p);
	pthread_barrier_wait(&touched);
	size_t i = p->first;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t end = i + PAGE_WORDS < p->end ? i + PAGE_WORDS : p->end;
		for (; i < end; i++)
			((volatile uint64_t *)p->mem)[i] = pattern(i);
		if (i >= p->end)
			i = p->first;
		atomic_fetch_add_explicit(&p->pages, 1, memory_order_relaxed);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long mib = argc == 3 ? atol(argv[1]) : 0;
	if (mib < 1 || strcmp(argv[2], "wait") != 0) {
		printf("usage: snap_threads MIB(>0) wait\n");
		return 2;
	}
	size_t len = (size_t)mib << 20, words = len / sizeof(uint64_t);
	uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("error: mmap of %ld MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	int e = pthread_barrier_init(&touched, NULL, THREADS);
	if (e) {
		printf("error: pthread_barrier_init: %s\n", strerror(e));
		return 1;
	}
	for (int t = 0; t < THREADS; t++) {
		parts[t].mem = mem;
		parts[t].first = words / THREADS * (size_t)t;
		parts[t].end = t == THREADS - 1 ? words : words / THREADS * (size_t)(t + 1);
	}
	for (int t = 1; t < THREADS; t++) {
		e = pthread_create(&parts[t].tid, NULL, worker, &parts[t]);
		if (e) {
			printf("error: pthread_create of worker %d: %s\n", t, strerror(e));
			return 1;
		}
	}
	touch(&parts[0]);
	pthread_barrier_wait(&touched);

	printf("touched mib=%ld threads=%d\nready pid=%d\n", mib, THREADS, (int)getpid());
	fflush(stdout);
	char c;
	ssize_t n;
	while ((n = read(0, &c, 1)) < 0 && errno == EINTR)
		;
	if (n != 1) {
		printf("error: stdin %s before the resume\n", n == 0 ? "closed" : strerror(errno));
		return 1;
	}
	static const char first[] = "resumed\n";
	if (write(1, first, sizeof first - 1) != (ssize_t)(sizeof first - 1))
		return 1;

	unsigned long seen[THREADS];
	for (int t = 1; t < THREADS; t++)
		seen[t] = atomic_load(&parts[t].pages);
	for (int t = 1; t < THREADS; t++)
		while (atomic_load(&parts[t].pages) == seen[t])
			sched_yield();
	atomic_store(&stop, 1);
	for (int t = 1; t < THREADS; t++) {
		e = pthread_join(parts[t].tid, NULL);
		if (e) {
			printf("error: pthread_join of worker %d: %s\n", t, strerror(e));
			return 1;
		}
	}

	size_t checked = 0, step = 64 * PAGE_WORDS;
	for (size_t i = 0; i < words + step; i += step) {
		size_t w = i < words ? i : words - 1; /* the last round checks the last word */
		checked++;
		if (mem[w] != pattern(w)) {
			printf("verify=BAD word=%zu has %#llx, expected %#llx\n", w, (unsigned long long)mem[w],
			       (unsigned long long)pattern(w));
			return 1;
		}
	}
	printf("verify=ok checked=%zu threads=%d\n", checked, THREADS);
	return 0;
}
