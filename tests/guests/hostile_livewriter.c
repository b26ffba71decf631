/*
 * Hostile guest: a live snapshot's writer is a host process, km's child, that runs while the
 * program does. The program can find it (another process's /proc/N/stat, whose ppid is the
 * program's pid) and name its pid to the host calls km forwards: a SIGSTOP would leave km
 * waiting for it for ever (no answer to the snapshot's request, no exit), a SIGKILL fails the
 * snapshot, setpgid moves it into a group the program may signal. Each must fail with ESRCH, as
 * for a process that is not the program's to reach; its memory (/proc/N/mem) and its fds (the
 * snapshot file) are km's, as for any other process km runs. One thread takes live snapshots;
 * another looks for the writer meanwhile and probes it with signal 0 and harmless requests (a
 * SIGCONT, a setpgid to its own group) so that a hole shows without hanging the test.
 */
// HOSTILE-KM-ARGS: --snapshot=@TMP/snap
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"
#include "km_hcall.h"

#define MAX_SNAPSHOTS 40
#define MIB 64

static atomic_int finished;
static atomic_long found, reached, last_pid, calls; /* calls: a bit per call that succeeded */

/* The pid of a process whose parent is this program (its only child: the writer), or 0. */
static pid_t find_child(pid_t me)
{
	DIR *d = opendir("/proc");
	pid_t got = 0;
	if (d == NULL)
		return 0;
	struct dirent *e;
	while (got == 0 && (e = readdir(d)) != NULL) {
		char path[300], buf[512];
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		char *p = strrchr(buf, ')'); /* pid (comm) state ppid ... */
		int ppid;
		char st;
		if (p != NULL && sscanf(p + 1, " %c %d", &st, &ppid) == 2 && ppid == me)
			got = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return got;
}

/* Every call below must fail (ESRCH) for the writer; a success is a reach. */
static void probe(pid_t w)
{
	long r[6];
	r[0] = syscall(SYS_kill, w, 0);
	r[1] = syscall(SYS_kill, w, SIGCONT);
	r[2] = syscall(SYS_tgkill, w, w, 0);
	r[3] = syscall(SYS_tkill, w, 0);
	r[4] = syscall(SYS_setpgid, w, w);
	r[5] = syscall(SYS_setpriority, PRIO_PROCESS, w, 0);
	for (int i = 0; i < 6; i++)
		if (r[i] == 0) {
			atomic_fetch_add(&reached, 1);
			atomic_store(&last_pid, w);
			atomic_fetch_or(&calls, 1L << i);
		}
	if (r[4] == 0) /* undo, so that a hole does not leave it in a group of its own */
		syscall(SYS_setpgid, w, getpgrp());
	/* Its memory (km's, frozen) and its fds (the snapshot file, km's own range) are km's. */
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)w);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		atomic_fetch_add(&reached, 1);
		atomic_fetch_or(&calls, 1L << 6);
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)w);
	DIR *d = opendir(path);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL)
		if (e->d_name[0] != '.') {
			atomic_fetch_add(&reached, 1);
			atomic_fetch_or(&calls, 1L << 7);
		}
	if (d != NULL)
		closedir(d);
}

static void *looker(void *arg)
{
	pid_t me = getpid();
	(void)arg;
	while (!atomic_load(&finished)) {
		pid_t w = find_child(me);
		if (w > 0) {
			atomic_fetch_add(&found, 1);
			probe(w);
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	size_t len = (size_t)MIB << 20;
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(m != MAP_FAILED, "mmap %d MiB", MIB);
	if (m == MAP_FAILED)
		return check_done();
	for (size_t i = 0; i < len; i += 4096) /* distinct pages, so that each writer lives a while */
		m[i] = (uint8_t)(i >> 12 | 1);
	pthread_t th;
	CHECK(pthread_create(&th, NULL, looker, NULL) == 0, "looker thread");
	int taken = 0, tried = 0;
	/* Until the looker has seen a writer a few times (each is there for a few ms at least). */
	while (tried < MAX_SNAPSHOTS && atomic_load(&found) < 3) {
		tried++;
		taken += km_snapshot("livewriter", KM_SNAPSHOT_KEEP_RUNNING) == KM_SNAPSHOT_TAKEN;
	}
	atomic_store(&finished, 1);
	pthread_join(th, NULL);
	CHECK(taken == tried, "every live snapshot was taken (%d of %d)", taken, tried);
	CHECK(atomic_load(&found) > 0, "the writer was seen in /proc (%d snapshots)", tried);
	CHECK(atomic_load(&reached) == 0, "no call reached the writer (%ld did, calls %#lx, the last at pid %ld)",
	      atomic_load(&reached), atomic_load(&calls), atomic_load(&last_pid));
	return check_done();
}
