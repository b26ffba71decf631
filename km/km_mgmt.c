/* The management socket: see km_mgmt.h and docs/mgmt-protocol.md. */
#include "km_mgmt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "km_cli.h"
#include "km_exec_fd.h"
#include "km_machine.h"

/* One client connection: its own buffers and clocks. */
typedef struct km_mgmt_conn {
	int fd;                          /* -1: the slot is free */
	int64_t since;                   /* connected, or its last reply sent: the idle clock */
	int64_t send_deadline;           /* while a reply is pending */
	bool close_after;                /* hang up once the pending reply is out */
	bool eof;                        /* the client shut its side: answer what is complete, close */
	size_t in_len;
	char in[KM_MGMT_LINE_MAX + 1];   /* room for the longest request and its LF */
	size_t out_off, out_len;
	char out[KM_MGMT_REPLY_MAX + 128]; /* a reply, and an `ended` line behind it */
	int pass_fd;                     /* an fd that came with SCM_RIGHTS, for its request; -1 */
	size_t pass_at;                  /* where in `in` the bytes it came with begin */
} km_mgmt_conn_t;

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77 /* Linux 6.5; older kernels: ENOPROTOOPT */
#endif

struct km_mgmt {
	km_guest_t *g;
	pid_t host_pid;   /* km's own pid: the process a supervisor signals */
	uid_t uid;        /* km's effective uid: with root, the only peers served */
	km_mgmt_snapshot_fn *snapshot;
	km_mgmt_snapshot_fn *snapshot_paused;
	bool paused;      /* the listener holds a stop of every vCPU (pause .. resume) */
	/* Carries a dir=fd directory from the listener's fd table to the vCPU that writes the
	 * snapshot in km's: [0] the listener sends, [1] the writer receives (a datagram pair). */
	int courier[2];
	uint64_t courier_seq;
	int idle_ms;
	int send_ms;
	bool shared_fds;  /* the thread uses km's fd table (requested, or unshare was refused) */
	bool serve_own_process; /* tests only: see km_mgmt_opts_t */
	bool any_peer_uid; /* --mgmt-fd: who may connect is decided by whoever made the socket */
	bool self_known;  /* km's own binary (KM_EXEC_SELF_FD) is known: self_dev, self_ino */
	dev_t self_dev;
	ino_t self_ino;
	char *path;       /* the socket file, as given: what bind and the stale check use */
	char *abs_path;   /* the same from the start directory: what stop removes (cwd may move) */
	char *base;       /* km's working directory at start: where relative paths begin */
	dev_t dev;        /* identity of the socket file km created, so stop removes only that */
	ino_t ino;
	int listen_fd;    /* in the listener's fd table (and km's until the listener is ready) */
	int exec_fd;      /* km's own copy of it, for an execve to hand over (km_mgmt_handover) */
	int wake_fd;      /* eventfd in km's table: km_mgmt_stop wakes the listener with it */
	pthread_t thread;
	atomic_bool stopping;
	bool ended;       /* the guest is ending (stop-mode snapshot done, or it ended): stop serving */

	/* Listener start-up handshake. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool ready;
	int setup_errno;

	/* Used by the listener thread only. */
	km_mgmt_conn_t conns[KM_MGMT_CONN_MAX];
	int64_t accept_after; /* accepting paused until then (out of fds or memory) */
	char reply[KM_MGMT_REPLY_MAX];
	km_mgmt_request_t req;
};

/* ---- parsing ------------------------------------------------------------------------------ */

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes a percent-encoded value into out (cap bytes, NUL included). Raw bytes must be visible
 * ASCII, so a value never holds a space, a control character or a byte a terminal would mangle;
 * %00 is refused because paths and labels are C strings. */
static int decode_value(const char *key, const char *v, size_t n, char *out, size_t cap, km_err_t **err)
{
	if (n == 0)
		return km_err_set(err, 0, "%s is empty", key);
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '%') {
			int hi = i + 2 < n ? hexval((unsigned char)v[i + 1]) : -1;
			int lo = i + 2 < n ? hexval((unsigned char)v[i + 2]) : -1;
			if (hi < 0 || lo < 0)
				return km_err_set(err, 0, "%s: '%%' at byte %zu is not followed by two hex digits", key, i);
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0)
				return km_err_set(err, 0, "%s: %%00 (a NUL byte) is not allowed", key);
			i += 2;
		} else if (c < 0x21 || c > 0x7e) {
			return km_err_set(err, 0, "%s: byte 0x%02x at %zu must be percent-encoded", key, c, i);
		}
		if (o + 1 >= cap)
			return km_err_set(err, 0, "%s is longer than %zu bytes", key, cap - 1);
		out[o++] = (char)c;
	}
	out[o] = '\0';
	return 0;
}

/* Copies at most 32 bytes of untrusted text into buf for an error message, control and non-ASCII
 * bytes as '?', so a message never breaks the reply line. */
static const char *shown(const char *s, size_t n, char buf[40])
{
	size_t k = n < 32 ? n : 32;
	for (size_t i = 0; i < k; i++)
		buf[i] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	strcpy(buf + k, n > k ? "..." : "");
	return buf;
}

static int parse_verb(const char *w, size_t n, km_mgmt_request_t *req, const char **code, km_err_t **err)
{
	static const struct {
		const char *name;
		km_mgmt_verb_t verb;
	} verbs[] = {{"snapshot", KM_MGMT_SNAPSHOT}, {"status", KM_MGMT_STATUS}, {"version", KM_MGMT_VERSION},
		     {"pause", KM_MGMT_PAUSE},       {"resume", KM_MGMT_RESUME}};
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		if (strlen(verbs[i].name) == n && memcmp(verbs[i].name, w, n) == 0) {
			req->verb = verbs[i].verb;
			return 0;
		}
	}
	char b[40];
	*code = KM_MGMT_E_VERB;
	return km_err_set(err, 0, "unknown request '%s' (known: snapshot, status, version, pause, resume)", shown(w, n, b));
}

