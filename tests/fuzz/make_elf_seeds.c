/*
 * Makes seeds for the ELF loader fuzz target (tests/fuzz/fuzz_elf.c); run by make_elf_corpus.sh.
 *   make_elf_seeds compact IN OUT   a real static program cut to a few KiB that km still loads:
 *                                   headers and program headers kept, every segment's file part
 *                                   cut to at most 256 bytes and moved into the first page
 *                                   (keeping its page offset), sizes in memory kept, sections
 *                                   dropped. The loader reads only headers; the fuzzer then
 *                                   mutates layouts of real programs, not megabytes of code.
 *   make_elf_seeds tiny DIR         hand-made programs written to DIR: tiny-exec (one segment
 *                                   holding headers and code), tiny-pie (static-pie with
 *                                   PT_PHDR, a .bss-only segment, an executable stack),
 *                                   tiny-sections (with a section table, which libelf parses),
 *                                   tiny-shared-page (two segments in one page), tiny-interp
 *                                   (dynamically linked: loads, PT_INTERP read).
 */
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096ul
#define CUT 256ul

static void die(const char *what)
{
	fprintf(stderr, "make_elf_seeds: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_file(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, p, n) != (ssize_t)n || close(fd) < 0)
		die(path);
}

static int compact(const char *in, const char *out)
{
	int fd = open(in, O_RDONLY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		die(in);
	uint8_t *src = malloc(st.st_size), *dst = calloc(1, 2 * PAGE);
	if (src == NULL || dst == NULL || read(fd, src, st.st_size) != st.st_size)
		die(in);
	close(fd);
	Elf64_Ehdr *eh = (Elf64_Ehdr *)src;
	size_t phend = eh->e_phoff + (size_t)eh->e_phnum * sizeof(Elf64_Phdr);
	if ((size_t)st.st_size < sizeof(*eh) || eh->e_phentsize != sizeof(Elf64_Phdr) || phend > PAGE) {
		fprintf(stderr, "make_elf_seeds: %s: not a 64-bit program with headers in its first page\n", in);
		return 1;
	}
	memcpy(dst, src, PAGE < (size_t)st.st_size ? PAGE : (size_t)st.st_size);
	eh = (Elf64_Ehdr *)dst;
	eh->e_shoff = 0;
	eh->e_shnum = 0;
	eh->e_shstrndx = 0;
	size_t len = phend;
	for (int i = 0; i < eh->e_phnum; i++) {
		Elf64_Phdr *ph = (Elf64_Phdr *)(dst + eh->e_phoff) + i;
		if (ph->p_filesz == 0)
			continue;
		uint64_t off = ph->p_offset % PAGE, n = ph->p_filesz < CUT ? ph->p_filesz : CUT;
		if (off >= phend) /* keep the segment's first bytes (the headers are already there) */
			memcpy(dst + off, src + ph->p_offset, n);
		ph->p_offset = off;
		ph->p_filesz = n;
		if (off + n > len)
			len = off + n;
	}
	write_file(out, dst, len);
	free(src);
	free(dst);
	return 0;
}

/* --- hand-made programs -------------------------------------------------------------------- */

/* mov $60,%eax; xor %edi,%edi; syscall: exit(0) */
static const uint8_t exit0[] = {0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05};

typedef struct tiny {
	Elf64_Ehdr eh;
	Elf64_Phdr ph[5];
	uint8_t code[16];
	Elf64_Shdr sh[3];
	char strtab[16];
} tiny_t;

static void tiny_init(tiny_t *t, uint16_t type, uint64_t base, int nph)
{
	memset(t, 0, sizeof(*t));
	memcpy(t->eh.e_ident, ELFMAG, SELFMAG);
	t->eh.e_ident[EI_CLASS] = ELFCLASS64;
	t->eh.e_ident[EI_DATA] = ELFDATA2LSB;
	t->eh.e_ident[EI_VERSION] = EV_CURRENT;
	t->eh.e_type = type;
	t->eh.e_machine = EM_X86_64;
	t->eh.e_version = EV_CURRENT;
	t->eh.e_entry = base + offsetof(tiny_t, code);
	t->eh.e_phoff = offsetof(tiny_t, ph);
	t->eh.e_ehsize = sizeof(Elf64_Ehdr);
	t->eh.e_phentsize = sizeof(Elf64_Phdr);
	t->eh.e_phnum = nph;
	memcpy(t->code, exit0, sizeof(exit0));
	/* Segment 0: the whole file, read + execute. */
	t->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_X, .p_vaddr = base, .p_paddr = base,
				.p_filesz = sizeof(*t), .p_memsz = sizeof(*t), .p_align = PAGE};
}

static void tiny_write(const char *dir, const char *name, const tiny_t *t)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	write_file(path, t, sizeof(*t));
}

