/* Layers, the reader's and the resume's side (km_snapshot_layers.h): NT_KM_LAYERS checked, the
 * chain below a snapshot opened and checked, each page mapped from the newest layer holding it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_machine.h"
#include "km_mm.h"
#include "km_open_regular.h"
#include "km_snapshot_layers.h"

#define PAGE KM_PAGE_SIZE
#define WORDS(pages) (((pages) + 63) / 64)

static bool id_zero(const uint8_t id[16])
{
	static const uint8_t z[16];
	return memcmp(id, z, 16) == 0;
}

/* --- reading ------------------------------------------------------------------------------ */

/* Bit p of a bitmap in the notes (only 4-byte aligned). */
static bool held_bit(const uint8_t *b, uint64_t p)
{
	uint64_t w;
	memcpy(&w, b + p / 64 * 8, sizeof(w));
	return w >> (p % 64) & 1;
}

/* The identity NT_KM_DYNLINKER records for mapping i, if any. */
static bool mapfile_of(const km_snapshot_t *s, size_t i, km_nt_fileid_t *id)
{
	for (uint32_t k = 0; k < s->nmapfiles; k++) {
		km_nt_mapfile_t f;
		memcpy(&f, s->mapfiles + (size_t)k * sizeof(f), sizeof(f));
		if (f.vma == i) {
			*id = f.id;
			return true;
		}
	}
	return false;
}

/* One segment's record and bitmap, at *at in the note. */
static int parse_seg(km_snapshot_t *s, size_t i, const km_nt_layer_seg_t *r, const uint8_t *desc, size_t len,
		     size_t *at, bool has_parent)
{
	km_snap_vma_t *v = &s->vmas[i];
	uint64_t pages = (v->nt.end - v->nt.start) / PAGE;
	km_nt_fileid_t id = {0};
	if (r->below == KM_BELOW_NONE) /* every page: all of them in the file */
		return r->nwords != 0 || v->nt.saved == 2 || (v->nt.saved && v->file_len != pages * PAGE) ? -1 : 0;
	if (v->nt.saved != 2 || r->nwords != WORDS(pages) || r->nwords > (len - *at) / 8)
		return -1;
	if (r->below == KM_BELOW_PARENT ? !has_parent
	    : r->below == KM_BELOW_FILE ? (v->nt.flags & (MAP_SHARED | MAP_ANONYMOUS)) || !mapfile_of(s, i, &id)
					: true)
		return -1;
	const uint8_t *b = desc + *at;
	for (uint64_t p = pages; p < r->nwords * 64; p++) /* nothing past the segment's end */
		if (held_bit(b, p))
			return -1;
	for (uint64_t p = v->file_len / PAGE; p < pages; p++) /* past its bytes in the file */
		if (held_bit(b, p))
			return -1;
	/* A page left to the mapping's file lies wholly inside it (as recorded, and the resume
	 * checks the file has that size): past its end the host has no page, and a read is a SIGBUS. */
	if (r->below == KM_BELOW_FILE) {
		uint64_t in_file = id.size > v->nt.offset ? (id.size - v->nt.offset) / PAGE : 0;
		for (uint64_t p = in_file; p < pages; p++)
			if (!held_bit(b, p))
				return -1;
	}
	v->below = r->below;
	v->held = b;
	*at += (size_t)r->nwords * 8;
	return 0;
}

