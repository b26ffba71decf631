/*
 * shim_container_check (shim_container.h): everything a well-formed config asks that km-shim
 * cannot honour on this host, refused before anything is created, each error naming the JSON
 * path. What is checked here is what would otherwise fail half-way through a create (or,
 * worse, be silently ignored): LSM labels, namespace kinds and combinations, seccomp NOTIFY,
 * mount types and options, cgroup controllers, sysctls, rootless without a user namespace.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "shim_cgroup.h"
#include "shim_container.h"
#include "shim_mounts.h"
#include "shim_process.h"

static int check_process(const oci_config_t *cfg, km_err_t **err)
{
	const oci_process_t *p = cfg->process;
	if (!p)
		return km_err_set(err, 0, "config.json: process: required to create a container");
	if (p->apparmor_profile && *p->apparmor_profile)
		return km_err_set(err, 0, "config.json: process.apparmorProfile: \"%s\": AppArmor is not supported by km-shim",
				  p->apparmor_profile);
	if (p->selinux_label && *p->selinux_label)
		return km_err_set(err, 0, "config.json: process.selinuxLabel: \"%s\": SELinux is not supported by km-shim",
				  p->selinux_label);
	if (p->has_scheduler || p->has_io_priority)
		return km_err_set(err, 0, "config.json: process.%s: not supported by km-shim",
				  p->has_scheduler ? "scheduler" : "ioPriority");
	return 0;
}

/* A namespace km-shim creates belongs to km-shim's user namespace, not to one joined by path: the
 * joined user would then not own them (no CAP_SYS_ADMIN over the mount namespace...). Doing it
 * right needs the setns before the unshare of the rest, which clone's one-step creation does not
 * allow; refused until then. */
static int check_userns_join(const oci_linux_t *lx, km_err_t **err)
{
	size_t user_at = 0;
	const char *user_path = NULL;
	for (size_t i = 0; i < lx->n_namespaces; i++)
		if (lx->namespaces[i].type == OCI_NS_USER && lx->namespaces[i].path) {
			user_at = i;
			user_path = lx->namespaces[i].path;
		}
	for (size_t i = 0; user_path && i < lx->n_namespaces; i++)
		if (!lx->namespaces[i].path)
			return km_err_set(err, 0,
					  "config.json: linux.namespaces[%zu]: joining a user namespace (path %s) while creating "
					  "a %s namespace (linux.namespaces[%zu]): not supported by km-shim (the new namespace "
					  "would not belong to the joined user namespace)",
					  user_at, user_path, oci_ns_type_name(lx->namespaces[i].type), i);
	return 0;
}

static int check_namespaces(const oci_config_t *cfg, km_err_t **err)
{
	const oci_linux_t *lx = cfg->linux_;
	bool have[OCI_NS_COUNT] = { false };
	for (size_t i = 0; lx && i < lx->n_namespaces; i++) {
		const oci_namespace_t *ns = &lx->namespaces[i];
		have[ns->type] = true;
		if (ns->type == OCI_NS_TIME)
			return km_err_set(err, 0, "config.json: linux.namespaces[%zu]: type \"time\": not supported by km-shim", i);
		if (ns->type == OCI_NS_PID && ns->path)
			return km_err_set(err, 0,
					  "config.json: linux.namespaces[%zu]: joining a pid namespace (path %s): not supported by "
					  "km-shim (km runs as pid 1 of its own pid namespace or in km-shim's)",
					  i, ns->path);
	}
	if (!have[OCI_NS_MOUNT])
		return km_err_set(err, 0, "config.json: linux.namespaces: km-shim needs a mount namespace (type \"mount\")");
	if (check_userns_join(lx, err) < 0)
		return -1;
	bool new_user = have[OCI_NS_USER] && !oci_config_namespace(cfg, OCI_NS_USER)->path;
	if (new_user && (!lx->n_uid_mappings || !lx->n_gid_mappings))
		return km_err_set(err, 0, "config.json: linux.uidMappings/gidMappings: a new user namespace needs both");
	if (!have[OCI_NS_USER] && lx && (lx->n_uid_mappings || lx->n_gid_mappings))
		return km_err_set(err, 0, "config.json: linux.uidMappings: mappings without a user namespace");
	if (geteuid() != 0 && !have[OCI_NS_USER])
		return km_err_set(err, 0, "config.json: linux.namespaces: km-shim runs as uid %u: a rootless container needs a user namespace",
				  (unsigned)geteuid());
	if ((cfg->hostname || cfg->domainname) && !have[OCI_NS_UTS])
		return km_err_set(err, 0, "config.json: %s: needs a uts namespace (the host's name would change)",
				  cfg->hostname ? "hostname" : "domainname");
	return 0;
}

static const char *action_refusal(oci_seccomp_action_t a)
{
	return a == OCI_SCMP_ACT_NOTIFY ? "SCMP_ACT_NOTIFY: not supported by km-shim (no seccomp agent)" : NULL;
}

static int check_seccomp(const oci_config_t *cfg, km_err_t **err)
{
	const oci_seccomp_t *s = cfg->linux_ ? cfg->linux_->seccomp : NULL;
	if (!s)
		return 0;
	if (action_refusal(s->default_action))
		return km_err_set(err, 0, "config.json: linux.seccomp.defaultAction: %s", action_refusal(s->default_action));
	for (size_t i = 0; i < s->n_rules; i++)
		if (action_refusal(s->rules[i].action))
			return km_err_set(err, 0, "config.json: linux.seccomp.syscalls[%zu].action: %s", i,
					  action_refusal(s->rules[i].action));
	return 0;
}

