/*
 * libFuzzer target for config.json (oci_config_parse): no input may crash, leak or hang the
 * parser, and whatever it accepts must keep the promises of oci/oci_config.h, which km-shim
 * relies on without checking again (absolute paths, non-empty args, known names, ranges).
 * Build and run: make fuzz-oci (tests/fuzz/README.md).
 */
#include "fuzz_oci_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "oci_config.h"

static void broken(const char *what)
{
	fprintf(stderr, "fuzz_oci_config: accepted config breaks a promise: %s\n", what);
	abort();
}

#define PROMISE(cond)                    \
	do {                             \
		if (!(cond))             \
			broken(#cond);   \
	} while (0)

static void check_strv(char **v, int (*ok)(const char *))
{
	for (size_t i = 0; v != NULL && v[i] != NULL; i++)
		if (ok != NULL && !ok(v[i]))
			broken("a string of a vector");
}

static int is_abs(const char *s)
{
	return s != NULL && s[0] == '/';
}

static int is_env(const char *s)
{
	const char *eq = strchr(s, '=');
	return eq != NULL && eq != s;
}

static int is_cap(const char *s)
{
	return strncmp(s, "CAP_", 4) == 0;
}

static void check_process(const oci_process_t *p)
{
	PROMISE(p != NULL);
	PROMISE(is_abs(p->cwd));
	PROMISE(p->args != NULL && p->args[0] != NULL);
	check_strv(p->args, NULL);
	check_strv(p->env, is_env);
	PROMISE(p->uid != (uid_t)-1 && p->gid != (gid_t)-1);
	PROMISE(!p->has_umask || p->umask <= 0777);
	PROMISE(!p->has_console_size || p->terminal);
	PROMISE(!p->has_oom_score_adj || (p->oom_score_adj >= -1000 && p->oom_score_adj <= 1000));
	PROMISE(p->n_additional_gids == 0 || p->additional_gids != NULL);
	for (size_t i = 0; i < p->n_additional_gids; i++)
		PROMISE(p->additional_gids[i] != (gid_t)-1);
	for (size_t i = 0; i < p->n_rlimits; i++) {
		PROMISE(p->rlimits[i].resource >= 0 && p->rlimits[i].resource < RLIMIT_NLIMITS);
		PROMISE(p->rlimits[i].soft <= p->rlimits[i].hard);
		for (size_t j = 0; j < i; j++)
			PROMISE(p->rlimits[j].resource != p->rlimits[i].resource);
	}
	if (p->caps != NULL) {
		check_strv(p->caps->bounding, is_cap);
		check_strv(p->caps->effective, is_cap);
		check_strv(p->caps->inheritable, is_cap);
		check_strv(p->caps->permitted, is_cap);
		check_strv(p->caps->ambient, is_cap);
	}
}

static void check_seccomp(const oci_seccomp_t *sc)
{
	PROMISE(sc->default_action >= OCI_SCMP_ACT_KILL && sc->default_action <= OCI_SCMP_ACT_NOTIFY);
	PROMISE(!sc->has_default_errno_ret || sc->default_errno_ret <= 4095);
	for (size_t i = 0; i < sc->n_rules; i++) {
		const oci_seccomp_rule_t *r = &sc->rules[i];
		PROMISE(r->names != NULL && r->names[0] != NULL);
		PROMISE(r->action >= OCI_SCMP_ACT_KILL && r->action <= OCI_SCMP_ACT_NOTIFY);
		PROMISE(!r->has_errno_ret || r->errno_ret <= 4095);
		PROMISE(r->action != OCI_SCMP_ACT_NOTIFY || sc->listener_path != NULL);
		for (size_t j = 0; j < r->n_args; j++) {
			PROMISE(r->args[j].index < 6);
			PROMISE(r->args[j].op >= OCI_SCMP_CMP_NE && r->args[j].op <= OCI_SCMP_CMP_MASKED_EQ);
		}
	}
}

static void check_linux(const oci_linux_t *lx)
{
	for (size_t i = 0; i < lx->n_namespaces; i++) {
		PROMISE(lx->namespaces[i].type >= 0 && lx->namespaces[i].type < OCI_NS_COUNT);
		PROMISE(lx->namespaces[i].path == NULL || is_abs(lx->namespaces[i].path));
		for (size_t j = 0; j < i; j++)
			PROMISE(lx->namespaces[j].type != lx->namespaces[i].type);
	}
	for (size_t i = 0; i < lx->n_uid_mappings; i++)
		PROMISE(lx->uid_mappings[i].size > 0 &&
			(uint64_t)lx->uid_mappings[i].host_id + lx->uid_mappings[i].size - 1 <= UINT32_MAX);
	for (size_t i = 0; i < lx->n_gid_mappings; i++)
		PROMISE(lx->gid_mappings[i].size > 0);
	for (size_t i = 0; i < lx->n_devices; i++) {
		const oci_device_t *d = &lx->devices[i];
		PROMISE(is_abs(d->path));
		PROMISE(d->type == 'c' || d->type == 'b' || d->type == 'u' || d->type == 'p');
		PROMISE(d->type == 'p' || (d->major >= 0 && d->minor >= 0));
	}
	if (lx->resources != NULL) {
		PROMISE(!lx->resources->has_memory_limit || lx->resources->memory_limit >= -1);
	}
	check_strv(lx->masked_paths, is_abs);
	check_strv(lx->readonly_paths, is_abs);
	for (size_t i = 0; i < lx->n_sysctl; i++)
		PROMISE(lx->sysctl[i].key != NULL && lx->sysctl[i].key[0] != '\0' && lx->sysctl[i].value != NULL);
	if (lx->seccomp != NULL)
		check_seccomp(lx->seccomp);
}

static void check_config(const oci_config_t *cfg)
{
	PROMISE(cfg->oci_version != NULL && cfg->oci_version[0] != '\0');
	check_process(cfg->process);
	PROMISE(cfg->root_path != NULL && cfg->root_path[0] != '\0');
	for (size_t i = 0; i < cfg->n_mounts; i++)
		PROMISE(is_abs(cfg->mounts[i].destination));
	if (cfg->linux_ != NULL)
		check_linux(cfg->linux_);
	for (int k = 0; k < OCI_HOOK_KINDS; k++)
		for (size_t i = 0; i < cfg->n_hooks[k]; i++) {
			PROMISE(is_abs(cfg->hooks[k][i].path));
			PROMISE(!cfg->hooks[k][i].has_timeout || cfg->hooks[k][i].timeout > 0);
		}
	for (size_t i = 0; i < cfg->n_annotations; i++) {
		PROMISE(cfg->annotations[i].key[0] != '\0' && cfg->annotations[i].value != NULL);
		PROMISE(oci_config_annotation(cfg, cfg->annotations[i].key) != NULL);
	}
	for (int t = 0; t < OCI_NS_COUNT; t++)
		(void)oci_config_namespace(cfg, t);
}

/* A refusal is one printable line naming the source. */
static void check_refusal(const km_err_t *err)
{
	if (err == NULL || err->msg == NULL)
		broken("refused without an error");
	if (strncmp(err->msg, "config.json: ", 13) != 0) {
		fprintf(stderr, "fuzz_oci_config: message does not name config.json: %s\n", err->msg);
		abort();
	}
	for (const char *c = err->msg; *c != '\0'; c++) {
		if (*c < 0x20 || *c >= 0x7f) {
			fprintf(stderr, "fuzz_oci_config: message is not one printable line: %s\n", err->msg);
			abort();
		}
	}
}

int km_fuzz_oci_config_one(const uint8_t *data, size_t size, char *msg, size_t msg_size)
{
	km_err_t *err = NULL;
	oci_config_t *cfg = oci_config_parse((const char *)data, size, "config.json", &err);
	if (cfg != NULL) {
		if (err != NULL)
			broken("accepted with an error set");
		check_config(cfg);
		oci_config_free(cfg);
		return 1;
	}
	check_refusal(err);
	if (msg_size > 0)
		snprintf(msg, msg_size, "%s", err->msg);
	km_err_free(&err);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	km_fuzz_oci_config_one(data, size, NULL, 0);
	return 0;
}
