/*
 * garbage [sweep]: every syscall number with garbage arguments. Without arguments it only checks
 * that its argument patterns are what it thinks they are (safe to run natively). `sweep` is for
 * km only (natively, fork/vfork/vhangup/pause with garbage are not something to do to a machine):
 * it issues syscall numbers 0..600 (except the few that end or stop the process) with each
 * pattern in every argument and exits 0 if it is still alive afterwards, its memory intact.
 *
 * The patterns are chosen so that, read as file descriptors, none is a valid fd (the low 32 bits
 * are negative), and, read as pointers, none is mapped: a monitor must answer each with an errno
 * (or harmlessly succeed), never crash or corrupt itself.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

static const uint64_t patterns[] = {
    0xdead0000ull,          /* unmapped, low half; as an int: negative */
    0xffff8000dead0000ull,  /* kernel half */
    0x7ffffffff000ull,      /* last page of the lower half (km's runtime region is below it) */
    0xfffffffffffff000ull,  /* -4096: top of the address space, and a "negative errno" */
    0x80000000dead0000ull,  /* non-canonical */
    0xffffffffffffffffull,  /* -1 */
};
#define NPAT (sizeof(patterns) / sizeof(patterns[0]))

/* Syscalls that end or stop the caller, or wait for a signal that never comes. */
static int skipped(long nr)
{
	return nr == SYS_exit || nr == SYS_exit_group || nr == SYS_rt_sigreturn || nr == SYS_pause ||
	       nr == SYS_kill || nr == SYS_tkill || nr == SYS_tgkill || nr == SYS_vfork || nr == SYS_fork ||
	       nr == SYS_clone || nr == SYS_clone3 || nr == SYS_execve || nr == SYS_execveat ||
	       nr == SYS_rt_sigsuspend || nr == SYS_vhangup;
}

static int sweep(void)
{
	static char canary[4096];
	memset(canary, 0xa5, sizeof(canary));
	long calls = 0;
	for (long nr = 0; nr <= 600; nr++) {
		if (skipped(nr))
			continue;
		for (unsigned p = 0; p < NPAT; p++) {
			uint64_t g = patterns[p];
			syscall(nr, g, g, g, g, g, g);
			calls++;
			/* mixed: a garbage pointer next to a small size or flag */
			syscall(nr, g, 1, g, 1, g, 1);
			calls++;
		}
	}
	int intact = 1;
	for (size_t i = 0; i < sizeof(canary); i++)
		intact &= canary[i] == (char)0xa5;
	printf("survived %ld garbage syscalls\n", calls);
	CHECK(intact, "memory intact after the sweep");
	CHECK(write(1, "", 0) == 0, "write still works");
	return check_done();
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "sweep") == 0)
		return sweep();
	for (unsigned p = 0; p < NPAT; p++)
		CHECK((int32_t)patterns[p] < 0, "pattern %u is a negative fd", p);
	return check_done();
}
