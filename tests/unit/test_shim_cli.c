/*
 * Unit tests for km-shim's command line (shim_cli.c), log lines (shim_log.c) and container
 * directories (shim_state_dir.c): every flag form clients send, signals by name and number, the
 * id rule, and the directory's atomic create, lock and removal.
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
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim_cli.h"
#include "shim_log.h"
#include "shim_mgmt_client.h"
#include "shim_sha256.h"
#include "shim_state_dir.h"

#define ARGC(v) ((int)(sizeof(v) / sizeof((v)[0])))

static void parse_ok(int argc, char **argv, shim_args_t *a)
{
	km_err_t *err = NULL;
	if (shim_cli_parse(argc, argv, a, &err) != 0)
		fail_msg("parse failed: %s", err->msg);
}

static void parse_bad(int argc, char **argv, const char *want)
{
	shim_args_t a;
	km_err_t *err = NULL;
	assert_int_equal(shim_cli_parse(argc, argv, &a, &err), -1);
	assert_non_null(err);
	if (strstr(err->msg, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err->msg, want);
	km_err_free(&err);
	shim_args_free(&a);
}

/* containerd's create: globals with values, --flag value forms */
static void test_containerd_create(void **state)
{
	(void)state;
	char *v[] = {"km-shim", "--root", "/r", "--log", "/b/log.json", "--log-format", "json", "create", "--bundle",
		     "/b", "--pid-file", "/b/init.pid", "c1"};
	shim_args_t a;
	parse_ok(ARGC(v), v, &a);
	assert_string_equal(a.root, "/r");
	assert_string_equal(a.log, "/b/log.json");
	assert_int_equal(a.log_format, SHIM_LOG_JSON);
	assert_int_equal(a.cmd, SHIM_CMD_CREATE);
	assert_string_equal(a.bundle, "/b");
	assert_string_equal(a.pid_file, "/b/init.pid");
	assert_string_equal(a.id, "c1");
	assert_int_equal(a.n_rest, 0);
	shim_args_free(&a);
}

/* go-runc's restore: single-dash -no-subreaper among double-dash flags */
static void test_go_style_restore(void **state)
{
	(void)state;
	char *v[] = {"km-shim", "restore", "--detach", "--image-path", "/img", "--work-path", "/w", "--pid-file", "/p",
		     "-no-subreaper", "--bundle", "/b", "c2"};
	shim_args_t a;
	parse_ok(ARGC(v), v, &a);
	assert_int_equal(a.cmd, SHIM_CMD_RESTORE);
	assert_true(a.detach);
	assert_true(a.no_subreaper);
	assert_string_equal(a.image_path, "/img");
	assert_string_equal(a.work_path, "/w");
	assert_string_equal(a.bundle, "/b");
	assert_string_equal(a.id, "c2");
	shim_args_free(&a);
}

/* --flag=value, -flag=value, -b alias, --bool=false, flags after the id, the default root */
static void test_forms(void **state)
{
	(void)state;
	char *v[] = {"km-shim", "-debug", "run", "-b=/b", "--pid-file=/p", "c3", "-d", "--keep=false", "--preserve-fds", "2"};
	shim_args_t a;
	parse_ok(ARGC(v), v, &a);
	assert_true(a.debug);
	assert_string_equal(a.root, SHIM_DEFAULT_ROOT);
	assert_int_equal(a.cmd, SHIM_CMD_RUN);
	assert_string_equal(a.bundle, "/b");
	assert_string_equal(a.pid_file, "/p");
	assert_true(a.detach);
	assert_false(a.keep);
	assert_int_equal(a.preserve_fds, 2);
	assert_string_equal(a.id, "c3");
	shim_args_free(&a);

	/* podman passes --leave-running twice */
	char *w[] = {"km-shim", "checkpoint", "--image-path", "/b/checkpoint", "--work-path", "/b", "--leave-running",
		     "--leave-running", "c4"};
	parse_ok(ARGC(w), w, &a);
	assert_true(a.leave_running);
	assert_string_equal(a.id, "c4");
	shim_args_free(&a);

	/* "--" ends the flags: an id that starts with a dash */
	char *x[] = {"km-shim", "delete", "-f", "--", "-odd"};
	parse_ok(ARGC(x), x, &a);
	assert_true(a.force);
	assert_string_equal(a.id, "-odd");
	shim_args_free(&a);
}

