/* File writes that finish or say why not: see km_io.h. */
#include "km_io.h"

#include <errno.h>
#include <unistd.h>

int km_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* no progress and no reason: do not loop forever */
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}
