/*
 * posix_spawn of scripts (issue 10): "#!" is handled by execve, which km emulates; the interpreter
 * (/bin/sh, dash under km: dynamically linked) is found as Linux finds it, with the optional
 * argument, and the script gets its path and our arguments. Failures come back from posix_spawn
 * as the errno Linux's execve gives (missing interpreter, not executable, no such script).
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"

extern char **environ;

static char dir[4096];

/* Writes TEXT to DIR/NAME with MODE; returns its path, formatted into path[n]. */
static const char *script(const char *name, const char *text, mode_t mode, char *path, size_t n)
{
	snprintf(path, n, "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd >= 0) {
		if (write(fd, text, strlen(text)) < 0)
			perror("write");
		fchmod(fd, mode);
		close(fd);
	}
	return path;
}

/* posix_spawn(p)s PATH with ARGV, stdout to OUT (if not NULL), and waits: the wait status, or
 * -errno when posix_spawn fails. */
static int spawn_wait(int use_path, const char *path, char *const argv[], const char *out)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc, st;

	posix_spawn_file_actions_init(&fa);
	if (out)
		posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (use_path)
		rc = posix_spawnp(&pid, path, &fa, NULL, argv, environ);
	else
		rc = posix_spawn(&pid, path, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -rc;
	if (waitpid(pid, &st, 0) != pid)
		return -1000;
	return st;
}

/* The contents of FILE (up to n-1 bytes). */
static const char *slurp(const char *file, char *buf, size_t n)
{
	int fd = open(file, O_RDONLY);
	ssize_t r = fd >= 0 ? read(fd, buf, n - 1) : -1;

	buf[r > 0 ? r : 0] = 0;
	if (fd >= 0)
		close(fd);
	return buf;
}

int main(int argc, char **argv)
{
	char s1[4200], s2[4200], s3[4200], s4[4200], out[4200], buf[8192], want[8192];
	int st;

	snprintf(dir, sizeof(dir), "%s", check_tmpdir(argc, argv));
	snprintf(out, sizeof(out), "%s/out.txt", dir);

	script("args.sh", "#!/bin/sh\necho \"0=$0\"\nfor a in \"$@\"; do echo \"arg=[$a]\"; done\nexit 5\n", 0755, s1,
	       sizeof(s1));
	char *a1[] = {"args.sh", "one", "two words", "", NULL};
	st = spawn_wait(0, s1, a1, out);
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 5, "a #!/bin/sh script runs and exits 5");
	snprintf(want, sizeof(want), "0=%s\narg=[one]\narg=[two words]\narg=[]\n", s1);
	CHECK_STR(slurp(out, buf, sizeof(buf)), want, "$0 is the script's path, the arguments follow");

	/* "#!/bin/sh -e": the optional argument reaches the interpreter (false stops the script). */
	script("dash-e.sh", "#!/bin/sh -e\necho before\nfalse\necho not reached\n", 0755, s2, sizeof(s2));
	char *a2[] = {"dash-e.sh", NULL};
	st = spawn_wait(0, s2, a2, out);
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 1, "#!/bin/sh -e: the script stops at false, exit 1");
	CHECK_STR(slurp(out, buf, sizeof(buf)), "before\n", "only the line before false ran");

	/* posix_spawnp: the script found by a PATH search, as shells and make find commands. */
	char path_env[4200 + 32];
	snprintf(path_env, sizeof(path_env), "%s:/usr/bin:/bin", dir);
	CHECK_SYS(setenv("PATH", path_env, 1), "PATH with the temp dir first");
	char *a3[] = {"args.sh", "via PATH", NULL};
	st = spawn_wait(1, "args.sh", a3, out);
	CHECK(st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 5, "posix_spawnp finds the script in PATH");
	snprintf(want, sizeof(want), "0=%s\narg=[via PATH]\n", s1);
	CHECK_STR(slurp(out, buf, sizeof(buf)), want, "the script got its full path as $0");

	script("nointerp.sh", "#!/nonexistent-km-e2e/interp\necho no\n", 0755, s3, sizeof(s3));
	char *a4[] = {"nointerp.sh", NULL};
	CHECK_EQ(spawn_wait(0, s3, a4, NULL), -ENOENT, "a missing interpreter: posix_spawn fails with ENOENT");

	script("noexec.sh", "#!/bin/sh\necho no\n", 0644, s4, sizeof(s4));
	char *a5[] = {"noexec.sh", NULL};
	CHECK_EQ(spawn_wait(0, s4, a5, NULL), -EACCES, "a script without x permission: EACCES");

	char missing[4200];
	snprintf(missing, sizeof(missing), "%s/no-such-script", dir);
	char *a6[] = {"no-such-script", NULL};
	CHECK_EQ(spawn_wait(0, missing, a6, NULL), -ENOENT, "a missing script: ENOENT");

	unlink(s1);
	unlink(s2);
	unlink(s3);
	unlink(s4);
	unlink(out);
	return check_done();
}
