/*
 * The two ways to freeze a copy-on-write view of N MiB of touched memory and let the program run
 * on (issue 11, live snapshots; docs/decisions.md entry 17), measured natively:
 *   fork:  the pause is fork() itself (page tables copied, every page made copy-on-write); each
 *          first write afterwards copies one page in the kernel. With 4 KiB pages and with THP.
 *   uffd:  the pause is UFFDIO_WRITEPROTECT over the range (registered with
 *          UFFDIO_REGISTER_MODE_WP); each first write afterwards faults to a handler thread that
 *          copies the page aside and lifts the protection (QEMU's background snapshot).
 * Prints one line per way: `live_floor: way=W mib=N pause_ns=P write_ns=F pages=K`, where
 * write_ns is the median cost of one first write to a page during the save (K pages, spread
 * over the range), measured by the writing thread.
 * Usage: live_floor [MiB] (default 1024).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define SAMPLES 2048

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static uint8_t *touched(size_t len, int advice)
{
	/* 2 MiB-aligned, as km's reservation is, so THP can back all of it. */
	uint8_t *raw = mmap(NULL, len + (2ul << 20), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED) {
		perror("live_floor: mmap");
		exit(1);
	}
	uint8_t *p = (uint8_t *)(((uintptr_t)raw + (2ul << 20) - 1) & ~((2ul << 20) - 1));
	if (madvise(p, len, advice) < 0) {
		perror("live_floor: madvise");
		exit(1);
	}
	for (size_t i = 0; i < len; i += PAGE)
		p[i] = (uint8_t)(i / PAGE + 1);
	return p;
}

/* The median time of one first write, on SAMPLES pages spread over the range. */
static uint64_t first_writes(uint8_t *p, size_t len)
{
	static uint64_t t[SAMPLES];
	size_t stride = (len / PAGE / SAMPLES) * PAGE;
	for (size_t i = 0; i < SAMPLES; i++) {
		volatile uint8_t *q = p + i * stride + 64;
		uint64_t a = now_ns();
		*q = (uint8_t)(*q + 1);
		t[i] = now_ns() - a;
	}
	qsort(t, SAMPLES, sizeof(t[0]), cmp_u64);
	return t[SAMPLES / 2];
}

static void way_fork(const char *name, size_t mib, int advice)
{
	size_t len = mib << 20;
	uint8_t *p = touched(len, advice);
	int go[2];
	if (pipe(go) < 0) {
		perror("live_floor: pipe");
		exit(1);
	}
	uint64_t a = now_ns();
	pid_t pid = fork();
	if (pid == 0) { /* the writer: holds the frozen view until told to go */
		char c;
		close(go[1]);
		while (read(go[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	uint64_t pause = now_ns() - a;
	if (pid < 0) {
		perror("live_floor: fork");
		exit(1);
	}
	uint64_t w = first_writes(p, len);
	close(go[1]);
	close(go[0]);
	waitpid(pid, NULL, 0);
	printf("live_floor: way=%s mib=%zu pause_ns=%lu write_ns=%lu pages=%d\n", name, mib, (unsigned long)pause,
	       (unsigned long)w, SAMPLES);
	munmap(p, len);
}

typedef struct uffd_ctx {
	int fd;
	uint8_t *side; /* where the frozen pages are copied */
	uint8_t *base;
	volatile int stop;
} uffd_ctx_t;

static void *uffd_handler(void *arg)
{
	uffd_ctx_t *c = arg;
	while (!c->stop) {
		struct pollfd pf = {c->fd, POLLIN, 0};
		if (poll(&pf, 1, 50) <= 0)
			continue;
		struct uffd_msg m;
		if (read(c->fd, &m, sizeof(m)) != sizeof(m) || m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t at = m.arg.pagefault.address & ~(PAGE - 1);
		memcpy(c->side + (at - (uint64_t)c->base), (void *)at, PAGE);
		struct uffdio_writeprotect wp = {.range = {at, PAGE}, .mode = 0};
		if (ioctl(c->fd, UFFDIO_WRITEPROTECT, &wp) < 0)
			perror("live_floor: UFFDIO_WRITEPROTECT (lift)");
	}
	return NULL;
}

static void way_uffd(const char *name, size_t mib, int advice)
{
	size_t len = mib << 20;
	uint8_t *p = touched(len, advice);
	uffd_ctx_t c = {.base = p};
	c.fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (c.fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		c.fd = dev < 0 ? -1 : ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	}
	struct uffdio_api api = {.api = UFFD_API, .features = UFFD_FEATURE_PAGEFAULT_FLAG_WP};
	struct uffdio_register reg = {.range = {(uint64_t)p, len}, .mode = UFFDIO_REGISTER_MODE_WP};
	if (c.fd < 0 || ioctl(c.fd, UFFDIO_API, &api) < 0 || ioctl(c.fd, UFFDIO_REGISTER, &reg) < 0) {
		printf("live_floor: way=%s mib=%zu unavailable: %s\n", name, mib, strerror(errno));
		munmap(p, len);
		return;
	}
	c.side = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	pthread_t th;
	pthread_create(&th, NULL, uffd_handler, &c);
	uint64_t a = now_ns();
	struct uffdio_writeprotect wp = {.range = {(uint64_t)p, len}, .mode = UFFDIO_WRITEPROTECT_MODE_WP};
	int rc = ioctl(c.fd, UFFDIO_WRITEPROTECT, &wp);
	uint64_t pause = now_ns() - a;
	if (rc < 0) {
		printf("live_floor: way=%s mib=%zu unavailable: WRITEPROTECT: %s\n", name, mib, strerror(errno));
	} else {
		uint64_t w = first_writes(p, len);
		printf("live_floor: way=%s mib=%zu pause_ns=%lu write_ns=%lu pages=%d\n", name, mib,
		       (unsigned long)pause, (unsigned long)w, SAMPLES);
	}
	c.stop = 1;
	pthread_join(th, NULL);
	close(c.fd);
	munmap(c.side, len);
	munmap(p, len);
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 1024;
	if (mib < 16)
		mib = 16;
	setvbuf(stdout, NULL, _IOLBF, 0);
	way_fork("fork-4k", mib, MADV_NOHUGEPAGE);
	way_fork("fork-thp", mib, MADV_HUGEPAGE);
	way_uffd("uffd-4k", mib, MADV_NOHUGEPAGE);
	way_uffd("uffd-thp", mib, MADV_HUGEPAGE);
	return 0;
}
