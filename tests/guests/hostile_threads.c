/*
 * Hostile guest: threads without bound and clone arguments km refuses (issue 7, "Bad input").
 * - A thread bomb: pthread_create until it fails must fail with EAGAIN at KM_MAX_THREADS (256
 *   threads in all, km/km_threads.h), km intact; every thread made can still be joined.
 * - Churn: 2000 threads made and ended, 8 at a time, so that km reuses its slots.
 * - clone with flags km refuses, and clone3 with malformed arguments: an errno, no thread, no tid
 *   written. The raw calls below give a child that would be made a stack and make it exit at
 *   once, so a wrongly accepted call shows as a counted child rather than a wild one.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "check.h"

#define KM_MAX_THREADS 256

static int bomb_release;
static pthread_mutex_t bomb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bomb_cond = PTHREAD_COND_INITIALIZER;
static int bomb_started;

static void *bomb_thread(void *arg)
{
	pthread_mutex_lock(&bomb_lock);
	bomb_started++;
	pthread_cond_broadcast(&bomb_cond);
	while (!bomb_release)
		pthread_cond_wait(&bomb_cond, &bomb_lock);
	pthread_mutex_unlock(&bomb_lock);
	return arg;
}

static void thread_bomb(void)
{
	static pthread_t th[2 * KM_MAX_THREADS];
	pthread_attr_t attr;
	int n = 0, rc = 0;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	while (n < 2 * KM_MAX_THREADS) {
		rc = pthread_create(&th[n], &attr, bomb_thread, (void *)(intptr_t)(n + 1));
		if (rc != 0)
			break;
		n++;
	}
	CHECK_EQ(rc, EAGAIN, "the thread bomb ends in EAGAIN");
	CHECK_EQ(n, KM_MAX_THREADS - 1, "threads made besides main before EAGAIN");
	/* At the limit km still serves the threads it has, and refuses again. */
	pthread_t extra;
	CHECK_EQ(pthread_create(&extra, &attr, bomb_thread, NULL), EAGAIN, "one more is refused too");
	pthread_mutex_lock(&bomb_lock);
	while (bomb_started < n)
		pthread_cond_wait(&bomb_cond, &bomb_lock);
	bomb_release = 1;
	pthread_cond_broadcast(&bomb_cond);
	pthread_mutex_unlock(&bomb_lock);
	int joined = 0;
	for (int i = 0; i < n; i++) {
		void *ret = NULL;
		if (pthread_join(th[i], &ret) == 0 && ret == (void *)(intptr_t)(i + 1))
			joined++;
	}
	CHECK_EQ(joined, n, "every thread of the bomb joined with its own result");
	/* The slots are free again. */
	bomb_release = 0;
	bomb_started = 0;
	int again = 0;
	for (int i = 0; i < 16; i++)
		if (pthread_create(&th[i], &attr, bomb_thread, (void *)(intptr_t)(i + 1)) == 0)
			again++;
	pthread_mutex_lock(&bomb_lock);
	bomb_release = 1;
	pthread_cond_broadcast(&bomb_cond);
	pthread_mutex_unlock(&bomb_lock);
	for (int i = 0; i < again; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(again, 16, "threads can be made again after the bomb");
	pthread_attr_destroy(&attr);
}

static long churn_sum;

static void *churn_thread(void *arg)
{
	__atomic_add_fetch(&churn_sum, (long)(intptr_t)arg, __ATOMIC_RELAXED);
	return arg;
}

static void churn(void)
{
	pthread_attr_t attr;
	pthread_t th[8];
	long want = 0;
	int made = 0, bad = 0;

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (int round = 0; round < 250; round++) {
		for (int i = 0; i < 8; i++) {
			intptr_t v = round * 8 + i + 1;
			if (pthread_create(&th[i], &attr, churn_thread, (void *)v) != 0) {
				bad++;
				th[i] = 0;
				continue;
			}
			want += v;
			made++;
		}
		for (int i = 0; i < 8; i++) {
			void *ret;
			if (th[i] != 0 && (pthread_join(th[i], &ret) != 0 || ret != (void *)(intptr_t)(round * 8 + i + 1)))
				bad++;
		}
	}
	CHECK_EQ(made, 2000, "2000 threads made and ended, 8 at a time");
	CHECK_EQ(bad, 0, "no create or join failed in the churn");
	CHECK_EQ(churn_sum, want, "every churned thread ran once");
	pthread_attr_destroy(&attr);
}

