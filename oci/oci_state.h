/*
 * km-shim's record of one container: <root>/<id>/state.json.
 *
 * Written atomically (temporary file in the same directory, fsync, rename, fsync of the
 * directory) so that a km-shim killed at any moment leaves either the old or the new record,
 * never a torn one. The record is what `state`, `list`, `kill`, `delete`... read; the live
 * status (running/stopped) is derived from the km process, checked by pid *and* its start time
 * (/proc/<pid>/stat field 22) so that a reused pid is never taken for the container.
 */
#ifndef OCI_STATE_H
#define OCI_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "km_error.h"

typedef enum oci_status {
	OCI_STATUS_CREATING, /* create began, km not yet ready: a crash here leaves this */
	OCI_STATUS_CREATED, /* km loaded the program (or snapshot) and waits for start */
	OCI_STATUS_RUNNING,
	OCI_STATUS_PAUSED,
	OCI_STATUS_STOPPED,
} oci_status_t;

typedef struct oci_state {
	char *id;
	char *bundle; /* absolute */
	char *rootfs; /* absolute, in the host's view */
	oci_status_t status; /* as last recorded; see oci_state_live_status() */
	pid_t pid; /* km's pid in the host's pid namespace; 0 if none */
	uint64_t pid_start_time; /* /proc/<pid>/stat starttime of that pid, to detect reuse */
	char *created; /* RFC 3339 UTC, as runc prints it */
	char *owner; /* "" for root, as runc */
	char *config_digest; /* "sha256:<hex>" of config.json at create */
	char *mgmt_socket; /* absolute path of km's management socket, host view */
	char *cgroup_path; /* the cgroup path the container asked for ("/a/b" from each hierarchy's root,
			    * "a/b" under km-shim's own cgroup), or NULL */
	char **cgroup_paths; /* NULL-terminated "controller=/path" pairs: cgroup_path resolved in each
			      * hierarchy at create ("cgroupPaths"); NULL in records from before them,
			      * whose cgroup_path is absolute and the same in every hierarchy */
	char *restored_from; /* image directory this container was restored from, or NULL */
	char **annotations; /* NULL-terminated "key=value" pairs (from config.json), may be NULL */
} oci_state_t;

/* Writes `st` to <dir>/state.json atomically. -1 with *err on failure (the old file stays). */
int oci_state_write(const char *dir, const oci_state_t *st, km_err_t **err);

/* Reads <dir>/state.json. NULL with *err (ENOENT kept in errnum) on failure. */
oci_state_t *oci_state_read(const char *dir, km_err_t **err);

void oci_state_free(oci_state_t *st);

/* "creating", "created", "running", "paused", "stopped". */
const char *oci_status_name(oci_status_t s);

/* The start time of `pid` from /proc/<pid>/stat, or 0 if the process does not exist. */
uint64_t oci_pid_start_time(pid_t pid);

/* True if st->pid is alive and still the process the record names (start time matches). */
bool oci_state_pid_alive(const oci_state_t *st);

/* The OCI state JSON that `km-shim state` prints (ociVersion, id, status, pid, bundle, rootfs,
 * created, owner, annotations), with `status` given by the caller. Caller frees. */
char *oci_state_to_json(const oci_state_t *st, oci_status_t status, km_err_t **err);

#endif
