/*
 * touch_first MAP_MIB[:TOUCH_MIB]: the program of the bench's first-touch rows (section touch).
 * Maps MAP_MIB MiB of anonymous memory, stores one byte into each 4 KiB page of its first
 * TOUCH_MIB MiB (default: all of it), once, and prints
 *   touch_ns=<time of the stores> pages=<pages touched> rss_kb=<VmRSS after the stores>
 * The time is taken inside the program (CLOCK_MONOTONIC), so process start and exit are not in it;
 * rss_kb shows what a map-much-touch-little program pays in memory (VmRSS of /proc/self/status).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = -1;
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atol(line + 6);
	if (f != NULL)
		fclose(f);
	return kb;
}

static double now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(int argc, char **argv)
{
	long map_mib = argc > 1 ? atol(argv[1]) : 0;
	const char *colon = argc > 1 ? strchr(argv[1], ':') : NULL;
	long touch_mib = colon != NULL ? atol(colon + 1) : map_mib;
	if (argc != 2 || map_mib < 1 || touch_mib < 0 || touch_mib > map_mib) {
		printf("usage: touch_first MAP_MIB(>0)[:TOUCH_MIB(<=MAP_MIB)]\n");
		return 2;
	}
	size_t len = (size_t)map_mib << 20, touch = (size_t)touch_mib << 20;
	volatile uint8_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("error: mmap of %ld MiB\n", map_mib);
		return 1;
	}
	double t0 = now_ns();
	for (size_t off = 0; off < touch; off += 4096)
		mem[off] = 1;
	double t1 = now_ns();
	printf("touch_ns=%.0f pages=%zu rss_kb=%ld\n", t1 - t0, touch / 4096, rss_kb());
	return 0;
}
