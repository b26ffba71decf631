/*
 * The container's filesystem: run in the child, in its new mount namespace.
 *
 * Order (shim_container.c drives it): shim_mounts_prepare() (propagation of /, the rootfs bound
 * onto itself, config.json's mounts, devices, /dev symlinks), then createContainer hooks, then
 * shim_mounts_pivot(), then (after sysctl) shim_mounts_finish() (maskedPaths, readonlyPaths,
 * root.readonly). Mount destinations are resolved inside the rootfs by shim_path.h (symlinks
 * that climb out are an error) and mounted through /proc/self/fd/N of the resolved fd, so the
 * path is not looked up twice. Relative bind sources are taken from the bundle, under the same
 * rule; absolute bind sources are host paths the config's author names on purpose.
 */
#ifndef SHIM_MOUNTS_H
#define SHIM_MOUNTS_H

#include <stdbool.h>

#include "km_error.h"
#include "oci_config.h"
#include "shim_cgroup.h"

/* A mount's options split into mount(2)'s flags and its data string. */
typedef struct shim_mount_opts {
	unsigned long flags; /* MS_* to set (MS_BIND/MS_REC for bind and rbind) */
	unsigned long propagation; /* MS_PRIVATE/MS_SHARED/MS_SLAVE/MS_UNBINDABLE [| MS_REC], 0 if none */
	char *data; /* the rest, comma-joined ("mode=755,size=65536k"), NULL if none; caller frees */
} shim_mount_opts_t;

/* Parses `options` (NULL-terminated, may be NULL). Flag options (ro, nosuid, nodev, noexec,
 * relatime, noatime, strictatime, sync, bind, rbind, ...) and their negations become flags,
 * propagation options become `propagation`, everything else goes to `data`. */
int shim_mount_parse_options(char *const *options, shim_mount_opts_t *o, km_err_t **err);

/* The root propagation of linux.rootfsPropagation ("rslave"...), MS_REC|MS_PRIVATE if NULL;
 * -1 with *err for a value that is not a propagation. */
int shim_mount_root_propagation(const char *value, unsigned long *flags, km_err_t **err);

/* Whether km-shim knows how to mount `type` (NULL: a bind by its options). */
bool shim_mount_type_supported(const char *type);

/* Decodes, in place, the octal escapes (\040 space, \011 tab, \012 newline, \134 backslash)
 * the kernel writes in /proc/self/mountinfo's paths; anything else is left as it is. */
void shim_mountinfo_unescape(char *s);

typedef struct shim_mount_ctx {
	const oci_config_t *cfg;
	const char *bundle; /* absolute */
	const char *rootfs; /* absolute, resolved */
	bool userns; /* in a user namespace: devices are bound, not made */
	const shim_cgroup_layout_t *cg; /* for "cgroup" mounts; may be NULL */
	const shim_cgroup_paths_t *cgroup_paths; /* the container's cgroups, may be NULL */
} shim_mount_ctx_t;

/* Everything before pivot_root. Returns an O_PATH fd of the rootfs mount (for the pivot), or -1
 * with *err naming the mount ("mounts[2] (proc on /proc): Operation not permitted"). */
int shim_mounts_prepare(const shim_mount_ctx_t *ctx, km_err_t **err);

/* pivot_root into `rootfd` and detach the old root; with `no_pivot`, MS_MOVE + chroot. Then
 * linux.rootfsPropagation `propagation` (NULL: none) is applied to the new /. */
int shim_mounts_pivot(int rootfd, bool no_pivot, const char *propagation, km_err_t **err);

/* maskedPaths, readonlyPaths and root.readonly, inside the container (after pivot_root). */
int shim_mounts_finish(const oci_config_t *cfg, km_err_t **err);

#endif
