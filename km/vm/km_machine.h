/*
 * The KVM virtual machine: /dev/kvm, the VM file descriptor, capabilities km depends on, guest
 * memory slots, and the CPUID/XSAVE features offered to vCPUs. Knows nothing about programs.
 */
#ifndef KM_MACHINE_H
#define KM_MACHINE_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#include "km_error.h"

typedef struct km_machine {
	int kvm_fd;
	int vm_fd;
	size_t run_size;          /* size of each vCPU's kvm_run mapping */
	struct kvm_cpuid2 *cpuid; /* what vCPUs are given (KVM's supported set, trimmed) */
	uint64_t xcr0;            /* XSAVE features enabled in the guest */
	uint32_t xsave_size;      /* bytes of the XSAVE image for xcr0 (standard layout) */
	int phys_bits;            /* guest-physical address width */
} km_machine_t;

/* Opens `dev` (normally /dev/kvm), or takes kvm_fd if it is >= 0 (already open and in km's fd
 * range; the machine owns it from now on), checks the KVM API and the capabilities km needs,
 * creates a VM. Errors say what is missing and how to fix it (permissions, module, nested
 * virtualisation). */
int km_machine_open(km_machine_t *m, const char *dev, int kvm_fd, km_err_t **err);

/* After a host fork, in the child: drops the parent's VM fd (a VM belongs to the process that made
 * it: its ioctls fail elsewhere) and creates a new VM on the same /dev/kvm fd. Capabilities and
 * CPUID were checked by the parent and are kept. No memory slots yet. */
int km_machine_new_vm(km_machine_t *m, km_err_t **err);

/* Registers host memory [host, host+size) as guest-physical [gpa, gpa+size) in memory slot `slot`. */
int km_machine_set_memory(km_machine_t *m, int slot, uint64_t gpa, uint64_t size, void *host, km_err_t **err);

/* The same with KVM_MEM_* flags (dirty logging: km_dirtylog.c); returns 0 or -errno. */
int km_machine_set_slot(km_machine_t *m, int slot, uint64_t gpa, uint64_t size, void *host, uint32_t flags);

/* Moves one of km's own fds to KM_FD_RESERVED_BASE or above (close-on-exec), out of the guest's
 * reach, closing the original. Returns the new fd, or -1 with errno set (the original is closed). */
int km_fd_reserve(int fd);

/* A thread of km that is not a vCPU (the management listener) makes fds between
 * km_fd_transient_begin and _end: each lands in the guest's range until km_fd_reserve moves it,
 * and a snapshot probing the guest's fds (between km_fd_scan_begin and _end, km_fdtab.h) must
 * not take it for one of the guest's. vCPU threads need neither: a snapshot stops them all. */
void km_fd_transient_begin(void);
void km_fd_transient_end(void);
void km_fd_scan_begin(void);
void km_fd_scan_end(void);
/* After a host fork, in the child (its only thread): forgets holders of the lock above that were
 * the parent's other threads. */
void km_fd_transient_reset(void);

/* Raises km's soft RLIMIT_NOFILE so that its reserved fds fit above the guest's range. */
void km_fd_limit_init(void);

/* Closes the VM and /dev/kvm; safe on a partly opened machine (fds set to -1 beforehand). */
void km_machine_close(km_machine_t *m);

#endif
