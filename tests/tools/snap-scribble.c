/*
 * snap-scribble MODE FILE [OFFSET LEN]: changes FILE in place from outside, as a careless user or
 * tool might change a snapshot a km is running from (tests/e2e/snaplease.sh):
 *   pwrite    open O_WRONLY, overwrite every byte (or LEN bytes at OFFSET) with 0xa5 (pwrite)
 *   mmap      open O_RDWR, overwrite every byte with 0x5a through a MAP_SHARED mapping, msync
 *   truncate  truncate(2) to zero bytes
 * Prints "waited N ms" - how long the open (or truncate) took, i.e. how long km's lease made it
 * wait - and exits 0, or prints the failing call and exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static int fail(const char *what)
{
	printf("snap-scribble: %s: %s\n", what, strerror(errno));
	return 1;
}

static int overwrite(int fd, off_t from, off_t size)
{
	char buf[65536];
	memset(buf, 0xa5, sizeof(buf));
	for (off_t at = from; at < from + size;) {
		size_t n = from + size - at < (off_t)sizeof(buf) ? (size_t)(from + size - at) : sizeof(buf);
		ssize_t w = pwrite(fd, buf, n, at);
		if (w <= 0)
			return fail("pwrite");
		at += w;
	}
	return 0;
}

static int scribble_mapped(int fd, off_t size)
{
	if (size == 0)
		return 0;
	unsigned char *p = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fail("mmap");
	memset(p, 0x5a, (size_t)size);
	if (msync(p, (size_t)size, MS_SYNC) < 0)
		return fail("msync");
	munmap(p, (size_t)size);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 5) {
		fprintf(stderr, "usage: snap-scribble pwrite|mmap|truncate FILE [OFFSET LEN]\n");
		return 2;
	}
	const char *mode = argv[1], *path = argv[2];
	double t0 = now_ms();
	int rc = 0;
	if (strcmp(mode, "truncate") == 0) {
		if (truncate(path, 0) < 0)
			return fail("truncate");
		printf("waited %.1f ms\n", now_ms() - t0);
		return 0;
	}
	int mapped = strcmp(mode, "mmap") == 0;
	int fd = open(path, mapped ? O_RDWR : O_WRONLY);
	if (fd < 0)
		return fail("open");
	printf("waited %.1f ms\n", now_ms() - t0);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return fail("fstat");
	off_t from = argc == 5 ? (off_t)strtoll(argv[3], NULL, 0) : 0;
	off_t len = argc == 5 ? (off_t)strtoll(argv[4], NULL, 0) : st.st_size;
	rc = mapped ? scribble_mapped(fd, st.st_size) : overwrite(fd, from, len);
	close(fd);
	return rc;
}
