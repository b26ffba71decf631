/* Small file helpers: see shim_file.h. */
#include "shim_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int shim_write_file(const char *path, int oflags, const char *text, km_err_t **err)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC | oflags);
	if (fd < 0)
		return km_err_set(err, errno, "opening %s", path);
	ssize_t n = write(fd, text, strlen(text));
	int e = errno;
	close(fd);
	if (n >= 0)
		return 0;
	/* an id map is several lines: the file name is enough there */
	if (strchr(text, '\n'))
		return km_err_set(err, e, "writing %s", path);
	return km_err_set(err, e, "writing \"%s\" to %s", text, path);
}

int shim_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (!buf[0]) {
		errno = ENOENT;
		return -1;
	}
	for (char *q = buf + 1;; q++) {
		if (*q != '/' && *q != '\0')
			continue;
		char save = *q;
		*q = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -1;
		if (!save)
			return 0;
		*q = save;
	}
}
