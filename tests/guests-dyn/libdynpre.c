/* Preloaded with LD_PRELOAD by tests/e2e/dynlink.sh: its dyn_who wins over libdynwho.so's, and
 * its constructor runs before the program's main. */
#include <stdio.h>

const char *dyn_who(void)
{
	return "libdynpre (preloaded)";
}

__attribute__((constructor)) static void announce(void)
{
	printf("libdynpre constructor ran\n");
	fflush(stdout);
}
