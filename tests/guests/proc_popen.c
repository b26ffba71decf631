/*
 * popen()/pclose() (issue 10): a pipe to or from /bin/sh -c (dash, dynamically linked, under km),
 * read and write modes, the command's exit status from pclose, two streams open at once (the
 * second child must not hold the first one's pipe open), and a large transfer both ways.
 */
// E2E: run 0 @TMP
#include <sys/wait.h>

#include "check.h"

int main(int argc, char **argv)
{
	const char *tmp = check_tmpdir(argc, argv);
	char line[256], path[4096], cmd[2 * 4096 + 64];
	FILE *p, *q;
	int st, n;

	p = popen("echo one; echo two; printf 'three'", "r");
	CHECK(p != NULL, "popen(\"echo ...\", \"r\")");
	if (p) {
		CHECK(fgets(line, sizeof(line), p) && !strcmp(line, "one\n"), "read 'one'");
		CHECK(fgets(line, sizeof(line), p) && !strcmp(line, "two\n"), "read 'two'");
		CHECK(fgets(line, sizeof(line), p) && !strcmp(line, "three"), "read 'three' (no newline)");
		CHECK(fgets(line, sizeof(line), p) == NULL && feof(p), "then end of file");
		CHECK_EQ(pclose(p), 0, "pclose: the command exited 0");
	}

	p = popen("exit 7", "r");
	CHECK(p != NULL, "popen(\"exit 7\", \"r\")");
	if (p) {
		st = pclose(p);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "pclose gives exit status 7");
	}

	/* Write mode: our bytes become the command's stdin; its stdout is ours. */
	printf("before tr\n");
	fflush(stdout);
	p = popen("tr a-z A-Z", "w");
	CHECK(p != NULL, "popen(\"tr a-z A-Z\", \"w\")");
	if (p) {
		fputs("shouted through a pipe\n", p);
		CHECK_EQ(pclose(p), 0, "pclose of tr");
	}
	printf("after tr\n");

	/* 100000 numbered lines to a file through cat, then back through wc and sort. */
	snprintf(path, sizeof(path), "%s/popen.txt", tmp);
	snprintf(cmd, sizeof(cmd), "cat > '%s'", path);
	p = popen(cmd, "w");
	CHECK(p != NULL, "popen(\"cat > file\", \"w\")");
	if (p) {
		for (n = 0; n < 100000; n++)
			fprintf(p, "%d\n", n);
		CHECK_EQ(pclose(p), 0, "pclose of cat");
	}
	snprintf(cmd, sizeof(cmd), "sort -n -r '%s' | head -n 1; wc -l < '%s'", path, path);
	p = popen(cmd, "r");
	CHECK(p != NULL, "popen of a pipeline");
	if (p) {
		CHECK(fgets(line, sizeof(line), p) && !strcmp(line, "99999\n"), "the largest number came back");
		CHECK(fgets(line, sizeof(line), p) && atoi(line) == 100000, "all 100000 lines came back");
		CHECK_EQ(pclose(p), 0, "pclose of the pipeline");
	}
	unlink(path);

	/* Two at once: the reader's child must not inherit the writer's pipe, or cat never sees EOF. */
	snprintf(cmd, sizeof(cmd), "cat > '%s'", path);
	p = popen(cmd, "w");
	q = popen("echo second", "r");
	CHECK(p && q, "two popen streams at once");
	if (p && q) {
		fputs("first\n", p);
		CHECK(fgets(line, sizeof(line), q) && !strcmp(line, "second\n"), "read from the second");
		CHECK_EQ(pclose(p), 0, "pclose of the first (cat saw EOF)");
		CHECK_EQ(pclose(q), 0, "pclose of the second");
	}
	unlink(path);
	CHECK_ERR(waitpid(-1, NULL, WNOHANG), ECHILD, "no child is left unreaped");
	return check_done();
}
