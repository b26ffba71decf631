/* The guest seccomp rule parser and evaluator (km/sys/km_guest_seccomp.c): hostile text, the
 * verdicts, and the snapshot note. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "km_guest_seccomp.h"

#define H "km-guest-seccomp 1\n"

static int parse(const char *text, km_gsc_filter_t *f, km_err_t **err)
{
	return km_gsc_parse(text, strlen(text), f, err);
}

static void bad(const char *text, const char *msg)
{
	km_gsc_filter_t f;
	km_err_t *err = NULL;
	assert_int_equal(parse(text, &f, &err), -1);
	assert_non_null(err);
	if (strstr(err->msg, msg) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", text, err->msg, msg);
	assert_null(f.rules);
	assert_null(f.text);
	km_err_free(&err);
}

static void test_bad_text(void **state)
{
	(void)state;
	bad("", "empty");
	bad("km-guest-seccomp 2\ndefault allow 0\n", "line 1 must be");
	bad(H, "no 'default");
	bad(H "default allow 0", "does not end with a newline");
	bad(H "default allow\n", "expected 'default ACTION ERRNO'");
	bad(H "default allow 0\n1 notify 0\n", "unknown action");
	bad(H "default errno 4096\n", "0 to 4095");
	bad(H "default allow 0\n512 errno 1\n", "from 0 to 511");
	bad(H "default allow 0\n-1 errno 1\n", "from 0 to 511");
	bad(H "default allow 0\n1 errno 1 6 eq 0 0\n", "index must be 0 to 5");
	bad(H "default allow 0\n1 errno 1 0 is 0 0\n", "unknown operator");
	bad(H "default allow 0\n1 errno 1 0 eq 18446744073709551616 0\n", "below 2^64");
	bad(H "default allow 0\n1 errno 1 0 eq 0x10 0\n", "below 2^64");
	bad(H "default allow 0\n1 errno 1 0 eq 1\n", "up to 6 conditions");
	bad(H "default allow 0\n1 errno 1 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0\n",
	    "up to 6 conditions");
	bad(H "default  allow 0\n", "one space");
	bad(H "default allow 0 \n", "one space");
	bad(H "default allow 0\n1 errno\t1\n", "not printable");
	bad(H "default allow 0\n1 errno 1\xff\n", "not printable");
	bad(H "default allow 0\n\n", "one space");
	char *huge = malloc(KM_GSC_TEXT_MAX + 2);
	memset(huge, '#', KM_GSC_TEXT_MAX + 1);
	huge[KM_GSC_TEXT_MAX + 1] = '\0';
	bad(huge, "longer than");
	free(huge);
	/* a line longer than the limit */
	char line[KM_GSC_LINE_MAX + 64];
	snprintf(line, sizeof(line), H "default allow 0\n#%0*d\n", KM_GSC_LINE_MAX, 0);
	bad(line, "longer than");
	/* too many rules */
	size_t n = (KM_GSC_RULES_MAX + 1) * 12 + 64;
	char *many = malloc(n), *o = many;
	o += sprintf(o, H "default allow 0\n");
	for (int i = 0; i <= KM_GSC_RULES_MAX; i++)
		o += sprintf(o, "1 allow 0\n");
	bad(many, "more than");
	free(many);
}

static km_gsc_t *load(const char *text)
{
	km_gsc_t *s = calloc(1, sizeof(*s));
	km_err_t *err = NULL;
	if (km_gsc_add(s, text, strlen(text), &err) < 0)
		fail_msg("%s", err->msg);
	return s;
}

static void drop(km_gsc_t *s)
{
	km_gsc_free(s);
	free(s);
}

static km_gsc_verdict_t eval(const km_gsc_t *s, uint64_t nr, uint64_t a0, uint64_t a1)
{
	uint64_t a[6] = {a0, a1, 0, 0, 0, 0};
	return km_gsc_eval(s, nr, a);
}

