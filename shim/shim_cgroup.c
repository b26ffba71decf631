/* A container's cgroups on v1, hybrid and pure v2 hosts: see shim_cgroup.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shim_cgroup.h"
#include "shim_file.h"
#include "shim_container.h"
#include "shim_devices.h"

static const char *const ctrl_names[SHIM_CG_NCTRL] = { "memory", "pids", "cpu", "cpuacct", "devices" };

const char *shim_cg_ctrl_name(shim_cg_ctrl_t c)
{
	return c < SHIM_CG_NCTRL ? ctrl_names[c] : "?";
}

static char *join(const char *a, const char *b)
{
	char *s;
	while (*b == '/')
		b++;
	if (asprintf(&s, "%s%s%s", a, *b ? "/" : "", b) < 0)
		return NULL;
	return s;
}

static bool exists(const char *dir, const char *file)
{
	km_autofree char *p = join(dir, file);
	return p && access(p, F_OK) == 0;
}

void shim_cgroup_layout_free(shim_cgroup_layout_t *l)
{
	free(l->root);
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		free(l->dir[c]);
	memset(l, 0, sizeof(*l));
}

/* Whether cgroup.controllers (a space-separated list) names `want`. */
static bool v2_lists(const char *controllers, const char *want)
{
	size_t n = strlen(want);
	for (const char *p = controllers; (p = strstr(p, want)); p += n)
		if ((p == controllers || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

static int read_small(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, cap - 1);
	int e = errno;
	close(fd);
	if (n < 0) {
		errno = e;
		return -1;
	}
	buf[n] = '\0';
	return 0;
}

int shim_cgroup_detect(const char *root, shim_cgroup_layout_t *l, km_err_t **err)
{
	memset(l, 0, sizeof(*l));
	l->root = strdup(root ? root : "/sys/fs/cgroup");
	if (!l->root)
		return km_err_set(err, ENOMEM, "cgroups");
	bool any = false;
	if (exists(l->root, "cgroup.controllers")) {
		km_autofree char *cf = join(l->root, "cgroup.controllers");
		char buf[512];
		if (!cf || read_small(cf, buf, sizeof(buf)) < 0)
			return km_err_set(err, errno, "cgroups: reading %s", cf ? cf : l->root);
		l->v2 = true;
		for (int c = 0; c < SHIM_CG_NCTRL; c++)
			/* cpu.stat (usage) is in every v2 cgroup, so cpuacct is always there; devices is
			 * a BPF program any v2 cgroup takes. */
			if (c == SHIM_CG_CPUACCT || c == SHIM_CG_DEVICES || v2_lists(buf, ctrl_names[c]))
				l->dir[c] = strdup(l->root);
		return 0;
	}
	for (int c = 0; c < SHIM_CG_NCTRL; c++) {
		km_autofree char *d = join(l->root, ctrl_names[c]);
		if (d && exists(d, "cgroup.procs")) {
			l->dir[c] = d;
			d = NULL;
			any = true;
		}
	}
	if (!any && !exists(l->root, "unified/cgroup.procs"))
		return km_err_set(err, 0, "cgroups: no cgroup filesystem at %s (neither %s/cgroup.controllers nor v1 hierarchies)",
				  l->root, l->root);
	return 0;
}

/* systemd's "slice:prefix:name" laid out as systemd does it: each dash in the slice's name
 * nests it ("a-b.slice" is /a.slice/a-b.slice), "-.slice" (or none) is the root, the unit is
 * prefix-name.scope (name itself if it is a slice); an empty slice is system.slice. */
static char *systemd_path(const char *slice, size_t slice_len, const char *prefix, size_t prefix_len,
			  const char *name)
{
	if (slice_len == 0) { /* systemd's default parent, as runc's systemd driver */
		slice = "system.slice";
		slice_len = 12;
	}
	size_t cap = 2 * slice_len + strlen(prefix) + strlen(name) + 16, n = 0;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	size_t base = slice_len > 6 && !strncmp(slice + slice_len - 6, ".slice", 6) ? slice_len - 6 : slice_len;
	if (base && !(base == 1 && slice[0] == '-')) {
		for (size_t i = 0; i <= base; i++)
			if (i == base || slice[i] == '-')
				n += (size_t)snprintf(s + n, cap - n, "/%.*s.slice", (int)i, slice);
	}
	size_t nl = strlen(name);
	if (nl > 6 && !strcmp(name + nl - 6, ".slice"))
		snprintf(s + n, cap - n, "/%s", name);
	else if (prefix_len)
		snprintf(s + n, cap - n, "/%.*s-%s.scope", (int)prefix_len, prefix, name);
	else
		snprintf(s + n, cap - n, "/%s.scope", name);
	return s;
}

/* `p` without empty, "." and ".." components (".." stops at the start, as runc's CleanPath),
 * keeping a leading '/'. */
static char *clean_path(const char *p)
{
	size_t len = strlen(p);
	char *s = malloc(len + 2), *o = s;
	if (!s)
		return NULL;
	if (p[0] == '/')
		*o++ = '/';
	char *base = o;
	for (const char *q = p; *q;) {
		while (*q == '/')
			q++;
		size_t n = strcspn(q, "/");
		if (n == 0)
			break;
		if (n == 1 && q[0] == '.') {
		} else if (n == 2 && q[0] == '.' && q[1] == '.') {
			while (o > base && o[-1] != '/')
				o--;
			if (o > base)
				o--;
		} else {
			if (o > base)
				*o++ = '/';
			memcpy(o, q, n);
			o += n;
		}
		q += n;
	}
	*o = '\0';
	return s;
}

char *shim_cgroup_path_for(const oci_config_t *cfg, const char *id)
{
	const char *cp = cfg && cfg->linux_ ? cfg->linux_->cgroups_path : NULL;
	char *s = NULL;
	if (!cp || !*cp) {
		if (asprintf(&s, "km-shim/%s", id) < 0)
			return NULL;
		char *c = clean_path(s);
		free(s);
		return c;
	}
	const char *c1 = strchr(cp, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (cp[0] != '/' && c1 && c2 && !strchr(c2 + 1, ':'))
		s = systemd_path(cp, (size_t)(c1 - cp), c1 + 1, (size_t)(c2 - c1 - 1), c2 + 1);
	char *c = clean_path(s ? s : cp);
	free(s);
	return c;
}

void shim_cgroup_paths_free(shim_cgroup_paths_t *p)
{
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		free(p->path[c]);
	memset(p, 0, sizeof(*p));
}

#define SELF_CGROUP_MAX (64 * 1024)

char *shim_cgroup_read_self(const char *file, km_err_t **err)
{
	const char *f = file ? file : "/proc/self/cgroup";
	char *buf = malloc(SELF_CGROUP_MAX);
	if (!buf)
		return km_err_set(err, ENOMEM, "cgroups"), NULL;
	if (read_small(f, buf, SELF_CGROUP_MAX) < 0) {
		km_err_set(err, errno, "cgroups: reading %s", f);
		free(buf);
		return NULL;
	}
	return buf;
}

/* The path /proc/self/cgroup gives for controller `name` ("" for the v2 line), or NULL; its
 * length in *len. */
static const char *self_path(const char *text, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	for (const char *line = text; line && *line; line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
		const char *c1 = strchr(line, ':'), *end = line + strcspn(line, "\n");
		const char *c2 = c1 && c1 < end ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
		if (!c2)
			continue;
		bool match = false;
		if (!nl)
			match = c2 == c1 + 1;
		for (const char *q = c1 + 1; nl && q < c2; q += strcspn(q, ",:") + 1)
			if ((size_t)(c2 - q) >= nl && !strncmp(q, name, nl) && (q[nl] == ',' || q[nl] == ':'))
				match = true;
		if (match && c2[1] == '/') {
			*len = (size_t)(end - c2 - 1);
			return c2 + 1;
		}
	}
	return NULL;
}

int shim_cgroup_resolve(const shim_cgroup_layout_t *l, const char *path, const char *self_cgroup,
			shim_cgroup_paths_t *out, km_err_t **err)
{
	memset(out, 0, sizeof(*out));
	for (int c = 0; c < SHIM_CG_NCTRL; c++) {
		if (!l->dir[c])
			continue;
		if (path[0] == '/') {
			out->path[c] = strdup(path);
		} else {
			/* pure v2: one tree, so every controller (cpuacct too) is under the "0::" cgroup */
			size_t n = 0;
			const char *own = self_path(self_cgroup, l->v2 ? "" : ctrl_names[c], &n);
			if (!own) {
				shim_cgroup_paths_free(out);
				return km_err_set(err, 0, "cgroups: /proc/self/cgroup names no %s cgroup of km-shim to put \"%s\" under",
						  l->v2 ? "cgroup2" : ctrl_names[c], path);
			}
			km_autofree char *base = strndup(own, n);
			out->path[c] = base ? join(base, path) : NULL;
			/* join gives "//x" under "/": one leading slash */
			if (out->path[c] && out->path[c][0] == '/' && out->path[c][1] == '/')
				memmove(out->path[c], out->path[c] + 1, strlen(out->path[c]));
		}
		if (!out->path[c]) {
			shim_cgroup_paths_free(out);
			return km_err_set(err, ENOMEM, "cgroups");
		}
	}
	return 0;
}

char **shim_cgroup_paths_to_record(const shim_cgroup_paths_t *p)
{
	char **v = calloc(SHIM_CG_NCTRL + 1, sizeof(*v));
	for (int c = 0, n = 0; v && c < SHIM_CG_NCTRL; c++)
		if (p->path[c] && asprintf(&v[n++], "%s=%s", ctrl_names[c], p->path[c]) < 0) {
			for (int i = 0; i < n - 1; i++)
				free(v[i]);
			free(v);
			return NULL;
		}
	return v;
}

static bool has_dotdot(const char *p)
{
	for (const char *q = p; (q = strstr(q, "..")); q += 2)
		if ((q == p || q[-1] == '/') && (q[2] == '/' || q[2] == '\0'))
			return true;
	return false;
}

int shim_cgroup_paths_from_record(const char *path, char *const *pairs, shim_cgroup_paths_t *out, km_err_t **err)
{
	memset(out, 0, sizeof(*out));
	if (!pairs) {
		if (!path || path[0] != '/' || has_dotdot(path))
			return km_err_set(err, 0, "state.json: cgroupPath \"%s\" without cgroupPaths: not a record km-shim wrote",
					  path ? path : "");
		for (int c = 0; c < SHIM_CG_NCTRL; c++)
			if (!(out->path[c] = strdup(path))) {
				shim_cgroup_paths_free(out);
				return km_err_set(err, ENOMEM, "cgroups");
			}
		return 0;
	}
	for (size_t i = 0; pairs[i]; i++) {
		const char *eq = strchr(pairs[i], '=');
		int c = 0;
		while (eq && c < SHIM_CG_NCTRL &&
		       !(strlen(ctrl_names[c]) == (size_t)(eq - pairs[i]) && !strncmp(pairs[i], ctrl_names[c], (size_t)(eq - pairs[i]))))
			c++;
		if (!eq || c == SHIM_CG_NCTRL || out->path[c] || eq[1] != '/' || has_dotdot(eq + 1)) {
			shim_cgroup_paths_free(out);
			return km_err_set(err, 0, "state.json: cgroupPaths: \"%s\" is not a controller km-shim uses with an absolute path",
					  pairs[i]);
		}
		if (!(out->path[c] = strdup(eq + 1))) {
			shim_cgroup_paths_free(out);
			return km_err_set(err, ENOMEM, "cgroups");
		}
	}
	return 0;
}

const char *shim_cgroup_needs(const oci_resources_t *res, shim_cg_ctrl_t c)
{
	if (!res)
		return NULL;
	switch (c) {
	case SHIM_CG_MEMORY:
		if (res->has_memory_limit && res->memory_limit >= 0)
			return "linux.resources.memory.limit";
		if (res->has_memory_reservation && res->memory_reservation >= 0)
			return "linux.resources.memory.reservation";
		if (res->has_memory_swap && res->memory_swap >= 0)
			return "linux.resources.memory.swap";
		return NULL;
	case SHIM_CG_PIDS:
		return res->has_pids_limit && res->pids_limit > 0 ? "linux.resources.pids.limit" : NULL;
	case SHIM_CG_CPU:
		if (res->has_cpu_shares && res->cpu_shares)
			return "linux.resources.cpu.shares";
		if (res->has_cpu_quota && res->cpu_quota > 0)
			return "linux.resources.cpu.quota";
		if (res->has_cpu_period && res->cpu_period)
			return "linux.resources.cpu.period";
		return NULL;
	case SHIM_CG_DEVICES:
		return res->n_device_rules ? "linux.resources.devices" : NULL;
	default:
		return NULL;
	}
}

char *shim_cgroup_dir(const shim_cgroup_layout_t *l, shim_cg_ctrl_t c, const shim_cgroup_paths_t *p)
{
	return c < SHIM_CG_NCTRL && l->dir[c] && p && p->path[c] ? join(l->dir[c], p->path[c]) : NULL;
}

static int cg_write(const char *dir, const char *file, const char *val, km_err_t **err)
{
	km_autofree char *p = join(dir, file);
	if (!p)
		return km_err_set(err, ENOMEM, "cgroups");
	return shim_write_file(p, 0, val, err) < 0 ? km_err_wrap(err, "cgroups") : 0;
}

static int cg_write_num(const char *dir, const char *file, int64_t v, const char *unlimited, km_err_t **err)
{
	char buf[32];
	if (v < 0)
		snprintf(buf, sizeof(buf), "%s", unlimited);
	else
		snprintf(buf, sizeof(buf), "%" PRId64, v);
	return cg_write(dir, file, buf, err);
}

/* A concurrent delete may remove an empty parent (/km-shim) between our mkdirs: start over. */
static int mkdirs(const char *p)
{
	int rc = -1;
	for (int tries = 0; tries < 16 && (rc = shim_mkdir_p(p, 0755)) < 0 && errno == ENOENT; tries++)
		;
	return rc;
}

/* v2: each ancestor of `path` must delegate the controllers to its children. */
static int v2_enable(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, km_err_t **err)
{
	const char *path = p->path[SHIM_CG_CPUACCT]; /* one tree: every controller's path is the same */
	if (!path)
		return 0;
	char want[64] = "";
	for (int c = 0; c < SHIM_CG_CPUACCT; c++)
		if (l->dir[c]) {
			strcat(want, want[0] ? " +" : "+");
			strcat(want, ctrl_names[c]);
		}
	if (!want[0])
		return 0;
	km_autofree char *rel = strdup(path);
	if (!rel)
		return km_err_set(err, ENOMEM, "cgroups");
	for (char *q = rel;; q++) {
		if (*q != '/' && *q != '\0')
			continue;
		char save = *q;
		*q = '\0';
		km_autofree char *dir = join(l->root, rel);
		*q = save;
		if (!save)
			break; /* the container's own cgroup needs nothing delegated */
		if (!dir || mkdirs(dir) < 0)
			return km_err_set(err, errno, "cgroups: making %s", dir ? dir : path);
		if (cg_write(dir, "cgroup.subtree_control", want, err) < 0)
			return -1;
	}
	return 0;
}

static int apply_memory(const shim_cgroup_layout_t *l, const char *d, const oci_resources_t *r, km_err_t **err)
{
	if (l->v2) {
		if (r->has_memory_limit && cg_write_num(d, "memory.max", r->memory_limit, "max", err) < 0)
			return km_err_wrap(err, "linux.resources.memory.limit");
		if (r->has_memory_reservation && cg_write_num(d, "memory.low", r->memory_reservation, "max", err) < 0)
			return km_err_wrap(err, "linux.resources.memory.reservation");
		if (r->has_memory_swap) {
			/* OCI's swap is memory+swap; v2's memory.swap.max is swap alone. */
			int64_t swap = r->memory_swap;
			if (swap >= 0 && r->has_memory_limit && r->memory_limit >= 0) {
				if (swap < r->memory_limit)
					return km_err_set(err, 0, "linux.resources.memory.swap: %" PRId64 " is below memory.limit %" PRId64,
							  swap, r->memory_limit);
				swap -= r->memory_limit;
			}
			if (!exists(d, "memory.swap.max")) {
				if (swap != 0 && swap != -1)
					return km_err_set(err, 0, "linux.resources.memory.swap: this kernel has no swap accounting (memory.swap.max)");
			} else if (cg_write_num(d, "memory.swap.max", swap, "max", err) < 0)
				return km_err_wrap(err, "linux.resources.memory.swap");
		}
		return 0;
	}
	if (r->has_memory_limit) {
		/* memsw must stay >= limit: when raising, the memsw write has to come first. */
		if (cg_write_num(d, "memory.limit_in_bytes", r->memory_limit, "-1", err) < 0) {
			if (!(r->has_memory_swap && exists(d, "memory.memsw.limit_in_bytes")))
				return km_err_wrap(err, "linux.resources.memory.limit");
			km_err_free(err);
			if (cg_write_num(d, "memory.memsw.limit_in_bytes", r->memory_swap, "-1", err) < 0 ||
			    cg_write_num(d, "memory.limit_in_bytes", r->memory_limit, "-1", err) < 0)
				return km_err_wrap(err, "linux.resources.memory");
		}
	}
	if (r->has_memory_swap) {
		if (!exists(d, "memory.memsw.limit_in_bytes")) {
			if (r->memory_swap != -1 && !(r->has_memory_limit && r->memory_swap == r->memory_limit))
				return km_err_set(err, 0, "linux.resources.memory.swap: this kernel has no swap accounting (memory.memsw.limit_in_bytes)");
		} else if (cg_write_num(d, "memory.memsw.limit_in_bytes", r->memory_swap, "-1", err) < 0)
			return km_err_wrap(err, "linux.resources.memory.swap");
	}
	if (r->has_memory_reservation &&
	    cg_write_num(d, "memory.soft_limit_in_bytes", r->memory_reservation, "-1", err) < 0)
		return km_err_wrap(err, "linux.resources.memory.reservation");
	return 0;
}

uint64_t shim_cgroup_shares_to_weight(uint64_t shares)
{
	if (shares == 0)
		return 0;
	if (shares < 2)
		shares = 2;
	if (shares > 262144)
		shares = 262144;
	return 1 + ((shares - 2) * 9999) / 262142;
}

static int apply_cpu(const shim_cgroup_layout_t *l, const char *d, const oci_resources_t *r, km_err_t **err)
{
	if (l->v2) {
		if (r->has_cpu_shares && r->cpu_shares) {
			char buf[32];
			snprintf(buf, sizeof(buf), "%" PRIu64, shim_cgroup_shares_to_weight(r->cpu_shares));
			if (cg_write(d, "cpu.weight", buf, err) < 0)
				return km_err_wrap(err, "linux.resources.cpu.shares");
		}
		if (r->has_cpu_quota || r->has_cpu_period) {
			char buf[64];
			uint64_t period = r->has_cpu_period && r->cpu_period ? r->cpu_period : 100000;
			if (r->has_cpu_quota && r->cpu_quota > 0)
				snprintf(buf, sizeof(buf), "%" PRId64 " %" PRIu64, r->cpu_quota, period);
			else
				snprintf(buf, sizeof(buf), "max %" PRIu64, period);
			if (cg_write(d, "cpu.max", buf, err) < 0)
				return km_err_wrap(err, "linux.resources.cpu.quota/period");
		}
		return 0;
	}
	if (r->has_cpu_shares && r->cpu_shares && cg_write_num(d, "cpu.shares", (int64_t)r->cpu_shares, "", err) < 0)
		return km_err_wrap(err, "linux.resources.cpu.shares");
	if (r->has_cpu_period && r->cpu_period &&
	    cg_write_num(d, "cpu.cfs_period_us", (int64_t)r->cpu_period, "", err) < 0)
		return km_err_wrap(err, "linux.resources.cpu.period");
	if (r->has_cpu_quota && cg_write_num(d, "cpu.cfs_quota_us", r->cpu_quota > 0 ? r->cpu_quota : -1, "-1", err) < 0)
		return km_err_wrap(err, "linux.resources.cpu.quota");
	return 0;
}

int shim_cgroup_apply(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, const oci_resources_t *res,
		      km_err_t **err)
{
	if (!res)
		return 0;
	for (int c = 0; c < SHIM_CG_CPUACCT; c++) {
		const char *need = shim_cgroup_needs(res, c);
		if (!l->dir[c]) {
			if (need)
				return km_err_set(err, 0, "%s: the %s cgroup controller is not available on this host%s", need,
						  ctrl_names[c], l->v2 ? " (not in cgroup.controllers)" : "");
			continue;
		}
		km_autofree char *d = shim_cgroup_dir(l, c, p);
		if (!d)
			return km_err_set(err, need ? 0 : ENOMEM, "cgroups: the container has no %s cgroup", ctrl_names[c]);
		int rc = 0;
		if (c == SHIM_CG_MEMORY)
			rc = apply_memory(l, d, res, err);
		else if (c == SHIM_CG_PIDS && res->has_pids_limit)
			rc = cg_write_num(d, "pids.max", res->pids_limit > 0 ? res->pids_limit : -1, "max", err) < 0
				     ? km_err_wrap(err, "linux.resources.pids.limit")
				     : 0;
		else if (c == SHIM_CG_CPU)
			rc = apply_cpu(l, d, res, err);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* The device rules into the new cgroup; without a devices controller only a config that has no
 * rules goes on (shim_cgroup.h). */
static int apply_devices(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, const oci_resources_t *res,
			 const oci_device_t *devs, size_t n_devs, km_err_t **err)
{
	const char *need = shim_cgroup_needs(res, SHIM_CG_DEVICES);
	if (!l->dir[SHIM_CG_DEVICES])
		return need ? km_err_set(err, 0, "%s: the devices cgroup controller is not available on this host", need) : 0;
	km_autofree char *d = shim_cgroup_dir(l, SHIM_CG_DEVICES, p);
	size_t n = 0;
	km_autofree oci_device_rule_t *rules = d ? shim_devices_rules(res, devs, n_devs, &n, err) : NULL;
	if (!d)
		return km_err_set(err, ENOMEM, "cgroups: the container has no devices cgroup");
	if (!rules)
		return -1;
	int rc = l->v2 ? shim_devices_attach_v2(d, rules, n, err) : shim_devices_apply_v1(d, rules, n, err);
	return rc < 0 ? km_err_wrap(err, "%s", need ? need : "the default device rules") : 0;
}

int shim_cgroup_create(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, const oci_resources_t *res,
		       const oci_device_t *devs, size_t n_devs, km_err_t **err)
{
	if (l->v2 && v2_enable(l, p, err) < 0)
		return -1;
	for (int c = 0; c < SHIM_CG_NCTRL; c++) {
		km_autofree char *d = shim_cgroup_dir(l, c, p);
		if (d && mkdirs(d) < 0)
			return km_err_set(err, errno, "cgroups: making %s", d);
	}
	if (apply_devices(l, p, res, devs, n_devs, err) < 0)
		return -1;
	return shim_cgroup_apply(l, p, res, err);
}

int shim_cgroup_add(const shim_cgroup_layout_t *l, const shim_cgroup_paths_t *p, pid_t pid, km_err_t **err)
{
	char buf[24];
	snprintf(buf, sizeof(buf), "%d", (int)pid);
	for (int c = 0; c < SHIM_CG_NCTRL; c++) {
		/* One v2 tree (or one v1 hierarchy holding several controllers): once is enough. */
		bool seen = false;
		for (int b = 0; b < c; b++)
			seen |= l->dir[b] && l->dir[c] && !strcmp(l->dir[b], l->dir[c]);
		km_autofree char *d = shim_cgroup_dir(l, c, p);
		if (!d || seen)
			continue;
		if (cg_write(d, "cgroup.procs", buf, err) < 0)
			return km_err_wrap(err, "adding pid %d to the %s cgroup", (int)pid, ctrl_names[c]);
	}
	return 0;
}

/* km-shim's default "km-shim/<id>" (or "/km-shim/<id>", as records before relative paths say). */
static bool default_path(const char *path)
{
	if (path && path[0] == '/')
		path++;
	return path && !strncmp(path, "km-shim/", 8) && path[8] && !strchr(path + 8, '/');
}

/* rmdir of a cgroup whose last task has just been killed: the kernel lets go of a dying task a
 * little after it is seen gone (and later still on a loaded machine), so EBUSY is retried with
 * backoff for about a second, as runc does. 0, or -1 with errno. */
static int rmdir_cgroup(const char *d)
{
	for (long wait_us = 1000;; wait_us *= 2) {
		if (rmdir(d) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || wait_us > 512000)
			return -1;
		usleep((useconds_t)wait_us);
	}
}

int shim_cgroup_remove_in(const shim_cgroup_layout_t *l, const char *path, const shim_cgroup_paths_t *p,
			  km_err_t **err)
{
	/* Every hierarchy is tried even when one fails, so one busy cgroup does not leave the
	 * others behind; the first failure is reported. */
	int rc = 0;
	for (int c = 0; c < SHIM_CG_NCTRL; c++) {
		km_autofree char *d = shim_cgroup_dir(l, c, p);
		if (d && rmdir_cgroup(d) < 0 && rc == 0)
			rc = km_err_set(err, errno, "cgroups: removing %s", d);
	}
	if (rc != 0)
		return rc;
	/* The default parent km-shim made goes with its last container; one still in use (or just
	 * made by a concurrent create, which retries) refuses with EBUSY/ENOTEMPTY: left alone. */
	if (default_path(path))
		for (int c = 0; c < SHIM_CG_NCTRL; c++) {
			km_autofree char *d = shim_cgroup_dir(l, c, p);
			char *slash = d ? strrchr(d, '/') : NULL;
			if (slash) {
				*slash = '\0';
				rmdir(d);
			}
		}
	return 0;
}

/* The layout of this host and the record's cgroups. */
static int open_record(const char *path, char *const *pairs, shim_cgroup_layout_t *l, shim_cgroup_paths_t *p,
		       km_err_t **err)
{
	if (shim_cgroup_paths_from_record(path, pairs, p, err) < 0)
		return -1;
	if (shim_cgroup_detect(NULL, l, err) < 0) {
		shim_cgroup_layout_free(l);
		shim_cgroup_paths_free(p);
		return -1;
	}
	return 0;
}

int shim_cgroup_remove(const char *cgroup_path, char *const *cgroup_paths, km_err_t **err)
{
	if (!cgroup_path && !cgroup_paths)
		return 0;
	shim_cgroup_layout_t l;
	shim_cgroup_paths_t p;
	if (open_record(cgroup_path, cgroup_paths, &l, &p, err) < 0)
		return -1;
	int rc = shim_cgroup_remove_in(&l, cgroup_path, &p, err);
	shim_cgroup_layout_free(&l);
	shim_cgroup_paths_free(&p);
	return rc;
}

int shim_cgroup_update(const char *cgroup_path, char *const *cgroup_paths, const oci_resources_t *res, km_err_t **err)
{
	if (!cgroup_path && !cgroup_paths)
		return km_err_set(err, 0, "the container has no cgroup to update");
	shim_cgroup_layout_t l;
	shim_cgroup_paths_t p;
	if (open_record(cgroup_path, cgroup_paths, &l, &p, err) < 0)
		return -1;
	int rc = shim_cgroup_apply(&l, &p, res, err);
	shim_cgroup_layout_free(&l);
	shim_cgroup_paths_free(&p);
	return rc;
}

int shim_cgroup_pids(const char *cgroup_path, char *const *cgroup_paths, pid_t pid, pid_t **pids, km_err_t **err)
{
	*pids = NULL;
	km_autofree char *d = NULL;
	if (cgroup_path || cgroup_paths) {
		shim_cgroup_layout_t l;
		shim_cgroup_paths_t p;
		if (open_record(cgroup_path, cgroup_paths, &l, &p, err) < 0)
			return -1;
		for (int c = 0; c < SHIM_CG_NCTRL && !d; c++)
			d = shim_cgroup_dir(&l, c, &p);
		shim_cgroup_layout_free(&l);
		shim_cgroup_paths_free(&p);
	}
	if (!d) {
		*pids = malloc(sizeof(pid_t));
		if (!*pids)
			return km_err_set(err, ENOMEM, "pids");
		(*pids)[0] = pid;
		return 1;
	}
	km_autofree char *procs = join(d, "cgroup.procs");
	FILE *f = procs ? fopen(procs, "re") : NULL;
	if (!f)
		return km_err_set(err, errno, "cgroups: reading %s", procs ? procs : d);
	int n = 0, cap = 0, v;
	while (fscanf(f, "%d", &v) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			pid_t *np = realloc(*pids, cap * sizeof(pid_t));
			if (!np) {
				fclose(f);
				free(*pids);
				*pids = NULL;
				return km_err_set(err, ENOMEM, "pids");
			}
			*pids = np;
		}
		(*pids)[n++] = v;
	}
	fclose(f);
	return n;
}

/* A number from <dir>/<file>, or the value of `key` in a "key value" file; 0 if unreadable. */
static unsigned long long read_num(const char *dir, const char *file, const char *key)
{
	km_autofree char *p = dir ? join(dir, file) : NULL;
	char buf[4096];
	if (!p || read_small(p, buf, sizeof(buf)) < 0)
		return 0;
	const char *s = buf;
	if (key) {
		size_t n = strlen(key);
		for (s = buf; s && !(strncmp(s, key, n) == 0 && s[n] == ' '); s = strchr(s, '\n'), s = s ? s + 1 : s)
			;
		if (!s)
			return 0;
		s += n + 1;
	}
	if (!strncmp(s, "max", 3))
		return 0;
	return strtoull(s, NULL, 10);
}

int shim_cgroup_stats(const char *cgroup_path, char *const *cgroup_paths, shim_cgroup_stats_t *st, km_err_t **err)
{
	memset(st, 0, sizeof(*st));
	if (!cgroup_path && !cgroup_paths)
		return 0;
	shim_cgroup_layout_t l;
	shim_cgroup_paths_t p;
	if (open_record(cgroup_path, cgroup_paths, &l, &p, err) < 0)
		return -1;
	km_autofree char *mem = shim_cgroup_dir(&l, SHIM_CG_MEMORY, &p);
	km_autofree char *pids = shim_cgroup_dir(&l, SHIM_CG_PIDS, &p);
	km_autofree char *acct = shim_cgroup_dir(&l, SHIM_CG_CPUACCT, &p);
	if (l.v2) {
		st->memory_usage = read_num(mem, "memory.current", NULL);
		st->memory_limit = read_num(mem, "memory.max", NULL);
		st->memory_max_usage = read_num(mem, "memory.peak", NULL);
		st->cpu_usage_ns = read_num(acct, "cpu.stat", "usage_usec") * 1000;
	} else {
		st->memory_usage = read_num(mem, "memory.usage_in_bytes", NULL);
		st->memory_limit = read_num(mem, "memory.limit_in_bytes", NULL);
		st->memory_max_usage = read_num(mem, "memory.max_usage_in_bytes", NULL);
		st->cpu_usage_ns = read_num(acct, "cpuacct.usage", NULL);
	}
	st->pids_current = read_num(pids, "pids.current", NULL);
	st->pids_limit = read_num(pids, "pids.max", NULL);
	shim_cgroup_layout_free(&l);
	shim_cgroup_paths_free(&p);
	return 0;
}

int shim_cgroup_plan(const oci_config_t *cfg, const char *id, char **cgroup_path, char ***cgroup_paths,
		     km_err_t **err)
{
	*cgroup_path = NULL;
	*cgroup_paths = NULL;
	shim_cgroup_layout_t l;
	km_err_t *derr = NULL;
	if (shim_cgroup_detect(NULL, &l, &derr) < 0) {
		km_err_free(&derr);
		shim_cgroup_layout_free(&l);
		return 0;
	}
	shim_cgroup_paths_t p = { { 0 } };
	km_autofree char *self = shim_cgroup_read_self(NULL, err);
	*cgroup_path = self ? shim_cgroup_path_for(cfg, id) : NULL;
	int rc = -1;
	if (self && !*cgroup_path)
		km_err_set(err, ENOMEM, "cgroups");
	else if (*cgroup_path && shim_cgroup_resolve(&l, *cgroup_path, self, &p, err) == 0) {
		*cgroup_paths = shim_cgroup_paths_to_record(&p);
		rc = *cgroup_paths ? 0 : km_err_set(err, ENOMEM, "cgroups");
	}
	shim_cgroup_paths_free(&p);
	shim_cgroup_layout_free(&l);
	if (rc < 0) {
		free(*cgroup_path);
		*cgroup_path = NULL;
	}
	return rc;
}
