/*
 * The pipe kind of the fd table (km_fdtab.h): anonymous pipe ends ("pipe:[ino]") and FIFOs the
 * program opened by path, with the pipe's capacity and the bytes buffered in it.
 *
 * Saving reads the buffered bytes without taking them from the pipe (tee into a scratch pipe),
 * once per pipe however many of the program's descriptions have it (km_fdsave_first). Restoring
 * makes one pipe per saved pipe: the first description rebuilt creates it, puts the bytes back and
 * keeps both ends in the restore context's stash; each description is then a new open of the right
 * end (/proc/self/fd/N, as a FIFO opens), so descriptions keep their own status flags. What is left
 * in the stash is closed once the table is rebuilt: if the program held only one end (the other was
 * outside it), a reader sees the saved bytes and then end of file, a writer gets EPIPE (SIGPIPE).
 * The record's layout: docs/snapshot-files.md, "Kind 6: pipe".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_fdtab.h"
#include "km_sys_util.h"

enum { PIPE_ANON = 1, PIPE_FIFO = 2 };

/* A pipe's capacity as F_SETPIPE_SZ takes it: what a snapshot may ask for (Linux's own ceiling
 * for root is 2^31; no sane program asks more than this). */
#define PIPE_CAP_MAX (1u << 30)
#define PIPE_CAP_MIN 4096u
#define NO_BLOB UINT64_MAX

/* Stash slots of one pipe: an end of an anonymous pipe, a FIFO's keeper (opened read-write). */
enum { SLOT_END = 1, SLOT_FIFO = 2 };

static uint32_t slot_kind(int slot)
{
	return KM_FDK_PIPE | (uint32_t)slot << 16;
}

/* One u64 naming a pipe in this snapshot: pipes and FIFOs on different devices differ. */
static uint64_t pipe_id(uint64_t dev, uint64_t ino)
{
	return ino ^ (dev << 40) ^ (dev >> 24);
}

typedef struct pipe_rec {
	uint32_t what;
	uint64_t ino, dev;
	const char *path;
	uint32_t has_state, cap;
	uint64_t nbytes, blob;
} pipe_rec_t;

static bool read_rec(const km_fdrec_t *r, pipe_rec_t *p)
{
	km_rec_t rec = {.p = r->data, .len = r->len};
	p->what = km_rec_get_u32(&rec);
	p->ino = km_rec_get_u64(&rec);
	p->dev = km_rec_get_u64(&rec);
	p->path = km_rec_get_str(&rec, KM_PATH_MAX);
	p->has_state = km_rec_get_u32(&rec);
	p->cap = km_rec_get_u32(&rec);
	p->nbytes = km_rec_get_u64(&rec);
	p->blob = km_rec_get_u64(&rec);
	return km_rec_done(&rec);
}

/* --- saving --------------------------------------------------------------------------------- */

static bool pipe_match(struct km_guest *g, const km_fdprobe_t *p)
{
	(void)g;
	return S_ISFIFO(p->st.st_mode);
}

/* A FIFO the program could open again by path (not deleted). */
static bool fifo_path(const char *link)
{
	return link[0] == '/' && !km_link_deleted(link);
}

/* The n bytes buffered in the pipe `fd` has, left where they are: tee(2) duplicates them into a
 * scratch pipe as large as this one, whose copy is then read. A write-only fd gets a read end of
 * its own pipe for the tee (/proc/self/fd/N opened for reading). */