/* Options the runtime-spec gives a meaning km-shim does not implement (recursive mount_setattr
 * attributes, idmapped mounts, symlink following, tmpfs copy-up). Unrefused they would land in
 * the mount data, which a bind mount drops: "rro" would leave submounts writable, "idmap" would
 * show the host's ids, with no word said. */
static const char *const unsupported_options[] = {
	"rro", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec", "rnoatime", "ratime", "rnodiratime",
	"rdiratime", "rrelatime", "rnorelatime", "rstrictatime", "rnostrictatime", "rnosymfollow", "rsymfollow",
	"nosymfollow", "symfollow", "idmap", "ridmap", "tmpcopyup",
};

static int check_mount_options(const oci_mount_t *m, size_t i, km_err_t **err)
{
	for (size_t j = 0; m->options && m->options[j]; j++)
		for (size_t k = 0; k < sizeof(unsupported_options) / sizeof(unsupported_options[0]); k++)
			if (!strcmp(m->options[j], unsupported_options[k]))
				return km_err_set(err, 0, "config.json: mounts[%zu].options[%zu]: \"%s\": not supported by km-shim",
						  i, j, m->options[j]);
	return 0;
}

static int check_mounts(const oci_config_t *cfg, km_err_t **err)
{
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const oci_mount_t *m = &cfg->mounts[i];
		if (!shim_mount_type_supported(m->type))
			return km_err_set(err, 0, "config.json: mounts[%zu].type: \"%s\": not supported by km-shim", i, m->type);
		if (check_mount_options(m, i, err) < 0)
			return -1;
		if (m->has_id_mappings)
			return km_err_set(err, 0, "config.json: mounts[%zu].uidMappings/gidMappings: not supported by km-shim", i);
	}
	const oci_linux_t *lx = cfg->linux_;
	unsigned long prop;
	if (lx && shim_mount_root_propagation(lx->rootfs_propagation, &prop, err) < 0)
		return km_err_wrap(err, "config.json");
	if (lx && lx->mount_label && *lx->mount_label)
		return km_err_set(err, 0, "config.json: linux.mountLabel: \"%s\": SELinux is not supported by km-shim",
				  lx->mount_label);
	return 0;
}

/* Settings the spec says a runtime must apply, which km-shim does not implement: refused rather
 * than ignored. runc errors on these too when it cannot apply them (unified on cgroup v1, a
 * missing resctrl, blkio/hugetlb/net_cls/rdma without the controller). */
static const char *unsupported_setting(const oci_config_t *cfg)
{
	const oci_linux_t *lx = cfg->linux_;
	const oci_resources_t *r = lx ? lx->resources : NULL;
	if (!lx)
		return NULL;
	if (lx->has_intel_rdt)
		return "linux.intelRdt";
	if (lx->has_memory_policy)
		return "linux.memoryPolicy";
	/* LINUX is every process's default domain: honoured by doing nothing. */
	if (lx->personality_domain && strcmp(lx->personality_domain, "LINUX"))
		return "linux.personality.domain";
	if (lx->has_personality_flags)
		return "linux.personality.flags";
	if (r && r->has_unified)
		return "linux.resources.unified";
	if (r && r->has_block_io)
		return "linux.resources.blockIO";
	if (r && r->has_hugepage_limits)
		return "linux.resources.hugepageLimits";
	if (r && r->has_network)
		return "linux.resources.network";
	if (r && r->has_rdma)
		return "linux.resources.rdma";
	return NULL;
}

static int check_resources(const oci_config_t *cfg, km_err_t **err)
{
	const oci_resources_t *r = cfg->linux_ ? cfg->linux_->resources : NULL;
	if (unsupported_setting(cfg))
		return km_err_set(err, 0, "config.json: %s: not supported by km-shim", unsupported_setting(cfg));
	if (!r)
		return 0;
	if (r->cpu_cpus && *r->cpu_cpus)
		return km_err_set(err, 0, "config.json: linux.resources.cpu.cpus: cpusets are not supported by km-shim");
	if (r->cpu_mems && *r->cpu_mems)
		return km_err_set(err, 0, "config.json: linux.resources.cpu.mems: cpusets are not supported by km-shim");
	bool asks = false;
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		asks |= shim_cgroup_needs(r, c) != NULL;
	if (!asks)
		return 0;
	shim_cgroup_layout_t l;
	if (shim_cgroup_detect(NULL, &l, err) < 0)
		return km_err_wrap(err, "config.json: linux.resources");
	int rc = 0;
	for (int c = 0; c < SHIM_CG_NCTRL && !rc; c++)
		if (shim_cgroup_needs(r, c) && !l.dir[c])
			rc = km_err_set(err, 0, "config.json: %s: the %s cgroup controller is not available on this host",
					shim_cgroup_needs(r, c), shim_cg_ctrl_name(c));
	shim_cgroup_layout_free(&l);
	return rc;
}

static int check_sysctl(const oci_config_t *cfg, km_err_t **err)
{
	for (size_t i = 0; cfg->linux_ && i < cfg->linux_->n_sysctl; i++) {
		const char *why = shim_sysctl_refusal(cfg, cfg->linux_->sysctl[i].key);
		if (why)
			return km_err_set(err, 0, "config.json: linux.sysctl: \"%s\": %s", cfg->linux_->sysctl[i].key, why);
	}
	return 0;
}

int shim_container_check(const oci_config_t *cfg, km_err_t **err)
{
	if (check_process(cfg, err) < 0 || check_namespaces(cfg, err) < 0 || check_seccomp(cfg, err) < 0 ||
	    check_mounts(cfg, err) < 0 || check_resources(cfg, err) < 0 || check_sysctl(cfg, err) < 0)
		return -1;
	return 0;
}
