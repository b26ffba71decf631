/*
 * Which pages changed since the last collect (km's dirty tracker, km/mm/km_dirty.h), seen through
 * the test-only hypercall HC_dirty_probe (km --test-dirty-probe; tests/e2e/dirty.sh). The program
 * changes known pages of regions of its own, each way km must notice: its own stores (also to
 * pages it had written before tracking began), read(2) into a buffer, mmap, munmap, mremap,
 * MADV_DONTNEED, brk, stores from several threads; and checks that each collect reports exactly
 * those pages of those regions (its stack, heap and the probe's buffer change too: not checked).
 * Without the probe (natively, or km without the option) it prints one line after the checks
 * that need none. The cost side is bench/guests/dirty_write.c.
 */
#include <pthread.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "check.h"
#include "km_hcall.h"

#define PG 4096ul
#define FUTEX_LOCK_PI 6 /* linux/futex.h: musl's headers do not have it */
#define MAXLIST (1 << 20)

static uint64_t list[MAXLIST];
static long nlist;

static long probe(uint64_t op)
{
	km_hc_args_t a = {0, op, (uint64_t)(uintptr_t)list, MAXLIST, 0, 0, 0};
	long r = km_hcall(HC_dirty_probe, &a);
	if (op == KM_DIRTY_PROBE_COLLECT)
		nlist = r;
	return r;
}

