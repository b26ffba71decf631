/*
 * The syscall layer: the guest's `syscall` exits to km with the number in rax and arguments in
 * rdi, rsi, rdx, r10, r8, r9; km_syscall_handle() runs the handler and puts the result in rax.
 *
 * Handlers live in one file per family (km_sys_file.c, km_sys_mem.c, ...). Each family exports a
 * table of km_sys_def_t ended by an entry with name == NULL. A handler returns the syscall's
 * result or -errno, exactly as the Linux syscall ABI does, and must check every guest pointer with
 * km_mm.h before use (EFAULT to the guest, never a fault in km).
 */
#ifndef KM_SYSCALL_H
#define KM_SYSCALL_H

#include <stdint.h>

struct km_vcpu;

typedef long (*km_sys_fn)(struct km_vcpu *v, const uint64_t *a);

typedef struct km_sys_def {
	int nr;           /* x86-64 syscall number (SYS_xxx) */
	const char *name; /* for --trace */
	km_sys_fn fn;
	/* --trace formats, one char per argument: d decimal, u unsigned, x hex, o octal, p pointer,
	 * s guest string, f fd (decimal); empty string for none. */
	const char *args;
} km_sys_def_t;

/* Family tables. */
extern const km_sys_def_t km_sys_file_defs[];
extern const km_sys_def_t km_sys_mem_defs[];
extern const km_sys_def_t km_sys_proc_defs[];
extern const km_sys_def_t km_sys_time_defs[];
extern const km_sys_def_t km_sys_net_defs[];
extern const km_sys_def_t km_sys_misc_defs[];
extern const km_sys_def_t km_sys_thread_defs[];
extern const km_sys_def_t km_sys_signal_defs[];
extern const km_sys_def_t km_sys_wait_defs[];
extern const km_sys_def_t km_sys_exec_defs[]; /* km/proc/km_exec.c */

/* Builds the dispatch table from the family tables (idempotent). */
void km_syscall_init(void);

/* Handles the syscall the vCPU stopped on: reads its registers from kvm_run sync regs, writes the
 * result to rax. Traces it when the guest runs with --trace. */
void km_syscall_handle(struct km_vcpu *v);

/* Runs syscall nr with arguments a for v's thread and returns its result (or -errno), traced as
 * km_syscall_handle traces. Touches no register of the vCPU: km's poll servers
 * (km_syscall_poll.h) call it on their own threads, for the calls they admit. */
long km_syscall_run(struct km_vcpu *v, uint64_t nr, const uint64_t a[6]);

/* The same for a call a poll server admitted while the guest had no seccomp filter: a filter
 * installed since (by another thread) is not applied to it, as Linux applies a new filter only
 * to calls made after it (the server's check and the run are not one step; the filter's
 * actions need the vCPU's own thread). */
long km_syscall_run_unfiltered(struct km_vcpu *v, uint64_t nr, const uint64_t a[6]);

/* Name of syscall nr, or NULL if km has no handler. */
const char *km_syscall_name(int nr);

/* Convenience for family files. */
#define KM_SYSCALL(name) static long sys_##name(struct km_vcpu *v __attribute__((unused)), \
						 const uint64_t *a __attribute__((unused)))

#endif
