/*
 * Keeping a resumed guest's memory its own while it still maps the snapshot file: the read lease,
 * and detaching the memory from the file when the lease is broken (or cannot be had). See
 * km_snapshot_lease.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_pagemap.h"
#include "km_snapshot.h"
#include "km_snapshot_lease.h"

#define PAGE KM_PAGE_SIZE
#define PM_BATCH 512

/* One guest per km process: the signal handler finds it here. */
static km_guest_t *volatile lease_guest;
static volatile pid_t lease_tid;

/* The chain's files below the top one (km_snapshot_lease_chain): leased with the top's lease or
 * detached at resume. A member's lease is km's only while g->snap_leased (a forked child shares
 * the open files but not the leases). */
static int member_fd[KM_LAYERS_MAX_DEPTH];
static bool member_leased[KM_LAYERS_MAX_DEPTH];
static size_t nmembers;

/* Only async-signal-safe work: note the break and kick vCPU 0 out of KVM_RUN or out of the host
 * syscall it is blocked in (which may be the very open() that broke the lease). */
static void lease_broken_handler(int sig)
{
	(void)sig;
	int saved = errno;
	km_guest_t *g = lease_guest;
	if (g != NULL) {
		__atomic_store_n(&g->snap_lease_broken, true, __ATOMIC_RELEASE);
		syscall(SYS_tgkill, getpid(), lease_tid, KM_SIG_KICK);
	}
	errno = saved;
}

/* A read lease on fd, its break signal aimed at vCPU 0's thread, the file still holding `need`
 * bytes: 1, 0 when no lease can be had, -1 with *err if the file shrank. */
static int lease_fd(int fd, uint64_t need, const char *name, km_err_t **err)
{
	if (fcntl(fd, F_SETSIG, KM_SIG_LEASE) < 0 || fcntl(fd, F_SETLEASE, F_RDLCK) < 0)
		return 0;
	/* Taking the lease made the whole process the signal's target; any thread could take it
	 * (and see EINTR). Aim it at vCPU 0's thread, which has to stop anyway. */
	struct f_owner_ex owner = {.type = F_OWNER_TID, .pid = lease_tid};
	if (fcntl(fd, F_SETOWN_EX, &owner) < 0) {
		fcntl(fd, F_SETLEASE, F_UNLCK);
		return 0;
	}
	/* The file was checked before the lease: it must not have shrunk in between. */
	struct stat st;
	if (fstat(fd, &st) < 0) {
		int e = errno;
		fcntl(fd, F_SETLEASE, F_UNLCK);
		return km_err_set(err, e, "%s", name);
	}
	if ((uint64_t)st.st_size < need) {
		fcntl(fd, F_SETLEASE, F_UNLCK);
		return km_err_set(err, 0, "%s: the file changed (shrank to %ld bytes) while being resumed", name,
				  (long)st.st_size);
	}
	return 1;
}

int km_snapshot_lease_take(km_guest_t *g, uint64_t need, const char *name, km_err_t **err)
{
	lease_tid = gettid();
	lease_guest = g;
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = lease_broken_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: a host syscall vCPU 0 is blocked in must come back */
	if (sigaction(KM_SIG_LEASE, &sa, NULL) < 0)
		return km_err_set(err, errno, "%s: the lease signal", name);
	int rc = lease_fd(g->mm.snapshot_fd, need, name, err);
	g->snap_leased = rc == 1;
	return rc;
}

int km_snapshot_lease_chain(km_guest_t *g, const km_snapshot_t *s, const char *name, km_err_t **err)
{
	for (const km_snapshot_t *m = s->parent; m != NULL && nmembers < KM_LAYERS_MAX_DEPTH; m = m->parent) {
		const char *shown = m->name != NULL ? m->name : name;
		int fd = km_fd_reserve(dup(m->fd));
		if (fd < 0)
			return km_err_set(err, errno, "%s: keeping the snapshot open", shown);
		member_fd[nmembers] = fd;
		member_leased[nmembers] = false;
		nmembers++;
		int rc = g->snap_leased ? lease_fd(fd, m->saved_end, shown, err) : 0;
		if (rc < 0)
			return -1;
		member_leased[nmembers - 1] = rc == 1;
	}
	return 0;
}

