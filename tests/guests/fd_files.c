/*
 * Files across a snapshot (issue 9; tests/e2e/fd_files.sh): a program holding regular files
 * (dup'd, opened twice, O_APPEND, O_NONBLOCK|O_CLOEXEC), a directory, devices, a deleted sparse
 * file with a POSIX lock, an O_TMPFILE, sealed and unsealed memfds (one opened twice) and
 * flock/POSIX/OFD locks checks that all of them are as they were.
 *
 *   fd_files DIR          set up and check (natively and under km: the checks themselves)
 *   fd_files DIR snap     set up, snapshot to DIR/fd.snap going on, check; `km DIR/fd.snap`
 *                         resumes the copy, which checks again, prints READY and waits for one
 *                         line on stdin (the shell probes the locks from outside meanwhile)
 *
 * In the resumed copy, a file DIR/expect-closed means: the resume was told to leave DIR/a's fds
 * closed (--restore-missing=closed), so they must be EBADF.
 */
// E2E: run 0 @TMP
#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "snap_common.h"

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 2u
#endif
#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#define F_OFD_SETLK 37
#endif
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

#define SPARSE_TAIL (1 << 20) /* the deleted file's second extent starts here */

static struct {
	int a, a_dup, a2, nb, log, dir, null, zero, del, del2, tmp, mfd, mfd_ro, mfd2, lk, lk_probe, lk2,
	    lk2_probe;
	off_t dir_pos;
} f;
static char dir[4096];

static char *path(const char *name)
{
	static char buf[4][4200];
	static int i;
	char *b = buf[i++ % 4];
	snprintf(b, sizeof(buf[0]), "%s/%s", dir, name);
	return b;
}

static int reopen_fd(int fd, int flags)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	return open(p, flags);
}

static void put(int fd, const char *s)
{
	CHECK_EQ(write(fd, s, strlen(s)), (long)strlen(s), "write %zu bytes", strlen(s));
}

static void setup(void)
{
	f.a = CHECK_SYS(open(path("a"), O_RDWR | O_CREAT | O_TRUNC, 0644), "open a");
	put(f.a, "0123456789");
	lseek(f.a, 3, SEEK_SET);
	f.a_dup = dup(f.a);
	f.a2 = CHECK_SYS(open(path("a"), O_RDONLY), "open a again");
	lseek(f.a2, 7, SEEK_SET);
	f.nb = CHECK_SYS(open(path("a"), O_RDONLY | O_NONBLOCK | O_CLOEXEC), "open a O_NONBLOCK|O_CLOEXEC");
	f.log = CHECK_SYS(open(path("log"), O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0644), "open log");
	put(f.log, "line1\n");

	f.dir = CHECK_SYS(open(dir, O_RDONLY | O_DIRECTORY), "open the directory");
	char dbuf[64];
	CHECK_SYS(syscall(SYS_getdents64, f.dir, dbuf, sizeof(dbuf)), "getdents64");
	f.dir_pos = lseek(f.dir, 0, SEEK_CUR);
	f.null = CHECK_SYS(open("/dev/null", O_WRONLY), "open /dev/null");
	f.zero = CHECK_SYS(open("/dev/zero", O_RDONLY), "open /dev/zero");

	f.del = CHECK_SYS(open(path("del"), O_RDWR | O_CREAT | O_TRUNC, 0600), "open del");
	put(f.del, "deleted contents");
	CHECK_EQ(pwrite(f.del, "tail", 4, SPARSE_TAIL), 4, "pwrite past a hole");
	CHECK_SYS(fchmod(f.del, 0640), "fchmod del");
	lseek(f.del, 5, SEEK_SET);
	f.del2 = CHECK_SYS(open(path("del"), O_RDONLY), "open del again");
	CHECK_SYS(unlink(path("del")), "unlink del");
	struct flock pl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 4};
	CHECK_SYS(fcntl(f.del, F_SETLK, &pl), "POSIX lock on the deleted file");

	f.tmp = CHECK_SYS(open(dir, O_TMPFILE | O_RDWR, 0600), "O_TMPFILE");
	put(f.tmp, "tmpfile data");
	lseek(f.tmp, 2, SEEK_SET);

	f.mfd = CHECK_SYS(memfd_create("fdtest", MFD_ALLOW_SEALING), "memfd_create");
	put(f.mfd, "memfd data");
	CHECK_SYS(fcntl(f.mfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK), "seal grow,shrink");
	lseek(f.mfd, 1, SEEK_SET);
	f.mfd_ro = CHECK_SYS(reopen_fd(f.mfd, O_RDONLY), "memfd opened again read-only");
	f.mfd2 = CHECK_SYS(memfd_create("unsealable", 0), "memfd_create without sealing");
	put(f.mfd2, "x");

	f.lk = CHECK_SYS(open(path("locked"), O_RDWR | O_CREAT | O_TRUNC, 0644), "open locked");
	CHECK_SYS(flock(f.lk, LOCK_EX), "flock");
	f.lk_probe = CHECK_SYS(open(path("locked"), O_RDONLY), "open locked again");
	f.lk2 = CHECK_SYS(open(path("locked2"), O_RDWR | O_CREAT | O_TRUNC, 0644), "open locked2");
	put(f.lk2, "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij");
	struct flock wl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 10, .l_len = 10};
	CHECK_SYS(fcntl(f.lk2, F_SETLK, &wl), "POSIX write lock 10-19");
	struct flock rl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 0};
	CHECK_SYS(fcntl(f.lk2, F_OFD_SETLK, &rl), "OFD read lock 50-EOF");
	f.lk2_probe = CHECK_SYS(open(path("locked2"), O_RDONLY), "open locked2 again");
}

