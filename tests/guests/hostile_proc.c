/*
 * hostile_proc km TMPDIR: every route through /proc to km's memory, registers, threads and fds
 * (issue 6, defect 1), tried from inside the guest. Under km each must fail (EACCES for memory
 * and registers, ENOENT for km's threads and fds) while the /proc files that describe the guest
 * work and describe the guest, not km. Run by tests/e2e/hostile.sh under km only (natively most
 * of these routes work: that is the point).
 */
// HOSTILE-KM-ARGS: --mgmt=@TMP/mgmt.sock
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "check.h"

/* struct open_how and RESOLVE_NO_SYMLINKS (linux/openat2.h, which musl-gcc cannot see). */
struct km_open_how {
	uint64_t flags, mode, resolve;
};
#define KM_RESOLVE_NO_SYMLINKS 0x04

static char tmp[512];
static int my_pid;

/* Opening `path` with `flags` must fail with `want`; an fd that opened anyway is probed so the
 * report says what leaked. */
static void must_fail(const char *path, int flags, int want)
{
	errno = 0;
	int fd = open(path, flags);
	int e = errno;
	if (fd >= 0)
		close(fd);
	CHECK(fd < 0 && e == want, "open(%s, %#x) fails with %s (got fd %d, %s)", path, flags, strerror(want), fd,
	      strerror(e));
}

static void mem_routes(void)
{
	char p[256];
	const char *mems[] = {"/proc/self/mem",		"/proc/thread-self/mem", "/proc/self/pagemap",
			      "/proc/self/task/../mem", "/proc/self/fd/../mem",	 "/proc/self/net/../mem",
			      "/proc/self/syscall",	"/proc/self/stack",	 "/proc/self/smaps",
			      "/proc/self/smaps_rollup", "/proc/self/numa_maps", "/proc/self/map_files",
			      "/proc/self/attr/current", "/proc/self/timerslack_ns", "/proc/self/mem/"};
	for (size_t i = 0; i < sizeof(mems) / sizeof(mems[0]); i++) {
		int want = i == sizeof(mems) / sizeof(mems[0]) - 1 ? ENOTDIR : EACCES;
		must_fail(mems[i], O_RDONLY, want);
	}
	must_fail("/proc/self/mem", O_RDWR, EACCES);
	must_fail("/proc/self/clear_refs", O_WRONLY, EACCES);
	must_fail("/proc/self/mem", O_PATH, EACCES);
	snprintf(p, sizeof(p), "/proc/%d/mem", my_pid);
	must_fail(p, O_RDWR, EACCES);
	snprintf(p, sizeof(p), "/proc/%d/task/%d/mem", my_pid, my_pid);
	must_fail(p, O_RDWR, EACCES);
	snprintf(p, sizeof(p), "/proc/self/task/%d/mem", my_pid);
	must_fail(p, O_RDWR, EACCES);

	/* creat, the route that got through before. */
	errno = 0;
	int fd = creat("/proc/self/mem", 0600);
	CHECK(fd < 0 && errno == EACCES, "creat(/proc/self/mem) is EACCES (fd %d, %s)", fd, strerror(errno));
	if (fd >= 0)
		close(fd);

	/* openat2, with and without resolve restrictions. */
	struct km_open_how how = {.flags = O_RDWR};
	errno = 0;
	long r = syscall(SYS_openat2, AT_FDCWD, "/proc/self/mem", &how, sizeof(how));
	CHECK(r < 0 && errno == EACCES, "openat2(/proc/self/mem) is EACCES (got %ld, %s)", r, strerror(errno));
	how.resolve = KM_RESOLVE_NO_SYMLINKS;
	snprintf(p, sizeof(p), "/proc/%d/mem", my_pid);
	errno = 0;
	r = syscall(SYS_openat2, AT_FDCWD, p, &how, sizeof(how));
	CHECK(r < 0 && errno == EACCES, "openat2(/proc/<pid>/mem, RESOLVE_NO_SYMLINKS) is EACCES (got %ld, %s)", r,
	      strerror(errno));

	/* A dirfd on km's process directory, and one on the task directory. */
	int dir = open("/proc/self", O_RDONLY | O_DIRECTORY);
	CHECK(dir >= 0, "open(/proc/self) as a directory works");
	errno = 0;
	fd = openat(dir, "mem", O_RDWR);
	CHECK(fd < 0 && errno == EACCES, "openat(/proc/self dirfd, mem) is EACCES");
	errno = 0;
	fd = openat(dir, "map_files", O_RDONLY | O_DIRECTORY);
	CHECK(fd < 0 && errno == EACCES, "openat(/proc/self dirfd, map_files) is EACCES");
	int opath = open("/proc/self", O_PATH);
	errno = 0;
	fd = openat(opath, "pagemap", O_RDONLY);
	CHECK(fd < 0 && errno == EACCES, "openat(O_PATH /proc/self, pagemap) is EACCES");
	close(opath);
	close(dir);

	/* The working directory as the route: chdir into km's process directory, then relative. */
	char cwd[512];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	CHECK_SYS(chdir("/proc/self/task"), "chdir(/proc/self/task)");
	snprintf(p, sizeof(p), "%d/mem", my_pid);
	must_fail(p, O_RDWR, EACCES);
	CHECK_SYS(chdir(".."), "chdir(..) back to /proc/<pid>");
	must_fail("mem", O_RDWR, EACCES);
	must_fail("./task/../pagemap", O_RDONLY, EACCES);
	CHECK_SYS(chdir(cwd), "chdir back");

	/* A symlink the guest makes to km's memory. */
	char link[600];
	snprintf(link, sizeof(link), "%s/mem-link", tmp);
	CHECK_SYS(symlink("/proc/self/mem", link), "symlink to /proc/self/mem");
	must_fail(link, O_RDWR, EACCES);
	snprintf(link, sizeof(link), "%s/self-link", tmp);
	CHECK_SYS(symlink("/proc/self", link), "symlink to /proc/self");
	char via[700];
	snprintf(via, sizeof(via), "%s/mem", link);
	must_fail(via, O_RDWR, EACCES);
	/* map_files by readlink: names km's mappings. */
	char buf[256];
	errno = 0;
	CHECK(readlink("/proc/self/map_files", buf, sizeof(buf)) < 0 && errno == EACCES,
	      "readlink(/proc/self/map_files) is EACCES");
	struct stat st;
	errno = 0;
	CHECK(stat("/proc/self/map_files", &st) < 0 && errno == EACCES, "stat(/proc/self/map_files) is EACCES");
}

