/*
 * Write-back of a vfork child's memory writes to its parent (see km_vfork_wb.h).
 *
 * Which pages the child wrote: km has no soft-dirty bit to ask (CONFIG_MEM_SOFT_DIRTY is off on
 * the kernels km is tested on) and KVM's dirty log misses km's own writes for the guest (read()
 * into guest memory). /proc/self/pagemap's PM_MMAP_EXCLUSIVE does see both: after a host fork a
 * private page is mapped by both processes; the child writing it gets a copy only it maps, and a
 * page first faulted in by a write is the child's alone. Measured here (Linux 6.18): untouched
 * and read pages, page-cache pages of private file mappings and the parts of a transparent huge
 * page the child did not write are not exclusive; a written 4 KiB of a huge page is (the huge
 * page is split). Two cases make a page exclusive that the child did not write: the parent
 * writing it meanwhile (another guest thread: its copy leaves the child's the only mapping; the
 * child then sends the page as it was at the fork, which undoes that write), and memory still
 * mapped from a resumed snapshot, which the child copies out at its start (all of it is sent;
 * the parent skips pages equal to its own). Soft-dirty or userfaultfd's asynchronous
 * write-protect would be exact at a cost paid by every vfork; docs/syscalls.md lists the gap.
 */
#include "km_vfork_wb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "km_machine.h"

#define PM_PRESENT (1ull << 63)
#define PM_SWAPPED (1ull << 62)
#define PM_FILE (1ull << 61)
#define PM_EXCLUSIVE (1ull << 56)
#define SCAN_CHUNK 512 /* pagemap entries read at once */

static bool is_private_writable(const km_vma_t *v)
{
	return !(v->flags & MAP_SHARED) && (v->prot & PROT_WRITE);
}

/* --- the child ---------------------------------------------------------------------------- */

int km_vfork_tx_begin(km_vfork_tx_t *tx, km_mm_t *mm)
{
	tx->ranges = NULL;
	tx->n = 0;
	km_mm_rdlock(mm);
	size_t n = 0;
	for (size_t i = 0; i < mm->nvmas; i++)
		n += is_private_writable(&mm->vmas[i]);
	if (n > 0 && (tx->ranges = calloc(n, sizeof(*tx->ranges))) == NULL) {
		km_mm_rdunlock(mm);
		return -ENOMEM;
	}
	for (size_t i = 0; i < mm->nvmas; i++)
		if (is_private_writable(&mm->vmas[i])) {
			km_vma_t *r = &tx->ranges[tx->n++];
			r->start = mm->vmas[i].start;
			r->end = mm->vmas[i].end;
			r->gpa = mm->vmas[i].gpa;
		}
	km_mm_rdunlock(mm);
	return 0;
}

void km_vfork_tx_free(km_vfork_tx_t *tx)
{
	free(tx->ranges);
	tx->ranges = NULL;
	tx->n = 0;
}

