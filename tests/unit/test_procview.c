/*
 * Unit tests for the guest's view of /proc (km_procview.c) and the door into the guest's fd table
 * (km_fd_admit.c): verdicts for every kind of procfs name, km's answers, directory filtering, and
 * the open handlers judging what they opened. This test process plays km: its pid is the guest's,
 * its main thread is the guest's vCPU thread, and a second thread plays km's listener.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "km_fd_admit.h"
#include "km_guest.h"
#include "km_procview.h"
#include "km_sys_util.h"
#include "km_syscall.h"

#include "guest_fixture.h"

static pid_t listener_tid;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool quit;

static void *listener(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	listener_tid = gettid();
	pthread_cond_broadcast(&cv);
	while (!quit)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return NULL;
}

static pthread_t listener_thread;

static int setup(void **state)
{
	if (fx_setup(state, km_sys_file_defs) < 0)
		return -1;
	fx_t *f = *state;
	f->v.host_tid = gettid();
	f->v.tid = getpid();
	f->v.live = true; /* the guest's one thread */
	f->g.vcpus[0] = &f->v;
	f->g.nvcpus = 1;
	f->g.threads.nlive = 1;
	quit = false;
	listener_tid = 0;
	pthread_create(&listener_thread, NULL, listener, NULL);
	pthread_mutex_lock(&mu);
	while (listener_tid == 0)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	return 0;
}

static int teardown(void **state)
{
	pthread_mutex_lock(&mu);
	quit = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(listener_thread, NULL);
	return fx_teardown(state);
}

static km_pv_t cls(fx_t *f, const char *fmt, ...)
{
	char rel[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	return km_procview_classify(&f->g, rel);
}

static void test_verdicts(void **state)
{
	fx_t *f = *state;
	int pid = getpid(), me = gettid(), km = listener_tid;
	assert_int_equal(cls(f, "meminfo").verdict, KM_PV_PASS);
	assert_int_equal(cls(f, "sys/kernel/ostype").verdict, KM_PV_PASS);
	assert_int_equal(cls(f, "self").verdict, KM_PV_PASS);
	assert_int_equal(cls(f, "%d", pid).verdict, KM_PV_PASS);
	const char *deny[] = {"mem", "pagemap", "map_files", "map_files/400000-401000", "syscall", "stack",
			      "smaps", "smaps_rollup", "numa_maps", "clear_refs", "attr/current", "timerslack_ns",
			      "a_file_a_newer_kernel_adds", "mem/x"};
	for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++) {
		assert_int_equal(cls(f, "%d/%s", pid, deny[i]).verdict, KM_PV_DENY);
		assert_int_equal(cls(f, "%d/task/%d/%s", pid, me, deny[i]).verdict, KM_PV_DENY);
		assert_int_equal(cls(f, "%d/task/%d/%s", pid, km, deny[i]).verdict, KM_PV_HIDE);
		assert_int_equal(cls(f, "%d/%s", km, deny[i]).verdict, KM_PV_HIDE);
	}
	const char *pass[] = {"limits", "comm", "cwd", "exe", "fd", "fd/3", "fdinfo/0", "net/tcp", "ns/mnt",
			      "mountinfo", "task"};
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
		assert_int_equal(cls(f, "%d/%s", pid, pass[i]).verdict, KM_PV_PASS);
	km_pv_t pv = cls(f, "%d/maps", pid);
	assert_int_equal(pv.verdict, KM_PV_SYNTH);
	assert_int_equal(pv.file, KM_PV_MAPS);
	pv = cls(f, "%d/task/%d/stat", pid, me);
	assert_int_equal(pv.verdict, KM_PV_SYNTH);
	assert_int_equal(pv.file, KM_PV_STAT);
	assert_int_equal(pv.tid, me);
	assert_int_equal(cls(f, "%d/fd/1000", pid).verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "%d/fdinfo/1003", pid).verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "%d/task/%d/fd/1001", pid, me).verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "%d/task/%d", pid, km).verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "%d", km).verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "%d/task/notanumber", pid).verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "%d/task/0%d/mem", pid, me).verdict, KM_PV_HIDE);
}

/* Another process (a guest's parent or child is a km): the kernel's rule for a process one may
 * not trace, for every pid alike; exe is refused only for a process running km's binary. */
