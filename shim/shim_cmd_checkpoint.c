/*
 * checkpoint and restore: a km snapshot in an image directory (docs/cli.md, "km-shim").
 *
 * The image directory holds km.snap (km's snapshot, written by km itself into the directory
 * descriptor passed with the request: km runs inside the container and cannot see host paths),
 * km-checkpoint.json (what was checkpointed, and the sizes km reported) and inventory.img, a
 * minimal CRIU inventory: podman looks for it before it restores. restore creates a container
 * from the bundle with km resuming km.snap, and starts it.
 */
#include "shim_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "oci_file.h"
#include "shim_file.h"
#include "shim_log.h"
#include "shim_container.h"
#include "shim_mgmt_client.h"

#define SNAP_NAME "km.snap"
#define META_NAME "km-checkpoint.json"
#define INVENTORY_NAME "inventory.img"
#define SNAPSHOT_TIMEOUT_MS (10 * 60 * 1000)

#ifndef KM_VERSION
#define KM_VERSION "0.1.0" /* km/km_cli.h: km-shim and km are released together */
#endif

/* CRIU's image format: inventory.img is its magic (no common magic before it), then entries,
 * each a 32-bit length and a protobuf message. Ours: one inventory_entry with only
 * img_version = 2 (CRIU_IMAGES_V1_1), field 1 as a varint. */
#define CRIU_INVENTORY_MAGIC 0x58313116u
#define CRIU_IMAGES_V1_1 2

/* Refuses a runc flag that km cannot honour when ignoring it would lose data or mislead; logs
 * the harmless ones. */
static int check_cr_flags(const shim_args_t *a, bool checkpoint, km_err_t **err)
{
	const char *cmd = checkpoint ? "checkpoint" : "restore";
	if (a->lazy_pages)
		return km_err_set(err, 0, "%s: --lazy-pages is not supported by km-shim (km already maps a "
					  "snapshot's memory lazily from the file)", cmd);
	if (a->page_server != NULL)
		return km_err_set(err, 0, "%s: --page-server is not supported by km-shim (the image would "
					  "not be where it is expected)", cmd);
	static const struct {
		size_t off;
		const char *name;
	} ignored[] = {
	    {offsetof(shim_args_t, ext_unix_sk), "--ext-unix-sk"},
	    {offsetof(shim_args_t, shell_job), "--shell-job"},
	    {offsetof(shim_args_t, file_locks), "--file-locks"},
	    {offsetof(shim_args_t, auto_dedup), "--auto-dedup"},
	    {offsetof(shim_args_t, no_subreaper), "--no-subreaper"},
	};
	for (size_t i = 0; i < sizeof(ignored) / sizeof(ignored[0]); i++)
		if (*(const bool *)((const char *)a + ignored[i].off))
			shim_log(SHIM_LOG_DEBUG, "%s: %s accepted and ignored (not applicable to km)", cmd, ignored[i].name);
	if (!checkpoint && a->tcp_established)
		shim_log(SHIM_LOG_DEBUG, "restore: --tcp-established accepted and ignored (connections come back as "
					 "the checkpoint saved them)");
	if (a->work_path != NULL)
		shim_log(SHIM_LOG_DEBUG, "%s: --work-path %s accepted and ignored (km writes no logs or work files)",
			 cmd, a->work_path);
	if (a->manage_cgroups_mode != NULL)
		shim_log(SHIM_LOG_DEBUG, "%s: --manage-cgroups-mode %s accepted and ignored", cmd, a->manage_cgroups_mode);
	if (a->n_empty_ns > 0)
		shim_log(SHIM_LOG_DEBUG, "%s: --empty-ns accepted and ignored (namespaces come from config.json)", cmd);
	if (a->has_status_fd)
		shim_log(SHIM_LOG_DEBUG, "%s: --status-fd accepted and ignored (only used with --lazy-pages)", cmd);
	if (a->lsm_profile != NULL || a->lsm_mount_context != NULL)
		shim_log(SHIM_LOG_DEBUG, "%s: --lsm-profile/--lsm-mount-context accepted and ignored", cmd);
	return 0;
}

