/* The snapshot writer's memory: guest memory into PT_LOAD segments. Only pages that may hold
 * data are read (pagemap says which anonymous pages were ever touched), and only non-zero pages
 * are written: the rest are holes, so the file's disk usage tracks what the program really used
 * (km_snapshot_writer.h). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/procfs.h>
#include <sys/stat.h>
#include <sys/user.h>
#include <time.h>
#include <unistd.h>

#include "km_cli.h"
#include "km_buf.h"
#include "km_crc32c.h"
#include "km_guest.h"
#include "km_fdtab.h"
#include "km_guest_seccomp.h"
#include "km_signal.h"
#include "km_timers.h"
#include "km_time.h"
#include "km_guest_fault.h"
#include "km_io.h"
#include "km_pagemap.h"
#include "km_rlimit.h"
#include "km_runtime_layout.h"
#include "km_snapshot.h"
#include "km_sys_util.h"
#include "km_vdso.h"
#include "km_snapshot_writer.h"

#define PAGE KM_PAGE_SIZE

typedef struct page_scan {
	const uint8_t *p;
	uint32_t crc;   /* in: the CRC so far; out: through this page, if it holds data */
	uint64_t zeros; /* zero bytes since the CRC so far, folded in only before a data page */
	bool data;
} page_scan_t;

static void scan_fn(void *arg)
{
	page_scan_t *s = arg;
	s->data = !km_mem_is_zero(s->p, PAGE);
	if (s->data)
		s->crc = km_crc32c(km_crc32c_zeros(s->crc, s->zeros), s->p, PAGE);
}

/* One guarded pass over a page that may hold data: whether it does, and if so *crc continued
 * through the `zeros` bytes of holes before it and through it. A page the host cannot provide (a private file mapping past the
 * end of its file, where the guest would get SIGBUS) counts as zero: it becomes a hole in the
 * file, and reads as zero after a resume (docs/snapshot-format.md). */
static bool page_has_data(const uint8_t *p, uint64_t zeros, uint32_t *crc)
{
	page_scan_t s = {p, *crc, zeros, false};
	if (km_guest_fault_run(p, PAGE, scan_fn, &s) < 0 || !s.data)
		return false;
	*crc = s.crc;
	return true;
}

#define PM_BATCH 4096

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

/* A run of consecutive data pages waiting to be written with one pwrite. */
typedef struct run {
	uint64_t start, len; /* in pages */
} run_t;

static int flush_run(int fd, const uint8_t *host, uint64_t off, run_t *r, uint64_t *written)
{
	if (r->len == 0)
		return 0;
	size_t bytes = r->len * PAGE;
	int rc = km_pwrite_all(fd, host + r->start * PAGE, bytes, off + r->start * PAGE);
	if (rc < 0)
		return rc;
	*written += bytes;
	r->len = 0;
	return 0;
}

/* True if the bitmap holds any page of [first, first+n) (first a multiple of 64). */
static bool any_held(const uint64_t *hold, uint64_t first, uint64_t n)
{
	for (uint64_t w = first / 64; w < (first + n + 63) / 64; w++)
		if (hold[w] != 0)
			return true;
	return false;
}

/* Writes the non-zero pages of [host, host+len) at `off` in fd, as runs of pages; pages that
 * cannot hold data (find_candidates) are never read, so huge untouched reservations cost
 * nothing. *crc gets the CRC32C of the range as the file will hold it: data pages hashed right
 * after the zero check looked at them, holes folded in as zeros (no extra pass over memory).
 * Returns 0 or -errno. */
static int write_range(int fd, const source_t *src, const uint8_t *host, uint64_t len, uint64_t off,
		       const uint64_t *hold, uint64_t *written, uint32_t *crc)
{
	uint64_t npages = len / PAGE, zeros = 0;
	bool maybe[PM_BATCH];
	run_t run = {0, 0};
	*crc = 0;
	for (uint64_t base = 0; base < npages; base += PM_BATCH) {
		uint64_t n = npages - base < PM_BATCH ? npages - base : PM_BATCH;
		if (hold != NULL && !any_held(hold, base, n)) { /* an incremental file's usual case: no
								  * pagemap read for pages it does not hold */
			int rc = flush_run(fd, host, off, &run, written);
			if (rc < 0)
				return rc;
			zeros += n * PAGE;
			continue;
		}
		find_candidates(src, host, base, n, maybe);
		for (uint64_t i = 0; i < n; i++) {
			uint64_t pg = base + i;
			bool held = hold == NULL || (hold[pg / 64] >> (pg % 64) & 1);
			bool data = held && maybe[i] && page_has_data(host + pg * PAGE, zeros, crc);
			zeros = data ? 0 : zeros + PAGE;
			if (data && run.len > 0 && run.start + run.len == pg) {
				run.len++;
				continue;
			}
			int rc = flush_run(fd, host, off, &run, written);
			if (rc < 0)
				return rc;
			if (data)
				run = (run_t){pg, 1};
		}
	}
	*crc = km_crc32c_zeros(*crc, zeros);
	return flush_run(fd, host, off, &run, written);
}

int km_snap_write_memory(km_guest_t *g, int fd, const Elf64_Phdr *ph, const uint64_t *const *holds, uint32_t *crcs,
			 km_snapshot_result_t *res, const char *path, km_err_t **err)
{
	km_mm_t *mm = &g->mm;
	int pagemap = km_fd_reserve(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
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
		rc = write_range(fd, &src, mm->host + v->gpa, v->end - v->start, ph[1 + i].p_offset,
				 holds != NULL ? holds[i] : NULL, &res->memory_bytes, &crcs[i]);
		if (rc < 0)
			km_err_set(err, -rc, "%s: writing the memory mapped at %#lx-%#lx (%#lx bytes at file offset %#lx)",
				   path, (unsigned long)v->start, (unsigned long)v->end, (unsigned long)(v->end - v->start),
				   (unsigned long)ph[1 + i].p_offset);
	}
	if (pagemap >= 0)
		close(pagemap);
	return rc < 0 ? -1 : 0;
}
