/*
 * mmap with MAP_SHARED_VALIDATE: the flags Linux knows work, an unknown one (or a bit above 32,
 * or MAP_SYNC on a file without DAX, or MAP_FIXED_NOREPLACE, which Linux leaves out of its list)
 * is EOPNOTSUPP, and on anonymous memory the type itself is EINVAL. Plain MAP_SHARED and
 * MAP_PRIVATE ignore unknown flags. Raw syscalls, so libc passes every bit through.
 */
// E2E: run 0
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#include "check.h"

#define PG 4096
#define UNKNOWN 0x800000ul /* no MAP_ flag has this bit */
#define HUGE_2MB (21ul << 26)
#define HUGE_ALL (0x3ful << 26)

static long map(int fd, unsigned long flags)
{
	return syscall(SYS_mmap, 0, PG, PROT_READ | PROT_WRITE, flags, fd, 0);
}

/* A mapping that worked is the file's: a byte written through it is in the file. */
static int works(int fd, unsigned long flags, char c)
{
	char before = 0, back = 0;
	long r = map(fd, flags);
	if (r == -1 || pread(fd, &before, 1, 0) != 1)
		return 0;
	*(volatile char *)r = c;
	munmap((void *)r, PG);
	/* A private mapping's write stays its own. */
	return pread(fd, &back, 1, 0) == 1 && back == ((flags & 3) == MAP_PRIVATE ? before : c);
}

int main(void)
{
	int fd = CHECK_SYS(open("validate.dat", O_RDWR | O_CREAT | O_TRUNC, 0600), "create a file");
	CHECK_EQ(pwrite(fd, "f", 1, 0), 1, "write its first byte");
	CHECK_SYS(ftruncate(fd, 2 * PG), "make it two pages long");

	CHECK(works(fd, MAP_SHARED_VALIDATE, 'a'), "MAP_SHARED_VALIDATE maps the file shared");
	CHECK(works(fd, MAP_SHARED_VALIDATE | MAP_POPULATE | MAP_NORESERVE | MAP_LOCKED | MAP_STACK |
				MAP_NONBLOCK | MAP_DENYWRITE | MAP_EXECUTABLE | MAP_32BIT,
		    'b'),
	      "MAP_SHARED_VALIDATE with every known hint");
	CHECK(works(fd, MAP_SHARED_VALIDATE | HUGE_2MB, 'c'), "MAP_SHARED_VALIDATE | MAP_HUGE_2MB (no HUGETLB)");
	CHECK_ERR(map(fd, MAP_SHARED_VALIDATE | UNKNOWN), EOPNOTSUPP, "MAP_SHARED_VALIDATE | an unknown flag");
	CHECK_ERR(map(fd, MAP_SHARED_VALIDATE | (1ul << 40)), EOPNOTSUPP, "MAP_SHARED_VALIDATE | bit 40");
	CHECK_ERR(map(fd, MAP_SHARED_VALIDATE | MAP_SYNC), EOPNOTSUPP, "MAP_SHARED_VALIDATE | MAP_SYNC (no DAX)");
	CHECK_ERR(map(fd, MAP_SHARED_VALIDATE | HUGE_ALL), EOPNOTSUPP, "MAP_SHARED_VALIDATE | all MAP_HUGE bits");
	CHECK_ERR(map(fd, MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE), EOPNOTSUPP,
		  "MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE");
	CHECK_ERR(map(fd, MAP_SHARED_VALIDATE | MAP_HUGETLB), EINVAL, "MAP_SHARED_VALIDATE | MAP_HUGETLB on a file");
	CHECK_ERR(map(fd, MAP_SHARED_VALIDATE | MAP_GROWSDOWN), EINVAL, "MAP_SHARED_VALIDATE | MAP_GROWSDOWN");
	CHECK_ERR(map(-1, MAP_SHARED_VALIDATE | MAP_ANONYMOUS), EINVAL, "MAP_SHARED_VALIDATE | MAP_ANONYMOUS");
	CHECK_ERR(map(-1, MAP_SHARED_VALIDATE | MAP_ANONYMOUS | UNKNOWN), EINVAL,
		  "MAP_SHARED_VALIDATE | MAP_ANONYMOUS | an unknown flag");
	CHECK_ERR(map(99, MAP_SHARED_VALIDATE | UNKNOWN), EBADF, "MAP_SHARED_VALIDATE | unknown on a bad fd: EBADF first");

	CHECK(works(fd, MAP_SHARED | UNKNOWN | (1ul << 40), 'd'), "MAP_SHARED ignores unknown flags");
	CHECK(works(fd, MAP_PRIVATE | UNKNOWN, 'x'), "MAP_PRIVATE ignores unknown flags");
	CHECK_ERR(map(fd, MAP_PRIVATE | MAP_GROWSDOWN), EINVAL, "MAP_PRIVATE | MAP_GROWSDOWN on a file");
	close(fd);
	return check_done();
}
