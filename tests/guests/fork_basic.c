/* fork, vfork, wait4/waitid and SIGCHLD, as a program sees them: exit status and signal death,
 * copy-on-write memory both ways, a shared fd offset, getppid, a SIGCHLD handler's siginfo,
 * SIG_IGN auto-reaping, waitid WNOHANG/WNOWAIT on a zombie, process groups. Deterministic output. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static volatile int cow = 1;

static void exit_status(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(7);
	int st = 0;
	pid_t w = waitpid(pid, &st, 0);
	CHECK(pid > 0 && w == pid, "fork+waitpid returns the child's pid");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 7, "the child's exit status 7 (status %#x)", st);
}

static void signal_death(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		kill(getpid(), SIGTERM);
		for (;;)
			pause();
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "a child killed by SIGTERM (status %#x)", st);
}

static void parent_pid(void)
{
	pid_t me = getpid();
	pid_t pid = fork();
	if (pid == 0)
		_exit(getppid() == me ? 0 : 1);
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's getppid() is the parent's getpid()");
}

/* Each side writes after the fork; neither sees the other's write. */
static void copy_on_write(void)
{
	int go[2], back[2];
	if (pipe(go) < 0 || pipe(back) < 0)
		return (void)CHECK(0, "pipe");
	cow = 1;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		cow = 2;
		if (read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(cow == 2 ? 0 : 1);
	}
	cow = 3;
	if (write(go[1], "x", 1) != 1)
		CHECK(0, "write");
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's memory stays its own after the fork");
	CHECK(cow == 3, "the parent's memory stays its own after the fork");
	close(go[0]);
	close(go[1]);
	close(back[0]);
	close(back[1]);
}

/* An fd open at the fork is one open file for both: one offset. */
static void shared_offset(void)
{
	int fd = (int)syscall(SYS_memfd_create, "fork_basic", 0);
	if (fd < 0)
		return (void)CHECK(0, "memfd_create");
	pid_t pid = fork();
	if (pid == 0)
		_exit(write(fd, "abcde", 5) == 5 ? 0 : 1);
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && lseek(fd, 0, SEEK_CUR) == 5, "the child's write moved the parent's offset");
	close(fd);
}

static volatile sig_atomic_t chld_pid, chld_status, chld_code;

static void on_chld(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	chld_pid = si->si_pid;
	chld_status = si->si_status;
	chld_code = si->si_code;
}

static void sigchld_handler(void)
{
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_chld;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(SIGCHLD, &sa, &old);
	sigset_t block, orig;
	sigemptyset(&block);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &orig);
	chld_pid = 0;
	pid_t pid = fork();
	if (pid == 0)
		_exit(5);
	sigset_t wait_set = orig;
	sigdelset(&wait_set, SIGCHLD);
	while (chld_pid == 0)
		sigsuspend(&wait_set);
	sigprocmask(SIG_SETMASK, &orig, NULL);
	CHECK(chld_pid == pid, "SIGCHLD's si_pid is the child's pid");
	CHECK(chld_code == CLD_EXITED && chld_status == 5, "SIGCHLD says CLD_EXITED with status 5 (code %d, status %d)",
	      (int)chld_code, (int)chld_status);
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid && WEXITSTATUS(st) == 5, "the child is still there to reap after SIGCHLD");
	sigaction(SIGCHLD, &old, NULL);
}

/* A zombie: waitid sees nothing yet with WNOHANG, then sees it without reaping (WNOWAIT), then
 * waitpid reaps it, and then there is nothing left. */
static void zombie(void)
{
	int go[2];
	if (pipe(go) < 0)
		return (void)CHECK(0, "pipe");
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		_exit(read(go[0], &c, 1) == 1 ? 9 : 8);
	}
	siginfo_t si;
	memset(&si, 0xff, sizeof(si));
	int r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG);
	CHECK(r == 0 && si.si_pid == 0, "waitid WNOHANG on a running child: 0 with si_pid 0");
	if (write(go[1], "x", 1) != 1)
		CHECK(0, "write");
	memset(&si, 0, sizeof(si));
	r = waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
	CHECK(r == 0 && si.si_pid == pid && si.si_code == CLD_EXITED && si.si_status == 9,
	      "waitid WNOWAIT reports the zombie (status %d)", si.si_status);
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid && WEXITSTATUS(st) == 9, "waitpid then reaps it");
	errno = 0;
	CHECK(waitpid(pid, &st, WNOHANG) < 0 && errno == ECHILD, "and then it is gone (ECHILD)");
	close(go[0]);
	close(go[1]);
}

/* SIGCHLD ignored: children are reaped by themselves, and wait ends with ECHILD once they have. */
static void ignored_sigchld(void)
{
	signal(SIGCHLD, SIG_IGN);
	pid_t pid = fork();
	if (pid == 0)
		_exit(0);
	int st;
	errno = 0;
	pid_t w = waitpid(pid, &st, 0);
	CHECK(w < 0 && errno == ECHILD, "with SIGCHLD ignored the child reaps itself (waitpid: ECHILD)");
	signal(SIGCHLD, SIG_DFL);
}

static void vfork_exit(void)
{
	pid_t pid = vfork();
	if (pid == 0)
		_exit(3);
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WEXITSTATUS(st) == 3, "vfork, _exit(3) in the child");
}

