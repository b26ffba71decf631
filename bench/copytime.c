/*
 * copytime: the timer and memory meter behind the `copies` rows of run.sh.
 *
 *   copytime -n N -c COMM [-t SECS] [-w MIB] [-P] -- CMD...
 *
 * Starts N copies of CMD at once, each with a stdin pipe that already holds the line "go MIB\n"
 * (guests/copy_touch's go-ahead; -w, default 0) and a stdout pipe of its own. Without -P the pipes
 * are CMD's fds 0 and 1; with -P they are its fds 3 (stdin) and 4 (stdout), for a restorer that
 * hands inherited fds on (criu restore --inherit-fd), and CMD's own stdin and stdout are /dev/null.
 * Every "{i}" in CMD's arguments is replaced by the copy's number (0 to N-1), e.g. to give each
 * copy a work directory of its own. It times from just before the first spawn until every copy has printed a line starting with
 * "running" (copy_touch, after it has read its whole memory), then measures each copy's memory:
 * the processes named COMM (/proc/PID/comm) that hold the copy's stdout pipe (the program itself:
 * km, which takes its guest's name, the native program, or the task criu restored, whoever its
 * parent is; found in /proc/PID/fd), their Pss, Pss_Anon, Pss_File and Rss from
 * /proc/PID/smaps_rollup. Other holders (criu, unshare: wrappers of a restore) are not counted. Then it closes every stdin pipe
 * (copy_touch exits at EOF), reads each stdout to its end and waits for its children.
 *
 * Prints "copies=<N> all_running_ns=<n> pss_kb=<sum> pss_anon_kb=<sum> pss_file_kb=<sum>
 * rss_kb=<sum> status=<ok|FAIL>", then "copy=<i> pids=<p,...> pss_kb=<n> rss_kb=<n> exit=<s>" for
 * each copy and "out<i>: <line>" for each line it printed. On a timeout (SECS, default 120, for
 * the start and again for the end) or when a copy ends before "running", every child and every
 * holder of a copy's pipes is killed (SIGKILL) and waited for (children) before it prints.
 *
 * Exit status 0 when every copy ran and exited 0, 1 otherwise (or on a setup error), 2 on bad usage.
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

#define MAX_COPIES 64
#define MAX_HOLDERS 8
#define OUT_MAX 4096

struct copy {
	pid_t child;     /* CMD, our child */
	int in_w, out_r; /* our ends of its pipes */
	long out_ino;    /* inode of its stdout pipe */
	char out[OUT_MAX];
	size_t out_len;
	int running, eof;
	pid_t holders[MAX_HOLDERS];
	int nholders;
	long pss, pss_anon, pss_file, rss;
	int status; /* exit status of the child, 128+signal, -1 if not known */
};

static struct copy copies[MAX_COPIES];
static int ncopies;
static const char *comm; /* -c: the name of the processes whose memory counts */

/* copy_argv: argv with every "{i}" replaced by i (a new vector; strings that need no change shared). */
static char **copy_argv(char **argv, int i)
{
	int n = 0;
	while (argv[n])
		n++;
	char **v = calloc((size_t)n + 1, sizeof *v);
	if (!v)
		die("calloc");
	for (int k = 0; k < n; k++) {
		const char *at = strstr(argv[k], "{i}");
		if (!at) {
			v[k] = argv[k];
			continue;
		}
		if (asprintf(&v[k], "%.*s%d%s", (int)(at - argv[k]), argv[k], i, at + 3) < 0)
			die("asprintf");
	}
	return v;
}

/* start: spawns copy c of argv with its pipes; "go MIB" already waits in its stdin. */
static void start(struct copy *c, char **argv, int on_3_4, long wmib)
{
	int in[2], out[2];
	hi_pipe(in);
	hi_pipe(out);
	char go[32];
	int n = snprintf(go, sizeof go, "go %ld\n", wmib);
	if (write(in[1], go, (size_t)n) != n)
		die("write to a stdin pipe");
	struct stat st;
	if (fstat(out[0], &st) < 0)
		die("fstat");
	c->out_ino = (long)st.st_ino;
	c->status = -1;

	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	if (on_3_4) {
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_adddup2(&fa, in[0], 3);
		posix_spawn_file_actions_adddup2(&fa, out[1], 4);
	} else {
		posix_spawn_file_actions_adddup2(&fa, in[0], 0);
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	}
	int e = posix_spawnp(&c->child, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e) {
		errno = e;
		die(argv[0]);
	}
	close(in[0]);
	close(out[1]);
	c->in_w = in[1];
	c->out_r = out[0];
	fcntl(c->out_r, F_SETFL, O_NONBLOCK);
}

