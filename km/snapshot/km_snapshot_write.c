/*
 * The snapshot (and core) writer: see km_snapshot.h for the contract, km_coredump.h for the
 * format. Layout: ELF header, program headers (PT_NOTE, then one PT_LOAD per VMA), the notes,
 * then each segment's bytes at a page-aligned offset (written by km_snapshot_memory.c; congruent
 * to its address modulo 2 MiB when it holds a whole 2 MiB page), then the open files' data. This file puts the parts together, at once or (live) through a writer.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "km_cli.h"
#include "km_buf.h"
#include "km_guest.h"
#include "km_fdtab.h"
#include "km_guest_fault.h"
#include "km_io.h"
#include "km_time.h"
#include "km_pagemap.h"
#include "km_snapshot.h"
#include "km_snapshot_layers.h"
#include "km_snapshot_writer.h"
#include "km_snapshot_live.h"

#define PAGE KM_PAGE_SIZE

/* --- segments ----------------------------------------------------------------------------- */

static uint32_t elf_flags(int prot)
{
	return ((prot & PROT_READ) ? PF_R : 0) | ((prot & PROT_WRITE) ? PF_W : 0) | ((prot & PROT_EXEC) ? PF_X : 0);
}


/* Fills NT_KM_CHECKSUM (segment checksums, then the one over [0, end of notes)) and writes the
 * ELF header, program headers and notes, which lie contiguously from offset 0. */
static int write_headers(int fd, const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t nph, notebuf_t *nb,
			 const uint32_t *crcs, size_t ncrcs, const char *path, km_err_t **err)
{
	size_t hdrs = sizeof(*eh) + nph * sizeof(*ph);
	size_t covered = hdrs + nb->b.len;
	km_nt_checksum_t c = {.algorithm = KM_CHECKSUM_CRC32C, .covered = covered, .nsegments = (uint32_t)ncrcs};
	memcpy(nb->b.p + nb->sum_at, &c, sizeof(c));
	memcpy(nb->b.p + nb->sum_at + sizeof(c), crcs, ncrcs * sizeof(*crcs));
	size_t field = nb->sum_at + offsetof(km_nt_checksum_t, header_crc);
	uint32_t crc = km_snapshot_header_crc(eh, ph, nph, nb->b.p, nb->b.len, field);
	memcpy(nb->b.p + field, &crc, sizeof(crc));
	int rc = km_pwrite_all(fd, eh, sizeof(*eh), 0);
	if (rc == 0)
		rc = km_pwrite_all(fd, ph, nph * sizeof(*ph), sizeof(*eh));
	if (rc == 0)
		rc = km_pwrite_all(fd, nb->b.p, nb->b.len, hdrs);
	if (rc < 0)
		return km_err_set(err, -rc, "%s: writing the ELF header, program headers and notes (%zu bytes)", path,
				  covered);
	return 0;
}

static int retry_eintr(int rc)
{
	return rc < 0 && errno == EINTR;
}

/* One file being written: what the pause prepares and the rest of the writing needs. */
typedef struct snapfile {
	km_guest_t *g;
	const char *path;
	notebuf_t nb;
	Elf64_Ehdr eh;
	Elf64_Phdr *ph;
	size_t nph;
	uint32_t *crcs;
	uint64_t end; /* the file's length */
	place_t pl;
	char *dcopy;
	char tmpname[128];
	target_t was;
	int fd;
	const char *step; /* what failed, where no km_err_t can be made (the live writer) */
	struct frozen *frozen; /* live: shared memory copied at the pause (freeze_shared) */
	size_t nfrozen;
	km_layers_plan_t plan; /* which pages the file holds (NT_KM_LAYERS) */
	bool planned;          /* plan made: km_layers_finish (or _plan_free) owed */
} snapfile_t;

/* --- capture at the pause --------------------------------------------------------------- */

