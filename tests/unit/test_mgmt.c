/*
 * Unit tests for km_mgmt.c, the management socket: request parsing, reply encoding, paths, and
 * the socket's life (creation, stale and foreign files, requests, misbehaving clients, stop).
 * Snapshots are taken by a stand-in passed through km_mgmt_opts_t, so no guest runs here; the
 * last test drives the real km_snapshot_request against a vCPU that is only a struct.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "km_fdtab.h"
#include "km_mgmt.h"

/* Lets this test link before km_snapshot_request exists; the real one wins once it does. The
 * tests never call it: they hand km_mgmt a stand-in. */
__attribute__((weak)) int km_snapshot_request(km_guest_t *g, const km_snapshot_req_t *req,
					      km_snapshot_result_t *res, km_err_t **err)
{
	(void)g, (void)req, (void)res;
	return km_err_set(err, ENOSYS, "km_snapshot_request is not linked in");
}

/* --- parsing ------------------------------------------------------------------------------ */

static void parse_ok(const char *line, km_mgmt_request_t *req)
{
	km_err_t *err = NULL;
	const char *code = NULL;
	if (km_mgmt_parse(line, strlen(line), req, &code, &err) != 0) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "(no error)");
		km_err_free(&err);
		fail_msg("'%s' refused: %s", line, msg);
	}
	assert_null(err);
}

/* Expects `line` (n bytes) refused with error code `code` and a message containing `part`. */
static void parse_bad_n(const char *line, size_t n, const char *code, const char *part)
{
	km_mgmt_request_t req;
	km_err_t *err = NULL;
	const char *got = NULL;
	int rc = km_mgmt_parse(line, n, &req, &got, &err);
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "(no error)");
	km_err_free(&err);
	if (rc != -1)
		fail_msg("'%.*s' accepted, expected %s", (int)n, line, code);
	if (got == NULL || strcmp(got, code) != 0)
		fail_msg("'%.*s': code %s, expected %s (%s)", (int)n, line, got ? got : "NULL", code, msg);
	if (strstr(msg, part) == NULL)
		fail_msg("'%.*s': message '%s' lacks '%s'", (int)n, line, msg, part);
	if (strchr(msg, '\n') != NULL)
		fail_msg("'%.*s': message holds a newline", (int)n, line);
}

static void parse_bad(const char *line, const char *code, const char *part)
{
	parse_bad_n(line, strlen(line), code, part);
}

static void test_parse_good(void **state)
{
	(void)state;
	km_mgmt_request_t r;
	parse_ok("status", &r);
	assert_int_equal(r.verb, KM_MGMT_STATUS);
	parse_ok("version", &r);
	assert_int_equal(r.verb, KM_MGMT_VERSION);
	parse_ok("status\r", &r); /* CRLF from an interactive client */
	assert_int_equal(r.verb, KM_MGMT_STATUS);

	parse_ok("snapshot path=/tmp/snap mode=stop", &r);
	assert_int_equal(r.verb, KM_MGMT_SNAPSHOT);
	assert_string_equal(r.path, "/tmp/snap");
	assert_false(r.keep_running);
	assert_false(r.has_label);
	assert_string_equal(r.label, "");

	/* Any order; encoded bytes in either case; '=' inside a value is data. */
	parse_ok("snapshot label=a%20b%2fc%2F mode=continue path=dir/my%20snap%25=1", &r);
	assert_true(r.keep_running);
	assert_true(r.has_label);
	assert_string_equal(r.label, "a b/c/");
	assert_string_equal(r.path, "dir/my snap%=1");

	/* Non-ASCII and control bytes travel encoded. */
	parse_ok("snapshot path=%C3%A9t%C3%A9%0A%09x mode=stop", &r);
	assert_string_equal(r.path, "\xc3\xa9t\xc3\xa9\n\tx");
	/* A mode may be encoded too. */
	parse_ok("snapshot path=x mode=%73top", &r);
	assert_false(r.keep_running);
	/* tcp=: the policy + 1, 0 when absent (km's --tcp-established) */
	assert_int_equal(r.tcp, 0);
	parse_ok("snapshot tcp=refuse path=x mode=stop", &r);
	assert_int_equal(r.tcp, KM_TCP_REFUSE + 1);
	parse_ok("snapshot path=x mode=stop tcp=repair", &r);
	assert_int_equal(r.tcp, KM_TCP_REPAIR + 1);
	parse_ok("snapshot path=x mode=stop tcp=close", &r);
	assert_int_equal(r.tcp, KM_TCP_CLOSE + 1);
}