static void test_help(void **state)
{
	(void)state;
	char *v[] = {"km-shim", "checkpoint", "--help"};
	shim_args_t a;
	parse_ok(ARGC(v), v, &a);
	assert_true(a.cmd_help);
	assert_int_equal(a.cmd, SHIM_CMD_CHECKPOINT);
	assert_non_null(strstr(shim_cli_usage(a.cmd), "checkpoint"));
	shim_args_free(&a);
	char *w[] = {"km-shim", "--help"};
	parse_ok(ARGC(w), w, &a);
	assert_true(a.help);
	assert_int_equal(a.cmd, SHIM_CMD_NONE);
	shim_args_free(&a);
	char *x[] = {"km-shim", "kill", "-h"};
	parse_ok(ARGC(x), x, &a);
	assert_true(a.cmd_help);
	shim_args_free(&a);
}

static void test_bad(void **state)
{
	(void)state;
	char *v1[] = {"km-shim", "create", "--bogus", "c"};
	parse_bad(ARGC(v1), v1, "flag provided but not defined: -bogus");
	char *v2[] = {"km-shim", "frobnicate"};
	parse_bad(ARGC(v2), v2, "unknown command \"frobnicate\"");
	char *v3[] = {"km-shim", "start"};
	parse_bad(ARGC(v3), v3, "\"start\" requires exactly 1 argument(s)");
	char *v4[] = {"km-shim", "create", "--bundle"};
	parse_bad(ARGC(v4), v4, "flag needs an argument: --bundle");
	char *v5[] = {"km-shim", "--log-format", "xml", "list"};
	parse_bad(ARGC(v5), v5, "invalid log-format \"xml\"");
	char *v6[] = {"km-shim", "kill", "c", "NOSUCH"};
	parse_bad(ARGC(v6), v6, "unknown signal \"NOSUCH\"");
	char *v7[] = {"km-shim", "kill", "c", "9", "extra"};
	parse_bad(ARGC(v7), v7, "maximum of 2");
	/* a flag of another command */
	char *v8[] = {"km-shim", "start", "--force", "c"};
	parse_bad(ARGC(v8), v8, "not defined: -force");
	char *v9[] = {"km-shim", "run", "--keep=maybe", "c"};
	parse_bad(ARGC(v9), v9, "invalid boolean value");
	char *v10[] = {"km-shim", "create", "--preserve-fds", "-1", "c"};
	parse_bad(ARGC(v10), v10, "not a non-negative number");
}

static void expect_signal(const char *s, int want)
{
	int sig = -2;
	km_err_t *err = NULL;
	if (shim_parse_signal(s, &sig, &err) != 0)
		fail_msg("signal \"%s\": %s", s, err->msg);
	if (sig != want)
		fail_msg("signal \"%s\" = %d, want %d", s, sig, want);
}

static void test_signals(void **state)
{
	(void)state;
	expect_signal("15", SIGTERM);
	expect_signal("9", SIGKILL);
	expect_signal("KILL", SIGKILL);
	expect_signal("SIGKILL", SIGKILL);
	expect_signal("sigterm", SIGTERM);
	expect_signal("term", SIGTERM);
	expect_signal("USR1", SIGUSR1);
	expect_signal("SIGCHLD", SIGCHLD);
	expect_signal("0", 0);
	expect_signal("64", 64);
	expect_signal("RTMIN", 34);
	expect_signal("SIGRTMIN+3", 37);
	expect_signal("RTMAX-1", 63);
	const char *bad[] = {"", "65", "-1", "9x", "SIG", "SIGFOO", "RTMIN+", "RTMIN-1", "RTMIN+31", " 9"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int sig = 12345;
		km_err_t *err = NULL;
		if (shim_parse_signal(bad[i], &sig, &err) != -1)
			fail_msg("signal \"%s\" accepted as %d", bad[i], sig);
		km_err_free(&err);
	}
	/* kill's positional signal */
	char *v[] = {"km-shim", "kill", "--all", "c", "SIGUSR2"};
	shim_args_t a;
	parse_ok(ARGC(v), v, &a);
	assert_int_equal(a.signal, SIGUSR2);
	assert_true(a.all);
	shim_args_free(&a);
	char *w[] = {"km-shim", "kill", "c"};
	parse_ok(ARGC(w), w, &a);
	assert_int_equal(a.signal, SIGTERM);
	shim_args_free(&a);
}

