/* Touches a file mapping past the end of its file: must die with SIGBUS. */
// E2E: run SIGBUS @TMP
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>

#include "crash.h"

int main(int argc, char **argv)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/short-file", argc > 1 ? argv[1] : "/tmp");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, "x", 1) != 1)
		return survived("setting up the file (could not create it)");
	unlink(path);
	volatile char *p = mmap(NULL, 2 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return survived("setting up the mapping (mmap failed)");
	say("the first page is readable past the file's last byte\n");
	if (p[100] != 0)
		return survived("reading zeros in the last page");
	say("about to read the page after the end of the file\n");
	char c = p[4096];
	return survived("reading past the end of the file") + c;
}