static void test_other_process(void **state)
{
	fx_t *f = *state;
	const char *deny[] = {"mem", "pagemap", "map_files", "syscall", "stack", "maps", "smaps", "environ",
			      "auxv", "attr/current", "clear_refs", "a_file_a_newer_kernel_adds", "task/1/mem"};
	for (size_t i = 0; i < sizeof(deny) / sizeof(deny[0]); i++)
		assert_int_equal(cls(f, "1/%s", deny[i]).verdict, KM_PV_DENY);
	const char *pass[] = {"", "status", "cmdline", "comm", "cwd", "root", "exe", "fd", "fd/3", "fdinfo/0",
			      "task", "task/1", "task/1/status", "net/tcp", "ns/mnt"};
	for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
		assert_int_equal(cls(f, "1/%s", pass[i]).verdict, KM_PV_PASS);
	assert_int_equal(cls(f, "1/fd/1000").verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "1/fdinfo/1003").verdict, KM_PV_HIDE);
	assert_int_equal(cls(f, "1/task/1/fd/1001").verdict, KM_PV_HIDE);

	/* A child running this binary stands for another km. */
	int p[2];
	assert_int_equal(pipe(p), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		char c;
		close(p[1]);
		_exit(read(p[0], &c, 1) < 0);
	}
	close(p[0]);
	assert_int_equal(cls(f, "%d/exe", child).verdict, KM_PV_DENY);
	assert_int_equal(cls(f, "%d/task/%d/exe", child, child).verdict, KM_PV_DENY);
	km_pv_t pv = cls(f, "%d/stat", child);
	assert_int_equal(pv.verdict, KM_PV_SYNTH);
	assert_int_equal(pv.file, KM_PV_OTHER_STAT);
	assert_int_equal(pv.pid, child);
	int fd = km_procview_open(&f->g, &pv);
	assert_true(fd >= 0);
	char line[1024];
	ssize_t n = read(fd, line, sizeof(line) - 1);
	close(fd);
	assert_true(n > 0);
	line[n] = '\0';
	assert_int_equal(atoi(line), child);
	/* Fields 26-30 and 45-51 (addresses) are 0; the others are the host's. */
	char *save = NULL;
	int field = 2;
	for (char *t = strtok_r(strrchr(line, ')') + 1, " \n", &save); t != NULL; t = strtok_r(NULL, " \n", &save)) {
		field++;
		if ((field >= 26 && field <= 30) || (field >= 45 && field <= 51))
			assert_string_equal(t, "0");
		if (field == 3)
			assert_true(strlen(t) == 1); /* the state, kept */
	}
	assert_true(field >= 51);
	close(p[1]);
	int st;
	assert_int_equal(waitpid(child, &st, 0), child);
}

/* The open handlers judge the file they opened, whatever the path. */
static void test_open_handlers(void **state)
{
	fx_t *f = *state;
	char p[256];
	snprintf(p, sizeof(p), "/proc/%d/task/%d/mem", (int)getpid(), (int)listener_tid);
	gstr(f, A, p);
	assert_int_equal(SYS(SYS_open, A, O_RDONLY), -ENOENT);
	gstr(f, A, "/proc/self/mem");
	assert_int_equal(SYS(SYS_open, A, O_RDWR), -EACCES);
	assert_int_equal(SYS(SYS_creat, A, 0600), -EACCES);
	assert_int_equal(SYS(SYS_openat, AT_FDCWD, A, O_RDONLY), -EACCES);
	gstr(f, A, "/proc/self/fd/1000");
	assert_int_equal(SYS(SYS_open, A, O_RDONLY), -ENOENT);
	/* maps becomes the guest's: the fixture's mappings, nothing of this process's libc. */
	gstr(f, A, "/proc/thread-self/maps");
	long fd = SYS(SYS_open, A, O_RDONLY);
	assert_true(fd >= 0);
	char buf[4096];
	ssize_t n = read((int)fd, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "10000000-10010000 rw-p"));
	assert_null(strstr(buf, "libc"));
	assert_int_equal(fcntl((int)fd, F_GETFD), 0); /* no O_CLOEXEC asked, none given */
	close((int)fd);
	gstr(f, A, "/proc/self/cmdline");
	fd = SYS(SYS_open, A, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fcntl((int)fd, F_GETFD), FD_CLOEXEC);
	close((int)fd);
	/* A host fd from outside (SCM_RIGHTS) meets the same judgement. */
	int mem = open("/proc/self/mem", O_RDONLY);
	assert_true(mem >= 0);
	assert_int_equal(km_fd_admit(&f->g, mem), -EACCES);
	assert_int_equal(fcntl(mem, F_GETFD), -1); /* closed */
	int st = open("/proc/self/limits", O_RDONLY);
	assert_int_equal(km_fd_admit(&f->g, st), st);
	close(st);
	/* One that km answers arrives as km's answer, in place of the host's file. */
	st = open("/proc/self/statm", O_RDONLY);
	long got = km_fd_admit(&f->g, st);
	assert_true(got >= 0);
	char sm[128] = "";
	assert_true(read((int)got, sm, sizeof(sm) - 1) > 0);
	unsigned long pages = 0;
	assert_int_equal(sscanf(sm, "%lu", &pages), 1);
	assert_true(pages < 64ul << 20 >> 12); /* the fixture's few mappings, not this process's */
	close((int)got);
}

