/* The vDSO's entry points at the fixed offsets of km_vdso_layout.h: a resumed program calls the
 * addresses its libc cached, whatever code this km's vDSO has behind them. */
#include "km_vdso_layout.h"

	.section .km_vdso_entries, "ax", @progbits
	.balign 16

#define ENTRY(name, impl, off)			\
	.org off - KM_VDSO_ENTRY_BASE;		\
	.globl name;				\
	.type name, @function;			\
name:	jmp impl;				\
	.size name, . - name

ENTRY(__vdso_clock_gettime, km_vdso_clock_gettime, KM_VDSO_ENTRY_CLOCK_GETTIME)
ENTRY(__vdso_gettimeofday, km_vdso_gettimeofday, KM_VDSO_ENTRY_GETTIMEOFDAY)
ENTRY(__vdso_time, km_vdso_time, KM_VDSO_ENTRY_TIME)
ENTRY(__vdso_getcpu, km_vdso_getcpu, KM_VDSO_ENTRY_GETCPU)
ENTRY(__vdso_clock_getres, km_vdso_clock_getres, KM_VDSO_ENTRY_CLOCK_GETRES)
	.org 0x50

/* The plain names, as Linux's vDSO has them (weak, like Linux's). */
	.weak clock_gettime, gettimeofday, time, getcpu, clock_getres
	.set clock_gettime, __vdso_clock_gettime
	.set gettimeofday, __vdso_gettimeofday
	.set time, __vdso_time
	.set getcpu, __vdso_getcpu
	.set clock_getres, __vdso_clock_getres

	.section .note.GNU-stack, "", @progbits