int km_layers_parse(km_snapshot_t *s, const uint8_t *desc, size_t len, const char **why)
{
	km_nt_layers_t h;
	*why = "bad NT_KM_LAYERS note";
	if (len < sizeof(h))
		return -1;
	memcpy(&h, desc, sizeof(h));
	bool has_parent = !id_zero(h.parent_id);
	if (id_zero(h.id) || memcmp(h.id, h.parent_id, 16) == 0 || h.nsegments != s->nvmas ||
	    h.depth > KM_LAYERS_MAX_DEPTH || (h.path_len & 7u) || has_parent != (h.depth > 0) ||
	    has_parent != (h.path_len > 0))
		return -1;
	if (h.nsegments > (len - sizeof(h)) / sizeof(km_nt_layer_seg_t))
		return -1;
	size_t at = sizeof(h) + (size_t)h.nsegments * sizeof(km_nt_layer_seg_t);
	for (size_t i = 0; i < h.nsegments; i++) {
		km_nt_layer_seg_t r;
		memcpy(&r, desc + sizeof(h) + i * sizeof(r), sizeof(r));
		if (parse_seg(s, i, &r, desc, len, &at, has_parent) < 0)
			return *why = "bad NT_KM_LAYERS segment record or bitmap", -1;
	}
	if (len - at != h.path_len)
		return -1;
	const char *path = (const char *)desc + at;
	if (h.path_len > 0 && (memchr(path, '\0', h.path_len) == NULL || path[0] == '\0'))
		return -1;
	s->layered = true;
	s->layers = h;
	s->parent_path = h.path_len > 0 ? path : NULL;
	return 0;
}

uint64_t km_layers_held_pages(const km_snapshot_t *s, size_t i)
{
	const km_snap_vma_t *v = &s->vmas[i];
	uint64_t pages = (v->nt.end - v->nt.start) / PAGE, n = 0;
	if (!v->nt.saved)
		return 0;
	if (v->held == NULL)
		return pages;
	for (uint64_t p = 0; p < pages; p++)
		n += held_bit(v->held, p);
	return n;
}

/* --- the chain ---------------------------------------------------------------------------- */

/* rel taken from the directory of child (rel absolute: itself). */
static char *beside(const char *child, const char *rel)
{
	char *out = NULL;
	const char *slash = child != NULL ? strrchr(child, '/') : NULL;
	if (rel[0] == '/' || slash == NULL)
		out = strdup(rel);
	else if (asprintf(&out, "%.*s/%s", (int)(slash - child), child, rel) < 0)
		out = NULL;
	return out;
}

/* Opens one member: a regular file (a FIFO or device is never opened), then read and checked as
 * any snapshot. */
static int open_member(const char *path, int passed, km_snapshot_t *p, km_err_t **err)
{
	int fd;
	memset(p, 0, sizeof(*p));
	p->fd = -1;
	if (passed >= 0) {
		fd = km_fd_reserve(dup(passed));
	} else {
		bool not_regular;
		if ((fd = km_open_regular(path, &not_regular)) < 0 && not_regular)
			return km_err_set(err, 0, "%s: not a regular file", path);
	}
	if (fd < 0)
		return km_err_set(err, errno, "%s", path);
	return km_snapshot_open_fd(fd, path, p, err);
}

/* How errors name member m of the chain opened from path (the top one has no name of its own). */
static const char *shown_name(const km_snapshot_t *m, const char *path)
{
	return m->name != NULL ? m->name : path != NULL ? path : "snapshot";
}

static int open_parent(km_snapshot_t *cur, const char *curpath, const int *fds, size_t nfds, size_t d,
		       km_snapshot_t **out, char **ppath, km_err_t **err)
{
	const char *shown = shown_name(cur, curpath);
	if (nfds == 0 && curpath == NULL && cur->parent_path[0] != '/')
		return km_err_set(err, 0, "%s: its parent %s is named relative to the snapshot's directory, which an "
				  "fd does not have: pass the chain with --snapshot-parent-fd", shown, cur->parent_path);
	if (nfds > 0 && d >= nfds)
		return km_err_set(err, 0, "%s: its parent %s was not passed (--snapshot-parent-fd, one per member)",
				  shown, cur->parent_path);
	char fdname[48];
	snprintf(fdname, sizeof(fdname), "--snapshot-parent-fd=%d", nfds > 0 ? fds[d] : -1);
	*ppath = nfds > 0 ? strdup(fdname) : beside(curpath, cur->parent_path);
	km_snapshot_t *p = calloc(1, sizeof(*p));
	if (*ppath == NULL || p == NULL) {
		free(p);
		return km_err_set(err, ENOMEM, "%s", shown);
	}
	if (open_member(*ppath, nfds > 0 ? fds[d] : -1, p, err) < 0) {
		km_snapshot_close(p);
		free(p);
		return km_err_wrap(err, "%s: its parent %s", shown, cur->parent_path);
	}
	*out = p;
	return 0;
}

