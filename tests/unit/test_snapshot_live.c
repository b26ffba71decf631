/* The live snapshot's writer process (km/snapshot/km_snapshot_live.c): its report, a writer that
 * fails or is killed, the fds it keeps, that it is a clone child (a plain wait never sees it),
 * and that a next snapshot can wait for it without reaping it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "km_snapshot_live.h"

static void report_done(void *arg, km_live_report_t *rep)
{
	(void)arg;
	rep->memory_bytes = 4096;
	rep->file_size = 8192;
	rep->done = 1;
}

static void report_failure(void *arg, km_live_report_t *rep)
{
	(void)arg;
	rep->errnum = ENOSPC;
	rep->step = "writing guest memory";
}

static void wait_forever(void *arg, km_live_report_t *rep)
{
	(void)rep;
	int *fd = arg;
	char c;
	while (read(*fd, &c, 1) < 0 && errno == EINTR) /* until killed (or the pipe's writer goes) */
		;
}

/* fds[0] is kept, fds[1] must be closed in the writer: it says so through its report. */
static void check_fds(void *arg, km_live_report_t *rep)
{
	int *fds = arg;
	bool kept = fcntl(fds[0], F_GETFD) >= 0;
	bool closed = fcntl(fds[1], F_GETFD) < 0 && errno == EBADF;
	rep->done = kept && closed;
	rep->step = rep->done ? NULL : "fds";
}

static void test_done(void **state)
{
	(void)state;
	km_live_writer_t w;
	km_live_report_t rep;
	int sig = -1;
	assert_int_equal(km_live_start(report_done, NULL, NULL, 0, &w), 0);
	assert_int_equal(km_live_wait(&w, &rep, &sig, NULL, NULL), 0);
	assert_int_equal(sig, 0);
	assert_int_equal(rep.memory_bytes, 4096);
	assert_int_equal(rep.file_size, 8192);
}

static void test_failure(void **state)
{
	(void)state;
	km_live_writer_t w;
	km_live_report_t rep;
	int sig = -1;
	assert_int_equal(km_live_start(report_failure, NULL, NULL, 0, &w), 0);
	assert_int_equal(km_live_wait(&w, &rep, &sig, NULL, NULL), -1);
	assert_int_equal(sig, 0);
	assert_int_equal(rep.errnum, ENOSPC);
	assert_string_equal(rep.step, "writing guest memory");
}

static void test_killed_and_unseen(void **state)
{
	(void)state;
	int p[2];
	assert_int_equal(pipe(p), 0);
	km_live_writer_t w;
	km_live_report_t rep;
	int sig = -1;
	int keep[] = {p[0]};
	assert_int_equal(km_live_start(wait_forever, &p[0], keep, 1, &w), 0);
	/* A clone child: waits without __WALL or __WCLONE do not see it. */
	int st;
	assert_int_equal(waitpid(-1, &st, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
	assert_int_equal(kill(w.pid, SIGKILL), 0);
	km_live_wait_idle(); /* returns once it has ended, leaving it to its waiter */
	assert_int_equal(km_live_wait(&w, &rep, &sig, NULL, NULL), -1);
	assert_int_equal(sig, SIGKILL);
	close(p[0]);
	close(p[1]);
}

static void test_keeps_only_its_fds(void **state)
{
	(void)state;
	int fds[2];
	fds[0] = open("/dev/null", O_RDONLY);
	fds[1] = open("/dev/null", O_RDONLY);
	assert_true(fds[0] >= 0 && fds[1] >= 0);
	km_live_writer_t w;
	km_live_report_t rep;
	int sig = -1;
	int keep[] = {-1, fds[0]};
	assert_int_equal(km_live_start(check_fds, fds, keep, 2, &w), 0);
	assert_int_equal(km_live_wait(&w, &rep, &sig, NULL, NULL), 0);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_done),
	    cmocka_unit_test(test_failure),
	    cmocka_unit_test(test_killed_and_unseen),
	    cmocka_unit_test(test_keeps_only_its_fds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
