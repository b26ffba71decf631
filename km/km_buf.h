/*
 * A growable byte buffer for text and records km builds in memory before it writes them out (a
 * snapshot's notes, km's answers for the guest's /proc). An allocation failure is remembered
 * (`failed`) instead of reported at every append, so a builder appends freely and checks once.
 */
#ifndef KM_BUF_H
#define KM_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct km_buf {
	uint8_t *p;
	size_t len, cap;
	bool failed; /* an append could not allocate: the contents are incomplete */
} km_buf_t;

/* Appends n zero bytes and returns where they start (valid until the next append), or NULL with
 * `failed` set. */
void *km_buf_reserve(km_buf_t *b, size_t n);

/* Appends n bytes from s. */
void km_buf_put(km_buf_t *b, const void *s, size_t n);

/* Appends printf-style text, whole whatever its length (no NUL is appended). */
void km_buf_printf(km_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Releases the memory; the buffer is empty and usable again. */
void km_buf_free(km_buf_t *b);

#endif
