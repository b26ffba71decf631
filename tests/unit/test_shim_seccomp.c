/* linux.seccomp into km's guest seccomp text (shim/shim_seccomp.c): names to x86-64 numbers,
 * actions, conditions, refusals; the memfd km reads; the text parses with km's own parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "shim_seccomp.h"

/* km's parser, built in: the shim's output must be what km accepts (links nothing of km but
 * km_error). */
#include "../../km/sys/km_guest_seccomp.c"

static char *write_names[] = {"write", "socketcall", "no_such_syscall_xyz", NULL};
static char *getpid_names[] = {"getpid", NULL};
static char *read_names[] = {"read", "pread64", NULL};

static oci_seccomp_arg_t fd99 = {.index = 0, .value = 99, .value_two = 0, .op = OCI_SCMP_CMP_EQ};
static oci_seccomp_arg_t masked = {.index = 2, .value = 3, .value_two = 1, .op = OCI_SCMP_CMP_MASKED_EQ};

static void sample(oci_seccomp_t *sc, oci_seccomp_rule_t r[3])
{
	memset(sc, 0, sizeof(*sc));
	memset(r, 0, 3 * sizeof(*r));
	r[0] = (oci_seccomp_rule_t){.names = write_names, .action = OCI_SCMP_ACT_ERRNO, .has_errno_ret = true,
				    .errno_ret = 13, .args = &fd99, .n_args = 1};
	r[1] = (oci_seccomp_rule_t){.names = getpid_names, .action = OCI_SCMP_ACT_KILL};
	r[2] = (oci_seccomp_rule_t){.names = read_names, .action = OCI_SCMP_ACT_ALLOW, .args = &masked, .n_args = 1};
	sc->default_action = OCI_SCMP_ACT_ERRNO; /* no errnoRet: EPERM */
	sc->rules = r;
	sc->n_rules = 3;
}

static const char expected[] = "km-guest-seccomp 1\n"
			       "default errno 1\n"
			       "1 errno 13 0 eq 99 0\n"
			       "39 kill-thread 0\n"
			       "0 allow 0 2 masked-eq 3 1\n"
			       "17 allow 0 2 masked-eq 3 1\n";

static void test_text(void **state)
{
	(void)state;
	oci_seccomp_t sc;
	oci_seccomp_rule_t r[3];
	sample(&sc, r);
	char *text;
	size_t len;
	km_err_t *err = NULL;
	assert_int_equal(shim_seccomp_text(&sc, &text, &len, &err), 0);
	assert_int_equal(len, strlen(expected));
	assert_memory_equal(text, expected, len);
	km_gsc_filter_t f;
	assert_int_equal(km_gsc_parse(text, len, &f, &err), 0);
	assert_int_equal(f.nrules, 4);
	km_gsc_filter_free(&f);
	free(text);
}

static void test_memfd(void **state)
{
	(void)state;
	oci_seccomp_t sc;
	oci_seccomp_rule_t r[3];
	sample(&sc, r);
	char *arches[] = {"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", NULL};
	char *flags[] = {"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", NULL};
	sc.architectures = arches;
	sc.flags = flags;
	int fd = -1;
	km_err_t *err = NULL;
	assert_int_equal(shim_seccomp_compile(&sc, &fd, &err), 0);
	assert_true(fd >= 0);
	char buf[512];
	ssize_t n = pread(fd, buf, sizeof(buf), 0);
	assert_int_equal(n, (ssize_t)strlen(expected));
	assert_memory_equal(buf, expected, (size_t)n);
	assert_int_equal(write(fd, "x", 1), -1); /* sealed */
	km_gsc_t s = {0};
	assert_int_equal(km_gsc_add_fd(&s, fd, "memfd", &err), 0);
	km_gsc_free(&s);
	close(fd);
}