bool km_snapshot_lease_broken(km_guest_t *g)
{
	return __atomic_load_n(&g->snap_lease_broken, __ATOMIC_ACQUIRE);
}

/* --- detaching ---------------------------------------------------------------------------- */

/* Reads len bytes at off; the end of the file leaves the rest zero. */
static int pread_all(int fd, uint8_t *dst, uint64_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, dst, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		dst += n;
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	return 0;
}

/* The file's bytes [off, off+len) into dst, read rather than touched through the mapping (a read
 * cannot fault, and it is the fastest copy measured). Holes stay zero, unallocated. */
static int read_file_data(int fd, uint8_t *dst, uint64_t len, uint64_t off)
{
	uint64_t end = off + len;
	for (uint64_t at = off; at < end;) {
		off_t data = lseek(fd, (off_t)at, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			return 0; /* no data after at */
		if (data < 0)
			return pread_all(fd, dst + (at - off), end - at, at); /* no SEEK_DATA here */
		if ((uint64_t)data >= end)
			return 0;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		uint64_t stop = hole < 0 || (uint64_t)hole > end ? end : (uint64_t)hole;
		if (pread_all(fd, dst + ((uint64_t)data - off), stop - (uint64_t)data, (uint64_t)data) < 0)
			return -1;
		at = stop;
	}
	return 0;
}

/* Pages the guest already wrote are private copies (pagemap: anonymous, present or swapped),
 * not the file's: take them from the mapping. Without pagemap, take every page from it (the
 * lease still holds the file as it was). */
static void copy_written_pages(int pagemap, const uint8_t *from, uint8_t *to, uint64_t npages)
{
	uint64_t e[PM_BATCH];
	for (uint64_t base = 0; base < npages; base += PM_BATCH) {
		uint64_t n = npages - base < PM_BATCH ? npages - base : PM_BATCH;
		if (!km_pagemap_read(pagemap, from + base * PAGE, n, e)) {
			memcpy(to + base * PAGE, from + base * PAGE, n * PAGE);
			continue;
		}
		for (uint64_t i = 0; i < n; i++)
			if ((e[i] & KM_PM_SWAPPED) || (e[i] & (KM_PM_PRESENT | KM_PM_FILE)) == KM_PM_PRESENT)
				memcpy(to + (base + i) * PAGE, from + (base + i) * PAGE, PAGE);
	}
}

/* Replaces the host mapping [lo, hi) of fd at file offset off by anonymous memory with the same
 * contents, in one mremap (the guest never sees a moment without its memory). */
static int detach_range(int fd, int pagemap, uint8_t *lo, uint8_t *hi, uint64_t off)
{
	uint64_t len = (uint64_t)(hi - lo);
	uint8_t *t = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t == MAP_FAILED)
		return -1;
	if (read_file_data(fd, t, len, off) < 0) {
		int e = errno;
		munmap(t, len);
		errno = e;
		return -1;
	}
	copy_written_pages(pagemap, lo, t, len / PAGE);
	if (mremap(t, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, lo) == MAP_FAILED) {
		int e = errno;
		munmap(t, len);
		errno = e;
		return -1;
	}
	return 0;
}

