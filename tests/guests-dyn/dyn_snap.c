/*
 * A dynamically linked program snapshotted and resumed (tests/e2e/dynlink.sh): library code,
 * library TLS and a dlopen'd plugin must work the same after the resume. Run natively the
 * snapshot hypercall returns -ENOSYS and it goes on as if resumed, so both runs print the same.
 * argv[1]: the plugin's path.
 */
#include <dlfcn.h>

#include "../guests/check.h"
#include "km_hcall.h"

extern __thread long dyn_tls_gd;
long dyn_tls_bump(long by);
int dyn_mul3(int x);

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	void *h = dlopen(argv[1], RTLD_NOW);
	long (*f)(long) = h != NULL ? (long (*)(long))dlsym(h, "plug_sum") : NULL;
	CHECK(f != NULL, "plugin opened before the snapshot");
	if (f == NULL)
		return check_done();
	dyn_tls_bump(1);
	f(1);
	printf("before snapshot\n");
	fflush(stdout);
	long r = km_snapshot("dyn_snap", 0);
	CHECK(r == KM_SNAPSHOT_RESUMED || r == -ENOSYS, "resumed (or native)");
	CHECK(dyn_tls_gd == 101 && dyn_tls_bump(1) == 102 + 204, "library TLS kept across the snapshot");
	CHECK(dyn_mul3(5) == 15, "IFUNC target kept across the snapshot");
	CHECK(f(1) == 9 + 10, "plugin code and TLS kept across the snapshot");
	void *h2 = dlopen(argv[1], RTLD_NOW | RTLD_NOLOAD);
	CHECK(h2 == h, "the plugin is still known to the dynamic linker");
	return check_done();
}
