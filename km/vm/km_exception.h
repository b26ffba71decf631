/*
 * CPU exceptions raised by guest code. Until guest signal handlers exist, each becomes the Linux
 * signal the kernel would send, with its default action: the guest ends as killed by it.
 */
#ifndef KM_EXCEPTION_H
#define KM_EXCEPTION_H

#include <stdint.h>

#include "km_vcpu.h"

/* Handles the exception `vector` the vCPU exited on (its frame on the IST stack). Returns 1 to
 * resume the vCPU, 0 when the guest has ended (km_guest_t says how). */
int km_exception_handle(km_vcpu_t *v, int vector);

/* The program's registers rewound to make the syscall being handled again (rip at the syscall
 * instruction, rax its number): where a vCPU parks if it must stop before the call has done
 * anything. */
struct kvm_regs km_syscall_restart_regs(const km_vcpu_t *v);

/* On the way back to the program with registers *u (a clean point, cpu_flags KM_CPU_*): a stop
 * in progress parks the vCPU, and pending signals are delivered (*u may become a handler's
 * entry; the caller loads it). True if the guest ended. */
bool km_return_point(km_vcpu_t *v, struct kvm_regs *u, uint64_t cpu_flags);

/* Ends the guest as killed by `sig` at rip with fault address `addr`. */
void km_guest_kill(km_vcpu_t *v, int sig, uint64_t rip, uint64_t addr);

#endif