static int peek_bytes(const km_fdprobe_t *p, uint32_t cap, uint8_t *buf, size_t n, km_err_t **err)
{
	km_autoclose int rd = -1;
	if ((p->oflags & O_ACCMODE) == O_WRONLY) {
		if ((rd = km_fd_reopen(p->fd, O_RDONLY | O_NONBLOCK)) < 0)
			return km_err_set(err, errno, "opening a read end to copy the buffered bytes");
	}
	int sp[2];
	if (pipe2(sp, O_NONBLOCK | O_CLOEXEC) < 0)
		return km_err_set(err, errno, "a scratch pipe to copy the buffered bytes");
	km_autoclose int sr = sp[0], sw = sp[1];
	if (fcntl(sw, F_GETPIPE_SZ) < (int)cap && fcntl(sw, F_SETPIPE_SZ, cap) < 0)
		return km_err_set(err, errno, "a scratch pipe of %u bytes to copy the buffered bytes", cap);
	ssize_t t = tee(rd >= 0 ? rd : p->fd, sw, n, SPLICE_F_NONBLOCK);
	if (t != (ssize_t)n)
		return km_err_set(err, t < 0 ? errno : 0, "copying the %zu buffered bytes (tee gave %zd)", n, t);
	for (size_t at = 0; at < n;) {
		ssize_t r = read(sr, buf + at, n - at);
		if (r <= 0)
			return km_err_set(err, r < 0 ? errno : EIO, "reading the copy of the buffered bytes");
		at += (size_t)r;
	}
	return 0;
}

/* The pipe's capacity and buffered bytes, as a blob (NO_BLOB when empty). */
static int save_state(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	int cap = fcntl(p->fd, F_GETPIPE_SZ);
	int n = 0;
	if (cap < 0 || ioctl(p->fd, FIONREAD, &n) < 0)
		return km_err_set(err, errno, "reading the pipe's size");
	uint64_t blob = NO_BLOB;
	if (n > 0) {
		uint8_t *buf = malloc((size_t)n);
		if (buf == NULL)
			return km_err_set(err, ENOMEM, "the pipe's %d buffered bytes", n);
		if (peek_bytes(p, (uint32_t)cap, buf, (size_t)n, err) < 0) {
			free(buf);
			return -1;
		}
		int64_t b = km_fdsave_blob_mem(sv, buf, (uint64_t)n, err);
		if (b < 0)
			return -1;
		blob = (uint64_t)b;
	}
	km_rec_put_u32(rec, 1);
	km_rec_put_u32(rec, (uint32_t)cap);
	km_rec_put_u64(rec, (uint64_t)n);
	km_rec_put_u64(rec, blob);
	return 0;
}

static int pipe_save(km_fdsave_t *sv, const km_fdprobe_t *p, km_buf_t *rec, km_err_t **err)
{
	if (p->oflags & O_DIRECT)
		return km_err_set(err, 0, "a packet-mode pipe (O_DIRECT) cannot be saved");
	bool anon = strncmp(p->link, "pipe:[", 6) == 0 || (p->link[0] == '/' && !fifo_path(p->link));
	if (!anon && !fifo_path(p->link))
		return km_err_set(err, 0, "a FIFO with no name km can reopen (%s)", p->link);
	km_rec_put_u32(rec, anon ? PIPE_ANON : PIPE_FIFO);
	km_rec_put_u64(rec, (uint64_t)p->st.st_ino);
	km_rec_put_u64(rec, (uint64_t)p->st.st_dev);
	km_rec_put_str(rec, anon ? "" : p->link);
	if (km_fdsave_first(sv, KM_FDK_PIPE, pipe_id(p->st.st_dev, p->st.st_ino)))
		return save_state(sv, p, rec, err);
	km_rec_put_u32(rec, 0); /* another description of this pipe carries its state */
	km_rec_put_u32(rec, 0);
	km_rec_put_u64(rec, 0);
	km_rec_put_u64(rec, NO_BLOB);
	return 0;
}

/* --- restoring ------------------------------------------------------------------------------ */

