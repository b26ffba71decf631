/*
 * Unit tests of the container around km (shim/shim_container.c and its parts). Runs as root.
 *
 * The spawn tests call shim_container_spawn with km_exe_fd on build/tests/tools/ctr-probe (or
 * $TOOLS/ctr-probe), a static program that ignores km's flags and writes what it sees inside the
 * container into /probe.txt of the rootfs; the test reads that file from the host. The other
 * tests exercise the pieces on their own: mount option parsing, the capability table, cgroup
 * layout detection on fake trees, resolution of paths inside a rootfs, the config checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci_config.h"
#include "oci_json.h"
#include "shim_cgroup.h"
#include "shim_container.h"
#include "shim_hooks.h"
#include "shim_mounts.h"
#include "shim_path.h"
#include "shim_process.h"

static char *tmpdir(void)
{
	char *d = strdup("/tmp/shimctr-test-XXXXXX");
	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_rf(const char *d)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d);
	assert_int_equal(system(cmd), 0);
}

static void put(const char *dir, const char *file, const char *text)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, file);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void mkdir_in(const char *dir, const char *sub)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	assert_int_equal(mkdir(p, 0755), 0);
}

/* A fake mounted hierarchy under `dir` for each of the `n` names: a directory with a cgroup.procs. */
static void fake_hierarchies(const char *dir, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		mkdir_in(dir, names[i]);
		char f[64];
		snprintf(f, sizeof(f), "%s/cgroup.procs", names[i]);
		put(dir, f, "");
	}
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *buf = calloc(1, 1 << 20);
	size_t n = fread(buf, 1, (1 << 20) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* ---- mount options ---- */

static void test_mount_options(void **state)
{
	(void)state;
	char *opts[] = { "nosuid", "noexec", "nodev", "ro", "relatime", "mode=755", "size=65536k", "rslave", NULL };
	shim_mount_opts_t o;
	km_err_t *err = NULL;
	assert_int_equal(shim_mount_parse_options(opts, &o, &err), 0);
	assert_int_equal(o.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY | MS_RELATIME);
	assert_int_equal(o.propagation, MS_SLAVE | MS_REC);
	assert_string_equal(o.data, "mode=755,size=65536k");
	free(o.data);

	char *neg[] = { "ro", "rw", "nosuid", "suid", "rbind", NULL };
	assert_int_equal(shim_mount_parse_options(neg, &o, &err), 0);
	assert_int_equal(o.flags, MS_BIND | MS_REC);
	assert_null(o.data);

	unsigned long prop;
	assert_int_equal(shim_mount_root_propagation(NULL, &prop, &err), 0);
	assert_int_equal(prop, MS_REC | MS_PRIVATE);
	assert_int_equal(shim_mount_root_propagation("shared", &prop, &err), 0);
	assert_int_equal(prop, MS_SHARED);
	assert_int_equal(shim_mount_root_propagation("sideways", &prop, &err), -1);
	assert_non_null(strstr(err->msg, "linux.rootfsPropagation"));
	km_err_free(&err);

	assert_true(shim_mount_type_supported("devpts"));
	assert_true(shim_mount_type_supported(NULL));
	assert_false(shim_mount_type_supported("overlay"));
}

/* ---- capabilities ---- */

static void test_mountinfo_unescape(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
		{"/tmp/with\\040space/b", "/tmp/with space/b"}, {"/a\\011t\\012n\\134b", "/a\tt\nn\\b"},
		{"/plain", "/plain"}, {"/end\\", "/end\\"}, {"/short\\04", "/short\\04"}, {"/not\\08x", "/not\\08x"},
		{"/big\\477", "/big\\477"}, {"\\040\\040", "  "}, {"", ""},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[64];
		strcpy(buf, cases[i][0]);
		shim_mountinfo_unescape(buf);
		assert_string_equal(buf, cases[i][1]);
	}
}

static void test_cap_table(void **state)
{
	(void)state;
	assert_int_equal(oci_cap_number("CAP_CHOWN"), 0);
	assert_int_equal(oci_cap_number("CAP_SYS_ADMIN"), 21);
	assert_int_equal(oci_cap_number("CAP_SYS_RESOURCE"), 24);
	assert_int_equal(oci_cap_number("CAP_CHECKPOINT_RESTORE"), 40);
	assert_int_equal(oci_cap_number("CAP_NOPE"), -1);
	assert_string_equal(oci_cap_name(13), "CAP_NET_RAW");
	assert_null(oci_cap_name(64));
	char *names[] = { "CAP_KILL", "CAP_NET_BIND_SERVICE", NULL };
	uint64_t m;
	km_err_t *err = NULL;
	assert_int_equal(shim_caps_mask(names, "process.capabilities.bounding", &m, &err), 0);
	assert_int_equal(m, (1ULL << 5) | (1ULL << 10));
	char *bad[] = { "CAP_KILL", "CAP_FLY", NULL };
	assert_int_equal(shim_caps_mask(bad, "process.capabilities.effective", &m, &err), -1);
	assert_string_equal(err->msg, "process.capabilities.effective[1]: unknown capability \"CAP_FLY\"");
	km_err_free(&err);
	assert_true(shim_cap_last() >= 40);
}

/* ---- cgroup layout ---- */

/* `p` in every hierarchy (an absolute cgroupsPath). */
static shim_cgroup_paths_t same_paths(const char *p)
{
	shim_cgroup_paths_t r;
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		r.path[c] = strdup(p);
	return r;
}

static void test_cgroup_detect_hybrid(void **state)
{
	(void)state;
	char *d = tmpdir();
	const char *const ctrls[] = { "memory", "pids", "cpuacct", "unified", "freezer" };
	fake_hierarchies(d, ctrls, 5);
	put(d, "unified/cgroup.controllers", "");
	shim_cgroup_layout_t l;
	km_err_t *err = NULL;
	assert_int_equal(shim_cgroup_detect(d, &l, &err), 0);
	assert_false(l.v2);
	assert_non_null(l.dir[SHIM_CG_MEMORY]);
	assert_non_null(l.dir[SHIM_CG_PIDS]);
	assert_null(l.dir[SHIM_CG_CPU]); /* no cpu hierarchy in this tree */
	assert_non_null(l.dir[SHIM_CG_CPUACCT]);
	shim_cgroup_paths_t px = same_paths("/km-shim/x");
	char *m = shim_cgroup_dir(&l, SHIM_CG_MEMORY, &px);
	char want[512];
	snprintf(want, sizeof(want), "%s/memory/km-shim/x", d);
	assert_string_equal(m, want);
	free(m);

	/* A resource on the missing controller is an error naming both; others are fine. */
	oci_resources_t r = { .has_cpu_shares = true, .cpu_shares = 512 };
	assert_int_equal(shim_cgroup_create(&l, &px, &r, NULL, 0, &err), -1);
	assert_non_null(strstr(err->msg, "linux.resources.cpu.shares"));
	assert_non_null(strstr(err->msg, "cpu cgroup controller"));
	km_err_free(&err);
	shim_cgroup_paths_free(&px);
	shim_cgroup_layout_free(&l);
	rm_rf(d);
	free(d);
}

static void test_cgroup_detect_v2(void **state)
{
	(void)state;
	char *d = tmpdir();
	put(d, "cgroup.controllers", "cpuset cpu io memory pids\n");
	put(d, "cgroup.procs", "");
	shim_cgroup_layout_t l;
	km_err_t *err = NULL;
	assert_int_equal(shim_cgroup_detect(d, &l, &err), 0);
	assert_true(l.v2);
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		assert_string_equal(l.dir[c], d);
	shim_cgroup_layout_free(&l);

	put(d, "cgroup.controllers", "cpuset io memorymax\n");
	assert_int_equal(shim_cgroup_detect(d, &l, &err), 0);
	assert_null(l.dir[SHIM_CG_MEMORY]); /* "memorymax" is not "memory" */
	assert_null(l.dir[SHIM_CG_PIDS]);
	shim_cgroup_layout_free(&l);

	rm_rf(d);
	assert_int_equal(shim_cgroup_detect(d, &l, &err), -1);
	assert_non_null(strstr(err->msg, "no cgroup filesystem"));
	km_err_free(&err);
	shim_cgroup_layout_free(&l);
	free(d);
}

