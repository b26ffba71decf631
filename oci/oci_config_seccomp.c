/* config.json's linux.seccomp object: see oci_config.h (oci_seccomp_t). */
#include "oci_config_parts.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Indexed by oci_seccomp_action_t; KILL_THREAD is another name of KILL. */
static const char *const action_names[] = {
	"SCMP_ACT_KILL",  "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
	"SCMP_ACT_TRACE", "SCMP_ACT_ALLOW",	   "SCMP_ACT_LOG",  "SCMP_ACT_NOTIFY",
	NULL,
};

/* Indexed by oci_seccomp_op_t. */
static const char *const op_names[] = {
	"SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
	"SCMP_CMP_MASKED_EQ", NULL,
};

/* The runtime-spec's list of architectures and filter flags. */
static const char *const arch_names[] = {
	"SCMP_ARCH_X86",	 "SCMP_ARCH_X86_64",	"SCMP_ARCH_X32",	 "SCMP_ARCH_ARM",
	"SCMP_ARCH_AARCH64",	 "SCMP_ARCH_MIPS",	"SCMP_ARCH_MIPS64",	 "SCMP_ARCH_MIPS64N32",
	"SCMP_ARCH_MIPSEL",	 "SCMP_ARCH_MIPSEL64",	"SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
	"SCMP_ARCH_PPC64",	 "SCMP_ARCH_PPC64LE",	"SCMP_ARCH_S390",	 "SCMP_ARCH_S390X",
	"SCMP_ARCH_PARISC",	 "SCMP_ARCH_PARISC64",	"SCMP_ARCH_RISCV64",	 "SCMP_ARCH_LOONGARCH64",
	NULL,
};

static const char *const flag_names[] = {
	"SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
	"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", NULL,
};

/* errno values a filter can return (SECCOMP_RET_DATA holds 16 bits, the kernel's errnos < 4096). */
#define ERRNO_MAX 4095

static int parse_action(oci_jpath_t *p, const json_t *obj, const char *key, oci_seccomp_action_t *out)
{
	char *name = NULL, q[80];
	if (oci_j_string(p, obj, key, true, &name) < 0)
		return -1;
	int a = strcmp(name, "SCMP_ACT_KILL_THREAD") == 0 ? (int)OCI_SCMP_ACT_KILL : oci_name_index(action_names, name);
	if (a < 0)
		oci_jp_fail_at(p, key, "unknown action \"%s\"", oci_jquote(name, q, sizeof(q)));
	free(name);
	*out = a;
	return a < 0 ? -1 : 0;
}

/* An errno return is only meaningful to ERRNO and TRACE; the spec makes it an error elsewhere. */
static int parse_errno(oci_jpath_t *p, const json_t *obj, const char *key, oci_seccomp_action_t action,
		       bool *has, unsigned *out)
{
	uint64_t e = 0;
	if (oci_j_u64(p, obj, key, false, 0, ERRNO_MAX, has, &e) < 0)
		return -1;
	if (*has && action != OCI_SCMP_ACT_ERRNO && action != OCI_SCMP_ACT_TRACE)
		return oci_jp_fail_at(p, key, "is only allowed with SCMP_ACT_ERRNO or SCMP_ACT_TRACE");
	*out = e;
	return 0;
}

static int check_names(oci_jpath_t *p, const json_t *obj, const char *key, const char *const *names,
		       const char *what, char ***out)
{
	char q[80];
	if (oci_j_strv(p, obj, key, false, false, out) < 0)
		return -1;
	for (size_t i = 0; *out != NULL && (*out)[i] != NULL; i++) {
		if (oci_name_index(names, (*out)[i]) < 0) {
			size_t mark = oci_jp_key(p, key);
			oci_jp_index(p, i);
			oci_jp_fail(p, "unknown %s \"%s\"", what, oci_jquote((*out)[i], q, sizeof(q)));
			oci_jp_restore(p, mark);
			return -1;
		}
	}
	return 0;
}

