/* Layers, the writer's side: which pages a snapshot holds and what it names below them, and the
 * snapshot the next one may name as its parent (km_snapshot_layers.h; the reader's and the
 * resume's side is km_snapshot_chain.c). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_dirty.h"
#include "km_guest.h"
#include "km_machine.h"
#include "km_mm.h"
#include "km_open_regular.h"
#include "km_pagemap.h"
#include "km_snapshot_layers.h"
#include "km_snapshot_writer.h"

#define PAGE KM_PAGE_SIZE
#define WORDS(pages) (((pages) + 63) / 64)

static bool bit(const uint64_t *b, uint64_t p)
{
	return b[p / 64] >> (p % 64) & 1;
}

static void set_bit(uint64_t *b, uint64_t p)
{
	b[p / 64] |= 1ull << (p % 64);
}

/* The snapshot this km wrote or resumed from last: the only parent the next one may name (its
 * memory is what km's dirty interval counts from). One guest per km process; a forked child's
 * tracking starts off, so a copy here only ever yields a full snapshot there. */
static struct {
	bool valid;
	uint8_t id[16];
	uint32_t depth;
	uint64_t epoch; /* the interval it was the parent of: valid as a parent while still current */
} last;

/* Each restart of the dirty interval (a collect, km_dirty_start) begins a new epoch. A live
 * snapshot restarts it at its pause but finishes (becomes `last`, or hands its interval back) only
 * when its writer reports, from the thread that waited for it, while other snapshots may be
 * planned meanwhile (the program's own HC_snapshot, the management socket): between the two no
 * parent is current, and a finish whose epoch a later plan replaced changes nothing. `lock` keeps
 * plans, pauses and finishes whole against each other. */
static uint64_t epoch;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static bool last_current(void)
{
	return last.valid && last.epoch == epoch;
}

static bool id_zero(const uint8_t id[16])
{
	static const uint8_t z[16];
	return memcmp(id, z, 16) == 0;
}

void km_layers_id_hex(const uint8_t id[16], char buf[33])
{
	for (int i = 0; i < 16; i++)
		snprintf(buf + 2 * i, 3, "%02x", id[i]);
}

static int new_id(uint8_t id[16], km_err_t **err)
{
	do {
		size_t got = 0;
		while (got < 16) {
			ssize_t n = getrandom(id + got, 16 - got, 0);
			if (n < 0 && errno != EINTR)
				return km_err_set(err, errno, "the snapshot's id (getrandom)");
			got += n > 0 ? (size_t)n : 0;
		}
	} while (id_zero(id));
	return 0;
}

/* --- the writer's plan -------------------------------------------------------------------- */

/* A private mapping whose host pages are still its own file's until written (the pagemap tells
 * apart a written copy), with an identity the resume can check. */
static bool own_file(const km_vma_t *v, km_nt_fileid_t *id)
{
	return v->backing == KM_BACK_FILE && !v->layered && !(v->flags & (MAP_SHARED | MAP_ANONYMOUS)) &&
	       km_snap_mapfile_id(v, id) && (id->size != 0 || id->mtime_sec != 0 || id->mtime_nsec != 0);
}

/* The pages of an own-file mapping the file cannot stand for: those the program wrote (a private
 * copy: present or swapped, not the file's page), those past the file's end (the host cannot
 * provide them: held, they are holes that read as zero after a resume, as without layers), and
 * the first page of a mapping at offset 0 (an ELF header: gdb finds a PIE's load address from
 * the program headers in memory, as it does in the kernel's cores). NULL when the kernel cannot
 * say (then every page is held). */
static uint64_t *written_pages(km_mm_t *mm, const km_vma_t *v, uint64_t file_size, int pagemap)
{
	uint64_t pages = (v->end - v->start) / PAGE;
	uint64_t *b = calloc(WORDS(pages) ? WORDS(pages) : 1, sizeof(*b));
	static uint64_t pm[4096]; /* every vCPU is stopped: one writer at a time */
	if (b == NULL)
		return NULL;
	for (uint64_t base = 0; base < pages; base += 4096) {
		uint64_t n = pages - base < 4096 ? pages - base : 4096;
		if (!km_pagemap_read(pagemap, mm->host + v->gpa + base * PAGE, n, pm)) {
			free(b);
			return NULL;
		}
		for (uint64_t i = 0; i < n; i++)
			if (((pm[i] & (KM_PM_PRESENT | KM_PM_SWAPPED)) && !(pm[i] & KM_PM_FILE)) ||
			    v->offset + (base + i + 1) * PAGE > file_size)
				set_bit(b, base + i);
	}
	if (v->offset == 0 && pages > 0)
		set_bit(b, 0);
	return b;
}

