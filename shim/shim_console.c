/* The container's pty and runc's console-socket protocol: see shim_console.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
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
	union { /* aligned for the cmsghdr inside */
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	memset(&cbuf, 0, sizeof(cbuf));
	struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
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

/* The spec: with a terminal, /dev/console is the pty, bound over it. An image's symlink there is
 * replaced (a bind would land on its target); a node or file is covered. Runs after pivot_root:
 * every path is the container's. */
static int bind_console(const char *pty, km_err_t **err)
{
	struct stat st;
	if (lstat("/dev/console", &st) == 0 && S_ISLNK(st.st_mode) && unlink("/dev/console") < 0)
		return km_err_set(err, errno, "process.terminal: removing the symlink /dev/console");
	if (mknod("/dev/console", S_IFREG | 0600, 0) < 0 && errno != EEXIST)
		return km_err_set(err, errno, "process.terminal: making /dev/console");
	if (mount(pty, "/dev/console", NULL, MS_BIND, NULL) < 0)
		return km_err_set(err, errno, "process.terminal: binding %s over /dev/console", pty);
	return 0;
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
	if (bind_console(name, err) < 0 || shim_console_send_fd(sock, name, master, err) < 0)
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

int shim_console_recv_fd(int sock, int *fd, km_err_t **err)
{
	union { /* aligned for the cmsghdr inside */
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cbuf;
	char name[64];
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.buf, .msg_controllen = sizeof(cbuf.buf) };
	ssize_t n;
	do
		n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return km_err_set(err, errno, "process.terminal: receiving the pty master");
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (cm == NULL || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return km_err_set(err, EPROTO, "process.terminal: no pty master from the container");
	memcpy(fd, CMSG_DATA(cm), sizeof(int));
	return 0;
}

/* ---- the foreground proxy ---- */

static volatile sig_atomic_t winch_seen;

static void on_winch(int sig)
{
	(void)sig;
	winch_seen = 1;
}

static void copy_winsize(int master)
{
	struct winsize ws;
	if (ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0)
		ioctl(master, TIOCSWINSZ, &ws);
}

/* Copies what `from` has to `to`; 0 on EOF (or EIO: a pty whose other side is closed), 1 if
 * something was copied, -1 with *err. A write error to `to` is an error too, except EPIPE when
 * *to_gone is given: a reader that went away sets it, and later data is read and dropped so
 * that the container never blocks on a full pty. */
static int relay(int from, int to, bool *to_gone, km_err_t **err)
{
	char buf[8192];
	ssize_t n = read(from, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 1;
	if (n == 0 || (n < 0 && errno == EIO))
		return 0;
	if (n < 0)
		return km_err_set(err, errno, "process.terminal: reading fd %d", from);
	for (ssize_t off = 0; off < n && !(to_gone != NULL && *to_gone);) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EPIPE && to_gone != NULL) {
			*to_gone = true;
			break;
		}
		if (w < 0)
			return km_err_set(err, errno, "process.terminal: writing fd %d", to);
		off += w;
	}
	return 1;
}

static int proxy_loop(int master, const sigset_t *waitmask, km_err_t **err)
{
	bool in_open = true, out_gone = false;
	for (;;) {
		if (winch_seen) {
			winch_seen = 0;
			copy_winsize(master);
		}
		struct pollfd pf[2] = { { .fd = master, .events = POLLIN }, { .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN } };
		if (ppoll(pf, 2, NULL, waitmask) < 0) {
			if (errno == EINTR)
				continue;
			return km_err_set(err, errno, "process.terminal: poll");
		}
		if (pf[0].revents) {
			int r = relay(master, STDOUT_FILENO, &out_gone, err);
			if (r <= 0)
				return r;
		}
		if (pf[1].revents) {
			int r = relay(STDIN_FILENO, master, NULL, err);
			if (r < 0)
				return r;
			in_open = r > 0;
		}
	}
}

/* tcsetattr that an interrupting (forwarded) signal does not make fail. */
static void restore_termios(const struct termios *saved)
{
	while (tcsetattr(STDIN_FILENO, TCSAFLUSH, saved) < 0 && errno == EINTR)
		;
}

int shim_console_proxy(int master, km_err_t **err)
{
	/* A caller's stdout that goes away (`| head`) must not kill km-shim: that would leave the
	 * terminal raw and lose km's exit status. EPIPE ends the output direction instead. */
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_pipe;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, &old_pipe);
	struct termios saved;
	bool raw = tcgetattr(STDIN_FILENO, &saved) == 0;
	if (raw) {
		struct termios t = saved;
		cfmakeraw(&t);
		tcsetattr(STDIN_FILENO, TCSANOW, &t);
		copy_winsize(master);
	}
	/* SIGWINCH is blocked except inside ppoll, so none is lost between the check and the wait.
	 * SIGHUP, SIGINT, SIGTERM and the others keep shim_wait_child's handler, which forwards
	 * them to km: km-shim goes on relaying until km ends and restores the terminal below. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGWINCH);
	sigprocmask(SIG_BLOCK, &block, &old);
	struct sigaction sa = { .sa_handler = on_winch }, old_sa;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGWINCH, &sa, &old_sa);
	sigset_t waitmask = old;
	sigdelset(&waitmask, SIGWINCH);
	int rc = proxy_loop(master, &waitmask, err);
	sigaction(SIGWINCH, &old_sa, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	if (raw)
		restore_termios(&saved);
	sigaction(SIGPIPE, &old_pipe, NULL);
	return rc;
}