/* One `key=value` word of a snapshot request. `seen` has a bit per key, to refuse repeats. */
static int parse_snapshot_arg(const char *w, size_t n, km_mgmt_request_t *req, unsigned *seen, km_err_t **err)
{
	char b[40];
	const char *eq = memchr(w, '=', n);
	if (eq == NULL)
		return km_err_set(err, 0, "'%s' is not key=value", shown(w, n, b));
	size_t klen = (size_t)(eq - w);
	const char *v = eq + 1;
	size_t vlen = n - klen - 1;
	unsigned bit;
	int rc;
	if (klen == 4 && memcmp(w, "path", 4) == 0) {
		bit = 1;
		rc = decode_value("path", v, vlen, req->path, sizeof(req->path), err);
	} else if (klen == 4 && memcmp(w, "mode", 4) == 0) {
		char mode[16];
		bit = 2;
		rc = decode_value("mode", v, vlen, mode, sizeof(mode), err);
		if (rc == 0 && strcmp(mode, "stop") == 0)
			req->keep_running = false;
		else if (rc == 0 && strcmp(mode, "continue") == 0)
			req->keep_running = true;
		else if (rc == 0)
			rc = km_err_set(err, 0, "mode must be stop or continue, not '%s'", shown(mode, strlen(mode), b));
	} else if (klen == 5 && memcmp(w, "label", 5) == 0) {
		bit = 4;
		rc = decode_value("label", v, vlen, req->label, sizeof(req->label), err);
		req->has_label = rc == 0;
	} else if (klen == 3 && memcmp(w, "tcp", 3) == 0) {
		char pol[16];
		bit = 32;
		rc = decode_value("tcp", v, vlen, pol, sizeof(pol), err);
		int p = rc == 0 ? km_cli_tcp_policy(pol) : -1;
		if (rc == 0 && p < 0)
			rc = km_err_set(err, 0, "tcp must be repair, refuse or close, not '%s'", shown(pol, strlen(pol), b));
		req->tcp = p + 1;
	} else if (klen == 3 && memcmp(w, "dir", 3) == 0) {
		char dir[8];
		bit = 8;
		rc = decode_value("dir", v, vlen, dir, sizeof(dir), err);
		if (rc == 0 && strcmp(dir, "fd") != 0)
			rc = km_err_set(err, 0, "dir must be fd (the directory passed with the request), not '%s'",
					shown(dir, strlen(dir), b));
		req->dir_fd = rc == 0;
	} else if (klen == 4 && memcmp(w, "name", 4) == 0) {
		bit = 16;
		rc = decode_value("name", v, vlen, req->path, KM_MGMT_NAME_MAX + 1, err);
		if (rc == 0 && (strchr(req->path, '/') != NULL || strcmp(req->path, ".") == 0 || strcmp(req->path, "..") == 0))
			rc = km_err_set(err, 0, "name must be one file name, without '/' and not '.' or '..'");
	} else if (klen == 6 && memcmp(w, "parent", 6) == 0) {
		bit = 64;
		rc = decode_value("parent", v, vlen, req->parent, sizeof(req->parent), err);
	} else if (klen == 14 && memcmp(w, "self-contained", 14) == 0) {
		char yes[4];
		bit = 128;
		rc = decode_value("self-contained", v, vlen, yes, sizeof(yes), err);
		if (rc == 0 && strcmp(yes, "1") != 0 && strcmp(yes, "0") != 0)
			rc = km_err_set(err, 0, "self-contained must be 1 or 0, not '%s'", shown(yes, strlen(yes), b));
		req->self_contained = rc == 0 && yes[0] == '1';
	} else {
		return km_err_set(err, 0, "unknown field '%s' (snapshot takes path, mode, label, dir, name, tcp, parent, "
				  "self-contained)", shown(w, klen, b));
	}
	if (rc == 0 && (*seen & bit))
		rc = km_err_set(err, 0, "'%s' given twice", shown(w, klen, b));
	*seen |= bit;
	return rc;
}

int km_mgmt_parse(const char *line, size_t len, km_mgmt_request_t *req, const char **code, km_err_t **err)
{
	memset(req, 0, sizeof(*req));
	*code = KM_MGMT_E_REQUEST;
	if (len > 0 && line[len - 1] == '\r') /* tolerate CRLF from interactive clients */
		len--;
	if (len == 0)
		return km_err_set(err, 0, "empty request");
	unsigned seen = 0;
	size_t start = 0;
	for (int word = 0; start <= len; word++) {
		const char *sp = memchr(line + start, ' ', len - start);
		size_t end = sp != NULL ? (size_t)(sp - line) : len;
		const char *w = line + start;
		size_t n = end - start;
		if (n == 0)
			return km_err_set(err, 0, "empty word at byte %zu (words are separated by one space, "
						  "with none at either end)", start);
		if (word == 0) {
			if (parse_verb(w, n, req, code, err) < 0)
				return -1;
		} else if (req->verb != KM_MGMT_SNAPSHOT) {
			static const char *const names[] = {[KM_MGMT_STATUS] = "status", [KM_MGMT_VERSION] = "version",
							    [KM_MGMT_PAUSE] = "pause", [KM_MGMT_RESUME] = "resume"};
			return km_err_set(err, 0, "'%s' takes no arguments", names[req->verb]);
		} else if (parse_snapshot_arg(w, n, req, &seen, err) < 0) {
			return -1;
		}
		start = end + 1;
	}
	if (req->verb == KM_MGMT_SNAPSHOT && (seen & 1) && (seen & (8 | 16)))
		return km_err_set(err, 0, "snapshot takes path=FILE, or dir=fd with name=FILE, not both");
	if (req->verb == KM_MGMT_SNAPSHOT && (seen & (8 | 16)) && (seen & (8 | 16)) != (8 | 16))
		return km_err_set(err, 0, "dir=fd and name=FILE go together");
	if (req->verb == KM_MGMT_SNAPSHOT && !(seen & (1 | 8)))
		return km_err_set(err, 0, "snapshot needs path=FILE (or dir=fd name=FILE)");
	if (req->verb == KM_MGMT_SNAPSHOT && !(seen & 2))
		return km_err_set(err, 0, "snapshot needs mode=stop or mode=continue");
	if (req->verb == KM_MGMT_SNAPSHOT && (seen & 8) && (seen & 64) && req->parent[0] == '/')
		return km_err_set(err, 0, "with dir=fd, parent is a path relative to that directory");
	return 0;
}

/* ---- replies ------------------------------------------------------------------------------ */

int km_mgmt_encode(const char *s, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
		bool raw = *p >= 0x21 && *p <= 0x7e && *p != '%';
		if (o + (raw ? 1 : 3) >= size)
			return -1;
		if (raw) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (o >= size)
		return -1;
	out[o] = '\0';
	return (int)o;
}

int km_mgmt_abs_path(const char *base, const char *path, char out[KM_MGMT_PATH_MAX], km_err_t **err)
{
	size_t plen = strlen(path);
	if (plen == 0 || path[plen - 1] == '/')
		return km_err_set(err, EISDIR, "%s", path);
	size_t o = 0;
	/* Two passes over the pieces: the base (for a relative path), then the path itself. */
	const char *parts[2] = {path[0] == '/' ? "" : base, path};
	for (int k = 0; k < 2; k++) {
		const char *s = parts[k];
		while (*s != '\0') {
			while (*s == '/')
				s++;
			size_t n = strcspn(s, "/");
			if (n == 0 || (n == 1 && s[0] == '.')) {
				s += n;
				continue;
			}
			if (o + 1 + n + 1 > KM_MGMT_PATH_MAX)
				return km_err_set(err, ENAMETOOLONG, "%s", path);
			out[o++] = '/';
			memcpy(out + o, s, n);
			o += n;
			s += n;
		}
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return 0;
}

/* Reply text may come from error messages that quote paths: control bytes become '?' so the
 * reply stays one line. */
static size_t finish_reply(char *r, size_t size, int n)
{
	size_t len = n < 0 ? 0 : (size_t)n;
	if (len > size - 2)
		len = size - 2; /* truncated message: still one line */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)r[i] < 0x20 || r[i] == 0x7f)
			r[i] = '?';
	r[len++] = '\n';
	r[len] = '\0';
	return len;
}

