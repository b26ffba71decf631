/*
 * oci/oci_state: state.json round trip, atomic replacement (a failed write leaves the old record
 * and no temporary file), corrupt or hostile records refused with the file named, the pid
 * liveness check (start time, reuse, zombies, a command name with ") "), and the OCI state JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "oci_state.h"

static char dir[64];

static int make_dir(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/test_oci_state.XXXXXX");
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_dir(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *ann[] = { "org.b=2", "org.a=x=y", "empty=", NULL };

static oci_state_t sample(void)
{
	oci_state_t st = {
		.id = "c1",
		.bundle = "/b/c1",
		.rootfs = "/b/c1/rootfs",
		.status = OCI_STATUS_PAUSED,
		.pid = 4242,
		.pid_start_time = 123456789012ull,
		.created = "2026-11-30T14:00:00.123456789Z",
		.owner = "",
		.config_digest = "sha256:00ff",
		.mgmt_socket = "/run/km-shim/c1/km.sock",
		.cgroup_path = "/km/c1",
		.restored_from = "/b/c1/checkpoint",
		.annotations = ann,
	};
	return st;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return buf;
}

static void put(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_round_trip(void **state)
{
	(void)state;
	oci_state_t st = sample();
	km_err_t *err = NULL;
	assert_int_equal(oci_state_write(dir, &st, &err), 0);
	assert_null(err);
	char path[128];
	snprintf(path, sizeof(path), "%s/state.json", dir);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	oci_state_t *r = oci_state_read(dir, &err);
	assert_non_null(r);
	assert_string_equal(r->id, "c1");
	assert_string_equal(r->bundle, "/b/c1");
	assert_string_equal(r->rootfs, "/b/c1/rootfs");
	assert_int_equal(r->status, OCI_STATUS_PAUSED);
	assert_int_equal(r->pid, 4242);
	assert_true(r->pid_start_time == 123456789012ull);
	assert_string_equal(r->created, st.created);
	assert_string_equal(r->owner, "");
	assert_string_equal(r->config_digest, "sha256:00ff");
	assert_string_equal(r->mgmt_socket, st.mgmt_socket);
	assert_string_equal(r->cgroup_path, "/km/c1");
	assert_string_equal(r->restored_from, "/b/c1/checkpoint");
	/* annotations come back sorted by key */
	assert_string_equal(r->annotations[0], "empty=");
	assert_string_equal(r->annotations[1], "org.a=x=y");
	assert_string_equal(r->annotations[2], "org.b=2");
	assert_null(r->annotations[3]);
	oci_state_free(r);
}

static void test_optional_fields_absent(void **state)
{
	(void)state;
	oci_state_t st = sample();
	st.config_digest = st.mgmt_socket = st.cgroup_path = st.restored_from = NULL;
	st.annotations = NULL;
	st.status = OCI_STATUS_CREATING;
	st.pid = 0;
	st.pid_start_time = 0;
	km_err_t *err = NULL;
	assert_int_equal(oci_state_write(dir, &st, &err), 0);
	oci_state_t *r = oci_state_read(dir, &err);
	assert_non_null(r);
	assert_int_equal(r->status, OCI_STATUS_CREATING);
	assert_null(r->config_digest);
	assert_null(r->mgmt_socket);
	assert_null(r->cgroup_path);
	assert_null(r->restored_from);
	assert_null(r->annotations);
	assert_false(oci_state_pid_alive(r));
	oci_state_free(r);
}

static int count_entries(void)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.' || strncmp(e->d_name, ".state.json.", 12) == 0;
	closedir(d);
	return n;
}

/* A write that fails part-way (the file size limit makes write() fail with EFBIG, even for root,
 * unlike a read-only directory) leaves the old record whole and no temporary file. */
static void test_failed_write_keeps_old(void **state)
{
	(void)state;
	oci_state_t st = sample();
	km_err_t *err = NULL;
	assert_int_equal(oci_state_write(dir, &st, &err), 0);
	char path[128], before[8192];
	snprintf(path, sizeof(path), "%s/state.json", dir);
	strcpy(before, slurp(path));

	struct rlimit old, small = { .rlim_cur = 16 };
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	small.rlim_max = old.rlim_max;
	void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
	st.status = OCI_STATUS_STOPPED;
	int rc = oci_state_write(dir, &st, &err);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, prev);

	assert_int_equal(rc, -1);
	assert_non_null(err);
	assert_int_equal(err->errnum, EFBIG);
	assert_non_null(strstr(err->msg, path));
	km_err_free(&err);
	assert_string_equal(slurp(path), before);
	assert_int_equal(count_entries(), 1);
	oci_state_t *r = oci_state_read(dir, &err);
	assert_non_null(r);
	assert_int_equal(r->status, OCI_STATUS_PAUSED);
	oci_state_free(r);
}

static void test_write_into_missing_dir(void **state)
{
	(void)state;
	oci_state_t st = sample();
	km_err_t *err = NULL;
	char missing[128];
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	assert_int_equal(oci_state_write(missing, &st, &err), -1);
	assert_int_equal(err->errnum, ENOENT);
	assert_non_null(strstr(err->msg, missing));
	km_err_free(&err);
}

