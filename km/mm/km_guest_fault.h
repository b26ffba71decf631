/*
 * Recovery from faults on guest memory that km itself touches through its host mapping.
 *
 * Guest memory the host cannot provide - a file mapping past the end of its file (SIGBUS), and
 * anything else the host refuses (SIGSEGV) - must cost the guest an EFAULT, as Linux's
 * copy_from_user/copy_to_user do, and never km its life. km's accesses to guest memory run
 * inside a guard: a per-thread recovery point (sigsetjmp) that km's SIGBUS/SIGSEGV handler jumps
 * back to when the faulting thread is inside a guard and the fault address lies in the guarded
 * range. Any other fault (a bug in km, a signal sent by kill) gets the action that was in place
 * before km's handler (the default: a crash with a core; or the sanitizer's report), so km's own
 * bugs still crash loudly.
 */
#ifndef KM_GUEST_FAULT_H
#define KM_GUEST_FAULT_H

#include <stdbool.h>
#include <stddef.h>

#include "km_error.h"

/* Installs km's SIGBUS and SIGSEGV handler once per process (later calls do nothing). Before it
 * is installed, a guarded access that faults kills km as an unguarded one would. */
int km_guest_fault_init(km_err_t **err);

/* Runs fn(arg) under a guard for host addresses [lo, lo+len): returns 0 when fn returned, or
 * -EFAULT when it faulted there (what fn had done so far stays done). fn must only touch memory:
 * no locks, no allocation, nothing that a jump out of it would leave half done. Guards nest. */
int km_guest_fault_run(const void *lo, size_t len, void (*fn)(void *), void *arg);

/* memcpy(dst, src, n) where one side is guest memory at host addresses [lo, lo+len): 0, or
 * -EFAULT when the host could not provide a page of it (the bytes before it are copied). */
int km_guest_memcpy(void *dst, const void *src, size_t n, const void *lo, size_t len);

/* Whether the n bytes at p are all zero, unguarded: for use inside km_guest_fault_run. */
bool km_mem_is_zero(const void *p, size_t n);

/* Sets *zero to whether the n bytes at p (guest memory) are all zero: 0, or -EFAULT when the host
 * could not provide them (*zero untouched). */
int km_guest_is_zero(const void *p, size_t n, bool *zero);

#endif