int km_layers_open_chain(km_snapshot_t *s, const char *path, const int *fds, size_t nfds, km_err_t **err)
{
	km_snapshot_t *cur = s;
	const char *curpath = path;
	size_t d = 0;
	for (; cur->layered && cur->layers.depth > 0; d++) {
		char *ppath = NULL;
		km_snapshot_t *p = NULL;
		if (open_parent(cur, curpath, fds, nfds, d, &p, &ppath, err) < 0) {
			free(ppath);
			return -1;
		}
		cur->parent = p;
		p->name = ppath;
		/* A changed or replaced parent, a depth that lies, a loop (depths cannot go down
		 * forever): each is a parent that is not the one the child was written on. */
		if (!p->layered || memcmp(p->layers.id, cur->layers.parent_id, 16) != 0)
			return km_err_set(err, 0, "%s: its parent %s is not the snapshot it was written on (changed or "
					  "replaced since)", shown_name(cur, path), ppath);
		if (p->layers.depth + 1 != cur->layers.depth)
			return km_err_set(err, 0, "%s: corrupt snapshot: its parent %s has depth %u, it %u",
					  shown_name(cur, path), ppath, p->layers.depth, cur->layers.depth);
		cur = p;
		curpath = ppath;
	}
	if (nfds > d)
		return km_err_set(err, 0, "%s: %zu --snapshot-parent-fd for a chain of %zu below it",
				  shown_name(s, path), nfds, d);
	return 0;
}

/* --- resuming ----------------------------------------------------------------------------- */

/* The segment of s covering a, or -1. */
static ssize_t seg_at(const km_snapshot_t *s, uint64_t a)
{
	size_t lo = 0, hi = s->nvmas;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->vmas[mid].nt.end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nvmas && s->vmas[lo].nt.start <= a ? (ssize_t)lo : -1;
}

/* Where page a of segment si of s comes from: the layer and segment holding it (0), the file of
 * that layer's segment (1), or nowhere (-1: the chain does not cover it). */
static int resolve(const km_snapshot_t *s, size_t si, uint64_t a, const km_snapshot_t **ls, size_t *lsi)
{
	for (;;) {
		const km_snap_vma_t *v = &s->vmas[si];
		*ls = s;
		*lsi = si;
		if (v->below == KM_BELOW_NONE || held_bit(v->held, (a - v->nt.start) / PAGE))
			return 0;
		if (v->below == KM_BELOW_FILE)
			return 1;
		ssize_t k = (s = s->parent) != NULL ? seg_at(s, a) : -1;
		if (k < 0 || !s->vmas[k].nt.saved)
			return -1;
		si = (size_t)k;
	}
}

/* The files below mappings, opened once per mapping resumed and all kept open until its runs are
 * mapped: a run being built holds one of them, so none may be closed early. */
typedef struct file_ent {
	const km_snapshot_t *ls;
	size_t si;
	int fd;
} file_ent_t;

typedef struct file_cache {
	file_ent_t *e;
	size_t n, cap;
} file_cache_t;

/* The mapping's own file, as NT_KM_DYNLINKER recorded it (size and modification time). */
static int vma_file(file_cache_t *c, const km_snapshot_t *ls, size_t si, const char *name, km_err_t **err)
{
	for (size_t k = 0; k < c->n; k++)
		if (c->e[k].ls == ls && c->e[k].si == si)
			return c->e[k].fd;
	const km_snap_vma_t *v = &ls->vmas[si];
	km_nt_fileid_t id = {0};
	struct stat st;
	mapfile_of(ls, si, &id); /* the reader made sure there is one */
	/* The path is the file's word: a device or FIFO is never opened (opening one can act) */
	bool not_regular;
	int fd = km_open_regular(v->path, &not_regular);
	if (fd < 0 && not_regular)
		return km_err_set(err, 0, "%s: %s, mapped by the program at %#lx, is not a regular file", name, v->path,
				  (unsigned long)v->nt.start);
	if (fd < 0)
		return km_err_set(err, errno, "%s: %s, mapped by the program at %#lx", name, v->path,
				  (unsigned long)v->nt.start);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != id.size ||
	    st.st_mtim.tv_sec != id.mtime_sec || st.st_mtim.tv_nsec != id.mtime_nsec) {
		close(fd);
		return km_err_set(err, 0, "%s: %s, mapped by the program at %#lx, changed since the snapshot "
				  "(size or modification time differ)", name, v->path, (unsigned long)v->nt.start);
	}
	if (c->n == c->cap) {
		size_t cap = c->cap == 0 ? 8 : c->cap * 2;
		file_ent_t *e = realloc(c->e, cap * sizeof(*e));
		if (e == NULL) {
			close(fd);
			return km_err_set(err, ENOMEM, "%s", name);
		}
		c->e = e;
		c->cap = cap;
	}
	c->e[c->n++] = (file_ent_t){ls, si, fd};
	return fd;
}

