/*
 * The thread life cycle as the kernel shows it (issue 7): gettid, raw clone with
 * CLONE_PARENT_SETTID/CLONE_CHILD_SETTID/CLONE_CHILD_CLEARTID, set_tid_address, the robust list,
 * affinity, sched_yield, clone flags that cannot make a thread, and a process ending while
 * threads are blocked in host syscalls.
 *
 *   thr_lifecycle            the checks (exit 0)
 *   thr_lifecycle exitgroup  a thread calls exit(42) while others block in read() on a pipe, in a
 *                            raw futex wait, in pthread_cond_wait and in pthread_join
 *   thr_lifecycle mainexit   the main thread calls pthread_exit; the last thread's end exits 0
 *   thr_lifecycle novm       prints whether clone of a new process sharing memory (CLONE_VM
 *                            without CLONE_THREAD or CLONE_VFORK) was "refused" or "ok" (not
 *                            compared with native: Linux makes one, km refuses it)
 */
// E2E: run 0
// E2E: exitgroup 42 exitgroup
// E2E: mainexit 0 mainexit
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "check.h"
#include "futex_ops.h"

#define STACK_SIZE (64 * 1024)

static long sys_gettid(void)
{
	return syscall(SYS_gettid);
}

static long futex(volatile int *uaddr, int op, int val, const struct timespec *ts)
{
	return futex6(uaddr, op, val, ts, NULL, 0);
}

/* Waits until *word is 0, as pthread_join does on the thread's cleared tid. */
static void wait_cleared(volatile int *word)
{
	int v;

	while ((v = __atomic_load_n(word, __ATOMIC_ACQUIRE)) != 0)
		futex(word, FUTEX_WAIT, v, NULL);
}

/* --- gettid -------------------------------------------------------------------------------- */

#define NT 5
static long thread_tids[NT];
static pthread_barrier_t tid_barrier;

static void *tid_worker(void *arg)
{
	thread_tids[(uintptr_t)arg] = sys_gettid();
	pthread_barrier_wait(&tid_barrier); /* all alive at once: no tid can be reused */
	return NULL;
}

static void test_gettid(void)
{
	pthread_t t[NT];
	int distinct = 1;

	CHECK(sys_gettid() == getpid(), "gettid equals getpid in the main thread");
	pthread_barrier_init(&tid_barrier, NULL, NT);
	for (int i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, tid_worker, (void *)(uintptr_t)i);
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < NT; i++) {
		if (thread_tids[i] <= 0 || thread_tids[i] == getpid())
			distinct = 0;
		for (int j = 0; j < i; j++)
			if (thread_tids[i] == thread_tids[j])
				distinct = 0;
	}
	CHECK(distinct, "gettid differs per thread and from the pid");
	pthread_barrier_destroy(&tid_barrier);
}

/* --- raw clone and the tid words ------------------------------------------------------------ */

static volatile int child_ran;
static volatile int child_tid_seen;
static volatile int parent_tid_word, child_tid_word, other_tid_word;

/* No libc calls in here: the child shares the parent's TLS (no CLONE_SETTLS). */
static int raw_child(void *arg)
{
	long tid;

	__asm__ volatile("syscall" : "=a"(tid) : "a"(SYS_gettid) : "rcx", "r11", "memory");
	child_tid_seen = (int)tid;
	child_ran = 1;
	if (arg) {
		/* Move the clear-on-exit word: the kernel clears and wakes this one instead. */
		long r;
		__asm__ volatile("syscall" : "=a"(r) : "a"(SYS_set_tid_address), "D"(&other_tid_word)
				 : "rcx", "r11", "memory");
	}
	return 0; /* the clone wrapper calls exit (of this thread only) */
}

static void test_raw_clone(void)
{
	const int flags = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD |
			  CLONE_SYSVSEM | CLONE_PARENT_SETTID | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID;
	char *stack = malloc(STACK_SIZE);
	int tid;

	parent_tid_word = child_tid_word = -1;
	tid = clone(raw_child, stack + STACK_SIZE, flags, NULL, &parent_tid_word, NULL, &child_tid_word);
	CHECK(tid > 0, "raw clone of a thread");
	if (tid > 0) {
		wait_cleared(&child_tid_word);
		CHECK(child_ran, "the raw thread ran before its tid word was cleared");
		CHECK(parent_tid_word == tid, "CLONE_PARENT_SETTID stored the new tid");
		CHECK(child_tid_seen == tid, "the new thread's gettid is what clone returned");
		CHECK(child_tid_word == 0, "CLONE_CHILD_CLEARTID cleared the word at thread exit (join)");
	}

	child_ran = 0;
	other_tid_word = 12345;
	tid = clone(raw_child, stack + STACK_SIZE, flags, (void *)1, &parent_tid_word, NULL, &child_tid_word);
	CHECK(tid > 0, "raw clone of a thread that calls set_tid_address");
	if (tid > 0) {
		wait_cleared(&other_tid_word);
		CHECK(child_ran && other_tid_word == 0, "set_tid_address moved the word cleared at exit");
		/* The first word is no longer the clear-on-exit one: it keeps the tid. */
		CHECK(child_tid_word == tid, "the old word keeps the tid CLONE_CHILD_SETTID stored");
	}
	free(stack);

	CHECK_EQ(syscall(SYS_set_tid_address, &other_tid_word), sys_gettid(),
		 "set_tid_address returns the caller's tid");
}

