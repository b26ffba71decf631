/*
 * Unit tests of the device cgroup (shim/shim_devices.c): the rule list (config, default list,
 * linux.devices), the v1 lines, the v2 BPF program run by a small interpreter here, and - as
 * root, where the host has them - the v1 devices hierarchy and a cgroup2 mount (this host's
 * hybrid /sys/fs/cgroup/unified) with a child process opening a device node in each.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim_cgroup.h"
#include "shim_devices.h"

#define ANY (-1)

static bool has_rule(const oci_device_rule_t *v, size_t n, bool allow, char type, int64_t ma, int64_t mi,
		     const char *acc)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].allow == allow && v[i].type == type && v[i].major == ma && v[i].minor == mi &&
		    !strcmp(v[i].access, acc))
			return true;
	return false;
}

static void test_default_list(void **state)
{
	(void)state;
	size_t n = 0;
	km_err_t *err = NULL;
	oci_device_rule_t *v = shim_devices_rules(NULL, NULL, 0, &n, &err);
	assert_non_null(v);
	assert_int_equal(n, shim_devices_n_default);
	const int64_t chr[][2] = { { 1, 3 }, { 1, 5 }, { 1, 7 }, { 1, 8 }, { 1, 9 }, { 5, 0 }, { 5, 2 }, { 136, ANY } };
	for (size_t i = 0; i < sizeof(chr) / sizeof(chr[0]); i++)
		assert_true(has_rule(v, n, true, 'c', chr[i][0], chr[i][1], "rwm"));
	assert_true(has_rule(v, n, true, 'c', ANY, ANY, "m"));
	assert_true(has_rule(v, n, true, 'b', ANY, ANY, "m"));
	/* nothing else is opened: every default rule is allow, and only the m rules are wildcards */
	for (size_t i = 0; i < n; i++) {
		assert_true(v[i].allow);
		assert_true(v[i].major >= 0 || !strcmp(v[i].access, "m"));
	}
	free(v);
}

static void test_rules_order(void **state)
{
	(void)state;
	oci_device_rule_t cfg[] = { { false, 'a', ANY, ANY, "rwm" }, { true, 'b', 8, 0, "r" } };
	oci_resources_t res = { .device_rules = cfg, .n_device_rules = 2 };
	oci_device_t devs[] = { { .path = "/dev/fuse", .type = 'c', .major = 10, .minor = 229 },
				{ .path = "/dev/f", .type = 'p', .major = ANY, .minor = ANY },
				{ .path = "/dev/u", .type = 'u', .major = 4, .minor = 64 },
				{ .path = "/dev/sdb", .type = 'b', .major = 8, .minor = 16 } };
	size_t n = 0;
	km_err_t *err = NULL;
	oci_device_rule_t *v = shim_devices_rules(&res, devs, 4, &n, &err);
	assert_non_null(v);
	assert_int_equal(n, 2 + shim_devices_n_default + 3);
	assert_memory_equal(&v[0], &cfg[0], sizeof(cfg[0]));
	assert_memory_equal(&v[1], &cfg[1], sizeof(cfg[1]));
	assert_memory_equal(&v[2], &shim_devices_default[0], sizeof(v[0]));
	size_t t = 2 + shim_devices_n_default;
	assert_true(v[t].allow && v[t].type == 'c' && v[t].major == 10 && v[t].minor == 229 && !strcmp(v[t].access, "rwm"));
	assert_true(v[t + 1].type == 'c' && v[t + 1].major == 4 && v[t + 1].minor == 64); /* u is c, the fifo has none */
	assert_true(v[t + 2].type == 'b' && v[t + 2].major == 8 && v[t + 2].minor == 16);
	free(v);
}

static void lines_are(oci_device_rule_t r, const char *l0, const char *l1)
{
	char lines[2][64];
	int n = shim_devices_v1_lines(&r, lines);
	assert_int_equal(n, l1 ? 2 : 1);
	assert_string_equal(lines[0], l0);
	if (l1)
		assert_string_equal(lines[1], l1);
}

