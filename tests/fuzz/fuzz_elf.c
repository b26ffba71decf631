/*
 * libFuzzer target for the ELF loader, km_elf_load() (km/load/km_elf_load.c), and what km does next
 * with what it returns: the initial stack (km_initstack_build, km/load/km_initstack.c).
 *
 * Every input is written to a memfd and loaded through its /proc/self/fd path into a fresh
 * km_mm_t (host memory only: no KVM). Whatever the bytes, the loader must return 0, or -1 with an
 * error naming the file, and never crash, hang, leak or touch memory out of bounds (ASan + UBSan).
 * When it accepts a program, what it built is checked against the promises km relies on later:
 * every mapping page aligned, sorted, inside [0x1000, KM_USER_TOP), within the memory limit, the
 * entry point mapped, the first and last page of every mapping readable on the host (a file
 * mapping past the end of the file would SIGBUS here); then the initial stack is built and must
 * leave an aligned rsp inside the stack mapping with argc at it. The same bytes are also loaded
 * as a program's interpreter (km_elf_load_interp: what a PT_INTERP may name), which must land
 * page aligned below mmap_base (ET_DYN) with its entry mapped, or be refused naming the program.
 *
 * Build: tests/fuzz/build.sh elf (clang, -fsanitize=fuzzer,address,undefined). Seeds are in
 * tests/fuzz/elf-corpus/ (made by tests/fuzz/make_elf_corpus.sh); inputs that once broke the
 * loader are in tests/fuzz/elf-regressions/. tests/unit/test_elf_fuzz_replay.c compiles this file
 * with gcc and replays both directories through km_fuzz_elf_one() in make check.
 */
#include "fuzz_elf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_elf_load.h"
#include "km_guest.h"
#include "km_initstack.h"
#include "km_mm.h"

#define FUZZ_LIMIT (64ul << 20) /* --memory for the fuzzed program: big seeds' .bss fits */

static void broken(const char *what, const char *path, uint64_t a, uint64_t b)
{
	fprintf(stderr, "fuzz_elf: %s: %s (%#lx, %#lx)\n", path, what, (unsigned long)a, (unsigned long)b);
	abort();
}

/* Reads the host byte behind guest address `gva` of mapping v (whatever its protection): faults
 * here if the host memory km set up for the mapping is not all there (a file mapping past the
 * end of its file, a hole in the guest-physical reservation). */
static uint8_t touch(km_mm_t *mm, const km_vma_t *v, uint64_t gva, const char *path)
{
	if (v->gpa + (v->end - v->start) > mm->gpa_size)
		broken("mapping's guest-physical range outside guest memory", path, v->start, v->gpa);
	volatile uint8_t *h = km_gpa_to_hva(mm, v->gpa + (gva - v->start));
	return *h;
}

static void check_mappings(km_mm_t *mm, const km_elf_info_t *info, const char *path)
{
	volatile uint8_t sum = 0;
	uint64_t prev_end = 0;
	for (size_t i = 0; i < mm->nvmas; i++) {
		const km_vma_t *v = &mm->vmas[i];
		if (v->start >= v->end || (v->start | v->end) % KM_PAGE_SIZE != 0)
			broken("mapping empty or not page aligned", path, v->start, v->end);
		if (v->start < 0x1000 || v->end > KM_USER_TOP)
			broken("mapping outside the program's address space", path, v->start, v->end);
		if (v->start < prev_end)
			broken("mappings out of order or overlapping", path, prev_end, v->start);
		prev_end = v->end;
		sum += touch(mm, v, v->start, path) + touch(mm, v, v->end - 1, path);
	}
	if (mm->committed > mm->limit)
		broken("more memory committed than the limit", path, mm->committed, mm->limit);
	if (km_vma_find(mm, info->entry) == NULL)
		broken("entry point not mapped", path, info->entry, 0);
	if (info->image_end > KM_USER_TOP)
		broken("image ends past the program's address space", path, info->image_end, 0);
	(void)sum;
}

