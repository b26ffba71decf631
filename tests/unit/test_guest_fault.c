/* km_guest_fault: guarded accesses turn faults on guest memory into -EFAULT, and only those. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "km_guest_fault.h"
#include "km_mm.h"

#define P 4096ul

/* Two pages of a file, MAP_SHARED; the file is then cut to `keep` bytes, so every page past
 * that is SIGBUS to touch. */
static uint8_t *truncated_map(size_t keep)
{
	char name[] = "/tmp/km-test-fault.XXXXXX";
	int fd = mkstemp(name);
	assert_true(fd >= 0);
	unlink(name);
	assert_int_equal(ftruncate(fd, 2 * P), 0);
	uint8_t *m = mmap(NULL, 2 * P, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(m != MAP_FAILED);
	memset(m, 'x', 2 * P);
	assert_int_equal(ftruncate(fd, (off_t)keep), 0);
	close(fd);
	return m;
}

/* cmocka puts its own SIGBUS/SIGSEGV handlers in place around every test function: each test
 * puts km's back first (installed in main, before cmocka's, so what km falls back to is the
 * default action). */
static struct sigaction km_bus, km_segv;

static void use_km_handler(void)
{
	sigaction(SIGBUS, &km_bus, NULL);
	sigaction(SIGSEGV, &km_segv, NULL);
}

static void test_copy_from_bad_page(void **state)
{
	(void)state;
	use_km_handler();
	uint8_t *m = truncated_map(P);
	uint8_t buf[32];
	memset(buf, 0, sizeof(buf));
	assert_int_equal(km_guest_memcpy(buf, m + P - 16, 32, m, 2 * P), -EFAULT);
	/* What came before the bad page was copied (memcpy may copy in any order: only check
	 * that a fault left km alive and the good page readable). */
	assert_int_equal(km_guest_memcpy(buf, m, 16, m, 2 * P), 0);
	assert_int_equal(buf[0], 'x');
	/* Again: the handler must not have left SIGBUS blocked. */
	assert_int_equal(km_guest_memcpy(buf, m + P, 1, m, 2 * P), -EFAULT);
	munmap(m, 2 * P);
}

static void test_copy_to_bad_page(void **state)
{
	(void)state;
	use_km_handler();
	uint8_t *m = truncated_map(0);
	uint8_t buf[8] = "abcdefg";
	assert_int_equal(km_guest_memcpy(m + 8, buf, sizeof(buf), m, 2 * P), -EFAULT);
	assert_int_equal(km_guest_memcpy(m + P, buf, sizeof(buf), m, 2 * P), -EFAULT);
	munmap(m, 2 * P);
}

static void test_is_zero(void **state)
{
	(void)state;
	use_km_handler();
	uint8_t *m = truncated_map(P);
	bool zero = true;
	assert_int_equal(km_guest_is_zero(m, P, &zero), 0);
	assert_false(zero);
	memset(m, 0, P);
	assert_int_equal(km_guest_is_zero(m, P, &zero), 0);
	assert_true(zero);
	m[P - 1] = 1; /* the last byte counts too */
	assert_int_equal(km_guest_is_zero(m, P, &zero), 0);
	assert_false(zero);
	zero = true;
	assert_int_equal(km_guest_is_zero(m + P, P, &zero), -EFAULT);
	assert_true(zero); /* untouched */
	munmap(m, 2 * P);
}

typedef struct nested {
	uint8_t *m;
	int inner;
} nested_t;

static void inner_copy(void *arg)
{
	nested_t *n = arg;
	uint8_t b;
	/* The inner guard covers the good page only; the fault is the outer guard's. */
	n->inner = km_guest_memcpy(&b, n->m + P, 1, n->m, P);
}

static void test_nested(void **state)
{
	(void)state;
	use_km_handler();
	nested_t n = {truncated_map(P), 12345};
	assert_int_equal(km_guest_fault_run(n.m, 2 * P, inner_copy, &n), -EFAULT);
	assert_int_equal(n.inner, 12345); /* the inner copy never returned */
	/* After the jump the guards are gone: a good copy works, a bad one is caught again. */
	uint8_t b;
	assert_int_equal(km_guest_memcpy(&b, n.m, 1, n.m, 2 * P), 0);
	assert_int_equal(km_guest_memcpy(&b, n.m + P, 1, n.m, 2 * P), -EFAULT);
	munmap(n.m, 2 * P);
}

#ifdef __SANITIZE_ADDRESS__
#define ASAN_DEATH (-1)
#define DIES_OF(sig) ASAN_DEATH
#else
#define DIES_OF(sig) (sig)
#endif

/* Runs fn in a child; returns the signal that killed it (under ASan: ASAN_DEATH), or 0. */
static int child_signal(void (*fn)(void))
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit no_core = {0, 0};
		setrlimit(RLIMIT_CORE, &no_core);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 2); /* the sanitizer's report of an expected death is noise */
		fn();
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
#ifdef __SANITIZE_ADDRESS__
	/* Under ASan, what km falls back to is ASan's handler: a report and exit status 1. */
	if (WIFEXITED(st) && WEXITSTATUS(st) == 1)
		return ASAN_DEATH;
