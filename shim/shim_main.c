/*
 * km-shim: an OCI runtime with runc's command line that runs each container's program under km.
 * main parses, dispatches to the command (shim_cmd_*.c), and turns an error into one line
 * "km-shim: ..." on stderr (and in the log, as runc does, when a log file is given) and exit
 * status 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim_cli.h"
#include "shim_cmd.h"
#include "shim_log.h"

#define SHIM_VERSION "0.1.0"

typedef int (*cmd_fn)(const shim_args_t *a, km_err_t **err);

static const cmd_fn commands[SHIM_CMD_COUNT] = {
    [SHIM_CMD_CREATE] = shim_cmd_create,	 [SHIM_CMD_START] = shim_cmd_start,
    [SHIM_CMD_STATE] = shim_cmd_state,		 [SHIM_CMD_KILL] = shim_cmd_kill,
    [SHIM_CMD_DELETE] = shim_cmd_delete,	 [SHIM_CMD_RUN] = shim_cmd_run,
    [SHIM_CMD_LIST] = shim_cmd_list,		 [SHIM_CMD_PS] = shim_cmd_ps,
    [SHIM_CMD_PAUSE] = shim_cmd_pause,		 [SHIM_CMD_RESUME] = shim_cmd_resume,
    [SHIM_CMD_EVENTS] = shim_cmd_events,	 [SHIM_CMD_UPDATE] = shim_cmd_update,
    [SHIM_CMD_FEATURES] = shim_cmd_features,	 [SHIM_CMD_SPEC] = shim_cmd_spec,
    [SHIM_CMD_CHECKPOINT] = shim_cmd_checkpoint, [SHIM_CMD_RESTORE] = shim_cmd_restore,
    [SHIM_CMD_EXEC] = shim_cmd_exec,
};

static int fail(km_err_t *err)
{
	const char *msg = err != NULL && err->msg != NULL ? err->msg : "failed (no reason given)";
	if (shim_log_to_file())
		shim_log(SHIM_LOG_ERROR, "%s", msg);
	fprintf(stderr, "km-shim: %s\n", msg);
	km_err_free(&err);
	return 1;
}

int main(int argc, char **argv)
{
	shim_args_t a;
	km_err_t *err = NULL;
	if (shim_cli_parse(argc, argv, &a, &err) != 0) {
		/* the log may be named already: clients read errors from it */
		if (a.log != NULL)
			shim_log_open(a.log, a.log_format, false, NULL);
		int rc = fail(err);
		shim_args_free(&a);
		return rc;
	}
	if (shim_log_open(a.log, a.log_format, a.debug, &err) != 0) {
		shim_args_free(&a);
		return fail(err);
	}
	int rc;
	if (a.version) {
		printf("km-shim version %s\nkm version %s\nspec: 1.2.0\n", SHIM_VERSION, SHIM_VERSION);
		rc = 0;
	} else if (a.help || a.cmd_help || a.cmd == SHIM_CMD_NONE) {
		fputs(shim_cli_usage(a.cmd_help ? a.cmd : SHIM_CMD_NONE), a.cmd == SHIM_CMD_NONE && !a.help ? stderr : stdout);
		rc = a.help || a.cmd_help ? 0 : 1;
	} else if (a.systemd_cgroup) {
		km_err_set(&err, 0, "--systemd-cgroup is not supported: km-shim manages the container's cgroups "
				    "itself (cgroupfs); drop the option (containerd: SystemdCgroup = false)");
		rc = fail(err);
	} else {
		shim_log(SHIM_LOG_DEBUG, "%s %s", shim_cmd_name(a.cmd), a.id != NULL ? a.id : "");
		rc = commands[a.cmd](&a, &err);
		if (rc < 0)
			rc = fail(err);
	}
	shim_log_close();
	shim_args_free(&a);
	return rc;
}
