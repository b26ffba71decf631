/*
 * Kind "datafile" of the fd table (km_fdtab.h): a regular file no path names any more, whose
 * contents therefore travel in the snapshot (blobs, at most --snapshot-file-max bytes of data):
 *   deleted  unlinked while open ("/dir/name (deleted)")
 *   tmpfile  made with O_TMPFILE ("/dir/#INO (deleted)")
 *   memfd    memfd_create ("/memfd:NAME (deleted)"), with its seals
 * Only the data extents are carried (SEEK_DATA/SEEK_HOLE; at most MAX_EXTENTS, the last one
 * taking in the rest), so a sparse file is not blown up beyond its size.
 *
 * At resume a deleted file is re-created in its directory if that exists (a fresh name made
 * O_CREAT|O_EXCL, filled, unlinked: a deleted file on the same filesystem again), an O_TMPFILE
 * there with O_TMPFILE; failing that as an O_TMPFILE in /tmp, failing that as a memfd. A memfd
 * is a memfd of the same name, its seals applied once it is filled. Descriptions that shared one
 * file at save share one again (the first carries the contents; km_fdsave_first/stash).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_fd_locks.h"
#include "km_fdtab.h"
#include "km_guest.h"
#include "km_sys_util.h"

#define DELETED " (deleted)"
#define MEMFD_PREFIX "/memfd:"
#define MEMFD_NAME_MAX 249 /* NAME_MAX less "memfd:" */
#define MAX_EXTENTS 8      /* the core's bound on blobs per description */
#define FLAG_SHARED 1u     /* the contents are an earlier record's (same key) */
#define REOPEN_FLAGS (O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC)
#define F_SEAL_EXEC_ 0x20 /* F_SEAL_EXEC, Linux 6.3 */
#define KNOWN_SEALS (F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_FUTURE_WRITE | F_SEAL_EXEC_)

enum { DF_DELETED = 1, DF_TMPFILE = 2, DF_MEMFD = 3 };

typedef struct extent {
	uint64_t off, len, blob;
} extent_t;

typedef struct datarec {
	uint32_t what;
	const char *name; /* deleted: the path it had; tmpfile: its directory; memfd: the name */
	uint32_t mode;    /* permission bits */
	uint64_t size;
	uint32_t seals, flags;
	uint64_t key;
	uint64_t dev, ino; /* the file's identity at save (memory may map it: km_fdtab.h) */
	uint32_t nextents;
	extent_t ext[MAX_EXTENTS];
	km_fdlocks_t locks;
} datarec_t;

/* --- matching ------------------------------------------------------------------------------- */

static bool datafile_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return S_ISREG(p->st.st_mode) && p->link[0] == '/' &&
	       (p->st.st_nlink == 0 || km_link_deleted(p->link) || strncmp(p->link, MEMFD_PREFIX, 7) == 0);
}

/* --- saving --------------------------------------------------------------------------------- */

/* The link without " (deleted)", in buf. */
static void strip_deleted(const char *link, char *buf, size_t len)
{
	snprintf(buf, len, "%s", link);
	if (km_link_deleted(buf))
		buf[strlen(buf) - strlen(DELETED)] = '\0';
}

/* O_TMPFILE names its file "#INO" in the directory it was made in. */
static bool is_tmpfile(const char *path, ino_t ino)
{
	const char *base = strrchr(path, '/');
	char want[32];
	snprintf(want, sizeof(want), "#%lu", (unsigned long)ino);
	return base != NULL && strcmp(base + 1, want) == 0;
}

static uint64_t inode_key(const struct stat *st)
{
	return (uint64_t)st->st_ino ^ ((uint64_t)st->st_dev * 0x9E3779B97F4A7C15ull);
}

/* Where the data of fd ends from `at` on: the start of the hole after its last data. */
static uint64_t data_end(int fd, uint64_t at, uint64_t size)
{
	uint64_t end = at;
	for (;;) {
		off_t d = lseek(fd, (off_t)at, SEEK_DATA);
		if (d < 0 || (uint64_t)d >= size)
			return end;
		off_t h = lseek(fd, d, SEEK_HOLE);
		end = h < 0 || (uint64_t)h > size ? size : (uint64_t)h;
		if (end <= (uint64_t)d)
			return size;
		at = end;
	}
}

/* The data extents of fd (size bytes) into e; returns how many. Past MAX_EXTENTS - 1 the last
 * one takes in the rest up to the last data byte, holes included. Without SEEK_DATA it is all
 * data. */