/* --- raw clone and clone3 ---------------------------------------------------------------------- */

static int children; /* children that ran: each adds one and exits */
static char child_stack[16384] __attribute__((aligned(16)));

/* syscall `nr` with up to five arguments; a child (rax 0) counts itself and exits at once,
 * touching no stack. */
static long raw_spawn(long nr, long a1, long a2, long a3, long a4, long a5)
{
	long ret;
	register long r10 __asm__("r10") = a4;
	register long r8 __asm__("r8") = a5;
	__asm__ volatile("syscall\n\t"
			 "test %%rax, %%rax\n\t"
			 "jnz 1f\n\t"
			 "lock incl %[cnt]\n\t"
			 "mov $60, %%eax\n\t"
			 "xor %%edi, %%edi\n\t"
			 "syscall\n\t"
			 "ud2\n"
			 "1:"
			 : "=a"(ret), [cnt] "+m"(children)
			 : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}

#define THREAD_FLAGS (CLONE_VM | CLONE_FS | CLONE_FILES | CLONE_SIGHAND | CLONE_THREAD | CLONE_SYSVSEM)
#define STACK_TOP ((long)(child_stack + sizeof(child_stack)))

static int ptid_word;

/* clone(flags) must fail with `want`, making no child and writing no parent tid. */
static void clone_refused(unsigned long flags, long tls, int want, const char *what)
{
	ptid_word = 12345;
	long r = raw_spawn(SYS_clone, (long)(flags | CLONE_PARENT_SETTID), STACK_TOP, (long)&ptid_word, 0, tls);
	int ok = r == -want;
	char d[96];
	snprintf(d, sizeof(d), "returned %ld, wanted %d", r, -want);
	check_report(ok, d, "clone with %s refused", what);
	CHECK_EQ(ptid_word, 12345, "clone with %s wrote no parent tid", what);
}

struct clone_args_v2 { /* struct clone_args as of Linux 5.7 (88 bytes) */
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
	uint64_t set_tid, set_tid_size, cgroup;
};

static void clone3_refused(const void *args, size_t size, int want, const char *what)
{
	long r = raw_spawn(SYS_clone3, (long)args, (long)size, 0, 0, 0);
	char d[96];
	snprintf(d, sizeof(d), "returned %ld, wanted %d", r, -want);
	check_report(r == -want, d, "clone3 with %s refused", what);
}

static void clone_args_bad(void)
{
	clone_refused(THREAD_FLAGS | CLONE_NEWUSER, 0, EINVAL, "CLONE_NEWUSER");
	clone_refused(THREAD_FLAGS | CLONE_NEWNS, 0, EINVAL, "CLONE_NEWNS");
	clone_refused(THREAD_FLAGS | CLONE_PARENT, 0, EINVAL, "CLONE_PARENT");
	clone_refused(THREAD_FLAGS | CLONE_PTRACE, 0, EINVAL, "CLONE_PTRACE");
	clone_refused(THREAD_FLAGS | CLONE_PIDFD, 0, EINVAL, "CLONE_PIDFD");
	clone_refused(THREAD_FLAGS & ~CLONE_SIGHAND, 0, EINVAL, "no CLONE_SIGHAND");
	/* A thread must share memory (Linux: EINVAL); a new process may share it only with
	 * CLONE_VFORK (km gives every process a VM of its own: tests/guests/fork_*.c). Never a
	 * thread in disguise. */
	clone_refused((THREAD_FLAGS & ~CLONE_VM), 0, EINVAL, "thread flags without CLONE_VM");
	clone_refused(CLONE_VM | SIGCHLD, 0, EINVAL, "CLONE_VM without CLONE_VFORK (a process sharing memory)");
	clone_refused(CLONE_FILES | SIGCHLD, 0, EINVAL, "CLONE_FILES (a process sharing fds)");
	clone_refused(SIGUSR1, 0, EINVAL, "an exit signal other than SIGCHLD");
	/* A TLS base in km's runtime region (or beyond user space) is EPERM, as Linux's arch_prctl. */
	clone_refused(THREAD_FLAGS | CLONE_SETTLS, 0x7fffff000000L, EPERM, "a TLS in the runtime region");
	clone_refused(THREAD_FLAGS | CLONE_SETTLS, (long)0xffff800000000000UL, EPERM, "a kernel TLS");

	struct clone_args_v2 ca;
	memset(&ca, 0, sizeof(ca));
	ca.flags = THREAD_FLAGS;
	ca.stack = (uint64_t)(uintptr_t)child_stack;
	ca.stack_size = sizeof(child_stack);
	static unsigned char big[8192];
	memcpy(big, &ca, sizeof(ca));
	clone3_refused(&ca, 63, EINVAL, "size 63");
	clone3_refused(&ca, 0, EINVAL, "size 0");
	clone3_refused(big, 4097, E2BIG, "size 4097");
	clone3_refused(big, 8192, E2BIG, "size 8192");
	big[4000] = 1;
	clone3_refused(big, 4096, E2BIG, "a non-zero byte in the unknown tail");
	big[4000] = 0;
	big[sizeof(ca) + 3] = 0x80;
	clone3_refused(big, sizeof(ca) + 8, E2BIG, "a non-zero byte just past the known fields");
	big[sizeof(ca) + 3] = 0;
	ca.exit_signal = SIGCHLD;
	clone3_refused(&ca, sizeof(ca), EINVAL, "exit_signal SIGCHLD for a thread");
	ca.exit_signal = 0;
	pid_t want_tid = 1;
	ca.set_tid = (uint64_t)(uintptr_t)&want_tid;
	ca.set_tid_size = 1;
	clone3_refused(&ca, sizeof(ca), EINVAL, "set_tid");
	ca.set_tid_size = 0;
	clone3_refused(&ca, sizeof(ca), EINVAL, "set_tid without set_tid_size");
	ca.set_tid = 0;
	ca.set_tid_size = 1;
	clone3_refused(&ca, sizeof(ca), EINVAL, "set_tid_size without set_tid");
	ca.set_tid_size = 0;
	ca.flags = THREAD_FLAGS | CLONE_NEWUSER;
	clone3_refused(&ca, sizeof(ca), EINVAL, "CLONE_NEWUSER");
	ca.flags = THREAD_FLAGS | CLONE_SETTLS;
	ca.tls = 0x7fffff000000UL;
	clone3_refused(&ca, sizeof(ca), EPERM, "a TLS in the runtime region");
	clone3_refused((void *)0x7fffff002000UL, sizeof(ca), EFAULT, "its arguments in the runtime region");
	clone3_refused((void *)0xdead0000UL, sizeof(ca), EFAULT, "its arguments unmapped");

	/* Nothing above made a thread; a good clone3 still does (and its child counts). */
	CHECK_EQ(__atomic_load_n(&children, __ATOMIC_SEQ_CST), 0, "no refused clone made a child");
	memset(&ca, 0, sizeof(ca));
	ca.flags = THREAD_FLAGS;
	ca.stack = (uint64_t)(uintptr_t)child_stack;
	ca.stack_size = sizeof(child_stack);
	long t = raw_spawn(SYS_clone3, (long)&ca, sizeof(ca), 0, 0, 0);
	CHECK(t > 0, "a good clone3 makes a thread (%s)", t > 0 ? "a tid" : strerror((int)-t));
	while (t > 0 && __atomic_load_n(&children, __ATOMIC_SEQ_CST) == 0)
		sched_yield();
	CHECK_EQ(__atomic_load_n(&children, __ATOMIC_SEQ_CST), t > 0 ? 1 : 0, "it ran once");
}

int main(void)
{
	/* The bomb first: a raw clone's child may still hold its slot for a moment after it ran. */
	thread_bomb();
	churn();
	clone_args_bad();
	CHECK_EQ(write(1, "", 0), 0, "km is intact: it still serves syscalls");
	return check_done();
}
