/*
 * ctr_view: what a program sees from inside a container (tests/e2e/shim_ctr.sh runs it under
 * km-shim). Each argument is a command, run in order, each printing one or more lines:
 *   ls DIR        "ls DIR: a b c" (sorted, without . and ..) or "ls DIR: ERRNO-NAME"
 *   cat FILE      "cat FILE: <first line>" or "cat FILE: ERRNO-NAME" ("" if empty)
 *   write FILE    "write FILE: ok" or "write FILE: ERRNO-NAME" (creates or truncates it)
 *   env           "env: NAME=VALUE" per variable, in order
 *   id            "id: uid R E gid R E groups G..."
 *   host          "hostname: H" and "domainname: D"
 *   cwd / umask   "cwd: /dir", "umask: 0022"
 *   tty           "tty: 0 yes 1 yes 2 yes" (isatty) and "winsize: ROWSxCOLS" or "winsize: ERRNO-NAME"
 *   stat PATH     "stat PATH: chr|blk|reg|dir|other, fd 0's device|not fd 0's device" or
 *                 "stat PATH: ERRNO-NAME"
 *   threads N     makes up to N threads that wait: "threads: made M of N: ok|ERRNO-NAME"
 *   mem MIB       maps and touches MIB MiB in 1 MiB chunks, printing "mem: N MiB" every 4 MiB
 *                 (flushed: a program killed midway shows how far it got), then
 *                 "mem: touched N MiB" or "mem: stopped after N MiB: ERRNO-NAME"
 * Exits 0 unless an argument is not a command (2).
 */
// E2E: run 0 cwd umask id threads 4 mem 8 ls @TMP cat @TMP/none
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

extern char **environ;

static const char *ename(int e)
{
	static char buf[16];
	switch (e) {
	case ENOENT: return "ENOENT";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case EROFS: return "EROFS";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case ENOTTY: return "ENOTTY";
	case EINVAL: return "EINVAL";
	case ENOSYS: return "ENOSYS";
	case EBADF: return "EBADF";
	default:
		snprintf(buf, sizeof(buf), "errno%d", e);
		return buf;
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void do_ls(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		printf("ls %s: %s\n", dir, ename(errno));
		return;
	}
	char *names[256];
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) && n < 256)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[n++] = strdup(e->d_name);
	closedir(d);
	qsort(names, n, sizeof(names[0]), cmp_str);
	printf("ls %s:", dir);
	for (size_t i = 0; i < n; i++) {
		printf(" %s", names[i]);
		free(names[i]);
	}
	printf("\n");
}

static void do_cat(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("cat %s: %s\n", path, ename(errno));
		return;
	}
	char buf[512];
	ssize_t r = read(fd, buf, sizeof(buf) - 1);
	int e = errno;
	close(fd);
	if (r < 0) {
		printf("cat %s: %s\n", path, ename(e));
		return;
	}
	buf[r] = 0;
	buf[strcspn(buf, "\n")] = 0;
	printf("cat %s: %s\n", path, buf);
}

static void do_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0) {
		printf("write %s: %s\n", path, ename(errno));
		return;
	}
	ssize_t w = write(fd, "x\n", 2);
	printf("write %s: %s\n", path, w == 2 ? "ok" : ename(errno));
	close(fd);
}

/* Opens `path` write-only and closes it unwritten (a device node's open is what the device
 * cgroup decides). */
static void do_openw(const char *path)
{
	int fd = open(path, O_WRONLY);
	printf("openw %s: %s\n", path, fd >= 0 ? "ok" : ename(errno));
	if (fd >= 0)
		close(fd);
}

static void do_id(void)
{
	gid_t g[64];
	int n = getgroups(64, g);
	printf("id: uid %d %d gid %d %d groups", (int)getuid(), (int)geteuid(), (int)getgid(), (int)getegid());
	for (int i = 0; i < n; i++)
		printf(" %d", (int)g[i]);
	printf("\n");
}

static void do_host(void)
{
	struct utsname u;
	if (uname(&u) < 0) {
		printf("hostname: %s\n", ename(errno));
		return;
	}
	printf("hostname: %s\ndomainname: %s\n", u.nodename, u.domainname);
}