static int write_inventory(int dfd, const char *dir, km_err_t **err)
{
	uint8_t img[10];
	uint32_t magic = CRIU_INVENTORY_MAGIC, len = 2;
	memcpy(img, &magic, 4); /* CRIU writes host (little-endian) order */
	memcpy(img + 4, &len, 4);
	img[8] = 0x08; /* field 1, varint */
	img[9] = CRIU_IMAGES_V1_1;
	return oci_file_replace_at(dfd, dir, INVENTORY_NAME, img, sizeof(img), 0600, err);
}

static long long field_ll(const shim_mgmt_reply_t *r, const char *key)
{
	char *v = shim_mgmt_field(r, key);
	long long n = v != NULL ? strtoll(v, NULL, 10) : 0;
	free(v);
	return n;
}

/* parent: the parent image's snapshot relative to this image directory (incremental), or NULL. */
static int write_meta(int dfd, const char *dir, const oci_state_t *st, const shim_mgmt_reply_t *r, bool left_running,
		      const char *parent, km_err_t **err)
{
	char *when = shim_now_rfc3339();
	char *ms = shim_mgmt_field(r, "ms");
	json_t *o = json_pack("{s:i, s:s, s:s?, s:s, s:s, s:s?, s:s, s:s?, s:b, s:{s:I, s:I, s:I, s:f}}", "version", 1,
			      "id", st->id, "config_digest", st->config_digest, "bundle", st->bundle, "km_version",
			      KM_VERSION, "time", when, "snapshot", SNAP_NAME, "parent", parent, "left_running",
			      left_running, "sizes", "size", (json_int_t)field_ll(r, "size"), "disk",
			      (json_int_t)field_ll(r, "disk"), "memory", (json_int_t)field_ll(r, "memory"), "ms",
			      ms != NULL ? strtod(ms, NULL) : 0.0);
	free(when);
	free(ms);
	char *text = o != NULL ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	if (text == NULL)
		return km_err_set(err, ENOMEM, "writing %s/%s", dir, META_NAME);
	size_t n = strlen(text);
	text[n] = '\n';
	int rc = oci_file_replace_at(dfd, dir, META_NAME, text, n + 1, 0600, err);
	free(text);
	return rc;
}

/* The path of `to` relative to the directory `from` (both absolute and canonical): ".." for each
 * component of `from` past the components they share, then the rest of `to`. */
static char *relative_to(const char *from, const char *to)
{
	size_t common = 0, i = 0;
	for (; from[i] != '\0' && from[i] == to[i]; i++)
		if (from[i] == '/')
			common = i;
	if ((from[i] == '\0' || from[i] == '/') && (to[i] == '\0' || to[i] == '/'))
		common = i; /* one is the other, or lies inside it */
	size_t ups = 0;
	for (const char *c = from + common; *c != '\0'; c++)
		ups += *c == '/';
	const char *rest = to + common + (to[common] == '/');
	char *out = calloc(1, ups * 3 + strlen(rest) + 2);
	if (out == NULL)
		return NULL;
	for (size_t k = 0; k < ups; k++)
		strcat(out, "../");
	strcat(out, rest[0] != '\0' ? rest : ".");
	return out;
}

/* --parent-path: the previous image directory (runc's and CRIU's meaning: relative to the new
 * one, or absolute). Its snapshot as a path relative to `dir`, which km is given as a directory
 * fd (km runs inside the container: a host path means nothing there). */
