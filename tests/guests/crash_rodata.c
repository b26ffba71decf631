/* Writes into a string literal in read-only data: must die with SIGSEGV. */
// E2E: run SIGSEGV
#include "crash.h"

static const char message[] = "read-only data";
const char *volatile target = message;

int main(void)
{
	say("about to write to .rodata\n");
	*(volatile char *)target = 'X';
	return survived("writing to .rodata");
}
