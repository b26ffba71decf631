/*
 * fork_mgmt SOCK (km only, procs_fork.sh): run as `km --mgmt=SOCK fork_mgmt SOCK`, the program
 * forks and its child connects to its parent km's management socket and asks for the status; it
 * prints the one reply line ("reply: ..."), which must be a refusal. Without SOCK: nothing to do.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static int ask(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(sa.sun_path))
		return printf("reply: (path too long)\n"), fflush(stdout), 1;
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return printf("reply: (cannot connect)\n"), fflush(stdout), 1;
	(void)!send(fd, "status\n", 7, MSG_NOSIGNAL); /* km may have hung up already */
	char buf[512];
	size_t n = 0;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	while (n < sizeof(buf) - 1 && poll(&p, 1, 10000) == 1) {
		ssize_t r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0);
		if (r <= 0)
			break;
		n += (size_t)r;
		if (memchr(buf, '\n', n) != NULL)
			break;
	}
	buf[n] = '\0';
	char *nl = strchr(buf, '\n');
	if (nl != NULL)
		*nl = '\0';
	printf("reply: %s\n", n > 0 ? buf : "(none)");
	fflush(stdout); /* the child ends with _exit */
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		printf("fork_mgmt: no socket named, nothing to do\n");
		return 0;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0)
		_exit(ask(argv[1]));
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return 1;
	return WEXITSTATUS(st);
}
