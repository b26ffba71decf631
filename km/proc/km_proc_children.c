/* Whether the guest's process has child processes: see km_proc.h. */
#include <errno.h>
#include <string.h>
#include <sys/wait.h>

#include "km_proc.h"

int km_proc_has_children(km_guest_t *g, km_err_t **err)
{
	(void)g; /* the guest's children are km's: its process is the guest's */
	siginfo_t si;
	memset(&si, 0, sizeof(si));
	/* WNOWAIT: a child that ended stays waitable for the program. No __WALL: the program's
	 * children all have SIGCHLD as exit signal (km forks itself), and a live snapshot's writer
	 * (exit signal 0) is km's, not the program's. */
	if (waitid(P_ALL, 0, &si, WEXITED | WSTOPPED | WCONTINUED | WNOHANG | WNOWAIT) == 0)
		return 1; /* 0 with si_pid 0: children, none with news; si_pid set: one with news */
	if (errno == ECHILD)
		return 0;
	return km_err_set(err, errno, "asking the host for the program's child processes");
}
