/*
 * cgroups of a container: layout detection, creation with limits, membership, update, removal,
 * stats. The public entry points (shim_cgroup_remove/update/pids/stats) are in shim_container.h;
 * this header is what the rest of the shim and the unit tests use.
 *
 * Layouts (detected from the tree under a root, normally /sys/fs/cgroup):
 *  - pure v2: <root>/cgroup.controllers exists; one tree, controllers enabled in each
 *    ancestor's cgroup.subtree_control on the way down;
 *  - v1 or hybrid: one hierarchy per controller at <root>/<controller> (cpu and cpuacct may be one
 *    "cpu,cpuacct" mount reached through either name); a cgroup2 mount at <root>/unified, if any,
 *    has no controllers and is not used.
 * km-shim uses memory, pids, cpu, cpuacct and devices (freezer is not needed: km pauses itself).
 * A controller that is missing is an error naming it if the config asks for its resource, else it
 * is skipped; so a v1 host without a devices hierarchy runs containers without device rules only
 * when the config has no linux.resources.devices (shim_devices.h for what is applied).
 */
#ifndef SHIM_CGROUP_H
#define SHIM_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "km_error.h"
#include "oci_config.h"

/* devices: v1's devices hierarchy; on pure v2 (no such controller: a BPF program) the tree. */
typedef enum shim_cg_ctrl { SHIM_CG_MEMORY, SHIM_CG_PIDS, SHIM_CG_CPU, SHIM_CG_CPUACCT, SHIM_CG_DEVICES, SHIM_CG_NCTRL } shim_cg_ctrl_t;

typedef struct shim_cgroup_layout {
	bool v2; /* pure cgroup v2 */
	char *root; /* the cgroup root given to detect */
	/* v1: the hierarchy directory of each controller, NULL if missing. v2: the root for every
	 * controller the root's cgroup.controllers lists, NULL for the others. */
	char *dir[SHIM_CG_NCTRL];
} shim_cgroup_layout_t;

/* "memory", "pids", "cpu", "cpuacct", "devices". */
const char *shim_cg_ctrl_name(shim_cg_ctrl_t c);

/* Detects the layout under `root` (NULL: /sys/fs/cgroup). -1 with *err if there is no cgroup
 * filesystem there at all. */
int shim_cgroup_detect(const char *root, shim_cgroup_layout_t *l, km_err_t **err);
void shim_cgroup_layout_free(shim_cgroup_layout_t *l);

/* The container's cgroup in each controller's hierarchy, from that hierarchy's root ("/a/b"),
 * resolved once at create (shim_cgroup_resolve) and kept in the record: a km-shim run later from
 * another cgroup finds it all the same. NULL where the controller is missing. */
typedef struct shim_cgroup_paths {
	char *path[SHIM_CG_NCTRL];
} shim_cgroup_paths_t;
void shim_cgroup_paths_free(shim_cgroup_paths_t *p);

/* The cgroup path a container asks for, cleaned of "." and ".." (never above where it starts):
 * linux.cgroupsPath "/a/b" (absolute: from each hierarchy's root) or "a/b" (relative: under
 * km-shim's own cgroup in each hierarchy, as runc); systemd's "a-b.slice:prefix:name" ->
 * "/a.slice/a-b.slice/prefix-name.scope", as systemd nests slices; without cgroupsPath the
 * relative "km-shim/<id>" (runc's default is relative too). Caller frees. */
char *shim_cgroup_path_for(const oci_config_t *cfg, const char *id);

/* Reads `file` (NULL: /proc/self/cgroup) whole. Caller frees; NULL with *err. */
char *shim_cgroup_read_self(const char *file, km_err_t **err);

/* Resolves `path` (from shim_cgroup_path_for) for each controller of `l`: an absolute one as it
 * is, a relative one under the cgroup that `self_cgroup` (the text of /proc/self/cgroup: v1
 * lines "N:ctrl[,ctrl]:/path", on pure v2 the "0::/path" line) names for that controller. -1
 * with *err if it names none for a controller `l` has. */
int shim_cgroup_resolve(const shim_cgroup_layout_t *l, const char *path, const char *self_cgroup,
			shim_cgroup_paths_t *out, km_err_t **err);

/* The record's form of `p`: NULL-terminated "controller=path" pairs (oci_state_t.cgroup_paths). */
char **shim_cgroup_paths_to_record(const shim_cgroup_paths_t *p);

/* Back from the record: `pairs` as written by shim_cgroup_paths_to_record; a record from before
 * them (pairs NULL) has `path` absolute, the same in every hierarchy. An unknown controller, a
 * relative path or a ".." in one is refused naming it. */
int shim_cgroup_paths_from_record(const char *path, char *const *pairs, shim_cgroup_paths_t *out, km_err_t **err);

/* The resource of `res` that needs controller `c` and is set ("linux.resources.memory.limit"),
 * or NULL if `res` asks nothing of it. */
const char *shim_cgroup_needs(const oci_resources_t *res, shim_cg_ctrl_t c);

/* Makes the cgroups `p` in every available hierarchy and applies `res` (may be NULL) and the
 * device rules (shim_devices.h: res's rules, the default list, the `n_devs` nodes of `devs`).
 * Errors name the controller and file. A missing controller that `res` needs is an error. */
int shim_cgroup_create(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, const oci_resources_t *res,
		       const oci_device_t *devs, size_t n_devs, km_err_t **err);

/* Writes the limits of `res` into the existing cgroups `p` (not the device rules: those are set
 * once, at create, as runc's update leaves them). */
int shim_cgroup_apply(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, const oci_resources_t *res,
		      km_err_t **err);

/* Moves `pid` into `p` in every hierarchy where it was made. */
int shim_cgroup_add(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, pid_t pid, km_err_t **err);

/* rmdir of `p` in every hierarchy; missing is fine. With `path` km-shim's default
 * ("km-shim/<id>", or "/km-shim/<id>" in older records) the km-shim parent goes too once empty. */
int shim_cgroup_remove_in(const shim_cgroup_layout_t *l, const char *path, const shim_cgroup_paths_t *p,
			  km_err_t **err);

/* The host directory of `p` in controller c's hierarchy (malloc'd), NULL if c is missing. */
char *shim_cgroup_dir(const shim_cgroup_layout_t *l, shim_cg_ctrl_t c, const shim_cgroup_paths_t *p);

/* runc's conversion of cpu.shares (2..262144) to cgroup v2's cpu.weight (1..10000); 0 -> 0. */
uint64_t shim_cgroup_shares_to_weight(uint64_t shares);

#endif
