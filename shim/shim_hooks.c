/* OCI hooks: see shim_hooks.h and shim_container.h. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim_container.h"
#include "shim_hooks.h"

static const char *const kind_names[OCI_HOOK_KINDS] = {
	"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop",
};

const char *shim_hook_kind_name(oci_hook_kind_t kind)
{
	return kind < OCI_HOOK_KINDS ? kind_names[kind] : "?";
}

char *shim_hooks_state_json(const oci_config_t *cfg, const char *id, oci_status_t status, pid_t pid,
			    const char *bundle)
{
	json_t *ann = json_object();
	for (size_t i = 0; ann && cfg && i < cfg->n_annotations; i++)
		json_object_set_new(ann, cfg->annotations[i].key, json_string(cfg->annotations[i].value));
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o}", "ociVersion",
			      cfg && cfg->oci_version ? cfg->oci_version : "1.0.2", "id", id, "status",
			      oci_status_name(status), "bundle", bundle, "annotations", ann);
	if (o && status != OCI_STATUS_STOPPED && json_object_set_new(o, "pid", json_integer(pid)) < 0) {
		json_decref(o);
		o = NULL;
	}
	char *s = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(o);
	return s;
}

/* In the hook's child: the container's namespaces of `pid`, user first (it grants the rest).
 * -1 with errno and *which naming the namespace that could not be joined. */
static int join_container(pid_t pid, const char **which)
{
	static const struct {
		const char *name;
		int type;
	} order[] = { { "user", CLONE_NEWUSER }, { "ipc", CLONE_NEWIPC }, { "uts", CLONE_NEWUTS },
		      { "net", CLONE_NEWNET },	 { "pid", CLONE_NEWPID }, { "cgroup", CLONE_NEWCGROUP },
		      { "mnt", CLONE_NEWNS } };
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		char p[64], self[64];
		snprintf(p, sizeof(p), "/proc/%d/ns/%s", (int)pid, order[i].name);
		snprintf(self, sizeof(self), "/proc/self/ns/%s", order[i].name);
		*which = order[i].name;
		int fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return -1;
		struct stat a, b;
		/* Joining the namespace one is already in is EINVAL for user namespaces: skip it. */
		if (fstat(fd, &a) == 0 && stat(self, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev) {
			close(fd);
			continue;
		}
		int rc = setns(fd, order[i].type);
		close(fd);
		if (rc < 0)
			return -1;
	}
	return 0;
}

static pid_t hook_spawn(const oci_hook_t *h, int stdin_fd, pid_t join)
{
	pid_t c = fork();
	if (c != 0)
		return c;
	if (dup2(stdin_fd, 0) < 0)
		_exit(126);
	const char *ns = "";
	if (join > 0 && join_container(join, &ns) < 0) {
		dprintf(2, "km-shim: hook %s: joining the %s namespace of %d: %s\n", h->path, ns, (int)join, strerror(errno));
		_exit(126);
	}
	char *const def_argv[] = { h->path, NULL };
	static char *const no_env[] = { NULL };
	execve(h->path, h->args && h->args[0] ? h->args : def_argv, h->env ? h->env : no_env);
	dprintf(2, "km-shim: hook %s: exec: %s\n", h->path, strerror(errno));
	_exit(127);
}

/* Waits for hook `c`; with a timeout (seconds > 0) it is killed when the time is up. 0 if the
 * wait ended with *status, 1 on timeout, -1 on error. */
static int hook_wait(pid_t c, int timeout, int *status)
{
	if (timeout > 0) {
		int pfd = (int)syscall(SYS_pidfd_open, c, 0);
		if (pfd >= 0) {
			struct pollfd p = { .fd = pfd, .events = POLLIN };
			int r;
			do
				r = poll(&p, 1, timeout * 1000);
			while (r < 0 && errno == EINTR);
			close(pfd);
			if (r == 0) {
				kill(c, SIGKILL);
				waitpid(c, status, 0);
				return 1;
			}
		}
	}
	while (waitpid(c, status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

static int run_one(const oci_hook_t *h, const char *what, const char *state, pid_t join, km_err_t **err)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return km_err_set(err, errno, "%s: pipe", what);
	pid_t c = hook_spawn(h, p[0], join);
	int e = errno;
	close(p[0]);
	if (c < 0) {
		close(p[1]);
		return km_err_set(err, e, "%s (%s): fork", what, h->path);
	}
	/* A hook that does not read its stdin must not block us (or die of SIGPIPE in our place). */
	sigset_t pipe_set, old;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old);
	size_t len = state ? strlen(state) : 0;
	for (size_t off = 0; off < len;) {
		ssize_t n = write(p[1], state + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(p[1]);
	struct timespec zero = { 0, 0 };
	while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
		;
	sigprocmask(SIG_SETMASK, &old, NULL);
	int status = 0, w = hook_wait(c, h->has_timeout ? h->timeout : 0, &status);
	if (w < 0)
		return km_err_set(err, errno, "%s (%s): wait", what, h->path);
	if (w == 1)
		return km_err_set(err, 0, "%s (%s): timed out after %d s, killed", what, h->path, h->timeout);
	if (WIFSIGNALED(status))
		return km_err_set(err, 0, "%s (%s): killed by signal %d", what, h->path, WTERMSIG(status));
	if (WEXITSTATUS(status))
		return km_err_set(err, 0, "%s (%s): exit status %d", what, h->path, WEXITSTATUS(status));
	return 0;
}

int shim_hooks_run(const oci_config_t *cfg, oci_hook_kind_t kind, const char *state_json, pid_t pid,
		   km_err_t **err)
{
	if (kind >= OCI_HOOK_KINDS)
		return km_err_set(err, EINVAL, "hooks: kind %d", (int)kind);
	for (size_t i = 0; i < cfg->n_hooks[kind]; i++) {
		char what[64];
		snprintf(what, sizeof(what), "hooks.%s[%zu]", kind_names[kind], i);
		if (run_one(&cfg->hooks[kind][i], what, state_json, kind == OCI_HOOK_START_CONTAINER ? pid : 0, err) < 0)
			return -1;
	}
	return 0;
}