static int plan_alloc(km_layers_plan_t *p, size_t n)
{
	p->n = n;
	p->holds = calloc(n ? n : 1, sizeof(*p->holds));
	p->below = calloc(n ? n : 1, sizeof(*p->below));
	p->words = calloc(n ? n : 1, sizeof(*p->words));
	return p->holds != NULL && p->below != NULL && p->words != NULL ? 0 : -1;
}

/* Private file mappings' pages the program never wrote are left to their files. */
static void plan_files(km_guest_t *g, km_layers_plan_t *p)
{
	km_mm_t *mm = &g->mm;
	int pagemap = -1;
	km_nt_fileid_t id;
	for (size_t i = 0; i < mm->nvmas; i++) {
		if (p->holds[i] != NULL || p->below[i] != KM_BELOW_NONE || !own_file(&mm->vmas[i], &id))
			continue;
		if (pagemap < 0 && (pagemap = km_fd_reserve(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC))) < 0)
			return;
		if ((p->holds[i] = written_pages(mm, &mm->vmas[i], id.size, pagemap)) != NULL)
			p->below[i] = KM_BELOW_FILE;
	}
	if (pagemap >= 0)
		close(pagemap);
}

/* The parent's mapping sv holds what v's page at the same address held then: both anonymous
 * (of the same sharing), or the same file at the same offset. */
static bool same_backing(const km_vma_t *v, const km_snap_vma_t *sv)
{
	if (!sv->nt.saved || ((uint32_t)v->flags ^ sv->nt.flags) & (MAP_SHARED | MAP_ANONYMOUS))
		return false;
	if (v->flags & MAP_ANONYMOUS)
		return true;
	return v->path != NULL && sv->path != NULL && strcmp(v->path, sv->path) == 0 &&
	       sv->nt.offset - sv->nt.start == v->offset - v->start;
}

/* Marks held in b the pages of v that no mapping of the parent covers with the same backing:
 * a new or moved mapping is held whole. */
static void hold_uncovered(const km_vma_t *v, const km_snapshot_t *ps, uint64_t *b)
{
	uint64_t at = v->start;
	size_t first = 0, hi_k = ps->nvmas; /* the parent's first mapping ending past v->start */
	while (first < hi_k) {
		size_t mid = (first + hi_k) / 2;
		if (ps->vmas[mid].nt.end <= at)
			first = mid + 1;
		else
			hi_k = mid;
	}
	for (size_t k = first; k < ps->nvmas && at < v->end; k++) {
		const km_snap_vma_t *sv = &ps->vmas[k];
		if (sv->nt.end <= at)
			continue;
		uint64_t lo = sv->nt.start > at ? sv->nt.start : at;
		uint64_t hi = sv->nt.end < v->end ? sv->nt.end : v->end;
		for (; at < lo && at < v->end; at += PAGE) /* a gap before it */
			set_bit(b, (at - v->start) / PAGE);
		if (lo >= v->end)
			break;
		if (!same_backing(v, sv))
			for (uint64_t a = lo; a < hi; a += PAGE)
				set_bit(b, (a - v->start) / PAGE);
		at = hi;
	}
	for (; at < v->end; at += PAGE)
		set_bit(b, (at - v->start) / PAGE);
}

/* The parent path as the child records it: relative to the child's directory when both lie
 * under one directory below /, else absolute. With dir_fn both are names in one directory. */
