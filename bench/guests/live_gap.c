/*
 * live_gap MIB: the pause of a live snapshot as the program sees it. Touches MIB MiB of memory,
 * then one thread reads CLOCK_MONOTONIC in a loop (the vDSO under km and natively: no exit, no
 * syscall) and keeps the largest gap between two consecutive reads while a window is open; the
 * rest of the memory is written all the while (a program that works during its snapshot).
 * Prints "ready" once touched; each line on stdin then toggles the window: "start" opens it,
 * "stop" closes it and prints "max_gap_ns=<N>", end of input ends the program. The bench opens the
 * window, takes a live snapshot (km --mgmt mode=continue, or criu dump --leave-running), closes
 * it. Exit status 0, 2 on bad usage.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static atomic_int window, quit;
static atomic_uint_fast64_t max_gap;
static uint8_t *mem;
static size_t len;

static uint64_t now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *clock_reader(void *arg)
{
	(void)arg;
	uint64_t last = now();
	size_t at = 0;
	while (!atomic_load_explicit(&quit, memory_order_relaxed)) {
		/* A write to a page now and then: copy-on-write during the snapshot is part of the cost. */
		mem[at] = (uint8_t)(mem[at] + 1);
		at = (at + 4096 * 7) % len;
		uint64_t t = now();
		if (atomic_load_explicit(&window, memory_order_relaxed) && t - last > atomic_load(&max_gap))
			atomic_store(&max_gap, t - last);
		last = t;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long mib = argc == 2 ? atol(argv[1]) : 0;
	if (mib < 1) {
		fprintf(stderr, "usage: live_gap MIB\n");
		return 2;
	}
	len = (size_t)mib << 20;
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("live_gap: mmap");
		return 1;
	}
	for (size_t i = 0; i < len; i += 4096)
		mem[i] = (uint8_t)(i >> 12 | 1);
	pthread_t th;
	pthread_create(&th, NULL, clock_reader, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	char line[64];
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (strncmp(line, "start", 5) == 0) {
			atomic_store(&max_gap, 0);
			atomic_store(&window, 1);
		} else if (strncmp(line, "stop", 4) == 0) {
			atomic_store(&window, 0);
			printf("max_gap_ns=%lu\n", (unsigned long)atomic_load(&max_gap));
		}
	}
	atomic_store(&quit, 1);
	pthread_join(th, NULL);
	return 0;
}
