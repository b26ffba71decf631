/*
 * Unit tests for km_elf_load.c on real files. Fixtures are made at test time in a temporary
 * directory from /bin/busybox (a static x86-64 program, package busybox-static) and /bin/true
 * (dynamically linked): truncated copies and copies with single header fields patched.
 * Loading maps into a km_mm_t only (host memory), so no KVM is needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "km_elf_load.h"
#include "km_mm.h"

#define BUSYBOX "/bin/busybox"
#define DYNAMIC "/bin/true"
#define LIMIT (64ul << 20)

static char dir[64];
static uint8_t *bb;     /* busybox's bytes */
static size_t bb_size;
static char made[48][128]; /* fixtures to remove */
static int nmade;

/* --- fixtures --- */

static const char *fixture_path(const char *name)
{
	static char p[128];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void write_fixture(const char *name, const void *data, size_t len)
{
	const char *p = fixture_path(name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	snprintf(made[nmade++], sizeof(made[0]), "%s", p);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *b = malloc(st.st_size);
	assert_non_null(b);
	assert_int_equal(pread(fd, b, st.st_size, 0), st.st_size);
	close(fd);
	*len = st.st_size;
	return b;
}

static Elf64_Ehdr *eh_of(uint8_t *b)
{
	return (Elf64_Ehdr *)b;
}

static Elf64_Phdr *ph_of(uint8_t *b, size_t i)
{
	return (Elf64_Phdr *)(b + eh_of(b)->e_phoff + i * sizeof(Elf64_Phdr));
}

/* Index of the n-th program header of `type` in busybox, or -1. */
static int find_ph(uint8_t *b, uint32_t type, int n)
{
	for (int i = 0; i < eh_of(b)->e_phnum; i++)
		if (ph_of(b, i)->p_type == type && n-- == 0)
			return i;
	return -1;
}

/* A copy of busybox with a change applied to its headers. */
typedef void (*patch_fn)(uint8_t *b);

static void write_patched(const char *name, patch_fn fn)
{
	uint8_t *c = malloc(bb_size);
	assert_non_null(c);
	memcpy(c, bb, bb_size);
	fn(c);
	write_fixture(name, c, bb_size);
	free(c);
}

static void p_machine(uint8_t *b) { eh_of(b)->e_machine = EM_AARCH64; }
static void p_class32(uint8_t *b) { b[EI_CLASS] = ELFCLASS32; }
static void p_core(uint8_t *b) { eh_of(b)->e_type = ET_CORE; }
static void p_rel(uint8_t *b) { eh_of(b)->e_type = ET_REL; }
static void p_pie(uint8_t *b) { eh_of(b)->e_type = ET_DYN; }
static void p_phentsize(uint8_t *b) { eh_of(b)->e_phentsize = 32; }
static void p_entry(uint8_t *b) { eh_of(b)->e_entry = 0x100000; }
static void p_interp(uint8_t *b)
{
	Elf64_Phdr *p = ph_of(b, find_ph(b, PT_NOTE, 0));
	p->p_type = PT_INTERP;
	p->p_filesz = 1; /* too short for a path: Linux refuses it (ENOEXEC) */
}
static void p_execstack(uint8_t *b) { ph_of(b, find_ph(b, PT_GNU_STACK, 0))->p_flags |= PF_X; }
static void p_nostack(uint8_t *b) { ph_of(b, find_ph(b, PT_GNU_STACK, 0))->p_type = PT_NULL; }
static void p_noload(uint8_t *b)
{
	for (int i; (i = find_ph(b, PT_LOAD, 0)) >= 0;)
		ph_of(b, i)->p_type = PT_NULL;
}
static void p_misaligned(uint8_t *b) { ph_of(b, find_ph(b, PT_LOAD, 1))->p_vaddr += 0x10; }
static void p_filesz(uint8_t *b)
{
	Elf64_Phdr *p = ph_of(b, find_ph(b, PT_LOAD, 0));
	p->p_filesz = p->p_memsz + 1;
}
static void p_lowaddr(uint8_t *b) { ph_of(b, find_ph(b, PT_LOAD, 0))->p_vaddr = 0; }
static void p_highaddr(uint8_t *b) { ph_of(b, find_ph(b, PT_LOAD, 0))->p_vaddr = KM_USER_TOP; }
static void p_pastfile(uint8_t *b)
{
	Elf64_Phdr *p = ph_of(b, find_ph(b, PT_LOAD, 2));
	p->p_offset = 0xfffffffffffff000ul; /* offset + filesz wraps */
}

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/km-test-elf-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	bb = read_all(BUSYBOX, &bb_size);
	if (bb == NULL)
		return 0; /* the busybox tests skip */
	write_fixture("busybox", bb, bb_size);
	write_fixture("trunc100", bb, 100);
	write_fixture("trunchalf", bb, bb_size / 2);
	write_patched("machine", p_machine);
	write_patched("class32", p_class32);
	write_patched("core", p_core);
	write_patched("rel", p_rel);
	write_patched("pie", p_pie);
	write_patched("phentsize", p_phentsize);
	write_patched("entry", p_entry);
	write_patched("interp", p_interp);
	write_patched("execstack", p_execstack);
	write_patched("nostack", p_nostack);
	write_patched("noload", p_noload);
	write_patched("misaligned", p_misaligned);
	write_patched("filesz", p_filesz);
	write_patched("lowaddr", p_lowaddr);
	write_patched("highaddr", p_highaddr);
	write_patched("pastfile", p_pastfile);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	for (int i = 0; i < nmade; i++)
		unlink(made[i]);
	rmdir(dir);
	free(bb);
	return 0;
}

static int setup(void **state)
{
	km_mm_t *mm = calloc(1, sizeof(*mm));
	km_err_t *err = NULL;
	if (mm == NULL || km_mm_init(mm, LIMIT, 46, &err) < 0)
		return -1;
	mm->mmap_base = 0x7f0000000000ul;
	*state = mm;
	return 0;
}

static int teardown(void **state)
{
	km_mm_fini(*state);
	free(*state);
	return 0;
}

#define NEED_BUSYBOX()                                                                                       \
	do {                                                                                                 \
		if (bb == NULL)                                                                              \
			skip();                                                                              \
	} while (0)

/* Loads `path` expecting failure: the message names the file and says `want`; nothing mapped. */
static void expect_load_error(km_mm_t *mm, const char *path, const char *want, bool maps_nothing)
{
	km_elf_info_t info;
	km_err_t *err = NULL;
	int rc = km_elf_load(mm, path, &info, &err);
	if (rc != -1)
		fail_msg("km_elf_load(%s) = %d, expected -1", path, rc);
	assert_non_null(err);
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", err->msg);
	km_err_free(&err);
	if (strstr(msg, path) == NULL)
		fail_msg("message \"%s\" does not name the file %s", msg, path);
	if (strstr(msg, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", msg, want);
	if (maps_nothing && mm->nvmas != 0)
		fail_msg("%s: %zu mappings left after a refused file", path, mm->nvmas);
}

/* --- refused files --- */

/* A copy of the dynamic program whose PT_INTERP names `interp` (appended to the file). */
static const char *with_interp(const char *name, const char *interp)
{
	size_t len, n = strlen(interp) + 1;
	uint8_t *t = read_all(DYNAMIC, &len);
	assert_non_null(t);
	uint8_t *c = malloc(len + n);
	assert_non_null(c);
	memcpy(c, t, len);
	memcpy(c + len, interp, n);
	Elf64_Phdr *p = ph_of(c, find_ph(c, PT_INTERP, 0));
	p->p_offset = len;
	p->p_filesz = n;
	write_fixture(name, c, len + n);
	free(c);
	free(t);
	static char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path(name));
	return path;
}

static void test_dynamic(void **state)
{
	km_mm_t *mm = *state;
	if (access(DYNAMIC, R_OK) != 0)
		skip();
	km_elf_info_t info;
	km_err_t *err = NULL;
	assert_int_equal(km_elf_load(mm, DYNAMIC, &info, &err), 0);
	assert_string_equal(info.interp, "/lib64/ld-linux-x86-64.so.2");
	assert_int_equal(info.bias, KM_PIE_BASE);
	km_interp_info_t in;
	if (km_elf_load_interp(mm, DYNAMIC, &info, &in, &err) != 0)
		fail_msg("km_elf_load_interp: %s", err->msg);
	/* Where mmap would put it: below mmap_base, page aligned, its entry in one of its mappings,
	 * which name the file itself (symlinks resolved) and its identity. */
	char *real = realpath(info.interp, NULL);
	struct stat st;
	assert_int_equal(stat(real, &st), 0);
	assert_string_equal(in.path, real);
	assert_true(in.base < mm->mmap_base && in.base >= 0x10000 && in.base % KM_PAGE_SIZE == 0);
	km_vma_t *v = km_vma_find(mm, in.entry);
	assert_non_null(v);
	assert_int_equal(v->kind, KM_VMA_ELF);
	assert_string_equal(v->path, real);
	assert_int_equal(v->ino, st.st_ino);
	assert_int_equal(v->dev, st.st_dev);
	assert_int_equal(in.ino, st.st_ino);
	assert_int_equal(in.size, st.st_size);
	assert_non_null(km_vma_find(mm, in.base));
	assert_null(km_vma_find(mm, in.base - 1));
	free(real);
	assert_int_equal(km_elf_probe(DYNAMIC, &err), 0);
	assert_null(err);
}

/* A program whose interpreter km_elf_load_interp refuses: the message names both files and
 * says `want`; km_elf_probe gives `errnum` as execve would. */
static void expect_interp_error(km_mm_t *mm, const char *prog, const char *want, int errnum)
{
	km_elf_info_t info;
	km_interp_info_t in;
	km_err_t *err = NULL;
	assert_int_equal(km_elf_load(mm, prog, &info, &err), 0);
	size_t before = mm->nvmas;
	assert_int_equal(km_elf_load_interp(mm, prog, &info, &in, &err), -1);
	assert_non_null(err);
	if (strstr(err->msg, prog) == NULL || strstr(err->msg, info.interp) == NULL || strstr(err->msg, want) == NULL)
		fail_msg("message \"%s\" should name %s and %s and say \"%s\"", err->msg, prog, info.interp, want);
	km_err_free(&err);
	assert_int_equal(mm->nvmas, before);
	int rc = km_elf_probe(prog, &err);
	if (rc != -errnum)
		fail_msg("km_elf_probe(%s) = %d, expected %d", prog, rc, -errnum);
	assert_non_null(err);
	km_err_free(&err);
}

static void test_bad_interp(void **state)
{
	km_mm_t *mm = *state;
	if (access(DYNAMIC, R_OK) != 0)
		skip();
	char missing[128], text[128];
	snprintf(missing, sizeof(missing), "%s/no-such-ld.so", dir);
	expect_interp_error(mm, with_interp("i-missing", missing), strerror(ENOENT), ENOENT);
	write_fixture("i-text", "#!/bin/sh\n", 10);
	snprintf(text, sizeof(text), "%s", fixture_path("i-text"));
	expect_interp_error(mm, with_interp("i-notelf", text), "not an ELF file", ELIBBAD);
	/* An interpreter that is itself dynamically linked. */
	expect_interp_error(mm, with_interp("i-nested", "/usr/bin/true"), "asks for an interpreter", ELIBBAD);
	NEED_BUSYBOX();
	char c32[128];
	snprintf(c32, sizeof(c32), "%s", fixture_path("class32"));
	expect_interp_error(mm, with_interp("i-32", c32), "32-bit", ELIBBAD);
}

/* An ET_EXEC interpreter is loaded at its own addresses: one that overlaps the program (here
 * busybox as its own interpreter) is refused, not mapped over it. */
static void test_interp_overlap(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	char interp[128];
	snprintf(interp, sizeof(interp), "%s", fixture_path("busybox"));
	size_t n = strlen(interp) + 1;
	uint8_t *c = malloc(bb_size + n);
	assert_non_null(c);
	memcpy(c, bb, bb_size);
	memcpy(c + bb_size, interp, n);
	Elf64_Phdr *p = ph_of(c, find_ph(c, PT_NOTE, 0));
	p->p_type = PT_INTERP;
	p->p_offset = bb_size;
	p->p_filesz = n;
	write_fixture("self-interp", c, bb_size + n);
	free(c);
	char prog[128];
	snprintf(prog, sizeof(prog), "%s", fixture_path("self-interp"));
	km_elf_info_t info;
	km_interp_info_t in;
	km_err_t *err = NULL;
	assert_int_equal(km_elf_load(mm, prog, &info, &err), 0);
	assert_string_equal(info.interp, interp);
	size_t before = mm->nvmas;
	km_vma_t first = mm->vmas[0];
	assert_int_equal(km_elf_load_interp(mm, prog, &info, &in, &err), -1);
	if (strstr(err->msg, "overlap") == NULL || strstr(err->msg, prog) == NULL)
		fail_msg("unexpected message: %s", err->msg);
	km_err_free(&err);
	assert_int_equal(mm->nvmas, before);
	assert_int_equal(mm->vmas[0].start, first.start);
	assert_int_equal(mm->vmas[0].gpa, first.gpa);
}

static void test_bad_pt_interp(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("interp"));
	expect_load_error(mm, path, "PT_INTERP", true);
	km_err_t *err = NULL;
	assert_int_equal(km_elf_probe(path, &err), -ENOEXEC);
	km_err_free(&err);
}

static void test_not_elf(void **state)
{
	km_mm_t *mm = *state;
	const char text[] = "#!/bin/sh\necho this is a shell script, not a program\n";
	write_fixture("text", text, sizeof(text) - 1);
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("text"));
	expect_load_error(mm, path, "not an ELF file", true);
	write_fixture("empty", "", 0);
	snprintf(path, sizeof(path), "%s", fixture_path("empty"));
	expect_load_error(mm, path, "not an ELF file", true);
	/* Just the magic number. */
	write_fixture("magic", ELFMAG, SELFMAG);
	snprintf(path, sizeof(path), "%s", fixture_path("magic"));
	km_elf_info_t info;
	km_err_t *err = NULL;
	assert_int_equal(km_elf_load(mm, path, &info, &err), -1);
	assert_non_null(strstr(err->msg, path));
	km_err_free(&err);
	assert_int_equal(mm->nvmas, 0);
}

