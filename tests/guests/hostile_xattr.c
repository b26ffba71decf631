/*
 * Hostile guest: the xattr calls (km/sys/km_sys_file.c) with km's fds, km's memory and sizes
 * past what km copies through. km's fds (1000 up) are EBADF to the f* forms, and a path through
 * /proc/self/fd to one of them is refused as any path to km's fds is; a value or list buffer in
 * km's runtime region, or a name running off the end of the guest's memory, is EFAULT; a huge
 * size does not make km allocate or copy more than Linux's 64 KiB limit, and the call still
 * works; nothing of km's is named or changed.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/xattr.h>

#include "check.h"

#define KM_FDS 1000
#define RT ((void *)0x7fffff000000ul) /* km's runtime region: never the guest's */

/* volatile: the compiler must not check these sizes against the buffers */
static volatile size_t huge = (size_t)1 << 40, most = SIZE_MAX;

int main(int argc, char **argv)
{
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	char file[512], buf[256];
	snprintf(file, sizeof(file), "%s/hostile-xattr", dir);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0, "a file of its own");
	bool xattrs = setxattr(file, "user.v", "12345", 5, 0) == 0;

	int badf = 0, refused = 0;
	for (int k = KM_FDS; k < KM_FDS + 64; k++) {
		errno = 0;
		badf += fgetxattr(k, "user.v", buf, sizeof(buf)) < 0 && errno == EBADF;
		badf += flistxattr(k, buf, sizeof(buf)) < 0 && errno == EBADF;
		badf += fsetxattr(k, "user.x", "1", 1, 0) < 0 && errno == EBADF;
		badf += fremovexattr(k, "user.x") < 0 && errno == EBADF;
		char p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", k);
		refused += getxattr(p, "user.v", buf, sizeof(buf)) < 0 && listxattr(p, buf, sizeof(buf)) < 0 &&
			   setxattr(p, "user.x", "1", 1, 0) < 0 && lgetxattr(p, "user.v", buf, sizeof(buf)) < 0;
	}
	CHECK(badf == 64 * 4, "km's fds are EBADF to fgetxattr/flistxattr/fsetxattr/fremovexattr (%d of 256)", badf);
	CHECK(refused == 64, "paths to km's fds through /proc/self/fd are refused (%d of 64)", refused);

	errno = 0;
	CHECK(setxattr(file, "user.w", RT, 64, 0) < 0 && errno == EFAULT, "a value from km's runtime region: EFAULT");
	errno = 0;
	CHECK(getxattr(file, (const char *)RT, buf, sizeof(buf)) < 0 && errno == EFAULT, "a name in km's runtime region: EFAULT");

	/* A name that runs to the last byte of a mapping, unterminated. */
	char *page = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(page != MAP_FAILED && munmap(page + 4096, 4096) == 0, "a page with nothing after it");
	memset(page, 'u', 4096);
	errno = 0;
	CHECK(getxattr(file, page + 4096 - 100, buf, sizeof(buf)) < 0 && errno == EFAULT,
	      "an unterminated name at the end of a mapping: EFAULT");

	if (xattrs) {
		errno = 0;
		CHECK(getxattr(file, "user.v", RT, 64) < 0 && errno == EFAULT, "a value buffer in km's runtime region: EFAULT");
		errno = 0;
		CHECK(listxattr(file, RT, 64) < 0 && errno == EFAULT, "a list buffer in km's runtime region: EFAULT");
		/* A huge size with a buffer big enough for the value: the call works (Linux caps it). */
		errno = 0;
		CHECK(getxattr(file, "user.v", buf, huge) == 5, "a huge size is capped: the value is read");
		CHECK(listxattr(file, buf, most) > 0, "a huge list size is capped: the list is read");
		/* The value lands at the start of a buffer whose second half is not mapped: fine. */
		errno = 0;
		CHECK(getxattr(file, "user.v", page + 4096 - 5, 65536) == 5 && memcmp(page + 4091, "12345", 5) == 0,
		      "a value that fits before the unmapped page is written");
		errno = 0;
		CHECK(getxattr(file, "user.v", page + 4096 - 2, 65536) < 0 && errno == EFAULT,
		      "a value that does not fit before the unmapped page: EFAULT");
	}
	close(fd);
	unlink(file);
	return check_done();
}
