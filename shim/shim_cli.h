/*
 * km-shim's command line: runc's globals, commands and per-command flags (docs/cli.md, "km-shim").
 *
 * Flags are accepted in every form runc's Go flag parser accepts: `--flag value`, `--flag=value`,
 * `-flag value`, `-flag=value` (containerd's go-runc sends `-no-subreaper`), one-letter aliases
 * (`-b DIR`), and `--bool=true|false`. Globals come before the command; a command's flags may
 * come before or after its positional arguments; `--` ends the flags. Parsing only records what
 * was asked: whether km can honour a flag is decided by the command (shim_cmd_*.c).
 */
#ifndef SHIM_CLI_H
#define SHIM_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "km_error.h"

typedef enum shim_cmd {
	SHIM_CMD_NONE,
	SHIM_CMD_CREATE,
	SHIM_CMD_START,
	SHIM_CMD_STATE,
	SHIM_CMD_KILL,
	SHIM_CMD_DELETE,
	SHIM_CMD_RUN,
	SHIM_CMD_LIST,
	SHIM_CMD_PS,
	SHIM_CMD_PAUSE,
	SHIM_CMD_RESUME,
	SHIM_CMD_EVENTS,
	SHIM_CMD_UPDATE,
	SHIM_CMD_FEATURES,
	SHIM_CMD_SPEC,
	SHIM_CMD_CHECKPOINT,
	SHIM_CMD_RESTORE,
	SHIM_CMD_EXEC,
	SHIM_CMD_COUNT
} shim_cmd_t;

typedef enum shim_log_format { SHIM_LOG_TEXT, SHIM_LOG_JSON } shim_log_format_t;

#define SHIM_DEFAULT_ROOT "/run/km-shim"

typedef struct shim_args {
	/* globals */
	const char *root; /* SHIM_DEFAULT_ROOT unless --root */
	const char *log; /* --log FILE or NULL */
	shim_log_format_t log_format;
	bool debug, systemd_cgroup, version, help;
	const char *criu; /* --criu PATH: accepted and ignored (km needs no criu) */
	const char *rootless; /* --rootless true|false|auto: recorded */

	shim_cmd_t cmd;
	bool cmd_help; /* `CMD --help` / `CMD -h` */
	const char *id; /* the container id (first positional argument), NULL if absent */
	char **rest; /* positional arguments after the id (argv slice, NULL-terminated), never NULL */
	int n_rest;

	/* create, run, restore */
	const char *bundle, *pid_file, *console_socket;
	bool no_pivot, no_new_keyring, detach, keep, no_subreaper;
	int preserve_fds;

	/* kill */
	int signal; /* resolved number; SIGTERM when absent */
	bool all;

	/* delete */
	bool force;

	/* list, ps */
	const char *format; /* "table" or "json" (list default table; ps default table) */
	bool quiet;

	/* events */
	bool stats;
	uint64_t interval_ns; /* default 5s */

	/* update */
	bool has_memory, has_memory_swap, has_memory_reservation, has_pids_limit, has_cpu_shares,
	    has_cpu_quota, has_cpu_period;
	int64_t memory, memory_swap, memory_reservation, pids_limit, cpu_quota;
	uint64_t cpu_shares, cpu_period;
	const char *resources_file; /* -r FILE ("-" for stdin) */

	/* checkpoint, restore */
	const char *image_path, *work_path, *parent_path, *manage_cgroups_mode, *page_server,
	    *lsm_profile, *lsm_mount_context;
	bool leave_running, tcp_established, ext_unix_sk, shell_job, file_locks, pre_dump, auto_dedup,
	    lazy_pages;
	bool has_status_fd;
	int status_fd;
	char **empty_ns; /* --empty-ns (repeatable), NULL-terminated, never NULL */
	int n_empty_ns;

	/* owned storage (freed by shim_args_free) */
	void *owned_;
} shim_args_t;

/* Parses argv (argv[0] is the program) into *a. Returns 0, or -1 with *err saying what is wrong
 * in runc's words where they exist ("flag provided but not defined: -foo"). A missing container
 * id is not an error here (the command checks it, so `CMD --help` works). Call shim_args_free. */
int shim_cli_parse(int argc, char **argv, shim_args_t *a, km_err_t **err);

void shim_args_free(shim_args_t *a);

/* The command's name ("create"), or NULL for SHIM_CMD_NONE. */
const char *shim_cmd_name(shim_cmd_t c);

/* The usage text of command c (SHIM_CMD_NONE: the global usage). Static storage. */
const char *shim_cli_usage(shim_cmd_t c);

/* A signal given as a number ("9") or a name with or without SIG, any case ("KILL", "SIGkill",
 * "RTMIN+3"). The number in *sig; -1 with *err if it is not a signal. */
int shim_parse_signal(const char *s, int *sig, km_err_t **err);

/* A byte size as runc takes it ("512m", "1G", "1048576", "-1" = unlimited). -1 with *err. */
int shim_parse_bytes(const char *s, int64_t *out, km_err_t **err);

/* A Go duration ("5s", "100ms", "1m30s"); a bare number is seconds. -1 with *err. */
int shim_parse_duration(const char *s, uint64_t *ns, km_err_t **err);

#endif
