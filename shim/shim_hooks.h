/*
 * OCI hooks (shim_hooks_run is declared in shim_container.h). Each hook is fork+exec'd with its
 * args and env (none beyond its own: the spec's env is the whole environment), the state JSON
 * on stdin, stdout/stderr inherited. A hook with a timeout that outlives it is killed (SIGKILL)
 * and the run fails naming it. startContainer hooks (pid > 0) join the container's namespaces
 * through /proc/<pid>/ns/<kind> (user first, then mnt last so the others are still reachable) before
 * exec; the others run in the caller's namespaces (createContainer's caller is the container
 * child itself, before pivot_root).
 */
#ifndef SHIM_HOOKS_H
#define SHIM_HOOKS_H

#include <sys/types.h>

#include "km_error.h"
#include "oci_config.h"
#include "oci_state.h"

/* The one state document every hook reads on stdin (the runtime-spec's state): ociVersion (the
 * config's), id, status, pid (km's host pid; absent once `status` is stopped, as runc omits it),
 * bundle and the config's annotations (always, {} if none). NULL on allocation failure (or a
 * string that is not UTF-8). Caller frees. */
char *shim_hooks_state_json(const oci_config_t *cfg, const char *id, oci_status_t status, pid_t pid,
			    const char *bundle);

/* "prestart", "createRuntime", ... (the spec's spelling). */
const char *shim_hook_kind_name(oci_hook_kind_t kind);

#endif
