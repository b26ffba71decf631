/*
 * Blocks in read() on stdin (tests/e2e/snapshot.sh snapshots it there through km's management
 * socket): prints "waiting for a line on stdin", reads until a newline or end of file, prints
 * "got: LINE" or "got EOF after N bytes". A snapshot taken while it waits must restart the
 * read invisibly: the resumed program reads from the resuming km's stdin. An error from read
 * (EINTR included) is printed and exits 1.
 */
// E2E: run 0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	char buf[4096];
	size_t len = 0;
	ssize_t n;

	printf("waiting for a line on stdin\n");
	fflush(stdout);
	while (len < sizeof(buf) && !memchr(buf, '\n', len)) {
		n = read(0, buf + len, sizeof(buf) - len);
		if (n < 0) {
			printf("FAIL read: %s\n", strerror(errno));
			return 1;
		}
		if (n == 0) {
			printf("got EOF after %zu bytes\n", len);
			return 0;
		}
		len += (size_t)n;
	}
	printf("got: %.*s\n", (int)strcspn(buf, "\n"), buf);
	return 0;
}
