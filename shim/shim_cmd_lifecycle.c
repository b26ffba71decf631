/* create, start, run, delete, kill, state, list, ps: see shim_cmd.h and docs/cli.md ("km-shim"). */
#include "shim_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci_json.h"
#include "shim_cgroup.h"
#include "shim_container.h"
#include "shim_hooks.h"
#include "shim_log.h"
#include "shim_seccomp.h"

/* --- create --------------------------------------------------------------------------------- */

/* What create opens before the container exists; all closed by create_fds_close. */
typedef struct create_fds {
	int km_exe, kvm, mgmt, start, ready_r, ready_w, seccomp;
} create_fds_t;

static void create_fds_close(create_fds_t *f)
{
	int *all[] = {&f->km_exe, &f->kvm, &f->mgmt, &f->start, &f->ready_r, &f->ready_w, &f->seccomp};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (*all[i] >= 0)
			close(*all[i]);
		*all[i] = -1;
	}
}

static int open_km(create_fds_t *f, km_err_t **err)
{
	char *km = shim_km_path(err);
	if (km == NULL)
		return -1;
	if (access(km, X_OK) != 0) {
		km_err_set(err, errno, "km binary %s (set KM_SHIM_KM to its path)", km);
		free(km);
		return -1;
	}
	/* Opened for reading (not O_PATH) so its ELF header can be checked; execveat works on it. */
	f->km_exe = open(km, O_RDONLY | O_CLOEXEC);
	if (f->km_exe < 0)
		km_err_set(err, errno, "km binary %s", km);
	else if (shim_km_check_static(f->km_exe, km, err) != 0) {
		close(f->km_exe);
		f->km_exe = -1;
	}
	free(km);
	return f->km_exe < 0 ? -1 : 0;
}

/* The listening management socket at <dir>/km.sock, bound through /proc/self/fd so a long
 * --root still fits sun_path; mode 0600 from the start (umask). */
