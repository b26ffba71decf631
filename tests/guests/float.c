/*
 * Floating point and vector state: printf of known values, libm (sqrt, sin, exp, log, pow),
 * a loop of double arithmetic with an exactly known result, SSE/AVX through large memcpy/strlen
 * and explicit AVX code (when the CPU offers it), and vector registers preserved across
 * syscalls. Printed values are identical natively and under km for the same binary.
 */
// E2E: run 0
#include <math.h>
#include <stdint.h>
#include <sys/syscall.h>

#include "check.h"

typedef double v4d __attribute__((vector_size(32)));

static volatile double vtwo = 2.0, vhalf = 0.5, vone = 1.0;

static int snprint_eq(const char *fmt, double d, const char *want)
{
	char buf[64];

	snprintf(buf, sizeof(buf), fmt, d);
	if (strcmp(buf, want) != 0) {
		printf("  %s of %a gave \"%s\", wanted \"%s\"\n", fmt, d, buf, want);
		return 0;
	}
	return 1;
}

__attribute__((target("avx"))) static double avx_dot(const double *a, const double *b, int n)
{
	v4d acc = {0, 0, 0, 0};
	int i;

	for (i = 0; i < n; i += 4) {
		v4d x, y;
		memcpy(&x, a + i, sizeof(x));
		memcpy(&y, b + i, sizeof(y));
		acc += x * y;
	}
	return acc[0] + acc[1] + acc[2] + acc[3];
}

static double scalar_dot(const double *a, const double *b, int n)
{
	double acc[4] = {0, 0, 0, 0};
	int i;

	for (i = 0; i < n; i++)
		acc[i % 4] += a[i] * b[i];
	return acc[0] + acc[1] + acc[2] + acc[3];
}

/* Loads xmm/ymm registers, makes a syscall, checks they survived. */
static int regs_survive_syscall(int use_avx)
{
	static double in[4] __attribute__((aligned(32))) = {1.5, -2.25, 3.125, 1e300};
	static double out[4] __attribute__((aligned(32)));
	long pid = 0;

	memset(out, 0, sizeof(out));
	if (use_avx) {
		__asm__ volatile("vmovapd (%1), %%ymm9\n\t"
				 "mov $39, %%eax\n\t" /* getpid */
				 "syscall\n\t"
				 "vmovapd %%ymm9, (%2)\n\t"
				 "vzeroupper"
				 : "=&a"(pid)
				 : "r"(in), "r"(out)
				 : "rcx", "r11", "xmm9", "memory");
	} else {
		__asm__ volatile("movapd (%1), %%xmm9\n\t"
				 "movapd 16(%1), %%xmm10\n\t"
				 "mov $39, %%eax\n\t"
				 "syscall\n\t"
				 "movapd %%xmm9, (%2)\n\t"
				 "movapd %%xmm10, 16(%2)"
				 : "=&a"(pid)
				 : "r"(in), "r"(out)
				 : "rcx", "r11", "xmm9", "xmm10", "memory");
	}
	return pid > 0 && memcmp(in, out, sizeof(in)) == 0;
}

/* Same for a zmm register (AVX-512), including one of the upper 16 registers. */
__attribute__((target("avx512f"), noinline)) static int zmm_survive_syscall(void)
{
	static double in[8] __attribute__((aligned(64))) = {1, 2, 3, 4, 5, 6, 7, 8.5};
	static double out[8] __attribute__((aligned(64))), out2[8] __attribute__((aligned(64)));
	long pid = 0;

	__asm__ volatile("vmovapd (%1), %%zmm9\n\t"
			 "vmovapd (%1), %%zmm25\n\t"
			 "mov $39, %%eax\n\t"
			 "syscall\n\t"
			 "vmovapd %%zmm9, (%2)\n\t"
			 "vmovapd %%zmm25, (%3)\n\t"
			 "vzeroupper"
			 : "=&a"(pid)
			 : "r"(in), "r"(out), "r"(out2)
			 : "rcx", "r11", "xmm9", "xmm25", "memory");
	return pid > 0 && memcmp(in, out, sizeof(in)) == 0 && memcmp(in, out2, sizeof(in)) == 0;
}

