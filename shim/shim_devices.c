/* The device cgroup (v1 lines, v2 BPF program): see shim_devices.h. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "shim_devices.h"
#include "shim_file.h"

#define ANY (-1)

const oci_device_rule_t shim_devices_default[] = {
	{ true, 'c', ANY, ANY, "m" }, { true, 'b', ANY, ANY, "m" }, /* mknod; opening is what counts */
	{ true, 'c', 1, 3, "rwm" }, /* null */
	{ true, 'c', 1, 5, "rwm" }, /* zero */
	{ true, 'c', 1, 7, "rwm" }, /* full */
	{ true, 'c', 1, 8, "rwm" }, /* random */
	{ true, 'c', 1, 9, "rwm" }, /* urandom */
	{ true, 'c', 5, 0, "rwm" }, /* tty */
	{ true, 'c', 5, 2, "rwm" }, /* ptmx */
	{ true, 'c', 136, ANY, "rwm" }, /* /dev/pts/N (the console too) */
};
const size_t shim_devices_n_default = sizeof(shim_devices_default) / sizeof(shim_devices_default[0]);

oci_device_rule_t *shim_devices_rules(const oci_resources_t *res, const oci_device_t *devs, size_t n_devs,
				      size_t *n, km_err_t **err)
{
	size_t nr = res ? res->n_device_rules : 0;
	oci_device_rule_t *v = calloc(nr + shim_devices_n_default + n_devs + 1, sizeof(*v));
	if (!v)
		return km_err_set(err, ENOMEM, "device rules"), NULL;
	size_t k = 0;
	for (size_t i = 0; i < nr; i++)
		v[k++] = res->device_rules[i];
	for (size_t i = 0; i < shim_devices_n_default; i++)
		v[k++] = shim_devices_default[i];
	for (size_t i = 0; devs && i < n_devs; i++) {
		if (devs[i].type == 'p')
			continue; /* a fifo is no device to the cgroup */
		v[k] = (oci_device_rule_t){ true, devs[i].type == 'b' ? 'b' : 'c', devs[i].major, devs[i].minor, "rwm" };
		k++;
	}
	*n = k;
	return v;
}

static void num(char *buf, size_t cap, int64_t v)
{
	if (v < 0)
		snprintf(buf, cap, "*");
	else
		snprintf(buf, cap, "%" PRId64, v);
}

int shim_devices_v1_lines(const oci_device_rule_t *r, char lines[2][64])
{
	if (r->type == 'a' && r->major < 0 && r->minor < 0 && !strcmp(r->access, "rwm")) {
		snprintf(lines[0], 64, "a");
		return 1;
	}
	char ma[24], mi[24];
	num(ma, sizeof(ma), r->major);
	num(mi, sizeof(mi), r->minor);
	int n = 0;
	for (const char *t = r->type == 'a' ? "cb" : (r->type == 'b' ? "b" : "c"); *t; t++)
		snprintf(lines[n++], 64, "%c %s:%s %s", *t, ma, mi, r->access);
	return n;
}

static int write_line(const char *dir, const char *file, const char *line, km_err_t **err)
{
	char path[4096];
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
		return km_err_set(err, ENAMETOOLONG, "devices cgroup: %s", dir);
	return shim_write_file(path, 0, line, err) < 0 ? km_err_wrap(err, "devices cgroup") : 0;
}

int shim_devices_apply_v1(const char *dir, const oci_device_rule_t *rules, size_t n, km_err_t **err)
{
	if (write_line(dir, "devices.deny", "a", err) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char lines[2][64];
		int k = shim_devices_v1_lines(&rules[i], lines);
		for (int j = 0; j < k; j++)
			if (write_line(dir, rules[i].allow ? "devices.allow" : "devices.deny", lines[j], err) < 0)
				return -1;
	}
	return 0;
}

/* ---- the v2 program ---- */

/* Registers: r1 the context (struct bpf_cgroup_dev_ctx), r2 the device type, r3 the access asked
 * for, r4 major, r5 minor, r6 scratch. */
enum { R0, R1, R2, R3, R4, R5, R6 };

static struct bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
	return (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
}

static int access_bits(const char *a)
{
	int b = 0;
	for (; *a; a++)
		b |= *a == 'r' ? BPF_DEVCG_ACC_READ : *a == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
	return b;
}

#define ALL_ACCESS (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)

/* Rule `r` as "if it matches, return its verdict": at most 9 instructions into `out`, each
 * non-match jumping past the block. Returns the count. */
