/*
 * NT_KM_TIMERS as a hostile snapshot may hold it: km_timers_stash must take a well-formed note
 * and refuse every malformed one without touching anything (km_timers.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "km_guest.h"
#include "km_timers.h"

typedef struct note {
	km_nt_timers_t h;
	km_nt_posix_timer_t p[3];
} note_t;

static note_t good(void)
{
	note_t n;
	memset(&n, 0, sizeof(n));
	n.h.itimer[0] = (km_nt_itimer_t){300000000, 0};
	n.h.nposix = 2;
	n.p[0] = (km_nt_posix_timer_t){.id = 0, .clock = CLOCK_MONOTONIC, .notify = SIGEV_SIGNAL, .signo = SIGALRM,
				       .value = 7, .time = {400000000, 0}};
	n.p[1] = (km_nt_posix_timer_t){.id = 5, .clock = CLOCK_REALTIME, .notify = SIGEV_THREAD_ID, .signo = SIGUSR1,
				       .tid = 1234, .time = {0, 0}};
	return n;
}

static size_t len_of(const note_t *n)
{
	return sizeof(n->h) + n->h.nposix * sizeof(km_nt_posix_timer_t);
}

/* Stashes n (len bytes) into a fresh guest; returns the result and frees what was kept. */
static int stash(const note_t *n, size_t len)
{
	km_guest_t *g = calloc(1, sizeof(*g));
	assert_non_null(g);
	int rc = km_timers_stash(g, n, len);
	if (rc == 0)
		assert_non_null(g->resume_timers);
	else
		assert_null(g->resume_timers);
	free(g->resume_timers);
	free(g);
	return rc;
}

static void test_good(void **state)
{
	(void)state;
	note_t n = good();
	assert_int_equal(stash(&n, len_of(&n)), 0);
	n.h.nposix = 0;
	assert_int_equal(stash(&n, len_of(&n)), 0);
}

static void test_sizes(void **state)
{
	(void)state;
	note_t n = good(), g0 = good();
	assert_int_equal(stash(&n, sizeof(n.h) - 1), -1);
	assert_int_equal(stash(&n, len_of(&n) - 1), -1);
	assert_int_equal(stash(&n, len_of(&n) + sizeof(km_nt_posix_timer_t)), -1);
	n.h.nposix = 0xffffffff; /* a count that would overflow the size check */
	assert_int_equal(stash(&n, len_of(&g0)), -1);
	n.h.nposix = KM_MAX_TIMERS + 1;
	assert_int_equal(stash(&n, sizeof(n)), -1);
}

static void test_fields(void **state)
{
	(void)state;
	note_t n;
#define BAD(field, val)                                                                                       \
	do {                                                                                                   \
		n = good();                                                                                    \
		n.field = val;                                                                                 \
		assert_int_equal(stash(&n, len_of(&n)), -1);                                                   \
	} while (0)
	BAD(p[1].id, 0);                 /* the same id twice */
	BAD(p[1].id, KM_MAX_TIMERS);     /* past the table */
	BAD(p[0].clock, 99);             /* no such clock */
	BAD(p[0].clock, -2);             /* another process's CPU clock */
	BAD(p[0].notify, 2);             /* SIGEV_THREAD: a libc's, never the kernel's */
	BAD(p[0].signo, 0);
	BAD(p[0].signo, 65);
	BAD(p[0].signo, KM_SIG_KICK);    /* km's own */
	BAD(p[0].signo, SIGKILL);
	BAD(p[0].time.value_ns, ~0ull);  /* beyond a century */
	BAD(h.itimer[2].interval_ns, ~0ull);
#undef BAD
	n = good();
	n.p[0].notify = SIGEV_NONE;
	n.p[0].signo = 0; /* no signal is fine when none is sent */
	assert_int_equal(stash(&n, len_of(&n)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
