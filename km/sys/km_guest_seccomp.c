/* The guest's seccomp filter: see km_guest_seccomp.h and docs/guest-seccomp.md. */
#include "km_guest_seccomp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
	const char *name;
	km_gsc_action_t action;
} actions[] = {
    {"allow", KM_GSC_ALLOW}, {"log", KM_GSC_LOG},   {"trace", KM_GSC_TRACE},
    {"errno", KM_GSC_ERRNO}, {"trap", KM_GSC_TRAP}, {"kill-thread", KM_GSC_KILL_THREAD},
    {"kill-process", KM_GSC_KILL_PROCESS},
};

static const char *const ops[] = {[KM_GSC_NE] = "ne", [KM_GSC_LT] = "lt", [KM_GSC_LE] = "le", [KM_GSC_EQ] = "eq",
				  [KM_GSC_GE] = "ge", [KM_GSC_GT] = "gt", [KM_GSC_MASKED_EQ] = "masked-eq"};

const char *km_gsc_action_name(km_gsc_action_t a)
{
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (actions[i].action == a)
			return actions[i].name;
	return "?";
}

/* ---- parsing ------------------------------------------------------------------------------ */

#define MAX_WORDS (3 + 4 * 6 + 1) /* one more than a rule can have: to tell "too many" */

typedef struct word {
	const char *p;
	size_t n;
} word_t;

static bool word_is(word_t w, const char *s)
{
	return strlen(s) == w.n && memcmp(w.p, s, w.n) == 0;
}

/* A decimal number of at most 20 digits that fits in 64 bits. */
static bool parse_u64(word_t w, uint64_t *out)
{
	if (w.n == 0 || w.n > 20)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < w.n; i++) {
		if (w.p[i] < '0' || w.p[i] > '9')
			return false;
		uint64_t d = (uint64_t)(w.p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

static bool parse_action(word_t w, uint8_t *out)
{
	for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); i++)
		if (word_is(w, actions[i].name)) {
			*out = (uint8_t)actions[i].action;
			return true;
		}
	return false;
}

static bool parse_op(word_t w, uint8_t *out)
{
	for (size_t i = 1; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (word_is(w, ops[i])) {
			*out = (uint8_t)i;
			return true;
		}
	return false;
}

/* Splits a line into words separated by exactly one space. Returns the count, or -1 (an empty
 * word: a space at either end or two in a row). */
static int split(const char *line, size_t len, word_t *w)
{
	int n = 0;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && line[i] != ' ')
			continue;
		if (i == start || n == MAX_WORDS)
			return i == start ? -1 : MAX_WORDS + 1;
		w[n++] = (word_t){line + start, i - start};
		start = i + 1;
	}
	return n;
}

static int parse_action_data(const word_t *w, int lineno, uint8_t *action, uint16_t *data, km_err_t **err)
{
	uint64_t d;
	if (!parse_action(w[0], action))
		return km_err_set(err, 0, "line %d: unknown action '%.*s' (allow, errno, kill-thread, kill-process, trap, log, "
					  "trace)", lineno, (int)(w[0].n > 32 ? 32 : w[0].n), w[0].p);
	if (!parse_u64(w[1], &d) || d > KM_GSC_DATA_MAX)
		return km_err_set(err, 0, "line %d: the errno must be a number from 0 to %d", lineno, KM_GSC_DATA_MAX);
	*data = (uint16_t)d;
	return 0;
}

