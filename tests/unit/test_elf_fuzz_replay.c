/*
 * Replays the ELF loader fuzz target's inputs in make check, through the target's own check
 * (km_fuzz_elf_one in tests/fuzz/fuzz_elf.c, compiled into this test), so neither the harness nor
 * its inputs rot:
 * - tests/fuzz/elf-regressions/: inputs that once broke the loader; each must now load or be
 *   refused with an error naming the file, with every promise the harness checks kept.
 * - tests/fuzz/elf-corpus/: the seeds; the cut-down real programs and hand-made ones must still
 *   load (a seed km refuses teaches the fuzzer little), the dynamically linked one be refused.
 * tests/fuzz/ is found through $KM_SRC (the source tree) or by walking up from the working
 * directory (make check runs from the repository root). No KVM is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fuzz/fuzz_elf.h"

/* tests/fuzz/<sub> under $KM_SRC or the nearest directory up from here that has it. */
static const char *fuzz_dir(const char *sub)
{
	static char path[PATH_MAX + 64];
	const char *env = getenv("KM_SRC");
	char at[PATH_MAX];
	if (env != NULL && env[0] != '\0')
		snprintf(at, sizeof(at), "%s", env);
	else if (getcwd(at, sizeof(at)) == NULL)
		fail_msg("getcwd: %s", strerror(errno));
	for (;;) {
		snprintf(path, sizeof(path), "%s/tests/fuzz/elf-corpus", at);
		if (access(path, R_OK) == 0)
			break;
		char *slash = strrchr(at, '/');
		if (env != NULL || slash == NULL || slash == at)
			fail_msg("cannot find tests/fuzz/elf-corpus: set KM_SRC to the source tree");
		*slash = '\0';
	}
	snprintf(path, sizeof(path), "%s/tests/fuzz/%s", at, sub);
	return path;
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	struct stat st;
	assert_int_equal(fstat(fileno(f), &st), 0);
	uint8_t *b = malloc(st.st_size + 1);
	assert_non_null(b);
	assert_int_equal(fread(b, 1, st.st_size, f), (size_t)st.st_size);
	fclose(f);
	*len = st.st_size;
	return b;
}

/* Replays every regular file of tests/fuzz/<sub>; `expect(name, loaded, msg)` judges each.
 * Returns how many there were. */
static int replay_dir(const char *sub, void (*expect)(const char *name, int loaded, const char *msg))
{
	char dir[PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s", fuzz_dir(sub));
	DIR *d = opendir(dir);
	if (d == NULL)
		return 0;
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		char path[PATH_MAX + 320];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (e->d_name[0] == '.' || strcmp(e->d_name, "README.md") == 0 || stat(path, &st) != 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		size_t len;
		uint8_t *b = read_all(path, &len);
		char msg[512];
		int loaded = km_fuzz_elf_one(b, len, msg, sizeof(msg)); /* aborts on a broken promise */
		print_message("  %s/%s: %s\n", sub, e->d_name, loaded ? "loads" : msg);
		expect(e->d_name, loaded, msg);
		free(b);
		n++;
	}
	closedir(d);
	return n;
}

static void any_outcome(const char *name, int loaded, const char *msg)
{
	(void)name, (void)loaded, (void)msg;
}

static void seed_outcome(const char *name, int loaded, const char *msg)
{
	if (strcmp(name, "tiny-interp") == 0) {
		if (loaded || strstr(msg, "dynamically linked") == NULL)
			fail_msg("%s: expected refused as dynamically linked, got: %s", name, loaded ? "loads" : msg);
	} else if (!loaded) {
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
	snprintf(path, sizeof(path), "%s/tiny-exec", fuzz_dir("elf-corpus"));
	uint8_t *b = read_all(path, &len);
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