static void test_v1_lines(void **state)
{
	(void)state;
	lines_are((oci_device_rule_t){ false, 'a', ANY, ANY, "rwm" }, "a", NULL);
	lines_are((oci_device_rule_t){ true, 'a', ANY, ANY, "rwm" }, "a", NULL);
	lines_are((oci_device_rule_t){ true, 'c', 1, 3, "rwm" }, "c 1:3 rwm", NULL);
	lines_are((oci_device_rule_t){ true, 'c', ANY, ANY, "m" }, "c *:* m", NULL);
	lines_are((oci_device_rule_t){ false, 'b', 8, ANY, "r" }, "b 8:* r", NULL);
	lines_are((oci_device_rule_t){ true, 'c', 4294967295LL, 0, "w" }, "c 4294967295:0 w", NULL);
	/* "a 1:3 r" would be read by the kernel as "a": a reset of the whole list */
	lines_are((oci_device_rule_t){ true, 'a', 1, 3, "r" }, "c 1:3 r", "b 1:3 r");
	lines_are((oci_device_rule_t){ false, 'a', ANY, ANY, "rw" }, "c *:* rw", "b *:* rw");
}

/* ---- the BPF program, run here ---- */

/* Runs `p` on one request the way the kernel would, for the instructions shim_devices_bpf
 * emits; anything else fails the test. */
static uint64_t run(const struct bpf_insn *p, size_t n, int type, int access, uint32_t major, uint32_t minor)
{
	struct bpf_cgroup_dev_ctx ctx = { .access_type = (uint32_t)(access << 16 | type), .major = major, .minor = minor };
	uint64_t r[11] = { 0 };
	for (size_t pc = 0; pc < n; pc++) {
		const struct bpf_insn *i = &p[pc];
		uint64_t *d = &r[i->dst_reg];
		uint32_t imm = (uint32_t)i->imm;
		switch (i->code) {
		case BPF_LDX | BPF_MEM | BPF_W:
			assert_int_equal(i->src_reg, 1);
			assert_true(i->off >= 0 && i->off + 4 <= (int)sizeof(ctx));
			uint32_t w;
			memcpy(&w, (char *)&ctx + i->off, 4);
			*d = w;
			break;
		case BPF_ALU64 | BPF_MOV | BPF_X:
			*d = r[i->src_reg];
			break;
		case BPF_ALU64 | BPF_MOV | BPF_K:
			*d = (uint64_t)(int64_t)i->imm;
			break;
		case BPF_ALU | BPF_AND | BPF_K:
			*d = (uint32_t)*d & imm;
			break;
		case BPF_ALU | BPF_RSH | BPF_K:
			*d = (uint32_t)*d >> imm;
			break;
		case BPF_JMP32 | BPF_JNE | BPF_K:
			if ((uint32_t)*d != imm)
				pc += i->off;
			break;
		case BPF_JMP32 | BPF_JEQ | BPF_K:
			if ((uint32_t)*d == imm)
				pc += i->off;
			break;
		case BPF_JMP | BPF_EXIT:
			return r[0];
		default:
			fail_msg("instruction %zu: unexpected code %#x", pc, i->code);
		}
		assert_true(pc + 1 <= n);
	}
	fail_msg("ran off the end");
	return 2;
}

#define C BPF_DEVCG_DEV_CHAR
#define B BPF_DEVCG_DEV_BLOCK
#define RD BPF_DEVCG_ACC_READ
#define WR BPF_DEVCG_ACC_WRITE
#define MK BPF_DEVCG_ACC_MKNOD

