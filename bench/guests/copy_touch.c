/*
 * copy_touch MIB: the program of the `copies` rows (bench/run.sh). Touches MIB MiB of memory with
 * non-zero data, prints "touched mib=<N>" and "ready pid=<pid>", and blocks in read() on stdin: the
 * state in which it is snapshotted (km --mgmt) or dumped (criu dump), and in which it waits when
 * run natively.
 *
 * Whoever lets it go on writes one line "go W\n" to its stdin (W: MiB to rewrite, 0 or more). It
 * then reads every word of its MIB MiB and checks it (so every page is mapped in this copy, as in
 * a program that uses its memory), writes new data over the first W MiB (pages only this copy
 * has), prints "running checked_pages=<n> wrote_mib=<W>" with one write(2), and blocks in read()
 * on stdin again until it is closed, then exits 0. A word that does not hold its data prints
 * "verify=BAD ..." and exits 1. Everything goes to stdout. Status 2 on bad usage.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE 4096ul

/* Never zero, different in every word: no page can be skipped or deduplicated. */
static inline uint64_t pattern(uint64_t i)
{
	return (i * 0x9E3779B97F4A7C15ull) | 1;
}

/* read_line: one line of stdin (without the '\n') into buf; -1 on EOF or an error before it. */
static int read_line(char *buf, size_t size)
{
	size_t n = 0;
	for (;;) {
		char c;
		ssize_t r = read(0, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return n > 0 ? 0 : -1;
		if (c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
	}
	buf[n] = 0;
	return 0;
}

int main(int argc, char **argv)
{
	long mib = argc == 2 ? atol(argv[1]) : 0;
	if (mib < 1) {
		printf("usage: copy_touch MIB(>0)\n");
		return 2;
	}
	size_t len = (size_t)mib << 20, words = len / sizeof(uint64_t);
	uint64_t *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("error: mmap of %ld MiB: %s\n", mib, strerror(errno));
		return 1;
	}
	for (size_t i = 0; i < words; i++)
		mem[i] = pattern(i);
	printf("touched mib=%ld\nready pid=%d\n", mib, (int)getpid());
	fflush(stdout);

	char line[64];
	long wmib;
	if (read_line(line, sizeof line) < 0 || sscanf(line, "go %ld", &wmib) != 1 || wmib < 0 || wmib > mib) {
		printf("error: expected 'go W' (0 <= W <= %ld) on stdin\n", mib);
		return 1;
	}
	for (size_t i = 0; i < words; i++) {
		if (mem[i] != pattern(i)) {
			printf("verify=BAD word=%zu has %#llx, expected %#llx\n", i, (unsigned long long)mem[i],
			       (unsigned long long)pattern(i));
			return 1;
		}
	}
	size_t wwords = ((size_t)wmib << 20) / sizeof(uint64_t);
	for (size_t i = 0; i < wwords; i++)
		mem[i] = ~pattern(i);
	char msg[96];
	int n = snprintf(msg, sizeof msg, "running checked_pages=%zu wrote_mib=%ld\n", len / PAGE, wmib);
	if (write(1, msg, (size_t)n) != n)
		return 1;
	while (read_line(line, sizeof line) == 0)
		;
	return 0;
}
