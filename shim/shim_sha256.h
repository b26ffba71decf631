/*
 * SHA-256 (FIPS 180-4), for the config digest km-shim records at create and in checkpoints. The
 * kernel's crypto API (AF_ALG) is not available on every host (it is not on this project's), and
 * km-shim links no crypto library.
 */
#ifndef SHIM_SHA256_H
#define SHIM_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct shim_sha256 {
	uint32_t h[8];
	uint64_t len; /* bytes so far */
	uint8_t buf[64];
	size_t n; /* bytes in buf */
} shim_sha256_t;

void shim_sha256_init(shim_sha256_t *s);
void shim_sha256_update(shim_sha256_t *s, const void *data, size_t len);
void shim_sha256_final(shim_sha256_t *s, uint8_t out[32]);

#endif