static size_t reply_error(km_mgmt_t *m, const char *code, const km_err_t *err)
{
	return finish_reply(m->reply, sizeof(m->reply),
			    snprintf(m->reply, sizeof(m->reply), "error %s %s", code,
				     err != NULL && err->msg != NULL ? err->msg : "failed"));
}

/* ---- requests ----------------------------------------------------------------------------- */

/* What the writer's dir_fn gets: the courier's receiving end and the number the datagram with
 * this request's fd carries. */
typedef struct courier_ticket {
	int fd;
	uint64_t seq;
} courier_ticket_t;

/* Runs on the vCPU that writes the snapshot, every other thread stopped: takes the directory fd
 * the listener sent, moved at once into km's range. Stale datagrams (a request that was never
 * served) are dropped. */
static int receive_dir(void *arg)
{
	const courier_ticket_t *t = arg;
	for (;;) {
		uint64_t seq = 0;
		struct iovec iov = {&seq, sizeof(seq)};
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(int))];
		} u;
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
		ssize_t r = recvmsg(t->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (r < 0)
			return errno == EAGAIN ? -ENOENT : -errno;
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		int fd = -1;
		if (c != NULL && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(fd));
		if (fd >= 0 && r == sizeof(seq) && seq == t->seq)
		{
			int high = km_fd_reserve(fd);
			return high < 0 ? -errno : high;
		}
		if (fd >= 0)
			close(fd);
	}
}

/* Whatever an earlier, unserved request left in the courier is of no use now. */
static void courier_drain(km_mgmt_t *m)
{
	char junk[16];
	int fds[1];
	for (;;) {
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(sizeof(fds))];
		} u;
		struct iovec iov = {junk, sizeof(junk)};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
		km_fd_transient_begin();
		ssize_t got = recvmsg(m->courier[1], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		for (struct cmsghdr *c = got < 0 ? NULL : CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
				memcpy(fds, CMSG_DATA(c), sizeof(int));
				close(fds[0]);
			}
		km_fd_transient_end();
		if (got < 0)
			break;
	}
}