static int parse_arg(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_seccomp_arg_t *a = &(*(oci_seccomp_arg_t **)ctx)[i];
	uint64_t index = 0;
	char *op = NULL, q[80];
	if (oci_j_u64(p, obj, "index", true, 0, 5, NULL, &index) < 0 ||
	    oci_j_u64(p, obj, "value", true, 0, UINT64_MAX, NULL, &a->value) < 0 ||
	    oci_j_u64(p, obj, "valueTwo", false, 0, UINT64_MAX, NULL, &a->value_two) < 0 ||
	    oci_j_string(p, obj, "op", true, &op) < 0)
		return -1;
	a->index = index;
	int o = oci_name_index(op_names, op);
	if (o < 0)
		oci_jp_fail_at(p, "op", "unknown operator \"%s\"", oci_jquote(op, q, sizeof(q)));
	free(op);
	a->op = o;
	return o < 0 ? -1 : 0;
}

static int parse_rule(oci_jpath_t *p, const json_t *obj, size_t i, void *ctx)
{
	oci_seccomp_rule_t *r = &(*(oci_seccomp_rule_t **)ctx)[i];
	json_t *args;
	if (oci_j_strv(p, obj, "names", true, true, &r->names) < 0 || parse_action(p, obj, "action", &r->action) < 0 ||
	    parse_errno(p, obj, "errnoRet", r->action, &r->has_errno_ret, &r->errno_ret) < 0 ||
	    oci_j_array(p, obj, "args", false, &args) < 0)
		return -1;
	if (args == NULL || json_array_size(args) == 0)
		return 0;
	if ((r->args = calloc(json_array_size(args), sizeof(*r->args))) == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	r->n_args = json_array_size(args);
	size_t mark = oci_jp_key(p, "args");
	int rc = oci_j_each_object(p, args, parse_arg, &r->args);
	oci_jp_restore(p, mark);
	return rc;
}

static bool uses_notify(const oci_seccomp_t *sc)
{
	if (sc->default_action == OCI_SCMP_ACT_NOTIFY)
		return true;
	for (size_t i = 0; i < sc->n_rules; i++)
		if (sc->rules[i].action == OCI_SCMP_ACT_NOTIFY)
			return true;
	return false;
}

static int parse_rules(oci_jpath_t *p, const json_t *obj, oci_seccomp_t *sc)
{
	json_t *rules;
	if (oci_j_array(p, obj, "syscalls", false, &rules) < 0)
		return -1;
	if (rules == NULL || json_array_size(rules) == 0)
		return 0;
	if ((sc->rules = calloc(json_array_size(rules), sizeof(*sc->rules))) == NULL)
		return km_err_set(p->err, ENOMEM, "%s", p->what);
	sc->n_rules = json_array_size(rules);
	size_t mark = oci_jp_key(p, "syscalls");
	int rc = oci_j_each_object(p, rules, parse_rule, &sc->rules);
	oci_jp_restore(p, mark);
	return rc;
}

int oci_parse_seccomp(oci_jpath_t *p, const json_t *obj, oci_seccomp_t *sc)
{
	if (parse_action(p, obj, "defaultAction", &sc->default_action) < 0 ||
	    parse_errno(p, obj, "defaultErrnoRet", sc->default_action, &sc->has_default_errno_ret,
			&sc->default_errno_ret) < 0 ||
	    check_names(p, obj, "architectures", arch_names, "architecture", &sc->architectures) < 0 ||
	    check_names(p, obj, "flags", flag_names, "flag", &sc->flags) < 0 ||
	    oci_j_string(p, obj, "listenerPath", false, &sc->listener_path) < 0 || parse_rules(p, obj, sc) < 0)
		return -1;
	if (sc->listener_path != NULL && !oci_is_abs(sc->listener_path))
		return oci_jp_fail_at(p, "listenerPath", "must be an absolute path");
	if (uses_notify(sc) && sc->listener_path == NULL)
		return oci_jp_fail_at(p, "listenerPath", "is required by SCMP_ACT_NOTIFY");
	return 0;
}

void oci_seccomp_free(oci_seccomp_t *sc)
{
	if (sc == NULL)
		return;
	oci_strv_free(sc->architectures);
	oci_strv_free(sc->flags);
	free(sc->listener_path);
	for (size_t i = 0; i < sc->n_rules; i++) {
		oci_strv_free(sc->rules[i].names);
		free(sc->rules[i].args);
	}
	free(sc->rules);
	free(sc);
}
