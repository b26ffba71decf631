/*
 * The fd table of a snapshot: probing the guest's fds and grouping them into open file
 * descriptions (save), the NT_KM_FILES note and its blobs, and rebuilding the table at resume.
 * See km_fdtab.h; the note's layout is documented in docs/snapshot-format.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/kcmp.h>

#include "km_crc32c.h"
#include "km_fdtab.h"
#include "km_guest.h"
#include "km_io.h"
#include "km_machine.h"
#include "km_sys_util.h"

#define FDTAB_VERSION 1
#define LINK_MAX_LEN 4096
#define FDINFO_MAX (64u << 10) /* an epoll with many targets has a long fdinfo */
#define MAX_BLOBS_PER_DESC 8

/* --- the table ------------------------------------------------------------------------------ */

typedef struct blob {
	void *mem;      /* bytes in memory (owned; NULL for none or from a file) */
	int fd;         /* >= 0: km's copy of the file the bytes are copied from */
	uint64_t off;   /* in that file */
	uint64_t len;
} blob_t;

typedef struct desc {
	uint32_t kind;
	uint32_t oflags;
	uint64_t pos;
	int fd;         /* the lowest guest fd that has it */
	dev_t dev;
	ino_t ino;
	km_buf_t rec;
} desc_t;

typedef struct fdent {
	int fd;
	uint32_t desc;
	uint32_t fdflags; /* FD_CLOEXEC */
} fdent_t;

typedef struct release {
	void (*fn)(void *arg, bool goes_on);
	void *arg;
} release_t;

typedef struct seen {
	uint32_t kind;
	uint64_t key;
} seen_t;

struct km_fdtab {
	desc_t *descs;
	uint32_t ndescs;
	fdent_t *fds;
	uint32_t nfds;
	blob_t *blobs;
	uint32_t nblobs;
	release_t *rel;
	uint32_t nrel;
	seen_t *seen;
	uint32_t nseen;
	size_t crc_at;   /* in the note: where the blob table starts (blob_off, then the entries) */
};

struct km_fdsave {
	km_guest_t *g;
	const km_fdtab_save_opts_t *o;
	km_fdtab_t *t;
	void *kind_state[KM_FDK_MAX];
};

km_guest_t *km_fdsave_guest(km_fdsave_t *sv)
{
	return sv->g;
}

enum km_tcp_policy km_fdsave_tcp(const km_fdsave_t *sv)
{
	return sv->o->tcp;
}

uint64_t km_fdsave_file_max(const km_fdsave_t *sv)
{
	return sv->o->file_max;
}

bool km_fdsave_ends(const km_fdsave_t *sv)
{
	return sv->o->ends;
}

void **km_fdsave_state(km_fdsave_t *sv, uint32_t kind)
{
	return &sv->kind_state[kind < KM_FDK_MAX ? kind : 0];
}

/* Grows an array of n elements of size sz by one; NULL on failure. */
static void *grow(void *arr, uint32_t n, size_t sz)
{
	return realloc(arr, (size_t)(n + 1) * sz);
}

static int64_t add_blob(km_fdtab_t *t, blob_t b, km_err_t **err)
{
	blob_t *nb = grow(t->blobs, t->nblobs, sizeof(*nb));
	if (nb == NULL) {
		free(b.mem);
		if (b.fd >= 0)
			close(b.fd);
		return km_err_set(err, ENOMEM, "saving an open file's data");
	}
	t->blobs = nb;
	t->blobs[t->nblobs] = b;
	return t->nblobs++;
}

int64_t km_fdsave_blob_mem(km_fdsave_t *sv, void *p, uint64_t len, km_err_t **err)
{
	if (p == NULL && len > 0) /* a failed allocation passed on */
		return km_err_set(err, ENOMEM, "saving an open file's data (%lu bytes)", (unsigned long)len);
	return add_blob(sv->t, (blob_t){.mem = p, .fd = -1, .len = len}, err);
}