/* The file offset for a segment of [start, end) at `off` or after: congruent to start modulo
 * 2 MiB when the mapping holds a whole aligned 2 MiB page, so that the page cache's 2 MiB folios
 * of the file (the writer writes it 2 MiB at a time, km_snapshot_memory.c) line up with the 2 MiB
 * guest pages a resume maps over it, and one fault maps 2 MiB instead of 4 KiB (decisions 19).
 * The padding is a hole: file size, not disk space. */
static uint64_t huge_congruent(uint64_t off, uint64_t start, uint64_t end)
{
	uint64_t first = (start + KM_HUGE_SIZE - 1) & ~(KM_HUGE_SIZE - 1);
	if (first < start || first + KM_HUGE_SIZE > end)
		return off;
	return off + ((start - off) & (KM_HUGE_SIZE - 1));
}

/* The ELF header and program headers (PT_NOTE, then one PT_LOAD per VMA): where each segment's
 * bytes go, and the file's end. */
static int lay_out(snapfile_t *sf, km_err_t **err)
{
	km_mm_t *mm = &sf->g->mm;
	sf->nph = 1 + mm->nvmas;
	size_t hdrs = sizeof(Elf64_Ehdr) + sf->nph * sizeof(Elf64_Phdr);
	Elf64_Ehdr *eh = &sf->eh;
	memset(eh, 0, sizeof(*eh));
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS64;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh->e_type = ET_CORE;
	eh->e_machine = EM_X86_64;
	eh->e_version = EV_CURRENT;
	eh->e_phoff = sizeof(Elf64_Ehdr);
	eh->e_ehsize = sizeof(Elf64_Ehdr);
	eh->e_phentsize = sizeof(Elf64_Phdr);
	eh->e_phnum = (Elf64_Half)sf->nph;
	sf->ph = calloc(sf->nph, sizeof(*sf->ph));
	sf->crcs = calloc(mm->nvmas + 1, sizeof(*sf->crcs));
	if (sf->ph == NULL || sf->crcs == NULL)
		return km_err_set(err, ENOMEM, "%s: program headers", sf->path);
	sf->ph[0] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = hdrs, .p_filesz = sf->nb.b.len, .p_align = 4};
	uint64_t off = KM_PAGE_UP(hdrs + sf->nb.b.len);
	for (size_t i = 0; i < mm->nvmas; i++) {
		km_vma_t *v = &mm->vmas[i];
		uint64_t size = v->end - v->start;
		uint64_t fsz = km_snap_vma_saved(v) ? km_layers_filesz(sf->nb.layers, i, size) : 0;
		if (fsz != 0)
			off = huge_congruent(off, v->start, v->end);
		sf->ph[1 + i] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = elf_flags(v->prot), .p_offset = off,
					     .p_vaddr = v->start, .p_memsz = size, .p_filesz = fsz, .p_align = PAGE};
		off += fsz;
	}
	sf->end = off;
	return 0;
}

/* The open files' data after the memory, page-aligned; no program header covers it. */
static int write_blobs(snapfile_t *sf, km_err_t **err)
{
	notebuf_t *nb = &sf->nb;
	if (nb->files == NULL || km_fdtab_blob_bytes(nb->files) == 0)
		return 0;
	uint64_t off = KM_PAGE_UP(sf->end);
	if (km_fdtab_write_blobs(nb->files, sf->fd, off, nb->b.p + nb->files_at, err) < 0)
		return km_err_wrap(err, "%s", sf->path);
	sf->end = off + km_fdtab_blob_bytes(nb->files);
	return 0;
}

/* Everything that needs the program stopped: the fd table saved, the notes built (registers were
 * captured by the stop), the temporary file opened in its directory and laid out, the open
 * files' data written into it. Guest memory is not read. */
