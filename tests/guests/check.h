/*
 * Tiny self-check helpers shared by the test guests.
 *
 * Every check prints one line to stdout: "ok <what>" or "FAIL <what>: <details>". Lines are
 * deterministic when checks pass (no pids, addresses or times), so the e2e harness can compare
 * a native run with a run under km byte for byte. check_done() prints a closing line and returns
 * the exit status: 0 when every check passed, 1 otherwise.
 *
 * stdout is made line-buffered so that output written before a crash is not lost.
 */
#ifndef KM_TEST_CHECK_H
#define KM_TEST_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_total;
static int check_failed;

__attribute__((constructor)) static void check_init(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

__attribute__((format(printf, 3, 4), unused)) static int check_report(int ok, const char *detail, const char *fmt, ...)
{
	va_list ap;

	check_total++;
	if (!ok)
		check_failed++;
	fputs(ok ? "ok " : "FAIL ", stdout);
	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	if (!ok && detail)
		printf(": %s", detail);
	putchar('\n');
	return ok;
}

/* CHECK(cond, "what", ...): passes when cond is true. */
#define CHECK(cond, ...)                                                                        \
	({                                                                                      \
		char check_detail_[256];                                                        \
		int check_ok_ = !!(cond);                                                       \
		snprintf(check_detail_, sizeof(check_detail_), "'%s' is false (%s:%d)", #cond, \
			 __FILE__, __LINE__);                                                   \
		check_report(check_ok_, check_detail_, __VA_ARGS__);                            \
	})

/* CHECK_SYS(expr, "what", ...): passes when expr (a syscall-style result) is not -1. */
#define CHECK_SYS(expr, ...)                                                                   \
	({                                                                                     \
		char check_detail_[256];                                                       \
		errno = 0;                                                                     \
		long check_rv_ = (long)(expr);                                                 \
		int check_errno_ = errno;                                                      \
		snprintf(check_detail_, sizeof(check_detail_), "'%s' = %ld, errno %d (%s) (%s:%d)", \
			 #expr, check_rv_, check_errno_, strerror(check_errno_), __FILE__,     \
			 __LINE__);                                                            \
		check_report(check_rv_ != -1, check_detail_, __VA_ARGS__);                     \
		check_rv_;                                                                     \
	})

/* CHECK_ERR(expr, ERRNO, "what", ...): passes when expr returns -1 with errno == ERRNO. */
#define CHECK_ERR(expr, want_errno, ...)                                                       \
	({                                                                                     \
		char check_detail_[256];                                                       \
		errno = 0;                                                                     \
		long check_rv_ = (long)(expr);                                                 \
		int check_errno_ = errno;                                                      \
		snprintf(check_detail_, sizeof(check_detail_),                                 \
			 "'%s' = %ld, errno %d (%s), wanted -1 errno %d (%s) (%s:%d)", #expr,  \
			 check_rv_, check_errno_, strerror(check_errno_), (int)(want_errno),   \
			 strerror(want_errno), __FILE__, __LINE__);                            \
		check_report(check_rv_ == -1 && check_errno_ == (want_errno), check_detail_,   \
			     __VA_ARGS__);                                                     \
	})

/* CHECK_EQ(a, b, "what", ...): integer equality, printing both values on failure. */
#define CHECK_EQ(a, b, ...)                                                                    \
	({                                                                                     \
		char check_detail_[256];                                                       \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);                \
		snprintf(check_detail_, sizeof(check_detail_), "%s = %lld, expected %s = %lld (%s:%d)", \
			 #a, check_a_, #b, check_b_, __FILE__, __LINE__);                      \
		check_report(check_a_ == check_b_, check_detail_, __VA_ARGS__);                \
	})

/* CHECK_STR(a, b, "what", ...): string equality. */
#define CHECK_STR(a, b, ...)                                                                   \
	({                                                                                     \
		char check_detail_[512];                                                       \
		const char *check_a_ = (a), *check_b_ = (b);                                   \
		int check_ok_ = check_a_ && check_b_ && strcmp(check_a_, check_b_) == 0;       \
		snprintf(check_detail_, sizeof(check_detail_), "got \"%.200s\", expected \"%.200s\" (%s:%d)", \
			 check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)",       \
			 __FILE__, __LINE__);                                                  \
		check_report(check_ok_, check_detail_, __VA_ARGS__);                           \
	})

/* Prints the closing line; returns the exit status for main(). */
__attribute__((unused)) static int check_done(void)
{
	if (check_failed)
		printf("FAILED %d of %d checks\n", check_failed, check_total);
	else
		printf("PASSED all %d checks\n", check_total);
	fflush(stdout);
	return check_failed ? 1 : 0;
}

/* The temporary directory a guest may use: argv[1] if given, else $TMPDIR, else /tmp. */
__attribute__((unused)) static const char *check_tmpdir(int argc, char **argv)
{
	const char *d;

	if (argc > 1 && argv[1][0])
		return argv[1];
	d = getenv("TMPDIR");
	return d && d[0] ? d : "/tmp";
}

/* Deterministic pseudo-random numbers (xorshift64*). */
__attribute__((unused)) static unsigned long long check_rand(unsigned long long *s)
{
	unsigned long long x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545F4914F6CDD1DULL;
}

#endif
