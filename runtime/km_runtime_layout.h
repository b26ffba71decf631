/*
 * Layout of km's runtime region, shared by the C side (km/) and the assembly stubs (runtime/).
 *
 * The runtime region sits at guest-physical 0 and is mapped into the guest at KM_RT_GVA, in the
 * upper canonical half, so the program's whole lower-half address space stays its own, as on
 * Linux. A restored snapshot gets this region fresh from the restoring km, never from the file.
 *
 *   +0x00000  IDT (256 gates, shared by every vCPU, read-only to the guest)
 *   +0x01000  code: syscall entry, TLB-flush stub, exception stubs (read/exec)
 *   +0x10000  per-vCPU areas, KM_RT_VCPU_SIZE each: GDT page, TSS page, IST exception stack
 */
#ifndef KM_RUNTIME_LAYOUT_H
#define KM_RUNTIME_LAYOUT_H

#define KM_RT_GVA 0xffff800000000000
#define KM_RT_GPA 0x0
#define KM_RT_SIZE 0x1000000 /* 16 MiB of guest-physical space reserved for the runtime */

#define KM_RT_IDT_OFF 0x0
#define KM_RT_CODE_OFF 0x1000
#define KM_RT_CODE_SIZE 0x2000

/* Offsets inside the code blob (the blob is loaded at KM_RT_CODE_OFF). */
#define KM_RT_SYSCALL_ENTRY 0x0   /* LSTAR points here */
#define KM_RT_FLUSH_ENTRY 0x40    /* reloads CR3 from %r11, then exits to km to restore state */
#define KM_RT_EXC_STUBS 0x100     /* exception stub for vector v at KM_RT_EXC_STUBS + v * 32 */
#define KM_RT_EXC_STUB_SIZE 32

#define KM_RT_VCPU_OFF 0x10000
#define KM_RT_VCPU_SIZE 0x8000
#define KM_RT_VCPU_GDT 0x0
#define KM_RT_VCPU_TSS 0x1000
#define KM_RT_VCPU_STACK_TOP 0x8000 /* IST1 stack: pages +0x2000 .. +0x8000 */
#define KM_MAX_VCPUS 256

/* I/O ports the stubs write to; each `out` is one VM exit that km decodes by port. */
#define KM_PORT_SYSCALL 0x10
#define KM_PORT_FLUSH 0x11
#define KM_PORT_EXC_BASE 0x20 /* 0x20 + vector, vectors 0..31 */

/* GDT selectors */
#define KM_SEL_CODE 0x08
#define KM_SEL_DATA 0x10
#define KM_SEL_TSS 0x18

#endif
