/*
 * Incremental snapshots (tests/e2e/incremental.sh): a program that changes its memory in steps,
 * each step a line on stdin ("1".."5"), and after each prints a hash of all of it ("sum N H"),
 * then "done N" and waits. The test takes a snapshot after each step, each naming the one
 * before as its parent; resumed, the program reads "check" and prints "sum check H", which must
 * be the hash of the step the snapshot was taken at. The steps change memory every way an
 * incremental snapshot must see: the program's stores, km's writes into its buffers (read,
 * pread), mmap, munmap, mremap, brk up and down, mprotect, MADV_DONTNEED, a private file
 * mapping, and a second thread's stores.
 *
 *   incr_mem [DATAFILE]   (DATAFILE: a file of at least 16 KiB, read and mapped; default: the
 *                         program's own file. Run by run.sh without input: no step, checks only)
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

#define PG 4096
#define A_PAGES 512
#define B_PAGES 256
#define C_PAGES 64 /* exactly the hole A's tail leaves */

static uint8_t g_data[64 * PG];
static uint8_t *a, *b, *c, *f, *heap, *tbuf;
static size_t b_len, heap_len, a_len;
static int datafd, to_thread[2], from_thread[2];

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *s = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

/* Everything the steps change, and the program's own code (mapped from its file). */
static uint64_t sum(void)
{
	uint64_t h = 0xcbf29ce484222325ull;
	h = fnv(h, g_data, sizeof(g_data));
	h = fnv(h, (const void *)((uintptr_t)&sum & ~(uintptr_t)(PG - 1)), PG);
	if (a != NULL)
		h = fnv(h, a, a_len);
	if (b != NULL)
		h = fnv(h, b, b_len);
	if (c != NULL)
		h = fnv(h, c, C_PAGES * PG);
	if (f != NULL)
		h = fnv(h, f, 4 * PG);
	if (heap != NULL)
		h = fnv(h, heap, heap_len);
	return fnv(h, tbuf, 64 * PG);
}

static void fill(uint8_t *p, size_t pages, unsigned step, unsigned every)
{
	for (size_t i = 0; i < pages; i += every)
		memset(p + i * PG, (int)(step * 31 + i) & 0xff, PG);
}

/* The second thread: changes its buffer once per step, then waits in read (a snapshot finds it
 * blocked there, as a program's threads usually are). */
static void *thread_main(void *arg)
{
	(void)arg;
	uint8_t step;
	while (read(to_thread[0], &step, 1) == 1) {
		fill(tbuf, 64, step, step);
		if (write(from_thread[1], &step, 1) != 1)
			break;
	}
	return NULL;
}

static bool move_brk(uint8_t *to)
{
	return (uint8_t *)syscall(SYS_brk, to) == to;
}

