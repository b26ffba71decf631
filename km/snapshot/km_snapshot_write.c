/*
 * The snapshot (and core) writer: see km_snapshot.h for the contract, km_coredump.h for the
 * format. Layout: ELF header, program headers (PT_NOTE, then one PT_LOAD per VMA), the notes,
 * then each segment's bytes at a page-aligned offset. Only pages that may hold data are read
 * (pagemap says which anonymous pages were ever touched), and only non-zero pages are written:
 * the rest are holes, so the file's disk usage tracks what the program really used.
 */
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
#include "km_snapshot_layers.h"
#include "km_snapshot_writer.h"

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

/* The whole file: memory first, then the headers and notes that describe and checksum it. */
static int write_file(km_guest_t *g, int fd, notebuf_t *nb, km_snapshot_result_t *res, km_err_t **err,
		      const char *path)
{
	km_mm_t *mm = &g->mm;
	size_t nph = 1 + mm->nvmas;
	size_t hdrs = sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr);
	uint64_t data_off = KM_PAGE_UP(hdrs + nb->b.len);
	Elf64_Ehdr eh;
	memset(&eh, 0, sizeof(eh));
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_ident[EI_OSABI] = ELFOSABI_NONE;
	eh.e_type = ET_CORE;
	eh.e_machine = EM_X86_64;
	eh.e_version = EV_CURRENT;
	eh.e_phoff = sizeof(Elf64_Ehdr);
	eh.e_ehsize = sizeof(Elf64_Ehdr);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = (Elf64_Half)nph;
	Elf64_Phdr *ph = calloc(nph, sizeof(*ph));
	uint32_t *crcs = calloc(mm->nvmas + 1, sizeof(*crcs));
	int rc = -1;
	if (ph == NULL || crcs == NULL) {
		km_err_set(err, ENOMEM, "%s: program headers", path);
		goto out;
	}
	ph[0] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = hdrs, .p_filesz = nb->b.len, .p_align = 4};
	uint64_t off = data_off;
	for (size_t i = 0; i < mm->nvmas; i++) {
		km_vma_t *v = &mm->vmas[i];
		uint64_t size = v->end - v->start;
		uint64_t fsz = km_snap_vma_saved(v) ? km_layers_filesz(nb->layers, i, size) : 0;
		ph[1 + i] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = elf_flags(v->prot), .p_offset = off,
					 .p_vaddr = v->start, .p_memsz = size, .p_filesz = fsz, .p_align = PAGE};
		off += fsz;
	}
	/* The open files' data after the memory, page-aligned; no program header covers it. */
	if (nb->files != NULL && km_fdtab_blob_bytes(nb->files) > 0) {
		off = KM_PAGE_UP(off);
		if (km_fdtab_write_blobs(nb->files, fd, off, nb->b.p + nb->files_at, err) < 0) {
			km_err_wrap(err, "%s", path);
			goto out;
		}
		off += km_fdtab_blob_bytes(nb->files);
	}
	const uint64_t *const *holds = nb->layers != NULL ? (const uint64_t *const *)nb->layers->holds : NULL;
	if (km_snap_write_memory(g, fd, ph, holds, crcs, res, path, err) < 0 ||
	    write_headers(fd, &eh, ph, nph, nb, crcs, mm->nvmas, path, err) < 0)
		goto out;
	/* Holes at the end must still count: the file is as long as its last segment says. */
	int r;
	while (retry_eintr(r = ftruncate(fd, (off_t)off)))
		;
	if (r == 0)
		while (retry_eintr(r = fsync(fd)))
			;
	if (r < 0) {
		km_err_set(err, errno, "%s: finishing the file (%#lx bytes)", path, (unsigned long)off);
		goto out;
	}
	rc = 0;
out:
	free(ph);
	free(crcs);
	return rc;
}


int km_snapshot_write(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	memset(res, 0, sizeof(*res));
	int sig = req->reason == KM_REASON_CORE ? g->term_signal : 0;
	notebuf_t nb = {0};
	if (req->reason != KM_REASON_CORE) {
		km_fdtab_save_opts_t fo = {.tcp = req->tcp != 0 ? (enum km_tcp_policy)(req->tcp - 1)
							  : (enum km_tcp_policy)g->opts.tcp_established,
					   .file_max = g->opts.snapshot_file_max, .ends = !req->keep_running};
		if (km_fdtab_save(g, &fo, &nb.files, err) < 0)
			return km_err_wrap(err, "%s", req->path);
	}
	km_layers_plan_t plan;
	nb.layers = req->reason == KM_REASON_CORE ? NULL : &plan; /* a core holds every page, no id */
	if (km_layers_plan(g, req, &plan, err) < 0) {
		km_fdtab_release(nb.files, true);
		return km_err_wrap(err, "%s", req->path);
	}
	if (km_snap_notes_build(g, req, sig, &nb, err) < 0) {
		km_buf_free(&nb.b);
		km_fdtab_release(nb.files, true);
		km_layers_finish(g, &plan, false);
		return km_err_wrap(err, "%s", req->path);
	}
	char *dcopy = NULL;
	char tmpname[128];
	tmpname[0] = '\0';
	place_t pl = {.dfd = -1};
	target_t was;
	int fd = -1, rc = -1;
	if (km_snap_find_place(req, &pl, &dcopy, err) < 0 || km_snap_check_target(&pl, &was, err) < 0)
		; /* refused before anything is written */
	else if ((fd = km_snap_open_temp(&pl, tmpname, sizeof(tmpname))) < 0)
		km_err_set(err, errno, "%s: creating the file in its directory", req->path);
	else if (write_file(g, fd, &nb, res, err, req->path) == 0) {
		struct stat st;
		if (fstat(fd, &st) == 0) {
			res->file_size = (uint64_t)st.st_size;
			res->disk_bytes = (uint64_t)st.st_blocks * 512;
		}
		rc = km_snap_publish(fd, tmpname, &pl, was, err);
	}
	if (fd >= 0) {
		if (rc < 0 && tmpname[0] != '\0')
			unlinkat(pl.dfd, tmpname, 0);
		close(fd);
	}
	if (pl.dfd >= 0)
		close(pl.dfd);
	free(dcopy);
	km_buf_free(&nb.b);
	if (req->reason == KM_REASON_CORE)
		km_layers_plan_free(&plan);
	else
		km_layers_finish(g, &plan, rc == 0);
	/* Live objects the table touched (TCP repair) go back as they were unless km now ends */
	km_fdtab_release(nb.files, rc < 0 || req->keep_running);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->elapsed_ns = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000000ull + (uint64_t)(t1.tv_nsec - t0.tv_nsec);
	if (rc == 0 && g->opts.timing)
		fprintf(stderr, "km-timing: snapshot_ns=%lu bytes=%lu\n", (unsigned long)res->elapsed_ns,
			(unsigned long)res->memory_bytes);
	return rc;
}
