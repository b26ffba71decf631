/*
 * Typed getters over jansson values for oci/'s parsers, internal to oci/.
 *
 * Every getter knows where it is in the document (an oci_jpath_t: the source's name and the JSON
 * path so far, e.g. "process.rlimits[2].soft") and on a wrong type or range sets an error that
 * names both: "config.json: process.rlimits[2].soft: must be an integer from 0 to ...".
 * All return 0 on success and -1 with *p->err set on failure. A JSON null is taken as absent.
 */
#ifndef OCI_JSON_H
#define OCI_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_error.h"

typedef struct oci_jpath {
	const char *what; /* "config.json", a path... */
	char buf[256]; /* the JSON path, truncated if deeper than that */
	size_t len;
	km_err_t **err;
} oci_jpath_t;

/* Parses `len` bytes of JSON text (duplicate keys refused; integers up to UINT64_MAX kept, see
 * oci_jv_u64) into an object. NULL with an error naming p->what and the line and column. */
json_t *oci_json_parse_object(oci_jpath_t *p, const char *text, size_t len);

/* Appends ".key" (just "key" at the top) or "[i]" to the path; returns the length to restore. */
size_t oci_jp_key(oci_jpath_t *p, const char *key);
size_t oci_jp_index(oci_jpath_t *p, size_t i);
void oci_jp_restore(oci_jpath_t *p, size_t len);

/* Sets "<what>: <path>: <text>" (no path part at the top). Returns -1. */
int oci_jp_fail(oci_jpath_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with `key` appended to the path for this message only. */
int oci_jp_fail_at(oci_jpath_t *p, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* `s` made safe to quote in a one-line message (printable ASCII, at most 64 characters). */
const char *oci_jquote(const char *s, char *buf, size_t size);

/* Value getters: the path already names `v`. */
int oci_jv_string(oci_jpath_t *p, const json_t *v, char **out);
int oci_jv_bool(oci_jpath_t *p, const json_t *v, bool *out);
int oci_jv_u64(oci_jpath_t *p, const json_t *v, uint64_t min, uint64_t max, uint64_t *out);
int oci_jv_i64(oci_jpath_t *p, const json_t *v, int64_t min, int64_t max, int64_t *out);
/* A NULL-terminated copy of an array of strings; an empty array is refused if `nonempty`. */
int oci_jv_strv(oci_jpath_t *p, const json_t *v, bool nonempty, char ***out);

/* Member getters: `key` of object `obj`. An absent member leaves *out untouched (and *has false)
 * unless `required`, which makes absence an error ("is required"). */
int oci_j_string(oci_jpath_t *p, const json_t *obj, const char *key, bool required, char **out);
int oci_j_bool(oci_jpath_t *p, const json_t *obj, const char *key, bool *out);
int oci_j_u64(oci_jpath_t *p, const json_t *obj, const char *key, bool required, uint64_t min,
	      uint64_t max, bool *has, uint64_t *out);
int oci_j_i64(oci_jpath_t *p, const json_t *obj, const char *key, bool required, int64_t min,
	      int64_t max, bool *has, int64_t *out);
int oci_j_strv(oci_jpath_t *p, const json_t *obj, const char *key, bool required, bool nonempty,
	       char ***out);
/* *out = the member if it is an object (or array), NULL if absent. */
int oci_j_object(oci_jpath_t *p, const json_t *obj, const char *key, bool required, json_t **out);
int oci_j_array(oci_jpath_t *p, const json_t *obj, const char *key, bool required, json_t **out);

/* Calls each(p, element, i, ctx) for every element of array `arr` with "[i]" on the path; each
 * element must be an object. Stops at the first failure. */
int oci_j_each_object(oci_jpath_t *p, const json_t *arr,
		      int (*each)(oci_jpath_t *p, const json_t *elem, size_t i, void *ctx), void *ctx);

/* True if `s` is an absolute path. */
bool oci_is_abs(const char *s);

/* Frees a NULL-terminated string vector; safe on NULL. */
void oci_strv_free(char **v);

#endif