static uint32_t find_extents(int fd, uint64_t size, extent_t *e)
{
	uint32_t n = 0;
	uint64_t at = 0;
	while (at < size) {
		off_t d = lseek(fd, (off_t)at, SEEK_DATA);
		uint64_t from, to;
		if (d < 0 && errno == ENXIO)
			break;
		if (d < 0) {
			from = at;
			to = size;
		} else {
			off_t h = lseek(fd, d, SEEK_HOLE);
			from = (uint64_t)d;
			to = h < 0 || (uint64_t)h > size ? size : (uint64_t)h;
		}
		if (from >= size)
			break;
		if (to <= from)
			to = size;
		if (n == MAX_EXTENTS - 1) {
			uint64_t last = data_end(fd, to, size);
			to = last > to ? last : to;
		}
		e[n++] = (extent_t){from, to - from, 0};
		at = to;
		if (n == MAX_EXTENTS)
			break;
	}
	return n;
}

static uint64_t data_bytes(const extent_t *e, uint32_t n)
{
	uint64_t sum = 0;
	for (uint32_t i = 0; i < n; i++)
		sum += e[i].len;
	return sum;
}

/* The extents' data, from rd, into in-memory blobs. */
static int blobs_in_memory(km_fdsave_t *sv, int rd, extent_t *e, uint32_t n, km_err_t **err)
{
	for (uint32_t i = 0; i < n; i++) {
		void *buf = malloc(e[i].len);
		if (buf == NULL)
			return km_err_set(err, ENOMEM, "copying its contents");
		for (uint64_t done = 0; done < e[i].len;) {
			ssize_t r = pread(rd, (char *)buf + done, e[i].len - done, (off_t)(e[i].off + done));
			if (r <= 0) {
				free(buf);
				return km_err_set(err, r < 0 ? errno : EIO, "reading its contents");
			}
			done += (uint64_t)r;
		}
		int64_t b = km_fdsave_blob_mem(sv, buf, e[i].len, err);
		if (b < 0)
			return -1;
		e[i].blob = (uint64_t)b;
	}
	return 0;
}

/*
 * Puts the data extents in blobs, read through a new description (its offset and SEEK_DATA are
 * not the guest's) that the blobs copy when the file is written. Closing any fd of a file drops
 * the process's POSIX locks on it, though: a file with such locks is read through the guest's
 * own fd (its offset put back) into memory instead.
 */
static int save_contents(km_fdsave_t *sv, const km_fdprobe_t *p, extent_t *e, uint32_t *n, km_err_t **err)
{
	uint64_t size = (uint64_t)p->st.st_size, max = km_fdsave_file_max(sv);
	bool locked = km_fdlocks_posix_held(p->st.st_dev, p->st.st_ino);
	int rd = p->fd;
	off_t pos = -1;
	if (!locked) {
		if ((rd = km_fd_reserve(km_fd_reopen(p->fd, O_RDONLY))) < 0)
			return km_err_set(err, errno, "reopening it to read its contents");
	} else if ((p->oflags & O_PATH) || (p->oflags & O_ACCMODE) == O_WRONLY) {
		return km_err_set(err, 0, "its contents cannot be read without dropping the program's POSIX locks "
					  "on it (it is open write-only)");
	} else {
		pos = lseek(p->fd, 0, SEEK_CUR);
	}
	*n = find_extents(rd, size, e);
	if (pos >= 0)
		lseek(p->fd, pos, SEEK_SET);
	int rc = 0;
	uint64_t bytes = data_bytes(e, *n);
	if (bytes > max)
		rc = km_err_set(err, 0, "%s holds %lu bytes, more than --snapshot-file-max allows (%lu)", p->link,
				(unsigned long)bytes, (unsigned long)max);
	else if (locked)
		rc = blobs_in_memory(sv, rd, e, *n, err);
	for (uint32_t i = 0; !locked && rc == 0 && i < *n; i++) {
		int64_t b = km_fdsave_blob_file(sv, rd, e[i].off, e[i].len, err);
		rc = b < 0 ? -1 : 0;
		e[i].blob = (uint64_t)b;
	}
	if (!locked)
		close(rd);
	return rc;
}

