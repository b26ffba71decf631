/*
 * shim_container_spawn: the container process, from clone to the exec of km (shim_container.h).
 *
 * Parent (km-shim) and child talk over a SOCK_SEQPACKET socketpair, one message per write:
 *   parent -> child  'G' + host pid (int)  go on: id maps written, cgroups joined (1st), or
 *                    'G'                    hooks done (2nd, after the child's 'H')
 *   child -> parent  'W' + text             a warning (the setup goes on)
 *                    'H'                    mounts ready, before pivot_root: run prestart and
 *                                           createRuntime hooks now
 *                    'X'                    about to exec km
 *                    'E' + text             the step that failed and why; the child then exits
 * The child's end is O_CLOEXEC: EOF after 'X' means execveat succeeded. EOF without 'X' means
 * the child died during setup (its wait status is reported).
 *
 * Descriptors km gets (the guest sees 0-2 and the --preserve-fds ones, 3..B-1, B = 3+N):
 *   B+0 --kvm-fd, B+1 --mgmt-fd, B+2 --start-fd, B+3 --ready-fd, then (if given) --snapshot-fd,
 *   then --guest-seccomp-fd, then one --snapshot-parent-fd per member of an incremental chain
 *   (parent first), in that order, at the next numbers. Every other fd is closed at exec.
 *
 * Namespaces: those without a path are created by clone(2) in one go (so they belong to the new
 * user namespace, if any), except cgroup, which the child unshares after the parent has put it in
 * its cgroups (its cgroup namespace's root is then the container's cgroup). Those with a path are
 * joined by the child with setns, user first. Joining a pid or time namespace by path is refused
 * by shim_container_check (km must be pid 1 of a new pid namespace or stay in the caller's).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim_cgroup.h"
#include "shim_console.h"
#include "shim_container.h"
#include "shim_file.h"
#include "shim_hooks.h"
#include "shim_mounts.h"
#include "shim_process.h"

#define MSG_MAX 4096

static const int ns_clone_flag[OCI_NS_COUNT] = {
	[OCI_NS_PID] = CLONE_NEWPID,   [OCI_NS_NETWORK] = CLONE_NEWNET, [OCI_NS_MOUNT] = CLONE_NEWNS,
	[OCI_NS_IPC] = CLONE_NEWIPC,   [OCI_NS_UTS] = CLONE_NEWUTS,	[OCI_NS_USER] = CLONE_NEWUSER,
	[OCI_NS_CGROUP] = CLONE_NEWCGROUP, [OCI_NS_TIME] = CLONE_NEWTIME,
};

typedef struct spawn_ctx {
	const shim_spawn_t *sp;
	const oci_config_t *cfg;
	char *rootfs;
	shim_cgroup_layout_t cg;
	bool have_cg;
	char *cgroup_path; /* as asked for (shim_cgroup_path_for) */
	shim_cgroup_paths_t cg_paths; /* resolved in each hierarchy */
	int ns_fd[OCI_NS_COUNT]; /* namespaces joined by path, -1 otherwise */
	bool ns_new[OCI_NS_COUNT];
	int console; /* connected --console-socket (or the child's end of the proxy's pair), or -1 */
	int console_peer; /* console_proxy: km-shim's end, where the pty master arrives; else -1 */
	int sync[2]; /* [0] parent's end, [1] child's */
	pid_t host_pid; /* the child's pid as km-shim sees it (told to the child) */
} spawn_ctx_t;

/* ---- the child ---- */

