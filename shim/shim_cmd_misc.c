/* pause, resume, events, update, features, spec, exec: see shim_cmd.h and docs/cli.md. */
#include "shim_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "oci_spec.h"
#include "shim_container.h"
#include "shim_log.h"
#include "shim_mgmt_client.h"

#define MGMT_TIMEOUT_MS 30000

/* pause/resume: a request to km (it stops or restarts every vCPU), then the record. */
static int pause_resume(const shim_args_t *a, bool pause, km_err_t **err)
{
	shim_ctr_t c;
	if (shim_ctr_open(a, true, &c, err) != 0)
		return -1;
	int rc = -1;
	oci_status_t s = shim_ctr_status(&c);
	if (pause && s != OCI_STATUS_RUNNING) {
		km_err_set(err, 0, "container not running: \"%s\" is %s", a->id, oci_status_name(s));
		goto out;
	}
	if (!pause && s != OCI_STATUS_PAUSED) {
		km_err_set(err, 0, "container not paused: \"%s\" is %s", a->id, oci_status_name(s));
		goto out;
	}
	shim_mgmt_reply_t r;
	if (shim_mgmt_call(c.dir.dirfd, pause ? "pause" : "resume", -1, MGMT_TIMEOUT_MS, &r, err) != 0) {
		km_err_wrap(err, "%s \"%s\"", pause ? "pausing" : "resuming", a->id);
		goto out;
	}
	shim_mgmt_reply_free(&r);
	c.st->status = pause ? OCI_STATUS_PAUSED : OCI_STATUS_RUNNING;
	rc = oci_state_write(c.dir.path, c.st, err);
out:
	shim_ctr_close(&c);
	return rc;
}

int shim_cmd_pause(const shim_args_t *a, km_err_t **err)
{
	return pause_resume(a, true, err);
}

int shim_cmd_resume(const shim_args_t *a, km_err_t **err)
{
	return pause_resume(a, false, err);
}

/* --- events --------------------------------------------------------------------------------- */

/* One runc-style stats event line for c. */
static int print_stats(shim_ctr_t *c, km_err_t **err)
{
	shim_cgroup_stats_t s;
	memset(&s, 0, sizeof(s));
	if (c->st->cgroup_path != NULL && shim_cgroup_stats(c->st->cgroup_path, c->st->cgroup_paths, &s, err) != 0)
		return -1;
	json_t *o = json_pack("{s:s, s:s, s:{s:{s:{s:I}}, s:{s:{s:I, s:I, s:I}}, s:{s:I, s:I}}}", "type", "stats",
			      "id", c->st->id, "data", "cpu", "usage", "total", (json_int_t)s.cpu_usage_ns, "memory",
			      "usage", "usage", (json_int_t)s.memory_usage, "limit", (json_int_t)s.memory_limit, "max",
			      (json_int_t)s.memory_max_usage, "pids", "current", (json_int_t)s.pids_current, "limit",
			      (json_int_t)s.pids_limit);
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (text == NULL)
		return km_err_set(err, ENOMEM, "events");
	printf("%s\n", text);
	free(text);
	return fflush(stdout) == 0 ? 0 : km_err_set(err, errno, "writing events");
}

int shim_cmd_events(const shim_args_t *a, km_err_t **err)
{
	shim_ctr_t c;
	if (shim_ctr_open(a, false, &c, err) != 0)
		return -1;
	int rc = -1;
	oci_status_t s = shim_ctr_status(&c);
	if (s == OCI_STATUS_STOPPED) {
		km_err_set(err, 0, "container not running: \"%s\"", a->id);
		goto out;
	}
	for (;;) {
		if (print_stats(&c, err) != 0)
			goto out;
		if (a->stats)
			break;
		struct timespec ts = {(time_t)(a->interval_ns / 1000000000ull), (long)(a->interval_ns % 1000000000ull)};
		nanosleep(&ts, NULL);
		if (!shim_pid_running(c.st->pid, c.st->pid_start_time))
			break; /* runc's events end with the container */
	}
	rc = 0;
out:
	shim_ctr_close(&c);
	return rc;
}

/* --- update --------------------------------------------------------------------------------- */

/* Reads linux.resources-shaped JSON (runc update -r) into res. */
static int read_resources_file(const char *path, oci_resources_t *res, km_err_t **err)
{
	json_error_t je;
	json_t *o = strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &je) : json_load_file(path, 0, &je);
	if (o == NULL)
		return km_err_set(err, 0, "%s: line %d: %s", path, je.line, je.text);
	int rc = 0;
	json_t *mem = json_object_get(o, "memory"), *cpu = json_object_get(o, "cpu"), *pids = json_object_get(o, "pids");
	json_t *v;