static void test_cgroup_conversions(void **state)
{
	(void)state;
	assert_int_equal(shim_cgroup_shares_to_weight(0), 0);
	assert_int_equal(shim_cgroup_shares_to_weight(2), 1);
	assert_int_equal(shim_cgroup_shares_to_weight(1024), 39);
	assert_int_equal(shim_cgroup_shares_to_weight(262144), 10000);
	oci_config_t cfg = { 0 };
	oci_linux_t lx = { 0 };
	cfg.linux_ = &lx;
	char *p = shim_cgroup_path_for(&cfg, "abc");
	assert_string_equal(p, "km-shim/abc"); /* relative, as runc's default */
	free(p);
	lx.cgroups_path = "machine.slice:libpod:abc";
	p = shim_cgroup_path_for(&cfg, "abc");
	assert_string_equal(p, "/machine.slice/libpod-abc.scope");
	free(p);
	static const char *const plain[][2] = {
		{"a/b", "a/b"}, {"/a/b", "/a/b"}, {"a/../../b", "b"}, {"/../x/./y/", "/x/y"},
		{"..", ""}, {"a//b/..", "a"},
	};
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		lx.cgroups_path = (char *)plain[i][0];
		p = shim_cgroup_path_for(&cfg, "abc");
		assert_string_equal(p, plain[i][1]);
		free(p);
	}
	static const char *const systemd[][2] = {
		{"system-foo.slice:crio:x", "/system.slice/system-foo.slice/crio-x.scope"},
		{"a-b-c.slice:p:n", "/a.slice/a-b.slice/a-b-c.slice/p-n.scope"},
		{"-.slice:p:n", "/p-n.scope"},
		{":p:n", "/system.slice/p-n.scope"},
		{"user.slice::n", "/user.slice/n.scope"},
		{"machine.slice:p:sub.slice", "/machine.slice/sub.slice"},
	};
	for (size_t i = 0; i < sizeof(systemd) / sizeof(systemd[0]); i++) {
		lx.cgroups_path = (char *)systemd[i][0];
		p = shim_cgroup_path_for(&cfg, "abc");
		assert_string_equal(p, systemd[i][1]);
		free(p);
	}
}

/* A relative cgroupsPath goes under km-shim's own cgroup in each hierarchy (each v1 controller
 * may have its own), an absolute one under each root; the record keeps the result. */
static void test_cgroup_resolve(void **state)
{
	(void)state;
	char *d = tmpdir();
	const char *const ctrls[] = { "memory", "pids", "cpu", "cpuacct", "devices" };
	fake_hierarchies(d, ctrls, 5);
	shim_cgroup_layout_t l;
	km_err_t *err = NULL;
	assert_int_equal(shim_cgroup_detect(d, &l, &err), 0);
	const char *self = "9:name=systemd:/ignored\n8:pids:/\n4:memory:/process_api/d70\n"
			   "2:cpu,cpuacct:/sys.slice/k\n5:devices:/dv\n0::/unified-ignored\n";
	shim_cgroup_paths_t p;
	assert_int_equal(shim_cgroup_resolve(&l, "km-shim/x", self, &p, &err), 0);
	assert_string_equal(p.path[SHIM_CG_MEMORY], "/process_api/d70/km-shim/x");
	assert_string_equal(p.path[SHIM_CG_PIDS], "/km-shim/x");
	assert_string_equal(p.path[SHIM_CG_CPU], "/sys.slice/k/km-shim/x");
	assert_string_equal(p.path[SHIM_CG_CPUACCT], "/sys.slice/k/km-shim/x");
	assert_string_equal(p.path[SHIM_CG_DEVICES], "/dv/km-shim/x");
	char *dir = shim_cgroup_dir(&l, SHIM_CG_MEMORY, &p), want[600];
	snprintf(want, sizeof(want), "%s/memory/process_api/d70/km-shim/x", d);
	assert_string_equal(dir, want);
	free(dir);

	/* the record: written and read back the same; a later km-shim needs no /proc/self/cgroup */
	char **rec = shim_cgroup_paths_to_record(&p);
	assert_non_null(rec);
	assert_string_equal(rec[0], "memory=/process_api/d70/km-shim/x");
	shim_cgroup_paths_t back;
	assert_int_equal(shim_cgroup_paths_from_record("km-shim/x", rec, &back, &err), 0);
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		assert_string_equal(back.path[c], p.path[c]);
	shim_cgroup_paths_free(&back);
	oci_strv_free(rec);
	shim_cgroup_paths_free(&p);

	/* absolute: from each root, whatever km-shim's own cgroups are */
	assert_int_equal(shim_cgroup_resolve(&l, "/a/b", self, &p, &err), 0);
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		assert_string_equal(p.path[c], "/a/b");
	shim_cgroup_paths_free(&p);
	/* under the root cgroup: no double slash */
	assert_int_equal(shim_cgroup_resolve(&l, "x", "1:memory:/\n2:pids:/\n3:cpu,cpuacct:/\n5:devices:/\n", &p, &err), 0);
	assert_string_equal(p.path[SHIM_CG_MEMORY], "/x");
	shim_cgroup_paths_free(&p);
	/* a hierarchy /proc/self/cgroup does not name */
	assert_int_equal(shim_cgroup_resolve(&l, "x", "8:pids:/\n4:memory:/m\n", &p, &err), -1);
	assert_non_null(strstr(err->msg, "no cpu cgroup"));
	km_err_free(&err);
	/* "memory" must not match "memory_x" or a prefix of another name */
	assert_int_equal(shim_cgroup_resolve(&l, "x", "1:memory_x:/no\n2:memory:/yes\n3:pids,cpu,cpuacct,devices:/\n", &p, &err), 0);
	assert_string_equal(p.path[SHIM_CG_MEMORY], "/yes/x");
	shim_cgroup_paths_free(&p);

	/* records from before cgroupPaths: the absolute path in every hierarchy; others refused */
	assert_int_equal(shim_cgroup_paths_from_record("/km-shim/old", NULL, &back, &err), 0);
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		assert_string_equal(back.path[c], "/km-shim/old");
	shim_cgroup_paths_free(&back);
	assert_int_equal(shim_cgroup_paths_from_record("km-shim/x", NULL, &back, &err), -1);
	assert_non_null(strstr(err->msg, "without cgroupPaths"));
	km_err_free(&err);
	char *bad[][2] = { { "freezer=/x", NULL }, { "memory=x", NULL }, { "memory=/a/../b", NULL }, { "memory", NULL } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(shim_cgroup_paths_from_record("x", bad[i], &back, &err), -1);
		assert_non_null(strstr(err->msg, "cgroupPaths"));
		km_err_free(&err);
	}
	shim_cgroup_layout_free(&l);

	/* pure v2: the "0::" line for every controller */
	rm_rf(d);
	assert_int_equal(mkdir(d, 0755), 0);
	put(d, "cgroup.controllers", "cpu memory pids\n");
	assert_int_equal(shim_cgroup_detect(d, &l, &err), 0);
	assert_int_equal(shim_cgroup_resolve(&l, "km-shim/x", "0::/user.slice/s\n", &p, &err), 0);
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		assert_string_equal(p.path[c], "/user.slice/s/km-shim/x");
	shim_cgroup_paths_free(&p);
	shim_cgroup_layout_free(&l);
	rm_rf(d);
	free(d);
}