static void test_bpf_program(void **state)
{
	(void)state;
	/* as podman sends them: deny all, then some allows; then a later deny narrowing one */
	oci_device_rule_t cfg[] = {
		{ false, 'a', ANY, ANY, "rwm" },
		{ true, 'c', 10, ANY, "rw" },
		{ false, 'c', 10, 229, "w" },
		{ true, 'b', 8, 0, "r" },
		{ true, 'c', 3000000000LL, 1, "r" },
	};
	oci_resources_t res = { .device_rules = cfg, .n_device_rules = 5 };
	size_t n = 0, ni = 0;
	km_err_t *err = NULL;
	oci_device_rule_t *v = shim_devices_rules(&res, NULL, 0, &n, &err);
	struct bpf_insn *p = shim_devices_bpf(v, n, &ni);
	assert_non_null(p);
	assert_int_equal(run(p, ni, C, RD | WR, 1, 3), 1); /* null, default list */
	assert_int_equal(run(p, ni, C, RD | WR, 1, 1), 0); /* mem: nothing allows it */
	assert_int_equal(run(p, ni, C, MK, 1, 1), 1); /* but mknod of any char device is allowed */
	assert_int_equal(run(p, ni, B, MK, 8, 1), 1);
	assert_int_equal(run(p, ni, B, RD, 8, 0), 1);
	assert_int_equal(run(p, ni, B, RD | WR, 8, 0), 0); /* allow r does not cover rw */
	assert_int_equal(run(p, ni, B, RD, 8, 1), 0);
	assert_int_equal(run(p, ni, C, RD, 8, 0), 0); /* the type counts */
	assert_int_equal(run(p, ni, C, RD | WR, 10, 200), 1);
	assert_int_equal(run(p, ni, C, RD, 10, 229), 1); /* the later deny w leaves r */
	assert_int_equal(run(p, ni, C, RD | WR, 10, 229), 0); /* and denies an open that asks for w */
	assert_int_equal(run(p, ni, C, RD, 3000000000u, 1), 1); /* majors past 2^31 compare as u32 */
	assert_int_equal(run(p, ni, C, RD, 3000000000u, 2), 0);
	assert_int_equal(run(p, ni, C, RD, 136, 7), 1); /* pts, any minor */
	free(p);
	free(v);

	/* allow everything, then deny one: the last match wins */
	oci_device_rule_t open_rules[] = { { true, 'a', ANY, ANY, "rwm" }, { false, 'c', 1, 1, "rwm" } };
	p = shim_devices_bpf(open_rules, 2, &ni);
	assert_int_equal(run(p, ni, B, RD | WR, 8, 0), 1);
	assert_int_equal(run(p, ni, C, RD, 1, 1), 0);
	free(p);
	/* what comes before an allow-all is never reached, and not emitted: the verifier refuses it */
	oci_device_rule_t ends[] = { { false, 'c', 1, 1, "rwm" }, { true, 'a', ANY, ANY, "rwm" } };
	p = shim_devices_bpf(ends, 2, &ni);
	assert_int_equal(ni, 6 + 2);
	assert_int_equal(run(p, ni, C, RD, 1, 1), 1);
	free(p);
	p = shim_devices_bpf(NULL, 0, &ni); /* no rule: all denied */
	assert_int_equal(run(p, ni, C, RD, 1, 3), 0);
	free(p);
}

/* ---- against the kernel (root) ---- */

/* A char device node major:minor in a fresh directory of the build tree (not /tmp: it may be
 * nodev). Caller frees. */
static char *node(unsigned ma, unsigned mi)
{
	char *path = NULL;
	assert_true(asprintf(&path, "%s/devnode-%d", "build/tests", (int)getpid()) > 0);
	unlink(path);
	if (mknod(path, S_IFCHR | 0600, makedev(ma, mi)) < 0)
		fail_msg("mknod %s: %s", path, strerror(errno));
	return path;
}

/* In a child put into the cgroup `procs` (a cgroup.procs file): the errno of opening `path`
 * write-only (0 if it opened). */
