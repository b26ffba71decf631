/*
 * Snapshot round trip of a program's whole state (tests/e2e/snapshot.sh).
 *
 * The program builds up state: heap blocks of brk-sized and mmap-sized mallocs with patterns
 * (some freed), brk moved by hand, anonymous mappings (sparse, an all-zero page, a 64 MiB
 * MAP_NORESERVE one, a PROT_READ page, PROT_NONE guards), a private file mapping changed in
 * memory, a shared file mapping, TLS (.tdata and .tbss) and errno, an added environment
 * variable, the current directory, umask, SIGUSR1 ignored, SIGUSR2 blocked, an alternate
 * signal stack, RLIMIT_NOFILE, a 96 KiB stack array and a 100-deep recursion with an array in
 * every frame. At the bottom of the recursion it loads every register (snap_fence) and makes
 * the syscall; then it checks every bit of that state.
 *
 *   snap_state [check [TMPDIR]]     the syscall is getpid: the checks themselves, natively and
 *                                   under km, with the same output (the e2e "run" case)
 *   snap_state snap TMPDIR 'two words' 'tab<TAB>here' ''
 *                                   the syscall is the snapshot hypercall: km writes the snapshot
 *                                   and exits 0; `km SNAPSHOT` resumes the program, which checks
 *                                   its state and ends with PASSED/FAILED. The harness writes
 *                                   "CHANGED-BY-TEST" at offset 4196 of TMPDIR/shared.dat between
 *                                   snapshot and resume (the resumed mapping must show it) and
 *                                   starts the resume with other environment and cwd. Natively:
 *                                   exit 77.
 */
// E2E: run 0
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include "snap_common.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define PG 4096
#define NSMALL 300
#define DEPTH 100

extern char **environ;

static int snap_mode;
static const char *tmp;
static size_t large_len[] = {200 << 10, 1 << 20, (3 << 20) + 17, 8 << 20};
#define NLARGE (sizeof(large_len) / sizeof(large_len[0]))

/* Everything the checks need to find again; lives in memory like the rest of the state. */
static struct {
	unsigned char *small[NSMALL];
	size_t small_len[NSMALL];
	unsigned char *large[NLARGE];
	unsigned char *brk0, *brk1;
	unsigned char *rw, *noreserve, *ro, *guard;
	unsigned char *priv, *shared;
	char priv_path[4096], shared_path[4096], cwd[4096];
	int argc;
	char **argv, **argv_copy, **environ_ptr;
	char *snapenv;
	void *tls_addr;
	uintptr_t self;
	void *altstack;
	struct timespec t0;
	int errno_after;
	long fence_ret, hc_ret;
	int fence_ok;
	char fence_why[512];
	int frames_bad;
} st;

static __thread uint64_t tls_big[512];
static __thread int tls_init = 12345;

static unsigned char pat(unsigned long long seed, size_t i)
{
	return (unsigned char)((seed * 0x9E3779B97F4A7C15ull + i * 0x100000001B3ull) >> 29);
}

static void fill(unsigned char *p, size_t n, unsigned long long seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = pat(seed, i);
}

static int same(const unsigned char *p, size_t n, unsigned long long seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] != pat(seed, i))
			return 0;
	return 1;
}

static int zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

static char priv_byte(size_t i)
{
	return (char)('A' + i * 7 % 26);
}

static char shared_byte(size_t i)
{
	return (char)('a' + i % 26);
}

#define PRIV_LEN (3 * PG + 100)
#define SHARED_LEN (2 * PG)
#define MARK_OFF (PG + 100)
#define MARK "CHANGED-BY-TEST"

static void make_file(const char *path, size_t len, char (*byte)(size_t))
{
	char *buf = malloc(len);
	size_t i;
	int fd;

	for (i = 0; i < len; i++)
		buf[i] = byte(i);
	fd = CHECK_SYS(open(path, O_CREAT | O_TRUNC | O_RDWR, 0644), "create %s", strrchr(path, '/') + 1);
	CHECK_EQ(write(fd, buf, len), len, "write %zu bytes", len);
	close(fd);
	free(buf);
}

/* --- building the state ----------------------------------------------------------------- */

