/*
 * Hostile guest: a live snapshot's writer is a child process of km, and the program's wait4 and
 * waitid are km's host waits. Whatever flags the program passes (__WALL, __WCLONE) and however
 * it waits (any child, blocking or not), it must never see, reap or stop the writer: with no
 * children of its own every wait ends in ECHILD, while one of its threads takes live snapshots
 * (HC_snapshot with KEEP_RUNNING; each waits for its writer) and another waits all the while.
 */
// HOSTILE-KM-ARGS: --snapshot=@TMP/snap
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "km_hcall.h"

#define SNAPSHOTS 6
#define MIB 32

static atomic_int snapping, finished;
static atomic_long waits_during, seen_pid, wrong_errno;

/* One wait of each kind; records anything but ECHILD. */
static void wait_all_ways(void)
{
	int st;
	siginfo_t si;
	long r[6];
	int e[6];
	errno = 0;
	r[0] = syscall(SYS_wait4, -1, &st, WNOHANG | __WALL, NULL);
	e[0] = errno;
	errno = 0;
	r[1] = syscall(SYS_wait4, -1, &st, WNOHANG | __WCLONE, NULL);
	e[1] = errno;
	memset(&si, 0, sizeof(si));
	errno = 0;
	r[2] = syscall(SYS_waitid, P_ALL, 0, &si, WEXITED | WNOHANG | __WALL, NULL);
	e[2] = errno;
	errno = 0;
	r[3] = syscall(SYS_waitid, P_ALL, 0, &si, WEXITED | WSTOPPED | WNOHANG | WNOWAIT | __WCLONE, NULL);
	e[3] = errno;
	/* Blocking: with the writer visible it would wait for it and reap it. */
	errno = 0;
	r[4] = syscall(SYS_wait4, -1, &st, __WALL, NULL);
	e[4] = errno;
	errno = 0;
	r[5] = syscall(SYS_waitid, P_ALL, 0, &si, WEXITED | __WALL, NULL);
	e[5] = errno;
	for (int i = 0; i < 6; i++) {
		if (r[i] > 0 || si.si_pid != 0)
			atomic_store(&seen_pid, r[i] > 0 ? r[i] : si.si_pid);
		else if (e[i] != ECHILD)
			atomic_store(&wrong_errno, e[i]);
	}
}

static void *waiter(void *arg)
{
	(void)arg;
	while (!atomic_load(&finished)) {
		int during = atomic_load(&snapping);
		wait_all_ways();
		if (during && atomic_load(&snapping))
			atomic_fetch_add(&waits_during, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	/* Memory to write, so that each writer lives a while. */
	size_t len = (size_t)MIB << 20;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap %d MiB", MIB);
	if (m == MAP_FAILED)
		return check_done();
	for (size_t i = 0; i < len; i += 4096)
		m[i] = (uint8_t)(i >> 12 | 1);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, waiter, NULL) == 0, "waiter thread");
	int taken = 0;
	for (int i = 0; i < SNAPSHOTS; i++) {
		atomic_store(&snapping, 1);
		long r = km_snapshot("livewait", KM_SNAPSHOT_KEEP_RUNNING);
		atomic_store(&snapping, 0);
		taken += r == KM_SNAPSHOT_TAKEN;
		usleep(2000);
	}
	atomic_store(&finished, 1);
	pthread_join(th, NULL);
	CHECK(taken == SNAPSHOTS, "every live snapshot was taken (%d of %d)", taken, SNAPSHOTS);
	CHECK(atomic_load(&seen_pid) == 0, "no wait saw a child (saw pid %ld)", atomic_load(&seen_pid));
	CHECK(atomic_load(&wrong_errno) == 0, "every wait failed with ECHILD (errno %ld)", atomic_load(&wrong_errno));
	CHECK(atomic_load(&waits_during) > 0, "waits ran while snapshots were written (%ld)", atomic_load(&waits_during));
	return check_done();
}
