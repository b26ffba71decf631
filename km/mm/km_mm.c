/* Mapping operations on the guest address space (mmap, munmap, mprotect, mremap, madvise, brk). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_dirty_internal.h"
#include "km_mm_internal.h"

#define MMAP_MIN_ADDR 0x10000ul /* Linux's default vm.mmap_min_addr */
#define LOW_2G 0x80000000ul

static bool range_ok(uint64_t addr, uint64_t len)
{
	return addr >= MMAP_MIN_ADDR && addr + len > addr && addr + len <= KM_USER_TOP;
}

/* Host protection for a mapping's backing: private memory is always read/write on the host (the
 * guest page tables enforce the guest's protection); shared file memory follows the guest so that
 * a read-only file is never opened for writing behind the guest's back. */
static int host_prot(int prot, int flags)
{
	if ((flags & MAP_SHARED) && !(flags & MAP_ANONYMOUS))
		return PROT_READ | ((prot & PROT_WRITE) ? PROT_WRITE : 0);
	return PROT_READ | PROT_WRITE;
}

static void note_narrowed(km_mm_t *mm)
{
	mm->tlb_gen++;
}

/* KVM's shadow paging (PVM) keeps translations derived from the guest page tables and does not see
 * km editing those tables from the host; a CR3 reload does not drop them either. Changing the host
 * protection of the memory behind a range makes KVM's MMU notifier zap every translation of it, so
 * the next access re-reads the guest page tables. Used where a protection narrows (km_phys_reset
 * does the same for memory that is unmapped). */
static void drop_host_translations(km_mm_t *mm, uint64_t gpa, uint64_t len, int flags)
{
	uint8_t *h = mm->host + gpa;
	int prot = host_prot(PROT_READ | PROT_WRITE, flags);
	if (mprotect(h, len, PROT_NONE) == 0)
		mprotect(h, len, prot);
}

/* Removes every mapping in [start, end): VMAs split at the edges, memory released, page tables
 * cleared. Returns 0 or -ENOMEM (no memory to split). */
static int carve(km_mm_t *mm, uint64_t start, uint64_t end)
{
	if (km_vma_split_at(mm, start) < 0 || km_vma_split_at(mm, end) < 0)
		return -ENOMEM;
	/* Clear the translations first: splitting a 2 MiB page can need a table page, and if the
	 * pool has none nothing may change (memory still translated must never be freed). */
	if (km_pt_unmap(&mm->pt, start, end - start) < 0)
		return -ENOMEM;
	size_t i = km_vma_index(mm, start);
	bool any = false;
	while (i < mm->nvmas && mm->vmas[i].start < end) {
		km_vma_t *v = &mm->vmas[i];
		km_phys_release(mm, v->gpa, v->end - v->start);
		mm->committed -= v->end - v->start;
		km_vma_remove(mm, i);
		any = true;
	}
	if (any)
		note_narrowed(mm);
	return 0;
}

/* Enters a translation into the page tables, making its memory known to KVM first. */
static int map_pages(km_mm_t *mm, uint64_t gva, uint64_t gpa, uint64_t len, int prot)
{
	if (km_phys_make_present(mm, gpa, len) < 0)
		return -ENOMEM;
	return km_pt_map(&mm->pt, gva, gpa, len, prot);
}

/* Bytes of [start, end) that are mapped now (what a MAP_FIXED over it gives back). */
static uint64_t mapped_bytes(km_mm_t *mm, uint64_t start, uint64_t end)
{
	uint64_t n = 0;
	for (size_t i = km_vma_index(mm, start); i < mm->nvmas && mm->vmas[i].start < end; i++) {
		uint64_t s = mm->vmas[i].start > start ? mm->vmas[i].start : start;
		uint64_t e = mm->vmas[i].end < end ? mm->vmas[i].end : end;
		n += e - s;
	}
	return n;
}

