/*
 * brk and malloc stress: raw brk grow/shrink, many allocation sizes with pattern checks, realloc
 * keeping contents, calloc zeroing (including reuse of dirtied memory), and large allocations
 * that go to mmap.
 */
// E2E: run 0
#include <stdint.h>
#include <sys/syscall.h>

#include "check.h"

#define NSLOTS 2048

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (unsigned char)(seed * 31 + i * 7 + (i >> 8));
}

static int verify(const unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != (unsigned char)(seed * 31 + i * 7 + (i >> 8)))
			return 0;
	return 1;
}

static int all_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static void test_brk(void)
{
	uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0), grown, back;
	size_t len = 1 << 20;
	unsigned char *p = (unsigned char *)cur;

	CHECK(cur != 0 && cur != (uintptr_t)-1, "brk(0) returns the current break");
	grown = (uintptr_t)syscall(SYS_brk, cur + len);
	CHECK(grown == cur + len, "brk grows by 1 MiB");
	if (grown == cur + len) {
		CHECK(all_zero(p, len), "new brk memory is zero");
		fill(p, len, 7);
		CHECK(verify(p, len, 7), "new brk memory is writable and keeps data");
		back = (uintptr_t)syscall(SYS_brk, cur);
		CHECK(back == cur, "brk shrinks back");
		grown = (uintptr_t)syscall(SYS_brk, cur + 4096);
		CHECK(grown == cur + 4096 && all_zero(p, 4096), "brk regrown after shrink is zero again");
		syscall(SYS_brk, cur);
	}
	CHECK((uintptr_t)syscall(SYS_brk, 0) == cur, "break restored");
}

static void test_sizes(void)
{
	static unsigned char *slot[NSLOTS];
	static size_t size[NSLOTS];
	unsigned long long seed = 12345;
	int round, i, bad = 0, aligned = 1;

	for (round = 0; round < 40000; round++) {
		i = (int)(check_rand(&seed) % NSLOTS);
		if (slot[i]) {
			if (!verify(slot[i], size[i], (unsigned)i))
				bad++;
			if (check_rand(&seed) % 3 == 0) {
				size_t nsize = check_rand(&seed) % 5000;
				size_t keep = nsize < size[i] ? nsize : size[i];
				unsigned char *np = realloc(slot[i], nsize ? nsize : 1);
				if (!np || !verify(np, keep, (unsigned)i))
					bad++;
				slot[i] = np;
				size[i] = nsize;
				if (np)
					fill(np, nsize, (unsigned)i);
			} else {
				free(slot[i]);
				slot[i] = NULL;
			}
		} else {
			unsigned r = (unsigned)(check_rand(&seed) % 100);
			size_t s = r < 60 ? check_rand(&seed) % 64 : r < 95 ? check_rand(&seed) % 4096
							       : check_rand(&seed) % 300000;
			slot[i] = malloc(s);
			size[i] = s;
			if (!slot[i]) {
				bad++;
				continue;
			}
			if ((uintptr_t)slot[i] % 16)
				aligned = 0;
			fill(slot[i], s, (unsigned)i);
		}
	}
	for (i = 0; i < NSLOTS; i++) {
		if (slot[i] && !verify(slot[i], size[i], (unsigned)i))
			bad++;
		free(slot[i]);
	}
	CHECK_EQ(bad, 0, "40000 random malloc/realloc/free keep every pattern intact");
	CHECK(aligned, "malloc results are 16-byte aligned");
}

static void test_calloc(void)
{
	int i, ok = 1;

	for (i = 0; i < 200; i++) {
		size_t n = 1 + (size_t)i * 37;
		unsigned char *p = malloc(n);
		memset(p, 0xa5, n);
		free(p);
		p = calloc(n, 1);
		if (!p || !all_zero(p, n))
			ok = 0;
		free(p);
	}
	CHECK(ok, "calloc zeroes memory even when reusing dirtied chunks");
	volatile size_t huge = (size_t)1 << 62;
	CHECK(calloc(huge, 16) == NULL, "calloc overflow returns NULL");
}

static void test_large(void)
{
	size_t sizes[] = {200 << 10, 1 << 20, 16 << 20, 100 << 20};
	unsigned i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i], j;
		unsigned char *p = malloc(n), *q;
		int ok = p != NULL;

		if (p) {
			for (j = 0; j < n; j += 4096)
				p[j] = (unsigned char)(j >> 12);
			p[n - 1] = 0x5a;
			for (j = 0; j < n; j += 4096)
				ok &= p[j] == (unsigned char)(j >> 12);
			ok &= p[n - 1] == 0x5a;
		}
		CHECK(ok, "large malloc #%u is usable end to end", i);
		q = p ? realloc(p, n * 2) : NULL;
		ok = q != NULL;
		if (q) {
			for (j = 0; j < n; j += 4096)
				ok &= q[j] == (unsigned char)(j >> 12);
			q[2 * n - 1] = 1;
		}
		CHECK(ok, "large realloc #%u to double size keeps contents", i);
		free(q ? q : p);
		p = calloc(n, 1);
		CHECK(p && all_zero(p, n), "large calloc #%u is zero", i);
		free(p);
	}
	volatile size_t absurd = (size_t)1 << 60;
	errno = 0;
	CHECK(malloc(absurd) == NULL && errno == ENOMEM, "absurd malloc fails with ENOMEM");
}

int main(void)
{
	test_brk();
	test_sizes();
	test_calloc();
	test_large();
	return check_done();
}
