/* config.json's process object: see oci_config.h (oci_process_t). */
#include "oci_config_parts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* The capabilities of Linux 6.x, by number (CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40). */
static const char *const cap_names[] = {
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK",
	"CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
	"CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
	"CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
	"CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE", NULL,
};

int oci_cap_number(const char *name)
{
	return name != NULL ? oci_name_index(cap_names, name) : -1;
}

const char *oci_cap_name(int cap)
{
	int n = (int)(sizeof(cap_names) / sizeof(cap_names[0])) - 1;
	return cap >= 0 && cap < n ? cap_names[cap] : NULL;
}

static const struct {
	const char *name;
	int resource;
} rlimit_names[] = {
	{ "RLIMIT_AS", RLIMIT_AS },
	{ "RLIMIT_CORE", RLIMIT_CORE },
	{ "RLIMIT_CPU", RLIMIT_CPU },
	{ "RLIMIT_DATA", RLIMIT_DATA },
	{ "RLIMIT_FSIZE", RLIMIT_FSIZE },
	{ "RLIMIT_LOCKS", RLIMIT_LOCKS },
	{ "RLIMIT_MEMLOCK", RLIMIT_MEMLOCK },
	{ "RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE },
	{ "RLIMIT_NICE", RLIMIT_NICE },
	{ "RLIMIT_NOFILE", RLIMIT_NOFILE },
	{ "RLIMIT_NPROC", RLIMIT_NPROC },
	{ "RLIMIT_RSS", RLIMIT_RSS },
	{ "RLIMIT_RTPRIO", RLIMIT_RTPRIO },
	{ "RLIMIT_RTTIME", RLIMIT_RTTIME },
	{ "RLIMIT_SIGPENDING", RLIMIT_SIGPENDING },
	{ "RLIMIT_STACK", RLIMIT_STACK },
};

/* uid_t/gid_t -1 means "unchanged" to setresuid/setresgid: a config asking for it would leave
 * the process as km-shim's user, so the largest id allowed is one less. */
#define ID_MAX (UINT32_MAX - 1)

int oci_name_index(const char *const *names, const char *name)
{
	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

static int parse_console_size(oci_jpath_t *p, const json_t *obj, oci_process_t *proc)
{
	json_t *cs;
	/* The spec: runtimes must ignore consoleSize unless terminal is true. */
	if (!proc->terminal)
		return 0;
	if (oci_j_object(p, obj, "consoleSize", false, &cs) < 0)
		return -1;
	if (cs == NULL)
		return 0;
	size_t mark = oci_jp_key(p, "consoleSize");
	uint64_t h = 0, w = 0;
	int rc = oci_j_u64(p, cs, "height", true, 0, UINT16_MAX, NULL, &h) < 0 ||
			 oci_j_u64(p, cs, "width", true, 0, UINT16_MAX, NULL, &w) < 0
		 ? -1
		 : 0;
	oci_jp_restore(p, mark);
	proc->has_console_size = rc == 0;
	proc->console_height = h;
	proc->console_width = w;
	return rc;
}

static int parse_env(oci_jpath_t *p, const json_t *obj, oci_process_t *proc)
{
	if (oci_j_strv(p, obj, "env", false, false, &proc->env) < 0)
		return -1;
	for (size_t i = 0; proc->env != NULL && proc->env[i] != NULL; i++) {
		const char *eq = strchr(proc->env[i], '=');
		if (eq == NULL || eq == proc->env[i]) {
			size_t mark = oci_jp_key(p, "env");
			oci_jp_index(p, i);
			oci_jp_fail(p, "must be NAME=VALUE");
			oci_jp_restore(p, mark);
			return -1;
		}
	}
	return 0;
}

static int parse_gids(oci_jpath_t *p, const json_t *user, oci_process_t *proc)
{
	json_t *arr;
	if (oci_j_array(p, user, "additionalGids", false, &arr) < 0)
		return -1;
	if (arr == NULL || json_array_size(arr) == 0)
		return 0;
	proc->additional_gids = calloc(json_array_size(arr), sizeof(gid_t));
	if (proc->additional_gids == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	size_t mark = oci_jp_key(p, "additionalGids");
	int rc = 0;
	for (size_t i = 0; i < json_array_size(arr) && rc == 0; i++) {
		uint64_t g = 0;
		size_t m2 = oci_jp_index(p, i);
		rc = oci_jv_u64(p, json_array_get(arr, i), 0, ID_MAX, &g);
		oci_jp_restore(p, m2);
		proc->additional_gids[proc->n_additional_gids++] = g;
	}
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_user(oci_jpath_t *p, const json_t *obj, oci_process_t *proc)
{
	json_t *user;
	if (oci_j_object(p, obj, "user", true, &user) < 0)
		return -1;
	size_t mark = oci_jp_key(p, "user");
	uint64_t uid = 0, gid = 0, umask = 0;
	int rc = -1;
	if (oci_j_u64(p, user, "uid", true, 0, ID_MAX, NULL, &uid) == 0 &&
	    oci_j_u64(p, user, "gid", true, 0, ID_MAX, NULL, &gid) == 0 &&
	    oci_j_u64(p, user, "umask", false, 0, 0777, &proc->has_umask, &umask) == 0 &&
	    parse_gids(p, user, proc) == 0)
		rc = 0;
	oci_jp_restore(p, mark);
	proc->uid = uid;
	proc->gid = gid;
	proc->umask = umask;
	return rc;
}

static int find_rlimit(const char *name)
{
	for (size_t i = 0; i < sizeof(rlimit_names) / sizeof(rlimit_names[0]); i++)
		if (strcmp(rlimit_names[i].name, name) == 0)
			return rlimit_names[i].resource;
	return -1;
}

static int parse_rlimit(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_process_t *proc = ctx;
	oci_rlimit_t *rl = &proc->rlimits[i];
	char q[80];
	if (oci_j_string(p, obj, "type", true, &rl->type) < 0)
		return -1;
	rl->resource = find_rlimit(rl->type);
	if (rl->resource < 0)
		return oci_jp_fail_at(p, "type", "unknown rlimit \"%s\"", oci_jquote(rl->type, q, sizeof(q)));
	for (size_t j = 0; j < i; j++)
		if (proc->rlimits[j].resource == rl->resource)
			return oci_jp_fail_at(p, "type", "%s is set twice", rl->type);
	if (oci_j_u64(p, obj, "soft", true, 0, UINT64_MAX, NULL, &rl->soft) < 0 ||
	    oci_j_u64(p, obj, "hard", true, 0, UINT64_MAX, NULL, &rl->hard) < 0)
		return -1;
	if (rl->soft > rl->hard)
		return oci_jp_fail_at(p, "soft", "must not be above hard");
	return 0;
}

static int parse_rlimits(oci_jpath_t *p, const json_t *obj, oci_process_t *proc)
{
	json_t *arr;
	if (oci_j_array(p, obj, "rlimits", false, &arr) < 0)
		return -1;
	if (arr == NULL || json_array_size(arr) == 0)
		return 0;
	proc->rlimits = calloc(json_array_size(arr), sizeof(*proc->rlimits));
	if (proc->rlimits == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	proc->n_rlimits = json_array_size(arr);
	size_t mark = oci_jp_key(p, "rlimits");
	int rc = oci_j_each_object(p, arr, parse_rlimit, proc);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_cap_set(oci_jpath_t *p, const json_t *obj, const char *key, char ***set)
{
	char q[80];
	if (oci_j_strv(p, obj, key, false, false, set) < 0)
		return -1;
	for (size_t i = 0; *set != NULL && (*set)[i] != NULL; i++) {
		if (oci_name_index(cap_names, (*set)[i]) < 0) {
			size_t mark = oci_jp_key(p, key);
			oci_jp_index(p, i);
			oci_jp_fail(p, "unknown capability \"%s\"", oci_jquote((*set)[i], q, sizeof(q)));
			oci_jp_restore(p, mark);
			return -1;
		}
	}
	return 0;
}

static int parse_caps(oci_jpath_t *p, const json_t *obj, oci_process_t *proc)
{
	json_t *caps;
	if (oci_j_object(p, obj, "capabilities", false, &caps) < 0)
		return -1;
	if (caps == NULL)
		return 0;
	proc->caps = calloc(1, sizeof(*proc->caps));
	if (proc->caps == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	size_t mark = oci_jp_key(p, "capabilities");
	oci_caps_t *c = proc->caps;
	int rc = parse_cap_set(p, caps, "bounding", &c->bounding) < 0 ||
			 parse_cap_set(p, caps, "effective", &c->effective) < 0 ||
			 parse_cap_set(p, caps, "inheritable", &c->inheritable) < 0 ||
			 parse_cap_set(p, caps, "permitted", &c->permitted) < 0 ||
			 parse_cap_set(p, caps, "ambient", &c->ambient) < 0
		 ? -1
		 : 0;
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_cwd_args(oci_jpath_t *p, const json_t *obj, oci_process_t *proc)
{
	if (oci_j_string(p, obj, "cwd", true, &proc->cwd) < 0)
		return -1;
	if (!oci_is_abs(proc->cwd))
		return oci_jp_fail_at(p, "cwd", "must be an absolute path");
	/* args is required: absent is reported like empty, the one message the spec's rule needs. */
	if (json_object_get(obj, "args") == NULL || json_is_null(json_object_get(obj, "args")))
		return oci_jp_fail_at(p, "args", "must be a non-empty array of strings");
	return oci_j_strv(p, obj, "args", true, true, &proc->args);
}

int oci_parse_process(oci_jpath_t *p, const json_t *obj, oci_process_t *proc)
{
	int64_t oom = 0;
	if (oci_j_bool(p, obj, "terminal", &proc->terminal) < 0 || parse_console_size(p, obj, proc) < 0 ||
	    parse_cwd_args(p, obj, proc) < 0 || parse_env(p, obj, proc) < 0 || parse_user(p, obj, proc) < 0 ||
	    parse_rlimits(p, obj, proc) < 0 || parse_caps(p, obj, proc) < 0 ||
	    oci_j_bool(p, obj, "noNewPrivileges", &proc->no_new_privileges) < 0 ||
	    oci_j_i64(p, obj, "oomScoreAdj", false, -1000, 1000, &proc->has_oom_score_adj, &oom) < 0 ||
	    oci_j_string(p, obj, "apparmorProfile", false, &proc->apparmor_profile) < 0 ||
	    oci_j_string(p, obj, "selinuxLabel", false, &proc->selinux_label) < 0)
		return -1;
	proc->oom_score_adj = (int)oom;
	proc->has_scheduler = oci_j_nonempty(obj, "scheduler");
	proc->has_io_priority = oci_j_nonempty(obj, "ioPriority");
	return 0;
}

void oci_process_free(oci_process_t *proc)
{
	if (proc == NULL)
		return;
	free(proc->cwd);
	oci_strv_free(proc->args);
	oci_strv_free(proc->env);
	free(proc->additional_gids);
	for (size_t i = 0; i < proc->n_rlimits; i++)
		free(proc->rlimits[i].type);
	free(proc->rlimits);
	if (proc->caps != NULL) {
		oci_strv_free(proc->caps->bounding);
		oci_strv_free(proc->caps->effective);
		oci_strv_free(proc->caps->inheritable);
		oci_strv_free(proc->caps->permitted);
		oci_strv_free(proc->caps->ambient);
		free(proc->caps);
	}
	free(proc->apparmor_profile);
	free(proc->selinux_label);
	free(proc);
}
