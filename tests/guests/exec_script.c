/*
 * execve of #! scripts whose interpreter is this program: the interpreter gets argv
 * "interp [arg] script args...", with the optional argument whole (spaces inside kept, around
 * dropped), without one, and through a script whose interpreter is itself a script (nested).
 * Each stage prints its argv and execs the next; the last one checks and ends.
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <sys/stat.h>

#include "check.h"

static char self[4096], dir[4096];

static void put(const char *name, const char *text)
{
	char p[8192];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		printf("FAIL writing %s\n", p);
	close(fd);
}

/* argv with the temp dir and this program's path shown as TMP and SELF (stable output). */
static void show(int argc, char **argv)
{
	printf("argv:");
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, dir, strlen(dir)) == 0)
			printf(" [TMP%s]", a + strlen(dir));
		else if (strcmp(a, self) == 0)
			printf(" [SELF]");
		else
			printf(" [%s]", a);
	}
	printf("\n");
}

static void run(const char *script, const char *next)
{
	char p[8192];
	snprintf(p, sizeof(p), "%s/%s", dir, script);
	char *argv[] = {"ignored-argv0", (char *)next, dir, NULL};
	fflush(stdout);
	execve(p, argv, (char *[]){NULL});
	CHECK(0, "execve %s: %s", script, strerror(errno));
}

int main(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 2;
	self[n] = '\0';
	/* argv: as first started "prog TMP"; as an interpreter "... script STAGE TMP" */
	const char *stage = argc >= 3 ? argv[argc - 2] : "start";
	snprintf(dir, sizeof(dir), "%s", argv[argc - 1]);
	show(argc, argv);
	if (strcmp(stage, "start") == 0 || argc < 3) {
		char text[8192];
		snprintf(text, sizeof(text), "#!%s  one arg  with spaces \t\n", self);
		put("witharg", text);
		snprintf(text, sizeof(text), "#! %s\nignored line\n", self);
		put("noarg", text);
		snprintf(text, sizeof(text), "#!%s/noarg\n", dir);
		put("nested", text);
		run("witharg", "witharg-done");
	} else if (strcmp(stage, "witharg-done") == 0) {
		CHECK(argc == 5 && strcmp(argv[0], self) == 0 && strcmp(argv[1], "one arg  with spaces") == 0,
		      "#! with an argument: interp, the argument whole, the script");
		run("noarg", "noarg-done");
	} else if (strcmp(stage, "noarg-done") == 0) {
		CHECK(argc == 4 && strcmp(argv[0], self) == 0, "#! without an argument: interp, the script");
		run("nested", "nested-done");
	} else if (strcmp(stage, "nested-done") == 0) {
		CHECK(argc == 5 && strcmp(argv[0], self) == 0 && strstr(argv[1], "/noarg") && strstr(argv[2], "/nested"),
		      "a script as interpreter: interp, its script, the first script");
		return check_done();
	}
	return 1;
}