static void do_tty(void)
{
	printf("tty: 0 %s 1 %s 2 %s\n", isatty(0) ? "yes" : "no", isatty(1) ? "yes" : "no", isatty(2) ? "yes" : "no");
	struct winsize ws;
	if (ioctl(1, TIOCGWINSZ, &ws) < 0)
		printf("winsize: %s\n", ename(errno));
	else
		printf("winsize: %ux%u\n", ws.ws_row, ws.ws_col);
}

static void do_stat(const char *path)
{
	struct stat st, in;
	if (stat(path, &st) < 0) {
		printf("stat %s: %s\n", path, ename(errno));
		return;
	}
	const char *t = S_ISCHR(st.st_mode) ? "chr" : S_ISBLK(st.st_mode) ? "blk" : S_ISREG(st.st_mode) ? "reg"
		      : S_ISDIR(st.st_mode)				    ? "dir"
									    : "other";
	bool same = fstat(0, &in) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) &&
		    (in.st_mode & S_IFMT) == (st.st_mode & S_IFMT) && in.st_rdev == st.st_rdev;
	printf("stat %s: %s, %s\n", path, t, same ? "fd 0's device" : "not fd 0's device");
}

static pthread_mutex_t hold = PTHREAD_MUTEX_INITIALIZER;

static void *waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&hold);
	pthread_mutex_unlock(&hold);
	return NULL;
}

static void do_threads(long want)
{
	pthread_t t[1024];
	if (want > 1024)
		want = 1024;
	long made = 0;
	int rc = 0;
	pthread_mutex_lock(&hold);
	for (; made < want; made++) {
		pthread_attr_t a;
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, 64 * 1024);
		rc = pthread_create(&t[made], &a, waiter, NULL);
		pthread_attr_destroy(&a);
		if (rc != 0)
			break;
	}
	pthread_mutex_unlock(&hold);
	for (long i = 0; i < made; i++)
		pthread_join(t[i], NULL);
	printf("threads: made %ld of %ld: %s\n", made, want, rc ? ename(rc) : "ok");
}

static void do_mem(long mib)
{
	long n = 0;
	for (; n < mib; n++) {
		char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			printf("mem: stopped after %ld MiB: %s\n", n, ename(errno));
			return;
		}
		for (long off = 0; off < (1 << 20); off += 4096)
			p[off] = 1;
		if ((n + 1) % 4 == 0) {
			printf("mem: %ld MiB\n", n + 1);
			fflush(stdout);
		}
	}
	printf("mem: touched %ld MiB\n", n);
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *c = argv[i], *a = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(c, "ls") && a)
			do_ls(argv[++i]);
		else if (!strcmp(c, "cat") && a)
			do_cat(argv[++i]);
		else if (!strcmp(c, "write") && a)
			do_write(argv[++i]);
		else if (!strcmp(c, "openw") && a)
			do_openw(argv[++i]);
		else if (!strcmp(c, "threads") && a)
			do_threads(atol(argv[++i]));
		else if (!strcmp(c, "mem") && a)
			do_mem(atol(argv[++i]));
		else if (!strcmp(c, "env"))
			for (char **e = environ; *e; e++)
				printf("env: %s\n", *e);
		else if (!strcmp(c, "id"))
			do_id();
		else if (!strcmp(c, "host"))
			do_host();
		else if (!strcmp(c, "tty"))
			do_tty();
		else if (!strcmp(c, "stat") && a)
			do_stat(argv[++i]);
		else if (!strcmp(c, "cwd")) {
			char buf[4096];
			printf("cwd: %s\n", getcwd(buf, sizeof(buf)) ? buf : ename(errno));
		} else if (!strcmp(c, "umask")) {
			mode_t m = umask(0);
			umask(m);
			printf("umask: %04o\n", (unsigned)m);
		} else {
			fprintf(stderr, "ctr_view: bad command '%s'\n", c);
			return 2;
		}
		fflush(stdout);
	}
	return 0;
}