static char *parent_snapshot(const char *dir, const char *parent_path, km_err_t **err)
{
	char *rel = NULL, *abs = NULL, *p = NULL;
	if (parent_path[0] != '/') {
		rel = strdup(parent_path);
	} else if ((abs = realpath(parent_path, NULL)) == NULL) {
		km_err_set(err, errno, "checkpoint: --parent-path %s", parent_path);
		return NULL;
	} else {
		rel = relative_to(dir, abs);
		free(abs);
	}
	if (rel == NULL || asprintf(&p, "%s/" SNAP_NAME, rel) < 0) {
		free(rel);
		km_err_set(err, ENOMEM, "checkpoint");
		return NULL;
	}
	free(rel);
	char *full = NULL;
	struct stat st;
	int bad = asprintf(&full, "%s/%s", dir, p) < 0 || stat(full, &st) != 0 || !S_ISREG(st.st_mode);
	if (bad) {
		km_err_set(err, errno, "checkpoint: --parent-path %s holds no km checkpoint (%s)", parent_path,
			   full != NULL ? full : p);
		free(p);
		p = NULL;
	}
	free(full);
	return p;
}

int shim_cmd_checkpoint(const shim_args_t *a, km_err_t **err)
{
	if (check_cr_flags(a, true, err) != 0)
		return -1;
	shim_ctr_t c;
	if (shim_ctr_open(a, true, &c, err) != 0)
		return -1;
	int rc = -1, dfd = -1;
	bool made = false; /* this call made the image directory */
	char *dir = NULL, *parent = NULL;
	shim_mgmt_reply_t r = {NULL, NULL};
	oci_status_t s = shim_ctr_status(&c);
	if (s != OCI_STATUS_RUNNING && s != OCI_STATUS_PAUSED) {
		km_err_set(err, 0, "cannot checkpoint container \"%s\": container not running (%s)", a->id,
			   oci_status_name(s));
		goto out;
	}
	if (a->image_path != NULL)
		dir = realpath(a->image_path, NULL);
	if (dir == NULL && (a->image_path != NULL ? asprintf(&dir, "%s", a->image_path)
						  : asprintf(&dir, "%s/checkpoint", c.st->bundle)) < 0) {
		dir = NULL;
		km_err_set(err, ENOMEM, "checkpoint");
		goto out;
	}
	/* 0700 for what is made: a snapshot holds the program's secrets */
	struct stat was;
	made = stat(dir, &was) != 0;
	if (shim_mkdir_p(dir, 0700) != 0) {
		km_err_set(err, errno, "making the image directory %s", dir);
		goto out;
	}
	dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0) {
		km_err_set(err, errno, "image directory %s", dir);
		goto out;
	}
	/* A pre-dump leaves the container running; its image is a whole snapshot the next
	 * checkpoint names with --parent-path. */
	bool running = a->leave_running || a->pre_dump;
	if (a->parent_path != NULL && (parent = parent_snapshot(dir, a->parent_path, err)) == NULL)
		goto out;
	struct stat pst, ost;
	if (parent != NULL && fstatat(dfd, parent, &pst, 0) == 0 && fstatat(dfd, SNAP_NAME, &ost, AT_SYMLINK_NOFOLLOW) == 0 &&
	    pst.st_dev == ost.st_dev && pst.st_ino == ost.st_ino) {
		/* refused before the image's own description is touched: it stays usable */
		km_err_set(err, EINVAL, "checkpoint of \"%s\": --parent-path %s names the image directory %s itself; "
					"an incremental checkpoint goes into a new image directory",
			   a->id, a->parent_path, dir);
		goto out;
	}
	/* A stale inventory or description must not make an older image look complete, or describe
	 * this one, if this one fails. */
	unlinkat(dfd, INVENTORY_NAME, 0);
	unlinkat(dfd, META_NAME, 0);
	char *label = shim_mgmt_encode(a->id);
	char *penc = parent != NULL ? shim_mgmt_encode(parent) : NULL;
	char *req = NULL;
	/* runc's semantics: an established TCP connection fails the checkpoint unless
	 * --tcp-established asks for it to be saved (km: TCP_REPAIR) */
	if (label == NULL || (parent != NULL && penc == NULL) ||
	    asprintf(&req, "snapshot dir=fd name=" SNAP_NAME " mode=%s label=%s tcp=%s%s%s",
		     running ? "continue" : "stop", label, a->tcp_established ? "repair" : "refuse",
		     penc != NULL ? " parent=" : "", penc != NULL ? penc : "") < 0)
		req = NULL;
	free(label);
	free(penc);
	if (req == NULL) {
		km_err_set(err, ENOMEM, "checkpoint");
		goto out;
	}
	shim_log(SHIM_LOG_DEBUG, "checkpoint %s: %s (with the directory %s)", a->id, req, dir);
	int mr = shim_mgmt_call(c.dir.dirfd, req, dfd, SNAPSHOT_TIMEOUT_MS, &r, err);
	free(req);
	if (mr != 0) {
		km_err_wrap(err, "checkpoint of \"%s\"", a->id);
		goto out;
	}
	if (write_meta(dfd, dir, c.st, &r, running, parent, err) != 0 || write_inventory(dfd, dir, err) != 0)
		goto out;
	if (!running) {
		/* km ends once the snapshot is written: the container is stopped, as after runc's */
		if (shim_wait_gone(c.st->pid, c.st->pid_start_time, 30000) != 0) {
			/* not stopped while it runs: its state stays what it is */
			shim_log(SHIM_LOG_WARN, "km (pid %d) still runs 30 s after its checkpoint", (int)c.st->pid);
		} else {
			c.st->status = OCI_STATUS_STOPPED;
			if (oci_state_write(c.dir.path, c.st, err) != 0)
				goto out;
		}
	}
	rc = 0;
