/*
 * snap_touch MIB self|wait: touches MIB MiB of memory with non-zero data, is snapshotted, and after
 * it is resumed prints one line (its "first output") and checks a sample of that memory.
 *
 *   self: snapshots itself through km (km_snapshot, runtime/include/km_hcall.h). Just before the
 *         call it prints "touched mib=<N> snap_start_ns=<CLOCK_MONOTONIC>" so that the bench can
 *         time the snapshot from the hypercall to km's exit (km exits once the file is written).
 *         Run natively, or under a km without snapshots, the call fails and the program says so
 *         and exits 1.
 *   wait: prints "touched mib=<N> ..." and then "ready pid=<pid>", and blocks in read() on stdin:
 *         the state in which an outside checkpointer (criu dump, km's management socket) takes
 *         it. Whoever restores it writes one byte to its new stdin to let it go on.
 *
 * After the resume it writes "resumed" with one write(2) (the first output the bench times), then
 * checks the first word of every 64th page and the last word, and prints "verify=ok checked=<n>"
 * (or "verify=BAD ..." and exits 1). Everything goes to stdout (a checkpointer may have replaced
 * stderr with /dev/null). Exit status 0 when resumed and verified, 1 on failure, 2 on bad usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "km_hcall.h"

#define PAGE 4096ul

/* Never zero, different in every word, cheap: the snapshot cannot skip or dedupe any page. */
static inline uint64_t pattern(uint64_t i)
{
	return (i * 0x9E3779B97F4A7C15ull) | 1;
}

static long long now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

int main(int argc, char **argv)
{
	long mib = argc > 2 ? atol(argv[1]) : 0;
	int self = argc > 2 && strcmp(argv[2], "self") == 0;
	if (mib < 1 || (!self && (argc < 3 || strcmp(argv[2], "wait") != 0))) {
		printf("usage: snap_touch MIB(>0) self|wait\n");
		return 2;
	}
	size_t len = (size_t)mib << 20;
	uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("error: mmap of %ld MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	size_t words = len / sizeof(uint64_t);
	for (size_t i = 0; i < words; i++)
		mem[i] = pattern(i);

	if (self) {
		long long t = now_ns();
		printf("touched mib=%ld snap_start_ns=%lld\n", mib, t);
		fflush(stdout);
		long r = km_snapshot("bench snap_touch", 0);
		if (r != KM_SNAPSHOT_RESUMED) {
			printf("error: km_snapshot returned %ld (%s), not 'resumed'\n", r,
			       r == -ENOSYS ? "ENOSYS: not under km, or km has no snapshots" :
			       r < 0 ? strerror((int)-r) : "km went on without exiting");
			return 1;
		}
	} else {
		printf("touched mib=%ld\nready pid=%d\n", mib, (int)getpid());
		fflush(stdout);
		char c;
		ssize_t n;
		while ((n = read(0, &c, 1)) < 0 && errno == EINTR)
			;
		if (n != 1) {
			printf("error: stdin %s before the resume\n", n == 0 ? "closed" : strerror(errno));
			return 1;
		}
	}
	static const char first[] = "resumed\n";
	if (write(1, first, sizeof first - 1) != (ssize_t)(sizeof first - 1))
		return 1;

	size_t checked = 0, step = 64 * PAGE / sizeof(uint64_t);
	for (size_t i = 0; i < words + step; i += step) {
		size_t w = i < words ? i : words - 1; /* the last round checks the last word */
		checked++;
		if (mem[w] != pattern(w)) {
			printf("verify=BAD word=%zu has %#llx, expected %#llx\n", w, (unsigned long long)mem[w],
			       (unsigned long long)pattern(w));
			return 1;
		}
	}
	printf("verify=ok checked=%zu\n", checked);
	return 0;
}
