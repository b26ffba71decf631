/*
 * Rebuilding the guest's fd table from a snapshot's NT_KM_FILES note, and --inspect's listing of
 * it (km_fdtab.h). The note is attacker input: every count, index, length and fd number is
 * checked before use, and each kind checks its own record.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "km_crc32c.h"
#include "km_fdtab.h"
#include "km_guest.h"
#include "km_machine.h"
#include "km_sys_util.h"

#define FDTAB_VERSION 1
#define MAX_BLOBS_PER_DESC 8
#define CHUNK (1u << 16)

typedef struct rblob {
	uint64_t off, len; /* off: from the file's start, checked to lie inside it */
	uint32_t crc;
} rblob_t;

typedef struct rfd {
	int fd;
	uint32_t desc, fdflags;
} rfd_t;

typedef struct rdesc {
	km_fdrec_t r;
	int host;    /* the rebuilt fd in km's range, -1 until then (or when it failed) */
	bool used;   /* some fd has it */
	bool rebuilt; /* host was made (it stays true once km's copy is closed) */
} rdesc_t;

typedef struct parsed {
	uint32_t nfds, ndescs, nblobs;
	rblob_t *blobs;
	rfd_t *fds;
	rdesc_t *descs;
} parsed_t;

typedef struct stash {
	uint32_t kind;
	uint64_t key;
	int fd;
} stash_t;

typedef struct after {
	int (*fn)(void *arg, km_err_t **err);
	void *arg;
	uint32_t desc;
} after_t;

struct km_fdrest {
	km_guest_t *g;
	const char *name;
	int snap_fd;
	parsed_t p;
	stash_t *stash;
	uint32_t nstash;
	after_t *after;
	uint32_t nafter;
	uint32_t cur; /* the description being rebuilt */
	int placed[KM_FD_RESERVED_BASE]; /* guest fd -> 1 when placed */
};

static void parsed_free(parsed_t *p)
{
	free(p->blobs);
	free(p->fds);
	free(p->descs);
	memset(p, 0, sizeof(*p));
}

static int parse_blobs(km_rec_t *r, parsed_t *p, uint64_t file_size, km_err_t **err)
{
	uint64_t base = km_rec_get_u64(r);
	if ((p->blobs = calloc(p->nblobs + 1, sizeof(*p->blobs))) == NULL)
		return km_err_set(err, ENOMEM, "the fd table");
	for (uint32_t i = 0; i < p->nblobs; i++) {
		uint64_t off = km_rec_get_u64(r), len = km_rec_get_u64(r);
		p->blobs[i].crc = km_rec_get_u32(r);
		(void)km_rec_get_u32(r);
		if (r->bad || off > file_size || base > file_size - off || len > file_size - off - base)
			return km_err_set(err, 0, "an open file's data %u lies outside the file", i);
		p->blobs[i].off = base + off;
		p->blobs[i].len = len;
	}
	return 0;
}

static int parse_fds(km_rec_t *r, parsed_t *p, km_err_t **err)
{
	bool seen[KM_FD_RESERVED_BASE] = {false};
	if ((p->fds = calloc(p->nfds + 1, sizeof(*p->fds))) == NULL)
		return km_err_set(err, ENOMEM, "the fd table");
	for (uint32_t i = 0; i < p->nfds; i++) {
		uint32_t fd = km_rec_get_u32(r), desc = km_rec_get_u32(r), fl = km_rec_get_u32(r);
		if (r->bad)
			break;
		if (fd >= KM_FD_RESERVED_BASE || seen[fd] || desc >= p->ndescs || (fl & ~(uint32_t)FD_CLOEXEC) != 0)
			return km_err_set(err, 0, "fd table entry %u (fd %u) is invalid", i, fd);
		seen[fd] = true;
		p->fds[i] = (rfd_t){(int)fd, desc, fl};
	}
	return 0;
}

