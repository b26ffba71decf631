/*
 * The container process's own settings, applied in the child (after pivot_root unless said):
 * hostname/domainname, sysctl, rlimits, umask, groups/gid/uid, capabilities, no_new_privs, cwd,
 * and the program's path. Capabilities use the raw capget/capset/prctl syscalls and the name
 * table below (no libcap). Things the host forbids but that have a safe lesser form (a hard
 * rlimit above ours, a capability our root does not hold) are lowered with a warning through
 * `warn`, naming the field; everything else is an error naming the field.
 */
#ifndef SHIM_PROCESS_H
#define SHIM_PROCESS_H

#include <stdint.h>

#include "km_error.h"
#include "oci_config.h"

/* Receives one warning line (no trailing newline). */
typedef void (*shim_warn_fn)(void *arg, const char *msg);

/* The bit mask of a NULL-terminated name list; `what` names the field in errors. */
int shim_caps_mask(char *const *names, const char *what, uint64_t *mask, km_err_t **err);

/* /proc/sys/kernel/cap_last_cap (CAP_LAST_CAP of the headers if unreadable). */
int shim_cap_last(void);

/* Whether linux.sysctl key `key` may be set given the config's namespaces: net.* needs a network
 * namespace, the IPC keys (kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*) an IPC namespace,
 * kernel.hostname/domainname a UTS namespace; nothing else. NULL if allowed, else why. */
const char *shim_sysctl_refusal(const oci_config_t *cfg, const char *key);

/* hostname, domainname, linux.sysctl (needs the container's /proc). */
int shim_process_uts_sysctl(const oci_config_t *cfg, km_err_t **err);

/* process.rlimits; a hard limit above the current one that cannot be raised (no
 * CAP_SYS_RESOURCE) is lowered to the current hard limit with a warning. */
int shim_process_rlimits(const oci_process_t *p, shim_warn_fn warn, void *arg, km_err_t **err);

/* Makes process.cwd if missing (as root, before the user switch, as runc does). */
int shim_process_mkcwd(const oci_process_t *p, km_err_t **err);

/* Bounding set, groups, gid, uid, effective/permitted/inheritable, ambient, no_new_privs, umask,
 * then chdir(cwd): everything that changes who the process is, in the order that keeps the
 * privileges each step needs. */
int shim_process_become(const oci_process_t *p, shim_warn_fn warn, void *arg, km_err_t **err);

/* process.args[0] as km must open it: as given if it has a '/', else found through PATH of
 * process.env (runc's default PATH if none). Caller frees. */
char *shim_process_program(const oci_process_t *p, km_err_t **err);

#endif
