/* The container process's identity and settings: see shim_process.h. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim_process.h"
#include "shim_file.h"

int shim_caps_mask(char *const *names, const char *what, uint64_t *mask, km_err_t **err)
{
	*mask = 0;
	for (size_t i = 0; names && names[i]; i++) {
		int c = oci_cap_number(names[i]);
		if (c < 0)
			return km_err_set(err, 0, "%s[%zu]: unknown capability \"%s\"", what, i, names[i]);
		*mask |= 1ULL << c;
	}
	return 0;
}

int shim_cap_last(void)
{
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	char buf[16] = "";
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0)
			return atoi(buf);
	}
	return CAP_LAST_CAP;
}

static bool has_ns(const oci_config_t *cfg, oci_ns_type_t t)
{
	for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_namespaces; i++)
		if (cfg->linux_->namespaces[i].type == t)
			return true;
	return false;
}

const char *shim_sysctl_refusal(const oci_config_t *cfg, const char *key)
{
	static const char *const ipc[] = { "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
					    "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced" };
	for (size_t i = 0; i < sizeof(ipc) / sizeof(ipc[0]); i++)
		if (!strcmp(key, ipc[i]))
			return has_ns(cfg, OCI_NS_IPC) ? NULL : "needs an ipc namespace";
	if (!strncmp(key, "fs.mqueue.", 10))
		return has_ns(cfg, OCI_NS_IPC) ? NULL : "needs an ipc namespace";
	if (!strncmp(key, "net.", 4))
		return has_ns(cfg, OCI_NS_NETWORK) ? NULL : "needs a network namespace";
	if (!strcmp(key, "kernel.hostname") || !strcmp(key, "kernel.domainname"))
		return has_ns(cfg, OCI_NS_UTS) ? NULL : "needs a uts namespace";
	return "not namespaced: it would change the host";
}

static int write_sysctl(const char *key, const char *value, km_err_t **err)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "/proc/sys/%s", key);
	if (n < 0 || (size_t)n >= sizeof(path) || strstr(key, ".."))
		return km_err_set(err, EINVAL, "bad key");
	for (char *p = path + 10; *p; p++)
		if (*p == '.')
			*p = '/';
	return shim_write_file(path, O_NOFOLLOW, value, err);
}

int shim_process_uts_sysctl(const oci_config_t *cfg, km_err_t **err)
{
	if (cfg->hostname && sethostname(cfg->hostname, strlen(cfg->hostname)) < 0)
		return km_err_set(err, errno, "hostname: sethostname");
	if (cfg->domainname && setdomainname(cfg->domainname, strlen(cfg->domainname)) < 0)
		return km_err_set(err, errno, "domainname: setdomainname");
	for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_sysctl; i++) {
		const oci_sysctl_t *s = &cfg->linux_->sysctl[i];
		const char *why = shim_sysctl_refusal(cfg, s->key);
		if (why)
			return km_err_set(err, 0, "linux.sysctl: \"%s\": %s", s->key, why);
		if (write_sysctl(s->key, s->value, err) < 0)
			return km_err_wrap(err, "linux.sysctl: \"%s\"", s->key);
	}
	return 0;
}

static void warnf(shim_warn_fn warn, void *arg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void warnf(shim_warn_fn warn, void *arg, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (warn)
		warn(arg, buf);
}

int shim_process_rlimits(const oci_process_t *p, shim_warn_fn warn, void *arg, km_err_t **err)
{
	for (size_t i = 0; i < p->n_rlimits; i++) {
		const oci_rlimit_t *r = &p->rlimits[i];
		struct rlimit want = { .rlim_cur = r->soft, .rlim_max = r->hard }, cur;
		if (setrlimit(r->resource, &want) == 0)
			continue;
		int e = errno;
		if (e != EPERM || getrlimit(r->resource, &cur) < 0 || want.rlim_max <= cur.rlim_max)
			return km_err_set(err, e, "process.rlimits[%zu]: setting %s to %llu/%llu", i, r->type,
					  (unsigned long long)r->soft, (unsigned long long)r->hard);
		/* Raising a hard limit needs CAP_SYS_RESOURCE, which root may lack (this project's
		 * hosts do): the container gets the most it can have, and the user is told. */
		warnf(warn, arg, "process.rlimits[%zu]: %s hard limit %llu lowered to %llu (no CAP_SYS_RESOURCE to raise it)",
		      i, r->type, (unsigned long long)r->hard, (unsigned long long)cur.rlim_max);
		want.rlim_max = cur.rlim_max;
		if (want.rlim_cur > want.rlim_max)
			want.rlim_cur = want.rlim_max;
		if (setrlimit(r->resource, &want) < 0)
			return km_err_set(err, errno, "process.rlimits[%zu]: setting %s", i, r->type);
	}
	return 0;
}

