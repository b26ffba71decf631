/*
 * Extended attributes (getxattr and its l/f forms, set, list, remove) on a file and a symlink in
 * a temporary directory, with the errors Linux gives: ENODATA, ERANGE for a short buffer or a
 * name past 255 bytes, EFAULT for a bad buffer, E2BIG for a value past 64 KiB, EBADF. ls -l asks
 * for these on every file. A filesystem without user xattrs gives ENOTSUP natively and under
 * km alike (the lines then say so).
 */
// E2E: tmpdir 0 @TMP
#include <fcntl.h>
#include <sys/xattr.h>

#include "check.h"

/* volatile: the compiler must not see through them (it warns about what they point at) */
static void *volatile bad = (void *)8;
static char big[65537];

int main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/tmp";
	char file[512], link[512], buf[64];
	snprintf(file, sizeof(file), "%s/xattr-file", dir);
	snprintf(link, sizeof(link), "%s/xattr-link", dir);
	int fd = open(file, O_RDWR | O_CREAT | O_TRUNC, 0644);
	CHECK(fd >= 0, "create a file");
	CHECK(symlink(file, link) == 0, "symlink to it");
	int rc = setxattr(file, "user.km", "value1", 6, 0);
	if (rc < 0 && errno == ENOTSUP) {
		CHECK(getxattr(file, "user.km", buf, sizeof(buf)) < 0 && errno == ENOTSUP, "no user xattrs here: ENOTSUP");
		unlink(link);
		unlink(file);
		return check_done();
	}
	CHECK(rc == 0, "setxattr");
	CHECK(setxattr(file, "user.km", "x", 1, XATTR_CREATE) < 0 && errno == EEXIST, "XATTR_CREATE on one that exists: EEXIST");
	memset(buf, 0, sizeof(buf));
	CHECK(getxattr(file, "user.km", buf, sizeof(buf)) == 6 && memcmp(buf, "value1", 6) == 0, "getxattr");
	CHECK(getxattr(link, "user.km", buf, sizeof(buf)) == 6, "getxattr follows a symlink");
	CHECK(getxattr(file, "user.km", NULL, 0) == 6, "getxattr with size 0 gives the size");
	CHECK(getxattr(file, "user.km", buf, 3) < 0 && errno == ERANGE, "getxattr into a short buffer: ERANGE");
	CHECK(getxattr(file, "user.none", buf, sizeof(buf)) < 0 && errno == ENODATA, "a missing attribute: ENODATA");
	CHECK(fgetxattr(fd, "user.km", buf, sizeof(buf)) == 6, "fgetxattr");
	CHECK(fsetxattr(fd, "user.two", "2", 1, 0) == 0, "fsetxattr");
	char list[256];
	ssize_t n = listxattr(file, list, sizeof(list));
	CHECK(n == (ssize_t)sizeof("user.km") + (ssize_t)sizeof("user.two"), "listxattr: two names");
	CHECK(flistxattr(fd, NULL, 0) == n, "flistxattr with size 0 gives the size");
	CHECK(llistxattr(link, list, sizeof(list)) >= 0, "llistxattr of the link itself");
	CHECK(lgetxattr(link, "user.km", buf, sizeof(buf)) < 0, "lgetxattr reads the link, not the file");
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	memcpy(longname, "user.", 5);
	longname[sizeof(longname) - 1] = '\0';
	CHECK(getxattr(file, longname, buf, sizeof(buf)) < 0 && errno == ERANGE, "a name past 255 bytes: ERANGE");
	CHECK(getxattr(file, "user.km", bad, sizeof(buf)) < 0 && errno == EFAULT, "a bad value buffer: EFAULT");
	CHECK(setxattr(file, "user.km", bad, 4, 0) < 0 && errno == EFAULT, "a bad value to set: EFAULT");
	CHECK(getxattr((char *)bad, "user.km", buf, sizeof(buf)) < 0 && errno == EFAULT, "a bad path: EFAULT");
	CHECK(setxattr(file, "user.big", big, sizeof(big), 0) < 0 && errno == E2BIG, "a value past 64 KiB: E2BIG");
	CHECK(fgetxattr(-1, "user.km", buf, sizeof(buf)) < 0 && errno == EBADF, "fgetxattr on a bad fd: EBADF");
	CHECK(fremovexattr(fd, "user.two") == 0 && removexattr(file, "user.km") == 0, "fremovexattr, removexattr");
	CHECK(listxattr(file, list, sizeof(list)) == 0, "no names left");
	CHECK(lremovexattr(link, "user.km") < 0, "lremovexattr on the link");
	close(fd);
	unlink(link);
	unlink(file);
	return check_done();
}