static void test_parse_bad(void **state)
{
	(void)state;
	const char *R = KM_MGMT_E_REQUEST, *V = KM_MGMT_E_VERB;
	parse_bad("", R, "empty request");
	parse_bad("\r", R, "empty request");
	parse_bad(" status", R, "empty word");
	parse_bad("status ", R, "empty word");
	parse_bad("snapshot  path=x mode=stop", R, "empty word");
	parse_bad("snapshot path=x\tmode=stop", R, "must be percent-encoded");
	parse_bad("snap path=x mode=stop", V, "unknown request 'snap'");
	parse_bad("STATUS", V, "unknown request");
	parse_bad("\x01\x02", V, "'\?\?'");
	parse_bad("status now", R, "takes no arguments");
	parse_bad("version x=1", R, "takes no arguments");
	parse_bad("snapshot", R, "needs path");
	parse_bad("snapshot mode=stop", R, "needs path");
	parse_bad("snapshot path=x", R, "needs mode");
	parse_bad("snapshot path=x mode=pause", R, "mode must be stop or continue");
	parse_bad("snapshot path=x mode=STOP", R, "mode must be");
	parse_bad("snapshot path=x mode=stop path=y", R, "'path' given twice");
	parse_bad("snapshot path=x mode=stop mode=stop", R, "'mode' given twice");
	parse_bad("snapshot path=x mode=stop label=a label=b", R, "'label' given twice");
	parse_bad("snapshot path=x mode=stop size=1", R, "unknown field 'size'");
	parse_bad("snapshot path=x mode=stop tcp=keep", R, "tcp must be repair, refuse or close");
	parse_bad("snapshot path=x mode=stop tcp=repair tcp=close", R, "'tcp' given twice");
	parse_bad("snapshot path=x mode=stop =1", R, "unknown field ''");
	parse_bad("snapshot path mode=stop", R, "'path' is not key=value");
	parse_bad("snapshot path= mode=stop", R, "path is empty");
	parse_bad("snapshot path=x mode=stop label=", R, "label is empty");
	parse_bad("snapshot path=%2 mode=stop", R, "two hex digits");
	parse_bad("snapshot path=% mode=stop", R, "two hex digits");
	parse_bad("snapshot path=a%zz mode=stop", R, "two hex digits");
	parse_bad("snapshot path=a%g1 mode=stop", R, "two hex digits");
	parse_bad("snapshot path=a%00b mode=stop", R, "%00");
	parse_bad("snapshot path=\xc3\xa9 mode=stop", R, "0xc3");
	parse_bad("snapshot path=a\x7f mode=stop", R, "0x7f");
	parse_bad("status\r\r", V, "unknown request 'status?'"); /* only one CR is forgiven */
	parse_bad("status\rx", V, "unknown request"); /* a CR inside is not a line end */
	parse_bad_n("status\0", 7, V, "unknown request");
	parse_bad_n("snapshot path=a\0b mode=stop", 27, R, "0x00");
	parse_bad("status\n", V, "unknown request"); /* the LF is not part of the line */
}

static void test_parse_limits(void **state)
{
	(void)state;
	km_mgmt_request_t r;
	static char line[4 * KM_MGMT_LINE_MAX], want[KM_MGMT_PATH_MAX + 1];
	/* Longest path: PATH_MAX - 1 bytes, given encoded. */
	memset(want, 'p', KM_MGMT_PATH_MAX - 1);
	want[KM_MGMT_PATH_MAX - 1] = '\0';
	int n = snprintf(line, sizeof(line), "snapshot mode=stop path=");
	for (int i = 0; i < KM_MGMT_PATH_MAX - 1; i++)
		n += snprintf(line + n, sizeof(line) - n, "%%70");
	parse_ok(line, &r);
	assert_string_equal(r.path, want);
	snprintf(line + n, sizeof(line) - n, "p");
	parse_bad(line, KM_MGMT_E_REQUEST, "path is longer than 4095 bytes");

	char label[KM_MGMT_LABEL_MAX + 2];
	memset(label, 'l', KM_MGMT_LABEL_MAX);
	label[KM_MGMT_LABEL_MAX] = '\0';
	snprintf(line, sizeof(line), "snapshot path=x mode=stop label=%s", label);
	parse_ok(line, &r);
	assert_string_equal(r.label, label);
	snprintf(line, sizeof(line), "snapshot path=x mode=stop label=%sl", label);
	parse_bad(line, KM_MGMT_E_REQUEST, "label is longer than 255 bytes");
	/* A long mode is refused without overflowing anything. */
	memset(line, 0, sizeof(line));
	n = snprintf(line, sizeof(line), "snapshot path=x mode=");
	memset(line + n, 's', 1000);
	parse_bad(line, KM_MGMT_E_REQUEST, "mode is longer");
}

static void test_encode(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(km_mgmt_encode("/tmp/a", out, sizeof(out)), 6);
	assert_string_equal(out, "/tmp/a");
	assert_int_equal(km_mgmt_encode("a b%c=d\n\xc3\xa9~", out, sizeof(out)), 21);
	assert_string_equal(out, "a%20b%25c=d%0A%C3%A9~");
	/* Round trip through the parser. */
	char line[128];
	snprintf(line, sizeof(line), "snapshot path=%s mode=stop", out);
	km_mgmt_request_t r;
	parse_ok(line, &r);
	assert_string_equal(r.path, "a b%c=d\n\xc3\xa9~");
	/* Too small a buffer: -1, never a partial escape. */
	assert_int_equal(km_mgmt_encode("abc", out, 3), -1);
	assert_int_equal(km_mgmt_encode("abc", out, 4), 3);
	assert_int_equal(km_mgmt_encode("a b", out, 4), -1);
	assert_int_equal(km_mgmt_encode("a b", out, 6), 5);
	assert_int_equal(km_mgmt_encode("", out, 1), 0);
}

static void abs_ok(const char *base, const char *path, const char *want)
{
	char out[KM_MGMT_PATH_MAX];
	km_err_t *err = NULL;
	if (km_mgmt_abs_path(base, path, out, &err) != 0) {
		km_err_free(&err);
		fail_msg("abs_path('%s', '%s') failed", base, path);
	}
	if (strcmp(out, want) != 0)
		fail_msg("abs_path('%s', '%s') = '%s', expected '%s'", base, path, out, want);
}

static void test_abs_path(void **state)
{
	(void)state;
	abs_ok("/work", "snap", "/work/snap");
	abs_ok("/work", "./d//snap", "/work/d/snap");
	abs_ok("/work/", "../snap", "/work/../snap");
	abs_ok("/work", "/tmp/./x", "/tmp/x");
	abs_ok("/", "x", "/x");
	abs_ok("/work", "//a///b", "/a/b");
	abs_ok("/work", "a/.", "/work/a");
	char out[KM_MGMT_PATH_MAX];
	km_err_t *err = NULL;
	assert_int_equal(km_mgmt_abs_path("/work", "dir/", out, &err), -1);
	assert_int_equal(err->errnum, EISDIR);
	km_err_free(&err);
	/* Relative path that fits alone but not after the base. */
	static char rel[KM_MGMT_PATH_MAX];
	memset(rel, 'r', KM_MGMT_PATH_MAX - 2);
	assert_int_equal(km_mgmt_abs_path("/", rel, out, &err), 0);
	assert_int_equal(km_mgmt_abs_path("/work", rel, out, &err), -1);
	assert_int_equal(err->errnum, ENAMETOOLONG);
	km_err_free(&err);
}