static int parse_rule(const word_t *w, int n, int lineno, km_gsc_rule_t *r, km_err_t **err)
{
	uint64_t nr;
	memset(r, 0, sizeof(*r));
	if (n < 3 || (n - 3) % 4 != 0 || n > 3 + 4 * 6)
		return km_err_set(err, 0, "line %d: a rule is NR ACTION ERRNO and up to 6 conditions of 4 words "
					  "(INDEX OP VALUE VALUE2)", lineno);
	if (!parse_u64(w[0], &nr) || nr >= KM_GSC_NR_MAX)
		return km_err_set(err, 0, "line %d: the syscall number must be from 0 to %d", lineno, KM_GSC_NR_MAX - 1);
	r->nr = (uint16_t)nr;
	if (parse_action_data(&w[1], lineno, &r->action, &r->data, err) < 0)
		return -1;
	r->ncond = (uint8_t)((n - 3) / 4);
	for (int i = 0; i < r->ncond; i++) {
		const word_t *c = &w[3 + 4 * i];
		uint64_t idx;
		km_gsc_cond_t *k = &r->cond[i];
		if (!parse_u64(c[0], &idx) || idx > 5)
			return km_err_set(err, 0, "line %d: condition %d: the argument index must be 0 to 5", lineno, i + 1);
		k->idx = (uint8_t)idx;
		if (!parse_op(c[1], &k->op))
			return km_err_set(err, 0, "line %d: condition %d: unknown operator (ne, lt, le, eq, ge, gt, masked-eq)",
					  lineno, i + 1);
		if (!parse_u64(c[2], &k->value) || !parse_u64(c[3], &k->value2))
			return km_err_set(err, 0, "line %d: condition %d: values must be decimal numbers below 2^64", lineno,
					  i + 1);
	}
	return 0;
}

/* Sorts rules by nr keeping file order within one nr (a counting sort: stable). */
static int index_rules(km_gsc_filter_t *f, km_err_t **err)
{
	uint32_t count[KM_GSC_NR_MAX] = {0};
	for (uint32_t i = 0; i < f->nrules; i++)
		count[f->rules[i].nr]++;
	f->first[0] = 0;
	for (int n = 0; n < KM_GSC_NR_MAX; n++)
		f->first[n + 1] = f->first[n] + count[n];
	km_gsc_rule_t *sorted = malloc((f->nrules ? f->nrules : 1) * sizeof(*sorted));
	if (sorted == NULL)
		return km_err_set(err, ENOMEM, "indexing the rules");
	uint32_t at[KM_GSC_NR_MAX];
	memcpy(at, f->first, sizeof(at));
	for (uint32_t i = 0; i < f->nrules; i++)
		sorted[at[f->rules[i].nr]++] = f->rules[i];
	free(f->rules);
	f->rules = sorted;
	return 0;
}

static int parse_lines(const char *text, size_t len, km_gsc_filter_t *f, km_err_t **err)
{
	size_t pos = 0;
	int lineno = 0;
	bool have_default = false;
	uint32_t cap = 0;
	while (pos < len) {
		lineno++;
		const char *line = text + pos;
		const char *nl = memchr(line, '\n', len - pos);
		if (nl == NULL)
			return km_err_set(err, 0, "line %d does not end with a newline", lineno);
		size_t n = (size_t)(nl - line);
		pos += n + 1;
		if (n > KM_GSC_LINE_MAX)
			return km_err_set(err, 0, "line %d is longer than %d bytes", lineno, KM_GSC_LINE_MAX);
		for (size_t i = 0; i < n; i++)
			if (line[i] < 0x20 || line[i] > 0x7e)
				return km_err_set(err, 0, "line %d: byte 0x%02x at %zu is not printable ASCII", lineno,
						  (unsigned char)line[i], i);
		if (lineno == 1) {
			if (n != strlen(KM_GSC_MAGIC) || memcmp(line, KM_GSC_MAGIC, n) != 0)
				return km_err_set(err, 0, "line 1 must be '%s'", KM_GSC_MAGIC);
			continue;
		}
		if (n > 0 && line[0] == '#')
			continue;
		word_t w[MAX_WORDS];
		int nw = split(line, n, w);
		if (nw < 0)
			return km_err_set(err, 0, "line %d: words are separated by one space, none at either end", lineno);
		if (!have_default) {
			if (nw != 3 || !word_is(w[0], "default"))
				return km_err_set(err, 0, "line %d: expected 'default ACTION ERRNO' after the header", lineno);
			if (parse_action_data(&w[1], lineno, &f->dflt, &f->dflt_data, err) < 0)
				return -1;
			have_default = true;
			continue;
		}
		if (f->nrules == KM_GSC_RULES_MAX)
			return km_err_set(err, 0, "line %d: more than %d rules", lineno, KM_GSC_RULES_MAX);
		if (f->nrules == cap) {
			cap = cap ? cap * 2 : 64;
			km_gsc_rule_t *r = realloc(f->rules, cap * sizeof(*r));
			if (r == NULL)
				return km_err_set(err, ENOMEM, "line %d", lineno);
			f->rules = r;
		}
		if (parse_rule(w, nw, lineno, &f->rules[f->nrules], err) < 0)
			return -1;
		f->nrules++;
	}
	if (lineno == 0)
		return km_err_set(err, 0, "empty (line 1 must be '%s')", KM_GSC_MAGIC);
	if (!have_default)
		return km_err_set(err, 0, "no 'default ACTION ERRNO' line");
	return 0;
}

