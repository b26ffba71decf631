/*
 * Memory that must not change under a resumed program (tests/e2e/snaplease.sh). Fills five
 * kinds of memory with a known pattern - initialised data, bss, the heap (brk), an anonymous
 * mmap of MIB MiB and a read-only mmap - then, given "snap FILE [MIB]", snapshots itself into
 * FILE and, once resumed, reads commands on stdin, one per line:
 *   check       every region still holds its pattern: prints "check N: ok", or FAIL lines
 *   spin N      checks N times in a row without a syscall (the vCPU stays in the guest): prints
 *               "spin: ok", or FAIL lines
 *   touch       rewrites the same bytes into every other page of the writable regions (those
 *               pages become the program's own copies, the others stay the file's)
 *   overwrite FILE  opens FILE for writing and overwrites its first MiB with 0xa5 (the program
 *               itself breaking km's lease on its own snapshot): prints "overwritten"
 *   snap FILE   another snapshot into FILE, going on: prints "snapshot taken" (or "resumed")
 *   quit        exits 0
 * and prints "ready" before each read. Without arguments it fills and checks once (natively
 * too). Natively "snap" prints the not-under-km line and exits 77.
 */
// E2E: run 0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "snap_common.h"

#define PAGE 4096ul
#define SMALL (256ul << 10)

static unsigned char data_area[SMALL] = {1}; /* initialised: in the program's data segment */
static unsigned char bss_area[SMALL];

struct region {
	const char *name;
	unsigned char *p;
	size_t len;
	int writable;
};

static struct region regions[5];
static int nregions;

static unsigned char pattern(int r, size_t i)
{
	return (unsigned char)((i * 131 + (size_t)r * 17 + (i >> 12)) % 255 + 1);
}

static void fill(int r)
{
	for (size_t i = 0; i < regions[r].len; i++)
		regions[r].p[i] = pattern(r, i);
}

static void add(const char *name, void *p, size_t len, int writable)
{
	if (p == MAP_FAILED || p == NULL) {
		printf("FAIL allocating %s: %s\n", name, strerror(errno));
		exit(1);
	}
	regions[nregions] = (struct region){name, p, len, 1};
	fill(nregions);
	if (!writable && mprotect(p, len, PROT_READ) < 0) {
		printf("FAIL mprotect %s: %s\n", name, strerror(errno));
		exit(1);
	}
	regions[nregions++].writable = writable;
}

static void setup(size_t mib)
{
	add("data", data_area, SMALL, 1);
	add("bss", bss_area, SMALL, 1);
	/* The heap itself (brk), not malloc, which takes large blocks from mmap. */
	unsigned char *brk0 = (unsigned char *)syscall(SYS_brk, 0);
	size_t heap = 1ul << 20;
	if ((unsigned char *)syscall(SYS_brk, brk0 + heap) != brk0 + heap)
		brk0 = NULL;
	add("heap", brk0, heap, 1);
	add("anon", mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
	    mib << 20, 1);
	add("readonly", mmap(NULL, SMALL, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), SMALL,
	    0);
}

static int check(void)
{
	int bad = 0;
	for (int r = 0; r < nregions; r++) {
		for (size_t i = 0; i < regions[r].len; i++) {
			if (regions[r].p[i] != pattern(r, i)) {
				if (bad++ < 5)
					printf("FAIL %s at offset %zu: %#x, expected %#x\n", regions[r].name, i,
					       regions[r].p[i], pattern(r, i));
			}
		}
	}
	return bad;
}

static void touch(void)
{
	for (int r = 0; r < nregions; r++)
		for (size_t pg = 0; regions[r].writable && pg < regions[r].len / PAGE; pg += 2)
			regions[r].p[pg * PAGE] = pattern(r, pg * PAGE);
}

static void serve(void)
{
	char line[4200];
	int n = 0;
	for (;;) {
		printf("ready\n");
		fflush(stdout);
		if (fgets(line, sizeof(line), stdin) == NULL) {
			printf("end of input\n");
			exit(0);
		}
		line[strcspn(line, "\n")] = '\0';
		if (strcmp(line, "check") == 0) {
			n++;
			if (check() == 0)
				printf("check %d: ok\n", n);
		} else if (strncmp(line, "spin ", 5) == 0) {
			long passes = strtol(line + 5, NULL, 0), bad = 0;
			for (long i = 0; i < passes && bad == 0; i++)
				bad = check();
			if (bad == 0)
				printf("spin: ok\n");
		} else if (strncmp(line, "overwrite ", 10) == 0) {
			static char junk[1 << 20];
			memset(junk, 0xa5, sizeof(junk));
			int fd = open(line + 10, O_WRONLY);
			if (fd < 0 || pwrite(fd, junk, sizeof(junk), 0) != (ssize_t)sizeof(junk))
				printf("FAIL overwriting %s: %s\n", line + 10, strerror(errno));
			else
				printf("overwritten\n");
			if (fd >= 0)
				close(fd);
		} else if (strcmp(line, "touch") == 0) {
			touch();
			printf("touched\n");
		} else if (strncmp(line, "snap ", 5) == 0) {
			long r = snap_take("again", KM_SNAPSHOT_KEEP_RUNNING, line + 5, NULL);
			if (r == KM_SNAPSHOT_TAKEN)
				printf("snapshot taken\n");
			else if (r == KM_SNAPSHOT_RESUMED)
				printf("resumed\n");
			else
				snap_failed(r);
		} else if (strcmp(line, "quit") == 0) {
			exit(0);
		} else {
			printf("FAIL unknown command '%s'\n", line);
		}
	}
}

int main(int argc, char **argv)
{
	setup(argc > 3 ? strtoul(argv[3], NULL, 0) : 8);
	if (check() != 0)
		return 1;
	if (argc < 3 || strcmp(argv[1], "snap") != 0) {
		printf("filled and checked\n");
		return 0;
	}
	long r = snap_take("lease", 0, argv[2], NULL);
	if (r != KM_SNAPSHOT_RESUMED)
		snap_failed(r);
	printf("resumed\n");
	serve();
}
