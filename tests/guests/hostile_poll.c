/*
 * hostile_poll km TMPDIR: attacks on the exitless syscall path (km_syscall_poll.h). The program
 * can write every vCPU's poll slot and run every vCPU's poll stub; km must neither crash, nor run
 * a call off its allowlist, nor get stuck: afterwards every thread's syscalls are exact again.
 *   - a scribbler fills every other vCPU's slot with random states, numbers, arguments and
 *     results while their servers spin (--test-poll-spin keeps them awake); among the numbers,
 *     exit_group(99), munmap of the program's text and clone, which no server may run;
 *   - REQ posted into every other slot while one thread blocks in an exit-path call (nanosleep);
 *   - a request whose arguments change right after it is posted;
 *   - jumps into another vCPU's stub, onto either int3 of a stub, and into its data;
 *   - /proc/thread-self/mem, which the host resolves by the thread that opens it.
 * Run by tests/e2e/hostile.sh under km only.
 */
// HOSTILE-KM-ARGS: --syscall-path=poll --test-poll-spin=2000000
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "check.h"

#define RT 0x7fffff000000ul
#define STUBS (RT + 0xa00000)
#define SLOTS (RT + 0xb00000)
#define STRIDE 0x1000
#define NSLOTS 256
#define NWORKERS 4

static atomic_int stop_workers;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = 0, .tv_nsec = ms * 1000000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static volatile uint64_t *slot(int i)
{
	return (volatile uint64_t *)(SLOTS + (uint64_t)i * STRIDE);
}

static atomic_int workers_quiet, workers_bad;

/* Wakes its server with a few syscalls, stays out of syscalls while the slots are scribbled (a
 * stub restores rax, rdx and r9 from its slot: scribbling a slot while its thread is in the stub
 * corrupts that thread's registers, as scribbling its stack would), then checks its syscalls. */
static void *worker(void *arg)
{
	(void)arg;
	long ppid = syscall(SYS_getppid);
	for (int i = 0; i < 50; i++)
		syscall(SYS_getppid);
	atomic_fetch_add(&workers_quiet, 1);
	while (!atomic_load(&stop_workers))
		__asm__ volatile("pause");
	int bad = 0;
	for (int i = 0; i < 500; i++)
		bad += syscall(SYS_getppid) != ppid;
	atomic_fetch_add(&workers_bad, bad);
	return NULL;
}

/* Calls a server must never run for a forged request: if one did, the program would end with
 * status 99, lose its text, or grow a thread. */
static const long forged_nrs[] = {SYS_exit_group, SYS_munmap, SYS_clone, SYS_rt_sigreturn, SYS_getppid, SYS_getpid};

static void scribble_all(void)
{
	for (int i = 1; i < NSLOTS; i++) { /* not slot 0: this thread's own */
		volatile uint64_t *s = slot(i);
		uint64_t nr = forged_nrs[rnd() % (sizeof(forged_nrs) / sizeof(forged_nrs[0]))];
		s[1] = nr;
		s[2] = nr == SYS_exit_group ? 99 : nr == SYS_munmap ? 0x400000 : rnd();
		s[3] = nr == SYS_munmap ? 0x100000 : rnd();
		for (int a = 4; a < 8; a++)
			s[a] = rnd();
		s[8] = rnd();
		uint64_t r = rnd();
		*(volatile uint32_t *)s = (r & 8) ? (uint32_t)(r >> 32) : (uint32_t)(r & 7);
	}
}

static void phase_scribble(void)
{
	pthread_t t[NWORKERS];
	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	while (atomic_load(&workers_quiet) < NWORKERS)
		nap_ms(1);
	for (int round = 0; round < 300; round++) {
		scribble_all();
		nap_ms(1);
	}
	atomic_store(&stop_workers, 1);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&workers_bad) == 0,
	      "slots scribbled with forged calls (exit_group, munmap, clone, ...): none ran, and the %d threads' "
	      "syscalls are exact afterwards",
	      NWORKERS);
}

static atomic_int sleeper_done;

static void *sleeper(void *arg)
{
	(void)arg;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 200 * 1000000};
	long r = syscall(SYS_clock_nanosleep, CLOCK_MONOTONIC, 0, &ts, NULL);
	atomic_store(&sleeper_done, r == 0 ? 1 : 2);
	return NULL;
}

/* REQ into every slot while a thread blocks in an exit-path call: its server must not run a
 * syscall of that vCPU while its own thread runs one. */
