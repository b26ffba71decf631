/* hello: the smallest container program. Prints who and where it is (hostname and working
 * directory come from config.json, so a wrong bundle setup shows in the output), then exits with
 * the status given as its first argument (default 0), so clients can check it passes through. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char host[256] = "?", cwd[4096] = "?";

	gethostname(host, sizeof(host) - 1);
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "?");
	printf("hello from %s (cwd %s, pid %d)\n", host, cwd, (int)getpid());
	return argc > 1 ? atoi(argv[1]) : 0;
}