static off_t pos(int fd)
{
	return lseek(fd, 0, SEEK_CUR);
}

static bool contains(int fd, off_t at, const char *want)
{
	char buf[64] = {0};
	size_t n = strlen(want);
	return pread(fd, buf, n, at) == (ssize_t)n && memcmp(buf, want, n) == 0;
}

/* The lock another description (probe) would run into on bytes start..start+len-1. */
static struct flock conflict(int probe, short type, off_t start, off_t len)
{
	struct flock l = {.l_type = type, .l_whence = SEEK_SET, .l_start = start, .l_len = len};
	if (fcntl(probe, F_OFD_GETLK, &l) < 0)
		l.l_type = -1;
	return l;
}

static void check_a(bool closed)
{
	if (closed) {
		CHECK_ERR(fcntl(f.a, F_GETFD), EBADF, "a: left closed");
		CHECK_ERR(fcntl(f.a_dup, F_GETFD), EBADF, "a's dup: left closed");
		CHECK_ERR(fcntl(f.a2, F_GETFD), EBADF, "a opened again: left closed");
		CHECK_ERR(fcntl(f.nb, F_GETFD), EBADF, "a O_NONBLOCK: left closed");
		return;
	}
	CHECK_EQ(pos(f.a), 3, "a: offset");
	CHECK_EQ(pos(f.a_dup), 3, "a's dup: offset");
	char c = 0;
	CHECK(read(f.a, &c, 1) == 1 && c == '3', "a: reads on from its offset");
	CHECK_EQ(pos(f.a_dup), 4, "a's dup shares the offset");
	CHECK_EQ(pos(f.a2), 7, "a opened again: its own offset");
	CHECK_EQ(fcntl(f.a, F_GETFL) & O_ACCMODE, O_RDWR, "a: O_RDWR");
	CHECK_EQ(fcntl(f.a2, F_GETFL) & O_ACCMODE, O_RDONLY, "a opened again: O_RDONLY");
	CHECK_EQ(fcntl(f.a, F_GETFD), 0, "a: no FD_CLOEXEC");
	CHECK_EQ(fcntl(f.nb, F_GETFD), FD_CLOEXEC, "a O_CLOEXEC: FD_CLOEXEC");
	CHECK_EQ(fcntl(f.nb, F_GETFL) & (O_NONBLOCK | O_APPEND), O_NONBLOCK, "a O_NONBLOCK: flags");
}

