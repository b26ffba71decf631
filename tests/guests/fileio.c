/*
 * File I/O in a temporary directory (argv[1], else $TMPDIR, else /tmp): open/read/write/lseek,
 * fstat/stat, pread/pwrite, readv/writev, dup/dup2, fcntl, ftruncate, getdents64 (readdir and
 * the raw syscall), rename, unlink, mkdir, rmdir, openat on a directory fd, and error returns.
 */
// E2E: tmpdir-arg 0 @TMP
// E2E: tmpdir-env 0
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>

#include "check.h"

static char dir[4096];

static const char *path(const char *name)
{
	static char buf[2][4200];
	static int which;

	which ^= 1;
	snprintf(buf[which], sizeof(buf[which]), "%s/%s", dir, name);
	return buf[which];
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_basic_rw(void)
{
	char buf[64];
	struct stat st;
	int fd;

	fd = CHECK_SYS(open(path("a"), O_CREAT | O_EXCL | O_RDWR, 0644), "open O_CREAT|O_EXCL");
	CHECK_ERR(open(path("a"), O_CREAT | O_EXCL | O_RDWR, 0644), EEXIST, "open O_EXCL on existing file fails EEXIST");
	CHECK_EQ(write(fd, "hello world\n", 12), 12, "write 12 bytes");
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 12, "lseek SEEK_CUR after write");
	CHECK_EQ(lseek(fd, 6, SEEK_SET), 6, "lseek SEEK_SET");
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(read(fd, buf, 5), 5, "read 5 bytes");
	CHECK(memcmp(buf, "world", 5) == 0, "read data matches");
	CHECK_EQ(lseek(fd, -3, SEEK_END), 9, "lseek SEEK_END");
	CHECK_EQ(read(fd, buf, sizeof(buf)), 3, "short read at end");
	CHECK_EQ(read(fd, buf, sizeof(buf)), 0, "read at EOF returns 0");

	CHECK_SYS(fstat(fd, &st), "fstat");
	CHECK(S_ISREG(st.st_mode), "fstat: regular file");
	CHECK_EQ(st.st_size, 12, "fstat: size");
	CHECK((st.st_mode & 0777 & ~0644) == 0, "fstat: mode has no bits beyond 0644");
	CHECK_EQ(st.st_nlink, 1, "fstat: one link");
	CHECK_SYS(stat(path("a"), &st), "stat by path");
	CHECK_EQ(st.st_size, 12, "stat: size");
	CHECK_SYS(lstat(path("a"), &st), "lstat by path");
	CHECK_SYS(close(fd), "close");
	CHECK_ERR(read(fd, buf, 1), EBADF, "read on closed fd fails EBADF");
	CHECK_ERR(close(fd), EBADF, "close of closed fd fails EBADF");
}

static void test_pread_pwrite(void)
{
	char buf[16];
	int fd = CHECK_SYS(open(path("a"), O_RDWR), "open existing O_RDWR");

	CHECK_EQ(lseek(fd, 2, SEEK_SET), 2, "lseek before pread");
	memset(buf, 0, sizeof(buf));
	CHECK_EQ(pread(fd, buf, 5, 6), 5, "pread 5 at offset 6");
	CHECK(memcmp(buf, "world", 5) == 0, "pread data");
	CHECK_EQ(pwrite(fd, "WORLD", 5, 6), 5, "pwrite 5 at offset 6");
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 2, "pread/pwrite leave the file offset alone");
	CHECK_EQ(pread(fd, buf, 12, 0), 12, "pread whole file");
	CHECK(memcmp(buf, "hello WORLD\n", 12) == 0, "pwrite data visible");
	CHECK_EQ(pwrite(fd, "!", 1, 20), 1, "pwrite beyond end extends the file");
	CHECK_EQ(pread(fd, buf, 16, 8), 13, "pread across the hole");
	CHECK(buf[4] == 0 && buf[11] == 0 && buf[12] == '!', "hole reads as zeros");
	CHECK_SYS(close(fd), "close");
}