/* drain: reads what copy c printed so far; notes "running" and EOF. */
static void drain(struct copy *c)
{
	for (;;) {
		char b[1024];
		ssize_t n = read(c->out_r, b, sizeof b);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return; /* EAGAIN: nothing more for now */
		if (n == 0) {
			c->eof = 1;
			return;
		}
		size_t room = sizeof c->out - 1 - c->out_len;
		size_t k = (size_t)n < room ? (size_t)n : room;
		memcpy(c->out + c->out_len, b, k);
		c->out_len += k;
		c->out[c->out_len] = 0;
		c->running = c->running || strncmp(c->out, "running", 7) == 0 || strstr(c->out, "\nrunning");
	}
}

/* pump: polls every copy's stdout until done(c) holds for all, or the deadline; 0 or -1. */
static int pump(long long deadline, int (*done)(const struct copy *))
{
	for (;;) {
		struct pollfd pf[MAX_COPIES];
		int n = 0;
		for (int i = 0; i < ncopies; i++) {
			if (done(&copies[i]))
				continue;
			if (copies[i].eof)
				return -1; /* ended before it was done */
			pf[n].fd = copies[i].out_r;
			pf[n].events = POLLIN;
			n++;
		}
		if (n == 0)
			return 0;
		long long left = deadline - now_ns();
		if (left <= 0)
			return -1;
		if (poll(pf, (nfds_t)n, (int)(left / 1000000 + 1)) < 0 && errno != EINTR)
			die("poll");
		for (int i = 0; i < ncopies; i++)
			drain(&copies[i]);
	}
}

static int is_running(const struct copy *c)
{
	return c->running;
}

static int is_eof(const struct copy *c)
{
	return c->eof;
}

/* find_holders: for each copy, the processes other than this one that have its stdout pipe open. */
static void find_holders(void)
{
	for (int i = 0; i < ncopies; i++)
		copies[i].nholders = 0;
	DIR *proc = opendir("/proc");
	if (!proc)
		die("/proc");
	struct dirent *d;
	pid_t self = getpid();
	while ((d = readdir(proc))) {
		pid_t pid = (pid_t)atol(d->d_name);
		if (pid <= 0 || pid == self)
			continue;
		char path[64];
		snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
		DIR *fds = opendir(path);
		if (!fds)
			continue;
		struct dirent *f;
		while ((f = readdir(fds))) {
			char target[64];
			ssize_t n = readlinkat(dirfd(fds), f->d_name, target, sizeof target - 1);
			if (n <= 0)
				continue;
			target[n] = 0;
			long ino;
			if (sscanf(target, "pipe:[%ld]", &ino) != 1)
				continue;
			for (int i = 0; i < ncopies; i++) {
				struct copy *c = &copies[i];
				if (c->out_ino != ino)
					continue;
				int seen = 0;
				for (int h = 0; h < c->nholders; h++)
					seen |= c->holders[h] == pid;
				if (!seen && c->nholders < MAX_HOLDERS)
					c->holders[c->nholders++] = pid;
			}
		}
		closedir(fds);
	}
	closedir(proc);
}

/* rollup_kb: the value in kB of KEY ("Pss:") in /proc/PID/smaps_rollup, or 0. */
static long rollup_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
	FILE *f = fopen(path, "r");
	long v = 0;
	if (!f)
		return 0;
	size_t k = strlen(key);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, k) == 0) {
			v = atol(line + k);
			break;
		}
	fclose(f);
	return v;
}

/* named: does process PID have the name comm? */
static int named(pid_t pid)
{
	char path[64], name[32] = "";
	snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(name, sizeof name, f))
		name[0] = 0;
	fclose(f);
	name[strcspn(name, "\n")] = 0;
	return strcmp(name, comm) == 0;
}

