/*
 * stress_syscalls: 8 threads making syscalls whose every result they check, while a ninth sends
 * them SIGUSR1 every ~100 us (issue 12: the poll path must be as exact as the exit path).
 * tests/e2e/stress.sh runs it under each syscall path while it takes snapshots from outside and
 * resumes them; the plain guest run (E2E line below) compares a short run with the native one.
 *
 *   stress_syscalls run FILE ROUNDS   FILE is the shared file ("memfd": a memfd, which a snapshot
 *                                     holds, so a live one resumes too); ROUNDS rounds per phase: first with SA_RESTART, then
 *                                     without. Prints "ready", then, at the end, one line per
 *                                     thread with its exact counts, "done" and PASSED. The
 *                                     last phase ends only after a line (or EOF) on stdin.
 *   stress_syscalls getppid N         N getppid calls, each the same as the first: "getppid ok"
 *
 * Each worker's round: getppid() equals the value read at start (or, once the program has been
 * resumed, confirmed twice as its new parent: the count of such changes is printed); a record with its running
 * sequence number written into its own pipe and the record of two rounds before read back (so
 * the pipe always holds data a snapshot must carry); its own block of FILE read back as the last
 * round left it, then rewritten; a nanosleep of 0-50 us; CLOCK_MONOTONIC never going back; every
 * 16th round a token written to its left neighbour's relay pipe, then a blocking read of its own
 * relay pipe, which its right neighbour fills. EINTR is accepted only where Linux gives it: from
 * nanosleep, and from the blocking read in the phase without SA_RESTART; anywhere else it fails.
 * The signal thread sends to a worker only when that worker has handled every signal sent to it
 * before, so at the end handled == sent exactly, per thread; each worker waits halfway
 * through each phase until it has handled one.
 */
// E2E: short 0 run @TMP/stress.data 64
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"

#define NWORK 8
#define BLOCK 4096
#define TOKEN_EVERY 16
#define MAX_FAIL_LINES 20

struct rec {
	uint32_t idx, magic;
	uint64_t seq;
};

struct block {
	uint64_t magic, idx, seq, inv;
};

struct worker {
	pthread_t th;
	int idx;
	int pipe[2];  /* its own: records with its sequence numbers */
	int relay[2]; /* filled by its right neighbour every TOKEN_EVERY rounds */
	uint64_t seq, file_seq, tokens;
	uint64_t rng;
	atomic_ulong sent, handled;
};

static struct worker w[NWORK];
static int data_fd;
static long rounds;
static _Atomic pid_t ppid_cur;
static atomic_int ppid_changes;
static pthread_barrier_t phase_barrier;
static atomic_int stop_signals, fails, phase_restart = 1;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int my_idx = -1;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	if (atomic_fetch_add(&fails, 1) >= MAX_FAIL_LINES)
		return;
	char line[300];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&out_lock);
	printf("FAIL %s\n", line);
	pthread_mutex_unlock(&out_lock);
}

static void on_usr1(int sig)
{
	(void)sig;
	if (my_idx >= 0)
		atomic_fetch_add(&w[my_idx].handled, 1);
}

static void set_handler(int restart)
{
	struct sigaction sa = {.sa_handler = on_usr1, .sa_flags = restart ? SA_RESTART : 0};
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) != 0)
		fail("sigaction: %s", strerror(errno));
	atomic_store(&phase_restart, restart);
}

static uint64_t next_rand(struct worker *me)
{
	me->rng ^= me->rng << 13;
	me->rng ^= me->rng >> 7;
	me->rng ^= me->rng << 17;
	return me->rng;
}

/* A syscall result that may never be EINTR (nor any other failure). */
static int no_eintr(long rv, long want, const char *what, struct worker *me)
{
	if (rv == want)
		return 1;
	fail("thread %d round seq %llu: %s = %ld (%s), expected %ld", me->idx, (unsigned long long)me->seq, what,
	     rv, rv < 0 ? strerror(errno) : "short", want);
	return 0;
}

static void pipe_round(struct worker *me)
{
	struct rec r = {.idx = (uint32_t)me->idx, .magic = 0x57e55, .seq = me->seq};
	no_eintr(write(me->pipe[1], &r, sizeof(r)), sizeof(r), "write to its own pipe", me);
	if (me->seq <= 2)
		return;
	struct rec got;
	if (no_eintr(read(me->pipe[0], &got, sizeof(got)), sizeof(got), "read of its own pipe", me) &&
	    (got.idx != (uint32_t)me->idx || got.magic != 0x57e55 || got.seq != me->seq - 2))
		fail("thread %d: pipe record idx %u seq %llu, expected seq %llu", me->idx, got.idx,
		     (unsigned long long)got.seq, (unsigned long long)(me->seq - 2));
}