static void build_heap(void)
{
	size_t i;

	for (i = 0; i < NSMALL; i++) {
		st.small_len[i] = 1 + i * 37 % 4000;
		st.small[i] = malloc(st.small_len[i]);
		fill(st.small[i], st.small_len[i], i);
	}
	for (i = 0; i < NSMALL; i += 7) { /* holes in the heap */
		free(st.small[i]);
		st.small[i] = NULL;
	}
	for (i = 0; i < NLARGE; i++) {
		st.large[i] = malloc(large_len[i]);
		fill(st.large[i], large_len[i], 1000 + i);
	}
	CHECK(st.small[1] && st.large[NLARGE - 1], "malloc %d small and %zu large blocks", NSMALL, NLARGE);
}

static unsigned char *anon(size_t len, int flags)
{
	return mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags, -1, 0);
}

static void build_mappings(void)
{
	size_t i;
	int fd;

	st.rw = anon(256 * PG, 0);
	for (i = 0; i < 256; i += 2)
		fill(st.rw + i * PG, PG, 2000 + i);
	memset(st.rw + 3 * PG, 0xee, PG);
	memset(st.rw + 3 * PG, 0, PG); /* touched, but all zero again */
	st.noreserve = anon(64 << 20, MAP_NORESERVE);
	fill(st.noreserve, PG, 3000);
	fill(st.noreserve + (32 << 20), PG, 3001);
	fill(st.noreserve + (64 << 20) - PG, PG, 3002);
	st.ro = anon(2 * PG, 0);
	fill(st.ro, 2 * PG, 4000);
	CHECK_SYS(mprotect(st.ro, 2 * PG, PROT_READ), "mprotect 2 pages PROT_READ");
	st.guard = anon(3 * PG, 0);
	fill(st.guard + PG, PG, 5000);
	CHECK_SYS(mprotect(st.guard, PG, PROT_NONE), "PROT_NONE guard below");
	CHECK_SYS(mprotect(st.guard + 2 * PG, PG, PROT_NONE), "PROT_NONE guard above");
	CHECK(st.rw != MAP_FAILED && st.noreserve != MAP_FAILED && st.ro != MAP_FAILED &&
		      st.guard != MAP_FAILED,
	      "anonymous mappings");

	snprintf(st.priv_path, sizeof(st.priv_path), "%s/private.dat", tmp);
	snprintf(st.shared_path, sizeof(st.shared_path), "%s/shared.dat", tmp);
	make_file(st.priv_path, PRIV_LEN, priv_byte);
	make_file(st.shared_path, SHARED_LEN, shared_byte);
	fd = open(st.priv_path, O_RDWR);
	st.priv = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	close(fd);
	fd = open(st.shared_path, O_RDWR);
	st.shared = mmap(NULL, SHARED_LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd); /* the mappings outlive their fds (which a snapshot does not keep) */
	CHECK(st.priv != MAP_FAILED && st.shared != MAP_FAILED, "private and shared file mappings");
	if (st.priv == MAP_FAILED || st.shared == MAP_FAILED)
		exit(check_done());
	memcpy(st.priv + 10, "PRIVATE-CHANGE", 14);
	st.priv[2 * PG + 5] = '#';
	memcpy(st.shared, "SHARED-BEFORE", 13);
	CHECK_SYS(msync(st.shared, SHARED_LEN, MS_SYNC), "msync the shared mapping");
}

