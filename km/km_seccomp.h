/*
 * km confines itself with a seccomp allow-list (km/gen/km_seccomp_gen.c, BPF made at build time) of the host syscalls it needs: its
 * own work (KVM, memory, threads and kicks, snapshots, cores, the management socket, messages)
 * and the host calls the guest-syscall handlers forward. Anything else makes the kernel send
 * SIGSYS, and km stops with one line
 *   km: seccomp: km made host syscall NAME (N), which its filter forbids; stopping
 * and exit status 159 (128 + SIGSYS). What is allowed and why: docs/decisions.md.
 */
#ifndef KM_SECCOMP_H
#define KM_SECCOMP_H

#include "km_error.h"

/* km's exit status after a forbidden syscall. */
#define KM_SECCOMP_EXIT 159

/* Installs the SIGSYS reporter and the filter on every thread of km (TSYNC). Call once, after the
 * guest is loaded or restored and km's own threads are started, before the guest's first
 * instruction. Every km thread must leave SIGSYS unblocked: the kernel kills a process whose
 * thread blocks it silently, without the line. Returns 0, or -1 with *err. */
int km_seccomp_install(km_err_t **err);

/* Only the SIGSYS reporter (km_seccomp_install installs it too): a km started by an execve of
 * km (km_exec_state.h) runs under the filter of the km before from its first instruction, and
 * exec reset that km's handler. 0 or -1 with *err. */
int km_seccomp_reporter(km_err_t **err);

/* Test hook (KM_TEST_SECCOMP_PROBE): makes km itself call the forbidden host syscall `probe`
 * names ("ptrace", "execve", "process_vm_readv", "mprotect-exec", "mmap-exec", "thread-ptrace":
 * ptrace from a new thread), in a way that is harmless when no filter is installed. NULL does nothing. Returns 0, or -1 with *err for an
 * unknown name. */
int km_seccomp_probe(const char *probe, km_err_t **err);

#endif