static void file_round(struct worker *me)
{
	struct block b, want = {0};
	off_t off = (off_t)me->idx * BLOCK;
	if (me->file_seq > 0)
		want = (struct block){.magic = 0xb10c, .idx = (uint64_t)me->idx, .seq = me->file_seq, .inv = ~me->file_seq};
	if (no_eintr(pread(data_fd, &b, sizeof(b), off), sizeof(b), "pread of its block", me) &&
	    memcmp(&b, &want, sizeof(b)) != 0)
		fail("thread %d: its block holds seq %llu, expected %llu", me->idx, (unsigned long long)b.seq,
		     (unsigned long long)me->file_seq);
	me->file_seq++;
	b = (struct block){.magic = 0xb10c, .idx = (uint64_t)me->idx, .seq = me->file_seq, .inv = ~me->file_seq};
	no_eintr(pwrite(data_fd, &b, sizeof(b), off), sizeof(b), "pwrite of its block", me);
}

static void sleep_round(struct worker *me, struct timespec *last)
{
	struct timespec ts = {0, (long)(next_rand(me) % 50001)}, now;
	if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
		fail("thread %d: nanosleep: %s", me->idx, strerror(errno));
	if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
		fail("thread %d: clock_gettime: %s", me->idx, strerror(errno));
	else if (now.tv_sec < last->tv_sec || (now.tv_sec == last->tv_sec && now.tv_nsec < last->tv_nsec))
		fail("thread %d: CLOCK_MONOTONIC went back from %ld.%09ld to %ld.%09ld", me->idx, (long)last->tv_sec,
		     last->tv_nsec, (long)now.tv_sec, now.tv_nsec);
	else
		*last = now;
}

/* Token k to the left neighbour, then a blocking read of token k from the right one. */
static void token_round(struct worker *me)
{
	me->tokens++;
	struct worker *left = &w[(me->idx + NWORK - 1) % NWORK];
	struct rec t = {.idx = (uint32_t)me->idx, .magic = 0x70c, .seq = me->tokens}, got;
	no_eintr(write(left->relay[1], &t, sizeof(t)), sizeof(t), "write of a token", me);
	long n;
	while ((n = read(me->relay[0], &got, sizeof(got))) < 0 && errno == EINTR) {
		if (atomic_load(&phase_restart)) {
			fail("thread %d: blocking read gave EINTR though the handler has SA_RESTART", me->idx);
			break;
		}
	}
	int right = (me->idx + 1) % NWORK;
	if (no_eintr(n, sizeof(got), "blocking read of a token", me) &&
	    (got.idx != (uint32_t)right || got.magic != 0x70c || got.seq != me->tokens))
		fail("thread %d: token from %u number %llu, expected from %d number %llu", me->idx, got.idx,
		     (unsigned long long)got.seq, right, (unsigned long long)me->tokens);
}

/* getppid() is the parent known so far. A resumed program has another parent (the resuming km's):
 * a new value counts as a change of parent only when a second getppid() confirms it; the test
 * knows how many times it resumed the program. */
static void check_ppid(struct worker *me, pid_t p)
{
	for (int tries = 0;; tries++) {
		pid_t cur = atomic_load(&ppid_cur);
		if (p == cur)
			return;
		pid_t q = getppid();
		if (q == p) {
			if (atomic_compare_exchange_strong(&ppid_cur, &cur, p)) {
				atomic_fetch_add(&ppid_changes, 1);
				return;
			}
			continue;
		}
		if (tries == 3) {
			fail("thread %d: getppid() gives %d, then %d, known parent %d", me->idx, (int)p, (int)q, (int)cur);
			return;
		}
		p = q;
	}
}

/* Halfway through each phase a worker waits for a signal of its own, so that every thread is
 * signalled in each phase however the threads are scheduled. */
static void await_signal(struct worker *me, unsigned long before)
{
	while (atomic_load(&me->handled) == before) {
		struct timespec ts = {0, 20000};
		if (nanosleep(&ts, NULL) != 0 && errno != EINTR)
			fail("thread %d: nanosleep: %s", me->idx, strerror(errno));
	}
}

static void run_phase(struct worker *me, struct timespec *last)
{
	unsigned long at_start = atomic_load(&me->handled);
	for (long i = 0; i < rounds; i++) {
		if (i == rounds / 2)
			await_signal(me, at_start);
		me->seq++;
		check_ppid(me, getppid());
		pipe_round(me);
		file_round(me);
		sleep_round(me, last);
		if (me->seq % TOKEN_EVERY == 0)
			token_round(me);
	}
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	my_idx = me->idx;
	/* Blocked until now (run): a signal that came before my_idx was set would count for nobody,
	 * and the signal thread, seeing it in flight, would never send this thread another. */
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
	struct timespec last = {0, 0};
	run_phase(me, &last);
	pthread_barrier_wait(&phase_barrier); /* main switches SA_RESTART off */
	pthread_barrier_wait(&phase_barrier);
	run_phase(me, &last);
	pthread_barrier_wait(&phase_barrier); /* main stops the signal thread */
	pthread_barrier_wait(&phase_barrier);
	/* Every signal sent is pending or handled: it is handled once this thread runs. */
	for (long spins = 0; atomic_load(&me->handled) != atomic_load(&me->sent); spins++) {
		if (spins == 2000000) {
			fail("thread %d: handled %lu of %lu signals sent to it", me->idx, atomic_load(&me->handled),
			     atomic_load(&me->sent));
			break;
		}
		sched_yield();
	}
	return NULL;
}