static void build_process(void)
{
	char dir[4200];
	stack_t ss;
	struct sigaction sa;
	sigset_t set;
	struct rlimit rl;
	int fd;
	size_t i;

	CHECK_SYS(setenv("KM_SNAP_ADDED", "added before the snapshot", 1), "setenv");
	st.environ_ptr = environ;
	st.snapenv = getenv("KM_E2E_SNAPENV") ? strdup(getenv("KM_E2E_SNAPENV")) : NULL;

	snprintf(dir, sizeof(dir), "%s/cwd dir", tmp);
	CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir 'cwd dir'");
	CHECK_SYS(chdir(dir), "chdir 'cwd dir'");
	CHECK(getcwd(st.cwd, sizeof(st.cwd)) != NULL, "getcwd");
	fd = CHECK_SYS(open("relative.txt", O_CREAT | O_TRUNC | O_WRONLY, 0644), "create relative.txt");
	CHECK_EQ(write(fd, "relative file\n", 14), 14, "write relative.txt");
	close(fd);

	for (i = 0; i < 512; i++)
		tls_big[i] = i * 0x0101010101010101ull ^ 0xfeedface;
	tls_init = 54321;
	st.tls_addr = &tls_big[0];
	st.self = (uintptr_t)pthread_self();

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	CHECK_SYS(sigaction(SIGUSR1, &sa, NULL), "ignore SIGUSR1");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	CHECK_SYS(sigprocmask(SIG_BLOCK, &set, NULL), "block SIGUSR2");
	st.altstack = malloc(64 << 10);
	ss.ss_sp = st.altstack;
	ss.ss_size = 64 << 10;
	ss.ss_flags = 0;
	CHECK_SYS(sigaltstack(&ss, NULL), "sigaltstack");
	umask(027);
	CHECK_SYS(getrlimit(RLIMIT_NOFILE, &rl), "getrlimit NOFILE");
	rl.rlim_cur = 200;
	CHECK_SYS(setrlimit(RLIMIT_NOFILE, &rl), "setrlimit NOFILE soft 200");
	clock_gettime(CLOCK_REALTIME, &st.t0);
}

/* brk moved by hand, after every malloc of the build phase; undone first thing after. */
static void build_brk(void)
{
	st.brk0 = (unsigned char *)syscall(SYS_brk, 0);
	st.brk1 = (unsigned char *)syscall(SYS_brk, st.brk0 + (256 << 10));
	if (st.brk1 == st.brk0 + (256 << 10))
		fill(st.brk0, 256 << 10, 6000);
}

/* --- the syscall, at the bottom of a deep recursion ----------------------------------------- */

static km_hc_args_t hc_args;

__attribute__((noinline)) static void recurse(int depth, int level)
{
	volatile uint64_t frame[24];
	int i;

	for (i = 0; i < 24; i++)
		frame[i] = (uint64_t)depth * 0x1000193 + (uint64_t)i * 0x9E3779B9;
	if (depth == 0) {
		memset(&hc_args, 0, sizeof(hc_args));
		snap_fence_prepare(42);
		errno = EXDEV;
		st.fence_ret = snap_fence(level, snap_mode ? SNAP_HCALL_NR : SYS_getpid, &hc_args);
		st.errno_after = errno;
		st.fence_ok = snap_fence_check(level, &hc_args, st.fence_why, sizeof(st.fence_why));
		st.hc_ret = (long)hc_args.hc_ret;
	} else {
		recurse(depth - 1, level);
	}
	for (i = 0; i < 24; i++)
		if (frame[i] != (uint64_t)depth * 0x1000193 + (uint64_t)i * 0x9E3779B9)
			st.frames_bad++;
}

/* --- checking it ------------------------------------------------------------------------ */

static void check_brk(void)
{
	unsigned char *cur = (unsigned char *)syscall(SYS_brk, 0);

	CHECK(st.brk1 == st.brk0 + (256 << 10), "brk grew by 256 KiB");
	CHECK(cur == st.brk1, "brk is where it was (%s)", cur == st.brk1 ? "same" : "moved");
	CHECK(same(st.brk0, 256 << 10, 6000), "memory below brk holds its pattern");
	CHECK((unsigned char *)syscall(SYS_brk, st.brk0) == st.brk0, "brk shrinks back");
}

static void check_heap(void)
{
	size_t i, bad = 0;
	unsigned char *more[100], *big;

	for (i = 0; i < NSMALL; i++)
		if (st.small[i] && !same(st.small[i], st.small_len[i], i))
			bad++;
	CHECK_EQ(bad, 0, "%d small heap blocks hold their patterns", NSMALL);
	for (i = 0; i < NLARGE; i++)
		CHECK(same(st.large[i], large_len[i], 1000 + i), "heap block of %zu bytes holds its pattern", large_len[i]);
	/* The allocator's own data came through: allocate, free everything. */
	for (i = 0; i < 100; i++) {
		more[i] = malloc(1 + i * 53);
		fill(more[i], 1 + i * 53, 7000 + i);
	}
	big = malloc(2 << 20);
	fill(big, 2 << 20, 7777);
	for (bad = 0, i = 0; i < 100; i++)
		bad += !same(more[i], 1 + i * 53, 7000 + i);
	CHECK(bad == 0 && same(big, 2 << 20, 7777), "new mallocs work");
	for (i = 0; i < 100; i++)
		free(more[i]);
	free(big);
	for (i = 0; i < NSMALL; i++)
		free(st.small[i]);
	for (i = 0; i < NLARGE; i++)
		free(st.large[i]);
	CHECK(1, "every heap block freed");
}

