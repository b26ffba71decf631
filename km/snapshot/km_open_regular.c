/* Opening a named regular file and nothing else: see km_open_regular.h. */
#include "km_open_regular.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_machine.h"

int km_open_regular(const char *path, bool *not_regular)
{
	*not_regular = false;
	int pfd = open(path, O_PATH | O_CLOEXEC);
	if (pfd < 0)
		return -1;
	struct stat st;
	if (fstat(pfd, &st) < 0) {
		int e = errno;
		close(pfd);
		errno = e;
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		close(pfd);
		*not_regular = true;
		errno = 0;
		return -1;
	}
	char self[40];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", pfd);
	int fd = km_fd_reserve(open(self, O_RDONLY | O_CLOEXEC | O_NOCTTY));
	int e = errno;
	close(pfd);
	errno = e;
	return fd;
}