/* Sends fd to the writer's side of the courier, behind a new number. */
static int courier_send(km_mgmt_t *m, int dirfd, courier_ticket_t *t, km_err_t **err)
{
	t->fd = m->courier[1];
	t->seq = ++m->courier_seq;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	memset(&u, 0, sizeof(u));
	struct iovec iov = {&t->seq, sizeof(t->seq)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &dirfd, sizeof(int));
	if (sendmsg(m->courier[0], &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		return km_err_set(err, errno, "handing the directory to the snapshot writer");
	return 0;
}

static size_t reply_err_free(km_mgmt_t *m, const char *code, km_err_t **err)
{
	size_t n = reply_error(m, code, *err);
	km_err_free(err);
	return n;
}

/* The dir=fd of a request: it must have come with it, and be a directory. */
static int check_dir_fd(int dirfd, km_err_t **err)
{
	struct stat st;
	if (dirfd < 0)
		return km_err_set(err, 0, "dir=fd, but no fd came with the request (SCM_RIGHTS in the same sendmsg)");
	if (fstat(dirfd, &st) < 0 || !S_ISDIR(st.st_mode))
		return km_err_set(err, ENOTDIR, "the fd that came with dir=fd");
	return 0;
}

/* parent= with dir=fd: the parent in that directory, opened here (a regular file only: a FIFO
 * or device is never opened) and handed to the writer like the directory (the listener's fd
 * table is its own). Sent before the directory: the writer takes it first. */
static int send_parent(km_mgmt_t *m, const km_mgmt_request_t *rq, int dirfd, courier_ticket_t *t, km_err_t **err)
{
	struct stat st;
	if (fstatat(dirfd, rq->parent, &st, 0) < 0)
		return km_err_set(err, errno, "parent %s", rq->parent);
	if (!S_ISREG(st.st_mode))
		return km_err_set(err, 0, "parent %s: not a regular file", rq->parent);
	km_fd_transient_begin();
	int fd = km_fd_reserve(openat(dirfd, rq->parent, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
	km_fd_transient_end();
	if (fd < 0)
		return km_err_set(err, errno, "parent %s", rq->parent);
	int rc = courier_send(m, fd, t, err);
	close(fd);
	return rc;
}

static size_t do_snapshot(km_mgmt_t *m, const km_mgmt_request_t *rq, int dirfd)
{
	km_err_t *err = NULL;
	char abs[KM_MGMT_PATH_MAX];
	courier_ticket_t ticket;
	km_snapshot_req_t req = {
		.path = abs,
		.label = rq->has_label ? rq->label : NULL,
		.reason = KM_REASON_MGMT,
		.keep_running = rq->keep_running,
		.tcp = rq->tcp,
		.self_contained = rq->self_contained,
	};
	courier_ticket_t pticket;
	char pabs[KM_MGMT_PATH_MAX];
	courier_drain(m);
	if (rq->dir_fd && check_dir_fd(dirfd, &err) < 0)
		return reply_err_free(m, KM_MGMT_E_REQUEST, &err);
	if (rq->parent[0] != '\0' && rq->dir_fd) {
		if (send_parent(m, rq, dirfd, &pticket, &err) < 0)
			return reply_err_free(m, KM_MGMT_E_SNAPSHOT, &err);
		req.parent = rq->parent;
		req.parent_fn = receive_dir;
		req.parent_arg = &pticket;
	} else if (rq->parent[0] != '\0') {
		if (km_mgmt_abs_path(m->base, rq->parent, pabs, &err) < 0)
			return reply_err_free(m, KM_MGMT_E_REQUEST, &err);
		req.parent = pabs;
	}
	if (rq->dir_fd) {
		if (courier_send(m, dirfd, &ticket, &err) < 0)
			return reply_err_free(m, KM_MGMT_E_SNAPSHOT, &err);
		snprintf(abs, sizeof(abs), "%s", rq->path);
		req.dir_fn = receive_dir;
		req.dir_arg = &ticket;
	} else if (km_mgmt_abs_path(m->base, rq->path, abs, &err) < 0) {
		return reply_err_free(m, KM_MGMT_E_REQUEST, &err);
	}
	km_snapshot_result_t res = {0};
	if ((m->paused ? m->snapshot_paused : m->snapshot)(m->g, &req, &res, &err) < 0) {
		if (err == NULL)
			km_err_set(&err, 0, "snapshot failed");
		/* ESRCH: the guest ended before (or while) the request was served. */
		bool gone = err != NULL && err->errnum == ESRCH;
		m->ended = m->ended || gone;
		return reply_err_free(m, gone ? KM_MGMT_E_ENDED : KM_MGMT_E_SNAPSHOT, &err);
	}
	if (!rq->keep_running) {
		m->ended = true;
		if (m->paused) { /* the guest has ended: its parked threads may leave now */
			m->paused = false;
			km_stopall_end(m->g);
		}
	}
	char enc[3 * KM_MGMT_PATH_MAX];
	km_mgmt_encode(abs, enc, sizeof(enc)); /* fits: 3 bytes per byte at most */
	unsigned long long ns = res.elapsed_ns;
	return finish_reply(m->reply, sizeof(m->reply),
			    snprintf(m->reply, sizeof(m->reply), "ok %s=%s size=%llu disk=%llu memory=%llu ms=%llu.%03llu",
				     rq->dir_fd ? "name" : "path", enc, (unsigned long long)res.file_size,
				     (unsigned long long)res.disk_bytes, (unsigned long long)res.memory_bytes, ns / 1000000,
				     ns / 1000 % 1000));
}

/* pause: every vCPU stopped at a clean point, kept so until resume (or the program ends by a
 * mode=stop snapshot), whoever asked and whether they stay connected. */
static size_t do_pause(km_mgmt_t *m, bool pause)
{
	if (pause && !m->paused) {
		if (km_stopall_begin(m->g, NULL, KM_STOP_CLEAN, NULL, 0) < 0) {
			m->ended = true;
			return finish_reply(m->reply, sizeof(m->reply),
					    snprintf(m->reply, sizeof(m->reply), "error %s the program has ended", KM_MGMT_E_ENDED));
		}
		m->paused = true;
	} else if (!pause && m->paused) {
		km_stopall_end(m->g);
		m->paused = false;
	}
	return finish_reply(m->reply, sizeof(m->reply),
			    snprintf(m->reply, sizeof(m->reply), "ok %s", m->paused ? "paused" : "running"));
}

/* Turns one request line into the reply in m->reply; returns the reply's length. */
static size_t handle_line(km_mgmt_t *m, const char *line, size_t len, int dirfd)
{
	km_err_t *err = NULL;
	const char *code = KM_MGMT_E_REQUEST;
	if (km_mgmt_parse(line, len, &m->req, &code, &err) < 0) {
		size_t n = reply_error(m, code, err);
		km_err_free(&err);
		return n;
	}
	switch (m->req.verb) {
	case KM_MGMT_STATUS:
		return finish_reply(m->reply, sizeof(m->reply),
				    snprintf(m->reply, sizeof(m->reply), "ok state=%s pid=%d guest-pid=%d",
					     m->paused ? "paused" : "running", (int)m->host_pid, (int)m->g->pid));
	case KM_MGMT_PAUSE:
	case KM_MGMT_RESUME:
		return do_pause(m, m->req.verb == KM_MGMT_PAUSE);
	case KM_MGMT_VERSION:
		return finish_reply(m->reply, sizeof(m->reply),
				    snprintf(m->reply, sizeof(m->reply), "ok protocol=%d", KM_MGMT_PROTOCOL));
	case KM_MGMT_SNAPSHOT:
		return do_snapshot(m, &m->req, dirfd);
	}
	return 0;
}

/* ---- connections -------------------------------------------------------------------------- */

/* Every connection is served by the one listener thread through poll(): each has its own
 * buffers and deadlines, so an idle or slow client holds only its own slot, never the others.
 * Requests are handled one at a time (a snapshot holds the loop while it is written), at most
 * one per connection per round, in turn. */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool conn_open(const km_mgmt_conn_t *c)
{
	return c->fd >= 0;
}

static bool conn_sending(const km_mgmt_conn_t *c)
{
	return c->out_off < c->out_len;
}

static bool conn_has_request(const km_mgmt_conn_t *c)
{
	return memchr(c->in, '\n', c->in_len) != NULL;
}

static void conn_close(km_mgmt_conn_t *c)
{
	close(c->fd);
	c->fd = -1;
	if (c->pass_fd >= 0)
		close(c->pass_fd);
	c->pass_fd = -1;
}

/* The fd that came with the request of n bytes at the start of `in` (else -1, the fd staying
 * for a later request): the caller owns it. */
static int conn_take_fd(km_mgmt_conn_t *c, size_t n)
{
	if (c->pass_fd < 0)
		return -1;
	if (c->pass_at <= n) {
		int fd = c->pass_fd;
		c->pass_fd = -1;
		return fd;
	}
	c->pass_at -= n + 1;
	return -1;
}

/* Keeps the first fd of an SCM_RIGHTS message for its request, if none is pending; every other
 * one is closed at once (km holds no fd a client sends unless a request asks for it). */
static void conn_keep_fds(km_mgmt_t *m, km_mgmt_conn_t *c, struct msghdr *mh, size_t at)
{
	for (struct cmsghdr *h = CMSG_FIRSTHDR(mh); h != NULL; h = CMSG_NXTHDR(mh, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof(int), sizeof(fd));
			if (fd >= 0 && m->shared_fds)
				fd = km_fd_reserve(fd); /* out of the guest's range at once */
			if (fd >= 0 && c->pass_fd < 0) {
				c->pass_fd = fd;
				c->pass_at = at;
			} else if (fd >= 0) {
				close(fd);
			}
		}
	}
}

/* One line for a client km is about to hang up on, if its buffer takes it; never waits. */
static void send_once(int fd, const char *line)
{
	ssize_t r = send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)r;
}

/* Queues a reply behind any still unsent one (the buffer holds a full reply and an `ended`
 * line after it) and starts its send deadline if nothing was pending. */
static void conn_queue(km_mgmt_t *m, km_mgmt_conn_t *c, const char *r, size_t n)
{
	if (!conn_sending(c)) {
		c->out_off = c->out_len = 0;
		c->send_deadline = now_ms() + m->send_ms;
	}
	if (c->out_len + n > sizeof(c->out)) {
		c->out_off = c->out_len; /* cannot happen: replies are bounded; drop rather than overflow */
		c->close_after = true;
		return;
	}
	memcpy(c->out + c->out_len, r, n);
	c->out_len += n;
}

/* Sends what the socket takes now. A reply completely sent restarts the idle clock (or hangs up
 * when that was the last one). */
static void conn_flush(km_mgmt_conn_t *c)
{
	while (conn_sending(c)) {
		ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (w <= 0) {
			conn_close(c);
			return;
		}
		c->out_off += (size_t)w;
	}
	c->out_off = c->out_len = 0;
	c->since = now_ms();
	if (c->close_after)
		conn_close(c);
}

/* Takes what the client has sent, up to a full request buffer. */
static void conn_read(km_mgmt_t *m, km_mgmt_conn_t *c)
{
	if (c->in_len == sizeof(c->in) || c->eof)
		return;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(KM_MGMT_FDS_MAX * sizeof(int))];
	} u;
	struct iovec iov = {c->in + c->in_len, sizeof(c->in) - c->in_len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	km_fd_transient_begin();
	ssize_t r = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (r >= 0)
		conn_keep_fds(m, c, &mh, c->in_len);
	km_fd_transient_end();
	if (r > 0)
		c->in_len += (size_t)r;
	else if (r == 0)
		c->eof = true;
	else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		conn_close(c); /* broken: a partial request is dropped unanswered */
}

/* km is stopping (the program has ended): a request that already arrived gets a definite answer
 * instead of a silent hang-up. */
static size_t reply_ended(km_mgmt_t *m)
{
	m->ended = true;
	return finish_reply(m->reply, sizeof(m->reply),
			    snprintf(m->reply, sizeof(m->reply), "error %s the program has ended", KM_MGMT_E_ENDED));
}

/* Serves the connection's next complete request, if it has one and no reply is pending. */
static void conn_step(km_mgmt_t *m, km_mgmt_conn_t *c)
{
	if (!conn_open(c) || conn_sending(c))
		return;
	char *nl = memchr(c->in, '\n', c->in_len);
	if (nl != NULL) {
		size_t n = (size_t)(nl - c->in);
		int fd = conn_take_fd(c, n);
		size_t rlen = atomic_load(&m->stopping) ? reply_ended(m) : handle_line(m, c->in, n, fd);
		if (fd >= 0)
			close(fd); /* km keeps no fd a client sent: the writer has its own copy */
		c->in_len -= n + 1;
		memmove(c->in, nl + 1, c->in_len);
		c->close_after = c->close_after || m->ended;
		conn_queue(m, c, m->reply, rlen);
		conn_flush(c);
	} else if (c->in_len == sizeof(c->in)) {
		/* No way to find where the next request starts: answer and hang up. */
		km_err_t *err = NULL;
		km_err_set(&err, 0, "request longer than %d bytes", KM_MGMT_LINE_MAX);
		size_t rlen = reply_error(m, KM_MGMT_E_TOO_LONG, err);
		km_err_free(&err);
		c->in_len = 0;
		c->close_after = true;
		conn_queue(m, c, m->reply, rlen);
		conn_flush(c);
	} else if (c->eof) {
		conn_close(c); /* the client is done; a request without its LF is dropped */
	}
}

/* Drops clients past their deadline: one that does not take its reply within send_ms, one that
 * sends no complete request within idle_ms of connecting or of its last reply. */
static void expire(km_mgmt_t *m, int64_t now)
{
	for (int i = 0; i < KM_MGMT_CONN_MAX; i++) {
		km_mgmt_conn_t *c = &m->conns[i];
		if (!conn_open(c))
			continue;
		if (conn_sending(c) ? now >= c->send_deadline
				    : !conn_has_request(c) && !c->eof && now >= c->since + m->idle_ms)
			conn_close(c);
	}
}

/* A slot for a new connection: a free one, else the one idle longest (no request waiting, no
 * reply pending), whose client is told why it is dropped. -1 if every slot has work. */
static int free_slot(km_mgmt_t *m)
{
	int best = -1;
	for (int i = 0; i < KM_MGMT_CONN_MAX; i++) {
		km_mgmt_conn_t *c = &m->conns[i];
		if (!conn_open(c))
			return i;
		if (conn_sending(c) || conn_has_request(c) || c->eof)
			continue;
		if (best < 0 || c->since < m->conns[best].since)
			best = i;
	}
	if (best >= 0) {
		send_once(m->conns[best].fd, "error " KM_MGMT_E_BUSY " idle connection closed to make room for a new one\n");
		conn_close(&m->conns[best]);
	}
	return best;
}

/* km's own binary, as main opened it at KM_EXEC_SELF_FD (checked to be /proc/self/exe): a peer
 * running it is a km, serving a guest. Unknown (no check) in a program that is not km. */
static void note_self(km_mgmt_t *m)
{
	struct stat fd_st, exe_st;
	if (fstat(KM_EXEC_SELF_FD, &fd_st) == 0 && stat("/proc/self/exe", &exe_st) == 0 && S_ISREG(fd_st.st_mode) &&
	    fd_st.st_dev == exe_st.st_dev && fd_st.st_ino == exe_st.st_ino) {
		m->self_known = true;
		m->self_dev = fd_st.st_dev;
		m->self_ino = fd_st.st_ino;
	}
}

/* The pid a pidfd names now (its fdinfo's Pid line): 0 when the process is outside km's pid
 * namespace, -1 when it ended (or the line cannot be read). */
static pid_t pidfd_pid(int pidfd)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/thread-self/fdinfo/%d", pidfd); /* this thread may have its own fd table */
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (fd >= 0)
		close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	const char *p = strstr(buf, "\nPid:\t");
	long pid = p != NULL ? strtol(p + 6, NULL, 10) : -1;
	return pid >= 0 && pid <= INT32_MAX ? (pid_t)pid : -1;
}

