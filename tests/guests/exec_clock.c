/*
 * The monotonic clocks across execve: they never go back, also in a program resumed from a
 * snapshot whose clocks were ahead of the resuming host's (km then runs them ahead by an offset,
 * which the exec'd program must keep: procs_exec.sh runs the snapshot case under km).
 *
 *   (no args)        reads MONOTONIC, BOOTTIME and MONOTONIC_RAW, execs itself with "check"
 *   check A B C      those clocks read at least A, B and C (ns)
 *   snap FILE        snapshots itself into FILE (km ends it); resumed, it goes on as with no args
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "snap_common.h"

static const clockid_t clocks[3] = {CLOCK_MONOTONIC, CLOCK_BOOTTIME, CLOCK_MONOTONIC_RAW};

static uint64_t now_ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int exec_self(const char *self)
{
	char a[3][32];
	for (int i = 0; i < 3; i++)
		snprintf(a[i], sizeof(a[i]), "%" PRIu64, now_ns(clocks[i]));
	fflush(stdout);
	execl(self, self, "check", a[0], a[1], a[2], (char *)NULL);
	CHECK(0, "execl %s", self);
	return check_done();
}

static int check(char **v)
{
	for (int i = 0; i < 3; i++) {
		uint64_t before = strtoull(v[i], NULL, 10), now = now_ns(clocks[i]);
		if (now < before)
			printf("  clock %d: %" PRIu64 " before the exec, %" PRIu64 " after\n", (int)clocks[i], before, now);
		CHECK(now >= before, "clock %d did not go back across the exec", (int)clocks[i]);
	}
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "check") == 0)
		return check(&argv[2]);
	if (argc == 3 && strcmp(argv[1], "snap") == 0) {
		long r = snap_take("exec_clock", 0, argv[2], NULL);
		if (r != KM_SNAPSHOT_RESUMED)
			snap_failed(r);
	}
	return exec_self(argv[0]);
}
