/*
 * Turns a real snapshot (or core file) into small seed inputs for the snapshot-loader fuzz
 * target. A real snapshot is sparse but its PT_LOADs span megabytes (the 8 MiB stack), far past
 * the fuzzer's -max_len, so the seeds keep the headers and notes and drop the memory:
 *
 *   make_seeds compact IN OUT   every mapping shrunk to one page (the stack keeps its top page,
 *                               others their first) and every saved PT_LOAD pointed at file
 *                               offset 0: a file of headers + notes that the loader accepts.
 *                               A segment with a held-page bitmap (2.6, NT_KM_LAYERS) keeps its
 *                               size (the bitmap's length is its size's) and holds page 0 only
 *   make_seeds compact2 IN OUT  the same with a second vCPU (copies of the NT_KM_CPU and
 *                               NT_X86_XSTATE notes, vCPU id 1, NT_KM_PROC.nvcpus = 2)
 *   make_seeds compact-strings-last IN OUT
 *                               compact, with NT_KM_STRINGS moved to the end of the notes: a
 *                               string read that misses its end runs off the loader's buffer
 *                               (where ASan sees it) instead of into the next note
 *   make_seeds notes IN OUT     the file cut right after its notes: every check but the last
 *                               (segments inside the file) passes
 *   make_seeds nokm IN OUT      the file cut after its notes, with every note of owner "KM"
 *                               renamed to owner "XX": an ELF core file with no km notes
 *
 * Every output of a km file but nokm's gets its NT_KM_CHECKSUM header checksum recomputed
 * (km_snapshot_reseal), so the loader checks what lies behind it; segment checksums are left as
 * they were (the loader does not read memory; the compact seeds' segments are not real).
 *
 * Host tool, built by tests/fuzz/make_corpus.sh. Only for files km wrote: it trusts its input.
 */
#include <elf.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "km_snapshot.h"

#define PAGE 4096ul
#define KIND_STACK 4 /* KM_VMA_STACK in km/mm/km_mm.h */

static void die(const char *what)
{
	fprintf(stderr, "make_seeds: %s\n", what);
	exit(1);
}

