/*
 * km-shim's commands (shim_cmd_lifecycle.c, shim_cmd_checkpoint.c, shim_cmd_misc.c) and what they
 * share (shim_cmd_util.c). Each command returns km-shim's exit status (>= 0), or -1 with *err:
 * main prints that as one line "km-shim: ..." and exits 1.
 */
#ifndef SHIM_CMD_H
#define SHIM_CMD_H

#include <stdbool.h>
#include <sys/types.h>

#include "km_error.h"
#include "oci_config.h"
#include "oci_state.h"
#include "shim_cli.h"
#include "shim_state_dir.h"

int shim_cmd_create(const shim_args_t *a, km_err_t **err);
int shim_cmd_start(const shim_args_t *a, km_err_t **err);
int shim_cmd_run(const shim_args_t *a, km_err_t **err);
int shim_cmd_state(const shim_args_t *a, km_err_t **err);
int shim_cmd_kill(const shim_args_t *a, km_err_t **err);
int shim_cmd_delete(const shim_args_t *a, km_err_t **err);
int shim_cmd_list(const shim_args_t *a, km_err_t **err);
int shim_cmd_ps(const shim_args_t *a, km_err_t **err);
int shim_cmd_checkpoint(const shim_args_t *a, km_err_t **err);
int shim_cmd_restore(const shim_args_t *a, km_err_t **err);
int shim_cmd_pause(const shim_args_t *a, km_err_t **err);
int shim_cmd_resume(const shim_args_t *a, km_err_t **err);
int shim_cmd_events(const shim_args_t *a, km_err_t **err);
int shim_cmd_update(const shim_args_t *a, km_err_t **err);
int shim_cmd_features(const shim_args_t *a, km_err_t **err);
int shim_cmd_spec(const shim_args_t *a, km_err_t **err);
int shim_cmd_exec(const shim_args_t *a, km_err_t **err);

/* --- shared (shim_cmd_util.c) --- */

/* One container, opened (locked or not) with its record. */
typedef struct shim_ctr {
	shim_dir_t dir;
	oci_state_t *st;
	oci_config_t *cfg; /* the config saved at create, once shim_ctr_config has read it */
} shim_ctr_t;

/* Opens <root>/<id> and reads its state.json; `lock`: hold the container's lock (commands that
 * change it). -1 with *err ("container \"ID\" does not exist"). */
int shim_ctr_open(const shim_args_t *a, bool lock, shim_ctr_t *c, km_err_t **err);
void shim_ctr_close(shim_ctr_t *c);

/* The config saved in the container's directory at create, read on first use and kept until
 * shim_ctr_close (the caller does not free it). NULL with *err if it cannot be read. */
oci_config_t *shim_ctr_config(shim_ctr_t *c, km_err_t **err);

/* The container's status now: the record, corrected by whether km still lives (pid and start
 * time; a zombie is dead) and, for running/paused, km's own answer to `status`. */
oci_status_t shim_ctr_status(shim_ctr_t *c);

/* True if `pid` exists, is not a zombie and started at `start_time` (0: any). */
bool shim_pid_running(pid_t pid, unsigned long long start_time);

/* Waits until st's km is gone (not running as above), at most timeout_ms. 0 if gone. */
int shim_wait_gone(pid_t pid, unsigned long long start_time, int timeout_ms);

/* Kills with SIGKILL every process that holds the container's start fifo open (a km whose pid
 * was never recorded because km-shim was killed during create) and waits for them. */
void shim_kill_fifo_holders(const shim_dir_t *d);

/* Writes `pid` to `path` atomically (temporary file beside it, rename): digits, no newline. */
int shim_write_pid_file(const char *path, pid_t pid, km_err_t **err);

/* "sha256:<hex>" of the file at `path`, or NULL with *err. */
char *shim_file_digest(const char *path, km_err_t **err);

/* The km binary: $KM_SHIM_KM, else "km" beside /proc/self/exe. Caller frees. */
char *shim_km_path(km_err_t **err);

/* km runs inside the container after pivot_root, where no host library exists: refuses (with
 * *err naming path) a km that is not an x86-64 ELF executable or that names an interpreter
 * (dynamically linked, e.g. a sanitizer build), instead of an exec failing with ENOENT. */
int shim_km_check_static(int fd, const char *path, km_err_t **err);

/* Now as RFC 3339 UTC with nanoseconds, as runc writes `created`. Caller frees. */
char *shim_now_rfc3339(void);

/* Cleans up a container that is no longer running: its cgroups, poststop hooks (errors only
 * logged), its directory. */
int shim_ctr_destroy(shim_ctr_t *c, km_err_t **err);

/* Kills km (SIGKILL) if alive, and the start fifo's holders, waiting for them to be gone. */
void shim_ctr_kill_all(shim_ctr_t *c);

/* Creates a container: the shared body of create, run and restore. nsnap > 0: km resumes the
 * snapshot snap_fds[0], whose incremental chain is snap_fds[1..nsnap) (parent first;
 * restored_from names its directory). On success *pid is km's pid (a child of this
 * process), the record says "created", the pid file is written. On failure nothing is left.
 * *console_master is -1, except for a foreground run/restore (no --detach) of a process.terminal
 * config without --console-socket: then it is the pty master for shim_run_created's proxy. */
int shim_create_container(const shim_args_t *a, const int *snap_fds, int nsnap, const char *restored_from, pid_t *pid,
			  int *console_master, km_err_t **err);

/* Starts a created container (locks it). 0, or -1 with *err. */
int shim_start_container(const shim_args_t *a, km_err_t **err);

/* After create (or restore's create): start, then (without --detach) wait for km, a child of
 * this process, and delete the container unless --keep. km's exit status, or -1 with *err.
 * console_master >= 0 (closed here): proxied to stdin/stdout while km runs. */
int shim_run_created(const shim_args_t *a, pid_t pid, int console_master, km_err_t **err);

/* Waits for child `pid` (km), forwarding the signals km-shim receives to it; the exit status
 * as a shell reports it (128+signal if killed). console_master >= 0: the pty proxy runs first
 * (shim_console_proxy), until the container's side of the pty is closed. */
int shim_wait_child(pid_t pid, int console_master);

#endif
