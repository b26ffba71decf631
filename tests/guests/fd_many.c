/*
 * A full fd table across a snapshot (tests/e2e/fds.sh): fills every fd number below N (N = 1000
 * is all of them under km: the guest owns 0..999), then snapshots and checks each one.
 *
 *   fd_many DIR N nosnap|keep|stop
 *
 * From fd 3 up, rounds of four: a regular file DIR/fK opened O_RDWR at offset K (fd K), a pipe
 * (read end K+1, write end K+2) holding the 4 bytes of K+1, and a dup of the file (fd K+3,
 * sharing its offset); what is left at the end are files. Checked after the snapshot (nosnap: at once), for every fd: open, the right file
 * (inode) at the right offset, the pipe's bytes and that its write end still reaches it, the dup
 * sharing its offset; and that no fd at or above N is open. Output: "many: built N", "many:
 * original|resumed|checking", one "FAIL fd K: ..." line per failure (at most 20, then a count),
 * and "MANY OK" or "MANY FAILED (F of C checks)" (exit 0 or 1). Natively the snapshot modes exit
 * 77 (snap_common.h).
 */
// E2E: nosnap 0 @TMP 1000 nosnap
#include <fcntl.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "snap_common.h"

#define MAX 1000

enum kind { FREE, FILE_FD, PIPE_R, PIPE_W, DUP };

static struct {
	enum kind kind;
	int other; /* PIPE_R: its write end; PIPE_W: its read end; DUP: the file fd it copies */
	ino_t ino;
} fds[MAX];
static int checks, fails;

__attribute__((format(printf, 3, 4))) static void check(bool ok, int fd, const char *fmt, ...)
{
	va_list ap;

	checks++;
	if (ok)
		return;
	if (++fails > 20)
		return;
	printf("FAIL fd %d: ", fd);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static int add_file(const char *dir, int fd)
{
	char p[4096];
	struct stat st;

	snprintf(p, sizeof(p), "%s/f%d", dir, fd);
	int f = open(p, O_RDWR | O_CREAT | O_EXCL, 0600);
	if (f != fd || ftruncate(f, 4096) != 0 || lseek(f, fd, SEEK_SET) != fd || fstat(f, &st) != 0)
		return printf("many: cannot open %s as fd %d: %s\n", p, fd, strerror(errno)), -1;
	fds[fd].kind = FILE_FD;
	fds[fd].ino = st.st_ino;
	return 0;
}

/* Rounds of 4 fds: a file, a pipe (2 fds), a dup of that file; the last round as files. */
static int build(const char *dir, int n)
{
	for (int fd = 3; fd < n; fd += 4) {
		if (fd + 4 > n) {
			for (; fd < n; fd++)
				if (add_file(dir, fd) != 0)
					return -1;
			break;
		}
		int pp[2];
		if (add_file(dir, fd) != 0)
			return -1;
		if (pipe(pp) != 0 || pp[0] != fd + 1 || pp[1] != fd + 2 || write(pp[1], &pp[0], sizeof(int)) != sizeof(int))
			return printf("many: cannot make a pipe at fds %d-%d: %s\n", fd + 1, fd + 2, strerror(errno)), -1;
		fds[fd + 1].kind = PIPE_R;
		fds[fd + 1].other = fd + 2;
		fds[fd + 2].kind = PIPE_W;
		fds[fd + 2].other = fd + 1;
		if (dup(fd) != fd + 3)
			return printf("many: cannot dup fd %d to %d: %s\n", fd, fd + 3, strerror(errno)), -1;
		fds[fd + 3].kind = DUP;
		fds[fd + 3].other = fd;
	}
	return 0;
}

static int check_all(const char *who, int n)
{
	printf("many: %s\n", who);
	for (int fd = 3; fd < MAX; fd++) {
		struct stat st;
		int r = fcntl(fd, F_GETFD);
		if (fds[fd].kind == FREE) {
			check(r < 0 && errno == EBADF, fd, "open, but was not");
			continue;
		}
		if (r < 0) {
			check(false, fd, "not open: %s", strerror(errno));
			continue;
		}
		int v = -1;
		switch (fds[fd].kind) {
		case FILE_FD:
			check(fstat(fd, &st) == 0 && st.st_ino == fds[fd].ino && st.st_size == 4096, fd, "not the file f%d", fd);
			check(lseek(fd, 0, SEEK_CUR) == fd, fd, "offset %lld, was %d", (long long)lseek(fd, 0, SEEK_CUR), fd);
			break;
		case PIPE_R:
			check(read(fd, &v, sizeof(v)) == sizeof(v) && v == fd, fd, "the pipe's 4 bytes are not %d", fd);
			check(write(fds[fd].other, &fd, sizeof(fd)) == sizeof(fd) && read(fd, &v, sizeof(v)) == sizeof(v) && v == fd,
			      fd, "fd %d does not write into it", fds[fd].other);
			break;
		case PIPE_W:
			check(fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode), fd, "not a pipe");
			break;
		case DUP: {
			int src = fds[fd].other;
			off_t was = lseek(src, 0, SEEK_CUR);
			lseek(src, 3000, SEEK_SET);
			check(lseek(fd, 0, SEEK_CUR) == 3000, fd, "does not share its offset with fd %d", src);
			lseek(src, was, SEEK_SET);
			break;
		}
		case FREE:
			break;
		}
	}
	(void)n;
	if (fails > 20)
		printf("... and %d more failures\n", fails - 20);
	if (fails)
		printf("MANY FAILED (%d of %d checks)\n", fails, checks);
	else
		printf("MANY OK\n");
	fflush(stdout);
	return fails ? 1 : 0;
}

int main(int argc, char **argv)
{
	int n = argc == 4 ? atoi(argv[2]) : 0;
	if (n < 4 || n > MAX || (strcmp(argv[3], "nosnap") && strcmp(argv[3], "keep") && strcmp(argv[3], "stop"))) {
		printf("usage: fd_many DIR N(4..%d) nosnap|keep|stop\n", MAX);
		return 2;
	}
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < (rlim_t)n) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	for (int fd = 3; fd < MAX; fd++)
		close(fd); /* whatever the caller left open: the table is ours to fill */
	if (build(argv[1], n) != 0)
		return 3;
	printf("many: built %d\n", n);
	if (strcmp(argv[3], "nosnap") == 0)
		return check_all("checking", n);
	bool keep = strcmp(argv[3], "keep") == 0;
	long r = snap_take("fd_many", keep ? KM_SNAPSHOT_KEEP_RUNNING : 0, NULL, NULL);
	if (r == KM_SNAPSHOT_RESUMED)
		return check_all("resumed", n);
	if (r != KM_SNAPSHOT_TAKEN || !keep)
		snap_failed(r);
	return check_all("original", n);
}
