/*
 * Kinds "file", "dir" and "device" of the fd table (km_fdtab.h): an open file whose path still
 * names it, reopened by that path at resume as the guest could open it (km_fd_admit.h), checked
 * to be the same file, moved to its offset, its locks re-taken (km_fd_locks.h). The three share
 * one record layout (docs/snapshot-files.md, "Kind 2-5"); what is checked differs:
 *   file    regular file: size and mtime equal (a file open O_APPEND for writing may have grown)
 *   dir     directory: only that it is one (its contents change freely)
 *   device  character or block device: same rdev
 * A different st_dev/st_ino alone is accepted: a copied container image or another host has the
 * same files under other numbers.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_fd_locks.h"
#include "km_fdtab.h"
#include "km_sys_util.h"


/* Status flags a reopen carries over; creation flags never (O_CREAT, O_TRUNC, O_EXCL,
 * O_TMPFILE), nor O_NOFOLLOW: the saved path was already resolved. */
#define REOPEN_FLAGS (O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC | O_PATH)

typedef struct pathrec {
	const char *path;
	uint64_t dev, ino, rdev, size, mtime_sec;
	uint32_t mtime_nsec, mode;
	km_fdlocks_t locks;
} pathrec_t;

/* --- matching ------------------------------------------------------------------------------- */

/* A path that still names the file (not deleted, not a memfd): the probe's link. */
static bool named(const km_fdprobe_t *p)
{
	return p->link[0] == '/' && !km_link_deleted(p->link) && strncmp(p->link, "/memfd:", 7) != 0;
}

static bool file_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return S_ISREG(p->st.st_mode) && p->st.st_nlink > 0 && named(p);
}

static bool dir_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return S_ISDIR(p->st.st_mode) && named(p);
}

static bool device_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return (S_ISCHR(p->st.st_mode) || S_ISBLK(p->st.st_mode)) && named(p);
}

/* --- saving --------------------------------------------------------------------------------- */

static int path_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	(void)sv;
	km_rec_put_str(rec, p->link);
	km_rec_put_u64(rec, p->st.st_dev);
	km_rec_put_u64(rec, p->st.st_ino);
	km_rec_put_u64(rec, p->st.st_rdev);
	km_rec_put_u64(rec, (uint64_t)p->st.st_size);
	km_rec_put_u64(rec, (uint64_t)p->st.st_mtim.tv_sec);
	km_rec_put_u32(rec, (uint32_t)p->st.st_mtim.tv_nsec);
	km_rec_put_u32(rec, p->st.st_mode);
	return km_fdlocks_save(p->fdinfo, rec, err);
}

/* --- reading a record ----------------------------------------------------------------------- */

/* Parses r's record into pr (locks malloc'd: km_fdlocks_free). False if it is bad. */
static bool path_get(const km_fdrec_t *r, pathrec_t *pr)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	memset(pr, 0, sizeof(*pr));
	pr->path = km_rec_get_str(&rec, KM_PATH_MAX);
	pr->dev = km_rec_get_u64(&rec);
	pr->ino = km_rec_get_u64(&rec);
	pr->rdev = km_rec_get_u64(&rec);
	pr->size = km_rec_get_u64(&rec);
	pr->mtime_sec = km_rec_get_u64(&rec);
	pr->mtime_nsec = km_rec_get_u32(&rec);
	pr->mode = km_rec_get_u32(&rec);
	km_fdlocks_get(&rec, &pr->locks);
	if (km_rec_done(&rec) && pr->path[0] == '/' && pr->size <= INT64_MAX && pr->mtime_nsec < 1000000000u)
		return true;
	km_fdlocks_free(&pr->locks);
	return false;
}

/* --- restoring ------------------------------------------------------------------------------ */

/* Opens path with flags exactly as the guest's open would be let through (km_sys_file.c): the
 * name judged first, then the file it opened. A host fd or -errno. */
static long open_as_guest(km_guest_t *g, const char *path, int flags)
{
	long rc = km_path_admit(g, AT_FDCWD, path, false);
	if (rc < 0)
		return rc;
	return km_fd_admit(g, km_fd_new(g, km_host_ret(open(path, flags, 0))));
}

/* The open flags that rebuild a description with saved F_GETFL oflags; -1 if they are not
 * possible (access mode 3). */
static int reopen_flags(uint32_t oflags, int extra)
{
	int acc = (int)(oflags & O_ACCMODE);
	if (oflags & O_PATH)
		return O_PATH | O_CLOEXEC | (extra & O_DIRECTORY);
	if (acc == O_ACCMODE)
		return -1;
	return acc | (int)(oflags & REOPEN_FLAGS) | O_CLOEXEC | O_NOCTTY | extra;
}

/* What differs between the file now (st) and at the snapshot, for kind `kind`, into why; true
 * if it is the same file as far as that kind cares. */