/* The default parent /km-shim goes with the last container under it, not before. */
static void test_cgroup_remove_parent(void **state)
{
	(void)state;
	char *d = tmpdir(), h[4096];
	for (int i = 0; i < 2; i++) {
		snprintf(h, sizeof(h), "%s/%s", d, i ? "pids" : "memory");
		assert_int_equal(mkdir(h, 0755), 0);
	}
	put(d, "memory/cgroup.procs", "");
	put(d, "pids/cgroup.procs", "");
	shim_cgroup_layout_t l;
	km_err_t *err = NULL;
	assert_int_equal(shim_cgroup_detect(d, &l, &err), 0);
	/* relative under different own cgroups per hierarchy, as on this host */
	char *self = NULL;
	assert_true(asprintf(&self, "%s/self", d) > 0);
	put(d, "self", "4:memory:/process_api/m\n8:pids:/\n");
	mkdir_in(d, "memory/process_api");
	mkdir_in(d, "memory/process_api/m");
	char *text = shim_cgroup_read_self(self, &err);
	assert_non_null(text);
	shim_cgroup_paths_t px, py;
	assert_int_equal(shim_cgroup_resolve(&l, "km-shim/x", text, &px, &err), 0);
	assert_int_equal(shim_cgroup_resolve(&l, "km-shim/y", text, &py, &err), 0);
	assert_int_equal(shim_cgroup_create(&l, &px, NULL, NULL, 0, &err), 0);
	assert_int_equal(shim_cgroup_create(&l, &py, NULL, NULL, 0, &err), 0);
	char p[4096];
	snprintf(p, sizeof(p), "%s/pids/km-shim", d);
	assert_int_equal(shim_cgroup_remove_in(&l, "km-shim/x", &px, &err), 0);
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(shim_cgroup_remove_in(&l, "km-shim/y", &py, &err), 0);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/memory/process_api/m/km-shim", d);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/memory/process_api/m", d);
	assert_int_equal(access(p, F_OK), 0); /* km-shim's own cgroup stays */
	/* One hierarchy's cgroup cannot go (memory comes first; a file stands in for a busy cgroup):
	 * the others are still removed, and the failure names the one left. */
	shim_cgroup_paths_t pz;
	assert_int_equal(shim_cgroup_resolve(&l, "km-shim/z", text, &pz, &err), 0);
	assert_int_equal(shim_cgroup_create(&l, &pz, NULL, NULL, 0, &err), 0);
	put(d, "memory/process_api/m/km-shim/z/busy", "");
	assert_int_equal(shim_cgroup_remove_in(&l, "km-shim/z", &pz, &err), -1);
	assert_non_null(strstr(err->msg, "memory/process_api/m/km-shim/z"));
	km_err_free(&err);
	snprintf(p, sizeof(p), "%s/pids/km-shim/z", d);
	assert_int_equal(access(p, F_OK), -1);
	shim_cgroup_paths_free(&pz);
	shim_cgroup_paths_free(&px);
	shim_cgroup_paths_free(&py);
	free(text);
	free(self);
	shim_cgroup_layout_free(&l);
	rm_rf(d);
	free(d);
}

/* ---- paths inside the rootfs ---- */

/* process.args[0] without a slash is looked up in PATH as execvp does: an empty element is the
 * working directory ("./prog"), not the root ("/prog"). */
static void test_program_lookup(void **state)
{
	(void)state;
	char dir[] = "/tmp/km-shim-path-XXXXXX", old[4096];
	assert_non_null(mkdtemp(dir));
	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(dir), 0);
	int fd = open("prog", O_CREAT | O_WRONLY, 0755);
	assert_true(fd >= 0);
	close(fd);
	char *args[] = {"prog", NULL}, *env[] = {"PATH=/nonexistent::/also-not", NULL};
	oci_process_t p = {.args = args, .env = env};
	km_err_t *err = NULL;
	char *got = shim_process_program(&p, &err);
	assert_non_null(got);
	assert_string_equal(got, "./prog");
	free(got);
	char *env2[] = {"PATH=/nonexistent", NULL};
	p.env = env2;
	assert_null(shim_process_program(&p, &err));
	assert_non_null(err);
	km_err_free(&err);
	unlink("prog");
	assert_int_equal(chdir(old), 0);
	rmdir(dir);
}

static void test_path_escape(void **state)
{
	(void)state;
	char *d = tmpdir();
	mkdir_in(d, "etc");
	mkdir_in(d, "run");
	char p[512];
	snprintf(p, sizeof(p), "%s/up", d);
	assert_int_equal(symlink("../../../../../../", p), 0);
	snprintf(p, sizeof(p), "%s/var", d);
	assert_int_equal(symlink("/run", p), 0); /* absolute: means the rootfs's /run */
	snprintf(p, sizeof(p), "%s/loop", d);
	assert_int_equal(symlink("loop", p), 0);
	int root = open(d, O_PATH | O_DIRECTORY);
	km_err_t *err = NULL;

	int fd = shim_path_open(root, "/var/lib/x", SHIM_PATH_MKDIR, &err);
	assert_true(fd >= 0);
	close(fd);
	struct stat st;
	snprintf(p, sizeof(p), "%s/run/lib/x", d);
	assert_int_equal(stat(p, &st), 0); /* made inside, through the symlink */

	assert_int_equal(shim_path_open(root, "/up/etc", SHIM_PATH_NOCREATE, &err), -1);
	assert_non_null(strstr(err->msg, "escapes the rootfs through symlink up"));
	km_err_free(&err);
	assert_int_equal(shim_path_open(root, "/up/tmp/evil", SHIM_PATH_MKDIR, &err), -1);
	km_err_free(&err);
	assert_int_equal(shim_path_open(root, "../etc", SHIM_PATH_NOCREATE, &err), -1);
	assert_non_null(strstr(err->msg, "escapes the rootfs"));
	km_err_free(&err);
	assert_int_equal(shim_path_open(root, "/loop", SHIM_PATH_NOCREATE, &err), -1);
	assert_int_equal(err->errnum, ELOOP);
	km_err_free(&err);

	fd = shim_path_open(root, "/etc/../etc/f", SHIM_PATH_MKFILE, &err);
	assert_true(fd >= 0);
	close(fd);
	snprintf(p, sizeof(p), "%s/etc/f", d);
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	close(root);
	rm_rf(d);
	free(d);
}

/* ---- config checks ---- */

static oci_config_t *parse(const char *json)
{
	km_err_t *err = NULL;
	oci_config_t *cfg = oci_config_parse(json, strlen(json), "config.json", &err);
	if (!cfg)
		fail_msg("%s", err->msg);
	return cfg;
}

#define CFG_HEAD "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"process\":{\"cwd\":\"/\",\"args\":[\"/p\"],\"user\":{\"uid\":0,\"gid\":0}"

static void check_refuses(const char *json, const char *msg)
{
	oci_config_t *cfg = parse(json);
	km_err_t *err = NULL;
	int rc = shim_container_check(cfg, &err);
	if (!msg) {
		if (rc)
			fail_msg("unexpected: %s", err->msg);
	} else {
		assert_int_equal(rc, -1);
		if (!strstr(err->msg, msg))
			fail_msg("\"%s\" does not contain \"%s\"", err->msg, msg);
		km_err_free(&err);
	}
	oci_config_free(cfg);
}

