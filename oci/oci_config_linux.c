/* config.json's linux object (but seccomp, oci_config_seccomp.c): see oci_config.h. */
#include "oci_config_parts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const ns_names[OCI_NS_COUNT + 1] = {
	[OCI_NS_PID] = "pid", [OCI_NS_NETWORK] = "network", [OCI_NS_MOUNT] = "mount",
	[OCI_NS_IPC] = "ipc", [OCI_NS_UTS] = "uts",	    [OCI_NS_USER] = "user",
	[OCI_NS_CGROUP] = "cgroup", [OCI_NS_TIME] = "time", [OCI_NS_COUNT] = NULL,
};

static const char *const propagations[] = {
	"shared", "slave", "private", "unbindable", "rshared", "rslave", "rprivate", "runbindable", NULL,
};

const char *oci_ns_type_name(oci_ns_type_t type)
{
	return type >= 0 && type < OCI_NS_COUNT ? ns_names[type] : "unknown";
}

/* calloc of n elements, or an out-of-memory error; *count = n. */
static void *alloc_items(oci_jpath_t *p, size_t n, size_t size, size_t *count)
{
	void *v = calloc(n, size);
	if (v == NULL)
		km_err_set(p->err, ENOMEM, "%s: %s", p->what, p->buf);
	else
		*count = n;
	return v;
}

