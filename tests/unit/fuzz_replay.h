/*
 * The replay driver shared by the fuzz targets' make-check tests (test_*_fuzz_replay.c): it finds
 * tests/fuzz/<sub> and runs each input of a directory through the target's own check, which aborts
 * on a broken promise. Header-only (static functions) because each unit test is one translation
 * unit; include it after <cmocka.h>.
 */
#ifndef KM_TESTS_FUZZ_REPLAY_H
#define KM_TESTS_FUZZ_REPLAY_H

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fuzz target's check: 1 if the input was accepted, 0 if refused with the reason in `msg`. */
typedef int (*fuzz_one_fn)(const uint8_t *data, size_t len, char *msg, size_t msgsz);

/* Judges one replayed input by name; fails the test if the outcome is wrong. */
typedef void (*fuzz_expect_fn)(const char *name, int accepted, const char *msg);

/* tests/fuzz/<sub> under $KM_SRC, or under the nearest directory up from the working directory
 * that has tests/fuzz/<anchor> (a directory that must exist, such as the seed corpus). Points to
 * static storage. */
static const char *fuzz_dir(const char *anchor, const char *sub)
{
	static char path[PATH_MAX + 64];
	const char *env = getenv("KM_SRC");
	char at[PATH_MAX];
	if (env != NULL && env[0] != '\0')
		snprintf(at, sizeof(at), "%s", env);
	else if (getcwd(at, sizeof(at)) == NULL)
		fail_msg("getcwd: %s", strerror(errno));
	for (;;) {
		snprintf(path, sizeof(path), "%s/tests/fuzz/%s", at, anchor);
		if (access(path, R_OK) == 0)
			break;
		char *slash = strrchr(at, '/');
		if (env != NULL || slash == NULL || slash == at)
			fail_msg("cannot find tests/fuzz/%s: set KM_SRC to the source tree", anchor);
		*slash = '\0';
	}
	snprintf(path, sizeof(path), "%s/tests/fuzz/%s", at, sub);
	return path;
}

/* The whole file at `path` (malloc'd, caller frees); its size in *len. Fails the test on error. */
static uint8_t *fuzz_read_all(const char *path, size_t *len)
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

/* Runs every regular file of tests/fuzz/<sub> (README.md and dot files aside) through `one` and
 * lets `expect` judge it; `accepted_word` is what the log line says for an accepted input.
 * Returns how many files there were. A missing directory fails the test: a renamed directory
 * must not turn the replay into a check that never runs. */
static int fuzz_replay_dir(const char *anchor, const char *sub, fuzz_one_fn one, const char *accepted_word,
			   fuzz_expect_fn expect)
{
	char dir[PATH_MAX + 64];
	snprintf(dir, sizeof(dir), "%s", fuzz_dir(anchor, sub));
	DIR *d = opendir(dir);
	if (d == NULL)
		fail_msg("%s: %s", dir, strerror(errno));
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
		uint8_t *b = fuzz_read_all(path, &len);
		char msg[512] = "";
		int ok = one(b, len, msg, sizeof(msg));
		print_message("  %s/%s: %s\n", sub, e->d_name, ok ? accepted_word : msg);
		expect(e->d_name, ok, msg);
		free(b);
		n++;
	}
	closedir(d);
	return n;
}

#endif
