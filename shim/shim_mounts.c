/* The container's mounts, devices and root: see shim_mounts.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "shim_mounts.h"
#include "shim_path.h"

typedef struct opt_flag {
	const char *name;
	bool clear; /* the option clears `flag` */
	unsigned long flag;
} opt_flag_t;

static const opt_flag_t opt_flags[] = {
	{ "defaults", false, 0 },
	{ "ro", false, MS_RDONLY },		{ "rw", true, MS_RDONLY },
	{ "nosuid", false, MS_NOSUID },		{ "suid", true, MS_NOSUID },
	{ "nodev", false, MS_NODEV },		{ "dev", true, MS_NODEV },
	{ "noexec", false, MS_NOEXEC },		{ "exec", true, MS_NOEXEC },
	{ "sync", false, MS_SYNCHRONOUS },	{ "async", true, MS_SYNCHRONOUS },
	{ "dirsync", false, MS_DIRSYNC },	{ "remount", false, MS_REMOUNT },
	{ "mand", false, MS_MANDLOCK },		{ "nomand", true, MS_MANDLOCK },
	{ "noatime", false, MS_NOATIME },	{ "atime", true, MS_NOATIME },
	{ "nodiratime", false, MS_NODIRATIME }, { "diratime", true, MS_NODIRATIME },
	{ "relatime", false, MS_RELATIME },	{ "norelatime", true, MS_RELATIME },
	{ "strictatime", false, MS_STRICTATIME }, { "nostrictatime", true, MS_STRICTATIME },
	{ "silent", false, MS_SILENT },		{ "loud", true, MS_SILENT },
	{ "bind", false, MS_BIND },		{ "rbind", false, MS_BIND | MS_REC },
};

static const opt_flag_t opt_props[] = {
	{ "private", false, MS_PRIVATE },	  { "rprivate", false, MS_PRIVATE | MS_REC },
	{ "shared", false, MS_SHARED },		  { "rshared", false, MS_SHARED | MS_REC },
	{ "slave", false, MS_SLAVE },		  { "rslave", false, MS_SLAVE | MS_REC },
	{ "unbindable", false, MS_UNBINDABLE }, { "runbindable", false, MS_UNBINDABLE | MS_REC },
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static int data_append(char **data, const char *opt)
{
	size_t old = *data ? strlen(*data) : 0, n = strlen(opt);
	char *d = realloc(*data, old + n + 2);
	if (!d)
		return -1;
	if (old)
		d[old++] = ',';
	memcpy(d + old, opt, n + 1);
	*data = d;
	return 0;
}

int shim_mount_parse_options(char *const *options, shim_mount_opts_t *o, km_err_t **err)
{
	memset(o, 0, sizeof(*o));
	for (size_t i = 0; options && options[i]; i++) {
		const char *opt = options[i];
		bool done = false;
		for (size_t k = 0; k < N_OF(opt_flags) && !done; k++)
			if (!strcmp(opt, opt_flags[k].name)) {
				if (opt_flags[k].clear)
					o->flags &= ~opt_flags[k].flag;
				else
					o->flags |= opt_flags[k].flag;
				done = true;
			}
		for (size_t k = 0; k < N_OF(opt_props) && !done; k++)
			if (!strcmp(opt, opt_props[k].name)) {
				o->propagation = opt_props[k].flag;
				done = true;
			}
		if (!done && data_append(&o->data, opt) < 0) {
			free(o->data);
			o->data = NULL;
			return km_err_set(err, ENOMEM, "mount options");
		}
	}
	return 0;
}

int shim_mount_root_propagation(const char *value, unsigned long *flags, km_err_t **err)
{
	*flags = MS_REC | MS_PRIVATE;
	if (!value || !*value)
		return 0;
	for (size_t k = 0; k < N_OF(opt_props); k++)
		if (!strcmp(value, opt_props[k].name)) {
			*flags = opt_props[k].flag;
			return 0;
		}
	return km_err_set(err, 0, "linux.rootfsPropagation: \"%s\" is not a mount propagation", value);
}

static const char *const fs_types[] = { "proc", "sysfs", "tmpfs", "devpts", "mqueue", "cgroup", "cgroup2", "bind" };

bool shim_mount_type_supported(const char *type)
{
	if (!type)
		return true;
	for (size_t k = 0; k < N_OF(fs_types); k++)
		if (!strcmp(type, fs_types[k]))
			return true;
	return false;
}

/* The flags a remount must keep: in a user namespace the kernel refuses to drop locked ones. */
static unsigned long locked_flags(const char *path)
{
	struct statvfs sv;
	unsigned long f = 0;
	if (statvfs(path, &sv) < 0)
		return 0;
	if (sv.f_flag & ST_NOSUID)
		f |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV)
		f |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC)
		f |= MS_NOEXEC;
	return f;
}

