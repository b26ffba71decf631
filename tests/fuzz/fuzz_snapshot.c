/*
 * libFuzzer target for the snapshot loader, km_snapshot_open_fd() (km/snapshot/km_snapshot_read.c).
 *
 * Every input is written to a memfd (a regular file, as the loader requires) and opened as a
 * snapshot. Whatever the bytes, the loader must return 0 or -1 with an error object: never
 * crash, hang, leak, read out of bounds or exit. On success the result is looked at a little
 * (strings, vCPU and mapping records, and the fd table through --inspect's listing of it) so
 * that ASan sees reads of everything the loader hands out; on failure the error must carry a message naming the file.
 *
 * A custom mutator helps the fuzzer past the one check blind byte mutation rarely gets through:
 * every PT_LOAD must agree with its NT_KM_VMA note (address, size, file size). After libFuzzer's
 * own mutation, three times in four, each PT_LOAD is rewritten to match its note (and to point
 * at file offset 0), so that mutations of a mapping's addresses reach the checks behind it
 * (address space bounds, order, overlap). Then, seven times in eight, the NT_KM_CHECKSUM header
 * checksum is recomputed (km_snapshot_reseal): the loader refuses anything whose checksum does
 * not match before it looks further, so without this almost every mutation would stop there.
 * The loader under test is the same either way, checksum check included.
 *
 * Build: tests/fuzz/build.sh (clang, -fsanitize=fuzzer,address,undefined). Seeds are in
 * tests/fuzz/corpus/ (made by tests/fuzz/make_corpus.sh); inputs that once crashed it are in
 * tests/fuzz/regressions/, replayed by tests/unit/test_snapshot_read.c.
 */
#include <elf.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_fdtab.h"
#include "km_snapshot.h"

#define FUZZ_NAME "fuzz"

/* Reads every byte of a string the loader points at (it must be inside the notes). */
static size_t touch_str(const char *p)
{
	return p != NULL ? strlen(p) : 0;
}

static void look_at(const km_snapshot_t *s)
{
	volatile size_t sum = 0;
	sum += touch_str(s->exe_path) + touch_str(s->cwd) + touch_str(s->label) + touch_str(s->km_version);
	const char *a = s->argv;
	for (uint32_t i = 0; a != NULL && i < s->argc; i++) {
		size_t n = touch_str(a);
		sum += n;
		a += n + 1;
	}
	for (uint32_t i = 0; i < s->ncpus; i++)
		if (s->cpus[i].xsave != NULL && s->cpus[i].xsave_len > 0)
			sum += s->cpus[i].xsave[0] + s->cpus[i].xsave[s->cpus[i].xsave_len - 1];
	for (size_t i = 0; i < s->nvmas; i++) {
		sum += touch_str(s->vmas[i].path);
		if (s->vmas[i].file_len > s->file_size || s->vmas[i].file_off > s->file_size - s->vmas[i].file_len)
			abort(); /* the loader promised every segment lies inside the file */
	}
	if (s->auxv != NULL && s->auxv_len > 0)
		sum += ((const uint8_t *)s->auxv)[0] + ((const uint8_t *)s->auxv)[s->auxv_len - 1];
	if (s->sigactions != NULL)
		sum += ((const uint8_t *)s->sigactions)[0] + ((const uint8_t *)s->sigactions)[64 * 32 - 1];
	if (s->files != NULL) {
		/* The fd table's own checks (and every kind's reading of its record) are not the
		 * loader's: --inspect's listing runs them all on the hostile note. */
		km_buf_t b = {0};
		km_fdtab_describe(s->files, s->files_len, &b);
		sum += b.len;
		km_buf_free(&b);
	}
	(void)sum;
}

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

/* Makes the k-th PT_LOAD match the k-th NT_KM_VMA note. Every access is bounds-checked: the
 * input is anything libFuzzer made. */
static void sync_loads(uint8_t *data, size_t size)
{
	Elf64_Ehdr eh;
	if (size < sizeof(eh))
		return;
	memcpy(&eh, data, sizeof(eh));
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > size ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
		return;
	Elf64_Phdr note = {0};
	bool have_note = false;
	for (int i = 0; i < eh.e_phnum && !have_note; i++) {
		memcpy(&note, data + eh.e_phoff + (uint64_t)i * sizeof(Elf64_Phdr), sizeof(note));
		have_note = note.p_type == PT_NOTE;
	}
	if (!have_note || note.p_offset > size || note.p_filesz > size - note.p_offset)
		return;
	uint64_t pos = note.p_offset, end = note.p_offset + note.p_filesz;
	int load = 0; /* next PT_LOAD index to look at */
	while (end - pos >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr nh;
		memcpy(&nh, data + pos, sizeof(nh));
		uint64_t name = pos + sizeof(nh), desc = name + ((nh.n_namesz + 3ull) & ~3ull);
		if (desc > end || ((nh.n_descsz + 3ull) & ~3ull) > end - desc)
			return;
		pos = desc + ((nh.n_descsz + 3ull) & ~3ull);
		if (nh.n_namesz != 3 || memcmp(data + name, "KM", 3) != 0 || nh.n_type != NT_KM_VMA ||
		    nh.n_descsz < sizeof(km_nt_vma_t))
			continue;
		km_nt_vma_t v;
		memcpy(&v, data + desc, sizeof(v));
		for (; load < eh.e_phnum; load++) {
			uint8_t *at = data + eh.e_phoff + (uint64_t)load * sizeof(Elf64_Phdr);
			Elf64_Phdr ph;
			memcpy(&ph, at, sizeof(ph));
			if (ph.p_type != PT_LOAD)
				continue;
			ph.p_vaddr = v.start;
			ph.p_memsz = v.end - v.start;
			ph.p_filesz = v.saved ? ph.p_memsz : 0;
			ph.p_offset = 0;
			memcpy(at, &ph, sizeof(ph));
			load++;
			break;
		}
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	size = LLVMFuzzerMutate(data, size, max_size);
	if ((seed & 3) != 0)
		sync_loads(data, size);
	if (((seed >> 2) & 7) != 0)
		km_snapshot_reseal(data, size);
	return size;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int fd = memfd_create("fuzz-snapshot", MFD_CLOEXEC);
	if (fd < 0) {
		perror("memfd_create");
		abort();
	}
	size_t done = 0;
	while (done < size) {
		ssize_t n = write(fd, data + done, size - done);
		if (n <= 0) {
			perror("write to memfd");
			abort();
		}
		done += (size_t)n;
	}
	/* The loader reads with pread: the file position does not matter. */
	static km_snapshot_t s; /* ~60 KiB: not on the stack */
	km_err_t *err = NULL;
	int rc = km_snapshot_open_fd(fd, FUZZ_NAME, &s, &err);
	if (rc == 0) {
		if (err != NULL)
			abort(); /* success with an error object */
		look_at(&s);
	} else {
		/* Every rejection is an error object with a message that names the file. */
		if (rc != -1 || err == NULL || err->msg == NULL || strstr(err->msg, FUZZ_NAME) == NULL)
			abort();
	}
	km_snapshot_close(&s);
	km_err_free(&err);
	return 0;
}
