/* __builtin_trap() compiles to ud2 (undefined instruction): must die with SIGILL. */
// E2E: run SIGILL
#include "crash.h"

int main(void)
{
	say("about to execute ud2\n");
	__builtin_trap();
}
