/*
 * memlimit [exhaust MIB]: maps and touches 1 MiB anonymous chunks, then mallocs 1 MiB blocks,
 * until MIB of each or until the monitor says ENOMEM. Without arguments it takes 32 MiB both
 * ways and must succeed (runs natively and under km alike). With `exhaust` it is meant for
 * km --memory=SIZE smaller than MIB: it reports where mmap and malloc stopped, and exits 0 only
 * if both stopped with ENOMEM (not a crash) and memory still works afterwards.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "check.h"

#define MIB (1ul << 20)

static long map_chunks(long max, int *err)
{
	long n = 0;
	for (; n < max; n++) {
		char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			*err = errno;
			return n;
		}
		p[0] = 1;
		p[MIB - 1] = 2;
	}
	*err = 0;
	return n;
}

static long malloc_blocks(long max, int *err)
{
	long n = 0;
	for (; n < max; n++) {
		char *p = malloc(MIB);
		if (p == NULL) {
			*err = errno;
			return n;
		}
		memset(p, 0x5a, 4096);
	}
	*err = 0;
	return n;
}

int main(int argc, char **argv)
{
	int exhaust = argc > 2 && strcmp(argv[1], "exhaust") == 0;
	long max = exhaust ? atol(argv[2]) : 32;
	int err;
	long maps = map_chunks(max, &err);
	if (exhaust) {
		printf("mmap stopped after %ld MiB: %s\n", maps, err == ENOMEM ? "ENOMEM" : err ? strerror(err) : "no error");
		CHECK(err == ENOMEM, "mmap ends with ENOMEM");
	} else {
		CHECK(maps == max && err == 0, "mapped %ld MiB", max);
	}
	long blocks = malloc_blocks(max, &err);
	if (exhaust) {
		printf("malloc stopped after %ld MiB: %s\n", blocks, err == ENOMEM ? "ENOMEM" : err ? strerror(err) : "no error");
		CHECK(err == ENOMEM, "malloc ends with ENOMEM");
	} else {
		CHECK(blocks == max && err == 0, "malloc'd %ld MiB", max);
	}
	/* After running out, the program still works: small allocations and output. */
	char *small = malloc(64);
	CHECK(small != NULL || exhaust, "small malloc after the big ones");
	return check_done();
}
