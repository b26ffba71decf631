/* Descriptors passed in: see km_passfd.h. */
#include "km_passfd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_snapshot_lease.h" /* KM_SIG_LEASE */
#include "km_sys_util.h"       /* KM_FD_RESERVED_BASE */
#include "km_vcpu.h"           /* KM_SIG_KICK */

static int accmode_ok(int fd, bool write)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fl & O_PATH))
		return 0;
	int acc = fl & O_ACCMODE;
	return write ? acc == O_WRONLY || acc == O_RDWR : acc == O_RDONLY || acc == O_RDWR;
}

static int sockopt(int fd, int opt)
{
	int v = -1;
	socklen_t len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, opt, &v, &len) < 0)
		return -1;
	return v;
}

/* Why fd is not what `kind` needs, or NULL. */
static const char *wrong_kind(int fd, km_passfd_kind_t kind)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return "cannot fstat it";
	switch (kind) {
	case KM_PASSFD_KVM:
		return S_ISCHR(st.st_mode) && accmode_ok(fd, true) && accmode_ok(fd, false)
			   ? NULL
			   : "not a character device open for reading and writing (the KVM device)";
	case KM_PASSFD_LISTENER:
		if (!S_ISSOCK(st.st_mode) || sockopt(fd, SO_DOMAIN) != AF_UNIX || sockopt(fd, SO_TYPE) != SOCK_STREAM)
			return "not a unix stream socket";
		return sockopt(fd, SO_ACCEPTCONN) == 1 ? NULL : "a unix stream socket that is not listening";
	case KM_PASSFD_WRITER:
		return accmode_ok(fd, true) ? NULL : "not open for writing";
	case KM_PASSFD_READER:
		return accmode_ok(fd, false) ? NULL : "not open for reading";
	case KM_PASSFD_REGULAR:
		return S_ISREG(st.st_mode) && accmode_ok(fd, false) ? NULL : "not a regular file open for reading";
	}
	return "unknown kind";
}

int km_passfd_take(int *fd, km_passfd_kind_t kind, const char *opt, km_err_t **err)
{
	int n = *fd;
	if (n < 0 || fcntl(n, F_GETFD) < 0)
		return km_err_set(err, 0, "%s=%d: fd %d is not open", opt, n, n);
	if (n == km_error_fd() && n != 2)
		return km_err_set(err, 0, "%s=%d: that is km's own copy of its stderr", opt, n);
	const char *why = wrong_kind(n, kind);
	if (why != NULL)
		return km_err_set(err, 0, "%s=%d: %s", opt, n, why);
	/* accept() must never block the management thread: it waits in poll() */
	if (kind == KM_PASSFD_LISTENER && fcntl(n, F_SETFL, fcntl(n, F_GETFL) | O_NONBLOCK) < 0)
		return km_err_set(err, errno, "%s=%d: making it non-blocking", opt, n);
	int high = n;
	if (n < KM_FD_RESERVED_BASE) {
		high = fcntl(n, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE);
		if (high < 0)
			return km_err_set(err, errno, "%s=%d: moving it out of the program's fd range", opt, n);
		close(n);
	} else if (fcntl(n, F_SETFD, FD_CLOEXEC) < 0) {
		return km_err_set(err, errno, "%s=%d", opt, n);
	}
	*fd = high;
	return 0;
}

int km_passfd_ready(int fd, km_err_t **err)
{
	static const char msg[] = "ready\n";
	ssize_t w;
	do
		w = write(fd, msg, sizeof(msg) - 1);
	while (w < 0 && errno == EINTR);
	int e = errno;
	close(fd);
	if (w != (ssize_t)sizeof(msg) - 1)
		return km_err_set(err, w < 0 ? e : 0, "--ready-fd: writing \"ready\"%s", w < 0 ? "" : ": short write");
	return 0;
}

/* One byte, or end of file; signals unblocked only while poll waits. */
static int wait_byte(int fd, const sigset_t *during, bool *go, km_err_t **err)
{
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (ppoll(&p, 1, NULL, during) < 0) {
			if (errno == EINTR)
				continue;
			return km_err_set(err, errno, "--start-fd: waiting");
		}
		char c;
		ssize_t r = read(fd, &c, 1);
		if (r == 1 || r == 0) {
			*go = r == 1;
			return 0;
		}
		if (errno != EINTR && errno != EAGAIN)
			return km_err_set(err, errno, "--start-fd: reading");
	}
}

int km_passfd_wait_start(int fd, bool *go, km_err_t **err)
{
	/* Everything km's main thread keeps blocked for the guest (km_signal_host_init) may end km
	 * now, with its default action: there is no program yet to give it to. No core of km. */
	sigset_t during;
	sigemptyset(&during);
	sigaddset(&during, KM_SIG_KICK);
	sigaddset(&during, KM_SIG_LEASE);
	struct rlimit core, none = {0, 0};
	bool restore = getrlimit(RLIMIT_CORE, &core) == 0;
	if (restore) {
		none.rlim_max = core.rlim_max;
		setrlimit(RLIMIT_CORE, &none);
	}
	int rc = wait_byte(fd, &during, go, err);
	if (restore)
		setrlimit(RLIMIT_CORE, &core);
	close(fd);
	return rc;
}
