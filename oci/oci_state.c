/* km-shim's state.json: see oci_state.h. */
#include "oci_state.h"
#include "oci_file.h"
#include "oci_json.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATE_MAX (1u << 20)

static const char *const status_names[] = {
	[OCI_STATUS_CREATING] = "creating", [OCI_STATUS_CREATED] = "created", [OCI_STATUS_RUNNING] = "running",
	[OCI_STATUS_PAUSED] = "paused",	    [OCI_STATUS_STOPPED] = "stopped", NULL,
};

const char *oci_status_name(oci_status_t s)
{
	return s >= OCI_STATUS_CREATING && s <= OCI_STATUS_STOPPED ? status_names[s] : "unknown";
}

/* ---- writing ---- */

static int set_str(json_t *o, const char *key, const char *v)
{
	return v == NULL ? 0 : json_object_set_new(o, key, json_string(v));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "key=value" pairs as an object, keys sorted (as runc's Go maps print). NULL on allocation failure. */
static json_t *annotations_object(char **pairs)
{
	size_t n = 0;
	while (pairs != NULL && pairs[n] != NULL)
		n++;
	json_t *o = json_object();
	char **sorted = calloc(n + 1, sizeof(*sorted));
	if (o == NULL || sorted == NULL) {
		json_decref(o);
		free(sorted);
		return NULL;
	}
	memcpy(sorted, pairs, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *eq = strchr(sorted[i], '=');
		char *key = strndup(sorted[i], eq != NULL ? (size_t)(eq - sorted[i]) : strlen(sorted[i]));
		rc = key == NULL ? -1 : json_object_set_new(o, key, json_string(eq != NULL ? eq + 1 : ""));
		free(key);
	}
	free(sorted);
	if (rc < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *state_object(const oci_state_t *st)
{
	json_t *o = json_object();
	if (o == NULL)
		return NULL;
	int rc = set_str(o, "id", st->id) | set_str(o, "bundle", st->bundle) | set_str(o, "rootfs", st->rootfs) |
		 set_str(o, "status", oci_status_name(st->status)) |
		 json_object_set_new(o, "pid", json_integer(st->pid)) |
		 json_object_set_new(o, "pidStartTime", json_integer((json_int_t)st->pid_start_time)) |
		 set_str(o, "created", st->created) | set_str(o, "owner", st->owner) |
		 set_str(o, "configDigest", st->config_digest) | set_str(o, "mgmtSocket", st->mgmt_socket) |
		 set_str(o, "cgroupPath", st->cgroup_path) | set_str(o, "restoredFrom", st->restored_from);
	json_t *ann = st->annotations != NULL ? annotations_object(st->annotations) : NULL;
	if (st->annotations != NULL && ann == NULL)
		rc = -1;
	else if (ann != NULL)
		rc |= json_object_set_new(o, "annotations", ann);
	json_t *cgp = st->cgroup_paths != NULL ? annotations_object(st->cgroup_paths) : NULL;
	if (st->cgroup_paths != NULL && cgp == NULL)
		rc = -1;
	else if (cgp != NULL)
		rc |= json_object_set_new(o, "cgroupPaths", cgp);
	if (rc != 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int oci_state_write(const char *dir, const oci_state_t *st, km_err_t **err)
{
	json_t *o = state_object(st);
	char *text = o != NULL ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (text == NULL) /* jansson refuses strings that are not UTF-8 */
		return km_err_set(err, 0, "writing %s/state.json: a field is not UTF-8 (or out of memory)", dir);
	char path[4096];
	int rc;
	if (snprintf(path, sizeof(path), "%s/state.json", dir) >= (int)sizeof(path))
		rc = km_err_set(err, ENAMETOOLONG, "writing %s/state.json", dir);
	else
		rc = oci_file_replace(path, text, strlen(text), 0600, err);
	free(text);
	return rc;
}

/* ---- reading ---- */

/* The whole regular file `path` (at most STATE_MAX bytes). */
static char *read_small_file(const char *path, size_t *len, km_err_t **err)
{
	int fd km_autoclose = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return km_err_set(err, errno, "%s", path), NULL;
	if (!S_ISREG(st.st_mode) || st.st_size > STATE_MAX)
		return km_err_set(err, 0, "%s: not a regular file of at most 1 MiB", path), NULL;
	char *buf = malloc(STATE_MAX + 1);
	size_t n = 0;
	ssize_t r = 1;
	while (buf != NULL && n <= STATE_MAX && (r = read(fd, buf + n, STATE_MAX + 1 - n)) > 0)
		n += r;
	if (buf == NULL || r < 0 || n > STATE_MAX) {
		km_err_set(err, buf == NULL ? ENOMEM : r < 0 ? errno : EFBIG, "reading %s", path);
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* An object of strings `name` as "key=value" pairs in *out (NULL if absent). */
static int read_pairs(oci_jpath_t *p, const json_t *top, const char *name, char ***out)
{
	json_t *o;
	if (oci_j_object(p, top, name, false, &o) < 0)
		return -1;
	if (o == NULL)
		return 0;
	char **v = *out = calloc(json_object_size(o) + 1, sizeof(char *));
	if (v == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	size_t mark = oci_jp_key(p, name), i = 0;
	const char *key;
	json_t *val_j;
	int rc = 0;
	json_object_foreach((json_t *)o, key, val_j)
	{
		size_t m2 = oci_jp_key(p, key);
		char *val = NULL;
		if (oci_jv_string(p, val_j, &val) < 0 || asprintf(&v[i++], "%s=%s", key, val) < 0)
			rc = -1;
		free(val);
		oci_jp_restore(p, m2);
		if (rc < 0)
			break;
	}
	oci_jp_restore(p, mark);
	return rc;
}

static int read_status(oci_jpath_t *p, const json_t *top, oci_state_t *st)
{
	char *s = NULL, q[80];
	if (oci_j_string(p, top, "status", true, &s) < 0)
		return -1;
	int i = 0;
	while (status_names[i] != NULL && strcmp(status_names[i], s) != 0)
		i++;
	if (status_names[i] == NULL)
		oci_jp_fail_at(p, "status", "unknown status \"%s\"", oci_jquote(s, q, sizeof(q)));
	free(s);
	st->status = i;
	return status_names[i] == NULL ? -1 : 0;
}

static int read_fields(oci_jpath_t *p, const json_t *top, oci_state_t *st)
{
	int64_t pid = 0;
	if (oci_j_string(p, top, "id", true, &st->id) < 0 || oci_j_string(p, top, "bundle", true, &st->bundle) < 0 ||
	    oci_j_string(p, top, "rootfs", true, &st->rootfs) < 0 || read_status(p, top, st) < 0 ||
	    oci_j_i64(p, top, "pid", true, 0, INT32_MAX, NULL, &pid) < 0 ||
	    oci_j_u64(p, top, "pidStartTime", true, 0, INT64_MAX, NULL, &st->pid_start_time) < 0 ||
	    oci_j_string(p, top, "created", true, &st->created) < 0 ||
	    oci_j_string(p, top, "owner", true, &st->owner) < 0 ||
	    oci_j_string(p, top, "configDigest", false, &st->config_digest) < 0 ||
	    oci_j_string(p, top, "mgmtSocket", false, &st->mgmt_socket) < 0 ||
	    oci_j_string(p, top, "cgroupPath", false, &st->cgroup_path) < 0 ||
	    oci_j_string(p, top, "restoredFrom", false, &st->restored_from) < 0 ||
	    read_pairs(p, top, "annotations", &st->annotations) < 0 || read_pairs(p, top, "cgroupPaths", &st->cgroup_paths) < 0)
		return -1;
	st->pid = pid;
	if (st->id[0] == '\0')
		return oci_jp_fail_at(p, "id", "must not be empty");
	if (st->bundle[0] != '/')
		return oci_jp_fail_at(p, "bundle", "must be an absolute path");
	if (st->rootfs[0] != '/')
		return oci_jp_fail_at(p, "rootfs", "must be an absolute path");
	return 0;
}

oci_state_t *oci_state_read(const char *dir, km_err_t **err)
{
	char *path = NULL;
	if (asprintf(&path, "%s/state.json", dir) < 0)
		return km_err_set(err, ENOMEM, "%s/state.json", dir), NULL;
	size_t len = 0;
	char *text = read_small_file(path, &len, err);
	oci_jpath_t p = { .what = path, .err = err };
	json_t *top = text != NULL ? oci_json_parse_object(&p, text, len) : NULL;
	oci_state_t *st = top != NULL ? calloc(1, sizeof(*st)) : NULL;
	if (top != NULL && st == NULL)
		km_err_set(err, ENOMEM, "%s", path);
	if (st != NULL && read_fields(&p, top, st) < 0) {
		oci_state_free(st);
		st = NULL;
	}
	json_decref(top);
	free(text);
	free(path);
	return st;
}

void oci_state_free(oci_state_t *st)
{
	if (st == NULL)
		return;
	free(st->id);
	free(st->bundle);
	free(st->rootfs);
	free(st->created);
	free(st->owner);
	free(st->config_digest);
	free(st->mgmt_socket);
	free(st->cgroup_path);
	oci_strv_free(st->cgroup_paths);
	free(st->restored_from);
	oci_strv_free(st->annotations);
	free(st);
}

/* ---- the live process ---- */

/* The state letter and start time of `pid` from /proc/<pid>/stat; 0 if there is no such process.
 * The fields are read after the last ')' since the command name (field 2) may hold ')' and spaces. */
static uint64_t proc_stat(pid_t pid, char *state)
{
	char path[64], buf[1024];
	if (pid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	char *s = strrchr(buf, ')');
	if (s == NULL)
		return 0;
	/* After ')': field 3 (state) ... field 22 (starttime), 20 fields in all. */
	char *save = NULL, *tok = strtok_r(s + 1, " ", &save);
	if (tok != NULL && state != NULL)
		*state = tok[0];
	for (int field = 3; tok != NULL && field < 22; field++)
		tok = strtok_r(NULL, " ", &save);
	return tok != NULL ? strtoull(tok, NULL, 10) : 0;
}

uint64_t oci_pid_start_time(pid_t pid)
{
	return proc_stat(pid, NULL);
}

bool oci_state_pid_alive(const oci_state_t *st)
{
	char state = 0;
	if (st == NULL || st->pid <= 0)
		return false;
	uint64_t start = proc_stat(st->pid, &state);
	/* A zombie has exited: the container is stopped even before its parent reaps it. */
	return start != 0 && start == st->pid_start_time && state != 'Z' && state != 'X';
}

/* ---- the OCI state ---- */

char *oci_state_to_json(const oci_state_t *st, oci_status_t status, km_err_t **err)
{
	json_t *o = json_object();
	int rc = o == NULL ? -1 : 0;
	if (rc == 0)
		rc = set_str(o, "ociVersion", "1.0.2") | set_str(o, "id", st->id) |
		     json_object_set_new(o, "pid", json_integer(st->pid)) |
		     set_str(o, "status", oci_status_name(status)) | set_str(o, "bundle", st->bundle) |
		     set_str(o, "rootfs", st->rootfs) | set_str(o, "created", st->created) |
		     set_str(o, "owner", st->owner != NULL ? st->owner : "");
	if (rc == 0 && st->annotations != NULL && st->annotations[0] != NULL) {
		json_t *ann = annotations_object(st->annotations);
		rc = ann == NULL ? -1 : json_object_set_new(o, "annotations", ann);
	}
	char *text = rc == 0 ? json_dumps(o, JSON_INDENT(2)) : NULL;
	json_decref(o);
	if (text == NULL)
		km_err_set(err, ENOMEM, "state of %s", st->id != NULL ? st->id : "container");
	return text;
}