/* Parses the array `key` of objects into a calloc'd array of `size`-byte items with `each`. */
static int parse_array(oci_jpath_t *p, const json_t *obj, const char *key, size_t size, void **items,
		       size_t *count, int (*each)(oci_jpath_t *, const json_t *, size_t, void *))
{
	json_t *arr;
	if (oci_j_array(p, obj, key, false, &arr) < 0)
		return -1;
	if (arr == NULL || json_array_size(arr) == 0)
		return 0;
	size_t mark = oci_jp_key(p, key);
	int rc = -1;
	if ((*items = alloc_items(p, json_array_size(arr), size, count)) != NULL)
		rc = oci_j_each_object(p, arr, each, items);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_namespace(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_namespace_t *all = *(oci_namespace_t **)ctx, *ns = &all[i];
	char *type = NULL, q[80];
	if (oci_j_string(p, obj, "type", true, &type) < 0)
		return -1;
	int t = oci_name_index(ns_names, type);
	if (t < 0)
		oci_jp_fail_at(p, "type", "unknown namespace type \"%s\"", oci_jquote(type, q, sizeof(q)));
	free(type);
	if (t < 0)
		return -1;
	ns->type = t;
	for (size_t j = 0; j < i; j++)
		if (all[j].type == ns->type)
			return oci_jp_fail_at(p, "type", "namespace %s is listed twice", ns_names[t]);
	if (oci_j_string(p, obj, "path", false, &ns->path) < 0)
		return -1;
	if (ns->path != NULL && !oci_is_abs(ns->path))
		return oci_jp_fail_at(p, "path", "must be an absolute path");
	return 0;
}

static int parse_idmap(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_idmap_t *m = &(*(oci_idmap_t **)ctx)[i];
	uint64_t c = 0, h = 0, s = 0;
	if (oci_j_u64(p, obj, "containerID", true, 0, UINT32_MAX, NULL, &c) < 0 ||
	    oci_j_u64(p, obj, "hostID", true, 0, UINT32_MAX, NULL, &h) < 0 ||
	    oci_j_u64(p, obj, "size", true, 1, UINT32_MAX, NULL, &s) < 0)
		return -1;
	if (c + s - 1 > UINT32_MAX)
		return oci_jp_fail_at(p, "size", "containerID + size is beyond 2^32");
	if (h + s - 1 > UINT32_MAX)
		return oci_jp_fail_at(p, "size", "hostID + size is beyond 2^32");
	m->container_id = c;
	m->host_id = h;
	m->size = s;
	return 0;
}

static int device_numbers(oci_jpath_t *p, const json_t *obj, oci_device_t *d)
{
	d->major = d->minor = -1;
	bool need = d->type != 'p';
	return oci_j_i64(p, obj, "major", need, 0, INT64_MAX, NULL, &d->major) < 0 ||
			       oci_j_i64(p, obj, "minor", need, 0, INT64_MAX, NULL, &d->minor) < 0
		       ? -1
		       : 0;
}

static int parse_device(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_device_t *d = &(*(oci_device_t **)ctx)[i];
	char *type = NULL;
	uint64_t mode = 0, uid = 0, gid = 0;
	if (oci_j_string(p, obj, "path", true, &d->path) < 0)
		return -1;
	if (!oci_is_abs(d->path))
		return oci_jp_fail_at(p, "path", "must be an absolute path");
	if (oci_j_string(p, obj, "type", true, &type) < 0)
		return -1;
	bool ok = strlen(type) == 1 && strchr("cbup", type[0]) != NULL;
	d->type = type[0];
	free(type);
	if (!ok)
		return oci_jp_fail_at(p, "type", "must be \"c\", \"b\", \"u\" or \"p\"");
	if (device_numbers(p, obj, d) < 0 ||
	    oci_j_u64(p, obj, "fileMode", false, 0, 07777, &d->has_file_mode, &mode) < 0 ||
	    oci_j_u64(p, obj, "uid", false, 0, UINT32_MAX - 1, &d->has_uid, &uid) < 0 ||
	    oci_j_u64(p, obj, "gid", false, 0, UINT32_MAX - 1, &d->has_gid, &gid) < 0)
		return -1;
	d->file_mode = mode;
	d->uid = uid;
	d->gid = gid;
	return 0;
}

/* An object of string values into key/value pairs. */
static int parse_sysctl(oci_jpath_t *p, const json_t *obj, oci_linux_t *lx)
{
	json_t *o;
	if (oci_j_object(p, obj, "sysctl", false, &o) < 0)
		return -1;
	if (o == NULL || json_object_size(o) == 0)
		return 0;
	size_t mark = oci_jp_key(p, "sysctl");
	int rc = (lx->sysctl = alloc_items(p, json_object_size(o), sizeof(*lx->sysctl), &lx->n_sysctl)) ? 0 : -1;
	const char *key;
	json_t *v;
	size_t i = 0;
	json_object_foreach(o, key, v)
	{
		if (rc < 0)
			break;
		if (key[0] == '\0') {
			rc = oci_jp_fail(p, "keys must not be empty");
			break;
		}
		size_t m2 = oci_jp_key(p, key);
		if (oci_jv_string(p, v, &lx->sysctl[i].value) < 0 || !(lx->sysctl[i].key = strdup(key)))
			rc = -1;
		oci_jp_restore(p, m2);
		i++;
	}
	oci_jp_restore(p, mark);
	return rc;
}

/* "rwm" in canonical order from any non-empty, repeat-free mix of r, w and m. */
static int rule_access(oci_jpath_t *p, const json_t *obj, oci_device_rule_t *d)
{
	char *a = NULL;
	strcpy(d->access, "rwm");
	if (oci_j_string(p, obj, "access", false, &a) < 0)
		return -1;
	if (a == NULL)
		return 0;
	bool has[3] = { false, false, false };
	bool ok = a[0] != '\0';
	for (const char *q = a; ok && *q; q++) {
		const char *at = strchr("rwm", *q);
		ok = at != NULL && !has[at - "rwm"];
		if (ok)
			has[at - "rwm"] = true;
	}
	free(a);
	if (!ok)
		return oci_jp_fail_at(p, "access", "must be a non-empty combination of r, w and m, each at most once");
	size_t n = 0;
	for (int k = 0; k < 3; k++)
		if (has[k])
			d->access[n++] = "rwm"[k];
	d->access[n] = '\0';
	return 0;
}

static int device_rule(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_device_rule_t *d = &(*(oci_device_rule_t **)ctx)[i];
	char *type = NULL;
	if (json_object_get(obj, "allow") == NULL)
		return oci_jp_fail_at(p, "allow", "is required");
	if (oci_j_bool(p, obj, "allow", &d->allow) < 0 || oci_j_string(p, obj, "type", false, &type) < 0)
		return -1;
	d->type = type == NULL ? 'a' : type[0];
	bool ok = type == NULL || (strlen(type) == 1 && strchr("acb", type[0]) != NULL);
	free(type);
	if (!ok)
		return oci_jp_fail_at(p, "type", "must be \"a\", \"c\" or \"b\"");
	d->major = d->minor = -1;
	return oci_j_i64(p, obj, "major", false, -1, UINT32_MAX, NULL, &d->major) < 0 ||
			       oci_j_i64(p, obj, "minor", false, -1, UINT32_MAX, NULL, &d->minor) < 0 ||
			       rule_access(p, obj, d) < 0
		       ? -1
		       : 0;
}

static int parse_memory(oci_jpath_t *p, const json_t *res, oci_resources_t *r)
{
	json_t *m;
	if (oci_j_object(p, res, "memory", false, &m) < 0)
		return -1;
	if (m == NULL)
		return 0;
	size_t mark = oci_jp_key(p, "memory");
	int rc = oci_j_i64(p, m, "limit", false, -1, INT64_MAX, &r->has_memory_limit, &r->memory_limit) < 0 ||
			 oci_j_i64(p, m, "reservation", false, -1, INT64_MAX, &r->has_memory_reservation,
				   &r->memory_reservation) < 0 ||
			 oci_j_i64(p, m, "swap", false, -1, INT64_MAX, &r->has_memory_swap, &r->memory_swap) < 0
		 ? -1
		 : 0;
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_cpu(oci_jpath_t *p, const json_t *res, oci_resources_t *r)
{
	json_t *c;
	if (oci_j_object(p, res, "cpu", false, &c) < 0)
		return -1;
	if (c == NULL)
		return 0;
	size_t mark = oci_jp_key(p, "cpu");
	int rc = oci_j_u64(p, c, "shares", false, 0, UINT64_MAX, &r->has_cpu_shares, &r->cpu_shares) < 0 ||
			 oci_j_i64(p, c, "quota", false, INT64_MIN, INT64_MAX, &r->has_cpu_quota, &r->cpu_quota) < 0 ||
			 oci_j_u64(p, c, "period", false, 0, UINT64_MAX, &r->has_cpu_period, &r->cpu_period) < 0 ||
			 oci_j_string(p, c, "cpus", false, &r->cpu_cpus) < 0 ||
			 oci_j_string(p, c, "mems", false, &r->cpu_mems) < 0
		 ? -1
		 : 0;
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_pids(oci_jpath_t *p, const json_t *res, oci_resources_t *r)
{
	json_t *o;
	if (oci_j_object(p, res, "pids", false, &o) < 0)
		return -1;
	if (o == NULL)
		return 0;
	size_t mark = oci_jp_key(p, "pids");
	int rc = oci_j_i64(p, o, "limit", true, INT64_MIN, INT64_MAX, &r->has_pids_limit, &r->pids_limit);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_resources(oci_jpath_t *p, const json_t *obj, oci_linux_t *lx)
{
	json_t *res;
	if (oci_j_object(p, obj, "resources", false, &res) < 0)
		return -1;
	if (res == NULL)
		return 0;
	if ((lx->resources = calloc(1, sizeof(*lx->resources))) == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	oci_resources_t *r = lx->resources;
	size_t mark = oci_jp_key(p, "resources");
	int rc = parse_array(p, res, "devices", sizeof(oci_device_rule_t), (void **)&r->device_rules,
			     &r->n_device_rules, device_rule);
	if (rc == 0 && (parse_memory(p, res, r) < 0 || parse_cpu(p, res, r) < 0 || parse_pids(p, res, r) < 0))
		rc = -1;
	r->has_unified = oci_j_nonempty(res, "unified");
	r->has_block_io = oci_j_nonempty(res, "blockIO");
	r->has_hugepage_limits = oci_j_nonempty(res, "hugepageLimits");
	r->has_network = oci_j_nonempty(res, "network");
	r->has_rdma = oci_j_nonempty(res, "rdma");
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_seccomp_member(oci_jpath_t *p, const json_t *obj, oci_linux_t *lx)
{
	json_t *sc;
	if (oci_j_object(p, obj, "seccomp", false, &sc) < 0)
		return -1;
	if (sc == NULL)
		return 0;
	if ((lx->seccomp = calloc(1, sizeof(*lx->seccomp))) == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	size_t mark = oci_jp_key(p, "seccomp");
	int rc = oci_parse_seccomp(p, sc, lx->seccomp);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_paths(oci_jpath_t *p, const json_t *obj, const char *key, char ***out)
{
	if (oci_j_strv(p, obj, key, false, false, out) < 0)
		return -1;
	for (size_t i = 0; *out != NULL && (*out)[i] != NULL; i++) {
		if (!oci_is_abs((*out)[i])) {
			size_t mark = oci_jp_key(p, key);
			oci_jp_index(p, i);
			oci_jp_fail(p, "must be an absolute path");
			oci_jp_restore(p, mark);
			return -1;
		}
	}
	return 0;
}

static int parse_propagation(oci_jpath_t *p, const json_t *obj, oci_linux_t *lx)
{
	char q[80];
	if (oci_j_string(p, obj, "rootfsPropagation", false, &lx->rootfs_propagation) < 0)
		return -1;
	if (lx->rootfs_propagation != NULL && oci_name_index(propagations, lx->rootfs_propagation) < 0)
		return oci_jp_fail_at(p, "rootfsPropagation", "unknown propagation \"%s\"",
				      oci_jquote(lx->rootfs_propagation, q, sizeof(q)));
	return 0;
}

/* personality: the domain (required by the spec) and whether flags are set; recorded only. */
static int parse_personality(oci_jpath_t *p, const json_t *obj, oci_linux_t *lx)
{
	json_t *o;
	if (oci_j_object(p, obj, "personality", false, &o) < 0)
		return -1;
	if (o == NULL)
		return 0;
	size_t mark = oci_jp_key(p, "personality");
	int rc = oci_j_string(p, o, "domain", true, &lx->personality_domain);
	lx->has_personality_flags = oci_j_nonempty(o, "flags");
	oci_jp_restore(p, mark);
	return rc;
}

int oci_parse_linux(oci_jpath_t *p, const json_t *obj, oci_linux_t *lx)
{
	lx->has_intel_rdt = oci_j_nonempty(obj, "intelRdt");
	lx->has_memory_policy = oci_j_nonempty(obj, "memoryPolicy");
	return parse_personality(p, obj, lx) < 0 || parse_array(p, obj, "namespaces", sizeof(*lx->namespaces), (void **)&lx->namespaces,
			   &lx->n_namespaces, parse_namespace) < 0 ||
			       parse_array(p, obj, "uidMappings", sizeof(oci_idmap_t), (void **)&lx->uid_mappings,
					   &lx->n_uid_mappings, parse_idmap) < 0 ||
			       parse_array(p, obj, "gidMappings", sizeof(oci_idmap_t), (void **)&lx->gid_mappings,
					   &lx->n_gid_mappings, parse_idmap) < 0 ||
			       parse_resources(p, obj, lx) < 0 ||
			       oci_j_string(p, obj, "cgroupsPath", false, &lx->cgroups_path) < 0 ||
			       parse_seccomp_member(p, obj, lx) < 0 ||
			       parse_paths(p, obj, "maskedPaths", &lx->masked_paths) < 0 ||
			       parse_paths(p, obj, "readonlyPaths", &lx->readonly_paths) < 0 ||
			       parse_sysctl(p, obj, lx) < 0 ||
			       parse_array(p, obj, "devices", sizeof(oci_device_t), (void **)&lx->devices,
					   &lx->n_devices, parse_device) < 0 ||
			       parse_propagation(p, obj, lx) < 0 ||
			       oci_j_string(p, obj, "mountLabel", false, &lx->mount_label) < 0
		       ? -1
		       : 0;
}

void oci_linux_free(oci_linux_t *lx)
{
	if (lx == NULL)
		return;
	for (size_t i = 0; i < lx->n_namespaces; i++)
		free(lx->namespaces[i].path);
	free(lx->namespaces);
	free(lx->uid_mappings);
	free(lx->gid_mappings);
	if (lx->resources != NULL) {
		free(lx->resources->cpu_cpus);
		free(lx->resources->cpu_mems);
		free(lx->resources->device_rules);
		free(lx->resources);
	}
	free(lx->cgroups_path);
	oci_seccomp_free(lx->seccomp);
	oci_strv_free(lx->masked_paths);
	oci_strv_free(lx->readonly_paths);
	for (size_t i = 0; i < lx->n_sysctl; i++)
		free(lx->sysctl[i].key), free(lx->sysctl[i].value);
	free(lx->sysctl);
	for (size_t i = 0; i < lx->n_devices; i++)
		free(lx->devices[i].path);
	free(lx->devices);
	free(lx->rootfs_propagation);
	free(lx->mount_label);
	free(lx->personality_domain);
	free(lx);
}