int shim_process_mkcwd(const oci_process_t *p, km_err_t **err)
{
	struct stat st;
	if (stat(p->cwd, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return km_err_set(err, ENOTDIR, "process.cwd: %s", p->cwd);
		return 0;
	}
	if (shim_mkdir_p(p->cwd, 0755) < 0)
		return km_err_set(err, errno, "process.cwd: making %s", p->cwd);
	return 0;
}

typedef struct capsets {
	uint64_t eff, perm, inh;
} capsets_t;

static int cap_get(capsets_t *c)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	c->eff = d[0].effective | (uint64_t)d[1].effective << 32;
	c->perm = d[0].permitted | (uint64_t)d[1].permitted << 32;
	c->inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
	return 0;
}

static int cap_set(const capsets_t *c)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {
		{ (uint32_t)c->eff, (uint32_t)c->perm, (uint32_t)c->inh },
		{ (uint32_t)(c->eff >> 32), (uint32_t)(c->perm >> 32), (uint32_t)(c->inh >> 32) },
	};
	return (int)syscall(SYS_capset, &h, d);
}

/* Drops from `*want` what cannot be had, with one warning naming the set and the capabilities. */
static void cap_limit(uint64_t *want, uint64_t can, const char *set, shim_warn_fn warn, void *arg)
{
	uint64_t lost = *want & ~can;
	if (!lost)
		return;
	char names[1024] = "";
	for (int c = 0; c < 64; c++)
		if (lost & (1ULL << c)) {
			const char *n = oci_cap_name(c);
			size_t l = strlen(names);
			snprintf(names + l, sizeof(names) - l, "%s%s", l ? " " : "", n ? n : "?");
		}
	warnf(warn, arg, "process.capabilities.%s: %s not held by km-shim here; the container runs without", set, names);
	*want &= can;
}

typedef struct capwant {
	uint64_t bounding, eff, perm, inh, amb;
} capwant_t;

static int caps_parse(const oci_caps_t *c, capwant_t *w, km_err_t **err)
{
	if (shim_caps_mask(c->bounding, "process.capabilities.bounding", &w->bounding, err) < 0 ||
	    shim_caps_mask(c->effective, "process.capabilities.effective", &w->eff, err) < 0 ||
	    shim_caps_mask(c->permitted, "process.capabilities.permitted", &w->perm, err) < 0 ||
	    shim_caps_mask(c->inheritable, "process.capabilities.inheritable", &w->inh, err) < 0 ||
	    shim_caps_mask(c->ambient, "process.capabilities.ambient", &w->amb, err) < 0)
		return -1;
	return 0;
}

