/*
 * km-snapseal FILE: recomputes the header checksum of a km snapshot (NT_KM_CHECKSUM, the first
 * note: CRC32C of the bytes from the file's start to the end of the notes, its own header_crc
 * field read as zero; docs/snapshot-format.md) after a test damaged the file on purpose, so
 * that km's deeper checks see the damage. Written from the format description alone, with its
 * own bitwise CRC32C, so it also checks that km computes what the documentation says.
 * Exit status 0, or 1 with a message (not a km snapshot of format 2).
 */
#include <elf.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static uint32_t crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78u & -(crc & 1));
	}
	return ~crc;
}

static int fail(const char *file, const char *why)
{
	fprintf(stderr, "km-snapseal: %s: %s\n", file, why);
	return 1;
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return fail("usage", "km-snapseal FILE");
	int fd = open(argv[1], O_RDWR);
	Elf64_Ehdr eh;
	if (fd < 0 || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh))
		return fail(argv[1], "cannot read the ELF header");
	Elf64_Phdr note = {0};
	for (int i = 0; i < eh.e_phnum && note.p_type != PT_NOTE; i++)
		if (pread(fd, &note, sizeof(note), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(note))) != sizeof(note))
			return fail(argv[1], "cannot read the program headers");
	if (note.p_type != PT_NOTE || note.p_filesz > (64u << 20))
		return fail(argv[1], "no PT_NOTE");
	uint64_t covered = note.p_offset + note.p_filesz;
	uint8_t *buf = malloc(covered);
	if (buf == NULL || pread(fd, buf, covered, 0) != (ssize_t)covered)
		return fail(argv[1], "cannot read the headers and notes");
	/* The first note: Elf64_Nhdr (12 bytes), "KM\0" padded to 4, then the descriptor:
	 * algorithm (4), header_crc (4), covered (8), ... */
	uint8_t *n = buf + note.p_offset;
	uint32_t namesz, type;
	memcpy(&namesz, n, 4);
	memcpy(&type, n + 8, 4);
	if (note.p_filesz < 32 || namesz != 3 || memcmp(n + 12, "KM", 3) != 0 || type != 0x4b4d0008)
		return fail(argv[1], "the notes do not start with NT_KM_CHECKSUM");
	uint8_t *field = n + 16 + 4;
	memcpy(n + 16 + 8, &covered, 8);
	memset(field, 0, 4);
	uint32_t crc = crc32c(0, buf, covered);
	memcpy(field, &crc, 4);
	if (pwrite(fd, buf, covered, 0) != (ssize_t)covered || close(fd) != 0)
		return fail(argv[1], "cannot write");
	free(buf);
	return 0;
}