#define GET_INT(obj, key, has, field)                                                                            \
	if ((v = json_object_get(obj, key)) != NULL && !json_is_null(v)) {                                       \
		if (!json_is_integer(v))                                                                         \
			rc = km_err_set(err, 0, "%s: %s.%s must be an integer", path, #obj, key);                \
		else {                                                                                           \
			res->has = true;                                                                         \
			res->field = json_integer_value(v);                                                      \
		}                                                                                                \
	}
	GET_INT(mem, "limit", has_memory_limit, memory_limit)
	GET_INT(mem, "reservation", has_memory_reservation, memory_reservation)
	GET_INT(mem, "swap", has_memory_swap, memory_swap)
	GET_INT(cpu, "shares", has_cpu_shares, cpu_shares)
	GET_INT(cpu, "quota", has_cpu_quota, cpu_quota)
	GET_INT(cpu, "period", has_cpu_period, cpu_period)
	GET_INT(pids, "limit", has_pids_limit, pids_limit)
#undef GET_INT
	json_decref(o);
	return rc;
}

int shim_cmd_update(const shim_args_t *a, km_err_t **err)
{
	oci_resources_t res;
	memset(&res, 0, sizeof(res));
	if (a->resources_file != NULL && read_resources_file(a->resources_file, &res, err) != 0)
		return -1;
	/* flags win over the file, as in runc */
	if (a->has_memory)
		res.has_memory_limit = true, res.memory_limit = a->memory;
	if (a->has_memory_swap)
		res.has_memory_swap = true, res.memory_swap = a->memory_swap;
	if (a->has_memory_reservation)
		res.has_memory_reservation = true, res.memory_reservation = a->memory_reservation;
	if (a->has_pids_limit)
		res.has_pids_limit = true, res.pids_limit = a->pids_limit;
	if (a->has_cpu_shares)
		res.has_cpu_shares = true, res.cpu_shares = a->cpu_shares;
	if (a->has_cpu_quota)
		res.has_cpu_quota = true, res.cpu_quota = a->cpu_quota;
	if (a->has_cpu_period)
		res.has_cpu_period = true, res.cpu_period = a->cpu_period;
	shim_ctr_t c;
	if (shim_ctr_open(a, true, &c, err) != 0)
		return -1;
	int rc = -1;
	oci_status_t s = shim_ctr_status(&c);
	if (s == OCI_STATUS_STOPPED) {
		km_err_set(err, 0, "container not running: \"%s\"", a->id);
	} else if (c.st->cgroup_path == NULL) {
		km_err_set(err, 0, "update: container \"%s\" has no cgroup to update", a->id);
	} else if (shim_cgroup_update(c.st->cgroup_path, c.st->cgroup_paths, &res, err) == 0) {
		if (res.has_memory_limit)
			shim_log(SHIM_LOG_DEBUG, "update %s: the cgroup's memory limit changed; km's own --memory "
						 "stays what it was at create", a->id);
		rc = 0;
	}
	shim_ctr_close(&c);
	return rc;
}

/* --- features, spec, exec ------------------------------------------------------------------- */