/* A non-UTF-8 string cannot be written as JSON: refused, not written mangled. */
static void test_write_non_utf8(void **state)
{
	(void)state;
	oci_state_t st = sample();
	st.bundle = "/b/\xff";
	km_err_t *err = NULL;
	assert_int_equal(oci_state_write(dir, &st, &err), -1);
	assert_non_null(strstr(err->msg, "not UTF-8"));
	km_err_free(&err);
	assert_int_equal(count_entries(), 0);
}

static void read_refused(const char *want_suffix)
{
	km_err_t *err = NULL;
	char want[256];
	snprintf(want, sizeof(want), "%s/state.json%s", dir, want_suffix);
	oci_state_t *r = oci_state_read(dir, &err);
	if (r != NULL)
		fail_msg("accepted, wanted %s", want);
	assert_non_null(err);
	if (strcmp(err->msg, want) != 0)
		fail_msg("got  %s\nwant %s", err->msg, want);
	km_err_free(&err);
}

#define GOOD_TAIL "\"created\":\"t\",\"owner\":\"\"}"

static void test_corrupt(void **state)
{
	(void)state;
	km_err_t *err = NULL;
	assert_null(oci_state_read(dir, &err));
	assert_int_equal(err->errnum, ENOENT);
	km_err_free(&err);
	read_refused(": No such file or directory");
	put("state.json", "");
	read_refused(": invalid JSON at line 1 column 0: '[' or '{' expected near end of file");
	put("state.json", "{\"id\":\"c1\",\"bundle\":");
	read_refused(": invalid JSON at line 1 column 20: unexpected token near end of file");
	put("state.json", "\x7f" "ELF\x01\x02");
	read_refused(": invalid JSON at line 1 column 1: '[' or '{' expected near '?'");
	put("state.json", "[]");
	read_refused(": must be a JSON object");
	put("state.json", "{\"bundle\":\"/b\",\"rootfs\":\"/r\",\"status\":\"running\",\"pid\":1,\"pidStartTime\":1," GOOD_TAIL);
	read_refused(": id: is required");
	put("state.json", "{\"id\":\"\",\"bundle\":\"/b\",\"rootfs\":\"/r\",\"status\":\"running\",\"pid\":1,\"pidStartTime\":1," GOOD_TAIL);
	read_refused(": id: must not be empty");
	put("state.json", "{\"id\":\"c\",\"bundle\":\"b\",\"rootfs\":\"/r\",\"status\":\"running\",\"pid\":1,\"pidStartTime\":1," GOOD_TAIL);
	read_refused(": bundle: must be an absolute path");
	put("state.json", "{\"id\":\"c\",\"bundle\":\"/b\",\"rootfs\":\"r\",\"status\":\"running\",\"pid\":1,\"pidStartTime\":1," GOOD_TAIL);
	read_refused(": rootfs: must be an absolute path");
	put("state.json", "{\"id\":\"c\",\"bundle\":\"/b\",\"rootfs\":\"/r\",\"status\":\"zombie\",\"pid\":1,\"pidStartTime\":1," GOOD_TAIL);
	read_refused(": status: unknown status \"zombie\"");
	put("state.json", "{\"id\":\"c\",\"bundle\":\"/b\",\"rootfs\":\"/r\",\"status\":\"running\",\"pid\":-1,\"pidStartTime\":1," GOOD_TAIL);
	read_refused(": pid: must be an integer from 0 to 2147483647");
	put("state.json", "{\"id\":\"c\",\"bundle\":\"/b\",\"rootfs\":\"/r\",\"status\":\"running\",\"pid\":\"1\",\"pidStartTime\":1," GOOD_TAIL);
	read_refused(": pid: must be an integer from 0 to 2147483647");
	put("state.json", "{\"id\":\"c\",\"bundle\":\"/b\",\"rootfs\":\"/r\",\"status\":\"running\",\"pid\":1," GOOD_TAIL);
	read_refused(": pidStartTime: is required");
	put("state.json", "{\"id\":\"c\",\"id\":\"d\"}");
	read_refused(": invalid JSON at line 1 column 14: duplicate object key near '\"id\"'");
	put("state.json", "{\"id\":\"c\",\"bundle\":\"/b\",\"rootfs\":\"/r\",\"status\":\"running\",\"pid\":1,\"pidStartTime\":1,"
			  "\"annotations\":{\"k\":1}," GOOD_TAIL);
	read_refused(": annotations.k: must be a string");
}

static void test_not_a_regular_file(void **state)
{
	(void)state;
	char path[128];
	snprintf(path, sizeof(path), "%s/state.json", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	read_refused(": not a regular file of at most 1 MiB");
	rmdir(path);
	/* a symlink planted as state.json is not followed */
	assert_int_equal(symlink("/etc/passwd", path), 0);
	read_refused(": Too many levels of symbolic links");
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	read_refused(": not a regular file of at most 1 MiB");
	unlink(path);
	/* too big */
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < (1 << 20) + 1; i++)
		fputc(' ', f);
	fclose(f);
	read_refused(": not a regular file of at most 1 MiB");
}

