/*
 * snap-fdrec: edits one kind's record in a snapshot's fd table (the NT_KM_FILES note,
 * docs/snapshot-files.md), as a hostile file would, for tests (tests/e2e/fd_pipes.sh).
 *
 *   snap-fdrec FILE KIND NTH OFF SIZE VALUE
 *
 * Finds the NTH (from 0) description of kind KIND and writes VALUE, SIZE (4 or 8) bytes little-
 * endian, at byte OFF of its record. Prints "patched" and exits 0, or says why not and exits 1.
 * The header checksum is then stale: reseal the file with km-snapseal.
 */
#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NT_KM_FILES 0x4b4d000c

static int die(const char *why)
{
	printf("snap-fdrec: %s\n", why);
	return 1;
}

static uint32_t u32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* The file offset of the NT_KM_FILES descriptor and its size, or -1. */
static long find_note(int fd, uint64_t *size)
{
	Elf64_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0)
		return -1;
	for (int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) != sizeof(ph))
			return -1;
		if (ph.p_type != PT_NOTE)
			continue;
		uint64_t align = ph.p_align == 8 ? 8 : 4, o = ph.p_offset, end = ph.p_offset + ph.p_filesz;
		while (o + 12 <= end) {
			uint8_t h[12];
			if (pread(fd, h, 12, (off_t)o) != 12)
				return -1;
			uint64_t namesz = u32(h), descsz = u32(h + 4), desc = o + 12 + (namesz + align - 1) / align * align;
			if (u32(h + 8) == NT_KM_FILES) {
				*size = descsz;
				return (long)desc;
			}
			o = desc + (descsz + align - 1) / align * align;
		}
	}
	return -1;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: snap-fdrec FILE KIND NTH OFF SIZE VALUE\n");
		return 2;
	}
	uint32_t kind = (uint32_t)strtoul(argv[2], NULL, 0), nth = (uint32_t)strtoul(argv[3], NULL, 0);
	uint64_t off = strtoull(argv[4], NULL, 0), size = strtoull(argv[5], NULL, 0), value = strtoull(argv[6], NULL, 0);
	int fd = open(argv[1], O_RDWR);
	if (fd < 0)
		return die("cannot open the file");
	uint64_t len = 0;
	long at = find_note(fd, &len);
	if (at < 0)
		return die("no NT_KM_FILES note");
	uint8_t *n = malloc(len);
	if (n == NULL || pread(fd, n, len, at) != (ssize_t)len || len < 24)
		return die("cannot read the note");
	uint32_t nfds = u32(n + 4), ndescs = u32(n + 8), nblobs = u32(n + 12);
	uint64_t p = 24 + (uint64_t)nblobs * 24 + (uint64_t)nfds * 12;
	for (uint32_t d = 0, seen = 0; d < ndescs && p + 20 <= len; d++) {
		uint32_t k = u32(n + p), rlen = u32(n + p + 16);
		uint64_t rec = p + 20;
		if (k == kind && seen++ == nth) {
			if ((size != 4 && size != 8) || off + size > rlen)
				return die("offset outside the record");
			if (pwrite(fd, &value, size, (off_t)(at + rec + off)) != (ssize_t)size)
				return die("cannot write");
			printf("patched\n");
			return 0;
		}
		p = rec + rlen;
	}
	return die("no such record");
}