static int datafile_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	char name[4096];
	strip_deleted(p->link, name, sizeof(name));
	uint32_t what = strncmp(name, MEMFD_PREFIX, 7) == 0 ? DF_MEMFD
			: is_tmpfile(name, p->st.st_ino)    ? DF_TMPFILE
							    : DF_DELETED;
	const char *nm = name;
	if (what == DF_MEMFD)
		nm = name + strlen(MEMFD_PREFIX);
	else if (what == DF_TMPFILE)
		*strrchr(name, '/') = '\0'; /* its directory ("" for the root: "/" below) */
	uint64_t key = inode_key(&p->st);
	bool first = km_fdsave_first(sv, KM_FDK_DATAFILE, key);
	extent_t e[MAX_EXTENTS];
	uint32_t n = 0;
	if (first && save_contents(sv, p, e, &n, err) < 0)
		return -1;
	int seals = fcntl(p->fd, F_GET_SEALS);
	km_rec_put_u32(rec, what);
	km_rec_put_str(rec, what == DF_TMPFILE && name[0] == '\0' ? "/" : nm);
	km_rec_put_u32(rec, p->st.st_mode & 07777);
	km_rec_put_u64(rec, (uint64_t)p->st.st_size);
	km_rec_put_u32(rec, seals < 0 ? 0 : (uint32_t)seals);
	km_rec_put_u32(rec, first ? 0 : FLAG_SHARED);
	km_rec_put_u64(rec, key);
	km_rec_put_u64(rec, p->st.st_dev);
	km_rec_put_u64(rec, p->st.st_ino);
	km_rec_put_u32(rec, n);
	for (uint32_t i = 0; i < n; i++) {
		km_rec_put_u64(rec, e[i].off);
		km_rec_put_u64(rec, e[i].len);
		km_rec_put_u64(rec, e[i].blob);
	}
	return km_fdlocks_save(p->fdinfo, rec, err);
}

/* --- reading a record ----------------------------------------------------------------------- */

static bool extents_ok(const datarec_t *d)
{
	uint64_t end = 0;
	for (uint32_t i = 0; i < d->nextents; i++) {
		const extent_t *e = &d->ext[i];
		if (e->off < end || e->len == 0 || e->off > d->size || e->len > d->size - e->off)
			return false;
		end = e->off + e->len;
	}
	return true;
}

static bool name_ok(const datarec_t *d)
{
	if (d->what == DF_MEMFD)
		return strlen(d->name) <= MEMFD_NAME_MAX && strchr(d->name, '/') == NULL;
	return d->name[0] == '/';
}

/* Parses r's record into d (locks malloc'd: km_fdlocks_free). False if it is bad. */
static bool data_get(const km_fdrec_t *r, datarec_t *d)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	memset(d, 0, sizeof(*d));
	d->what = km_rec_get_u32(&rec);
	d->name = km_rec_get_str(&rec, KM_PATH_MAX);
	d->mode = km_rec_get_u32(&rec);
	d->size = km_rec_get_u64(&rec);
	d->seals = km_rec_get_u32(&rec);
	d->flags = km_rec_get_u32(&rec);
	d->key = km_rec_get_u64(&rec);
	d->dev = km_rec_get_u64(&rec);
	d->ino = km_rec_get_u64(&rec);
	d->nextents = km_rec_get_u32(&rec);
	if (rec.bad || d->nextents > MAX_EXTENTS || ((d->flags & FLAG_SHARED) && d->nextents != 0))
		return false;
	for (uint32_t i = 0; i < d->nextents; i++) {
		d->ext[i].off = km_rec_get_u64(&rec);
		d->ext[i].len = km_rec_get_u64(&rec);
		d->ext[i].blob = km_rec_get_u64(&rec);
	}
	km_fdlocks_get(&rec, &d->locks);
	if (km_rec_done(&rec) && d->what >= DF_DELETED && d->what <= DF_MEMFD && name_ok(d) &&
	    (d->mode & ~07777u) == 0 && d->size <= INT64_MAX && (d->seals & ~(uint32_t)KNOWN_SEALS) == 0 &&
	    (d->flags & ~FLAG_SHARED) == 0 && extents_ok(d))
		return true;
	km_fdlocks_free(&d->locks);
	return false;
}

/* --- restoring ------------------------------------------------------------------------------ */

/* An fd the guest could have made by path (km_fd_admit.h), or -1 with errno. */
static int admitted(km_guest_t *g, int fd)
{
	if (fd < 0)
		return -1;
	long r = km_fd_admit(g, km_fd_new(g, fd));
	if (r < 0) {
		errno = (int)-r;
		return -1;
	}
	return (int)r;
}