static int drop_bounding(uint64_t keep, km_err_t **err)
{
	int last = shim_cap_last();
	for (int c = 0; c <= last && c < 64; c++)
		if (!(keep & (1ULL << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL)
			return km_err_set(err, errno, "process.capabilities.bounding: dropping %s",
					  oci_cap_name(c) ? oci_cap_name(c) : "?");
	return 0;
}

static int set_caps(const capwant_t *w, shim_warn_fn warn, void *arg, km_err_t **err)
{
	capsets_t old, c = { .eff = w->eff, .perm = w->perm, .inh = w->inh };
	if (cap_get(&old) < 0)
		return km_err_set(err, errno, "capget");
	uint64_t bset = 0;
	for (int i = 0; i <= shim_cap_last() && i < 64; i++)
		if (prctl(PR_CAPBSET_READ, i, 0, 0, 0) == 1)
			bset |= 1ULL << i;
	cap_limit(&c.perm, old.perm, "permitted", warn, arg);
	cap_limit(&c.eff, c.perm, "effective", warn, arg);
	cap_limit(&c.inh, (old.inh | old.perm) & (old.inh | bset), "inheritable", warn, arg);
	if (cap_set(&c) < 0)
		return km_err_set(err, errno, "process.capabilities: capset");
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return km_err_set(err, errno, "process.capabilities.ambient: clearing");
	uint64_t amb = w->amb;
	cap_limit(&amb, c.perm & c.inh, "ambient", warn, arg);
	for (int i = 0; i < 64; i++)
		if ((amb & (1ULL << i)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, i, 0, 0) < 0)
			return km_err_set(err, errno, "process.capabilities.ambient: raising %s", oci_cap_name(i));
	return 0;
}

int shim_process_become(const oci_process_t *p, shim_warn_fn warn, void *arg, km_err_t **err)
{
	capwant_t w = { 0 };
	if (p->caps && caps_parse(p->caps, &w, err) < 0)
		return -1;
	if (p->caps && drop_bounding(w.bounding, err) < 0)
		return -1;
	/* Keep the permitted set across the uid change so the configured sets can be applied after. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		return km_err_set(err, errno, "prctl(PR_SET_KEEPCAPS)");
	if (setgroups(p->n_additional_gids, p->additional_gids) < 0 && !(errno == EPERM && !p->n_additional_gids))
		return km_err_set(err, errno, "process.user.additionalGids: setgroups");
	if (setresgid(p->gid, p->gid, p->gid) < 0)
		return km_err_set(err, errno, "process.user.gid: setresgid(%u)", (unsigned)p->gid);
	if (setresuid(p->uid, p->uid, p->uid) < 0)
		return km_err_set(err, errno, "process.user.uid: setresuid(%u)", (unsigned)p->uid);
	if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
		return km_err_set(err, errno, "prctl(PR_SET_KEEPCAPS)");
	if (p->caps && set_caps(&w, warn, arg, err) < 0)
		return -1;
	if (p->no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return km_err_set(err, errno, "process.noNewPrivileges");
	umask(p->has_umask ? p->umask : 022);
	if (chdir(p->cwd) < 0)
		return km_err_set(err, errno, "process.cwd: chdir %s", p->cwd);
	return 0;
}

char *shim_process_program(const oci_process_t *p, km_err_t **err)
{
	const char *a0 = p->args[0];
	char *out = NULL;
	if (strchr(a0, '/')) {
		out = strdup(a0);
		if (!out)
			km_err_set(err, ENOMEM, "process.args[0]");
		return out;
	}
	const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (size_t i = 0; p->env && p->env[i]; i++)
		if (!strncmp(p->env[i], "PATH=", 5))
			path = p->env[i] + 5;
	for (const char *d = path; d;) {
		const char *end = strchr(d, ':');
		size_t n = end ? (size_t)(end - d) : strlen(d);
		/* an empty element is the working directory, as in execvp */
		if (asprintf(&out, "%.*s/%s", n ? (int)n : 1, n ? d : ".", a0) < 0) {
			km_err_set(err, ENOMEM, "process.args[0]");
			return NULL;
		}
		struct stat st;
		if (stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
			return out;
		free(out);
		out = NULL;
		d = end ? end + 1 : NULL;
	}
	km_err_set(err, ENOENT, "process.args[0]: \"%s\": executable file not found in $PATH", a0);
	return NULL;
}
