/*
 * The snapshot file's checksums (NT_KM_CHECKSUM, km_coredump.h): the header checksum over the
 * ELF header, program headers and notes, and each segment's. See km_snapshot.h for the contract.
 */
#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "km_crc32c.h"
#include "km_snapshot.h"

#define CHUNK (1u << 20)

uint32_t km_snapshot_header_crc_buf(const uint8_t *img, uint64_t covered, uint64_t field_off)
{
	static const uint8_t zero[4];
	uint32_t crc = km_crc32c(0, img, field_off);
	crc = km_crc32c(crc, zero, sizeof(zero));
	return km_crc32c(crc, img + field_off + 4, covered - field_off - 4);
}

uint32_t km_snapshot_header_crc(const Elf64_Ehdr *eh, const Elf64_Phdr *ph, size_t nph, const uint8_t *notes,
				size_t notes_len, size_t field_off)
{
	static const uint8_t zero[4];
	uint32_t crc = km_crc32c(0, eh, sizeof(*eh));
	crc = km_crc32c(crc, ph, nph * sizeof(*ph));
	crc = km_crc32c(crc, notes, field_off);
	crc = km_crc32c(crc, zero, sizeof(zero));
	return km_crc32c(crc, notes + field_off + 4, notes_len - field_off - 4);
}

/* pread until len bytes are in or the file ends (ENODATA then, so no stale errno). */
static int read_full(int fd, uint8_t *buf, size_t len, uint64_t off)
{
	while (len > 0) {
		ssize_t n = pread(fd, buf, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = ENODATA;
			return -1;
		}
		buf += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

/* CRC of the file's bytes [off, off+len), continuing crc. */
static int crc_range(int fd, uint64_t off, uint64_t len, uint8_t *buf, uint32_t *crc)
{
	while (len > 0) {
		size_t n = len < CHUNK ? (size_t)len : CHUNK;
		if (read_full(fd, buf, n, off) < 0)
			return -1;
		*crc = km_crc32c(*crc, buf, n);
		off += n;
		len -= n;
	}
	return 0;
}

int km_snapshot_segment_crc(int fd, uint64_t off, uint64_t len, uint32_t *crc)
{
	uint8_t *buf = malloc(CHUNK);
	if (buf == NULL)
		return -1;
	uint64_t at = off, end = off + len;
	int rc = 0;
	*crc = 0;
	while (at < end && rc == 0) {
		/* Holes read as zero: fold them in without reading them (a segment may be gigabytes
		 * of untouched memory). Where SEEK_DATA is not supported, read everything. */
		off_t data = lseek(fd, (off_t)at, SEEK_DATA);
		if (data < 0)
			data = errno == ENXIO ? (off_t)end : (off_t)at;
		if ((uint64_t)data > end)
			data = (off_t)end;
		*crc = km_crc32c_zeros(*crc, (uint64_t)data - at);
		at = (uint64_t)data;
		if (at >= end)
			break;
		off_t hole = lseek(fd, (off_t)at, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end || (uint64_t)hole <= at)
			hole = (off_t)end;
		rc = crc_range(fd, at, (uint64_t)hole - at, buf, crc);
		at = (uint64_t)hole;
	}
	free(buf);
	return rc;
}

bool km_snapshot_reseal(uint8_t *buf, size_t len)
{
	Elf64_Ehdr eh;
	if (len < sizeof(eh))
		return false;
	memcpy(&eh, buf, sizeof(eh));
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > len ||
	    (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > len - eh.e_phoff)
		return false;
	Elf64_Phdr note;
	int i;
	for (i = 0; i < eh.e_phnum; i++) {
		memcpy(&note, buf + eh.e_phoff + (uint64_t)i * sizeof(note), sizeof(note));
		if (note.p_type == PT_NOTE)
			break;
	}
	if (i == eh.e_phnum || note.p_offset > len || note.p_filesz > len - note.p_offset)
		return false;
	/* The first note: header, "KM\0" padded to 4, then the descriptor. */
	Elf64_Nhdr nh;
	uint64_t desc = note.p_offset + sizeof(nh) + 4;
	if (note.p_filesz < sizeof(nh) + 4 + sizeof(km_nt_checksum_t))
		return false;
	memcpy(&nh, buf + note.p_offset, sizeof(nh));
	if (nh.n_namesz != 3 || memcmp(buf + note.p_offset + sizeof(nh), KM_NOTE_OWNER, 3) != 0 ||
	    nh.n_type != NT_KM_CHECKSUM || nh.n_descsz < sizeof(km_nt_checksum_t))
		return false;
	uint64_t covered = note.p_offset + note.p_filesz;
	memcpy(buf + desc + offsetof(km_nt_checksum_t, covered), &covered, sizeof(covered));
	uint32_t crc = km_snapshot_header_crc_buf(buf, covered, desc + offsetof(km_nt_checksum_t, header_crc));
	memcpy(buf + desc + offsetof(km_nt_checksum_t, header_crc), &crc, sizeof(crc));
	return true;
}
