/* Writes to a page after mprotect(PROT_READ): the read must work, the write must die with SIGSEGV. */
// E2E: run SIGSEGV
#include <sys/mman.h>

#include "crash.h"

int main(void)
{
	volatile char *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (page == MAP_FAILED) {
		say("FAIL mmap\n");
		return 1;
	}
	page[10] = 'k';
	if (mprotect((void *)page, 4096, PROT_READ) != 0) {
		say("FAIL mprotect\n");
		return 1;
	}
	say(page[10] == 'k' ? "ok read after mprotect(PROT_READ)\n" : "FAIL read after mprotect\n");
	say("about to write to the read-only page\n");
	page[10] = 'x';
	return survived("writing to a PROT_READ page");
}
