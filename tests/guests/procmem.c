/*
 * procmem [denied]: km's /proc/<pid>/mem is the monitor's own memory, so under km opening the
 * guest's "/proc/self/mem" (by any of its names) must fail with EACCES while harmless /proc
 * files still open. Without arguments it only checks the harmless files (same natively).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"

int main(int argc, char **argv)
{
	int denied = argc > 1 && strcmp(argv[1], "denied") == 0;
	char pidpath[64];
	snprintf(pidpath, sizeof(pidpath), "/proc/%d/mem", (int)getpid());
	const char *mem[] = {"/proc/self/mem", "/proc/thread-self/mem", "/proc/self/pagemap", pidpath};
	if (denied) {
		for (unsigned i = 0; i < sizeof(mem) / sizeof(mem[0]); i++) {
			errno = 0;
			int fd = open(mem[i], O_RDWR);
			CHECK(fd < 0 && errno == EACCES, "open(%s) is EACCES", i == 3 ? "/proc/<pid>/mem" : mem[i]);
		}
		int dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
		errno = 0;
		CHECK(dir >= 0 && openat(dir, "mem", O_RDONLY) < 0 && errno == EACCES, "openat(/proc/self dirfd, mem)");
	}
	int fd = open("/proc/self/status", O_RDONLY);
	CHECK(fd >= 0, "open(/proc/self/status)");
	return check_done();
}
