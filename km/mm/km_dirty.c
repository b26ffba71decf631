/* Which guest pages changed since the last snapshot: see km_dirty.h.
 *
 * Everything is kept per page of guest-PHYSICAL program memory [user_gpa, gpa_size), as KVM's log
 * is: km's marks land in one bitmap over it, and a collect ORs KVM's per-slot logs into a copy of
 * that bitmap, then reads each VMA's pages out of the copy (a VMA is one contiguous guest-physical
 * range). Changes of mappings need no record of the old layout: whatever is mapped anew is marked
 * whole where it is mapped. */
#include "km_dirty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "km_dirty_internal.h"
#include "km_dirtylog.h"
#include "km_guest.h"

#define CHUNK_PAGES (KM_SLOT_CHUNK / KM_PAGE_SIZE)
#define CHUNK_WORDS (CHUNK_PAGES / 64)
#define WORDS(n) (((n) + 63) / 64)

struct km_dirty {
	km_dirty_ops_t ops;
	uint64_t npages; /* pages of guest-physical [user_gpa, gpa_size) */
	uint64_t *marks; /* a bit per such page: km's marks, and intervals given back */
	bool lost;       /* a slot registered while tracking could not be logged */
};

static struct km_dirty *tracker(const km_mm_t *mm)
{
	return __atomic_load_n(&mm->dirty, __ATOMIC_ACQUIRE);
}

/* --- bitmaps --- */

static uint64_t low_bits(uint64_t n)
{
	return n >= 64 ? ~0ull : (1ull << n) - 1;
}

void km_bits_extract(uint64_t *dst, const uint64_t *src, uint64_t off, uint64_t n)
{
	if (n == 0)
		return;
	const uint64_t *s = src + off / 64;
	uint64_t sh = off % 64, last = (off + n - 1) / 64 - off / 64; /* last word of src to read */
	for (uint64_t w = 0; w < WORDS(n); w++) {
		uint64_t x = s[w] >> sh;
		if (sh != 0 && w + 1 <= last)
			x |= s[w + 1] << (64 - sh);
		dst[w] = x;
	}
	if (n % 64)
		dst[WORDS(n) - 1] &= low_bits(n % 64);
}

void km_bits_or_at(uint64_t *dst, uint64_t off, const uint64_t *src, uint64_t n)
{
	for (uint64_t w = 0; w < WORDS(n); w++) {
		uint64_t x = src[w];
		if (w == WORDS(n) - 1 && n % 64)
			x &= low_bits(n % 64);
		if (x == 0)
			continue;
		uint64_t pos = off + w * 64, sh = pos % 64;
		__atomic_fetch_or(&dst[pos / 64], x << sh, __ATOMIC_RELAXED);
		if (sh != 0 && (x >> (64 - sh)) != 0)
			__atomic_fetch_or(&dst[pos / 64 + 1], x >> (64 - sh), __ATOMIC_RELAXED);
	}
}

void km_bits_set_range(uint64_t *dst, uint64_t off, uint64_t n)
{
	while (n > 0) {
		uint64_t sh = off % 64, take = 64 - sh < n ? 64 - sh : n;
		uint64_t want = low_bits(take) << sh;
		/* Pages written again and again stay marked: a plain load saves the locked op then. */
		if ((__atomic_load_n(&dst[off / 64], __ATOMIC_RELAXED) & want) != want)
			__atomic_fetch_or(&dst[off / 64], want, __ATOMIC_RELAXED);
		off += take;
		n -= take;
	}
}

/* --- slots --- */

static uint64_t nchunks(const km_mm_t *mm)
{
	return (mm->gpa_size - mm->user_gpa + KM_SLOT_CHUNK - 1) / KM_SLOT_CHUNK;
}

static uint64_t chunk_size(const km_mm_t *mm, uint64_t c)
{
	uint64_t start = mm->user_gpa + c * KM_SLOT_CHUNK;
	return start + KM_SLOT_CHUNK > mm->gpa_size ? mm->gpa_size - start : KM_SLOT_CHUNK;
}

static bool chunk_present(const km_mm_t *mm, uint64_t c)
{
	return mm->slot_present != NULL && mm->slot_present[c];
}

/* --- marks --- */

void km_dirty_mark_gpa(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	struct km_dirty *d = tracker(mm);
	if (d == NULL || len == 0 || gpa < mm->user_gpa)
		return; /* below user_gpa: the runtime and page tables, not program memory */
	uint64_t first = (gpa - mm->user_gpa) / KM_PAGE_SIZE;
	uint64_t end = (gpa + len - 1 - mm->user_gpa) / KM_PAGE_SIZE + 1;
	if (first >= d->npages)
		return;
	km_bits_set_range(d->marks, first, (end < d->npages ? end : d->npages) - first);
}

