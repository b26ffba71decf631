/* Dynamically linked against libdynwho.so (found through LD_LIBRARY_PATH, no rpath): prints who
 * answered, so that LD_PRELOAD of libdynpre.so shows (tests/e2e/dynlink.sh). */
#include <stdio.h>

const char *dyn_who(void);

int main(int argc, char **argv)
{
	printf("hello from %s, %d argument(s)\n", dyn_who(), argc - 1);
	for (int i = 1; i < argc; i++)
		printf("  %s\n", argv[i]);
	return 0;
}
