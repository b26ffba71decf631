/*
 * A container's linux.seccomp, turned into the rules km enforces on the program's syscalls
 * (docs/guest-seccomp.md: km's text format; km reads it with --guest-seccomp-fd). The host
 * kernel never applies these to km: km is not the container's program, its guest is.
 */
#ifndef SHIM_SECCOMP_H
#define SHIM_SECCOMP_H

#include "km_error.h"
#include "oci_config.h"

/* Writes sc as km's rule text into a new sealed memfd (close-on-exec; the caller places it for
 * km) and returns it in *memfd_out. Syscall names resolve to x86-64 numbers (libseccomp); a name
 * x86-64 does not have is skipped, as runc does. Refused with *err: an architectures list without
 * SCMP_ARCH_X86_64, SCMP_ACT_NOTIFY (no listener can be served), more than 6 argument conditions,
 * an errno above 4095. flags are accepted and ignored (docs/guest-seccomp.md says why). */
int shim_seccomp_compile(const oci_seccomp_t *sc, int *memfd_out, km_err_t **err);

/* The same text into a heap buffer (*text, *len; the caller frees): what the memfd holds. */
int shim_seccomp_text(const oci_seccomp_t *sc, char **text, size_t *len, km_err_t **err);

#endif