out:
	shim_mgmt_reply_free(&r);
	if (dfd >= 0)
		close(dfd);
	if (rc != 0 && made && dir != NULL)
		rmdir(dir); /* made for this checkpoint and left empty by its failure (else kept) */
	free(dir);
	free(parent);
	shim_ctr_close(&c);
	return rc;
}

/* The chain below an image's snapshot, from each image's km-checkpoint.json "parent" (a path
 * relative to that image directory): each opened, a regular file, into fds[1..]. Returns how many
 * fds (1 + the chain's length), or -1 with *err. fds[0] is the snapshot itself. */
static int open_chain_at(const char *dir, int *fds, int *n, km_err_t **err);

static int open_chain(const char *dir, int *fds, km_err_t **err)
{
	int n = 1;
	if (open_chain_at(dir, fds, &n, err) < 0) {
		for (int i = 1; i < n; i++)
			close(fds[i]);
		return -1;
	}
	return n;
}

/* One member of the chain, as km-shim records it (an image directory's SNAP_NAME): a regular
 * file reached without a symbolic link at its end, as the image's own snapshot is opened; a FIFO
 * or a device is never opened. km-shim is root on the host and hands the fd into the container:
 * a name in an image directory must not make it open whatever a link points to. */
static int open_parent_snap(const char *path, km_err_t **err)
{
	struct stat st, fst;
	const char *base = strrchr(path, '/');
	if (strcmp(base != NULL ? base + 1 : path, SNAP_NAME) != 0)
		return km_err_set(err, 0, "restore: the parent snapshot %s is not an image's " SNAP_NAME, path);
	if (lstat(path, &st) != 0)
		return km_err_set(err, errno, "restore: the parent snapshot %s", path);
	if (S_ISLNK(st.st_mode))
		return km_err_set(err, 0, "restore: the parent snapshot %s is a symbolic link", path);
	if (!S_ISREG(st.st_mode))
		return km_err_set(err, 0, "restore: the parent snapshot %s is not a regular file", path);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return km_err_set(err, errno, "restore: the parent snapshot %s", path);
	if (fstat(fd, &fst) != 0 || fst.st_dev != st.st_dev || fst.st_ino != st.st_ino) {
		close(fd);
		return km_err_set(err, 0, "restore: the parent snapshot %s changed while it was opened", path);
	}
	return fd;
}