static void refused(oci_seccomp_t *sc, const char *msg)
{
	int fd = 7;
	km_err_t *err = NULL;
	assert_int_equal(shim_seccomp_compile(sc, &fd, &err), -1);
	assert_int_equal(fd, -1);
	assert_non_null(err);
	if (strstr(err->msg, msg) == NULL)
		fail_msg("error '%s' lacks '%s'", err->msg, msg);
	km_err_free(&err);
}

static void test_refused(void **state)
{
	(void)state;
	oci_seccomp_t sc;
	oci_seccomp_rule_t r[3];
	sample(&sc, r);
	char *arm[] = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_X86", NULL};
	sc.architectures = arm;
	refused(&sc, "SCMP_ARCH_X86_64");
	sample(&sc, r);
	r[1].action = OCI_SCMP_ACT_NOTIFY;
	refused(&sc, "NOTIFY");
	sample(&sc, r);
	sc.default_action = OCI_SCMP_ACT_NOTIFY;
	refused(&sc, "NOTIFY");
	sample(&sc, r);
	r[0].errno_ret = 4096;
	refused(&sc, "errnoRet 4096");
	sample(&sc, r);
	oci_seccomp_arg_t seven[7];
	for (int i = 0; i < 7; i++)
		seven[i] = fd99;
	r[0].args = seven;
	r[0].n_args = 7;
	refused(&sc, "at most 6");
}

/* The other actions and ops, and a default errnoRet. */
static void test_actions(void **state)
{
	(void)state;
	static char *n1[] = {"close", NULL}, *n2[] = {"openat", NULL}, *n3[] = {"mmap", NULL}, *n4[] = {"kill", NULL},
		    *n5[] = {"ptrace", NULL};
	oci_seccomp_arg_t ops[6] = {
	    {0, 1, 0, OCI_SCMP_CMP_NE}, {1, 2, 0, OCI_SCMP_CMP_LT}, {2, 3, 0, OCI_SCMP_CMP_LE},
	    {3, 4, 0, OCI_SCMP_CMP_GE}, {4, 5, 0, OCI_SCMP_CMP_GT}, {5, UINT64_MAX, 0, OCI_SCMP_CMP_EQ},
	};
	oci_seccomp_rule_t r[5] = {
	    {.names = n1, .action = OCI_SCMP_ACT_KILL_PROCESS},
	    {.names = n2, .action = OCI_SCMP_ACT_TRAP, .args = ops, .n_args = 6},
	    {.names = n3, .action = OCI_SCMP_ACT_LOG},
	    {.names = n4, .action = OCI_SCMP_ACT_TRACE, .has_errno_ret = true, .errno_ret = 5},
	    {.names = n5, .action = OCI_SCMP_ACT_ERRNO, .has_errno_ret = true, .errno_ret = 0},
	};
	oci_seccomp_t sc = {.default_action = OCI_SCMP_ACT_ALLOW, .rules = r, .n_rules = 5};
	char *text;
	size_t len;
	km_err_t *err = NULL;
	assert_int_equal(shim_seccomp_text(&sc, &text, &len, &err), 0);
	const char *want = "km-guest-seccomp 1\n"
			   "default allow 0\n"
			   "3 kill-process 0\n"
			   "257 trap 0 0 ne 1 0 1 lt 2 0 2 le 3 0 3 ge 4 0 4 gt 5 0 5 eq 18446744073709551615 0\n"
			   "9 log 0\n"
			   "62 trace 0\n"
			   "101 errno 0\n";
	assert_string_equal(text, want);
	km_gsc_filter_t f;
	assert_int_equal(km_gsc_parse(text, len, &f, &err), 0);
	km_gsc_filter_free(&f);
	free(text);
	sc.default_action = OCI_SCMP_ACT_ERRNO;
	sc.has_default_errno_ret = true;
	sc.default_errno_ret = 38;
	sc.n_rules = 0;
	assert_int_equal(shim_seccomp_text(&sc, &text, &len, &err), 0);
	assert_string_equal(text, "km-guest-seccomp 1\ndefault errno 38\n");
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text),
	    cmocka_unit_test(test_memfd),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_actions),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