/* --- the socket ---------------------------------------------------------------------------- */

static km_guest_t guest = {.pid = 4242};

/* The status reply: the pid to signal is this process (km's), the guest's own pid beside it. */
static const char *status_ok(void)
{
	static char buf[96];
	snprintf(buf, sizeof(buf), "ok state=running pid=%d guest-pid=4242", (int)getpid());
	return buf;
}

/* The snapshot stand-in: records what it was asked, optionally waits, answers as told. */
static struct {
	char path[KM_MGMT_PATH_MAX];
	char label[KM_MGMT_LABEL_MAX + 1];
	bool has_label;
	int reason;
	bool keep_running;
	km_guest_t *g;
	int calls;
	int fail_errno; /* -1: succeed */
	int delay_ms;
	atomic_int entered;
} fake;

static int fake_snapshot(km_guest_t *g, const km_snapshot_req_t *req, km_snapshot_result_t *res, km_err_t **err)
{
	fake.g = g; /* checked by the tests: no cmocka asserts in the listener thread */
	snprintf(fake.path, sizeof(fake.path), "%s", req->path);
	fake.has_label = req->label != NULL;
	snprintf(fake.label, sizeof(fake.label), "%s", req->label ? req->label : "");
	fake.reason = req->reason;
	fake.keep_running = req->keep_running;
	fake.calls++;
	atomic_store(&fake.entered, 1);
	if (fake.delay_ms > 0)
		usleep((useconds_t)fake.delay_ms * 1000);
	if (fake.fail_errno >= 0)
		return km_err_set(err, fake.fail_errno, "writing '%s'\nfailed", req->path);
	res->file_size = 1ull << 30;
	res->disk_bytes = 16781312;
	res->memory_bytes = 16777216;
	res->elapsed_ns = 12345678;
	return 0;
}

typedef struct fx {
	char dir[64];
	char sock[128];
	km_mgmt_t *m;
} fx_t;

static int setup(void **state)
{
	fx_t *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/km-test-mgmt.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->sock, sizeof(f->sock), "%s/km.sock", f->dir);
	memset(&fake, 0, sizeof(fake));
	fake.fail_errno = -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx_t *f = *state;
	km_mgmt_stop(f->m);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static void start(fx_t *f, const km_mgmt_opts_t *opts)
{
	km_err_t *err = NULL;
	km_mgmt_opts_t dflt = {.snapshot = fake_snapshot, .serve_own_process = true};
	if (km_mgmt_start_opts(&guest, f->sock, opts ? opts : &dflt, &f->m, &err) != 0) {
		char msg[512];
		snprintf(msg, sizeof(msg), "%s", err->msg);
		km_err_free(&err);
		fail_msg("km_mgmt_start: %s", msg);
	}
}

static int try_connect_flags(const char *path, int flags)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	assert_true(fd >= 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	int e = errno;
	close(fd);
	errno = e;
	return -1;
}

static int try_connect(const char *path)
{
	return try_connect_flags(path, 0);
}

static int conn(fx_t *f)
{
	int fd = try_connect(f->sock);
	if (fd < 0)
		fail_msg("connect %s: %s", f->sock, strerror(errno));
	return fd;
}

static void send_str(int fd, const char *s, size_t n)
{
	assert_int_equal(send(fd, s, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads one reply line (LF stripped) into buf within 5 s; fails the test on EOF or timeout. */
static const char *read_line(int fd, char *buf, size_t size)
{
	size_t len = 0;
	while (len + 1 < size) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) != 1)
			fail_msg("no reply within 5 s (got '%.*s')", (int)len, buf);
		ssize_t r = recv(fd, buf + len, 1, 0); /* byte by byte: never eat the next reply */
		if (r <= 0)
			fail_msg("connection closed after '%.*s'", (int)len, buf);
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return buf;
		}
		len++;
	}
	fail_msg("reply too long");
	return NULL;
}

static const char *ask(int fd, const char *line, char *buf, size_t size)
{
	send_str(fd, line, strlen(line));
	return read_line(fd, buf, size);
}

/* Expects the server to close the connection (EOF) within ms. */
static void expect_eof(int fd, int ms)
{
	char c;
	struct pollfd p = {.fd = fd, .events = POLLIN};
	if (poll(&p, 1, ms) != 1)
		fail_msg("connection still open after %d ms", ms);
	ssize_t r = recv(fd, &c, 1, 0);
	if (r != 0 && !(r < 0 && errno == ECONNRESET))
		fail_msg("expected EOF, got %zd", r);
}