/* km's threads (the management listener, KVM's workers) are not the guest's. A thread of this
 * process whose /proc entries are readable must be a guest thread: /proc/<tid>/status says whose
 * it is. Any tid near ours that is km's must be ENOENT by every route. */
static void thread_routes(void)
{
	char cwd[512];
	CHECK(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd");
	int visible = 0, probed = 0;
	for (int t = my_pid + 1; t < my_pid + 2048; t++) {
		char p[128], line[256];
		snprintf(p, sizeof(p), "/proc/%d/status", t);
		FILE *f = fopen(p, "re");
		if (f != NULL) {
			int tgid = -1;
			while (fgets(line, sizeof(line), f) != NULL)
				if (sscanf(line, "Tgid: %d", &tgid) == 1)
					break;
			fclose(f);
			if (tgid == my_pid) {
				visible++;
				CHECK(0, "km's thread %d is visible at /proc/<tid>/status", t);
			}
			continue;
		}
		/* Not readable: either no such task, or km's. Neither may open its memory. */
		probed++;
		snprintf(p, sizeof(p), "/proc/self/task/%d", t);
		if (chdir(p) == 0) {
			visible++;
			CHECK(0, "chdir(%s) worked", p);
			CHECK_SYS(chdir(cwd), "chdir back");
		}
		const char *fmt[] = {"/proc/%d/mem", "/proc/self/task/%d/mem", "/proc/self/task/%d/status"};
		for (size_t i = 0; i < 3; i++) {
			snprintf(p, sizeof(p), fmt[i], t);
			int fd = open(p, O_RDONLY);
			if (fd >= 0) {
				close(fd);
				visible++;
				CHECK(0, "%s opened", p);
			}
		}
	}
	CHECK(visible == 0, "no thread of km's is reachable through /proc (probed %d tids)", probed);

	/* The listing of our own task directory shows only guest threads. */
	DIR *d = opendir("/proc/self/task");
	CHECK(d != NULL, "opendir(/proc/self/task)");
	int n = 0, others = 0;
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		n++;
		if (atoi(e->d_name) != my_pid)
			others++;
	}
	if (d != NULL)
		closedir(d);
	CHECK(n == 1 && others == 0, "/proc/self/task lists the one guest thread (%d entries, %d not ours)", n, others);
}