static void test_check(void **state)
{
	(void)state;
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}", NULL);
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"pid\"}]}}", "needs a mount namespace");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"time\"}]}}",
		     "linux.namespaces[1]: type \"time\": not supported by km-shim");
	check_refuses(CFG_HEAD ",\"apparmorProfile\":\"x\"},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
		     "process.apparmorProfile");
	check_refuses(CFG_HEAD ",\"selinuxLabel\":\"x\"},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
		     "process.selinuxLabel");
	check_refuses(CFG_HEAD "},\"mounts\":[{\"destination\":\"/a\",\"type\":\"overlay\",\"source\":\"o\"}],"
			      "\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
		     "mounts[0].type: \"overlay\": not supported");
	check_refuses(CFG_HEAD "},\"mounts\":[{\"destination\":\"/a\",\"type\":\"bind\",\"source\":\"/tmp\","
			      "\"options\":[\"rbind\",\"rro\"]}],\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
		     "mounts[0].options[1]: \"rro\": not supported by km-shim");
	check_refuses(CFG_HEAD "},\"mounts\":[{\"destination\":\"/a\",\"source\":\"/tmp\",\"options\":[\"bind\",\"idmap\"]}],"
			      "\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
		     "mounts[0].options[1]: \"idmap\": not supported by km-shim");
	check_refuses(CFG_HEAD "},\"mounts\":[{\"destination\":\"/a\",\"type\":\"bind\",\"source\":\"/tmp\","
			      "\"options\":[\"rbind\",\"ro\",\"rprivate\",\"nosuid\"]}],\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
		     NULL);
	check_refuses(CFG_HEAD "},\"hostname\":\"h\",\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}",
		     "hostname: needs a uts namespace");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"sysctl\":{\"kernel.panic\":\"1\"}}}",
		     "linux.sysctl: \"kernel.panic\": not namespaced");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"}}}",
		     "needs a network namespace");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"user\"}]}}",
		     "a new user namespace needs both");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"pid\",\"path\":\"/proc/1/ns/pid\"}]}}",
		     "joining a pid namespace");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"},{\"type\":\"user\",\"path\":\"/proc/1/ns/user\"}]}}",
		     "linux.namespaces[1]: joining a user namespace (path /proc/1/ns/user) while creating a mount namespace "
		     "(linux.namespaces[0])");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\",\"path\":\"/proc/1/ns/mnt\"},"
			      "{\"type\":\"user\",\"path\":\"/proc/1/ns/user\"}]}}",
		     NULL);
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"seccomp\":{\"defaultAction\":\"SCMP_ACT_NOTIFY\",\"listenerPath\":\"/run/l.sock\"}}}",
		     "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY");
	check_refuses(CFG_HEAD "},\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"resources\":{\"cpu\":{\"cpus\":\"0-1\"}}}}",
		     "linux.resources.cpu.cpus");
	static const char *const refused[][2] = {
		{ ",\"scheduler\":{\"policy\":\"SCHED_FIFO\"}},\"linux\":{", "process.scheduler: not supported by km-shim" },
		{ ",\"ioPriority\":{\"class\":\"IOPRIO_CLASS_RT\"}},\"linux\":{", "process.ioPriority: not supported by km-shim" },
		{ "},\"mounts\":[{\"destination\":\"/a\",\"source\":\"/tmp\",\"options\":[\"bind\"],\"gidMappings\":"
		  "[{\"containerID\":0,\"hostID\":1,\"size\":1}]}],\"linux\":{",
		  "mounts[0].uidMappings/gidMappings: not supported by km-shim" },
		{ "},\"linux\":{\"intelRdt\":{\"closID\":\"c\"},", "linux.intelRdt: not supported by km-shim" },
		{ "},\"linux\":{\"memoryPolicy\":{\"mode\":\"MPOL_BIND\"},", "linux.memoryPolicy: not supported by km-shim" },
		{ "},\"linux\":{\"personality\":{\"domain\":\"LINUX32\"},", "linux.personality.domain: not supported by km-shim" },
		{ "},\"linux\":{\"personality\":{\"domain\":\"LINUX\",\"flags\":[\"f\"]},",
		  "linux.personality.flags: not supported by km-shim" },
		{ "},\"linux\":{\"resources\":{\"unified\":{\"io.weight\":\"1\"}},", "linux.resources.unified: not supported by km-shim" },
		{ "},\"linux\":{\"resources\":{\"blockIO\":{\"weight\":10}},", "linux.resources.blockIO: not supported by km-shim" },
		{ "},\"linux\":{\"resources\":{\"hugepageLimits\":[{\"pageSize\":\"2MB\",\"limit\":1}]},",
		  "linux.resources.hugepageLimits: not supported by km-shim" },
		{ "},\"linux\":{\"resources\":{\"network\":{\"classID\":1}},", "linux.resources.network: not supported by km-shim" },
		{ "},\"linux\":{\"resources\":{\"rdma\":{\"m\":{\"hcaHandles\":1}}},", "linux.resources.rdma: not supported by km-shim" },
		/* Unset (empty) members and the default domain are what clients send: accepted. */
		{ "},\"linux\":{\"personality\":{\"domain\":\"LINUX\"},\"resources\":{\"unified\":{},\"blockIO\":{}},", NULL },
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		char *j = NULL;
		assert_true(asprintf(&j, CFG_HEAD "%s\"namespaces\":[{\"type\":\"mount\"}]}}", refused[i][0]) > 0);
		check_refuses(j, refused[i][1]);
		free(j);
	}
}

/* ---- spawning ---- */

typedef struct spawn_env {
	char *bundle, *rootfs;
	int exe, kvm, mgmt, start[2], ready[2];
} spawn_env_t;

static const char *probe_path(void)
{
	static char p[512];
	const char *t = getenv("TOOLS");
	snprintf(p, sizeof(p), "%s/ctr-probe", t ? t : "build/tests/tools");
	return p;
}

static void env_open(spawn_env_t *e)
{
	e->bundle = tmpdir();
	assert_int_equal(asprintf(&e->rootfs, "%s/rootfs", e->bundle) > 0, 1);
	assert_int_equal(mkdir(e->rootfs, 0755), 0);
	e->exe = open(probe_path(), O_PATH | O_CLOEXEC);
	if (e->exe < 0)
		fail_msg("%s: %s (make tools)", probe_path(), strerror(errno));
	e->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	assert_true(e->kvm >= 0);
	e->mgmt = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(e->mgmt >= 0);
	assert_int_equal(pipe2(e->start, O_CLOEXEC), 0);
	assert_int_equal(pipe2(e->ready, O_CLOEXEC), 0);
}

static void env_close(spawn_env_t *e)
{
	close(e->exe);
	close(e->kvm);
	close(e->mgmt);
	close(e->start[0]), close(e->start[1]);
	close(e->ready[0]);
	if (e->ready[1] >= 0)
		close(e->ready[1]);
	rm_rf(e->bundle);
	free(e->bundle);
	free(e->rootfs);
}

static int spawn(spawn_env_t *e, const char *json, const char *id, shim_container_t *out, km_err_t **err,
		 const char *log)
{
	oci_config_t *cfg = parse(json);
	shim_spawn_t sp = { .cfg = cfg, .id = id, .bundle = e->bundle, .state_dir = e->bundle, .km_exe_fd = e->exe,
			    .kvm_fd = e->kvm, .mgmt_fd = e->mgmt, .start_fd = e->start[0], .ready_fd = e->ready[1],
			    .snapshot_fd = -1, .guest_seccomp_fd = -1, .log_path = log };
	int rc = shim_container_spawn(&sp, out, err);
	oci_config_free(cfg);
	return rc;
}

