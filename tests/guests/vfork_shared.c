/*
 * A CLONE_VM|CLONE_VFORK child shares its parent's memory until it execs or ends (issue 10):
 * what it writes before _exit is there when the parent's vfork returns. glibc's posix_spawn
 * depends on it (the child stores the exec's errno in its parent's stack), so does anything
 * vfork()ing and reporting back through memory. Checks vfork() and clone() with the child's own
 * stack writing the parent's stack and heap, a few MiB written back, a child ending by a signal,
 * posix_spawn of a missing program (ENOENT), system() of a missing command (127), and that a
 * plain fork's writes are not seen.
 */
// E2E: run 0
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "check.h"

extern char **environ;

#define BIG (3u << 20)

/* Waits for pid: its wait status, or -1. */
static int reap(pid_t pid)
{
	int st;
	return waitpid(pid, &st, 0) == pid ? st : -1;
}

static void check_vfork(void)
{
	volatile int on_stack = 1;
	volatile char *heap = malloc(64);
	heap[0] = 'a';
	pid_t pid = vfork();
	if (pid == 0) {
		on_stack = 42;
		heap[0] = 'z';
		_exit(3);
	}
	CHECK(pid > 0, "vfork");
	CHECK(on_stack == 42, "vfork: the child's write to the parent's stack is seen");
	CHECK(heap[0] == 'z', "vfork: the child's write to the heap is seen");
	int st = reap(pid);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 3, "vfork: the child exits 3");
	free((void *)heap);
}

struct shared {
	int value;
	char *buf;
	size_t len;
	int sig;
};

static int clone_child(void *arg)
{
	struct shared *s = arg;
	s->value = 1234;
	if (s->buf != NULL)
		for (size_t i = 0; i < s->len; i++)
			s->buf[i] = (char)(i * 7 + 1);
	if (s->sig != 0) /* not raise(): musl's would signal the parent's thread, whose TLS it sees */
		syscall(SYS_kill, syscall(SYS_getpid), s->sig);
	_exit(0);
}

/* clone(CLONE_VM|CLONE_VFORK) on a stack of the child's own, as glibc's posix_spawn does. */
static int clone_vfork(struct shared *s)
{
	size_t stack_size = 256 << 10;
	char *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	pid_t pid = clone(clone_child, stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, s);
	int st = pid > 0 ? reap(pid) : -1;
	munmap(stack, stack_size);
	return st;
}

static void check_clone(void)
{
	struct shared s = {0};
	int st = clone_vfork(&s);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "clone(CLONE_VM|CLONE_VFORK): the child exits 0");
	CHECK(s.value == 1234, "clone(CLONE_VM|CLONE_VFORK): the child's write to the parent's stack is seen");

	s.value = 0;
	s.len = BIG;
	s.buf = malloc(BIG);
	memset(s.buf, 0, BIG);
	st = clone_vfork(&s);
	size_t bad = 0;
	for (size_t i = 0; i < BIG; i++)
		bad += s.buf[i] != (char)(i * 7 + 1);
	CHECK(WIFEXITED(st) && bad == 0 && s.value == 1234, "a child writing 3 MiB: all of it is seen");
	free(s.buf);

	memset(&s, 0, sizeof(s));
	s.sig = SIGTERM;
	st = clone_vfork(&s);
	CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM && s.value == 1234,
	      "a child killed by SIGTERM: its write is seen");
}

static void check_spawn(void)
{
	char *argv[] = {"km-no-such-program", NULL};
	pid_t pid = 0;
	int rc = posix_spawn(&pid, "/nonexistent-km-e2e/km-no-such-program", NULL, NULL, argv, environ);
	CHECK(rc == ENOENT, "posix_spawn of a missing program fails with ENOENT (got %d)", rc);
	if (rc == 0)
		reap(pid);
	rc = posix_spawnp(&pid, "km-no-such-program", NULL, NULL, argv, environ);
	CHECK(rc == ENOENT, "posix_spawnp of a missing program fails with ENOENT (got %d)", rc);
	if (rc == 0)
		reap(pid);
	int st = system("/nonexistent-km-e2e/cmd 2>/dev/null");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 127, "system() of a missing command: 127");
}

static void check_fork(void)
{
	volatile int on_stack = 1;
	volatile char *heap = malloc(64);
	heap[0] = 'a';
	pid_t pid = fork();
	if (pid == 0) {
		on_stack = 42;
		heap[0] = 'z';
		_exit(0);
	}
	int st = reap(pid);
	CHECK(WIFEXITED(st), "fork: the child exits");
	CHECK(on_stack == 1 && heap[0] == 'a', "fork: the child's writes are not seen");
	free((void *)heap);
}

int main(void)
{
	check_vfork();
	check_clone();
	check_spawn();
	check_fork();
	return check_done();
}