void km_dirty_mark(km_mm_t *mm, uint64_t gva, uint64_t len)
{
	if (__builtin_expect(tracker(mm) == NULL, 1) || len == 0)
		return;
	uint64_t end = gva + len < gva ? UINT64_MAX : gva + len;
	for (size_t i = km_vma_index(mm, gva); i < mm->nvmas && mm->vmas[i].start < end; i++) {
		const km_vma_t *v = &mm->vmas[i];
		uint64_t s = v->start > gva ? v->start : gva, e = v->end < end ? v->end : end;
		km_dirty_mark_gpa(mm, v->gpa + (s - v->start), e - s);
	}
}

/* --- start, collect, return --- */

static int log_slots(km_mm_t *mm, const km_dirty_ops_t *ops, km_err_t **err)
{
	for (uint64_t c = 0; c < nchunks(mm); c++) {
		if (!chunk_present(mm, c))
			continue;
		uint64_t gpa = mm->user_gpa + c * KM_SLOT_CHUNK;
		int rc = ops->log_on(ops->ctx, (int)(1 + c), gpa, chunk_size(mm, c), mm->host + gpa);
		if (rc < 0)
			return km_err_set(err, -rc, "turning on KVM's dirty log for memory slot %d", (int)(1 + c));
	}
	return 0;
}

/* Moves KVM's logs and km's marks into snap (a bit per page, like marks), starting a new interval.
 * On failure what was moved goes back to the marks. */
static int drain(km_mm_t *mm, struct km_dirty *d, uint64_t *snap, km_err_t **err)
{
	uint64_t scratch[CHUNK_WORDS];
	for (uint64_t c = 0; c < nchunks(mm); c++) {
		if (!chunk_present(mm, c))
			continue;
		int rc = d->ops.fetch(d->ops.ctx, (int)(1 + c), scratch);
		if (rc < 0) {
			km_bits_or_at(d->marks, 0, snap, d->npages);
			return km_err_set(err, -rc, "reading KVM's dirty log of memory slot %d", (int)(1 + c));
		}
		uint64_t *s = snap + c * CHUNK_WORDS, *m = d->marks + c * CHUNK_WORDS;
		for (uint64_t w = 0; w < WORDS(chunk_size(mm, c) / KM_PAGE_SIZE); w++)
			s[w] |= scratch[w] | __atomic_exchange_n(&m[w], 0, __ATOMIC_RELAXED);
	}
	return 0;
}

/* True if the pages of v can change where neither KVM nor km sees it: a shared mapping is also
 * written by other processes (a forked child, another program mapping the file). */
static bool untracked(const km_mm_t *mm, const struct km_dirty *d, const km_vma_t *v)
{
	return (v->flags & MAP_SHARED) || v->gpa < mm->user_gpa ||
	       (v->gpa - mm->user_gpa) / KM_PAGE_SIZE + (v->end - v->start) / KM_PAGE_SIZE > d->npages;
}

static uint64_t *vma_bits(const km_mm_t *mm, const struct km_dirty *d, const km_vma_t *v, const uint64_t *snap)
{
	uint64_t n = (v->end - v->start) / KM_PAGE_SIZE;
	uint64_t *b = calloc(WORDS(n) ? WORDS(n) : 1, sizeof(*b));
	if (b == NULL)
		return NULL;
	if (untracked(mm, d, v)) {
		km_bits_set_range(b, 0, n);
		return b;
	}
	km_bits_extract(b, snap, (v->gpa - mm->user_gpa) / KM_PAGE_SIZE, n);
	return b;
}

static uint64_t **holds_of(km_mm_t *mm, struct km_dirty *d, const uint64_t *snap)
{
	uint64_t **holds = calloc(mm->nvmas ? mm->nvmas : 1, sizeof(*holds));
	if (holds == NULL)
		return NULL;
	for (size_t i = 0; i < mm->nvmas; i++) {
		if ((holds[i] = vma_bits(mm, d, &mm->vmas[i], snap)) == NULL) {
			km_dirty_free(holds, i);
			return NULL;
		}
	}
	return holds;
}

/* A copy of the whole page bitmap; calloc of that size maps fresh zero pages, so only the words
 * of registered slots cost memory. */
static uint64_t *new_snap(const struct km_dirty *d)
{
	return calloc(WORDS(d->npages), sizeof(uint64_t));
}

