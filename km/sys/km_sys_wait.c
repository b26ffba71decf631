/* wait4 and waitid: the host's, since a guest's child process is a host child of its km (each
 * guest process is one km process). Pids are the host's, which are the children's own getpid(). */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_syscall.h"

#define MM(v) (&(v)->g->mm)

/* What Linux accepts (kernel_wait4, kernel_waitid); anything else is EINVAL there, and here. */
#define WAIT4_OPTS (WNOHANG | WUNTRACED | WCONTINUED | __WNOTHREAD | __WCLONE | __WALL)
#define WAITID_OPTS (WNOHANG | WEXITED | WSTOPPED | WCONTINUED | WNOWAIT | __WNOTHREAD | __WCLONE | __WALL)

/* Copies out what the host gave: only addresses the guest passed (0: not wanted). As Linux, a child
 * reaped before an address turns out bad is still reaped (EFAULT then). */
static long copy_out(km_vcpu_t *v, uint64_t gva, const void *src, size_t len)
{
	if (gva == 0)
		return 0;
	return km_copy_to_guest(MM(v), gva, src, len) < 0 ? -EFAULT : 0;
}

/* The program's children are km's forks, all with SIGCHLD as exit signal; km's only "clone"
 * children (exit signal 0) are live snapshots' writers (km_snapshot_live.h), which are not the
 * program's to wait for or reap. So __WALL means nothing more than no flag, and __WCLONE alone
 * finds no child, as on Linux for a process without clone children. Returns the options to pass
 * to the host, or -ECHILD. */
static int own_children_only(int options)
{
	if ((options & __WCLONE) && !(options & __WALL))
		return -ECHILD;
	return options & ~(__WALL | __WCLONE);
}

KM_SYSCALL(wait4)
{
	pid_t pid = (pid_t)a[0];
	int options = (int)a[2];
	if (options & ~WAIT4_OPTS)
		return -EINVAL;
	if ((options = own_children_only(options)) < 0)
		return options;
	int status = 0;
	struct rusage ru;
	memset(&ru, 0, sizeof(ru));
	long r = syscall(SYS_wait4, pid, &status, options, a[3] != 0 ? &ru : NULL);
	if (r < 0)
		return -errno;
	if (r > 0 && (copy_out(v, a[1], &status, sizeof(status)) < 0 || copy_out(v, a[3], &ru, sizeof(ru)) < 0))
		return -EFAULT;
	return r;
}

KM_SYSCALL(waitid)
{
	int idtype = (int)a[0];
	int options = (int)a[3];
	if (options & ~WAITID_OPTS)
		return -EINVAL;
	if ((options = own_children_only(options)) < 0)
		return options;
	siginfo_t si;
	struct rusage ru;
	memset(&si, 0, sizeof(si));
	memset(&ru, 0, sizeof(ru));
	/* P_PIDFD's id is a guest fd, which is km's own fd of the same number. */
	long r = syscall(SYS_waitid, idtype, (id_t)a[1], &si, options, a[4] != 0 ? &ru : NULL);
	if (r < 0)
		return -errno;
	/* WNOHANG with no child ready: Linux clears the siginfo's pid and signo; the host did the
	 * same to ours, and the guest's is written whole either way. */
	if (copy_out(v, a[2], &si, sizeof(si)) < 0 || copy_out(v, a[4], &ru, sizeof(ru)) < 0)
		return -EFAULT;
	return r;
}

const km_sys_def_t km_sys_wait_defs[] = {
    {SYS_wait4, "wait4", sys_wait4, "dpxp"},
    {SYS_waitid, "waitid", sys_waitid, "ddpxp"},
    {0, NULL, NULL, NULL},
};
