/*
 * Hostile guest: a CLONE_VM|CLONE_VFORK child's writes are copied back into its parent when it
 * ends (km_vfork_wb.h); that must give the child no more than sharing the parent's memory
 * would, and nothing of km's. The child cannot reach the pipe its km sends through (km's fds,
 * 1000 up); it writes a page it made writable with mprotect (the parent's stays read-only and
 * unchanged), maps new memory and writes it (the parent gets no mapping there), unmaps a buffer
 * and maps another over the same address (the parent's buffer is not overwritten with it), and
 * writes many pages (all of them arrive, the parent's other memory intact). The stream's own
 * checks against crafted records are tests/unit/test_vfork_wb.c.
 */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#define KM_FDS 1000
#define P 4096ul
#define MANY (2048 * P)

struct job {
	char *ro;          /* a read-only page of the parent's */
	char *fresh_at;    /* where the child maps new memory (unmapped in the parent) */
	char *reused;      /* a parent buffer the child unmaps and maps anew */
	char *many;        /* MANY bytes the child fills */
	int km_fd_hits;    /* km fds the child could use */
};

static int child(void *arg)
{
	struct job *j = arg;
	for (int fd = KM_FDS; fd < KM_FDS + 64; fd++) {
		char c = 'x';
		if (fcntl(fd, F_GETFD) >= 0 || write(fd, &c, 1) >= 0)
			j->km_fd_hits++;
	}
	if (mprotect(j->ro, P, PROT_READ | PROT_WRITE) == 0)
		j->ro[0] = 'W';
	char *m = mmap(j->fresh_at, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (m != MAP_FAILED)
		memset(m, 'F', P);
	munmap(j->reused, P);
	m = mmap(j->reused, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (m != MAP_FAILED)
		memset(m, 'R', P);
	for (size_t i = 0; i < MANY; i += P)
		memset(j->many + i, (int)(i / P) & 0x7f, P);
	syscall(SYS_exit_group, 0);
	return 0;
}

/* 1 if addr is mapped in this process (write() of one byte from it does not fail with EFAULT). */
static int mapped(const void *addr)
{
	int fd = open("/dev/null", O_WRONLY);
	int r = (int)write(fd, addr, 1);
	close(fd);
	return r == 1;
}

int main(void)
{
	static struct job j;
	j.ro = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	j.fresh_at = mmap(NULL, P, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	j.reused = mmap(NULL, P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	j.many = mmap(NULL, MANY, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *stack = mmap(NULL, 256 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (j.ro == MAP_FAILED || j.fresh_at == MAP_FAILED || j.reused == MAP_FAILED || j.many == MAP_FAILED ||
	    stack == MAP_FAILED)
		return 2;
	memset(j.ro, 'o', P);
	mprotect(j.ro, P, PROT_READ);
	munmap(j.fresh_at, P);
	memset(j.reused, 'u', P);
	memset(j.many, 0xff, MANY);

	pid_t pid = clone(child, stack + (256 << 10), CLONE_VM | CLONE_VFORK | SIGCHLD, &j);
	CHECK(pid > 0, "clone(CLONE_VM|CLONE_VFORK)");
	int st = 0;
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child exits 0");
	CHECK(j.km_fd_hits == 0, "the child reaches none of km's fds (%d)", j.km_fd_hits);
	CHECK(j.ro[0] == 'o', "a page read-only in the parent is unchanged");
	CHECK(!mapped(j.fresh_at), "memory the child mapped is not mapped in the parent");
	int reused_ok = 1;
	for (size_t i = 0; i < P; i++)
		reused_ok &= j.reused[i] == 'u' || j.reused[i] == 'R';
	CHECK(reused_ok, "a buffer the child mapped anew holds the parent's bytes or the child's, nothing else");
	size_t bad = 0;
	for (size_t i = 0; i < MANY; i++)
		bad += (unsigned char)j.many[i] != ((i / P) & 0x7f);
	CHECK(bad == 0, "2048 pages written by the child all arrive (%zu bytes differ)", bad);
	CHECK(mprotect(j.ro, P, PROT_READ | PROT_WRITE) == 0 && (j.ro[0] = 'n') == 'n', "the parent goes on");
	return check_done();
}