/* Chooses where a new mapping goes: the hint when free, else top-down below mmap_base. */
static uint64_t place(km_mm_t *mm, uint64_t hint, uint64_t len, int flags)
{
	if (flags & MAP_32BIT)
		return km_vma_find_gap(mm, len, 0x40000000ul, LOW_2G);
	hint = KM_PAGE_DOWN(hint);
	if (hint != 0 && range_ok(hint, len) && km_vma_range_free(mm, hint, hint + len))
		return hint;
	uint64_t a = km_vma_find_gap(mm, len, MMAP_MIN_ADDR, mm->mmap_base);
	if (a == 0)
		a = km_vma_find_gap(mm, len, mm->mmap_base, KM_USER_TOP);
	return a;
}

static int back_with_file(km_mm_t *mm, uint64_t gpa, uint64_t len, int prot, int flags, int fd, uint64_t off)
{
	int share = (flags & MAP_SHARED) ? MAP_SHARED : MAP_PRIVATE;
	if (mmap(mm->host + gpa, len, host_prot(prot, flags), share | MAP_FIXED, fd, (off_t)off) == MAP_FAILED)
		return -errno;
	return 0;
}

static int back_with_shared_anon(km_mm_t *mm, uint64_t gpa, uint64_t len)
{
	if (mmap(mm->host + gpa, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
	    MAP_FAILED)
		return -errno;
	return 0;
}

/* Whether holding `bytes` of mappings passes the guest's bounds: km's --memory and the guest's
 * own RLIMIT_AS, both counted over what km has mapped for it. */
static bool over_limit(const km_mm_t *mm, uint64_t bytes)
{
	return bytes > mm->limit || bytes > mm->as_limit;
}

int64_t km_mm_map(km_mm_t *mm, uint64_t addr, uint64_t len, int prot, int flags, int fd, uint64_t off,
		  enum km_vma_kind kind, const char *path)
{
	if (len == 0 || KM_PAGE_UP(len) < len || (off & (KM_PAGE_SIZE - 1)))
		return -EINVAL;
	len = KM_PAGE_UP(len);
	if (!(flags & (MAP_SHARED | MAP_PRIVATE)) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)))
		return -EINVAL;
	bool fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE);
	if (fixed) {
		if ((addr & (KM_PAGE_SIZE - 1)) || !range_ok(addr, len))
			return (addr & (KM_PAGE_SIZE - 1)) ? -EINVAL : -ENOMEM;
		/* As in Linux, NOREPLACE wins over a MAP_FIXED given with it. */
		if ((flags & MAP_FIXED_NOREPLACE) && !km_vma_range_free(mm, addr, addr + len))
			return -EEXIST;
	} else {
		addr = place(mm, addr, len, flags);
		if (addr == 0)
			return -ENOMEM;
	}
	if (over_limit(mm, mm->committed - (fixed ? mapped_bytes(mm, addr, addr + len) : 0) + len))
		return -ENOMEM;
	uint64_t gpa = km_phys_alloc(mm, len, addr);
	if (gpa == 0)
		return -ENOMEM;
	int rc = 0;
	if (fd >= 0)
		rc = back_with_file(mm, gpa, len, prot, flags, fd, off);
	else if (flags & MAP_SHARED)
		rc = back_with_shared_anon(mm, gpa, len);
	if (rc == 0 && fixed)
		rc = carve(mm, addr, addr + len);
	km_vma_t v = {.start = addr, .end = addr + len, .gpa = gpa, .prot = prot, .flags = flags, .kind = kind,
		      .offset = off, .backing = fd >= 0 ? KM_BACK_FILE : KM_BACK_ANON};
	if (rc == 0 && path != NULL && (v.path = strdup(path)) == NULL)
		rc = -ENOMEM;
	if (rc == 0 && map_pages(mm, addr, gpa, len, prot) < 0)
		rc = -ENOMEM;
	if (rc == 0 && (rc = km_vma_insert(mm, &v)) < 0)
		km_pt_unmap(&mm->pt, addr, len);
	if (rc < 0) {
		free(v.path);
		km_phys_release(mm, gpa, len);
		return rc;
	}
	mm->committed += len;
	km_dirty_mark_gpa(mm, gpa, len); /* new memory reads differently from what was there */
	return (int64_t)addr;
}

