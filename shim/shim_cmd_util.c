/* What km-shim's commands share: see shim_cmd.h. */
#include "shim_cmd.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "oci_file.h"
#include "shim_console.h"
#include "shim_container.h"
#include "shim_hooks.h"
#include "shim_log.h"
#include "shim_mgmt_client.h"
#include "shim_sha256.h"

int shim_ctr_open(const shim_args_t *a, bool lock, shim_ctr_t *c, km_err_t **err)
{
	c->st = NULL;
	c->cfg = NULL;
	if (shim_dir_open(a->root, a->id, lock, &c->dir, err) != 0)
		return -1;
	c->st = oci_state_read(c->dir.path, err);
	if (c->st == NULL) {
		/* A directory without a record is a create killed before it wrote one, and one
		 * with an unreadable record was damaged by hand: delete --force cleans both without
		 * the record (km is found by the start fifo it holds). */
		bool missing = (*err)->errnum == ENOENT;
		if (a->cmd == SHIM_CMD_DELETE && (missing || a->force)) {
			if (!missing)
				shim_log(SHIM_LOG_WARN, "container \"%s\": %s; deleting it anyway", a->id, (*err)->msg);
			km_err_free(err);
			return 0;
		}
		km_err_wrap(err, "container \"%s\"", a->id);
		shim_dir_close(&c->dir);
		return -1;
	}
	return 0;
}

void shim_ctr_close(shim_ctr_t *c)
{
	oci_state_free(c->st);
	c->st = NULL;
	oci_config_free(c->cfg);
	c->cfg = NULL;
	shim_dir_close(&c->dir);
}

oci_config_t *shim_ctr_config(shim_ctr_t *c, km_err_t **err)
{
	if (c->cfg == NULL)
		c->cfg = oci_config_load(c->dir.path, err);
	return c->cfg;
}

/* The state letter of /proc/<pid>/stat and its start time (field 22). -1 if no such process. */
static int proc_stat(pid_t pid, char *state, unsigned long long *start)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	if (p == NULL || p[1] != ' ')
		return -1;
	*state = p[2];
	p += 2;
	for (int field = 3; field < 22; field++) {
		p = strchr(p, ' ');
		if (p == NULL)
			return -1;
		p++;
	}
	*start = strtoull(p, NULL, 10);
	return 0;
}

bool shim_pid_running(pid_t pid, unsigned long long start_time)
{
	char s;
	unsigned long long st;
	if (pid <= 0 || proc_stat(pid, &s, &st) != 0)
		return false;
	if (s == 'Z' || s == 'X' || s == 'x')
		return false;
	return start_time == 0 || st == start_time;
}