/* The saved capacity and bytes into the pipe whose (nonblocking) write end is w. */
static int put_state(km_fdrest_t *rs, const pipe_rec_t *p, int w, km_err_t **err)
{
	if (!p->has_state)
		return 0;
	if (fcntl(w, F_GETPIPE_SZ) != (int)p->cap && fcntl(w, F_SETPIPE_SZ, p->cap) < 0)
		return km_err_set(err, errno, "setting the pipe's capacity to %u bytes", p->cap);
	if (p->nbytes == 0)
		return 0;
	int cap = fcntl(w, F_GETPIPE_SZ);
	if (cap < 0 || (uint64_t)cap < p->nbytes)
		return km_err_set(err, cap < 0 ? errno : 0, "%lu saved bytes do not fit in a pipe of %d bytes",
				  (unsigned long)p->nbytes, cap);
	return km_fdrest_blob_write(rs, p->blob, w, err);
}

/* The record's own checks, before anything is made. */
static int check_rec(km_fdrest_t *rs, const km_fdrec_t *r, const pipe_rec_t *p, km_err_t **err)
{
	if (p->what != PIPE_ANON && p->what != PIPE_FIFO)
		return km_err_set(err, 0, "corrupt record: pipe type %u", p->what);
	if ((r->oflags & O_ACCMODE) == O_ACCMODE)
		return km_err_set(err, 0, "corrupt record: access mode %#x", r->oflags & O_ACCMODE);
	if (!p->has_state)
		return 0;
	if (p->has_state != 1 || p->cap < PIPE_CAP_MIN || p->cap > PIPE_CAP_MAX || p->nbytes > p->cap)
		return km_err_set(err, 0, "corrupt record: a pipe of %u bytes holding %lu", p->cap,
				  (unsigned long)p->nbytes);
	uint64_t len = 0;
	if (p->nbytes > 0 && km_fdrest_blob_len(rs, p->blob, &len, err) < 0)
		return -1;
	if (len != p->nbytes)
		return km_err_set(err, 0, "corrupt record: %lu buffered bytes saved as %lu", (unsigned long)p->nbytes,
				  (unsigned long)len);
	return 0;
}

/* The saved status flags on a new description (its access mode is already right). */
static int set_flags(int fd, uint32_t oflags, km_err_t **err)
{
	if (fcntl(fd, F_SETFL, (int)(oflags & (O_NONBLOCK | O_APPEND))) < 0)
		return km_err_set(err, errno, "setting the saved flags");
	return fd;
}

