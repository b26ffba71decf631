/* The state km passes across an execve (km/proc/km_exec_state.c): a round trip, and every way a
 * state km did not make (or a truncated or altered one) is refused without harm. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_exec_state.h"
#include "km_sys_util.h"

/* An fd in km's range, open, not close-on-exec, as the old km passes them. */
static int passed_fd(void)
{
	int null = open("/dev/null", O_RDONLY);
	int fd = fcntl(null, F_DUPFD, KM_FD_RESERVED_BASE);
	close(null);
	assert_true(fd >= KM_FD_RESERVED_BASE);
	return fd;
}

static void fill(km_exec_state_t *st)
{
	memset(st, 0, sizeof(*st));
	st->memory = 1ull << 30;
	st->snapshot_file_max = 12345;
	st->tcp_established = 1;
	st->restore_missing = 1;
	st->trace = true;
	st->timing = true;
	st->host_mask = 1ull << (SIGTERM - 1);
	st->snapshot_path = "/tmp/snap";
	st->coredump_path = "/tmp/core";
	st->mgmt_path = NULL;
	st->kvm_fd = st->mgmt_fd = st->err_fd = -1;
	st->prog_fd = passed_fd();
	st->pid = getpid();
	st->descendant = true;
	st->mono_shift = 86400ll * 1000000000ll; /* a resumed guest's, a day ahead */
	st->ignored = 1ull << (SIGPIPE - 1);
	st->sigmask = 1ull << (SIGUSR1 - 1);
	st->nofile = (struct rlimit){200, 4096};
	st->rlim[RLIMIT_STACK] = (struct rlimit){1 << 20, 8 << 20};
	st->rlim_set = 1u << RLIMIT_STACK;
}

/* A sealed memfd (in km's range) holding len bytes of p. */
static int sealed(const void *p, size_t len, bool seal)
{
	int fd = memfd_create("t", MFD_ALLOW_SEALING);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	if (seal)
		assert_int_equal(fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE), 0);
	int high = fcntl(fd, F_DUPFD, KM_FD_RESERVED_BASE);
	close(fd);
	return high;
}

/* The bytes km_exec_state_write made. */
static uint8_t *bytes_of(int fd, size_t *len)
{
	off_t n = lseek(fd, 0, SEEK_END);
	uint8_t *p = malloc((size_t)n);
	assert_int_equal(pread(fd, p, (size_t)n, 0), n);
	*len = (size_t)n;
	return p;
}

static void test_round_trip(void **state)
{
	(void)state;
	km_exec_state_t st, got;
	fill(&st);
	char *envp[] = {"A=1", "", "B=two words", NULL};
	st.envp = envp;
	st.nenvp = 3;
	km_exec_sig_t sigs[2] = {{0, {.si_signo = SIGTERM}}, {1, {.si_signo = SIGRTMIN + 1}}};
	st.sigs = sigs;
	st.nsigs = 2;
	km_err_t *err = NULL;
	int fd = km_exec_state_write(&st, &err);
	assert_true(fd >= KM_FD_RESERVED_BASE);
	assert_int_equal(fcntl(fd, F_GETFD), 0); /* crosses the exec */
	assert_int_equal(km_exec_state_read(fd, &got, &err), 0);
	assert_null(err);
	assert_int_equal(got.memory, st.memory);
	assert_int_equal(got.snapshot_file_max, 12345);
	assert_true(got.trace && got.timing && !got.no_seccomp && !got.coredump_forced);
	assert_int_equal(got.host_mask, st.host_mask);
	assert_string_equal(got.snapshot_path, "/tmp/snap");
	assert_null(got.mgmt_path);
	assert_int_equal(got.prog_fd, st.prog_fd);
	assert_int_equal(fcntl(got.prog_fd, F_GETFD), FD_CLOEXEC); /* km's again */
	assert_int_equal(got.pid, getpid());
	assert_true(got.descendant);
	assert_int_equal(got.mono_shift, st.mono_shift);
	assert_int_equal(got.sigmask, st.sigmask);
	assert_int_equal(got.nsigs, 2);
	assert_int_equal(got.sigs[1].own, 1);
	assert_int_equal(got.sigs[1].info.si_signo, SIGRTMIN + 1);
	assert_int_equal(got.nofile.rlim_cur, 200);
	assert_int_equal(got.rlim[RLIMIT_STACK].rlim_max, 8 << 20);
	assert_int_equal(got.nenvp, 3);
	assert_string_equal(got.envp[2], "B=two words");
	assert_string_equal(got.envp[1], "");
	assert_null(got.envp[3]);
	km_exec_state_free(&got);
	assert_int_equal(fcntl(st.prog_fd, F_GETFD), -1); /* free closed it */
}