int shim_wait_gone(pid_t pid, unsigned long long start_time, int timeout_ms)
{
	for (int waited = 0; shim_pid_running(pid, start_time); waited += 10) {
		if (waited >= timeout_ms)
			return -1;
		/* our own child (run, or a create that failed) must be reaped to be gone */
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return 0;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

void shim_kill_fifo_holders(const shim_dir_t *d)
{
	struct stat fifo;
	if (fstatat(d->dirfd, "start.fifo", &fifo, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISFIFO(fifo.st_mode))
		return;
	DIR *proc = opendir("/proc");
	if (proc == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(proc)) != NULL) {
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
		DIR *fds = opendir(path);
		if (fds == NULL)
			continue;
		struct dirent *f;
		bool holds = false;
		while (!holds && (f = readdir(fds)) != NULL) {
			struct stat st;
			if (f->d_name[0] != '.' && fstatat(dirfd(fds), f->d_name, &st, 0) == 0 &&
			    st.st_dev == fifo.st_dev && st.st_ino == fifo.st_ino)
				holds = true;
		}
		closedir(fds);
		if (holds) {
			char s;
			unsigned long long start;
			if (proc_stat(pid, &s, &start) == 0) {
				shim_log(SHIM_LOG_DEBUG, "killing pid %d: it holds %s/start.fifo", (int)pid, d->path);
				kill(pid, SIGKILL);
				shim_wait_gone(pid, start, 10000);
			}
		}
	}
	closedir(proc);
}

int shim_write_pid_file(const char *path, pid_t pid, km_err_t **err)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d", (int)pid);
	if (oci_file_replace(path, buf, (size_t)n, 0644, err) != 0)
		return km_err_wrap(err, "pid file");
	return 0;
}

char *shim_file_digest(const char *path, km_err_t **err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return km_err_set(err, errno, "reading %s", path), NULL;
	shim_sha256_t s;
	shim_sha256_init(&s);
	char buf[65536];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		shim_sha256_update(&s, buf, (size_t)n);
	int e = errno;
	close(fd);
	if (n < 0)
		return km_err_set(err, e, "reading %s", path), NULL;
	uint8_t md[32];
	shim_sha256_final(&s, md);
	char *hex = malloc(7 + 64 + 1);
	if (hex == NULL)
		return km_err_set(err, ENOMEM, "digest of %s", path), NULL;
	strcpy(hex, "sha256:");
	for (int i = 0; i < 32; i++)
		sprintf(hex + 7 + 2 * i, "%02x", md[i]);
	return hex;
}

char *shim_km_path(km_err_t **err)
{
	const char *env = getenv("KM_SHIM_KM");
	if (env != NULL && *env != '\0')
		return strdup(env);
#ifdef KM_SHIM_KM_PATH
	/* A sanitizer build's km is dynamic and cannot run in a container; its km-shim is built to
	 * run the plain build's static km instead (Makefile). Clients such as conmon pass no
	 * environment, so KM_SHIM_KM cannot carry this. */
	return strdup(KM_SHIM_KM_PATH);
#endif

	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return km_err_set(err, errno, "finding km: /proc/self/exe"), NULL;
	self[n] = '\0';
	char *p = NULL;
	if (asprintf(&p, "%s/km", dirname(self)) < 0)
		return km_err_set(err, ENOMEM, "finding km"), NULL;
	return p;
}

int shim_km_check_static(int fd, const char *path, km_err_t **err)
{
	Elf64_Ehdr eh;
	if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
	    (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) || eh.e_phentsize != sizeof(Elf64_Phdr))
		return km_err_set(err, 0, "km binary %s: not an x86-64 ELF executable", path);
	for (unsigned i = 0; i < eh.e_phnum && i < 256; i++) {
		Elf64_Phdr ph;
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) != (ssize_t)sizeof(ph))
			return km_err_set(err, 0, "km binary %s: truncated program headers", path);
		if (ph.p_type == PT_INTERP)
			return km_err_set(err, 0,
					  "km binary %s is dynamically linked (a sanitizer build?): km runs inside "
					  "the container, where host libraries do not exist; use a static km "
					  "(make km) or set KM_SHIM_KM to one",
					  path);
	}
	return 0;
}

char *shim_now_rfc3339(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char date[32], *out = NULL;
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	if (asprintf(&out, "%s.%09ldZ", date, ts.tv_nsec) < 0)
		return NULL;
	return out;
}

oci_status_t shim_ctr_status(shim_ctr_t *c)
{
	oci_state_t *st = c->st;
	if (st == NULL)
		return OCI_STATUS_STOPPED;
	bool alive = shim_pid_running(st->pid, st->pid_start_time);
	switch (st->status) {
	case OCI_STATUS_CREATING:
		return OCI_STATUS_CREATING;
	case OCI_STATUS_CREATED:
		return alive ? OCI_STATUS_CREATED : OCI_STATUS_STOPPED;
	case OCI_STATUS_STOPPED:
		return OCI_STATUS_STOPPED;
	case OCI_STATUS_RUNNING:
	case OCI_STATUS_PAUSED:
		break;
	}
	if (!alive)
		return OCI_STATUS_STOPPED;
	/* km knows whether it is paused (a pause may have come from elsewhere); its silence leaves
	 * the record's word */
	shim_mgmt_reply_t r;
	km_err_t *e = NULL;
	oci_status_t s = st->status;
	if (shim_mgmt_request(c->dir.dirfd, "status", -1, 2000, &r, &e) == 0) {
		char *state = shim_mgmt_field(&r, "state");
		if (state != NULL && strcmp(state, "paused") == 0)
			s = OCI_STATUS_PAUSED;
		else if (state != NULL && strcmp(state, "running") == 0)
			s = OCI_STATUS_RUNNING;
		free(state);
		shim_mgmt_reply_free(&r);
	} else {
		shim_log(SHIM_LOG_DEBUG, "status of %s from km: %s", st->id, e->msg);
		km_err_free(&e);
	}
	return s;
}

/* The cgroups of a container whose record could not be read: planned again from the config
 * saved at create, as create planned them (same id and config, km-shim's own cgroups being the
 * same), so that delete --force leaves none behind. -1 if there is nothing to go by. */