static size_t rule_block(const oci_device_rule_t *r, struct bpf_insn *out)
{
	size_t k = 0;
	/* jumps are written with off 0 and fixed once the block's length is known */
	size_t jumps[4], nj = 0;
	if (r->type != 'a') {
		jumps[nj++] = k;
		out[k++] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R2, 0, 0,
				r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
	}
	int acc = access_bits(r->access);
	if (acc != ALL_ACCESS) {
		out[k++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, R6, R3, 0, 0);
		/* allow: only if nothing outside it is asked; deny: if any of it is asked */
		out[k++] = insn(BPF_ALU | BPF_AND | BPF_K, R6, 0, 0, r->allow ? (~acc & ALL_ACCESS) : acc);
		jumps[nj++] = k;
		out[k++] = insn(BPF_JMP32 | (r->allow ? BPF_JNE : BPF_JEQ) | BPF_K, R6, 0, 0, 0);
	}
	if (r->major >= 0) {
		jumps[nj++] = k;
		out[k++] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R4, 0, 0, (int32_t)(uint32_t)r->major);
	}
	if (r->minor >= 0) {
		jumps[nj++] = k;
		out[k++] = insn(BPF_JMP32 | BPF_JNE | BPF_K, R5, 0, 0, (int32_t)(uint32_t)r->minor);
	}
	out[k++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, r->allow ? 1 : 0);
	out[k++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	for (size_t j = 0; j < nj; j++)
		out[jumps[j]].off = (int16_t)(k - jumps[j] - 1);
	return k;
}

struct bpf_insn *shim_devices_bpf(const oci_device_rule_t *rules, size_t n, size_t *n_insns)
{
	struct bpf_insn *p = calloc(6 + 9 * n + 2, sizeof(*p));
	if (!p)
		return NULL;
	size_t k = 0;
	/* access_type is (access << 16) | type */
	p[k++] = insn(BPF_LDX | BPF_MEM | BPF_W, R2, R1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
	p[k++] = insn(BPF_ALU64 | BPF_MOV | BPF_X, R3, R2, 0, 0);
	p[k++] = insn(BPF_ALU | BPF_AND | BPF_K, R2, 0, 0, 0xffff);
	p[k++] = insn(BPF_ALU | BPF_RSH | BPF_K, R3, 0, 0, 16);
	p[k++] = insn(BPF_LDX | BPF_MEM | BPF_W, R4, R1, offsetof(struct bpf_cgroup_dev_ctx, major), 0);
	p[k++] = insn(BPF_LDX | BPF_MEM | BPF_W, R5, R1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
	/* The last rule that matches decides: test them from the end. A rule that matches every
	 * request ends the program: the verifier refuses unreachable instructions after it. */
	bool ended = false;
	for (size_t i = n; i-- > 0 && !ended;) {
		size_t b = rule_block(&rules[i], p + k);
		k += b;
		ended = b == 2;
	}
	if (!ended) {
		p[k++] = insn(BPF_ALU64 | BPF_MOV | BPF_K, R0, 0, 0, 0);
		p[k++] = insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	}
	*n_insns = k;
	return p;
}

static long sys_bpf(int cmd, union bpf_attr *attr)
{
	return syscall(SYS_bpf, cmd, attr, sizeof(*attr));
}

/* BPF_PROG_LOAD; with `log` the verifier's messages go there (a failure's reason). */
static int load(const struct bpf_insn *prog, size_t ni, char *log, size_t log_size)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = (uint64_t)(uintptr_t)prog;
	a.insn_cnt = (uint32_t)ni;
	a.license = (uint64_t)(uintptr_t) "GPL";
	if (log) {
		log[0] = '\0';
		a.log_buf = (uint64_t)(uintptr_t)log;
		a.log_size = (uint32_t)log_size;
		a.log_level = 1;
	}
	return (int)sys_bpf(BPF_PROG_LOAD, &a);
}

int shim_devices_attach_v2(const char *dir, const oci_device_rule_t *rules, size_t n, km_err_t **err)
{
	size_t ni = 0;
	struct bpf_insn *prog = shim_devices_bpf(rules, n, &ni);
	if (!prog)
		return km_err_set(err, ENOMEM, "devices cgroup");
	int pfd = load(prog, ni, NULL, 0);
	int e = errno;
	if (pfd < 0) {
		/* again with the verifier's log, whose last line says why */
		char log[16384];
		int again = load(prog, ni, log, sizeof(log));
		if (again >= 0) {
			close(again);
			log[0] = '\0';
		}
		free(prog);
		size_t len = strlen(log);
		while (len && log[len - 1] == '\n')
			log[--len] = '\0';
		/* the verifier's reason is the line before its "processed N insns" summary */
		char *last = strrchr(log, '\n');
		if (last && !strncmp(last + 1, "processed ", 10)) {
			*last = '\0';
			last = strrchr(log, '\n');
		}
		return km_err_set(err, e, "devices cgroup: loading the BPF program (%zu instructions)%s%s", ni,
				  len ? ": " : "", last ? last + 1 : log);
	}
	free(prog);
	union bpf_attr a;
	int cfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cfd < 0) {
		e = errno;
		close(pfd);
		return km_err_set(err, e, "devices cgroup: opening %s", dir);
	}
	memset(&a, 0, sizeof(a));
	a.target_fd = (uint32_t)cfd;
	a.attach_bpf_fd = (uint32_t)pfd;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	long rc = sys_bpf(BPF_PROG_ATTACH, &a);
	e = errno;
	close(cfd);
	close(pfd); /* the attachment holds the program */
	if (rc < 0)
		return km_err_set(err, e, "devices cgroup: attaching the BPF program to %s", dir);
	return 0;
}
