/* Atomic replacement of small files: see oci_file.h. */
#include "oci_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int oci_file_replace_at(int dfd, const char *dir, const char *name, const void *buf, size_t len, mode_t mode,
			km_err_t **err)
{
	char tmp[256];
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp-%d", name, (int)getpid()) >= (int)sizeof(tmp))
		return km_err_set(err, ENAMETOOLONG, "writing %s/%s", dir, name);
	int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return km_err_set(err, errno, "writing %s/%s: creating %s", dir, name, tmp);
	const char *step = "writing";
	int rc = write_all(fd, buf, len);
	if (rc == 0)
		rc = fsync(fd), step = "syncing";
	int e = errno;
	if (close(fd) != 0 && rc == 0)
		rc = -1, e = errno, step = "closing";
	if (rc == 0 && renameat(dfd, tmp, dfd, name) != 0)
		rc = -1, e = errno, step = "renaming";
	if (rc != 0) {
		unlinkat(dfd, tmp, 0);
		return km_err_set(err, e, "%s %s/%s (%s)", step, dir, name, tmp);
	}
	if (fsync(dfd) != 0)
		return km_err_set(err, errno, "syncing directory %s after writing %s", dir, name);
	return 0;
}

int oci_file_replace(const char *path, const void *buf, size_t len, mode_t mode, km_err_t **err)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash == NULL ? strdup(".") : slash == path ? strdup("/") : strndup(path, (size_t)(slash - path));
	if (dir == NULL)
		return km_err_set(err, ENOMEM, "writing %s", path);
	const char *name = slash == NULL ? path : slash + 1;
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc;
	if (dfd < 0)
		rc = km_err_set(err, errno, "writing %s: opening its directory %s", path, dir);
	else if (*name == '\0')
		rc = km_err_set(err, EISDIR, "writing %s", path);
	else
		rc = oci_file_replace_at(dfd, dir, name, buf, len, mode, err);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}
