/*
 * The vDSO's data page (struct km_vdso_data), written by km (km/vm/km_vdso.c), read by the vDSO.
 *
 * A seqlock: km makes seq odd, rewrites, makes it even again; a reader retries while seq is odd
 * or changed under it. Each clock is a line through a TSC reading:
 *   ns(tsc) = clk[i].base_ns + ((tsc - tsc_base) * clk[i].mult) >> 32   (tsc < tsc_base: tsc_base)
 * km redraws the lines from the host's clocks every KM_VDSO_PERIOD_NS, each new line starting
 * where the old one stood (never a step back) and slewed to meet the host's clock again.
 * km's own clock_gettime uses the same lines, so the syscall and the vDSO agree exactly.
 * Without KM_VDSO_TSC (no usable TSC) the vDSO makes the real syscall.
 */
#ifndef KM_VDSO_DATA_H
#define KM_VDSO_DATA_H

#include <stdint.h>

#define KM_VDSO_TSC 1u    /* the guest's TSC is the host's: the lines may be used */
#define KM_VDSO_RDTSCP 2u /* rdtscp's TSC_AUX is the host's (cpu | node << 12): getcpu may use it */

/* The clocks the vDSO answers; the _COARSE ones read their fine clock. */
enum { KM_VCLK_REALTIME, KM_VCLK_MONOTONIC, KM_VCLK_BOOTTIME, KM_VCLK_MONOTONIC_RAW, KM_VCLK_N };

struct km_vdso_clock {
	uint64_t base_ns; /* the clock at tsc_base */
	uint64_t mult;    /* ns per TSC tick, 32.32 fixed point */
};

struct km_vdso_data {
	uint32_t seq;
	uint32_t flags;  /* KM_VDSO_* */
	uint64_t tsc_base;
	struct km_vdso_clock clk[KM_VCLK_N];
	uint64_t hres_ns, coarse_ns; /* clock_getres of the fine and the _COARSE clocks */
};

/* The TSC, after every earlier load and before every later one (so a reader's TSC falls inside
 * the seqlock window it checked, and the writer's tsc_base after its seq became odd). */
static inline uint64_t km_vdso_rdtsc(void)
{
	uint32_t lo, hi;
	__asm__ volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return (uint64_t)hi << 32 | lo;
}

/* Clock i on line c at TSC tsc (never before the line's start). */
static inline uint64_t km_vdso_line(uint64_t tsc_base, const struct km_vdso_clock *c, uint64_t tsc)
{
	uint64_t delta = tsc > tsc_base ? tsc - tsc_base : 0;
	return c->base_ns + (uint64_t)(((unsigned __int128)delta * c->mult) >> 32);
}

/* Reads clock i (KM_VCLK_*) from the page into *ns; 0 when the lines may not be used. The one
 * reader both the vDSO and km's clock_gettime use. */
static inline int km_vdso_read(const volatile struct km_vdso_data *d, int i, uint64_t *ns)
{
	uint32_t seq;
	struct km_vdso_clock c;
	uint64_t tb, tsc;
	do {
		while ((seq = __atomic_load_n(&d->seq, __ATOMIC_ACQUIRE)) & 1)
			__builtin_ia32_pause();
		if (!(d->flags & KM_VDSO_TSC))
			return 0;
		tb = d->tsc_base;
		c.base_ns = d->clk[i].base_ns;
		c.mult = d->clk[i].mult;
		tsc = km_vdso_rdtsc();
	} while (__atomic_load_n(&d->seq, __ATOMIC_ACQUIRE) != seq);
	*ns = km_vdso_line(tb, &c, tsc);
	return 1;
}

#endif