static int capture(km_guest_t *g, const km_snapshot_req_t *req, snapfile_t *sf, km_err_t **err)
{
	memset(sf, 0, sizeof(*sf));
	sf->g = g;
	sf->path = req->path;
	sf->fd = -1;
	sf->pl.dfd = -1;
	int sig = req->reason == KM_REASON_CORE ? g->term_signal : 0;
	if (req->reason != KM_REASON_CORE) {
		km_fdtab_save_opts_t fo = {.tcp = req->tcp != 0 ? (enum km_tcp_policy)(req->tcp - 1)
							  : (enum km_tcp_policy)g->opts.tcp_established,
					   .file_max = g->opts.snapshot_file_max, .ends = !req->keep_running};
		if (km_fdtab_save(g, &fo, &sf->nb.files, err) < 0)
			return km_err_wrap(err, "%s", req->path);
	}
	if (km_layers_plan(g, req, &sf->plan, err) < 0)
		return km_err_wrap(err, "%s", req->path);
	sf->planned = true;
	sf->nb.layers = req->reason == KM_REASON_CORE ? NULL : &sf->plan; /* a core holds every page, no id */
	if (km_snap_notes_build(g, req, sig, &sf->nb, err) < 0)
		return km_err_wrap(err, "%s", req->path);
	if (km_snap_find_place(req, &sf->pl, &sf->dcopy, err) < 0 || km_snap_check_target(&sf->pl, &sf->was, err) < 0 ||
	    km_layers_replaces(&sf->plan, sf->pl.dfd, sf->pl.name, err) < 0)
		return -1; /* refused before anything is written */
	if ((sf->fd = km_snap_open_temp(&sf->pl, sf->tmpname, sizeof(sf->tmpname))) < 0)
		return km_err_set(err, errno, "%s: creating the file in its directory", req->path);
	return lay_out(sf, err) < 0 || write_blobs(sf, err) < 0 ? -1 : 0;
}

/* --- write the file --------------------------------------------------------------------- */

/* Memory, then the headers and notes that describe and checksum it, the file's length, fsync,
 * its name. Runs in km (err set on failure) or in the live writer (err NULL: no allocation;
 * sf->step and errno say what failed). */
static int write_rest(snapfile_t *sf, km_snapshot_result_t *res, km_err_t **err)
{
	sf->step = "writing guest memory";
	const uint64_t *const *holds = sf->nb.layers != NULL ? (const uint64_t *const *)sf->nb.layers->holds : NULL;
	if (km_snap_write_memory(sf->g, sf->fd, sf->ph, holds, sf->crcs, res, sf->path, err) < 0)
		return -1;
	sf->step = "writing the ELF header, program headers and notes";
	if (write_headers(sf->fd, &sf->eh, sf->ph, sf->nph, &sf->nb, sf->crcs, sf->g->mm.nvmas, sf->path, err) < 0)
		return -1;
	/* Holes at the end must still count: the file is as long as its last segment says. */
	sf->step = "finishing the file (length, fsync)";
	int r;
	while (retry_eintr(r = ftruncate(sf->fd, (off_t)sf->end)))
		;
	if (r == 0)
		while (retry_eintr(r = fsync(sf->fd)))
			;
	if (r < 0)
		return km_err_set(err, errno, "%s: finishing the file (%#lx bytes)", sf->path, (unsigned long)sf->end);
	struct stat st;
	if (fstat(sf->fd, &st) == 0) {
		res->file_size = (uint64_t)st.st_size;
		res->disk_bytes = (uint64_t)st.st_blocks * 512;
	}
	sf->step = "giving the snapshot its name";
	if (km_snap_publish(sf->fd, sf->tmpname, &sf->pl, sf->was, err) < 0)
		return -1;
	sf->tmpname[0] = '\0'; /* published: nothing to remove */
	return 0;
}

/* Closes and frees what capture made; a temporary name left behind by a failure goes. */
static void release(snapfile_t *sf)
{
	if (sf->fd >= 0) {
		if (sf->tmpname[0] != '\0')
			unlinkat(sf->pl.dfd, sf->tmpname, 0);
		close(sf->fd);
	}
	if (sf->pl.dfd >= 0)
		close(sf->pl.dfd);
	free(sf->dcopy);
	free(sf->ph);
	free(sf->crcs);
	km_buf_free(&sf->nb.b);
	sf->fd = sf->pl.dfd = -1;
	sf->dcopy = NULL;
	sf->ph = NULL;
	sf->crcs = NULL;
}