static int record_parent(const km_snapshot_req_t *req, char *out, size_t cap, km_err_t **err)
{
	if (req->dir_fn != NULL || req->parent[0] != '/' || req->path[0] != '/') {
		if ((size_t)snprintf(out, cap, "%s", req->parent) >= cap)
			return km_err_set(err, ENAMETOOLONG, "parent %s", req->parent);
		return 0;
	}
	const char *c = req->path, *q = req->parent;
	size_t common = 0; /* bytes of the longest shared run of whole directories */
	for (size_t i = 0; c[i] != '\0' && c[i] == q[i]; i++)
		if (c[i] == '/')
			common = i + 1;
	size_t o = 0;
	out[0] = '\0';
	if (common <= 1) { /* nothing shared but /: absolute */
		o = (size_t)snprintf(out, cap, "%s", q);
	} else {
		for (const char *s = c + common; (s = strchr(s, '/')) != NULL; s++)
			o += (size_t)snprintf(out + (o < cap ? o : cap), o < cap ? cap - o : 0, "../");
		o += (size_t)snprintf(out + (o < cap ? o : cap), o < cap ? cap - o : 0, "%s", q + common);
	}
	if (o >= cap)
		return km_err_set(err, ENAMETOOLONG, "parent %s", req->parent);
	return 0;
}

/* The parent req names, opened (a regular file only: a FIFO or a device is never opened). */
static int open_req_parent(const km_snapshot_req_t *req, km_err_t **err)
{
	int fd;
	if (req->parent_fn != NULL) {
		if ((fd = req->parent_fn(req->parent_arg)) < 0)
			return km_err_set(err, -fd, "parent %s", req->parent);
		return fd;
	}
	bool not_regular;
	if ((fd = km_open_regular(req->parent, &not_regular)) < 0 && not_regular)
		return km_err_set(err, 0, "parent %s: not a regular file", req->parent);
	if (fd < 0)
		return km_err_set(err, errno, "parent %s", req->parent);
	return fd;
}

/* The parent req names, checked to be the last snapshot this km wrote or resumed from. */
static int check_parent(const km_snapshot_req_t *req, km_layers_plan_t *p, km_snapshot_t *ps, km_err_t **err)
{
	int fd = open_req_parent(req, err);
	if (fd < 0)
		return -1;
	struct stat pst;
	if (fstat(fd, &pst) == 0) { /* the writer refuses to replace it (km_layers_replaces) */
		p->parent_dev = (uint64_t)pst.st_dev;
		p->parent_ino = (uint64_t)pst.st_ino;
	}
	if (km_snapshot_open_fd(fd, req->parent, ps, err) < 0)
		return km_err_wrap(err, "parent");
	if (!ps->layered || !last_current() || memcmp(ps->layers.id, last.id, 16) != 0)
		return km_err_set(err, 0, "parent %s is not the last snapshot this km wrote or resumed from", req->parent);
	return 0;
}

/* Only what changed since the parent: the dirty interval, plus mappings the parent lacks. */
static int plan_incremental(km_guest_t *g, const km_snapshot_req_t *req, km_layers_plan_t *p, km_err_t **err)
{
	km_snapshot_t ps;
	memset(&ps, 0, sizeof(ps)); /* closed whatever check_parent got to */
	ps.fd = -1;
	int rc = check_parent(req, p, &ps, err);
	uint32_t max = g->opts.snapshot_chain ? g->opts.snapshot_chain : KM_LAYERS_DEFAULT_DEPTH;
	uint64_t **dirty = NULL;
	km_err_t *why = NULL;
	/* Deeper than allowed, or changes not tracked: a full snapshot (the chain's "merge"). */
	if (rc < 0 || ps.layers.depth + 1 > max || km_dirty_collect(g, &dirty, &why) < 0) {
		km_err_free(&why);
		km_snapshot_close(&ps);
		return rc;
	}
	km_mm_t *mm = &g->mm;
	p->dirty = dirty; /* kept as collected, to be handed back whole if the write fails */
	p->epoch = ++epoch;
	for (size_t i = 0; i < mm->nvmas; i++) {
		km_vma_t *v = &mm->vmas[i];
		uint64_t pages = (v->end - v->start) / PAGE;
		if ((p->holds[i] = calloc(WORDS(pages) ? WORDS(pages) : 1, 8)) != NULL) {
			if (dirty[i] != NULL)
				memcpy(p->holds[i], dirty[i], WORDS(pages) * 8);
			else
				memset(p->holds[i], 0xff, WORDS(pages) * 8); /* not told: every page changed */
		}
		if (p->holds[i] == NULL) {
			rc = km_err_set(err, ENOMEM, "the pages an incremental snapshot holds");
			break;
		}
		if (pages % 64) /* nothing past the end: the reader refuses it */
			p->holds[i][pages / 64] &= (1ull << (pages % 64)) - 1;
		p->below[i] = km_snap_vma_saved(v) ? KM_BELOW_PARENT : KM_BELOW_NONE;
		hold_uncovered(v, &ps, p->holds[i]);
	}
	if (rc == 0) {
		p->nt.depth = ps.layers.depth + 1;
		memcpy(p->nt.parent_id, ps.layers.id, 16);
		rc = record_parent(req, p->parent, sizeof(p->parent), err);
	}
	km_snapshot_close(&ps);
	return rc;
}

