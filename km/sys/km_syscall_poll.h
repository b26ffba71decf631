/*
 * The exitless syscall path (--syscall-path=poll|auto; docs/architecture.md, "Syscall paths").
 *
 * Each vCPU's LSTAR is its own poll stub (runtime/km_runtime.S), which writes the call into the
 * vCPU's slot and spins; a km "syscall server" thread per vCPU spins on that slot, copies the
 * request once into its own memory, runs it if it is on the allowlist (calls that need nothing
 * of the vCPU's host thread and never stop other vCPUs) and answers in the slot: no VM exit.
 * Everything else takes the exit path (the stub's int3), as do calls a server refuses, calls
 * nobody took in time, and servers that sleep.
 *
 * Exactness: an ownership word (km-private) lets either the server or the vCPU's own thread
 * handle a syscall of the vCPU, never both. A served call whose result needs the vCPU thread
 * (a kick interrupted it, a stop or a signal is pending, the guest ended, TLB generation
 * changed) is handed back: the vCPU thread finishes it exactly as the exit path finishes its own
 * (km_exception.c). Kicks (km_vcpu_kick) reach a server running a handler too.
 */
#ifndef KM_SYSCALL_POLL_H
#define KM_SYSCALL_POLL_H

#include <stdbool.h>
#include <stdint.h>

struct km_vcpu;
struct km_guest;

/* --syscall-path */
enum km_syscall_path { KM_SYSCALL_PATH_AUTO, KM_SYSCALL_PATH_EXIT, KM_SYSCALL_PATH_POLL };

/* Parses "auto", "exit" or "poll"; -1 for anything else. */
int km_syscall_path_parse(const char *s);

/* Whether g's vCPUs take the poll path: `poll`, or `auto` on a host with more than one online
 * CPU. Decides each vCPU's LSTAR. */
bool km_poll_enabled(const struct km_guest *g);

/* A syscall a server handed back to the vCPU thread: its number, result, and whether a kick
 * of km's interrupted it. */
typedef struct km_poll_handback {
	uint64_t nr;
	long ret;
	bool kicked;
} km_poll_handback_t;

/* On the vCPU's own thread at a syscall exit (either int3 of any stub, or the exit path's entry):
 * waits until no server runs a syscall of v. True with *hb if a server handed one back (that is
 * the syscall to finish now, whatever the registers say); false if none, and the vCPU thread
 * then owns v's syscalls. Either way km_poll_release ends the ownership. */
bool km_poll_claim(struct km_vcpu *v, km_poll_handback_t *hb);
void km_poll_release(struct km_vcpu *v);

/* After the vCPU thread made a syscall on the exit path: starts v's server on first use, wakes
 * it if it sleeps (and spinning servers are below the cap). Counts the exit-path call. */
void km_poll_after_exit(struct km_vcpu *v);

/* Interrupts a handler v's server runs (its host syscall sees EINTR); part of km_vcpu_kick. */
void km_poll_kick(struct km_vcpu *v);

/* A reused vCPU (new thread): a result left for its old thread is dropped. */
void km_poll_vcpu_reset(struct km_vcpu *v);

/* Stops and joins v's server (teardown); safe when it has none. */
void km_poll_destroy(struct km_vcpu *v);

/* Stops and joins the servers of every vCPU of g (before g's state goes away). */
void km_poll_stop_all(struct km_guest *g);

/* After a host fork, in the child: forgets v's server (its thread is the parent's). */
void km_poll_forget(struct km_vcpu *v);

/* KM_TIMING=1: prints "km-timing: syscalls_served=N syscalls_exit=M" to fd. */
void km_poll_print_timing(int fd);

#endif
