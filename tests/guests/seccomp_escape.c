/*
 * Tries to get past a guest seccomp filter (tests/e2e/guest_seccomp.sh runs it with the rules
 * "1 errno 13 0 eq 99 0" and "110 errno 1": write to fd 99 refused, getppid refused). Every
 * route must either meet the filter or make no call at all, the pipe behind fd 99 staying
 * empty: the x32 numbering (0x40000000 | nr), numbers with high bits set (Linux looks only at
 * the low 32), out-of-range numbers, int 0x80 (the i386 entry), a call restarted after a signal
 * handler, restart_syscall itself, and a second thread. Without a mode: usage, exit 0.
 *
 *   seccomp_escape escape
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#include "check.h"

static int p[2];
static sigjmp_buf jb;

static void pipe_empty(const char *after)
{
	char c;
	CHECK_ERR(read(p[0], &c, 1), EAGAIN, "after %s: nothing reached the pipe", after);
}

static void on_signal(int sig)
{
	siglongjmp(jb, sig);
}

static void try_int80(void)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
	volatile long r = 0;
	int sig = sigsetjmp(jb, 1);
	if (sig == 0) {
		/* i386 write(99, "x", 1) */
		__asm__ volatile("int $0x80" : "=a"(r) : "a"(4L), "b"(99L), "c"((long)(uintptr_t)"x"), "d"(1L) : "memory");
	}
	CHECK(sig != 0 || r < 0, "int 0x80 write: a signal (%d) or an error (%ld)", sig, (long)r);
	pipe_empty("int 0x80");
}

static void on_alarm(int sig)
{
	(void)sig;
}

static void *late_writer(void *arg)
{
	usleep(100000);
	ssize_t w = write(*(int *)arg, "z", 1);
	(void)w;
	return NULL;
}

/* A read blocked on another pipe is interrupted by SIGALRM (SA_RESTART: made again), then the
 * filter still holds. */
static void try_restart(void)
{
	int q[2];
	CHECK_SYS(pipe(q), "pipe");
	struct sigaction sa = {.sa_handler = on_alarm, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = {.it_value = {0, 20000}};
	CHECK_SYS(setitimer(ITIMER_REAL, &it, NULL), "setitimer");
	/* a byte comes after the alarm: the restarted read gets it */
	pthread_t w;
	sigset_t alrm;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &alrm, NULL); /* the thread inherits it: the alarm is main's */
	CHECK_EQ(pthread_create(&w, NULL, late_writer, &q[1]), 0, "writer thread");
	pthread_sigmask(SIG_UNBLOCK, &alrm, NULL);
	char c = 0;
	CHECK_EQ(read(q[0], &c, 1), 1, "read restarted after SIGALRM gets the late byte");
	pthread_join(w, NULL);
	close(q[0]);
	close(q[1]);
	CHECK_ERR(write(99, "x", 1), EACCES, "write(99) after a restart");
	long r = syscall(SYS_restart_syscall);
	CHECK(r <= 0 || r == 0, "restart_syscall with nothing to restart (%ld)", r);
	CHECK_ERR(write(99, "x", 1), EACCES, "write(99) after restart_syscall");
	pipe_empty("restarts");
}

static void *thread_main(void *arg)
{
	(void)arg;
	CHECK_ERR(write(99, "x", 1), EACCES, "thread: write(99)");
	CHECK_ERR(syscall(SYS_getppid), EPERM, "thread: getppid");
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "escape") != 0) {
		printf("usage: seccomp_escape escape (run by tests/e2e/guest_seccomp.sh under a filter)\n");
		return 0;
	}
	CHECK_SYS(pipe2(p, O_NONBLOCK), "pipe");
	CHECK_SYS(dup2(p[1], 99), "dup2 to 99");
	CHECK_ERR(write(99, "x", 1), EACCES, "write(99) refused");
	CHECK_ERR(syscall(SYS_getppid), EPERM, "getppid refused");
	long r = syscall(0x40000000L | SYS_write, 99, "x", 1);
	CHECK(r < 0, "x32 write(99): %ld", r);
	pipe_empty("x32 write");
	r = syscall(0x100000000L | SYS_write, 99, "x", 1);
	CHECK(r < 0, "write(99) with bit 32 set: %ld", r);
	pipe_empty("a number with high bits");
	r = syscall(0x40000000L | SYS_getppid);
	CHECK(r < 0, "x32 getppid: %ld", r);
	for (long nr = 512; nr < 0x1000; nr += 97)
		CHECK(syscall(nr, 99, "x", 1) < 0 && errno == ENOSYS, "out-of-range number %ld: ENOSYS", nr);
	CHECK(syscall(-1L, 99, "x", 1) < 0, "number -1");
	pipe_empty("out-of-range numbers");
	try_int80();
	try_restart();
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, thread_main, NULL), 0, "pthread_create");
	pthread_join(t, NULL);
	pipe_empty("the thread");
	printf("PASSED all %d checks\n", check_total);
	return check_failed ? 1 : 0;
}
