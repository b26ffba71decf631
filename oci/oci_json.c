/* Typed getters over jansson values: see oci_json.h. */
#include "oci_json.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * jansson keeps integers as int64, but the spec's uint64 fields (rlimits, seccomp values) are
 * written up to 2^64-1 (RLIM_INFINITY, ~0 masks) by Go encoders. Before parsing, each integer
 * literal above INT64_MAX is rewritten into a string "\u0000<digits>", which oci_jv_u64 takes back
 * as a number and every string getter refuses. Real strings cannot start with NUL: text that
 * already has a \u0000 escape is parsed unchanged, and jansson refuses it.
 */
/* Printable ASCII, whatever the locale: messages are one plain line. */
static bool printable(char c)
{
	return c >= 0x20 && c < 0x7f;
}

#define BIG_MARK "\"\\u0000"

/* Length of the number token at s (digits, sign, fraction, exponent). */
static size_t number_len(const char *s, size_t left)
{
	size_t n = 0;
	while (n < left && (isdigit((unsigned char)s[n]) || strchr("+-.eE", s[n]) != NULL))
		n++;
	return n;
}

/* True if s[0..n) is a plain integer in (INT64_MAX, UINT64_MAX]. */
static bool is_big_uint(const char *s, size_t n)
{
	if (n < 19 || n > 20)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	char tmp[24];
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	errno = 0;
	unsigned long long v = strtoull(tmp, NULL, 10);
	return errno == 0 && v > INT64_MAX;
}

/* Length of the string token at s (from its opening quote); *nul set if it has a \u0000. */
static size_t string_len(const char *s, size_t left, bool *nul)
{
	size_t n = 1;
	while (n < left && s[n] != '"') {
		if (s[n] == '\\' && n + 1 < left) {
			if (s[n + 1] == 'u' && n + 5 < left && strncmp(s + n + 2, "0000", 4) == 0)
				*nul = true;
			n++;
		}
		n++;
	}
	return n < left ? n + 1 : n;
}

/* The text with big integers marked, or NULL if it has none (or has a \u0000 of its own). */
static char *mark_big_numbers(const char *text, size_t len, size_t *out_len)
{
	char *out = NULL;
	size_t o = 0, i = 0;
	bool nul = false;
	while (i < len) {
		size_t n = 1;
		if (text[i] == '"') {
			n = string_len(text + i, len - i, &nul);
		} else if (isdigit((unsigned char)text[i]) || text[i] == '-') {
			n = number_len(text + i, len - i);
			if (is_big_uint(text + i, n)) {
				if (out == NULL && (out = malloc(len + len / 2 + 16)) == NULL)
					return NULL;
				if (o == 0 && i > 0)
					memcpy(out, text, i), o = i;
				o += sprintf(out + o, BIG_MARK "%.*s\"", (int)n, text + i);
				i += n;
				continue;
			}
		}
		if (out != NULL)
			memcpy(out + o, text + i, n), o += n;
		i += n;
	}
	if (nul) {
		free(out);
		return NULL;
	}
	*out_len = o;
	return out;
}

json_t *oci_json_parse_object(oci_jpath_t *p, const char *text, size_t len)
{
	json_error_t je;
	size_t mlen = 0;
	char *marked = mark_big_numbers(text, len, &mlen);
	json_t *root = marked != NULL ? json_loadb(marked, mlen, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je)
				      : json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	free(marked);
	if (root == NULL) {
		/* jansson quotes the bad token, which may hold any byte */
		for (char *c = je.text; *c != '\0'; c++)
			*c = printable(*c) ? *c : '?';
		km_err_set(p->err, 0, "%s: invalid JSON at line %d column %d: %s", p->what, je.line, je.column,
			   je.text);
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		oci_jp_fail(p, "must be a JSON object");
		return NULL;
	}
	return root;
}

/* Appends `s` to the path with anything but printable ASCII as '?': keys (annotations, sysctl)
 * come from the file and the message must stay one printable line. */
static void path_append(oci_jpath_t *p, const char *s)
{
	for (; *s != '\0' && p->len + 1 < sizeof(p->buf); s++)
		p->buf[p->len++] = printable(*s) ? *s : '?';
	p->buf[p->len] = '\0';
}

