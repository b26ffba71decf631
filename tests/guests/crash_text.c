/* Writes into the program's own code (a function's address): must die with SIGSEGV. */
// E2E: run SIGSEGV
#include <stdint.h>

#include "crash.h"

__attribute__((noinline)) int victim(int x)
{
	return x * 3 + 1;
}

int main(void)
{
	volatile unsigned char *code = (volatile unsigned char *)(uintptr_t)&victim;

	say("about to write to the text segment\n");
	*code = 0xc3;
	return survived("writing to code") + victim(0) - 1;
}
