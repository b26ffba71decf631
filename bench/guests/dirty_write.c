/*
 * dirty_write PAGES: what km's dirty tracker (km/mm/km_dirty.h, issue 11) costs the program. Maps
 * PAGES pages, stores once to each (first touch), again (tracking off), then has km start tracking
 * and collect, stores to each page again (the first store after a collect: what a program pays
 * per page it writes after each incremental snapshot), again (already written in the interval),
 * and times one more collect. Prints one line, times per page in ns:
 *   fresh_ns=N off_ns=N first_ns=N again_ns=N collect_us=N
 * Needs km --test-dirty-probe (the tracker's test-only hypercall); otherwise it says so, exits 1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#include "km_hcall.h"

#define PAGE 4096ul

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double store_each(volatile char *r, long pages)
{
	double t0 = now_ns();
	for (long p = 0; p < pages; p++)
		r[p * PAGE] ^= 1;
	return (now_ns() - t0) / pages;
}

static long probe(uint64_t op)
{
	km_hc_args_t a = {0, op, 0, 0, 0, 0, 0}; /* no room for the list: only the count comes back */
	return km_hcall(HC_dirty_probe, &a);
}

int main(int argc, char **argv)
{
	long pages = argc > 1 ? atol(argv[1]) : 0;
	if (pages <= 0) {
		fprintf(stderr, "usage: dirty_write PAGES\n");
		return 2;
	}
	char *r = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	double fresh = store_each(r, pages);
	double off = store_each(r, pages);
	if (probe(KM_DIRTY_PROBE_START) < 0 || probe(KM_DIRTY_PROBE_COLLECT) < 0) {
		printf("dirty probe not available (km --test-dirty-probe)\n");
		return 1;
	}
	double first = store_each(r, pages);
	double again = store_each(r, pages);
	double t0 = now_ns();
	long n = probe(KM_DIRTY_PROBE_COLLECT);
	double collect = now_ns() - t0;
	if (n < pages) {
		printf("collect reported %ld pages, expected at least %ld\n", n, pages);
		return 1;
	}
	printf("fresh_ns=%.0f off_ns=%.0f first_ns=%.0f again_ns=%.0f collect_us=%.0f\n", fresh, off, first, again,
	       collect / 1e3);
	return 0;
}
