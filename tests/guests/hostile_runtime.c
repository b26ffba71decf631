/*
 * hostile_runtime km TMPDIR: the routes to km's memory that are not /proc (issue 6): host
 * interfaces that read or write another process's memory or fds, and km's runtime region in the
 * guest's own address space (the IDT, GDT, TSS and stubs at 0x7fffff000000: rewriting them would
 * hand the guest the CPU's supervisor mode). Each must fail and km must keep serving syscalls.
 * Run by tests/e2e/hostile.sh under km only.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "check.h"

#define RT 0x7fffff000000ul

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_io_uring_setup
#define SYS_io_uring_setup 425
#endif
#ifndef SYS_process_madvise
#define SYS_process_madvise 440
#endif

static void host_routes(void)
{
	char buf[64] = "x";
	struct iovec local = {buf, sizeof(buf)}, remote = {(void *)(uintptr_t)&host_routes, 16};
	int pid = getpid();
	struct {
		const char *name;
		long nr;
		long a[6];
	} calls[] = {
	    {"process_vm_readv", SYS_process_vm_readv, {pid, (long)&local, 1, (long)&remote, 1, 0}},
	    {"process_vm_writev", SYS_process_vm_writev, {pid, (long)&local, 1, (long)&remote, 1, 0}},
	    {"ptrace(PTRACE_ATTACH)", SYS_ptrace, {16, pid + 1, 0, 0, 0, 0}},
	    {"ptrace(PTRACE_TRACEME)", SYS_ptrace, {0, 0, 0, 0, 0, 0}},
	    {"pidfd_open", SYS_pidfd_open, {pid, 0, 0, 0, 0, 0}},
	    {"pidfd_getfd", SYS_pidfd_getfd, {0, 1000, 0, 0, 0, 0}},
	    {"kcmp", SYS_kcmp, {pid, pid, 0, 0, 1000, 0}},
	    {"process_madvise", SYS_process_madvise, {0, (long)&local, 1, 0, 0, 0}},
	    {"io_uring_setup", SYS_io_uring_setup, {8, (long)buf, 0, 0, 0, 0}},
	    {"userfaultfd", SYS_userfaultfd, {0, 0, 0, 0, 0, 0}},
	    {"open_by_handle_at", SYS_open_by_handle_at, {AT_FDCWD, (long)buf, O_RDONLY, 0, 0, 0}},
	    {"perf_event_open", SYS_perf_event_open, {(long)buf, 0, -1, -1, 0, 0}},
	    {"bpf", SYS_bpf, {0, (long)buf, 16, 0, 0, 0}},
	    /* execve is the guest's since issue 10: hostile_exec.c tries its routes to km */
	    {"mount", SYS_mount, {(long)"none", (long)"/tmp", (long)"proc", 0, 0, 0}},
	    {"setns", SYS_setns, {0, 0, 0, 0, 0, 0}},
	    {"unshare", SYS_unshare, {0x20000, 0, 0, 0, 0, 0}},
	};
	for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
		errno = 0;
		long r = syscall(calls[i].nr, calls[i].a[0], calls[i].a[1], calls[i].a[2], calls[i].a[3],
				 calls[i].a[4], calls[i].a[5]);
		int e = errno;
		CHECK(r == -1 && (e == ENOSYS || e == EPERM || e == EACCES), "%s is refused (got %ld, %s)",
		      calls[i].name, r, strerror(e));
	}
}

static void runtime_region(const char *tmp)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/rt", tmp);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "open a scratch file");
	char junk[64];
	memset(junk, 0xcc, sizeof(junk));
	CHECK(write(fd, junk, sizeof(junk)) == (ssize_t)sizeof(junk), "fill it");
	/* The kernel-side pages (IDT at +0x2000, GDT/TSS per vCPU at +0x10000) are not the guest's. */
	unsigned long offs[] = {0x1000, 0x2000, 0x10000, 0x11000, 0x12000};
	for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		errno = 0;
		CHECK(pread(fd, (void *)(RT + offs[i]), 16, 0) < 0 && errno == EFAULT,
		      "read() into runtime+%#lx is EFAULT", offs[i]);
		errno = 0;
		CHECK(pwrite(fd, (void *)(RT + offs[i]), 16, 0) < 0 && errno == EFAULT,
		      "write() from runtime+%#lx is EFAULT", offs[i]);
	}
	/* The syscall entry page is readable and executable, never writable. */
	errno = 0;
	CHECK(pread(fd, (void *)RT, 16, 0) < 0 && errno == EFAULT, "read() into the syscall entry page is EFAULT");
	void *p = mmap((void *)RT, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(p == MAP_FAILED, "mmap(MAP_FIXED) over the runtime region fails");
	p = mmap((void *)(RT + 0x2000), 4096, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	CHECK(p == MAP_FAILED, "mmap(MAP_FIXED_NOREPLACE) over the IDT fails");
	CHECK(mprotect((void *)RT, 4096, PROT_READ | PROT_WRITE | PROT_EXEC) != 0,
	      "mprotect of the syscall entry page fails");
	munmap((void *)RT, 0x20000); /* Linux allows unmapping nothing; it must change nothing */
	p = mremap((void *)RT, 4096, 8192, MREMAP_MAYMOVE);
	CHECK(p == MAP_FAILED, "mremap of the runtime region fails");
	p = mmap((void *)(RT - 4096), 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	CHECK(p == MAP_FAILED, "a mapping reaching into the runtime region fails");
	madvise((void *)RT, 0x20000, MADV_DONTNEED); /* whatever it answers, it must change nothing */
	/* km still serves syscalls: the entry and the IDT are intact. */
	CHECK(getpid() > 0 && lseek(fd, 0, SEEK_SET) == 0 && read(fd, junk, 8) == 8, "syscalls still work");
	close(fd);
	unlink(path);
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "km") != 0) {
		fprintf(stderr, "usage: hostile_runtime km TMPDIR (under km only)\n");
		return 2;
	}
	host_routes();
	runtime_region(argv[2]);
	return check_done();
}
