/*
 * The fd zoo (issue 9): one of every kind of descriptor a program holds, each in a state worth
 * keeping, snapshotted and checked after resume (tests/e2e/fds.sh).
 *
 *   fd_zoo DIR nosnap    builds the zoo, records it, checks it at once (no snapshot): the same
 *                        output natively and under km (run.sh's guest run, below); this is what
 *                        shows that the checks themselves are right
 *   fd_zoo DIR keep      builds, records, snapshots with KEEP_RUNNING (km's --snapshot file); the
 *                        original checks (being snapshotted must change nothing) and so does the
 *                        copy resumed later
 *   fd_zoo DIR stop      builds, records, snapshots and km exits; the copy resumed checks
 *
 * DIR is an empty directory the zoo owns (the snapshot file must be elsewhere: the inotify watches
 * DIR and would see it created). Output: "zoo: built", then "zoo: original" or
 * "zoo: resumed" (or "zoo: checking" in nosnap), one line "FAIL fd N (ITEM): WHAT" per failed
 * check, and a last line "ZOO OK (N checks)" or "ZOO FAILED (F of N checks)" (exit 0 or 1).
 * No line holds a pid, port, inode or time, so native and km runs compare byte for byte.
 * Natively the snapshot modes exit 77 (snap_common.h).
 *
 * If DIR/victim.expect-closed exists when the checks run, fd 100 (the file DIR/victim.txt, the
 * one fds.sh deletes or changes before a resume with --restore-missing=closed) must be closed
 * (EBADF), and every other check must still pass.
 *
 * What is built (fd numbers are deterministic: stdio is 0-2 and the zoo opens in this order):
 *   regular files: ro (O_RDONLY, offset 1234), rw (O_RDWR, offset 4000), app (O_WRONLY|O_APPEND,
 *     offset 10), twice (ro.txt opened a second time, offset 77: must not share ro's offset),
 *     victim at fd 100; dup group "dup" (O_RDWR|O_CLOEXEC, then O_NONBLOCK set on the
 *     description) with dup() (no cloexec), dup2() onto fd 200 and F_DUPFD_CLOEXEC from 300:
 *     all four share one offset and one set of status flags, and differ in FD_CLOEXEC
 *   a directory fd (O_DIRECTORY) with 3 entries already read by getdents64
 *   /dev/null, /dev/urandom
 *   a deleted-but-open file (contents, offset, nlink 0, mode 0640), an O_TMPFILE file, a memfd
 *     with contents, cloexec and seals (F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_SEAL)
 *   a pipe with 3000 buffered bytes and pipe size 128 KiB (write end O_NONBLOCK); a pipe with
 *     100 bytes whose write end is closed (reader: data, then EOF)
 *   a unix stream socketpair with data both ways; a unix dgram socketpair with 3 datagrams of
 *     10, 300 and 1 bytes queued; a unix listener bound in DIR with one pending connection
 *     (from a client of the zoo's own, which sends nothing before the accept); a TCP listener on 127.0.0.1
 *     (SO_REUSEADDR, TCP_NODELAY, SO_RCVBUF, O_NONBLOCK); an established TCP pair through it with
 *     data queued both ways; a UDP socket bound to 127.0.0.1
 *   eventfd count 5 (EFD_NONBLOCK), eventfd count 3 (EFD_SEMAPHORE|EFD_NONBLOCK)
 *   an epoll (EPOLL_CLOEXEC) watching 7 of them with distinct data, one EPOLLET, one
 *     EPOLLONESHOT, and a twin epoll with the same interest list that is waited on before the
 *     snapshot (its result is what the untouched one must report after it; after it the twin's
 *     oneshot item must stay disarmed)
 *   a timerfd (CLOCK_MONOTONIC, 3600 s, interval 1800 s), a signalfd for SIGUSR1|SIGUSR2 with
 *     SIGUSR1 pending, an inotify watching DIR (IN_CREATE|IN_DELETE)
 *   flock(LOCK_EX) on flock.txt; an F_SETLK read lock on bytes 100-199 of lock.txt (seen from a
 *     probe fd on the same file, opened before the snapshot and never closed: closing any fd of
 *     the file would drop the process's POSIX locks)
 *   process state: umask 027, RLIMIT_NOFILE soft 900, RLIMIT_CORE soft 40960 (or the hard
 *     limit if lower), PR_SET_NAME "fd-zoo-name", the personality (queried only: km offers
 *     PER_LINUX alone, so a program cannot set flags such as ADDR_NO_RANDOMIZE under km)
 *
 * Checked for every fd: still open, FD_CLOEXEC, the status flags a program sees (F_GETFL within
 * O_ACCMODE|O_APPEND|O_NONBLOCK|O_DIRECT|O_NOATIME|O_SYNC|O_DSYNC|O_ASYNC), the file type and
 * permission bits; for files on disk and directories also device, inode, size and nlink; for
 * devices st_rdev; for seekable fds the offset. Then each kind's own state (above), the set of
 * open fds (nothing missing, nothing extra), and the process state.
 *
 * Not checked, and why:
 *   - inode numbers (and st_dev) of what a resume must create anew: deleted files, O_TMPFILE
 *     files and memfds (their contents, size, mode and nlink 0 are checked), pipes and sockets
 *     (only that both ends of a pipe still share one inode); timestamps of anything
 *   - F_GETFL bits that only record how a file was opened (O_LARGEFILE, O_TMPFILE's bits)
 *   - whether an EPOLLET item reports once more after a resume (a re-registered ready fd is a new
 *     edge; programs using EPOLLET read to EAGAIN, so this is harmless, and CRIU does the same)
 *   - inotify events queued before the snapshot (none are: the kernel offers no way to put them
 *     back), and the UDP socket's receive queue (datagrams in flight are not kept)
 *   - bytes a client sent into a unix connection not yet accepted: no call reads them without
 *     accepting it (which would take it from the program), so km refuses such a snapshot's fd
 *     (docs/snapshot-files.md, "unix"); the zoo's pending client sends after the accept
 *   - the timerfd's exact remaining time (only 0 < remaining <= what it was just before the
 *     snapshot; time passes while the file waits)
 *   - in the original of keep mode nothing that writes to a file on disk: the copy is resumed
 *     after it, and a file that changed refuses the resume; the copies (and nosnap) write too.
 *     So a snapshot of the zoo resumes once: its copy writes to rw.txt and app.txt, and a
 *     second resume of the same file is refused (a changed file).
 */
// E2E: nosnap 0 @TMP nosnap
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/timerfd.h>
#include <sys/un.h>

#include "snap_common.h"

#ifndef F_SEAL_SEAL
#define F_SEAL_SEAL 0x0001
#define F_SEAL_SHRINK 0x0002
#define F_SEAL_GROW 0x0004
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#endif
#ifndef F_OFD_GETLK
#define F_OFD_GETLK 36
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 2U
#endif
#ifndef O_TMPFILE
#define O_TMPFILE (020000000 | O_DIRECTORY)
#endif

#define VICTIM_FD 100
#define FL_MASK (O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC | O_ASYNC)
#define MAXFD 1024

/* --- reporting --------------------------------------------------------------------------------- */

static int zoo_checks, zoo_fails;