static void test_lifecycle(void **state)
{
	fx_t *f = *state;
	km_err_t *err = NULL;
	/* The plain entry point (km_snapshot_request behind it; not called here). */
	assert_int_equal(km_mgmt_start(&guest, f->sock, &f->m, &err), 0);
	struct stat st;
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	/* This process is km's: its connections are the guest's, and refused. */
	int fd = conn(f);
	char buf[256];
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "error denied the program km runs may not use km's management socket");
	expect_eof(fd, 2000);
	close(fd);
	/* Another process is served. */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char want[96];
		snprintf(want, sizeof(want), "ok state=running pid=%d guest-pid=4242", (int)getppid());
		int c = try_connect(f->sock);
		if (c < 0 || send(c, "status\n", 7, MSG_NOSIGNAL) != 7)
			_exit(2);
		struct pollfd p = {.fd = c, .events = POLLIN};
		ssize_t r = poll(&p, 1, 5000) == 1 ? recv(c, buf, sizeof(buf) - 1, 0) : -1;
		buf[r > 0 ? r : 0] = '\0';
		_exit(r > 0 && buf[r - 1] == '\n' && strncmp(buf, want, strlen(want)) == 0 ? 0 : 1);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	km_mgmt_stop(f->m);
	f->m = NULL;
	assert_int_equal(lstat(f->sock, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(try_connect(f->sock), -1);
	km_mgmt_stop(NULL);
}

static void expect_start_fails(fx_t *f, const char *part)
{
	km_err_t *err = NULL;
	km_mgmt_opts_t opts = {.snapshot = fake_snapshot, .serve_own_process = true};
	int rc = km_mgmt_start_opts(&guest, f->sock, &opts, &f->m, &err);
	char msg[512];
	snprintf(msg, sizeof(msg), "%s", err != NULL ? err->msg : "(no error)");
	km_err_free(&err);
	if (rc != -1)
		fail_msg("km_mgmt_start succeeded, expected '%s'", part);
	assert_null(f->m);
	if (strstr(msg, part) == NULL)
		fail_msg("message '%s' lacks '%s'", msg, part);
}

static void test_refuses_foreign_files(void **state)
{
	fx_t *f = *state;
	int fd = open(f->sock, O_WRONLY | O_CREAT | O_EXCL, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	expect_start_fails(f, "exists and is not a socket; refusing to replace it");
	char buf[16] = {0};
	fd = open(f->sock, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 8);
	close(fd);
	assert_string_equal(buf, "precious");
	unlink(f->sock);

	assert_int_equal(mkdir(f->sock, 0700), 0);
	expect_start_fails(f, "not a socket");
	rmdir(f->sock);

	assert_int_equal(symlink("/nonexistent", f->sock), 0);
	expect_start_fails(f, "not a socket");
	unlink(f->sock);

	/* A directory that does not exist, a path too long for a unix socket. */
	char path[256];
	snprintf(path, sizeof(path), "%s/no/such/dir", f->dir);
	km_err_t *err = NULL;
	km_mgmt_opts_t opts = {.snapshot = fake_snapshot, .serve_own_process = true};
	assert_int_equal(km_mgmt_start_opts(&guest, path, &opts, &f->m, &err), -1);
	assert_int_equal(err->errnum, ENOENT);
	km_err_free(&err);
	memset(path, 'x', 200);
	path[200] = '\0';
	assert_int_equal(km_mgmt_start_opts(&guest, path, &opts, &f->m, &err), -1);
	assert_non_null(strstr(err->msg, "1 to 107 bytes"));
	km_err_free(&err);
	assert_int_equal(km_mgmt_start_opts(&guest, "", &opts, &f->m, &err), -1);
	km_err_free(&err);
}

static int bound_socket(const char *path, bool listening)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	if (listening)
		assert_int_equal(listen(fd, 1), 0);
	return fd;
}

static void test_stale_and_live_sockets(void **state)
{
	fx_t *f = *state;
	/* A live listener is someone else's: refused, and left alone. */
	int other = bound_socket(f->sock, true);
	expect_start_fails(f, "another process is listening on it");
	int c = conn(f);
	close(c);
	close(other);
	/* Now nobody listens on it (a killed km's leftover): replaced. */
	start(f, NULL);
	char buf[256];
	c = conn(f);
	assert_string_equal(ask(c, "status\n", buf, sizeof(buf)), status_ok());
	close(c);
	/* Bound but never listened on: stale too. */
	km_mgmt_stop(f->m);
	f->m = NULL;
	close(bound_socket(f->sock, false));
	start(f, NULL);
}

static void test_stop_leaves_a_replaced_file(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	/* Someone removes km's socket and puts their own file there: stop must not remove it. */
	unlink(f->sock);
	int fd = open(f->sock, O_WRONLY | O_CREAT, 0600);
	close(fd);
	km_mgmt_stop(f->m);
	f->m = NULL;
	struct stat st;
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_true(S_ISREG(st.st_mode));
}

static void test_snapshot_continue(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	int fd = conn(f);
	char buf[KM_MGMT_REPLY_MAX], cwd[1024], want[2048];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	ask(fd, "snapshot path=./rel/a%20b mode=continue label=x%2Fy\n", buf, sizeof(buf));
	char enc[1024];
	km_mgmt_encode(cwd, enc, sizeof(enc));
	snprintf(want, sizeof(want),
		 "ok path=%s/rel/a%%20b size=1073741824 disk=16781312 memory=16777216 ms=12.345", enc);
	assert_string_equal(buf, want);
	snprintf(want, sizeof(want), "%s/rel/a b", cwd);
	assert_string_equal(fake.path, want);
	assert_true(fake.has_label);
	assert_string_equal(fake.label, "x/y");
	assert_int_equal(fake.reason, KM_REASON_MGMT);
	assert_ptr_equal(fake.g, &guest);
	assert_true(fake.keep_running);
	/* The guest goes on, and so does the connection. */
	assert_string_equal(ask(fd, "snapshot path=/abs/s mode=continue\n", buf, sizeof(buf)),
			    "ok path=/abs/s size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	assert_false(fake.has_label);
	assert_string_equal(ask(fd, "status\r\n", buf, sizeof(buf)), status_ok()); /* CRLF is fine */
	assert_int_equal(fake.calls, 2);
	/* A path that names a directory never reaches the writer. */
	assert_string_equal(ask(fd, "snapshot path=d/ mode=continue\n", buf, sizeof(buf)),
			    "error bad-request d/: Is a directory");
	assert_int_equal(fake.calls, 2);
	close(fd);
}

/* Relative names (socket and snapshot) mean km's directory when it started listening, whatever
 * directory the guest (whose cwd is km's) has moved to since. */
static void test_relative_paths(void **state)
{
	fx_t *f = *state;
	char old[1024], want[256], buf[KM_MGMT_REPLY_MAX];
	assert_non_null(getcwd(old, sizeof(old)));
	assert_int_equal(chdir(f->dir), 0);
	km_mgmt_opts_t opts = {.snapshot = fake_snapshot, .serve_own_process = true};
	km_err_t *err = NULL;
	assert_int_equal(km_mgmt_start_opts(&guest, "rel.sock", &opts, &f->m, &err), 0);
	assert_int_equal(chdir("/"), 0);
	snprintf(want, sizeof(want), "%s/rel.sock", f->dir);
	int fd = try_connect(want);
	assert_true(fd >= 0);
	snprintf(want, sizeof(want), "ok path=%s/s size=1073741824 disk=16781312 memory=16777216 ms=12.345", f->dir);
	assert_string_equal(ask(fd, "snapshot path=s mode=continue\n", buf, sizeof(buf)), want);
	close(fd);
	km_mgmt_stop(f->m);
	f->m = NULL;
	assert_int_equal(chdir(old), 0);
	snprintf(want, sizeof(want), "%s/rel.sock", f->dir);
	assert_int_equal(access(want, F_OK), -1);
}

static void test_snapshot_stop(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	int fd = conn(f);
	char buf[KM_MGMT_REPLY_MAX];
	assert_string_equal(ask(fd, "snapshot path=/s mode=stop\n", buf, sizeof(buf)),
			    "ok path=/s size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	assert_false(fake.keep_running);
	/* The guest is ending: the connection is closed and nothing more is served. */
	expect_eof(fd, 2000);
	close(fd);
	int64_t t0 = time(NULL);
	int c;
	/* The listener may still be closing. Non-blocking: a listener that has stopped accepting
	 * but not yet closed fills its backlog, and a blocking connect then waits until
	 * km_mgmt_stop below (this hung a slow sanitizer run). EAGAIN: still there. */
	while (((c = try_connect_flags(f->sock, SOCK_NONBLOCK)) >= 0 || errno == EAGAIN) && time(NULL) - t0 < 3) {
		if (c >= 0)
			close(c);
		usleep(10000);
	}
	assert_int_equal(c, -1);
	assert_int_equal(errno, ECONNREFUSED);
	km_mgmt_stop(f->m);
	f->m = NULL;
	assert_int_equal(access(f->sock, F_OK), -1);
}

static void test_snapshot_fails(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	int fd = conn(f);
	char buf[KM_MGMT_REPLY_MAX];
	fake.fail_errno = ENOSPC;
	/* The writer's message (with a newline in it) arrives on one line. */
	assert_string_equal(ask(fd, "snapshot path=/full/s mode=stop\n", buf, sizeof(buf)),
			    "error snapshot-failed writing '/full/s'?failed: No space left on device");
	/* A failed stop-mode snapshot leaves the guest running: the connection goes on. */
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	fake.fail_errno = ESRCH; /* the guest ended */
	assert_string_equal(ask(fd, "snapshot path=/s mode=continue\n", buf, sizeof(buf)),
			    "error ended writing '/s'?failed: No such process");
	expect_eof(fd, 2000);
	close(fd);
}

static void test_bad_requests(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	int fd = conn(f);
	char buf[KM_MGMT_REPLY_MAX];
	assert_string_equal(ask(fd, "hello\n", buf, sizeof(buf)),
			    "error unknown-request unknown request 'hello' (known: snapshot, status, version, pause, resume)");
	assert_string_equal(ask(fd, "snapshot path=%zz mode=stop\n", buf, sizeof(buf)),
			    "error bad-request path: '%' at byte 0 is not followed by two hex digits");
	send_str(fd, "\x00\xff\x01\n", 4);
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "error unknown-request unknown request '?\?\?' (known: snapshot, status, version, pause, resume)");
	assert_string_equal(ask(fd, "\n", buf, sizeof(buf)), "error bad-request empty request");
	assert_int_equal(fake.calls, 0);
	/* Several requests in one write, answered in order. */
	send_str(fd, "status\nversion\nbogus\n", 21);
	assert_string_equal(read_line(fd, buf, sizeof(buf)), status_ok());
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "ok protocol=2");
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "error unknown-request unknown request 'bogus' (known: snapshot, status, version, pause, resume)");
	/* A request split across writes. */
	send_str(fd, "sta", 3);
	usleep(50000);
	assert_string_equal(ask(fd, "tus\n", buf, sizeof(buf)), status_ok());
	/* The longest request is served; one byte more is refused and the connection closed. */
	static char line[KM_MGMT_LINE_MAX + 2];
	memset(line, 'x', sizeof(line));
	memcpy(line, "status", 6);
	line[KM_MGMT_LINE_MAX] = '\n';
	send_str(fd, line, KM_MGMT_LINE_MAX + 1);
	assert_non_null(strstr(read_line(fd, buf, sizeof(buf)), "error unknown-request unknown request 'statusxxx"));
	send_str(fd, line, KM_MGMT_LINE_MAX);
	send_str(fd, "x", 1);
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "error too-long request longer than 16384 bytes");
	expect_eof(fd, 2000);
	close(fd);
	/* km is fine: the next client is served. */
	fd = conn(f);
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	close(fd);
}