typedef struct run {
	int fd;
	uint64_t off, first, n; /* file offset, first page, pages */
} run_t;

/* Maps run r of segment sv at host. 0, or -1 with *err. */
static int flush(uint8_t *host, run_t *r, const km_snap_vma_t *sv, const char *name, km_err_t **err)
{
	if (r->n == 0)
		return 0;
	void *at = host + r->first * PAGE;
	if (mmap(at, r->n * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, r->fd, (off_t)r->off) == MAP_FAILED)
		return km_err_set(err, errno, "%s: mapping the pages of %#lx-%#lx from the layers below", name,
				  (unsigned long)sv->nt.start, (unsigned long)sv->nt.end);
	r->n = 0;
	return 0;
}

static int map_runs(uint8_t *host, const km_snapshot_t *s, size_t i, file_cache_t *c, const char *name,
		    km_err_t **err)
{
	const km_snap_vma_t *sv = &s->vmas[i];
	uint64_t pages = (sv->nt.end - sv->nt.start) / PAGE;
	run_t r = {-1, 0, 0, 0};
	for (uint64_t pg = 0; pg < pages; pg++) {
		uint64_t a = sv->nt.start + pg * PAGE;
		const km_snapshot_t *ls;
		size_t lsi;
		int kind = resolve(s, i, a, &ls, &lsi);
		if (kind < 0)
			return km_err_set(err, 0, "%s: corrupt snapshot: no layer of its chain holds page %#lx", name,
					  (unsigned long)a);
		const km_snap_vma_t *lv = &ls->vmas[lsi];
		int fd = kind == 0 ? ls->fd : vma_file(c, ls, lsi, name, err);
		uint64_t off = kind == 0 ? lv->file_off + (a - lv->nt.start) : lv->nt.offset + (a - lv->nt.start);
		if (fd < 0)
			return -1;
		bool top = kind == 0 && ls == s; /* already mapped there by the restore */
		if (!top && r.n > 0 && r.fd == fd && r.off + r.n * PAGE == off && r.first + r.n == pg) {
			r.n++;
			continue;
		}
		if (flush(host, &r, sv, name, err) < 0)
			return -1;
		if (!top)
			r = (run_t){fd, off, pg, 1};
	}
	return flush(host, &r, sv, name, err);
}

int km_layers_map_vma(km_mm_t *mm, const km_snapshot_t *s, size_t i, const char *name, km_err_t **err)
{
	const km_snap_vma_t *sv = &s->vmas[i];
	if (sv->below == KM_BELOW_NONE)
		return 0;
	km_vma_t *v = km_vma_find(mm, sv->nt.start);
	if (v == NULL)
		return km_err_set(err, EFAULT, "%s: mapping %#lx", name, (unsigned long)sv->nt.start);
	file_cache_t c = {NULL, 0, 0};
	int rc = map_runs(mm->host + v->gpa + (sv->nt.start - v->start), s, i, &c, name, err);
	for (size_t k = 0; k < c.n; k++)
		close(c.e[k].fd);
	free(c.e);
	/* Its host pages are several files' now: a later snapshot reads every page of it. */
	v->layered = true;
	v->backing = KM_BACK_FILE;
	return rc;
}