static int planned_cgroups(shim_ctr_t *c, char **path, char ***paths)
{
	*path = NULL;
	*paths = NULL;
	km_err_t *e = NULL;
	oci_config_t *cfg = shim_ctr_config(c, &e);
	int rc = cfg != NULL ? shim_cgroup_plan(cfg, c->dir.id, path, paths, &e) : -1;
	if (rc != 0 || *path == NULL) {
		shim_log(SHIM_LOG_DEBUG, "cgroups of %s unknown: %s", c->dir.id, e != NULL ? e->msg : "none");
		rc = -1;
	}
	km_err_free(&e);
	return rc;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

void shim_ctr_kill_all(shim_ctr_t *c)
{
	if (c->st != NULL && shim_pid_running(c->st->pid, c->st->pid_start_time)) {
		kill(c->st->pid, SIGKILL);
		if (shim_wait_gone(c->st->pid, c->st->pid_start_time, 10000) != 0)
			shim_log(SHIM_LOG_WARN, "km (pid %d) of %s did not end after SIGKILL", (int)c->st->pid,
				 c->dir.id);
	}
	shim_kill_fifo_holders(&c->dir);
	/* whatever else is in its cgroup (a container process that never became km) */
	pid_t *pids = NULL;
	km_err_t *e = NULL;
	char *plan = NULL, **plan_paths = NULL;
	int n = 0;
	if (c->st != NULL && c->st->cgroup_path != NULL)
		n = shim_cgroup_pids(c->st->cgroup_path, c->st->cgroup_paths, 0, &pids, &e);
	else if (c->st == NULL && planned_cgroups(c, &plan, &plan_paths) == 0)
		n = shim_cgroup_pids(plan, plan_paths, 0, &pids, &e);
	free(plan);
	free_strv(plan_paths);
	for (int i = 0; i < n; i++)
		if (pids[i] > 0 && pids[i] != getpid())
			kill(pids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		if (pids[i] > 0 && pids[i] != getpid())
			shim_wait_gone(pids[i], 0, 10000);
	free(pids);
	km_err_free(&e);
}

int shim_ctr_destroy(shim_ctr_t *c, km_err_t **err)
{
	char *plan = NULL, **plan_paths = NULL;
	const char *path = c->st != NULL ? c->st->cgroup_path : NULL;
	char *const *paths = c->st != NULL ? c->st->cgroup_paths : NULL;
	if (c->st == NULL && planned_cgroups(c, &plan, &plan_paths) == 0) {
		path = plan;
		paths = plan_paths;
	}
	if (path != NULL) {
		km_err_t *e = NULL;
		if (shim_cgroup_remove(path, paths, &e) != 0) {
			shim_log(SHIM_LOG_WARN, "removing the cgroups of %s: %s", c->dir.id, e->msg);
			km_err_free(&e);
		}
	}
	free(plan);
	free_strv(plan_paths);
	/* poststop hooks: from the config saved at create (the bundle's may have changed) */
	if (c->st != NULL && c->st->status != OCI_STATUS_CREATING) {
		km_err_t *e = NULL;
		oci_config_t *cfg = shim_ctr_config(c, &e);
		char *json = cfg != NULL ? shim_hooks_state_json(cfg, c->st->id, OCI_STATUS_STOPPED, 0, c->st->bundle) : NULL;
		if (cfg != NULL && json == NULL)
			shim_log(SHIM_LOG_WARN, "poststop hooks of %s not run: no memory for their state", c->dir.id);
		else if (json != NULL && shim_hooks_run(cfg, OCI_HOOK_POSTSTOP, json, 0, &e) != 0)
			shim_log(SHIM_LOG_WARN, "poststop hook of %s: %s", c->dir.id, e->msg);
		else if (cfg == NULL)
			shim_log(SHIM_LOG_DEBUG, "no poststop hooks for %s: %s", c->dir.id, e->msg);
		km_err_free(&e);
		free(json);
	}
	return shim_dir_remove(&c->dir, err);
}

static volatile sig_atomic_t child_pid;

static void forward_signal(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

int shim_wait_child(pid_t pid, int console_master)
{
	static const int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGCONT, SIGALRM};
	struct sigaction sa = {.sa_handler = forward_signal, .sa_flags = SA_RESTART};
	sigemptyset(&sa.sa_mask);
	child_pid = pid;
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
	if (console_master >= 0) {
		km_err_t *e = NULL;
		if (shim_console_proxy(console_master, &e) != 0)
			shim_log(SHIM_LOG_WARN, "%s", e->msg);
		km_err_free(&e);
	}
	int status;
	pid_t r;
	do
		r = waitpid(pid, &status, 0);
	while (r < 0 && errno == EINTR);
	child_pid = 0;
	if (r != pid)
		return 255;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}