static volatile sig_atomic_t usr1;

static void on_usr1(int sig)
{
	(void)sig;
	usr1 = 1;
}

/* In a group of its own, a child and its child: kill(0) reaches both; the parent's kill(-pgid)
 * reaches the group from outside. */
static void process_groups(void)
{
	int ready[2];
	if (pipe(ready) < 0)
		return (void)CHECK(0, "pipe");
	pid_t pid = fork();
	if (pid == 0) {
		if (setpgid(0, 0) < 0)
			_exit(20);
		signal(SIGUSR1, on_usr1);
		sigset_t usr, orig;
		sigemptyset(&usr);
		sigaddset(&usr, SIGUSR1);
		sigprocmask(SIG_BLOCK, &usr, &orig);
		pid_t gc = fork();
		if (gc == 0) {
			signal(SIGUSR1, SIG_DFL);
			sigprocmask(SIG_SETMASK, &orig, NULL);
			for (;;)
				pause();
		}
		if (getpgid(gc) != getpid())
			_exit(21);
		kill(0, SIGUSR1);
		while (!usr1)
			sigsuspend(&orig);
		int st = 0;
		if (waitpid(gc, &st, 0) != gc || !WIFSIGNALED(st) || WTERMSIG(st) != SIGUSR1)
			_exit(22);
		/* The group's SIGTERM is for its other member, which takes it only once it can. */
		signal(SIGTERM, SIG_IGN);
		sigset_t term;
		sigemptyset(&term);
		sigaddset(&term, SIGTERM);
		sigprocmask(SIG_BLOCK, &term, NULL);
		gc = fork();
		if (gc == 0) {
			signal(SIGTERM, SIG_DFL);
			sigprocmask(SIG_UNBLOCK, &term, NULL);
			for (;;)
				pause();
		}
		if (write(ready[1], "r", 1) != 1)
			_exit(23);
		if (waitpid(gc, &st, 0) != gc || !WIFSIGNALED(st) || WTERMSIG(st) != SIGTERM)
			_exit(24);
		_exit(0);
	}
	char c;
	if (read(ready[0], &c, 1) != 1)
		CHECK(0, "the child's group is ready");
	CHECK(getpgid(pid) == pid && getsid(pid) == getsid(0), "setpgid made the child a group leader in our session");
	kill(-pid, SIGTERM);
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 1 : 0,
	      "kill(0) in a group reaches the child's child; kill(-pgid) reaches the group (status %#x)", st);
	close(ready[0]);
	close(ready[1]);
}

/* As a child subreaper, an orphaned grandchild becomes our child: its getppid() says so and we
 * reap it (what an init does in a container). */
static void subreaper(void)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return (void)CHECK(0, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	int is = 0;
	CHECK(prctl(PR_GET_CHILD_SUBREAPER, &is, 0, 0, 0) == 0 && is == 1, "PR_GET_CHILD_SUBREAPER says 1");
	int go[2], back[2];
	if (pipe(go) < 0 || pipe(back) < 0)
		return (void)CHECK(0, "pipe");
	pid_t me = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		if (fork() == 0) {
			char c;
			if (read(go[0], &c, 1) != 1) /* until its parent has gone */
				_exit(2);
			_exit(getppid() == me ? 6 : 7);
		}
		_exit(0);
	}
	int st = 0;
	waitpid(pid, &st, 0);
	CHECK(write(go[1], "g", 1) == 1, "the middle process ended");
	pid_t gc = wait(&st);
	CHECK(gc > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 6,
	      "the orphaned grandchild was reparented to us and reaped here (status %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
	close(go[0]);
	close(go[1]);
	close(back[0]);
	close(back[1]);
}

/* clone3's struct clone_args, first version (libc headers do not all have it). */
struct clone3_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};
#define CLEAR_SIGHAND 0x100000000ull /* CLONE_CLEAR_SIGHAND */

/* clone3 without a stack is a fork; CLONE_CLEAR_SIGHAND gives the child SIG_DFL for every handled
 * signal, and keeps ignored ones ignored. */
static void clone3_clear_sighand(void)
{
	signal(SIGUSR2, on_usr1);
	signal(SIGURG, SIG_IGN);
	struct clone3_args ca = {.flags = CLEAR_SIGHAND, .exit_signal = SIGCHLD};
	long pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid == 0) {
		struct sigaction usr2, urg;
		sigaction(SIGUSR2, NULL, &usr2);
		sigaction(SIGURG, NULL, &urg);
		_exit(usr2.sa_handler == SIG_DFL && urg.sa_handler == SIG_IGN ? 0 : 1);
	}
	int st = 0;
	CHECK(pid > 0 && waitpid((pid_t)pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "clone3 with CLONE_CLEAR_SIGHAND: handlers reset in the child, ignored signals kept");
	struct sigaction mine;
	sigaction(SIGUSR2, NULL, &mine);
	CHECK(mine.sa_handler == on_usr1, "and the parent keeps its handler");
	signal(SIGUSR2, SIG_DFL);
	signal(SIGURG, SIG_DFL);
}

int main(void)
{
	exit_status();
	signal_death();
	parent_pid();
	copy_on_write();
	shared_offset();
	sigchld_handler();
	zombie();
	ignored_sigchld();
	vfork_exit();
	process_groups();
	clone3_clear_sighand();
	subreaper();
	return check_done();
}
