/*
 * The guest's address space: guest-physical memory (one host mapping km owns), the list of guest
 * mappings (VMAs, the source of truth for protections), and checked access to guest memory.
 *
 * Every VMA is one contiguous guest-physical range, hence one contiguous host range: a snapshot
 * writes it as one PT_LOAD and restores it with one mmap. Page tables are derived from the VMAs.
 * Not thread-safe by itself: callers hold km_mm_t.lock when threads arrive.
 */
#ifndef KM_MM_H
#define KM_MM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "km_error.h"
#include "km_pagetable.h"
#include "km_runtime_layout.h"

#define KM_PAGE_SIZE 4096ul
#define KM_HUGE_SIZE (2ul << 20)
#define KM_SLOT_CHUNK (256ul << 20)
#define KM_PAGE_UP(x) (((x) + KM_PAGE_SIZE - 1) & ~(KM_PAGE_SIZE - 1))
#define KM_PAGE_DOWN(x) ((x) & ~(KM_PAGE_SIZE - 1))

/* Program mappings end where km's runtime region starts (Linux's TASK_SIZE is one page short of
 * the lower half's end; km keeps the top 16 MiB for itself). */
#define KM_USER_TOP ((uint64_t)KM_RT_GVA)

/* VMA kinds (km_vma_t.kind): what the mapping is for, shown by --inspect and snapshots. */
enum km_vma_kind { KM_VMA_ANON, KM_VMA_FILE, KM_VMA_ELF, KM_VMA_BRK, KM_VMA_STACK };

typedef struct km_vma {
	uint64_t start, end; /* guest virtual [start, end), page aligned */
	uint64_t gpa;        /* guest-physical address of start */
	int prot;            /* PROT_* as the guest asked */
	int flags;           /* MAP_SHARED / MAP_PRIVATE / MAP_ANONYMOUS as the guest asked */
	enum km_vma_kind kind;
	char *path;       /* backing file path (file mappings), NULL otherwise; owned */
	uint64_t offset;  /* file offset of start */
	dev_t dev;        /* backing file identity, for NT_FILE and restore checks */
	ino_t ino;
	/* What the host memory behind it is, for the snapshot writer: anonymous memory that was
	 * never touched reads as zero; file-backed memory holds the file's bytes until touched. */
	enum km_backing { KM_BACK_ANON, KM_BACK_FILE, KM_BACK_SNAPSHOT } backing;
	uint64_t backing_off; /* KM_BACK_SNAPSHOT: offset of start in mm->snapshot_fd */
	/* Resumed from several files (a snapshot's layers, the mapping's own file under them): its
	 * host pages are files' pages, but not all its own file's (backing is KM_BACK_FILE). */
	bool layered;
} km_vma_t;

/* A free range of guest-physical space. */
typedef struct km_phys_range {
	uint64_t start, end;
} km_phys_range_t;

/* A freed guest-physical range that a host syscall in flight may still be reading or writing
 * (a guest thread blocked in read() into memory another thread has since unmapped): not reused
 * until every syscall that was in flight when it was freed has ended. */
typedef struct km_phys_deferred {
	uint64_t start, end;
	uint64_t epoch; /* the release's epoch */
} km_phys_deferred_t;

typedef struct km_mm {
	/* Guards the VMAs, the page tables and the allocator: readers translate and copy, writers
	 * (km_mm_wrlock) change mappings. See km_mm_rdlock. */
	pthread_rwlock_t lock;
	uint8_t *host;      /* host mapping of guest-physical [0, gpa_size) */
	uint64_t gpa_size;
	km_pt_t pt;         /* page tables (in their own guest-physical pool) */
	uint64_t user_gpa;  /* first guest-physical byte available to program memory */

	km_phys_range_t *free; /* free guest-physical ranges, sorted */
	size_t nfree, free_cap;

	km_vma_t *vmas; /* sorted by start, non-overlapping */
	size_t nvmas, vma_cap;

	uint64_t limit;     /* --memory: most bytes of mappings the guest may hold */
	uint64_t as_limit;  /* the guest's RLIMIT_AS (km keeps it: km_rlimit.c); UINT64_MAX if none */
	uint64_t committed; /* bytes of mappings held now */

	uint64_t brk_start, brk_cur; /* program break: heap VMA is [brk_start, PAGE_UP(brk_cur)) */
	uint64_t brk_gpa, brk_gpa_end; /* guest-physical window reserved for heap growth */
	uint64_t mmap_base;          /* top-down search for new mappings starts below this */
	uint64_t stack_top;

	/* Freed ranges waiting for the syscalls in flight at their release (km_phys_deferred_t):
	 * epoch counts releases; oldest_busy(busy_ctx) gives the smallest epoch a syscall in flight
	 * started in (UINT64_MAX: none). NULL oldest_busy: one thread, reuse at once. */
	km_phys_deferred_t *deferred;
	size_t ndeferred, deferred_cap;
	uint64_t epoch;
	uint64_t (*oldest_busy)(void *ctx);
	void *busy_ctx;

	uint64_t tlb_gen; /* bumped when a mapping is narrowed: each vCPU reloads CR3 when it lags */
	int snapshot_fd;  /* the snapshot this guest was resumed from (memory still maps it), or -1 */

	/* Guest-physical memory is made known to KVM in KM_SLOT_CHUNK pieces as mappings first use
	 * them: KVM's per-slot bookkeeping costs time in proportion to a slot's size, so one slot
	 * for all of it made every start and exit pay for the whole memory limit. */
	int (*register_slot)(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host);
	void *slot_ctx;
	uint8_t *slot_present; /* per chunk above user_gpa */

	/* Which pages changed since the last snapshot (km_dirty.h); NULL while not tracked, so that
	 * marking costs one load and branch then. Read with atomics: set with vCPUs stopped. */
	struct km_dirty *dirty;
} km_mm_t;

