/*
 * The container around km: namespaces, id maps, cgroups, mounts, pivot_root, devices, hostname,
 * rlimits, user, capabilities, no_new_privs, console, hooks; then exec of km inside it.
 *
 * shim_container_spawn() is the only entry point the command layer uses to make a container
 * process. The child becomes km (execveat of an fd opened before pivot_root: km is linked
 * statically, so nothing of the host's filesystem is needed after pivot_root). /dev/kvm, the
 * management socket, the start fifo and (for restore) the snapshot file are likewise opened by
 * km-shim before the child enters the container and passed to km as descriptors:
 *   km --kvm-fd=N --mgmt-fd=N --start-fd=N --ready-fd=N [--guest-seccomp-fd=N] [--memory=SIZE]
 *      [--snapshot-fd=N | program args...]
 * (docs/cli.md). Descriptors km does not need are closed before exec; the guest sees 0-2 (and
 * --preserve-fds) only.
 */
#ifndef SHIM_CONTAINER_H
#define SHIM_CONTAINER_H

#include <stdbool.h>
#include <sys/types.h>

#include "km_error.h"
#include "oci_config.h"

#define SHIM_MAX_PARENTS 64 /* km's deepest chain (KM_LAYERS_MAX_DEPTH) */

typedef struct shim_spawn {
	const oci_config_t *cfg;
	const char *id;
	const char *bundle; /* absolute */
	const char *state_dir; /* <root>/<id>, absolute */
	int km_exe_fd; /* km binary, O_PATH|O_CLOEXEC is enough for execveat */
	int kvm_fd; /* /dev/kvm, opened O_RDWR */
	int mgmt_fd; /* listening unix socket bound at <state_dir>/km.sock */
	int start_fd; /* read end km waits on for `start` (one byte: go; EOF: abandon) */
	int ready_fd; /* write end km writes "ready\n" to once loaded; closed by km after */
	int snapshot_fd; /* restore: the snapshot file, opened O_RDONLY; -1 to run process.args */
	const int *parent_fds; /* restore: the chain below it (incremental), parent first */
	int nparent_fds;       /* at most SHIM_MAX_PARENTS */
	int guest_seccomp_fd; /* memfd with km's guest-seccomp rules (shim_seccomp.h), or -1 */
	const char *console_socket; /* --console-socket path, or NULL */
	bool console_proxy; /* process.terminal without console_socket (foreground run/restore):
			     * the pty master comes back to km-shim in shim_container_t */
	int preserve_fds; /* --preserve-fds N: fds 3..3+N-1 go to the guest too */
	bool no_pivot; /* --no-pivot: chroot-style move instead of pivot_root */
	bool no_new_keyring; /* accepted; km-shim never creates a session keyring */
	const char *log_path; /* where the child's pre-exec errors are also logged, or NULL */
} shim_spawn_t;

typedef struct shim_container {
	pid_t pid; /* km's pid in km-shim's pid namespace */
	char *cgroup_path; /* the cgroup path it asked for (shim_cgroup_path_for), NULL if none made */
	char **cgroup_paths; /* where that is in each hierarchy: "controller=/path" pairs,
			      * NULL-terminated, as oci_state_t.cgroup_paths keeps them */
	int console_master; /* console_proxy: the container's pty master (O_CLOEXEC), else -1 */
} shim_container_t;

/* Creates the container process described by `sp`. Returns once the child has either exec'd km
 * (its setup succeeded; km may still fail to load: the caller waits on ready_fd for that) or
 * failed: then the child is reaped, its cgroups removed, and *err says which step failed and
 * why (e.g. "mount proc on /proc: Operation not permitted"). createRuntime/prestart hooks run
 * here, createContainer in the child before pivot_root. 0 on success with *out filled. */
int shim_container_spawn(const shim_spawn_t *sp, shim_container_t *out, km_err_t **err);

/* Runs the config's hooks of `kind` with the OCI state JSON `state_json` on their stdin, in the
 * runtime's namespaces (startContainer hooks: inside the container of `pid`). -1 with *err if a
 * hook fails or times out (poststart/poststop callers only log it, as the spec says). */
int shim_hooks_run(const oci_config_t *cfg, oci_hook_kind_t kind, const char *state_json, pid_t pid,
		   km_err_t **err);

/* The cgroups a container of `cfg` gets from this km-shim: the path it asks for in
 * *cgroup_path and, resolved against km-shim's own cgroups (/proc/self/cgroup), where that is in
 * each hierarchy in *cgroup_paths (record form). Both NULL (and 0) on a host without cgroups.
 * The functions below take the record's two fields; a record without cgroup_paths (from before
 * them) means cgroup_path, absolute, in every hierarchy. */
int shim_cgroup_plan(const oci_config_t *cfg, const char *id, char **cgroup_path, char ***cgroup_paths,
		     km_err_t **err);

/* Removes the cgroups made for a container (after km has exited); a missing one is not an error. */
int shim_cgroup_remove(const char *cgroup_path, char *const *cgroup_paths, km_err_t **err);

/* Applies `res` to the container's existing cgroups (`km-shim update`). */
int shim_cgroup_update(const char *cgroup_path, char *const *cgroup_paths, const oci_resources_t *res,
		       km_err_t **err);

/* Host pids in the container's cgroup (`km-shim ps`); NULL-free array in *pids, count returned,
 * -1 with *err on failure. Without a cgroup: just `pid`. */
int shim_cgroup_pids(const char *cgroup_path, char *const *cgroup_paths, pid_t pid, pid_t **pids, km_err_t **err);

/* Memory and pids usage for `events --stats`; fields that cannot be read are left 0. */
typedef struct shim_cgroup_stats {
	unsigned long long memory_usage, memory_limit, memory_max_usage;
	unsigned long long pids_current, pids_limit;
	unsigned long long cpu_usage_ns;
} shim_cgroup_stats_t;
int shim_cgroup_stats(const char *cgroup_path, char *const *cgroup_paths, shim_cgroup_stats_t *st, km_err_t **err);

/* Checks what the config asks for that km-shim cannot honour on this host (an unsupported
 * namespace kind, mount type, seccomp action, apparmor profile, hybrid/v2 cgroup controller
 * missing...) before anything is created. -1 with *err naming the field
 * ("config.json: linux.namespaces[3]: type \"time\": not supported by km-shim"). */
int shim_container_check(const oci_config_t *cfg, km_err_t **err);

#endif