static int open_in_cgroup(const char *procs, const char *path)
{
	int sync[2];
	assert_int_equal(pipe(sync), 0);
	pid_t kid = fork();
	if (kid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		char c;
		close(sync[1]);
		if (read(sync[0], &c, 1) != 1)
			_exit(100);
		int fd = open(path, O_WRONLY | O_CLOEXEC);
		_exit(fd < 0 ? errno : 0);
	}
	close(sync[0]);
	FILE *f = fopen(procs, "we");
	assert_non_null(f);
	fprintf(f, "%d\n", (int)kid);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(write(sync[1], "x", 1), 1);
	close(sync[1]);
	int st;
	assert_int_equal(waitpid(kid, &st, 0), kid);
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

/* kmsg (1:11): opening it write-only needs no capability and does nothing; no rule here allows it. */
#define KMSG_MAJOR 1
#define KMSG_MINOR 11

static void test_v1_real(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/sys/fs/cgroup/devices/devices.allow", F_OK) != 0)
		skip();
	shim_cgroup_layout_t l;
	km_err_t *err = NULL;
	assert_int_equal(shim_cgroup_detect(NULL, &l, &err), 0);
	assert_false(l.v2);
	char path[64];
	snprintf(path, sizeof(path), "/km-shim/unit-devices-%d", (int)getpid());
	shim_cgroup_paths_t px = { { 0 } };
	for (int c = 0; c < SHIM_CG_NCTRL; c++)
		px.path[c] = strdup(path);
	oci_device_rule_t cfg[] = { { false, 'a', ANY, ANY, "rwm" }, { true, 'c', 10, 229, "rw" } };
	oci_resources_t res = { .device_rules = cfg, .n_device_rules = 2 };
	oci_device_t devs[] = { { .path = "/dev/loop-control", .type = 'c', .major = 10, .minor = 237 } };
	if (shim_cgroup_create(&l, &px, &res, devs, 1, &err) < 0)
		fail_msg("%s", err->msg);
	char *d = shim_cgroup_dir(&l, SHIM_CG_DEVICES, &px), f[512];
	snprintf(f, sizeof(f), "%s/devices.list", d);
	FILE *fl = fopen(f, "re");
	assert_non_null(fl);
	char list[4096];
	size_t got = fread(list, 1, sizeof(list) - 1, fl);
	list[got] = '\0';
	fclose(fl);
	assert_null(strstr(list, "a *:* rwm"));
	assert_non_null(strstr(list, "c 1:3 rwm\n"));
	assert_non_null(strstr(list, "c 136:* rwm\n"));
	assert_non_null(strstr(list, "c 10:229 rw\n"));
	assert_non_null(strstr(list, "c 10:237 rwm\n"));
	assert_non_null(strstr(list, "b *:* m\n"));
	char *n = node(KMSG_MAJOR, KMSG_MINOR);
	snprintf(f, sizeof(f), "%s/cgroup.procs", d);
	assert_int_equal(open_in_cgroup(f, "/dev/null"), 0);
	assert_int_equal(open_in_cgroup(f, n), EPERM);
	int fd = open(n, O_WRONLY | O_CLOEXEC); /* the node itself opens outside the cgroup */
	assert_true(fd >= 0);
	close(fd);
	unlink(n);
	free(n);
	free(d);
	assert_int_equal(shim_cgroup_remove_in(&l, path, &px, &err), 0);
	shim_cgroup_paths_free(&px);
	shim_cgroup_layout_free(&l);
}

/* The BPF program attached to a cgroup of a cgroup2 mount: the kernel's verifier takes it and it
 * decides opens there. */
static void test_v2_real(void **state)
{
	(void)state;
	const char *root = access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0 ? "/sys/fs/cgroup"
			   : access("/sys/fs/cgroup/unified/cgroup.procs", F_OK) == 0 ? "/sys/fs/cgroup/unified"
										       : NULL;
	if (geteuid() != 0 || !root)
		skip();
	char dir[256], procs[300];
	snprintf(dir, sizeof(dir), "%s/km-shim-unit-devices-%d", root, (int)getpid());
	assert_int_equal(mkdir(dir, 0755), 0);
	oci_device_rule_t cfg[] = { { false, 'a', ANY, ANY, "rwm" }, { true, 'c', 1, 7, "rw" } };
	oci_resources_t res = { .device_rules = cfg, .n_device_rules = 2 };
	size_t n = 0;
	km_err_t *err = NULL;
	oci_device_rule_t *v = shim_devices_rules(&res, NULL, 0, &n, &err);
	if (shim_devices_attach_v2(dir, v, n, &err) < 0)
		fail_msg("%s", err->msg);
	free(v);
	char *nd = node(KMSG_MAJOR, KMSG_MINOR);
	snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
	assert_int_equal(open_in_cgroup(procs, "/dev/null"), 0);
	assert_int_equal(open_in_cgroup(procs, nd), EPERM);
	int fd = open(nd, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	close(fd);
	unlink(nd);
	free(nd);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default_list), cmocka_unit_test(test_rules_order), cmocka_unit_test(test_v1_lines),
		cmocka_unit_test(test_bpf_program),  cmocka_unit_test(test_v1_real),	 cmocka_unit_test(test_v2_real),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
