/*
 * snaptime: the timers behind the snapshot rows of run.sh. All times are CLOCK_MONOTONIC.
 *
 *   snaptime write FILE MIB
 *       The floor for writing a snapshot: creates FILE, writes MIB MiB of non-zero data to it in
 *       1 MiB write(2)s, fsyncs it, closes it; the data is made before the clock starts. Prints
 *       "write_ns=<n> disk_bytes=<st_blocks*512>" and removes FILE.
 *
 *   snaptime self [-t SECS] -- CMD...
 *       For a program that snapshots itself and whose monitor then exits (km GUEST MIB self). Runs
 *       CMD with stdin /dev/null and stdout a pipe, reads it to the end and waits for CMD. The
 *       program prints "snap_start_ns=<CLOCK_MONOTONIC>" just before its snapshot call; the time
 *       from there to CMD's exit is the snapshot time. Prints
 *       "snap_ns=<n|n/a> status=<exit status, 128+signal if killed>", then "out: <line>" for each line
 *       CMD printed.
 *
 *   snaptime checkpoint [-t SECS] [-S DIR] [-O FILE] [-E FILE] -- GUEST... --then CHECKPOINTER...
 *       For a program taken from outside (snap_touch MIB wait under criu). Runs GUEST with stdin
 *       and stdout pipes (stderr /dev/null, or FILE with -E: km's own messages) until it prints a line starting with "ready", then runs
 *       CHECKPOINTER (every "{pid}" in its arguments replaced by GUEST's pid; its stdout goes to
 *       FILE, default /dev/null) and times it from spawn to exit; then fsyncs every regular file in
 *       DIR and DIR itself, and times that separately (criu does not fsync its images; km does).
 *       Waits for GUEST to end (a checkpointer that stops it). Prints "checkpoint_ns=<n>
 *       fsync_ns=<n> checkpointer_status=<s> guest_status=<s> guest_pid=<pid> stdin_ino=<inode of
 *       GUEST's stdin pipe> stdout_ino=<same for stdout>", then "out: <line>" for GUEST's output.
 *
 *   snaptime firstout [-t SECS] [-P] [-O FILE] -- CMD...
 *       Time to a restored program's first output. Makes a stdin pipe holding one byte ("g", the
 *       go-ahead snap_touch's wait mode reads) and a stdout pipe, runs CMD and times from just before
 *       the spawn to the first byte read from the stdout pipe, then reads to the end and waits.
 *       Without -P the pipes are CMD's fds 0 and 1. With -P they are its fds 3 (stdin pipe) and 4
 *       (stdout pipe), for a restorer that hands inherited fds on (criu restore --inherit-fd), and
 *       CMD's own stdin is /dev/null and its stdout FILE (default /dev/null). Prints
 *       "first_out_ns=<n|n/a> total_ns=<n> status=<s>", then "out: <line>" for each line read.
 *
 * Children get no other fds than those named here (snaptime's fds 3 and up are closed in them), and
 * stderr of CMD is snaptime's own. Exit status 0 when the commands ran (whatever their status: the
 * caller judges), 1 on a timeout (everything started is killed) or a setup error, 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_proc.h"

extern char **environ;

static pid_t kids[2] = {-1, -1};
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
	for (int i = 0; i < 2; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
}

static void usage(void)
{
	fprintf(stderr, "usage: snaptime write FILE MIB\n"
			"       snaptime self [-t SECS] -- CMD...\n"
			"       snaptime checkpoint [-t SECS] [-S DIR] [-O FILE] [-E FILE] -- GUEST... --then CHECKPOINTER...\n"
			"       snaptime firstout [-t SECS] [-P] [-O FILE] -- CMD...\n");
	exit(2);
}

static long ino_of(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (long)st.st_ino : -1;
}

/* Waits for pid; -1 when interrupted by the timeout. */
static int wait_for(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR || timed_out)
			return -1;
	}
	return status_code(st);
}

/* Output captured from a child's stdout. */
static char *out_buf;
static size_t out_len, out_cap;

static void out_add(const char *p, size_t n)
{
	if (out_len + n + 1 > out_cap) {
		out_cap = (out_len + n + 1) * 2;
		out_buf = realloc(out_buf, out_cap);
		if (!out_buf)
			die("realloc");
	}
	memcpy(out_buf + out_len, p, n);
	out_len += n;
	out_buf[out_len] = 0;
}