static int wait_exit(pid_t pid)
{
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void expect_line(const char *text, const char *line)
{
	char want[1024];
	snprintf(want, sizeof(want), "\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("probe output lacks the line \"%s\":\n%s", line, text);
}

#define FULL_NS "{\"type\":\"pid\"},{\"type\":\"mount\"},{\"type\":\"uts\"},{\"type\":\"ipc\"},{\"type\":\"network\"},{\"type\":\"cgroup\"}"
#define STD_MOUNTS                                                                                                   \
	"{\"destination\":\"/proc\",\"type\":\"proc\",\"source\":\"proc\"},"                                      \
	"{\"destination\":\"/dev\",\"type\":\"tmpfs\",\"source\":\"tmpfs\",\"options\":[\"nosuid\",\"strictatime\",\"mode=755\",\"size=65536k\"]}," \
	"{\"destination\":\"/dev/pts\",\"type\":\"devpts\",\"source\":\"devpts\",\"options\":[\"nosuid\",\"noexec\",\"newinstance\",\"ptmxmode=0666\",\"mode=0620\"]}," \
	"{\"destination\":\"/dev/mqueue\",\"type\":\"mqueue\",\"source\":\"mqueue\",\"options\":[\"nosuid\",\"noexec\",\"nodev\"]}," \
	"{\"destination\":\"/sys\",\"type\":\"sysfs\",\"source\":\"sysfs\",\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"ro\"]}," \
	"{\"destination\":\"/sys/fs/cgroup\",\"type\":\"cgroup\",\"source\":\"cgroup\",\"options\":[\"nosuid\",\"noexec\",\"nodev\",\"relatime\",\"ro\"]}"

static void test_spawn_full(void **state)
{
	(void)state;
	spawn_env_t e;
	env_open(&e);
	char *log;
	assert_true(asprintf(&log, "%s/log.json", e.bundle) > 0);
	assert_int_equal(chmod(e.rootfs, 01777), 0); /* the probe, uid 1000, writes /probe.txt */
	char rl[128];
	struct rlimit cur;
	getrlimit(RLIMIT_NOFILE, &cur);
	/* A hard limit above ours: lowered to ours, with a warning (root lacks CAP_SYS_RESOURCE here;
	 * where it has it, the limit is simply raised). */
	snprintf(rl, sizeof(rl), "{\"type\":\"RLIMIT_NOFILE\",\"hard\":%llu,\"soft\":1024}",
		 (unsigned long long)cur.rlim_max + 1);
	char json[8192];
	snprintf(json, sizeof(json),
		 "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},\"hostname\":\"probe-host\","
		 "\"process\":{\"cwd\":\"/work/dir\",\"args\":[\"/prog\",\"a1\"],\"env\":[\"PROBE_OUT=/probe.txt\",\"PATH=/bin\"],"
		 "\"user\":{\"uid\":1000,\"gid\":1001,\"additionalGids\":[5,6],\"umask\":23},\"noNewPrivileges\":true,"
		 "\"rlimits\":[%s],"
		 "\"capabilities\":{\"bounding\":[\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\",\"CAP_CHOWN\"],"
		 "\"effective\":[\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],\"permitted\":[\"CAP_KILL\",\"CAP_NET_BIND_SERVICE\"],"
		 "\"inheritable\":[\"CAP_KILL\"],\"ambient\":[\"CAP_KILL\"]}},"
		 "\"mounts\":[" STD_MOUNTS "],"
		 "\"linux\":{\"namespaces\":[" FULL_NS "],\"resources\":{\"memory\":{\"limit\":67108864},\"pids\":{\"limit\":50}},"
		 "\"maskedPaths\":[\"/proc/timer_list\",\"/sys/firmware\",\"/nonexistent\"],\"readonlyPaths\":[\"/proc/sys\"],"
		 "\"sysctl\":{\"net.ipv4.ip_forward\":\"1\"}}}",
		 rl);
	shim_container_t c;
	km_err_t *err = NULL;
	if (spawn(&e, json, "probe-full", &c, &err, log) < 0)
		fail_msg("%s", err->msg);
	assert_non_null(c.cgroup_path);
	assert_string_equal(c.cgroup_path, "km-shim/probe-full");
	/* The default is relative: under km-shim's own cgroup in each hierarchy, which on a hybrid
	 * host may differ per controller (memory under /process_api/..., pids at /). */
	char *self = shim_cgroup_read_self(NULL, &err), want_mem[4096] = "";
	assert_non_null(self);
	const char *own = strstr(self, ":memory:");
	if (own) {
		own += 8;
		int n = (int)strcspn(own, "\n");
		/* under "/" the path is "/km-shim/...", not "//km-shim/..." */
		snprintf(want_mem, sizeof(want_mem), "memory=%.*s/km-shim/probe-full", n == 1 ? 0 : n, own);
		bool found = false;
		for (size_t i = 0; c.cgroup_paths && c.cgroup_paths[i]; i++)
			found |= !strcmp(c.cgroup_paths[i], want_mem);
		if (!found)
			fail_msg("no %s in the container's cgroups", want_mem);
	}
	free(self);
	/* The limits are in place on the host while the container lives (it waits for nothing, so
	 * read them after it exits but before the cgroup is removed). */
	assert_int_equal(wait_exit(c.pid), 0);
	char limit_file[4200];
	snprintf(limit_file, sizeof(limit_file), "/sys/fs/cgroup/memory%s/memory.limit_in_bytes", want_mem + 7);
	char *limit = want_mem[0] ? slurp(limit_file) : NULL;
	if (limit) /* hybrid/v1 host */
		assert_string_equal(limit, "67108864\n");
	free(limit);
	km_err_t *rerr = NULL;
	assert_int_equal(shim_cgroup_remove(c.cgroup_path, c.cgroup_paths, &rerr), 0);
	char pf[512];
	snprintf(pf, sizeof(pf), "%s/probe.txt", e.rootfs);
	char *out = slurp(pf);
	assert_non_null(out);
	expect_line(out, "argv[1]: --kvm-fd=3");
	expect_line(out, "argv[2]: --mgmt-fd=4");
	expect_line(out, "argv[3]: --start-fd=5");
	expect_line(out, "argv[4]: --ready-fd=6");
	expect_line(out, "argv[5]: --memory=67108864");
	expect_line(out, "argv[6]: /prog");
	expect_line(out, "argv[7]: a1");
	expect_line(out, "pid: 1");
	expect_line(out, "hostname: probe-host");
	expect_line(out, "uid: 1000 1000");
	expect_line(out, "gid: 1001 1001");
	expect_line(out, "groups: 5 6");
	expect_line(out, "cwd: /work/dir");
	expect_line(out, "umask: 0027");
	char nofile[64], *logtext = slurp(log);
	snprintf(nofile, sizeof(nofile), "\nnofile: 1024 %llu\n", (unsigned long long)cur.rlim_max);
	if (strstr(out, nofile)) { /* lowered: the log says so, naming the rlimit */
		assert_non_null(logtext);
		assert_non_null(strstr(logtext, "process.rlimits[0]: RLIMIT_NOFILE hard limit"));
	} else { /* a host where root may raise it gets what it asked */
		snprintf(nofile, sizeof(nofile), "nofile: 1024 %llu", (unsigned long long)cur.rlim_max + 1);
		expect_line(out, nofile);
	}
	free(logtext);
	expect_line(out, "status: CapInh:\t0000000000000020");
	/* A non-root exec keeps only the ambient set (Linux's rule, as under runc). */
	expect_line(out, "status: CapPrm:\t0000000000000020");
	expect_line(out, "status: CapEff:\t0000000000000020");
	expect_line(out, "status: CapBnd:\t0000000000000421");
	expect_line(out, "status: CapAmb:\t0000000000000020");
	expect_line(out, "status: NoNewPrivs:\t1");
	expect_line(out, "kvm: api 12 vm ok");
	expect_line(out, "cgroup: 0::/");
	/* fds: 0-2 as inherited, km's four, and nothing else. */
	for (int fd = 7; fd < 1024; fd++) {
		char l[32];
		snprintf(l, sizeof(l), "\nfd %d: ", fd);
		if (strstr(out, l))
			fail_msg("fd %d leaked into the container:\n%s", fd, out);
	}
	assert_non_null(strstr(out, "\nfd 3: /dev/kvm\n"));
	assert_non_null(strstr(out, "\nfd 4: socket:"));
	assert_non_null(strstr(out, "\nfd 5: pipe:"));
	/* The rootfs is /, the host's root is gone, /proc is the container's. */
	assert_non_null(strstr(out, "\nroot: probe.txt\n"));
	assert_non_null(strstr(out, "/rootfs / rw,"));
	assert_null(strstr(out, "\nroot: tmp\n"));
	assert_non_null(strstr(out, " /proc rw,"));
	assert_non_null(strstr(out, " /proc/sys ro,"));
	assert_non_null(strstr(out, " /proc/timer_list "));
	assert_non_null(strstr(out, " /sys/firmware ro,"));
	assert_non_null(strstr(out, " /sys/fs/cgroup/memory ro,"));
	assert_non_null(strstr(out, " /dev/pts "));
	free(out);
	free(c.cgroup_path);
	oci_strv_free(c.cgroup_paths);
	free(log);
	env_close(&e);
}


/* A failing step: the child's message names it, the child is reaped, the cgroup is gone. */
static void test_spawn_errors(void **state)
{
	(void)state;
	spawn_env_t e;
	env_open(&e);
	char p[512];
	snprintf(p, sizeof(p), "%s/up", e.rootfs);
	assert_int_equal(symlink("../../../../../../../tmp", p), 0);
	const char *escape =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		"\"process\":{\"cwd\":\"/\",\"args\":[\"/prog\"],\"user\":{\"uid\":0,\"gid\":0}},"
		"\"mounts\":[{\"destination\":\"/proc\",\"type\":\"proc\"},{\"destination\":\"/up/evil\",\"type\":\"tmpfs\"}],"
		"\"linux\":{\"namespaces\":[{\"type\":\"pid\"},{\"type\":\"mount\"}],\"resources\":{\"pids\":{\"limit\":10}}}}";
	shim_container_t c;
	km_err_t *err = NULL;
	assert_int_equal(spawn(&e, escape, "probe-escape", &c, &err, NULL), -1);
	if (!strstr(err->msg, "creating container probe-escape: mounts[1] (tmpfs on /up/evil): destination: /up/evil: escapes the rootfs through symlink up"))
		fail_msg("%s", err->msg);
	km_err_free(&err);
	struct stat st;
	assert_int_equal(stat("/sys/fs/cgroup/pids/km-shim/probe-escape", &st), -1);
	assert_int_equal(stat("/tmp/evil", &st), -1);

	/* A relative bind source that leaves the bundle. */
	const char *src =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		"\"process\":{\"cwd\":\"/\",\"args\":[\"/prog\"],\"user\":{\"uid\":0,\"gid\":0}},"
		"\"mounts\":[{\"destination\":\"/data\",\"type\":\"bind\",\"source\":\"rootfs/up\",\"options\":[\"rbind\"]}],"
		"\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}";
	assert_int_equal(spawn(&e, src, "probe-src", &c, &err, NULL), -1);
	if (!strstr(err->msg, "mounts[0] (bind on /data): source (in the bundle): rootfs/up: escapes"))
		fail_msg("%s", err->msg);
	km_err_free(&err);

	/* cwd cannot be entered by the user: the step and the errno. */
	snprintf(p, sizeof(p), "%s/locked", e.rootfs);
	assert_int_equal(mkdir(p, 0700), 0);
	const char *cwd =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		"\"process\":{\"cwd\":\"/locked\",\"args\":[\"/prog\"],\"user\":{\"uid\":1000,\"gid\":1000}},"
		"\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}";
	assert_int_equal(spawn(&e, cwd, "probe-cwd", &c, &err, NULL), -1);
	if (!strstr(err->msg, "process.cwd: chdir /locked: Permission denied"))
		fail_msg("%s", err->msg);
	km_err_free(&err);

	/* A program not found through PATH. */
	const char *prog =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		"\"process\":{\"cwd\":\"/\",\"args\":[\"nosuch\"],\"env\":[\"PATH=/bin\"],\"user\":{\"uid\":0,\"gid\":0}},"
		"\"linux\":{\"namespaces\":[{\"type\":\"mount\"}]}}";
	assert_int_equal(spawn(&e, prog, "probe-prog", &c, &err, NULL), -1);
	if (!strstr(err->msg, "process.args[0]: \"nosuch\": executable file not found in $PATH"))
		fail_msg("%s", err->msg);
	km_err_free(&err);

	/* linux.devices over a file of the image that is not that device: an error, the file kept;
	 * the same node already there is fine (the create then fails later, at the program). */
	snprintf(p, sizeof(p), "%s/dev", e.rootfs);
	assert_true(mkdir(p, 0755) == 0 || errno == EEXIST); /* the creates above made default nodes */
	snprintf(p, sizeof(p), "%s/dev/zero", e.rootfs);
	unlink(p);
	assert_int_equal(mknod(p, S_IFCHR | 0666, makedev(1, 5)), 0);
	snprintf(p, sizeof(p), "%s/dev/thing", e.rootfs);
	int f = open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	assert_true(f >= 0);
	close(f);
	const char *dev =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		"\"process\":{\"cwd\":\"/\",\"args\":[\"nosuch\"],\"env\":[\"PATH=/bin\"],\"user\":{\"uid\":0,\"gid\":0}},"
		"\"linux\":{\"namespaces\":[{\"type\":\"mount\"}],\"devices\":[{\"path\":\"/dev/zero\",\"type\":\"c\","
		"\"major\":1,\"minor\":5},{\"path\":\"/dev/thing\",\"type\":\"c\",\"major\":1,\"minor\":3}]}}";
	assert_int_equal(spawn(&e, dev, "probe-dev", &c, &err, NULL), -1);
	if (!strstr(err->msg, "linux.devices[1]: /dev/thing: exists in the rootfs and is not the requested device"))
		fail_msg("%s", err->msg);
	km_err_free(&err);
	struct stat fst;
	assert_int_equal(stat(p, &fst), 0);
	assert_true(S_ISREG(fst.st_mode));
	assert_int_equal(unlink(p), 0);
	assert_int_equal(spawn(&e, dev, "probe-dev", &c, &err, NULL), -1);
	if (!strstr(err->msg, "process.args[0]: \"nosuch\""))
		fail_msg("%s", err->msg);
	km_err_free(&err);
	env_close(&e);
}

/* A user namespace: root inside is 100000 outside; devices are bound from the host. */
static void test_spawn_userns(void **state)
{
	(void)state;
	spawn_env_t e;
	env_open(&e);
	assert_int_equal(chown(e.rootfs, 100000, 100000), 0);
	assert_int_equal(chmod(e.bundle, 0755), 0); /* root of the user namespace is 100000 here */
	const char *json =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		"\"process\":{\"cwd\":\"/\",\"args\":[\"/prog\"],\"env\":[\"PROBE_OUT=/probe.txt\"],\"user\":{\"uid\":0,\"gid\":0}},"
		"\"mounts\":[" STD_MOUNTS "],"
		"\"linux\":{\"namespaces\":[" FULL_NS ",{\"type\":\"user\"}],"
		"\"uidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}],"
		"\"gidMappings\":[{\"containerID\":0,\"hostID\":100000,\"size\":65536}]}}";
	shim_container_t c;
	km_err_t *err = NULL;
	if (spawn(&e, json, "probe-userns", &c, &err, NULL) < 0)
		fail_msg("%s", err->msg);
	assert_int_equal(wait_exit(c.pid), 0);
	assert_int_equal(shim_cgroup_remove(c.cgroup_path, c.cgroup_paths, &err), 0);
	char pf[512];
	snprintf(pf, sizeof(pf), "%s/probe.txt", e.rootfs);
	char *out = slurp(pf);
	assert_non_null(out);
	expect_line(out, "uid: 0 0");
	expect_line(out, "pid: 1");
	expect_line(out, "kvm: api 12 vm ok");
	struct stat st;
	assert_int_equal(stat(pf, &st), 0);
	assert_int_equal(st.st_uid, 100000);
	free(out);
	free(c.cgroup_path);
	oci_strv_free(c.cgroup_paths);
	env_close(&e);
}

/* The real thing: km itself exec'd in the container, loading a guest that exists only in the
 * rootfs, through the ready/start handshake, with /dev/kvm passed as an fd. */
static void test_spawn_km(void **state)
{
	(void)state;
	spawn_env_t e;
	env_open(&e);
	const char *km = getenv("KM") ? getenv("KM") : "build/bin/km";
	char guest[512], cmd[2048];
	snprintf(guest, sizeof(guest), "%s/gcc/hello", getenv("GUESTS") ? getenv("GUESTS") : "build/tests/guests");
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s/hello'", guest, e.rootfs);
	assert_int_equal(system(cmd), 0);
	close(e.exe);
	e.exe = open(km, O_PATH | O_CLOEXEC);
	if (e.exe < 0)
		fail_msg("%s: %s", km, strerror(errno));
	/* km wants a listening socket for --mgmt-fd. */
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/km.sock", e.bundle);
	assert_int_equal(bind(e.mgmt, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(e.mgmt, 4), 0);
	char outp[512];
	snprintf(outp, sizeof(outp), "%s/out.txt", e.bundle);
	int outfd = open(outp, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0644), saved = dup(1);
	assert_true(outfd >= 0 && saved >= 0);
	const char *json =
		"{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\",\"readonly\":true},\"hostname\":\"kmbox\","
		"\"process\":{\"cwd\":\"/\",\"args\":[\"/hello\"],\"env\":[\"PATH=/\"],\"user\":{\"uid\":0,\"gid\":0},"
		"\"capabilities\":{\"bounding\":[\"CAP_KILL\"],\"effective\":[\"CAP_KILL\"],\"permitted\":[\"CAP_KILL\"]},"
		"\"noNewPrivileges\":true},"
		"\"mounts\":[" STD_MOUNTS "],"
		"\"linux\":{\"namespaces\":[" FULL_NS "],\"resources\":{\"memory\":{\"limit\":268435456},\"pids\":{\"limit\":64}}}}";
	shim_container_t c;
	km_err_t *err = NULL;
	assert_int_equal(dup2(outfd, 1), 1);
	int rc = spawn(&e, json, "probe-km", &c, &err, NULL);
	dup2(saved, 1);
	close(saved);
	close(outfd);
	if (rc < 0)
		fail_msg("%s", err->msg);
	close(e.ready[1]), e.ready[1] = -1;
	char buf[16] = "";
	assert_int_equal(read(e.ready[0], buf, sizeof(buf) - 1), 6);
	assert_string_equal(buf, "ready\n");
	assert_int_equal(write(e.start[1], "g", 1), 1);
	int st;
	assert_int_equal(waitpid(c.pid, &st, 0), c.pid);
	char *out = slurp(outp);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		fail_msg("km in the container: status 0x%x, output: %s", st, out ? out : "");
	assert_string_equal(out, "hello, world\n");
	free(out);
	assert_int_equal(shim_cgroup_remove(c.cgroup_path, c.cgroup_paths, &err), 0);
	free(c.cgroup_path);
	oci_strv_free(c.cgroup_paths);
	env_close(&e);
}

/* process.terminal with --console-socket, and hooks at their points with the state on stdin. */
static void test_spawn_console_hooks(void **state)
{
	(void)state;
	spawn_env_t e;
	env_open(&e);
	int ls = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/console.sock", e.bundle);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 1), 0);
	char json[8192];
	snprintf(json, sizeof(json),
		 "{\"ociVersion\":\"1.0.2\",\"root\":{\"path\":\"rootfs\"},"
		 "\"process\":{\"terminal\":true,\"consoleSize\":{\"height\":33,\"width\":99},\"cwd\":\"/\",\"args\":[\"/prog\"],"
		 "\"env\":[\"PROBE_OUT=/probe.txt\"],\"user\":{\"uid\":0,\"gid\":0}},"
		 "\"mounts\":[" STD_MOUNTS "],"
		 "\"hooks\":{\"prestart\":[{\"path\":\"/bin/sh\",\"args\":[\"sh\",\"-c\",\"cat > %s/prestart.json\"]}],"
		 "\"createContainer\":[{\"path\":\"/bin/sh\",\"args\":[\"sh\",\"-c\",\"cat > %s/cc.json; hostname > %s/cc.host\"]}]},"
		 "\"hostname\":\"hooked\",\"annotations\":{\"k\":\"v\"},"
		 "\"linux\":{\"namespaces\":[" FULL_NS "]}}",
		 e.bundle, e.bundle, e.bundle);
	oci_config_t *cfg = parse(json);
	shim_spawn_t sp = { .cfg = cfg, .id = "probe-tty", .bundle = e.bundle, .state_dir = e.bundle, .km_exe_fd = e.exe,
			    .kvm_fd = e.kvm, .mgmt_fd = e.mgmt, .start_fd = e.start[0], .ready_fd = e.ready[1],
			    .snapshot_fd = -1, .guest_seccomp_fd = -1, .console_socket = sa.sun_path };
	shim_container_t c;
	km_err_t *err = NULL;
	if (shim_container_spawn(&sp, &c, &err) < 0)
		fail_msg("%s", err->msg);
	int conn = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
	assert_true(conn >= 0);
	char name[64] = "", cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	assert_true(recvmsg(conn, &mh, MSG_CMSG_CLOEXEC) > 0);
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	assert_non_null(cm);
	assert_int_equal(cm->cmsg_type, SCM_RIGHTS);
	int master;
	memcpy(&master, CMSG_DATA(cm), sizeof(int));
	assert_string_equal(name, "/dev/pts/0");
	struct winsize ws;
	assert_int_equal(ioctl(master, TIOCGWINSZ, &ws), 0);
	assert_int_equal(ws.ws_row, 33);
	assert_int_equal(ws.ws_col, 99);
	assert_int_equal(wait_exit(c.pid), 0);
	assert_int_equal(shim_cgroup_remove(c.cgroup_path, c.cgroup_paths, &err), 0);
	char pf[512];
	snprintf(pf, sizeof(pf), "%s/probe.txt", e.rootfs);
	char *out = slurp(pf);
	assert_non_null(out);
	expect_line(out, "fd 0: /dev/pts/0");
	expect_line(out, "fd 1: /dev/pts/0");
	expect_line(out, "fd 2: /dev/pts/0");
	free(out);
	snprintf(pf, sizeof(pf), "%s/prestart.json", e.bundle);
	out = slurp(pf);
	assert_non_null(out);
	char want[256];
	snprintf(want, sizeof(want), "\"pid\":%d", (int)c.pid);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "\"id\":\"probe-tty\""));
	assert_non_null(strstr(out, "\"annotations\":{\"k\":\"v\"}"));
	free(out);
	snprintf(pf, sizeof(pf), "%s/cc.host", e.bundle);
	out = slurp(pf); /* createContainer ran (in the child, before pivot_root) */
	assert_non_null(out);
	free(out);
	snprintf(pf, sizeof(pf), "%s/cc.json", e.bundle);
	out = slurp(pf);
	assert_non_null(out);
	assert_non_null(strstr(out, want));
	free(out);
	close(master);
	close(conn);
	close(ls);
	oci_config_free(cfg);
	free(c.cgroup_path);
	oci_strv_free(c.cgroup_paths);
	env_close(&e);
}

