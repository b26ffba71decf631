/*
 * copies_mem MIB: the guest of tests/e2e/copies.sh (many copies resumed from one snapshot). Fills
 * MIB MiB with data derived from each word's index (key 0), prints "ready mib=<N>", then obeys
 * lines on stdin, one output line each:
 *   check K  reads every word and compares it with the data of key K: "check key=K ok", or
 *            "check key=K BAD word=<i>" at the first word that differs
 *   write K  rewrites every word with the data of key K: "write key=K done"
 *   quit     (or EOF) prints "end" and exits 0
 * Anything else prints "unknown command" and exits 1. Run alone (stdin /dev/null) it prints
 * "ready mib=N" and "end".
 */
// E2E: run 0 1
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static inline uint64_t data(uint64_t i, uint64_t key)
{
	return ((i * 0x9E3779B97F4A7C15ull) | 1) ^ (key * 0xD6E8FEB86659FD93ull);
}

int main(int argc, char **argv)
{
	long mib = argc == 2 ? atol(argv[1]) : 0;
	if (mib < 1) {
		printf("usage: copies_mem MIB(>0)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	size_t words = ((size_t)mib << 20) / sizeof(uint64_t);
	uint64_t *mem = mmap(NULL, (size_t)mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("mmap failed\n");
		return 1;
	}
	for (size_t i = 0; i < words; i++)
		mem[i] = data(i, 0);
	printf("ready mib=%ld\n", mib);

	char line[64];
	unsigned long key;
	while (fgets(line, sizeof line, stdin) && strcmp(line, "quit\n") != 0) {
		if (sscanf(line, "check %lu", &key) == 1) {
			size_t i = 0;
			while (i < words && mem[i] == data(i, key))
				i++;
			if (i == words)
				printf("check key=%lu ok\n", key);
			else
				printf("check key=%lu BAD word=%zu\n", key, i);
		} else if (sscanf(line, "write %lu", &key) == 1) {
			for (size_t i = 0; i < words; i++)
				mem[i] = data(i, key);
			printf("write key=%lu done\n", key);
		} else {
			printf("unknown command\n");
			return 1;
		}
	}
	printf("end\n");
	return 0;
}