int km_mm_unmap(km_mm_t *mm, uint64_t addr, uint64_t len)
{
	if ((addr & (KM_PAGE_SIZE - 1)) || len == 0 || KM_PAGE_UP(len) < len || addr + KM_PAGE_UP(len) < addr)
		return -EINVAL;
	len = KM_PAGE_UP(len);
	if (addr >= KM_USER_TOP)
		return -EINVAL;
	if (addr + len > KM_USER_TOP)
		len = KM_USER_TOP - addr;
	return carve(mm, addr, addr + len);
}

/* True if every page of [addr, addr+len) is mapped. */
static bool fully_mapped(km_mm_t *mm, uint64_t addr, uint64_t len)
{
	uint64_t at = addr;
	for (size_t i = km_vma_index(mm, addr); at < addr + len; i++) {
		if (i >= mm->nvmas || mm->vmas[i].start > at)
			return false;
		at = mm->vmas[i].end;
	}
	return true;
}

int km_mm_protect(km_mm_t *mm, uint64_t addr, uint64_t len, int prot)
{
	if ((addr & (KM_PAGE_SIZE - 1)) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_GROWSDOWN | PROT_GROWSUP)))
		return -EINVAL;
	prot &= PROT_READ | PROT_WRITE | PROT_EXEC;
	if (len == 0)
		return 0;
	/* Linux: a range that wraps once rounded up to pages is ENOMEM (no such mapping). */
	if (KM_PAGE_UP(len) < len || addr + KM_PAGE_UP(len) <= addr)
		return -ENOMEM;
	len = KM_PAGE_UP(len);
	if (!fully_mapped(mm, addr, len))
		return -ENOMEM;
	/* A shared file mapping gains write access only if the file was opened for writing. */
	for (size_t i = km_vma_index(mm, addr); i < mm->nvmas && mm->vmas[i].start < addr + len; i++) {
		km_vma_t *v = &mm->vmas[i];
		if ((prot & PROT_WRITE) && !(v->prot & PROT_WRITE) && (v->flags & MAP_SHARED) &&
		    !(v->flags & MAP_ANONYMOUS)) {
			uint64_t s = v->start > addr ? v->start : addr;
			uint64_t e = v->end < addr + len ? v->end : addr + len;
			if (mprotect(mm->host + v->gpa + (s - v->start), e - s, PROT_READ | PROT_WRITE) < 0)
				return -errno;
		}
	}
	if (km_vma_split_at(mm, addr) < 0 || km_vma_split_at(mm, addr + len) < 0)
		return -ENOMEM;
	for (size_t i = km_vma_index(mm, addr); i < mm->nvmas && mm->vmas[i].start < addr + len; i++) {
		km_vma_t *v = &mm->vmas[i];
		if (km_pt_map(&mm->pt, v->start, v->gpa, v->end - v->start, prot) < 0)
			return -ENOMEM;
		if ((v->prot & ~prot) != 0)
			drop_host_translations(mm, v->gpa, v->end - v->start, v->flags);
		v->prot = prot;
	}
	note_narrowed(mm);
	return 0;
}

int km_mm_dontneed(km_mm_t *mm, uint64_t addr, uint64_t len)
{
	if ((addr & (KM_PAGE_SIZE - 1)) || KM_PAGE_UP(len) < len || addr + KM_PAGE_UP(len) < addr)
		return -EINVAL;
	len = KM_PAGE_UP(len);
	if (!fully_mapped(mm, addr, len))
		return -ENOMEM;
	for (size_t i = km_vma_index(mm, addr); i < mm->nvmas && mm->vmas[i].start < addr + len; i++) {
		km_vma_t *v = &mm->vmas[i];
		uint64_t s = v->start > addr ? v->start : addr;
		uint64_t e = v->end < addr + len ? v->end : addr + len;
		km_dirty_mark_gpa(mm, v->gpa + (s - v->start), e - s);
		/* Anonymous memory a resume mapped from files (the snapshot, its layers) must read
		 * zero, not the files' pages again, which is what MADV_DONTNEED would give. */
		bool from_files = (v->flags & MAP_ANONYMOUS) && !(v->flags & MAP_SHARED) &&
				  (v->layered || v->backing == KM_BACK_SNAPSHOT);
		if (from_files) {
			if (km_phys_reset(mm, v->gpa + (s - v->start), e - s) < 0)
				return -ENOMEM;
		} else if (madvise(mm->host + v->gpa + (s - v->start), e - s, MADV_DONTNEED) < 0)
			return -errno;
	}
	return 0;
}

