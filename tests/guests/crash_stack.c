/* Unbounded recursion: must overflow the stack and die with SIGSEGV, not hang. */
// E2E: run SIGSEGV
#include "crash.h"

volatile unsigned long depth;
volatile unsigned long never = ~0UL; /* a bound that is never reached, so it is not "infinite" */

__attribute__((noinline)) static unsigned long recurse(unsigned long n)
{
	volatile char frame[256];

	frame[0] = (char)n;
	frame[255] = (char)n;
	depth = n;
	if (n == never)
		return 0;
	return recurse(n + 1) + frame[0] + frame[255];
}

int main(void)
{
	unsigned long r;

	say("about to recurse without bound\n");
	r = recurse(0);
	return survived("unbounded recursion") + (int)r;
}