int64_t km_fdsave_blob_file(km_fdsave_t *sv, int fd, uint64_t off, uint64_t len, km_err_t **err)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE);
	if (copy < 0)
		return km_err_set(err, errno, "keeping an open file to copy its contents");
	return add_blob(sv->t, (blob_t){.mem = NULL, .fd = copy, .off = off, .len = len}, err);
}

bool km_fdsave_first(km_fdsave_t *sv, uint32_t kind, uint64_t key)
{
	km_fdtab_t *t = sv->t;
	for (uint32_t i = 0; i < t->nseen; i++)
		if (t->seen[i].kind == kind && t->seen[i].key == key)
			return false;
	seen_t *ns = grow(t->seen, t->nseen, sizeof(*ns));
	if (ns != NULL) { /* out of memory: "first" again later, which saves shared state twice */
		t->seen = ns;
		t->seen[t->nseen++] = (seen_t){kind, key};
	}
	return true;
}

int km_fdsave_on_release(km_fdsave_t *sv, void (*fn)(void *, bool), void *arg, km_err_t **err)
{
	km_fdtab_t *t = sv->t;
	release_t *nr = grow(t->rel, t->nrel, sizeof(*nr));
	if (nr == NULL) {
		fn(arg, true);
		return km_err_set(err, ENOMEM, "saving an open file");
	}
	t->rel = nr;
	t->rel[t->nrel++] = (release_t){fn, arg};
	return 0;
}

void km_fdtab_release(km_fdtab_t *t, bool guest_goes_on)
{
	if (t == NULL)
		return;
	for (uint32_t i = t->nrel; i-- > 0;)
		t->rel[i].fn(t->rel[i].arg, guest_goes_on);
	for (uint32_t i = 0; i < t->nblobs; i++) {
		free(t->blobs[i].mem);
		if (t->blobs[i].fd >= 0)
			close(t->blobs[i].fd);
	}
	for (uint32_t i = 0; i < t->ndescs; i++)
		km_buf_free(&t->descs[i].rec);
	free(t->blobs);
	free(t->descs);
	free(t->fds);
	free(t->rel);
	free(t->seen);
	free(t);
}

/* --- kinds ---------------------------------------------------------------------------------- */

/* The order kinds are asked to claim an fd: the specific before the general. */
static const km_fdkind_t *const kinds[] = {
    &km_fdkind_signalfd, &km_fdkind_eventfd, &km_fdkind_epoll, &km_fdkind_timerfd, &km_fdkind_inotify,
    &km_fdkind_pipe,     &km_fdkind_unix,    &km_fdkind_inet,  &km_fdkind_datafile, &km_fdkind_file,
    &km_fdkind_dir,      &km_fdkind_device,
};

const km_fdkind_t *km_fdkind_of(uint32_t kind)
{
	if (kind == KM_FDK_INHERITED)
		return &km_fdkind_inherited;
	if (kind == KM_FDK_UNSUPPORTED)
		return &km_fdkind_unsupported;
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i]->kind == kind)
			return kinds[i];
	return NULL;
}

static const char *kind_name(uint32_t kind)
{
	const km_fdkind_t *k = km_fdkind_of(kind);
	return k != NULL ? k->name : "unknown";
}

/* --- inherited fds -------------------------------------------------------------------------- */

static void drop_inherited(km_guest_t *g)
{
	for (int i = 0; i < g->ninherited; i++)
		close(g->inherited[i].keeper);
	free(g->inherited);
	g->inherited = NULL;
	g->ninherited = 0;
}

static int keep_inherited(km_guest_t *g, int fd, km_err_t **err)
{
	km_fd_inherit_t *n = realloc(g->inherited, (size_t)(g->ninherited + 1) * sizeof(*n));
	if (n == NULL)
		return km_err_set(err, ENOMEM, "remembering the program's inherited fds");
	g->inherited = n;
	int keeper = fcntl(fd, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE);
	if (keeper < 0)
		return km_err_set(err, errno, "remembering inherited fd %d", fd);
	g->inherited[g->ninherited++] = (km_fd_inherit_t){fd, keeper};
	return 0;
}

