/*
 * oci/oci_config: every field of config.json parsed into oci_config_t, and every refusal with its
 * exact message naming the JSON path. Most error cases start from a minimal valid config and
 * change one member (edit()), so each proves that one value alone is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci_config.h"

static const char *const minimal = "{\"ociVersion\":\"1.0.2\",\"process\":{\"cwd\":\"/\",\"args\":[\"sh\"],"
				   "\"user\":{\"uid\":0,\"gid\":0}},\"root\":{\"path\":\"rootfs\"}}";

static oci_config_t *parse(const char *json, km_err_t **err)
{
	return oci_config_parse(json, strlen(json), "config.json", err);
}

/* Asserts that `json` is refused with exactly `msg`. */
static void refused(const char *json, const char *msg)
{
	km_err_t *err = NULL;
	oci_config_t *cfg = parse(json, &err);
	if (cfg != NULL)
		fail_msg("accepted, expected \"%s\": %s", msg, json);
	assert_non_null(err);
	if (strcmp(err->msg, msg) != 0)
		fail_msg("message\n  got:  %s\n  want: %s\n  for:  %s", err->msg, msg, json);
	km_err_free(&err);
}

static oci_config_t *accepted(const char *json)
{
	km_err_t *err = NULL;
	oci_config_t *cfg = parse(json, &err);
	if (cfg == NULL)
		fail_msg("refused: %s\n  for: %s", err->msg, json);
	assert_null(err);
	return cfg;
}

/* The minimal config with the member at dotted `path` set to the JSON `value` (removed if NULL);
 * objects on the way are created. Caller frees. */
static char *edit(const char *base, const char *path, const char *value)
{
	json_t *root = json_loads(base, 0, NULL);
	assert_non_null(root);
	char *copy = strdup(path), *save = NULL, *key = strtok_r(copy, ".", &save);
	json_t *obj = root;
	for (char *next; (next = strtok_r(NULL, ".", &save)) != NULL; key = next) {
		json_t *child = json_object_get(obj, key);
		if (!json_is_object(child))
			json_object_set_new(obj, key, child = json_object());
		obj = child;
	}
	/* A value jansson cannot hold (an integer above INT64_MAX) goes in as text, by a placeholder. */
	json_t *v = value != NULL ? json_loads(value, JSON_DECODE_ANY, NULL) : NULL;
	if (value == NULL)
		json_object_del(obj, key);
	else
		json_object_set_new(obj, key, v != NULL ? v : json_string("@RAW@"));
	char *out = json_dumps(root, 0);
	json_decref(root);
	free(copy);
	char *at = out != NULL ? strstr(out, "\"@RAW@\"") : NULL;
	if (value != NULL && v == NULL) {
		char *raw = NULL;
		assert_non_null(at);
		assert_true(asprintf(&raw, "%.*s%s%s", (int)(at - out), out, value, at + 7) > 0);
		free(out);
		out = raw;
	}
	return out;
}

typedef struct edit_case {
	const char *path, *value; /* applied to `minimal` */
	const char *path2, *value2; /* then this, if path2 */
	const char *msg;
} edit_case_t;