/* What km_guest_load_program does after loading: the heap after the image, then the stack. */
static void check_stack(km_guest_t *g, const km_elf_info_t *info, const char *path)
{
	km_mm_set_brk_start(&g->mm, info->image_end);
	char *argv[] = {"prog", "an argument", NULL};
	char *envp[] = {"HOME=/", NULL};
	uint64_t rsp = 0, argc = 0;
	km_err_t *err = NULL;
	if (km_initstack_build(g, info, NULL, argv, envp, &rsp, &err) < 0) {
		/* Fine when the program's own segments took the room (limit, or the stack's range). */
		if (err == NULL)
			broken("stack refused without an error", path, 0, 0);
		km_err_free(&err);
		return;
	}
	km_vma_t *v = km_vma_find(&g->mm, rsp);
	if (err != NULL || rsp % 16 != 0 || v == NULL || v->kind != KM_VMA_STACK)
		broken("bad initial rsp", path, rsp, 0);
	if (km_copy_from_guest(&g->mm, &argc, rsp, sizeof(argc)) != 0 || argc != 2)
		broken("argc not at rsp", path, rsp, argc);
}

/* The file at `path` loaded as the interpreter a program names: as for a program, plus the
 * interpreter's own promises (an ET_DYN one below mmap_base at a page-aligned base). */
static void check_as_interp(const char *path)
{
	static const char prog_path[] = "/fuzz/program";
	km_mm_t *mm = calloc(1, sizeof(*mm));
	km_elf_info_t *prog = calloc(1, sizeof(*prog));
	km_interp_info_t *in = calloc(1, sizeof(*in));
	km_err_t *err = NULL;
	if (mm == NULL || prog == NULL || in == NULL || km_mm_init(mm, FUZZ_LIMIT, 46, &err) < 0) {
		fprintf(stderr, "fuzz_elf: %s\n", err != NULL ? err->msg : "out of memory");
		abort();
	}
	mm->mmap_base = KM_USER_TOP - (256ul << 20); /* where km_initstack_map would put it */
	snprintf(prog->interp, sizeof(prog->interp), "%s", path);
	if (km_elf_load_interp(mm, prog_path, prog, in, &err) == 0) {
		if (err != NULL)
			broken("interpreter accepted with an error set", path, 0, 0);
		km_elf_info_t as_prog = {.entry = in->entry};
		check_mappings(mm, &as_prog, path);
		if (in->base % KM_PAGE_SIZE != 0 || (in->base != 0 && in->base >= mm->mmap_base))
			broken("interpreter base not page aligned or above mmap_base", path, in->base, mm->mmap_base);
	} else if (err == NULL || strstr(err->msg, prog_path) == NULL) {
		fprintf(stderr, "fuzz_elf: interpreter refusal does not name the program: %s\n", err ? err->msg : "(none)");
		abort();
	}
	km_err_free(&err);
	km_mm_fini(mm);
	free(mm);
	free(prog);
	free(in);
}

int km_fuzz_elf_one(const uint8_t *data, size_t size, char *msg, size_t msg_size)
{
	if (msg_size > 0)
		msg[0] = '\0';
	int fd = memfd_create("fuzz-elf", MFD_CLOEXEC);
	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size)) {
		perror("fuzz_elf: memfd");
		abort();
	}
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	km_guest_t *g = calloc(1, sizeof(*g));
	km_err_t *err = NULL;
	if (g == NULL || km_mm_init(&g->mm, FUZZ_LIMIT, 46, &err) < 0) {
		fprintf(stderr, "fuzz_elf: %s\n", err != NULL ? err->msg : "out of memory");
		abort();
	}
	check_as_interp(path);
	g->mm.mmap_base = KM_USER_TOP; /* as before km_initstack_build sets it */
	g->exe_path = path;
	km_elf_info_t info;
	int rc = km_elf_load(&g->mm, path, &info, &err);
	if (rc == 0) {
		if (err != NULL)
			broken("accepted with an error set", path, 0, 0);
		check_mappings(&g->mm, &info, path);
		check_stack(g, &info, path);
	} else {
		if (rc != -1 || err == NULL || err->msg == NULL)
			broken("refused without an error object", path, (uint64_t)rc, 0);
		if (strstr(err->msg, path) == NULL) {
			fprintf(stderr, "fuzz_elf: message does not name the file: %s\n", err->msg);
			abort();
		}
		if (msg_size > 0)
			snprintf(msg, msg_size, "%s", err->msg);
		km_err_free(&err);
	}
	free(g->auxv);
	km_mm_fini(&g->mm);
	free(g);
	close(fd);
	return rc == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_fuzz_elf_one(data, size, NULL, 0);
	return 0;
}