static bool same_file(uint32_t kind, const pathrec_t *pr, uint32_t oflags, const struct stat *st, char *why,
		      size_t len)
{
	if ((st->st_mode & S_IFMT) != (pr->mode & S_IFMT)) {
		snprintf(why, len, "%s is no longer the same type of file (mode %#o, was %#o)", pr->path,
			 (unsigned)(st->st_mode & S_IFMT), (unsigned)(pr->mode & S_IFMT));
		return false;
	}
	if (kind == KM_FDK_DEVICE && st->st_rdev != pr->rdev) {
		snprintf(why, len, "%s is another device now (%u:%u, was %u:%u)", pr->path, major(st->st_rdev),
			 minor(st->st_rdev), major(pr->rdev), minor(pr->rdev));
		return false;
	}
	if (kind != KM_FDK_FILE)
		return true;
	uint64_t size = (uint64_t)st->st_size;
	bool appending = (oflags & O_APPEND) && (oflags & O_ACCMODE) != O_RDONLY && !(oflags & O_PATH);
	if (size == pr->size && (uint64_t)st->st_mtim.tv_sec == pr->mtime_sec &&
	    (uint32_t)st->st_mtim.tv_nsec == pr->mtime_nsec)
		return true;
	if (appending && size > pr->size)
		return true; /* a log the program kept appending to grew meanwhile */
	if (size != pr->size)
		snprintf(why, len, "%s changed since the snapshot (size %lu, was %lu)", pr->path, (unsigned long)size,
			 (unsigned long)pr->size);
	else
		snprintf(why, len, "%s changed since the snapshot (modified at %ld.%09ld, was %lu.%09u)", pr->path,
			 (long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec, (unsigned long)pr->mtime_sec,
			 pr->mtime_nsec);
	return false;
}

static int path_restore_as(km_fdrest_t *rs, const km_fdrec_t *r, uint32_t kind, km_err_t **err)
{
	pathrec_t pr;
	if (!path_get(r, &pr))
		return km_err_set(err, 0, "corrupt record");
	int flags = reopen_flags(r->oflags, kind == KM_FDK_DIR ? O_DIRECTORY : 0);
	int fd = -1;
	char why[KM_PATH_MAX + 128];
	struct stat st;
	if (flags < 0) {
		km_err_set(err, 0, "corrupt record: access mode 3");
		goto out;
	}
	long f = open_as_guest(km_fdrest_guest(rs), pr.path, flags);
	if (f < 0) {
		km_err_set(err, (int)-f, "%s", pr.path);
		goto out;
	}
	fd = (int)f;
	if (fstat(fd, &st) < 0) {
		km_err_set(err, errno, "%s", pr.path);
		goto fail;
	}
	if (!same_file(kind, &pr, r->oflags, &st, why, sizeof(why))) {
		km_err_set(err, 0, "%s", why);
		goto fail;
	}
	if (r->pos != 0 && (r->pos > INT64_MAX || lseek(fd, (off_t)r->pos, SEEK_SET) < 0)) {
		km_err_set(err, r->pos > INT64_MAX ? 0 : errno, "%s: moving to offset %lu", pr.path,
			   (unsigned long)r->pos);
		goto fail;
	}
	if (km_fdlocks_restore(rs, r, fd, &pr.locks, err) < 0)
		goto fail;
	goto out;
fail:
	close(fd);
	fd = -1;
out:
	km_fdlocks_free(&pr.locks);
	return fd;
}

static int file_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	return path_restore_as(rs, r, KM_FDK_FILE, err);
}

static int dir_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	return path_restore_as(rs, r, KM_FDK_DIR, err);
}

static int device_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	return path_restore_as(rs, r, KM_FDK_DEVICE, err);
}

/* --- --inspect ------------------------------------------------------------------------------ */

static void path_describe(const km_fdrec_t *r, km_buf_t *out)
{
	pathrec_t pr;
	if (!path_get(r, &pr)) {
		km_buf_printf(out, "(corrupt record)");
		return;
	}
	km_buf_printf(out, "%s", pr.path);
	if (r->kind == KM_FDK_FILE)
		km_buf_printf(out, " size=%lu", (unsigned long)pr.size);
	else if (r->kind == KM_FDK_DEVICE)
		km_buf_printf(out, " %s %u:%u", S_ISBLK(pr.mode) ? "block" : "char", major(pr.rdev), minor(pr.rdev));
	km_fdlocks_describe(&pr.locks, out);
	km_fdlocks_free(&pr.locks);
}

const km_fdkind_t km_fdkind_file = {
    .kind = KM_FDK_FILE,
    .name = "file",
    .match = file_match,
    .save = path_save,
    .restore = file_restore,
    .describe = path_describe,
};

const km_fdkind_t km_fdkind_dir = {
    .kind = KM_FDK_DIR,
    .name = "dir",
    .match = dir_match,
    .save = path_save,
    .restore = dir_restore,
    .describe = path_describe,
};

const km_fdkind_t km_fdkind_device = {
    .kind = KM_FDK_DEVICE,
    .name = "device",
    .match = device_match,
    .save = path_save,
    .restore = device_restore,
    .describe = path_describe,
};
