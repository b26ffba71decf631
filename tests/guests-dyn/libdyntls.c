/*
 * A shared library for dyn_tls and dyn_snap (tests/e2e/dynlink.sh): thread-local variables of a
 * .so in both TLS models a program links against (initial-exec, reached through the static TLS
 * block; global-dynamic, through __tls_get_addr), and a function chosen by an IFUNC resolver
 * when the dynamic linker relocates the program.
 */
#include <stdint.h>

__thread long dyn_tls_gd = 100;                                        /* global-dynamic */
__thread long dyn_tls_ie __attribute__((tls_model("initial-exec"))) = 200; /* initial-exec */
__thread char dyn_tls_zero[64]; /* .tbss: must start zeroed in every thread */

long dyn_tls_bump(long by)
{
	dyn_tls_gd += by;
	dyn_tls_ie += 2 * by;
	return dyn_tls_gd + dyn_tls_ie;
}

long *dyn_tls_gd_addr(void)
{
	return &dyn_tls_gd;
}

int dyn_tls_zeroed(void)
{
	for (unsigned i = 0; i < sizeof(dyn_tls_zero); i++)
		if (dyn_tls_zero[i] != 0)
			return 0;
	dyn_tls_zero[7] = 1; /* the next thread must still see zeros */
	return 1;
}

/* IFUNC: the resolver runs inside ld.so during relocation, with the CPU's features. */
static int ifunc_seen;
static int mul_plain(int x) { return x * 3; }
static int mul_alt(int x) { return x + x + x; }
int dyn_ifunc_resolved(void) { return ifunc_seen; }

typedef int mul_fn(int);

static mul_fn *resolve_mul(void)
{
	ifunc_seen = 1;
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse2") ? mul_alt : mul_plain;
}

int dyn_mul3(int x) __attribute__((ifunc("resolve_mul")));