static int listed(uint64_t addr)
{
	long lo = 0, hi = nlist; /* ascending */
	while (lo < hi) {
		long mid = (lo + hi) / 2;
		if (list[mid] == addr)
			return 1;
		if (list[mid] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

/* Checks the last collect against region [base, base+npages*PG): page p must be listed exactly
 * when want(p) is. `want` is a string of '0'/'1' per page, or NULL for "none". */
static void expect(const char *what, const char *base, int npages, const char *want)
{
	char got[4097], exp[4097];
	for (int p = 0; p < npages && p < 4096; p++) {
		got[p] = listed((uint64_t)(uintptr_t)(base + p * PG)) ? '1' : '0';
		exp[p] = want != NULL ? want[p] : '0';
	}
	got[npages] = exp[npages] = '\0';
	char detail[8300];
	snprintf(detail, sizeof(detail), "changed %s, expected %s", got, exp);
	check_report(strcmp(got, exp) == 0, detail, "%s", what);
}

static char *map(size_t pages)
{
	char *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

static void collect(void)
{
	if (probe(KM_DIRTY_PROBE_COLLECT) < 0 || nlist > MAXLIST) {
		printf("FAIL collect: %ld\n", nlist);
		exit(1);
	}
}

static void stores(void)
{
	char *a = map(16);
	memset(a, 1, 16 * PG); /* mapped writable in the guest before tracking starts */
	CHECK(probe(KM_DIRTY_PROBE_START) == 0, "tracking starts");
	collect();
	expect("nothing changed right after the start", a, 16, NULL);
	a[1 * PG] = 2;
	a[5 * PG + 100] = 2;
	a[15 * PG + PG - 1] = 2;
	collect();
	expect("the guest's own stores", a, 16, "0100010000000001");
	collect();
	expect("a collect starts a new interval", a, 16, NULL);
	a[5 * PG] = 3;
	collect();
	expect("a page stored to again after a collect", a, 16, "0000010000000000");
	a[9 * PG] = 4;
	CHECK(probe(KM_DIRTY_PROBE_RETURN) == 0, "an interval given back");
	a[10 * PG] = 4;
	collect();
	expect("a given-back interval counts in the next collect", a, 16, "0000000001100000");
	munmap(a, 16 * PG);
}

static void syscalls(void)
{
	char *a = map(8);
	memset(a, 0, 8 * PG);
	int fds[2];
	CHECK_SYS(pipe(fds), "pipe");
	static char src[2 * PG + 100];
	memset(src, 7, sizeof(src));
	collect();
	CHECK(write(fds[1], src, sizeof(src)) == (ssize_t)sizeof(src), "write to the pipe");
	CHECK(read(fds[0], a + 3 * PG + 50, sizeof(src)) == (ssize_t)sizeof(src), "read(2) into the region");
	collect();
	expect("read(2) into a buffer across three pages", a, 8, "00011100");
	CHECK(pipe((int *)(a + 7 * PG + 8)) == 0, "pipe(2) into the region");
	collect();
	expect("a syscall's result written by km", a, 8, "00000001");
	CHECK(syscall(SYS_futex, (uint32_t *)(a + 6 * PG), FUTEX_LOCK_PI, 0, NULL, NULL, 0) == 0,
	      "FUTEX_LOCK_PI in the region");
	collect();
	expect("a futex word the host's futex call stores to", a, 8, "00000010");
	CHECK(madvise(a + 2 * PG, PG, MADV_DONTNEED) == 0, "madvise(DONTNEED)");
	collect();
	expect("MADV_DONTNEED", a, 8, "00100000");
	close(fds[0]);
	close(fds[1]);
	munmap(a, 8 * PG);
}

static void mappings(void)
{
	collect();
	char *b = map(8);
	collect();
	expect("a new mapping, never touched", b, 8, "11111111");
	memset(b, 1, 8 * PG);
	collect();
	CHECK(munmap(b + 3 * PG, PG) == 0, "munmap of one page");
	collect();
	expect("munmap changes no page that stays mapped", b, 3, NULL);
	expect("(the part after the hole)", b + 4 * PG, 4, NULL);
	CHECK(mmap(b + 3 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		      b + 3 * PG,
	      "MAP_FIXED into the hole");
	CHECK(mmap(b + 6 * PG, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
		      b + 6 * PG,
	      "MAP_FIXED over a mapped page");
	collect();
	expect("MAP_FIXED", b, 8, "00010010");
	char *far = map(16);
	munmap(far, 16 * PG);
	char *c = mremap(b + 4 * PG, 2 * PG, 4 * PG, MREMAP_MAYMOVE | MREMAP_FIXED, far);
	CHECK(c == far, "mremap to a new place");
	collect();
	expect("a moved mapping is new where it lands", c, 4, "1111");
	expect("(what stays)", b, 4, NULL);
	munmap(b, 4 * PG);
	munmap(b + 6 * PG, 2 * PG);
	munmap(c, 4 * PG);
	/* brk(2) itself: musl's sbrk only answers sbrk(0). */
	uintptr_t top = (uintptr_t)syscall(SYS_brk, 0);
	CHECK((uintptr_t)syscall(SYS_brk, top + 3 * PG) == top + 3 * PG, "brk grows the heap");
	char *heap_from = (char *)((top + PG - 1) & ~(PG - 1));
	collect();
	CHECK(listed((uint64_t)(uintptr_t)heap_from) && listed((uint64_t)(uintptr_t)heap_from + 2 * PG), "brk growth");
	/* A mapping bigger than a KVM memory slot (256 MiB): slots registered after the start. */
	char *big = mmap(NULL, 300ul << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			 -1, 0);
	CHECK(big != MAP_FAILED, "a 300 MiB mapping");
	collect();
	size_t last = (300ul << 20) / PG - 1;
	CHECK(listed((uint64_t)(uintptr_t)big) && listed((uint64_t)(uintptr_t)(big + last * PG)),
	      "a big new mapping is new");
	big[0] = 1;
	big[last * PG] = 1;
	collect();
	expect("a big mapping's first pages", big, 4, "1000");
	expect("a big mapping's last pages", big + (last - 3) * PG, 4, "0001");
	big[(last / 2) * PG] = 1;
	collect();
	expect("a big mapping's middle", big + (last / 2 - 1) * PG, 3, "010");
	munmap(big, 300ul << 20);
}

#define NTHREADS 4
#define TPAGES 64
static char *tregion;
static int tpipe[NTHREADS][2];

static void *thread_main(void *arg)
{
	int t = (int)(intptr_t)arg;
	for (int p = t; p < TPAGES / 2; p += NTHREADS)
		tregion[p * PG + t] = 1;
	char buf[64];
	memset(buf, t, sizeof(buf));
	if (write(tpipe[t][1], buf, sizeof(buf)) != sizeof(buf) ||
	    read(tpipe[t][0], tregion + (TPAGES / 2 + t * 2) * PG, sizeof(buf)) != sizeof(buf))
		return (void *)1;
	return NULL;
}

static void threads(void)
{
	tregion = map(TPAGES);
	memset(tregion, 1, TPAGES * PG);
	for (int t = 0; t < NTHREADS; t++)
		CHECK_SYS(pipe(tpipe[t]), "pipe %d", t);
	collect();
	pthread_t th[NTHREADS];
	for (int t = 0; t < NTHREADS; t++)
		CHECK(pthread_create(&th[t], NULL, thread_main, (void *)(intptr_t)t) == 0, "thread %d starts", t);
	int ok = 1;
	for (int t = 0; t < NTHREADS; t++) {
		void *r;
		pthread_join(th[t], &r);
		ok &= r == NULL;
	}
	CHECK(ok, "the threads' reads");
	collect();
	char want[TPAGES + 1];
	memset(want, '0', TPAGES);
	memset(want, '1', TPAGES / 2); /* the stores */
	for (int t = 0; t < NTHREADS; t++)
		want[TPAGES / 2 + t * 2] = '1'; /* the reads */
	want[TPAGES] = '\0';
	expect("stores and reads from several threads", tregion, TPAGES, want);
	munmap(tregion, TPAGES * PG);
}

/* A forked child is a new VM of its own: it starts untracked (its collect fails). */
static void forked(void)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(probe(KM_DIRTY_PROBE_COLLECT) < 0 ? 0 : 1);
	int st = -1;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "a forked child starts untracked");
	collect();
	CHECK(nlist >= 0, "the parent is still tracked");
}

/* Natively and under km alike: a PI futex stores to its word, so it must be writable. */
static void futex_pi_readonly(void)
{
	uint32_t *w = mmap(NULL, PG, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK_ERR(syscall(SYS_futex, w, FUTEX_LOCK_PI, 0, NULL, NULL, 0), EFAULT, "FUTEX_LOCK_PI on a read-only word");
	CHECK(*w == 0, "the read-only word is unchanged");
	munmap(w, PG);
}

/* "snap": snapshots itself (km exits); resumed (km --test-dirty-probe FILE), its memory is the
 * snapshot file's, mapped privately: stores to it and read(2) into it must be seen alike. */
static int resumed_memory(void)
{
	char *a = map(8);
	memset(a, 1, 8 * PG);
	long r = km_snapshot(NULL, 0);
	if (r != KM_SNAPSHOT_RESUMED) {
		printf("snapshot: %ld\n", r);
		return 1;
	}
	printf("resumed\n");
	CHECK(probe(KM_DIRTY_PROBE_START) == 0, "tracking starts after a resume");
	collect();
	expect("nothing changed right after the start", a, 8, NULL);
	a[2 * PG] = 5;
	int fds[2];
	CHECK_SYS(pipe(fds), "pipe");
	CHECK(write(fds[1], "x", 1) == 1 && read(fds[0], a + 6 * PG, 1) == 1, "read(2) into the region");
	collect();
	expect("stores and read(2) into memory mapped from the snapshot", a, 8, "00100010");
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "snap") == 0)
		return resumed_memory();
	futex_pi_readonly();
	km_hc_args_t a = {0};
	if (km_hcall(HC_dirty_probe, &a) == -ENOSYS) {
		printf("dirty probe not available\n");
		return check_done();
	}
	stores();
	syscalls();
	mappings();
	threads();
	forked();
	return check_done();
}