/* Reads fd into out_buf once; returns bytes read, 0 at EOF, -1 on timeout/error. */
static ssize_t read_some(int fd)
{
	char b[4096];
	for (;;) {
		ssize_t n = read(fd, b, sizeof b);
		if (n >= 0) {
			out_add(b, (size_t)n);
			return n;
		}
		if (errno != EINTR || timed_out)
			return -1;
	}
}

static void print_out(void)
{
	const char *p = out_buf ? out_buf : "";
	while (*p) {
		const char *e = strchr(p, '\n');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		printf("out: %.*s\n", (int)n, p);
		p += n + (e ? 1 : 0);
	}
}

static pid_t spawn(char **argv, posix_spawn_file_actions_t *fa)
{
	pid_t pid;
	int e = posix_spawnp(&pid, argv[0], fa, NULL, argv, environ);
	if (e) {
		errno = e;
		fprintf(stderr, "snaptime: cannot run %s: %s\n", argv[0], strerror(e));
		exit(1);
	}
	return pid;
}

static int timeout_exit(const char *what)
{
	fprintf(stderr, "snaptime: %s timed out; killed\n", what);
	print_out();
	return 1;
}

static int do_write(int argc, char **argv)
{
	if (argc != 2)
		usage();
	long mib = atol(argv[1]);
	if (mib < 1)
		usage();
	size_t chunk = 1 << 20;
	unsigned long long *buf = malloc(chunk);
	if (!buf)
		die("malloc");
	int fd = open(argv[0], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		die(argv[0]);
	long long t0 = now_ns();
	for (long m = 0; m < mib; m++) {
		/* New data per MiB (a few hundred us per MiB at most, far below the write itself). */
		for (size_t i = 0; i < chunk / 8; i++)
			buf[i] = ((m * (chunk / 8) + i) * 0x9E3779B97F4A7C15ull) | 1;
		for (size_t off = 0; off < chunk;) {
			ssize_t n = write(fd, (char *)buf + off, chunk - off);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				unlink(argv[0]);
				die("write");
			}
			off += (size_t)n;
		}
	}
	if (fsync(fd) < 0) {
		unlink(argv[0]);
		die("fsync");
	}
	long long t1 = now_ns();
	struct stat st;
	long long disk = fstat(fd, &st) == 0 ? (long long)st.st_blocks * 512 : -1;
	close(fd);
	unlink(argv[0]);
	printf("write_ns=%lld disk_bytes=%lld\n", t1 - t0, disk);
	return 0;
}

static int do_self(char **cmd)
{
	int out[2];
	hi_pipe(out);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	kids[0] = spawn(cmd, &fa);
	close(out[1]);
	ssize_t n;
	while ((n = read_some(out[0])) > 0)
		;
	int st = n < 0 ? -1 : wait_for(kids[0]);
	long long t_end = now_ns();
	if (timed_out || st < 0)
		return timeout_exit(cmd[0]);
	const char *s = out_buf ? strstr(out_buf, "snap_start_ns=") : NULL;
	if (s)
		printf("snap_ns=%lld status=%d\n", t_end - atoll(s + strlen("snap_start_ns=")), st);
	else
		printf("snap_ns=n/a status=%d\n", st);
	print_out();
	return 0;
}

static void fsync_path(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC);
	if (fd < 0)
		die(path);
	if (fsync(fd) < 0)
		die(path);
	close(fd);
}

static void fsync_dir(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		die(dir);
	struct dirent *e;
	char path[4096];
	while ((e = readdir(d))) {
		struct stat st;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode))
			fsync_path(path, O_RDONLY);
	}
	closedir(d);
	fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

