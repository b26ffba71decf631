/*
 * Hostile guest: the descriptors km-shim hands km (km --kvm-fd, --mgmt-fd, --ready-fd,
 * --start-fd, --snapshot-fd, --guest-seccomp-fd) must be out of the guest's reach: the numbers
 * they came in on are free (EBADF), nothing the guest holds is the KVM device, a listening
 * socket or a snapshot file, and km's range (1000 up) answers EBADF to fcntl, dup2, close and
 * fstat and is not listed in /proc/self/fd.
 *
 *   hostile_passedfds km TMPDIR [snap] [FD...]
 *
 * FD...: the numbers the fds were passed on. "snap": then take a snapshot that goes on
 * (HC_snapshot, km's --snapshot file) and check again, in the original and in the copy resumed
 * (tests/e2e/container_km.sh resumes it with --snapshot-fd and the other fds passed again).
 */
#include <dirent.h>
#include <elf.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "km_hcall.h"

#define KM_FDS 1000
#define KVM_GET_API_VERSION _IO(0xAE, 0x00) /* <linux/kvm.h>, which musl builds lack */
#define KVM_API_VERSION 12

/* One fd the guest holds: not the KVM device, not a listening socket, not a snapshot. */
static void check_held(int fd)
{
	CHECK(ioctl(fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION, "fd %d is not a KVM device", fd);
	int v = 0;
	socklen_t len = sizeof(v);
	bool listening = getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v == 1;
	CHECK(!listening, "fd %d is not a listening socket", fd);
	Elf64_Ehdr eh;
	bool core = pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
		    eh.e_type == ET_CORE;
	CHECK(!core, "fd %d is not a snapshot (ELF core) file", fd);
}

static void check_all(const char *when, char **fds, int nfds)
{
	printf("-- %s\n", when);
	for (int i = 0; i < nfds; i++) {
		int fd = atoi(fds[i]);
		CHECK_ERR(fcntl(fd, F_GETFD), EBADF, "the number fd %d was passed on is free", fd);
	}
	DIR *d = opendir("/proc/self/fd");
	if (!CHECK(d != NULL, "opendir /proc/self/fd"))
		return;
	int listed = 0;
	for (struct dirent *e; (e = readdir(d)) != NULL;) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		listed++;
		CHECK(fd < KM_FDS, "/proc/self/fd lists %d, below km's range", fd);
		if (fd != dirfd(d))
			check_held(fd);
	}
	closedir(d);
	CHECK(listed >= 3, "/proc/self/fd lists stdin, stdout, stderr and its own fd (%d)", listed);
	int bad = 0;
	for (int fd = KM_FDS; fd < KM_FDS + 64; fd++) {
		struct stat st;
		errno = 0;
		bad += !(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
		bad += !(dup2(1, fd) < 0 && errno == EBADF);
		bad += !(fstat(fd, &st) < 0 && errno == EBADF);
		bad += !(close(fd) < 0 && errno == EBADF);
		char path[64], buf[256];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		bad += readlink(path, buf, sizeof(buf)) >= 0;
		int o = open(path, O_RDONLY);
		bad += o >= 0;
		if (o >= 0)
			close(o);
	}
	CHECK_EQ(bad, 0, "fcntl/dup2/fstat/close/readlink/open of fds %d..%d all fail", KM_FDS, KM_FDS + 63);
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		printf("usage: hostile_passedfds km TMPDIR [snap] [FD...]\n");
		return 2;
	}
	bool snap = argc > 3 && strcmp(argv[3], "snap") == 0;
	char **fds = &argv[snap ? 4 : 3];
	int nfds = argc - (snap ? 4 : 3);
	check_all("started", fds, nfds);
	if (snap) {
		long r = km_snapshot("passedfds", KM_SNAPSHOT_KEEP_RUNNING);
		CHECK(r == KM_SNAPSHOT_TAKEN || r == KM_SNAPSHOT_RESUMED, "snapshot (%ld)", r);
		check_all(r == KM_SNAPSHOT_RESUMED ? "resumed" : "after the snapshot", fds, nfds);
		printf("%s\n", r == KM_SNAPSHOT_RESUMED ? "RESUMED COPY" : "ORIGINAL");
	}
	printf("PASSED all %d checks\n", check_total);
	return check_failed ? 1 : 0;
}