static void step1(void)
{
	a_len = A_PAGES * PG;
	a = mmap(NULL, a_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(a != MAP_FAILED, "mmap A");
	fill(a, A_PAGES, 1, 1);
	heap = (uint8_t *)syscall(SYS_brk, 0); /* musl's sbrk only reports the break */
	heap_len = 16 * PG;
	CHECK(move_brk(heap + heap_len), "brk up");
	fill(heap, 16, 1, 1);
	fill(g_data, 64, 1, 1);
	b_len = B_PAGES * PG;
	b = mmap(NULL, b_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(b != MAP_FAILED, "mmap B");
	fill(b, B_PAGES, 1, 3);
}

static void step2(void)
{
	fill(a, A_PAGES, 2, 7);
	a_len = (A_PAGES - 64) * PG;
	CHECK_SYS(munmap(a + a_len, 64 * PG), "munmap A's tail");
	uint8_t *nb = mremap(b, b_len, 2 * b_len, MREMAP_MAYMOVE);
	CHECK(nb != MAP_FAILED, "mremap B bigger");
	b = nb;
	fill(b + b_len, B_PAGES, 2, 5);
	b_len *= 2;
	f = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, datafd, 0);
	CHECK(f != MAP_FAILED, "mmap the data file privately");
	f[PG + 5] = 'w';
	CHECK(pread(datafd, a + 3 * PG, PG, 2 * PG) == PG, "read the data file into A (km writes the page)");
}

static void step3(void)
{
	CHECK(move_brk(heap + heap_len - 8 * PG), "brk down");
	CHECK(move_brk(heap + heap_len), "brk up again");
	fill(heap + 12 * PG, 2, 3, 1); /* pages 8..11 came back as zero, 14..15 too */
	c = mmap(a + a_len, C_PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(c != MAP_FAILED, "mmap C where A's tail was");
	fill(c, C_PAGES, 3, 2);
	CHECK_SYS(madvise(a + 10 * PG, 10 * PG, MADV_DONTNEED), "MADV_DONTNEED part of A");
}

static void step4(void)
{
	CHECK_SYS(mprotect(a, 4 * PG, PROT_READ), "A's first pages read-only");
	fill(g_data, 64, 4, 9);
	CHECK(pread(datafd, b + 7 * PG, 3 * PG, PG) == 3 * PG, "read the data file into B");
}

static void step5(void)
{
	CHECK_SYS(munmap(c, C_PAGES * PG), "munmap C");
	c = mmap(c, C_PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(c != MAP_FAILED, "mmap C again, zero");
	c[37 * PG] = 5;
	f[2 * PG] = 'x';
}

/* After a resume: B (its pages from several files) moved and grown reads zero past its old end,
 * not what follows in the file one of its pages came from. */
static void grow_b(void)
{
	size_t more = 16 * PG;
	uint8_t *to = mmap(NULL, b_len + more, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED && munmap(to, b_len + more) == 0, "a place to move B to");
	uint8_t *nb = mremap(b, b_len, b_len + more, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(nb == to, "mremap B elsewhere, bigger");
	if (nb != to)
		return;
	size_t nonzero = 0;
	for (size_t i = 0; i < more; i++)
		nonzero += nb[b_len + i] != 0;
	CHECK(nonzero == 0, "B's grown part reads zero (%zu bytes do not)", nonzero);
	b = nb;
	b_len += more;
}

int main(int argc, char **argv)
{
	datafd = CHECK_SYS(open(argc > 1 ? argv[1] : "/proc/self/exe", O_RDONLY), "open the data file");
	tbuf = mmap(NULL, 64 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(tbuf != MAP_FAILED, "the thread's buffer");
	CHECK_SYS(pipe(to_thread), "pipe");
	CHECK_SYS(pipe(from_thread), "pipe");
	pthread_t t;
	CHECK(pthread_create(&t, NULL, thread_main, NULL) == 0, "a second thread");
	void (*steps[])(void) = {step1, step2, step3, step4, step5};
	char line[32];
	while (fgets(line, sizeof(line), stdin) != NULL) {
		if (strcmp(line, "check\n") == 0) {
			printf("sum check %016llx\n", (unsigned long long)sum());
			grow_b();
			CHECK_SYS(madvise(a + 30 * PG, 4 * PG, MADV_DONTNEED), "MADV_DONTNEED part of A again");
			size_t nonzero = 0;
			for (size_t i = 0; i < 4 * PG; i++)
				nonzero += a[30 * PG + i] != 0;
			CHECK(nonzero == 0, "A's pages read zero after MADV_DONTNEED (%zu bytes do not)", nonzero);
			continue;
		}
		int n = atoi(line);
		if (n < 1 || n > 5)
			continue;
		steps[n - 1]();
		uint8_t s = (uint8_t)n;
		CHECK(write(to_thread[1], &s, 1) == 1 && read(from_thread[0], &s, 1) == 1, "the thread's step %d", n);
		printf("sum %d %016llx\n", n, (unsigned long long)sum());
		printf("done %d\n", n);
	}
	return check_done();
}
