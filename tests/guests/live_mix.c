/*
 * A program whose memory changes in every way km must track while live incremental snapshots are
 * taken (tests/e2e/livechain.sh): threads storing words, a thread reading a file into its buffers
 * with read(2) (km writes those bytes, KVM does not see it), a thread that maps, fills and unmaps
 * memory and moves the break. Each thread checks all of its state before it changes it, so a
 * program resumed from a snapshot that holds any page as it was at another moment fails.
 *
 * Usage: live_mix [FILE [snap]] (FILE: made, default in the current directory; "snap": one more
 * thread asks km for live snapshots of itself, HC_snapshot with KEEP_RUNNING, one after the
 * other until the end, while others are asked from outside). Prints "ready" when
 * every thread has gone round once; reads stdin until a line or EOF, then each thread makes
 * three more rounds, main checks everything once more and prints "done". "FAIL ..." and exit 1
 * on any difference.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_hcall.h"

#define STORERS 2
#define STORE_WORDS (1u << 18) /* 2 MiB each */
#define FILE_BYTES (1u << 20)
#define RBUF 65536
#define RING 8

static volatile int stop;
static int rounds_done[STORERS + 2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *what, long a, long b)
{
	printf("FAIL %s %ld %ld\n", what, a, b);
	fflush(stdout);
	_exit(1);
}

static uint64_t mix(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x9E3779B97F4A7C15ull;
	return x ^ (x >> 29);
}

/* Counts a thread's round; true while it should go on (three rounds after stop). */
static int round_end(int t, int *after)
{
	pthread_mutex_lock(&lock);
	rounds_done[t]++;
	pthread_mutex_unlock(&lock);
	if (stop)
		(*after)++;
	return *after < 3;
}

/* --- stores --- */
static uint64_t *store_mem[STORERS];
static long store_round[STORERS];

static void *storer(void *arg)
{
	int t = (int)(intptr_t)arg, after = 0;
	uint64_t *m = store_mem[t];
	do {
		long g = store_round[t];
		for (size_t i = 0; i < STORE_WORDS; i++) {
			if (m[i] != mix(((uint64_t)t << 56) ^ ((uint64_t)g << 32) ^ i))
				fail("store", t, (long)i);
			m[i] = mix(((uint64_t)t << 56) ^ ((uint64_t)(g + 1) << 32) ^ i);
		}
		store_round[t] = g + 1; /* after the words, which a resumed pass goes on checking */
	} while (round_end(t, &after));
	return NULL;
}

/* --- read(2) into buffers --- */
static int data_fd;
static uint8_t rbuf[4][RBUF];
static long rbuf_off[4]; /* which file offset each buffer holds, -1 none */

static uint8_t file_byte(long off)
{
	return (uint8_t)mix((uint64_t)off / 8) ^ (uint8_t)off;
}

static void check_rbuf(int b)
{
	if (rbuf_off[b] < 0)
		return;
	for (long i = 0; i < RBUF; i++)
		if (rbuf[b][i] != file_byte(rbuf_off[b] + i))
			fail("read buffer", b, i);
}

static void *reader(void *arg)
{
	(void)arg;
	int after = 0;
	long k = 0;
	do {
		for (int b = 0; b < 4; b++, k++) {
			check_rbuf(b);
			long off = (k * 12289) % (FILE_BYTES - RBUF);
			rbuf_off[b] = -1;
			if (pread(data_fd, rbuf[b], RBUF, off) != RBUF)
				fail("pread", b, off);
			rbuf_off[b] = off;
			check_rbuf(b);
		}
	} while (round_end(STORERS, &after));
	return NULL;
}

/* --- mmap, munmap, brk --- */
static uint64_t *ring[RING];
static size_t ring_words[RING];
static uint64_t ring_tag[RING];
static uint64_t *brk_base;
static size_t brk_words;
static uint64_t brk_tag;

/* The raw brk (musl's sbrk moves nothing): the break at brk_base + bytes. */
static int set_brk(size_t bytes)
{
	uintptr_t want = (uintptr_t)brk_base + bytes;
	return (uintptr_t)syscall(SYS_brk, want) == want ? 0 : -1;
}

static void check_words(const uint64_t *p, size_t n, uint64_t tag, const char *what)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != mix(tag ^ i))
			fail(what, (long)tag, (long)i);
}

static void check_mapper(void)
{
	for (int r = 0; r < RING; r++)
		if (ring[r] != NULL)
			check_words(ring[r], ring_words[r], ring_tag[r], "mapping");
	check_words(brk_base, brk_words, brk_tag, "brk");
}

