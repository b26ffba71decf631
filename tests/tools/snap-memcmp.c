/*
 * snap-memcmp A B: compares the guest memory two km snapshots hold, page by page: the same
 * PT_LOAD segments (address, size, whether saved) and, in each saved one, the same bytes (a hole
 * reads as zeros, so a zero page written and a zero page left out are the same). For live
 * snapshots (tests/e2e/live.sh): A written by the writer while the program ran, B the copy the
 * test build of km wrote at the pause. Prints "same: N segments, M pages" and exits 0, or names
 * the first difference and exits 1; 2 for an unreadable file. Trusts nothing in either file
 * beyond bounds-checked reads.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PAGE 4096

typedef struct snap {
	const char *name;
	int fd;
	Elf64_Phdr *ph;
	int nph;
} snap_t;

static int load(snap_t *s, const char *name)
{
	Elf64_Ehdr eh;
	s->name = name;
	s->fd = open(name, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0 || pread(s->fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0) {
		fprintf(stderr, "snap-memcmp: %s: not a readable ELF snapshot\n", name);
		return -1;
	}
	s->nph = eh.e_phnum;
	s->ph = calloc((size_t)s->nph, sizeof(*s->ph));
	size_t len = (size_t)s->nph * sizeof(*s->ph);
	if (s->ph == NULL || pread(s->fd, s->ph, len, (off_t)eh.e_phoff) != (ssize_t)len) {
		fprintf(stderr, "snap-memcmp: %s: program headers unreadable\n", name);
		return -1;
	}
	return 0;
}

/* A page of a segment; past the file's end (a hole at the end) reads as zeros. */
static int page(const snap_t *s, uint64_t off, uint8_t *buf)
{
	memset(buf, 0, PAGE);
	ssize_t n = pread(s->fd, buf, PAGE, (off_t)off);
	if (n < 0) {
		perror(s->name);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: snap-memcmp A B\n");
		return 2;
	}
	snap_t a, b;
	if (load(&a, argv[1]) < 0 || load(&b, argv[2]) < 0)
		return 2;
	static uint8_t pa[PAGE], pb[PAGE];
	int segs = 0;
	uint64_t pages = 0;
	int ia = 0, ib = 0;
	for (;;) {
		while (ia < a.nph && a.ph[ia].p_type != PT_LOAD)
			ia++;
		while (ib < b.nph && b.ph[ib].p_type != PT_LOAD)
			ib++;
		if (ia == a.nph || ib == b.nph)
			break;
		const Elf64_Phdr *x = &a.ph[ia], *y = &b.ph[ib];
		if (x->p_vaddr != y->p_vaddr || x->p_memsz != y->p_memsz || x->p_filesz != y->p_filesz) {
			printf("differ: segment %d: %#lx+%#lx (%#lx in file) vs %#lx+%#lx (%#lx in file)\n", segs,
			       (unsigned long)x->p_vaddr, (unsigned long)x->p_memsz, (unsigned long)x->p_filesz,
			       (unsigned long)y->p_vaddr, (unsigned long)y->p_memsz, (unsigned long)y->p_filesz);
			return 1;
		}
		for (uint64_t o = 0; o < x->p_filesz; o += PAGE, pages++) {
			if (page(&a, x->p_offset + o, pa) < 0 || page(&b, y->p_offset + o, pb) < 0)
				return 2;
			size_t n = x->p_filesz - o < PAGE ? (size_t)(x->p_filesz - o) : PAGE;
			if (memcmp(pa, pb, n) != 0) {
				size_t at = 0;
				while (pa[at] == pb[at])
					at++;
				printf("differ: page %#lx (segment %d, byte %zu of the page)\n",
				       (unsigned long)(x->p_vaddr + o), segs, at);
				return 1;
			}
		}
		segs++;
		ia++;
		ib++;
	}
	if (ia != a.nph || ib != b.nph) {
		/* One has more PT_LOADs left. */
		int more = 0;
		for (; ia < a.nph; ia++)
			more += a.ph[ia].p_type == PT_LOAD;
		for (; ib < b.nph; ib++)
			more += b.ph[ib].p_type == PT_LOAD;
		if (more) {
			printf("differ: %d segment(s) in one file only\n", more);
			return 1;
		}
	}
	printf("same: %d segments, %lu pages\n", segs, (unsigned long)pages);
	return 0;
}