static void test_not_a_file(void **state)
{
	km_mm_t *mm = *state;
	expect_load_error(mm, dir, "not a regular file", true);
	char path[128];
	snprintf(path, sizeof(path), "%s/does-not-exist", dir);
	expect_load_error(mm, path, strerror(ENOENT), true);
	km_elf_info_t info;
	km_err_t *err = NULL;
	assert_int_equal(km_elf_load(mm, path, &info, &err), -1);
	assert_int_equal(err->errnum, ENOENT);
	km_err_free(&err);
}

static void test_truncated(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("trunc100"));
	expect_load_error(mm, path, "truncated", true);
	snprintf(path, sizeof(path), "%s", fixture_path("trunchalf"));
	expect_load_error(mm, path, "truncated", true);
	/* A segment whose offset + size wraps around. */
	snprintf(path, sizeof(path), "%s", fixture_path("pastfile"));
	expect_load_error(mm, path, "ends past the end of the file", true);
}

static void test_wrong_machine_and_class(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("machine"));
	expect_load_error(mm, path, "not x86-64", true);
	expect_load_error(mm, path, "machine 183", true);
	snprintf(path, sizeof(path), "%s", fixture_path("class32"));
	expect_load_error(mm, path, "32-bit", true);
}

static void test_wrong_type(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("core"));
	expect_load_error(mm, path, "core file", true);
	snprintf(path, sizeof(path), "%s", fixture_path("rel"));
	expect_load_error(mm, path, "ELF type 1 is not an executable", true);
	snprintf(path, sizeof(path), "%s", fixture_path("phentsize"));
	expect_load_error(mm, path, "no usable program headers", true);
	snprintf(path, sizeof(path), "%s", fixture_path("noload"));
	expect_load_error(mm, path, "no loadable segments", true);
}