static int tiny(const char *dir)
{
	tiny_t t;
	tiny_init(&t, ET_EXEC, 0x400000, 1);
	tiny_write(dir, "tiny-exec", &t);

	tiny_init(&t, ET_DYN, 0, 4);
	t.ph[1] = (Elf64_Phdr){.p_type = PT_PHDR, .p_flags = PF_R, .p_offset = t.eh.e_phoff,
			       .p_vaddr = t.eh.e_phoff, .p_filesz = 4 * sizeof(Elf64_Phdr),
			       .p_memsz = 4 * sizeof(Elf64_Phdr), .p_align = 8};
	t.ph[2] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_vaddr = 0x10000,
			       .p_memsz = 0x3000, .p_align = PAGE};
	t.ph[3] = (Elf64_Phdr){.p_type = PT_GNU_STACK, .p_flags = PF_R | PF_W | PF_X, .p_align = 16};
	tiny_write(dir, "tiny-pie", &t);

	tiny_init(&t, ET_EXEC, 0x400000, 1);
	t.eh.e_shoff = offsetof(tiny_t, sh);
	t.eh.e_shentsize = sizeof(Elf64_Shdr);
	t.eh.e_shnum = 3;
	t.eh.e_shstrndx = 2;
	memcpy(t.strtab, "\0.text\0.shstrtab", 16);
	t.sh[1] = (Elf64_Shdr){.sh_name = 1, .sh_type = SHT_PROGBITS, .sh_flags = SHF_ALLOC | SHF_EXECINSTR,
			       .sh_addr = t.eh.e_entry, .sh_offset = offsetof(tiny_t, code), .sh_size = 16,
			       .sh_addralign = 1};
	t.sh[2] = (Elf64_Shdr){.sh_name = 7, .sh_type = SHT_STRTAB, .sh_offset = offsetof(tiny_t, strtab),
			       .sh_size = 16, .sh_addralign = 1};
	tiny_write(dir, "tiny-sections", &t);

	/* A read-only first part and a writable rest sharing one page, as small programs have. */
	tiny_init(&t, ET_EXEC, 0x400000, 3);
	t.ph[0].p_filesz = t.ph[0].p_memsz = offsetof(tiny_t, sh);
	t.ph[1] = (Elf64_Phdr){.p_type = PT_LOAD, .p_flags = PF_R | PF_W, .p_offset = offsetof(tiny_t, sh),
			       .p_vaddr = 0x400000 + offsetof(tiny_t, sh), .p_filesz = sizeof(t.sh),
			       .p_memsz = 0x1800, .p_align = PAGE};
	t.ph[2] = (Elf64_Phdr){.p_type = PT_TLS, .p_flags = PF_R, .p_offset = offsetof(tiny_t, sh),
			       .p_vaddr = 0x400000 + offsetof(tiny_t, sh), .p_filesz = 8, .p_memsz = 64,
			       .p_align = 8};
	tiny_write(dir, "tiny-shared-page", &t);

	tiny_init(&t, ET_EXEC, 0x400000, 2);
	memcpy(t.strtab, "/lib/ld.so", 11);
	t.ph[1] = (Elf64_Phdr){.p_type = PT_INTERP, .p_flags = PF_R, .p_offset = offsetof(tiny_t, strtab),
			       .p_vaddr = 0x400000 + offsetof(tiny_t, strtab), .p_filesz = 11, .p_memsz = 11,
			       .p_align = 1};
	tiny_write(dir, "tiny-interp", &t);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "compact") == 0)
		return compact(argv[2], argv[3]);
	if (argc == 3 && strcmp(argv[1], "tiny") == 0)
		return tiny(argv[2]);
	fprintf(stderr, "usage: make_elf_seeds compact IN OUT | tiny DIR\n");
	return 2;
}