__attribute__((format(printf, 4, 5))) static bool zcheck(bool ok, int fd, const char *item, const char *fmt, ...)
{
	va_list ap;

	zoo_checks++;
	if (ok)
		return true;
	zoo_fails++;
	if (fd >= 0)
		printf("FAIL fd %d (%s): ", fd, item);
	else
		printf("FAIL %s: ", item);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	return false;
}

/* "errno 9 (Bad file descriptor)" for the last failed call, in a static buffer. */
static const char *err_text(void)
{
	static char b[96];
	snprintf(b, sizeof(b), "errno %d (%s)", errno, strerror(errno));
	return b;
}

static void die(const char *what)
{
	printf("zoo: cannot build: %s: %s\n", what, strerror(errno));
	fflush(stdout);
	exit(3);
}

/* --- the zoo's fds and what was recorded of them ------------------------------------------------ */

enum {
	CMP_IDENT = 1,  /* st_dev, st_ino */
	CMP_SIZE = 2,   /* st_size */
	CMP_NLINK = 4,  /* st_nlink */
	CMP_RDEV = 8,   /* st_rdev */
	CMP_OFF = 16,   /* lseek(fd, 0, SEEK_CUR) */
};

struct zfd {
	const char *item;
	int fd;
	unsigned cmp;
	int fdflags, flflags;
	struct stat st;
	off_t off;
};

static struct zfd zfds[64];
static int nzfds;
static bool fd_was_open[MAXFD];

static int zadd(const char *item, int fd, unsigned cmp)
{
	if (fd < 0)
		die(item);
	if (nzfds == (int)(sizeof(zfds) / sizeof(zfds[0]))) {
		errno = ENOSPC;
		die("too many zoo fds");
	}
	zfds[nzfds++] = (struct zfd){.item = item, .fd = fd, .cmp = cmp};
	return fd;
}

/* The fds open now, from /proc/self/fd (the listing's own fd left out). */
static void list_fds(bool *open_now)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(open_now, 0, MAXFD * sizeof(bool));
	if (d == NULL)
		die("opendir /proc/self/fd");
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] == '.' || fd == dirfd(d))
			continue;
		if (fd >= 0 && fd < MAXFD)
			open_now[fd] = true;
	}
	closedir(d);
}

/* --- state shared between building and checking ----------------------------------------------------- */

static const char *dir;
static char path_buf[4096];

static const char *path(const char *name)
{
	snprintf(path_buf, sizeof(path_buf), "%s/%s", dir, name);
	return path_buf;
}

static unsigned char pattern(unsigned seed, size_t i)
{
	return (unsigned char)((i * 131 + seed * 17 + (i >> 7)) ^ seed);
}

static void fill(unsigned char *b, size_t n, unsigned seed, size_t from)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pattern(seed, from + i);
}

static void write_file(const char *name, size_t size, unsigned seed, mode_t mode)
{
	unsigned char buf[16384];
	int fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || size > sizeof(buf))
		die(name);
	fill(buf, size, seed, 0);
	if (write(fd, buf, size) != (ssize_t)size || close(fd) != 0)
		die(name);
}

/* Bytes [off, off + n) of fd hold pattern(seed) (pread: the offset does not move). */
static bool holds(int fd, off_t off, size_t n, unsigned seed)
{
	unsigned char got[8192], want[8192];

	if (n > sizeof(got))
		return false;
	fill(want, n, seed, (size_t)off);
	return pread(fd, got, n, off) == (ssize_t)n && memcmp(got, want, n) == 0;
}

struct zoo {
	int ro, rw, app, twice, victim;
	int dup0, dup1, dup2, dup3;
	int dirfd;
	char dir_seen[8][64];
	int ndir_seen;
	int null, urandom;
	int deleted, tmpfile, memfd;
	bool have_tmpfile;
	nlink_t memfd_nlink;
	int pipe_r, pipe_w, hup_r;
	int sp0, sp1, dg0, dg1;
	int ulisten, uclient;
	int tlisten, tclient, tserver;
	unsigned short tport;
	int rcvbuf;
	int udp;
	unsigned short uport;
	int efd, efd_sem;
	int ep, ep_twin;
	struct epoll_event twin_events[16];
	int ntwin_events;
	int tfd;
	bool have_timerfd;
	char timerfd_error[128];
	struct itimerspec tfd_before;
	int sfd;
	int ino, ino_wd;
	int flock_fd, lock_fd, lock_probe;
	mode_t umask;
	struct rlimit nofile, core;
	int persona;
};

static struct zoo z;

/* --- building ----------------------------------------------------------------------------------- */