static int parse_descs(km_rec_t *r, parsed_t *p, km_err_t **err)
{
	if ((p->descs = calloc(p->ndescs + 1, sizeof(*p->descs))) == NULL)
		return km_err_set(err, ENOMEM, "the fd table");
	for (uint32_t i = 0; i < p->ndescs && !r->bad; i++) {
		rdesc_t *d = &p->descs[i];
		d->r.kind = km_rec_get_u32(r);
		d->r.oflags = km_rec_get_u32(r);
		d->r.pos = km_rec_get_u64(r);
		uint32_t n;
		d->r.data = km_rec_get_bytes(r, &n);
		d->r.len = n;
		d->r.first_fd = -1;
		d->host = -1;
	}
	/* fds are listed in increasing order by the writer, but a hostile file need not be */
	for (uint32_t i = 0; i < p->nfds; i++) {
		rdesc_t *d = &p->descs[p->fds[i].desc];
		d->used = true;
		if (d->r.first_fd < 0 || p->fds[i].fd < d->r.first_fd)
			d->r.first_fd = p->fds[i].fd;
	}
	(void)err;
	return 0;
}

static int parse_all(const void *note, size_t len, uint64_t file_size, parsed_t *p, km_err_t **err);

/* Reads and checks the note's structure (each kind checks its own record later). On failure *p
 * is empty (counts 0), whatever the note said. */
static int parse(const void *note, size_t len, uint64_t file_size, parsed_t *p, km_err_t **err)
{
	int rc = parse_all(note, len, file_size, p, err);
	if (rc < 0)
		parsed_free(p);
	return rc;
}

static int parse_all(const void *note, size_t len, uint64_t file_size, parsed_t *p, km_err_t **err)
{
	km_rec_t r = {.p = note, .len = len};
	memset(p, 0, sizeof(*p));
	uint32_t version = km_rec_get_u32(&r);
	p->nfds = km_rec_get_u32(&r);
	p->ndescs = km_rec_get_u32(&r);
	p->nblobs = km_rec_get_u32(&r);
	if (r.bad)
		return km_err_set(err, 0, "the fd table is truncated");
	if (version != FDTAB_VERSION)
		return km_err_set(err, 0, "the fd table has version %u, this km reads %u", version, FDTAB_VERSION);
	if (p->nfds > KM_FD_RESERVED_BASE || p->ndescs > p->nfds || p->nblobs > p->ndescs * MAX_BLOBS_PER_DESC)
		return km_err_set(err, 0, "the fd table's counts are impossible (%u fds, %u files, %u blobs)", p->nfds,
				  p->ndescs, p->nblobs);
	if (parse_blobs(&r, p, file_size, err) < 0 || parse_fds(&r, p, err) < 0 || parse_descs(&r, p, err) < 0)
		return -1;
	if (!km_rec_done(&r))
		return km_err_set(err, 0, "the fd table is truncated or has trailing bytes");
	return 0;
}

/* --- the restore context -------------------------------------------------------------------- */

km_guest_t *km_fdrest_guest(km_fdrest_t *rs)
{
	return rs->g;
}

const char *km_fdrest_name(const km_fdrest_t *rs)
{
	return rs->name;
}

static const rblob_t *blob(km_fdrest_t *rs, uint64_t idx, km_err_t **err)
{
	if (idx >= rs->p.nblobs) {
		km_err_set(err, 0, "corrupt snapshot: data %lu does not exist", (unsigned long)idx);
		return NULL;
	}
	return &rs->p.blobs[idx];
}

int km_fdrest_blob_len(km_fdrest_t *rs, uint64_t idx, uint64_t *len, km_err_t **err)
{
	const rblob_t *b = blob(rs, idx, err);
	if (b == NULL)
		return -1;
	*len = b->len;
	return 0;
}