size_t oci_jp_key(oci_jpath_t *p, const char *key)
{
	size_t old = p->len;
	if (p->len > 0)
		path_append(p, ".");
	path_append(p, key);
	return old;
}

size_t oci_jp_index(oci_jpath_t *p, size_t i)
{
	size_t old = p->len;
	int n = snprintf(p->buf + p->len, sizeof(p->buf) - p->len, "[%zu]", i);
	if (n > 0)
		p->len = p->len + (size_t)n < sizeof(p->buf) ? p->len + (size_t)n : sizeof(p->buf) - 1;
	return old;
}

void oci_jp_restore(oci_jpath_t *p, size_t len)
{
	p->len = len;
	p->buf[len] = '\0';
}

static int vfail(oci_jpath_t *p, const char *fmt, va_list ap)
{
	char text[512];
	vsnprintf(text, sizeof(text), fmt, ap);
	if (p->len == 0)
		return km_err_set(p->err, 0, "%s: %s", p->what, text);
	return km_err_set(p->err, 0, "%s: %s: %s", p->what, p->buf, text);
}

int oci_jp_fail(oci_jpath_t *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(p, fmt, ap);
	va_end(ap);
	return -1;
}

int oci_jp_fail_at(oci_jpath_t *p, const char *key, const char *fmt, ...)
{
	size_t mark = oci_jp_key(p, key);
	va_list ap;
	va_start(ap, fmt);
	vfail(p, fmt, ap);
	va_end(ap);
	oci_jp_restore(p, mark);
	return -1;
}

const char *oci_jquote(const char *s, char *buf, size_t size)
{
	size_t i = 0;
	for (; s[i] != '\0' && i + 1 < size && i < 64; i++)
		buf[i] = printable(s[i]) ? s[i] : '?';
	buf[i] = '\0';
	return buf;
}

/* A string made by mark_big_numbers (a number too big for jansson's integers). */
static bool is_big_mark(const json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 1 && json_string_value(v)[0] == '\0';
}

int oci_jv_string(oci_jpath_t *p, const json_t *v, char **out)
{
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
		return oci_jp_fail(p, "must be a string");
	char *s = strdup(json_string_value(v));
	if (s == NULL)
		return km_err_set(p->err, ENOMEM, "%s: %s", p->what, p->buf);
	free(*out);
	*out = s;
	return 0;
}

int oci_jv_bool(oci_jpath_t *p, const json_t *v, bool *out)
{
	if (!json_is_boolean(v))
		return oci_jp_fail(p, "must be true or false");
	*out = json_is_true(v);
	return 0;
}

/* The value of a number that must be an integer, as uint64 (*neg set if it is negative). */
static bool integer_value(const json_t *v, uint64_t *u, bool *neg)
{
	*neg = false;
	if (is_big_mark(v)) {
		*u = strtoull(json_string_value(v) + 1, NULL, 10);
		return true;
	}
	if (!json_is_integer(v))
		return false;
	json_int_t i = json_integer_value(v);
	*neg = i < 0;
	*u = (uint64_t)i;
	return true;
}

int oci_jv_u64(oci_jpath_t *p, const json_t *v, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t u;
	bool neg;
	if (!integer_value(v, &u, &neg) || neg || u < min || u > max)
		return oci_jp_fail(p, "must be an integer from %" PRIu64 " to %" PRIu64, min, max);
	*out = u;
	return 0;
}

int oci_jv_i64(oci_jpath_t *p, const json_t *v, int64_t min, int64_t max, int64_t *out)
{
	uint64_t u;
	bool neg;
	if (!integer_value(v, &u, &neg) || (!neg && u > INT64_MAX) || (int64_t)u < min || (int64_t)u > max)
		return oci_jp_fail(p, "must be an integer from %" PRId64 " to %" PRId64, min, max);
	*out = (int64_t)u;
	return 0;
}

void oci_strv_free(char **v)
{
	if (v == NULL)
		return;
	for (char **s = v; *s != NULL; s++)
		free(*s);
	free(v);
}

