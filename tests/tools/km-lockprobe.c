/*
 * km-lockprobe FILE flock|posix|ofd r|w [START LEN]: tries, from a process of its own, whether a
 * lock of that type and mode on FILE (bytes START..START+LEN-1, LEN 0 = to the end; flock: the
 * whole file) would be granted, without taking it. Prints "free" and exits 0, or "held" (with
 * the holder's pid and type for POSIX and OFD locks as F_GETLK reports them) and exits 1; 2 on
 * a usage or system error. For tests/e2e/fd_files.sh: locks a resumed program must still hold.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 6) {
		fprintf(stderr, "usage: km-lockprobe FILE flock|posix|ofd r|w [START LEN]\n");
		return 2;
	}
	const char *type = argv[2];
	int wr = strcmp(argv[3], "w") == 0;
	int fd = open(argv[1], wr ? O_RDWR : O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "km-lockprobe: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (strcmp(type, "flock") == 0) {
		if (flock(fd, (wr ? LOCK_EX : LOCK_SH) | LOCK_NB) == 0) {
			printf("free\n");
			return 0;
		}
		if (errno != EWOULDBLOCK) {
			fprintf(stderr, "km-lockprobe: flock: %s\n", strerror(errno));
			return 2;
		}
		printf("held\n");
		return 1;
	}
	struct flock l = {.l_type = wr ? F_WRLCK : F_RDLCK, .l_whence = SEEK_SET};
	if (argc == 6) {
		l.l_start = strtoll(argv[4], NULL, 0);
		l.l_len = strtoll(argv[5], NULL, 0);
	}
	if (fcntl(fd, strcmp(type, "ofd") == 0 ? F_OFD_GETLK : F_GETLK, &l) < 0) {
		fprintf(stderr, "km-lockprobe: F_GETLK: %s\n", strerror(errno));
		return 2;
	}
	if (l.l_type == F_UNLCK) {
		printf("free\n");
		return 0;
	}
	printf("held by pid %d (%s lock on %lld+%lld)\n", (int)l.l_pid, l.l_type == F_WRLCK ? "write" : "read",
	       (long long)l.l_start, (long long)l.l_len);
	return 1;
}