static void test_hooks_run(void **state)
{
	(void)state;
	char *d = tmpdir();
	char json[4096];
	snprintf(json, sizeof(json),
		 CFG_HEAD "},\"hooks\":{\"poststop\":[{\"path\":\"/bin/sh\",\"args\":[\"sh\",\"-c\",\"cat > %s/in; echo $X > %s/env\"],\"env\":[\"X=y\"]}],"
		 "\"poststart\":[{\"path\":\"/bin/sh\",\"args\":[\"sh\",\"-c\",\"exit 3\"]}],"
		 "\"prestart\":[{\"path\":\"/bin/sh\",\"args\":[\"sh\",\"-c\",\"exec sleep 100\"],\"timeout\":1}]}}",
		 d, d);
	oci_config_t *cfg = parse(json);
	km_err_t *err = NULL;
	assert_int_equal(shim_hooks_run(cfg, OCI_HOOK_POSTSTOP, "{\"id\":\"x\"}", 0, &err), 0);
	char p[512];
	snprintf(p, sizeof(p), "%s/in", d);
	char *t = slurp(p);
	assert_string_equal(t, "{\"id\":\"x\"}");
	free(t);
	snprintf(p, sizeof(p), "%s/env", d);
	t = slurp(p);
	assert_string_equal(t, "y\n");
	free(t);
	assert_int_equal(shim_hooks_run(cfg, OCI_HOOK_POSTSTART, "{}", 0, &err), -1);
	assert_string_equal(err->msg, "hooks.poststart[0] (/bin/sh): exit status 3");
	km_err_free(&err);
	assert_int_equal(shim_hooks_run(cfg, OCI_HOOK_PRESTART, "{}", 0, &err), -1);
	assert_string_equal(err->msg, "hooks.prestart[0] (/bin/sh): timed out after 1 s, killed");
	km_err_free(&err);
	oci_config_free(cfg);
	rm_rf(d);
	free(d);
}