/* Only stdin, stdout and stderr: other fds a caller leaks (a shell's, make's jobserver pipe) are
 * saved as what they are, so that a resume never depends on being handed the same leaks. */
int km_fdtab_note_inherited(km_guest_t *g, km_err_t **err)
{
	drop_inherited(g);
	for (int fd = 0; fd <= 2; fd++)
		if (fcntl(fd, F_GETFD) >= 0 && keep_inherited(g, fd, err) < 0)
			return -1;
	return 0;
}

static bool same_file(int a, int b)
{
	pid_t me = getpid();
	return syscall(SYS_kcmp, me, me, KCMP_FILE, a, b) == 0;
}

/* The inherited fd whose description fd has, or -1. */
static int inherited_source(km_guest_t *g, int fd)
{
	for (int i = 0; i < g->ninherited; i++)
		if (same_file(fd, g->inherited[i].keeper))
			return g->inherited[i].fd;
	return -1;
}

/* --- saving --------------------------------------------------------------------------------- */

/* /proc/self/fdinfo/N, whole, NUL-terminated, in buf (FDINFO_MAX). */
static int read_fdinfo(int fd, char *buf, km_err_t **err)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return km_err_set(err, errno, "reading %s", path);
	size_t n = 0;
	ssize_t r;
	while (n < FDINFO_MAX - 1 && (r = read(f, buf + n, FDINFO_MAX - 1 - n)) > 0)
		n += (size_t)r;
	close(f);
	buf[n] = '\0';
	return 0;
}

static int probe_fd(int fd, km_fdprobe_t *p, char *link, char *info, km_err_t **err)
{
	p->fd = fd;
	if (fstat(fd, &p->st) < 0)
		return km_err_set(err, errno, "fstat");
	p->oflags = fcntl(fd, F_GETFL);
	if (p->oflags < 0)
		return km_err_set(err, errno, "F_GETFL");
	ssize_t n = km_fd_path(fd, link, LINK_MAX_LEN);
	if (n < 0)
		link[0] = '\0';
	p->link = link;
	p->fdinfo = info;
	return read_fdinfo(fd, info, err);
}

/* The description fd shares with an fd already in the table, or -1. */
static int64_t shared_desc(const km_fdtab_t *t, const km_fdprobe_t *p)
{
	for (uint32_t i = 0; i < t->ndescs; i++) {
		const desc_t *d = &t->descs[i];
		if (d->dev == p->st.st_dev && d->ino == p->st.st_ino && same_file(p->fd, d->fd))
			return i;
	}
	return -1;
}

static int add_fd(km_fdtab_t *t, int fd, uint32_t desc, uint32_t fdflags, km_err_t **err)
{
	fdent_t *n = grow(t->fds, t->nfds, sizeof(*n));
	if (n == NULL)
		return km_err_set(err, ENOMEM, "fd %d", fd);
	t->fds = n;
	t->fds[t->nfds++] = (fdent_t){fd, desc, fdflags};
	return 0;
}

static desc_t *add_desc(km_fdtab_t *t, const km_fdprobe_t *p, uint32_t kind, km_err_t **err)
{
	desc_t *n = grow(t->descs, t->ndescs, sizeof(*n));
	if (n == NULL) {
		km_err_set(err, ENOMEM, "fd %d", p->fd);
		return NULL;
	}
	t->descs = n;
	desc_t *d = &t->descs[t->ndescs++];
	off_t pos = lseek(p->fd, 0, SEEK_CUR);
	*d = (desc_t){.kind = kind, .oflags = (uint32_t)p->oflags, .pos = pos < 0 ? 0 : (uint64_t)pos, .fd = p->fd,
		      .dev = p->st.st_dev, .ino = p->st.st_ino};
	return d;
}

static const km_fdkind_t *claim(km_guest_t *g, const km_fdprobe_t *p)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i]->match(g, p))
			return kinds[i];
	return NULL;
}