int km_gsc_parse(const char *text, size_t len, km_gsc_filter_t *f, km_err_t **err)
{
	memset(f, 0, sizeof(*f));
	if (len > KM_GSC_TEXT_MAX)
		return km_err_set(err, 0, "longer than %u bytes", KM_GSC_TEXT_MAX);
	if (parse_lines(text, len, f, err) < 0) {
		km_gsc_filter_free(f);
		return -1;
	}
	f->text = malloc(len ? len : 1);
	if (f->text == NULL) {
		km_gsc_filter_free(f);
		return km_err_set(err, ENOMEM, "keeping the filter's text");
	}
	memcpy(f->text, text, len);
	f->text_len = len;
	if (index_rules(f, err) < 0) {
		km_gsc_filter_free(f);
		return -1;
	}
	return 0;
}

void km_gsc_filter_free(km_gsc_filter_t *f)
{
	free(f->rules);
	free(f->text);
	memset(f, 0, sizeof(*f));
}

int km_gsc_add(km_gsc_t *s, const char *text, size_t len, km_err_t **err)
{
	for (int i = 0; i < s->nfilters; i++)
		if (s->filters[i].text_len == len && memcmp(s->filters[i].text, text, len) == 0)
			return 0;
	if (s->nfilters == KM_GSC_FILTERS_MAX)
		return km_err_set(err, 0, "more than %d filters", KM_GSC_FILTERS_MAX);
	if (km_gsc_parse(text, len, &s->filters[s->nfilters], err) < 0)
		return -1;
	s->nfilters++;
	return 0;
}

int km_gsc_add_fd(km_gsc_t *s, int fd, const char *what, km_err_t **err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return km_err_set(err, errno, "%s", what);
	if (!S_ISREG(st.st_mode) || st.st_size < 0 || (uint64_t)st.st_size > KM_GSC_TEXT_MAX)
		return km_err_set(err, 0, "%s: not a regular file of at most %u bytes", what, KM_GSC_TEXT_MAX);
	size_t len = (size_t)st.st_size;
	char *buf = malloc(len ? len : 1);
	if (buf == NULL)
		return km_err_set(err, ENOMEM, "%s", what);
	size_t got = 0;
	while (got < len) {
		ssize_t r = pread(fd, buf + got, len - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			return km_err_set(err, r < 0 ? errno : 0, "%s: reading%s", what, r == 0 ? ": shorter than its size" : "");
		}
		got += (size_t)r;
	}
	int rc = km_gsc_add(s, buf, len, err);
	free(buf);
	return rc < 0 ? km_err_wrap(err, "%s", what) : 0;
}

/* ---- evaluation --------------------------------------------------------------------------- */

static bool cond_holds(const km_gsc_cond_t *c, const uint64_t a[6])
{
	uint64_t x = a[c->idx];
	switch (c->op) {
	case KM_GSC_NE: return x != c->value;
	case KM_GSC_LT: return x < c->value;
	case KM_GSC_LE: return x <= c->value;
	case KM_GSC_EQ: return x == c->value;
	case KM_GSC_GE: return x >= c->value;
	case KM_GSC_GT: return x > c->value;
	case KM_GSC_MASKED_EQ: return (x & c->value) == c->value2;
	}
	return false;
}

