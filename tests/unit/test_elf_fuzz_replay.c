/*
 * Replays the ELF loader fuzz target's inputs in make check, through the target's own check
 * (km_fuzz_elf_one in tests/fuzz/fuzz_elf.c, compiled into this test), so neither the harness nor
 * its inputs rot:
 * - tests/fuzz/elf-regressions/: inputs that once broke the loader; each must now load or be
 *   refused with an error naming the file, with every promise the harness checks kept.
 * - tests/fuzz/elf-corpus/: the seeds; the cut-down real programs and hand-made ones must still
 *   load (a seed km refuses teaches the fuzzer little), the dynamically linked one included (the
 *   loader reads its PT_INTERP; the interpreter is loaded later, by km_elf_load_interp).
 * tests/fuzz/ is found through $KM_SRC (the source tree) or by walking up from the working
 * directory (make check runs from the repository root). No KVM is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "../fuzz/fuzz_elf.h"
#include "fuzz_replay.h"

static int replay_dir(const char *sub, fuzz_expect_fn expect)
{
	return fuzz_replay_dir("elf-corpus", sub, km_fuzz_elf_one, "loads", expect);
}

static void any_outcome(const char *name, int loaded, const char *msg)
{
	(void)name, (void)loaded, (void)msg;
}

static void seed_outcome(const char *name, int loaded, const char *msg)
{
	if (!loaded) {
		fail_msg("seed %s no longer loads: %s", name, msg);
	}
}

static void test_regressions(void **state)
{
	(void)state;
	replay_dir("elf-regressions", any_outcome);
}

static void test_corpus(void **state)
{
	(void)state;
	assert_true(replay_dir("elf-corpus", seed_outcome) >= 5);
}

/* The harness itself catches what it promises to: a refusal without a message naming the file
 * cannot be produced from outside, but an input that loads and one that does not must be told
 * apart, and garbage must be refused. */
static void test_harness_outcomes(void **state)
{
	(void)state;
	char msg[512];
	assert_int_equal(km_fuzz_elf_one((const uint8_t *)"", 0, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "not an ELF file"));
	assert_non_null(strstr(msg, "/proc/self/fd/"));
	size_t len;
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/tiny-exec", fuzz_dir("elf-corpus", "elf-corpus"));
	uint8_t *b = fuzz_read_all(path, &len);
	assert_int_equal(km_fuzz_elf_one(b, len, msg, sizeof(msg)), 1);
	assert_string_equal(msg, "");
	free(b);
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