static void test_clients_that_go_away(void **state)
{
	fx_t *f = *state;
	km_mgmt_opts_t opts = {.snapshot = fake_snapshot, .serve_own_process = true, .send_ms = 300};
	start(f, &opts);
	char buf[KM_MGMT_REPLY_MAX];
	/* Half a request, then gone. */
	int fd = conn(f);
	send_str(fd, "snapshot path=/x mo", 19);
	close(fd);
	/* Connected and gone without a word. */
	close(conn(f));
	/* Gone while its snapshot is being taken: the reply hits a closed socket (no SIGPIPE). */
	fake.delay_ms = 200;
	fd = conn(f);
	send_str(fd, "snapshot path=/x mode=continue\n", 31);
	while (!atomic_load(&fake.entered))
		usleep(1000);
	close(fd);
	/* A request and a half-close: still answered. */
	fake.delay_ms = 0;
	fd = conn(f);
	send_str(fd, "status\n", 7);
	shutdown(fd, SHUT_WR);
	assert_string_equal(read_line(fd, buf, sizeof(buf)), status_ok());
	expect_eof(fd, 2000);
	close(fd);
	/* A client that never reads its replies cannot wedge km: it is dropped within the send
	 * timeout, and the next client is served. */
	fd = conn(f);
	int small = 4096;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	static char many[64 * 1024];
	for (size_t i = 0; i + 7 <= sizeof(many); i += 7)
		memcpy(many + i, "status\n", 7);
	size_t sent = 0;
	while (sent < sizeof(many) / 7 * 7) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, 200) != 1)
			break; /* km stopped reading: its replies filled our buffer */
		ssize_t w = send(fd, many + sent, sizeof(many) / 7 * 7 - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w <= 0)
			break;
		sent += (size_t)w;
	}
	int c = conn(f);
	struct pollfd p = {.fd = c, .events = POLLIN};
	send_str(c, "status\n", 7);
	assert_int_equal(poll(&p, 1, 3000), 1);
	assert_string_equal(read_line(c, buf, sizeof(buf)), status_ok());
	close(c);
	close(fd);
	assert_int_equal(fake.calls, 1);
	/* Stopping with a client connected: it sees EOF, stop does not hang. */
	fd = conn(f);
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	km_mgmt_stop(f->m);
	f->m = NULL;
	expect_eof(fd, 100);
	close(fd);
}