static void test_readv_writev(void)
{
	char a[4], b[6], c[8];
	struct iovec iov[3];
	int fd = CHECK_SYS(open(path("v"), O_CREAT | O_TRUNC | O_RDWR, 0600), "open for writev");

	iov[0].iov_base = "abc";
	iov[0].iov_len = 3;
	iov[1].iov_base = "";
	iov[1].iov_len = 0;
	iov[2].iov_base = "defghijklmn";
	iov[2].iov_len = 11;
	CHECK_EQ(writev(fd, iov, 3), 14, "writev 3 iovecs (one empty)");
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0, "rewind");
	iov[0].iov_base = a;
	iov[0].iov_len = sizeof(a);
	iov[1].iov_base = b;
	iov[1].iov_len = sizeof(b);
	iov[2].iov_base = c;
	iov[2].iov_len = sizeof(c);
	memset(c, 'X', sizeof(c));
	CHECK_EQ(readv(fd, iov, 3), 14, "readv 3 iovecs, short");
	CHECK(memcmp(a, "abcd", 4) == 0 && memcmp(b, "efghij", 6) == 0 && memcmp(c, "klmnXXXX", 8) == 0,
	      "readv scattered the data in order");
	CHECK_EQ(preadv(fd, iov, 1, 10), 4, "preadv at offset");
	CHECK(memcmp(a, "klmn", 4) == 0, "preadv data");
	CHECK_SYS(close(fd), "close");
}

static void test_dup_fcntl(void)
{
	char buf[8];
	int fd, fd2, fd3, fl;

	fd = CHECK_SYS(open(path("d"), O_CREAT | O_TRUNC | O_RDWR, 0600), "open for dup tests");
	CHECK_EQ(write(fd, "0123456789", 10), 10, "write");
	fd2 = CHECK_SYS(dup(fd), "dup");
	CHECK(fd2 != fd, "dup returns a new fd");
	CHECK_EQ(lseek(fd, 3, SEEK_SET), 3, "lseek on original");
	CHECK_EQ(lseek(fd2, 0, SEEK_CUR), 3, "dup'd fd shares the file offset");
	CHECK_EQ(dup2(fd, 100), 100, "dup2 to fd 100");
	CHECK_EQ(read(100, buf, 2), 2, "read through fd 100");
	CHECK(memcmp(buf, "34", 2) == 0, "read through dup2'd fd at shared offset");
	CHECK_EQ(dup2(fd, fd), fd, "dup2(fd, fd) returns fd");
	CHECK_EQ(dup2(fd2, 100), 100, "dup2 onto an open fd replaces it");
	CHECK_SYS(close(100), "close fd 100");
	CHECK_ERR(dup2(12345, 101), EBADF, "dup2 of a bad fd fails EBADF");

	fl = CHECK_SYS(fcntl(fd, F_GETFL), "fcntl F_GETFL");
	CHECK_EQ(fl & O_ACCMODE, O_RDWR, "F_GETFL shows O_RDWR");
	CHECK(!(fl & O_APPEND), "F_GETFL: no O_APPEND yet");
	CHECK_SYS(fcntl(fd, F_SETFL, fl | O_APPEND), "fcntl F_SETFL O_APPEND");
	CHECK(fcntl(fd2, F_GETFL) & O_APPEND, "O_APPEND visible through the dup'd fd");
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0, "rewind");
	CHECK_EQ(write(fd, "ab", 2), 2, "write with O_APPEND");
	CHECK_EQ(lseek(fd, 0, SEEK_CUR), 12, "O_APPEND write went to the end");
	CHECK_EQ(fcntl(fd, F_GETFD), 0, "F_GETFD: no FD_CLOEXEC on a plain fd");
	fd3 = CHECK_SYS(fcntl(fd, F_DUPFD_CLOEXEC, 50), "fcntl F_DUPFD_CLOEXEC, min 50");
	CHECK(fd3 >= 50, "F_DUPFD_CLOEXEC result is >= 50");
	CHECK_EQ(fcntl(fd3, F_GETFD), FD_CLOEXEC, "F_DUPFD_CLOEXEC sets FD_CLOEXEC");
	CHECK_SYS(fcntl(fd3, F_SETFD, 0), "F_SETFD 0");
	CHECK_EQ(fcntl(fd3, F_GETFD), 0, "F_SETFD cleared FD_CLOEXEC");
	CHECK_EQ(fcntl(fd, F_DUPFD, 50), fd3 + 1, "F_DUPFD takes the lowest free fd >= 50");
	CHECK_SYS(close(fd3 + 1), "close");
	CHECK_SYS(close(fd3), "close");

	CHECK_SYS(ftruncate(fd, 4), "ftruncate shrink to 4");
	CHECK_EQ(pread(fd, buf, sizeof(buf), 0), 4, "file is 4 bytes");
	CHECK_SYS(ftruncate(fd, 4096), "ftruncate grow to 4096");
	CHECK_EQ(lseek(fd, 0, SEEK_END), 4096, "file is 4096 bytes");
	CHECK_EQ(pread(fd, buf, 4, 4000), 4, "read from grown region");
	CHECK(buf[0] == 0 && buf[3] == 0, "grown region reads as zeros");
	CHECK_ERR(ftruncate(fd, -1), EINVAL, "ftruncate negative fails EINVAL");
	CHECK_SYS(close(fd2), "close dup");
	CHECK_SYS(close(fd), "close");
}

