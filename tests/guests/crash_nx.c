/* Calls code placed in a writable, non-executable anonymous page: must die with SIGSEGV. */
// E2E: run SIGSEGV
#include <sys/mman.h>

#include "crash.h"

int main(void)
{
	unsigned char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int (*fn)(void), ret;

	if (page == MAP_FAILED) {
		say("FAIL mmap\n");
		return 1;
	}
	/* mov $42, %eax; ret */
	page[0] = 0xb8;
	page[1] = 42;
	page[2] = page[3] = page[4] = 0;
	page[5] = 0xc3;
	fn = (int (*)(void))(void *)page;
	say("about to execute a non-executable page\n");
	ret = fn();
	return survived("executing a PROT_READ|PROT_WRITE page") + ret - 42;
}