/* A segment that holds every page needs no bitmap; the others' lengths are noted. */
static void drop_full(km_layers_plan_t *p, km_mm_t *mm)
{
	for (size_t i = 0; i < p->n; i++) {
		uint64_t pages = (mm->vmas[i].end - mm->vmas[i].start) / PAGE, p_i = 0;
		p->words[i] = WORDS(pages);
		if (p->holds[i] == NULL)
			continue;
		while (p_i < pages && bit(p->holds[i], p_i))
			p_i++;
		if (p_i == pages || p->below[i] == KM_BELOW_NONE) {
			free(p->holds[i]);
			p->holds[i] = NULL;
			p->below[i] = KM_BELOW_NONE;
		}
	}
}

int km_layers_plan(km_guest_t *g, const km_snapshot_req_t *req, km_layers_plan_t *p, km_err_t **err)
{
	memset(p, 0, sizeof(*p));
	/* A core is no layer: it never becomes a parent, and the program dies (its other threads
	 * still running) with the tracker left as it is. */
	p->detached = req->detached || req->reason == KM_REASON_CORE;
	if (new_id(p->nt.id, err) < 0)
		return -1;
	if (plan_alloc(p, g->mm.nvmas) < 0) {
		km_layers_plan_free(p);
		return km_err_set(err, ENOMEM, "the pages a snapshot holds");
	}
	bool self = req->self_contained || g->opts.self_contained || req->reason == KM_REASON_CORE;
	pthread_mutex_lock(&lock);
	p->epoch = epoch;
	int rc = 0;
	if (req->parent != NULL && !p->detached)
		rc = plan_incremental(g, req, p, err);
	pthread_mutex_unlock(&lock);
	if (rc < 0) {
		km_layers_finish(g, p, false);
		return -1;
	}
	if (!self)
		plan_files(g, p);
	drop_full(p, &g->mm);
	return 0;
}

int km_layers_replaces(const km_layers_plan_t *p, int dfd, const char *name, km_err_t **err)
{
	struct stat st;
	if (p->parent_ino == 0 || p->nt.depth == 0 || fstatat(dfd, name, &st, 0) != 0 ||
	    (uint64_t)st.st_dev != p->parent_dev || (uint64_t)st.st_ino != p->parent_ino)
		return 0;
	return km_err_set(err, 0, "parent %s is the file this snapshot would replace", p->parent);
}

uint64_t km_layers_filesz(const km_layers_plan_t *p, size_t i, uint64_t size)
{
	if (p == NULL || p->holds == NULL || i >= p->n || p->holds[i] == NULL)
		return size;
	for (uint64_t w = p->words[i]; w-- > 0;)
		if (p->holds[i][w] != 0)
			return (w * 64 + 64 - (uint64_t)__builtin_clzll(p->holds[i][w])) * PAGE;
	return 0;
}

uint32_t km_layers_below(const km_layers_plan_t *p, size_t i)
{
	return p != NULL && p->holds != NULL && i < p->n && p->holds[i] != NULL ? p->below[i] : KM_BELOW_NONE;
}

static uint64_t plan_words(const km_layers_plan_t *p, size_t i)
{
	return p->holds != NULL && p->holds[i] != NULL ? p->words[i] : 0;
}

