/*
 * Dies of SIGSEGV three calls deep, in crash_here(), writing through a bad pointer: for core
 * files (tests/e2e/snapshot.sh: km writes kmcore, or --coredump=FILE, and gdb's backtrace of it
 * names crash_here, level_two, level_one and main).
 */
// E2E: run SIGSEGV
#include "crash.h"

int *volatile bad_ptr = (int *)16;
volatile int after;

__attribute__((noinline)) static void crash_here(int v)
{
	say("about to write through a bad pointer in crash_here\n");
	*bad_ptr = v;
	after++;
}

__attribute__((noinline)) static void level_two(int v)
{
	crash_here(v + 1);
	after++;
}

__attribute__((noinline)) static void level_one(int v)
{
	level_two(v + 1);
	after++;
}

int main(void)
{
	level_one(1);
	return survived("writing address 16");
}
