/*
 * Process odds and ends: getpid()==gettid() in the main thread, getppid, uname, getrandom,
 * getrlimit/prlimit(RLIMIT_STACK), readlink("/proc/self/exe") equal to realpath(argv[0]),
 * getcwd/chdir/fchdir (temporary directory: argv[1], else $TMPDIR, else /tmp), the auxiliary
 * vector entries libc relies on, uid/gid consistency.
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>

#include "check.h"

static void test_ids(void)
{
	pid_t pid = getpid();

	CHECK(pid > 0, "getpid() > 0");
	CHECK_EQ(syscall(SYS_gettid), pid, "gettid() == getpid() in the main thread");
	CHECK_EQ(syscall(SYS_getpid), pid, "raw getpid agrees with libc");
	CHECK(getppid() > 0, "getppid() > 0");
	CHECK(getppid() != pid, "getppid() != getpid()");
	CHECK_EQ(getuid(), geteuid(), "getuid() == geteuid()");
	CHECK_EQ(getgid(), getegid(), "getgid() == getegid()");
	CHECK_EQ(sched_yield(), 0, "sched_yield");
}

static void test_uname(void)
{
	struct utsname u;

	CHECK_SYS(uname(&u), "uname");
	CHECK_STR(u.sysname, "Linux", "uname sysname");
	CHECK_STR(u.machine, "x86_64", "uname machine");
	CHECK(strlen(u.release) > 0 && strlen(u.nodename) > 0, "uname release and nodename set");
}

static void test_random(void)
{
	unsigned char a[64], b[64];
	int i, nonzero = 0;

	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	CHECK_EQ(getrandom(a, sizeof(a), 0), sizeof(a), "getrandom 64 bytes");
	CHECK_EQ(getrandom(b, sizeof(b), GRND_NONBLOCK), sizeof(b), "getrandom GRND_NONBLOCK");
	for (i = 0; i < 64; i++)
		nonzero += a[i] != 0;
	CHECK(nonzero > 32, "getrandom filled the buffer");
	CHECK(memcmp(a, b, sizeof(a)) != 0, "two getrandom calls differ");
	CHECK_EQ(syscall(SYS_getrandom, a, 0, 0), 0, "getrandom of 0 bytes");
}

static void test_rlimit(void)
{
	struct rlimit r, r2;

	CHECK_SYS(getrlimit(RLIMIT_STACK, &r), "getrlimit(RLIMIT_STACK)");
	CHECK(r.rlim_cur > 0 && (r.rlim_cur == RLIM_INFINITY || r.rlim_cur >= 65536), "stack soft limit sane");
	CHECK(r.rlim_max == RLIM_INFINITY || r.rlim_cur <= r.rlim_max, "stack soft limit <= hard limit");
	CHECK_SYS(prlimit(0, RLIMIT_STACK, NULL, &r2), "prlimit(0, RLIMIT_STACK, NULL, &old)");
	CHECK(r.rlim_cur == r2.rlim_cur && r.rlim_max == r2.rlim_max, "prlimit agrees with getrlimit");
	CHECK_SYS(getrlimit(RLIMIT_NOFILE, &r), "getrlimit(RLIMIT_NOFILE)");
	CHECK(r.rlim_cur >= 64 && r.rlim_cur <= r.rlim_max, "open files limit sane");
}

static void test_exe(const char *argv0)
{
	char link[PATH_MAX + 1], *real;
	ssize_t n;

	n = readlink("/proc/self/exe", link, sizeof(link) - 1);
	CHECK(n > 0, "readlink(/proc/self/exe)");
	link[n > 0 ? n : 0] = 0;
	real = realpath(argv0, NULL);
	CHECK(real != NULL, "realpath(argv[0])");
	CHECK(n > 0 && link[0] == '/', "/proc/self/exe is absolute");
	if (!real || n <= 0 || strcmp(real, link) != 0)
		printf("  /proc/self/exe is \"%s\", realpath(argv[0]) is \"%s\"\n", link, real ? real : "?");
	CHECK(real && n > 0 && strcmp(real, link) == 0, "/proc/self/exe == realpath(argv[0])");
	CHECK(syscall(SYS_readlink, "/proc/self/exe", link, 4) == 4, "readlink truncates to the buffer size");
	free(real);
}

static void test_cwd(const char *tmp)
{
	char start[PATH_MAX], cwd[PATH_MAX], *real_tmp = realpath(tmp, NULL);
	int fd = open(".", O_RDONLY | O_DIRECTORY);

	CHECK(getcwd(start, sizeof(start)) != NULL, "getcwd");
	CHECK(start[0] == '/', "getcwd is absolute");
	CHECK_SYS(chdir("/"), "chdir(/)");
	CHECK_STR(getcwd(cwd, sizeof(cwd)), "/", "getcwd after chdir(/)");
	CHECK_SYS(chdir(tmp), "chdir(tmp dir)");
	CHECK_STR(getcwd(cwd, sizeof(cwd)), real_tmp, "getcwd after chdir(tmp) == realpath(tmp)");
	CHECK_ERR(chdir("no/such/dir"), ENOENT, "chdir to a missing dir fails ENOENT");
	CHECK(getcwd(cwd, 2) == NULL && errno == ERANGE, "getcwd with a 2-byte buffer fails ERANGE");
	CHECK_SYS(fchdir(fd), "fchdir back to the start directory");
	CHECK_STR(getcwd(cwd, sizeof(cwd)), start, "getcwd after fchdir");
	close(fd);
	free(real_tmp);
}

static void test_auxv(void)
{
	CHECK_EQ(getauxval(AT_PAGESZ), 4096, "AT_PAGESZ == 4096");
	CHECK(getauxval(AT_RANDOM) != 0, "AT_RANDOM present");
	CHECK(getauxval(AT_PHDR) != 0 && getauxval(AT_PHNUM) > 0, "AT_PHDR/AT_PHNUM present");
	CHECK(getauxval(AT_ENTRY) != 0, "AT_ENTRY present");
	CHECK_EQ(getauxval(AT_UID), getuid(), "AT_UID == getuid()");
}

int main(int argc, char **argv)
{
	test_ids();
	test_uname();
	test_random();
	test_rlimit();
	test_exe(argv[0]);
	test_cwd(check_tmpdir(argc, argv));
	test_auxv();
	return check_done();
}
