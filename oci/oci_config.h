/*
 * OCI runtime-spec config.json, parsed and validated into typed C structs (runtime-spec 1.0-1.2).
 *
 * oci_config_load() reads <bundle>/config.json; every field a runtime must honour is parsed into
 * the structs below and checked for type and range. Unknown fields are ignored (the spec says so).
 * Errors name the JSON path and the problem, e.g.
 *   "config.json: process.args: must be a non-empty array of strings".
 * Whether km-shim can honour a well-formed value (a namespace kind, a mount type...) is the
 * shim's decision, not the parser's: the parser only refuses what the spec itself forbids.
 *
 * Every string is a heap copy owned by the config; oci_config_free() frees it all. Absent
 * optional objects are NULL pointers or zero counts; absent optional scalars have has_* = false.
 */
#ifndef OCI_CONFIG_H
#define OCI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "km_error.h"

typedef struct oci_rlimit {
	char *type; /* "RLIMIT_NOFILE"... */
	int resource; /* RLIMIT_* value resolved from type; unknown names are refused */
	uint64_t soft, hard;
} oci_rlimit_t;

typedef struct oci_caps {
	/* Each set is a NULL-terminated array of capability names as written ("CAP_CHOWN"), NULL if
	 * the set is absent. Unknown names are refused by the parser (runc refuses them too). */
	char **bounding, **effective, **inheritable, **permitted, **ambient;
} oci_caps_t;

typedef struct oci_process {
	bool terminal;
	bool has_console_size;
	unsigned console_height, console_width;
	char *cwd; /* required, absolute */
	char **args; /* NULL-terminated, at least one element */
	char **env; /* NULL-terminated, may be empty; each "NAME=VALUE" */
	uid_t uid;
	gid_t gid;
	bool has_umask;
	mode_t umask;
	gid_t *additional_gids;
	size_t n_additional_gids;
	oci_rlimit_t *rlimits;
	size_t n_rlimits;
	oci_caps_t *caps; /* NULL if process.capabilities is absent */
	bool no_new_privileges;
	bool has_oom_score_adj;
	int oom_score_adj;
	char *apparmor_profile; /* recorded only: km-shim refuses a non-empty profile */
	char *selinux_label; /* recorded only: km-shim refuses a non-empty label */
	bool has_scheduler, has_io_priority; /* non-empty scheduler/ioPriority: recorded only, refused */
} oci_process_t;

typedef struct oci_mount {
	char *destination; /* required, absolute inside the container */
	char *type; /* may be NULL ("bind" implied by options) */
	char *source; /* may be NULL */
	char **options; /* NULL-terminated, may be NULL */
	bool has_id_mappings; /* non-empty uidMappings or gidMappings: recorded only, refused */
} oci_mount_t;

typedef enum oci_ns_type {
	OCI_NS_PID,
	OCI_NS_NETWORK,
	OCI_NS_MOUNT,
	OCI_NS_IPC,
	OCI_NS_UTS,
	OCI_NS_USER,
	OCI_NS_CGROUP,
	OCI_NS_TIME,
	OCI_NS_COUNT
} oci_ns_type_t;

typedef struct oci_namespace {
	oci_ns_type_t type;
	char *path; /* join this namespace instead of creating one; NULL to create */
} oci_namespace_t;

typedef struct oci_idmap {
	uint32_t container_id, host_id, size;
} oci_idmap_t;

typedef struct oci_device {
	char *path; /* absolute in the container */
	char type; /* 'c', 'b', 'u' or 'p' */
	int64_t major, minor; /* -1 where absent (allowed only for 'p') */
	bool has_file_mode;
	mode_t file_mode;
	bool has_uid, has_gid;
	uid_t uid;
	gid_t gid;
} oci_device_t;

/* One linux.resources.devices rule (the device cgroup), applied in the config's order. */
typedef struct oci_device_rule {
	bool allow;
	char type; /* 'a' (all, the default), 'c' or 'b' */
	int64_t major, minor; /* -1 (or absent): any; else 0 to 2^32-1 */
	char access[4]; /* a non-empty subset of "rwm" in that order; "rwm" when absent */
} oci_device_rule_t;

typedef struct oci_resources {
	/* memory */
	bool has_memory_limit, has_memory_reservation, has_memory_swap;
	int64_t memory_limit, memory_reservation, memory_swap; /* bytes; -1 = unlimited */
	/* pids */
	bool has_pids_limit;
	int64_t pids_limit; /* <= 0: unlimited */
	/* cpu */
	bool has_cpu_shares, has_cpu_quota, has_cpu_period;
	uint64_t cpu_shares;
	int64_t cpu_quota;
	uint64_t cpu_period;
	char *cpu_cpus, *cpu_mems; /* cpuset strings or NULL */
	/* devices cgroup rules in order (km-shim's default list and linux.devices come after). */
	oci_device_rule_t *device_rules;
	size_t n_device_rules;
	/* Non-empty unified, blockIO, hugepageLimits, network, rdma: recorded only, refused. */
	bool has_unified, has_block_io, has_hugepage_limits, has_network, has_rdma;
} oci_resources_t;

/* linux.seccomp: applied by km to the guest's syscalls (not to km itself). */
typedef enum oci_seccomp_op {
	OCI_SCMP_CMP_NE,
	OCI_SCMP_CMP_LT,
	OCI_SCMP_CMP_LE,
	OCI_SCMP_CMP_EQ,
	OCI_SCMP_CMP_GE,
	OCI_SCMP_CMP_GT,
	OCI_SCMP_CMP_MASKED_EQ,
} oci_seccomp_op_t;