/* Every hook point gets the same document: the spec's keys and the config's annotations (an
 * empty map when there are none), the status of its point, km's pid until it is stopped. */
static void test_hooks_state_json(void **state)
{
	(void)state;
	static const struct {
		oci_status_t st;
		const char *want;
	} pts[] = {
		{ OCI_STATUS_CREATING, "{\"annotations\":{\"a\":\"1\",\"b\":\"2\"},\"bundle\":\"/b\",\"id\":\"x\",\"ociVersion\":\"1.0.2\",\"pid\":42,\"status\":\"creating\"}" },
		{ OCI_STATUS_CREATED, "{\"annotations\":{\"a\":\"1\",\"b\":\"2\"},\"bundle\":\"/b\",\"id\":\"x\",\"ociVersion\":\"1.0.2\",\"pid\":42,\"status\":\"created\"}" },
		{ OCI_STATUS_RUNNING, "{\"annotations\":{\"a\":\"1\",\"b\":\"2\"},\"bundle\":\"/b\",\"id\":\"x\",\"ociVersion\":\"1.0.2\",\"pid\":42,\"status\":\"running\"}" },
		{ OCI_STATUS_STOPPED, "{\"annotations\":{\"a\":\"1\",\"b\":\"2\"},\"bundle\":\"/b\",\"id\":\"x\",\"ociVersion\":\"1.0.2\",\"status\":\"stopped\"}" },
	};
	const char *json = CFG_HEAD "},\"annotations\":{\"b\":\"2\",\"a\":\"1\"}}";
	km_err_t *err = NULL;
	oci_config_t *cfg = oci_config_parse(json, strlen(json), "config.json", &err);
	assert_non_null(cfg);
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
		char *s = shim_hooks_state_json(cfg, "x", pts[i].st, 42, "/b");
		assert_non_null(s);
		assert_string_equal(s, pts[i].want);
		free(s);
	}
	oci_config_free(cfg);
	json = CFG_HEAD "}}";
	cfg = oci_config_parse(json, strlen(json), "config.json", &err);
	assert_non_null(cfg);
	char *s = shim_hooks_state_json(cfg, "x", OCI_STATUS_CREATED, 7, "/b");
	assert_string_equal(s, "{\"annotations\":{},\"bundle\":\"/b\",\"id\":\"x\",\"ociVersion\":\"1.0.2\",\"pid\":7,\"status\":\"created\"}");
	free(s);
	oci_config_free(cfg);
}