static void test_idle_timeout(void **state)
{
	fx_t *f = *state;
	km_mgmt_opts_t opts = {.snapshot = fake_snapshot, .serve_own_process = true, .idle_ms = 200, .send_ms = 200};
	start(f, &opts);
	char buf[256];
	int fd = conn(f);
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	send_str(fd, "stat", 4); /* a partial request does not keep the connection alive */
	expect_eof(fd, 2000);
	close(fd);
	fd = conn(f);
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	close(fd);
}

/* km_mgmt_stop during a snapshot: the snapshot finishes and its reply goes out first. */
static void test_stop_waits_for_the_reply(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	fake.delay_ms = 300;
	int fd = conn(f);
	send_str(fd, "snapshot path=/s mode=stop\n", 27);
	while (!atomic_load(&fake.entered))
		usleep(1000);
	km_mgmt_stop(f->m);
	f->m = NULL;
	char buf[KM_MGMT_REPLY_MAX];
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "ok path=/s size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	expect_eof(fd, 1000);
	close(fd);
}

/* km_mgmt_stop while requests wait behind a snapshot: they get "ended", not a silent hang-up. */
static void test_stop_answers_waiting_requests(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	fake.delay_ms = 300;
	int fd = conn(f);
	send_str(fd, "snapshot path=/s mode=continue\n", 31);
	while (!atomic_load(&fake.entered))
		usleep(1000);
	send_str(fd, "status\nversion\n", 15);
	km_mgmt_stop(f->m);
	f->m = NULL;
	char buf[KM_MGMT_REPLY_MAX];
	assert_string_equal(read_line(fd, buf, sizeof(buf)),
			    "ok path=/s size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "error ended the program has ended");
	expect_eof(fd, 1000);
	close(fd);
}

/* The lowest free fd in km's table: what the guest's next open() would get. */
static int lowest_free_fd(void)
{
	int fd = dup(0);
	assert_true(fd >= 0);
	close(fd);
	return fd;
}

/* Open fds in km's table below `below`. */
static int count_fds(int below)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.' && atoi(e->d_name) < below && atoi(e->d_name) != dirfd(d);
	closedir(d);
	return n;
}

/* The guest's fds are km's below 1000: the socket must take none of them, ever, and a listener
 * with its own fd table adds only its wake fd to km's. `extra`: km fds (all above 1000) while
 * listening, and while serving a connection. */
static void check_fds(fx_t *f, bool shared, int extra_listening, int extra_serving)
{
	int low = lowest_free_fd(), n_low = count_fds(1000), n_all = count_fds(1 << 30);
	km_mgmt_opts_t opts = {.snapshot = fake_snapshot, .serve_own_process = true, .shared_fds = shared};
	start(f, &opts);
	assert_int_equal(lowest_free_fd(), low);
	assert_int_equal(count_fds(1000), n_low);
	assert_int_equal(count_fds(1 << 30), n_all + extra_listening);
	int fd = conn(f);
	char buf[256];
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	/* Being served now: only our client fd is new below 1000. */
	assert_int_equal(count_fds(1000), n_low + 1);
	assert_int_equal(count_fds(1 << 30), n_all + 1 + extra_serving);
	close(fd);
	km_mgmt_stop(f->m);
	f->m = NULL;
	assert_int_equal(lowest_free_fd(), low);
	assert_int_equal(count_fds(1 << 30), n_all);
}

/* Open fds in the listener thread's own table (the only other thread here). */
static int listener_fds(void)
{
	char path[300];
	int n = -1;
	pid_t me = (pid_t)syscall(SYS_gettid);
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == me)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/fd", e->d_name);
		DIR *fd = opendir(path);
		assert_non_null(fd);
		n = 0;
		for (struct dirent *x; (x = readdir(fd)) != NULL;)
			n += x->d_name[0] != '.';
		closedir(fd);
	}
	closedir(d);
	return n;
}

static int wait_listener_fds(int n)
{
	int have = listener_fds();
	for (int i = 0; i < 500 && have != n; i++) {
		usleep(10000);
		have = listener_fds();
	}
	return have;
}

static void test_fds_private(void **state)
{
	fx_t *f = *state;
	/* the wake fd, the courier's receiving end and km's copy of the listening socket (handed
	 * over at an execve); the connection is in the listener's table */
	check_fds(f, false, 3, 3);
	/* The listener's table holds the listening socket, the wake fd and the courier pair, nothing of the guest's
	 * or km's: a copy would keep a pipe the guest closed open. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	int high = fcntl(p[1], F_DUPFD_CLOEXEC, 1500); /* one of km's own, above the socket's */
	assert_true(high >= 1500);
	start(f, NULL);
	assert_int_equal(listener_fds(), 4);
	int fd = conn(f);
	char buf[64];
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	assert_int_equal(listener_fds(), 5);
	close(p[1]);
	close(high);
	assert_int_equal(read(p[0], buf, 1), 0); /* EOF: no copy of the write end anywhere */
	close(p[0]);
	close(fd);
}