/* Grows VMA i (which ends at old_end) in place to new_end, if the virtual and physical space after
 * it are both free. */
static int grow_in_place(km_mm_t *mm, size_t i, uint64_t new_end)
{
	km_vma_t *v = &mm->vmas[i];
	uint64_t extra = new_end - v->end;
	if (!km_vma_range_free(mm, v->end, new_end) || new_end > KM_USER_TOP)
		return -ENOMEM;
	uint64_t gpa_next = v->gpa + (v->end - v->start);
	bool in_heap_window = v->gpa >= mm->brk_gpa && gpa_next + extra <= mm->brk_gpa_end;
	if (!in_heap_window && km_phys_take(mm, gpa_next, extra) < 0)
		return -ENOMEM;
	int rc = 0;
	if (v->flags & MAP_SHARED && v->flags & MAP_ANONYMOUS)
		rc = -ENOMEM; /* a shared anonymous object cannot be extended in place */
	else if (v->kind == KM_VMA_FILE || v->kind == KM_VMA_ELF)
		rc = -ENOMEM; /* the host file mapping would need extending too: move instead */
	if (rc == 0 && map_pages(mm, v->end, gpa_next, extra, v->prot) < 0)
		rc = -ENOMEM;
	if (rc < 0) {
		if (!in_heap_window)
			km_phys_release(mm, gpa_next, extra);
		return rc;
	}
	v->end = new_end;
	mm->committed += extra;
	km_dirty_mark_gpa(mm, gpa_next, extra);
	return 0;
}

/* A layered VMA's host range is several host mappings (a snapshot's layers, a file below them),
 * and mremap moves only within one: moves [from, from+len) to `to` one mapping at a time (the
 * longest prefix mremap takes, found by halving). Returns 0, or -1 with errno. */
static int move_pieces(uint8_t *from, uint64_t len, uint8_t *to)
{
	for (uint64_t at = 0; at < len;) {
		uint64_t n = len - at;
		while (mremap(from + at, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, to + at) == MAP_FAILED) {
			if (errno != EFAULT || n == KM_PAGE_SIZE)
				return -1;
			n = KM_PAGE_DOWN(n / 2) > 0 ? KM_PAGE_DOWN(n / 2) : KM_PAGE_SIZE;
		}
		at += n;
	}
	return 0;
}

/* Moves VMA i (exactly [old, old+old_len)) to new_addr with size new_len, keeping its contents. */
static int64_t move_vma(km_mm_t *mm, size_t i, uint64_t new_addr, uint64_t new_len)
{
	km_vma_t v = mm->vmas[i];
	uint64_t old_len = v.end - v.start;
	uint64_t gpa = km_phys_alloc(mm, new_len, new_addr);
	if (gpa == 0)
		return -ENOMEM;
	/* Move the host pages (no copy), then refill the hole the move leaves in km's reservation. */
	void *dst = mremap(mm->host + v.gpa, old_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, mm->host + gpa);
	if (dst == MAP_FAILED && errno == EFAULT && v.layered && move_pieces(mm->host + v.gpa, old_len, mm->host + gpa) == 0)
		dst = mm->host + gpa; /* its grown part is made zero below */
	if (dst == MAP_FAILED) {
		int e = errno;
		km_phys_release(mm, gpa, new_len);
		return -e;
	}
	km_phys_reset(mm, v.gpa, old_len);
	/* Grown memory that was a snapshot's (or anonymous) must read as zero, not as whatever
	 * follows in the snapshot file. */
	if ((v.backing == KM_BACK_SNAPSHOT || v.layered) && new_len > old_len)
		km_phys_reset(mm, gpa + old_len, new_len - old_len);
	if (map_pages(mm, new_addr, gpa, new_len, v.prot) < 0)
		return -ENOMEM;
	km_pt_unmap(&mm->pt, v.start, old_len);
	km_phys_release(mm, v.gpa, old_len);
	mm->vmas[i].path = NULL; /* ownership moves with the VMA */
	km_vma_remove(mm, i);
	v.start = new_addr;
	v.end = new_addr + new_len;
	v.gpa = gpa;
	if (v.kind == KM_VMA_BRK || v.kind == KM_VMA_STACK)
		v.kind = KM_VMA_ANON;
	mm->committed += new_len - old_len;
	note_narrowed(mm);
	if (km_vma_insert(mm, &v) < 0)
		return -ENOMEM;
	/* Whole: the contents are not what the last snapshot had at new_addr. */
	km_dirty_mark_gpa(mm, gpa, new_len);
	return (int64_t)new_addr;
}