static void test_values(void **state)
{
	(void)state;
	int64_t b;
	km_err_t *err = NULL;
	assert_int_equal(shim_parse_bytes("512m", &b, &err), 0);
	assert_int_equal(b, 512ll << 20);
	assert_int_equal(shim_parse_bytes("1G", &b, &err), 0);
	assert_int_equal(b, 1ll << 30);
	assert_int_equal(shim_parse_bytes("2kb", &b, &err), 0);
	assert_int_equal(b, 2048);
	assert_int_equal(shim_parse_bytes("1048576", &b, &err), 0);
	assert_int_equal(b, 1048576);
	assert_int_equal(shim_parse_bytes("-1", &b, &err), 0);
	assert_int_equal(b, -1);
	assert_int_equal(shim_parse_bytes("12q", &b, &err), -1);
	km_err_free(&err);
	assert_int_equal(shim_parse_bytes("-5", &b, &err), -1);
	km_err_free(&err);
	uint64_t ns;
	assert_int_equal(shim_parse_duration("5s", &ns, &err), 0);
	assert_int_equal(ns, 5000000000ull);
	assert_int_equal(shim_parse_duration("100ms", &ns, &err), 0);
	assert_int_equal(ns, 100000000ull);
	assert_int_equal(shim_parse_duration("1m30s", &ns, &err), 0);
	assert_int_equal(ns, 90000000000ull);
	assert_int_equal(shim_parse_duration("2", &ns, &err), 0);
	assert_int_equal(ns, 2000000000ull);
	assert_int_equal(shim_parse_duration("5x", &ns, &err), -1);
	km_err_free(&err);
	char *v[] = {"km-shim", "update", "--memory", "256M", "--pids-limit=20", "--cpu-share", "512", "c"};
	shim_args_t a;
	parse_ok(ARGC(v), v, &a);
	assert_true(a.has_memory);
	assert_int_equal(a.memory, 256ll << 20);
	assert_true(a.has_pids_limit);
	assert_int_equal(a.pids_limit, 20);
	assert_true(a.has_cpu_shares);
	assert_int_equal(a.cpu_shares, 512);
	assert_false(a.has_cpu_quota);
	shim_args_free(&a);
}