int km_dirty_collect_mm(km_mm_t *mm, uint64_t ***holds, km_err_t **err)
{
	*holds = NULL;
	struct km_dirty *d = tracker(mm);
	if (d == NULL)
		return km_err_set(err, 0, "pages changed since the last snapshot are not tracked");
	if (d->lost)
		return km_err_set(err, 0, "KVM did not log a memory slot added since the last snapshot");
	uint64_t *snap = new_snap(d);
	if (snap == NULL)
		return km_err_set(err, ENOMEM, "collecting the pages changed since the last snapshot");
	km_mm_rdlock(mm);
	int rc = drain(mm, d, snap, err);
	if (rc == 0 && (*holds = holds_of(mm, d, snap)) == NULL) {
		km_bits_or_at(d->marks, 0, snap, d->npages);
		rc = km_err_set(err, ENOMEM, "collecting the pages changed since the last snapshot");
	}
	km_mm_rdunlock(mm);
	free(snap);
	return rc;
}

int km_dirty_start_mm(km_mm_t *mm, const km_dirty_ops_t *ops, km_err_t **err)
{
	struct km_dirty *d = tracker(mm);
	if (d != NULL) { /* a restart: what changed so far no longer counts */
		/* A slot KVM refused to log is tried again first (KVM's log cannot be read without);
		 * the logged ones are unchanged by it (same flags: KVM does nothing). */
		if (d->lost && log_slots(mm, &d->ops, err) < 0)
			return -1;
		d->lost = false;
		uint64_t *snap = new_snap(d);
		if (snap == NULL)
			return km_err_set(err, ENOMEM, "restarting the tracking of changed pages");
		int rc = drain(mm, d, snap, err);
		free(snap);
		return rc;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return km_err_set(err, ENOMEM, "starting the tracking of changed pages");
	d->ops = *ops;
	d->npages = (mm->gpa_size - mm->user_gpa) / KM_PAGE_SIZE;
	if ((d->marks = new_snap(d)) == NULL) {
		free(d);
		return km_err_set(err, ENOMEM, "starting the tracking of changed pages");
	}
	/* Logging turned on write-protects the slot and starts with an empty log. A failure leaves
	 * the slots done so far logging (harmless: KVM logs, nobody reads) and tracking off. */
	if (log_slots(mm, ops, err) < 0) {
		free(d->marks);
		free(d);
		return -1;
	}
	__atomic_store_n(&mm->dirty, d, __ATOMIC_RELEASE);
	return 0;
}

void km_dirty_return_mm(km_mm_t *mm, uint64_t **holds)
{
	struct km_dirty *d = tracker(mm);
	if (d != NULL && holds != NULL) {
		km_mm_rdlock(mm);
		for (size_t i = 0; i < mm->nvmas; i++) {
			const km_vma_t *v = &mm->vmas[i];
			if (!untracked(mm, d, v))
				km_bits_or_at(d->marks, (v->gpa - mm->user_gpa) / KM_PAGE_SIZE, holds[i],
					      (v->end - v->start) / KM_PAGE_SIZE);
		}
		km_mm_rdunlock(mm);
	}
	km_dirty_free(holds, mm->nvmas);
}

void km_dirty_slot_added(km_mm_t *mm, int slot, uint64_t gpa, uint64_t size)
{
	struct km_dirty *d = tracker(mm);
	if (d != NULL && d->ops.log_on(d->ops.ctx, slot, gpa, size, mm->host + gpa) < 0)
		d->lost = true;
}

void km_dirty_forget(km_mm_t *mm)
{
	struct km_dirty *d = tracker(mm);
	__atomic_store_n(&mm->dirty, NULL, __ATOMIC_RELEASE);
	if (d != NULL)
		free(d->marks);
	free(d);
}

/* --- on a guest --- */

static int kvm_log_on(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host)
{
	return km_dirtylog_set(ctx, slot, gpa, size, host, true);
}

static int kvm_fetch(void *ctx, int slot, uint64_t *bitmap)
{
	return km_dirtylog_fetch(ctx, slot, bitmap);
}

int km_dirty_start(struct km_guest *g, km_err_t **err)
{
	km_dirty_ops_t ops = {kvm_log_on, kvm_fetch, &g->machine};
	return km_dirty_start_mm(&g->mm, &ops, err);
}

int km_dirty_collect(struct km_guest *g, uint64_t ***holds, km_err_t **err)
{
	return km_dirty_collect_mm(&g->mm, holds, err);
}

void km_dirty_return(struct km_guest *g, uint64_t **holds)
{
	km_dirty_return_mm(&g->mm, holds);
}

void km_dirty_free(uint64_t **holds, size_t n)
{
	if (holds == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(holds[i]);
	free(holds);
}

bool km_dirty_on(const struct km_guest *g)
{
	return tracker(&g->mm) != NULL;
}