static bool is_bind(const oci_mount_t *m, const shim_mount_opts_t *o)
{
	return (m->type && !strcmp(m->type, "bind")) || (o->flags & MS_BIND);
}

/* Opens a bind source: relative ones inside the bundle (no symlink escape), absolute ones as
 * the host path they name. */
static int open_source(const shim_mount_ctx_t *ctx, const char *src, km_err_t **err)
{
	if (src[0] == '/') {
		int fd = open(src, O_PATH | O_CLOEXEC);
		return fd < 0 ? km_err_set(err, errno, "source %s", src) : fd;
	}
	int bfd = open(ctx->bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (bfd < 0)
		return km_err_set(err, errno, "bundle %s", ctx->bundle);
	int fd = shim_path_open(bfd, src, SHIM_PATH_NOCREATE, err);
	close(bfd);
	return fd < 0 ? km_err_wrap(err, "source (in the bundle)") : fd;
}

/* Mounts on the destination again after the first mount: the fd we hold is the covered dir,
 * so the new mount is reached by resolving the path once more. */
static int remount_dest(int rootfd, const char *dest, unsigned long flags, unsigned long prop, km_err_t **err)
{
	int fd = shim_path_open(rootfd, dest, SHIM_PATH_NOCREATE, err);
	if (fd < 0)
		return -1;
	char name[32];
	shim_path_fdname(fd, name);
	int rc = 0;
	if (flags && mount(NULL, name, NULL, flags | MS_REMOUNT | MS_BIND | locked_flags(name), NULL) < 0)
		rc = km_err_set(err, errno, "remounting with its flags");
	if (!rc && prop && mount(NULL, name, NULL, prop, NULL) < 0)
		rc = km_err_set(err, errno, "setting its propagation");
	close(fd);
	return rc;
}

static int bind_mount(const shim_mount_ctx_t *ctx, int rootfd, const char *src, const char *dest,
		      const shim_mount_opts_t *o, km_err_t **err)
{
	int sfd = open_source(ctx, src, err);
	if (sfd < 0)
		return -1;
	struct stat st;
	if (fstat(sfd, &st) < 0) {
		close(sfd);
		return km_err_set(err, errno, "source %s", src);
	}
	int dfd = shim_path_open(rootfd, dest, S_ISDIR(st.st_mode) ? SHIM_PATH_MKDIR : SHIM_PATH_MKFILE, err);
	if (dfd < 0) {
		close(sfd);
		return km_err_wrap(err, "destination");
	}
	char sname[32], dname[32];
	shim_path_fdname(sfd, sname);
	shim_path_fdname(dfd, dname);
	int rc = mount(sname, dname, NULL, MS_BIND | (o->flags & MS_REC), NULL);
	int e = errno;
	close(sfd);
	close(dfd);
	if (rc < 0)
		return km_err_set(err, e, "bind");
	unsigned long extra = o->flags & ~(MS_BIND | MS_REC | MS_REMOUNT);
	return remount_dest(rootfd, dest, extra, o->propagation, err);
}

static int fs_mount(int rootfd, const char *type, const char *src, const char *dest, const shim_mount_opts_t *o,
		    km_err_t **err)
{
	int dfd = shim_path_open(rootfd, dest, SHIM_PATH_MKDIR, err);
	if (dfd < 0)
		return km_err_wrap(err, "destination");
	char dname[32];
	shim_path_fdname(dfd, dname);
	int rc = mount(src ? src : type, dname, type, o->flags & ~(MS_BIND | MS_REC), o->data);
	int e = errno;
	close(dfd);
	if (rc < 0)
		return km_err_set(err, e, "mount");
	return o->propagation ? remount_dest(rootfd, dest, 0, o->propagation, err) : 0;
}

/* "cgroup": the container's own cgroups, read-only (a tmpfs with one bind per v1 controller, or
 * the v2 directory itself): the container sees its limits, never the host's tree. */
static int cgroup_mount(const shim_mount_ctx_t *ctx, int rootfd, const char *dest, const shim_mount_opts_t *o,
			km_err_t **err)
{
	if (!ctx->cg || !ctx->cgroup_paths)
		return km_err_set(err, 0, "no cgroup was made for the container");
	shim_mount_opts_t ro = { .flags = MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | (o->flags & ~(MS_BIND | MS_REC)) };
	if (ctx->cg->v2) {
		char *d = shim_cgroup_dir(ctx->cg, SHIM_CG_CPUACCT, ctx->cgroup_paths);
		int rc = d ? bind_mount(ctx, rootfd, d, dest, &ro, err) : km_err_set(err, ENOMEM, "cgroup");
		free(d);
		return rc;
	}
	shim_mount_opts_t t = { .flags = MS_NOSUID | MS_NODEV | MS_NOEXEC, .data = (char *)"mode=755" };
	if (fs_mount(rootfd, "tmpfs", "cgroup", dest, &t, err) < 0)
		return -1;
	for (int c = 0; c < SHIM_CG_NCTRL; c++) {
		char *d = shim_cgroup_dir(ctx->cg, c, ctx->cgroup_paths), *sub = NULL;
		if (!d)
			continue;
		int rc = asprintf(&sub, "%s/%s", dest, shim_cg_ctrl_name(c)) < 0 ? km_err_set(err, ENOMEM, "cgroup")
										 : bind_mount(ctx, rootfd, d, sub, &ro, err);
		free(d);
		free(sub);
		if (rc < 0)
			return -1;
	}
	/* The tmpfs itself goes read-only last, once its mount points exist. */
	return remount_dest(rootfd, dest, MS_RDONLY, 0, err);
}

static int one_mount(const shim_mount_ctx_t *ctx, int rootfd, const oci_mount_t *m, km_err_t **err)
{
	shim_mount_opts_t o;
	if (shim_mount_parse_options(m->options, &o, err) < 0)
		return -1;
	int rc;
	if (is_bind(m, &o)) {
		rc = m->source ? bind_mount(ctx, rootfd, m->source, m->destination, &o, err)
			       : km_err_set(err, 0, "a bind mount needs a source");
	} else if (!m->type) {
		rc = km_err_set(err, 0, "no type and not a bind mount");
	} else if (!strcmp(m->type, "cgroup") || !strcmp(m->type, "cgroup2")) {
		rc = cgroup_mount(ctx, rootfd, m->destination, &o, err);
	} else if (!shim_mount_type_supported(m->type)) {
		rc = km_err_set(err, 0, "type \"%s\": not supported by km-shim", m->type);
	} else {
		rc = fs_mount(rootfd, m->type, m->source, m->destination, &o, err);
		/* A new user namespace without its own network namespace may not mount sysfs: bind the
		 * host's, read-only, as runc does. */
		if (rc < 0 && ctx->userns && !strcmp(m->type, "sysfs") && (*err)->errnum == EPERM) {
			km_err_free(err);
			shim_mount_opts_t b = { .flags = MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC };
			rc = bind_mount(ctx, rootfd, "/sys", m->destination, &b, err);
		}
	}
	free(o.data);
	return rc;
}

typedef struct dev_default {
	const char *name;
	unsigned major, minor;
} dev_default_t;

static const dev_default_t default_devices[] = {
	{ "null", 1, 3 }, { "zero", 1, 5 }, { "full", 1, 7 }, { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 },
};

/* One device node at `path` in the rootfs: mknod, or in a user namespace (no CAP_MKNOD that
 * counts) a bind of the host's node at `host`. */
static int make_device(const shim_mount_ctx_t *ctx, int rootfd, const char *path, const char *host, mode_t type,
		       unsigned major, unsigned minor, mode_t mode, int uid, int gid, km_err_t **err)
{
	const char *base;
	int dfd = shim_path_open_parent(rootfd, path, true, &base, err);
	if (dfd < 0)
		return -1;
	/* O_PATH fds do not take *at() creation calls: open the directory for real. */
	char dname[32];
	shim_path_fdname(dfd, dname);
	int dir = open(dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dfd);
	if (dir < 0)
		return km_err_set(err, errno, "%s: parent directory", path);
	int rc = 0;
	unlinkat(dir, base, 0);
	if (ctx->userns && type != S_IFIFO) {
		int f = openat(dir, base, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (f < 0) {
			rc = km_err_set(err, errno, "%s: making the mount point", path);
		} else {
			char fname[32];
			shim_path_fdname(f, fname);
			if (mount(host, fname, NULL, MS_BIND, NULL) < 0)
				rc = km_err_set(err, errno, "%s: binding the host's %s", path, host);
			close(f);
		}
	} else {
		mode_t old = umask(0);
		if (mknodat(dir, base, type | (mode & 07777), makedev(major, minor)) < 0)
			rc = km_err_set(err, errno, "%s: mknod", path);
		umask(old);
		if (!rc && (uid >= 0 || gid >= 0) && fchownat(dir, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
			rc = km_err_set(err, errno, "%s: chown", path);
	}
	close(dir);
	return rc;
}

static bool dev_is_bound(const oci_config_t *cfg)
{
	for (size_t i = 0; i < cfg->n_mounts; i++) {
		const oci_mount_t *m = &cfg->mounts[i];
		if (!strcmp(m->destination, "/dev") && (!m->type || !strcmp(m->type, "bind")))
			return true;
	}
	return false;
}

/* The spec: a file already at a linux.devices path that is not the requested device is an error
 * (an image's file must not be silently replaced); the same node is fine and made again. */
static int device_conflict(int rootfd, const oci_device_t *d, mode_t type, km_err_t **err)
{
	const char *base;
	struct stat st;
	int dfd = shim_path_open_parent(rootfd, d->path, false, &base, err);
	if (dfd < 0) {
		km_err_free(err); /* no parent yet: nothing is there */
		return 0;
	}
	int r = fstatat(dfd, base, &st, AT_SYMLINK_NOFOLLOW);
	close(dfd);
	if (r < 0)
		return 0;
	bool same = (st.st_mode & S_IFMT) == type &&
		    (type == S_IFIFO || (major(st.st_rdev) == (unsigned)d->major && minor(st.st_rdev) == (unsigned)d->minor));
	return same ? 0 : km_err_set(err, 0, "%s: exists in the rootfs and is not the requested device", d->path);
}

static int devices(const shim_mount_ctx_t *ctx, int rootfd, km_err_t **err)
{
	const oci_linux_t *lx = ctx->cfg->linux_;
	if (!dev_is_bound(ctx->cfg)) {
		for (size_t i = 0; i < N_OF(default_devices); i++) {
			const dev_default_t *d = &default_devices[i];
			char path[32], host[32];
			snprintf(path, sizeof(path), "/dev/%s", d->name);
			snprintf(host, sizeof(host), "/dev/%s", d->name);
			if (make_device(ctx, rootfd, path, host, S_IFCHR, d->major, d->minor, 0666, -1, -1, err) < 0)
				return km_err_wrap(err, "default device");
		}
	}
	for (size_t i = 0; lx && i < lx->n_devices; i++) {
		const oci_device_t *d = &lx->devices[i];
		mode_t type = d->type == 'b' ? S_IFBLK : d->type == 'p' ? S_IFIFO : S_IFCHR;
		if (device_conflict(rootfd, d, type, err) < 0 || make_device(ctx, rootfd, d->path, d->path, type, d->major < 0 ? 0 : (unsigned)d->major,
				d->minor < 0 ? 0 : (unsigned)d->minor, d->has_file_mode ? d->file_mode : 0666,
				d->has_uid ? (int)d->uid : -1, d->has_gid ? (int)d->gid : -1, err) < 0)
			return km_err_wrap(err, "linux.devices[%zu]", i);
	}
	return 0;
}

/* /dev/fd, stdin, stdout, stderr and ptmx, as every Linux program expects them. An existing
 * entry is left alone (the image or a mount provided it). */
static int dev_symlinks(int rootfd, km_err_t **err)
{
	static const char *const links[][2] = {
		{ "fd", "/proc/self/fd" },	    { "stdin", "/proc/self/fd/0" }, { "stdout", "/proc/self/fd/1" },
		{ "stderr", "/proc/self/fd/2" }, { "ptmx", "pts/ptmx" },
	};
	int dfd = shim_path_open(rootfd, "/dev", SHIM_PATH_MKDIR, err);
	if (dfd < 0)
		return km_err_wrap(err, "/dev");
	char dname[32];
	shim_path_fdname(dfd, dname);
	int dir = open(dname, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(dfd);
	if (dir < 0)
		return km_err_set(err, errno, "/dev");
	int rc = 0;
	for (size_t i = 0; i < N_OF(links) && !rc; i++) {
		if (!strcmp(links[i][0], "ptmx"))
			unlinkat(dir, "ptmx", 0); /* a node here would bypass the container's devpts */
		if (symlinkat(links[i][1], dir, links[i][0]) < 0 && errno != EEXIST)
			rc = km_err_set(err, errno, "/dev/%s", links[i][0]);
	}
	close(dir);
	return rc;
}

void shim_mountinfo_unescape(char *s)
{
	char *w = s;
	for (const char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' && r[3] >= '0' &&
		    r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 | (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

/* The mount point /proc/self/mountinfo lists that holds `path` (the longest one that is a
 * prefix of it at a '/' boundary), malloc'd, or NULL; *shared: whether it is shared. */
static char *parent_mount_of(const char *path, bool *shared)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return NULL;
	char *line = NULL, *best = NULL;
	size_t cap = 0, best_len = 0;
	while (getline(&line, &cap, f) > 0) {
		char mp[PATH_MAX];
		/* id parent major:minor root mount-point ...; the kernel writes space, tab, newline
		 * and backslash in the mount point as octal escapes (\040) */
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) != 1)
			continue;
		shim_mountinfo_unescape(mp);
		size_t n = strlen(mp);
		bool under = !strcmp(mp, "/") || (!strncmp(path, mp, n) && (path[n] == '/' || path[n] == '\0'));
		if (under && (n >= best_len || !best)) {
			free(best);
			best = strdup(mp);
			best_len = n;
			char *end = strstr(line, " - ");
			char *tag = strstr(line, " shared:");
			*shared = tag && (!end || tag < end);
		}
	}
	free(line);
	fclose(f);
	return best;
}

/* Before pivot_root nothing may be shared: a shared / would leak the container's mounts to the
 * host, and pivot_root refuses a new root whose parent mount is shared. So / becomes rslave (or
 * the configured private kind) and the rootfs's parent mount, if still shared, private, as runc
 * does; a "shared"
 * rootfsPropagation is applied after the pivot (shim_mounts_pivot). */
static int propagation_before_pivot(const shim_mount_ctx_t *ctx, km_err_t **err)
{
	unsigned long prop;
	if (shim_mount_root_propagation(ctx->cfg->linux_ ? ctx->cfg->linux_->rootfs_propagation : NULL, &prop, err) < 0)
		return -1;
	/* shared or unbindable (the rootfs could not be bound onto itself) wait for the pivot */
	prop = (prop & MS_PRIVATE) ? MS_PRIVATE | MS_REC : MS_SLAVE | MS_REC;
	if (mount(NULL, "/", NULL, prop, NULL) < 0)
		return km_err_set(err, errno, "making / %s", prop & MS_SLAVE ? "rslave" : "rprivate");
	bool shared = false;
	km_autofree char *parent = parent_mount_of(ctx->rootfs, &shared);
	if (parent && shared && mount(NULL, parent, NULL, MS_PRIVATE, NULL) < 0)
		return km_err_set(err, errno, "making %s (the rootfs's parent mount) private", parent);
	return 0;
}

int shim_mounts_prepare(const shim_mount_ctx_t *ctx, km_err_t **err)
{
	if (propagation_before_pivot(ctx, err) < 0)
		return -1;
	/* pivot_root needs the new root to be a mount point. */
	if (mount(ctx->rootfs, ctx->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
		return km_err_set(err, errno, "binding the rootfs %s onto itself", ctx->rootfs);
	int rootfd = open(ctx->rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0)
		return km_err_set(err, errno, "rootfs %s", ctx->rootfs);
	for (size_t i = 0; i < ctx->cfg->n_mounts; i++) {
		const oci_mount_t *m = &ctx->cfg->mounts[i];
		if (one_mount(ctx, rootfd, m, err) < 0) {
			close(rootfd);
			return km_err_wrap(err, "mounts[%zu] (%s on %s)", i, m->type ? m->type : "bind", m->destination);
		}
	}
	if (devices(ctx, rootfd, err) < 0 || dev_symlinks(rootfd, err) < 0) {
		close(rootfd);
		return -1;
	}
	return rootfd;
}

int shim_mounts_pivot(int rootfd, bool no_pivot, const char *propagation, km_err_t **err)
{
	if (fchdir(rootfd) < 0)
		return km_err_set(err, errno, "entering the rootfs");
	if (no_pivot) {
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			return km_err_set(err, errno, "moving the rootfs to / (--no-pivot)");
		if (chroot(".") < 0)
			return km_err_set(err, errno, "chroot into the rootfs (--no-pivot)");
	} else {
		/* pivot_root(".", "."): the old root ends up stacked under the new one, reachable as
		 * "." until it is detached; no directory in the rootfs is needed for it. */
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			return km_err_set(err, errno, "pivot_root");
		/* Unmounting must not propagate to the host's mounts. */
		if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
			return km_err_set(err, errno, "making the old root a slave");
		if (umount2(".", MNT_DETACH) < 0)
			return km_err_set(err, errno, "detaching the old root");
	}
	if (chdir("/") < 0)
		return km_err_set(err, errno, "chdir /");
	unsigned long prop;
	if (shim_mount_root_propagation(propagation, &prop, err) < 0)
		return -1;
	if (propagation && *propagation && mount(NULL, "/", NULL, prop, NULL) < 0)
		return km_err_set(err, errno, "linux.rootfsPropagation: making / %s", propagation);
	return 0;
}

static int mask_path(const char *p, km_err_t **err)
{
	struct stat st;
	if (lstat(p, &st) < 0)
		return errno == ENOENT ? 0 : km_err_set(err, errno, "%s", p);
	if (S_ISDIR(st.st_mode)) {
		if (mount("tmpfs", p, "tmpfs", MS_RDONLY, NULL) < 0)
			return km_err_set(err, errno, "%s: read-only tmpfs over it", p);
	} else if (mount("/dev/null", p, NULL, MS_BIND, NULL) < 0) {
		return km_err_set(err, errno, "%s: binding /dev/null over it", p);
	}
	return 0;
}

static int readonly_path(const char *p, km_err_t **err)
{
	if (mount(p, p, NULL, MS_BIND | MS_REC, NULL) < 0)
		return errno == ENOENT ? 0 : km_err_set(err, errno, "%s: bind", p);
	if (mount(NULL, p, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC | locked_flags(p), NULL) < 0)
		return km_err_set(err, errno, "%s: remount read-only", p);
	return 0;
}

int shim_mounts_finish(const oci_config_t *cfg, km_err_t **err)
{
	const oci_linux_t *lx = cfg->linux_;
	for (size_t i = 0; lx && lx->readonly_paths && lx->readonly_paths[i]; i++)
		if (readonly_path(lx->readonly_paths[i], err) < 0)
			return km_err_wrap(err, "linux.readonlyPaths[%zu]", i);
	for (size_t i = 0; lx && lx->masked_paths && lx->masked_paths[i]; i++)
		if (mask_path(lx->masked_paths[i], err) < 0)
			return km_err_wrap(err, "linux.maskedPaths[%zu]", i);
	if (cfg->root_readonly && mount(NULL, "/", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | locked_flags("/"), NULL) < 0)
		return km_err_set(err, errno, "root.readonly: remounting / read-only");
	return 0;
}