static uint64_t ns_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (uint64_t)km_ts_diff_ns(t1, *t0);
}

static void print_timing(const km_guest_t *g, const km_snapshot_result_t *res)
{
	if (g->opts.timing)
		fprintf(stderr, "km-timing: snapshot_ns=%lu bytes=%lu\n", (unsigned long)res->elapsed_ns,
			(unsigned long)res->memory_bytes);
}

int km_snapshot_write(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(res, 0, sizeof(*res));
	km_live_wait_idle(); /* a live snapshot's writer still at work finishes first */
	snapfile_t sf;
	int rc = capture(g, req, &sf, err);
	if (rc == 0)
		rc = write_rest(&sf, res, err);
	release(&sf);
	if (sf.planned)
		km_layers_finish(g, &sf.plan, rc == 0);
	/* Live objects the table touched (TCP repair) go back as they were unless km now ends */
	km_fdtab_release(sf.nb.files, rc < 0 || req->keep_running);
	res->elapsed_ns = ns_since(&t0);
	if (rc == 0)
		print_timing(g, res);
	return rc;
}

/* --- live: the writer writes the file while the program runs ----------------------------- */

/* Shared memory (the program's MAP_SHARED anonymous mappings, and shared mappings of deleted
 * files, which the file holds) is the same pages in the writer as in the program: the fork does
 * not freeze it. Such a mapping's pages that may hold data (pagemap, as the writer's own check)
 * are copied at the pause into private memory, which the writer moves over its own view of the
 * range before it writes. */
typedef struct frozen {
	uint8_t *copy, *at;
	size_t len;
} frozen_t;

/* A file's page may be in its page cache without being mapped here (pagemap: not present): of a
 * file mapping every page is copied, as the writer reads every page of one. */
static void copy_pages(frozen_t *f, int pagemap, bool file)
{
	uint64_t pm[512];
	size_t npages = f->len / PAGE;
	for (size_t base = 0; base < npages; base += 512) {
		size_t n = npages - base < 512 ? npages - base : 512;
		bool have = !file && km_pagemap_read(pagemap, f->at + base * PAGE, n, pm);
		for (size_t i = 0; i < n; i++) {
			size_t off = (base + i) * PAGE;
			/* A page the host cannot give (past a file's end) stays zero, as the writer would. */
			if (!have || (pm[i] & (KM_PM_PRESENT | KM_PM_SWAPPED)))
				(void)km_guest_memcpy(f->copy + off, f->at + off, PAGE, f->at + off, PAGE);
		}
	}
}

static int freeze_shared(snapfile_t *sf, km_err_t **err)
{
	km_mm_t *mm = &sf->g->mm;
	size_t n = 0;
	for (size_t i = 0; i < mm->nvmas; i++)
		n += sf->ph[1 + i].p_filesz != 0 && (mm->vmas[i].flags & MAP_SHARED);
	if (n == 0)
		return 0;
	sf->frozen = calloc(n, sizeof(*sf->frozen));
	if (sf->frozen == NULL)
		return km_err_set(err, ENOMEM, "%s: copying shared memory", sf->path);
	int pagemap = km_fd_reserve(open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));
	for (size_t i = 0; i < mm->nvmas; i++) {
		km_vma_t *v = &mm->vmas[i];
		if (sf->ph[1 + i].p_filesz == 0 || !(v->flags & MAP_SHARED))
			continue;
		frozen_t *f = &sf->frozen[sf->nfrozen];
		f->at = mm->host + v->gpa;
		f->len = v->end - v->start;
		f->copy = mmap(NULL, f->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (f->copy == MAP_FAILED) {
			if (pagemap >= 0)
				close(pagemap);
			return km_err_set(err, errno, "%s: copying the shared memory at %#lx-%#lx", sf->path,
					  (unsigned long)v->start, (unsigned long)v->end);
		}
		sf->nfrozen++;
		copy_pages(f, pagemap, v->backing == KM_BACK_FILE);
	}
	if (pagemap >= 0)
		close(pagemap);
	return 0;
}