int main(int argc, char **argv)
{
	if (argc != 4)
		die("usage: make_seeds compact|notes|nokm IN OUT");
	const char *mode = argv[1];
	FILE *in = fopen(argv[2], "rb");
	if (in == NULL)
		die("cannot open input");
	Elf64_Ehdr eh;
	if (fread(&eh, sizeof(eh), 1, in) != 1 || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_phnum == 0)
		die("input is not an ELF file with program headers");
	Elf64_Phdr *ph = calloc(eh.e_phnum, sizeof(*ph));
	if (fseek(in, (long)eh.e_phoff, SEEK_SET) != 0 || fread(ph, sizeof(*ph), eh.e_phnum, in) != eh.e_phnum)
		die("cannot read program headers");
	Elf64_Phdr *note = NULL;
	for (int i = 0; i < eh.e_phnum; i++)
		if (ph[i].p_type == PT_NOTE && note == NULL)
			note = &ph[i];
	if (note == NULL)
		die("no PT_NOTE");
	size_t end = (size_t)(note->p_offset + note->p_filesz);
	uint8_t *buf = calloc(1, end < PAGE ? PAGE : end);
	if (fseek(in, 0, SEEK_SET) != 0 || fread(buf, 1, end, in) != end)
		die("cannot read headers and notes");
	fclose(in);
	size_t out_len = end;
	bool two = strcmp(mode, "compact2") == 0;
	bool strings_last = strcmp(mode, "compact-strings-last") == 0;
	if (two || strings_last)
		mode = "compact";
	size_t strings_at = 0, strings_len = 0;
	const uint8_t *cpu = NULL, *xsave = NULL; /* notes to copy, whole (header, owner, desc) */
	size_t cpu_len = 0, xsave_len = 0;
	uint8_t *proc = NULL;

	/* 2.6: the segments with a bitmap (NT_KM_LAYERS) are not shrunk; each holds page 0 only. */
	bool keep[4096] = {false};
	for (size_t at = (size_t)note->p_offset; at + sizeof(Elf64_Nhdr) <= end;) {
		Elf64_Nhdr nh;
		memcpy(&nh, buf + at, sizeof(nh));
		uint8_t *desc = buf + at + sizeof(nh) + ((nh.n_namesz + 3) & ~3u);
		if (nh.n_namesz == 3 && strcmp((char *)buf + at + sizeof(nh), KM_NOTE_OWNER) == 0 &&
		    nh.n_type == NT_KM_LAYERS && strcmp(mode, "compact") == 0) {
			km_nt_layers_t h;
			memcpy(&h, desc, sizeof(h));
			uint8_t *bits = desc + sizeof(h) + (size_t)h.nsegments * sizeof(km_nt_layer_seg_t);
			for (uint32_t i = 0; i < h.nsegments && i < 4096; i++) {
				km_nt_layer_seg_t r;
				memcpy(&r, desc + sizeof(h) + i * sizeof(r), sizeof(r));
				keep[i] = r.nwords > 0;
				if (r.nwords > 0) {
					memset(bits, 0, r.nwords * 8);
					bits[0] = 1;
				}
				bits += r.nwords * 8;
			}
		}
		at += sizeof(nh) + ((nh.n_namesz + 3) & ~3u) + ((nh.n_descsz + 3) & ~3u);
	}

	/* Walk the notes: rename or shrink km's. */
	size_t pos = (size_t)note->p_offset, k = 0;
	while (pos + sizeof(Elf64_Nhdr) <= end) {
		Elf64_Nhdr nh;
		memcpy(&nh, buf + pos, sizeof(nh));
		char *owner = (char *)buf + pos + sizeof(nh);
		uint8_t *desc = (uint8_t *)owner + ((nh.n_namesz + 3) & ~3u);
		bool km = nh.n_namesz == 3 && strcmp(owner, KM_NOTE_OWNER) == 0;
		if (km && strcmp(mode, "nokm") == 0)
			memcpy(owner, "XX", 2);
		if (km && nh.n_type == NT_KM_VMA && strcmp(mode, "compact") == 0) {
			km_nt_vma_t v;
			memcpy(&v, desc, sizeof(v));
			/* The k-th PT_LOAD belongs to the k-th NT_KM_VMA. */
			Elf64_Phdr *load = NULL;
			for (int i = 0, seen = 0; i < eh.e_phnum; i++)
				if (ph[i].p_type == PT_LOAD && seen++ == (int)k)
					load = &ph[i];
			if (load == NULL)
				die("fewer PT_LOADs than NT_KM_VMA notes");
			if (k < 4096 && keep[k])
				; /* its bitmap holds page 0 of it, whatever its size */
			else if (v.kind == KIND_STACK)
				v.start = v.end - PAGE;
			else
				v.end = v.start + PAGE;
			memcpy(desc, &v, sizeof(v));
			load->p_vaddr = v.start;
			load->p_memsz = v.end - v.start;
			load->p_offset = 0;
			load->p_filesz = v.saved ? PAGE : 0;
			k++;
		}
		size_t whole = sizeof(nh) + ((nh.n_namesz + 3) & ~3u) + ((nh.n_descsz + 3) & ~3u);
		if (km && nh.n_type == NT_KM_CPU && cpu == NULL)
			cpu = buf + pos, cpu_len = whole;
		if (km && nh.n_type == NT_KM_PROC)
			proc = desc;
		if (km && nh.n_type == NT_KM_STRINGS)
			strings_at = pos, strings_len = whole;
		if (nh.n_namesz == 6 && strcmp(owner, "LINUX") == 0 && nh.n_type == NT_X86_XSTATE && xsave == NULL)
			xsave = buf + pos, xsave_len = whole;
		pos += whole;
	}
	if (two) {
		if (cpu == NULL || xsave == NULL || proc == NULL || end != out_len)
			die("compact2: no NT_KM_CPU, NT_X86_XSTATE or NT_KM_PROC note, or notes not at the end");
		uint8_t *nb = calloc(1, (out_len < PAGE ? PAGE : out_len) + cpu_len + xsave_len);
		memcpy(nb, buf, out_len);
		memcpy(nb + out_len, cpu, cpu_len);
		memcpy(nb + out_len + cpu_len, xsave, xsave_len);
		uint32_t id = 1, n = 2;
		/* The copy's descriptor follows its header and the owner "KM\0" padded to 4. */
		memcpy(nb + out_len + sizeof(Elf64_Nhdr) + 4 + offsetof(km_nt_cpu_t, vcpu_id), &id, sizeof(id));
		memcpy(nb + (proc - buf) + offsetof(km_nt_proc_t, nvcpus), &n, sizeof(n));
		out_len += cpu_len + xsave_len;
		note->p_filesz += cpu_len + xsave_len;
		free(buf);
		buf = nb;
	}
	if (strings_last) {
		if (strings_len == 0 || strings_at + strings_len > end)
			die("compact-strings-last: no NT_KM_STRINGS note");
		uint8_t *tmp = malloc(strings_len);
		memcpy(tmp, buf + strings_at, strings_len);
		memmove(buf + strings_at, buf + strings_at + strings_len, end - strings_at - strings_len);
		memcpy(buf + end - strings_len, tmp, strings_len);
		free(tmp);
	}
	if (strcmp(mode, "compact") == 0) {
		memcpy(buf + eh.e_phoff, ph, eh.e_phnum * sizeof(*ph));
		if (out_len < PAGE)
			out_len = PAGE; /* PT_LOADs at offset 0 need a page of file */
	} else if (strcmp(mode, "notes") != 0 && strcmp(mode, "nokm") != 0) {
		die("unknown mode");
	}
	/* nokm's checksum note is renamed and a kernel core has none: nothing to reseal there. */
	if (strcmp(mode, "compact") == 0 && !km_snapshot_reseal(buf, out_len))
		die("no NT_KM_CHECKSUM note first in the notes");
	if (strcmp(mode, "notes") == 0)
		km_snapshot_reseal(buf, out_len);
	FILE *out = fopen(argv[3], "wb");
	if (out == NULL || fwrite(buf, 1, out_len, out) != out_len || fclose(out) != 0)
		die("cannot write output");
	free(buf);
	free(ph);
	return 0;
}
