/*
 * hostile_vdso km TMPDIR: the vDSO (issue 10) as an attacker sees it. Its code and its data page
 * (the page below it, where km keeps the clock lines that km's own clock_gettime also reads) are
 * in the guest's address space: a write to either from the program must fault (SIGSEGV, as Linux
 * gives for the vDSO and vvar), a syscall must not write into them for the program (EFAULT), and
 * no mapping call may make them writable or replace them. Afterwards the clocks must still agree
 * with km's. Run by tests/e2e/hostile.sh under km only.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static sigjmp_buf jb;
static volatile uintptr_t fault_addr;
static volatile int fault_code;

static void on_segv(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	fault_addr = (uintptr_t)si->si_addr;
	fault_code = si->si_code;
	siglongjmp(jb, 1);
}

/* Writes one byte at a; true if that faulted with SIGSEGV at a. */
static int write_faults(uintptr_t a)
{
	fault_addr = 0;
	if (sigsetjmp(jb, 1) == 0) {
		*(volatile uint8_t *)a = 0x5a;
		return 0;
	}
	if (fault_addr != a || fault_code != SEGV_ACCERR)
		printf("  write to %#lx: SIGSEGV at %#lx, si_code %d\n", (unsigned long)a, (unsigned long)fault_addr, fault_code);
	return fault_addr == a && fault_code == SEGV_ACCERR;
}

/* Calls into a (a non-executable page); true if that faulted with SIGSEGV at a. */
static int exec_faults(uintptr_t a)
{
	fault_addr = 0;
	if (sigsetjmp(jb, 1) == 0) {
		((void (*)(void))a)();
		return 0;
	}
	return fault_addr == a;
}

static int64_t ns(clockid_t c, int raw)
{
	struct timespec t = {0, 0};
	if (raw)
		syscall(SYS_clock_gettime, c, &t);
	else
		clock_gettime(c, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void clocks_agree(const char *when)
{
	int ok = 1;
	for (int n = 0; n < 100 && ok; n++) {
		int64_t a = ns(CLOCK_MONOTONIC, 1), v = ns(CLOCK_MONOTONIC, 0), b = ns(CLOCK_MONOTONIC, 1);
		ok = a <= v && v <= b && a > 0;
	}
	CHECK(ok, "%s: MONOTONIC through the vDSO agrees with km's", when);
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "km") != 0) {
		fprintf(stderr, "usage: hostile_vdso km TMPDIR (under km only)\n");
		return 2;
	}
	uintptr_t vdso = getauxval(AT_SYSINFO_EHDR), data = vdso - 4096;
	CHECK(vdso != 0, "the program has a vDSO");
	struct sigaction sa = {.sa_sigaction = on_segv, .sa_flags = SA_SIGINFO | SA_NODEFER};
	sigaction(SIGSEGV, &sa, NULL);
	clocks_agree("before");

	uint32_t seq;
	memcpy(&seq, (void *)data, sizeof(seq));
	CHECK(seq % 2 == 0 || seq % 2 == 1, "the data page is readable");
	CHECK(write_faults(data), "a write to the data page is SIGSEGV (SEGV_ACCERR) at its address");
	CHECK(write_faults(data + 8), "a write to the data page's clock lines is SIGSEGV");
	CHECK(write_faults(vdso), "a write to the vDSO's ELF header is SIGSEGV");
	CHECK(write_faults(vdso + 0x1000), "a write to the vDSO's entry points is SIGSEGV");
	CHECK(exec_faults(data), "the data page is not executable");

	char path[512];
	snprintf(path, sizeof(path), "%s/junk", argv[2]);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	char junk[64];
	memset(junk, 0xcc, sizeof(junk));
	CHECK(fd >= 0 && write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk), "a scratch file");
	uintptr_t targets[] = {data, data + 8, vdso, vdso + 0x1000};
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		errno = 0;
		CHECK(pread(fd, (void *)targets[i], 16, 0) < 0 && errno == EFAULT, "read() into %#lx is EFAULT",
		      (unsigned long)(targets[i] - data));
		struct iovec iov = {(void *)targets[i], 16};
		errno = 0;
		CHECK(preadv(fd, &iov, 1, 0) < 0 && errno == EFAULT, "readv() into %#lx is EFAULT",
		      (unsigned long)(targets[i] - data));
		errno = 0;
		CHECK(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, targets[i]) < 0 && errno == EFAULT,
		      "clock_gettime() into %#lx is EFAULT", (unsigned long)(targets[i] - data));
	}
	close(fd);
	unlink(path);

	CHECK(mprotect((void *)data, 4096, PROT_READ | PROT_WRITE) != 0, "mprotect of the data page fails");
	CHECK(mprotect((void *)vdso, 8192, PROT_READ | PROT_WRITE | PROT_EXEC) != 0, "mprotect of the vDSO fails");
	void *p = mmap((void *)data, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(p == MAP_FAILED, "mmap(MAP_FIXED) over the vDSO fails");
	p = mremap((void *)vdso, 4096, 8192, MREMAP_MAYMOVE);
	CHECK(p == MAP_FAILED, "mremap of the vDSO fails");
	munmap((void *)data, 0x3000); /* whatever it answers, it must change nothing */
	madvise((void *)data, 0x3000, MADV_DONTNEED);
	CHECK(write_faults(data), "after all that, the data page is still read-only");
	CHECK(write_faults(vdso + 0x1000), "after all that, the vDSO is still read-only");
	clocks_agree("after");
	return check_done();
}
