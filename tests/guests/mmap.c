/*
 * Anonymous memory mappings: mmap/munmap/mprotect/mremap, MAP_FIXED over part of a mapping,
 * MAP_FIXED_NOREPLACE failing with EEXIST, address hints honoured when free, mremap
 * grow/shrink/move keeping contents, madvise(MADV_DONTNEED) zeroing private anonymous pages,
 * mincore, and error returns. Writes to read-only memory are tested by crash_mprotect.
 */
// E2E: run 0
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "check.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

static size_t pg;

static int filled(const unsigned char *p, size_t n, unsigned char c)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != c)
			return 0;
	return 1;
}

static void *anon(void *hint, size_t len, int prot, int extra)
{
	return mmap(hint, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1, 0);
}

/* 1 if every page of [p, p+len) is mapped (mincore succeeds), 0 if none is, -1 if mixed. */
static int mapped(void *p, size_t len)
{
	size_t i, n = 0;
	unsigned char v;

	for (i = 0; i < len; i += pg)
		if (mincore((char *)p + i, pg, &v) == 0)
			n++;
		else if (errno != ENOMEM)
			return -2;
	return n == len / pg ? 1 : n == 0 ? 0 : -1;
}

static void test_basic(void)
{
	unsigned char *p = anon(NULL, 16 * pg, PROT_READ | PROT_WRITE, 0);

	CHECK(p != MAP_FAILED, "mmap 16 anonymous pages");
	CHECK((uintptr_t)p % pg == 0, "mapping is page aligned");
	CHECK(filled(p, 16 * pg, 0), "anonymous memory starts zeroed");
	memset(p, 0x11, 16 * pg);
	CHECK(filled(p, 16 * pg, 0x11), "anonymous memory is writable");

	/* munmap the middle: both sides stay, the hole is gone. */
	CHECK_SYS(munmap(p + 4 * pg, 4 * pg), "munmap the middle 4 pages");
	CHECK_EQ(mapped(p + 4 * pg, 4 * pg), 0, "hole is unmapped (mincore ENOMEM)");
	CHECK_EQ(mapped(p, 4 * pg), 1, "pages before the hole still mapped");
	CHECK_EQ(mapped(p + 8 * pg, 8 * pg), 1, "pages after the hole still mapped");
	CHECK(filled(p, 4 * pg, 0x11) && filled(p + 8 * pg, 8 * pg, 0x11), "both sides keep their data");
	CHECK_SYS(munmap(p, 16 * pg), "munmap a range containing a hole");
	CHECK_EQ(mapped(p, 16 * pg), 0, "all gone");
	CHECK_SYS(munmap(p, 16 * pg), "munmap of unmapped memory succeeds");

	CHECK(anon(NULL, 0, PROT_READ, 0) == MAP_FAILED && errno == EINVAL, "mmap of length 0 fails EINVAL");
	CHECK(anon((void *)(pg + 1), pg, PROT_READ, MAP_FIXED) == MAP_FAILED && errno == EINVAL,
	      "MAP_FIXED at an unaligned address fails EINVAL");
	CHECK(mmap(NULL, pg, PROT_READ, MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL,
	      "mmap without MAP_PRIVATE/MAP_SHARED fails EINVAL");
	CHECK(mmap(NULL, pg, PROT_READ, MAP_PRIVATE, 12345, 0) == MAP_FAILED && errno == EBADF,
	      "file mmap of a bad fd fails EBADF");
	CHECK_ERR(munmap(p + 1, pg), EINVAL, "munmap unaligned fails EINVAL");
}

static void test_fixed(void)
{
	unsigned char *p = anon(NULL, 8 * pg, PROT_READ | PROT_WRITE, 0), *q;

	memset(p, 'A', 8 * pg);
	q = anon(p + 2 * pg, 3 * pg, PROT_READ | PROT_WRITE, MAP_FIXED);
	CHECK(q == p + 2 * pg, "MAP_FIXED over part of a mapping returns the exact address");
	CHECK(filled(p + 2 * pg, 3 * pg, 0), "MAP_FIXED replaced pages read as zero");
	CHECK(filled(p, 2 * pg, 'A') && filled(p + 5 * pg, 3 * pg, 'A'), "pages around it keep their data");

	errno = 0;
	q = anon(p + 6 * pg, pg, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE);
	CHECK(q == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE over a mapping fails EEXIST");
	CHECK(filled(p + 6 * pg, pg, 'A'), "failed MAP_FIXED_NOREPLACE left the page alone");
	q = anon(p + 7 * pg, 2 * pg, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE);
	CHECK(q == MAP_FAILED && errno == EEXIST, "MAP_FIXED_NOREPLACE partly overlapping fails EEXIST");

	CHECK_SYS(munmap(p + 6 * pg, 2 * pg), "munmap the last 2 pages");
	q = anon(p + 6 * pg, 2 * pg, PROT_READ | PROT_WRITE, MAP_FIXED_NOREPLACE);
	CHECK(q == p + 6 * pg, "MAP_FIXED_NOREPLACE into a free range succeeds at that address");
	CHECK(q != MAP_FAILED && filled(q, 2 * pg, 0), "and is zeroed");
	munmap(p, 8 * pg);

	/* A hint (no MAP_FIXED) is honoured when the range is free. */
	p = anon(NULL, 64 * pg, PROT_NONE, 0);
	CHECK(p != MAP_FAILED, "reserve 64 pages PROT_NONE");
	munmap(p, 64 * pg);
	q = anon(p + 16 * pg, 4 * pg, PROT_READ | PROT_WRITE, 0);
	CHECK(q == p + 16 * pg, "hint address honoured when free");
	/* A hint that collides is not an error: the kernel picks another address. */
	p = anon(q, 4 * pg, PROT_READ | PROT_WRITE, 0);
	CHECK(p != MAP_FAILED && p != q, "colliding hint gives some other address");
	munmap(p, 4 * pg);
	munmap(q, 4 * pg);
}

static void test_mprotect(void)
{
	unsigned char *p = anon(NULL, 4 * pg, PROT_READ | PROT_WRITE, 0);

	memset(p, 0x77, 4 * pg);
	CHECK_SYS(mprotect(p + pg, pg, PROT_READ), "mprotect one page PROT_READ");
	CHECK(filled(p + pg, pg, 0x77), "read-only page is still readable");
	p[0] = 1;
	p[2 * pg] = 2;
	CHECK(p[0] == 1 && p[2 * pg] == 2, "neighbouring pages stay writable");
	CHECK_SYS(mprotect(p, 4 * pg, PROT_NONE), "mprotect PROT_NONE");
	CHECK_SYS(mprotect(p, 4 * pg, PROT_READ | PROT_WRITE), "mprotect back to read/write");
	CHECK(p[0] == 1 && p[2 * pg] == 2 && filled(p + pg, pg, 0x77), "contents survive PROT_NONE");
	p[pg] = 3;
	CHECK(p[pg] == 3, "formerly read-only page writable again");
	/* raw syscall: musl's mprotect() rounds the address down itself */
	CHECK_ERR(syscall(SYS_mprotect, p + 1, pg, PROT_READ), EINVAL, "mprotect unaligned fails EINVAL");
	munmap(p, 4 * pg);
	CHECK_ERR(mprotect(p, pg, PROT_READ), ENOMEM, "mprotect of unmapped memory fails ENOMEM");
}

static void test_mremap(void)
{
	unsigned char *p = anon(NULL, 4 * pg, PROT_READ | PROT_WRITE, 0), *q, *r, *target;
	size_t i;

	for (i = 0; i < 4 * pg; i++)
		p[i] = (unsigned char)(i * 13);
	q = mremap(p, 4 * pg, 64 * pg, MREMAP_MAYMOVE);
	CHECK(q != MAP_FAILED, "mremap grow 4 -> 64 pages (MAYMOVE)");
	for (i = 0; i < 4 * pg; i++)
		if (q[i] != (unsigned char)(i * 13))
			break;
	CHECK_EQ(i, 4 * pg, "grown mapping keeps contents");
	CHECK(filled(q + 4 * pg, 60 * pg, 0), "grown part is zero");
	q[64 * pg - 1] = 9;

	r = mremap(q, 64 * pg, 2 * pg, 0);
	CHECK(r == q, "mremap shrink stays in place");
	CHECK_EQ(mapped(q + 2 * pg, 62 * pg), 0, "shrunk tail is unmapped");
	CHECK(q[0] == 0 && q[pg + 5] == (unsigned char)((pg + 5) * 13), "shrunk mapping keeps contents");

	target = anon(NULL, 8 * pg, PROT_NONE, 0);
	munmap(target, 8 * pg);
	r = mremap(q, 2 * pg, 2 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, target + 4 * pg);
	CHECK(r == target + 4 * pg, "mremap MAYMOVE|FIXED moves to the requested address");
	CHECK(r != MAP_FAILED && r[pg + 5] == (unsigned char)((pg + 5) * 13), "moved mapping keeps contents");
	CHECK_EQ(mapped(q, 2 * pg), 0, "old address unmapped after move");

	q = anon(NULL, 3 * pg, PROT_READ | PROT_WRITE, 0);
	errno = 0;
	CHECK(mremap(q, 2 * pg, 4 * pg, 0) == MAP_FAILED && errno == ENOMEM,
	      "mremap grow in place into a mapped page without MAYMOVE fails ENOMEM");
	CHECK(q[2 * pg] == 0, "the neighbouring page is still there");
	munmap(q, 3 * pg);
	munmap(r, 2 * pg);
}

static void test_madvise_mincore(void)
{
	unsigned char *p = anon(NULL, 8 * pg, PROT_READ | PROT_WRITE, 0);
	unsigned char vec[8];

	memset(p, 0x42, 8 * pg);
	CHECK_SYS(mincore(p, 8 * pg, vec), "mincore on a touched mapping");
	CHECK((vec[0] & 1) && (vec[7] & 1), "touched pages are resident");
	CHECK_SYS(madvise(p + 2 * pg, 3 * pg, MADV_DONTNEED), "madvise MADV_DONTNEED 3 pages");
	CHECK(filled(p + 2 * pg, 3 * pg, 0), "MADV_DONTNEED pages read back as zero");
	CHECK(filled(p, 2 * pg, 0x42) && filled(p + 5 * pg, 3 * pg, 0x42), "other pages keep their data");
	p[3 * pg] = 5;
	CHECK(p[3 * pg] == 5, "MADV_DONTNEED pages are writable again");
	CHECK_ERR(mincore(p + 1, pg, vec), EINVAL, "mincore unaligned fails EINVAL");
	munmap(p, 8 * pg);
	CHECK_ERR(mincore(p, pg, vec), ENOMEM, "mincore on unmapped memory fails ENOMEM");
	CHECK_ERR(madvise(p, pg, MADV_DONTNEED), ENOMEM, "madvise on unmapped memory fails ENOMEM");
}

static void test_large(void)
{
	size_t len = (size_t)1 << 30, i;
	unsigned char *p = anon(NULL, len, PROT_READ | PROT_WRITE, MAP_NORESERVE);
	int ok = p != MAP_FAILED;

	CHECK(ok, "mmap 1 GiB MAP_NORESERVE");
	if (!ok)
		return;
	for (i = 0; i < len; i += len / 64)
		p[i] = (unsigned char)(i >> 24);
	for (i = 0; i < len; i += len / 64)
		ok &= p[i] == (unsigned char)(i >> 24);
	CHECK(ok, "sparse touches across 1 GiB");
	CHECK_SYS(munmap(p, len), "munmap 1 GiB");

	/* Many small mappings, then unmap them all. */
	{
		static void *maps[500];
		int n, bad = 0;
		for (n = 0; n < 500; n++) {
			maps[n] = anon(NULL, pg * (1 + n % 3), PROT_READ | PROT_WRITE, 0);
			if (maps[n] == MAP_FAILED)
				bad++;
			else
				*(int *)maps[n] = n;
		}
		for (n = 0; n < 500; n++)
			if (maps[n] != MAP_FAILED && (*(int *)maps[n] != n || munmap(maps[n], pg * (1 + n % 3))))
				bad++;
		CHECK_EQ(bad, 0, "500 small mappings hold their data and unmap");
	}
}

int main(void)
{
	pg = (size_t)sysconf(_SC_PAGESIZE);
	CHECK_EQ(pg, 4096, "page size is 4096");
	test_basic();
	test_fixed();
	test_mprotect();
	test_mremap();
	test_madvise_mincore();
	test_large();
	return check_done();
}