/* --- clone flags that do not make a thread -------------------------------------------------- */

static int noop_child(void *arg)
{
	(void)arg;
	return 0;
}

/* clone with these flags; "refused" if it failed with an errno, "ok" if a thread ran. */
static const char *try_clone(int flags)
{
	char *stack = malloc(STACK_SIZE);
	volatile int word = -1;
	int tid;

	errno = 0;
	tid = clone(noop_child, stack + STACK_SIZE, flags | CLONE_CHILD_CLEARTID | CLONE_CHILD_SETTID,
		    NULL, NULL, NULL, &word);
	if (tid < 0) {
		free(stack);
		return errno > 0 ? "refused" : "failed without an errno";
	}
	wait_cleared(&word);
	free(stack);
	return "ok";
}

static void test_bad_clone_flags(void)
{
	const int thread = CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM;

	/* Linux refuses these (EINVAL): a namespace cannot be new for one thread of a process. */
	CHECK_STR(try_clone(thread | CLONE_NEWNS), "refused", "clone of a thread with CLONE_NEWNS");
	CHECK_STR(try_clone(thread | CLONE_NEWUSER), "refused", "clone of a thread with CLONE_NEWUSER");
	CHECK_STR(try_clone(thread | CLONE_NEWPID), "refused", "clone of a thread with CLONE_NEWPID");
	/* CLONE_THREAD needs CLONE_SIGHAND, which needs CLONE_VM. */
	CHECK_STR(try_clone(CLONE_THREAD), "refused", "clone with CLONE_THREAD but no CLONE_SIGHAND");
	CHECK_STR(try_clone(CLONE_SIGHAND), "refused", "clone with CLONE_SIGHAND but no CLONE_VM");
}

/* A new process sharing its parent's memory: Linux makes one, km refuses it (a process is a VM
 * of its own; fork and vfork are km_fork.c's). */