/* Access kinds for checks. */
#define KM_ACC_READ 1
#define KM_ACC_WRITE 2
#define KM_ACC_EXEC 4

/* Reserves guest-physical space for `limit` bytes of mappings plus the runtime and page-table
 * pools (MAP_NORESERVE: untouched memory costs nothing). Fails if that needs guest-physical
 * addresses of `phys_bits` bits or more. */
int km_mm_init(km_mm_t *mm, uint64_t limit, int phys_bits, km_err_t **err);
/* Registers guest-physical [0, user_gpa) (runtime and page tables) through `reg` and remembers
 * `reg` for program memory, which is registered chunk by chunk as it is first mapped. */
int km_mm_attach(km_mm_t *mm, int (*reg)(void *ctx, int slot, uint64_t gpa, uint64_t size, void *host),
		 void *ctx, km_err_t **err);

/* Registers again every memory slot registered so far (the runtime's and each chunk in
 * slot_present) through the same callback: a forked child's new VM over the same host memory.
 * Returns 0, or -1 with errno set. */
int km_mm_register_all(km_mm_t *mm);

/* Unmaps everything; safe on a zeroed or partly initialised mm. */
void km_mm_fini(km_mm_t *mm);

/* Host pointer for guest-physical `gpa` (no checks: km-internal use only). */
static inline void *km_gpa_to_hva(km_mm_t *mm, uint64_t gpa)
{
	return mm->host + gpa;
}

/* The mapping lock. Read side: translating and copying (km_gva_to_*, km_copy_*) take it
 * themselves; code that walks mm->vmas or keeps a km_vma_t pointer takes it around that. Write
 * side: every change of mappings. A thread holding the write side may call the read-side
 * functions (they see it and do not lock again); the read side nests. */
void km_mm_rdlock(km_mm_t *mm);
void km_mm_rdunlock(km_mm_t *mm);
void km_mm_wrlock(km_mm_t *mm);
void km_mm_wrunlock(km_mm_t *mm);

/* The epoch a syscall starting now is in (see km_phys_deferred_t). */
static inline uint64_t km_mm_epoch(km_mm_t *mm)
{
	return __atomic_load_n(&mm->epoch, __ATOMIC_ACQUIRE);
}

/* Index in mm->vmas of the first VMA whose end > gva (nvmas if none): with the next ones, the
 * mappings from gva up, in order. The caller holds the lock (either side). */
size_t km_vma_index(km_mm_t *mm, uint64_t gva);

/* Finds the VMA containing `gva`, or NULL. The caller holds the lock (either side). */
km_vma_t *km_vma_find(km_mm_t *mm, uint64_t gva);

/* Host pointer for guest range [gva, gva+len) if all of it is mapped with `access` and contiguous
 * on the host; NULL otherwise. With len == 0 only gva itself must be mapped. */
void *km_gva_to_hva(km_mm_t *mm, uint64_t gva, size_t len, int access);

/* Splits guest range [gva, gva+len) into host iovecs (one per VMA crossed). Returns the number of
 * iovecs, or -EFAULT if any byte lacks `access`, or -EINVAL if more than `max` would be needed. */
int km_gva_to_iov(km_mm_t *mm, uint64_t gva, size_t len, int access, struct iovec *iov, int max);

/* Copies between km and guest memory with checks; return 0 or -EFAULT (also for memory the host
 * cannot provide, such as a file mapping past the end of its file: see km_guest_fault.h). */
int km_copy_from_guest(km_mm_t *mm, void *dst, uint64_t gva, size_t len);
int km_copy_to_guest(km_mm_t *mm, uint64_t gva, const void *src, size_t len);


/* --- mapping operations: return 0 / a guest address, or -errno as the syscall would --- */

/* Creates a mapping as mmap(2) would (addr hint/MAP_FIXED/MAP_FIXED_NOREPLACE honoured); fd is a
 * host fd for file mappings (-1 for anonymous). Returns the guest address or -errno. `kind` and
 * `path` describe the mapping for snapshots and --inspect. */
int64_t km_mm_map(km_mm_t *mm, uint64_t addr, uint64_t len, int prot, int flags, int fd, uint64_t off,
		  enum km_vma_kind kind, const char *path);
int km_mm_unmap(km_mm_t *mm, uint64_t addr, uint64_t len);
int km_mm_protect(km_mm_t *mm, uint64_t addr, uint64_t len, int prot);
int64_t km_mm_remap(km_mm_t *mm, uint64_t old, uint64_t old_len, uint64_t new_len, int flags, uint64_t new_addr);
/* madvise(MADV_DONTNEED) semantics: anonymous private pages read back as zero afterwards. */
int km_mm_dontneed(km_mm_t *mm, uint64_t addr, uint64_t len);
/* Recreates a mapping from a snapshot: *v describes it (start, end, prot, flags, kind, path,
 * offset, dev, ino; gpa ignored), its memory is `fd` at `off` mapped with host flags
 * `share` (MAP_PRIVATE for the snapshot file: copy-on-write and lazy; MAP_SHARED for the file of
 * a shared mapping). Heap pieces go back into the heap window (km_mm_set_brk_start first).
 * Returns 0 or -errno. */
int km_mm_restore_vma(km_mm_t *mm, const km_vma_t *v, int fd, uint64_t off, int share);

/* Sets the break as brk(2) does; returns the new (or unchanged) break. */
uint64_t km_mm_brk(km_mm_t *mm, uint64_t want);
/* Places the heap right after the program's last segment. */
void km_mm_set_brk_start(km_mm_t *mm, uint64_t start);

#endif
