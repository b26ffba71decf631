/*
 * Hostile guest: execve and execveat as routes out. km's own fds (1000 up, among them its fd on
 * its own binary, 1023) are EBADF as dirfds and unreachable through /proc/self/fd; km's internal
 * --exec-state option in the program's argv is only the program's argument (the new km takes its
 * options before "--", which only km writes); huge argv and envp are refused with E2BIG once past
 * Linux's bound, without km taking memory for them; an unterminated argv running into unmapped
 * memory is EFAULT. The last exec runs this program again with the crafted argv and an
 * environment km itself would act on: the argv must arrive unchanged, the environment must be
 * the program's only, and km's fds must still be out of reach in the new image.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "check.h"

#define KM_FDS 1000

static char *const av[] = {"x", NULL};
static char *const ev[] = {NULL};

static void km_fds_unreachable(const char *when)
{
	int bad = 0;
	for (int fd = KM_FDS; fd < KM_FDS + 40; fd++) {
		errno = 0;
		if (syscall(SYS_execveat, fd, "", av, ev, AT_EMPTY_PATH) != -1 || errno != EBADF)
			bad++;
		if (syscall(SYS_execveat, fd, "x", av, ev, 0) != -1 || errno != EBADF)
			bad++;
	}
	CHECK(bad == 0, "execveat on km's fds (1000..1039) is EBADF %s", when);
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", 1023);
	CHECK(execve(p, av, ev) == -1 && errno != EBADF, "km's own binary through /proc/self/fd is refused %s (%s)",
	      when, strerror(errno));
	snprintf(p, sizeof(p), "/proc/%d/fd/%d", (int)getpid(), 1000);
	CHECK(execve(p, av, ev) == -1, "km's stderr copy through /proc/PID/fd is refused %s", when);
}

static void huge(void)
{
	/* 1M pointers to one 99-byte string: 100 MB of strings if km copied them all. */
	size_t n = 1 << 20;
	char **v = mmap(NULL, (n + 1) * sizeof(char *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	static char s[100];
	memset(s, 'a', sizeof(s) - 1);
	for (size_t i = 0; i < n; i++)
		v[i] = s;
	v[n] = NULL;
	CHECK_ERR(execve("/proc/self/exe", v, ev), E2BIG, "a huge argv: E2BIG");
	CHECK_ERR(execve("/proc/self/exe", av, v), E2BIG, "a huge envp: E2BIG");
	/* An argv array that never ends: it runs into unmapped memory. */
	size_t page = 4096;
	char **end = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	munmap((char *)end + page, page);
	for (size_t i = 0; i < page / sizeof(char *); i++)
		end[i] = "y";
	CHECK_ERR(execve("/proc/self/exe", end, ev), EFAULT, "an argv without its NULL: EFAULT");
	munmap(v, (n + 1) * sizeof(char *));
	munmap(end, page);
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[0], "--exec-state=1001") == 0) {
		CHECK(strcmp(argv[1], "--") == 0 && strcmp(argv[2], "--exec-state=3") == 0 &&
			  strcmp(argv[3], "--no-seccomp") == 0,
		      "km's options in the program's argv are the program's arguments");
		struct rlimit rl;
		CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur <= KM_FDS, "the fd limit still keeps km's fds out");
		km_fds_unreachable("after execve");
		const char *probe = getenv("KM_TEST_SECCOMP_PROBE");
		CHECK(probe != NULL && strcmp(probe, "ptrace") == 0,
		      "the program's environment is its own, and km's is not it (km ran on)");
		return check_done();
	}
	km_fds_unreachable("before execve");
	huge();
	/* A state file the guest made, at a guest fd, named in argv: only an argument. */
	int fd = open(argc > 2 ? argv[2] : ".", O_RDONLY | O_DIRECTORY);
	CHECK(fd >= 0, "an fd to name");
	char *nargv[] = {"--exec-state=1001", "--", "--exec-state=3", "--no-seccomp", NULL};
	fflush(stdout);
	/* km reads KM_TEST_SECCOMP_PROBE from its own environment (and would make a forbidden
	 * call): the program's environment must not become km's. */
	char *nenv[] = {"KM_TEST_SECCOMP_PROBE=ptrace", "GLIBC_TUNABLES=glibc.malloc.tcache_count=0", NULL};
	execve("/proc/self/exe", nargv, nenv);
	CHECK(0, "execve of itself: %s", strerror(errno));
	return check_done();
}
