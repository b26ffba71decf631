/* km's command line: options, defaults, and the guest's environment. */
#ifndef KM_CLI_H
#define KM_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "km_error.h"
#include "km_guest.h"

#define KM_VERSION "0.1.0"

typedef struct km_cli {
	km_guest_opts_t guest;
	bool clear_env;
	const char **env_set; /* --env NAME=VALUE, in order */
	size_t nenv;
	int prog_index;       /* argv index of the program; its arguments follow (-1: --snapshot-fd) */
	/* --*-fd: descriptors passed in (km_passfd.h), -1 when not given */
	int kvm_fd, mgmt_fd, ready_fd, start_fd, snapshot_fd, guest_seccomp_fd;
	const char *guest_seccomp_path; /* --guest-seccomp=FILE, or NULL */
	bool done;            /* --help or --version was answered: exit 0 */
	bool inspect;         /* --inspect: describe the snapshot at prog_index */
	bool verify;          /* --verify (with --inspect): check every memory page's checksum too */
	bool no_seccomp;      /* --no-seccomp: km runs without its syscall filter (debugging only) */
	/* --exec-state=FD (internal: only km itself passes it, when its guest execs; km_exec_state.h):
	 * the state the km before the exec handed over, -1 when not given */
	int exec_state_fd;
	/* --snapshot-parent-fd=N, repeatable (with --snapshot-fd): the chain below the snapshot,
	 * its parent first (km_snapshot_layers.h) */
	int parent_fds[64];
	size_t nparent_fds;
} km_cli_t;

/* Parses argv. Returns 0 (check cli->done) or -1 with *err saying what is wrong. */
int km_cli_parse(km_cli_t *cli, int argc, char **argv, km_err_t **err);

/* The guest's environment: km's own (unless --clear-env) with --env applied. NULL-terminated;
 * free with km_cli_free_env. */
char **km_cli_guest_env(const km_cli_t *cli, char **host_env, km_err_t **err);
void km_cli_free_env(char **env);

void km_cli_free(km_cli_t *cli);

/* "repair", "refuse" or "close" as an enum km_tcp_policy (km_fdtab.h), or -1. */
int km_cli_tcp_policy(const char *s);

/* Parses sizes such as 512M, 4G, 1048576. Returns 0 or -1. */
int km_parse_size(const char *s, unsigned long *out);

#endif