static void build_files(void)
{
	write_file("ro.txt", 10000, 1, 0644);
	write_file("rw.txt", 8192, 2, 0600);
	write_file("app.txt", 100, 3, 0644);
	write_file("dup.txt", 5000, 4, 0644);
	write_file("victim.txt", 3000, 5, 0644);
	write_file("flock.txt", 10, 6, 0644);
	write_file("lock.txt", 1000, 7, 0644);

	z.ro = zadd("ro file", open(path("ro.txt"), O_RDONLY), CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	lseek(z.ro, 1234, SEEK_SET);
	z.rw = zadd("rw file", open(path("rw.txt"), O_RDWR), CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	lseek(z.rw, 4000, SEEK_SET);
	z.app = zadd("append file", open(path("app.txt"), O_WRONLY | O_APPEND), CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	lseek(z.app, 10, SEEK_SET);
	z.twice = zadd("ro file opened twice", open(path("ro.txt"), O_RDONLY), CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	lseek(z.twice, 77, SEEK_SET);

	int v = open(path("victim.txt"), O_RDONLY);
	if (v < 0 || dup2(v, VICTIM_FD) != VICTIM_FD || close(v) != 0)
		die("victim");
	z.victim = zadd("victim file", VICTIM_FD, CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	lseek(z.victim, 300, SEEK_SET);

	z.dup0 = zadd("dup group: open O_CLOEXEC", open(path("dup.txt"), O_RDWR | O_CLOEXEC),
		      CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	z.dup1 = zadd("dup group: dup", dup(z.dup0), CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	z.dup2 = zadd("dup group: dup2", dup2(z.dup0, 200), CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	z.dup3 = zadd("dup group: F_DUPFD_CLOEXEC", fcntl(z.dup0, F_DUPFD_CLOEXEC, 300),
		      CMP_IDENT | CMP_SIZE | CMP_NLINK | CMP_OFF);
	if (fcntl(z.dup1, F_SETFL, O_NONBLOCK) != 0)
		die("F_SETFL O_NONBLOCK on the dup group");
	lseek(z.dup2, 2222, SEEK_SET);

	z.flock_fd = zadd("flock(LOCK_EX) file", open(path("flock.txt"), O_RDONLY), CMP_IDENT | CMP_SIZE | CMP_OFF);
	if (flock(z.flock_fd, LOCK_EX) != 0)
		die("flock");
	z.lock_fd = zadd("F_SETLK read-locked file", open(path("lock.txt"), O_RDWR), CMP_IDENT | CMP_SIZE | CMP_OFF);
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 100, .l_len = 100};
	if (fcntl(z.lock_fd, F_SETLK, &fl) != 0)
		die("F_SETLK");
	z.lock_probe = zadd("lock probe", open(path("lock.txt"), O_RDONLY), CMP_IDENT | CMP_SIZE | CMP_OFF);
}

static long getdents_one(int fd, char *name, size_t len)
{
	/* Room for one entry of the names used here (24 or 32 bytes) but not two (48 or more): the
	 * position moves one entry at a time. */
	union {
		char b[40];
		uint64_t align;
	} u;
	long n = syscall(SYS_getdents64, fd, u.b, sizeof(u.b));
	if (n > 0)
		snprintf(name, len, "%s", u.b + 19); /* d_ino 8, d_off 8, d_reclen 2, d_type 1 */
	return n;
}

static void build_dir(void)
{
	char sub[4096];

	snprintf(sub, sizeof(sub), "%s/sub", dir);
	if (mkdir(sub, 0750) != 0)
		die("mkdir sub");
	for (int i = 0; i < 5; i++) {
		char n[64];
		snprintf(n, sizeof(n), "sub/entry%d", i);
		write_file(n, 1, 8, 0644);
	}
	z.dirfd = zadd("directory", open(sub, O_RDONLY | O_DIRECTORY), CMP_IDENT | CMP_NLINK);
	for (z.ndir_seen = 0; z.ndir_seen < 3; z.ndir_seen++)
		if (getdents_one(z.dirfd, z.dir_seen[z.ndir_seen], sizeof(z.dir_seen[0])) <= 0)
			die("getdents64");
}

static void build_unlinked(void)
{
	unsigned char buf[8192];

	z.null = zadd("/dev/null", open("/dev/null", O_WRONLY), CMP_RDEV | CMP_IDENT);
	z.urandom = zadd("/dev/urandom", open("/dev/urandom", O_RDONLY | O_CLOEXEC), CMP_RDEV | CMP_IDENT);

	write_file("deleted.txt", 5000, 9, 0640);
	z.deleted = zadd("deleted file", open(path("deleted.txt"), O_RDWR), CMP_SIZE | CMP_NLINK | CMP_OFF);
	if (unlink(path("deleted.txt")) != 0)
		die("unlink deleted.txt");
	lseek(z.deleted, 2500, SEEK_SET);

	int t = open(dir, O_TMPFILE | O_RDWR, 0600);
	z.have_tmpfile = t >= 0;
	if (z.have_tmpfile) {
		fill(buf, 3000, 10, 0);
		if (write(t, buf, 3000) != 3000)
			die("write O_TMPFILE");
		z.tmpfile = zadd("O_TMPFILE file", t, CMP_SIZE | CMP_NLINK | CMP_OFF);
		lseek(t, 1000, SEEK_SET);
	} else {
		printf("zoo: O_TMPFILE is not supported in this directory (%s): not checked\n", strerror(errno));
	}

	z.memfd = zadd("memfd", memfd_create("zoo-memfd", MFD_CLOEXEC | MFD_ALLOW_SEALING), CMP_SIZE | CMP_NLINK | CMP_OFF);
	fill(buf, 6000, 11, 0);
	if (write(z.memfd, buf, 6000) != 6000)
		die("write memfd");
	lseek(z.memfd, 123, SEEK_SET);
	if (fcntl(z.memfd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
		die("F_ADD_SEALS");
}

static void build_pipes(void)
{
	unsigned char buf[4096];
	int p[2];

	if (pipe(p) != 0)
		die("pipe");
	z.pipe_r = zadd("pipe read end", p[0], 0);
	z.pipe_w = zadd("pipe write end", p[1], 0);
	if (fcntl(z.pipe_w, F_SETPIPE_SZ, 131072) < 0)
		die("F_SETPIPE_SZ");
	fcntl(z.pipe_w, F_SETFL, O_NONBLOCK);
	fill(buf, 3000, 12, 0);
	if (write(z.pipe_w, buf, 3000) != 3000)
		die("write pipe");

	if (pipe2(p, O_CLOEXEC) != 0)
		die("pipe2");
	z.hup_r = zadd("pipe read end, writer closed", p[0], 0);
	fill(buf, 100, 13, 0);
	if (write(p[1], buf, 100) != 100 || close(p[1]) != 0)
		die("write pipe 2");
}

static void build_unix(void)
{
	unsigned char buf[1024];
	int s[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0)
		die("socketpair stream");
	z.sp0 = zadd("unix stream pair end 0", s[0], 0);
	z.sp1 = zadd("unix stream pair end 1", s[1], 0);
	fill(buf, 1000, 14, 0);
	if (write(z.sp0, buf, 1000) != 1000)
		die("write sp0");
	fill(buf, 700, 15, 0);
	if (write(z.sp1, buf, 700) != 700)
		die("write sp1");

	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, s) != 0)
		die("socketpair dgram");
	z.dg0 = zadd("unix dgram pair end 0", s[0], 0);
	z.dg1 = zadd("unix dgram pair end 1", s[1], 0);
	static const size_t sizes[3] = {10, 300, 1};
	for (int i = 0; i < 3; i++) {
		fill(buf, sizes[i], 16 + (unsigned)i, 0);
		if (send(z.dg0, buf, sizes[i], 0) != (ssize_t)sizes[i])
			die("send dgram");
	}

	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s/zoo.sock", dir);
	if (strlen(a.sun_path) != strlen(dir) + 9) {
		errno = ENAMETOOLONG;
		die("unix socket path");
	}
	z.ulisten = zadd("unix listener", socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0), 0);
	if (bind(z.ulisten, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(z.ulisten, 5) != 0)
		die("bind/listen unix");
	z.uclient = zadd("unix client pending in the listener's backlog", socket(AF_UNIX, SOCK_STREAM, 0), 0);
	if (connect(z.uclient, (struct sockaddr *)&a, sizeof(a)) != 0)
		die("connect unix");
}

static void build_inet(void)
{
	unsigned char buf[2048];
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	z.tlisten = zadd("tcp listener", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), 0);
	z.rcvbuf = 65536;
	if (setsockopt(z.tlisten, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    setsockopt(z.tlisten, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
	    setsockopt(z.tlisten, SOL_SOCKET, SO_RCVBUF, &z.rcvbuf, sizeof(z.rcvbuf)) != 0)
		die("setsockopt tcp listener");
	if (bind(z.tlisten, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(z.tlisten, 16) != 0 ||
	    getsockname(z.tlisten, (struct sockaddr *)&a, &al) != 0)
		die("bind/listen tcp");
	z.tport = ntohs(a.sin_port);
	socklen_t l = sizeof(z.rcvbuf);
	getsockopt(z.tlisten, SOL_SOCKET, SO_RCVBUF, &z.rcvbuf, &l);

	z.tclient = zadd("tcp established, client end", socket(AF_INET, SOCK_STREAM, 0), 0);
	if (connect(z.tclient, (struct sockaddr *)&a, sizeof(a)) != 0)
		die("connect tcp");
	z.tserver = zadd("tcp established, server end", accept4(z.tlisten, NULL, NULL, 0), 0);
	fill(buf, 2000, 20, 0);
	if (write(z.tclient, buf, 2000) != 2000)
		die("write tcp client");
	fill(buf, 1500, 21, 0);
	if (write(z.tserver, buf, 1500) != 1500)
		die("write tcp server");
	/* Loopback delivers at once, but wait (no time limit) until both queues show it. */
	for (int n1 = 0, n2 = 0; n1 != 2000 || n2 != 1500;) {
		ioctl(z.tserver, FIONREAD, &n1);
		ioctl(z.tclient, FIONREAD, &n2);
		if (n1 != 2000 || n2 != 1500)
			poll(NULL, 0, 1);
	}

	struct sockaddr_in u = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t ul = sizeof(u);
	z.udp = zadd("udp socket", socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0), 0);
	if (bind(z.udp, (struct sockaddr *)&u, sizeof(u)) != 0 || getsockname(z.udp, (struct sockaddr *)&u, &ul) != 0)
		die("bind udp");
	z.uport = ntohs(u.sin_port);
}

static void build_events(void)
{
	sigset_t m;

	z.efd = zadd("eventfd", eventfd(5, EFD_NONBLOCK), 0);
	z.efd_sem = zadd("eventfd semaphore", eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC), 0);

	/* A km without timerfd: one failed check, and /dev/null holds its number so that the fds
	 * after it keep theirs (fds.sh knows them). */
	int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
	z.have_timerfd = t >= 0;
	if (!z.have_timerfd) {
		snprintf(z.timerfd_error, sizeof(z.timerfd_error), "timerfd_create: %s", strerror(errno));
		t = open("/dev/null", O_RDONLY);
	}
	z.tfd = zadd(z.have_timerfd ? "timerfd" : "timerfd (/dev/null in its place)", t, 0);
	struct itimerspec its = {.it_value = {3600, 0}, .it_interval = {1800, 0}};
	if (z.have_timerfd && timerfd_settime(z.tfd, 0, &its, NULL) != 0)
		die("timerfd_settime");

	sigemptyset(&m);
	sigaddset(&m, SIGUSR1);
	sigaddset(&m, SIGUSR2);
	sigaddset(&m, SIGTERM);
	sigprocmask(SIG_BLOCK, &m, NULL);
	sigdelset(&m, SIGTERM);
	z.sfd = zadd("signalfd", signalfd(-1, &m, SFD_NONBLOCK | SFD_CLOEXEC), 0);
	kill(getpid(), SIGUSR1); /* pending across the snapshot */

	z.ino = zadd("inotify", inotify_init1(IN_NONBLOCK), 0);
	z.ino_wd = inotify_add_watch(z.ino, dir, IN_CREATE | IN_DELETE);
	if (z.ino_wd < 0)
		die("inotify_add_watch");

	z.ep = zadd("epoll", epoll_create1(EPOLL_CLOEXEC), 0);
	z.ep_twin = zadd("twin epoll", epoll_create1(0), 0);
	struct {
		int fd;
		uint32_t events;
	} w[] = {
		{z.efd, EPOLLIN},
		{z.pipe_r, EPOLLIN | EPOLLET},
		{z.sp1, EPOLLIN | EPOLLOUT | EPOLLONESHOT},
		{z.tlisten, EPOLLIN},
		{z.udp, EPOLLOUT},
		{z.tfd, EPOLLIN},
		{z.hup_r, EPOLLIN | EPOLLRDHUP},
	};
	for (unsigned i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		if (w[i].fd == z.tfd && !z.have_timerfd)
			continue;
		struct epoll_event ev = {.events = w[i].events, .data.u64 = 0x1001 + i};
		if (epoll_ctl(z.ep, EPOLL_CTL_ADD, w[i].fd, &ev) != 0 || epoll_ctl(z.ep_twin, EPOLL_CTL_ADD, w[i].fd, &ev) != 0)
			die("epoll_ctl");
	}
	z.ntwin_events = epoll_wait(z.ep_twin, z.twin_events, 16, 0);
	if (z.ntwin_events < 0)
		die("epoll_wait twin");
}

static void build_process(void)
{
	umask(027);
	z.umask = 027;
	getrlimit(RLIMIT_NOFILE, &z.nofile);
	z.nofile.rlim_cur = 900;
	if (setrlimit(RLIMIT_NOFILE, &z.nofile) != 0)
		die("setrlimit NOFILE");
	getrlimit(RLIMIT_CORE, &z.core);
	z.core.rlim_cur = z.core.rlim_max < 40960 ? z.core.rlim_max : 40960;
	if (setrlimit(RLIMIT_CORE, &z.core) != 0)
		die("setrlimit CORE");
	if (prctl(PR_SET_NAME, "fd-zoo-name", 0, 0, 0) != 0)
		die("PR_SET_NAME");
	z.persona = personality(0xffffffff);
}

static void record(void)
{
	for (int i = 0; i < nzfds; i++) {
		struct zfd *f = &zfds[i];
		f->fdflags = fcntl(f->fd, F_GETFD);
		f->flflags = fcntl(f->fd, F_GETFL) & FL_MASK;
		if (f->fdflags < 0 || fstat(f->fd, &f->st) != 0)
			die(f->item);
		f->off = (f->cmp & CMP_OFF) ? lseek(f->fd, 0, SEEK_CUR) : 0;
	}
	if (z.have_timerfd)
		timerfd_gettime(z.tfd, &z.tfd_before);
	list_fds(fd_was_open);
}

/* --- checking ------------------------------------------------------------------------------------ */

static bool victim_closed;
static bool may_write;

static const char *item_of(int fd)
{
	for (int i = 0; i < nzfds; i++)
		if (zfds[i].fd == fd)
			return zfds[i].item;
	return "?";
}

#define ZC(cond, fd, ...) zcheck((cond), (fd), item_of(fd), __VA_ARGS__)

/* The generic checks of one fd; false if it is not open (its own checks are then skipped). */
static bool check_generic(const struct zfd *f)
{
	struct stat st;
	int fdflags = fcntl(f->fd, F_GETFD);

	if (f->fd == VICTIM_FD && victim_closed) {
		zcheck(fdflags < 0 && errno == EBADF, f->fd, f->item,
		       "expected closed (EBADF: its file was changed and --restore-missing=closed), but F_GETFD = %d", fdflags);
		return false;
	}
	if (!zcheck(fdflags >= 0, f->fd, f->item, "not open: F_GETFD: %s", err_text()))
		return false;
	zcheck(fdflags == f->fdflags, f->fd, f->item, "F_GETFD %#x, was %#x", fdflags, f->fdflags);
	int fl = fcntl(f->fd, F_GETFL) & FL_MASK;
	zcheck(fl == f->flflags, f->fd, f->item, "F_GETFL (status flags) %#o, was %#o", fl, f->flflags);
	if (!zcheck(fstat(f->fd, &st) == 0, f->fd, f->item, "fstat: %s", err_text()))
		return true;
	zcheck(st.st_mode == f->st.st_mode, f->fd, f->item, "st_mode %#o, was %#o", st.st_mode, f->st.st_mode);
	if (f->cmp & CMP_IDENT)
		zcheck(st.st_dev == f->st.st_dev && st.st_ino == f->st.st_ino, f->fd, f->item,
		       "another file (st_dev/st_ino differ)");
	if (f->cmp & CMP_SIZE)
		zcheck(st.st_size == f->st.st_size, f->fd, f->item, "size %lld, was %lld", (long long)st.st_size,
		       (long long)f->st.st_size);
	if (f->cmp & CMP_NLINK)
		zcheck(st.st_nlink == f->st.st_nlink, f->fd, f->item, "nlink %lu, was %lu", (unsigned long)st.st_nlink,
		       (unsigned long)f->st.st_nlink);
	if (f->cmp & CMP_RDEV)
		zcheck(st.st_rdev == f->st.st_rdev, f->fd, f->item, "device %u:%u, was %u:%u", major(st.st_rdev),
		       minor(st.st_rdev), major(f->st.st_rdev), minor(f->st.st_rdev));
	if (f->cmp & CMP_OFF) {
		off_t off = lseek(f->fd, 0, SEEK_CUR);
		zcheck(off == f->off, f->fd, f->item, "offset %lld, was %lld", (long long)off, (long long)f->off);
	}
	return true;
}

static bool is_open(int fd)
{
	if (fd == VICTIM_FD && victim_closed)
		return false;
	return fcntl(fd, F_GETFD) >= 0;
}

/* Moves fd a to off and reads the offset of b; puts a back. */
static off_t seek_seen_by(int a, int b, off_t off)
{
	off_t was = lseek(a, 0, SEEK_CUR), seen;
	lseek(a, off, SEEK_SET);
	seen = lseek(b, 0, SEEK_CUR);
	lseek(a, was, SEEK_SET);
	return seen;
}

static void check_files(void)
{
	unsigned char buf[64];

	if (is_open(z.ro))
		ZC(holds(z.ro, 1234, 4000, 1), z.ro, "contents differ");
	if (is_open(z.twice)) {
		ZC(seek_seen_by(z.twice, z.ro, 5000) == 1234, z.ro, "shares its offset with fd %d (ro.txt opened twice)", z.twice);
	}
	if (is_open(z.victim))
		ZC(holds(z.victim, 0, 3000, 5), z.victim, "contents differ");
	if (is_open(z.rw)) {
		ZC(holds(z.rw, 0, 8192, 2), z.rw, "contents differ");
		if (may_write) {
			ZC(write(z.rw, "XYZ", 3) == 3, z.rw, "write: %s", err_text());
			ZC(lseek(z.rw, 0, SEEK_CUR) == 4003, z.rw, "offset after a 3-byte write is not 4003");
			ZC(pread(z.rw, buf, 3, 4000) == 3 && memcmp(buf, "XYZ", 3) == 0, z.rw, "the write did not land at 4000");
		}
	}
	if (is_open(z.app)) {
		if (may_write) {
			ZC(write(z.app, "abcde", 5) == 5, z.app, "write: %s", err_text());
			struct stat st;
			ZC(fstat(z.app, &st) == 0 && st.st_size == 105, z.app, "O_APPEND write did not go to the end (size %lld)",
			   (long long)st.st_size);
			ZC(lseek(z.app, 0, SEEK_CUR) == 105, z.app, "offset after an O_APPEND write is not 105");
		}
	}
	/* The dup group: one offset, one set of status flags, four fds. */
	int g[4] = {z.dup0, z.dup1, z.dup2, z.dup3};
	bool all = true;
	for (int i = 0; i < 4; i++)
		all &= is_open(g[i]);
	if (all) {
		for (int i = 0; i < 4; i++)
			ZC(seek_seen_by(g[i], g[(i + 1) % 4], 1000 + i) == 1000 + i, g[i], "does not share its offset with fd %d",
			   g[(i + 1) % 4]);
		int was = fcntl(z.dup3, F_GETFL);
		fcntl(z.dup3, F_SETFL, was & ~O_NONBLOCK);
		ZC(!(fcntl(z.dup0, F_GETFL) & O_NONBLOCK), z.dup0, "does not share status flags with fd %d", z.dup3);
		fcntl(z.dup3, F_SETFL, was);
		ZC(holds(z.dup0, 0, 5000, 4), z.dup0, "contents differ");
	}
	/* Locks: seen from other descriptions of the same files. */
	if (is_open(z.flock_fd)) {
		int o = open(path("flock.txt"), O_RDONLY | O_CLOEXEC);
		ZC(o >= 0 && flock(o, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK, z.flock_fd,
		   "flock(LOCK_EX) not held: another open file took it");
		if (o >= 0)
			close(o); /* flock locks belong to the description: closing another does not drop them */
	}
	if (is_open(z.lock_fd) && is_open(z.lock_probe)) {
		struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0, .l_pid = 0};
		bool ok = fcntl(z.lock_probe, F_OFD_GETLK, &fl) == 0;
		ZC(ok && fl.l_type == F_RDLCK && fl.l_start == 100 && fl.l_len == 100 && fl.l_pid == getpid(), z.lock_fd,
		   "F_SETLK read lock on 100-199 not held (F_OFD_GETLK: %s, type %d start %lld len %lld, pid %s)",
		   ok ? "ok" : err_text(), fl.l_type, (long long)fl.l_start, (long long)fl.l_len,
		   fl.l_pid == getpid() ? "ours" : "not ours");
	}
}

static void check_dir(void)
{
	char seen[16][64];
	int n = 0;

	if (!is_open(z.dirfd))
		return;
	while (n < 16 && getdents_one(z.dirfd, seen[n], sizeof(seen[0])) > 0)
		n++;
	/* Before and after together: ".", "..", entry0-4, each exactly once. */
	static const char *const want[7] = {".", "..", "entry0", "entry1", "entry2", "entry3", "entry4"};
	for (int w = 0; w < 7; w++) {
		int times = 0;
		for (int i = 0; i < z.ndir_seen; i++)
			times += strcmp(z.dir_seen[i], want[w]) == 0;
		for (int i = 0; i < n; i++)
			times += strcmp(seen[i], want[w]) == 0;
		ZC(times == 1, z.dirfd, "entry \"%s\" read %d times over the snapshot (getdents position lost)", want[w], times);
	}
	ZC(z.ndir_seen + n == 7, z.dirfd, "%d entries read before and %d after, expected 7 in all", z.ndir_seen, n);
}

static void check_devices_and_unlinked(void)
{
	unsigned char buf[64];
	struct stat st;

	if (is_open(z.null))
		ZC(write(z.null, "x", 1) == 1, z.null, "write: %s", err_text());
	if (is_open(z.urandom))
		ZC(read(z.urandom, buf, sizeof(buf)) == (ssize_t)sizeof(buf), z.urandom, "read: %s", err_text());

	if (is_open(z.deleted)) {
		ZC(fstat(z.deleted, &st) == 0 && st.st_nlink == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0640,
		   z.deleted, "not a deleted regular file of mode 0640 (nlink %lu, mode %#o)", (unsigned long)st.st_nlink,
		   st.st_mode);
		ZC(holds(z.deleted, 0, 5000, 9), z.deleted, "contents differ");
		if (may_write) {
			ZC(write(z.deleted, "Q", 1) == 1 && pread(z.deleted, buf, 1, 2500) == 1 && buf[0] == 'Q', z.deleted,
			   "not writable at its offset");
		}
	}
	if (z.have_tmpfile && is_open(z.tmpfile)) {
		ZC(fstat(z.tmpfile, &st) == 0 && st.st_nlink == 0 && (st.st_mode & 07777) == 0600, z.tmpfile,
		   "not an unlinked file of mode 0600 (nlink %lu, mode %#o)", (unsigned long)st.st_nlink, st.st_mode);
		ZC(holds(z.tmpfile, 0, 3000, 10), z.tmpfile, "contents differ");
		/* linkat of an O_TMPFILE file gives it a name, as it did before the snapshot */
		if (may_write) {
			char p[64];
			snprintf(p, sizeof(p), "/proc/self/fd/%d", z.tmpfile);
			unlink(path("tmpfile-linked"));
			ZC(linkat(AT_FDCWD, p, AT_FDCWD, path("tmpfile-linked"), AT_SYMLINK_FOLLOW) == 0, z.tmpfile,
			   "linkat: %s", err_text());
			unlink(path("tmpfile-linked"));
		}
	}
	if (is_open(z.memfd)) {
		int seals = fcntl(z.memfd, F_GET_SEALS);
		ZC(seals == (F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), z.memfd, "seals %#x, expected GROW|SHRINK|SEAL", seals);
		ZC(ftruncate(z.memfd, 7000) != 0 && errno == EPERM, z.memfd, "F_SEAL_GROW: it grew");
		ZC(ftruncate(z.memfd, 10) != 0 && errno == EPERM, z.memfd, "F_SEAL_SHRINK: it shrank");
		ZC(holds(z.memfd, 0, 6000, 11), z.memfd, "contents differ");
		char link[256] = "", p[64];
		snprintf(p, sizeof(p), "/proc/self/fd/%d", z.memfd);
		ssize_t n = readlink(p, link, sizeof(link) - 1);
		if (n > 0)
			link[n] = 0;
		ZC(strncmp(link, "/memfd:zoo-memfd", 16) == 0, z.memfd, "its name is \"%s\", expected /memfd:zoo-memfd", link);
		void *m = mmap(NULL, 6000, PROT_READ, MAP_SHARED, z.memfd, 0);
		unsigned char want[16];
		fill(want, 16, 11, 4096);
		ZC(m != MAP_FAILED && memcmp((char *)m + 4096, want, 16) == 0, z.memfd, "mmap of it differs: %s",
		   m == MAP_FAILED ? err_text() : "contents");
		if (m != MAP_FAILED)
			munmap(m, 6000);
	}
}

static void check_pipes(void)
{
	unsigned char buf[4096], want[4096];
	struct stat a, b;
	int n = -1;

	if (is_open(z.pipe_r) && is_open(z.pipe_w)) {
		ZC(fstat(z.pipe_r, &a) == 0 && fstat(z.pipe_w, &b) == 0 && a.st_ino == b.st_ino, z.pipe_r,
		   "not the same pipe as fd %d", z.pipe_w);
		int sz = fcntl(z.pipe_r, F_GETPIPE_SZ);
		ZC(sz == 131072, z.pipe_r, "pipe size %d, was 131072", sz);
		ZC(ioctl(z.pipe_r, FIONREAD, &n) == 0 && n == 3000, z.pipe_r, "%d bytes buffered, was 3000", n);
		fill(want, 3000, 12, 0);
		ssize_t r = read(z.pipe_r, buf, 4096);
		ZC(r == 3000 && memcmp(buf, want, 3000) == 0, z.pipe_r, "read %zd bytes, expected the 3000 buffered", r);
		ZC(write(z.pipe_w, "ping", 4) == 4 && read(z.pipe_r, buf, 8) == 4 && memcmp(buf, "ping", 4) == 0, z.pipe_w,
		   "writing to it does not reach fd %d", z.pipe_r);
	}
	if (is_open(z.hup_r)) {
		fill(want, 100, 13, 0);
		ssize_t r = read(z.hup_r, buf, 4096);
		ZC(r == 100 && memcmp(buf, want, 100) == 0, z.hup_r, "read %zd bytes, expected the 100 buffered", r);
		r = read(z.hup_r, buf, 4096);
		ZC(r == 0, z.hup_r, "then read %zd (%s), expected 0 (EOF: the writer is closed)", r, r < 0 ? err_text() : "data");
	}
}

/* Reads exactly n bytes that must be pattern(seed); no blocking (the data must already be there). */
static bool got_pattern(int fd, size_t n, unsigned seed)
{
	unsigned char buf[4096], want[4096];
	size_t have = 0;

	while (have < n) {
		ssize_t r = recv(fd, buf + have, n - have, MSG_DONTWAIT);
		if (r <= 0)
			return false;
		have += (size_t)r;
	}
	fill(want, n, seed, 0);
	return memcmp(buf, want, n) == 0 && recv(fd, buf, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

static int sockopt(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);
	return getsockopt(fd, level, name, &v, &l) == 0 ? v : -1;
}

static void check_unix(void)
{
	unsigned char buf[512], want[512];
	char b[8];

	if (is_open(z.sp0) && is_open(z.sp1)) {
		ZC(got_pattern(z.sp1, 1000, 14), z.sp1, "did not read exactly the 1000 bytes end 0 had sent");
		ZC(got_pattern(z.sp0, 700, 15), z.sp0, "did not read exactly the 700 bytes end 1 had sent");
		ZC(write(z.sp0, "abc", 3) == 3 && recv(z.sp1, b, 8, MSG_DONTWAIT) == 3, z.sp0, "not connected to fd %d", z.sp1);
		ZC(sockopt(z.sp0, SOL_SOCKET, SO_TYPE) == SOCK_STREAM && sockopt(z.sp0, SOL_SOCKET, SO_DOMAIN) == AF_UNIX, z.sp0,
		   "not an AF_UNIX SOCK_STREAM socket");
	}
	if (is_open(z.dg0) && is_open(z.dg1)) {
		static const size_t sizes[3] = {10, 300, 1};
		ZC(sockopt(z.dg1, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM, z.dg1, "not SOCK_DGRAM");
		for (int i = 0; i < 3; i++) {
			ssize_t r = recv(z.dg1, buf, sizeof(buf), MSG_DONTWAIT);
			fill(want, sizes[i], 16 + (unsigned)i, 0);
			ZC(r == (ssize_t)sizes[i] && memcmp(buf, want, sizes[i]) == 0, z.dg1,
			   "datagram %d: %zd bytes (%s), expected %zu", i + 1, r, r < 0 ? err_text() : "data", sizes[i]);
		}
		ZC(recv(z.dg1, buf, sizeof(buf), MSG_DONTWAIT) < 0 && errno == EAGAIN, z.dg1, "more than 3 datagrams queued");
		ZC(send(z.dg1, "back", 4, 0) == 4 && recv(z.dg0, b, 8, MSG_DONTWAIT) == 4, z.dg1, "not connected to fd %d", z.dg0);
	}
	if (is_open(z.ulisten)) {
		struct sockaddr_un a;
		socklen_t al = sizeof(a);
		char want_path[sizeof(a.sun_path)];
		snprintf(want_path, sizeof(want_path), "%s/zoo.sock", dir);
		ZC(getsockname(z.ulisten, (struct sockaddr *)&a, &al) == 0 && a.sun_family == AF_UNIX &&
			   strcmp(a.sun_path, want_path) == 0,
		   z.ulisten, "not bound to DIR/zoo.sock");
		ZC(sockopt(z.ulisten, SOL_SOCKET, SO_ACCEPTCONN) == 1, z.ulisten, "not listening");
		/* The connection pending before the snapshot: the zoo's own client's. */
		int s = accept4(z.ulisten, NULL, NULL, SOCK_CLOEXEC);
		ZC(s >= 0, z.ulisten, "the connection pending in its backlog is gone (accept: %s)", err_text());
		if (s >= 0) {
			ZC(!is_open(z.uclient) ||
				   (write(z.uclient, "hello", 5) == 5 && recv(s, b, 8, MSG_DONTWAIT) == 5 && memcmp(b, "hello", 5) == 0),
			   z.ulisten, "the pending connection does not carry the client's bytes");
			if (is_open(z.uclient))
				ZC(write(s, "hi", 2) == 2 && recv(z.uclient, b, 8, MSG_DONTWAIT) == 2, z.uclient,
				   "not the client of the pending connection");
			close(s);
		}
		int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		a.sun_family = AF_UNIX;
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", want_path);
		ZC(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0, z.ulisten, "a new client cannot connect: %s", err_text());
		s = accept4(z.ulisten, NULL, NULL, SOCK_CLOEXEC);
		ZC(s >= 0, z.ulisten, "accept of a new client: %s", err_text());
		if (s >= 0)
			close(s);
		close(c);
	}
}

static void check_inet(void)
{
	char b[8];

	if (is_open(z.tlisten)) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		ZC(getsockname(z.tlisten, (struct sockaddr *)&a, &al) == 0 && ntohs(a.sin_port) == z.tport &&
			   a.sin_addr.s_addr == htonl(INADDR_LOOPBACK),
		   z.tlisten, "not bound to 127.0.0.1 on its port");
		ZC(sockopt(z.tlisten, SOL_SOCKET, SO_ACCEPTCONN) == 1, z.tlisten, "not listening");
		ZC(sockopt(z.tlisten, SOL_SOCKET, SO_REUSEADDR) == 1, z.tlisten, "SO_REUSEADDR lost");
		ZC(sockopt(z.tlisten, IPPROTO_TCP, TCP_NODELAY) == 1, z.tlisten, "TCP_NODELAY lost");
		int rb = sockopt(z.tlisten, SOL_SOCKET, SO_RCVBUF);
		ZC(rb == z.rcvbuf, z.tlisten, "SO_RCVBUF %d, was %d", rb, z.rcvbuf);
		ZC(accept(z.tlisten, NULL, NULL) < 0 && errno == EAGAIN, z.tlisten, "a connection nobody made is pending");
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		a.sin_family = AF_INET;
		ZC(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0, z.tlisten, "a new client cannot connect: %s", err_text());
		int s = accept4(z.tlisten, NULL, NULL, SOCK_CLOEXEC);
		ZC(s >= 0, z.tlisten, "accept of a new client: %s", err_text());
		if (s >= 0) {
			ZC(write(c, "new", 3) == 3 && read(s, b, 8) == 3, z.tlisten, "the new connection does not carry data");
			close(s);
		}
		close(c);
	}
	if (is_open(z.tclient) && is_open(z.tserver)) {
		ZC(got_pattern(z.tserver, 2000, 20), z.tserver, "did not read exactly the 2000 bytes the client had sent");
		ZC(got_pattern(z.tclient, 1500, 21), z.tclient, "did not read exactly the 1500 bytes the server had sent");
		ZC(write(z.tclient, "more", 4) == 4 && read(z.tserver, b, 8) == 4 && memcmp(b, "more", 4) == 0, z.tclient,
		   "the connection does not go on");
		struct sockaddr_in a, p;
		socklen_t al = sizeof(a), pl = sizeof(p);
		ZC(getpeername(z.tclient, (struct sockaddr *)&p, &pl) == 0 && ntohs(p.sin_port) == z.tport, z.tclient,
		   "not connected to the listener's port");
		ZC(getsockname(z.tclient, (struct sockaddr *)&a, &al) == 0 && getpeername(z.tserver, (struct sockaddr *)&p, &pl) == 0 &&
			   a.sin_port == p.sin_port,
		   z.tserver, "its peer is not fd %d", z.tclient);
	}
	if (is_open(z.udp)) {
		struct sockaddr_in a;
		socklen_t al = sizeof(a);
		ZC(getsockname(z.udp, (struct sockaddr *)&a, &al) == 0 && ntohs(a.sin_port) == z.uport &&
			   a.sin_addr.s_addr == htonl(INADDR_LOOPBACK),
		   z.udp, "not bound to 127.0.0.1 on its port");
		ZC(sockopt(z.udp, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM, z.udp, "not SOCK_DGRAM");
		ZC(sendto(z.udp, "dgram", 5, 0, (struct sockaddr *)&a, al) == 5, z.udp, "sendto itself: %s", err_text());
		struct pollfd pf = {.fd = z.udp, .events = POLLIN};
		poll(&pf, 1, -1); /* loopback: there at once */
		ZC(recv(z.udp, b, 8, MSG_DONTWAIT) == 5, z.udp, "its own datagram did not arrive");
	}
}

static bool has_event(const struct epoll_event *ev, int n, uint64_t data, uint32_t events)
{
	for (int i = 0; i < n; i++)
		if (ev[i].data.u64 == data)
			return ev[i].events == events;
	return false;
}

/* Runs first: nothing has been read yet, so readiness is what it was at the snapshot. */
static void check_epoll(void)
{
	struct epoll_event ev[16];

	if (is_open(z.ep)) {
		int n = epoll_wait(z.ep, ev, 16, 0);
		ZC(n == z.ntwin_events, z.ep, "epoll_wait reports %d fds ready, expected %d", n, z.ntwin_events);
		for (int i = 0; i < z.ntwin_events; i++)
			ZC(has_event(ev, n, z.twin_events[i].data.u64, z.twin_events[i].events), z.ep,
			   "no event {data %#llx, events %#x}", (unsigned long long)z.twin_events[i].data.u64,
			   z.twin_events[i].events);
		for (int i = 0; i < n; i++)
			ZC(has_event(z.twin_events, z.ntwin_events, ev[i].data.u64, ev[i].events), z.ep,
			   "unexpected event {data %#llx, events %#x}", (unsigned long long)ev[i].data.u64, ev[i].events);
		/* The oneshot item (data 0x1003) is now disarmed: not reported again. */
		n = epoll_wait(z.ep, ev, 16, 0);
		ZC(!has_event(ev, n < 0 ? 0 : n, 0x1003, EPOLLIN | EPOLLOUT), z.ep, "EPOLLONESHOT item reported twice");
	}
	if (is_open(z.ep_twin)) {
		int n = epoll_wait(z.ep_twin, ev, 16, 0);
		bool oneshot = false;
		for (int i = 0; i < (n < 0 ? 0 : n); i++)
			oneshot |= ev[i].data.u64 == 0x1003;
		ZC(n >= 0 && !oneshot, z.ep_twin, "its EPOLLONESHOT item, disarmed before the snapshot, fired again");
		ZC(n >= 0 && has_event(ev, n, 0x1001, EPOLLIN), z.ep_twin, "level-triggered eventfd item not reported");
	}
}

static void check_events(void)
{
	uint64_t v = 0;

	if (is_open(z.efd)) {
		ZC(read(z.efd, &v, 8) == 8 && v == 5, z.efd, "counter %llu, was 5", (unsigned long long)v);
		ZC(read(z.efd, &v, 8) < 0 && errno == EAGAIN, z.efd, "counter not 0 after reading it");
	}
	if (is_open(z.efd_sem)) {
		int reads = 0;
		while (reads < 10 && read(z.efd_sem, &v, 8) == 8 && v == 1)
			reads++;
		ZC(reads == 3, z.efd_sem, "%d semaphore reads of 1, expected 3 (EFD_SEMAPHORE lost, or the count)", reads);
	}
	if (!z.have_timerfd)
		zcheck(false, z.tfd, "timerfd", "could not be made: %s", z.timerfd_error);
	else if (is_open(z.tfd)) {
		struct itimerspec now;
		ZC(timerfd_gettime(z.tfd, &now) == 0, z.tfd, "timerfd_gettime: %s", err_text());
		long long before = z.tfd_before.it_value.tv_sec * 1000000000LL + z.tfd_before.it_value.tv_nsec;
		long long left = now.it_value.tv_sec * 1000000000LL + now.it_value.tv_nsec;
		ZC(left > 0 && left <= before, z.tfd, "remaining %lld ns, was %lld ns before the snapshot", left, before);
		ZC(now.it_interval.tv_sec == 1800 && now.it_interval.tv_nsec == 0, z.tfd, "interval %lld.%09ld s, was 1800 s",
		   (long long)now.it_interval.tv_sec, now.it_interval.tv_nsec);
		ZC(read(z.tfd, &v, 8) < 0 && errno == EAGAIN, z.tfd, "expired already");
	}
	if (is_open(z.sfd)) {
		struct signalfd_siginfo si;
		ssize_t r = read(z.sfd, &si, sizeof(si));
		ZC(r == sizeof(si) && si.ssi_signo == SIGUSR1, z.sfd, "the SIGUSR1 pending at the snapshot not read (%zd, signo %u)",
		   r, r == sizeof(si) ? si.ssi_signo : 0);
		kill(getpid(), SIGTERM); /* blocked, not in its mask */
		ZC(read(z.sfd, &si, sizeof(si)) < 0 && errno == EAGAIN, z.sfd, "reads a signal outside its mask");
		kill(getpid(), SIGUSR2);
		r = read(z.sfd, &si, sizeof(si));
		ZC(r == sizeof(si) && si.ssi_signo == SIGUSR2, z.sfd, "SIGUSR2 (in its mask) not read");
		sigset_t t;
		sigemptyset(&t);
		sigaddset(&t, SIGTERM);
		struct timespec zero = {0, 0};
		sigtimedwait(&t, NULL, &zero);
	}
}

/* Runs early, before any check creates a file in DIR. */
static void check_inotify(void)
{
	if (is_open(z.ino)) {
		union {
			struct inotify_event e;
			char b[sizeof(struct inotify_event) + 256];
		} u;
		ZC(read(z.ino, &u, sizeof(u)) < 0 && errno == EAGAIN, z.ino, "an event is queued that nobody caused");
		int fd = open(path("inotify-probe"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		ssize_t r = read(z.ino, &u, sizeof(u));
		ZC(r > 0 && u.e.wd == z.ino_wd && (u.e.mask & IN_CREATE) && strcmp(u.e.name, "inotify-probe") == 0, z.ino,
		   "no IN_CREATE event for DIR/inotify-probe on watch %d (read %zd, wd %d, mask %#x)", z.ino_wd, r,
		   r > 0 ? u.e.wd : -1, r > 0 ? u.e.mask : 0);
		unlink(path("inotify-probe"));
		r = read(z.ino, &u, sizeof(u));
		ZC(r > 0 && (u.e.mask & IN_DELETE), z.ino, "no IN_DELETE event");
	}
}

static void check_process(void)
{
	struct rlimit r;
	char name[32] = "";

	mode_t m = umask(0);
	umask(m);
	zcheck(m == z.umask, -1, "umask", "%#o, was %#o", m, z.umask);
	getrlimit(RLIMIT_NOFILE, &r);
	zcheck(r.rlim_cur == z.nofile.rlim_cur && r.rlim_max == z.nofile.rlim_max, -1, "RLIMIT_NOFILE",
	       "%llu/%llu, was %llu/%llu", (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max,
	       (unsigned long long)z.nofile.rlim_cur, (unsigned long long)z.nofile.rlim_max);
	getrlimit(RLIMIT_CORE, &r);
	zcheck(r.rlim_cur == z.core.rlim_cur && r.rlim_max == z.core.rlim_max, -1, "RLIMIT_CORE",
	       "%llu/%llu, was %llu/%llu", (unsigned long long)r.rlim_cur, (unsigned long long)r.rlim_max,
	       (unsigned long long)z.core.rlim_cur, (unsigned long long)z.core.rlim_max);
	prctl(PR_GET_NAME, name, 0, 0, 0);
	zcheck(strcmp(name, "fd-zoo-name") == 0, -1, "process name", "\"%s\", was \"fd-zoo-name\"", name);
	int p = personality(0xffffffff);
	zcheck(p == z.persona, -1, "personality", "%#x, was %#x", p, z.persona);
}

static void check_fd_set(void)
{
	bool now[MAXFD];

	list_fds(now);
	for (int fd = 0; fd < MAXFD; fd++) {
		bool want = fd_was_open[fd] && !(fd == VICTIM_FD && victim_closed);
		if (now[fd] != want)
			zcheck(false, fd, now[fd] ? "not a zoo fd" : item_of(fd), "%s", now[fd] ? "open, but was not" : "missing");
	}
}

static int check_all(const char *who)
{
	struct stat st;

	victim_closed = stat(path("victim.expect-closed"), &st) == 0;
	printf("zoo: %s%s\n", who, victim_closed ? " (fd 100 must be closed)" : "");
	zoo_checks = zoo_fails = 0;
	check_epoll();
	check_inotify();
	check_fd_set();
	for (int i = 0; i < nzfds; i++)
		check_generic(&zfds[i]);
	check_files();
	check_dir();
	check_devices_and_unlinked();
	check_pipes();
	check_unix();
	check_inet();
	check_events();
	check_process();
	if (zoo_fails)
		printf("ZOO FAILED (%d of %d checks)\n", zoo_fails, zoo_checks);
	else
		printf("ZOO OK (%d checks)\n", zoo_checks);
	fflush(stdout);
	return zoo_fails ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || (strcmp(argv[2], "nosnap") && strcmp(argv[2], "keep") && strcmp(argv[2], "stop"))) {
		printf("usage: fd_zoo DIR nosnap|keep|stop\n");
		return 2;
	}
	dir = argv[1];
	for (int fd = 3; fd < MAXFD; fd++)
		close(fd); /* whatever the caller left open: the zoo's fd numbers are fixed (fds.sh) */
	signal(SIGPIPE, SIG_IGN);
	build_files();
	build_dir();
	build_unlinked();
	build_pipes();
	build_unix();
	build_inet();
	build_events();
	build_process();
	record();
	printf("zoo: built\n");
	if (strcmp(argv[2], "nosnap") == 0) {
		may_write = true;
		return check_all("checking");
	}
	bool keep = strcmp(argv[2], "keep") == 0;
	long hc = 0, r = snap_take("fd_zoo", keep ? KM_SNAPSHOT_KEEP_RUNNING : 0, NULL, &hc);
	if (r == KM_SNAPSHOT_RESUMED) {
		may_write = true;
		return check_all("resumed");
	}
	if (r != KM_SNAPSHOT_TAKEN || !keep)
		snap_failed(r);
	may_write = false;
	return check_all("original");
}