/* Reads blob b in chunks, handing each to fn; checks the checksum at the end. */
static int blob_each(km_fdrest_t *rs, const rblob_t *b, int (*fn)(void *arg, const uint8_t *p, size_t n),
		     void *arg, km_err_t **err)
{
	km_autofree uint8_t *buf = malloc(CHUNK);
	if (buf == NULL)
		return km_err_set(err, ENOMEM, "reading saved data");
	uint32_t crc = 0;
	for (uint64_t done = 0; done < b->len;) {
		size_t want = b->len - done < CHUNK ? (size_t)(b->len - done) : CHUNK;
		ssize_t r = pread(rs->snap_fd, buf, want, (off_t)(b->off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return km_err_set(err, r < 0 ? errno : EIO, "%s: reading saved data at %#lx", rs->name,
					  (unsigned long)(b->off + done));
		crc = km_crc32c(crc, buf, (size_t)r);
		if (fn(arg, buf, (size_t)r) < 0)
			return km_err_set(err, errno, "putting saved data back");
		done += (uint64_t)r;
	}
	if (crc != b->crc)
		return km_err_set(err, 0, "%s: saved data at %#lx is damaged (checksum %#x, expected %#x)", rs->name,
				  (unsigned long)b->off, crc, b->crc);
	return 0;
}

typedef struct membuf {
	uint8_t *p;
	size_t at;
} membuf_t;

static int to_mem(void *arg, const uint8_t *p, size_t n)
{
	membuf_t *m = arg;
	memcpy(m->p + m->at, p, n);
	m->at += n;
	return 0;
}

int km_fdrest_blob_read(km_fdrest_t *rs, uint64_t idx, void *buf, uint64_t len, km_err_t **err)
{
	const rblob_t *b = blob(rs, idx, err);
	if (b == NULL)
		return -1;
	if (b->len != len)
		return km_err_set(err, 0, "corrupt snapshot: data %lu has %lu bytes, not %lu", (unsigned long)idx,
				  (unsigned long)b->len, (unsigned long)len);
	membuf_t m = {buf, 0};
	return blob_each(rs, b, to_mem, &m, err);
}

static int to_fd(void *arg, const uint8_t *p, size_t n)
{
	int fd = *(int *)arg;
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int km_fdrest_blob_write(km_fdrest_t *rs, uint64_t idx, int fd, km_err_t **err)
{
	const rblob_t *b = blob(rs, idx, err);
	return b == NULL ? -1 : blob_each(rs, b, to_fd, &fd, err);
}

int km_fdrest_stash_put(km_fdrest_t *rs, uint32_t kind, uint64_t key, int fd, km_err_t **err)
{
	int high = km_fd_reserve(fd);
	if (high < 0)
		return km_err_set(err, errno, "keeping an fd for its peer");
	stash_t *n = realloc(rs->stash, (rs->nstash + 1) * sizeof(*n));
	if (n == NULL) {
		close(high);
		return km_err_set(err, ENOMEM, "keeping an fd for its peer");
	}
	rs->stash = n;
	rs->stash[rs->nstash++] = (stash_t){kind, key, high};
	return 0;
}

int km_fdrest_stash_take(km_fdrest_t *rs, uint32_t kind, uint64_t key)
{
	for (uint32_t i = 0; i < rs->nstash; i++)
		if (rs->stash[i].fd >= 0 && rs->stash[i].kind == kind && rs->stash[i].key == key) {
			int fd = rs->stash[i].fd;
			rs->stash[i].fd = -1;
			return fd;
		}
	return -1;
}

int km_fdrest_remember_file(km_fdrest_t *rs, uint64_t dev, uint64_t ino, int fd, km_err_t **err)
{
	/* The guest's own fd of it, once placed: no copy of km's, whose close would drop the
	 * program's POSIX locks on the file (any close by the process does). */
	(void)fd;
	km_guest_t *g = rs->g;
	km_fd_restored_t *n = realloc(g->fd_restored, (size_t)(g->nfd_restored + 1) * sizeof(*n));
	if (n == NULL)
		return km_err_set(err, ENOMEM, "remembering a recreated file");
	g->fd_restored = n;
	g->fd_restored[g->nfd_restored++] = (km_fd_restored_t){dev, ino, rs->p.descs[rs->cur].r.first_fd};
	return 0;
}

int km_fdtab_restored_file(km_guest_t *g, uint64_t dev, uint64_t ino)
{
	for (int i = 0; i < g->nfd_restored; i++)
		if (g->fd_restored[i].dev == dev && g->fd_restored[i].ino == ino &&
		    fcntl(g->fd_restored[i].fd, F_GETFD) >= 0) /* left closed: a failed restore */
			return g->fd_restored[i].fd;
	return -1;
}

void km_fdtab_forget_files(km_guest_t *g)
{
	free(g->fd_restored);
	g->fd_restored = NULL;
	g->nfd_restored = 0;
}

int km_fdrest_placed(const km_fdrest_t *rs, int fd)
{
	return fd >= 0 && fd < KM_FD_RESERVED_BASE && rs->placed[fd] ? fd : -1;
}

int km_fdrest_after(km_fdrest_t *rs, int (*fn)(void *, km_err_t **), void *arg, km_err_t **err)
{
	after_t *n = realloc(rs->after, (rs->nafter + 1) * sizeof(*n));
	if (n == NULL) {
		free(arg);
		return km_err_set(err, ENOMEM, "keeping work for after the fds are placed");
	}
	rs->after = n;
	rs->after[rs->nafter++] = (after_t){fn, arg, rs->cur};
	return 0;
}

/* --- rebuilding ----------------------------------------------------------------------------- */

static const char *name_of(uint32_t kind)
{
	const km_fdkind_t *k = km_fdkind_of(kind);
	return k != NULL ? k->name : "unknown";
}

/* A description that cannot be rebuilt: the resume fails, or (closed) the fds stay closed. */
static int missing(km_fdrest_t *rs, rdesc_t *d, km_err_t **why, enum km_missing_policy pol, km_err_t **err)
{
	const char *reason = *why != NULL ? (*why)->msg : "unknown reason";
	if (pol == KM_MISSING_CLOSED) {
		fprintf(stderr, "km: %s: fd %d (%s) left closed (--restore-missing=closed): %s\n", rs->name,
			d->r.first_fd, name_of(d->r.kind), reason);
		km_err_free(why);
		return 0;
	}
	km_err_set(err, 0, "%s: fd %d (%s) cannot be restored: %s", rs->name, d->r.first_fd, name_of(d->r.kind),
		   reason);
	km_err_free(why);
	return -1;
}

static int rebuild(km_fdrest_t *rs, rdesc_t *d, enum km_missing_policy pol, km_err_t **err)
{
	const km_fdkind_t *k = km_fdkind_of(d->r.kind);
	km_err_t *why = NULL;
	int fd;
	rs->cur = (uint32_t)(d - rs->p.descs);
	if (k == NULL)
		fd = km_err_set(&why, 0, "a kind of file this km does not know (%u)", d->r.kind);
	else
		fd = k->restore(rs, &d->r, &why);
	if (fd >= 0 && (d->host = km_fd_reserve(fd)) < 0)
		km_err_set(&why, errno, "moving it into km's range");
	d->rebuilt = d->host >= 0;
	if (d->host >= 0)
		return 0;
	return missing(rs, d, &why, pol, err);
}

static int phase_of(uint32_t kind)
{
	const km_fdkind_t *k = km_fdkind_of(kind);
	return k != NULL ? k->phase : 0;
}

/* Puts every fd of the descriptions of `phase` at its number. */
static int place(km_fdrest_t *rs, int phase, km_err_t **err)
{
	for (uint32_t i = 0; i < rs->p.nfds; i++) {
		const rfd_t *f = &rs->p.fds[i];
		const rdesc_t *d = &rs->p.descs[f->desc];
		if (d->host < 0 || phase_of(d->r.kind) != phase)
			continue;
		if (dup3(d->host, f->fd, (f->fdflags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0)
			return km_err_set(err, errno, "%s: placing fd %d", rs->name, f->fd);
		rs->placed[f->fd] = 1;
	}
	return 0;
}

/* The resuming km's own fds for the inherited descriptions, before anything is closed. */
static int take_inherited(km_fdrest_t *rs, enum km_missing_policy pol, km_err_t **err)
{
	for (uint32_t i = 0; i < rs->p.ndescs; i++) {
		rdesc_t *d = &rs->p.descs[i];
		if (!d->used || d->r.kind != KM_FDK_INHERITED)
			continue;
		if (rebuild(rs, d, pol, err) < 0)
			return -1;
		if (d->host < 0)
			continue;
		km_rec_t r = {.p = d->r.data, .len = d->r.len};
		uint32_t src = km_rec_get_u32(&r);
		km_fd_inherit_t *n = realloc(rs->g->inherited, (size_t)(rs->g->ninherited + 1) * sizeof(*n));
		int keeper = fcntl(d->host, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE);
		if (n != NULL)
			rs->g->inherited = n;
		if (n == NULL || keeper < 0) {
			if (keeper >= 0)
				close(keeper);
			return km_err_set(err, n == NULL ? ENOMEM : errno, "%s: keeping inherited fd %u", rs->name, src);
		}
		rs->g->inherited[rs->g->ninherited++] = (km_fd_inherit_t){(int)src, keeper};
	}
	return 0;
}

/* The table is the whole truth: no other fd below km's range survives into the program. */
static void close_guest_range(void)
{
	for (int fd = 0; fd < KM_FD_RESERVED_BASE; fd++)
		close(fd);
}

static int rebuild_all(km_fdrest_t *rs, enum km_missing_policy pol, km_err_t **err)
{
	if (take_inherited(rs, pol, err) < 0)
		return -1;
	close_guest_range();
	for (int phase = 0; phase <= 1; phase++) {
		for (uint32_t i = 0; i < rs->p.ndescs; i++) {
			rdesc_t *d = &rs->p.descs[i];
			if (d->used && d->r.kind != KM_FDK_INHERITED && phase_of(d->r.kind) == phase &&
			    rebuild(rs, d, pol, err) < 0)
				return -1;
		}
		/* inherited descriptions are placed with phase 0 */
		if (place(rs, phase, err) < 0)
			return -1;
	}
	return 0;
}

/* Closes km's copies of the rebuilt descriptions and what no description took. */
static void close_copies(km_fdrest_t *rs)
{
	for (uint32_t i = 0; i < rs->p.ndescs; i++)
		if (rs->p.descs[i].host >= 0) {
			close(rs->p.descs[i].host);
			rs->p.descs[i].host = -1;
		}
	for (uint32_t i = 0; i < rs->nstash; i++)
		if (rs->stash[i].fd >= 0) {
			close(rs->stash[i].fd);
			rs->stash[i].fd = -1;
		}
}

/* The work kinds left for when every fd is placed (km_fdrest_after); a failure is that
 * description's: the resume fails, or (closed) every fd that had it is closed. */
static int run_after(km_fdrest_t *rs, enum km_missing_policy pol, km_err_t **err)
{
	for (uint32_t i = 0; i < rs->nafter; i++) {
		after_t *a = &rs->after[i];
		rdesc_t *d = &rs->p.descs[a->desc];
		km_err_t *why = NULL;
		if (!d->rebuilt || a->fn(a->arg, &why) == 0)
			continue;
		if (missing(rs, d, &why, pol, err) < 0)
			return -1;
		d->rebuilt = false;
		for (uint32_t f = 0; f < rs->p.nfds; f++)
			if (rs->p.fds[f].desc == a->desc) {
				close(rs->p.fds[f].fd);
				rs->placed[rs->p.fds[f].fd] = 0;
			}
	}
	return 0;
}

/* The kinds' last word on each description (km_fdkind_t.finish), success or not. */
static void finish_all(km_fdrest_t *rs)
{
	for (uint32_t i = 0; i < rs->p.ndescs; i++) {
		const km_fdkind_t *k = km_fdkind_of(rs->p.descs[i].r.kind);
		if (k != NULL && k->finish != NULL)
			k->finish(&rs->p.descs[i].r);
	}
}

static void rest_free(km_fdrest_t *rs)
{
	close_copies(rs);
	for (uint32_t i = 0; i < rs->nafter; i++)
		free(rs->after[i].arg);
	free(rs->after);
	free(rs->stash);
	parsed_free(&rs->p);
	free(rs);
}

int km_fdtab_restore(km_guest_t *g, const void *note, size_t len, int snap_fd, uint64_t file_size,
		     const char *name, enum km_missing_policy missing_pol, km_err_t **err)
{
	km_fdrest_t *rs = calloc(1, sizeof(*rs));
	if (rs == NULL)
		return km_err_set(err, ENOMEM, "%s: the fd table", name);
	rs->g = g;
	rs->name = name;
	rs->snap_fd = snap_fd;
	for (int i = 0; i < g->ninherited; i++)
		close(g->inherited[i].keeper);
	free(g->inherited);
	g->inherited = NULL;
	g->ninherited = 0;
	int rc = parse(note, len, file_size, &rs->p, err);
	if (rc < 0)
		km_err_wrap(err, "%s: corrupt snapshot", name);
	else
		rc = rebuild_all(rs, missing_pol, err);
	if (rc == 0) {
		close_copies(rs);
		rc = run_after(rs, missing_pol, err);
	}
	finish_all(rs);
	rest_free(rs);
	return rc;
}

/* --- --inspect ------------------------------------------------------------------------------ */

static int discard(void *arg, const uint8_t *p, size_t n)
{
	(void)p;
	*(uint64_t *)arg += n;
	return 0;
}

int km_fdtab_verify(const void *note, size_t len, int snap_fd, uint64_t file_size, const char *name,
		    uint64_t *bytes, km_err_t **err)
{
	km_fdrest_t rs = {.name = name, .snap_fd = snap_fd};
	if (parse(note, len, file_size, &rs.p, err) < 0)
		return km_err_wrap(err, "%s: corrupt snapshot", name);
	int rc = 0;
	for (uint32_t i = 0; i < rs.p.nblobs && rc == 0; i++)
		rc = blob_each(&rs, &rs.p.blobs[i], discard, bytes, err);
	parsed_free(&rs.p);
	return rc;
}

static void describe_fd(const parsed_t *p, const rfd_t *f, km_buf_t *out)
{
	const rdesc_t *d = &p->descs[f->desc];
	const km_fdkind_t *k = km_fdkind_of(d->r.kind);
	km_buf_printf(out, "  fd %d %s ", f->fd, k != NULL ? k->name : "unknown");
	int acc = (int)(d->r.oflags & O_ACCMODE);
	km_buf_printf(out, "%s", acc == O_RDONLY ? "r" : acc == O_WRONLY ? "w" : "rw");
	if (d->r.oflags & O_APPEND)
		km_buf_printf(out, ",append");
	if (d->r.oflags & O_NONBLOCK)
		km_buf_printf(out, ",nonblock");
	if (f->fdflags & FD_CLOEXEC)
		km_buf_printf(out, ",cloexec");
	if (d->r.pos != 0)
		km_buf_printf(out, " pos=%lu", (unsigned long)d->r.pos);
	if (d->r.first_fd != f->fd)
		km_buf_printf(out, " same-as=%d", d->r.first_fd);
	km_buf_printf(out, " ");
	if (k != NULL)
		k->describe(&d->r, out);
	km_buf_printf(out, "\n");
}

void km_fdtab_describe(const void *note, size_t len, km_buf_t *out)
{
	parsed_t p;
	km_err_t *err = NULL;
	if (parse(note, len, UINT64_MAX, &p, &err) < 0) {
		km_buf_printf(out, "  fd table: %s\n", err->msg);
		km_err_free(&err);
		parsed_free(&p);
		return;
	}
	km_buf_printf(out, "  %u fds, %u open files, %u saved data blocks\n", p.nfds, p.ndescs, p.nblobs);
	for (uint32_t i = 0; i < p.nfds; i++)
		describe_fd(&p, &p.fds[i], out);
	parsed_free(&p);
}
