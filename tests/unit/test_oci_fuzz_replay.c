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

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../fuzz/fuzz_oci_config.h"

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
		snprintf(path, sizeof(path), "%s/tests/fuzz/oci-corpus", at);
		if (access(path, R_OK) == 0)
			break;
		char *slash = strrchr(at, '/');
		if (env != NULL || slash == NULL || slash == at)
			fail_msg("cannot find tests/fuzz/oci-corpus: set KM_SRC to the source tree");
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

/* Replays every regular file of tests/fuzz/<sub>; fails on a refusal if `must_accept`. */
static int replay_dir(const char *sub, int must_accept)
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
		char msg[512] = "";
		int ok = km_fuzz_oci_config_one(b, len, msg, sizeof(msg)); /* aborts on a broken promise */
		print_message("  %s/%s: %s\n", sub, e->d_name, ok ? "accepted" : msg);
		if (must_accept && !ok)
			fail_msg("seed %s is refused: %s", e->d_name, msg);
		free(b);
		n++;
	}
	closedir(d);
	return n;
}

static void test_regressions(void **state)
{
	(void)state;
	replay_dir("oci-regressions", 0);
}

static void test_corpus(void **state)
{
	(void)state;
	assert_true(replay_dir("oci-corpus", 1) >= 5);
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
