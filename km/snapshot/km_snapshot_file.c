/* Where a snapshot file goes and how it gets its name: atomically, never over anything but a
 * regular file (km_snapshot_writer.h). */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_snapshot_writer.h"


/* --- the file ----------------------------------------------------------------------------- */


#ifdef KM_TEST_HOOKS
/* The test build only (make test-km): KM_TEST_NO_TMPFILE set, the temporary file is named, as
 * on a filesystem without O_TMPFILE, so that a test can check no such name is left behind. */
static bool no_tmpfile(void)
{
	return getenv("KM_TEST_NO_TMPFILE") != NULL;
}
#else
static bool no_tmpfile(void)
{
	return false;
}
#endif

/* A file in the directory that has no name until it is complete (O_TMPFILE), or a hidden
 * temporary name where the filesystem cannot do that. */
int km_snap_open_temp(const place_t *pl, char *tmpname, size_t size)
{
	tmpname[0] = '\0';
	int fd = no_tmpfile() ? -1 : km_fd_reserve(openat(pl->dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
	if (fd >= 0)
		return fd;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	for (int attempt = 0; attempt < 100; attempt++) {
		snprintf(tmpname, size, ".kmsnap.tmp.%d.%lx.%d", (int)getpid(), (unsigned long)ts.tv_nsec, attempt);
		fd = km_fd_reserve(openat(pl->dfd, tmpname, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		tmpname[0] = '\0';
	return fd;
}


static const char *kind_name(mode_t m)
{
	if (S_ISSOCK(m))
		return "a unix socket";
	if (S_ISCHR(m))
		return "a character device";
	if (S_ISBLK(m))
		return "a block device";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISLNK(m))
		return "a symbolic link";
	return "not a regular file";
}

int km_snap_check_target(const place_t *pl, target_t *t, km_err_t **err)
{
	struct stat st;
	if (fstatat(pl->dfd, pl->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			return km_err_set(err, errno, "%s", pl->shown);
		*t = TARGET_NONE;
		return 0;
	}
	if (S_ISREG(st.st_mode)) {
		*t = TARGET_REGULAR;
		return 0;
	}
	km_err_set(err, 0, "%s: %s is there; a snapshot replaces only a regular file%s", pl->shown,
		   kind_name(st.st_mode),
		   S_ISLNK(st.st_mode) ? " (km does not replace or follow a link at the snapshot's name)" : "");
	if (err != NULL && *err != NULL) /* km_err_set leaves it NULL when it cannot allocate */
		(*err)->errnum = S_ISDIR(st.st_mode) ? EISDIR : EEXIST; /* what the hypercall returns */
	return -1;
}

/* Gives the finished temporary file the final name. Over nothing: renameat2(RENAME_NOREPLACE),
 * so a file that appeared meanwhile is never replaced; over a regular file: checked again
 * right before the rename, which replaces it atomically. */
int km_snap_publish(int fd, const char *tmpname, const place_t *pl, target_t was, km_err_t **err)
{
	char linkname[128];
	int dfd = pl->dfd;
	if (tmpname[0] == '\0') {
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/thread-self/fd/%d", fd); /* the writer may be the listener, which has an fd table of its own */
		bool linked = false;
		for (int attempt = 0; attempt < 100 && !linked; attempt++) {
			snprintf(linkname, sizeof(linkname), ".kmsnap.link.%d.%d", (int)getpid(), attempt);
			linked = linkat(AT_FDCWD, proc, dfd, linkname, AT_SYMLINK_FOLLOW) == 0;
			if (!linked && errno != EEXIST)
				return km_err_set(err, errno, "%s: giving the snapshot a name in its directory", pl->shown);
		}
		/* Every name taken: renaming the last one tried would publish somebody else's file. */
		if (!linked)
			return km_err_set(err, EEXIST, "%s: giving the snapshot a name in its directory", pl->shown);
		tmpname = linkname;
	}
	target_t now;
	int rc = km_snap_check_target(pl, &now, err);
	if (rc == 0 && was == TARGET_NONE) {
		rc = renameat2(dfd, tmpname, dfd, pl->name, RENAME_NOREPLACE);
		if (rc < 0 && errno == EINVAL) { /* a filesystem without it: link(2) never replaces either */
			rc = linkat(dfd, tmpname, dfd, pl->name, 0);
			if (rc == 0)
				unlinkat(dfd, tmpname, 0);
		}
		if (rc < 0)
			km_err_set(err, errno, errno == EEXIST ? "%s: a file appeared at the snapshot's name while it was "
								"being written; not replaced"
							      : "%s: giving the snapshot its name",
				   pl->shown);
	} else if (rc == 0 && renameat(dfd, tmpname, dfd, pl->name) < 0) {
		rc = km_err_set(err, errno, "%s: giving the snapshot its name", pl->shown);
	}
	if (rc < 0) {
		unlinkat(dfd, tmpname, 0);
		return -1;
	}
	int sfd = km_fd_reserve(openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	if (sfd >= 0) {
		fsync(sfd); /* the rename itself must survive a crash */
		close(sfd);
	}
	return 0;
}

/* The directory and name for req: the directory the caller gives (dir_fn), or the path's. */
int km_snap_find_place(const km_snapshot_req_t *req, place_t *pl, char **dcopy, km_err_t **err)
{
	pl->shown = req->path;
	if (req->dir_fn != NULL) {
		pl->name = req->path;
		pl->dfd = req->dir_fn(req->dir_arg);
		if (pl->dfd < 0)
			return km_err_set(err, -pl->dfd, "%s: the directory to write in", req->path);
		return 0;
	}
	char *d = strdup(req->path), *b = strdup(req->path);
	if (d == NULL || b == NULL) {
		free(d);
		free(b);
		return km_err_set(err, ENOMEM, "%s", req->path);
	}
	const char *base = basename(b); /* the POSIX one (libgen.h): "" never, "/" for "/" */
	size_t blen = strlen(base);
	memmove(b, base, blen + 1);
	*dcopy = b;
	const char *dir = dirname(d);
	pl->name = b;
	pl->dfd = km_fd_reserve(open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	int e = errno;
	if (pl->dfd < 0)
		km_err_set(err, e, "%s: creating the file in %s", req->path, dir);
	free(d);
	return pl->dfd < 0 ? -1 : 0;
}
