/*
 * File mappings in a temporary directory (argv[1], else $TMPDIR, else /tmp): MAP_PRIVATE writes
 * stay out of the file; MAP_SHARED writes reach it (msync(MS_SYNC), then read() on a separately
 * opened fd sees them); write() to the file shows through a shared mapping; mapping at a page
 * offset; a mapping past end of file is allowed within the last page and reads zeros there.
 */
// E2E: run 0 @TMP
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "check.h"

static char file[4200];

static void make_file(size_t len)
{
	int fd = open(file, O_CREAT | O_TRUNC | O_WRONLY, 0600);
	char *buf = malloc(len);
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = (char)('a' + i % 26);
	CHECK_EQ(write(fd, buf, len), len, "create a %zu-byte file", len);
	close(fd);
	free(buf);
}

static void test_private(size_t pg)
{
	int fd = CHECK_SYS(open(file, O_RDWR), "open file for a private mapping");
	char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	char buf[8];

	CHECK(p != MAP_FAILED, "mmap MAP_PRIVATE of a 2-page file");
	if (p == MAP_FAILED)
		return;
	CHECK(p[0] == 'a' && p[25] == 'z' && p[pg] == (char)('a' + pg % 26), "private mapping shows file data");
	memcpy(p, "PRIVATE", 7);
	CHECK(memcmp(p, "PRIVATE", 7) == 0, "private mapping is writable");
	CHECK_EQ(pread(fd, buf, 7, 0), 7, "read the file");
	CHECK(memcmp(buf, "abcdefg", 7) == 0, "private writes are not visible in the file");
	CHECK_SYS(msync(p, 2 * pg, MS_SYNC), "msync on a private mapping");
	CHECK_EQ(pread(fd, buf, 7, 0), 7, "read the file again");
	CHECK(memcmp(buf, "abcdefg", 7) == 0, "not even after msync");
	CHECK_SYS(munmap(p, 2 * pg), "munmap private mapping");
	close(fd);
}

static void test_shared(size_t pg)
{
	int fd = CHECK_SYS(open(file, O_RDWR), "open file for a shared mapping");
	int fd2;
	char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), *q;
	char buf[16];

	CHECK(p != MAP_FAILED, "mmap MAP_SHARED of a 2-page file");
	if (p == MAP_FAILED)
		return;
	close(fd); /* the mapping keeps the file */
	memcpy(p + 100, "SHARED-DATA", 11);
	memcpy(p + pg + 1, "PAGE2", 5);
	CHECK_SYS(msync(p, 2 * pg, MS_SYNC), "msync(MS_SYNC)");
	fd2 = CHECK_SYS(open(file, O_RDONLY), "open the file again");
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(pread(fd2, buf, 11, 100), 11, "read() via the new fd");
	CHECK_STR(buf, "SHARED-DATA", "shared mapping writes are in the file");
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(pread(fd2, buf, 5, pg + 1), 5, "read() second page");
	CHECK_STR(buf, "PAGE2", "second page written too");
	close(fd2);

	fd2 = CHECK_SYS(open(file, O_WRONLY), "open the file for writing");
	CHECK_EQ(pwrite(fd2, "VIA-WRITE", 9, 200), 9, "pwrite() into the file");
	CHECK(memcmp(p + 200, "VIA-WRITE", 9) == 0, "write() to the file shows through the shared mapping");
	close(fd2);

	/* A second shared mapping of the same file sees the first one's writes at once. */
	fd2 = open(file, O_RDWR);
	q = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd2, 0);
	CHECK(q != MAP_FAILED, "second MAP_SHARED mapping");
	if (q != MAP_FAILED) {
		p[300] = 'X';
		CHECK(q[300] == 'X', "two shared mappings of one file share pages");
		munmap(q, pg);
	}
	close(fd2);
	CHECK_SYS(munmap(p, 2 * pg), "munmap shared mapping");
}

static void test_offset_and_tail(size_t pg)
{
	int fd = open(file, O_RDWR), i, zeros = 1;
	char *p;
	struct stat st;

	p = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, pg);
	CHECK(p != MAP_FAILED, "mmap at file offset of one page");
	if (p != MAP_FAILED) {
		CHECK(memcmp(p + 1, "PAGE2", 5) == 0, "offset mapping shows the second page");
		munmap(p, pg);
	}
	CHECK(mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 100) == MAP_FAILED && errno == EINVAL,
	      "mmap at an unaligned file offset fails EINVAL");
	close(fd);

	make_file(100);
	fd = open(file, O_RDWR);
	p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(p != MAP_FAILED, "mapping a whole page of a 100-byte file is allowed");
	if (p != MAP_FAILED) {
		CHECK(p[0] == 'a' && p[99] == (char)('a' + 99 % 26), "the 100 bytes are there");
		for (i = 100; i < (int)pg; i++)
			zeros &= p[i] == 0;
		CHECK(zeros, "the rest of the last page reads as zeros");
		p[150] = 'Q';
		CHECK_SYS(msync(p, pg, MS_SYNC), "msync with a write past end of file");
		CHECK_SYS(fstat(fd, &st), "fstat");
		CHECK_EQ(st.st_size, 100, "writes past end of file do not grow the file");
		munmap(p, pg);
	}
	close(fd);

	fd = open(file, O_RDONLY);
	p = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, fd, 0);
	CHECK(p != MAP_FAILED, "MAP_PRIVATE PROT_READ of an O_RDONLY fd");
	if (p != MAP_FAILED)
		munmap(p, pg);
	CHECK(mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED && errno == EACCES,
	      "MAP_SHARED PROT_WRITE of an O_RDONLY fd fails EACCES");
	close(fd);
}

int main(int argc, char **argv)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	snprintf(file, sizeof(file), "%s/km_filemap.dat", check_tmpdir(argc, argv));
	make_file(2 * pg);
	test_private(pg);
	test_shared(pg);
	test_offset_and_tail(pg);
	CHECK_SYS(unlink(file), "unlink the file");
	return check_done();
}
