/* oci/oci_spec: the starter config.json parses back with oci_config_parse into what it promises. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "oci_config.h"
#include "oci_spec.h"

static oci_config_t *round_trip(const char *const *args)
{
	km_err_t *err = NULL;
	char *text = oci_spec_default(args, &err);
	assert_non_null(text);
	assert_null(err);
	assert_int_equal(text[strlen(text) - 1], '\n');
	oci_config_t *cfg = oci_config_parse(text, strlen(text), "config.json", &err);
	if (cfg == NULL)
		fail_msg("%s\n%s", err->msg, text);
	free(text);
	return cfg;
}

static void test_default(void **state)
{
	(void)state;
	oci_config_t *cfg = round_trip(NULL);
	const oci_process_t *p = cfg->process;
	assert_string_equal(p->args[0], "sh");
	assert_null(p->args[1]);
	assert_false(p->terminal);
	assert_string_equal(p->cwd, "/");
	assert_int_equal(p->uid, 0);
	assert_int_equal(p->gid, 0);
	assert_true(p->no_new_privileges);
	assert_int_equal(p->n_rlimits, 1);
	assert_int_equal(p->rlimits[0].resource, RLIMIT_NOFILE);
	assert_int_equal(p->rlimits[0].soft, 1024);
	assert_int_equal(p->rlimits[0].hard, 1024);
	assert_string_equal(p->caps->bounding[0], "CAP_AUDIT_WRITE");
	assert_null(p->caps->bounding[3]);
	assert_null(p->caps->ambient);
	assert_string_equal(cfg->root_path, "rootfs");
	assert_true(cfg->root_readonly);
	static const char *const dests[] = { "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys" };
	assert_int_equal(cfg->n_mounts, 6);
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(cfg->mounts[i].destination, dests[i]);
	assert_string_equal(cfg->mounts[5].options[3], "ro");
	assert_int_equal(cfg->linux_->n_namespaces, 5);
	static const oci_ns_type_t ns[] = { OCI_NS_PID, OCI_NS_NETWORK, OCI_NS_IPC, OCI_NS_UTS, OCI_NS_MOUNT };
	for (size_t i = 0; i < 5; i++)
		assert_non_null(oci_config_namespace(cfg, ns[i]));
	assert_null(oci_config_namespace(cfg, OCI_NS_USER));
	assert_string_equal(cfg->linux_->masked_paths[2], "/proc/kcore");
	assert_string_equal(cfg->linux_->readonly_paths[3], "/proc/sys");
	assert_int_equal(cfg->linux_->resources->n_device_rules, 1);
	oci_config_free(cfg);
}

static void test_args(void **state)
{
	(void)state;
	const char *const args[] = { "/bin/counter", "--every", "1s", "", NULL };
	oci_config_t *cfg = round_trip(args);
	for (int i = 0; i < 4; i++)
		assert_string_equal(cfg->process->args[i], args[i]);
	assert_null(cfg->process->args[4]);
	oci_config_free(cfg);
	const char *const none[] = { NULL };
	cfg = round_trip(none);
	assert_string_equal(cfg->process->args[0], "sh");
	oci_config_free(cfg);
}

static void test_non_utf8_arg(void **state)
{
	(void)state;
	const char *const args[] = { "/bin/x", "\xff", NULL };
	km_err_t *err = NULL;
	assert_null(oci_spec_default(args, &err));
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "process.args"));
	km_err_free(&err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_non_utf8_arg),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
