/*
 * km's guest runtime: the code that runs in the guest beside the program. Assembled to a flat
 * binary and loaded by km at KM_RT_GVA + KM_RT_CODE_OFF. Everything here is position
 * independent and touches no program memory: the syscall path uses no stack at all and the
 * exception path runs on the vCPU's IST stack, so the program's red zone survives both.
 */
#include "km_runtime_layout.h"

	.code64
	.text

/* `syscall` lands here (LSTAR) at CPL0 with rcx = return rip and r11 = rflags, as on Linux.
 * One `out` hands all registers to km through kvm_run sync regs; km writes rax and resumes. */
	.org KM_RT_SYSCALL_ENTRY
km_syscall_entry:
	out %al, $KM_PORT_SYSCALL
	jmp *%rcx

/* km sends a vCPU here after it narrowed a mapping: km has put the CR3 value in r11. Reloading
 * CR3 drops stale translations (hardware KVM caches them in the guest TLB); km then restores
 * rip and r11 on the KM_PORT_FLUSH exit. */
	.org KM_RT_FLUSH_ENTRY
km_flush_entry:
	mov %r11, %cr3
	out %al, $KM_PORT_FLUSH
	ud2

/* Exception stubs, one per vector, each KM_RT_EXC_STUB_SIZE bytes. A uniform frame (error code,
 * rip, cs, rflags, rsp, ss) sits on the IST stack when km sees the exit; km either ends the guest
 * with a signal or edits the frame, and the stub returns through it. */
.macro exc_stub vec, has_err
	.org KM_RT_EXC_STUBS + \vec * KM_RT_EXC_STUB_SIZE
	.if \has_err == 0
	pushq $0
	.endif
	out %al, $(KM_PORT_EXC_BASE + \vec)
	add $8, %rsp
	iretq
.endm

	exc_stub 0, 0
	exc_stub 1, 0
	exc_stub 2, 0
	exc_stub 3, 0
	exc_stub 4, 0
	exc_stub 5, 0
	exc_stub 6, 0
	exc_stub 7, 0
	exc_stub 8, 1
	exc_stub 9, 0
	exc_stub 10, 1
	exc_stub 11, 1
	exc_stub 12, 1
	exc_stub 13, 1
	exc_stub 14, 1
	exc_stub 15, 0
	exc_stub 16, 0
	exc_stub 17, 1
	exc_stub 18, 0
	exc_stub 19, 0
	exc_stub 20, 0
	exc_stub 21, 1
	exc_stub 22, 0
	exc_stub 23, 0
	exc_stub 24, 0
	exc_stub 25, 0
	exc_stub 26, 0
	exc_stub 27, 0
	exc_stub 28, 0
	exc_stub 29, 1
	exc_stub 30, 1
	exc_stub 31, 0
km_runtime_end:
	.org KM_RT_CODE_SIZE - 1
	.byte 0xcc