static void test_bad_segments(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	static const char *const names[] = {"misaligned", "filesz", "lowaddr", "highaddr"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char path[128];
		snprintf(path, sizeof(path), "%s", fixture_path(names[i]));
		expect_load_error(mm, path, "unusable address or size", true);
	}
}

static void test_entry_outside(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("entry"));
	expect_load_error(mm, path, "entry point 0x100000 is outside", false);
}

/* --- a static program loads --- */

static int seg_prot(uint32_t f)
{
	return ((f & PF_R) ? PROT_READ : 0) | ((f & PF_W) ? PROT_WRITE : 0) | ((f & PF_X) ? PROT_EXEC : 0);
}

/* Checks the image loaded from `path` against that file's own headers (read without libelf). */
static void check_image(km_mm_t *mm, const char *path, const km_elf_info_t *info, uint64_t bias)
{
	size_t img_size;
	uint8_t *img = read_all(path, &img_size);
	assert_non_null(img);
	Elf64_Ehdr *eh = eh_of(img);
	assert_int_equal(info->bias, bias);
	assert_int_equal(info->entry, eh->e_entry + bias);
	assert_int_equal(info->phnum, eh->e_phnum);
	assert_int_equal(info->phent, sizeof(Elf64_Phdr));
	assert_false(info->exec_stack); /* busybox's PT_GNU_STACK is RW */

	uint64_t image_end = 0, committed = 0, phdr = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr *p = ph_of(img, i);
		if (p->p_type != PT_LOAD)
			continue;
		uint64_t start = p->p_vaddr + bias, end = start + p->p_memsz;
		if (end > image_end)
			image_end = end;
		committed += KM_PAGE_UP(end) - KM_PAGE_DOWN(start);
		if (eh->e_phoff >= p->p_offset && eh->e_phoff < p->p_offset + p->p_filesz)
			phdr = start + eh->e_phoff - p->p_offset;
		/* Every page of the segment is mapped with the segment's protection. */
		for (uint64_t a = KM_PAGE_DOWN(start); a < end; a += KM_PAGE_SIZE) {
			km_vma_t *v = km_vma_find(mm, a);
			if (v == NULL)
				fail_msg("segment %d: page %#lx not mapped", i, (unsigned long)a);
			assert_int_equal(v->prot, seg_prot(p->p_flags));
		}
		/* File bytes arrive unchanged... */
		uint8_t *h = km_gva_to_hva(mm, start, p->p_filesz, KM_ACC_READ);
		assert_non_null(h);
		assert_memory_equal(h, img + p->p_offset, p->p_filesz);
		/* ...and the rest up to the end of the last page (.bss) reads as zero. */
		uint64_t zstart = start + p->p_filesz, zend = KM_PAGE_UP(end);
		if (zend > zstart) {
			uint8_t *z = km_gva_to_hva(mm, zstart, zend - zstart, KM_ACC_READ);
			assert_non_null(z);
			for (uint64_t k = 0; k < zend - zstart; k++)
				if (z[k] != 0)
					fail_msg("segment %d: byte at %#lx is %#x, expected 0", i,
						 (unsigned long)(zstart + k), z[k]);
		}
	}
	/* image_end is the end of the highest segment (the heap starts at the page after it). */
	assert_int_equal(info->image_end, image_end);
	assert_null(km_vma_find(mm, KM_PAGE_UP(info->image_end)));
	for (size_t i = 0; i < mm->nvmas; i++)
		assert_true(mm->vmas[i].end <= KM_PAGE_UP(info->image_end));
	assert_int_equal(mm->committed, committed);

	/* The entry point is in an executable mapping of the file. */
	km_vma_t *ev = km_vma_find(mm, info->entry);
	assert_non_null(ev);
	assert_true(ev->prot & PROT_EXEC);
	assert_int_equal(ev->kind, KM_VMA_ELF);
	assert_string_equal(ev->path, path);
	/* AT_PHDR points at the program headers as loaded. */
	assert_int_not_equal(info->phdr, 0);
	assert_int_equal(info->phdr, phdr);
	uint8_t *ph = km_gva_to_hva(mm, info->phdr, (size_t)eh->e_phnum * sizeof(Elf64_Phdr), KM_ACC_READ);
	assert_non_null(ph);
	assert_memory_equal(ph, img + eh->e_phoff, (size_t)eh->e_phnum * sizeof(Elf64_Phdr));
	/* The page tables follow the mappings. */
	assert_int_equal(km_pt_walk(&mm->pt, info->entry, NULL), ev->gpa + (info->entry - ev->start));
	free(img);
}

