/*
 * ctr-probe: stands in for km in tests/unit/test_shim_container.c. km-shim's container child
 * execs it exactly as it would exec km (km's flags first); it reports what it sees from inside
 * the container as "key: value" lines on stdout (or into the file the environment variable
 * PROBE_OUT names, inside the container), then exits 0:
 *   argv[i], pid, ppid, hostname, domainname, uid/gid (real, effective), groups, cwd, umask,
 *   NOFILE/NPROC limits, Cap* and NoNewPrivs lines of /proc/self/status, each open fd with what
 *   it points to, /proc/self/cgroup, /proc/self/mountinfo (as "mount: ..."), the root directory's
 *   entries, and kvm: the result of KVM_GET_API_VERSION and KVM_CREATE_VM on --kvm-fd's fd.
 * Built statically (Makefile): it runs after pivot_root, where the host's libraries are gone.
 */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

static void cat_prefixed(FILE *out, const char *path, const char *prefix, const char *only)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	if (!f) {
		fprintf(out, "%s: (cannot open %s)\n", prefix, path);
		return;
	}
	while (fgets(line, sizeof(line), f))
		if (!only || !strncmp(line, only, strlen(only)))
			fprintf(out, "%s: %s", prefix, line);
	fclose(f);
}

static void kvm_check(FILE *out, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strncmp(argv[i], "--kvm-fd=", 9))
			continue;
		int fd = atoi(argv[i] + 9);
		int api = ioctl(fd, KVM_GET_API_VERSION, 0);
		int vm = ioctl(fd, KVM_CREATE_VM, 0);
		fprintf(out, "kvm: api %d vm %s\n", api, vm >= 0 ? "ok" : "failed");
		if (vm >= 0)
			close(vm);
	}
}

int main(int argc, char **argv)
{
	FILE *out = stdout;
	const char *o = getenv("PROBE_OUT");
	if (o && !(out = fopen(o, "w")))
		return 2;
	for (int i = 0; i < argc; i++)
		fprintf(out, "argv[%d]: %s\n", i, argv[i]);
	fprintf(out, "pid: %d\nppid: %d\n", (int)getpid(), (int)getppid());
	struct utsname u;
	if (uname(&u) == 0)
		fprintf(out, "hostname: %s\ndomainname: %s\n", u.nodename, u.domainname);
	fprintf(out, "uid: %u %u\ngid: %u %u\n", getuid(), geteuid(), getgid(), getegid());
	gid_t groups[64];
	int ng = getgroups(64, groups);
	fprintf(out, "groups:");
	for (int i = 0; i < ng; i++)
		fprintf(out, " %u", groups[i]);
	fprintf(out, "\n");
	char cwd[4096];
	fprintf(out, "cwd: %s\n", getcwd(cwd, sizeof(cwd)) ? cwd : "?");
	mode_t m = umask(0);
	fprintf(out, "umask: %04o\n", m);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	fprintf(out, "nofile: %llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
	getrlimit(RLIMIT_NPROC, &rl);
	fprintf(out, "nproc: %llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
	cat_prefixed(out, "/proc/self/status", "status", "Cap");
	cat_prefixed(out, "/proc/self/status", "status", "NoNewPrivs");
	for (int fd = 0; fd < 1024; fd++) {
		char p[64], t[4096];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		ssize_t n = readlink(p, t, sizeof(t) - 1);
		if (n < 0 || (out != stdout && fd == fileno(out)))
			continue;
		t[n] = '\0';
		fprintf(out, "fd %d: %s\n", fd, t);
	}
	cat_prefixed(out, "/proc/self/cgroup", "cgroup", NULL);
	cat_prefixed(out, "/proc/self/mountinfo", "mount", NULL);
	DIR *d = opendir("/");
	for (struct dirent *e; d && (e = readdir(d));)
		fprintf(out, "root: %s\n", e->d_name);
	if (d)
		closedir(d);
	kvm_check(out, argc, argv);
	fprintf(out, "end\n");
	return 0;
}