/* The real cgroups of this host (hybrid or v2): create with limits, add, pids, stats, update,
 * remove. */
static void test_cgroup_real(void **state)
{
	(void)state;
	shim_cgroup_layout_t l;
	km_err_t *err = NULL;
	assert_int_equal(shim_cgroup_detect(NULL, &l, &err), 0);
	oci_resources_t r = { .has_pids_limit = true, .pids_limit = 7, .has_memory_limit = true, .memory_limit = 32 << 20,
			      .has_cpu_shares = true, .cpu_shares = 512, .has_cpu_quota = true, .cpu_quota = 50000,
			      .has_cpu_period = true, .cpu_period = 100000 };
	char path[64]; /* per run: a zombie of an earlier failed run may still count in its cgroup */
	snprintf(path, sizeof(path), "/km-shim/unit-cgroup-%d", (int)getpid());
	shim_cgroup_paths_t px = same_paths(path);
	if (shim_cgroup_create(&l, &px, &r, NULL, 0, &err) < 0)
		fail_msg("%s", err->msg);
	pid_t kid = fork();
	if (kid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion must not leave it behind */
		pause();
		_exit(0);
	}
	assert_int_equal(shim_cgroup_add(&l, &px, kid, &err), 0);
	pid_t *pids;
	assert_int_equal(shim_cgroup_pids(path, NULL, 0, &pids, &err), 1);
	assert_int_equal(pids[0], kid);
	free(pids);
	shim_cgroup_stats_t st;
	assert_int_equal(shim_cgroup_stats(path, NULL, &st, &err), 0);
	assert_int_equal(st.pids_current, 1);
	assert_int_equal(st.pids_limit, 7);
	assert_int_equal(st.memory_limit, 32 << 20);
	oci_resources_t u = { .has_pids_limit = true, .pids_limit = 9 };
	assert_int_equal(shim_cgroup_update(path, NULL, &u, &err), 0);
	assert_int_equal(shim_cgroup_stats(path, NULL, &st, &err), 0);
	assert_int_equal(st.pids_limit, 9);
	char *d = shim_cgroup_dir(&l, SHIM_CG_CPU, &px), f[512];
	snprintf(f, sizeof(f), "%s/%s", d, l.v2 ? "cpu.max" : "cpu.cfs_quota_us");
	char *q = slurp(f);
	assert_string_equal(q, l.v2 ? "50000 100000\n" : "50000\n");
	free(q);
	free(d);
	kill(kid, SIGKILL);
	waitpid(kid, NULL, 0);
	assert_int_equal(shim_cgroup_remove(path, NULL, &err), 0);
	assert_int_equal(shim_cgroup_remove(path, NULL, &err), 0); /* already gone: fine */
	assert_int_equal(shim_cgroup_pids(NULL, NULL, 42, &pids, &err), 1);
	assert_int_equal(pids[0], 42);
	free(pids);
	shim_cgroup_paths_free(&px);
	shim_cgroup_layout_free(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mount_options), cmocka_unit_test(test_mountinfo_unescape),	  cmocka_unit_test(test_cap_table),
		cmocka_unit_test(test_cgroup_detect_hybrid), cmocka_unit_test(test_cgroup_detect_v2),
		cmocka_unit_test(test_cgroup_conversions), cmocka_unit_test(test_cgroup_real), cmocka_unit_test(test_path_escape), cmocka_unit_test(test_program_lookup),
		cmocka_unit_test(test_check),		  cmocka_unit_test(test_spawn_full),
		cmocka_unit_test(test_spawn_errors),	  cmocka_unit_test(test_spawn_userns),
		cmocka_unit_test(test_spawn_km),
		cmocka_unit_test(test_spawn_console_hooks), cmocka_unit_test(test_cgroup_remove_parent), cmocka_unit_test(test_cgroup_resolve), cmocka_unit_test(test_hooks_run), cmocka_unit_test(test_hooks_state_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