int64_t km_mm_remap(km_mm_t *mm, uint64_t old, uint64_t old_len, uint64_t new_len, int flags, uint64_t new_addr)
{
	if ((old & (KM_PAGE_SIZE - 1)) || (flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP)))
		return -EINVAL;
	if ((flags & MREMAP_FIXED) && !(flags & MREMAP_MAYMOVE))
		return -EINVAL;
	if (flags & MREMAP_DONTUNMAP)
		return -EINVAL; /* not supported yet: rare, and only for private anonymous memory */
	if (KM_PAGE_UP(old_len) < old_len || KM_PAGE_UP(new_len) < new_len || old + KM_PAGE_UP(old_len) < old)
		return -EINVAL; /* lengths that wrap once rounded to pages */
	old_len = KM_PAGE_UP(old_len);
	new_len = KM_PAGE_UP(new_len);
	if (new_len == 0 || old_len == 0)
		return -EINVAL; /* old_len 0 duplicates shared mappings: not supported */
	km_vma_t *v = km_vma_find(mm, old);
	if (v == NULL || old + old_len > v->end)
		return -EFAULT;
	if (over_limit(mm, mm->committed + (new_len > old_len ? new_len - old_len : 0)))
		return -ENOMEM;
	if (flags & MREMAP_FIXED) {
		if ((new_addr & (KM_PAGE_SIZE - 1)) || !range_ok(new_addr, new_len))
			return -EINVAL;
		if (new_addr < old + old_len && old < new_addr + new_len)
			return -EINVAL;
		int rc = carve(mm, new_addr, new_addr + new_len);
		if (rc < 0)
			return rc;
	}
	if (km_vma_split_at(mm, old) < 0 || km_vma_split_at(mm, old + old_len) < 0)
		return -ENOMEM;
	size_t i = km_vma_index(mm, old);
	if (!(flags & MREMAP_FIXED)) {
		if (new_len <= old_len) {
			int rc = carve(mm, old + new_len, old + old_len);
			return rc < 0 ? rc : (int64_t)old;
		}
		if (grow_in_place(mm, i, old + new_len) == 0)
			return (int64_t)old;
		if (!(flags & MREMAP_MAYMOVE))
			return -ENOMEM;
		new_addr = place(mm, 0, new_len, 0);
		if (new_addr == 0)
			return -ENOMEM;
	}
	return move_vma(mm, i, new_addr, new_len);
}

