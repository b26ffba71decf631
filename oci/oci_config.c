/* config.json: the top level, root, mounts, hooks, annotations; loading and freeing. See
 * oci_config.h; process and linux are parsed by oci_config_process.c and oci_config_linux.c. */
#include "oci_config.h"
#include "oci_config_parts.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_MAX (4u << 20)

static const char *const hook_names[OCI_HOOK_KINDS] = {
	[OCI_HOOK_PRESTART] = "prestart",
	[OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
	[OCI_HOOK_CREATE_CONTAINER] = "createContainer",
	[OCI_HOOK_START_CONTAINER] = "startContainer",
	[OCI_HOOK_POSTSTART] = "poststart",
	[OCI_HOOK_POSTSTOP] = "poststop",
};

static int nomem(oci_jpath_t *p)
{
	return km_err_set(p->err, ENOMEM, "%s", p->what);
}

static int parse_root(oci_jpath_t *p, const json_t *top, oci_config_t *cfg)
{
	json_t *root;
	if (oci_j_object(p, top, "root", true, &root) < 0)
		return -1;
	size_t mark = oci_jp_key(p, "root");
	int rc = oci_j_string(p, root, "path", true, &cfg->root_path) < 0 ||
			 oci_j_bool(p, root, "readonly", &cfg->root_readonly) < 0
		 ? -1
		 : 0;
	if (rc == 0 && cfg->root_path[0] == '\0')
		rc = oci_jp_fail_at(p, "path", "must not be empty");
	oci_jp_restore(p, mark);
	return rc;
}

bool oci_j_nonempty(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	if (v == NULL || json_is_null(v))
		return false;
	if (json_is_object(v))
		return json_object_size(v) > 0;
	return !json_is_array(v) || json_array_size(v) > 0;
}

static int parse_mount(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_mount_t *m = &((oci_config_t *)ctx)->mounts[i];
	if (oci_j_string(p, obj, "destination", true, &m->destination) < 0)
		return -1;
	if (!oci_is_abs(m->destination))
		return oci_jp_fail_at(p, "destination", "must be an absolute path");
	m->has_id_mappings = oci_j_nonempty(obj, "uidMappings") || oci_j_nonempty(obj, "gidMappings");
	return oci_j_string(p, obj, "type", false, &m->type) < 0 ||
			       oci_j_string(p, obj, "source", false, &m->source) < 0 ||
			       oci_j_strv(p, obj, "options", false, false, &m->options) < 0
		       ? -1
		       : 0;
}

static int parse_mounts(oci_jpath_t *p, const json_t *top, oci_config_t *cfg)
{
	json_t *arr;
	if (oci_j_array(p, top, "mounts", false, &arr) < 0)
		return -1;
	if (arr == NULL || json_array_size(arr) == 0)
		return 0;
	if ((cfg->mounts = calloc(json_array_size(arr), sizeof(*cfg->mounts))) == NULL)
		return nomem(p);
	cfg->n_mounts = json_array_size(arr);
	size_t mark = oci_jp_key(p, "mounts");
	int rc = oci_j_each_object(p, arr, parse_mount, cfg);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_hook(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_hook_t *h = &(*(oci_hook_t **)ctx)[i];
	int64_t timeout = 0;
	if (oci_j_string(p, obj, "path", true, &h->path) < 0)
		return -1;
	if (!oci_is_abs(h->path))
		return oci_jp_fail_at(p, "path", "must be an absolute path");
	if (oci_j_strv(p, obj, "args", false, false, &h->args) < 0 ||
	    oci_j_strv(p, obj, "env", false, false, &h->env) < 0 ||
	    oci_j_i64(p, obj, "timeout", false, 1, INT32_MAX, &h->has_timeout, &timeout) < 0)
		return -1;
	h->timeout = (int)timeout;
	return 0;
}

static int parse_hook_kind(oci_jpath_t *p, const json_t *hooks, oci_config_t *cfg, oci_hook_kind_t k)
{
	json_t *arr;
	if (oci_j_array(p, hooks, hook_names[k], false, &arr) < 0)
		return -1;
	if (arr == NULL || json_array_size(arr) == 0)
		return 0;
	if ((cfg->hooks[k] = calloc(json_array_size(arr), sizeof(oci_hook_t))) == NULL)
		return nomem(p);
	cfg->n_hooks[k] = json_array_size(arr);
	size_t mark = oci_jp_key(p, hook_names[k]);
	int rc = oci_j_each_object(p, arr, parse_hook, &cfg->hooks[k]);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_hooks(oci_jpath_t *p, const json_t *top, oci_config_t *cfg)
{
	json_t *hooks;
	if (oci_j_object(p, top, "hooks", false, &hooks) < 0)
		return -1;
	if (hooks == NULL)
		return 0;
	size_t mark = oci_jp_key(p, "hooks");
	int rc = 0;
	for (int k = 0; k < OCI_HOOK_KINDS && rc == 0; k++)
		rc = parse_hook_kind(p, hooks, cfg, k);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_annotation(oci_jpath_t *p, const char *key, const json_t *v, oci_annotation_t *a)
{
	if (key[0] == '\0')
		return oci_jp_fail(p, "keys must not be empty");
	size_t mark = oci_jp_key(p, key);
	int rc = 0;
	if (oci_jv_string(p, v, &a->value) < 0)
		rc = -1;
	else if ((a->key = strdup(key)) == NULL)
		rc = nomem(p);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_annotations(oci_jpath_t *p, const json_t *top, oci_config_t *cfg)
{
	json_t *obj;
	if (oci_j_object(p, top, "annotations", false, &obj) < 0)
		return -1;
	if (obj == NULL || json_object_size(obj) == 0)
		return 0;
	if ((cfg->annotations = calloc(json_object_size(obj), sizeof(*cfg->annotations))) == NULL)
		return nomem(p);
	cfg->n_annotations = json_object_size(obj);
	size_t mark = oci_jp_key(p, "annotations");
	const char *key;
	json_t *v;
	size_t i = 0;
	int rc = 0;
	json_object_foreach(obj, key, v)
	{
		if ((rc = parse_annotation(p, key, v, &cfg->annotations[i++])) < 0)
			break;
	}
	oci_jp_restore(p, mark);
	return rc;
}

/* A required or optional object member parsed into a calloc'd struct by `parse`. */
static int parse_section(oci_jpath_t *p, const json_t *top, const char *key, bool required, size_t size,
			 void **out, int (*parse)(oci_jpath_t *, const json_t *, void *))
{
	json_t *obj;
	if (oci_j_object(p, top, key, required, &obj) < 0)
		return -1;
	if (obj == NULL)
		return 0;
	if ((*out = calloc(1, size)) == NULL)
		return nomem(p);
	size_t mark = oci_jp_key(p, key);
	int rc = parse(p, obj, *out);
	oci_jp_restore(p, mark);
	return rc;
}

static int parse_process_v(oci_jpath_t *p, const json_t *obj, void *out)
{
	return oci_parse_process(p, obj, out);
}

static int parse_linux_v(oci_jpath_t *p, const json_t *obj, void *out)
{
	return oci_parse_linux(p, obj, out);
}

static int parse_top(oci_jpath_t *p, const json_t *top, oci_config_t *cfg)
{
	if (oci_j_string(p, top, "ociVersion", true, &cfg->oci_version) < 0)
		return -1;
	if (cfg->oci_version[0] == '\0')
		return oci_jp_fail_at(p, "ociVersion", "must not be empty");
	return parse_section(p, top, "process", true, sizeof(oci_process_t), (void **)&cfg->process,
			     parse_process_v) < 0 ||
			       parse_root(p, top, cfg) < 0 ||
			       oci_j_string(p, top, "hostname", false, &cfg->hostname) < 0 ||
			       oci_j_string(p, top, "domainname", false, &cfg->domainname) < 0 ||
			       parse_mounts(p, top, cfg) < 0 ||
			       parse_section(p, top, "linux", false, sizeof(oci_linux_t), (void **)&cfg->linux_,
					     parse_linux_v) < 0 ||
			       parse_hooks(p, top, cfg) < 0 || parse_annotations(p, top, cfg) < 0
		       ? -1
		       : 0;
}

oci_config_t *oci_config_parse(const char *json, size_t len, const char *what, km_err_t **err)
{
	oci_jpath_t p = { .what = what != NULL ? what : "config.json", .err = err };
	json_t *top = oci_json_parse_object(&p, json, len);
	if (top == NULL)
		return NULL;
	oci_config_t *cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		nomem(&p);
	else if (parse_top(&p, top, cfg) < 0) {
		oci_config_free(cfg);
		cfg = NULL;
	}
	json_decref(top);
	return cfg;
}

/* Reads the whole regular file at `path` (at most CONFIG_MAX bytes). */
static char *read_config(const char *path, size_t *len, km_err_t **err)
{
	/* O_NONBLOCK: a fifo planted as config.json must not hang km-shim before the type check. */
	int fd km_autoclose = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return km_err_set(err, errno, "%s", path), NULL;
	if (!S_ISREG(st.st_mode))
		return km_err_set(err, 0, "%s: not a regular file", path), NULL;
	if (st.st_size > CONFIG_MAX)
		return km_err_set(err, 0, "%s: larger than 4 MiB", path), NULL;
	char *buf = malloc(CONFIG_MAX + 1);
	size_t n = 0;
	ssize_t r = 1;
	while (buf != NULL && n <= CONFIG_MAX && (r = read(fd, buf + n, CONFIG_MAX + 1 - n)) > 0)
		n += r;
	if (buf == NULL || r < 0) {
		km_err_set(err, buf == NULL ? ENOMEM : errno, "reading %s", path);
		free(buf);
		return NULL;
	}
	if (n > CONFIG_MAX) {
		free(buf);
		return km_err_set(err, 0, "%s: larger than 4 MiB", path), NULL;
	}
	*len = n;
	return buf;
}

oci_config_t *oci_config_load(const char *bundle, km_err_t **err)
{
	char *path = NULL;
	if (asprintf(&path, "%s/config.json", bundle) < 0)
		return km_err_set(err, ENOMEM, "%s/config.json", bundle), NULL;
	size_t len = 0;
	char *text = read_config(path, &len, err);
	oci_config_t *cfg = text != NULL ? oci_config_parse(text, len, path, err) : NULL;
	free(text);
	free(path);
	return cfg;
}

static void free_hooks(oci_hook_t *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(h[i].path);
		oci_strv_free(h[i].args);
		oci_strv_free(h[i].env);
	}
	free(h);
}

void oci_config_free(oci_config_t *cfg)
{
	if (cfg == NULL)
		return;
	free(cfg->oci_version);
	oci_process_free(cfg->process);
	free(cfg->root_path);
	free(cfg->hostname);
	free(cfg->domainname);
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		free(cfg->mounts[i].destination);
		free(cfg->mounts[i].type);
		free(cfg->mounts[i].source);
		oci_strv_free(cfg->mounts[i].options);
	}
	free(cfg->mounts);
	oci_linux_free(cfg->linux_);
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		free_hooks(cfg->hooks[k], cfg->n_hooks[k]);
	for (size_t i = 0; i < cfg->n_annotations; i++) {
		free(cfg->annotations[i].key);
		free(cfg->annotations[i].value);
	}
	free(cfg->annotations);
	free(cfg);
}

const oci_namespace_t *oci_config_namespace(const oci_config_t *cfg, oci_ns_type_t type)
{
	if (cfg == NULL || cfg->linux_ == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->linux_->n_namespaces; i++)
		if (cfg->linux_->namespaces[i].type == type)
			return &cfg->linux_->namespaces[i];
	return NULL;
}

const char *oci_config_annotation(const oci_config_t *cfg, const char *key)
{
	for (size_t i = 0; cfg != NULL && i < cfg->n_annotations; i++)
		if (cfg->annotations[i].key != NULL && strcmp(cfg->annotations[i].key, key) == 0)
			return cfg->annotations[i].value;
	return NULL;
}
