/*
 * execve of a static program (itself, again): argv and envp arrive as given, the pid stays, an fd
 * without FD_CLOEXEC stays open and one with it is closed, a handler is reset to SIG_DFL while
 * SIG_IGN stays, the caller's mask stays, a blocked pending signal stays pending, RLIMIT_NOFILE
 * as set stays, a signal pending for the process stays and a signalfd without FD_CLOEXEC still
 * reads it.
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "check.h"

extern char **environ;

static void on_usr1(int sig)
{
	(void)sig;
}

/* The second image: what execve kept and what it reset. */
static int after(char **argv)
{
	char want_pid[32];
	snprintf(want_pid, sizeof(want_pid), "%d", (int)getpid());
	CHECK(strcmp(argv[0], "exec-basic-argv0") == 0, "argv[0] is the one the caller gave");
	CHECK(strcmp(argv[2], want_pid) == 0, "the pid stays across execve");
	CHECK(strcmp(argv[3], "two words") == 0 && argv[4][0] == '\0' && argv[5] == NULL,
	      "argv arrives whole (spaces, an empty string, its end)");
	CHECK(getenv("EXEC_ONE") != NULL && strcmp(getenv("EXEC_ONE"), "1") == 0, "envp arrives");
	CHECK(getenv("EXEC_GONE") == NULL, "only envp: the caller's own environment is not kept");
	CHECK(environ[0] != NULL && environ[1] != NULL && environ[2] == NULL, "exactly the two variables given");
	CHECK(fcntl(10, F_GETFD) == 0, "an fd without FD_CLOEXEC stays open");
	CHECK_ERR(fcntl(11, F_GETFD), EBADF, "an fd with FD_CLOEXEC is closed");
	char buf[8] = {0};
	CHECK(pread(10, buf, 5, 0) == 5 && memcmp(buf, "kept\n", 5) == 0, "the kept fd is the same file");
	struct sigaction sa;
	sigaction(SIGUSR1, NULL, &sa);
	CHECK(sa.sa_handler == SIG_DFL, "a handler is reset to SIG_DFL");
	sigaction(SIGUSR2, NULL, &sa);
	CHECK(sa.sa_handler == SIG_IGN, "SIG_IGN stays");
	sigset_t mask, pend;
	sigprocmask(SIG_BLOCK, NULL, &mask);
	CHECK(sigismember(&mask, SIGTERM) && sigismember(&mask, SIGWINCH) && sigismember(&mask, SIGHUP) &&
		  !sigismember(&mask, SIGUSR1),
	      "the mask stays");
	sigpending(&pend);
	CHECK(sigismember(&pend, SIGTERM) && !sigismember(&pend, SIGWINCH), "a blocked pending signal stays pending");
	CHECK(sigismember(&pend, SIGHUP), "a signal pending for the process stays pending");
	struct signalfd_siginfo si;
	CHECK(read(12, &si, sizeof(si)) == sizeof(si) && si.ssi_signo == SIGHUP,
	      "a signalfd kept across execve reads the pending signal");
	sigpending(&pend);
	CHECK(!sigismember(&pend, SIGHUP), "read from the signalfd, it is no longer pending");
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	CHECK(rl.rlim_cur == 200, "RLIMIT_NOFILE as the program set it stays (%lu)", (unsigned long)rl.rlim_cur);
	int fd = open("/dev/null", O_RDONLY);
	CHECK(fd >= 0 && fd < 200, "fds are handed out as before");
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "after") == 0)
		return after(argv);
	if (argc < 2)
		return 2;
	char path[4096];
	snprintf(path, sizeof(path), "%s/kept", argv[1]);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0 && write(fd, "kept\n", 5) == 5, "a file to keep");
	dup2(fd, 10);
	CHECK(fcntl(dup3(fd, 11, O_CLOEXEC), F_GETFD) == FD_CLOEXEC, "fd 11 is close-on-exec");
	close(fd);
	signal(SIGUSR1, on_usr1);
	signal(SIGUSR2, SIG_IGN);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGWINCH);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	raise(SIGTERM);
	kill(getpid(), SIGHUP);
	sigset_t hup;
	sigemptyset(&hup);
	sigaddset(&hup, SIGHUP);
	int sfd = signalfd(-1, &hup, SFD_NONBLOCK);
	CHECK(sfd >= 0 && dup2(sfd, 12) == 12, "a signalfd for SIGHUP at fd 12");
	close(sfd);
	struct rlimit rl = {200, 4096};
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = 200;
	CHECK_SYS(setrlimit(RLIMIT_NOFILE, &rl), "RLIMIT_NOFILE lowered");
	setenv("EXEC_GONE", "1", 1);
	char pid[32];
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	char *nargv[] = {"exec-basic-argv0", "after", pid, "two words", "", NULL};
	char *nenv[] = {"EXEC_ONE=1", "EXEC_TWO=2", NULL};
	fflush(stdout);
	execve("/proc/self/exe", nargv, nenv);
	CHECK(0, "execve returned: %s", strerror(errno));
	return check_done();
}
