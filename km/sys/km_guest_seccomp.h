/*
 * The guest's seccomp filter (a container's linux.seccomp): rules in km's text format
 * (docs/guest-seccomp.md) that km enforces on the program's syscall path, before dispatching each
 * syscall. The host kernel never sees them; km's own filter (km_seccomp.h) is a different thing.
 *
 * A guest may hold several filters (one given on the command line, one a resumed snapshot
 * carried): each is evaluated, and the result with the highest precedence wins, as Linux does
 * with stacked filters. The text is the only representation that leaves km (snapshot note
 * NT_KM_SECCOMP), and is parsed by the same strict parser wherever it comes from: every byte is
 * hostile input.
 */
#ifndef KM_GUEST_SECCOMP_H
#define KM_GUEST_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "km_error.h"

#define KM_GSC_MAGIC "km-guest-seccomp 1"
#define KM_GSC_NR_MAX 512           /* rules name syscalls 0..511 (x86-64's table) */
#define KM_GSC_RULES_MAX 4096       /* rules in one filter */
#define KM_GSC_TEXT_MAX (1u << 20)  /* bytes of one filter's text */
#define KM_GSC_LINE_MAX 512         /* bytes of one line, LF excluded */
#define KM_GSC_FILTERS_MAX 8        /* filters stacked on one guest */
#define KM_GSC_DATA_MAX 4095        /* the errno (or trap's si_errno) a rule carries */

/* Actions, numbered by precedence: the higher wins when several results meet. */
typedef enum km_gsc_action {
	KM_GSC_ALLOW = 1,
	KM_GSC_LOG,
	KM_GSC_TRACE,
	KM_GSC_ERRNO,
	KM_GSC_TRAP,
	KM_GSC_KILL_THREAD,
	KM_GSC_KILL_PROCESS,
} km_gsc_action_t;

typedef enum km_gsc_op { KM_GSC_NE = 1, KM_GSC_LT, KM_GSC_LE, KM_GSC_EQ, KM_GSC_GE, KM_GSC_GT, KM_GSC_MASKED_EQ } km_gsc_op_t;

typedef struct km_gsc_cond {
	uint8_t idx; /* argument 0..5 */
	uint8_t op;  /* km_gsc_op_t */
	uint64_t value, value2; /* masked-eq: (arg & value) == value2 */
} km_gsc_cond_t;

typedef struct km_gsc_rule {
	uint16_t nr;
	uint8_t action;
	uint8_t ncond;
	uint16_t data;
	km_gsc_cond_t cond[6]; /* all must hold */
} km_gsc_rule_t;

typedef struct km_gsc_filter {
	uint8_t dflt;        /* action when no rule matches */
	uint16_t dflt_data;
	km_gsc_rule_t *rules; /* sorted by nr, file order kept within one nr */
	uint32_t nrules;
	uint32_t first[KM_GSC_NR_MAX + 1]; /* rules of nr n: [first[n], first[n+1]) */
	char *text;          /* the text it was parsed from (what snapshots keep) */
	size_t text_len;
} km_gsc_filter_t;

typedef struct km_gsc {
	km_gsc_filter_t filters[KM_GSC_FILTERS_MAX];
	int nfilters;
} km_gsc_t;

/* The verdict on one syscall. */
typedef struct km_gsc_verdict {
	km_gsc_action_t action;
	uint16_t data;
} km_gsc_verdict_t;

/* Parses and checks one filter's text (len bytes, any bytes). 0, or -1 with *err naming the
 * line and what is wrong; f is then empty. */
int km_gsc_parse(const char *text, size_t len, km_gsc_filter_t *f, km_err_t **err);
void km_gsc_filter_free(km_gsc_filter_t *f);

/* Adds a filter parsed from text to s (one with the same text already there is not added
 * twice). 0, or -1 with *err. */
int km_gsc_add(km_gsc_t *s, const char *text, size_t len, km_err_t **err);

/* Reads a whole filter text from fd (a regular file or memfd, read from offset 0) and adds it.
 * `what` names it in errors. */
int km_gsc_add_fd(km_gsc_t *s, int fd, const char *what, km_err_t **err);

/* The verdict for syscall nr (the number exactly as km dispatches it) with arguments a. With no
 * filter: allow. */
km_gsc_verdict_t km_gsc_eval(const km_gsc_t *s, uint64_t nr, const uint64_t a[6]);

/* The snapshot note's bytes for s (NT_KM_SECCOMP: u32 count, then per filter u32 length and
 * its text); *len 0 and NULL when s has no filter. Caller frees. */
void *km_gsc_save(const km_gsc_t *s, size_t *len);

/* Adds the filters a snapshot note holds. 0, or -1 with *err (a bad note). */
int km_gsc_restore(km_gsc_t *s, const void *note, size_t len, km_err_t **err);

void km_gsc_free(km_gsc_t *s);

/* *s, made (with no filter) if it is NULL: where a guest's filters are first added. NULL if out
 * of memory. */
km_gsc_t *km_gsc_ensure(km_gsc_t **s);

/* The action's name in the text format ("kill-process", ...). */
const char *km_gsc_action_name(km_gsc_action_t a);

#endif