/* /proc/self/maps, whole, NUL-terminated; NULL on failure. */
static char *read_maps(void)
{
	int fd = km_fd_reserve(open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
	if (fd < 0)
		return NULL;
	size_t cap = 1 << 16, len = 0;
	char *buf = malloc(cap);
	for (ssize_t n = 1; buf != NULL && n > 0;) {
		if (cap - len < 4096) {
			char *b = realloc(buf, cap * 2);
			if (b == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = b;
			cap *= 2;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			n = 1;
		else if (n < 0) {
			free(buf);
			buf = NULL;
		} else
			len += (size_t)n;
	}
	close(fd);
	if (buf != NULL)
		buf[len] = '\0';
	return buf;
}

/* Every private host mapping of the file inside guest memory: km's restored segments wherever
 * mremap moved them, and the guest's own private mappings of the same file (they stop following
 * the file; a shared one still does). Returns the bytes detached, or -1. */
static int64_t detach_all(km_mm_t *mm, int fd)
{
	struct stat st;
	char *maps = read_maps();
	if (maps == NULL || fstat(fd, &st) < 0) {
		free(maps);
		return -1;
	}
	int pagemap = km_fd_reserve(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
	uintptr_t gmin = (uintptr_t)mm->host, gmax = gmin + mm->gpa_size;
	int64_t bytes = 0;
	int e = 0;
	for (char *line = maps; line != NULL && *line != '\0' && bytes >= 0;) {
		char *next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		unsigned long lo, hi, off, ino;
		unsigned maj, min;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s %lx %x:%x %lu", &lo, &hi, perms, &off, &maj, &min, &ino) == 7 &&
		    perms[3] == 'p' && ino == st.st_ino && maj == major(st.st_dev) && min == minor(st.st_dev) &&
		    lo >= gmin && hi <= gmax) {
			if (detach_range(fd, pagemap, (uint8_t *)lo, (uint8_t *)hi, off) < 0) {
				e = errno;
				bytes = -1;
			} else
				bytes += (int64_t)(hi - lo);
		}
		line = next;
	}
	if (pagemap >= 0)
		close(pagemap);
	free(maps);
	errno = e;
	return bytes;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Detaches, unleases (while km's) and closes member k; the last member takes its place. */
static int64_t detach_member(km_guest_t *g, size_t k)
{
	int64_t bytes = detach_all(&g->mm, member_fd[k]);
	if (bytes < 0)
		return -1;
	if (g->snap_leased && member_leased[k])
		fcntl(member_fd[k], F_SETLEASE, F_UNLCK);
	close(member_fd[k]);
	nmembers--;
	member_fd[k] = member_fd[nmembers];
	member_leased[k] = member_leased[nmembers];
	return bytes;
}

int km_snapshot_detach_unleased(km_guest_t *g, km_err_t **err)
{
	for (size_t k = 0; k < nmembers;) {
		if (member_leased[k]) {
			k++;
			continue;
		}
		if (detach_member(g, k) < 0)
			return km_err_set(err, errno, "copying the program's memory out of a snapshot below it");
	}
	return 0;
}

int km_snapshot_detach(km_guest_t *g, km_err_t **err)
{
	km_mm_t *mm = &g->mm;
	int fd = mm->snapshot_fd;
	const char *name = g->opts.snapshot_source != NULL ? g->opts.snapshot_source : "snapshot";
	__atomic_store_n(&g->snap_lease_broken, false, __ATOMIC_RELEASE);
	if (fd < 0 && nmembers == 0)
		return 0;
	uint64_t t0 = now_ns();
	int64_t bytes = fd >= 0 ? detach_all(mm, fd) : 0;
	if (bytes < 0)
		return km_err_set(err, errno, "%s: copying the program's memory out of the snapshot file it was "
				  "resumed from", name);
	/* Every file of the chain at once: one break flag, and a member rewritten is rare enough
	 * that copying all the mapped memory then costs less than keeping a rule per file. */
	while (nmembers > 0) {
		int64_t b = detach_member(g, nmembers - 1);
		if (b < 0)
			return km_err_set(err, errno, "%s: copying the program's memory out of a snapshot below it", name);
		bytes += b;
	}
	/* Anonymous now, for the next snapshot (pagemap says which pages hold data) and for mremap
	 * (growing must not reveal file bytes any more). */
	for (size_t i = 0; i < mm->nvmas; i++)
		if (mm->vmas[i].backing == KM_BACK_SNAPSHOT)
			mm->vmas[i].backing = KM_BACK_ANON;
	if (fd >= 0 && g->snap_leased)
		fcntl(fd, F_SETLEASE, F_UNLCK);
	g->snap_leased = false;
	if (fd >= 0)
		close(fd);
	mm->snapshot_fd = -1;
	if (g->opts.timing)
		fprintf(stderr, "km-timing: detach_ns=%lu bytes=%ld\n", (unsigned long)(now_ns() - t0), (long)bytes);
	return 0;
}