static void test_verdicts(void **state)
{
	(void)state;
	km_gsc_t *s = load(H "default errno 1\n"
			     "# comment\n"
			     "1 errno 13 0 eq 99 0\n"
			     "1 allow 0\n"
			     "2 allow 0 1 masked-eq 3 1\n"
			     "3 allow 0 0 ge 10 0 0 lt 20 0\n"
			     "4 log 0\n"
			     "4 kill-process 0 0 eq 7 0\n"
			     "4 trap 5\n"
			     "5 trace 0\n"
			     "6 kill-thread 0\n");
	assert_int_equal(eval(s, 1, 99, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(s, 1, 99, 0).data, 13);
	assert_int_equal(eval(s, 1, 98, 0).action, KM_GSC_ALLOW);
	assert_int_equal(eval(s, 2, 0, 5).action, KM_GSC_ALLOW);  /* 5 & 3 == 1 */
	assert_int_equal(eval(s, 2, 0, 7).action, KM_GSC_ERRNO);  /* 7 & 3 == 3: default */
	assert_int_equal(eval(s, 3, 10, 0).action, KM_GSC_ALLOW);
	assert_int_equal(eval(s, 3, 20, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(s, 3, 9, 0).action, KM_GSC_ERRNO);
	/* several match: precedence, not order */
	assert_int_equal(eval(s, 4, 7, 0).action, KM_GSC_KILL_PROCESS);
	assert_int_equal(eval(s, 4, 8, 0).action, KM_GSC_TRAP);
	assert_int_equal(eval(s, 4, 8, 0).data, 5);
	assert_int_equal(eval(s, 5, 0, 0).action, KM_GSC_TRACE);
	assert_int_equal(eval(s, 6, 0, 0).action, KM_GSC_KILL_THREAD);
	/* numbers no rule can name: the default */
	assert_int_equal(eval(s, 0x40000001, 98, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(s, 0x100000001ull, 98, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(s, 511, 0, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(s, ~0ull, 0, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(s, 0, 0, 0).data, 1);
	drop(s);
	/* no filter: allow */
	assert_int_equal(eval(NULL, 1, 0, 0).action, KM_GSC_ALLOW);
}

/* Two filters: each decides, the result of higher precedence wins (Linux's stacked filters). */
static void test_stacked(void **state)
{
	(void)state;
	km_gsc_t *s = load(H "default allow 0\n1 errno 13\n");
	km_err_t *err = NULL;
	const char *b = H "default errno 1\n1 allow 0\n2 allow 0\n";
	assert_int_equal(km_gsc_add(s, b, strlen(b), &err), 0);
	assert_int_equal(km_gsc_add(s, b, strlen(b), &err), 0); /* the same text: not twice */
	assert_int_equal(s->nfilters, 2);
	assert_int_equal(eval(s, 1, 0, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(s, 1, 0, 0).data, 13);
	assert_int_equal(eval(s, 2, 0, 0).action, KM_GSC_ALLOW);
	assert_int_equal(eval(s, 3, 0, 0).action, KM_GSC_ERRNO); /* b's default */
	assert_int_equal(eval(s, 3, 0, 0).data, 1);
	drop(s);
}

static void test_note(void **state)
{
	(void)state;
	km_gsc_t *s = load(H "default allow 0\n1 errno 13 0 eq 99 0\n");
	km_err_t *err = NULL;
	const char *b = H "default allow 0\n39 kill-process 0\n";
	assert_int_equal(km_gsc_add(s, b, strlen(b), &err), 0);
	size_t len;
	uint8_t *note = km_gsc_save(s, &len);
	assert_non_null(note);
	km_gsc_t r = {0};
	assert_int_equal(km_gsc_restore(&r, note, len, &err), 0);
	assert_int_equal(r.nfilters, 2);
	assert_int_equal(eval(&r, 1, 99, 0).action, KM_GSC_ERRNO);
	assert_int_equal(eval(&r, 39, 0, 0).action, KM_GSC_KILL_PROCESS);
	km_gsc_free(&r);
	/* hostile notes: each refused whole */
	uint8_t buf[512];
	struct {
		size_t len;
		void (*mutate)(uint8_t *);
	} cases[] = {{2, NULL}, {len - 1, NULL}, {len + 1, NULL}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(buf, 0, sizeof(buf));
		memcpy(buf, note, len < sizeof(buf) ? len : sizeof(buf));
		km_gsc_t h = {0};
		assert_int_equal(km_gsc_restore(&h, buf, cases[i].len, &err), -1);
		km_err_free(&err);
		km_gsc_free(&h);
	}
	uint32_t v;
	memcpy(buf, note, len);
	v = 0;
	memcpy(buf, &v, 4); /* no filter */
	km_gsc_t h = {0};
	assert_int_equal(km_gsc_restore(&h, buf, len, &err), -1);
	km_err_free(&err);
	v = 9; /* too many */
	memcpy(buf, &v, 4);
	assert_int_equal(km_gsc_restore(&h, buf, len, &err), -1);
	km_err_free(&err);
	memcpy(buf, note, len);
	v = 0xffffffffu; /* a length past the note */
	memcpy(buf + 4, &v, 4);
	assert_int_equal(km_gsc_restore(&h, buf, len, &err), -1);
	km_err_free(&err);
	memcpy(buf, note, len);
	buf[8] = 'X'; /* the text itself is checked again */
	assert_int_equal(km_gsc_restore(&h, buf, len, &err), -1);
	km_err_free(&err);
	km_gsc_free(&h);
	free(note);
	drop(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_text),
	    cmocka_unit_test(test_verdicts),
	    cmocka_unit_test(test_stacked),
	    cmocka_unit_test(test_note),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