int km_mm_restore_vma(km_mm_t *mm, const km_vma_t *v, int fd, uint64_t off, int share)
{
	uint64_t len = v->end - v->start;
	if (mm->committed + len > mm->limit)
		return -ENOMEM;
	if (!km_vma_range_free(mm, v->start, v->end))
		return -EEXIST;
	uint64_t gpa;
	bool heap = v->kind == KM_VMA_BRK && mm->brk_gpa != 0 && v->start >= mm->brk_start &&
		    v->end - mm->brk_start <= mm->brk_gpa_end - mm->brk_gpa;
	if (heap)
		gpa = mm->brk_gpa + (v->start - mm->brk_start);
	else if ((gpa = km_phys_alloc(mm, len, v->start)) == 0)
		return -ENOMEM;
	int hprot = (share == MAP_SHARED) ? host_prot(v->prot, MAP_SHARED) : PROT_READ | PROT_WRITE;
	int rc = 0;
	if (mmap(mm->host + gpa, len, hprot, share | MAP_FIXED, fd, (off_t)off) == MAP_FAILED)
		rc = -errno;
	/* Advice only. The snapshot's pages that the page cache no longer holds are then read in
	 * 2 MiB folios, which a read fault maps whole where the segment is congruent (decisions 19). */
	if (rc == 0 && share == MAP_PRIVATE)
		(void)madvise(mm->host + gpa, len, MADV_HUGEPAGE);
	km_vma_t n = *v;
	n.gpa = gpa;
	n.path = NULL;
	n.backing = share == MAP_SHARED ? KM_BACK_FILE : KM_BACK_SNAPSHOT;
	n.backing_off = off;
	if (rc == 0 && v->path != NULL && (n.path = strdup(v->path)) == NULL)
		rc = -ENOMEM;
	if (rc == 0 && map_pages(mm, v->start, gpa, len, v->prot) < 0)
		rc = -ENOMEM;
	if (rc == 0 && (rc = km_vma_insert(mm, &n)) < 0)
		km_pt_unmap(&mm->pt, v->start, len);
	if (rc < 0) {
		free(n.path);
		km_phys_release(mm, gpa, len);
		return rc;
	}
	mm->committed += len;
	return 0;
}

void km_mm_set_brk_start(km_mm_t *mm, uint64_t start)
{
	mm->brk_start = mm->brk_cur = KM_PAGE_UP(start);
	/* Reserve a window of guest-physical space as large as the memory limit so the heap can always
	 * grow in place while its virtual space is free. */
	uint64_t window = mm->limit;
	uint64_t gpa = km_phys_alloc(mm, window, mm->brk_start);
	if (gpa != 0) {
		mm->brk_gpa = gpa;
		mm->brk_gpa_end = gpa + window;
	}
}

uint64_t km_mm_brk(km_mm_t *mm, uint64_t want)
{
	uint64_t old_end = KM_PAGE_UP(mm->brk_cur), new_end = KM_PAGE_UP(want);
	if (want < mm->brk_start || mm->brk_gpa == 0 || new_end < want)
		return mm->brk_cur;
	if (new_end - mm->brk_start > mm->brk_gpa_end - mm->brk_gpa)
		return mm->brk_cur;
	if (new_end > old_end) {
		uint64_t gpa = mm->brk_gpa + (old_end - mm->brk_start);
		if (!km_vma_range_free(mm, old_end, new_end) || over_limit(mm, mm->committed + (new_end - old_end)))
			return mm->brk_cur;
		if (map_pages(mm, old_end, gpa, new_end - old_end, PROT_READ | PROT_WRITE) < 0)
			return mm->brk_cur;
		km_vma_t *prev = old_end > mm->brk_start ? km_vma_find(mm, old_end - 1) : NULL;
		if (prev != NULL && prev->kind == KM_VMA_BRK && prev->end == old_end &&
		    prev->prot == (PROT_READ | PROT_WRITE) && prev->gpa + (prev->end - prev->start) == gpa) {
			prev->end = new_end;
		} else {
			km_vma_t v = {.start = old_end, .end = new_end, .gpa = gpa, .prot = PROT_READ | PROT_WRITE,
				      .flags = MAP_PRIVATE | MAP_ANONYMOUS, .kind = KM_VMA_BRK};
			if (km_vma_insert(mm, &v) < 0) {
				km_pt_unmap(&mm->pt, old_end, new_end - old_end);
				return mm->brk_cur;
			}
		}
		mm->committed += new_end - old_end;
		km_dirty_mark_gpa(mm, gpa, new_end - old_end);
	} else if (new_end < old_end) {
		if (carve(mm, new_end, old_end) < 0)
			return mm->brk_cur;
	}
	mm->brk_cur = want;
	return want;
}