static int do_checkpoint(char **guest, char **ckpt, const char *dir, const char *ofile, const char *efile)
{
	int in[2], out[2];
	hi_pipe(in);
	hi_pipe(out);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, efile ? efile : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	kids[0] = spawn(guest, &fa);
	close(in[0]);
	close(out[1]);
	long stdin_ino = ino_of(in[1]), stdout_ino = ino_of(out[0]);

	/* Up to the "ready" line. */
	for (;;) {
		const char *r = out_buf ? strstr(out_buf, "ready") : NULL;
		if (r && (r == out_buf || r[-1] == '\n') && strchr(r, '\n'))
			break;
		ssize_t n = read_some(out[0]);
		if (n < 0)
			return timeout_exit(guest[0]);
		if (n == 0) {
			int st = wait_for(kids[0]);
			fprintf(stderr, "snaptime: %s ended (status %d) before it was ready\n", guest[0], st);
			print_out();
			return 1;
		}
	}

	char pid[32];
	snprintf(pid, sizeof pid, "%d", (int)kids[0]);
	for (char **a = ckpt; *a; a++) {
		char *p = strstr(*a, "{pid}");
		if (p) {
			size_t len = strlen(*a) + sizeof pid;
			char *s = malloc(len);
			if (!s)
				die("malloc");
			snprintf(s, len, "%.*s%s%s", (int)(p - *a), *a, pid, p + 5);
			*a = s;
		}
	}
	posix_spawn_file_actions_t fc;
	posix_spawn_file_actions_init(&fc);
	posix_spawn_file_actions_addopen(&fc, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fc, 1, ofile ? ofile : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_addclosefrom_np(&fc, 3);
	long long t0 = now_ns();
	kids[1] = spawn(ckpt, &fc);
	int cst = wait_for(kids[1]);
	long long t1 = now_ns();
	if (cst < 0)
		return timeout_exit(ckpt[0]);
	if (dir)
		fsync_dir(dir);
	long long t2 = now_ns();

	/* The guest: ended by the checkpointer, or (checkpointer failed) still waiting: release it. */
	close(in[1]);
	ssize_t n;
	while ((n = read_some(out[0])) > 0)
		;
	int gst = n < 0 ? -1 : wait_for(kids[0]);
	if (gst < 0)
		return timeout_exit(guest[0]);
	printf("checkpoint_ns=%lld fsync_ns=%lld checkpointer_status=%d guest_status=%d guest_pid=%s "
	       "stdin_ino=%ld stdout_ino=%ld\n",
	       t1 - t0, t2 - t1, cst, gst, pid, stdin_ino, stdout_ino);
	print_out();
	return 0;
}

static int do_firstout(char **cmd, int inherit, const char *ofile)
{
	int in[2], out[2];
	hi_pipe(in);
	hi_pipe(out);
	if (write(in[1], "g", 1) != 1)
		die("write");
	close(in[1]);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (inherit) {
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 1, ofile ? ofile : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC,
						 0600);
		posix_spawn_file_actions_adddup2(&fa, in[0], 3);
		posix_spawn_file_actions_adddup2(&fa, out[1], 4);
		posix_spawn_file_actions_addclosefrom_np(&fa, 5);
	} else {
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
		posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	}
	long long t0 = now_ns(), t_first = -1;
	kids[0] = spawn(cmd, &fa);
	close(in[0]);
	close(out[1]);
	ssize_t n;
	while ((n = read_some(out[0])) > 0)
		if (t_first < 0)
			t_first = now_ns();
	int st = n < 0 ? -1 : wait_for(kids[0]);
	long long t_end = now_ns();
	if (st < 0)
		return timeout_exit(cmd[0]);
	if (t_first >= 0)
		printf("first_out_ns=%lld total_ns=%lld status=%d\n", t_first - t0, t_end - t0, st);
	else
		printf("first_out_ns=n/a total_ns=%lld status=%d\n", t_end - t0, st);
	print_out();
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *mode = argv[1];
	if (strcmp(mode, "write") == 0)
		return do_write(argc - 2, argv + 2);

	int timeout = 60, inherit = 0, c;
	const char *dir = NULL, *ofile = NULL, *efile = NULL;
	optind = 2;
	while ((c = getopt(argc, argv, "+t:S:O:E:P")) != -1) {
		switch (c) {
		case 't': timeout = atoi(optarg); break;
		case 'S': dir = optarg; break;
		case 'O': ofile = optarg; break;
		case 'E': efile = optarg; break;
		case 'P': inherit = 1; break;
		default: usage();
		}
	}
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc || timeout < 1)
		usage();
	char **cmd = argv + optind;

	struct sigaction sa = {0};
	sa.sa_handler = on_alarm; /* no SA_RESTART: a blocked read or waitpid returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	alarm((unsigned)timeout);

	if (strcmp(mode, "self") == 0)
		return do_self(cmd);
	if (strcmp(mode, "firstout") == 0)
		return do_firstout(cmd, inherit, ofile);
	if (strcmp(mode, "checkpoint") == 0) {
		char **then = cmd;
		while (*then && strcmp(*then, "--then") != 0)
			then++;
		if (!*then || !then[1] || then == cmd)
			usage();
		*then = NULL;
		return do_checkpoint(cmd, then + 1, dir, ofile, efile);
	}
	usage();
}