/* Whether the peer runs km's own binary: 1 yes, 0 no, -1 cannot tell. The peer's pidfd (from
 * SO_PEERPIDFD, the process that connected; where the kernel has none, one opened from its
 * SO_PEERCRED pid, which a pid reused in between could fool) pins it: its executable is looked
 * at by pid, and the pidfd then still naming a live process means that pid was still it. */
static int peer_is_km(km_mgmt_t *m, int fd, pid_t cred_pid)
{
	/* A peer outside km's pid namespace (pid 0: km-shim, outside its container) is no program
	 * under this km, whose children all live in its namespace (a guest cannot make another). */
	if (!m->self_known || cred_pid == 0)
		return 0;
	km_fd_transient_begin();
	int pidfd = -1;
	socklen_t len = sizeof(pidfd);
	pid_t pid = -1;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
		pid = pidfd_pid(pidfd);
		if (pid == 0) {
			close(pidfd);
			km_fd_transient_end();
			return 0;
		}
	} else {
		pidfd = (int)syscall(SYS_pidfd_open, cred_pid, 0);
		pid = cred_pid;
	}
	char exe[64];
	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
	struct stat st;
	int rc = pidfd >= 0 && pid > 0 && stat(exe, &st) == 0 ? 0 : -1;
	if (rc == 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0)
		rc = -1; /* ended: the pid may name another process now */
	if (pidfd >= 0)
		close(pidfd);
	km_fd_transient_end();
	if (rc < 0)
		return -1;
	return st.st_dev == m->self_dev && st.st_ino == m->self_ino;
}

