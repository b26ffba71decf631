/* The snapshot writer's memory: guest memory into PT_LOAD segments. Only pages that may hold
 * data are read (pagemap says which anonymous pages were ever touched), and only non-zero pages
 * are written: the rest are holes, so the file's disk usage tracks what the program really used
 * (km_snapshot_writer.h). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_crc32c.h"
#include "km_guest.h"
#include "km_guest_fault.h"
#include "km_io.h"
#include "km_pagemap.h"
#include "km_snapshot_writer.h"

#define PAGE KM_PAGE_SIZE

#define PM_BATCH 4096 /* pages whose pagemap entries are read at once (32 KiB of entries) */
/* The bounce buffer: 2 MiB, and never a write across a 2 MiB boundary of the file: a whole 2 MiB
 * of data is one aligned write, which the page cache keeps as one 2 MiB folio (ext4 here). With
 * segments congruent to their addresses modulo 2 MiB (km_snapshot_write.c), a resume maps that
 * folio with one fault for a 2 MiB guest page (decisions 19). */
#define BUF_PAGES 512
#define WB_STEP (2ull << 20) /* write-back is started after every WB_STEP bytes written */

/* Where the bytes a page may hold come from, to know which pages need reading at all. */
typedef struct source {
	enum km_backing backing;
	int pagemap;  /* /proc/self/pagemap, or -1 */
	int old_fd;   /* KM_BACK_SNAPSHOT: the snapshot the memory still maps */
	uint64_t old_off;
} source_t;

/* Marks in `maybe` the pages of [first, first+n) that may hold data: touched pages (pagemap:
 * present or swapped), and for memory still mapping an older snapshot, the pages that file has
 * data for. Untouched anonymous pages are zero; so are untouched pages over the old file's holes.
 * File-backed memory is all "maybe". Where the kernel cannot say, everything is. */
static void find_candidates(const source_t *src, const uint8_t *host, uint64_t first, uint64_t n, bool *maybe)
{
	uint64_t pm[PM_BATCH];
	bool have_pm = src->backing != KM_BACK_FILE && km_pagemap_read(src->pagemap, host + first * PAGE, n, pm);
	for (uint64_t i = 0; i < n; i++)
		maybe[i] = !have_pm || (pm[i] & (KM_PM_PRESENT | KM_PM_SWAPPED));
	if (!have_pm || src->backing != KM_BACK_SNAPSHOT)
		return;
	off_t lo = (off_t)(src->old_off + first * PAGE), hi = lo + (off_t)(n * PAGE);
	for (off_t at = lo; at < hi;) {
		off_t data = lseek(src->old_fd, at, SEEK_DATA);
		if (data < 0 || data >= hi)
			break;
		off_t hole = lseek(src->old_fd, data, SEEK_HOLE);
		if (hole < 0 || hole > hi)
			hole = hi;
		for (off_t p = data & ~(off_t)(PAGE - 1); p < hole; p += (off_t)PAGE)
			maybe[(p - lo) / (off_t)PAGE] = true;
		at = hole;
	}
}

/* The file side: data pages gathered in a bounce buffer until they stop being contiguous in the
 * file or fill it, then written with one pwrite; write-back of what was written is started as
 * the file grows, so that the disk works while memory is still being read and the final fsync
 * finds little left. */
typedef struct out {
	int fd;
	uint8_t *buf;      /* BUF_PAGES pages */
	uint64_t used;     /* pages in buf */
	uint64_t at;       /* file offset of buf's first page */
	uint64_t written;  /* bytes written, in all */
	uint64_t wb_lo, wb_hi; /* written since write-back was last started (empty: nothing) */
} out_t;

static void start_writeback(out_t *o)
{
	/* Advice only: a failure here leaves the work to fsync, which reports what matters. */
	sync_file_range(o->fd, (off_t)o->wb_lo, (off_t)(o->wb_hi - o->wb_lo), SYNC_FILE_RANGE_WRITE);
	o->wb_lo = o->wb_hi = 0;
}

static int out_flush(out_t *o)
{
	if (o->used == 0)
		return 0;
	uint64_t bytes = o->used * PAGE;
	int rc = km_pwrite_all(o->fd, o->buf, bytes, o->at);
	if (rc < 0)
		return rc;
	o->written += bytes;
	if (o->wb_hi <= o->wb_lo || o->at < o->wb_lo)
		o->wb_lo = o->at;
	if (o->at + bytes > o->wb_hi)
		o->wb_hi = o->at + bytes;
	o->used = 0;
	if (o->wb_hi - o->wb_lo >= WB_STEP)
		start_writeback(o);
	return 0;
}

/* One batch of a range being scanned. Pages [i, end) are left; every field is brought up to
 * date page by page, so that when a page faults (the guard jumps out) all before it stand. */
typedef struct scan {
	const uint8_t *host; /* the range's page 0 */
	const uint64_t *hold;
	const bool *maybe;   /* for pages [base, end) */
	uint64_t base, i, end;
	uint64_t seg_off;    /* file offset of page 0 */
	out_t *out;
	uint32_t crc;        /* through the last data page */
	uint64_t zeros;      /* zero bytes since, folded in only before the next data page */
} scan_t;

/* Runs under the guard: copies each page that may hold data into the bounce buffer, and while
 * it is hot checks it for zeros and continues the CRC. Returns when the batch is done or the
 * buffer must be written first. */
