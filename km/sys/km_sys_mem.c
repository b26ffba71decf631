/* Memory syscalls, emulated against the guest address space (km_mm.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "km_exception.h"
#include "km_guest.h"
#include "km_snapshot.h" /* KM_CPU_RESTART_SYSCALL */
#include "km_rlimit.h"
#include "km_sys_util.h"
#include "km_syscall.h"

#define MM(v) (&(v)->g->mm)

/* Past --memory or RLIMIT_AS (km_mm's limits) the break stays where it was. */
KM_SYSCALL(brk)
{
	return (long)km_mm_brk(MM(v), a[0]);
}

/* Resolves the path behind a host fd for the mapping's record (NT_FILE, --inspect). */
static char *fd_path(int fd)
{
	char buf[4096];
	return km_fd_path(fd, buf, sizeof(buf)) < 0 ? NULL : strdup(buf);
}

#ifndef MAP_UNINITIALIZED
#define MAP_UNINITIALIZED 0x4000000
#endif
#ifndef MAP_ABOVE4G
#define MAP_ABOVE4G 0x80
#endif

/* What Linux accepts with MAP_SHARED_VALIDATE (its LEGACY_MAP_MASK): anything else, including
 * MAP_SYNC (DAX files only, none of which km maps) and MAP_FIXED_NOREPLACE, is EOPNOTSUPP.
 * 64 bits wide because the guest's flags are: a high bit is unknown too. */
#define MAP_VALIDATE_KNOWN                                                                                   \
	((uint64_t)(MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS | MAP_DENYWRITE | MAP_EXECUTABLE |  \
		    MAP_UNINITIALIZED | MAP_GROWSDOWN | MAP_LOCKED | MAP_NORESERVE | MAP_POPULATE |          \
		    MAP_NONBLOCK | MAP_STACK | MAP_HUGETLB | MAP_32BIT | MAP_ABOVE4G) |                      \
	 (21ull << MAP_HUGE_SHIFT) | (30ull << MAP_HUGE_SHIFT)) /* MAP_HUGE_2MB, MAP_HUGE_1GB */

KM_SYSCALL(mmap)
{
	uint64_t addr = a[0], len = a[1], off = a[5];
	int prot = (int)a[2], flags = (int)a[3], fd = (int)a[4];
	int type = flags & MAP_TYPE;
	/* Linux checks MAP_SHARED_VALIDATE for file mappings only; to anonymous ones it is an
	 * unknown type. */
	if (type != MAP_SHARED && type != MAP_PRIVATE && (type != MAP_SHARED_VALIDATE || (flags & MAP_ANONYMOUS)))
		return -EINVAL;
	if (flags & MAP_HUGETLB)
		return -EINVAL; /* no hugetlbfs behind guest memory */
	if (flags & MAP_ANONYMOUS)
		return km_mm_map(MM(v), addr, len, prot, flags, -1, 0, KM_VMA_ANON, NULL);
	struct stat st;
	if (fd < 0 || km_fd_check(fd) < 0 || fstat(fd, &st) < 0)
		return -EBADF; /* km's own fds (the VM, vCPUs) are not the guest's to map */
	if (type == MAP_SHARED_VALIDATE) {
		if (a[3] & ~MAP_VALIDATE_KNOWN)
			return -EOPNOTSUPP;
		flags = (flags & ~MAP_TYPE) | MAP_SHARED;
	}
	int acc = fcntl(fd, F_GETFL) & O_ACCMODE;
	if (acc == O_WRONLY || ((flags & MAP_SHARED) && (prot & PROT_WRITE) && acc != O_RDWR))
		return -EACCES;
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode) && !S_ISCHR(st.st_mode))
		return -ENODEV;
	if (flags & MAP_GROWSDOWN)
		return -EINVAL; /* as in Linux: only anonymous memory grows down */
	char *path = fd_path(fd);
	int64_t rc = km_mm_map(MM(v), addr, len, prot, flags, fd, off, KM_VMA_FILE, path);
	if (rc >= 0) {
		km_vma_t *vma = km_vma_find(MM(v), (uint64_t)rc);
		vma->dev = st.st_dev;
		vma->ino = st.st_ino;
	}
	free(path);
	return rc;
}

KM_SYSCALL(munmap)
{
	return km_mm_unmap(MM(v), a[0], a[1]);
}

KM_SYSCALL(mprotect)
{
	return km_mm_protect(MM(v), a[0], a[1], (int)a[2]);
}