static int write_all(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 ? -errno : -EIO;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int send_page(int fd, km_mm_t *mm, uint64_t gva, uint64_t gpa)
{
	km_vfork_wb_rec_t h = {.magic = KM_VFORK_WB_MAGIC, .kind = KM_VFORK_WB_PAGE, .gva = gva, .gpa = gpa};
	struct iovec iov[2] = {{&h, sizeof(h)}, {km_gpa_to_hva(mm, gpa), KM_PAGE_SIZE}};
	return write_all(fd, iov, 2);
}

/* The pages of guest range [start, end) (mapped at gpa) that pagemap says the child wrote.
 * Present and exclusive only: such a page is anonymous memory in place, so reading it cannot
 * fault; a swapped one may have been written too and is sent (the parent skips equal pages). */
static long send_range(int fd, int pm, km_mm_t *mm, uint64_t start, uint64_t end, uint64_t gpa)
{
	uint64_t e[SCAN_CHUNK];
	long sent = 0;
	for (uint64_t at = start; at < end;) {
		uint64_t n = (end - at) / KM_PAGE_SIZE;
		if (n > SCAN_CHUNK)
			n = SCAN_CHUNK;
		off_t off = (off_t)((uintptr_t)km_gpa_to_hva(mm, gpa + (at - start)) / KM_PAGE_SIZE * 8);
		ssize_t r = pread(pm, e, n * 8, off);
		if (r != (ssize_t)(n * 8))
			return r < 0 ? -errno : -EIO;
		for (uint64_t i = 0; i < n; i++, at += KM_PAGE_SIZE) {
			bool wrote = ((e[i] & PM_PRESENT) && (e[i] & PM_EXCLUSIVE)) || ((e[i] & PM_SWAPPED) && !(e[i] & PM_FILE));
			if (!wrote)
				continue;
			int rc = send_page(fd, mm, at, gpa + (at - start));
			if (rc < 0)
				return rc;
			sent++;
		}
	}
	return sent;
}

/* Each part of remembered range r that the child still maps privately at the same
 * guest-physical pages. */
static long send_remembered(int fd, int pm, km_mm_t *mm, const km_vma_t *r)
{
	long sent = 0;
	for (size_t i = km_vma_index(mm, r->start); i < mm->nvmas && mm->vmas[i].start < r->end; i++) {
		const km_vma_t *v = &mm->vmas[i];
		if ((v->flags & MAP_SHARED) || v->gpa - v->start != r->gpa - r->start)
			continue;
		uint64_t lo = v->start > r->start ? v->start : r->start;
		uint64_t hi = v->end < r->end ? v->end : r->end;
		long n = send_range(fd, pm, mm, lo, hi, r->gpa + (lo - r->start));
		if (n < 0)
			return n;
		sent += n;
	}
	return sent;
}

long km_vfork_tx_send(const km_vfork_tx_t *tx, km_mm_t *mm, int fd)
{
	/* The child's own pagemap: opened now, in this process (an fd opened before the fork would
	 * show the parent's pages). */
	int pm = km_fd_reserve(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
	if (pm < 0)
		return -errno;
	long sent = 0;
	km_mm_rdlock(mm);
	for (size_t i = 0; i < tx->n && sent >= 0; i++) {
		long n = send_remembered(fd, pm, mm, &tx->ranges[i]);
		sent = n < 0 ? n : sent + n;
	}
	km_mm_rdunlock(mm);
	close(pm);
	if (sent < 0)
		return sent;
	km_vfork_wb_rec_t end = {.magic = KM_VFORK_WB_MAGIC, .kind = KM_VFORK_WB_END};
	struct iovec iov = {&end, sizeof(end)};
	int rc = write_all(fd, &iov, 1);
	return rc < 0 ? rc : sent;
}

/* --- the parent --------------------------------------------------------------------------- */

void km_vfork_rx_init(km_vfork_rx_t *rx, const km_mm_t *mm)
{
	memset(rx, 0, sizeof(*rx));
	rx->max = mm->limit / KM_PAGE_SIZE;
}

/* The header alone: shape, and a guest-physical page inside program memory (never km's runtime
 * region or the page tables below user_gpa, never past the end). */
static int check_header(const km_vfork_rx_t *rx, const km_mm_t *mm)
{
	const km_vfork_wb_rec_t *h = &rx->hdr;
	if (h->magic != KM_VFORK_WB_MAGIC || rx->ended)
		return -EPROTO;
	if (h->kind == KM_VFORK_WB_END)
		return 0;
	if (h->kind != KM_VFORK_WB_PAGE || rx->records >= rx->max)
		return -EPROTO;
	if ((h->gva | h->gpa) & (KM_PAGE_SIZE - 1) || h->gva >= KM_USER_TOP)
		return -EFAULT;
	if (h->gpa < mm->user_gpa || h->gpa >= mm->gpa_size || mm->gpa_size - h->gpa < KM_PAGE_SIZE)
		return -EFAULT;
	return 0;
}

/* Copies a checked page in if the parent still maps gva privately and writable at that
 * guest-physical page (another thread may have changed its mappings during the vfork), and if
 * it differs. Page granularity: a write another thread made meanwhile to the same page is
 * undone. */
static void apply(km_vfork_rx_t *rx, km_mm_t *mm)
{
	uint8_t now[KM_PAGE_SIZE];
	uint64_t gva = rx->hdr.gva, gpa = rx->hdr.gpa;
	km_mm_rdlock(mm);
	km_vma_t *v = km_vma_find(mm, gva);
	bool ok = v != NULL && is_private_writable(v) && v->gpa + (gva - v->start) == gpa;
	if (ok && km_copy_from_guest(mm, now, gva, KM_PAGE_SIZE) == 0 && memcmp(now, rx->page, KM_PAGE_SIZE) == 0)
		rx->skipped++; /* equal: nothing to do (memory the child copied out of a snapshot) */
	else if (ok && km_copy_to_guest(mm, gva, rx->page, KM_PAGE_SIZE) == 0)
		rx->applied++;
	else
		rx->skipped++;
	km_mm_rdunlock(mm);
}

int km_vfork_rx_feed(km_vfork_rx_t *rx, km_mm_t *mm, const void *buf, size_t n)
{
	const uint8_t *p = buf;
	while (n > 0 && rx->error == 0) {
		size_t want, take;
		if (rx->have < sizeof(rx->hdr)) {
			want = sizeof(rx->hdr) - rx->have;
			take = n < want ? n : want;
			memcpy((uint8_t *)&rx->hdr + rx->have, p, take);
		} else {
			want = sizeof(rx->hdr) + KM_PAGE_SIZE - rx->have;
			take = n < want ? n : want;
			memcpy(rx->page + (rx->have - sizeof(rx->hdr)), p, take);
		}
		rx->have += take;
		p += take;
		n -= take;
		if (rx->have == sizeof(rx->hdr)) {
			if ((rx->error = check_header(rx, mm)) < 0)
				break;
			if (rx->hdr.kind == KM_VFORK_WB_END) {
				rx->ended = true;
				rx->have = 0;
			}
		} else if (rx->have == sizeof(rx->hdr) + KM_PAGE_SIZE) {
			rx->records++;
			apply(rx, mm);
			rx->have = 0;
		}
	}
	return rx->error;
}

int km_vfork_rx_finish(const km_vfork_rx_t *rx)
{
	if (rx->error < 0)
		return rx->error;
	if (rx->have != 0 || (rx->records > 0 && !rx->ended))
		return -EPROTO;
	return 0;
}