static void refused(int fd, const char *msg)
{
	km_exec_state_t got;
	km_err_t *err = NULL;
	assert_int_equal(km_exec_state_read(fd, &got, &err), -1);
	assert_non_null(err);
	if (msg != NULL && strstr(err->msg, msg) == NULL)
		fail_msg("error '%s' lacks '%s'", err->msg, msg);
	km_err_free(&err);
	assert_int_equal(fcntl(fd, F_GETFD), -1); /* closed */
}

static void test_refused(void **state)
{
	(void)state;
	km_exec_state_t st;
	fill(&st);
	km_err_t *err = NULL;
	int fd = km_exec_state_write(&st, &err);
	size_t len;
	uint8_t *good = bytes_of(fd, &len);
	close(fd);
	/* a guest-range fd, an unsealed file, garbage */
	int low = memfd_create("low", 0);
	refused(low, "not one of km's fds");
	refused(sealed(good, len, false), "not a state km made");
	uint8_t junk[256];
	memset(junk, 0x5a, sizeof(junk));
	refused(sealed(junk, sizeof(junk), true), "does not understand");
	/* every truncation */
	for (size_t n = 1; n < len; n++)
		refused(sealed(good, n, true), NULL);
	/* another process's state: the pid it records is not this one */
	km_exec_state_t other;
	uint8_t *p = malloc(len);
	memcpy(p, good, len);
	p[16] ^= 1; /* the writer's pid: after magic and version */
	refused(sealed(p, len, true), "does not understand");
	/* a fd the state names that is below km's range */
	fill(&other);
	close(other.prog_fd);
	other.prog_fd = 5;
	fd = km_exec_state_write(&other, &err);
	refused(fd, "does not understand");
	free(p);
	free(good);
	close(st.prog_fd);
}

/* Every single-byte change of a good state: refused, or accepted with every field still in its
 * bounds (the sanitizer build checks the memory side). */
static void test_flips(void **state)
{
	(void)state;
	km_exec_state_t st;
	fill(&st);
	km_exec_sig_t sig = {0, {.si_signo = SIGHUP}};
	st.sigs = &sig;
	st.nsigs = 1;
	km_err_t *err = NULL;
	int fd = km_exec_state_write(&st, &err);
	size_t len;
	uint8_t *good = bytes_of(fd, &len);
	close(fd);
	uint8_t *p = malloc(len);
	for (size_t i = 0; i < len; i++) {
		memcpy(p, good, len);
		p[i] ^= 0x81;
		km_exec_state_t got;
		if (km_exec_state_read(sealed(p, len, true), &got, &err) < 0) {
			km_err_free(&err);
			continue;
		}
		assert_true(got.memory >= (16u << 20));
		assert_true(got.prog_fd >= KM_FD_RESERVED_BASE);
		assert_true(got.nsigs <= KM_EXEC_STATE_SIGS_MAX);
		for (uint32_t k = 0; k < got.nsigs; k++)
			assert_true(got.sigs[k].info.si_signo >= 1 && got.sigs[k].info.si_signo <= 64);
		assert_true(got.nofile.rlim_cur <= got.nofile.rlim_max);
		assert_true(got.mono_shift >= 0 && got.mono_shift <= KM_EXEC_STATE_SHIFT_MAX);
		got.prog_fd = -1; /* st's: closed once, below */
		km_exec_state_free(&got);
	}
	free(p);
	free(good);
	close(st.prog_fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_flips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
