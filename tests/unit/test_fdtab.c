/*
 * The fd table's frame and records (km/fd/km_fdrec.c, km/fd/km_fdtab_restore.c): the record
 * reader never reads past its end, and a hostile NT_KM_FILES frame (impossible counts, fd numbers
 * in km's range, the same fd twice, an index past the descriptions, trailing bytes) is refused as
 * a whole, while a good one lists every fd. The listing is what `km --inspect` prints, and what
 * the snapshot fuzz target runs on every input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "km_fdtab.h"

static void test_rec_roundtrip(void **state)
{
	(void)state;
	km_buf_t b = {0};
	km_rec_put_u32(&b, 7);
	km_rec_put_u64(&b, 0x1122334455667788ull);
	km_rec_put_str(&b, "/tmp/x");
	km_rec_put_bytes(&b, "\0\1\2", 3);
	assert_false(b.failed);
	km_rec_t r = {.p = b.p, .len = b.len};
	assert_int_equal(km_rec_get_u32(&r), 7);
	assert_true(km_rec_get_u64(&r) == 0x1122334455667788ull);
	assert_string_equal(km_rec_get_str(&r, 4096), "/tmp/x");
	uint32_t n;
	const uint8_t *p = km_rec_get_bytes(&r, &n);
	assert_int_equal(n, 3);
	assert_int_equal(p[2], 2);
	assert_true(km_rec_done(&r));
	km_buf_free(&b);
}

static void test_rec_short(void **state)
{
	(void)state;
	uint8_t three[3] = {1, 2, 3};
	km_rec_t r = {.p = three, .len = sizeof(three)};
	assert_int_equal(km_rec_get_u32(&r), 0);
	assert_true(r.bad);
	assert_false(km_rec_done(&r));
	/* a length past the end, a string without its NUL, with a NUL inside, or too long */
	km_buf_t b = {0};
	km_rec_put_u32(&b, 1000);
	km_rec_t r2 = {.p = b.p, .len = b.len};
	uint32_t n;
	assert_null(km_rec_get_bytes(&r2, &n));
	assert_true(r2.bad);
	km_buf_free(&b);
	km_rec_put_bytes(&b, "abc", 3);
	km_rec_t r3 = {.p = b.p, .len = b.len};
	assert_null(km_rec_get_str(&r3, 100));
	km_buf_free(&b);
	km_rec_put_bytes(&b, "a\0b", 4);
	km_rec_t r4 = {.p = b.p, .len = b.len};
	assert_null(km_rec_get_str(&r4, 100));
	km_buf_free(&b);
	km_rec_put_str(&b, "abcdef");
	km_rec_t r5 = {.p = b.p, .len = b.len};
	assert_null(km_rec_get_str(&r5, 4));
	km_buf_free(&b);
}

/* A frame: fds[i] has description descs[i] (kind inherited from fd src[i]). */
static void frame(km_buf_t *b, uint32_t version, uint32_t nfds, const uint32_t *fds, const uint32_t *desc,
		  uint32_t ndescs)
{
	km_rec_put_u32(b, version);
	km_rec_put_u32(b, nfds);
	km_rec_put_u32(b, ndescs);
	km_rec_put_u32(b, 0);   /* blobs */
	km_rec_put_u64(b, 4096); /* blob_off */
	for (uint32_t i = 0; i < nfds; i++) {
		km_rec_put_u32(b, fds[i]);
		km_rec_put_u32(b, desc[i]);
		km_rec_put_u32(b, i == 0 ? FD_CLOEXEC : 0);
	}
	for (uint32_t i = 0; i < ndescs; i++) {
		km_buf_t rec = {0};
		km_rec_put_u32(&rec, i); /* inherited from fd i */
		km_rec_put_u32(b, KM_FDK_INHERITED);
		km_rec_put_u32(b, O_WRONLY | O_APPEND);
		km_rec_put_u64(b, 0);
		km_rec_put_bytes(b, rec.p, (uint32_t)rec.len);
		km_buf_free(&rec);
	}
}

static char *listing(const km_buf_t *note)
{
	km_buf_t out = {0};
	km_fdtab_describe(note->p, note->len, &out);
	km_buf_put(&out, "", 1);
	return (char *)out.p;
}

static void test_frame_good(void **state)
{
	(void)state;
	uint32_t fds[] = {0, 1, 7}, desc[] = {0, 1, 1};
	km_buf_t b = {0};
	frame(&b, 1, 3, fds, desc, 2);
	char *s = listing(&b);
	assert_non_null(strstr(s, "3 fds, 2 open files"));
	assert_non_null(strstr(s, "fd 0 inherited w,append,cloexec from the caller's fd 0"));
	assert_non_null(strstr(s, "fd 7 inherited w,append same-as=1 from the caller's fd 1"));
	free(s);
	km_buf_free(&b);
}

static void expect_bad(km_buf_t *b, const char *what)
{
	char *s = listing(b);
	assert_non_null(strstr(s, "fd table: "));
	assert_non_null(strstr(s, what));
	assert_null(strstr(s, " inherited "));
	free(s);
	km_buf_free(b);
}

static void test_frame_bad(void **state)
{
	(void)state;
	km_buf_t b = {0};
	uint32_t fds[] = {0, 1000}, desc[] = {0, 0};
	frame(&b, 2, 2, fds, desc, 1);
	expect_bad(&b, "version 2");
	frame(&b, 1, 2, fds, desc, 1);
	expect_bad(&b, "fd 1000");
	uint32_t twice[] = {3, 3};
	frame(&b, 1, 2, twice, desc, 1);
	expect_bad(&b, "fd 3");
	uint32_t past[] = {0, 2};
	frame(&b, 1, 2, (uint32_t[]){0, 1}, past, 2);
	expect_bad(&b, "is invalid");
	frame(&b, 1, 1, fds, desc, 2); /* more descriptions than fds */
	expect_bad(&b, "impossible");
	frame(&b, 1, 1, fds, desc, 1);
	km_rec_put_u32(&b, 0); /* trailing */
	expect_bad(&b, "trailing");
	frame(&b, 1, 2, (uint32_t[]){0, 1}, desc, 1);
	b.len -= 3; /* cut into the last record */
	expect_bad(&b, "truncated");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rec_roundtrip), cmocka_unit_test(test_rec_short), cmocka_unit_test(test_frame_good),
	    cmocka_unit_test(test_frame_bad),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
