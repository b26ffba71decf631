/*
 * Bad pointers handed to syscalls must give -1/EFAULT, and the program must go on running.
 * Uses syscall(2) directly so that libc cannot intercept or pre-check anything. Bad pointers:
 * small addresses (1), an unmapped page, a read-only or PROT_NONE page as a destination, a
 * canonical kernel-half address and a non-canonical one.
 */
// E2E: run 0
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>

#include "check.h"

#define BAD1 ((void *)1)
#define KERNEL_HALF ((void *)0xffff880000001000ULL)
#define NONCANONICAL ((void *)0x8000000000001000ULL)

int main(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	char *ro, *none, *gone, buf[256];
	int p[2], dfd, i;
	struct iovec iov[2];
	struct stat st;
	int stdout_checkable;
	void *bad[] = {BAD1, NULL, KERNEL_HALF, NONCANONICAL};
	const char *badname[] = {"address 1", "an unmapped page", "a kernel-half address", "a non-canonical address"};

	ro = mmap(NULL, pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	none = mmap(NULL, pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gone = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(ro != MAP_FAILED && none != MAP_FAILED && gone != MAP_FAILED, "set up mappings");
	munmap(gone, pg);
	bad[1] = gone;

	/* Writes to /dev/null never read the buffer, so they cannot fault: only check fd 1 when it
	 * is a file or a pipe (as under the e2e harness). Pipe writes are checked below anyway. */
	stdout_checkable = fstat(1, &st) == 0 && (S_ISREG(st.st_mode) || S_ISFIFO(st.st_mode));
	for (i = 0; i < 4; i++) {
		if (stdout_checkable)
			CHECK_ERR(syscall(SYS_write, 1, bad[i], 10), EFAULT, "write(1, %s, 10)", badname[i]);
		else
			printf("ok write(1, %s, 10) (not checked: stdout is not a file or pipe)\n", badname[i]);
		CHECK_ERR(syscall(SYS_open, bad[i], O_RDONLY), EFAULT, "open(%s)", badname[i]);
		CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, bad[i]), EFAULT, "clock_gettime into %s", badname[i]);
	}
	CHECK_ERR(syscall(SYS_openat, AT_FDCWD, BAD1, O_RDONLY), EFAULT, "openat with a bad path");

	CHECK_SYS(pipe(p), "pipe");
	for (i = 0; i < 4; i++)
		CHECK_ERR(syscall(SYS_write, p[1], bad[i], 10), EFAULT, "write(pipe, %s, 10)", badname[i]);
	CHECK_ERR(syscall(SYS_write, p[1], none, 10), EFAULT, "write(pipe) from a PROT_NONE page");
	CHECK_ERR(syscall(SYS_write, p[1], buf, 0x7fffffffffffffffLL), EFAULT,
		  "write(pipe) with a length running off the address space");
	CHECK_EQ(write(p[1], "0123456789", 10), 10, "fill pipe");
	CHECK_ERR(syscall(SYS_read, p[0], ro, 4), EFAULT, "read into a read-only mapping");
	CHECK_ERR(syscall(SYS_read, p[0], none, 4), EFAULT, "read into a PROT_NONE mapping");
	CHECK_ERR(syscall(SYS_read, p[0], gone, 4), EFAULT, "read into an unmapped page");
	CHECK_ERR(syscall(SYS_read, p[0], KERNEL_HALF, 4), EFAULT, "read into a kernel-half address");
	CHECK(ro[0] == 0, "read-only page unchanged");

	iov[0].iov_base = buf;
	iov[0].iov_len = 0;
	iov[1].iov_base = gone;
	iov[1].iov_len = 4;
	CHECK_ERR(syscall(SYS_readv, p[0], iov, 2), EFAULT, "readv with an iovec pointing at unmapped memory");
	CHECK_ERR(syscall(SYS_readv, p[0], gone, 2), EFAULT, "readv with the iovec array itself unmapped");
	CHECK_ERR(syscall(SYS_writev, p[1], iov, 2), EFAULT, "writev from unmapped memory");

	iov[0].iov_base = buf;
	iov[0].iov_len = sizeof(buf);
	CHECK(syscall(SYS_readv, p[0], iov, 1) > 0, "the pipe still works after EFAULTs");
	close(p[0]);
	close(p[1]);

	CHECK_ERR(syscall(SYS_stat, "/", BAD1), EFAULT, "stat with a bad buffer");
	CHECK_ERR(syscall(SYS_stat, "/", ro), EFAULT, "stat into a read-only page");
	CHECK_ERR(syscall(SYS_fstat, 0, gone), EFAULT, "fstat into an unmapped page");
	CHECK_ERR(syscall(SYS_newfstatat, AT_FDCWD, "/", gone, 0), EFAULT, "newfstatat into an unmapped page");
	CHECK_ERR(syscall(SYS_lstat, BAD1, buf), EFAULT, "lstat with a bad path");
	CHECK_ERR(syscall(SYS_nanosleep, BAD1, NULL), EFAULT, "nanosleep with a bad request pointer");
	CHECK_ERR(syscall(SYS_nanosleep, gone, NULL), EFAULT, "nanosleep with an unmapped request");
	CHECK_ERR(syscall(SYS_gettimeofday, gone, NULL), EFAULT, "gettimeofday into an unmapped page");

	dfd = CHECK_SYS(open("/", O_RDONLY | O_DIRECTORY), "open /");
	CHECK_ERR(syscall(SYS_getdents64, dfd, BAD1, 4096), EFAULT, "getdents64 into a bad buffer");
	CHECK_ERR(syscall(SYS_getdents64, dfd, ro, 4096), EFAULT, "getdents64 into a read-only page");
	CHECK(syscall(SYS_getdents64, dfd, buf, sizeof(buf)) > 0, "getdents64 still works");
	close(dfd);

	CHECK_ERR(syscall(SYS_pipe, BAD1), EFAULT, "pipe with a bad fd array");
	CHECK_ERR(syscall(SYS_pipe2, ro, 0), EFAULT, "pipe2 into a read-only page");
	CHECK_ERR(syscall(SYS_getcwd, gone, 4096), EFAULT, "getcwd into an unmapped page");
	CHECK_ERR(syscall(SYS_uname, BAD1), EFAULT, "uname with a bad buffer");
	CHECK_ERR(syscall(SYS_getrandom, gone, 16, 0), EFAULT, "getrandom into an unmapped page");
	CHECK_ERR(syscall(SYS_poll, gone, 1, 0), EFAULT, "poll with an unmapped pollfd array");
	CHECK_ERR(syscall(SYS_readlink, "/proc/self/exe", gone, 100), EFAULT, "readlink into an unmapped page");
	CHECK_ERR(syscall(SYS_getrlimit, RLIMIT_STACK, BAD1), EFAULT, "getrlimit into a bad pointer");

	/* Still alive, and ordinary I/O works. */
	CHECK_EQ(syscall(SYS_write, 1, "still running\n", 14), 14, "write after all the EFAULTs");
	return check_done();
}