typedef enum oci_seccomp_action {
	OCI_SCMP_ACT_KILL, /* = KILL_THREAD */
	OCI_SCMP_ACT_KILL_PROCESS,
	OCI_SCMP_ACT_TRAP,
	OCI_SCMP_ACT_ERRNO,
	OCI_SCMP_ACT_TRACE,
	OCI_SCMP_ACT_ALLOW,
	OCI_SCMP_ACT_LOG,
	OCI_SCMP_ACT_NOTIFY,
} oci_seccomp_action_t;

typedef struct oci_seccomp_arg {
	unsigned index; /* 0..5 */
	uint64_t value, value_two;
	oci_seccomp_op_t op;
} oci_seccomp_arg_t;

typedef struct oci_seccomp_rule {
	char **names; /* NULL-terminated syscall names, at least one */
	oci_seccomp_action_t action;
	bool has_errno_ret;
	unsigned errno_ret; /* for ERRNO (default EPERM when absent) and TRACE */
	oci_seccomp_arg_t *args; /* all must match (AND) */
	size_t n_args;
} oci_seccomp_rule_t;

typedef struct oci_seccomp {
	oci_seccomp_action_t default_action;
	bool has_default_errno_ret;
	unsigned default_errno_ret;
	char **architectures; /* NULL-terminated "SCMP_ARCH_X86_64"..., may be NULL */
	char **flags; /* NULL-terminated "SECCOMP_FILTER_FLAG_*", may be NULL */
	char *listener_path; /* NOTIFY needs it; km-shim refuses NOTIFY */
	oci_seccomp_rule_t *rules;
	size_t n_rules;
} oci_seccomp_t;

typedef struct oci_sysctl {
	char *key, *value;
} oci_sysctl_t;

typedef struct oci_linux {
	oci_namespace_t *namespaces;
	size_t n_namespaces; /* each type at most once (the parser refuses duplicates) */
	oci_idmap_t *uid_mappings, *gid_mappings;
	size_t n_uid_mappings, n_gid_mappings;
	oci_resources_t *resources; /* NULL if absent */
	char *cgroups_path; /* NULL if absent */
	oci_seccomp_t *seccomp; /* NULL if absent */
	char **masked_paths, **readonly_paths; /* NULL-terminated, may be NULL */
	oci_sysctl_t *sysctl;
	size_t n_sysctl;
	oci_device_t *devices;
	size_t n_devices;
	char *rootfs_propagation; /* NULL, "shared", "slave", "private", "unbindable"... */
	char *mount_label; /* recorded only */
	/* Recorded only: km-shim refuses what would change the defaults. */
	char *personality_domain; /* "LINUX", "LINUX32" or NULL if personality is absent */
	bool has_personality_flags, has_intel_rdt, has_memory_policy;
} oci_linux_t;

typedef struct oci_hook {
	char *path; /* absolute */
	char **args; /* NULL-terminated, may be NULL (then argv = { path }) */
	char **env; /* NULL-terminated, may be NULL */
	bool has_timeout;
	int timeout; /* seconds, > 0 */
} oci_hook_t;

typedef enum oci_hook_kind {
	OCI_HOOK_PRESTART,
	OCI_HOOK_CREATE_RUNTIME,
	OCI_HOOK_CREATE_CONTAINER,
	OCI_HOOK_START_CONTAINER,
	OCI_HOOK_POSTSTART,
	OCI_HOOK_POSTSTOP,
	OCI_HOOK_KINDS
} oci_hook_kind_t;

typedef struct oci_annotation {
	char *key, *value;
} oci_annotation_t;

typedef struct oci_config {
	char *oci_version; /* required */
	oci_process_t *process; /* required for create/run (the parser refuses its absence) */
	char *root_path; /* required; relative paths are relative to the bundle */
	bool root_readonly;
	char *hostname, *domainname; /* NULL if absent */
	oci_mount_t *mounts;
	size_t n_mounts;
	oci_linux_t *linux_; /* NULL if absent */
	oci_hook_t *hooks[OCI_HOOK_KINDS];
	size_t n_hooks[OCI_HOOK_KINDS];
	oci_annotation_t *annotations;
	size_t n_annotations;
} oci_config_t;

/* Parses and validates the JSON text `json` (len bytes; need not be NUL-terminated). `what` names
 * the source in messages ("config.json" or a path). Returns NULL with *err set on any error. */
oci_config_t *oci_config_parse(const char *json, size_t len, const char *what, km_err_t **err);

/* Reads <bundle>/config.json (at most 4 MiB) and parses it. NULL with *err on failure. */
oci_config_t *oci_config_load(const char *bundle, km_err_t **err);

/* Frees everything; safe on NULL. */
void oci_config_free(oci_config_t *cfg);

/* The namespace entry of `type`, or NULL if the config does not list it. */
const oci_namespace_t *oci_config_namespace(const oci_config_t *cfg, oci_ns_type_t type);

/* "pid", "network", ... (the spec's spelling) for messages and state. */
const char *oci_ns_type_name(oci_ns_type_t type);

/* Linux capabilities by name ("CAP_CHOWN" -> 0 ... "CAP_CHECKPOINT_RESTORE" -> 40): the number,
 * or -1 for a name this table does not know; and back (NULL past the table). */
int oci_cap_number(const char *name);
const char *oci_cap_name(int cap);

/* The value of annotation `key`, or NULL. */
const char *oci_config_annotation(const oci_config_t *cfg, const char *key);

#endif
