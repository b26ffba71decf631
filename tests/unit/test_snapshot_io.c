/*
 * Unit tests for the snapshot writer's building blocks: CRC32C (km_crc32c.c) against known
 * values and against itself (chained, zero runs folded in), and km_pwrite_all (km_io.c), which
 * must finish a short write and report the errno of the write that failed: a file limited by
 * RLIMIT_FSIZE (the first pwrite writes what fits, the next fails with EFBIG), /dev/full
 * (ENOSPC) and a pipe (ESPIPE). No KVM is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_crc32c.h"
#include "km_io.h"
#include "km_snapshot.h"

static void test_crc32c_known(void **state)
{
	(void)state;
	/* The check value of CRC-32C (RFC 3720, B.4 lists the same polynomial). */
	assert_int_equal(km_crc32c(0, "123456789", 9), 0xe3069283u);
	assert_int_equal(km_crc32c(0, "", 0), 0);
	static uint8_t zeros[32], ones[32];
	memset(ones, 0xff, sizeof(ones));
	/* RFC 3720 B.4: 32 bytes of zeros, 32 bytes of 0xff. */
	assert_int_equal(km_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau);
	assert_int_equal(km_crc32c(0, ones, sizeof(ones)), 0x62a8ab43u);
}

static void test_crc32c_chain_and_zeros(void **state)
{
	(void)state;
	size_t n = 3 * 4096 + 17;
	uint8_t *buf = calloc(1, n);
	assert_non_null(buf);
	for (size_t i = 0; i < 100; i++)
		buf[i] = (uint8_t)(i * 13 + 1);
	for (size_t i = 2 * 4096; i < 2 * 4096 + 50; i++)
		buf[i] = (uint8_t)i;
	uint32_t whole = km_crc32c(0, buf, n);
	/* In pieces of odd sizes (the unaligned tail paths). */
	uint32_t c = km_crc32c(0, buf, 1);
	c = km_crc32c(c, buf + 1, 4096);
	c = km_crc32c(c, buf + 4097, n - 4097);
	assert_int_equal(c, whole);
	/* The zero run [100, 2*4096) folded in without reading it. */
	c = km_crc32c(0, buf, 100);
	c = km_crc32c_zeros(c, 2 * 4096 - 100);
	c = km_crc32c(c, buf + 2 * 4096, n - 2 * 4096);
	assert_int_equal(c, whole);
	/* Zeros from the start, and a huge run against a chunked one. */
	memset(buf, 0, n);
	assert_int_equal(km_crc32c_zeros(0, n), km_crc32c(0, buf, n));
	uint32_t big = km_crc32c_zeros(0x12345678, 5ull << 30);
	uint32_t step = 0x12345678;
	for (int i = 0; i < 5; i++)
		step = km_crc32c_zeros(step, 1ull << 30);
	assert_int_equal(big, step);
	free(buf);
}

/* The plain definition, one bit at a time: what the fast paths must agree with. */
static uint32_t crc_bitwise(uint32_t crc, const uint8_t *p, size_t n)
{
	uint32_t r = ~crc;
	while (n--) {
		r ^= *p++;
		for (int k = 0; k < 8; k++)
			r = (r & 1) ? (r >> 1) ^ 0x82f63b78u : r >> 1;
	}
	return ~r;
}

/* Every length around the three-stream block (3 x 1360 bytes) and its multiples, at every
 * alignment mod 8, from a fresh start and chained: the streams' joining must be exact. */
static void test_crc32c_streams(void **state)
{
	(void)state;
	size_t max = 3 * 4080 + 100;
	uint8_t *buf = malloc(max + 8);
	assert_non_null(buf);
	for (size_t i = 0; i < max + 8; i++)
		buf[i] = (uint8_t)(i * 131 + (i >> 7));
	for (size_t n = 0; n <= max; n += (n % 4080 < 20 || n % 4080 > 4060) ? 1 : 97)
		for (size_t a = 0; a < 8; a += 3) {
			assert_int_equal(km_crc32c(0, buf + a, n), crc_bitwise(0, buf + a, n));
			assert_int_equal(km_crc32c(0x1234abcd, buf + a, n), crc_bitwise(0x1234abcd, buf + a, n));
		}
	free(buf);
}

/* km_snapshot_segment_crc on a file with holes equals the CRC of the same bytes in memory. */
static void test_segment_crc_holes(void **state)
{
	(void)state;
	int fd = memfd_create("holes", MFD_CLOEXEC);
	assert_true(fd >= 0);
	size_t len = 64 * 4096;
	uint8_t *buf = calloc(1, len);
	assert_non_null(buf);
	for (size_t p = 5; p < 64; p += 9)
		for (size_t i = 0; i < 4096; i += 64)
			buf[p * 4096 + i] = (uint8_t)(p + i);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	for (size_t p = 5; p < 64; p += 9)
		assert_int_equal(pwrite(fd, buf + p * 4096, 4096, (off_t)(p * 4096)), 4096);
	uint32_t crc;
	assert_int_equal(km_snapshot_segment_crc(fd, 4096, len - 4096, &crc), 0);
	assert_int_equal(crc, km_crc32c(0, buf + 4096, len - 4096));
	close(fd);
	free(buf);
}

static void test_pwrite_all_done(void **state)
{
	(void)state;
	int fd = memfd_create("w", MFD_CLOEXEC);
	assert_true(fd >= 0);
	static uint8_t data[100000];
	memset(data, 0x5a, sizeof(data));
	assert_int_equal(km_pwrite_all(fd, data, sizeof(data), 4096), 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 4096 + sizeof(data));
	close(fd);
}

/* RLIMIT_FSIZE: the first pwrite is short (it stops at the limit), the next fails with EFBIG.
 * Before km_pwrite_all the writer took the short write for a failure and printed whatever
 * errno held. */
static void test_pwrite_all_short_then_error(void **state)
{
	(void)state;
	int fd = memfd_create("fsize", MFD_CLOEXEC);
	assert_true(fd >= 0);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 10000;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	static uint8_t data[20000];
	errno = ENOENT; /* a stale errno must not come out */
	int rc = km_pwrite_all(fd, data, sizeof(data), 0);
	struct stat st;
	int st_rc = fstat(fd, &st);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);
	assert_int_equal(rc, -EFBIG);
	assert_int_equal(st_rc, 0);
	assert_int_equal(st.st_size, 10000); /* the short write's bytes went in */
	close(fd);
}

static void test_pwrite_all_enospc(void **state)
{
	(void)state;
	int fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		skip();
	static uint8_t data[8192];
	assert_int_equal(km_pwrite_all(fd, data, sizeof(data), 0), -ENOSPC);
	close(fd);
	int p[2];
	assert_int_equal(pipe(p), 0);
	assert_int_equal(km_pwrite_all(p[1], data, 10, 0), -ESPIPE);
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known),
		cmocka_unit_test(test_crc32c_chain_and_zeros),
		cmocka_unit_test(test_crc32c_streams),
		cmocka_unit_test(test_segment_crc_holes),
		cmocka_unit_test(test_pwrite_all_done),
		cmocka_unit_test(test_pwrite_all_short_then_error),
		cmocka_unit_test(test_pwrite_all_enospc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