/* Only km's own user and root may talk to km, whatever the socket file's mode has become; and
 * never a guest: its sockets are km's, so a connection from km's own pid is the guest's, which
 * must not get km to write files for it (snapshot path=...), nor one from another km (a forked
 * child's guest, or any program under km). Returns NULL or why not. */
static const char *peer_refused(km_mgmt_t *m, int fd)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return "error " KM_MGMT_E_DENIED " cannot tell who is connecting (SO_PEERCRED failed)\n";
	if (cr.pid == m->host_pid && !m->serve_own_process)
		return "error " KM_MGMT_E_DENIED " the program km runs may not use km's management socket\n";
	if (cr.uid != 0 && cr.uid != m->uid && !m->any_peer_uid)
		return "error " KM_MGMT_E_DENIED " only km's user and root may use this socket\n";
	if (cr.pid == m->host_pid) /* serve_own_process: tests */
		return NULL;
	int km = peer_is_km(m, fd, cr.pid);
	if (km < 0)
		return "error " KM_MGMT_E_DENIED " cannot tell who is connecting (the peer's executable)\n";
	if (km > 0)
		return "error " KM_MGMT_E_DENIED " a program under km may not use km's management socket\n";
	return NULL;
}

static void add_conn(km_mgmt_t *m, int fd)
{
	const char *why = peer_refused(m, fd);
	if (why != NULL) {
		send_once(fd, why);
		close(fd);
		return;
	}
	int i = free_slot(m);
	if (i < 0) {
		send_once(fd, "error " KM_MGMT_E_BUSY " too many connections with requests in progress\n");
		close(fd);
		return;
	}
	km_mgmt_conn_t *c = &m->conns[i];
	c->fd = fd;
	c->pass_fd = -1;
	c->since = now_ms();
	c->in_len = c->out_len = c->out_off = 0;
	c->close_after = c->eof = false;
}

/* Accepts the connections waiting, a bounded number per round so the others get their turn. */
static void accept_some(km_mgmt_t *m)
{
	for (int k = 0; k < KM_MGMT_CONN_MAX; k++) {
		km_fd_transient_begin();
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0 && m->shared_fds)
			fd = km_fd_reserve(fd); /* out of the guest's fd range at once */
		km_fd_transient_end();
		if (fd >= 0) {
			add_conn(m, fd);
			continue;
		}
		/* Out of fds or memory: pause accepting instead of spinning on a readable listener. */
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED && errno != EINTR)
			m->accept_after = now_ms() + 100;
		return;
	}
}

/* One round's poll set: the wake fd, the listener, and every connection that waits for bytes
 * (or for room to send). Returns how long poll may sleep: 0 when a request is ready to serve. */
static int build_poll(km_mgmt_t *m, struct pollfd *pfd, int64_t now)
{
	int64_t next = now + 60000;
	bool ready = false;
	pfd[0] = (struct pollfd){.fd = m->wake_fd, .events = POLLIN};
	pfd[1] = (struct pollfd){.fd = now >= m->accept_after ? m->listen_fd : -1, .events = POLLIN};
	if (now < m->accept_after && m->accept_after < next)
		next = m->accept_after;
	for (int i = 0; i < KM_MGMT_CONN_MAX; i++) {
		km_mgmt_conn_t *c = &m->conns[i];
		pfd[2 + i] = (struct pollfd){.fd = -1};
		if (!conn_open(c))
			continue;
		int64_t deadline;
		if (conn_sending(c)) {
			pfd[2 + i] = (struct pollfd){.fd = c->fd, .events = POLLOUT};
			deadline = c->send_deadline;
		} else if (conn_has_request(c) || c->eof || c->in_len == sizeof(c->in)) {
			ready = true;
			continue;
		} else {
			pfd[2 + i] = (struct pollfd){.fd = c->fd, .events = POLLIN};
			deadline = c->since + m->idle_ms;
		}
		if (deadline < next)
			next = deadline;
	}
	if (ready || next <= now)
		return 0;
	return (int)(next - now);
}

/* Serves every client until km stops or the guest ends. */
static void serve_loop(km_mgmt_t *m)
{
	struct pollfd pfd[2 + KM_MGMT_CONN_MAX];
	while (!atomic_load(&m->stopping) && !m->ended) {
		int timeout = build_poll(m, pfd, now_ms());
		if (poll(pfd, 2 + KM_MGMT_CONN_MAX, timeout) < 0) {
			if (errno != EINTR && errno != ENOMEM)
				break;
			if (errno == ENOMEM)
				poll(NULL, 0, 100); /* a pause, not a spin, until memory comes back */
			continue;
		}
		if (pfd[0].revents != 0)
			break; /* km_mgmt_stop */
		for (int i = 0; i < KM_MGMT_CONN_MAX; i++) {
			km_mgmt_conn_t *c = &m->conns[i];
			if (pfd[2 + i].fd < 0 || pfd[2 + i].revents == 0 || !conn_open(c))
				continue;
			if (conn_sending(c))
				conn_flush(c);
			else
				conn_read(m, c);
		}
		/* Before serving: a long snapshot must not make the clients that waited meanwhile look
		 * idle (their bytes were read just now). */
		expire(m, now_ms());
		for (int i = 0; i < KM_MGMT_CONN_MAX; i++)
			conn_step(m, &m->conns[i]);
		if (pfd[1].fd >= 0 && pfd[1].revents != 0)
			accept_some(m);
	}
}

/* Winding down (km stops, or the guest ended): each client with a complete request already sent
 * gets `ended` (behind a reply still being sent), then every connection is closed, within
 * send_ms in all. */
static void finish_conns(km_mgmt_t *m)
{
	for (int i = 0; i < KM_MGMT_CONN_MAX; i++) {
		km_mgmt_conn_t *c = &m->conns[i];
		if (conn_open(c))
			conn_read(m, c);
		if (!conn_open(c))
			continue;
		if (!c->close_after && conn_has_request(c))
			conn_queue(m, c, m->reply, reply_ended(m));
		c->close_after = true;
		if (conn_open(c))
			conn_flush(c);
	}
	int64_t deadline = now_ms() + m->send_ms;
	for (;;) {
		struct pollfd pfd[KM_MGMT_CONN_MAX];
		int n = 0;
		for (int i = 0; i < KM_MGMT_CONN_MAX; i++) {
			pfd[i] = (struct pollfd){.fd = conn_open(&m->conns[i]) ? m->conns[i].fd : -1, .events = POLLOUT};
			n += conn_open(&m->conns[i]);
		}
		int64_t left = deadline - now_ms();
		if (n == 0 || left <= 0)
			break;
		if (poll(pfd, KM_MGMT_CONN_MAX, (int)left) < 0 && errno != EINTR)
			break;
		for (int i = 0; i < KM_MGMT_CONN_MAX; i++)
			if (pfd[i].fd >= 0 && pfd[i].revents != 0 && conn_open(&m->conns[i]))
				conn_flush(&m->conns[i]);
	}
	for (int i = 0; i < KM_MGMT_CONN_MAX; i++)
		if (conn_open(&m->conns[i]))
			conn_close(&m->conns[i]);
}

