/* A starter config.json: see oci_spec.h. */
#include "oci_spec.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const default_args[] = { "sh", NULL };
static const char *const env[] = {
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm", NULL,
};
/* runc's default: enough for a shell and a server on a low port, nothing that reaches the host. */
static const char *const caps[] = { "CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE", NULL };
static const char *const namespaces[] = { "pid", "network", "ipc", "uts", "mount", NULL };
static const char *const masked[] = {
	"/proc/acpi",	     "/proc/asound",	 "/proc/kcore",	      "/proc/keys",    "/proc/latency_stats",
	"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
	NULL,
};
static const char *const readonly[] = {
	"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

static const struct {
	const char *dest, *type, *source;
	const char *const options[8];
} mounts[] = {
	{ "/proc", "proc", "proc", { NULL } },
	{ "/dev", "tmpfs", "tmpfs", { "nosuid", "strictatime", "mode=755", "size=65536k", NULL } },
	{ "/dev/pts",
	  "devpts",
	  "devpts",
	  { "nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5", NULL } },
	{ "/dev/shm", "tmpfs", "shm", { "nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL } },
	{ "/dev/mqueue", "mqueue", "mqueue", { "nosuid", "noexec", "nodev", NULL } },
	{ "/sys", "sysfs", "sysfs", { "nosuid", "noexec", "nodev", "ro", NULL } },
};

/* A JSON array of the strings of v; NULL if one is not UTF-8 or memory runs out. */
static json_t *strings(const char *const *v)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && v[i] != NULL; i++) {
		if (json_array_append_new(a, json_string(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *process(const char *const *args)
{
	if (args == NULL || args[0] == NULL)
		args = default_args;
	json_t *a = strings(args);
	if (a == NULL)
		return NULL;
	return json_pack("{s:b, s:{s:i, s:i}, s:o, s:o, s:s, s:{s:o, s:o, s:o}, s:[{s:s, s:i, s:i}], s:b}",
			 "terminal", 0, "user", "uid", 0, "gid", 0, "args", a, "env", strings(env), "cwd", "/",
			 "capabilities", "bounding", strings(caps), "effective", strings(caps), "permitted",
			 strings(caps), "rlimits", "type", "RLIMIT_NOFILE", "hard", 1024, "soft", 1024,
			 "noNewPrivileges", 1);
}

static json_t *mount_list(void)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && i < sizeof(mounts) / sizeof(mounts[0]); i++) {
		json_t *m = json_pack("{s:s, s:s, s:s}", "destination", mounts[i].dest, "type", mounts[i].type,
				      "source", mounts[i].source);
		if (m != NULL && mounts[i].options[0] != NULL)
			json_object_set_new(m, "options", strings(mounts[i].options));
		if (json_array_append_new(a, m) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static json_t *linux_section(void)
{
	json_t *ns = json_array();
	for (size_t i = 0; ns != NULL && namespaces[i] != NULL; i++)
		json_array_append_new(ns, json_pack("{s:s}", "type", namespaces[i]));
	return json_pack("{s:{s:[{s:b, s:s}]}, s:o, s:o, s:o}", "resources", "devices", "allow", 0, "access",
			 "rwm", "namespaces", ns, "maskedPaths", strings(masked), "readonlyPaths", strings(readonly));
}

char *oci_spec_default(const char *const *args, km_err_t **err)
{
	json_t *proc = process(args);
	if (proc == NULL) {
		km_err_set(err, 0, "spec: process.args: an argument is not UTF-8 (or out of memory)");
		return NULL;
	}
	json_t *spec = json_pack("{s:s, s:o, s:{s:s, s:b}, s:s, s:o, s:o}", "ociVersion", "1.0.2", "process", proc,
				 "root", "path", "rootfs", "readonly", 1, "hostname", "km", "mounts", mount_list(),
				 "linux", linux_section());
	char *text = spec != NULL ? json_dumps(spec, JSON_INDENT(2)) : NULL;
	json_decref(spec);
	char *out = NULL;
	if (text != NULL && (out = malloc(strlen(text) + 2)) != NULL)
		strcpy(stpcpy(out, text), "\n");
	free(text);
	if (out == NULL)
		km_err_set(err, ENOMEM, "spec");
	return out;
}