KM_SYSCALL(mremap)
{
	return km_mm_remap(MM(v), a[0], a[1], a[2], (int)a[3], a[4]);
}

/* Checks [addr, addr+len) is page aligned and wholly mapped, as madvise/msync/mincore require. */
static int mapped_range(km_mm_t *mm, uint64_t addr, uint64_t len)
{
	if (addr & (KM_PAGE_SIZE - 1))
		return -EINVAL;
	uint64_t end = KM_PAGE_UP(addr + len);
	if (end < addr)
		return -ENOMEM;
	for (uint64_t at = addr; at < end;) {
		km_vma_t *vma = km_vma_find(mm, at);
		if (vma == NULL)
			return -ENOMEM;
		at = vma->end;
	}
	return 0;
}

KM_SYSCALL(madvise)
{
	uint64_t addr = a[0], len = a[1];
	int advice = (int)a[2];
	int rc = mapped_range(MM(v), addr, len);
	if (rc < 0)
		return rc;
	switch (advice) {
	case MADV_DONTNEED:
	case MADV_FREE: /* freeing at once is a valid implementation of "free when convenient" */
		return km_mm_dontneed(MM(v), addr, len);
	case MADV_NORMAL:
	case MADV_RANDOM:
	case MADV_SEQUENTIAL:
	case MADV_WILLNEED:
	case MADV_DONTFORK:
	case MADV_DOFORK:
	case MADV_MERGEABLE:
	case MADV_UNMERGEABLE:
	case MADV_HUGEPAGE:
	case MADV_NOHUGEPAGE:
	case MADV_DONTDUMP:
	case MADV_DODUMP:
	case MADV_WIPEONFORK:
	case MADV_KEEPONFORK:
	case MADV_COLD:
	case MADV_PAGEOUT:
		return 0; /* hints: the guest cannot tell whether they were taken */
	default:
		return -EINVAL;
	}
}

KM_SYSCALL(msync)
{
	uint64_t addr = a[0], len = a[1];
	int flags = (int)a[2];
	if ((flags & ~(MS_ASYNC | MS_SYNC | MS_INVALIDATE)) || ((flags & MS_ASYNC) && (flags & MS_SYNC)))
		return -EINVAL;
	int rc = mapped_range(MM(v), addr, len);
	if (rc < 0)
		return rc;
	km_mm_t *mm = MM(v);
	uint64_t end = KM_PAGE_UP(addr + len);
	for (uint64_t at = addr; at < end;) {
		km_vma_t *vma = km_vma_find(mm, at);
		uint64_t stop = vma->end < end ? vma->end : end;
		if ((vma->flags & MAP_SHARED) && !(vma->flags & MAP_ANONYMOUS) &&
		    msync(mm->host + vma->gpa + (at - vma->start), stop - at, flags) < 0)
			return -errno;
		at = stop;
	}
	return 0;
}

KM_SYSCALL(mincore)
{
	uint64_t addr = a[0], len = a[1];
	if (addr & (KM_PAGE_SIZE - 1))
		return -EINVAL;
	uint64_t pages = KM_PAGE_UP(len) / KM_PAGE_SIZE;
	uint8_t *vec = km_gva_to_hva(MM(v), a[2], pages, KM_ACC_WRITE);
	if (vec == NULL && pages > 0)
		return -EFAULT;
	int rc = mapped_range(MM(v), addr, len);
	if (rc < 0)
		return rc;
	km_mm_t *mm = MM(v);
	for (uint64_t i = 0; i < pages;) {
		uint64_t at = addr + i * KM_PAGE_SIZE;
		km_vma_t *vma = km_vma_find(mm, at);
		uint64_t n = (vma->end - at) / KM_PAGE_SIZE;
		if (n > pages - i)
			n = pages - i;
		if (mincore(mm->host + vma->gpa + (at - vma->start), n * KM_PAGE_SIZE, vec + i) < 0)
			return -errno;
		i += n;
	}
	return 0;
}

KM_SYSCALL(mlock)
{
	return mapped_range(MM(v), KM_PAGE_DOWN(a[0]), a[1] + (a[0] & (KM_PAGE_SIZE - 1)));
}

KM_SYSCALL(mlockall)
{
	return 0;
}