/* measure: each copy's memory, its holders narrowed to those named comm. */
static void measure(void)
{
	find_holders();
	for (int i = 0; i < ncopies; i++) {
		struct copy *c = &copies[i];
		int k = 0;
		for (int h = 0; h < c->nholders; h++)
			if (named(c->holders[h]))
				c->holders[k++] = c->holders[h];
		c->nholders = k;
		for (int h = 0; h < c->nholders; h++) {
			c->pss += rollup_kb(c->holders[h], "Pss:");
			c->pss_anon += rollup_kb(c->holders[h], "Pss_Anon:");
			c->pss_file += rollup_kb(c->holders[h], "Pss_File:");
			c->rss += rollup_kb(c->holders[h], "Rss:");
		}
	}
}

/* kill_all: SIGKILL to every child and every holder of a copy's stdout pipe. */
static void kill_all(void)
{
	find_holders();
	for (int i = 0; i < ncopies; i++) {
		for (int h = 0; h < copies[i].nholders; h++)
			kill(copies[i].holders[h], SIGKILL);
		if (copies[i].child > 0)
			kill(copies[i].child, SIGKILL);
	}
}

/* reap: waits for every child, SIGKILLing those still there at the deadline. */
static void reap(long long deadline)
{
	for (int i = 0; i < ncopies; i++) {
		struct copy *c = &copies[i];
		int st;
		while (c->status < 0) {
			pid_t r = waitpid(c->child, &st, WNOHANG);
			if (r == c->child) {
				c->status = status_code(st);
			} else if (r < 0 && errno != EINTR) {
				break;
			} else if (now_ns() > deadline) {
				kill(c->child, SIGKILL);
				if (waitpid(c->child, &st, 0) == c->child)
					c->status = status_code(st);
				break;
			} else {
				usleep(2000);
			}
		}
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: copytime -n N -c COMM [-t SECS] [-w MIB] [-P] -- CMD...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int on_3_4 = 0, opt;
	long secs = 120, wmib = 0;
	while ((opt = getopt(argc, argv, "+n:c:t:w:P")) != -1) {
		switch (opt) {
		case 'n': ncopies = atoi(optarg); break;
		case 'c': comm = optarg; break;
		case 't': secs = atol(optarg); break;
		case 'w': wmib = atol(optarg); break;
		case 'P': on_3_4 = 1; break;
		default: usage();
		}
	}
	if (ncopies < 1 || !comm || ncopies > MAX_COPIES || secs < 1 || wmib < 0 || optind >= argc)
		usage();
	signal(SIGPIPE, SIG_IGN);

	long long t0 = now_ns();
	for (int i = 0; i < ncopies; i++)
		start(&copies[i], copy_argv(argv + optind, i), on_3_4, wmib);
	int ok = pump(t0 + secs * 1000000000LL, is_running) == 0;
	long long all_running = now_ns() - t0;
	if (ok)
		measure();
	else
		kill_all();

	for (int i = 0; i < ncopies; i++)
		close(copies[i].in_w); /* copy_touch exits at EOF */
	if (ok && pump(now_ns() + secs * 1000000000LL, is_eof) < 0) {
		ok = 0;
		kill_all();
	}
	reap(now_ns() + (ok ? secs : 5) * 1000000000LL);
	if (!ok)
		kill_all(); /* a holder that is no child of ours and outlived the deadline */

	long pss = 0, anon = 0, file = 0, rss = 0;
	for (int i = 0; i < ncopies; i++) {
		struct copy *c = &copies[i];
		pss += c->pss, anon += c->pss_anon, file += c->pss_file, rss += c->rss;
		ok = ok && c->status == 0 && c->nholders > 0;
	}
	printf("copies=%d all_running_ns=%lld pss_kb=%ld pss_anon_kb=%ld pss_file_kb=%ld rss_kb=%ld status=%s\n",
	       ncopies, all_running, pss, anon, file, rss, ok ? "ok" : "FAIL");
	for (int i = 0; i < ncopies; i++) {
		struct copy *c = &copies[i];
		printf("copy=%d pids=", i);
		for (int h = 0; h < c->nholders; h++)
			printf("%s%d", h ? "," : "", (int)c->holders[h]);
		printf("%s pss_kb=%ld rss_kb=%ld exit=%d\n", c->nholders ? "" : "none", c->pss, c->rss, c->status);
	}
	for (int i = 0; i < ncopies; i++) {
		const char *p = copies[i].out;
		while (*p) {
			const char *e = strchr(p, '\n');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			printf("out%d: %.*s\n", i, (int)n, p);
			p += n + (e ? 1 : 0);
		}
	}
	return ok ? 0 : 1;
}