/* ---- the listener thread ------------------------------------------------------------------ */

/* Closes every fd but keep[0..n) in the calling thread's own fd table. */
static int close_all_but(int *keep, int n)
{
	for (int i = 1; i < n; i++) /* sort: n is tiny */
		for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
			int t = keep[j];
			keep[j] = keep[j - 1];
			keep[j - 1] = t;
		}
	unsigned from = 0;
	for (int i = 0; i < n; i++) {
		if ((unsigned)keep[i] > from && close_range(from, (unsigned)keep[i] - 1, 0) < 0)
			return -1;
		from = (unsigned)keep[i] + 1;
	}
	return close_range(from, ~0u, 0);
}

/* Gives the thread a private fd table holding only the listener, wake and courier fds:
 * accepted connections then never take a number the guest could get, name, close or dup2 over,
 * and the guest's fds are not held open by a copy here. A km whose seccomp profile refuses
 * unshare falls back to km's table, moving each connection above the guest's range as soon as
 * it is accepted. */
static int private_fd_table(km_mgmt_t *m)
{
	if (unshare(CLONE_FILES) < 0) {
		if (errno != EPERM && errno != ENOSYS)
			return -1;
		m->shared_fds = true;
		return 0;
	}
	int keep[] = {m->listen_fd, m->wake_fd, m->courier[0], m->courier[1]};
	return close_all_but(keep, 4);
}

static void *listener_main(void *arg)
{
	km_mgmt_t *m = arg;
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGSYS); /* km_seccomp.h: a blocked SIGSYS would end km without its line */
	pthread_sigmask(SIG_BLOCK, &all, NULL); /* already so from km_mgmt_start; kept explicit */
	int rc = m->shared_fds ? 0 : private_fd_table(m);
	pthread_mutex_lock(&m->lock);
	m->setup_errno = rc < 0 ? errno : 0;
	m->ready = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
	if (rc < 0)
		return NULL; /* km_mgmt_start closes km's copy of the fds and reports the error */
	serve_loop(m);
	finish_conns(m);
	if (m->paused) { /* km is ending: nothing may stay parked */
		m->paused = false;
		km_stopall_end(m->g);
	}
	/* Later connects are refused: shut down, as km keeps a copy for an execve (km_mgmt_handover)
	 * that closing this one would leave listening. */
	shutdown(m->listen_fd, SHUT_RDWR);
	close(m->listen_fd);
	if (!m->shared_fds) {
		close(m->courier[0]);
		close(m->courier[1]);
	}
	return NULL;
}

/* ---- start and stop ----------------------------------------------------------------------- */

static void set_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, strlen(path) + 1);
}

/* Makes room for the socket at path: nothing there is fine, a socket nobody listens on (left by a
 * km that was killed) is removed, anything else is someone else's and refused. */
static int clear_stale(const char *path, km_err_t **err)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : km_err_set(err, errno, "%s", path);
	if (!S_ISSOCK(st.st_mode))
		return km_err_set(err, EEXIST, "%s exists and is not a socket; refusing to replace it", path);
	struct sockaddr_un sa;
	set_addr(&sa, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return km_err_set(err, errno, "%s: socket", path);
	int rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	close(fd);
	/* EAGAIN: a listener with a full backlog is still a listener. */
	if (rc == 0 || e == EAGAIN)
		return km_err_set(err, EADDRINUSE, "%s: another process is listening on it", path);
	if (e == ENOENT)
		return 0;
	if (e != ECONNREFUSED)
		return km_err_set(err, e, "%s: cannot tell whether the socket is in use", path);
	if (unlink(path) < 0 && errno != ENOENT)
		return km_err_set(err, errno, "%s: removing the stale socket", path);
	return 0;
}

/* Creates the listening socket, 0600 from the start: bind creates the file under a umask that
 * leaves only the owner's bits, so there is no moment when others could connect, and no chmod
 * by name afterwards (which would follow a symlink put there meanwhile). umask is per process:
 * this runs before the guest and any other km thread. */