static int novm(void)
{
	char *stack = malloc(STACK_SIZE);
	int pid = clone(noop_child, stack + STACK_SIZE, CLONE_VM | SIGCHLD, NULL);

	if (pid < 0) {
		printf("clone of a process sharing memory: %s\n", errno > 0 ? "refused" : "failed without an errno");
		return errno > 0 ? 0 : 1;
	}
	int status = -1;
	waitpid(pid, &status, 0);
	printf("clone of a process sharing memory: ok\n");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

/* --- robust list, affinity, yield ----------------------------------------------------------- */

struct robust_head {
	void *next;
	long offset;
	void *pending;
};

static void *robust_worker(void *arg)
{
	struct robust_head its = {&its, 0, NULL}, *head = NULL;
	size_t len = 0;

	(void)arg;
	if (syscall(SYS_set_robust_list, &its, sizeof(its)) != 0 ||
	    syscall(SYS_get_robust_list, 0, &head, &len) != 0)
		return (void *)1;
	return (void *)(uintptr_t)(len == sizeof(its) && head == &its ? 0 : 2);
}

static void test_robust_list(void)
{
	static struct robust_head mine = {&mine, 0, NULL};
	struct robust_head *head = NULL, *libc_head = NULL;
	size_t len = 0, libc_len = 0;
	pthread_t t;
	void *r = (void *)9;

	syscall(SYS_get_robust_list, 0, &libc_head, &libc_len); /* glibc has one, musl maybe not */
	CHECK_EQ(syscall(SYS_set_robust_list, &mine, sizeof(mine)), 0, "set_robust_list");
	CHECK_EQ(syscall(SYS_get_robust_list, 0, &head, &len), 0, "get_robust_list");
	CHECK(head == &mine && len == sizeof(mine), "get_robust_list gives back what was set");
	pthread_create(&t, NULL, robust_worker, NULL);
	pthread_join(t, &r);
	CHECK(r == NULL, "set_robust_list and get_robust_list in another thread");
	head = NULL;
	syscall(SYS_get_robust_list, 0, &head, &len);
	CHECK(head == &mine, "the robust list is per thread: the main thread's is unchanged");
	CHECK_ERR(syscall(SYS_set_robust_list, &mine, sizeof(mine) + 1), EINVAL, "set_robust_list with a bad size");
	if (libc_head)
		syscall(SYS_set_robust_list, libc_head, libc_len);
}

static void *affinity_worker(void *arg)
{
	cpu_set_t *want = arg, got;

	CPU_ZERO(&got);
	if (sched_setaffinity(0, sizeof(*want), want) != 0 ||
	    sched_getaffinity(0, sizeof(got), &got) != 0)
		return (void *)1;
	return (void *)(uintptr_t)(CPU_EQUAL(&got, want) ? 0 : 2);
}

static void test_affinity(void)
{
	cpu_set_t all, one, got, empty;
	int first = -1;
	pthread_t t;
	void *r = (void *)9;

	CPU_ZERO(&all);
	CHECK_SYS(sched_getaffinity(0, sizeof(all), &all), "sched_getaffinity");
	CHECK(CPU_COUNT(&all) >= 1, "sched_getaffinity: at least one CPU");
	for (int i = 0; i < CPU_SETSIZE && first < 0; i++)
		if (CPU_ISSET(i, &all))
			first = i;
	CPU_ZERO(&one);
	CPU_SET(first < 0 ? 0 : first, &one);
	CHECK_SYS(sched_setaffinity(0, sizeof(one), &one), "sched_setaffinity to one CPU");
	CPU_ZERO(&got);
	sched_getaffinity(0, sizeof(got), &got);
	CHECK(CPU_EQUAL(&got, &one), "sched_getaffinity reads back the one CPU");
	CHECK_SYS(sched_setaffinity(0, sizeof(all), &all), "sched_setaffinity back to all");
	CPU_ZERO(&empty);
	CHECK_ERR(sched_setaffinity(0, sizeof(empty), &empty), EINVAL, "sched_setaffinity with no CPU");
	pthread_create(&t, NULL, affinity_worker, &one);
	pthread_join(t, &r);
	CHECK(r == NULL, "affinity set and read back in another thread");
	CPU_ZERO(&got);
	sched_getaffinity(0, sizeof(got), &got);
	CHECK(CPU_EQUAL(&got, &all), "another thread's affinity is its own");
	CHECK_EQ(sched_yield(), 0, "sched_yield");
}

/* --- the process ends while threads block ---------------------------------------------------- */

static int pipe_fds[2];
static volatile int futex_word;
static pthread_mutex_t bmu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bcv = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t start_barrier;

static void *blocked_reader(void *arg)
{
	char c;

	(void)arg;
	pthread_barrier_wait(&start_barrier);
	(void)!read(pipe_fds[0], &c, 1); /* nobody writes */
	printf("FAIL the read returned\n");
	return NULL;
}

static void *blocked_futex(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start_barrier);
	for (;;)
		futex(&futex_word, FUTEX_WAIT_PRIVATE, 0, NULL);
	return NULL;
}

static void *blocked_cond(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&bmu);
	pthread_barrier_wait(&start_barrier);
	for (;;)
		pthread_cond_wait(&bcv, &bmu);
	return NULL;
}

static void *exiter(void *arg)
{
	(void)arg;
	pthread_barrier_wait(&start_barrier);
	usleep(30000); /* lets the others reach their blocking calls; correct output either way */
	printf("a thread calls exit(42)\n");
	exit(42);
}

static int exit_group_while_blocked(void)
{
	pthread_t t[4];

	if (pipe(pipe_fds) != 0)
		return 1;
	pthread_barrier_init(&start_barrier, NULL, 4);
	pthread_create(&t[0], NULL, blocked_reader, NULL);
	pthread_create(&t[1], NULL, blocked_futex, NULL);
	pthread_create(&t[2], NULL, blocked_cond, NULL);
	pthread_create(&t[3], NULL, exiter, NULL);
	printf("threads started\n");
	pthread_join(t[0], NULL);
	printf("FAIL the main thread's join returned\n");
	return 1;
}

static void *last_thread(void *arg)
{
	(void)arg;
	usleep(20000); /* the main thread has most likely exited by now */
	printf("the last thread ends\n");
	return NULL;
}

static int main_exits_first(void)
{
	pthread_t t;

	pthread_create(&t, NULL, last_thread, NULL);
	printf("the main thread calls pthread_exit\n");
	pthread_exit(NULL);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (strcmp(mode, "exitgroup") == 0)
		return exit_group_while_blocked();
	if (strcmp(mode, "mainexit") == 0)
		return main_exits_first();
	if (strcmp(mode, "novm") == 0)
		return novm();
	test_gettid();
	test_raw_clone();
	test_bad_clone_flags();
	test_robust_list();
	test_affinity();
	return check_done();
}