static void check(bool resumed)
{
	struct stat st;
	check_a(resumed && access(path("expect-closed"), F_OK) == 0);

	CHECK_EQ(fcntl(f.log, F_GETFL) & (O_ACCMODE | O_APPEND), O_WRONLY | O_APPEND, "log: O_WRONLY|O_APPEND");
	put(f.log, "line2\n");
	CHECK(fstat(f.log, &st) == 0 && pos(f.log) == st.st_size, "log: written at its end");

	CHECK(fstat(f.dir, &st) == 0 && S_ISDIR(st.st_mode), "directory: still one");
	CHECK_EQ(pos(f.dir), f.dir_pos, "directory: getdents position");
	CHECK_EQ(write(f.null, "abc", 3), 3, "/dev/null: written");
	char z[4] = {1, 1, 1, 1};
	CHECK(read(f.zero, z, 4) == 4 && z[0] == 0 && z[3] == 0, "/dev/zero: zeros");

	CHECK(fstat(f.del, &st) == 0 && st.st_nlink == 0, "deleted: st_nlink 0");
	CHECK_EQ(st.st_size, SPARSE_TAIL + 4, "deleted: size");
	CHECK_EQ(st.st_mode & 07777, 0640, "deleted: mode");
	CHECK(st.st_blocks * 512 < SPARSE_TAIL / 2, "deleted: still sparse (%ld blocks)", (long)st.st_blocks);
	CHECK(contains(f.del, 0, "deleted contents") && contains(f.del, SPARSE_TAIL, "tail"), "deleted: contents");
	CHECK_EQ(pos(f.del), 5, "deleted: offset");
	CHECK_EQ(pos(f.del2), 0, "deleted, opened again: its own offset");
	CHECK_EQ(pwrite(f.del, "D", 1, 0), 1, "deleted: written through one description");
	CHECK(contains(f.del2, 0, "Deleted"), "deleted: seen through the other (one file)");
	struct flock l = conflict(f.del2, F_WRLCK, 0, 1);
	CHECK(l.l_type == F_WRLCK && l.l_pid > 0, "deleted: the POSIX lock is held (type %d)", l.l_type);

	CHECK(fstat(f.tmp, &st) == 0 && st.st_nlink == 0, "O_TMPFILE: st_nlink 0");
	CHECK(contains(f.tmp, 0, "tmpfile data") && pos(f.tmp) == 2, "O_TMPFILE: contents and offset");

	CHECK(contains(f.mfd, 0, "memfd data") && pos(f.mfd) == 1, "memfd: contents and offset");
	CHECK_EQ(fcntl(f.mfd, F_GET_SEALS), F_SEAL_GROW | F_SEAL_SHRINK, "memfd: seals");
	CHECK_ERR(pwrite(f.mfd, "x", 1, 100), EPERM, "memfd: sealed against growing");
	char link[256] = {0};
	char lp[64];
	snprintf(lp, sizeof(lp), "/proc/self/fd/%d", f.mfd);
	CHECK(readlink(lp, link, sizeof(link) - 1) > 0 && strncmp(link, "/memfd:fdtest", 13) == 0, "memfd: its name (%s)",
	      link);
	CHECK_EQ(fcntl(f.mfd_ro, F_GETFL) & O_ACCMODE, O_RDONLY, "memfd read-only: O_RDONLY");
	CHECK_EQ(pwrite(f.mfd, "M", 1, 0), 1, "memfd: written");
	CHECK(contains(f.mfd_ro, 0, "Memfd"), "memfd read-only: the same file");
	CHECK_EQ(fcntl(f.mfd2, F_GET_SEALS), F_SEAL_SEAL, "unsealable memfd: still unsealable");

	CHECK_ERR(flock(f.lk_probe, LOCK_SH | LOCK_NB), EWOULDBLOCK, "flock: still held");
	l = conflict(f.lk2_probe, F_WRLCK, 10, 10);
	CHECK(l.l_type == F_WRLCK && l.l_start == 10 && l.l_len == 10 && l.l_pid > 0, "POSIX lock 10-19: held");
	l = conflict(f.lk2_probe, F_WRLCK, 50, 1);
	CHECK(l.l_type == F_RDLCK && l.l_start == 50 && l.l_len == 0 && l.l_pid == -1, "OFD lock 50-EOF: held");
	l = conflict(f.lk2_probe, F_WRLCK, 0, 10);
	CHECK_EQ(l.l_type, F_UNLCK, "bytes 0-9: not locked");
}

int main(int argc, char **argv)
{
	snprintf(dir, sizeof(dir), "%s", check_tmpdir(argc, argv));
	bool snap = argc > 2 && strcmp(argv[2], "snap") == 0;
	setup();
	if (snap) {
		long r = snap_take("fd_files", KM_SNAPSHOT_KEEP_RUNNING, path("fd.snap"), NULL);
		if (r < 0)
			snap_failed(r);
		check(r == KM_SNAPSHOT_RESUMED);
		if (r == KM_SNAPSHOT_RESUMED) {
			printf("READY\n");
			fflush(stdout);
			char line[16];
			(void)!read(0, line, sizeof(line));
		}
		printf("%s\n", r == KM_SNAPSHOT_RESUMED ? "RESUMED" : "ORIGINAL");
	} else {
		check(false);
		unlink(path("a"));
		unlink(path("log"));
		unlink(path("locked"));
		unlink(path("locked2"));
	}
	return check_done();
}
