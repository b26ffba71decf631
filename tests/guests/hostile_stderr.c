/*
 * hostile_stderr km TMPDIR: the guest owns fd 2; km's own lines must not follow it. The guest
 * closes fd 2, opens a file of its own there, and makes km speak (a snapshot km refuses, a
 * --trace line): km's lines go to the stderr km was started with, never into the guest's file.
 */
// HOSTILE-KM-ARGS: --trace
// HOSTILE-STDERR: ^km: snapshot failed: .*
// HOSTILE-STDERR: ^[a-z_0-9]+\(.*\) = .*
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "km_hcall.h"

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "km") != 0) {
		fprintf(stderr, "usage: hostile_stderr km TMPDIR (under km only)\n");
		return 2;
	}
	char path[512], bad[600];
	snprintf(path, sizeof(path), "%s/guest-stderr", argv[2]);
	close(2);
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	CHECK(fd == 2, "the guest's file took fd 2 (fd %d)", fd);
	/* km refuses a snapshot into a directory that does not exist, and says so. */
	snprintf(bad, sizeof(bad), "%s/no/such/dir/snap", argv[2]);
	km_hc_args_t a = {0, 0, 0, (uint64_t)(uintptr_t)bad, 0, 0, 0};
	long r = km_hcall(HC_snapshot, &a);
	CHECK(r < 0, "the snapshot was refused (%ld)", r);
	off_t size = lseek(2, 0, SEEK_END);
	CHECK(size == 0, "nothing of km's landed in the guest's fd 2 (%ld bytes)", (long)size);
	if (size > 0) {
		char buf[256] = "";
		pread(2, buf, sizeof(buf) - 1, 0);
		printf("guest's fd 2 holds: %s\n", buf);
	}
	return check_done();
}
