/*
 * hostile_procview_kin km TMPDIR: a guest's parent and children are km processes of the same
 * user, so their /proc entries are km's: memory (mem, pagemap, map_files), registers (syscall,
 * stack), fds (the VM, vCPUs, pagemap, management socket at 1000 and up), layout (maps, auxv,
 * stat's addresses) and km's own path (exe). The program forks, and each side tries every route
 * into the other's km: directly, through task/<tid>/, /proc/<tid>, a dirfd on /proc/<pid>,
 * /proc/<pid>/root and cwd, O_PATH, readlink, stat and getdents. Each must fail (EACCES for
 * memory, registers and layout, ENOENT for km's fds) while what describes the other process
 * harmlessly (status, cmdline, fd/0, cwd, stat's ids) still works as natively. Run by
 * tests/e2e/hostile.sh under km only.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define KM_FDS 1000
#define KM_FDS_TRIED 48

static const char *who; /* "parent" or "child": which side reports */
static char tmp[512];

/* open(path, flags) must fail with `want`; an fd that opened is read from so the line says what
 * leaked. */
static void no_open_at(int dirfd, const char *path, int flags, int want)
{
	errno = 0;
	int fd = openat(dirfd, path, flags);
	int e = errno;
	char peek[64] = "";
	if (fd >= 0) {
		ssize_t n = read(fd, peek, sizeof(peek) - 1);
		peek[n > 0 ? n : 0] = '\0';
		for (char *p = peek; *p; p++)
			if (*p < ' ' || *p > '~')
				*p = '.';
		close(fd);
	}
	CHECK(fd < 0 && e == want, "%s: openat(%s, %#x) fails with %s (got fd %d, %s, read \"%s\")", who, path,
	      flags, strerror(want), fd, strerror(e), peek);
}

static void no_open(const char *path, int flags, int want)
{
	no_open_at(AT_FDCWD, path, flags, want);
}

/* readlink(path) must fail with `want`. */
static void no_readlink_at(int dirfd, const char *path, int want)
{
	char buf[512];
	errno = 0;
	ssize_t n = readlinkat(dirfd, path, buf, sizeof(buf) - 1);
	int e = errno;
	buf[n > 0 ? n : 0] = '\0';
	CHECK(n < 0 && e == want, "%s: readlink(%s) fails with %s (got %zd \"%s\", %s)", who, path, strerror(want), n,
	      buf, strerror(e));
}

/* The first km address in the other side's maps, if the host's maps of it can be read at all
 * (it is km's layout: with the fix it cannot). 0 if not. */
static unsigned long km_address(pid_t pid, char *range, size_t size)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/maps", (int)pid);
	FILE *f = fopen(p, "r");
	if (f == NULL)
		return 0;
	char line[512];
	unsigned long lo = 0, hi = 0;
	char perms[8];
	/* A writable mapping of km's (not [vvar] and the like, which mem cannot reach). */
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && strncmp(perms, "rw", 2) == 0 &&
		    strstr(line, "[v") == NULL)
			break;
	fclose(f);
	snprintf(range, size, "%lx-%lx", lo, hi);
	return lo;
}

/* Routes to memory and registers: EACCES, by every name for the process and each thread. */
static void memory_routes(const char *base, bool task)
{
	/* The last three are not in a task/<tid> directory (ENOENT there, natively too). */
	static const char *const denied[] = {"mem",	"pagemap", "syscall", "stack",	   "maps",	"smaps",
					     "smaps_rollup", "numa_maps", "environ", "auxv", "clear_refs",
					     "attr/current", "map_files", "coredump_filter", "timerslack_ns"};
	size_t n = sizeof(denied) / sizeof(denied[0]) - (task ? 3 : 0);
	char p[512];
	for (size_t i = 0; i < n; i++) {
		snprintf(p, sizeof(p), "%s/%s", base, denied[i]);
		no_open(p, O_RDONLY, EACCES);
	}
	snprintf(p, sizeof(p), "%s/mem", base);
	no_open(p, O_RDWR, EACCES);
	no_open(p, O_WRONLY, EACCES);
	no_open(p, O_PATH, EACCES);
	snprintf(p, sizeof(p), "%s/clear_refs", base);
	no_open(p, O_WRONLY, EACCES);
}

/* km's fds at 1000 and up: ENOENT by open, readlink, stat and fdinfo; never listed. */
static void fd_routes(const char *base)
{
	char p[512];
	for (int fd = KM_FDS; fd < KM_FDS + KM_FDS_TRIED; fd++) {
		snprintf(p, sizeof(p), "%s/fd/%d", base, fd);
		no_open(p, O_RDONLY, ENOENT);
		no_open(p, O_PATH | O_NOFOLLOW, ENOENT);
		no_readlink_at(AT_FDCWD, p, ENOENT);
		struct stat st;
		CHECK_ERR(stat(p, &st), ENOENT, "%s: stat(%s) is ENOENT", who, p);
		CHECK_ERR(lstat(p, &st), ENOENT, "%s: lstat(%s) is ENOENT", who, p);
		CHECK_ERR(access(p, F_OK), ENOENT, "%s: access(%s) is ENOENT", who, p);
		snprintf(p, sizeof(p), "%s/fdinfo/%d", base, fd);
		no_open(p, O_RDONLY, ENOENT);
	}
	static const char *const dirs[] = {"fd", "fdinfo"};
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", base, dirs[i]);
		DIR *d = opendir(p);
		int below = 0, km = 0;
		struct dirent *e;
		while (d != NULL && (e = readdir(d)) != NULL) {
			int n = atoi(e->d_name);
			if (n >= KM_FDS)
				km++;
			else if (e->d_name[0] >= '0' && e->d_name[0] <= '9')
				below++;
		}
		if (d != NULL)
			closedir(d);
		CHECK(d != NULL && below >= 3 && km == 0, "%s: %s lists the program's fds and none of km's (%d, %d)",
		      who, p, below, km);
	}
}