static void test_static_loads(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("busybox"));
	km_elf_info_t info;
	memset(&info, 0xa5, sizeof(info));
	km_err_t *err = NULL;
	int rc = km_elf_load(mm, path, &info, &err);
	if (rc != 0)
		fail_msg("km_elf_load(%s): %s", path, err ? err->msg : "?");
	assert_null(err);
	assert_int_equal(eh_of(bb)->e_type, ET_EXEC);
	check_image(mm, path, &info, 0);
}

static void test_pie_bias(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	/* The same image marked ET_DYN: loaded at KM_PIE_BASE (no relocation needed to check this). */
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("pie"));
	km_elf_info_t info;
	km_err_t *err = NULL;
	int rc = km_elf_load(mm, path, &info, &err);
	if (rc != 0)
		fail_msg("km_elf_load(%s): %s", path, err ? err->msg : "?");
	check_image(mm, path, &info, KM_PIE_BASE);
	assert_null(km_vma_find(mm, ph_of(bb, find_ph(bb, PT_LOAD, 0))->p_vaddr));
}

static void test_exec_stack(void **state)
{
	km_mm_t *mm = *state;
	NEED_BUSYBOX();
	km_elf_info_t info;
	km_err_t *err = NULL;
	char path[128];
	snprintf(path, sizeof(path), "%s", fixture_path("execstack"));
	assert_int_equal(km_elf_load(mm, path, &info, &err), 0);
	assert_true(info.exec_stack);
	/* No PT_GNU_STACK at all: executable, as Linux gives it. */
	km_mm_fini(mm);
	assert_int_equal(km_mm_init(mm, LIMIT, 46, &err), 0);
	snprintf(path, sizeof(path), "%s", fixture_path("nostack"));
	assert_int_equal(km_elf_load(mm, path, &info, &err), 0);
	assert_true(info.exec_stack);
	assert_null(err);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_dynamic),
	    T(test_bad_interp),
	    T(test_bad_pt_interp),
	    T(test_interp_overlap),
	    T(test_not_elf),
	    T(test_not_a_file),
	    T(test_truncated),
	    T(test_wrong_machine_and_class),
	    T(test_wrong_type),
	    T(test_bad_segments),
	    T(test_entry_outside),
	    T(test_static_loads),
	    T(test_pie_bias),
	    T(test_exec_stack),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
