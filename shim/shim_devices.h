/*
 * The device cgroup of a container, as runc sets it: everything denied, then the config's
 * linux.resources.devices rules in order, then the default list (shim_devices_default), then an
 * "rwm" allow for each linux.devices node. km opens files for the guest inside the container, so
 * this is what keeps a device node shipped in the rootfs (an image's /dev/sda) out of reach.
 *
 * cgroup v1: lines written to devices.deny / devices.allow. Pure cgroup v2: a
 * BPF_PROG_TYPE_CGROUP_DEVICE program attached to the container's cgroup (BPF_F_ALLOW_MULTI, so
 * the programs of its ancestors still apply). The program takes the LAST rule that matches a
 * request (the rules' order, as the OCI spec asks); an allow rule matches when it grants every
 * access asked for, a deny rule when it names any of them; nothing matching is denied.
 */
#ifndef SHIM_DEVICES_H
#define SHIM_DEVICES_H

#include <linux/bpf.h>
#include <stddef.h>

#include "km_error.h"
#include "oci_config.h"

/* runc's default allow list: mknod of any char or block device; null, zero, full, random,
 * urandom, tty, ptmx and every /dev/pts/N read/write. */
extern const oci_device_rule_t shim_devices_default[];
extern const size_t shim_devices_n_default;

/* The whole ordered list for a container (see above); `res` and `devs` may be NULL. Fifos in
 * `devs` add no rule, 'u' counts as 'c'. Caller frees. NULL with *err on ENOMEM. */
oci_device_rule_t *shim_devices_rules(const oci_resources_t *res, const oci_device_t *devs, size_t n_devs,
				      size_t *n, km_err_t **err);

/* The v1 lines of rule `r` into lines[0..1] (each at most 64 bytes): "c 1:3 rwm", "b 8:* r"; the
 * all-devices "rwm" rule is "a" (the kernel's reset of the whole list); another type-'a' rule is
 * its "c" and "b" lines (the kernel reads "a" alone whatever follows it). Returns the count. The
 * file is devices.allow or devices.deny after r->allow. */
int shim_devices_v1_lines(const oci_device_rule_t *r, char lines[2][64]);

/* v1: writes "a" to <dir>/devices.deny, then each rule to devices.allow or devices.deny. Errors
 * name the file and the line. */
int shim_devices_apply_v1(const char *dir, const oci_device_rule_t *rules, size_t n, km_err_t **err);

/* The BPF program for `rules` (see above for its semantics): malloc'd, *n_insns set; NULL on
 * ENOMEM. */
struct bpf_insn *shim_devices_bpf(const oci_device_rule_t *rules, size_t n, size_t *n_insns);

/* v2: loads shim_devices_bpf(rules) and attaches it to the cgroup directory `dir` as
 * BPF_CGROUP_DEVICE. Errors name the step and the directory. */
int shim_devices_attach_v2(const char *dir, const oci_device_rule_t *rules, size_t n, km_err_t **err);

#endif
