/*
 * Replays the config.json fuzz target's inputs in make check, through the target's own check
 * (km_fuzz_oci_config_one in tests/fuzz/fuzz_oci_config.c, compiled into this test):
 * - tests/fuzz/oci-regressions/: inputs that once broke the parser; each must now be accepted
 *   with every promise kept, or refused with one line naming config.json.
 * - tests/fuzz/oci-corpus/: the seeds, all valid configs: each must still be accepted.
 * tests/fuzz/ is found through $KM_SRC (the source tree) or by walking up from the working
 * directory (make check runs from the repository root).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "../fuzz/fuzz_oci_config.h"
#include "fuzz_replay.h"

static void any_outcome(const char *name, int accepted, const char *msg)
{
	(void)name, (void)accepted, (void)msg;
}

static void seed_outcome(const char *name, int accepted, const char *msg)
{
	if (!accepted)
		fail_msg("seed %s is refused: %s", name, msg);
}

static int replay_dir(const char *sub, fuzz_expect_fn expect)
{
	return fuzz_replay_dir("oci-corpus", sub, km_fuzz_oci_config_one, "accepted", expect);
}

static void test_regressions(void **state)
{
	(void)state;
	replay_dir("oci-regressions", any_outcome);
}

static void test_corpus(void **state)
{
	(void)state;
	assert_true(replay_dir("oci-corpus", seed_outcome) >= 5);
}

static void test_harness_outcomes(void **state)
{
	(void)state;
	char msg[512] = "";
	static const char bad[] = "{\"ociVersion\":\"1\"}";
	assert_int_equal(km_fuzz_oci_config_one((const uint8_t *)bad, sizeof(bad) - 1, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "config.json: process: is required");
	assert_int_equal(km_fuzz_oci_config_one((const uint8_t *)"", 0, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "invalid JSON"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regressions),
		cmocka_unit_test(test_corpus),
		cmocka_unit_test(test_harness_outcomes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