static int bind_mgmt(const shim_dir_t *d, create_fds_t *f, km_err_t **err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/km.sock", d->dirfd);
	f->mgmt = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (f->mgmt < 0)
		return km_err_set(err, errno, "management socket");
	mode_t old = umask(077);
	int r = bind(f->mgmt, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (r != 0)
		return km_err_set(err, e, "binding %s/km.sock", d->path);
	if (listen(f->mgmt, 16) != 0)
		return km_err_set(err, errno, "listening on %s/km.sock", d->path);
	return 0;
}

/* The start fifo, held open read-write so that it never reports EOF to km while km-shim is
 * gone: km waits for `start`'s byte however long that takes. */
static int make_start_fifo(const shim_dir_t *d, create_fds_t *f, km_err_t **err)
{
	if (mkfifoat(d->dirfd, "start.fifo", 0600) != 0)
		return km_err_set(err, errno, "making %s/start.fifo", d->path);
	f->start = openat(d->dirfd, "start.fifo", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (f->start < 0)
		return km_err_set(err, errno, "opening %s/start.fifo", d->path);
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return km_err_set(err, errno, "ready pipe");
	f->ready_r = p[0];
	f->ready_w = p[1];
	return 0;
}

/* Copies <bundle>/config.json into the container's directory: start, delete and checkpoint use
 * the config as it was at create (hooks, digest), whatever happens to the bundle later. */
static int save_config(const char *bundle, const shim_dir_t *d, km_err_t **err)
{
	char src[PATH_MAX + 32];
	snprintf(src, sizeof(src), "%s/config.json", bundle);
	int in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return km_err_set(err, errno, "%s", src);
	int out = openat(d->dirfd, "config.json", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0) {
		close(in);
		return km_err_set(err, errno, "%s/config.json", d->path);
	}
	char buf[65536];
	ssize_t n;
	int rc = 0;
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = km_err_set(err, errno, "copying config.json into %s", d->path);
			break;
		}
	if (n < 0)
		rc = km_err_set(err, errno, "reading %s", src);
	close(in);
	if (close(out) != 0 && rc == 0)
		rc = km_err_set(err, errno, "copying config.json into %s", d->path);
	return rc;
}

static char **annotations_of(const oci_config_t *cfg)
{
	char **v = calloc(cfg->n_annotations + 1, sizeof(*v));
	for (size_t i = 0; v != NULL && i < cfg->n_annotations; i++)
		if (asprintf(&v[i], "%s=%s", cfg->annotations[i].key, cfg->annotations[i].value) < 0)
			v[i] = NULL;
	return v;
}

/* The record as create first writes it (status creating, no pid yet). */
static oci_state_t *initial_state(const shim_args_t *a, const char *bundle, const oci_config_t *cfg,
				  const char *restored_from)
{
	oci_state_t *st = calloc(1, sizeof(*st));
	if (st == NULL)
		return NULL;
	char cfgpath[PATH_MAX + 32];
	snprintf(cfgpath, sizeof(cfgpath), "%s/config.json", bundle);
	km_err_t *e = NULL;
	st->config_digest = shim_file_digest(cfgpath, &e);
	if (st->config_digest == NULL) {
		shim_log(SHIM_LOG_DEBUG, "no config digest: %s", e->msg);
		km_err_free(&e);
	}
	st->id = strdup(a->id);
	st->bundle = strdup(bundle);
	if (cfg->root_path[0] == '/')
		st->rootfs = strdup(cfg->root_path);
	else if (asprintf(&st->rootfs, "%s/%s", bundle, cfg->root_path) < 0)
		st->rootfs = NULL;
	st->status = OCI_STATUS_CREATING;
	st->created = shim_now_rfc3339();
	st->owner = strdup("");
	if (asprintf(&st->mgmt_socket, "%s/%s/km.sock", a->root, a->id) < 0)
		st->mgmt_socket = NULL;
	st->restored_from = restored_from != NULL ? strdup(restored_from) : NULL;
	st->annotations = annotations_of(cfg);
	/* The cgroup spawn will make, named before it exists: a km-shim killed during spawn leaves
	 * delete --force a cgroup to find and remove. */
	if (shim_cgroup_plan(cfg, a->id, &st->cgroup_path, &st->cgroup_paths, &e) != 0) {
		shim_log(SHIM_LOG_DEBUG, "no cgroups planned (spawn says why): %s", e->msg);
		km_err_free(&e);
	}
	if (st->id == NULL || st->bundle == NULL || st->rootfs == NULL || st->created == NULL || st->owner == NULL ||
	    st->mgmt_socket == NULL || st->annotations == NULL || (restored_from != NULL && st->restored_from == NULL)) {
		oci_state_free(st);
		return NULL;
	}
	return st;
}

/* How long km may take to load the program or snapshot. Loading is quick (a snapshot's memory
 * is mapped lazily); the bound keeps a hung km from holding the container's lock, and with it
 * delete --force, forever. */
#define READY_TIMEOUT_MS (120 * 1000)

/* Reads up to 6 bytes of km's ready message, until EOF or the deadline. */
static size_t read_ready(int ready_r, char *buf, bool *timed_out)
{
	size_t n = 0;
	struct timespec start;
	clock_gettime(CLOCK_MONOTONIC, &start);
	*timed_out = false;
	while (n < 6) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		long long left = READY_TIMEOUT_MS - ((now.tv_sec - start.tv_sec) * 1000LL +
						     (now.tv_nsec - start.tv_nsec) / 1000000);
		if (left <= 0) {
			*timed_out = true;
			break;
		}
		struct pollfd p = {.fd = ready_r, .events = POLLIN};
		int pr = poll(&p, 1, (int)left);
		if (pr <= 0)
			continue; /* EINTR or the deadline, checked above */
		ssize_t r = read(ready_r, buf + n, 6 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	return n;
}

/* Waits for km's "ready\n". If km exits instead, says how (km printed its own reason); if it
 * says something else or nothing in time, it is killed. */
static int wait_ready(int ready_r, pid_t pid, km_err_t **err)
{
	char buf[8];
	bool timed_out;
	size_t n = read_ready(ready_r, buf, &timed_out);
	if (n == 6 && memcmp(buf, "ready\n", 6) == 0)
		return 0;
	if (timed_out || n == 6)
		kill(pid, SIGKILL);
	/* EOF: km is exiting (its exit closes the pipe); one that closed it and lives on is killed */
	int status;
	pid_t w = 0;
	for (int i = 0; i < 1000 && w == 0; i++) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == 0) {
			struct timespec ts = {0, 10 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	if (w == 0) {
		kill(pid, SIGKILL);
		do
			w = waitpid(pid, &status, 0);
		while (w < 0 && errno == EINTR);
	}
	if (timed_out)
		return km_err_set(err, 0, "km did not become ready within %d seconds", READY_TIMEOUT_MS / 1000);
	if (n == 6)
		return km_err_set(err, 0, "km wrote something else than \"ready\" on its ready pipe");
	if (w == pid && WIFEXITED(status))
		return km_err_set(err, 0, "km exited with status %d before the container was ready", WEXITSTATUS(status));
	if (w == pid && WIFSIGNALED(status))
		return km_err_set(err, 0, "km was killed by signal %d (%s) before the container was ready",
				  WTERMSIG(status), strsignal(WTERMSIG(status)));
	return km_err_set(err, 0, "km did not report ready (it wrote %zu bytes and closed its ready pipe)", n);
}

/* linux.seccomp applies to the guest's syscalls, enforced by km from the rules km-shim hands it
 * (--guest-seccomp-fd, docs/guest-seccomp.md); the host kernel never filters km with them. */
static int guest_seccomp_fd(const oci_config_t *cfg, int *fd, km_err_t **err)
{
	*fd = -1;
	if (cfg->linux_ == NULL || cfg->linux_->seccomp == NULL)
		return 0;
	if (shim_seccomp_compile(cfg->linux_->seccomp, fd, err) != 0)
		return km_err_wrap(err, "config.json: linux.seccomp");
	return 0;
}

static int spawn_km(const shim_args_t *a, const oci_config_t *cfg, const char *bundle, shim_dir_t *d,
		    oci_state_t *st, const int *snap_fds, int nsnap, pid_t *pid, int *console_master, km_err_t **err)
{
	create_fds_t f = {-1, -1, -1, -1, -1, -1, -1};
	int rc = -1;
	if (open_km(&f, err) != 0)
		goto out;
	f.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (f.kvm < 0) {
		km_err_set(err, errno, "/dev/kvm");
		goto out;
	}
	if (guest_seccomp_fd(cfg, &f.seccomp, err) != 0 || bind_mgmt(d, &f, err) != 0 ||
	    make_start_fifo(d, &f, err) != 0)
		goto out;
	shim_spawn_t sp = {
	    .cfg = cfg,
	    .id = a->id,
	    .bundle = bundle,
	    .state_dir = d->path,
	    .km_exe_fd = f.km_exe,
	    .kvm_fd = f.kvm,
	    .mgmt_fd = f.mgmt,
	    .start_fd = f.start,
	    .ready_fd = f.ready_w,
	    .snapshot_fd = nsnap > 0 ? snap_fds[0] : -1,
	    .parent_fds = nsnap > 1 ? snap_fds + 1 : NULL,
	    .nparent_fds = nsnap > 1 ? nsnap - 1 : 0,
	    .guest_seccomp_fd = f.seccomp,
	    .console_socket = a->console_socket,
	    .console_proxy = (a->cmd == SHIM_CMD_RUN || a->cmd == SHIM_CMD_RESTORE) && !a->detach,
	    .preserve_fds = a->preserve_fds,
	    .no_pivot = a->no_pivot,
	    .no_new_keyring = a->no_new_keyring,
	    .log_path = shim_log_path(),
	};
	shim_container_t ctr = {.pid = 0, .console_master = -1};
	if (shim_container_spawn(&sp, &ctr, err) != 0) {
		km_err_wrap(err, "creating container \"%s\"", a->id);
		goto out;
	}
	*pid = ctr.pid;
	*console_master = ctr.console_master;
	close(f.ready_w); /* km holds the only write end now: its exit is EOF */
	f.ready_w = -1;
	/* Record km before waiting for it, so that a km-shim killed now leaves a pid to kill. */
	st->pid = ctr.pid;
	st->pid_start_time = oci_pid_start_time(ctr.pid);
	free(st->cgroup_path);
	st->cgroup_path = ctr.cgroup_path;
	oci_strv_free(st->cgroup_paths);
	st->cgroup_paths = ctr.cgroup_paths;
	if (oci_state_write(d->path, st, err) != 0)
		goto out;
	rc = wait_ready(f.ready_r, ctr.pid, err);
out:
	create_fds_close(&f);
	return rc;
}

/* Undoes a create that failed after its directory was published. */
static void create_undo(shim_dir_t *d, oci_state_t *st)
{
	shim_ctr_t c = {.dir = *d, .st = st};
	shim_ctr_kill_all(&c);
	if (st->pid > 0)
		waitpid(st->pid, NULL, WNOHANG);
	st->status = OCI_STATUS_CREATING; /* no poststop hooks for what never ran */
	km_err_t *e = NULL;
	if (shim_ctr_destroy(&c, &e) != 0) {
		shim_log(SHIM_LOG_WARN, "cleaning up after a failed create: %s", e->msg);
		km_err_free(&e);
	}
}

int shim_create_container(const shim_args_t *a, const int *snap_fds, int nsnap, const char *restored_from, pid_t *pid,
			  int *console_master, km_err_t **err)
{
	*console_master = -1;
	char bundle[PATH_MAX];
	const char *b = a->bundle != NULL ? a->bundle : ".";
	if (realpath(b, bundle) == NULL)
		return km_err_set(err, errno, "bundle %s", b);
	struct stat bs;
	if (stat(bundle, &bs) != 0 || !S_ISDIR(bs.st_mode))
		return km_err_set(err, ENOTDIR, "bundle %s", b);
	if (shim_id_check(a->id, err) != 0)
		return -1;
	oci_config_t *cfg = oci_config_load(bundle, err);
	if (cfg == NULL)
		return -1;
	shim_dir_t d = SHIM_DIR_INIT;
	oci_state_t *st = NULL;
	int rc = -1;
	if (shim_container_check(cfg, err) != 0 || shim_dir_begin(a->root, a->id, &d, err) != 0)
		goto out;
	st = initial_state(a, bundle, cfg, restored_from);
	if (st == NULL) {
		km_err_set(err, ENOMEM, "creating container \"%s\"", a->id);
		goto fail_tmp;
	}
	if (save_config(bundle, &d, err) != 0 || oci_state_write(d.path, st, err) != 0)
		goto fail_tmp;
	if (shim_dir_publish(&d, a->root, err) != 0)
		goto fail_tmp;
	if (spawn_km(a, cfg, bundle, &d, st, snap_fds, nsnap, pid, console_master, err) != 0)
		goto fail;
	if (a->pid_file != NULL && shim_write_pid_file(a->pid_file, *pid, err) != 0)
		goto fail;
	st->status = OCI_STATUS_CREATED;
	if (oci_state_write(d.path, st, err) != 0)
		goto fail;
	rc = 0;
	goto out;
fail_tmp: {
	km_err_t *e = NULL;
	shim_dir_remove(&d, &e);
	km_err_free(&e);
	goto out;
}
fail:
	create_undo(&d, st);
	if (*console_master >= 0)
		close(*console_master);
	*console_master = -1;
out:
	shim_dir_close(&d);
	oci_state_free(st);
	oci_config_free(cfg);
	return rc;
}

int shim_cmd_create(const shim_args_t *a, km_err_t **err)
{
	pid_t pid;
	int master;
	return shim_create_container(a, NULL, 0, NULL, &pid, &master, err) == 0 ? 0 : -1;
}

/* --- start ---------------------------------------------------------------------------------- */

static void run_hooks_logged(shim_ctr_t *c, oci_hook_kind_t kind, oci_status_t s, const char *what)
{
	km_err_t *e = NULL;
	oci_config_t *cfg = shim_ctr_config(c, &e);
	char *json = cfg != NULL ? shim_hooks_state_json(cfg, c->st->id, s, c->st->pid, c->st->bundle) : NULL;
	if (cfg != NULL && json == NULL)
		km_err_set(&e, ENOMEM, "the hooks' state");
	if (json != NULL && shim_hooks_run(cfg, kind, json, c->st->pid, &e) != 0)
		shim_log(SHIM_LOG_WARN, "%s hook of %s: %s", what, c->dir.id, e->msg);
	else if (json == NULL)
		shim_log(SHIM_LOG_WARN, "%s hooks of %s not run: %s", what, c->dir.id, e->msg);
	km_err_free(&e);
	free(json);
}

static int not_startable(const char *id, oci_status_t s, km_err_t **err)
{
	switch (s) {
	case OCI_STATUS_RUNNING:
	case OCI_STATUS_PAUSED:
		return km_err_set(err, 0, "cannot start an already running container \"%s\"", id);
	case OCI_STATUS_STOPPED:
		return km_err_set(err, 0, "cannot start a container that has stopped: \"%s\"", id);
	default:
		return km_err_set(err, 0, "cannot start container \"%s\" in the %s state", id, oci_status_name(s));
	}
}

int shim_start_container(const shim_args_t *a, km_err_t **err)
{
	shim_ctr_t c;
	if (shim_ctr_open(a, true, &c, err) != 0)
		return -1;
	int rc = -1;
	oci_status_t s = shim_ctr_status(&c);
	if (s != OCI_STATUS_CREATED) {
		not_startable(a->id, s, err);
		goto out;
	}
	/* startContainer hooks run before the program's first instruction; a failing one stops
	 * the start (the spec: the runtime must generate an error) */
	oci_config_t *cfg = shim_ctr_config(&c, err);
	char *json = cfg != NULL ? shim_hooks_state_json(cfg, c.st->id, OCI_STATUS_CREATED, c.st->pid, c.st->bundle) : NULL;
	if (cfg != NULL && json == NULL)
		km_err_set(err, ENOMEM, "the hooks' state");
	int hr = json != NULL ? shim_hooks_run(cfg, OCI_HOOK_START_CONTAINER, json, c.st->pid, err) : -1;
	free(json);
	if (hr != 0) {
		km_err_wrap(err, "starting container \"%s\"", a->id);
		goto out;
	}
	int fd = openat(c.dir.dirfd, "start.fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENXIO) {
		km_err_set(err, 0, "cannot start container \"%s\": km has exited", a->id);
		goto out;
	}
	if (fd < 0) {
		km_err_set(err, errno, "starting container \"%s\": %s/start.fifo", a->id, c.dir.path);
		goto out;
	}
	ssize_t w = write(fd, "s", 1);
	int e = errno;
	close(fd);
	if (w != 1) {
		km_err_set(err, e, "starting container \"%s\"", a->id);
		goto out;
	}
	c.st->status = OCI_STATUS_RUNNING;
	if (oci_state_write(c.dir.path, c.st, err) != 0)
		goto out;
	run_hooks_logged(&c, OCI_HOOK_POSTSTART, OCI_STATUS_RUNNING, "poststart");
	rc = 0;
out:
	shim_ctr_close(&c);
	return rc;
}

int shim_cmd_start(const shim_args_t *a, km_err_t **err)
{
	return shim_start_container(a, err);
}

/* --- run ------------------------------------------------------------------------------------ */

/* Deletes a container run (or restore) made once its km has ended; failures only logged. */
static void delete_after_run(const shim_args_t *a)
{
	shim_ctr_t c;
	km_err_t *e = NULL;
	if (shim_ctr_open(a, true, &c, &e) == 0) {
		shim_ctr_kill_all(&c);
		shim_ctr_destroy(&c, &e);
		shim_ctr_close(&c);
	}
	if (e != NULL)
		shim_log(SHIM_LOG_WARN, "deleting %s: %s", a->id, e->msg);
	km_err_free(&e);
}

int shim_run_created(const shim_args_t *a, pid_t pid, int console_master, km_err_t **err)
{
	if (shim_start_container(a, err) != 0) {
		if (console_master >= 0)
			close(console_master);
		delete_after_run(a);
		return -1;
	}
	if (a->detach)
		return 0;
	int status = shim_wait_child(pid, console_master);
	if (console_master >= 0)
		close(console_master);
	if (!a->keep)
		delete_after_run(a);
	return status;
}

int shim_cmd_run(const shim_args_t *a, km_err_t **err)
{
	pid_t pid;
	int master;
	if (shim_create_container(a, NULL, 0, NULL, &pid, &master, err) != 0)
		return -1;
	return shim_run_created(a, pid, master, err);
}

/* --- delete, kill, state -------------------------------------------------------------------- */

int shim_cmd_delete(const shim_args_t *a, km_err_t **err)
{
	shim_ctr_t c;
	if (shim_ctr_open(a, true, &c, err) != 0)
		return -1;
	oci_status_t s = shim_ctr_status(&c);
	int rc = -1;
	if ((s == OCI_STATUS_RUNNING || s == OCI_STATUS_PAUSED) && !a->force) {
		km_err_set(err, 0, "cannot delete container \"%s\" that is not stopped: %s", a->id, oci_status_name(s));
		goto out;
	}
	/* created: km waits for a start that will never come (runc deletes these too); creating:
	 * we hold the lock, so the km-shim that was creating it is dead */
	shim_ctr_kill_all(&c);
	if (c.st != NULL && s != OCI_STATUS_CREATING)
		c.st->status = OCI_STATUS_STOPPED;
	rc = shim_ctr_destroy(&c, err);
out:
	shim_ctr_close(&c);
	return rc;
}

int shim_cmd_kill(const shim_args_t *a, km_err_t **err)
{
	shim_ctr_t c;
	if (shim_ctr_open(a, false, &c, err) != 0)
		return -1;
	int rc = -1;
	oci_status_t s = shim_ctr_status(&c);
	if (s == OCI_STATUS_STOPPED || s == OCI_STATUS_CREATING || c.st->pid <= 0) {
		km_err_set(err, 0, "container not running: \"%s\"", a->id);
		goto out;
	}
	pid_t *pids = NULL;
	int n = 1;
	if (a->all && c.st->cgroup_path != NULL) {
		n = shim_cgroup_pids(c.st->cgroup_path, c.st->cgroup_paths, c.st->pid, &pids, err);
		if (n < 0)
			goto out;
	}
	for (int i = 0; i < n; i++) {
		pid_t p = pids != NULL ? pids[i] : c.st->pid;
		if (kill(p, a->signal) != 0 && (pids == NULL || errno != ESRCH)) {
			if (errno == ESRCH)
				km_err_set(err, 0, "container not running: \"%s\"", a->id);
			else
				km_err_set(err, errno, "sending signal %d to container \"%s\"", a->signal, a->id);
			free(pids);
			goto out;
		}
	}
	free(pids);
	rc = 0;
out:
	shim_ctr_close(&c);
	return rc;
}

/* The state JSON of c as `state` prints it (pid 0 once stopped, as runc). */
static char *state_json(shim_ctr_t *c, km_err_t **err)
{
	oci_status_t s = shim_ctr_status(c);
	pid_t pid = c->st->pid;
	if (s == OCI_STATUS_STOPPED)
		c->st->pid = 0;
	char *json = oci_state_to_json(c->st, s, err);
	c->st->pid = pid;
	return json;
}

int shim_cmd_state(const shim_args_t *a, km_err_t **err)
{
	shim_ctr_t c;
	if (shim_ctr_open(a, false, &c, err) != 0)
		return -1;
	char *json = state_json(&c, err);
	shim_ctr_close(&c);
	if (json == NULL)
		return -1;
	/* pretty-printed as runc does */
	json_t *j = json_loads(json, 0, NULL);
	char *pretty = j != NULL ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
	printf("%s\n", pretty != NULL ? pretty : json);
	free(pretty);
	json_decref(j);
	free(json);
	return fflush(stdout) == 0 ? 0 : km_err_set(err, errno, "writing the state");
}

/* --- list, ps ------------------------------------------------------------------------------- */

static json_t *list_entries(const shim_args_t *a, km_err_t **err)
{
	char **ids;
	if (shim_dir_list(a->root, &ids, err) != 0)
		return NULL;
	json_t *arr = json_array();
	for (char **id = ids; *id != NULL; id++) {
		shim_args_t one = *a;
		one.id = *id;
		shim_ctr_t c;
		km_err_t *e = NULL;
		char *json = NULL;
		if (shim_ctr_open(&one, false, &c, &e) == 0) {
			json = state_json(&c, &e);
			shim_ctr_close(&c);
		}
		json_t *j = json != NULL ? json_loads(json, 0, NULL) : NULL;
		if (j != NULL)
			json_array_append_new(arr, j);
		else if (e != NULL) /* removed meanwhile, or unreadable: list the others */
			shim_log(SHIM_LOG_DEBUG, "list: %s: %s", *id, e->msg);
		km_err_free(&e);
		free(json);
		free(*id);
	}
	free(ids);
	return arr;
}

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s != NULL ? s : "";
}

int shim_cmd_list(const shim_args_t *a, km_err_t **err)
{
	const char *fmt = a->format != NULL ? a->format : "table";
	if (strcmp(fmt, "table") != 0 && strcmp(fmt, "json") != 0)
		return km_err_set(err, 0, "invalid format option \"%s\" (table or json)", fmt);
	json_t *arr = list_entries(a, err);
	if (arr == NULL)
		return -1;
	size_t i;
	json_t *o;
	if (a->quiet) {
		json_array_foreach(arr, i, o) printf("%s\n", jstr(o, "id"));
	} else if (strcmp(fmt, "json") == 0) {
		char *s = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
		printf("%s\n", s != NULL ? s : "[]");
		free(s);
	} else {
		int w = 2;
		json_array_foreach(arr, i, o) if ((int)strlen(jstr(o, "id")) > w) w = (int)strlen(jstr(o, "id"));
		printf("%-*s   %-10s %-10s %-40s %-30s %s\n", w, "ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER");
		json_array_foreach(arr, i, o)
		{
			printf("%-*s   %-10lld %-10s %-40s %-30s %s\n", w, jstr(o, "id"),
			       (long long)json_integer_value(json_object_get(o, "pid")), jstr(o, "status"), jstr(o, "bundle"),
			       jstr(o, "created"), *jstr(o, "owner") != '\0' ? jstr(o, "owner") : "root");
		}
	}
	json_decref(arr);
	return fflush(stdout) == 0 ? 0 : km_err_set(err, errno, "writing the list");
}

int shim_cmd_ps(const shim_args_t *a, km_err_t **err)
{
	const char *fmt = a->format != NULL ? a->format : "table";
	if (strcmp(fmt, "table") != 0 && strcmp(fmt, "json") != 0)
		return km_err_set(err, 0, "invalid format option \"%s\" (table or json)", fmt);
	if (a->n_rest > 0)
		return km_err_set(err, 0, "ps: arguments for ps(1) are not supported by km-shim");
	shim_ctr_t c;
	if (shim_ctr_open(a, false, &c, err) != 0)
		return -1;
	oci_status_t s = shim_ctr_status(&c);
	pid_t *pids = NULL;
	int n = 0;
	if (s != OCI_STATUS_STOPPED && s != OCI_STATUS_CREATING && c.st->pid > 0) {
		n = shim_cgroup_pids(c.st->cgroup_path, c.st->cgroup_paths, c.st->pid, &pids, err);
		if (n < 0) {
			shim_ctr_close(&c);
			return -1;
		}
	}
	shim_ctr_close(&c);
	if (strcmp(fmt, "json") == 0) {
		printf("[");
		for (int i = 0; i < n; i++)
			printf("%s%d", i > 0 ? "," : "", (int)pids[i]);
		printf("]\n");
	} else {
		printf("PID    CMD\n");
		for (int i = 0; i < n; i++) {
			char path[64], comm[64] = "?";
			snprintf(path, sizeof(path), "/proc/%d/comm", (int)pids[i]);
			FILE *f = fopen(path, "re");
			if (f != NULL) {
				if (fgets(comm, sizeof(comm), f) != NULL)
					comm[strcspn(comm, "\n")] = '\0';
				fclose(f);
			}
			printf("%-6d %s\n", (int)pids[i], comm);
		}
	}
	free(pids);
	return fflush(stdout) == 0 ? 0 : km_err_set(err, errno, "writing the pids");
}
