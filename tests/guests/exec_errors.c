/*
 * execve and execveat that cannot run the program: each fails with Linux's errno and the caller
 * goes on (missing file, a directory, a file without execute permission, a text file without #!,
 * a 32-bit ELF, symlink and script loops, bad pointers, too long an argument, bad flags and fds).
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "check.h"

static char *const av[] = {"x", NULL};
static char *const ev[] = {NULL};

static void put(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		printf("FAIL writing %s\n", path);
	close(fd);
	chmod(path, mode);
}

/* A copy of this program with its machine patched to i386 (a 64-bit header: no kernel runs it). */
static void elf386(const char *path)
{
	static char buf[1 << 16];
	int in = open("/proc/self/exe", O_RDONLY), out = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	ssize_t n = read(in, buf, sizeof(buf));
	if (n > 19)
		buf[18] = 3; /* EM_386 */
	if (in < 0 || out < 0 || n <= 19 || write(out, buf, (size_t)n) != n)
		printf("FAIL making %s\n", path);
	close(in);
	close(out);
}

static long xexecveat(int dirfd, const char *path, int flags)
{
	return syscall(SYS_execveat, dirfd, path, av, ev, flags);
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "try") == 0) { /* km only: tests/e2e/procs_exec.sh */
		CHECK_ERR(execve(argv[2], av, ev), ENOEXEC, "execve %s: ENOEXEC", argv[2]);
		return check_done();
	}
	if (argc < 2)
		return 2;
	char p[4096];
	const char *t = argv[1];
	if (chdir(t) < 0)
		return 2;
	CHECK_ERR(execve("./missing", av, ev), ENOENT, "a missing file: ENOENT");
	CHECK_ERR(execve("./missing/x", av, ev), ENOENT, "under a missing directory: ENOENT");
	put("plain", "not a program\n", 0644);
	CHECK_ERR(execve("./plain/x", av, ev), ENOTDIR, "under a regular file: ENOTDIR");
	CHECK_ERR(execve(".", av, ev), EACCES, "a directory: EACCES");
	CHECK_ERR(execve("./plain", av, ev), EACCES, "a file without execute permission: EACCES");
	put("text", "echo not a script\n", 0755);
	CHECK_ERR(execve("./text", av, ev), ENOEXEC, "an executable text file without #!: ENOEXEC");
	put("empty", "", 0755);
	CHECK_ERR(execve("./empty", av, ev), ENOEXEC, "an empty executable file: ENOEXEC");
	elf386("elf386");
	CHECK_ERR(execve("./elf386", av, ev), ENOEXEC, "an ELF for another machine: ENOEXEC");
	snprintf(p, sizeof(p), "#!%s/loop\n", t);
	put("loop", p, 0755);
	CHECK_ERR(execve("./loop", av, ev), ELOOP, "a script that is its own interpreter: ELOOP");
	put("nointerp", "#!\n", 0755);
	CHECK_ERR(execve("./nointerp", av, ev), ENOEXEC, "#! without an interpreter: ENOEXEC");
	put("badinterp", "#!/nonexistent/interp\n", 0755);
	CHECK_ERR(execve("./badinterp", av, ev), ENOENT, "#! naming a missing interpreter: ENOENT");
	snprintf(p, sizeof(p), "#!%s/plain\n", t);
	put("noexecinterp", p, 0755);
	CHECK_ERR(execve("./noexecinterp", av, ev), EACCES, "#! naming a non-executable interpreter: EACCES");
	symlink("link2", "link1");
	symlink("link1", "link2");
	CHECK_ERR(execve("./link1", av, ev), ELOOP, "a symlink loop: ELOOP");
	symlink("/proc/self/exe", "self");
	CHECK_ERR(xexecveat(AT_FDCWD, "self", AT_SYMLINK_NOFOLLOW), ELOOP, "AT_SYMLINK_NOFOLLOW on a symlink: ELOOP");
	char *volatile bad = (char *)8; /* volatile: the compiler must not see through it */
	CHECK_ERR(syscall(SYS_execve, bad, av, ev), EFAULT, "a bad path pointer: EFAULT");
	char *bad_argv[] = {"x", bad, NULL};
	CHECK_ERR(syscall(SYS_execve, "./text", bad_argv, ev), EFAULT, "a bad argv string: EFAULT");
	CHECK_ERR(syscall(SYS_execve, "./text", bad, ev), EFAULT, "a bad argv array: EFAULT");
	static char huge[200 * 1024];
	memset(huge, 'a', sizeof(huge) - 1);
	char *big_argv[] = {"x", huge, NULL};
	CHECK_ERR(execve("/proc/self/exe", big_argv, ev), E2BIG, "one argument past MAX_ARG_STRLEN: E2BIG");
	CHECK_ERR(xexecveat(AT_FDCWD, "self", 0x8000), EINVAL, "an unknown flag: EINVAL");
	CHECK_ERR(xexecveat(99, "text", 0), EBADF, "a closed dirfd: EBADF");
	int dir = open(".", O_RDONLY | O_DIRECTORY);
	CHECK_ERR(xexecveat(dir, "", AT_EMPTY_PATH), EACCES, "AT_EMPTY_PATH on a directory fd: EACCES");
	CHECK_ERR(xexecveat(dir, "", 0), ENOENT, "an empty path without AT_EMPTY_PATH: ENOENT");
	CHECK_ERR(xexecveat(dir, "missing", 0), ENOENT, "relative to a dirfd: ENOENT");
	CHECK_ERR(xexecveat(dir, "text", 0), ENOEXEC, "relative to a dirfd: ENOEXEC");
	int f = open("text", O_RDONLY);
	CHECK_ERR(xexecveat(f, "", AT_EMPTY_PATH), ENOEXEC, "AT_EMPTY_PATH on a text file's fd: ENOEXEC");
	CHECK(getpid() > 0, "the program goes on after every failure");
	return check_done();
}