static void test_state_json(void **state)
{
	(void)state;
	oci_state_t st = sample();
	km_err_t *err = NULL;
	char *j = oci_state_to_json(&st, OCI_STATUS_RUNNING, &err);
	assert_non_null(j);
	assert_string_equal(j, "{\n"
			       "  \"ociVersion\": \"1.0.2\",\n"
			       "  \"id\": \"c1\",\n"
			       "  \"pid\": 4242,\n"
			       "  \"status\": \"running\",\n"
			       "  \"bundle\": \"/b/c1\",\n"
			       "  \"rootfs\": \"/b/c1/rootfs\",\n"
			       "  \"created\": \"2026-11-30T14:00:00.123456789Z\",\n"
			       "  \"owner\": \"\",\n"
			       "  \"annotations\": {\n"
			       "    \"empty\": \"\",\n"
			       "    \"org.a\": \"x=y\",\n"
			       "    \"org.b\": \"2\"\n"
			       "  }\n"
			       "}");
	free(j);
	/* no annotations: none printed, as runc omits an empty map */
	st.annotations = NULL;
	st.pid = 0;
	j = oci_state_to_json(&st, OCI_STATUS_STOPPED, &err);
	assert_non_null(j);
	assert_null(strstr(j, "annotations"));
	assert_non_null(strstr(j, "\"pid\": 0,\n  \"status\": \"stopped\""));
	free(j);
}

static void test_status_names(void **state)
{
	(void)state;
	assert_string_equal(oci_status_name(OCI_STATUS_CREATING), "creating");
	assert_string_equal(oci_status_name(OCI_STATUS_CREATED), "created");
	assert_string_equal(oci_status_name(OCI_STATUS_RUNNING), "running");
	assert_string_equal(oci_status_name(OCI_STATUS_PAUSED), "paused");
	assert_string_equal(oci_status_name(OCI_STATUS_STOPPED), "stopped");
	assert_string_equal(oci_status_name((oci_status_t)99), "unknown");
	oci_state_free(NULL);
}

static void test_pid_alive(void **state)
{
	(void)state;
	oci_state_t st = sample();
	st.pid = getpid();
	st.pid_start_time = oci_pid_start_time(getpid());
	assert_true(st.pid_start_time != 0);
	assert_true(oci_state_pid_alive(&st));
	/* the same pid with another start time: a reused pid, not the container */
	st.pid_start_time++;
	assert_false(oci_state_pid_alive(&st));
	st.pid = 0;
	assert_false(oci_state_pid_alive(&st));
	assert_true(oci_pid_start_time(0) == 0);
	assert_true(oci_pid_start_time(-1) == 0);
	assert_false(oci_state_pid_alive(NULL));
}

static void test_pid_gone_and_zombie(void **state)
{
	(void)state;
	int pfd[2];
	assert_int_equal(pipe(pfd), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char c;
		close(pfd[1]);
		(void)!read(pfd[0], &c, 1);
		_exit(0);
	}
	close(pfd[0]);
	oci_state_t st = sample();
	st.pid = child;
	st.pid_start_time = oci_pid_start_time(child);
	assert_true(st.pid_start_time != 0);
	assert_true(oci_state_pid_alive(&st));
	/* exited but not reaped: a zombie is not a live container */
	close(pfd[1]);
	siginfo_t si;
	assert_int_equal(waitid(P_PID, child, &si, WEXITED | WNOWAIT), 0);
	assert_true(oci_pid_start_time(child) != 0);
	assert_false(oci_state_pid_alive(&st));
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_true(oci_pid_start_time(child) == 0);
	assert_false(oci_state_pid_alive(&st));
}

/* The command name is field 2 of /proc/<pid>/stat and may hold ") " and digits: the fields are
 * read after the last ')', so the start time is the same before and after such a rename. */
static void test_pid_comm_with_paren(void **state)
{
	(void)state;
	int go[2], done[2];
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(done), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char c;
		(void)!read(go[0], &c, 1);
		prctl(PR_SET_NAME, "x) R 1 2 3 4 5");
		(void)!write(done[1], "y", 1);
		(void)!read(go[0], &c, 1);
		_exit(0);
	}
	uint64_t before = oci_pid_start_time(child);
	assert_int_equal(write(go[1], "g", 1), 1);
	char c;
	assert_int_equal(read(done[0], &c, 1), 1);
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)child);
	assert_non_null(strstr(slurp(path), "(x) R 1 2 3 4 5)"));
	uint64_t after = oci_pid_start_time(child);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(waitpid(child, NULL, 0), child);
	assert_true(before != 0);
	assert_true(before == after);
	close(go[0]), close(go[1]), close(done[0]), close(done[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_optional_fields_absent, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_failed_write_keeps_old, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_write_into_missing_dir, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_write_non_utf8, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_corrupt, make_dir, remove_dir),
		cmocka_unit_test_setup_teardown(test_not_a_regular_file, make_dir, remove_dir),
		cmocka_unit_test(test_state_json),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_pid_alive),
		cmocka_unit_test(test_pid_gone_and_zombie),
		cmocka_unit_test(test_pid_comm_with_paren),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