static bool rule_matches(const km_gsc_rule_t *r, const uint64_t a[6])
{
	for (int i = 0; i < r->ncond; i++)
		if (!cond_holds(&r->cond[i], a))
			return false;
	return true;
}

/* One filter: the matching rule of highest precedence (the first of those), else the default. */
static km_gsc_verdict_t eval_filter(const km_gsc_filter_t *f, uint64_t nr, const uint64_t a[6])
{
	km_gsc_verdict_t best = {0, 0};
	if (nr < KM_GSC_NR_MAX)
		for (uint32_t i = f->first[nr]; i < f->first[nr + 1]; i++) {
			const km_gsc_rule_t *r = &f->rules[i];
			if (r->action > best.action && rule_matches(r, a))
				best = (km_gsc_verdict_t){r->action, r->data};
		}
	if (best.action == 0)
		best = (km_gsc_verdict_t){f->dflt, f->dflt_data};
	return best;
}

km_gsc_verdict_t km_gsc_eval(const km_gsc_t *s, uint64_t nr, const uint64_t a[6])
{
	km_gsc_verdict_t v = {KM_GSC_ALLOW, 0};
	for (int i = 0; s != NULL && i < s->nfilters; i++) {
		km_gsc_verdict_t f = eval_filter(&s->filters[i], nr, a);
		if (f.action > v.action)
			v = f;
	}
	return v;
}

/* ---- snapshots ---------------------------------------------------------------------------- */

void *km_gsc_save(const km_gsc_t *s, size_t *len)
{
	*len = 0;
	if (s == NULL || s->nfilters == 0)
		return NULL;
	size_t n = 4;
	for (int i = 0; i < s->nfilters; i++)
		n += 4 + s->filters[i].text_len;
	uint8_t *p = malloc(n), *o = p;
	if (p == NULL)
		return NULL;
	uint32_t count = (uint32_t)s->nfilters;
	memcpy(o, &count, 4);
	o += 4;
	for (int i = 0; i < s->nfilters; i++) {
		uint32_t l = (uint32_t)s->filters[i].text_len;
		memcpy(o, &l, 4);
		memcpy(o + 4, s->filters[i].text, l);
		o += 4 + l;
	}
	*len = n;
	return p;
}

int km_gsc_restore(km_gsc_t *s, const void *note, size_t len, km_err_t **err)
{
	const uint8_t *p = note;
	uint32_t count;
	if (len < 4)
		return km_err_set(err, 0, "NT_KM_SECCOMP: shorter than its count");
	memcpy(&count, p, 4);
	if (count == 0 || count > KM_GSC_FILTERS_MAX)
		return km_err_set(err, 0, "NT_KM_SECCOMP: %u filters (1 to %d)", count, KM_GSC_FILTERS_MAX);
	size_t off = 4;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t l;
		if (len - off < 4)
			return km_err_set(err, 0, "NT_KM_SECCOMP: filter %u: truncated", i + 1);
		memcpy(&l, p + off, 4);
		off += 4;
		if (l > len - off)
			return km_err_set(err, 0, "NT_KM_SECCOMP: filter %u: longer than the note", i + 1);
		if (km_gsc_add(s, (const char *)p + off, l, err) < 0)
			return km_err_wrap(err, "NT_KM_SECCOMP: filter %u", i + 1);
		off += l;
	}
	if (off != len)
		return km_err_set(err, 0, "NT_KM_SECCOMP: %zu bytes after the last filter", len - off);
	return 0;
}

void km_gsc_free(km_gsc_t *s)
{
	for (int i = 0; i < s->nfilters; i++)
		km_gsc_filter_free(&s->filters[i]);
	s->nfilters = 0;
}

km_gsc_t *km_gsc_ensure(km_gsc_t **s)
{
	if (*s == NULL)
		*s = calloc(1, sizeof(**s));
	return *s;
}