static void child_send(spawn_ctx_t *c, char kind, const char *text)
{
	char buf[MSG_MAX];
	size_t n = text ? strnlen(text, sizeof(buf) - 1) : 0;
	buf[0] = kind;
	if (n)
		memcpy(buf + 1, text, n);
	while (send(c->sync[1], buf, n + 1, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

static void child_warn(void *arg, const char *msg)
{
	child_send(arg, 'W', msg);
}

/* Waits for the parent's 'G'. */
static int child_wait_go(spawn_ctx_t *c, km_err_t **err)
{
	char buf[1 + sizeof(int)];
	ssize_t n;
	do
		n = recv(c->sync[1], buf, sizeof(buf), 0);
	while (n < 0 && errno == EINTR);
	if (n < 1 || buf[0] != 'G')
		return km_err_set(err, n < 0 ? errno : 0, "waiting for km-shim (it went away)");
	if (n == (ssize_t)sizeof(buf)) {
		int pid;
		memcpy(&pid, buf + 1, sizeof(int));
		c->host_pid = pid;
	}
	return 0;
}

static int child_join_namespaces(spawn_ctx_t *c, km_err_t **err)
{
	static const oci_ns_type_t order[] = { OCI_NS_USER, OCI_NS_IPC, OCI_NS_UTS, OCI_NS_NETWORK, OCI_NS_CGROUP, OCI_NS_MOUNT };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		oci_ns_type_t t = order[i];
		if (c->ns_fd[t] >= 0 && setns(c->ns_fd[t], ns_clone_flag[t]) < 0)
			return km_err_set(err, errno, "linux.namespaces: joining the %s namespace", oci_ns_type_name(t));
	}
	return 0;
}

/* Moves the descriptors km needs to their fixed numbers (see the top of this file) and marks
 * every other one above 2 close-on-exec, except the preserved ones. */
static int child_arrange_fds(spawn_ctx_t *c, int *fds, int *nfds, km_err_t **err)
{
	const shim_spawn_t *sp = c->sp;
	int src[6 + SHIM_MAX_PARENTS] = { sp->kvm_fd, sp->mgmt_fd, sp->start_fd, sp->ready_fd }, n = 4;
	if (sp->snapshot_fd >= 0)
		src[n++] = sp->snapshot_fd;
	if (sp->guest_seccomp_fd >= 0)
		src[n++] = sp->guest_seccomp_fd;
	for (int i = 0; i < sp->nparent_fds && i < SHIM_MAX_PARENTS; i++)
		src[n++] = sp->parent_fds[i];
	int base = 3 + sp->preserve_fds, high = base + 6 + SHIM_MAX_PARENTS;
	/* First out of the way (a source may sit on another's target), then into place. */
	int tmp[6 + SHIM_MAX_PARENTS];
	for (int i = 0; i < n; i++)
		if ((tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, high)) < 0)
			return km_err_set(err, errno, "descriptor %d for km", src[i]);
	int exe = fcntl(sp->km_exe_fd, F_DUPFD_CLOEXEC, high), sync = fcntl(c->sync[1], F_DUPFD_CLOEXEC, high);
	if (exe < 0 || sync < 0)
		return km_err_set(err, errno, "moving km's binary fd and the sync socket");
	c->sync[1] = sync;
	for (int i = 0; i < n; i++) {
		if (dup2(tmp[i], base + i) < 0)
			return km_err_set(err, errno, "descriptor %d for km as %d", src[i], base + i);
		close(tmp[i]);
		fds[i] = base + i;
	}
	for (int fd = 3; fd < base; fd++)
		if (fcntl(fd, F_SETFD, 0) < 0)
			return km_err_set(err, errno, "--preserve-fds: fd %d", fd);
	if (close_range(base + n, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return km_err_set(err, errno, "close_range");
	*nfds = n;
	return exe;
}

static char **child_argv(spawn_ctx_t *c, const int *fds, const char *program, km_err_t **err)
{
	const shim_spawn_t *sp = c->sp;
	const oci_process_t *p = c->cfg->process;
	size_t nargs = 0;
	while (p->args[nargs])
		nargs++;
	char **argv = calloc(nargs + 12 + (size_t)sp->nparent_fds, sizeof(char *));
	if (!argv) {
		km_err_set(err, ENOMEM, "km's arguments");
		return NULL;
	}
	size_t a = 0;
	int k = 0, ok = 1;
	argv[a++] = "km";
	ok &= asprintf(&argv[a++], "--kvm-fd=%d", fds[k++]) > 0;
	ok &= asprintf(&argv[a++], "--mgmt-fd=%d", fds[k++]) > 0;
	ok &= asprintf(&argv[a++], "--start-fd=%d", fds[k++]) > 0;
	ok &= asprintf(&argv[a++], "--ready-fd=%d", fds[k++]) > 0;
	int snap = sp->snapshot_fd >= 0 ? fds[k++] : -1;
	if (sp->guest_seccomp_fd >= 0)
		ok &= asprintf(&argv[a++], "--guest-seccomp-fd=%d", fds[k++]) > 0;
	const oci_resources_t *r = c->cfg->linux_ ? c->cfg->linux_->resources : NULL;
	if (r && r->has_memory_limit && r->memory_limit > 0)
		ok &= asprintf(&argv[a++], "--memory=%lld", (long long)r->memory_limit) > 0;
	/* How tests run containers on one syscall path (tests/e2e/run.sh); km checks the value. Only
	 * km-shim's invoker sets it, who can name any km with KM_SHIM_KM anyway. */
	const char *path = getenv("KM_SHIM_SYSCALL_PATH");
	if (path && *path)
		ok &= asprintf(&argv[a++], "--syscall-path=%s", path) > 0;
	for (int i = 0; i < sp->nparent_fds && i < SHIM_MAX_PARENTS; i++)
		ok &= asprintf(&argv[a++], "--snapshot-parent-fd=%d", fds[k++]) > 0;
	if (snap >= 0) {
		ok &= asprintf(&argv[a++], "--snapshot-fd=%d", snap) > 0;
	} else {
		argv[a++] = (char *)program;
		for (size_t i = 1; i < nargs; i++)
			argv[a++] = p->args[i];
	}
	if (!ok) {
		km_err_set(err, ENOMEM, "km's arguments");
		return NULL;
	}
	return argv;
}

static int child_setup(spawn_ctx_t *c, km_err_t **err)
{
	const oci_config_t *cfg = c->cfg;
	const oci_process_t *p = cfg->process;
	/* km-shim dying mid-setup must not leave a half-made container behind. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
		return km_err_set(err, errno, "km-shim went away");
	if (child_join_namespaces(c, err) < 0 || child_wait_go(c, err) < 0)
		return -1;
	if (c->ns_new[OCI_NS_USER] && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
		return km_err_set(err, errno, "linux.uidMappings/gidMappings: becoming root of the user namespace (is 0 mapped?)");
	if (c->ns_new[OCI_NS_CGROUP] && unshare(CLONE_NEWCGROUP) < 0)
		return km_err_set(err, errno, "linux.namespaces: making the cgroup namespace");
	if (setsid() < 0)
		return km_err_set(err, errno, "setsid");
	shim_mount_ctx_t mc = { .cfg = cfg, .bundle = c->sp->bundle, .rootfs = c->rootfs,
				.userns = c->ns_new[OCI_NS_USER] || c->ns_fd[OCI_NS_USER] >= 0,
				.cg = c->have_cg ? &c->cg : NULL, .cgroup_paths = &c->cg_paths };
	int rootfd = shim_mounts_prepare(&mc, err);
	if (rootfd < 0)
		return -1;
	child_send(c, 'H', NULL);
	if (child_wait_go(c, err) < 0)
		return -1;
	if (cfg->n_hooks[OCI_HOOK_CREATE_CONTAINER]) {
		km_autofree char *st = shim_hooks_state_json(cfg, c->sp->id, OCI_STATUS_CREATING, c->host_pid, c->sp->bundle);
		if (shim_hooks_run(cfg, OCI_HOOK_CREATE_CONTAINER, st, 0, err) < 0)
			return -1;
	}
	if (shim_mounts_pivot(rootfd, c->sp->no_pivot, cfg->linux_ ? cfg->linux_->rootfs_propagation : NULL, err) < 0)
		return -1;
	close(rootfd);
	if (shim_process_uts_sysctl(cfg, err) < 0)
		return -1;
	if (p->terminal && shim_console_setup(c->console, p, err) < 0)
		return -1;
	if (shim_mounts_finish(cfg, err) < 0)
		return -1;
	int fds[6 + SHIM_MAX_PARENTS], nfds;
	int exe = child_arrange_fds(c, fds, &nfds, err);
	if (exe < 0)
		return -1;
	if (shim_process_rlimits(p, child_warn, c, err) < 0 || shim_process_mkcwd(p, err) < 0 ||
	    shim_process_become(p, child_warn, c, err) < 0)
		return -1;
	km_autofree char *program = c->sp->snapshot_fd >= 0 ? NULL : shim_process_program(p, err);
	if (c->sp->snapshot_fd < 0 && !program)
		return -1;
	char **argv = child_argv(c, fds, program, err);
	if (!argv)
		return -1;
	static char *const no_env[] = { NULL };
	if (prctl(PR_SET_PDEATHSIG, 0) < 0)
		return km_err_set(err, errno, "prctl(PR_SET_PDEATHSIG)");
	child_send(c, 'X', NULL);
	syscall(SYS_execveat, exe, "", argv, p->env ? p->env : no_env, AT_EMPTY_PATH);
	return km_err_set(err, errno, "exec of km");
}

static _Noreturn void child_main(spawn_ctx_t *c)
{
	km_err_t *err = NULL;
	close(c->sync[0]);
	if (c->console_peer >= 0)
		close(c->console_peer);
	if (child_setup(c, &err) < 0)
		child_send(c, 'E', err ? err->msg : "unknown error");
	_exit(1);
}

/* ---- the parent ---- */

static void parent_warn(const shim_spawn_t *sp, const char *msg)
{
	FILE *f = sp->log_path ? fopen(sp->log_path, "ae") : NULL;
	if (!f) {
		fprintf(stderr, "km-shim: warning: %s\n", msg);
		return;
	}
	/* runc's json log line, which containerd and conmon know how to read. */
	char when[40];
	time_t now = time(NULL);
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	json_t *o = json_pack("{s:s, s:s, s:s}", "level", "warning", "msg", msg, "time", when);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (s)
		fprintf(f, "%s\n", s);
	free(s);
	json_decref(o);
	fclose(f);
}

static int write_idmap(pid_t pid, const char *file, const oci_idmap_t *m, size_t n, km_err_t **err)
{
	char buf[4096] = "", path[64];
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(buf + off, sizeof(buf) - off, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
		if (w < 0 || (size_t)w >= sizeof(buf) - off)
			return km_err_set(err, E2BIG, "%s: too many mappings", file);
		off += (size_t)w;
	}
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	return shim_write_file(path, 0, buf, err);
}

static int parent_user_maps(spawn_ctx_t *c, pid_t pid, km_err_t **err)
{
	const oci_linux_t *lx = c->cfg->linux_;
	if (!c->ns_new[OCI_NS_USER])
		return 0;
	if (lx->n_uid_mappings && write_idmap(pid, "uid_map", lx->uid_mappings, lx->n_uid_mappings, err) < 0)
		return km_err_wrap(err, "linux.uidMappings");
	/* Without CAP_SETGID in our namespace the kernel wants setgroups denied first. */
	char sg[64];
	snprintf(sg, sizeof(sg), "/proc/%d/setgroups", (int)pid);
	if (geteuid() != 0 && shim_write_file(sg, 0, "deny", err) < 0)
		return -1;
	if (lx->n_gid_mappings && write_idmap(pid, "gid_map", lx->gid_mappings, lx->n_gid_mappings, err) < 0)
		return km_err_wrap(err, "linux.gidMappings");
	return 0;
}

static int parent_send_go(spawn_ctx_t *c, pid_t pid, km_err_t **err)
{
	char buf[1 + sizeof(int)] = { 'G' };
	int v = pid;
	memcpy(buf + 1, &v, sizeof(int));
	if (send(c->sync[0], buf, sizeof(buf), MSG_NOSIGNAL) < 0)
		return km_err_set(err, errno, "telling the container process to go on");
	return 0;
}

/* What the parent does between clone and 'G': id maps, cgroups, oom_score_adj. */
static int parent_prepare_child(spawn_ctx_t *c, pid_t pid, km_err_t **err)
{
	if (parent_user_maps(c, pid, err) < 0)
		return -1;
	if (c->have_cg && shim_cgroup_add(&c->cg, &c->cg_paths, pid, err) < 0)
		return -1;
	if (c->cfg->process->has_oom_score_adj) {
		char path[64], v[16];
		snprintf(path, sizeof(path), "/proc/%d/oom_score_adj", (int)pid);
		snprintf(v, sizeof(v), "%d", c->cfg->process->oom_score_adj);
		if (shim_write_file(path, 0, v, err) < 0)
			return km_err_wrap(err, "process.oomScoreAdj");
	}
	return parent_send_go(c, pid, err);
}

static int parent_hooks(spawn_ctx_t *c, pid_t pid, km_err_t **err)
{
	const oci_config_t *cfg = c->cfg;
	if (!cfg->n_hooks[OCI_HOOK_PRESTART] && !cfg->n_hooks[OCI_HOOK_CREATE_RUNTIME])
		return parent_send_go(c, pid, err);
	km_autofree char *st = shim_hooks_state_json(cfg, c->sp->id, OCI_STATUS_CREATING, pid, c->sp->bundle);
	if (shim_hooks_run(cfg, OCI_HOOK_PRESTART, st, pid, err) < 0 ||
	    shim_hooks_run(cfg, OCI_HOOK_CREATE_RUNTIME, st, pid, err) < 0)
		return -1;
	return parent_send_go(c, pid, err);
}

/* Reads the child's messages until it has exec'd km (0) or failed (-1). A child that hung up
 * before its exec is reaped here, and *pid set to -1: its number may already be another's. */
static int parent_follow(spawn_ctx_t *c, pid_t *pid, km_err_t **err)
{
	bool execing = false;
	char buf[MSG_MAX + 1];
	for (;;) {
		ssize_t n = recv(c->sync[0], buf, MSG_MAX, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return km_err_set(err, errno, "reading from the container process");
		if (n == 0) {
			if (execing)
				return 0;
			int st = 0;
			while (waitpid(*pid, &st, 0) < 0 && errno == EINTR)
				;
			*pid = -1;
			return WIFSIGNALED(st) ? km_err_set(err, 0, "the container process died of signal %d during setup", WTERMSIG(st))
					       : km_err_set(err, 0, "the container process exited (%d) during setup", WEXITSTATUS(st));
		}
		buf[n] = '\0';
		switch (buf[0]) {
		case 'W':
			parent_warn(c->sp, buf + 1);
			break;
		case 'E':
			return km_err_set(err, 0, "%s", buf + 1);
		case 'H':
			if (parent_hooks(c, *pid, err) < 0)
				return -1;
			break;
		case 'X':
			execing = true;
			break;
		default:
			return km_err_set(err, 0, "unexpected message from the container process");
		}
	}
}

static int open_namespaces(spawn_ctx_t *c, km_err_t **err)
{
	const oci_linux_t *lx = c->cfg->linux_;
	for (size_t i = 0; lx && i < lx->n_namespaces; i++) {
		const oci_namespace_t *ns = &lx->namespaces[i];
		if (!ns->path) {
			c->ns_new[ns->type] = true;
			continue;
		}
		c->ns_fd[ns->type] = open(ns->path, O_RDONLY | O_CLOEXEC);
		if (c->ns_fd[ns->type] < 0)
			return km_err_set(err, errno, "linux.namespaces[%zu]: path %s", i, ns->path);
	}
	return 0;
}

static int setup_cgroups(spawn_ctx_t *c, km_err_t **err)
{
	const oci_resources_t *res = c->cfg->linux_ ? c->cfg->linux_->resources : NULL;
	km_err_t *derr = NULL;
	if (shim_cgroup_detect(NULL, &c->cg, &derr) < 0) {
		shim_cgroup_layout_free(&c->cg);
		for (int k = 0; k < SHIM_CG_NCTRL; k++)
			if (shim_cgroup_needs(res, k)) {
				*err = derr;
				return km_err_wrap(err, "%s", shim_cgroup_needs(res, k));
			}
		km_err_free(&derr);
		return 0; /* nothing asked, nothing to use */
	}
	c->cgroup_path = shim_cgroup_path_for(c->cfg, c->sp->id);
	if (!c->cgroup_path)
		return km_err_set(err, ENOMEM, "cgroup path");
	km_autofree char *self = shim_cgroup_read_self(NULL, err);
	if (!self || shim_cgroup_resolve(&c->cg, c->cgroup_path, self, &c->cg_paths, err) < 0)
		return km_err_wrap(err, "linux.cgroupsPath \"%s\"", c->cgroup_path);
	c->have_cg = true;
	const oci_linux_t *lx = c->cfg->linux_;
	if (shim_cgroup_create(&c->cg, &c->cg_paths, res, lx ? lx->devices : NULL, lx ? lx->n_devices : 0, err) < 0) {
		shim_cgroup_remove_in(&c->cg, c->cgroup_path, &c->cg_paths, &derr);
		km_err_free(&derr);
		return -1;
	}
	return 0;
}

static void ctx_free(spawn_ctx_t *c, bool remove_cg)
{
	if (remove_cg && c->have_cg) {
		km_err_t *e = NULL;
		shim_cgroup_remove_in(&c->cg, c->cgroup_path, &c->cg_paths, &e);
		km_err_free(&e);
	}
	for (int t = 0; t < OCI_NS_COUNT; t++)
		if (c->ns_fd[t] >= 0)
			close(c->ns_fd[t]);
	if (c->console >= 0)
		close(c->console);
	if (c->console_peer >= 0)
		close(c->console_peer);
	for (int i = 0; i < 2; i++)
		if (c->sync[i] >= 0)
			close(c->sync[i]);
	free(c->rootfs);
	free(c->cgroup_path);
	shim_cgroup_paths_free(&c->cg_paths);
	shim_cgroup_layout_free(&c->cg);
}

static char *resolve_rootfs(const shim_spawn_t *sp, km_err_t **err)
{
	const char *root = sp->cfg->root_path;
	km_autofree char *joined = NULL;
	if (root[0] != '/' && asprintf(&joined, "%s/%s", sp->bundle, root) < 0) {
		km_err_set(err, ENOMEM, "root.path");
		return NULL;
	}
	char *real = realpath(joined ? joined : root, NULL);
	if (!real) {
		km_err_set(err, errno, "root.path: %s", joined ? joined : root);
		return NULL;
	}
	struct stat st;
	if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode)) {
		km_err_set(err, ENOTDIR, "root.path: %s", real);
		free(real);
		return NULL;
	}
	return real;
}

/* The console socket of km-shim's own pty proxy: a pair, the child's end in c->console. */
static int console_pair(spawn_ctx_t *c, km_err_t **err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return km_err_set(err, errno, "process.terminal: socketpair");
	c->console = sv[0];
	c->console_peer = sv[1];
	return 0;
}

int shim_container_spawn(const shim_spawn_t *sp, shim_container_t *out, km_err_t **err)
{
	spawn_ctx_t c = { .sp = sp, .cfg = sp->cfg, .console = -1, .console_peer = -1, .sync = { -1, -1 } };
	pid_t pid = -1;
	for (int t = 0; t < OCI_NS_COUNT; t++)
		c.ns_fd[t] = -1;
	memset(out, 0, sizeof(*out));
	out->console_master = -1;
	if (shim_container_check(sp->cfg, err) < 0)
		return -1;
	if (!(c.rootfs = resolve_rootfs(sp, err)) || open_namespaces(&c, err) < 0)
		goto fail;
	if (sp->cfg->process->terminal) {
		if (sp->console_socket) {
			if ((c.console = shim_console_connect(sp->console_socket, err)) < 0)
				goto fail;
		} else if (!sp->console_proxy) {
			km_err_set(err, 0, "process.terminal: needs --console-socket");
			goto fail;
		} else if (console_pair(&c, err) < 0) {
			goto fail;
		}
	}
	if (setup_cgroups(&c, err) < 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c.sync) < 0) {
		km_err_set(err, errno, "socketpair");
		goto fail;
	}
	unsigned long flags = SIGCHLD;
	for (int t = 0; t < OCI_NS_COUNT; t++)
		if (c.ns_new[t] && t != OCI_NS_CGROUP)
			flags |= ns_clone_flag[t];
	fflush(NULL);
	pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, 0);
	if (pid < 0) {
		km_err_set(err, errno, "clone of the container process");
		goto fail;
	}
	if (pid == 0)
		child_main(&c);
	close(c.sync[1]);
	c.sync[1] = -1;
	/* The child sent the pty master before its exec: it is waiting in the socket already. */
	if (parent_prepare_child(&c, pid, err) < 0 || parent_follow(&c, &pid, err) < 0 ||
	    (c.console_peer >= 0 && shim_console_recv_fd(c.console_peer, &out->console_master, err) < 0))
		goto fail;
	out->pid = pid;
	out->cgroup_path = c.have_cg ? strdup(c.cgroup_path) : NULL;
	out->cgroup_paths = c.have_cg ? shim_cgroup_paths_to_record(&c.cg_paths) : NULL;
	ctx_free(&c, false);
	return 0;
fail:
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	km_err_wrap(err, "creating container %s", sp->id);
	ctx_free(&c, true);
	return -1;
}