static int open_chain_at(const char *dir, int *fds, int *np, km_err_t **err)
{
	char cur[PATH_MAX];
	int n = *np;
	snprintf(cur, sizeof(cur), "%s", dir);
	for (;;) {
		char meta[PATH_MAX + 32];
		snprintf(meta, sizeof(meta), "%s/" META_NAME, cur);
		json_t *o = json_load_file(meta, 0, NULL);
		const char *parent = o != NULL ? json_string_value(json_object_get(o, "parent")) : NULL;
		if (parent == NULL) { /* the chain ends (or an image from before incremental ones) */
			json_decref(o);
			return 0;
		}
		if (n > SHIM_MAX_PARENTS) {
			json_decref(o);
			return km_err_set(err, 0, "restore: the chain below %s is longer than %d", dir, SHIM_MAX_PARENTS);
		}
		char path[PATH_MAX];
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", cur, parent) >= sizeof(path)) {
			json_decref(o);
			return km_err_set(err, ENAMETOOLONG, "restore: the parent of %s", cur);
		}
		json_decref(o);
		int fd = open_parent_snap(path, err);
		if (fd < 0)
			return -1;
		fds[n++] = fd;
		*np = n;
		char *slash = strrchr(path, '/');
		*slash = '\0';
		snprintf(cur, sizeof(cur), "%s", path);
	}
}

int shim_cmd_restore(const shim_args_t *a, km_err_t **err)
{
	if (check_cr_flags(a, false, err) != 0)
		return -1;
	char bundle[PATH_MAX], *dir = NULL;
	const char *b = a->bundle != NULL ? a->bundle : ".";
	if (realpath(b, bundle) == NULL)
		return km_err_set(err, errno, "bundle %s", b);
	const char *img = a->image_path;
	char def[PATH_MAX + 32];
	if (img == NULL) {
		snprintf(def, sizeof(def), "%s/checkpoint", bundle);
		img = def;
	}
	dir = realpath(img, NULL);
	if (dir == NULL)
		return km_err_set(err, errno, "restore: image directory %s", img);
	int rc = -1;
	int dfd = open(dir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	int snap = dfd >= 0 ? openat(dfd, SNAP_NAME, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	if (dfd < 0) {
		km_err_set(err, errno, "restore: image directory %s", dir);
	} else if (snap < 0 && errno == ENOENT) {
		km_err_set(err, 0, "restore: %s holds no km checkpoint (%s is missing)", dir, SNAP_NAME);
	} else if (snap < 0) {
		km_err_set(err, errno, "restore: %s/%s", dir, SNAP_NAME);
	} else {
		struct stat st;
		if (fstat(snap, &st) != 0) {
			km_err_set(err, errno, "restore: %s/%s", dir, SNAP_NAME);
		} else if (!S_ISREG(st.st_mode)) {
			km_err_set(err, 0, "restore: %s/%s is not a regular file", dir, SNAP_NAME);
		} else {
			shim_args_t ra = *a;
			ra.bundle = bundle;
			pid_t pid;
			int master, fds[1 + SHIM_MAX_PARENTS + 1];
			fds[0] = snap;
			int n = open_chain(dir, fds, err);
			if (n > 0 && shim_create_container(&ra, fds, n, dir, &pid, &master, err) == 0) {
				close(snap);
				snap = -1;
				for (int i = 1; i < n; i++)
					close(fds[i]);
				rc = shim_run_created(&ra, pid, master, err);
			} else {
				for (int i = 1; i < n; i++)
					close(fds[i]);
				km_err_wrap(err, "restore from %s", dir);
			}
		}
	}
	if (snap >= 0)
		close(snap);
	if (dfd >= 0)
		close(dfd);
	free(dir);
	return rc;
}
