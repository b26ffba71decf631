/*
 * The smallest useful guest: prints a greeting, makes one failing syscall (opening a file that
 * does not exist, ENOENT) and exits 0. Used by the --trace test and as the source of broken
 * ELF files for km's bad-input tests.
 */
// E2E: run 0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	int fd = open("/nonexistent-km-e2e/file", O_RDONLY);

	if (fd != -1 || errno != ENOENT) {
		printf("FAIL open of a missing file did not fail with ENOENT\n");
		return 1;
	}
	printf("hello, world\n");
	return 0;
}