/* In the writer: the copies over its view of the shared ranges. Lock-free. */
static int place_frozen(snapfile_t *sf)
{
	for (size_t i = 0; i < sf->nfrozen; i++) {
		frozen_t *f = &sf->frozen[i];
		if (mremap(f->copy, f->len, f->len, MREMAP_MAYMOVE | MREMAP_FIXED, f->at) == MAP_FAILED)
			return -1;
	}
	return 0;
}

static void free_frozen(snapfile_t *sf)
{
	for (size_t i = 0; i < sf->nfrozen; i++)
		munmap(sf->frozen[i].copy, sf->frozen[i].len);
	free(sf->frozen);
	sf->frozen = NULL;
	sf->nfrozen = 0;
}

struct km_snapshot_live {
	km_guest_t *g;
	km_live_writer_t w;
	struct timespec t0;
	char *path;
	km_layers_plan_t plan; /* finished when the writer reports */
	bool planned;
	/* The temporary name the writer writes under (where the filesystem has no O_TMPFILE): a
	 * writer killed by a signal cannot remove it, km does. Its directory by path and identity,
	 * not by fd: the thread that finishes may have an fd table of its own (the listener). */
	char *tmpdir;
	dev_t tmpdir_dev;
	ino_t tmpdir_ino;
	char tmpname[128];
};

/* Notes where sf's temporary name is (its directory's path and identity), for remove_temp. */
static void note_temp(km_snapshot_live_t *lw, const snapfile_t *sf)
{
	char proc[64], dir[PATH_MAX];
	struct stat st;
	snprintf(proc, sizeof(proc), "/proc/thread-self/fd/%d", sf->pl.dfd);
	ssize_t n = readlink(proc, dir, sizeof(dir) - 1);
	if (n <= 0 || fstat(sf->pl.dfd, &st) < 0)
		return;
	dir[n] = '\0';
	if ((lw->tmpdir = strdup(dir)) == NULL)
		return;
	lw->tmpdir_dev = st.st_dev;
	lw->tmpdir_ino = st.st_ino;
	memcpy(lw->tmpname, sf->tmpname, sizeof(lw->tmpname));
}

/* Removes the temporary name a failed writer may have left, if its directory is still the one
 * it was written in. */
