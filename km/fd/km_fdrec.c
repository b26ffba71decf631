/* Records of the fd table: little-endian fields written and read in order (km_fdtab.h). */
#include <string.h>

#include "km_fdtab.h"

void km_rec_put_u32(km_buf_t *b, uint32_t v)
{
	km_buf_put(b, &v, sizeof(v)); /* x86-64 only: host order is the format's */
}

void km_rec_put_u64(km_buf_t *b, uint64_t v)
{
	km_buf_put(b, &v, sizeof(v));
}

void km_rec_put_bytes(km_buf_t *b, const void *p, uint32_t len)
{
	km_rec_put_u32(b, len);
	if (len > 0)
		km_buf_put(b, p, len);
}

void km_rec_put_str(km_buf_t *b, const char *s)
{
	km_rec_put_bytes(b, s, (uint32_t)strlen(s) + 1);
}

/* n bytes at the cursor, or NULL (and bad) when fewer remain. */
static const uint8_t *take(km_rec_t *r, size_t n)
{
	if (r->bad || r->at > r->len || r->len - r->at < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->at;
	r->at += n;
	return p;
}

uint32_t km_rec_get_u32(km_rec_t *r)
{
	uint32_t v = 0;
	const uint8_t *p = take(r, sizeof(v));
	if (p != NULL)
		memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t km_rec_get_u64(km_rec_t *r)
{
	uint64_t v = 0;
	const uint8_t *p = take(r, sizeof(v));
	if (p != NULL)
		memcpy(&v, p, sizeof(v));
	return v;
}

const void *km_rec_get_bytes(km_rec_t *r, uint32_t *len)
{
	uint32_t n = km_rec_get_u32(r);
	const uint8_t *p = take(r, n);
	*len = p != NULL ? n : 0;
	return p;
}

const char *km_rec_get_str(km_rec_t *r, size_t max)
{
	uint32_t n;
	const char *s = km_rec_get_bytes(r, &n);
	if (s == NULL || n == 0 || n > max || memchr(s, '\0', n) != s + n - 1) {
		r->bad = true;
		return NULL;
	}
	return s;
}

bool km_rec_done(const km_rec_t *r)
{
	return !r->bad && r->at == r->len;
}
