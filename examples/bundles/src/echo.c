/* echo: a TCP echo server on 127.0.0.1:PORT (default 7777) in the container's own network
 * namespace. It serves one connection at a time, sends back every byte it reads, and prints one
 * line per connection. It does not bring the loopback interface up itself (that needs
 * CAP_NET_ADMIN and an ioctl km does not forward): in a fresh network namespace lo is down, and
 * as under runc it is the caller's job (CNI's loopback plugin, or the bundle's createRuntime hook;
 * see ../README.md). Binding works while lo is down; connecting needs it up. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int listen_on(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);

	if (s < 0) {
		perror("echo: socket");
		return -1;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 8) < 0) {
		perror("echo: bind/listen on 127.0.0.1");
		close(s);
		return -1;
	}
	return s;
}

/* Copies everything the peer sends back to it until it closes; returns the byte count. */
static long serve(int c)
{
	char buf[4096];
	long total = 0;
	ssize_t n;

	while ((n = read(c, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(c, buf + off, n - off);
			if (w <= 0)
				return total;
			off += w;
		}
		total += n;
	}
	return total;
}

int main(int argc, char **argv)
{
	int port = argc > 1 ? atoi(argv[1]) : 7777;
	int s = listen_on(port);

	if (s < 0)
		return 1;
	printf("echo: listening on 127.0.0.1:%d\n", port);
	fflush(stdout);
	for (unsigned long n = 1;; n++) {
		int c = accept(s, NULL, NULL);
		if (c < 0) {
			perror("echo: accept");
			return 1;
		}
		long bytes = serve(c);
		close(c);
		printf("echo: connection %lu: %ld bytes echoed\n", n, bytes);
		fflush(stdout);
	}
}