int oci_jv_strv(oci_jpath_t *p, const json_t *v, bool nonempty, char ***out)
{
	const char *what = nonempty ? "must be a non-empty array of strings" : "must be an array of strings";
	if (!json_is_array(v) || (nonempty && json_array_size(v) == 0))
		return oci_jp_fail(p, "%s", what);
	size_t n = json_array_size(v);
	char **sv = calloc(n + 1, sizeof(*sv));
	if (sv == NULL)
		return km_err_set(p->err, ENOMEM, "%s: %s", p->what, p->buf);
	for (size_t i = 0; i < n; i++) {
		const json_t *e = json_array_get(v, i);
		if (!json_is_string(e) || strlen(json_string_value(e)) != json_string_length(e) ||
		    (sv[i] = strdup(json_string_value(e))) == NULL) {
			oci_strv_free(sv);
			return oci_jp_fail(p, "%s", what);
		}
	}
	oci_strv_free(*out);
	*out = sv;
	return 0;
}

/* The member `key`, NULL if absent or null; -1 if absent and required. Pushes key on the path. */
static int member(oci_jpath_t *p, const json_t *obj, const char *key, bool required, json_t **v, size_t *mark)
{
	*v = json_object_get(obj, key);
	if (json_is_null(*v))
		*v = NULL;
	*mark = oci_jp_key(p, key);
	if (*v == NULL && required) {
		oci_jp_fail(p, "is required");
		oci_jp_restore(p, *mark);
		return -1;
	}
	return 0;
}

/* Member getters: look the key up, call the value getter, restore the path. */
#define MEMBER_GET(call)                                                                            \
	do {                                                                                        \
		json_t *v;                                                                          \
		size_t mark;                                                                        \
		if (member(p, obj, key, required, &v, &mark) < 0)                                   \
			return -1;                                                                  \
		int rc = v == NULL ? 0 : (call);                                                    \
		oci_jp_restore(p, mark);                                                            \
		return rc;                                                                          \
	} while (0)

int oci_j_string(oci_jpath_t *p, const json_t *obj, const char *key, bool required, char **out)
{
	MEMBER_GET(oci_jv_string(p, v, out));
}

int oci_j_bool(oci_jpath_t *p, const json_t *obj, const char *key, bool *out)
{
	bool required = false;
	MEMBER_GET(oci_jv_bool(p, v, out));
}

int oci_j_u64(oci_jpath_t *p, const json_t *obj, const char *key, bool required, uint64_t min,
	      uint64_t max, bool *has, uint64_t *out)
{
	if (has != NULL)
		*has = false;
	MEMBER_GET(oci_jv_u64(p, v, min, max, out) < 0 ? -1 : (has != NULL ? (*has = true, 0) : 0));
}

int oci_j_i64(oci_jpath_t *p, const json_t *obj, const char *key, bool required, int64_t min,
	      int64_t max, bool *has, int64_t *out)
{
	if (has != NULL)
		*has = false;
	MEMBER_GET(oci_jv_i64(p, v, min, max, out) < 0 ? -1 : (has != NULL ? (*has = true, 0) : 0));
}

int oci_j_strv(oci_jpath_t *p, const json_t *obj, const char *key, bool required, bool nonempty,
	       char ***out)
{
	MEMBER_GET(oci_jv_strv(p, v, nonempty, out));
}

static int want_type(oci_jpath_t *p, json_t *v, bool object, json_t **out)
{
	if (object ? !json_is_object(v) : !json_is_array(v))
		return oci_jp_fail(p, object ? "must be an object" : "must be an array");
	*out = v;
	return 0;
}

int oci_j_object(oci_jpath_t *p, const json_t *obj, const char *key, bool required, json_t **out)
{
	*out = NULL;
	MEMBER_GET(want_type(p, v, true, out));
}

int oci_j_array(oci_jpath_t *p, const json_t *obj, const char *key, bool required, json_t **out)
{
	*out = NULL;
	MEMBER_GET(want_type(p, v, false, out));
}

int oci_j_each_object(oci_jpath_t *p, const json_t *arr,
		      int (*each)(oci_jpath_t *p, const json_t *elem, size_t i, void *ctx), void *ctx)
{
	for (size_t i = 0; i < json_array_size(arr); i++) {
		size_t mark = oci_jp_index(p, i);
		const json_t *e = json_array_get(arr, i);
		int rc = json_is_object(e) ? each(p, e, i, ctx) : oci_jp_fail(p, "must be an object");
		oci_jp_restore(p, mark);
		if (rc < 0)
			return -1;
	}
	return 0;
}

bool oci_is_abs(const char *s)
{
	return s != NULL && s[0] == '/';
}
