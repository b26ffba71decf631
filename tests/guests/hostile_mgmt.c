/*
 * Hostile guest: km's management socket is a file the program can name (its cwd and uid are
 * km's). A program that reached it could have km write a snapshot wherever km may write, or lie
 * to itself about km. km must refuse connections from the program it runs: the request is
 * answered "error denied" and nothing is written.
 *
 *   hostile_mgmt km TMPDIR     (km runs it with --mgmt=TMPDIR/km.sock)
 */
// HOSTILE-KM-ARGS: --mgmt=@TMP/km.sock
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"

/* Sends a request and reads km's answer (up to EOF or a line); "" if none came. */
static void ask(const char *sock, const char *req, char *reply, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	reply[0] = '\0';
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		return; /* not reachable at all: as good */
	}
	(void)!send(fd, req, strlen(req), MSG_NOSIGNAL);
	size_t len = 0;
	while (len + 1 < size) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) != 1)
			break;
		ssize_t r = recv(fd, reply + len, size - 1 - len, 0);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (memchr(reply, '\n', len) != NULL)
			break;
	}
	reply[len] = '\0';
	close(fd);
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "km") != 0) {
		printf("usage: hostile_mgmt km TMPDIR (under km with --mgmt=TMPDIR/km.sock)\n");
		return 2;
	}
	char sock[512], target[512], req[1100], reply[4096];
	snprintf(sock, sizeof(sock), "%s/km.sock", argv[2]);
	snprintf(target, sizeof(target), "%s/written-for-the-guest", argv[2]);
	struct stat st;
	CHECK(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode), "km's management socket is where the test put it");

	snprintf(req, sizeof(req), "snapshot path=%s mode=continue\n", target);
	ask(sock, req, reply, sizeof(reply));
	CHECK(reply[0] == '\0' || strncmp(reply, "error denied ", 13) == 0,
	      "a snapshot asked by the program itself is refused (reply '%.60s')", reply);
	CHECK(access(target, F_OK) != 0, "km wrote no file for the program");

	ask(sock, "status\n", reply, sizeof(reply));
	CHECK(strncmp(reply, "ok", 2) != 0, "status is not answered to the program (reply '%.60s')", reply);
	ask(sock, "snapshot path=x mode=stop\n", reply, sizeof(reply));
	CHECK(strncmp(reply, "ok", 2) != 0, "nor a stop-mode snapshot (reply '%.60s')", reply);
	return check_done();
}
