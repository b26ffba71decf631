/*
 * One guest: the program running in its own VM. Ties the machine (KVM), the address space, the
 * vCPUs and the process state (ids, program path, arguments, how it ended) together.
 */
#ifndef KM_GUEST_H
#define KM_GUEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "km_error.h"
#include "km_machine.h"
#include "km_mm.h"
#include "km_vcpu.h"

typedef struct km_guest_opts {
	uint64_t memory;    /* --memory, bytes */
	bool trace;         /* --trace */
	int trace_fd;       /* where --trace writes (stderr) */
	const char *kvm_dev;
} km_guest_opts_t;

typedef struct km_guest {
	km_guest_opts_t opts;
	km_machine_t machine;
	km_mm_t mm;
	km_vcpu_t *vcpus[KM_MAX_VCPUS];
	int nvcpus;

	pid_t pid;            /* process id the guest sees */
	char *exe_path;       /* absolute path of the program (readlink /proc/self/exe) */
	uint64_t entry;       /* program entry point */
	uint64_t auxv_gva;    /* where the auxiliary vector sits on the initial stack */
	size_t auxv_len;      /* its size in bytes */

	/* How the guest ended: exit_group status, or a fatal signal. */
	bool exited;
	int exit_status;
	int term_signal;
	uint64_t fault_rip, fault_addr;
} km_guest_t;

#endif