/* A new description of the pipe whose end `end` is (another open of it, as a FIFO is opened). */
static int open_end(int end, uint32_t oflags, km_err_t **err)
{
	int fd = km_fd_reopen(end, (int)(oflags & O_ACCMODE) | O_NONBLOCK);
	if (fd < 0)
		return km_err_set(err, errno, "opening the rebuilt pipe");
	if (set_flags(fd, oflags, err) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The first description of a pipe rebuilt creates it and keeps its other end in the stash as
 * the template later descriptions (and nothing else: then it is closed) open again. */
static int anon_restore(km_fdrest_t *rs, const km_fdrec_t *r, const pipe_rec_t *p, km_err_t **err)
{
	uint64_t id = pipe_id(p->dev, p->ino);
	int acc = (int)(r->oflags & O_ACCMODE), fd = -1;
	int tmpl = km_fdrest_stash_take(rs, slot_kind(SLOT_END), id);
	if (tmpl >= 0) {
		if (put_state(rs, p, tmpl, err) == 0) /* only when a hostile file moved the state */
			fd = open_end(tmpl, r->oflags, err);
	} else {
		int ends[2];
		if (pipe2(ends, O_NONBLOCK | O_CLOEXEC) < 0)
			return km_err_set(err, errno, "creating a pipe");
		if (put_state(rs, p, ends[1], err) < 0) {
			close(ends[0]);
			close(ends[1]);
			return -1;
		}
		if (acc == O_RDWR) {
			fd = open_end(ends[0], r->oflags, err);
			close(ends[0]);
			tmpl = ends[1];
		} else {
			fd = set_flags(ends[acc == O_WRONLY], r->oflags, err);
			tmpl = ends[acc != O_WRONLY];
			if (fd < 0)
				close(ends[acc == O_WRONLY]);
		}
	}
	if (km_fdrest_stash_put(rs, slot_kind(SLOT_END), id, tmpl, err) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* path opened as the guest could open it (km_fd_admit.h), and a FIFO. */
static int open_fifo(km_fdrest_t *rs, const char *path, int flags, km_err_t **err)
{
	long rc = km_path_admit(km_fdrest_guest(rs), AT_FDCWD, path, true);
	if (rc < 0)
		return km_err_set(err, (int)-rc, "%s", path);
	rc = km_fd_admit(km_fdrest_guest(rs), km_host_ret(open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)));
	if (rc < 0)
		return km_err_set(err, (int)-rc, "opening the FIFO %s", path);
	struct stat st;
	if (fstat((int)rc, &st) < 0 || !S_ISFIFO(st.st_mode)) {
		close((int)rc);
		return km_err_set(err, 0, "%s is no longer a FIFO", path);
	}
	return (int)rc;
}

static bool same_file(int a, int b)
{
	struct stat sa, sb;
	return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

/* A FIFO is opened by its path again. The first of its descriptions opens a keeper (read-write,
 * so that neither this open nor the bytes put back block or fail for want of a peer), kept in the
 * stash until the table is rebuilt. */
static int fifo_restore(km_fdrest_t *rs, const km_fdrec_t *r, const pipe_rec_t *p, km_err_t **err)
{
	if (p->path[0] != '/')
		return km_err_set(err, 0, "corrupt record: the FIFO's path is not absolute");
	uint64_t id = pipe_id(p->dev, p->ino);
	int keep = km_fdrest_stash_take(rs, slot_kind(SLOT_FIFO), id);
	if (keep < 0 && (keep = open_fifo(rs, p->path, O_RDWR, err)) < 0)
		return -1;
	int fd = open_fifo(rs, p->path, (int)(r->oflags & O_ACCMODE), err);
	if (fd >= 0 && !same_file(fd, keep)) {
		close(fd);
		fd = km_err_set(err, 0, "%s changed while the fd table was rebuilt", p->path);
	}
	if (fd >= 0 && (put_state(rs, p, keep, err) < 0 || set_flags(fd, r->oflags, err) < 0)) {
		close(fd);
		fd = -1;
	}
	if (km_fdrest_stash_put(rs, slot_kind(SLOT_FIFO), id, keep, err) < 0) {
		close(keep);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int pipe_restore(km_fdrest_t *rs, const km_fdrec_t *r, km_err_t **err)
{
	pipe_rec_t p;
	if (!read_rec(r, &p))
		return km_err_set(err, 0, "corrupt record");
	if (check_rec(rs, r, &p, err) < 0)
		return -1;
	return p.what == PIPE_ANON ? anon_restore(rs, r, &p, err) : fifo_restore(rs, r, &p, err);
}

static void pipe_describe(const km_fdrec_t *r, km_buf_t *out)
{
	pipe_rec_t p;
	if (!read_rec(r, &p)) {
		km_buf_printf(out, "(corrupt record)");
		return;
	}
	if (p.what == PIPE_FIFO)
		km_buf_printf(out, "fifo %s", p.path);
	else
		km_buf_printf(out, "pipe:[%lu]", (unsigned long)p.ino);
	int acc = (int)(r->oflags & O_ACCMODE);
	km_buf_printf(out, " %s", acc == O_RDONLY ? "read" : acc == O_WRONLY ? "write" : "read-write");
	if (p.has_state) {
		km_buf_printf(out, " %lu bytes buffered", (unsigned long)p.nbytes);
		if (p.cap != 65536)
			km_buf_printf(out, " capacity %u", p.cap);
	}
}

const km_fdkind_t km_fdkind_pipe = {
    .kind = KM_FDK_PIPE,
    .name = "pipe",
    .match = pipe_match,
    .save = pipe_save,
    .restore = pipe_restore,
    .describe = pipe_describe,
};