static void scan_pages(void *arg)
{
	scan_t *s = arg;
	out_t *o = s->out;
	while (s->i < s->end) {
		uint64_t pg = s->i;
		bool held = s->hold == NULL || (s->hold[pg / 64] >> (pg % 64) & 1);
		if (held && s->maybe[pg - s->base]) {
			uint64_t file = s->seg_off + pg * PAGE;
			if (o->used > 0 &&
			    (o->used == BUF_PAGES || o->at + o->used * PAGE != file || file % KM_HUGE_SIZE == 0))
				return;
			uint8_t *dst = o->buf + o->used * PAGE;
			memcpy(dst, s->host + pg * PAGE, PAGE);
			if (!km_mem_is_zero(dst, PAGE)) {
				s->crc = km_crc32c(km_crc32c_zeros(s->crc, s->zeros), dst, PAGE);
				s->zeros = 0;
				if (o->used == 0)
					o->at = file;
				o->used++;
				s->i++;
				__atomic_signal_fence(__ATOMIC_SEQ_CST);
				continue;
			}
		}
		s->zeros += PAGE;
		s->i++;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	}
}

/* True if the bitmap holds any page of [first, first+n) (first a multiple of 64). */
static bool any_held(const uint64_t *hold, uint64_t first, uint64_t n)
{
	for (uint64_t w = first / 64; w < (first + n + 63) / 64; w++)
		if (hold[w] != 0)
			return true;
	return false;
}

/* Writes the non-zero pages of [host, host+len) at `off` in fd; pages that cannot hold data
 * (find_candidates) are never read, so huge untouched reservations cost nothing, and a page the
 * host cannot provide (a private file mapping past the end of its file, where the guest would
 * get SIGBUS) is a hole, read as zero after a resume (docs/snapshot-format.md). *crc gets the
 * CRC32C of the range as the file holds it, holes folded in as zeros. One guard covers a batch;
 * after a fault the scan goes on past the page that faulted. Returns 0 or -errno. */
static int write_range(out_t *o, const source_t *src, const uint8_t *host, uint64_t len, uint64_t off,
		       const uint64_t *hold, uint32_t *crc)
{
	uint64_t npages = len / PAGE;
	bool maybe[PM_BATCH];
	scan_t s = {.host = host, .hold = hold, .maybe = maybe, .seg_off = off, .out = o};
	for (s.base = 0; s.base < npages; s.base += PM_BATCH) {
		s.end = npages - s.base < PM_BATCH ? npages : s.base + PM_BATCH;
		if (hold != NULL && !any_held(hold, s.base, s.end - s.base)) {
			s.zeros += (s.end - s.base) * PAGE; /* an incremental file's usual case: no pagemap read */
			continue;
		}
		find_candidates(src, host, s.base, s.end - s.base, maybe);
		for (s.i = s.base; s.i < s.end;) {
			if (km_guest_fault_run(host + s.i * PAGE, (s.end - s.i) * PAGE, scan_pages, &s) < 0) {
				s.zeros += PAGE; /* the page at s.i faulted: a hole */
				s.i++;
				continue;
			}
			int rc = out_flush(o);
			if (rc < 0)
				return rc;
		}
	}
	*crc = km_crc32c_zeros(s.crc, s.zeros);
	return out_flush(o);
}

int km_snap_write_memory(km_guest_t *g, int fd, const Elf64_Phdr *ph, const uint64_t *const *holds, uint32_t *crcs,
			 km_snapshot_result_t *res, const char *path, km_err_t **err)
{
	km_mm_t *mm = &g->mm;
	/* mmap, not malloc: the writer may be a forked child of a multi-threaded km. */
	uint8_t *buf = mmap(NULL, BUF_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return km_err_set(err, errno, "%s: a buffer for writing memory", path);
	int pagemap = km_fd_reserve(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
	out_t o = {.fd = fd, .buf = buf};
	int rc = 0;
	for (size_t i = 0; i < mm->nvmas && rc == 0; i++) {
		km_vma_t *v = &mm->vmas[i];
		crcs[i] = 0;
		if (ph[1 + i].p_filesz == 0)
			continue;
		source_t src = {.backing = v->backing, .pagemap = pagemap, .old_fd = mm->snapshot_fd,
				.old_off = v->backing_off};
		if (src.backing == KM_BACK_SNAPSHOT && src.old_fd < 0)
			src.backing = KM_BACK_FILE;
		rc = write_range(&o, &src, mm->host + v->gpa, v->end - v->start, ph[1 + i].p_offset,
				 holds != NULL ? holds[i] : NULL, &crcs[i]);
		if (rc < 0)
			km_err_set(err, -rc, "%s: writing the memory mapped at %#lx-%#lx (%#lx bytes at file offset %#lx)",
				   path, (unsigned long)v->start, (unsigned long)v->end, (unsigned long)(v->end - v->start),
				   (unsigned long)ph[1 + i].p_offset);
	}
	if (rc == 0 && o.wb_hi > o.wb_lo)
		start_writeback(&o);
	res->memory_bytes += o.written;
	if (pagemap >= 0)
		close(pagemap);
	munmap(buf, BUF_PAGES * PAGE);
	return rc < 0 ? -1 : 0;
}