static void check_mappings(void)
{
	size_t i, bad = 0;
	int p[2], fd;
	char *file = malloc(SHARED_LEN + PRIV_LEN);

	for (i = 0; i < 256; i++)
		if (i % 2 == 0 ? !same(st.rw + i * PG, PG, 2000 + i) : !zero(st.rw + i * PG, PG))
			bad++;
	CHECK_EQ(bad, 0, "1 MiB mapping: even pages hold patterns, odd pages are zero");
	CHECK(zero(st.noreserve + PG, (32 << 20) - PG) && same(st.noreserve, PG, 3000) &&
		      same(st.noreserve + (32 << 20), PG, 3001) &&
		      same(st.noreserve + (64 << 20) - PG, PG, 3002),
	      "64 MiB MAP_NORESERVE mapping: 3 touched pages, zeros elsewhere");
	CHECK(same(st.ro, 2 * PG, 4000), "PROT_READ pages hold their pattern");
	CHECK(same(st.guard + PG, PG, 5000), "page between PROT_NONE guards holds its pattern");
	CHECK_SYS(pipe(p), "pipe");
	CHECK_EQ(write(p[1], "x", 1), 1, "write a byte into the pipe");
	CHECK_ERR(read(p[0], st.ro, 1), EFAULT, "read() into the PROT_READ page is EFAULT");
	CHECK_ERR(write(p[1], st.guard, 1), EFAULT, "write() from the lower guard is EFAULT");
	CHECK_ERR(write(p[1], st.guard + 2 * PG, 1), EFAULT, "write() from the upper guard is EFAULT");
	CHECK(mmap(st.guard, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0) == MAP_FAILED &&
		      errno == EEXIST,
	      "the guard page is still mapped (MAP_FIXED_NOREPLACE: EEXIST)");
	close(p[0]);
	close(p[1]);

	/* Private file mapping: the changes in memory, the file untouched. */
	for (bad = 0, i = 0; i < PRIV_LEN; i++) {
		char want = priv_byte(i);
		if (i >= 10 && i < 24)
			want = "PRIVATE-CHANGE"[i - 10];
		if (i == 2 * PG + 5)
			want = '#';
		bad += st.priv[i] != (unsigned char)want;
	}
	CHECK_EQ(bad, 0, "private file mapping: file data with the in-memory changes");
	CHECK(zero(st.priv + PRIV_LEN, 4 * PG - PRIV_LEN), "private file mapping: zeros past end of file");
	fd = CHECK_SYS(open(st.priv_path, O_RDONLY), "open private.dat");
	CHECK_EQ(pread(fd, file, PRIV_LEN + 1, 0), PRIV_LEN, "private.dat has its size");
	for (bad = 0, i = 0; i < PRIV_LEN; i++)
		bad += file[i] != priv_byte(i);
	CHECK_EQ(bad, 0, "private.dat is unchanged on disk");
	close(fd);

	/* Shared file mapping: still the file. */
	if (!snap_mode) { /* what the harness does between snapshot and resume */
		fd = open(st.shared_path, O_WRONLY);
		CHECK_EQ(pwrite(fd, MARK, strlen(MARK), MARK_OFF), strlen(MARK), "write the marker into shared.dat");
		close(fd);
	}
	CHECK(memcmp(st.shared, "SHARED-BEFORE", 13) == 0, "shared mapping keeps what was written through it");
	CHECK(memcmp(st.shared + MARK_OFF, MARK, strlen(MARK)) == 0,
	      "shared mapping shows what was written to the file from outside");
	fd = CHECK_SYS(open(st.shared_path, O_RDWR), "open shared.dat");
	CHECK_EQ(pread(fd, file, SHARED_LEN + 1, 0), SHARED_LEN, "shared.dat has its size");
	CHECK(memcmp(file, st.shared, SHARED_LEN) == 0, "shared mapping equals the file");
	CHECK_EQ(pwrite(fd, "PWRITE-AFTER", 12, 200), 12, "pwrite into shared.dat");
	CHECK(memcmp(st.shared + 200, "PWRITE-AFTER", 12) == 0, "pwrite shows through the shared mapping");
	memcpy(st.shared + 300, "MAPWRITE-AFTER", 14);
	CHECK_SYS(msync(st.shared, SHARED_LEN, MS_SYNC), "msync");
	CHECK(pread(fd, file, 14, 300) == 14 && memcmp(file, "MAPWRITE-AFTER", 14) == 0,
	      "a write through the shared mapping reaches the file");
	close(fd);
	free(file);
}

