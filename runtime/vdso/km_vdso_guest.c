/*
 * The guest's vDSO: clock_gettime, gettimeofday, time, getcpu and clock_getres answered from km's
 * data page (km_vdso_data.h) without leaving the VM, or by the real syscall when the page says
 * the TSC may not be used or the clock is not one of its own. Built freestanding, position
 * independent, with no relocations: the data page is reached rip-relative.
 */
#include <stdint.h>

#include "km_vdso_data.h"

/* The Linux ABI's types and numbers, spelled out: the vDSO includes no libc header. */
struct k_timespec {
	int64_t tv_sec, tv_nsec;
};
struct k_timeval {
	int64_t tv_sec, tv_usec;
};
struct k_timezone {
	int tz_minuteswest, tz_dsttime;
};
#define K_CLOCK_REALTIME 0
#define K_CLOCK_MONOTONIC 1
#define K_CLOCK_MONOTONIC_RAW 4
#define K_CLOCK_REALTIME_COARSE 5
#define K_CLOCK_MONOTONIC_COARSE 6
#define K_CLOCK_BOOTTIME 7
#define K_SYS_gettimeofday 96
#define K_SYS_time 201
#define K_SYS_clock_gettime 228
#define K_SYS_clock_getres 229
#define K_SYS_getcpu 309
#define NS 1000000000ull

extern const volatile struct km_vdso_data km_vdso_data __attribute__((visibility("hidden")));

static long sys2(long nr, long a, long b)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b) : "rcx", "r11", "memory");
	return ret;
}

static long sys3(long nr, long a, long b, long c)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}

/* The line a clock id reads, or -1 for clocks only the kernel answers. */
static int line_of(long clk)
{
	switch (clk) {
	case K_CLOCK_REALTIME:
	case K_CLOCK_REALTIME_COARSE:
		return KM_VCLK_REALTIME;
	case K_CLOCK_MONOTONIC:
	case K_CLOCK_MONOTONIC_COARSE:
		return KM_VCLK_MONOTONIC;
	case K_CLOCK_BOOTTIME:
		return KM_VCLK_BOOTTIME;
	case K_CLOCK_MONOTONIC_RAW:
		return KM_VCLK_MONOTONIC_RAW;
	default:
		return -1;
	}
}

int km_vdso_clock_gettime(long clk, struct k_timespec *ts)
{
	uint64_t ns;
	int i = line_of(clk);
	if (i < 0 || !km_vdso_read(&km_vdso_data, i, &ns))
		return (int)sys2(K_SYS_clock_gettime, clk, (long)ts);
	ts->tv_sec = (int64_t)(ns / NS);
	ts->tv_nsec = (int64_t)(ns % NS);
	return 0;
}

int km_vdso_gettimeofday(struct k_timeval *tv, struct k_timezone *tz)
{
	uint64_t ns;
	if (!km_vdso_read(&km_vdso_data, KM_VCLK_REALTIME, &ns))
		return (int)sys2(K_SYS_gettimeofday, (long)tv, (long)tz);
	if (tv != 0) {
		tv->tv_sec = (int64_t)(ns / NS);
		tv->tv_usec = (int64_t)(ns % NS / 1000);
	}
	if (tz != 0) { /* as km's syscall answers: UTC, no DST */
		tz->tz_minuteswest = 0;
		tz->tz_dsttime = 0;
	}
	return 0;
}

int64_t km_vdso_time(int64_t *t)
{
	uint64_t ns;
	if (!km_vdso_read(&km_vdso_data, KM_VCLK_REALTIME, &ns))
		return sys2(K_SYS_time, (long)t, 0);
	int64_t s = (int64_t)(ns / NS);
	if (t != 0)
		*t = s;
	return s;
}

int km_vdso_getcpu(unsigned *cpu, unsigned *node, void *unused)
{
	if (!(km_vdso_data.flags & KM_VDSO_RDTSCP))
		return (int)sys3(K_SYS_getcpu, (long)cpu, (long)node, (long)unused);
	uint32_t aux;
	__asm__ volatile("rdtscp" : "=c"(aux) : : "rax", "rdx");
	if (cpu != 0)
		*cpu = aux & 0xfff;
	if (node != 0)
		*node = aux >> 12;
	return 0;
}

int km_vdso_clock_getres(long clk, struct k_timespec *res)
{
	int i = line_of(clk);
	if (i < 0 || !(km_vdso_data.flags & KM_VDSO_TSC))
		return (int)sys2(K_SYS_clock_getres, clk, (long)res);
	uint64_t ns = clk == K_CLOCK_REALTIME_COARSE || clk == K_CLOCK_MONOTONIC_COARSE ? km_vdso_data.coarse_ns
											 : km_vdso_data.hres_ns;
	if (res != 0) {
		res->tv_sec = (int64_t)(ns / NS);
		res->tv_nsec = (int64_t)(ns % NS);
	}
	return 0;
}