/* Idle clients hold only their own connection: a request from another is answered at once (the
 * old listener served one connection at a time and waited out each idle one). */
static void test_idle_clients_block_nobody(void **state)
{
	fx_t *f = *state;
	start(f, NULL); /* the default idle deadline, far beyond read_line's 5 s */
	char buf[KM_MGMT_REPLY_MAX];
	int idle[3];
	for (int i = 0; i < 3; i++)
		idle[i] = conn(f);
	send_str(idle[2], "snapshot path=/half", 19); /* a request begun and never finished */
	int fd = conn(f);
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	assert_string_equal(ask(fd, "snapshot path=/s mode=continue\n", buf, sizeof(buf)),
			    "ok path=/s size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	close(fd);
	/* The idle ones are still served when they speak. */
	assert_string_equal(ask(idle[0], "version\n", buf, sizeof(buf)), "ok protocol=2");
	assert_string_equal(ask(idle[2], " mode=continue\n", buf, sizeof(buf)),
			    "ok path=/half size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	for (int i = 0; i < 3; i++)
		close(idle[i]);
}

/* Two snapshot requests at the same moment from two clients: one after the other, both answered. */
static void test_two_snapshots_at_once(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	fake.delay_ms = 200;
	int a = conn(f), b = conn(f);
	send_str(a, "snapshot path=/a mode=continue\n", 31);
	send_str(b, "snapshot path=/b mode=continue\n", 31);
	char buf[KM_MGMT_REPLY_MAX];
	assert_string_equal(read_line(a, buf, sizeof(buf)),
			    "ok path=/a size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	assert_string_equal(read_line(b, buf, sizeof(buf)),
			    "ok path=/b size=1073741824 disk=16781312 memory=16777216 ms=12.345");
	assert_int_equal(fake.calls, 2);
	close(a);
	close(b);
}

/* Waits (at most 5 s) until the listener's fd table holds n fds; returns what it holds then. */
static int wait_listener_fds(int n);

/* More connections than the cap: the longest idle ones are told and closed, km's fds stay
 * bounded, and a request on the newest is answered. */
static void test_connection_cap(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	enum { N = KM_MGMT_CONN_MAX + 24 };
	int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = conn(f);
	char buf[KM_MGMT_REPLY_MAX];
	assert_string_equal(read_line(fds[0], buf, sizeof(buf)),
			    "error busy idle connection closed to make room for a new one");
	expect_eof(fds[0], 2000);
	assert_string_equal(ask(fds[N - 1], "status\n", buf, sizeof(buf)), status_ok());
	assert_true(listener_fds() <= 4 + KM_MGMT_CONN_MAX);
	for (int i = 0; i < N; i++)
		close(fds[i]);
	assert_int_equal(wait_listener_fds(4), 4);
	int fd = conn(f);
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	close(fd);
}

/* A client that never ends its line is answered too-long and dropped; others go on. */
static void test_endless_line(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	int fd = conn(f), other = conn(f);
	static char junk[4096];
	memset(junk, 'y', sizeof(junk));
	size_t sent = 0;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
		assert_int_equal(poll(&p, 1, 5000), 1);
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			break; /* km answered (or hung up) */
		ssize_t w = send(fd, junk, sizeof(junk), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EPIPE)
			break;
		sent += w > 0 ? (size_t)w : 0;
		assert_true(sent < 64u << 20);
	}
	char buf[KM_MGMT_REPLY_MAX];
	assert_string_equal(read_line(fd, buf, sizeof(buf)), "error too-long request longer than 16384 bytes");
	expect_eof(fd, 2000);
	close(fd);
	assert_string_equal(ask(other, "status\n", buf, sizeof(buf)), status_ok());
	close(other);
}

/* Connections leave nothing behind in the listener: fds passed in with SCM_RIGHTS are never
 * installed, and each closed connection's fd is closed. */
static void test_no_fd_leaks(void **state)
{
	fx_t *f = *state;
	start(f, NULL);
	assert_int_equal(listener_fds(), 4);
	char buf[KM_MGMT_REPLY_MAX];
	for (int i = 0; i < 40; i++) {
		int fd = conn(f);
		int pass = open("/dev/null", O_RDONLY | O_CLOEXEC);
		char data[] = "status\n";
		struct iovec iov = {.iov_base = data, .iov_len = 7};
		union {
			char b[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} ctl;
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
		struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &pass, sizeof(int));
		assert_int_equal(sendmsg(fd, &msg, MSG_NOSIGNAL), 7);
		close(pass);
		assert_string_equal(read_line(fd, buf, sizeof(buf)), status_ok());
		if (i % 2 == 0)
			send_str(fd, "stat", 4); /* and some leave half a request behind */
		close(fd);
	}
	assert_int_equal(wait_listener_fds(4), 4);
}

/* Whatever the socket file's mode has become, only km's user and root are served. */
static void test_other_users_refused(void **state)
{
	fx_t *f = *state;
	if (geteuid() != 0)
		skip(); /* needs root to connect as another user */
	mode_t old = umask(0);
	start(f, NULL);
	umask(old);
	struct stat st;
	assert_int_equal(lstat(f->sock, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600); /* created so, whatever the umask */
	assert_int_equal(chmod(f->dir, 0755), 0);
	assert_int_equal(chmod(f->sock, 0666), 0); /* someone loosened it */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		int fd = try_connect(f->sock);
		if (fd < 0)
			_exit(4);
		char buf[256] = {0};
		(void)!send(fd, "status\n", 7, MSG_NOSIGNAL); /* km may have hung up already */
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 5000) != 1 || recv(fd, buf, sizeof(buf) - 1, 0) <= 0)
			_exit(6);
		_exit(strncmp(buf, "error denied ", 13) == 0 ? 0 : 7);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	int fd = conn(f);
	char buf[256];
	assert_string_equal(ask(fd, "status\n", buf, sizeof(buf)), status_ok());
	close(fd);
}

