/*
 * Arguments, environment and exit status.
 *
 * Prints argc and every argv[i], the value of KM_E2E_GREETING from the environment, checks that
 * argv[argc] is NULL and that the environment is NULL-terminated after argv. With arguments
 * "exit N" it exits with status N (after printing), so the harness can check exit codes.
 */
// E2E: basic 0 one two three
// E2E: quoting 0 "two words" '' "tab	and * glob"
// E2E: exit3 3 exit 3
// E2E: exit255 255 exit 255
// E2E: exit256 0 exit 256
#include "check.h"

extern char **environ;

int main(int argc, char **argv)
{
	int i, exit_code = -1;
	const char *greeting = getenv("KM_E2E_GREETING");

	printf("argc=%d\n", argc);
	for (i = 0; i < argc; i++)
		printf("argv[%d]=\"%s\"\n", i, argv[i]);
	CHECK(argv[argc] == NULL, "argv[argc] is NULL");
	CHECK(environ == argv + argc + 1, "environ follows argv on the initial stack");
	CHECK(argc >= 1 && strlen(argv[0]) > 0, "argv[0] is set");
	CHECK_STR(greeting, "hello from the environment", "getenv(KM_E2E_GREETING)");
	CHECK(getenv("KM_E2E_NO_SUCH_VARIABLE") == NULL, "unset variable is absent");

	for (i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "exit") == 0)
			exit_code = atoi(argv[i + 1]);

	if (exit_code >= 0) {
		check_done();
		printf("exiting with %d\n", exit_code);
		exit(exit_code);
	}
	return check_done();
}