/* A deleted file in dir: a fresh name made O_CREAT|O_EXCL and unlinked again. -1 with errno. */
static int deleted_in(km_guest_t *g, const char *dir)
{
	char path[KM_PATH_MAX + 64];
	static unsigned seq;
	for (int tries = 0; tries < 16; tries++) {
		int n = snprintf(path, sizeof(path), "%s/.km-restore-%d-%u", strcmp(dir, "/") == 0 ? "" : dir, getpid(),
				 seq++);
		if (n < 0 || (size_t)n >= sizeof(path)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0)
			return -1;
		struct stat a, b;
		/* unlink only the name that is still ours */
		if (fstat(fd, &a) == 0 && lstat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			unlink(path);
		return admitted(g, fd);
	}
	errno = EEXIST;
	return -1;
}

static int tmpfile_in(km_guest_t *g, const char *dir)
{
	return admitted(g, open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
}

/* Where a deleted or O_TMPFILE file goes (see the header): an O_RDWR fd, or -1 with *err. */
static int make_unnamed(km_guest_t *g, const datarec_t *d, km_err_t **err)
{
	char dir[KM_PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", d->name);
	if (d->what == DF_DELETED) {
		char *slash = strrchr(dir, '/');
		slash[slash == dir ? 1 : 0] = '\0';
	}
	struct stat st;
	int fd = -1;
	if (km_path_admit(g, AT_FDCWD, dir, true) == 0 && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (d->what == DF_TMPFILE)
			fd = tmpfile_in(g, dir);
		if (fd < 0)
			fd = deleted_in(g, dir);
	}
	if (fd < 0)
		fd = tmpfile_in(g, "/tmp");
	if (fd < 0)
		fd = admitted(g, memfd_create("km-restored", MFD_CLOEXEC));
	if (fd < 0)
		return km_err_set(err, errno, "re-creating its file (in %s, /tmp or memory)", dir);
	return fd;
}

/* The file with its contents: an O_RDWR fd or -1 with *err. */
static int make_filled(km_fdrest_t *rs, const datarec_t *d, km_err_t **err)
{
	km_guest_t *g = km_fdrest_guest(rs);
	int fd;
	if (d->what == DF_MEMFD) {
		fd = admitted(g, memfd_create(d->name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
		if (fd < 0)
			return km_err_set(err, errno, "memfd_create(\"%s\")", d->name);
	} else if ((fd = make_unnamed(g, d, err)) < 0) {
		return -1;
	}
	if (ftruncate(fd, (off_t)d->size) < 0) {
		km_err_set(err, errno, "making it %lu bytes", (unsigned long)d->size);
		goto fail;
	}
	for (uint32_t i = 0; i < d->nextents; i++) {
		uint64_t len;
		if (km_fdrest_blob_len(rs, d->ext[i].blob, &len, err) < 0)
			goto fail;
		if (len != d->ext[i].len) {
			km_err_set(err, 0, "corrupt record: data %lu has %lu bytes, not %lu", (unsigned long)d->ext[i].blob,
				   (unsigned long)len, (unsigned long)d->ext[i].len);
			goto fail;
		}
		if (lseek(fd, (off_t)d->ext[i].off, SEEK_SET) < 0) {
			km_err_set(err, errno, "writing its contents");
			goto fail;
		}
		if (km_fdrest_blob_write(rs, d->ext[i].blob, fd, err) < 0)
			goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* The filled file of this record: made now, or (shared) the one an earlier record made. A
 * copy stays in the stash for records that share it. */
static int filled(km_fdrest_t *rs, const datarec_t *d, km_err_t **err)
{
	int fd;
	if (d->flags & FLAG_SHARED) {
		int kept = km_fdrest_stash_take(rs, KM_FDK_DATAFILE, d->key);
		if (kept < 0)
			return km_err_set(err, 0, "the file it shares with an earlier fd was not restored");
		fd = fcntl(kept, F_DUPFD_CLOEXEC, 0);
		if (km_fdrest_stash_put(rs, KM_FDK_DATAFILE, d->key, kept, err) < 0) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		if (fd < 0)
			return km_err_set(err, errno, "sharing its file");
		return fd;
	}
	if ((fd = make_filled(rs, d, err)) < 0)
		return -1;
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0 || km_fdrest_stash_put(rs, KM_FDK_DATAFILE, d->key, copy, err) < 0) {
		if (copy < 0)
			km_err_set(err, errno, "keeping its file for fds that share it");
		close(fd);
		return -1;
	}
	return fd;
}

/* A new description of the file behind fd with the saved access mode and status flags. */
static int reopen(int fd, uint32_t oflags, km_err_t **err)
{
	int acc = (int)(oflags & O_ACCMODE);
	if (acc == O_ACCMODE)
		return km_err_set(err, 0, "corrupt record: access mode 3");
	int flags = (oflags & O_PATH) ? O_PATH : acc | (int)(oflags & REOPEN_FLAGS);
	int nfd = km_fd_reopen(fd, flags);
	if (nfd < 0)
		return km_err_set(err, errno, "opening it with its flags (%#o)", (unsigned)flags);
	return nfd;
}

/* The offset and locks of the rebuilt description fd. */
static int finish(km_fdrest_t *rs, const km_fdrec_t *r, const datarec_t *d, int fd, km_err_t **err)
{
	if (r->pos != 0 && !(r->oflags & O_PATH) &&
	    (r->pos > INT64_MAX || lseek(fd, (off_t)r->pos, SEEK_SET) < 0))
		return km_err_set(err, r->pos > INT64_MAX ? 0 : errno, "moving to offset %lu", (unsigned long)r->pos);
	return km_fdlocks_restore(rs, r, fd, &d->locks, err);
}

/* Mode and seals of a file just made (not one shared with an earlier record), through its
 * O_RDWR fd: after the contents (F_SEAL_WRITE would refuse them) and after the reopen (a mode
 * such as 0400 would refuse a reopen for writing to whoever is not root). */
static int seal(const datarec_t *d, int file, km_err_t **err)
{
	if (d->flags & FLAG_SHARED)
		return 0;
	if (fchmod(file, d->mode) < 0)
		return km_err_set(err, errno, "fchmod %#o", d->mode);
	if (d->what == DF_MEMFD && d->seals != 0 && fcntl(file, F_ADD_SEALS, (int)d->seals) < 0)
		return km_err_set(err, errno, "sealing it (%#x)", d->seals);
	return 0;
}

static int datafile_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	datarec_t d;
	if (!data_get(r, &d))
		return km_err_set(err, 0, "corrupt record");
	int fd = -1, file = filled(rs, &d, err);
	if (file >= 0) {
		fd = reopen(file, r->oflags, err);
		if (fd >= 0 && (seal(&d, file, err) < 0 || finish(rs, r, &d, fd, err) < 0 ||
				(!(d.flags & FLAG_SHARED) && km_fdrest_remember_file(rs, d.dev, d.ino, fd, err) < 0))) {
			close(fd);
			fd = -1;
		}
		close(file);
	}
	km_fdlocks_free(&d.locks);
	return fd;
}

/* --- --inspect ------------------------------------------------------------------------------ */

static void seals_describe(uint32_t seals, km_buf_t *out)
{
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {{F_SEAL_SEAL, "seal"},   {F_SEAL_SHRINK, "shrink"},
		     {F_SEAL_GROW, "grow"},   {F_SEAL_WRITE, "write"},
		     {F_SEAL_FUTURE_WRITE, "future-write"}, {F_SEAL_EXEC_, "exec"}};
	const char *sep = " sealed=";
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (seals & names[i].bit) {
			km_buf_printf(out, "%s%s", sep, names[i].name);
			sep = ",";
		}
}

static void datafile_describe(const km_fdrec_t *r, km_buf_t *out)
{
	datarec_t d;
	if (!data_get(r, &d)) {
		km_buf_printf(out, "(corrupt record)");
		return;
	}
	if (d.what == DF_MEMFD)
		km_buf_printf(out, "memfd:%s", d.name);
	else if (d.what == DF_TMPFILE)
		km_buf_printf(out, "O_TMPFILE in %s", d.name);
	else
		km_buf_printf(out, "%s (deleted)", d.name);
	km_buf_printf(out, " %lu bytes mode=%04o", (unsigned long)d.size, d.mode);
	if (d.flags & FLAG_SHARED)
		km_buf_printf(out, " (same file as an earlier fd)");
	else if (d.nextents > 1 || (d.nextents == 1 && d.ext[0].len != d.size))
		km_buf_printf(out, " (%lu bytes of data)", (unsigned long)data_bytes(d.ext, d.nextents));
	seals_describe(d.seals, out);
	km_fdlocks_describe(&d.locks, out);
	km_fdlocks_free(&d.locks);
}

const km_fdkind_t km_fdkind_datafile = {
    .kind = KM_FDK_DATAFILE,
    .name = "datafile",
    .match = datafile_match,
    .save = datafile_save,
    .restore = datafile_restore,
    .describe = datafile_describe,
};