static void remove_temp(const km_snapshot_live_t *lw)
{
	struct stat st;
	km_fd_transient_begin(); /* the listener may finish: its fd lands in the guest's range first */
	int dfd = km_fd_reserve(open(lw->tmpdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	km_fd_transient_end();
	if (dfd < 0)
		return;
	if (fstat(dfd, &st) == 0 && st.st_dev == lw->tmpdir_dev && st.st_ino == lw->tmpdir_ino)
		unlinkat(dfd, lw->tmpname, 0);
	close(dfd);
}

#ifdef KM_TEST_HOOKS
/* The test build only (make test-km): the whole snapshot also written the ordinary way, at the
 * pause, to the file KM_TEST_LIVE_COPY names, so that a test can compare the live file's memory
 * with it page by page (tests/e2e/live.sh). */
static void test_copy(km_guest_t *g, const km_snapshot_req_t *req)
{
	const char *copy = getenv("KM_TEST_LIVE_COPY");
	if (copy == NULL)
		return;
	km_snapshot_req_t r = *req;
	r.path = copy;
	r.dir_fn = NULL;
	r.parent = NULL;
	r.detached = true; /* never the parent of the next one, and the tracker left as it is */
	km_snapshot_result_t res;
	km_err_t *err = NULL;
	if (km_snapshot_write(g, &r, &res, &err) < 0)
		fprintf(stderr, "km: test copy of the live snapshot: %s\n", err != NULL ? err->msg : "failed");
	km_err_free(&err);
}
#else
static void test_copy(km_guest_t *g, const km_snapshot_req_t *req)
{
	(void)g;
	(void)req;
}
#endif

/* In the writer: the file's rest, from the copy-on-write view the fork froze. */
static void live_child(void *arg, km_live_report_t *rep)
{
	snapfile_t *sf = arg;
	km_snapshot_result_t res;
	memset(&res, 0, sizeof(res));
	errno = 0;
	sf->step = "putting the copy of shared memory in place";
	if (place_frozen(sf) < 0 || write_rest(sf, &res, NULL) < 0) {
		rep->errnum = errno;
		rep->step = sf->step;
		if (sf->tmpname[0] != '\0')
			unlinkat(sf->pl.dfd, sf->tmpname, 0);
		return;
	}
	rep->memory_bytes = res.memory_bytes;
	rep->file_size = res.file_size;
	rep->disk_bytes = res.disk_bytes;
	rep->done = 1;
}

int km_snapshot_write_live(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_live_t **out, km_err_t **err)
{
	km_snapshot_live_t *lw = calloc(1, sizeof(*lw));
	char *path = strdup(req->path);
	if (lw == NULL || path == NULL) {
		free(lw);
		free(path);
		return km_err_set(err, ENOMEM, "%s", req->path);
	}
	clock_gettime(CLOCK_MONOTONIC, &lw->t0);
	lw->g = g;
	lw->path = path;
	km_live_wait_idle();
	test_copy(g, req);
	snapfile_t sf;
	int rc = capture(g, req, &sf, err);
	/* The open files' live state (TCP repair) goes back now: the program runs on. */
	km_fdtab_release(sf.nb.files, true);
	sf.nb.files = NULL;
	if (rc == 0)
		rc = freeze_shared(&sf, err);
	if (rc == 0) {
		int keep[] = {sf.fd, sf.pl.dfd, g->mm.snapshot_fd};
		int e = km_live_start(live_child, &sf, keep, 3, &lw->w);
		if (e < 0)
			rc = km_err_set(err, -e, "%s: starting the snapshot writer", req->path);
		else if (sf.tmpname[0] != '\0') { /* the writer's now: it removes it if it fails, km if it is killed */
			note_temp(lw, &sf);
			sf.tmpname[0] = '\0';
		}
	}
	free_frozen(&sf);
	release(&sf); /* km's copies; the writer has its own */
	if (sf.planned && rc == 0) {
		km_layers_paused(g, &sf.plan);
		lw->plan = sf.plan; /* the writer has its own copy; km's is finished when it reports */
		lw->planned = true;
	} else if (sf.planned) {
		km_layers_finish(g, &sf.plan, false);
	}
	if (rc < 0) {
		free(lw->tmpdir);
		free(lw->path);
		free(lw);
		return -1;
	}
	*out = lw;
	return 0;
}

int km_snapshot_live_finish(km_snapshot_live_t *lw, km_snapshot_result_t *res, void (*intr)(void *), void *arg,
			    km_err_t **err)
{
	km_live_report_t rep;
	int sig;
	memset(res, 0, sizeof(*res));
	int rc = km_live_wait(&lw->w, &rep, &sig, intr, arg);
	if (rc == 0) {
		res->memory_bytes = rep.memory_bytes;
		res->file_size = rep.file_size;
		res->disk_bytes = rep.disk_bytes;
		res->elapsed_ns = ns_since(&lw->t0);
		print_timing(lw->g, res);
	} else if (sig != 0) {
		km_err_set(err, EIO, "%s: the snapshot writer (pid %d) was killed by signal %d (%s); no file written",
			   lw->path, (int)lw->w.pid, sig, strsignal(sig));
	} else {
		km_err_set(err, rep.errnum != 0 ? rep.errnum : EIO, "%s: %s", lw->path, rep.step);
	}
	if (lw->planned)
		km_layers_finish(lw->g, &lw->plan, rc == 0);
	if (rc < 0 && lw->tmpdir != NULL) /* the writer's own failure removed it already; a killed one did not */
		remove_temp(lw);
	free(lw->tmpdir);
	free(lw->path);
	free(lw);
	return rc;
}
