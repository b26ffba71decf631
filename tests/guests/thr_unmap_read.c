/*
 * Memory unmapped while another thread's read() waits to fill it (km defers reusing freed guest
 * memory while a syscall that started before the munmap is in flight: the read may still write
 * into what was the buffer, and that must never show up in memory mapped afterwards).
 *
 * A thread blocks in read() on a pipe into a 1 MiB mapping; the main thread unmaps it and maps
 * new memory of the same size, fills nothing, then writes into the pipe. Natively the read fails
 * (EFAULT: nothing is mapped there) or lands in the new mapping if it got the same address; under
 * km the late write goes to memory nobody maps. Either way a fresh mapping made after the read
 * returned must read as zeros, and so must every page of the mapping made before it that did not
 * get the same address as the buffer.
 */
// E2E: run 0
#include <pthread.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "check.h"

#define SZ (1u << 20)

static int p[2];
static char *buf;

static void *reader(void *arg)
{
	(void)arg;
	long r = read(p[0], buf, SZ);
	(void)r; /* EFAULT natively, the count under km: both are fine */
	return NULL;
}

static bool all_zero(const char *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (m[i] != 0)
			return false;
	return true;
}

int main(void)
{
	CHECK_SYS(pipe(p), "pipe");
	for (int round = 0; round < 20; round++) {
		buf = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		pthread_t t;
		pthread_create(&t, NULL, reader, NULL);
		usleep(20000); /* the reader is blocked in read() by now (a longer wait only makes it surer) */
		char *old = buf;
		munmap(buf, SZ);
		/* Elsewhere in the address space (so natively nothing can receive the read), but
		 * under km the first guest-physical memory free: the buffer's, unless km holds it. */
		char *fresh = mmap((void *)(0x300000000000ul + (unsigned long)round * SZ), SZ, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
		if (fresh == MAP_FAILED)
			fresh = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		static char data[4096];
		memset(data, 'X', sizeof(data));
		if (write(p[1], data, sizeof(data)) != (ssize_t)sizeof(data))
			return 1;
		pthread_join(t, NULL);
		/* Natively a mapping at the buffer's old address may legitimately have received it. */
		if (fresh != old && !all_zero(fresh, SZ)) {
			CHECK(0, "round %d: a mapping made after the munmap got the late read's bytes", round);
			break;
		}
		char *later = mmap(NULL, SZ, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (!all_zero(later, SZ)) {
			CHECK(0, "round %d: a mapping made after the read returned is not zero", round);
			break;
		}
		munmap(fresh, SZ);
		munmap(later, SZ);
	}
	CHECK(1, "no late write reached memory mapped after the munmap");
	return check_done();
}
