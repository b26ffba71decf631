/*
 * Snapshots and cores of a program whose memory holds pages the host cannot provide: file
 * mappings whose files were truncated to 0 under them (touching such a page is SIGBUS).
 *
 * `shared` is a MAP_SHARED mapping of a file truncated to 0 (a snapshot does not save it: resume
 * maps the file again, still empty, so it stays SIGBUS). `priv` is a MAP_PRIVATE mapping of a
 * two-page file cut to one page: the first page the program wrote (its private copy), the second
 * is past the end (SIGBUS). km must write the snapshot or core without dying: the second page
 * becomes a hole, and after a resume it reads as zero (documented in docs/snapshot-format.md).
 *
 *   snap_sigbus          the checks only (also natively)
 *   snap_sigbus snap     checks, snapshot (km exits), and after `km FILE` the checks again
 *   snap_sigbus crash    checks, then SIGSEGV: km writes a core
 */
// E2E: run 0
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>

#include "snap_common.h"

#define PG 4096

static char *shared, *priv;

static char *map_truncated(const char *name, int flags, off_t keep)
{
	int fd = CHECK_SYS(open(name, O_RDWR | O_CREAT | O_TRUNC, 0600), "create %s", name);
	CHECK_SYS(ftruncate(fd, 2 * PG), "make %s two pages long", name);
	char *m = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, flags, fd, 0);
	CHECK(m != MAP_FAILED, "map %s", name);
	m[0] = 'w'; /* for the private mapping: its own copy of the first page */
	CHECK_SYS(ftruncate(fd, keep), "truncate %s under its mapping", name);
	close(fd);
	return m;
}

/* What holds before the snapshot, natively and under km. */
static void check_faults(void)
{
	struct timespec ts;
	CHECK_ERR(syscall(SYS_open, shared, O_RDONLY), EFAULT, "open(path in the shared mapping past EOF)");
	CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, shared + PG), EFAULT,
		  "clock_gettime(into the shared mapping past EOF)");
	CHECK_ERR(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, priv + PG), EFAULT,
		  "clock_gettime(into the untouched private page past EOF)");
	CHECK_SYS(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts), "clock_gettime still works");
	CHECK(priv[0] == 'w', "the private copy of the first page is kept");
}

/* After a resume: the shared mapping is the (empty) file again; the private page that could
 * not be read was saved as a hole and reads as zero. */
static void check_resumed(void)
{
	CHECK_ERR(syscall(SYS_open, shared, O_RDONLY), EFAULT, "open(path in the shared mapping past EOF)");
	CHECK(priv[0] == 'w', "the private copy of the first page came back");
	CHECK(priv[PG] == 0 && priv[2 * PG - 1] == 0, "the unreadable private page came back as zero");
	CHECK_SYS(syscall(SYS_clock_gettime, CLOCK_MONOTONIC, priv + PG), "clock_gettime into it works");
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	shared = map_truncated("sigbus-shared.dat", MAP_SHARED, 0);
	/* Truncation drops even private copies past the new end, so the first page stays in. */
	priv = map_truncated("sigbus-private.dat", MAP_PRIVATE, PG);
	check_faults();
	if (strcmp(mode, "crash") == 0) {
		printf("about to crash\n");
		fflush(stdout);
		*(volatile int *)16 = 1;
	}
	if (strcmp(mode, "snap") == 0) {
		printf("taking the snapshot\n");
		long r = snap_take("sigbus", 0, NULL, NULL);
		if (r != KM_SNAPSHOT_RESUMED)
			snap_failed(r);
		printf("resumed from the snapshot\n");
		check_resumed();
	}
	return check_done();
}