static void test_path_calls(void **state)
{
	fx_t *f = *state;
	int kmfd = fcntl(0, F_DUPFD, 1002); /* one of "km's" fds */
	assert_true(kmfd >= 1002);
	char kp[64];
	snprintf(kp, sizeof(kp), "/proc/self/fd/%d", kmfd);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, kp, false), -ENOENT);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, kp, true), -ENOENT);
	close(kmfd);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, "/proc/self/map_files", true), -EACCES);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, "/proc/self/status", true), 0);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, "/proc/self/fd/0", true), 0);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, "/nonexistent/x", true), 0);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, "/etc/passwd", true), 0);
	char p[128];
	snprintf(p, sizeof(p), "/proc/%d/status", (int)listener_tid);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, p, true), -ENOENT);
	/* A symlink of the guest's to km's memory is judged where it leads. */
	char link[128];
	snprintf(link, sizeof(link), "%s/l", f->dir);
	assert_int_equal(symlink("/proc/self/pagemap", link), 0);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, link, true), -EACCES);
	assert_int_equal(km_path_admit(&f->g, AT_FDCWD, link, false), 0); /* the link itself is the guest's */
}

/* Listings of km's task/ and fd/ leave out km's threads and fds, across several reads. */
static void test_listings(void **state)
{
	fx_t *f = *state;
	int hi = fcntl(0, F_DUPFD, 1005);
	assert_true(hi >= 1005);
	const char *dirs[] = {"/proc/self/task", "/proc/self/fd"};
	for (int d = 0; d < 2; d++) {
		gstr(f, A, dirs[d]);
		long fd = SYS(SYS_open, A, O_RDONLY | O_DIRECTORY);
		assert_true(fd >= 0);
		int seen_km = 0, seen = 0;
		long n;
		/* A small buffer: a few records per call, so a call whose records were all km's must
		 * read on rather than end the listing. */
		while ((n = SYS(SYS_getdents64, fd, A + 8 * PG, 64)) > 0) {
			char buf[64];
			gget(f, A + 8 * PG, buf, (size_t)n);
			for (long off = 0; off < n;) {
				unsigned short reclen;
				memcpy(&reclen, buf + off + 16, 2);
				const char *name = buf + off + 19;
				long num = atol(name);
				if (name[0] != '.') {
					seen++;
					if ((d == 0 && num == listener_tid) || (d == 1 && num >= 1000))
						seen_km++;
				}
				off += reclen;
			}
		}
		assert_int_equal(n, 0);
		assert_int_equal(seen_km, 0);
		assert_true(seen >= 1);
		close((int)fd);
	}
	close(hi);
}

/* maps names a file mapping by its whole path, however long (km's answer used to be cut at 511
 * bytes of a line, losing its end and newline). */
static void test_maps_long_path(void **state)
{
	fx_t *f = *state;
	char path[1200];
	int n = snprintf(path, sizeof(path), "%s/", f->dir);
	for (int i = 0; i < 14; i++) {
		n += snprintf(path + n, sizeof(path) - n, "a-directory-name-long-enough-to-matter-%d/", i);
		assert_true(mkdir(path, 0700) == 0);
	}
	snprintf(path + n, sizeof(path) - n, "mapped-file");
	assert_true(strlen(path) > 520); /* past the old 511-byte line */
	int fd = open(path, O_CREAT | O_RDWR, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, PG), 0);
	assert_int_equal(km_mm_map(&f->g.mm, 0x50000000ul, PG, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0, KM_VMA_FILE,
				   path),
			 0x50000000l);
	close(fd);
	km_pv_t pv = {.verdict = KM_PV_SYNTH, .file = KM_PV_MAPS};
	int m = km_procview_open(&f->g, &pv);
	assert_true(m >= 0);
	static char buf[16384];
	ssize_t got = read(m, buf, sizeof(buf) - 1);
	close(m);
	assert_true(got > 0);
	buf[got] = '\0';
	char want[1300];
	snprintf(want, sizeof(want), " %s\n", path);
	assert_non_null(strstr(buf, "50000000-50001000 r--p"));
	assert_non_null(strstr(buf, want));
	assert_int_equal(buf[got - 1], '\n');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_verdicts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_other_process, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_handlers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_path_calls, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_maps_long_path, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