/* One new description: inherited, claimed by a kind, or recorded as unsupported. */
static int save_desc(km_fdsave_t *sv, const km_fdprobe_t *p, km_err_t **err)
{
	int src = inherited_source(sv->g, p->fd);
	const km_fdkind_t *k = src >= 0 ? &km_fdkind_inherited : claim(sv->g, p);
	desc_t *d = add_desc(sv->t, p, k != NULL ? k->kind : KM_FDK_UNSUPPORTED, err);
	if (d == NULL)
		return -1;
	if (src >= 0) {
		km_rec_put_u32(&d->rec, (uint32_t)src);
	} else if (k == NULL) {
		char why[LINK_MAX_LEN + 64];
		snprintf(why, sizeof(why), "km cannot save this kind of file (%s, mode %#o)",
			 p->link[0] != '\0' ? p->link : "no name", (unsigned)(p->st.st_mode & S_IFMT));
		km_rec_put_str(&d->rec, why);
	} else {
		int rc = k->save(sv, p, &d->rec, err);
		if (rc < 0)
			return km_err_wrap(err, "fd %d (%s)", p->fd, k->name);
		if (rc > 0) { /* the kind knows it cannot be rebuilt: recorded so, with its reason */
			km_buf_free(&d->rec);
			d->kind = KM_FDK_UNSUPPORTED;
			km_rec_put_str(&d->rec, *err != NULL ? (*err)->msg : k->name);
			km_err_free(err);
		}
	}
	if (d->rec.failed)
		return km_err_set(err, ENOMEM, "fd %d (%s)", p->fd, kind_name(d->kind));
	return 0;
}

static int save_fd(km_fdsave_t *sv, int fd, int fdflags, char *link, char *info, km_err_t **err)
{
	km_fdprobe_t p;
	if (probe_fd(fd, &p, link, info, err) < 0)
		return km_err_wrap(err, "fd %d", fd);
	int64_t d = shared_desc(sv->t, &p);
	if (d < 0) {
		if (save_desc(sv, &p, err) < 0)
			return -1;
		d = sv->t->ndescs - 1;
	}
	return add_fd(sv->t, fd, (uint32_t)d, (uint32_t)(fdflags & FD_CLOEXEC), err);
}

int km_fdtab_save(km_guest_t *g, const km_fdtab_save_opts_t *o, km_fdtab_t **tp, km_err_t **err)
{
	km_fdtab_t *t = calloc(1, sizeof(*t));
	char *link = malloc(LINK_MAX_LEN), *info = malloc(FDINFO_MAX);
	int rc = 0;
	if (t == NULL || link == NULL || info == NULL) {
		rc = km_err_set(err, ENOMEM, "saving the program's open files");
	} else {
		km_fdsave_t sv = {.g = g, .o = o, .t = t};
		km_fd_scan_begin(); /* no fd of km's own passes through the guest's range meanwhile */
		for (int fd = 0; fd < KM_FD_RESERVED_BASE && rc == 0; fd++) {
			int fl = fcntl(fd, F_GETFD);
			if (fl >= 0)
				rc = save_fd(&sv, fd, fl, link, info, err);
		}
		km_fd_scan_end();
	}
	free(link);
	free(info);
	if (rc < 0) {
		km_fdtab_release(t, true);
		return km_err_wrap(err, "saving the program's open files");
	}
	*tp = t;
	return 0;
}

/* --- the note ------------------------------------------------------------------------------- */

/*
 * NT_KM_FILES, all little-endian, in order:
 *   u32 version (1), u32 nfds, u32 ndescs, u32 nblobs, u64 blob_off (file offset of blob 0)
 *   nblobs x {u64 off (from blob_off), u64 len, u32 crc32c, u32 reserved}
 *   nfds x {u32 fd, u32 desc, u32 fdflags}
 *   ndescs x {u32 kind, u32 oflags, u64 pos, u32 len, len bytes of the kind's record}
 */
