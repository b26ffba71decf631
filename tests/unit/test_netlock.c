/*
 * The network lock's names as a snapshot carries them (km/fd/km_netlock.c, the inet record's
 * `lock`): a resume deletes only a table named km_lock_ and a short tail of letters, digits and
 * '_'; any other name in a record makes it corrupt (--inspect says so), and a record written
 * before the field existed still reads.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "km_fdtab.h"
#include "km_netlock.h"

static void test_names(void **state)
{
	(void)state;
	char mine[KM_INET_LOCK_MAX], want[64];
	km_netlock_name(mine, sizeof(mine));
	snprintf(want, sizeof(want), "km_lock_%d", (int)getpid());
	assert_string_equal(mine, want);
	assert_true(km_netlock_name_ok(mine));
	assert_true(km_netlock_name_ok("km_lock_1"));
	assert_true(km_netlock_name_ok("km_lock_a_B_9"));
	assert_true(km_netlock_name_ok("km_lock_0123456789012345678901234567890")); /* 31 after the prefix */
	const char *bad[] = {
	    "",          "km_lock_",   "km_lock",   "filter",     "KM_LOCK_1",  "xkm_lock_1", "km_lock_1 ",
	    "km_lock_-", "km_lock_a/b", "km_lock_\n", "km_lock_01234567890123456789012345678901", /* 32 */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(km_netlock_name_ok(bad[i]));
	km_err_t *err = NULL;
	assert_int_equal(km_netlock_remove("filter", &err), -1); /* refused before any netlink */
	assert_non_null(err);
	km_err_free(&err);
}

/* An established connection's record (state 3), 127.0.0.1:80 <- 127.0.0.1:5000, no options, empty
 * queues; `lock` NULL: a record from before the field. */
static void established(km_buf_t *b, const char *lock)
{
	struct sockaddr_in l = {.sin_family = AF_INET, .sin_port = htons(80)}, p = l;
	l.sin_addr.s_addr = p.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	p.sin_port = htons(5000);
	const uint32_t head[] = {AF_INET, SOCK_STREAM, IPPROTO_TCP, 3};
	for (size_t i = 0; i < 4; i++)
		km_rec_put_u32(b, head[i]);
	km_rec_put_bytes(b, &l, sizeof(l));
	km_rec_put_bytes(b, &p, sizeof(p));
	for (int i = 0; i < 3; i++) /* backlog, pending, nopts */
		km_rec_put_u32(b, 0);
	const uint32_t conn[] = {1000, 2000, 1460, 0, 0, 0, 0, 0, 100, 100, 100, 0};
	for (size_t i = 0; i < sizeof(conn) / sizeof(conn[0]); i++)
		km_rec_put_u32(b, conn[i]);
	km_rec_put_u64(b, 0);          /* out_len */
	km_rec_put_u64(b, 0);          /* unsent_len */
	km_rec_put_u64(b, UINT64_MAX); /* out_blob */
	km_rec_put_u64(b, 0);          /* in_len */
	km_rec_put_u64(b, UINT64_MAX); /* in_blob */
	if (lock != NULL)
		km_rec_put_str(b, lock);
}

static char *describe(const char *lock)
{
	km_buf_t rec = {0}, out = {0};
	established(&rec, lock);
	km_fdrec_t r = {.kind = KM_FDK_INET, .oflags = 2, .first_fd = 5, .data = rec.p, .len = rec.len};
	km_fdkind_inet.describe(&r, &out);
	km_buf_put(&out, "", 1);
	km_buf_free(&rec);
	return (char *)out.p;
}

static void test_records(void **state)
{
	(void)state;
	char *s = describe(NULL);
	assert_non_null(strstr(s, "established, 0 bytes unsent"));
	assert_null(strstr(s, "locked"));
	free(s);
	s = describe("km_lock_42");
	assert_non_null(strstr(s, ", locked by nft table inet km_lock_42 until the resume"));
	free(s);
	s = describe("filter");
	assert_non_null(strstr(s, "corrupt record: a network lock named 'filter'"));
	free(s);
	s = describe("km_lock_42; flush ruleset");
	assert_non_null(strstr(s, "corrupt record"));
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_names), cmocka_unit_test(test_records)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
