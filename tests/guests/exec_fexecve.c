/*
 * execveat forms: fexecve of a memfd (glibc's and musl's fexecve: execveat(fd, "", AT_EMPTY_PATH)),
 * of an O_PATH fd, and a path relative to a directory fd. The new image names a memfd program as
 * Linux does (/proc/self/exe is "/memfd:NAME (deleted)").
 */
// E2E: run 0
#include <fcntl.h>
#include <libgen.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "check.h"

static char *const env[] = {NULL};

int main(int argc, char **argv)
{
	char exe[4096] = {0};
	readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (argc == 2 && strcmp(argv[1], "memfd") == 0) {
		CHECK(strcmp(exe, "/memfd:exec-prog (deleted)") == 0, "a memfd program is /memfd:NAME (deleted)");
		char *next[] = {argv[0], "opath", NULL};
		const char *self = getenv("EXEC_SELF");
		int op = open(self != NULL ? self : "", O_PATH | O_CLOEXEC);
		fflush(stdout);
		syscall(SYS_execveat, op, "", next, env, AT_EMPTY_PATH);
		CHECK(0, "execveat of an O_PATH fd: %s", strerror(errno));
		return check_done();
	}
	if (argc == 2 && strcmp(argv[1], "opath") == 0) {
		CHECK(strstr(exe, "exec_fexecve") != NULL, "execveat of an O_PATH fd runs the file");
		char dir[4096], base[4096];
		snprintf(dir, sizeof(dir), "%s", exe);
		snprintf(base, sizeof(base), "%s", exe);
		int d = open(dirname(dir), O_RDONLY | O_DIRECTORY);
		char *next[] = {argv[0], "dirfd", NULL};
		fflush(stdout);
		syscall(SYS_execveat, d, basename(base), next, env, 0);
		CHECK(0, "execveat relative to a dirfd: %s", strerror(errno));
		return check_done();
	}
	if (argc == 2 && strcmp(argv[1], "dirfd") == 0) {
		CHECK(strstr(exe, "exec_fexecve") != NULL, "execveat relative to a dirfd runs the file");
		return check_done();
	}
	int in = open("/proc/self/exe", O_RDONLY), m = memfd_create("exec-prog", MFD_CLOEXEC);
	static char buf[1 << 16];
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(m, buf, (size_t)n) != n)
			break;
	char self_env[4200];
	snprintf(self_env, sizeof(self_env), "EXEC_SELF=%s", exe);
	char *next[] = {argv[0], "memfd", NULL};
	char *nenv[] = {self_env, NULL};
	fflush(stdout);
	fexecve(m, next, nenv);
	CHECK(0, "fexecve of a memfd: %s", strerror(errno));
	return check_done();
}