size_t km_layers_note_len(const km_layers_plan_t *p)
{
	size_t len = sizeof(km_nt_layers_t) + p->n * sizeof(km_nt_layer_seg_t);
	for (size_t i = 0; i < p->n; i++)
		len += plan_words(p, i) * 8;
	size_t plen = p->parent[0] ? strlen(p->parent) + 1 : 0;
	return len + ((plen + 7) & ~(size_t)7);
}

void km_layers_note_fill(const km_layers_plan_t *p, uint8_t *d)
{
	size_t plen = p->parent[0] ? strlen(p->parent) + 1 : 0;
	km_nt_layers_t h = p->nt;
	h.nsegments = (uint32_t)p->n;
	h.path_len = (uint32_t)((plen + 7) & ~(size_t)7);
	memcpy(d, &h, sizeof(h));
	uint8_t *seg = d + sizeof(h), *bits = seg + p->n * sizeof(km_nt_layer_seg_t);
	for (size_t i = 0; i < p->n; i++) {
		km_nt_layer_seg_t r = {.below = p->holds != NULL ? p->below[i] : KM_BELOW_NONE,
				       .nwords = plan_words(p, i)};
		memcpy(seg + i * sizeof(r), &r, sizeof(r));
		if (r.nwords > 0)
			memcpy(bits, p->holds[i], r.nwords * 8);
		bits += r.nwords * 8;
	}
	if (plen > 0)
		memcpy(bits, p->parent, plen); /* the padding was zeroed by the note buffer */
}

void km_layers_plan_free(km_layers_plan_t *p)
{
	km_dirty_free(p->dirty, p->n);
	p->dirty = NULL;
	km_dirty_free(p->holds, p->n);
	free(p->below);
	free(p->words);
	p->holds = NULL;
	p->below = NULL;
	p->words = NULL;
}

void km_layers_paused(km_guest_t *g, km_layers_plan_t *p)
{
	if (p->detached || p->dirty != NULL || !g->opts.track_changes)
		return;
	km_err_t *e = NULL;
	pthread_mutex_lock(&lock);
	if (km_dirty_start(g, &e) < 0) {
		km_err_free(&e); /* untracked: the next child is a full snapshot */
	} else {
		p->started = true;
		p->epoch = ++epoch; /* no parent is current until this one finishes */
	}
	pthread_mutex_unlock(&lock);
}

void km_layers_finish(km_guest_t *g, km_layers_plan_t *p, bool written)
{
	if (p->detached) {
		km_layers_plan_free(p);
		return;
	}
	pthread_mutex_lock(&lock);
	if (p->epoch != epoch) {
		/* A later snapshot restarted the interval since this one's pause: what this one
		 * collected is older than that restart, and `last` is the later one's to set. */
	} else if (written) {
		last.valid = true;
		memcpy(last.id, p->nt.id, 16);
		last.depth = p->nt.depth;
		/* A collect began the next interval; else changes count from this file on. */
		km_err_t *e = NULL;
		if (p->dirty == NULL && !p->started && g->opts.track_changes) {
			if (km_dirty_start(g, &e) < 0)
				km_err_free(&e); /* untracked: the next child is a full snapshot */
			else
				epoch++;
		}
		last.epoch = epoch;
	} else if (p->dirty != NULL) {
		km_dirty_return(g, p->dirty); /* frees it */
		p->dirty = NULL;
		last.epoch = epoch; /* the interval counts from the parent again */
	} else if (p->started) {
		last.valid = false; /* the interval counts from the failed file's pause */
	}
	pthread_mutex_unlock(&lock);
	km_layers_plan_free(p);
}

void km_layers_forked(void)
{
	pthread_mutex_init(&lock, NULL);
	last.valid = false;
}

void km_layers_resumed(km_guest_t *g, const km_snapshot_t *s)
{
	pthread_mutex_lock(&lock);
	last.valid = s->layered;
	if (s->layered) {
		memcpy(last.id, s->layers.id, 16);
		last.depth = s->layers.depth;
	}
	km_err_t *e = NULL;
	if (g->opts.track_changes && km_dirty_start(g, &e) < 0)
		km_err_free(&e); /* untracked: the next snapshot that names this one is full */
	last.epoch = ++epoch;
	pthread_mutex_unlock(&lock);
}