static const edit_case_t cases[] = {
	/* top level */
	{ "ociVersion", NULL, 0, 0, "config.json: ociVersion: is required" },
	{ "ociVersion", "5", 0, 0, "config.json: ociVersion: must be a string" },
	{ "ociVersion", "\"\"", 0, 0, "config.json: ociVersion: must not be empty" },
	{ "process", NULL, 0, 0, "config.json: process: is required" },
	{ "process", "[]", 0, 0, "config.json: process: must be an object" },
	{ "root", NULL, 0, 0, "config.json: root: is required" },
	{ "root", "\"rootfs\"", 0, 0, "config.json: root: must be an object" },
	{ "root.path", NULL, 0, 0, "config.json: root.path: is required" },
	{ "root.path", "\"\"", 0, 0, "config.json: root.path: must not be empty" },
	{ "root.readonly", "\"true\"", 0, 0, "config.json: root.readonly: must be true or false" },
	{ "hostname", "1", 0, 0, "config.json: hostname: must be a string" },
	{ "domainname", "[]", 0, 0, "config.json: domainname: must be a string" },
	/* process */
	{ "process.cwd", NULL, 0, 0, "config.json: process.cwd: is required" },
	{ "process.cwd", "\"tmp\"", 0, 0, "config.json: process.cwd: must be an absolute path" },
	{ "process.cwd", "\"\"", 0, 0, "config.json: process.cwd: must be an absolute path" },
	{ "process.args", NULL, 0, 0, "config.json: process.args: must be a non-empty array of strings" },
	{ "process.args", "[]", 0, 0, "config.json: process.args: must be a non-empty array of strings" },
	{ "process.args", "[\"sh\",1]", 0, 0, "config.json: process.args: must be a non-empty array of strings" },
	{ "process.args", "\"sh\"", 0, 0, "config.json: process.args: must be a non-empty array of strings" },
	{ "process.env", "[\"A=1\",\"B\"]", 0, 0, "config.json: process.env[1]: must be NAME=VALUE" },
	{ "process.env", "[\"=1\"]", 0, 0, "config.json: process.env[0]: must be NAME=VALUE" },
	{ "process.env", "{}", 0, 0, "config.json: process.env: must be an array of strings" },
	{ "process.terminal", "\"yes\"", 0, 0, "config.json: process.terminal: must be true or false" },
	{ "process.terminal", "true", "process.consoleSize", "{\"width\":80}", "config.json: process.consoleSize.height: is required" },
	{ "process.terminal", "true", "process.consoleSize", "{\"width\":80,\"height\":65536}",
	  "config.json: process.consoleSize.height: must be an integer from 0 to 65535" },
	{ "process.terminal", "true", "process.consoleSize", "5", "config.json: process.consoleSize: must be an object" },
	{ "process.user", NULL, 0, 0, "config.json: process.user: is required" },
	{ "process.user.uid", NULL, 0, 0, "config.json: process.user.uid: is required" },
	{ "process.user.uid", "-1", 0, 0, "config.json: process.user.uid: must be an integer from 0 to 4294967294" },
	{ "process.user.uid", "4294967295", 0, 0, "config.json: process.user.uid: must be an integer from 0 to 4294967294" },
	{ "process.user.uid", "1.0", 0, 0, "config.json: process.user.uid: must be an integer from 0 to 4294967294" },
	{ "process.user.gid", "\"0\"", 0, 0, "config.json: process.user.gid: must be an integer from 0 to 4294967294" },
	{ "process.user.umask", "512", 0, 0, "config.json: process.user.umask: must be an integer from 0 to 511" },
	{ "process.user.additionalGids", "[1,\"x\"]", 0, 0,
	  "config.json: process.user.additionalGids[1]: must be an integer from 0 to 4294967294" },
	{ "process.user.additionalGids", "{}", 0, 0, "config.json: process.user.additionalGids: must be an array" },
	{ "process.rlimits", "{}", 0, 0, "config.json: process.rlimits: must be an array" },
	{ "process.rlimits", "[5]", 0, 0, "config.json: process.rlimits[0]: must be an object" },
	{ "process.rlimits", "[{\"type\":\"RLIMIT_FOO\",\"soft\":1,\"hard\":1}]", 0, 0,
	  "config.json: process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\"" },
	{ "process.rlimits", "[{\"soft\":1,\"hard\":1}]", 0, 0, "config.json: process.rlimits[0].type: is required" },
	{ "process.rlimits", "[{\"type\":\"RLIMIT_NOFILE\",\"soft\":2,\"hard\":1}]", 0, 0,
	  "config.json: process.rlimits[0].soft: must not be above hard" },
	{ "process.rlimits", "[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1}]", 0, 0, "config.json: process.rlimits[0].hard: is required" },
	{ "process.rlimits", "[{\"type\":\"RLIMIT_NOFILE\",\"soft\":-1,\"hard\":1}]", 0, 0,
	  "config.json: process.rlimits[0].soft: must be an integer from 0 to 18446744073709551615" },
	{ "process.rlimits", "[{\"type\":\"RLIMIT_CORE\",\"soft\":0,\"hard\":0},{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,\"hard\":1},"
			     "{\"type\":\"RLIMIT_NOFILE\",\"soft\":1,\"hard\":1}]",
	  0, 0, "config.json: process.rlimits[2].type: RLIMIT_NOFILE is set twice" },
	{ "process.capabilities", "[]", 0, 0, "config.json: process.capabilities: must be an object" },
	{ "process.capabilities.bounding", "[\"CAP_FOO\"]", 0, 0,
	  "config.json: process.capabilities.bounding[0]: unknown capability \"CAP_FOO\"" },
	{ "process.capabilities.ambient", "[\"CAP_CHOWN\",\"cap_kill\"]", 0, 0,
	  "config.json: process.capabilities.ambient[1]: unknown capability \"cap_kill\"" },
	{ "process.capabilities.effective", "[\"CAP_BPF\",\"CAP_\\n\"]", 0, 0,
	  "config.json: process.capabilities.effective[1]: unknown capability \"CAP_?\"" },
	{ "process.capabilities.inheritable", "\"CAP_CHOWN\"", 0, 0,
	  "config.json: process.capabilities.inheritable: must be an array of strings" },
	{ "process.capabilities.permitted", "[\"CAP_CHECKPOINT_RESTORE\",\"CAP_41\"]", 0, 0,
	  "config.json: process.capabilities.permitted[1]: unknown capability \"CAP_41\"" },
	{ "process.noNewPrivileges", "1", 0, 0, "config.json: process.noNewPrivileges: must be true or false" },
	{ "process.oomScoreAdj", "1001", 0, 0, "config.json: process.oomScoreAdj: must be an integer from -1000 to 1000" },
	{ "process.oomScoreAdj", "-1001", 0, 0, "config.json: process.oomScoreAdj: must be an integer from -1000 to 1000" },
	{ "process.apparmorProfile", "1", 0, 0, "config.json: process.apparmorProfile: must be a string" },
	{ "process.selinuxLabel", "true", 0, 0, "config.json: process.selinuxLabel: must be a string" },
	/* mounts */
	{ "mounts", "{}", 0, 0, "config.json: mounts: must be an array" },
	{ "mounts", "[\"/proc\"]", 0, 0, "config.json: mounts[0]: must be an object" },
	{ "mounts", "[{\"destination\":\"/a\"},{\"type\":\"tmpfs\"}]", 0, 0, "config.json: mounts[1].destination: is required" },
	{ "mounts", "[{\"destination\":\"dev\"}]", 0, 0, "config.json: mounts[0].destination: must be an absolute path" },
	{ "mounts", "[{\"destination\":\"/d\",\"type\":1}]", 0, 0, "config.json: mounts[0].type: must be a string" },
	{ "mounts", "[{\"destination\":\"/d\",\"source\":[]}]", 0, 0, "config.json: mounts[0].source: must be a string" },
	{ "mounts", "[{\"destination\":\"/d\",\"options\":\"ro\"}]", 0, 0, "config.json: mounts[0].options: must be an array of strings" },
	/* linux */
	{ "linux", "[]", 0, 0, "config.json: linux: must be an object" },
	{ "linux.namespaces", "{}", 0, 0, "config.json: linux.namespaces: must be an array" },
	{ "linux.namespaces", "[{}]", 0, 0, "config.json: linux.namespaces[0].type: is required" },
	{ "linux.namespaces", "[{\"type\":\"foo\"}]", 0, 0, "config.json: linux.namespaces[0].type: unknown namespace type \"foo\"" },
	{ "linux.namespaces", "[{\"type\":\"pid\"},{\"type\":\"user\"},{\"type\":\"pid\"}]", 0, 0,
	  "config.json: linux.namespaces[2].type: namespace pid is listed twice" },
	{ "linux.namespaces", "[{\"type\":\"network\",\"path\":\"proc/1/ns/net\"}]", 0, 0,
	  "config.json: linux.namespaces[0].path: must be an absolute path" },
	{ "linux.uidMappings", "[{\"containerID\":0,\"hostID\":1000,\"size\":0}]", 0, 0,
	  "config.json: linux.uidMappings[0].size: must be an integer from 1 to 4294967295" },
	{ "linux.uidMappings", "[{\"containerID\":4294967295,\"hostID\":1000,\"size\":2}]", 0, 0,
	  "config.json: linux.uidMappings[0].size: containerID + size is beyond 2^32" },
	{ "linux.gidMappings", "[{\"containerID\":0,\"hostID\":4294967295,\"size\":2}]", 0, 0,
	  "config.json: linux.gidMappings[0].size: hostID + size is beyond 2^32" },
	{ "linux.gidMappings", "[{\"containerID\":0,\"size\":1}]", 0, 0, "config.json: linux.gidMappings[0].hostID: is required" },
	{ "linux.gidMappings", "[{\"containerID\":-1,\"hostID\":0,\"size\":1}]", 0, 0,
	  "config.json: linux.gidMappings[0].containerID: must be an integer from 0 to 4294967295" },
	{ "linux.devices", "[{\"path\":\"/dev/x\",\"type\":\"x\",\"major\":1,\"minor\":1}]", 0, 0,
	  "config.json: linux.devices[0].type: must be \"c\", \"b\", \"u\" or \"p\"" },
	{ "linux.devices", "[{\"path\":\"/dev/x\",\"type\":\"cc\",\"major\":1,\"minor\":1}]", 0, 0,
	  "config.json: linux.devices[0].type: must be \"c\", \"b\", \"u\" or \"p\"" },
	{ "linux.devices", "[{\"path\":\"/dev/x\",\"type\":\"c\",\"minor\":1}]", 0, 0, "config.json: linux.devices[0].major: is required" },
	{ "linux.devices", "[{\"path\":\"/dev/x\",\"type\":\"b\",\"major\":1}]", 0, 0, "config.json: linux.devices[0].minor: is required" },
	{ "linux.devices", "[{\"path\":\"/dev/x\",\"type\":\"u\",\"major\":1,\"minor\":-1}]", 0, 0,
	  "config.json: linux.devices[0].minor: must be an integer from 0 to 9223372036854775807" },
	{ "linux.devices", "[{\"path\":\"dev/x\",\"type\":\"p\"}]", 0, 0, "config.json: linux.devices[0].path: must be an absolute path" },
	{ "linux.devices", "[{\"type\":\"p\"}]", 0, 0, "config.json: linux.devices[0].path: is required" },
	{ "linux.devices", "[{\"path\":\"/p\"}]", 0, 0, "config.json: linux.devices[0].type: is required" },
	{ "linux.devices", "[{\"path\":\"/p\",\"type\":\"p\",\"fileMode\":4096}]", 0, 0,
	  "config.json: linux.devices[0].fileMode: must be an integer from 0 to 4095" },
	{ "linux.devices", "[{\"path\":\"/p\",\"type\":\"p\",\"uid\":-1}]", 0, 0,
	  "config.json: linux.devices[0].uid: must be an integer from 0 to 4294967294" },
	{ "linux.devices", "[{\"path\":\"/p\",\"type\":\"p\",\"gid\":\"0\"}]", 0, 0,
	  "config.json: linux.devices[0].gid: must be an integer from 0 to 4294967294" },
	{ "linux.resources", "1", 0, 0, "config.json: linux.resources: must be an object" },
	{ "linux.resources.memory.limit", "-2", 0, 0,
	  "config.json: linux.resources.memory.limit: must be an integer from -1 to 9223372036854775807" },
	{ "linux.resources.memory.reservation", "\"1G\"", 0, 0,
	  "config.json: linux.resources.memory.reservation: must be an integer from -1 to 9223372036854775807" },
	{ "linux.resources.memory.swap", "9223372036854775808", 0, 0,
	  "config.json: linux.resources.memory.swap: must be an integer from -1 to 9223372036854775807" },
	{ "linux.resources.pids", "{}", 0, 0, "config.json: linux.resources.pids.limit: is required" },
	{ "linux.resources.pids.limit", "1.5", 0, 0,
	  "config.json: linux.resources.pids.limit: must be an integer from -9223372036854775808 to 9223372036854775807" },
	{ "linux.resources.cpu.shares", "-1", 0, 0,
	  "config.json: linux.resources.cpu.shares: must be an integer from 0 to 18446744073709551615" },
	{ "linux.resources.cpu.period", "true", 0, 0,
	  "config.json: linux.resources.cpu.period: must be an integer from 0 to 18446744073709551615" },
	{ "linux.resources.cpu.quota", "\"max\"", 0, 0,
	  "config.json: linux.resources.cpu.quota: must be an integer from -9223372036854775808 to 9223372036854775807" },
	{ "linux.resources.cpu.cpus", "1", 0, 0, "config.json: linux.resources.cpu.cpus: must be a string" },
	{ "linux.resources.cpu.mems", "0", 0, 0, "config.json: linux.resources.cpu.mems: must be a string" },
	{ "linux.resources.devices", "[{\"access\":\"rwm\"}]", 0, 0, "config.json: linux.resources.devices[0].allow: is required" },
	{ "linux.resources.devices", "[{\"allow\":\"no\"}]", 0, 0, "config.json: linux.resources.devices[0].allow: must be true or false" },
	{ "linux.resources.devices", "[true]", 0, 0, "config.json: linux.resources.devices[0]: must be an object" },
	{ "linux.resources.devices", "[{\"allow\":true,\"type\":\"u\"}]", 0, 0,
	  "config.json: linux.resources.devices[0].type: must be \"a\", \"c\" or \"b\"" },
	{ "linux.resources.devices", "[{\"allow\":true},{\"allow\":true,\"type\":\"cb\"}]", 0, 0,
	  "config.json: linux.resources.devices[1].type: must be \"a\", \"c\" or \"b\"" },
	{ "linux.resources.devices", "[{\"allow\":true,\"major\":-2}]", 0, 0,
	  "config.json: linux.resources.devices[0].major: must be an integer from -1 to 4294967295" },
	{ "linux.resources.devices", "[{\"allow\":true,\"minor\":4294967296}]", 0, 0,
	  "config.json: linux.resources.devices[0].minor: must be an integer from -1 to 4294967295" },
	{ "linux.resources.devices", "[{\"allow\":false,\"access\":\"\"}]", 0, 0,
	  "config.json: linux.resources.devices[0].access: must be a non-empty combination of r, w and m, each at most once" },
	{ "linux.resources.devices", "[{\"allow\":false,\"access\":\"rwx\"}]", 0, 0,
	  "config.json: linux.resources.devices[0].access: must be a non-empty combination of r, w and m, each at most once" },
	{ "linux.resources.devices", "[{\"allow\":false,\"access\":\"rr\"}]", 0, 0,
	  "config.json: linux.resources.devices[0].access: must be a non-empty combination of r, w and m, each at most once" },
	{ "linux.resources.devices", "[{\"allow\":false,\"access\":7}]", 0, 0,
	  "config.json: linux.resources.devices[0].access: must be a string" },
	{ "linux.cgroupsPath", "1", 0, 0, "config.json: linux.cgroupsPath: must be a string" },
	{ "linux.maskedPaths", "[\"/proc/kcore\",\"proc/keys\"]", 0, 0, "config.json: linux.maskedPaths[1]: must be an absolute path" },
	{ "linux.readonlyPaths", "\"/proc\"", 0, 0, "config.json: linux.readonlyPaths: must be an array of strings" },
	{ "linux.sysctl", "[]", 0, 0, "config.json: linux.sysctl: must be an object" },
	{ "linux.sysctl", "{\"net.ipv4.ip_forward\":1}", 0, 0, "config.json: linux.sysctl.net.ipv4.ip_forward: must be a string" },
	{ "linux.sysctl", "{\"\":\"1\"}", 0, 0, "config.json: linux.sysctl: keys must not be empty" },
	{ "linux.rootfsPropagation", "\"weird\"", 0, 0, "config.json: linux.rootfsPropagation: unknown propagation \"weird\"" },
	{ "linux.mountLabel", "1", 0, 0, "config.json: linux.mountLabel: must be a string" },
	/* linux.seccomp */
	{ "linux.seccomp", "[]", 0, 0, "config.json: linux.seccomp: must be an object" },
	{ "linux.seccomp", "{}", 0, 0, "config.json: linux.seccomp.defaultAction: is required" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_FOO\"", 0, 0,
	  "config.json: linux.seccomp.defaultAction: unknown action \"SCMP_ACT_FOO\"" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.defaultErrnoRet", "1",
	  "config.json: linux.seccomp.defaultErrnoRet: is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ERRNO\"", "linux.seccomp.defaultErrnoRet", "4096",
	  "config.json: linux.seccomp.defaultErrnoRet: must be an integer from 0 to 4095" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.architectures", "[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_Z80\"]",
	  "config.json: linux.seccomp.architectures[1]: unknown architecture \"SCMP_ARCH_Z80\"" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.flags", "[\"SECCOMP_FILTER_FLAG_FAST\"]",
	  "config.json: linux.seccomp.flags[0]: unknown flag \"SECCOMP_FILTER_FLAG_FAST\"" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls", "{}",
	  "config.json: linux.seccomp.syscalls: must be an array" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls", "[{\"names\":[],\"action\":\"SCMP_ACT_ERRNO\"}]",
	  "config.json: linux.seccomp.syscalls[0].names: must be a non-empty array of strings" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls", "[{\"action\":\"SCMP_ACT_ERRNO\"}]",
	  "config.json: linux.seccomp.syscalls[0].names: is required" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls", "[{\"names\":[\"read\"]}]",
	  "config.json: linux.seccomp.syscalls[0].action: is required" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls",
	  "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_KILL\",\"errnoRet\":1}]",
	  "config.json: linux.seccomp.syscalls[0].errnoRet: is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls",
	  "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":6,\"value\":0,\"op\":\"SCMP_CMP_EQ\"}]}]",
	  "config.json: linux.seccomp.syscalls[0].args[0].index: must be an integer from 0 to 5" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls",
	  "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_XX\"}]}]",
	  "config.json: linux.seccomp.syscalls[0].args[0].op: unknown operator \"SCMP_CMP_XX\"" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls",
	  "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"op\":\"SCMP_CMP_EQ\"}]}]",
	  "config.json: linux.seccomp.syscalls[0].args[0].value: is required" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls",
	  "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"value\":0,\"op\":\"SCMP_CMP_EQ\"}]}]",
	  "config.json: linux.seccomp.syscalls[0].args[0].index: is required" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls",
	  "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":0}]}]",
	  "config.json: linux.seccomp.syscalls[0].args[0].op: is required" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls",
	  "[{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\",\"args\":[{\"index\":0,\"value\":18446744073709551616,\"op\":\"SCMP_CMP_EQ\"}]}]",
	  "config.json: invalid JSON at line 1 column 284: too big integer near '18446744073709551616'" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_NOTIFY\"", 0, 0,
	  "config.json: linux.seccomp.listenerPath: is required by SCMP_ACT_NOTIFY" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.syscalls", "[{\"names\":[\"ioctl\"],\"action\":\"SCMP_ACT_NOTIFY\"}]",
	  "config.json: linux.seccomp.listenerPath: is required by SCMP_ACT_NOTIFY" },
	{ "linux.seccomp.defaultAction", "\"SCMP_ACT_ALLOW\"", "linux.seccomp.listenerPath", "\"run/sock\"",
	  "config.json: linux.seccomp.listenerPath: must be an absolute path" },
	/* hooks */
	{ "hooks", "[]", 0, 0, "config.json: hooks: must be an object" },
	{ "hooks.prestart", "{}", 0, 0, "config.json: hooks.prestart: must be an array" },
	{ "hooks.poststop", "[{\"path\":\"bin/true\"}]", 0, 0, "config.json: hooks.poststop[0].path: must be an absolute path" },
	{ "hooks.startContainer", "[{}]", 0, 0, "config.json: hooks.startContainer[0].path: is required" },
	{ "hooks.createRuntime", "[{\"path\":\"/x\",\"timeout\":0}]", 0, 0,
	  "config.json: hooks.createRuntime[0].timeout: must be an integer from 1 to 2147483647" },
	{ "hooks.createContainer", "[{\"path\":\"/x\",\"args\":\"x\"}]", 0, 0,
	  "config.json: hooks.createContainer[0].args: must be an array of strings" },
	{ "hooks.poststart", "[{\"path\":\"/x\"},{\"path\":\"/y\",\"env\":[1]}]", 0, 0,
	  "config.json: hooks.poststart[1].env: must be an array of strings" },
	/* annotations */
	{ "annotations", "[]", 0, 0, "config.json: annotations: must be an object" },
	{ "annotations", "{\"a\":\"1\",\"b\":2}", 0, 0, "config.json: annotations.b: must be a string" },
	{ "annotations", "{\"\":\"x\"}", 0, 0, "config.json: annotations: keys must not be empty" },
	/* keys on the path and quoted values are made printable: the message stays one line */
	{ "annotations", "{\"a\\nb\\u00e9\":[]}", 0, 0, "config.json: annotations.a?b??: must be a string" },
	{ "linux.namespaces", "[{\"type\":\"pid\\r\\n\"}]", 0, 0, "config.json: linux.namespaces[0].type: unknown namespace type \"pid??\"" },
};

static void test_edit_cases(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *j1 = edit(minimal, cases[i].path, cases[i].value);
		char *j2 = cases[i].path2 != NULL ? edit(j1, cases[i].path2, cases[i].value2) : strdup(j1);
		refused(j2, cases[i].msg);
		free(j1);
		free(j2);
	}
}

static void test_minimal(void **state)
{
	(void)state;
	oci_config_t *cfg = accepted(minimal);
	assert_string_equal(cfg->oci_version, "1.0.2");
	assert_string_equal(cfg->process->cwd, "/");
	assert_string_equal(cfg->process->args[0], "sh");
	assert_null(cfg->process->args[1]);
	assert_null(cfg->process->env);
	assert_null(cfg->process->caps);
	assert_null(cfg->process->rlimits);
	assert_false(cfg->process->terminal);
	assert_false(cfg->process->has_umask);
	assert_false(cfg->process->has_oom_score_adj);
	assert_string_equal(cfg->root_path, "rootfs");
	assert_false(cfg->root_readonly);
	assert_null(cfg->hostname);
	assert_null(cfg->linux_);
	assert_int_equal(cfg->n_mounts, 0);
	assert_int_equal(cfg->n_annotations, 0);
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		assert_int_equal(cfg->n_hooks[k], 0);
	assert_null(oci_config_namespace(cfg, OCI_NS_PID));
	assert_null(oci_config_annotation(cfg, "x"));
	oci_config_free(cfg);
}

/* Every field the parser knows, with values off the defaults. */
static const char *const full =
	"{\"ociVersion\":\"1.1.0\",\n"
	" \"process\":{\"terminal\":true,\"consoleSize\":{\"height\":25,\"width\":80},\n"
	"  \"user\":{\"uid\":1000,\"gid\":1001,\"umask\":18,\"additionalGids\":[5,6,4294967294]},\n"
	"  \"args\":[\"/bin/app\",\"-v\",\"\"],\"env\":[\"PATH=/bin\",\"EMPTY=\",\"EQ=a=b\"],\"cwd\":\"/work\",\n"
	"  \"capabilities\":{\"bounding\":[\"CAP_CHOWN\",\"CAP_KILL\"],\"effective\":[\"CAP_KILL\"],\"inheritable\":[],\n"
	"   \"permitted\":[\"CAP_CHECKPOINT_RESTORE\"],\"ambient\":[\"CAP_NET_BIND_SERVICE\"]},\n"
	"  \"rlimits\":[{\"type\":\"RLIMIT_NOFILE\",\"soft\":1024,\"hard\":4096},\n"
	"   {\"type\":\"RLIMIT_MEMLOCK\",\"soft\":18446744073709551615,\"hard\":18446744073709551615},\n"
	"   {\"type\":\"RLIMIT_RTTIME\",\"soft\":0,\"hard\":9223372036854775808}],\n"
	"  \"noNewPrivileges\":true,\"oomScoreAdj\":-999,\"apparmorProfile\":\"\",\"selinuxLabel\":\"s0\"},\n"
	" \"root\":{\"path\":\"/b/rootfs\",\"readonly\":true},\n"
	" \"hostname\":\"box\",\"domainname\":\"example.org\",\n"
	" \"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},\n"
	"  {\"destination\":\"/data\",\"source\":\"/srv/data\",\"options\":[\"rbind\",\"ro\"]}],\n"
	" \"hooks\":{\"prestart\":[{\"path\":\"/bin/a\"}],\n"
	"  \"createRuntime\":[{\"path\":\"/bin/b\",\"args\":[\"b\",\"1\"],\"env\":[\"X=1\"],\"timeout\":5},{\"path\":\"/bin/c\"}],\n"
	"  \"createContainer\":[{\"path\":\"/bin/d\"}],\"startContainer\":[{\"path\":\"/bin/e\"}],\n"
	"  \"poststart\":[{\"path\":\"/bin/f\"}],\"poststop\":[{\"path\":\"/bin/g\",\"timeout\":2147483647}]},\n"
	" \"annotations\":{\"org.example.key\":\"value\",\"empty\":\"\"},\n"
	" \"linux\":{\n"
	"  \"namespaces\":[{\"type\":\"pid\"},{\"type\":\"network\",\"path\":\"/proc/1/ns/net\"},{\"type\":\"mount\"},\n"
	"   {\"type\":\"ipc\"},{\"type\":\"uts\"},{\"type\":\"user\"},{\"type\":\"cgroup\"},{\"type\":\"time\"}],\n"
	"  \"uidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}],\n"
	"  \"gidMappings\":[{\"containerID\":0,\"hostID\":200000,\"size\":1},{\"containerID\":1,\"hostID\":4294967295,\"size\":1}],\n"
	"  \"resources\":{\"devices\":[{\"allow\":false,\"access\":\"rwm\"},{\"allow\":true,\"type\":\"c\",\"major\":1,\"minor\":3}],\n"
	"   \"memory\":{\"limit\":536870912,\"reservation\":-1,\"swap\":1073741824},\n"
	"   \"cpu\":{\"shares\":512,\"quota\":-1,\"period\":100000,\"cpus\":\"0-1\",\"mems\":\"0\"},\n"
	"   \"pids\":{\"limit\":64}},\n"
	"  \"cgroupsPath\":\"/km/c1\",\n"
	"  \"seccomp\":{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":38,\n"
	"   \"architectures\":[\"SCMP_ARCH_X86_64\",\"SCMP_ARCH_X86\"],\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"],\n"
	"   \"listenerPath\":\"/run/seccomp.sock\",\n"
	"   \"syscalls\":[{\"names\":[\"read\",\"write\"],\"action\":\"SCMP_ACT_ALLOW\"},\n"
	"    {\"names\":[\"kill\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":1,\n"
	"     \"args\":[{\"index\":1,\"value\":9,\"op\":\"SCMP_CMP_EQ\"},\n"
	"      {\"index\":5,\"value\":18446744073709551615,\"valueTwo\":4,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},\n"
	"    {\"names\":[\"ptrace\"],\"action\":\"SCMP_ACT_KILL_THREAD\"},\n"
	"    {\"names\":[\"ioctl\"],\"action\":\"SCMP_ACT_NOTIFY\"}]},\n"
	"  \"maskedPaths\":[\"/proc/kcore\"],\"readonlyPaths\":[\"/proc/sys\",\"/proc/bus\"],\n"
	"  \"sysctl\":{\"net.ipv4.ip_forward\":\"1\",\"kernel.msgmax\":\"8192\"},\n"
	"  \"devices\":[{\"path\":\"/dev/fuse\",\"type\":\"c\",\"major\":10,\"minor\":229,\"fileMode\":438,\"uid\":0,\"gid\":0},\n"
	"   {\"path\":\"/dev/fifo\",\"type\":\"p\"}],\n"
	"  \"rootfsPropagation\":\"rslave\",\"mountLabel\":\"system_u:object_r:x\"}}\n";

static void check_full_process(const oci_process_t *p)
{
	assert_true(p->terminal);
	assert_true(p->has_console_size);
	assert_int_equal(p->console_height, 25);
	assert_int_equal(p->console_width, 80);
	assert_int_equal(p->uid, 1000);
	assert_int_equal(p->gid, 1001);
	assert_true(p->has_umask);
	assert_int_equal(p->umask, 022);
	assert_int_equal(p->n_additional_gids, 3);
	assert_int_equal(p->additional_gids[2], 4294967294u);
	assert_string_equal(p->args[0], "/bin/app");
	assert_string_equal(p->args[2], "");
	assert_null(p->args[3]);
	assert_string_equal(p->env[2], "EQ=a=b");
	assert_string_equal(p->cwd, "/work");
	assert_string_equal(p->caps->bounding[1], "CAP_KILL");
	assert_null(p->caps->bounding[2]);
	assert_non_null(p->caps->inheritable);
	assert_null(p->caps->inheritable[0]);
	assert_string_equal(p->caps->permitted[0], "CAP_CHECKPOINT_RESTORE");
	assert_string_equal(p->caps->ambient[0], "CAP_NET_BIND_SERVICE");
	assert_int_equal(p->n_rlimits, 3);
	assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(p->rlimits[0].soft, 1024);
	assert_int_equal(p->rlimits[0].hard, 4096);
	assert_int_equal(p->rlimits[1].resource, RLIMIT_MEMLOCK);
	assert_true(p->rlimits[1].soft == UINT64_MAX && p->rlimits[1].hard == UINT64_MAX);
	assert_string_equal(p->rlimits[2].type, "RLIMIT_RTTIME");
	assert_true(p->rlimits[2].hard == 9223372036854775808ull);
	assert_true(p->no_new_privileges);
	assert_true(p->has_oom_score_adj);
	assert_int_equal(p->oom_score_adj, -999);
	assert_string_equal(p->apparmor_profile, "");
	assert_string_equal(p->selinux_label, "s0");
}

static void check_full_top(const oci_config_t *cfg)
{
	assert_string_equal(cfg->oci_version, "1.1.0");
	assert_string_equal(cfg->root_path, "/b/rootfs");
	assert_true(cfg->root_readonly);
	assert_string_equal(cfg->hostname, "box");
	assert_string_equal(cfg->domainname, "example.org");
	assert_int_equal(cfg->n_mounts, 2);
	assert_string_equal(cfg->mounts[0].type, "proc");
	assert_null(cfg->mounts[0].options);
	assert_null(cfg->mounts[1].type);
	assert_string_equal(cfg->mounts[1].source, "/srv/data");
	assert_string_equal(cfg->mounts[1].options[1], "ro");
	assert_int_equal(cfg->n_hooks[OCI_HOOK_PRESTART], 1);
	assert_int_equal(cfg->n_hooks[OCI_HOOK_CREATE_RUNTIME], 2);
	const oci_hook_t *h = &cfg->hooks[OCI_HOOK_CREATE_RUNTIME][0];
	assert_string_equal(h->path, "/bin/b");
	assert_string_equal(h->args[1], "1");
	assert_string_equal(h->env[0], "X=1");
	assert_true(h->has_timeout);
	assert_int_equal(h->timeout, 5);
	assert_false(cfg->hooks[OCI_HOOK_CREATE_RUNTIME][1].has_timeout);
	assert_null(cfg->hooks[OCI_HOOK_CREATE_RUNTIME][1].args);
	assert_string_equal(cfg->hooks[OCI_HOOK_CREATE_CONTAINER][0].path, "/bin/d");
	assert_string_equal(cfg->hooks[OCI_HOOK_START_CONTAINER][0].path, "/bin/e");
	assert_string_equal(cfg->hooks[OCI_HOOK_POSTSTART][0].path, "/bin/f");
	assert_int_equal(cfg->hooks[OCI_HOOK_POSTSTOP][0].timeout, 2147483647);
	assert_int_equal(cfg->n_annotations, 2);
	assert_string_equal(oci_config_annotation(cfg, "org.example.key"), "value");
	assert_string_equal(oci_config_annotation(cfg, "empty"), "");
	assert_null(oci_config_annotation(cfg, "org.example"));
}

static void check_full_linux(const oci_linux_t *lx)
{
	assert_int_equal(lx->n_namespaces, 8);
	for (int t = 0; t < OCI_NS_COUNT; t++)
		assert_int_equal(lx->namespaces[t].type, t);
	assert_string_equal(lx->namespaces[1].path, "/proc/1/ns/net");
	assert_null(lx->namespaces[0].path);
	assert_int_equal(lx->n_uid_mappings, 1);
	assert_int_equal(lx->uid_mappings[0].host_id, 100000);
	assert_int_equal(lx->uid_mappings[0].size, 65536);
	assert_int_equal(lx->n_gid_mappings, 2);
	assert_int_equal(lx->gid_mappings[1].host_id, 4294967295u);
	const oci_resources_t *r = lx->resources;
	assert_int_equal(r->n_device_rules, 2);
	assert_true(r->has_memory_limit && r->has_memory_reservation && r->has_memory_swap);
	assert_int_equal(r->memory_limit, 536870912);
	assert_int_equal(r->memory_reservation, -1);
	assert_int_equal(r->memory_swap, 1073741824);
	assert_true(r->has_cpu_shares && r->has_cpu_quota && r->has_cpu_period);
	assert_int_equal(r->cpu_shares, 512);
	assert_int_equal(r->cpu_quota, -1);
	assert_int_equal(r->cpu_period, 100000);
	assert_string_equal(r->cpu_cpus, "0-1");
	assert_string_equal(r->cpu_mems, "0");
	assert_true(r->has_pids_limit);
	assert_int_equal(r->pids_limit, 64);
	assert_string_equal(lx->cgroups_path, "/km/c1");
	assert_string_equal(lx->masked_paths[0], "/proc/kcore");
	assert_string_equal(lx->readonly_paths[1], "/proc/bus");
	assert_int_equal(lx->n_sysctl, 2);
	assert_string_equal(lx->sysctl[1].key, "kernel.msgmax");
	assert_string_equal(lx->sysctl[1].value, "8192");
	assert_int_equal(lx->n_devices, 2);
	assert_int_equal(lx->devices[0].type, 'c');
	assert_int_equal(lx->devices[0].major, 10);
	assert_int_equal(lx->devices[0].minor, 229);
	assert_true(lx->devices[0].has_file_mode && lx->devices[0].has_uid && lx->devices[0].has_gid);
	assert_int_equal(lx->devices[0].file_mode, 0666);
	assert_int_equal(lx->devices[1].type, 'p');
	assert_int_equal(lx->devices[1].major, -1);
	assert_int_equal(lx->devices[1].minor, -1);
	assert_false(lx->devices[1].has_file_mode || lx->devices[1].has_uid || lx->devices[1].has_gid);
	assert_string_equal(lx->rootfs_propagation, "rslave");
	assert_string_equal(lx->mount_label, "system_u:object_r:x");
}

static void check_full_seccomp(const oci_seccomp_t *sc)
{
	assert_int_equal(sc->default_action, OCI_SCMP_ACT_ERRNO);
	assert_true(sc->has_default_errno_ret);
	assert_int_equal(sc->default_errno_ret, 38);
	assert_string_equal(sc->architectures[1], "SCMP_ARCH_X86");
	assert_string_equal(sc->flags[0], "SECCOMP_FILTER_FLAG_LOG");
	assert_string_equal(sc->listener_path, "/run/seccomp.sock");
	assert_int_equal(sc->n_rules, 4);
	assert_string_equal(sc->rules[0].names[1], "write");
	assert_int_equal(sc->rules[0].action, OCI_SCMP_ACT_ALLOW);
	assert_false(sc->rules[0].has_errno_ret);
	assert_int_equal(sc->rules[0].n_args, 0);
	const oci_seccomp_rule_t *k = &sc->rules[1];
	assert_int_equal(k->action, OCI_SCMP_ACT_ERRNO);
	assert_true(k->has_errno_ret);
	assert_int_equal(k->errno_ret, 1);
	assert_int_equal(k->n_args, 2);
	assert_int_equal(k->args[0].index, 1);
	assert_int_equal(k->args[0].value, 9);
	assert_int_equal(k->args[0].op, OCI_SCMP_CMP_EQ);
	assert_int_equal(k->args[1].index, 5);
	assert_true(k->args[1].value == UINT64_MAX);
	assert_int_equal(k->args[1].value_two, 4);
	assert_int_equal(k->args[1].op, OCI_SCMP_CMP_MASKED_EQ);
	assert_int_equal(sc->rules[2].action, OCI_SCMP_ACT_KILL);
	assert_int_equal(sc->rules[3].action, OCI_SCMP_ACT_NOTIFY);
}

static void test_full(void **state)
{
	(void)state;
	oci_config_t *cfg = accepted(full);
	check_full_top(cfg);
	check_full_process(cfg->process);
	check_full_linux(cfg->linux_);
	check_full_seccomp(cfg->linux_->seccomp);
	assert_ptr_equal(oci_config_namespace(cfg, OCI_NS_TIME), &cfg->linux_->namespaces[7]);
	oci_config_free(cfg);
}

/* What `runc spec` writes (runtime-spec 1.0.2-dev, a terminal, runc's defaults), as a user would
 * hand it to km-shim unchanged. */
static const char *const runc_spec =
	"{\n"
	"\t\"ociVersion\": \"1.0.2-dev\",\n"
	"\t\"process\": {\n"
	"\t\t\"terminal\": true,\n"
	"\t\t\"user\": {\n\t\t\t\"uid\": 0,\n\t\t\t\"gid\": 0\n\t\t},\n"
	"\t\t\"args\": [\n\t\t\t\"sh\"\n\t\t],\n"
	"\t\t\"env\": [\n"
	"\t\t\t\"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\",\n"
	"\t\t\t\"TERM=xterm\"\n\t\t],\n"
	"\t\t\"cwd\": \"/\",\n"
	"\t\t\"capabilities\": {\n"
	"\t\t\t\"bounding\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	"\t\t\t\"effective\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	"\t\t\t\"permitted\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"],\n"
	"\t\t\t\"ambient\": [\"CAP_AUDIT_WRITE\", \"CAP_KILL\", \"CAP_NET_BIND_SERVICE\"]\n"
	"\t\t},\n"
	"\t\t\"rlimits\": [\n\t\t\t{\n\t\t\t\t\"type\": \"RLIMIT_NOFILE\",\n"
	"\t\t\t\t\"hard\": 1024,\n\t\t\t\t\"soft\": 1024\n\t\t\t}\n\t\t],\n"
	"\t\t\"noNewPrivileges\": true\n"
	"\t},\n"
	"\t\"root\": {\n\t\t\"path\": \"rootfs\",\n\t\t\"readonly\": true\n\t},\n"
	"\t\"hostname\": \"runc\",\n"
	"\t\"mounts\": [\n"
	"\t\t{\"destination\": \"/proc\", \"type\": \"proc\", \"source\": \"proc\"},\n"
	"\t\t{\"destination\": \"/dev\", \"type\": \"tmpfs\", \"source\": \"tmpfs\",\n"
	"\t\t \"options\": [\"nosuid\", \"strictatime\", \"mode=755\", \"size=65536k\"]},\n"
	"\t\t{\"destination\": \"/dev/pts\", \"type\": \"devpts\", \"source\": \"devpts\",\n"
	"\t\t \"options\": [\"nosuid\", \"noexec\", \"newinstance\", \"ptmxmode=0666\", \"mode=0620\", \"gid=5\"]},\n"
	"\t\t{\"destination\": \"/dev/shm\", \"type\": \"tmpfs\", \"source\": \"shm\",\n"
	"\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"mode=1777\", \"size=65536k\"]},\n"
	"\t\t{\"destination\": \"/dev/mqueue\", \"type\": \"mqueue\", \"source\": \"mqueue\",\n"
	"\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\"]},\n"
	"\t\t{\"destination\": \"/sys\", \"type\": \"sysfs\", \"source\": \"sysfs\",\n"
	"\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"ro\"]},\n"
	"\t\t{\"destination\": \"/sys/fs/cgroup\", \"type\": \"cgroup\", \"source\": \"cgroup\",\n"
	"\t\t \"options\": [\"nosuid\", \"noexec\", \"nodev\", \"relatime\", \"ro\"]}\n"
	"\t],\n"
	"\t\"linux\": {\n"
	"\t\t\"resources\": {\n\t\t\t\"devices\": [\n\t\t\t\t{\"allow\": false, \"access\": \"rwm\"}\n\t\t\t]\n\t\t},\n"
	"\t\t\"namespaces\": [\n"
	"\t\t\t{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": \"ipc\"},\n"
	"\t\t\t{\"type\": \"uts\"}, {\"type\": \"mount\"}, {\"type\": \"cgroup\"}\n"
	"\t\t],\n"
	"\t\t\"maskedPaths\": [\n"
	"\t\t\t\"/proc/acpi\", \"/proc/asound\", \"/proc/kcore\", \"/proc/keys\", \"/proc/latency_stats\",\n"
	"\t\t\t\"/proc/timer_list\", \"/proc/timer_stats\", \"/proc/sched_debug\", \"/sys/firmware\", \"/proc/scsi\"\n"
	"\t\t],\n"
	"\t\t\"readonlyPaths\": [\n"
	"\t\t\t\"/proc/bus\", \"/proc/fs\", \"/proc/irq\", \"/proc/sys\", \"/proc/sysrq-trigger\"\n"
	"\t\t]\n"
	"\t}\n"
	"}";

static void test_runc_spec(void **state)
{
	(void)state;
	oci_config_t *cfg = accepted(runc_spec);
	assert_string_equal(cfg->oci_version, "1.0.2-dev");
	assert_true(cfg->process->terminal);
	assert_false(cfg->process->has_console_size);
	assert_string_equal(cfg->process->env[1], "TERM=xterm");
	assert_string_equal(cfg->process->caps->ambient[2], "CAP_NET_BIND_SERVICE");
	assert_null(cfg->process->caps->inheritable);
	assert_int_equal(cfg->process->rlimits[0].resource, RLIMIT_NOFILE);
	assert_true(cfg->process->no_new_privileges);
	assert_true(cfg->root_readonly);
	assert_string_equal(cfg->hostname, "runc");
	assert_int_equal(cfg->n_mounts, 7);
	assert_string_equal(cfg->mounts[6].destination, "/sys/fs/cgroup");
	assert_string_equal(cfg->mounts[2].options[5], "gid=5");
	assert_int_equal(cfg->linux_->n_namespaces, 6);
	assert_non_null(oci_config_namespace(cfg, OCI_NS_CGROUP));
	assert_null(oci_config_namespace(cfg, OCI_NS_USER));
	assert_int_equal(cfg->linux_->resources->n_device_rules, 1);
	assert_false(cfg->linux_->resources->has_memory_limit);
	assert_string_equal(cfg->linux_->masked_paths[9], "/proc/scsi");
	assert_string_equal(cfg->linux_->readonly_paths[4], "/proc/sysrq-trigger");
	assert_null(cfg->linux_->seccomp);
	oci_config_free(cfg);
}

static void test_invalid_json(void **state)
{
	(void)state;
	refused("", "config.json: invalid JSON at line 1 column 0: '[' or '{' expected near end of file");
	refused("{\"ociVersion\":", "config.json: invalid JSON at line 1 column 14: unexpected token near end of file");
	refused("[1]", "config.json: must be a JSON object");
	refused("{} x", "config.json: invalid JSON at line 1 column 4: end of file expected near 'x'");
	/* json_loadb is given the length: a NUL inside the text is not its end */
	km_err_t *err = NULL;
	assert_null(oci_config_parse("{}\0{", 4, "config.json", &err));
	assert_non_null(err);
	km_err_free(&err);
	/* the source name is the caller's */
	assert_null(oci_config_parse("[", 1, "/b/config.json", &err));
	assert_int_equal(strncmp(err->msg, "/b/config.json: invalid JSON", 28), 0);
	km_err_free(&err);
}

static void test_duplicates(void **state)
{
	(void)state;
	refused("{\"ociVersion\":\"1\",\"ociVersion\":\"2\"}",
		"config.json: invalid JSON at line 1 column 30: duplicate object key near '\"ociVersion\"'");
	char *j = edit(minimal, "process.user.uid", "0");
	char *dup = strdup(j);
	/* a duplicate deep inside: "uid" twice in process.user */
	char *at = strstr(dup, "\"uid\": 0");
	assert_non_null(at);
	memcpy(at, "\"gid\"", 5);
	km_err_t *err = NULL;
	assert_null(parse(dup, &err));
	assert_non_null(strstr(err->msg, "duplicate object key"));
	km_err_free(&err);
	free(dup);
	free(j);
}

static void test_unknown_fields_ignored(void **state)
{
	(void)state;
	char *j1 = edit(minimal, "someFutureField", "{\"a\":[1,2,{\"b\":null}]}");
	char *j2 = edit(j1, "process.ioPriority", "{\"class\":\"IOPRIO_CLASS_RT\",\"priority\":0}");
	char *j3 = edit(j2, "linux.intelRdt", "{\"closID\":\"x\"}");
	char *j4 = edit(j3, "linux.resources.hugepageLimits", "[{\"pageSize\":\"2MB\",\"limit\":1}]");
	char *j5 = edit(j4, "vm", "{\"hypervisor\":{\"path\":\"/x\"}}");
	oci_config_t *cfg = accepted(j5);
	assert_non_null(cfg->linux_->resources);
	oci_config_free(cfg);
	free(j1), free(j2), free(j3), free(j4), free(j5);
}

static void test_nulls_are_absent(void **state)
{
	(void)state;
	char *j1 = edit(minimal, "hostname", "null");
	char *j2 = edit(j1, "process.env", "null");
	char *j3 = edit(j2, "linux", "null");
	oci_config_t *cfg = accepted(j3);
	assert_null(cfg->hostname);
	assert_null(cfg->process->env);
	assert_null(cfg->linux_);
	oci_config_free(cfg);
	free(j1), free(j2), free(j3);
	char *r = edit(minimal, "process.cwd", "null");
	refused(r, "config.json: process.cwd: is required");
	free(r);
}

static void test_console_size_needs_terminal(void **state)
{
	(void)state;
	/* The spec: ignored unless terminal is true, even if malformed. */
	static const char *const ignored[] = { "{\"height\":\"x\"}", "5", "{\"height\":25,\"width\":80}" };
	for (size_t i = 0; i < 3; i++) {
		char *j = edit(minimal, "process.consoleSize", ignored[i]);
		oci_config_t *cfg = accepted(j);
		assert_false(cfg->process->has_console_size);
		oci_config_free(cfg);
		free(j);
	}
}

static void test_huge_numbers(void **state)
{
	(void)state;
	static const char *const too_big[] = { "18446744073709551616", "99999999999999999999999" };
	for (size_t i = 0; i < 2; i++) {
		char *j = edit(minimal, "process.user.uid", "0");
		char *at = strstr(j, "\"uid\": 0");
		char *big = NULL;
		assert_true(asprintf(&big, "%.*s\"uid\": %s%s", (int)(at - j), j, too_big[i], at + 8) > 0);
		km_err_t *err = NULL;
		assert_null(parse(big, &err));
		assert_non_null(strstr(err->msg, "too big integer"));
		km_err_free(&err);
		free(big);
		free(j);
	}
	/* a big number where a string belongs is a wrong type, not a string */
	char *j = edit(minimal, "hostname", "1");
	char *at = strstr(j, "\"hostname\": 1");
	char *big = NULL;
	assert_true(asprintf(&big, "%.*s\"hostname\": 18446744073709551615%s", (int)(at - j), j, at + 13) > 0);
	refused(big, "config.json: hostname: must be a string");
	free(big);
	free(j);
	/* and where a smaller integer belongs, out of range */
	j = edit(minimal, "process.user.uid", "0");
	at = strstr(j, "\"uid\": 0");
	assert_true(asprintf(&big, "%.*s\"uid\": 9223372036854775808%s", (int)(at - j), j, at + 8) > 0);
	refused(big, "config.json: process.user.uid: must be an integer from 0 to 4294967294");
	free(big);
	free(j);
	/* a \u0000 in a string stays refused (it would look like a marked number) */
	j = edit(minimal, "hostname", "\"x\"");
	at = strstr(j, "\"x\"");
	assert_true(asprintf(&big, "%.*s\"\\u0000123\"%s", (int)(at - j), j, at + 3) > 0);
	km_err_t *err = NULL;
	assert_null(parse(big, &err));
	assert_non_null(strstr(err->msg, "invalid JSON"));
	km_err_free(&err);
	free(big);
	free(j);
}

/* ---- oci_config_load ---- */

static char bundle[64];

static int make_bundle(void **state)
{
	(void)state;
	strcpy(bundle, "/tmp/test_oci_config.XXXXXX");
	return mkdtemp(bundle) != NULL ? 0 : -1;
}

static int remove_bundle(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", bundle);
	return system(cmd) == 0 ? 0 : -1;
}

static void write_config(const char *text, size_t len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	unlink(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void load_refused(const char *suffix, int errnum)
{
	km_err_t *err = NULL;
	char want[256];
	snprintf(want, sizeof(want), "%s/config.json%s", bundle, suffix);
	assert_null(oci_config_load(bundle, &err));
	assert_non_null(err);
	if (strcmp(err->msg, want) != 0)
		fail_msg("got %s, want %s", err->msg, want);
	assert_int_equal(err->errnum, errnum);
	km_err_free(&err);
}

static void test_load(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/config.json", bundle);
	load_refused(": No such file or directory", ENOENT);
	write_config(minimal, strlen(minimal));
	km_err_t *err = NULL;
	oci_config_t *cfg = oci_config_load(bundle, &err);
	assert_non_null(cfg);
	assert_string_equal(cfg->process->args[0], "sh");
	oci_config_free(cfg);
	/* messages name the file */
	char *bad = edit(minimal, "process.cwd", "\"x\"");
	write_config(bad, strlen(bad));
	free(bad);
	load_refused(": process.cwd: must be an absolute path", 0);
	/* not a regular file: a directory, a fifo (must not block) */
	unlink(path);
	assert_int_equal(mkdir(path, 0755), 0);
	load_refused(": not a regular file", 0);
	rmdir(path);
	assert_int_equal(mkfifo(path, 0644), 0);
	load_refused(": not a regular file", 0);
	unlink(path);
}

static void test_load_size_limit(void **state)
{
	(void)state;
	/* 4 MiB exactly is read (and parsed: the minimal config padded with spaces) */
	size_t max = 4u << 20;
	char *text = malloc(max + 1);
	memset(text, ' ', max + 1);
	memcpy(text, minimal, strlen(minimal));
	write_config(text, max);
	km_err_t *err = NULL;
	oci_config_t *cfg = oci_config_load(bundle, &err);
	assert_non_null(cfg);
	oci_config_free(cfg);
	write_config(text, max + 1);
	load_refused(": larger than 4 MiB", 0);
	free(text);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(oci_ns_type_name(OCI_NS_PID), "pid");
	assert_string_equal(oci_ns_type_name(OCI_NS_NETWORK), "network");
	assert_string_equal(oci_ns_type_name(OCI_NS_TIME), "time");
	assert_string_equal(oci_ns_type_name(OCI_NS_COUNT), "unknown");
	assert_string_equal(oci_ns_type_name((oci_ns_type_t)-1), "unknown");
	oci_config_free(NULL);
	assert_null(oci_config_namespace(NULL, OCI_NS_PID));
	assert_null(oci_config_annotation(NULL, "x"));
}

/* Device cgroup rules keep their order; absent members are the spec's "all" defaults. */
static void test_device_rules(void **state)
{
	(void)state;
	char *j = edit(minimal, "linux.resources.devices",
		       "[{\"allow\":false,\"access\":\"rwm\"},{\"allow\":true,\"type\":\"c\",\"major\":1,"
		       "\"minor\":-1,\"access\":\"mr\"},{\"allow\":true,\"type\":\"b\",\"major\":8,\"minor\":0}]");
	oci_config_t *cfg = accepted(j);
	const oci_resources_t *r = cfg->linux_->resources;
	assert_int_equal(r->n_device_rules, 3);
	const oci_device_rule_t *d = r->device_rules;
	assert_false(d[0].allow);
	assert_int_equal(d[0].type, 'a');
	assert_int_equal(d[0].major, -1);
	assert_int_equal(d[0].minor, -1);
	assert_string_equal(d[0].access, "rwm");
	assert_true(d[1].allow);
	assert_int_equal(d[1].type, 'c');
	assert_int_equal(d[1].major, 1);
	assert_int_equal(d[1].minor, -1);
	assert_string_equal(d[1].access, "rm");
	assert_int_equal(d[2].type, 'b');
	assert_int_equal(d[2].major, 8);
	assert_int_equal(d[2].minor, 0);
	assert_string_equal(d[2].access, "rwm");
	oci_config_free(cfg);
	free(j);
}

/* Members km-shim cannot honour are recorded when set ({} and [] are not set), so it can refuse them. */
static void test_recorded_only(void **state)
{
	(void)state;
	char *j = edit(minimal, "linux.resources",
		       "{\"unified\":{\"io.weight\":\"100\"},\"blockIO\":{\"weight\":10},\"hugepageLimits\":"
		       "[{\"pageSize\":\"2MB\",\"limit\":1}],\"network\":{\"classID\":1},\"rdma\":{\"mlx\":{}}}");
	char *j2 = edit(j, "linux.intelRdt", "{\"closID\":\"x\"}");
	char *j3 = edit(j2, "linux.memoryPolicy", "{\"mode\":\"MPOL_BIND\",\"nodes\":\"0\"}");
	char *j4 = edit(j3, "linux.personality", "{\"domain\":\"LINUX32\",\"flags\":[\"x\"]}");
	char *j5 = edit(j4, "process.scheduler", "{\"policy\":\"SCHED_FIFO\",\"priority\":1}");
	char *j6 = edit(j5, "process.ioPriority", "{\"class\":\"IOPRIO_CLASS_IDLE\"}");
	char *j7 = edit(j6, "mounts", "[{\"destination\":\"/a\",\"source\":\"/b\",\"options\":[\"bind\"],"
				   "\"uidMappings\":[{\"containerID\":0,\"hostID\":1,\"size\":1}]},"
				   "{\"destination\":\"/c\",\"uidMappings\":[],\"gidMappings\":null}]");
	oci_config_t *cfg = accepted(j7);
	const oci_resources_t *r = cfg->linux_->resources;
	assert_true(r->has_unified && r->has_block_io && r->has_hugepage_limits && r->has_network && r->has_rdma);
	assert_true(cfg->linux_->has_intel_rdt && cfg->linux_->has_memory_policy && cfg->linux_->has_personality_flags);
	assert_string_equal(cfg->linux_->personality_domain, "LINUX32");
	assert_true(cfg->process->has_scheduler && cfg->process->has_io_priority);
	assert_true(cfg->mounts[0].has_id_mappings);
	assert_false(cfg->mounts[1].has_id_mappings);
	oci_config_free(cfg);
	char *e = edit(minimal, "linux.resources", "{\"unified\":{},\"blockIO\":{},\"hugepageLimits\":[]}");
	char *e2 = edit(e, "linux.personality", "{\"domain\":\"LINUX\",\"flags\":[]}");
	cfg = accepted(e2);
	assert_false(cfg->linux_->resources->has_unified || cfg->linux_->resources->has_block_io ||
		     cfg->linux_->resources->has_hugepage_limits || cfg->linux_->has_personality_flags);
	assert_string_equal(cfg->linux_->personality_domain, "LINUX");
	assert_false(cfg->linux_->has_intel_rdt || cfg->process->has_scheduler);
	oci_config_free(cfg);
	char *bad = edit(minimal, "linux.personality", "{\"flags\":[]}");
	refused(bad, "config.json: linux.personality.domain: is required");
	char *ps[] = { j, j2, j3, j4, j5, j6, j7, e, e2, bad };
	for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
		free(ps[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_runc_spec),
		cmocka_unit_test(test_edit_cases),
		cmocka_unit_test(test_invalid_json),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_unknown_fields_ignored),
		cmocka_unit_test(test_nulls_are_absent),
		cmocka_unit_test(test_console_size_needs_terminal),
		cmocka_unit_test(test_huge_numbers),
		cmocka_unit_test_setup_teardown(test_load, make_bundle, remove_bundle),
		cmocka_unit_test_setup_teardown(test_load_size_limit, make_bundle, remove_bundle),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_device_rules),
		cmocka_unit_test(test_recorded_only),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
