/* The container's pty and runc's console-socket protocol: see shim_console.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "shim_console.h"

int shim_console_connect(const char *path, km_err_t **err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path))
		return km_err_set(err, ENAMETOOLONG, "--console-socket %s", path);
	strcpy(sa.sun_path, path);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return km_err_set(err, errno, "--console-socket: socket");
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(s);
		return km_err_set(err, e, "--console-socket: connecting to %s", path);
	}
	return s;
}

int shim_console_send_fd(int sock, const char *name, int fd, km_err_t **err)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? km_err_set(err, errno, "--console-socket: sending the pty master") : 0;
}

int shim_console_setup(int sock, const oci_process_t *p, km_err_t **err)
{
	int rc = -1, slave = -1;
	int master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0) {
		km_err_set(err, errno, "process.terminal: opening /dev/ptmx (needs a devpts mount at /dev/pts)");
		goto out;
	}
	int unlock = 0, n;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0 || ioctl(master, TIOCGPTN, &n) < 0) {
		km_err_set(err, errno, "process.terminal: unlocking the pty");
		goto out;
	}
	if (p->has_console_size) {
		struct winsize ws = { .ws_row = (unsigned short)p->console_height, .ws_col = (unsigned short)p->console_width };
		if (ioctl(master, TIOCSWINSZ, &ws) < 0) {
			km_err_set(err, errno, "process.consoleSize");
			goto out;
		}
	}
	/* The peer is opened through the master, not by name: no path lookup in the container. */
	slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0) {
		km_err_set(err, errno, "process.terminal: opening the pty's slave");
		goto out;
	}
	char name[32];
	snprintf(name, sizeof(name), "/dev/pts/%d", n);
	if (shim_console_send_fd(sock, name, master, err) < 0)
		goto out;
	if (ioctl(slave, TIOCSCTTY, 0) < 0) {
		km_err_set(err, errno, "process.terminal: making the pty the controlling terminal");
		goto out;
	}
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0) {
			km_err_set(err, errno, "process.terminal: pty as fd %d", fd);
			goto out;
		}
	rc = 0;
out:
	if (slave >= 0)
		close(slave);
	if (master >= 0)
		close(master);
	close(sock);
	return rc;
}
