/*
 * CRC32C (Castagnoli polynomial, reflected 0x82f63b78, initial and final value ~0, as iSCSI and
 * ext4 use it) for the snapshot file's checksums. It detects accidental corruption (flipped,
 * lost or zeroed bytes), not tampering: anyone can recompute it.
 */
#ifndef KM_CRC32C_H
#define KM_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC32C of `len` bytes at `buf` following data whose CRC32C is `crc` (0 to start):
 * km_crc32c(km_crc32c(0, a, n), b, m) is the CRC32C of a followed by b. Uses the SSE4.2
 * instruction when the CPU has it, on three streams at once. */
uint32_t km_crc32c(uint32_t crc, const void *buf, size_t len);

/* Makes the tables both functions use. They make them on first use otherwise; a process that
 * will fork a writer child calls this first, so that the child's calls take no lock. */
void km_crc32c_init(void);

/* The same for `n` zero bytes, in O(log n) without touching memory: how a snapshot's holes
 * (untouched and all-zero pages) enter a segment's checksum. */
uint32_t km_crc32c_zeros(uint32_t crc, uint64_t n);

#endif