static void *mapper(void *arg)
{
	(void)arg;
	int after = 0;
	uint64_t seq = 1;
	while (__atomic_load_n(&brk_base, __ATOMIC_ACQUIRE) == NULL)
		usleep(100);
	do {
		for (int r = 0; r < RING; r++, seq++) {
			check_mapper();
			if (ring[r] != NULL) {
				uint64_t *old = ring[r];
				ring[r] = NULL;
				munmap(old, ring_words[r] * 8);
			}
			size_t words = (1 + seq % 37) * 512;
			uint64_t *p = mmap(NULL, words * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (p == MAP_FAILED)
				fail("mmap", r, (long)seq);
			for (size_t i = 0; i < words; i++)
				p[i] = mix((seq << 8) ^ i);
			ring_words[r] = words;
			ring_tag[r] = seq << 8;
			ring[r] = p;
			/* The break moves: shrunk to nothing, then grown to a size that changes. */
			brk_words = 0;
			size_t n = (1 + seq % 23) * 512;
			if (set_brk(0) < 0 || set_brk(n * 8) < 0)
				fail("brk", r, (long)seq);
			brk_tag = (seq << 8) | 1;
			for (size_t i = 0; i < n; i++)
				brk_base[i] = mix(brk_tag ^ i);
			brk_words = n;
		}
	} while (round_end(STORERS + 1, &after));
	return NULL;
}

/* Its own live snapshots, until the others are done (a failure, EBUSY when one from outside is
 * being taken, is not the point here: the snapshots from outside are). */
static volatile int snapper_stop;

static void *snapper(void *arg)
{
	(void)arg;
	while (!snapper_stop)
		(void)km_snapshot("live_mix", KM_SNAPSHOT_KEEP_RUNNING);
	return NULL;
}

static int data_file(const char *name)
{
	int fd = open(name, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return -1;
	static uint8_t chunk[RBUF];
	for (long off = 0; off < FILE_BYTES; off += RBUF) {
		for (long i = 0; i < RBUF; i++)
			chunk[i] = file_byte(off + i);
		if (pwrite(fd, chunk, RBUF, off) != RBUF)
			return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	static char outbuf[4096];
	setvbuf(stdout, outbuf, _IOLBF, sizeof(outbuf)); /* no malloc: it could move the break */
	if ((data_fd = data_file(argc > 1 ? argv[1] : "live_mix.data")) < 0) {
		perror("data file");
		return 2;
	}
	if (argc < 2)
		unlink("live_mix.data"); /* a run without arguments leaves nothing behind */
	for (int b = 0; b < 4; b++)
		rbuf_off[b] = -1;
	for (int t = 0; t < STORERS; t++) {
		store_mem[t] = mmap(NULL, STORE_WORDS * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (store_mem[t] == MAP_FAILED) {
			perror("mmap");
			return 2;
		}
		for (size_t i = 0; i < STORE_WORDS; i++)
			store_mem[t][i] = mix(((uint64_t)t << 56) ^ i);
	}
	pthread_t th[STORERS + 2];
	for (int t = 0; t < STORERS; t++)
		pthread_create(&th[t], NULL, storer, (void *)(intptr_t)t);
	pthread_create(&th[STORERS], NULL, reader, NULL);
	/* Taken once every malloc that could extend the break (threads' TLS) is made: the mapper
	 * moves it with raw brk, which glibc's malloc would not know of. */
	pthread_create(&th[STORERS + 1], NULL, mapper, NULL);
	__atomic_store_n(&brk_base, (uint64_t *)syscall(SYS_brk, 0), __ATOMIC_RELEASE);
	for (int all = 0; !all; usleep(1000)) {
		pthread_mutex_lock(&lock);
		all = 1;
		for (int t = 0; t < STORERS + 2; t++)
			all &= rounds_done[t] > 0;
		pthread_mutex_unlock(&lock);
	}
	pthread_t snap_th;
	int snapping = argc > 2 && strcmp(argv[2], "snap") == 0;
	if (snapping)
		pthread_create(&snap_th, NULL, snapper, NULL);
	printf("ready\n");
	char line[64];
	if (read(0, line, sizeof(line)) < 0)
		perror("read stdin");
	stop = 1;
	for (int t = 0; t < STORERS + 2; t++)
		pthread_join(th[t], NULL);
	snapper_stop = 1;
	if (snapping)
		pthread_join(snap_th, NULL);
	for (int t = 0; t < STORERS; t++)
		for (size_t i = 0; i < STORE_WORDS; i++)
			if (store_mem[t][i] != mix(((uint64_t)t << 56) ^ ((uint64_t)store_round[t] << 32) ^ i))
				fail("store at the end", t, (long)i);
	for (int b = 0; b < 4; b++)
		check_rbuf(b);
	check_mapper();
	printf("done\n");
	return 0;
}
