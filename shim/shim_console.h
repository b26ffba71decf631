/*
 * process.terminal: the pty of the container, runc's --console-socket protocol.
 *
 * km-shim connects to the console socket on the host (shim_console_connect, before the child
 * enters the container: the path is a host path). The child, after pivot_root (so the pty comes
 * from the container's own devpts instance at /dev/pts, reached through /dev/ptmx), opens the
 * master, unlocks it, sets process.consoleSize, sends the master over the socket in one message
 * whose data is the slave's name ("/dev/pts/0") and whose SCM_RIGHTS carries the fd, as runc
 * does (containerd's and conmon's receivers read exactly one fd), then makes the slave its
 * controlling terminal (it is a session leader by then) and its fds 0, 1 and 2.
 *
 * Without --console-socket, a foreground `run` or `restore` is its own receiver: the socket is one
 * end of a pair made by shim_container_spawn and shim_console_proxy relays the master to km-shim's
 * own stdin and stdout.
 */
#ifndef SHIM_CONSOLE_H
#define SHIM_CONSOLE_H

#include "km_error.h"
#include "oci_config.h"

/* A connected SOCK_STREAM unix socket to `path` (O_CLOEXEC), or -1 with *err. */
int shim_console_connect(const char *path, km_err_t **err);

/* In the child, a session leader inside the container: the protocol above over `sock`, which is
 * closed. */
int shim_console_setup(int sock, const oci_process_t *p, km_err_t **err);

/* Sends `fd` over unix socket `sock` with `name` as the message's data. */
int shim_console_send_fd(int sock, const char *name, int fd, km_err_t **err);

/* Receives one fd sent as shim_console_send_fd does (MSG_DONTWAIT: it must be there already);
 * it is made O_CLOEXEC. */
int shim_console_recv_fd(int sock, int *fd, km_err_t **err);

/* The pty proxy of a foreground `run`/`restore` with process.terminal and no --console-socket
 * (runc does the same): copies km-shim's stdin to `master` and `master` to its stdout until the
 * container's side of the pty is gone (EIO/HUP on the master). If stdin is a terminal it is put
 * in raw mode (restored before returning) and its window size is copied to the pty, again on
 * each SIGWINCH. EOF on stdin only stops that direction. */
int shim_console_proxy(int master, km_err_t **err);

#endif