static void test_dirs(void)
{
	const char *want[] = {".", "..", "a", "d", "sub", "v"};
	char *names[32];
	int n = 0, i, fd, dfd, ok, saw_dir_type = 1;
	DIR *d;
	struct dirent *e;
	char buf[8192];
	long nread, total = 0;

	CHECK_SYS(mkdir(path("sub"), 0755), "mkdir");
	CHECK_ERR(mkdir(path("sub"), 0755), EEXIST, "mkdir existing fails EEXIST");
	fd = CHECK_SYS(open(path("sub/inner"), O_CREAT | O_WRONLY, 0644), "create file in subdir");
	CHECK_SYS(close(fd), "close");
	CHECK_ERR(rmdir(path("sub")), ENOTEMPTY, "rmdir non-empty fails ENOTEMPTY");

	d = opendir(dir);
	CHECK(d != NULL, "opendir");
	if (d) {
		while ((e = readdir(d)) != NULL && n < 32) {
			names[n++] = strdup(e->d_name);
			if (strcmp(e->d_name, "sub") == 0 && e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
				saw_dir_type = 0;
		}
		closedir(d);
	}
	qsort(names, n, sizeof(names[0]), cmp_str);
	ok = n == 6;
	for (i = 0; ok && i < n; i++)
		ok = strcmp(names[i], want[i]) == 0;
	CHECK(ok, "readdir lists . .. a d sub v");
	CHECK(saw_dir_type, "readdir d_type of a directory is DT_DIR");
	for (i = 0; i < n; i++)
		free(names[i]);

	/* Raw getdents64 with a small buffer, so it takes several calls. */
	dfd = CHECK_SYS(open(dir, O_RDONLY | O_DIRECTORY), "open directory O_DIRECTORY");
	n = 0;
	while ((nread = syscall(SYS_getdents64, dfd, buf, 64)) > 0) {
		long off = 0;
		total += nread;
		while (off < nread) {
			unsigned short reclen = *(unsigned short *)(buf + off + 16);
			if (reclen == 0)
				break;
			off += reclen;
			n++;
		}
	}
	CHECK_EQ(nread, 0, "getdents64 ends with 0");
	CHECK_EQ(n, 6, "getdents64 with a 64-byte buffer returns all 6 entries");
	CHECK_EQ(lseek(dfd, 0, SEEK_SET), 0, "rewind the directory fd");
	CHECK_ERR(syscall(SYS_getdents64, dfd, buf, 1), EINVAL, "getdents64 with a 1-byte buffer at start fails EINVAL");

	/* openat relative to the directory fd */
	fd = CHECK_SYS(openat(dfd, "sub/inner", O_RDONLY), "openat relative to a directory fd");
	if (fd >= 0)
		close(fd);
	CHECK_ERR(openat(dfd, "no-such-file", O_RDONLY), ENOENT, "openat missing file fails ENOENT");
	CHECK_ERR(open(path("a/x"), O_RDONLY), ENOTDIR, "open through a regular file fails ENOTDIR");
	CHECK_ERR(open(dir, O_WRONLY), EISDIR, "open a directory for writing fails EISDIR");
	CHECK_SYS(close(dfd), "close directory fd");
	CHECK_ERR(open(path("a"), O_RDONLY | O_DIRECTORY), ENOTDIR, "O_DIRECTORY on a file fails ENOTDIR");
}

static void test_rename_unlink(void)
{
	struct stat st;
	char buf[16];
	int fd;

	CHECK_SYS(rename(path("a"), path("e")), "rename a -> e");
	CHECK_ERR(stat(path("a"), &st), ENOENT, "old name is gone");
	fd = CHECK_SYS(open(path("e"), O_RDONLY), "open new name");
	CHECK_EQ(read(fd, buf, 5), 5, "read renamed file");
	CHECK(memcmp(buf, "hello", 5) == 0, "renamed file keeps its data");
	close(fd);
	CHECK_SYS(rename(path("v"), path("e")), "rename over an existing file");
	CHECK_SYS(stat(path("e"), &st), "stat replaced file");
	CHECK_EQ(st.st_size, 14, "replaced file has the new contents' size");
	CHECK_ERR(rename(path("no-such"), path("x")), ENOENT, "rename missing fails ENOENT");

	CHECK_SYS(unlink(path("e")), "unlink e");
	CHECK_SYS(unlink(path("d")), "unlink d");
	CHECK_ERR(unlink(path("e")), ENOENT, "unlink missing fails ENOENT");
	CHECK_ERR(unlink(path("sub")), EISDIR, "unlink a directory fails EISDIR");
	CHECK_SYS(unlink(path("sub/inner")), "unlink sub/inner");
	CHECK_SYS(rmdir(path("sub")), "rmdir sub");
	CHECK_ERR(rmdir(path("sub")), ENOENT, "rmdir missing fails ENOENT");
}

static void test_big_file(void)
{
	size_t size = 3 * 1024 * 1024 + 123, i;
	unsigned char *w = malloc(size), *r = malloc(size);
	unsigned long long seed = 42;
	ssize_t n;
	size_t got = 0;
	int fd;

	for (i = 0; i < size; i++)
		w[i] = (unsigned char)check_rand(&seed);
	fd = CHECK_SYS(open(path("big"), O_CREAT | O_TRUNC | O_RDWR, 0600), "open big file");
	CHECK_EQ(write(fd, w, size), size, "write 3 MiB in one call");
	CHECK_EQ(lseek(fd, 0, SEEK_SET), 0, "rewind");
	while (got < size && (n = read(fd, r + got, size - got)) > 0)
		got += n;
	CHECK_EQ(got, size, "read it back");
	CHECK(memcmp(w, r, size) == 0, "3 MiB round trip is byte-identical");
	close(fd);
	CHECK_SYS(unlink(path("big")), "unlink big file");
	free(w);
	free(r);
}

int main(int argc, char **argv)
{
	snprintf(dir, sizeof(dir), "%s/km_fileio", check_tmpdir(argc, argv));
	if (CHECK_SYS(mkdir(dir, 0700), "mkdir work directory") < 0)
		return check_done();
	test_basic_rw();
	test_pread_pwrite();
	test_readv_writev();
	test_dup_fcntl();
	test_dirs();
	test_rename_unlink();
	test_big_file();
	CHECK_SYS(rmdir(dir), "rmdir work directory (now empty)");
	return check_done();
}