static void test_ids(void **state)
{
	(void)state;
	const char *good[] = {"a", "abc-DEF_1.2+3,4", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			      "..a", "a.."};
	const char *bad[] = {"", ".", "..", "a/b", "a b", "a\nb", "/abs", "x:y", "ü", "a*"};
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		if (shim_id_check(good[i], NULL) != 0)
			fail_msg("id \"%s\" refused", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (shim_id_check(bad[i], NULL) != -1)
			fail_msg("id \"%s\" accepted", bad[i]);
	char big[1100];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(shim_id_check(big, NULL), -1);
}

static void test_log_lines(void **state)
{
	(void)state;
	char *l = shim_log_format_line(SHIM_LOG_JSON, SHIM_LOG_ERROR, "container \"x\" does not exist", 0);
	assert_string_equal(l, "{\"level\":\"error\",\"msg\":\"container \\\"x\\\" does not exist\","
			       "\"time\":\"1970-01-01T00:00:00Z\"}\n");
	free(l);
	l = shim_log_format_line(SHIM_LOG_TEXT, SHIM_LOG_WARN, "a \"b\"\n", 86400);
	assert_string_equal(l, "time=\"1970-01-02T00:00:00Z\" level=warning msg=\"a \\\"b\\\"\\n\"\n");
	free(l);
}

/* --- SHA-256 (FIPS 180-4's examples; the 56-byte one pads into a second block) --- */

static void expect_sha(const void *data, size_t len, size_t chunk, const char *want)
{
	shim_sha256_t s;
	shim_sha256_init(&s);
	for (size_t off = 0; off < len; off += chunk)
		shim_sha256_update(&s, (const char *)data + off, len - off < chunk ? len - off : chunk);
	uint8_t md[32];
	shim_sha256_final(&s, md);
	char hex[65];
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	assert_string_equal(hex, want);
}

static void test_sha256(void **state)
{
	(void)state;
	expect_sha("", 0, 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	expect_sha("abc", 3, 1, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	expect_sha(two, strlen(two), 7, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	char *m = malloc(1000000);
	memset(m, 'a', 1000000);
	expect_sha(m, 1000000, 4099, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(m);
}

/* --- the management client, against a fake km --- */

static char root[64]; /* a fresh directory per test (make_root, below) */

/* Serves one connection on listening socket `ls`: reads the request line (and a descriptor, if
 * one came: its presence is reported in the reply), answers `reply` with %s = the request. */
static void fake_km(int ls, const char *reply_fmt)
{
	int c = accept(ls, NULL, NULL);
	char line[512] = "";
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	struct iovec iov = {line, sizeof(line) - 1};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(c, &mh, 0);
	if (n <= 0)
		_exit(2);
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	bool fd = cm != NULL && cm->cmsg_type == SCM_RIGHTS;
	char out[1024];
	snprintf(out, sizeof(out), reply_fmt, line, fd ? "yes" : "no");
	if (write(c, out, strlen(out)) < 0)
		_exit(3);
	close(c);
	_exit(0);
}

/* Field values are decoded as km encodes them; %00 is refused (as km refuses it in requests:
 * a C string would end there) and a % that does not start an escape is taken as it is. */
static void test_mgmt_field_decoding(void **state)
{
	(void)state;
	shim_mgmt_reply_t r = {.line = strdup("ok a=x%00y b=%41%4 c=%zz%25")};
	assert_null(shim_mgmt_field(&r, "a"));
	char *v = shim_mgmt_field(&r, "b");
	assert_string_equal(v, "A%4");
	free(v);
	v = shim_mgmt_field(&r, "c");
	assert_string_equal(v, "%zz%");
	free(v);
	shim_mgmt_reply_free(&r);
}

static void test_mgmt_client(void **state)
{
	(void)state;
	int dfd = open(root, O_DIRECTORY | O_RDONLY);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/km.sock", root);
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(ls, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ls, 4), 0);
	km_err_t *err = NULL;
	shim_mgmt_reply_t r;

	pid_t p = fork();
	if (p == 0)
		fake_km(ls, "ok req=%s fd=%s path=/a%%20b size=12\n");
	char *label = shim_mgmt_encode("x y%z");
	assert_string_equal(label, "x%20y%25z");
	char req[64];
	snprintf(req, sizeof(req), "snapshot label=%s", label);
	free(label);
	assert_int_equal(shim_mgmt_call(dfd, req, dfd, 5000, &r, &err), 0);
	assert_null(r.code);
	char *v = shim_mgmt_field(&r, "path");
	assert_string_equal(v, "/a b");
	free(v);
	v = shim_mgmt_field(&r, "fd");
	assert_string_equal(v, "yes");
	free(v);
	v = shim_mgmt_field(&r, "req");
	assert_string_equal(v, "snapshot"); /* the request's words are separate fields */
	free(v);
	assert_null(shim_mgmt_field(&r, "nosuch"));
	shim_mgmt_reply_free(&r);
	waitpid(p, NULL, 0);

	p = fork();
	if (p == 0)
		fake_km(ls, "error snapshot-failed no room (%s, fd %s)\n");
	assert_int_equal(shim_mgmt_call(dfd, "pause", -1, 5000, &r, &err), -1);
	assert_string_equal(err->msg, "km: no room (pause, fd no) (snapshot-failed)");
	km_err_free(&err);
	waitpid(p, NULL, 0);

	p = fork();
	if (p == 0)
		fake_km(ls, "garbage %s %s\n");
	assert_int_equal(shim_mgmt_request(dfd, "status", -1, 5000, &r, &err), -1);
	assert_non_null(strstr(err->msg, "malformed"));
	km_err_free(&err);
	waitpid(p, NULL, 0);

	/* nobody listens */
	close(ls);
	assert_int_equal(shim_mgmt_request(dfd, "status", -1, 5000, &r, &err), -1);
	assert_int_equal(err->errnum, ECONNREFUSED);
	km_err_free(&err);
	close(dfd);
}

/* --- state directories --- */

static char root[64];

static int make_root(void **state)
{
	(void)state;
	strcpy(root, "/tmp/test_shim_cli.XXXXXX");
	return mkdtemp(root) == NULL ? -1 : 0;
}

static int remove_root(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static int count_entries(const char *dir)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "exit $(ls -A '%s' | wc -l)", dir);
	int r = system(cmd);
	return WEXITSTATUS(r);
}

static void test_dir_lifecycle(void **state)
{
	(void)state;
	km_err_t *err = NULL;
	shim_dir_t d;
	/* missing */
	assert_int_equal(shim_dir_open(root, "c", true, &d, &err), -1);
	assert_string_equal(err->msg, "container \"c\" does not exist");
	assert_int_equal(err->errnum, ENOENT);
	km_err_free(&err);
	/* begin: invisible until published */
	assert_int_equal(shim_dir_begin(root, "c", &d, &err), 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/c", root);
	struct stat st;
	assert_int_equal(stat(path, &st), -1);
	shim_dir_t d2;
	assert_int_equal(shim_dir_open(root, "c", false, &d2, &err), -1);
	km_err_free(&err);
	assert_int_equal(shim_dir_publish(&d, root, &err), 0);
	assert_string_equal(d.path, path);
	assert_int_equal(stat(path, &st), 0);
	/* a second create of the id */
	shim_dir_t d3;
	assert_int_equal(shim_dir_begin(root, "c", &d3, &err), -1);
	assert_string_equal(err->msg, "container \"c\" already exists");
	km_err_free(&err);
	/* the lock is held: another flock on it fails */
	char lock[160];
	snprintf(lock, sizeof(lock), "%s/lock", path);
	int fd = open(lock, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), -1);
	/* list sees it (and not the temporary names) */
	char **ids;
	assert_int_equal(shim_dir_list(root, &ids, &err), 0);
	assert_string_equal(ids[0], "c");
	assert_null(ids[1]);
	free(ids[0]);
	free(ids);
	/* remove, close: the lock is free and nothing is left */
	int f = openat(d.dirfd, "state.json", O_CREAT | O_WRONLY, 0600);
	close(f);
	assert_int_equal(shim_dir_remove(&d, &err), 0);
	shim_dir_close(&d);
	assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0);
	close(fd);
	assert_int_equal(count_entries(root), 0);
	assert_int_equal(shim_dir_open(root, "c", true, &d, &err), -1);
	km_err_free(&err);
}

/* A create killed before it published leaves a temporary directory with a free lock: a later
 * create sweeps it once it is old; a young one (its create may be about to take the lock) and
 * one whose lock is held (a create in progress) are left alone. */
static void test_dir_sweep(void **state)
{
	(void)state;
	km_err_t *err = NULL;
	char stale[128], live_path[128];
	snprintf(stale, sizeof(stale), "%s/.new-x-AAAAAA", root);
	assert_int_equal(mkdir(stale, 0700), 0);
	char young[128];
	snprintf(young, sizeof(young), "%s/.new-w-BBBBBB", root);
	assert_int_equal(mkdir(young, 0700), 0);
	struct timespec old[2] = {{time(NULL) - 60, 0}, {time(NULL) - 60, 0}};
	assert_int_equal(utimensat(AT_FDCWD, stale, old, 0), 0);
	shim_dir_t live;
	assert_int_equal(shim_dir_begin(root, "y", &live, &err), 0);
	snprintf(live_path, sizeof(live_path), "%s", live.path);
	shim_dir_t d;
	assert_int_equal(shim_dir_begin(root, "z", &d, &err), 0);
	struct stat st;
	assert_int_equal(stat(stale, &st), -1);
	assert_int_equal(stat(young, &st), 0);
	assert_int_equal(stat(live_path, &st), 0);
	assert_int_equal(rmdir(young), 0);
	assert_int_equal(shim_dir_remove(&d, &err), 0);
	shim_dir_close(&d);
	assert_int_equal(shim_dir_remove(&live, &err), 0);
	shim_dir_close(&live);
	assert_int_equal(count_entries(root), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mgmt_field_decoding),
	    cmocka_unit_test(test_containerd_create),
	    cmocka_unit_test(test_go_style_restore),
	    cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_help),
	    cmocka_unit_test(test_bad),
	    cmocka_unit_test(test_signals),
	    cmocka_unit_test(test_values),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_log_lines),
	    cmocka_unit_test(test_sha256),
	    cmocka_unit_test_setup_teardown(test_dir_lifecycle, make_root, remove_root),
	    cmocka_unit_test_setup_teardown(test_dir_sweep, make_root, remove_root),
	    cmocka_unit_test_setup_teardown(test_mgmt_client, make_root, remove_root),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
