/*
 * Resource limits a program sets for itself, natively and under km (issue 6): RLIMIT_CPU and
 * RLIMIT_FSIZE end the program with SIGXCPU/SIGXFSZ (km says so in one line and lives), an
 * ignored SIGXFSZ gives EFBIG, the limits km keeps for the guest read back as set, and a lowered
 * RLIMIT_AS makes a big mmap fail while km itself still works (it takes a snapshot). What the
 * limits do to km's own work is hostile_rlimits.c.
 */
// E2E: cpu SIGXCPU cpu
// E2E: fsize SIGXFSZ fsize @TMP
// E2E: fsize-ignored 0 fsize-ignored @TMP
// E2E: readback 0 readback
// E2E: as 0 as @TMP
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "check.h"
#include "km_hcall.h"

static void lower(int res, rlim_t cur)
{
	struct rlimit rl;
	getrlimit(res, &rl);
	rl.rlim_cur = cur;
	CHECK_SYS(setrlimit(res, &rl), "setrlimit(%d) lowered", res);
}

static __attribute__((noreturn)) void cpu(void)
{
	lower(RLIMIT_CPU, 1);
	for (volatile unsigned long i = 0;; i++)
		;
}

static int open_tmp(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/big", dir);
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	CHECK(fd >= 0, "open a file in the temp dir");
	return fd;
}

static int fsize(const char *dir, bool ignored)
{
	static char buf[8192];
	int fd = open_tmp(dir);
	if (ignored)
		signal(SIGXFSZ, SIG_IGN);
	lower(RLIMIT_FSIZE, 4096);
	CHECK_EQ(write(fd, buf, sizeof(buf)), 4096, "a write crossing the limit stops at it");
	CHECK_ERR(write(fd, buf, 1), EFBIG, "a write at the limit is EFBIG");
	CHECK_ERR(ftruncate(fd, 1 << 20), EFBIG, "ftruncate past the limit is EFBIG");
	return check_done();
}

static int readback(void)
{
	static const int res[] = {RLIMIT_CPU,	 RLIMIT_FSIZE,	RLIMIT_DATA,	   RLIMIT_STACK,
				  RLIMIT_CORE,	 RLIMIT_NPROC,	RLIMIT_NOFILE,	   RLIMIT_MEMLOCK,
				  RLIMIT_AS,	 RLIMIT_LOCKS,	RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE,
				  RLIMIT_NICE,	 RLIMIT_RTPRIO, RLIMIT_RTTIME};
	for (size_t i = 0; i < sizeof(res) / sizeof(res[0]); i++) {
		struct rlimit old, set, got, prev;
		CHECK_SYS(getrlimit(res[i], &old), "getrlimit(%d)", res[i]);
		set = old;
		set.rlim_cur = old.rlim_cur == RLIM_INFINITY || old.rlim_cur > (1u << 30) ? (1u << 30)
			       : old.rlim_cur > 0		     ? old.rlim_cur - 1
								     : 0;
		if (res[i] == RLIMIT_NOFILE || res[i] == RLIMIT_NPROC)
			set.rlim_cur = 64;
		set.rlim_max = old.rlim_max; /* raising the hard limit needs privilege */
		if (set.rlim_cur > set.rlim_max)
			set.rlim_cur = set.rlim_max;
		CHECK_SYS(syscall(SYS_prlimit64, 0, res[i], &set, &prev), "prlimit64(%d) set", res[i]);
		CHECK(prev.rlim_cur == old.rlim_cur && prev.rlim_max == old.rlim_max, "prlimit64(%d) old value",
		      res[i]);
		CHECK_SYS(getrlimit(res[i], &got), "getrlimit(%d) again", res[i]);
		CHECK(got.rlim_cur == set.rlim_cur && got.rlim_max == set.rlim_max, "getrlimit(%d) reads back",
		      res[i]);
		struct rlimit inv = {2, 1};
		CHECK_ERR(setrlimit(res[i], &inv), EINVAL, "setrlimit(%d) cur > max", res[i]);
	}
	struct rlimit rl;
	CHECK_ERR(syscall(SYS_prlimit64, 0, 99, NULL, &rl), EINVAL, "prlimit64 of an unknown resource");
	CHECK_ERR(syscall(SYS_getrlimit, RLIMIT_AS, (void *)8), EFAULT, "getrlimit to a bad pointer");
	return check_done();
}

static int as(void)
{
	lower(RLIMIT_AS, 256ul << 20);
	void *p = mmap(NULL, 1ul << 30, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p == MAP_FAILED && errno == ENOMEM, "a 1 GiB mmap past RLIMIT_AS is ENOMEM");
	p = mmap(NULL, 1ul << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "a 1 MiB mmap still fits");
	void *q = p != MAP_FAILED ? mremap(p, 1ul << 20, 1ul << 30, MREMAP_MAYMOVE) : MAP_FAILED;
	CHECK(q == MAP_FAILED && errno == ENOMEM, "mremap growing past RLIMIT_AS is ENOMEM");
	/* A reservation and MAP_FIXED mappings inside it (Go's runtime and JITs do this) count once:
	 * 150 MiB reserved, then all of it mapped again, stays within 256 MiB. */
	void *res = mmap(NULL, 150ul << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	CHECK(res != MAP_FAILED, "a 150 MiB reservation fits");
	void *in = res != MAP_FAILED ? mmap(res, 150ul << 20, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
				     : MAP_FAILED;
	CHECK(in == res, "MAP_FIXED over the whole reservation fits (it adds nothing)");
	void *brk0 = sbrk(0);
	CHECK(sbrk(1l << 30) == (void *)-1, "brk growing past RLIMIT_AS fails");
	CHECK(sbrk(0) == brk0, "the break stays");
	long r = km_snapshot(NULL, KM_SNAPSHOT_KEEP_RUNNING);
	CHECK(r == KM_SNAPSHOT_TAKEN || r == -ENOSYS, "km still takes a snapshot (natively ENOSYS)");
	return check_done();
}

int main(int argc, char **argv)
{
	const char *what = argc > 1 ? argv[1] : "";
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	if (strcmp(what, "cpu") == 0)
		cpu();
	if (strcmp(what, "fsize") == 0 || strcmp(what, "fsize-ignored") == 0)
		return fsize(dir, strcmp(what, "fsize-ignored") == 0);
	if (strcmp(what, "readback") == 0)
		return readback();
	if (strcmp(what, "as") == 0)
		return as();
	printf("usage: rlimits cpu|fsize|fsize-ignored|readback|as [dir]\n");
	return 2;
}
