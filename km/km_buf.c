/* A growable byte buffer: see km_buf.h. */
#include "km_buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Room for n more bytes; false (and `failed`) if it cannot be had. */
static bool grow(km_buf_t *b, size_t n)
{
	if (b->failed)
		return false;
	if (b->len + n <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (p == NULL) {
		b->failed = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void *km_buf_reserve(km_buf_t *b, size_t n)
{
	if (!grow(b, n))
		return NULL;
	void *at = b->p + b->len;
	memset(at, 0, n);
	b->len += n;
	return at;
}

void km_buf_put(km_buf_t *b, const void *s, size_t n)
{
	if (n > 0 && grow(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

void km_buf_printf(km_buf_t *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	/* +1: vsnprintf writes a NUL, which the length then leaves out. */
	if (n < 0 || !grow(b, (size_t)n + 1)) {
		b->failed = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf((char *)b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void km_buf_free(km_buf_t *b)
{
	free(b->p);
	*b = (km_buf_t){0};
}
