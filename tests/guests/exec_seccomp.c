/*
 * execve under a seccomp filter (a container's linux.seccomp, km --guest-seccomp): the filter
 * stays in force for the new program, as Linux keeps seccomp filters across exec.
 * tests/e2e/procs_exec.sh runs it as "filtered" with rules that make mkdir fail with EPERM; as
 * "plain" (natively and under km, no filter) mkdir fails as usual (ENOENT) before and after.
 */
// E2E: run 0 plain
#include <stdbool.h>
#include <sys/stat.h>

#include "check.h"

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	bool filtered = strcmp(argv[1], "filtered") == 0;
	const char *when = argc > 2 ? "after execve" : "before execve";
	CHECK_ERR(mkdir("/nonexistent-km-exec/x", 0700), filtered ? EPERM : ENOENT, "mkdir %s: %s", when,
		  filtered ? "the filter holds" : "as usual");
	if (argc > 2)
		return check_done();
	char *nargv[] = {argv[0], argv[1], "after", NULL};
	fflush(stdout);
	execve("/proc/self/exe", nargv, (char *[]){NULL});
	printf("FAIL execve: %s\n", strerror(errno));
	return 1;
}
