/* Executes int3 (breakpoint): must die with SIGTRAP. */
// E2E: run SIGTRAP
#include "crash.h"

int main(void)
{
	say("about to execute int3\n");
	__asm__ volatile("int3");
	return survived("int3");
}
