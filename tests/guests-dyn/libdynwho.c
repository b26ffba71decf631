/* A shared library dyn_hello finds through LD_LIBRARY_PATH; libdynpre.so (LD_PRELOAD) overrides
 * its dyn_who (tests/e2e/dynlink.sh). */
const char *dyn_who(void)
{
	return "libdynwho";
}