/* What does not reach km works as natively. */
static void harmless(pid_t pid, const char *base)
{
	char p[512], buf[4096];
	snprintf(p, sizeof(p), "%s/status", base);
	int fd = open(p, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	CHECK(n > 0 && strstr(buf, "State:") != NULL, "%s: %s is readable", who, p);
	snprintf(p, sizeof(p), "%s/cmdline", base);
	fd = open(p, O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) > 0, "%s: %s is readable", who, p);
	if (fd >= 0)
		close(fd);
	snprintf(p, sizeof(p), "%s/fd/1", base);
	CHECK(readlink(p, buf, sizeof(buf)) > 0, "%s: readlink(%s) works", who, p);
	snprintf(p, sizeof(p), "%s/cwd", base);
	n = readlink(p, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	char here[512];
	CHECK(n > 0 && getcwd(here, sizeof(here)) != NULL && strcmp(buf, here) == 0, "%s: %s is our cwd", who, p);
	/* stat: the pid is there; the fields of km's layout (startcode, endcode, startstack) are 0, as
	 * the kernel shows them for a process one may not trace. */
	snprintf(p, sizeof(p), "%s/stat", base);
	fd = open(p, O_RDONLY);
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	buf[n > 0 ? n : 0] = '\0';
	if (fd >= 0)
		close(fd);
	CHECK(n > 0 && atoi(buf) == pid, "%s: %s names pid %d", who, p, (int)pid);
	char *f = strrchr(buf, ')');
	int field = 2;
	unsigned long long addr[3] = {1, 1, 1};
	for (char *s = f != NULL ? strtok(f + 1, " ") : NULL; s != NULL; s = strtok(NULL, " "))
		if (++field >= 26 && field <= 28)
			addr[field - 26] = strtoull(s, NULL, 10);
	CHECK(field > 28 && addr[0] == 0 && addr[1] == 0 && addr[2] == 0,
	      "%s: %s shows no address of km (startcode %llx endcode %llx startstack %llx)", who, p, addr[0], addr[1],
	      addr[2]);
}

/* exe of the other side (the same program) must not be km's binary. */
static void exe_routes(const char *base)
{
	char p[512], mine[512], theirs[512];
	ssize_t m = readlink("/proc/self/exe", mine, sizeof(mine) - 1);
	mine[m > 0 ? m : 0] = '\0';
	snprintf(p, sizeof(p), "%s/exe", base);
	ssize_t t = readlink(p, theirs, sizeof(theirs) - 1);
	theirs[t > 0 ? t : 0] = '\0';
	CHECK(t < 0 || strcmp(mine, theirs) == 0, "%s: readlink(%s) is not km's path (\"%s\", ours \"%s\")", who, p,
	      theirs, mine);
	struct stat a, b;
	int sa = stat("/proc/self/exe", &a), sb = stat(p, &b);
	CHECK(sa == 0 && (sb < 0 || (a.st_ino == b.st_ino && a.st_dev == b.st_dev)),
	      "%s: stat(%s) is not km's binary", who, p);
	int fd = open(p, O_RDONLY);
	CHECK(fd < 0 || (fstat(fd, &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev),
	      "%s: open(%s) is not km's binary", who, p);
	if (fd >= 0)
		close(fd);
}

static void all_routes(pid_t pid, const char *base)
{
	memory_routes(base, false);
	fd_routes(base);
	exe_routes(base);
	harmless(pid, base);
}

/* Every route from this side into the km of `pid`. */
static void probe(pid_t pid)
{
	char base[300], p[512], range[64] = "0-0";
	/* The host's maps of the other side would give km's addresses: use them to aim mem. */
	unsigned long addr = km_address(pid, range, sizeof(range));
	CHECK(addr == 0, "%s: the other side's maps give no km address (got %lx)", who, addr);
	snprintf(p, sizeof(p), "/proc/%d/mem", (int)pid);
	int fd = open(p, O_RDWR);
	char c = 0;
	CHECK(fd < 0 && errno == EACCES, "%s: %s cannot be opened to read or write km at %lx", who, p, addr);
	if (fd >= 0) {
		/* Read a byte of km's and write the same value back: proof enough, and km survives. */
		ssize_t r = pread(fd, &c, 1, (off_t)addr);
		CHECK(r != 1, "%s: km's byte at %lx cannot be read through mem", who, addr);
		CHECK(r != 1 || pwrite(fd, &c, 1, (off_t)addr) != 1, "%s: km's byte at %lx cannot be written through mem",
		      who, addr);
		close(fd);
	}
	snprintf(p, sizeof(p), "/proc/%d/map_files/%s", (int)pid, range);
	CHECK(readlink(p, base, sizeof(base)) < 0, "%s: readlink(%s) fails", who, p);
	no_open(p, O_RDONLY, addr != 0 ? EACCES : ENOENT);

	snprintf(base, sizeof(base), "/proc/%d", (int)pid);
	all_routes(pid, base);

	/* Each thread of the other side's km, as task/<tid> and as /proc/<tid>. */
	snprintf(p, sizeof(p), "/proc/%d/task", (int)pid);
	DIR *d = opendir(p);
	struct dirent *e;
	int threads = 0;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		threads++;
		snprintf(base, sizeof(base), "/proc/%d/task/%s", (int)pid, e->d_name);
		memory_routes(base, true);
		exe_routes(base);
		snprintf(base, sizeof(base), "/proc/%s", e->d_name);
		memory_routes(base, false);
		exe_routes(base);
		snprintf(p, sizeof(p), "/proc/%s/fd/%d", e->d_name, KM_FDS);
		no_open(p, O_RDONLY, ENOENT);
	}
	if (d != NULL)
		closedir(d);
	CHECK(threads > 0, "%s: the other side's task/ lists threads", who);

	/* A dirfd on /proc/<pid>, and names relative to it. */
	snprintf(p, sizeof(p), "/proc/%d", (int)pid);
	int dfd = open(p, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0, "%s: %s opens as a directory", who, p);
	if (dfd >= 0) {
		no_open_at(dfd, "mem", O_RDWR, EACCES);
		no_open_at(dfd, "pagemap", O_RDONLY, EACCES);
		no_open_at(dfd, "map_files", O_RDONLY | O_DIRECTORY, EACCES);
		no_open_at(dfd, "fd/1000", O_RDONLY, ENOENT);
		no_readlink_at(dfd, "fd/1000", ENOENT);
		no_open_at(dfd, "task/../mem", O_RDONLY, EACCES);
		snprintf(p, sizeof(p), "task/%d/mem", (int)pid);
		no_open_at(dfd, p, O_RDONLY, EACCES);
		int t = openat(dfd, "task", O_RDONLY | O_DIRECTORY);
		if (t >= 0) {
			snprintf(p, sizeof(p), "%d/syscall", (int)pid);
			no_open_at(t, p, O_RDONLY, EACCES);
			close(t);
		}
		int op = openat(dfd, "mem", O_PATH);
		CHECK(op < 0, "%s: mem of the other side does not open O_PATH", who);
		if (op >= 0) {
			snprintf(p, sizeof(p), "/proc/self/fd/%d", op);
			no_open(p, O_RDWR, EACCES);
			close(op);
		}
		close(dfd);
	}

	/* Through the other side's root and cwd links back into /proc. */
	snprintf(p, sizeof(p), "/proc/%d/root/proc/%d/mem", (int)pid, (int)pid);
	no_open(p, O_RDWR, EACCES);
	snprintf(p, sizeof(p), "/proc/%d/root/proc/%d/fd/%d", (int)pid, (int)pid, KM_FDS);
	no_open(p, O_RDONLY, ENOENT);
	char cwd[200], up[400] = "";
	if (getcwd(cwd, sizeof(cwd)) != NULL)
		for (char *s = cwd; *s; s++)
			if (*s == '/')
				strcat(up, "../");
	snprintf(p, sizeof(p), "/proc/%d/cwd/%sproc/%d/pagemap", (int)pid, up, (int)pid);
	no_open(p, O_RDONLY, EACCES);
	/* A symlink of our own into the other side's /proc. */
	char link[600];
	snprintf(link, sizeof(link), "%s/kin-%s", tmp, who);
	snprintf(p, sizeof(p), "/proc/%d/mem", (int)pid);
	unlink(link);
	if (symlink(p, link) == 0) {
		no_open(link, O_RDONLY, EACCES);
		unlink(link);
	}
}

int main(int argc, char **argv)
{
	snprintf(tmp, sizeof(tmp), "%s", argc > 2 ? argv[2] : "/tmp");
	int to_child[2], to_parent[2];
	if (pipe(to_child) < 0 || pipe(to_parent) < 0)
		return 1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	char c = 0;
	if (pid == 0) {
		who = "child";
		probe(parent);
		/* Now the parent probes us: stay alive until it is done. */
		if (write(to_parent[1], "d", 1) != 1 || read(to_child[0], &c, 1) != 1)
			_exit(100);
		_exit(check_failed > 99 ? 99 : check_failed);
	}
	who = "parent";
	CHECK(read(to_parent[0], &c, 1) == 1, "the child finished its probes");
	probe(pid);
	CHECK(write(to_child[1], "d", 1) == 1, "the parent finished its probes");
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid, "the child was reaped");
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "every probe of the child failed as it should (it says %d)",
	      WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return check_done();
}