/* km's own fds (1000 and up) are not in the guest's /proc. */
static void fd_routes(void)
{
	char p[128], buf[256];
	struct stat st;
	for (int fd = 1000; fd < 1016; fd++) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		must_fail(p, O_RDONLY, ENOENT);
		must_fail(p, O_PATH, ENOENT);
		errno = 0;
		CHECK(readlink(p, buf, sizeof(buf)) < 0 && errno == ENOENT, "readlink(%s) is ENOENT", p);
		errno = 0;
		CHECK(stat(p, &st) < 0 && errno == ENOENT, "stat(%s) is ENOENT", p);
		errno = 0;
		CHECK(lstat(p, &st) < 0 && errno == ENOENT, "lstat(%s) is ENOENT", p);
		snprintf(p, sizeof(p), "/proc/self/fdinfo/%d", fd);
		must_fail(p, O_RDONLY, ENOENT);
		char dst[600];
		snprintf(dst, sizeof(dst), "%s/kmfd%d", tmp, fd);
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		errno = 0;
		CHECK(linkat(AT_FDCWD, p, AT_FDCWD, dst, AT_SYMLINK_FOLLOW) < 0 && errno == ENOENT,
		      "linkat(%s, AT_SYMLINK_FOLLOW) is ENOENT", p);
	}
	DIR *d = opendir("/proc/self/fd");
	CHECK(d != NULL, "opendir(/proc/self/fd)");
	int high = 0, low = 0;
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (atoi(e->d_name) >= 1000)
			high++;
		else
			low++;
	}
	if (d != NULL)
		closedir(d);
	CHECK(high == 0 && low >= 3, "/proc/self/fd lists the guest's fds only (%d below 1000, %d above)", low, high);
	/* The guest's own fds still reopen through /proc. */
	int fd = open("/proc/self/fd/0", O_RDONLY);
	CHECK(fd >= 0, "open(/proc/self/fd/0) works");
	if (fd >= 0)
		close(fd);
}

static size_t slurp(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	size_t n = 0;
	ssize_t r;
	while (n < size - 1 && (r = read(fd, buf + n, size - 1 - n)) > 0)
		n += (size_t)r;
	close(fd);
	buf[n] = '\0';
	return n;
}

