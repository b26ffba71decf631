/*
 * km-listen: runs a command with a listening unix stream socket at a given fd, as km-shim hands
 * km its management socket (km --mgmt-fd=N). For tests.
 *
 *   km-listen SOCKET FD COMMAND [ARGS...]
 *
 * Binds SOCKET (removing a file there first), listens, puts the socket at FD (not close-on-exec)
 * and execs COMMAND. Exit status 2 if any of that fails.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: km-listen SOCKET FD COMMAND [ARGS...]\n");
		return 2;
	}
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "km-listen: socket path too long\n");
		return 2;
	}
	strcpy(sa.sun_path, argv[1]);
	int want = atoi(argv[2]);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	unlink(argv[1]);
	if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(s, 16) < 0) {
		fprintf(stderr, "km-listen: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (s != want && (dup2(s, want) < 0 || close(s) < 0)) {
		fprintf(stderr, "km-listen: dup2: %s\n", strerror(errno));
		return 2;
	}
	execvp(argv[3], &argv[3]);
	fprintf(stderr, "km-listen: %s: %s\n", argv[3], strerror(errno));
	return 2;
}