static const char features_json[] =
    "{\n"
    "  \"ociVersionMin\": \"1.0.0\",\n"
    "  \"ociVersionMax\": \"1.2.0\",\n"
    "  \"hooks\": [\"prestart\", \"createRuntime\", \"createContainer\", \"startContainer\", \"poststart\", "
    "\"poststop\"],\n"
    "  \"mountOptions\": [\"bind\", \"rbind\", \"ro\", \"rw\", \"nosuid\", \"suid\", \"nodev\", \"dev\", \"noexec\", "
    "\"exec\", \"private\", \"rprivate\", \"shared\", \"rshared\", \"slave\", \"rslave\", \"relatime\", "
    "\"norelatime\", \"strictatime\", \"noatime\", \"mode\", \"size\", \"newinstance\", \"ptmxmode\", "
    "\"gid\", \"uid\"],\n"
    "  \"linux\": {\n"
    "    \"namespaces\": [\"cgroup\", \"ipc\", \"mount\", \"network\", \"pid\", \"user\", \"uts\"],\n"
    "    \"capabilities\": [\"CAP_CHOWN\", \"CAP_DAC_OVERRIDE\", \"CAP_DAC_READ_SEARCH\", \"CAP_FOWNER\", "
    "\"CAP_FSETID\", \"CAP_KILL\", \"CAP_SETGID\", \"CAP_SETUID\", \"CAP_SETPCAP\", \"CAP_LINUX_IMMUTABLE\", "
    "\"CAP_NET_BIND_SERVICE\", \"CAP_NET_BROADCAST\", \"CAP_NET_ADMIN\", \"CAP_NET_RAW\", \"CAP_IPC_LOCK\", "
    "\"CAP_IPC_OWNER\", \"CAP_SYS_MODULE\", \"CAP_SYS_RAWIO\", \"CAP_SYS_CHROOT\", \"CAP_SYS_PTRACE\", "
    "\"CAP_SYS_PACCT\", \"CAP_SYS_ADMIN\", \"CAP_SYS_BOOT\", \"CAP_SYS_NICE\", \"CAP_SYS_RESOURCE\", "
    "\"CAP_SYS_TIME\", \"CAP_SYS_TTY_CONFIG\", \"CAP_MKNOD\", \"CAP_LEASE\", \"CAP_AUDIT_WRITE\", "
    "\"CAP_AUDIT_CONTROL\", \"CAP_SETFCAP\", \"CAP_MAC_OVERRIDE\", \"CAP_MAC_ADMIN\", \"CAP_SYSLOG\", "
    "\"CAP_WAKE_ALARM\", \"CAP_BLOCK_SUSPEND\", \"CAP_AUDIT_READ\", \"CAP_PERFMON\", \"CAP_BPF\", "
    "\"CAP_CHECKPOINT_RESTORE\"],\n"
    "    \"cgroup\": {\"v1\": true, \"v2\": true, \"systemd\": false, \"systemdUser\": false},\n"
    "    \"seccomp\": {\n"
    "      \"enabled\": true,\n"
    "      \"actions\": [\"SCMP_ACT_ALLOW\", \"SCMP_ACT_ERRNO\", \"SCMP_ACT_KILL\", \"SCMP_ACT_KILL_PROCESS\", "
    "\"SCMP_ACT_KILL_THREAD\", \"SCMP_ACT_LOG\", \"SCMP_ACT_TRAP\"],\n"
    "      \"operators\": [\"SCMP_CMP_EQ\", \"SCMP_CMP_GE\", \"SCMP_CMP_GT\", \"SCMP_CMP_LE\", \"SCMP_CMP_LT\", "
    "\"SCMP_CMP_MASKED_EQ\", \"SCMP_CMP_NE\"],\n"
    "      \"archs\": [\"SCMP_ARCH_X86_64\"]\n"
    "    },\n"
    "    \"apparmor\": {\"enabled\": false},\n"
    "    \"selinux\": {\"enabled\": false}\n"
    "  },\n"
    "  \"annotations\": {\n"
    "    \"org.opencontainers.runc.checkpoint.enabled\": \"true\",\n"
    "    \"run.km-shim.exec\": \"unsupported\"\n"
    "  }\n"
    "}\n";

int shim_cmd_features(const shim_args_t *a, km_err_t **err)
{
	(void)a;
	fputs(features_json, stdout);
	return fflush(stdout) == 0 ? 0 : km_err_set(err, errno, "writing features");
}

int shim_cmd_spec(const shim_args_t *a, km_err_t **err)
{
	const char *dir = a->bundle != NULL ? a->bundle : ".";
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/config.json", dir) >= (int)sizeof(path))
		return km_err_set(err, ENAMETOOLONG, "spec: %s", dir);
	char *text = oci_spec_default(NULL, err);
	if (text == NULL)
		return km_err_wrap(err, "spec");
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		int e = errno;
		free(text);
		if (e == EEXIST)
			return km_err_set(err, 0, "spec: %s already exists; remove it first", path);
		return km_err_set(err, e, "spec: %s", path);
	}
	size_t len = strlen(text);
	bool ok = write(fd, text, len) == (ssize_t)len;
	int e = errno;
	free(text);
	if (close(fd) != 0 || !ok) {
		unlink(path);
		return km_err_set(err, e, "spec: writing %s", path);
	}
	return 0;
}

int shim_cmd_exec(const shim_args_t *a, km_err_t **err)
{
	(void)a;
	return km_err_set(err, 0, "exec: km cannot run a second process in a container yet");
}