int main(void)
{
	double sum = 0, x;
	int i, ok, avx;
	size_t n = 8 << 20;
	char *a, *b;
	static double va[1024], vb[1024];

	CHECK(snprint_eq("%f", 3.140625, "3.140625"), "printf %%f of 3.140625");
	CHECK(snprint_eq("%.3f", -0.0005, "-0.001") || snprint_eq("%.3f", -0.0005, "-0.000"), "printf %%.3f rounding");
	CHECK(snprint_eq("%g", 1e-5, "1e-05"), "printf %%g of 1e-5");
	CHECK(snprint_eq("%g", 123456789.0, "1.23457e+08"), "printf %%g of 123456789");
	CHECK(snprint_eq("%.17g", 0.1, "0.10000000000000001"), "printf %%.17g of 0.1");
	CHECK(snprint_eq("%e", 6.02214076e23, "6.022141e+23"), "printf %%e of Avogadro");
	CHECK(snprint_eq("%a", 1.0, "0x1p+0"), "printf %%a of 1.0");
	CHECK(snprint_eq("%f", 1.0 / 0.0, "inf"), "printf of infinity");
	CHECK(snprint_eq("%f", -NAN, "-nan") || snprint_eq("%f", -NAN, "nan") , "printf of NaN");
	CHECK(strtod("2.5e-3", NULL) == 0.0025, "strtod");
	printf("values: %f %g %.10f %.3e\n", 2.0 / 3.0, 1.0 / 3.0, M_PI, 12345.678);

	CHECK(sqrt(vtwo) * sqrt(vtwo) - 2.0 < 1e-15, "sqrt(2)^2 == 2 within 1e-15");
	CHECK(sqrt(16.0 * vone) == 4.0, "sqrt(16) == 4 exactly");
	CHECK(fabs(sin(vhalf) - 0.479425538604203) < 1e-15, "sin(0.5)");
	CHECK(fabs(cos(M_PI * vone) + 1.0) < 1e-15, "cos(pi) == -1");
	CHECK(fabs(exp(vone) - M_E) < 1e-15, "exp(1) == e");
	CHECK(fabs(log(M_E * vone) - 1.0) < 1e-15, "log(e) == 1");
	CHECK(pow(vtwo, 10.0) == 1024.0, "pow(2, 10) == 1024 exactly");
	CHECK(fabs(atan2(vone, vone) - M_PI / 4) < 1e-15, "atan2(1, 1) == pi/4");
	printf("libm: %.15f %.15f %.15f\n", sin(vhalf), exp(vone), log(10.0 * vone));

	/* Exactly representable partial sums: sum of i/8 for i < 100000 = 99999*100000/16. */
	for (i = 0; i < 100000; i++)
		sum += i * 0.125;
	CHECK(sum == 624993750.0, "sum of i/8 over 100000 terms is exact");
	x = 1.0;
	for (i = 0; i < 1000; i++)
		x = x * 1.5 / 1.5 + 0.0;
	CHECK(x == 1.0, "x*1.5/1.5 round trips 1000 times");
	x = vone;
	for (i = 0; i < 52; i++)
		x /= 2;
	CHECK(1.0 + x != 1.0 && 1.0 + x / 2 == 1.0, "DBL_EPSILON behaves");
	CHECK(fabs(fmod(10.0 * vone, 3.0) - 1.0) == 0, "fmod(10, 3) == 1");
	CHECK(lrint(2.5 * vone) == 2 && lrint(3.5 * vone) == 4, "round-to-nearest-even mode");
	CHECK((long long)(1e18 * vone) == 1000000000000000000LL, "double -> long long conversion");

	/* Big buffers: glibc/musl use SSE/AVX string functions on these. */
	a = malloc(n + 64);
	b = malloc(n + 64);
	ok = a && b;
	if (ok) {
		for (i = 0; i < (int)n; i++)
			a[i] = (char)(1 + i % 251);
		a[n] = 0;
		memcpy(b + 3, a, n + 1);
		ok = memcmp(b + 3, a, n + 1) == 0 && strlen(a) == n && strlen(b + 3) == n;
		b[3 + n / 2] = 0;
		ok &= strlen(b + 3) == n / 2;
		memset(b, 'z', n);
		ok &= memchr(b, 'y', n) == NULL && b[n - 1] == 'z';
		memmove(a + 1, a, n - 1);
		ok &= a[1] == 1 && a[n - 1] == (char)(1 + (n - 2) % 251);
	}
	CHECK(ok, "memcpy/memcmp/strlen/memset/memmove on 8 MiB buffers");
	free(a);
	free(b);

	for (i = 0; i < 1024; i++) {
		va[i] = i * 0.5;
		vb[i] = (1024 - i) * 0.25;
	}
	__builtin_cpu_init();
	avx = __builtin_cpu_supports("avx");
	/* Same text whether or not AVX is used, so native and km output match. */
	CHECK(scalar_dot(va, vb, 1024) == 22369600.0, "scalar dot product exact");
	CHECK((avx ? avx_dot(va, vb, 1024) : scalar_dot(va, vb, 1024)) == 22369600.0, "AVX dot product exact (if AVX)");
	CHECK(regs_survive_syscall(0), "xmm registers survive a syscall");
	CHECK(avx ? regs_survive_syscall(1) : 1, "ymm registers survive a syscall (if AVX)");
	CHECK(__builtin_cpu_supports("avx512f") ? zmm_survive_syscall() : 1,
	      "zmm registers (incl. zmm25) survive a syscall (if AVX-512)");
	return check_done();
}