/* /proc/self/cmdline and environ read the program's own argument and environment strings (as
 * Linux reads them from its memory), also after a resume elsewhere. */
static void check_proc_args(void)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/cmdline", O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	size_t want = 0;
	int bad = n < 0;
	for (int i = 0; i < st.argc && !bad; i++) {
		size_t l = strlen(st.argv_copy[i]) + 1;
		bad = want + l > (size_t)n || memcmp(buf + want, st.argv_copy[i], l) != 0;
		want += l;
	}
	CHECK(!bad && (size_t)n == want, "/proc/self/cmdline is the program's arguments");
	fd = open("/proc/self/environ", O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	int greeting = 0, resume_only = 0;
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1) {
		buf[n] = '\0';
		greeting += strcmp(buf + off, "KM_E2E_GREETING=hello from the environment") == 0;
		resume_only += strncmp(buf + off, "KM_E2E_RESUME_ONLY=", 19) == 0;
	}
	CHECK(greeting == 1 && resume_only == 0, "/proc/self/environ is the program's starting environment");
}

static void check_process(void)
{
	char buf[4200];
	struct sigaction sa;
	sigset_t set;
	stack_t ss;
	struct rlimit rl;
	struct stat sb;
	struct timespec t1;
	int fd, i, bad = 0;

	CHECK_EQ(st.argc, snap_mode ? 6 : st.argc, "argc");
	for (i = 0; i < st.argc; i++)
		bad += strcmp(st.argv[i], st.argv_copy[i]) != 0;
	CHECK(bad == 0 && st.argv[st.argc] == NULL, "argv strings unchanged");
	if (snap_mode && st.argc == 6) {
		CHECK_STR(st.argv[3], "two words", "argv[3]");
		CHECK_STR(st.argv[4], "tab\there", "argv[4]");
		CHECK_STR(st.argv[5], "", "argv[5]");
	}
	CHECK(environ == st.environ_ptr, "environ unchanged");
	CHECK_STR(getenv("KM_SNAP_ADDED"), "added before the snapshot", "variable added with setenv");
	CHECK_STR(getenv("KM_E2E_GREETING"), "hello from the environment", "KM_E2E_GREETING");
	if (snap_mode)
		CHECK_STR(getenv("KM_E2E_SNAPENV"), "snapshot-time value", "KM_E2E_SNAPENV as at snapshot time");
	else
		CHECK(getenv("KM_E2E_SNAPENV") == NULL ? st.snapenv == NULL
						       : st.snapenv && strcmp(getenv("KM_E2E_SNAPENV"), st.snapenv) == 0,
		      "KM_E2E_SNAPENV unchanged");
	CHECK(getenv("KM_E2E_RESUME_ONLY") == NULL, "the resuming km's environment is not the program's");
	check_proc_args();

	CHECK_STR(getcwd(buf, sizeof(buf)), st.cwd, "getcwd");
	fd = CHECK_SYS(open("relative.txt", O_RDONLY), "open relative.txt by a relative path");
	CHECK(read(fd, buf, 100) == 14 && memcmp(buf, "relative file\n", 14) == 0, "relative.txt content");
	close(fd);

	CHECK_EQ(umask(027), 027, "umask");
	fd = CHECK_SYS(open("umask-probe", O_CREAT | O_TRUNC | O_WRONLY, 0666), "create umask-probe 0666");
	close(fd);
	CHECK(stat("umask-probe", &sb) == 0 && (sb.st_mode & 0777) == 0640, "umask-probe has mode 0640");
	unlink("umask-probe");

	CHECK(sigaction(SIGUSR1, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN, "SIGUSR1 is ignored");
	CHECK(sigaction(SIGUSR2, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL, "SIGUSR2 is default");
	CHECK(sigaction(SIGTERM, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL, "SIGTERM is default");
	sigemptyset(&set);
	CHECK(sigprocmask(SIG_BLOCK, NULL, &set) == 0 && sigismember(&set, SIGUSR2) &&
		      !sigismember(&set, SIGUSR1),
	      "signal mask: SIGUSR2 blocked, SIGUSR1 not");
	CHECK(sigaltstack(NULL, &ss) == 0 && ss.ss_sp == st.altstack && ss.ss_size == 64 << 10 &&
		      ss.ss_flags == 0,
	      "alternate signal stack");
	CHECK_EQ(raise(SIGUSR1), 0, "raise(SIGUSR1) is ignored");
	CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur == 200, "RLIMIT_NOFILE soft limit 200");

	CHECK(tls_init == 54321, "TLS variable (.tdata)");
	for (bad = 0, i = 0; i < 512; i++)
		bad += tls_big[i] != (i * 0x0101010101010101ull ^ 0xfeedface);
	CHECK_EQ(bad, 0, "TLS array (.tbss)");
	CHECK(st.tls_addr == (void *)&tls_big[0] && st.self == (uintptr_t)pthread_self(),
	      "TLS address and thread pointer unchanged");
	CHECK_EQ(st.errno_after, EXDEV, "errno set before the syscall");
	CHECK(clock_gettime(CLOCK_REALTIME, &t1) == 0 && (t1.tv_sec > st.t0.tv_sec ||
		      (t1.tv_sec == st.t0.tv_sec && t1.tv_nsec >= st.t0.tv_nsec)),
	      "CLOCK_REALTIME did not go back");
}

static void cleanup(void)
{
	munmap(st.priv, 4 * PG);
	munmap(st.shared, SHARED_LEN);
	unlink(st.priv_path);
	unlink(st.shared_path);
	unlink("relative.txt");
	if (chdir(tmp) == 0)
		rmdir("cwd dir");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "check";
	volatile unsigned char bigstack[96 << 10];
	int level = snap_vec_level(), i;

	snap_mode = strcmp(mode, "snap") == 0;
	if (!snap_mode && strcmp(mode, "check") != 0) {
		printf("usage: snap_state [check [TMPDIR]] | snap TMPDIR 'two words' 'tab<TAB>here' ''\n");
		return 2;
	}
	tmp = argc > 2 ? argv[2] : check_tmpdir(1, argv);
	st.argc = argc;
	st.argv = argv;
	st.argv_copy = malloc((argc + 1) * sizeof(char *));
	for (i = 0; i < argc; i++)
		st.argv_copy[i] = strdup(argv[i]);

	build_heap();
	build_mappings();
	build_process();
	printf("state built\n");
	if (snap_mode)
		printf("taking the snapshot\n");
	fflush(stdout);
	build_brk();
	for (i = 0; i < (int)sizeof(bigstack); i++)
		bigstack[i] = pat(8000, i);
	recurse(DEPTH, level);

	if (snap_mode) {
		if (st.fence_ret == KM_SNAPSHOT_TAKEN) {
			printf("FAIL the snapshot hypercall returned 0 (taken) without KEEP_RUNNING\n");
			return 1;
		}
		if (st.fence_ret != KM_SNAPSHOT_RESUMED)
			snap_failed(st.fence_ret);
		printf("resumed from the snapshot\n");
	}
	check_brk(); /* first: before anything may malloc */
	CHECK(snap_mode ? st.fence_ret == KM_SNAPSHOT_RESUMED : st.fence_ret > 0, "the syscall's result");
	if (snap_mode)
		CHECK_EQ(st.hc_ret, KM_SNAPSHOT_RESUMED, "hc_ret in the argument block");
	CHECK(st.fence_ok, "every register survived the syscall%s%s", st.fence_ok ? "" : ": ", st.fence_why);
	CHECK_EQ(st.frames_bad, 0, "the stack of a %d-deep recursion", DEPTH);
	for (i = 0; i < (int)sizeof(bigstack); i++)
		if (bigstack[i] != pat(8000, i))
			break;
	CHECK_EQ(i, sizeof(bigstack), "96 KiB array on the stack");
	check_heap();
	check_mappings();
	check_process();
	if (!snap_mode)
		cleanup();
	return check_done();
}
