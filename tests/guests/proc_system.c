/*
 * system() (issue 10): glibc runs /bin/sh through clone(CLONE_VM|CLONE_VFORK) (posix_spawn),
 * musl through posix_spawn too; under km the shell is a dynamically linked Debian dash, so this
 * needs fork/vfork, execve and PT_INTERP. Checks exit statuses (normal, by signal, command not
 * found), the environment and working directory the shell inherits, output written by the shell
 * to the shared stdout, and that system(NULL) finds a shell.
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "check.h"

/* The first line of FILE into buf (newline dropped), or "" if unreadable. */
static const char *first_line(const char *file, char *buf, size_t n)
{
	FILE *f = fopen(file, "r");

	buf[0] = 0;
	if (f) {
		if (fgets(buf, (int)n, f))
			buf[strcspn(buf, "\n")] = 0;
		fclose(f);
	}
	return buf;
}

int main(int argc, char **argv)
{
	const char *tmp = check_tmpdir(argc, argv);
	char cwd[4096], line[4096];
	int st;

	CHECK(system(NULL) != 0, "system(NULL): a shell is available");

	st = system("exit 0");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "system(\"exit 0\") exits 0");
	st = system("exit 42");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 42, "system(\"exit 42\") exits 42");
	st = system("kill -TERM $$");
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "a shell that kills itself: WTERMSIG is SIGTERM");
	st = system("/nonexistent-km-e2e/cmd 2>/dev/null");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 127, "a missing command: the shell exits 127");

	/* The shell writes to the same stdout: our line, its line, ours again, in this order. */
	printf("before the shell\n");
	fflush(stdout);
	st = system("echo from the shell; echo to stderr >&2");
	CHECK_EQ(st, 0, "system(\"echo ...\") exits 0");
	printf("after the shell\n");

	CHECK_SYS(setenv("KM_PROC_VAR", "value with spaces", 1), "setenv");
	st = system("test \"$KM_PROC_VAR\" = 'value with spaces'");
	CHECK_EQ(st, 0, "the shell sees the caller's environment");

	CHECK_SYS(chdir(tmp), "chdir to the temp dir");
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	st = system("pwd -P > pwd.txt; umask > umask.txt");
	CHECK_EQ(st, 0, "pwd and umask into files");
	CHECK_STR(first_line("pwd.txt", line, sizeof(line)), cwd, "the shell runs in the caller's cwd");
	CHECK_STR(first_line("umask.txt", line, sizeof(line)), "0022", "the shell has the caller's umask");
	umask(027);
	CHECK_EQ(system("umask > umask.txt"), 0, "umask into a file again");
	CHECK_STR(first_line("umask.txt", line, sizeof(line)), "0027", "a changed umask reaches the shell");
	umask(022);

	/* An fd without O_CLOEXEC is inherited, one with it is not. */
	int keep = open("kept.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int gone = open("gone.txt", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(keep >= 0 && gone >= 0, "open two files");
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "echo kept >&%d; (echo gone >&%d) 2>/dev/null; exit 0", keep, gone);
	CHECK_EQ(system(cmd), 0, "the shell writes to inherited fds");
	CHECK_STR(first_line("kept.txt", line, sizeof(line)), "kept", "an fd without O_CLOEXEC is inherited");
	CHECK_STR(first_line("gone.txt", line, sizeof(line)), "", "an O_CLOEXEC fd is closed in the shell");
	close(keep);
	close(gone);
	unlink("pwd.txt");
	unlink("umask.txt");
	unlink("kept.txt");
	unlink("gone.txt");

	/* Many in a row: each child is reaped (no zombies pile up, no fd leaks). */
	int i, bad = 0;
	for (i = 0; i < 20; i++)
		bad += system("exit 3") != 3 << 8;
	CHECK_EQ(bad, 0, "20 system() calls in a row each exit 3");
	CHECK_ERR(waitpid(-1, NULL, WNOHANG), ECHILD, "no child is left unreaped");
	return check_done();
}
