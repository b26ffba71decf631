/* The door into the guest's fd table: see km_fd_admit.h. */
#include "km_fd_admit.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "km_procview.h"
#include "km_sys_util.h"

/* Room for a procfs name: "/proc/<pid>/task/<tid>/fdinfo/<fd>" and deeper net/ paths. */
#define REL_MAX 512

static long refuse(long fd, long err)
{
	close((int)fd);
	return err;
}

/* Replaces fd by km's answer for pv, keeping its close-on-exec flag. */
static long substitute(km_guest_t *g, long fd, const km_pv_t *pv)
{
	int fdflags = fcntl((int)fd, F_GETFD);
	int nfd = km_procview_open(g, pv);
	close((int)fd);
	if (nfd < 0)
		return nfd;
	if (!(fdflags & FD_CLOEXEC))
		fcntl(nfd, F_SETFD, 0);
	return km_fd_new(g, nfd);
}

long km_fd_admit(km_guest_t *g, long fd)
{
	if (fd < 0)
		return fd;
	if (fd >= km_fd_limit(g))
		return refuse(fd, -EMFILE);
	char buf[REL_MAX];
	const char *rel;
	if (!km_procview_rel((int)fd, buf, sizeof(buf), &rel))
		return fd;
	km_pv_t pv = km_procview_classify(g, rel);
	switch (pv.verdict) {
	case KM_PV_PASS:
		return fd;
	case KM_PV_HIDE:
		return refuse(fd, -ENOENT);
	case KM_PV_SYNTH: {
		int fl = fcntl((int)fd, F_GETFL);
		if (fl >= 0 && (fl & O_PATH))
			return fd; /* nothing to read through it; re-opening it comes back here */
		return substitute(g, fd, &pv);
	}
	default:
		return refuse(fd, -EACCES);
	}
}

/* The verdict for the procfs entry open as O_PATH fd `o`, or PASS if it is not on procfs. */
static km_pv_verdict_t opath_verdict(km_guest_t *g, int o)
{
	char buf[REL_MAX];
	const char *rel;
	if (!km_procview_rel(o, buf, sizeof(buf), &rel))
		return KM_PV_PASS;
	return km_procview_classify(g, rel).verdict;
}

static long verdict_err(km_pv_verdict_t v)
{
	return v == KM_PV_HIDE ? -ENOENT : v == KM_PV_DENY ? -EACCES : 0;
}

long km_path_admit(km_guest_t *g, int dirfd, const char *path, bool follow)
{
	if (path == NULL || path[0] == '\0')
		return 0; /* AT_EMPTY_PATH: the call is about dirfd, which is already the guest's */
	struct stat st;
	/* Files on block devices are never procfs: one lstat decides for most paths (not for a
	 * symlink the call follows: it may lead into /proc). */
	if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) < 0)
		return 0; /* the real call reports its own error */
	if (major(st.st_dev) != 0 && !(follow && S_ISLNK(st.st_mode)))
		return 0;
	int o = openat(dirfd, path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (o < 0)
		return 0;
	km_pv_verdict_t v = opath_verdict(g, o);
	bool link = fstat(o, &st) == 0 && S_ISLNK(st.st_mode);
	close(o);
	if (v == KM_PV_HIDE || v == KM_PV_DENY || !follow || !link)
		return verdict_err(v);
	/* A procfs link the guest may see (fd/3, cwd, exe...): what it leads to is judged too. */
	o = openat(dirfd, path, O_PATH | O_CLOEXEC);
	if (o < 0)
		return 0;
	v = opath_verdict(g, o);
	close(o);
	return verdict_err(v);
}