static void test_fds_shared_fallback(void **state)
{
	check_fds(*state, true, 4, 5); /* wake, listening and courier fds, then the connection, all >= 1000 */
}

/* Every signal km could use is blocked in the listener thread. */
static void test_signals_blocked(void **state)
{
	fx_t *f = *state;
	char path[300];
	pid_t me = (pid_t)syscall(SYS_gettid);
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	int before = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;)
		before += e->d_name[0] != '.';
	closedir(d);
	start(f, NULL);
	int checked = 0;
	d = opendir("/proc/self/task");
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == me)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		FILE *fp = fopen(path, "r");
		if (fp == NULL)
			continue;
		char line[256];
		unsigned long long blk = 0;
		while (fgets(line, sizeof(line), fp) != NULL)
			if (sscanf(line, "SigBlk: %llx", &blk) == 1)
				break;
		fclose(fp);
		int sigs[] = {SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCHLD,
			      SIGWINCH, SIGIO, SIGRTMIN, SIGRTMIN + 1, SIGRTMAX};
		for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			if (!(blk & (1ull << (sigs[i] - 1))))
				fail_msg("thread %s does not block signal %d (SigBlk %llx)", e->d_name, sigs[i], blk);
		checked++;
	}
	closedir(d);
	assert_int_equal(checked, before); /* before: us; now the listener too (before >= 1) */
	/* The creating thread's mask is what it was. */
	sigset_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	assert_false(sigismember(&cur, SIGUSR1));
}

/* --- km_snapshot_request and a lost kick ----------------------------------------------------- */

/* A vCPU that is only a struct, and a thread standing in for its run loop. A kick sets
 * v->kicked (no signal: the thread is not live), which the stand-in takes as the kick reaching it. */
typedef struct lossy_vcpu {
	km_guest_t *g;
	km_vcpu_t *v;
	bool kicked_again;
} lossy_vcpu_t;

/* Takes a kick; gives up after about 30 s (a bound on a hang, not a timing check: the re-kick
 * comes every 100 ms). */
static bool take_kick(km_vcpu_t *v)
{
	for (int i = 0; i < 30000; i++) {
		if (atomic_exchange(&v->kicked, 0))
			return true;
		usleep(1000);
	}
	return false;
}

static void *lossy_vcpu_main(void *arg)
{
	lossy_vcpu_t *l = arg;
	/* The first kick lands after the vCPU looked for requests and just before its host syscall
	 * (the program's read of an empty pipe) starts blocking: the handler runs, the syscall still
	 * blocks. Only a later kick gets the vCPU to the request. */
	take_kick(l->v);
	l->kicked_again = take_kick(l->v);
	/* Parks at its clean point (or, without a second kick, anyway, so the test fails, not
	 * hangs). Capturing a vCPU that is only a struct fails: the asker says so. */
	struct kvm_regs r;
	memset(&r, 0, sizeof(r));
	km_stopall_park(l->v, &r, 0);
	return NULL;
}

/* Two snapshot requests at once left the first unanswered under load (mgmt/idle-clients): the
 * vCPU, back from serving the second, re-entered its blocking read as the first one's only kick
 * landed, and the listener waited for it forever. The asker must kick until a vCPU serves. */
static void test_request_survives_a_lost_kick(void **state)
{
	(void)state;
	km_guest_t *g = calloc(1, sizeof(*g));
	km_vcpu_t *v = calloc(1, sizeof(*v));
	struct kvm_run *run = calloc(1, sizeof(*run));
	assert_non_null(g);
	assert_non_null(v);
	assert_non_null(run);
	km_threads_init(&g->threads);
	pthread_mutex_init(&v->kick_lock, NULL);
	v->g = g;
	v->run = run;
	v->fd = -1;
	v->live = true;
	atomic_init(&v->kicked, 0);
	g->vcpus[0] = v;
	g->nvcpus = 1;
	g->threads.nlive = 1;
	lossy_vcpu_t l = {.g = g, .v = v};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, lossy_vcpu_main, &l), 0);
	km_snapshot_req_t req = {.path = "/nonexistent/s", .reason = KM_REASON_MGMT, .keep_running = true};
	km_snapshot_result_t res = {0};
	km_err_t *err = NULL;
	assert_int_equal(km_snapshot_request(g, &req, &res, &err), -1);
	assert_non_null(err);
	assert_non_null(strstr(err->msg, "vCPU 0")); /* the stand-in served it, and could not read itself */
	km_err_free(&err);
	pthread_join(t, NULL);
	assert_true(l.kicked_again);
	assert_false(km_stopall_pending(g)); /* the next request may come */
	pthread_mutex_destroy(&v->kick_lock);
	km_threads_fini(&g->threads);
	free(run);
	free(v);
	free(g);
}

#define T(t) cmocka_unit_test_setup_teardown(t, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_abs_path),
		T(test_lifecycle),
		T(test_refuses_foreign_files),
		T(test_stale_and_live_sockets),
		T(test_stop_leaves_a_replaced_file),
		T(test_snapshot_continue),
		T(test_relative_paths),
		T(test_snapshot_stop),
		T(test_snapshot_fails),
		T(test_bad_requests),
		T(test_clients_that_go_away),
		T(test_idle_timeout),
		T(test_stop_waits_for_the_reply),
		T(test_stop_answers_waiting_requests),
		T(test_idle_clients_block_nobody),
		T(test_two_snapshots_at_once),
		T(test_connection_cap),
		T(test_endless_line),
		T(test_no_fd_leaks),
		T(test_other_users_refused),
		T(test_fds_private),
		T(test_fds_shared_fallback),
		T(test_signals_blocked),
		cmocka_unit_test(test_request_survives_a_lost_kick),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