static int create_socket(km_mgmt_t *m, km_err_t **err)
{
	struct sockaddr_un sa;
	set_addr(&sa, m->path);
	m->listen_fd = km_fd_reserve(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
	if (m->listen_fd < 0)
		return km_err_set(err, errno, "%s: socket", m->path);
	mode_t old = umask(0177);
	int rc = bind(m->listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (rc < 0)
		return km_err_set(err, e, "%s: bind", m->path);
	struct stat st;
	if (lstat(m->path, &st) < 0 || listen(m->listen_fd, 64) < 0) {
		km_err_set(err, errno, "%s: listening on the socket just bound", m->path);
		unlink(m->path);
		return -1;
	}
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	return 0;
}

/* Removes the socket file only if it is still the one km bound (not a file someone put there
 * since). */
static void remove_socket(km_mgmt_t *m)
{
	struct stat st;
	if (m->abs_path != NULL && lstat(m->abs_path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_dev == m->dev && st.st_ino == m->ino)
		unlink(m->abs_path);
}

/* Starts the listener with every signal blocked from its first instruction, and waits until it
 * has its own fd table. */
static int start_thread(km_mgmt_t *m, km_err_t **err)
{
	sigset_t all, old;
	sigfillset(&all);
	sigdelset(&all, SIGSYS);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&m->thread, NULL, listener_main, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return km_err_set(err, rc, "starting the management thread");
	pthread_mutex_lock(&m->lock);
	while (!m->ready)
		pthread_cond_wait(&m->cond, &m->lock);
	int e = m->setup_errno;
	pthread_mutex_unlock(&m->lock);
	if (e != 0) {
		pthread_join(m->thread, NULL);
		return km_err_set(err, e, "giving the management thread its own fd table");
	}
	if (!m->shared_fds) {
		m->exec_fd = km_fd_reserve(fcntl(m->listen_fd, F_DUPFD_CLOEXEC, 0));
		close(m->listen_fd); /* km's copies; the thread has its own */
		close(m->courier[0]); /* the number stays the listener's */
	}
	return 0;
}

/* The listener this process runs (a forked child must drop it without serving or unlinking). */
static km_mgmt_t *running;

static void free_mgmt(km_mgmt_t *m)
{
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m->path);
	free(m->abs_path);
	free(m->base);
	free(m);
}

/* A km_mgmt_t with nothing open yet. */
static km_mgmt_t *new_mgmt(km_guest_t *g, const km_mgmt_opts_t *opts, km_err_t **err)
{
	km_mgmt_t *m = calloc(1, sizeof(*m));
	if (m == NULL) {
		km_err_set(err, ENOMEM, "management socket");
		return NULL;
	}
	m->g = g;
	m->host_pid = getpid();
	m->uid = geteuid();
	note_self(m);
	for (int i = 0; i < KM_MGMT_CONN_MAX; i++)
		m->conns[i].fd = m->conns[i].pass_fd = -1;
	m->courier[0] = m->courier[1] = -1;
	m->snapshot = opts->snapshot != NULL ? opts->snapshot : km_snapshot_request;
	m->snapshot_paused = opts->snapshot != NULL ? opts->snapshot : km_snapshot_request_paused;
	m->idle_ms = opts->idle_ms > 0 ? opts->idle_ms : KM_MGMT_IDLE_MS;
	m->send_ms = opts->send_ms > 0 ? opts->send_ms : KM_MGMT_SEND_MS;
	m->shared_fds = opts->shared_fds;
	m->serve_own_process = opts->serve_own_process;
	m->listen_fd = m->wake_fd = m->exec_fd = -1;
	atomic_init(&m->stopping, false);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	m->base = getcwd(NULL, 0);
	if (m->base == NULL) {
		km_err_set(err, errno, "management socket: km's working directory");
		free_mgmt(m);
		return NULL;
	}
	return m;
}

/* With the listening socket open: the wake fd and the thread. Closes what it opened on failure
 * (the listener is the caller's). */
static int start_serving(km_mgmt_t *m, const char *what, km_err_t **err)
{
	m->wake_fd = km_fd_reserve(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
	if (m->wake_fd < 0)
		return km_err_set(err, errno, "%s: eventfd", what);
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair) < 0) {
		km_err_set(err, errno, "%s: socketpair", what);
	} else {
		m->courier[0] = km_fd_reserve(pair[0]);
		m->courier[1] = km_fd_reserve(pair[1]);
		if (m->courier[0] < 0 || m->courier[1] < 0)
			km_err_set(err, errno, "%s: socketpair", what);
		else if (start_thread(m, err) == 0) {
			running = m;
			return 0;
		}
	}
	for (int i = 0; i < 2; i++)
		if (m->courier[i] >= 0)
			close(m->courier[i]);
	m->courier[0] = m->courier[1] = -1;
	close(m->wake_fd);
	m->wake_fd = -1;
	return -1;
}

int km_mgmt_start_opts(km_guest_t *g, const char *sock_path, const km_mgmt_opts_t *opts, km_mgmt_t **out,
		       km_err_t **err)
{
	*out = NULL;
	struct sockaddr_un sa;
	if (sock_path[0] == '\0' || strlen(sock_path) >= sizeof(sa.sun_path))
		return km_err_set(err, 0, "--mgmt: socket path '%s' must be 1 to %zu bytes long", sock_path,
				  sizeof(sa.sun_path) - 1);
	km_mgmt_t *m = new_mgmt(g, opts, err);
	if (m == NULL)
		return -1;
	m->path = strdup(sock_path);
	m->abs_path = malloc(KM_MGMT_PATH_MAX);
	if (m->path == NULL || m->abs_path == NULL) {
		km_err_set(err, ENOMEM, "management socket");
		free_mgmt(m);
		return -1;
	}
	if (km_mgmt_abs_path(m->base, sock_path, m->abs_path, err) < 0) {
		free_mgmt(m);
		return km_err_wrap(err, "management socket");
	}
	km_fd_limit_init(); /* room for km's fds above the guest's range */
	bool bound = false;
	if (clear_stale(m->path, err) == 0 && create_socket(m, err) == 0) {
		bound = true;
		if (start_serving(m, m->path, err) == 0) {
			*out = m;
			return 0;
		}
	}
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	if (bound)
		if (m->exec_fd >= 0)
		close(m->exec_fd);
	remove_socket(m);
	free_mgmt(m);
	return km_err_wrap(err, "management socket");
}

int km_mgmt_start_fd(km_guest_t *g, int listen_fd, const km_mgmt_opts_t *opts, km_mgmt_t **out, km_err_t **err)
{
	*out = NULL;
	km_mgmt_t *m = new_mgmt(g, opts, err);
	if (m == NULL)
		return -1;
	m->listen_fd = listen_fd;
	m->any_peer_uid = opts->owned_path == NULL;
	if (opts->owned_path != NULL) { /* the km before an execve made it: this one removes it */
		m->path = strdup(opts->owned_path);
		m->abs_path = strdup(opts->owned_path);
		m->dev = (dev_t)opts->owned_dev;
		m->ino = (ino_t)opts->owned_ino;
		if (m->path == NULL || m->abs_path == NULL) {
			free_mgmt(m);
			return km_err_set(err, ENOMEM, "management socket");
		}
	}
	if (start_serving(m, "--mgmt-fd", err) < 0) {
		free_mgmt(m);
		return km_err_wrap(err, "management socket");
	}
	*out = m;
	return 0;
}

int km_mgmt_handover(const km_mgmt_t *m, uint64_t *dev, uint64_t *ino)
{
	bool owned = m->abs_path != NULL && !m->any_peer_uid;
	*dev = owned ? (uint64_t)m->dev : 0;
	*ino = owned ? (uint64_t)m->ino : 0;
	return m->shared_fds ? m->listen_fd : m->exec_fd;
}

int km_mgmt_start(km_guest_t *g, const char *sock_path, km_mgmt_t **out, km_err_t **err)
{
	km_mgmt_opts_t opts = {0};
	return km_mgmt_start_opts(g, sock_path, &opts, out, err);
}

void km_mgmt_forget_in_child(void)
{
	km_mgmt_t *m = running;
	running = NULL;
	if (m == NULL)
		return;
	/* Only the fds in km's own table: the listener's private table went with its thread. The
	 * socket file and the connections stay the parent's; m's memory is left (its locks may have
	 * been held by the parent's threads). */
	close(m->wake_fd);
	close(m->courier[1]);
	/* km's copy for an execve's hand-over too: a child that execs must not take the listener
	 * with it (it would serve the parent's requests and remove the parent's socket file). */
	if (m->exec_fd >= 0)
		close(m->exec_fd);
	if (m->shared_fds) {
		close(m->courier[0]);
		close(m->listen_fd);
		for (int i = 0; i < KM_MGMT_CONN_MAX; i++) {
			if (m->conns[i].fd >= 0)
				close(m->conns[i].fd);
			if (m->conns[i].pass_fd >= 0)
				close(m->conns[i].pass_fd);
		}
	}
}

void km_mgmt_stop(km_mgmt_t *m)
{
	if (m == NULL)
		return;
	if (running == m)
		running = NULL;
	atomic_store(&m->stopping, true);
	uint64_t one = 1;
	while (write(m->wake_fd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
	pthread_join(m->thread, NULL);
	close(m->wake_fd);
	close(m->courier[1]); /* km's copy */
	if (m->shared_fds)
		close(m->courier[0]); /* else the listener's own, closed by it */
	if (m->exec_fd >= 0)
		close(m->exec_fd);
	remove_socket(m);
	free_mgmt(m);
}
