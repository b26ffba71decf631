/* Reads through a NULL pointer: must die with SIGSEGV. */
// E2E: run SIGSEGV
#include "crash.h"

int *volatile null_ptr;

int main(void)
{
	int v;

	say("about to read through a NULL pointer\n");
	v = *null_ptr;
	return survived("reading address 0") + v;
}
