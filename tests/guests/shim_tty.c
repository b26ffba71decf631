/*
 * For km-shim's process.terminal tests (tests/e2e/shim.sh): reports whether stdin and stdout are
 * terminals ("tty in=1 out=1"), then echoes back one line read from stdin ("got LINE"), so a test
 * can see input reach the guest and its output come back through the pty.
 */
// E2E: run 0
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	printf("tty in=%d out=%d\n", isatty(0), isatty(1));
	fflush(stdout);
	char line[128];
	if (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\r\n")] = 0;
		printf("got %s\n", line);
	}
	return 0;
}
