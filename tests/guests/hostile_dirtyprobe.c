/*
 * Hostile guest: HC_dirty_probe (km/sys/km_dirty_probe.c) lets a program start, read and give
 * back km's tracking of changed pages, which decides what an incremental snapshot holds. It is
 * for km's own tests only, behind --test-dirty-probe; hostile.sh runs this without it. Every
 * operation (and an unknown one) must be ENOSYS, here, in a forked child and in a live snapshot's
 * wake (the tracker running).
 */
// HOSTILE-KM-ARGS: --snapshot=@TMP/snap
#include <errno.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "km_hcall.h"

static int probe_all(void)
{
	uint64_t list[16];
	int open = 0;
	for (uint64_t op = 0; op <= KM_DIRTY_PROBE_ARM + 1; op++) {
		km_hc_args_t a = {0, op, (uint64_t)(uintptr_t)list, 16, 0, 0, 0};
		long r = km_hcall(HC_dirty_probe, &a);
		if (r != -ENOSYS)
			open++;
	}
	return open;
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	CHECK(probe_all() == 0, "every HC_dirty_probe operation is ENOSYS");
	pid_t pid = fork();
	if (pid == 0)
		_exit(probe_all() == 0 ? 0 : 1);
	int st = 0;
	CHECK(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "and in a forked child (status %#x)", st);
	CHECK(km_snapshot("dirtyprobe", KM_SNAPSHOT_KEEP_RUNNING) == KM_SNAPSHOT_TAKEN, "a live snapshot");
	CHECK(probe_all() == 0, "and after a snapshot");
	return check_done();
}