/* The files that describe the process describe the guest. */
static void guest_view(int argc, char **argv)
{
	static char buf[1 << 16];
	int local = 0;
	uintptr_t here = (uintptr_t)&local, text = (uintptr_t)&guest_view;
	size_t n = slurp("/proc/self/maps", buf, sizeof(buf));
	CHECK(n > 0, "read /proc/self/maps");
	int stack_ok = 0, text_ok = 0, km_lines = 0, lines = 0;
	uint64_t total = 0;
	for (char *l = strtok(buf, "\n"); l != NULL; l = strtok(NULL, "\n")) {
		unsigned long lo, hi;
		if (sscanf(l, "%lx-%lx", &lo, &hi) != 2)
			continue;
		lines++;
		total += hi - lo;
		if (here >= lo && here < hi && strstr(l, "[stack]") != NULL)
			stack_ok = 1;
		if (text >= lo && text < hi && strstr(l, "r-xp") != NULL && strstr(l, "hostile_proc") != NULL)
			text_ok = 1;
		if (hi > 0x800000000000ul || strstr(l, "/km ") != NULL || strstr(l, "/bin/km") != NULL ||
		    strstr(l, "libc.so") != NULL || strstr(l, "libelf") != NULL)
			km_lines++;
	}
	CHECK(lines > 3 && stack_ok && text_ok, "maps lists the guest's stack and text (%d lines)", lines);
	CHECK(km_lines == 0, "maps shows nothing of km (%d lines of km's)", km_lines);

	n = slurp("/proc/self/status", buf, sizeof(buf));
	long pid = -1, vmsize = -1, threads = -1;
	char name[64] = "";
	for (char *l = strtok(buf, "\n"); l != NULL; l = strtok(NULL, "\n")) {
		sscanf(l, "Pid: %ld", &pid);
		sscanf(l, "VmSize: %ld kB", &vmsize);
		sscanf(l, "Threads: %ld", &threads);
		sscanf(l, "Name: %63s", name);
	}
	CHECK(pid == my_pid && threads == 1, "status: Pid %ld, Threads %ld", pid, threads);
	CHECK(vmsize > 0 && (uint64_t)vmsize * 1024 == total, "status: VmSize %ld kB is the maps total %lu kB", vmsize,
	      (unsigned long)(total >> 10));
	CHECK_STR(name, "hostile_proc", "status: Name is the program's");
	n = slurp("/proc/self/statm", buf, sizeof(buf));
	unsigned long pages = 0;
	CHECK(sscanf(buf, "%lu", &pages) == 1 && pages * 4096 == total, "statm: size %lu pages is the maps total", pages);

	n = slurp("/proc/self/stat", buf, sizeof(buf));
	long spid = -1;
	unsigned long startstack = 0, startcode = 0;
	char *rp = strrchr(buf, ')');
	if (sscanf(buf, "%ld", &spid) == 1 && rp != NULL) {
		int field = 2;
		for (char *f = strtok(rp + 1, " "); f != NULL; f = strtok(NULL, " ")) {
			field++;
			if (field == 26)
				startcode = strtoul(f, NULL, 10);
			if (field == 28)
				startstack = strtoul(f, NULL, 10);
		}
	}
	CHECK(spid == my_pid, "stat: pid %ld", spid);
	CHECK(startcode != 0 && startcode <= text && startstack > here && startstack < 0x7fffff000000ul,
	      "stat: startcode %#lx and startstack %#lx are the guest's", startcode, startstack);

	n = slurp("/proc/self/cmdline", buf, sizeof(buf));
	size_t want = 0;
	for (int i = 0; i < argc; i++)
		want += strlen(argv[i]) + 1;
	CHECK(n == want && strcmp(buf, argv[0]) == 0, "cmdline is the guest's argv (%zu bytes, want %zu)", n, want);
	n = slurp("/proc/self/environ", buf, sizeof(buf));
	int found = 0;
	for (size_t off = 0; off < n; off += strlen(buf + off) + 1)
		if (strncmp(buf + off, "TMPDIR=", 7) == 0)
			found = 1;
	CHECK(found && memmem(buf, n, "KM_E2E", 6) != NULL, "environ is the guest's (%zu bytes)", n);

	n = slurp("/proc/self/auxv", buf, sizeof(buf));
	unsigned long pagesz = 0, rnd = 0;
	for (size_t off = 0; off + 16 <= n; off += 16) {
		unsigned long k, v;
		memcpy(&k, buf + off, 8);
		memcpy(&v, buf + off + 8, 8);
		if (k == AT_PAGESZ)
			pagesz = v;
		if (k == AT_RANDOM)
			rnd = v;
	}
	CHECK(pagesz == 4096 && rnd == getauxval(AT_RANDOM), "auxv is the guest's (AT_RANDOM %#lx)", rnd);

	/* Harmless files still work. */
	const char *ok[] = {"/proc/self/limits", "/proc/self/statm", "/proc/self/comm", "/proc/meminfo",
			    "/proc/self/mountinfo", "/proc/self/cgroup"};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		CHECK(slurp(ok[i], buf, sizeof(buf)) > 0, "read %s", ok[i]);
	char exe[512];
	ssize_t l = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[l > 0 ? l : 0] = '\0';
	CHECK(l > 0 && strstr(exe, "hostile_proc") != NULL, "readlink(/proc/self/exe) is the program (%s)", exe);
}

int main(int argc, char **argv)
{
	if (argc < 3 || strcmp(argv[1], "km") != 0) {
		fprintf(stderr, "usage: hostile_proc km TMPDIR (under km only)\n");
		return 2;
	}
	snprintf(tmp, sizeof(tmp), "%s", argv[2]);
	my_pid = getpid();
	mem_routes();
	thread_routes();
	fd_routes();
	guest_view(argc, argv);
	return check_done();
}