#define HDR_LEN 24
#define BLOB_LEN 24

static uint64_t blob_start(const km_fdtab_t *t, uint32_t i)
{
	uint64_t off = 0;
	for (uint32_t k = 0; k < i; k++)
		off += (t->blobs[k].len + 7) & ~7ull;
	return off;
}

uint64_t km_fdtab_blob_bytes(const km_fdtab_t *t)
{
	return t != NULL ? blob_start(t, t->nblobs) : 0;
}

int km_fdtab_note(km_fdtab_t *t, km_buf_t *b, km_err_t **err)
{
	km_rec_put_u32(b, FDTAB_VERSION);
	km_rec_put_u32(b, t->nfds);
	km_rec_put_u32(b, t->ndescs);
	km_rec_put_u32(b, t->nblobs);
	t->crc_at = b->len;
	km_rec_put_u64(b, 0); /* blob_off, and the checksums, when the blobs are written */
	for (uint32_t i = 0; i < t->nblobs; i++) {
		km_rec_put_u64(b, blob_start(t, i));
		km_rec_put_u64(b, t->blobs[i].len);
		km_rec_put_u32(b, 0);
		km_rec_put_u32(b, 0);
	}
	for (uint32_t i = 0; i < t->nfds; i++) {
		km_rec_put_u32(b, (uint32_t)t->fds[i].fd);
		km_rec_put_u32(b, t->fds[i].desc);
		km_rec_put_u32(b, t->fds[i].fdflags);
	}
	for (uint32_t i = 0; i < t->ndescs; i++) {
		desc_t *d = &t->descs[i];
		km_rec_put_u32(b, d->kind);
		km_rec_put_u32(b, d->oflags);
		km_rec_put_u64(b, d->pos);
		km_rec_put_bytes(b, d->rec.p, (uint32_t)d->rec.len);
	}
	if (b->failed)
		return km_err_set(err, ENOMEM, "the snapshot's fd table");
	return 0;
}

/* Copies len bytes of a file blob into the snapshot at off, with their CRC32C. */
static int copy_blob(const blob_t *bl, int out, uint64_t off, uint32_t *crc)
{
	enum { CHUNK = 1 << 16 };
	km_autofree uint8_t *buf = malloc(CHUNK);
	if (buf == NULL)
		return -ENOMEM;
	uint64_t done = 0;
	while (done < bl->len) {
		size_t want = bl->len - done < CHUNK ? (size_t)(bl->len - done) : CHUNK;
		ssize_t r = pread(bl->fd, buf, want, (off_t)(bl->off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r == 0 ? -EIO : -errno; /* shrunk while saved: the guest is stopped, so never */
		*crc = km_crc32c(*crc, buf, (size_t)r);
		int rc = km_pwrite_all(out, buf, (size_t)r, off + done);
		if (rc < 0)
			return rc;
		done += (uint64_t)r;
	}
	return 0;
}

int km_fdtab_write_blobs(km_fdtab_t *t, int fd, uint64_t blob_off, uint8_t *note, km_err_t **err)
{
	memcpy(note + t->crc_at, &blob_off, sizeof(blob_off));
	for (uint32_t i = 0; i < t->nblobs; i++) {
		const blob_t *bl = &t->blobs[i];
		uint64_t off = blob_off + blob_start(t, i);
		uint32_t crc = 0;
		int rc;
		if (bl->fd < 0) {
			crc = bl->len > 0 ? km_crc32c(0, bl->mem, bl->len) : 0;
			rc = bl->len > 0 ? km_pwrite_all(fd, bl->mem, bl->len, off) : 0;
		} else {
			rc = copy_blob(bl, fd, off, &crc);
		}
		if (rc < 0)
			return km_err_set(err, -rc, "writing an open file's data (%lu bytes at %#lx)",
					  (unsigned long)bl->len, (unsigned long)off);
		memcpy(note + t->crc_at + 8 + (size_t)i * BLOB_LEN + 16, &crc, sizeof(crc));
	}
	return 0;
}