#endif
	return WIFSIGNALED(st) ? WTERMSIG(st) : 0;
}

static void fault_outside_range(void)
{
	uint8_t *m = truncated_map(P);
	uint8_t b;
	km_guest_memcpy(&b, m + P, 1, m, P); /* the bad page is not in the guarded range */
}

static void fault_unguarded(void)
{
	uint8_t *m = truncated_map(P);
	*(volatile uint8_t *)(m + P) = 1;
}

static void do_raise(void *arg)
{
	(void)arg;
	raise(SIGSEGV);
}

static void sent_signal(void)
{
	/* A signal someone sends is no fault of the guarded access, whatever the range. */
	km_guest_fault_run(NULL, SIZE_MAX, do_raise, NULL);
}

static void test_other_faults_still_kill(void **state)
{
	(void)state;
	use_km_handler();
	/* The child inherits km's handler: it must pass these on. */
	assert_int_equal(child_signal(fault_outside_range), DIES_OF(SIGBUS));
	assert_int_equal(child_signal(fault_unguarded), DIES_OF(SIGBUS));
	assert_int_equal(child_signal(sent_signal), DIES_OF(SIGSEGV));
}

/* Through the address space: a guest file mapping whose file was cut is EFAULT for km's copies. */
static void test_guest_copy(void **state)
{
	(void)state;
	use_km_handler();
	km_mm_t mm;
	km_err_t *err = NULL;
	assert_int_equal(km_mm_init(&mm, 64ul << 20, 46, &err), 0);
	char name[] = "/tmp/km-test-fault.XXXXXX";
	int fd = mkstemp(name);
	assert_true(fd >= 0);
	unlink(name);
	assert_int_equal(ftruncate(fd, 2 * P), 0);
	uint64_t at = 0x10000000;
	assert_int_equal(km_mm_map(&mm, at, 2 * P, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0,
				   KM_VMA_FILE, NULL),
			 (int64_t)at);
	uint8_t buf[16] = "0123456789abcde";
	assert_int_equal(km_copy_to_guest(&mm, at + P, buf, sizeof(buf)), 0);
	assert_int_equal(ftruncate(fd, P), 0);
	assert_int_equal(km_copy_to_guest(&mm, at, buf, sizeof(buf)), 0);
	assert_int_equal(km_copy_to_guest(&mm, at + P, buf, sizeof(buf)), -EFAULT);
	assert_int_equal(km_copy_from_guest(&mm, buf, at + P - 8, sizeof(buf)), -EFAULT);
	assert_int_equal(km_copy_from_guest(&mm, buf, at, sizeof(buf)), 0);
	assert_memory_equal(buf, "0123456789abcde", sizeof(buf));
	close(fd);
	km_mm_fini(&mm);
}

#define T(f) cmocka_unit_test(f)

int main(void)
{
	km_err_t *err = NULL;
	if (km_guest_fault_init(&err) < 0 || sigaction(SIGBUS, NULL, &km_bus) < 0 ||
	    sigaction(SIGSEGV, NULL, &km_segv) < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    T(test_copy_from_bad_page), T(test_copy_to_bad_page), T(test_is_zero),
	    T(test_nested),		T(test_other_faults_still_kill), T(test_guest_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
