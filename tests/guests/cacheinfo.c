/*
 * What the C library learned about the CPU's caches at start-up, as a program sees it: every
 * sysconf(_SC_LEVEL*_CACHE_*) and, in static glibc, the thresholds its string functions tune
 * themselves with (memcpy's non-temporal and rep-movsb switch-over points, derived from CPUID
 * leaves 2 and 4). The e2e harness compares the output natively and under km: km's CPUID table
 * (km/vm/km_machine.c) must leave glibc with the same cache geometry and the same memcpy
 * tuning (docs/performance.md, "issue 12, start-up"). musl answers 0 for the sysconf names and
 * has no thresholds; its lines are compared all the same.
 */
// E2E: run 0
#include <stdio.h>
#include <unistd.h>

#ifdef __GLIBC__
/* glibc's own (sysdeps/x86/cacheinfo.h), hidden but linkable in a static program; weak so that
 * a glibc without one of them still links (the line then says so). */
extern long int __x86_data_cache_size __attribute__((weak));
extern long int __x86_shared_cache_size __attribute__((weak));
extern long int __x86_shared_non_temporal_threshold __attribute__((weak));
extern long int __x86_rep_movsb_threshold __attribute__((weak));
extern long int __x86_rep_stosb_threshold __attribute__((weak));
extern long int __x86_rep_movsb_stop_threshold __attribute__((weak));

static void tuning(const char *name, const long int *v)
{
	if (v != NULL)
		printf("%s=%ld\n", name, *v);
	else
		printf("%s=absent\n", name);
}
#endif

int main(void)
{
#ifdef _SC_LEVEL1_ICACHE_SIZE
	static const struct {
		int name;
		const char *text;
	} names[] = {
	    {_SC_LEVEL1_ICACHE_SIZE, "L1i size"},     {_SC_LEVEL1_ICACHE_ASSOC, "L1i assoc"},
	    {_SC_LEVEL1_ICACHE_LINESIZE, "L1i line"}, {_SC_LEVEL1_DCACHE_SIZE, "L1d size"},
	    {_SC_LEVEL1_DCACHE_ASSOC, "L1d assoc"},   {_SC_LEVEL1_DCACHE_LINESIZE, "L1d line"},
	    {_SC_LEVEL2_CACHE_SIZE, "L2 size"},       {_SC_LEVEL2_CACHE_ASSOC, "L2 assoc"},
	    {_SC_LEVEL2_CACHE_LINESIZE, "L2 line"},   {_SC_LEVEL3_CACHE_SIZE, "L3 size"},
	    {_SC_LEVEL3_CACHE_ASSOC, "L3 assoc"},     {_SC_LEVEL3_CACHE_LINESIZE, "L3 line"},
	    {_SC_LEVEL4_CACHE_SIZE, "L4 size"},       {_SC_LEVEL4_CACHE_ASSOC, "L4 assoc"},
	    {_SC_LEVEL4_CACHE_LINESIZE, "L4 line"},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		printf("sysconf %s=%ld\n", names[i].text, sysconf(names[i].name));
#else
	printf("no sysconf names for caches in this C library\n");
#endif
#ifdef __GLIBC__
	tuning("data_cache_size", &__x86_data_cache_size);
	tuning("shared_cache_size", &__x86_shared_cache_size);
	tuning("non_temporal_threshold", &__x86_shared_non_temporal_threshold);
	tuning("rep_movsb_threshold", &__x86_rep_movsb_threshold);
	tuning("rep_stosb_threshold", &__x86_rep_stosb_threshold);
	tuning("rep_movsb_stop_threshold", &__x86_rep_movsb_stop_threshold);
#endif
	return 0;
}