static void *signal_main(void *arg)
{
	(void)arg;
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	while (!atomic_load(&stop_signals)) {
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
		rng ^= rng << 13;
		rng ^= rng >> 7;
		rng ^= rng << 17;
		struct worker *t = &w[rng % NWORK];
		if (atomic_load(&t->handled) != atomic_load(&t->sent))
			continue; /* one in flight: another would merge with it */
		atomic_fetch_add(&t->sent, 1);
		int e = pthread_kill(t->th, SIGUSR1);
		if (e != 0)
			fail("pthread_kill: %s", strerror(e));
	}
	return NULL;
}

/* The workers cannot end their last phase before a line (or end of file) on stdin: the test's
 * snapshots all come before it, so none finds the program gone. Blocked here, this thread is in
 * a read a snapshot must catch and a resume must complete exactly once. */
static void wait_for_go(void)
{
	char c;
	long n;
	while ((n = read(0, &c, 1)) == 1 && c != '\n')
		;
	if (n < 0)
		fail("read of stdin: %s", strerror(errno));
}

static int run(const char *file, long n)
{
	rounds = n;
	atomic_store(&ppid_cur, getppid());
	if (strcmp(file, "memfd") == 0)
		data_fd = CHECK_SYS(memfd_create("stress", MFD_CLOEXEC), "make the data memfd");
	else
		data_fd = CHECK_SYS(open(file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600), "open the data file");
	CHECK_SYS(ftruncate(data_fd, NWORK * BLOCK), "size the data file");
	set_handler(1);
	pthread_barrier_init(&phase_barrier, NULL, NWORK + 1);
	for (int i = 0; i < NWORK; i++) {
		w[i].idx = i;
		w[i].rng = 0x1234567ull * (uint64_t)(i + 1);
		if (pipe2(w[i].pipe, O_CLOEXEC) != 0 || pipe2(w[i].relay, O_CLOEXEC) != 0)
			fail("pipe2: %s", strerror(errno));
	}
	sigset_t usr1;
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL); /* inherited: each worker unblocks it when ready */
	for (int i = 0; i < NWORK; i++)
		pthread_create(&w[i].th, NULL, worker_main, &w[i]);
	pthread_t sig;
	pthread_create(&sig, NULL, signal_main, NULL);
	printf("ready\n");
	fflush(stdout);
	pthread_barrier_wait(&phase_barrier);
	set_handler(0);
	pthread_barrier_wait(&phase_barrier);
	wait_for_go();
	/* A snapshot taken while every worker waited here resumes straight into the end: the main
	 * thread looks at the parent once more, so that every resume is seen at least once. */
	struct worker self = {.idx = NWORK};
	check_ppid(&self, getppid());
	pthread_barrier_wait(&phase_barrier);
	atomic_store(&stop_signals, 1);
	pthread_join(sig, NULL);
	pthread_barrier_wait(&phase_barrier);
	for (int i = 0; i < NWORK; i++)
		pthread_join(w[i].th, NULL);

	/* The two records still in each pipe, and nothing else anywhere. */
	for (int i = 0; i < NWORK; i++) {
		struct rec got[3];
		fcntl(w[i].pipe[0], F_SETFL, O_NONBLOCK);
		fcntl(w[i].relay[0], F_SETFL, O_NONBLOCK);
		long m = read(w[i].pipe[0], got, sizeof(got));
		if (m != 2 * (long)sizeof(struct rec) || got[0].seq != w[i].seq - 1 || got[1].seq != w[i].seq)
			fail("thread %d: its pipe holds %ld bytes at the end, expected its last two records", i, m);
		if (read(w[i].relay[0], got, sizeof(got)) != -1 || errno != EAGAIN)
			fail("thread %d: a token left over in its relay pipe", i);
		printf("thread %d: rounds %llu, file writes %llu, tokens %llu, signalled in both phases\n", i,
		       (unsigned long long)w[i].seq, (unsigned long long)w[i].file_seq, (unsigned long long)w[i].tokens);
	}
	printf("parent changed %d times (resumed from snapshots)\n", atomic_load(&ppid_changes));
	CHECK(atomic_load(&fails) == 0, "every syscall result of every thread as expected");
	printf("done\n");
	return check_done();
}

static int getppid_loop(long n)
{
	pid_t first = getppid();
	long bad = 0;
	for (long i = 0; i < n; i++)
		bad += getppid() != first;
	printf(bad == 0 ? "getppid ok\n" : "FAIL getppid changed %ld times\n", bad);
	return bad != 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "run") == 0)
		return run(argv[2], atol(argv[3]));
	if (argc == 3 && strcmp(argv[1], "getppid") == 0)
		return getppid_loop(atol(argv[2]));
	fprintf(stderr, "usage: stress_syscalls run FILE ROUNDS | getppid N\n");
	return 2;
}