static void phase_post_into_blocked(void)
{
	pthread_t t;
	pthread_create(&t, NULL, sleeper, NULL);
	nap_ms(50);
	for (int k = 0; k < 20; k++) {
		for (int i = 0; i < 16; i++) {
			volatile uint64_t *s = slot(i);
			s[1] = SYS_getppid;
			uint32_t idle = 0;
			__atomic_compare_exchange_n((volatile uint32_t *)s, &idle, 1, false, __ATOMIC_SEQ_CST,
						    __ATOMIC_SEQ_CST);
		}
		nap_ms(2);
	}
	pthread_join(t, NULL);
	CHECK(atomic_load(&sleeper_done) == 1, "the blocked nanosleep ended normally");
}

/* A posted write whose arguments change at once: km copied them once (one of the two writes,
 * whole, or none). */
static void phase_change_args(void)
{
	int p[2];
	CHECK_SYS(pipe(p), "pipe");
	static const char a[] = "AAAA", b[] = "BBBB";
	for (int i = 0; i < 16; i++) {
		volatile uint64_t *s = slot(i);
		s[1] = SYS_write;
		s[2] = (uint64_t)p[1];
		s[3] = (uint64_t)(uintptr_t)a;
		s[4] = 4;
		uint32_t idle = 0;
		if (__atomic_compare_exchange_n((volatile uint32_t *)s, &idle, 1, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			s[3] = (uint64_t)(uintptr_t)b;
			s[4] = 2;
		}
	}
	nap_ms(20);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	char buf[256];
	ssize_t n = read(p[0], buf, sizeof(buf));
	bool whole = true;
	for (ssize_t i = 0; i < n; i++)
		whole = whole && (buf[i] == 'A' || buf[i] == 'B');
	CHECK(n < 0 || whole, "forged writes wrote only bytes of their own buffers");
	close(p[0]);
	close(p[1]);
}

static sigjmp_buf jb;

static void on_fault(int sig)
{
	siglongjmp(jb, sig);
}

/* `syscall` by hand into code at `target`: rcx the return, r11 the flags, rax the number. */
static long jump_call(uint64_t target, long nr)
{
	long ret;
	__asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
			 "pushfq\n\t"
			 "pop %%r11\n\t"
			 "jmp *%[t]\n"
			 "1:"
			 : "=a"(ret)
			 : "a"(nr), [t] "r"(target)
			 : "rcx", "r11", "rdx", "memory", "cc");
	return ret;
}

/* jump_call, or -1 if it ended in a fault. */
static long try_jump(uint64_t target, long nr)
{
	if (sigsetjmp(jb, 1) != 0)
		return -1;
	return jump_call(target, nr);
}

static void phase_jumps(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_fault;
	sa.sa_flags = SA_NODEFER;
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
	sigaction(SIGTRAP, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	long ppid = syscall(SYS_getppid);
	int good = 0;
	for (int i = 0; i < 4; i++)
		good += try_jump(STUBS + (uint64_t)i * STRIDE, SYS_getppid) == ppid;
	CHECK(good == 4, "a syscall through another vCPU's stub is a syscall of the caller (%d of 4)", good);
	good = try_jump(STUBS + 0x3e0, SYS_getppid) == ppid;
	good += try_jump(STUBS + 0x3f0, SYS_getppid) == ppid;
	CHECK(good == 2, "a jump onto a stub's int3 is a syscall of the caller");
	volatile int faulted = 0;
	if (sigsetjmp(jb, 1) == 0)
		jump_call(STUBS + 0x3c0, 0); /* the stub's data: not code */
	else
		faulted = 1;
	CHECK(faulted, "a jump into the stub's data faults in the program, as a jump anywhere would");
	signal(SIGSEGV, SIG_DFL);
	signal(SIGILL, SIG_DFL);
	signal(SIGTRAP, SIG_DFL);
	signal(SIGBUS, SIG_DFL);
}

/* After all that, every thread's syscalls are exact again. */
static void phase_after(void)
{
	long ppid = syscall(SYS_getppid);
	int bad = 0;
	for (int i = 0; i < 2000; i++)
		bad += syscall(SYS_getppid) != ppid;
	int p[2];
	CHECK_SYS(pipe(p), "pipe");
	char c = 0;
	for (int i = 0; i < 200; i++)
		bad += write(p[1], "q", 1) != 1 || read(p[0], &c, 1) != 1 || c != 'q';
	CHECK(bad == 0, "getppid and a pipe round trip are exact again (%d wrong)", bad);
	/* A path the host resolves by the calling thread: were a server to open it, it would be a
	 * thread of km's (km's memory); the program's own thread gets EACCES. */
	errno = 0;
	int fd = open("/proc/thread-self/mem", O_RDONLY);
	CHECK(fd < 0 && errno == EACCES, "open(/proc/thread-self/mem) is EACCES");
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	phase_scribble();
	/* Leave every slot as km would find it idle. */
	for (int i = 0; i < NSLOTS; i++)
		*(volatile uint32_t *)slot(i) = 0;
	phase_post_into_blocked();
	phase_change_args();
	phase_jumps();
	phase_after();
	return check_done();
}