/* --- locking ------------------------------------------------------------------------------
 * Every memory call holds the mapping lock (km_mm_rdlock): the write side to change mappings,
 * the read side to look. A call that can narrow a mapping (take it away, or take rights from
 * it) also stops the other vCPUs first, so that none runs on a translation the call removes
 * (km_stopall.h); alone, a thread needs no stop. */
enum mem_lock { MEM_READ, MEM_WRITE, MEM_NARROW };

static bool brk_shrinks(km_vcpu_t *v, const uint64_t *a)
{
	return a[0] != 0 && a[0] < __atomic_load_n(&MM(v)->brk_cur, __ATOMIC_RELAXED);
}

/* True if some mapping in [addr, addr+len) has a right that `prot` lacks (or, prot < 0, if any
 * mapping is there at all): the call would take something away from a running thread. A guess
 * made before the write lock is taken: a mapping another thread adds meanwhile is new to every
 * vCPU anyway (nothing cached to shoot down). */
static bool takes_away(km_vcpu_t *v, uint64_t addr, uint64_t len, int prot)
{
	km_mm_t *mm = MM(v);
	uint64_t end = addr + KM_PAGE_UP(len);
	if (end < addr || end > KM_USER_TOP)
		end = KM_USER_TOP;
	bool narrows = false;
	km_mm_rdlock(mm);
	/* The mappings that overlap [addr, end), in order. */
	for (size_t i = km_vma_index(mm, addr); i < mm->nvmas && mm->vmas[i].start < end && !narrows; i++)
		narrows = prot < 0 || (mm->vmas[i].prot & ~prot) != 0;
	km_mm_rdunlock(mm);
	return narrows;
}

static long mem_call(km_vcpu_t *v, const uint64_t *a, km_sys_fn fn, enum mem_lock how)
{
	km_guest_t *g = v->g;
	bool stop = how == MEM_NARROW && km_threads_live(g) > 1;
	if (stop) {
		struct kvm_regs r = km_syscall_restart_regs(v);
		if (km_stopall_begin(g, v, KM_STOP_OUT, &r, KM_CPU_RESTART_SYSCALL) < 0)
			return -EINTR; /* the guest ended meanwhile: nobody sees the result */
	}
	if (how == MEM_READ)
		km_mm_rdlock(MM(v));
	else
		km_mm_wrlock(MM(v));
	long rc = fn(v, a);
	if (how == MEM_READ)
		km_mm_rdunlock(MM(v));
	else
		km_mm_wrunlock(MM(v));
	if (stop)
		km_stopall_end(g);
	return rc;
}

#define MEM_LOCKED(name, how)                                                                                \
	static long locked_##name(km_vcpu_t *v, const uint64_t *a)                                          \
	{                                                                                                    \
		return mem_call(v, a, sys_##name, how);                                                      \
	}

MEM_LOCKED(mmap, (a[3] & MAP_FIXED) && takes_away(v, a[0], a[1], -1) ? MEM_NARROW : MEM_WRITE)
MEM_LOCKED(munmap, takes_away(v, a[0], a[1], -1) ? MEM_NARROW : MEM_WRITE)
MEM_LOCKED(mprotect, takes_away(v, a[0], a[1], (int)a[2]) ? MEM_NARROW : MEM_WRITE)
MEM_LOCKED(mremap, MEM_NARROW)
MEM_LOCKED(brk, brk_shrinks(v, a) ? MEM_NARROW : MEM_WRITE)
MEM_LOCKED(madvise, MEM_WRITE)
MEM_LOCKED(msync, MEM_READ)
MEM_LOCKED(mincore, MEM_READ)

const km_sys_def_t km_sys_mem_defs[] = {
    {SYS_brk, "brk", locked_brk, "p"},
    {SYS_mmap, "mmap", locked_mmap, "puxxfx"},
    {SYS_munmap, "munmap", locked_munmap, "pu"},
    {SYS_mprotect, "mprotect", locked_mprotect, "pux"},
    {SYS_mremap, "mremap", locked_mremap, "puuxp"},
    {SYS_madvise, "madvise", locked_madvise, "pud"},
    {SYS_msync, "msync", locked_msync, "pux"},
    {SYS_mincore, "mincore", locked_mincore, "pup"},
    {SYS_mlock, "mlock", sys_mlock, "pu"},
    {SYS_munlock, "munlock", sys_mlock, "pu"},
    {SYS_mlockall, "mlockall", sys_mlockall, "x"},
    {SYS_munlockall, "munlockall", sys_mlockall, ""},
    {0, NULL, NULL, NULL},
};
