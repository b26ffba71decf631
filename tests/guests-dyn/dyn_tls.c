/*
 * TLS of a shared library (initial-exec and global-dynamic models) in the main thread and in
 * new threads, and an IFUNC resolved by the dynamic linker (libdyntls.so). Also checks the
 * auxiliary vector a dynamically linked program gets: AT_BASE is the interpreter's load address
 * and AT_ENTRY the program's entry (tests/e2e/dynlink.sh).
 */
#include <elf.h>
#include <link.h>
#include <pthread.h>
#include <sys/auxv.h>

#include "../guests/check.h"

extern __thread long dyn_tls_gd;
extern __thread long dyn_tls_ie;
long dyn_tls_bump(long by);
long *dyn_tls_gd_addr(void);
int dyn_tls_zeroed(void);
int dyn_mul3(int x);
int dyn_ifunc_resolved(void);
extern void _start(void);

static void *thread_main(void *arg)
{
	long id = (long)arg;
	long *ok = calloc(1, sizeof(long));
	*ok = dyn_tls_gd == 100 && dyn_tls_ie == 200 && dyn_tls_zeroed() && dyn_tls_gd_addr() == &dyn_tls_gd;
	for (int i = 0; i < 1000; i++)
		dyn_tls_bump(id);
	*ok = *ok && dyn_tls_gd == 100 + 1000 * id && dyn_tls_ie == 200 + 2000 * id;
	return ok;
}

/* Where the dynamic linker itself is mapped, from its link map entry. */
static int find_ldso(struct dl_phdr_info *info, size_t size, void *data)
{
	(void)size;
	if (strstr(info->dlpi_name, "ld-linux") != NULL)
		*(uint64_t *)data = info->dlpi_addr;
	return 0;
}

int main(void)
{
	CHECK(dyn_tls_gd == 100 && dyn_tls_ie == 200, "initial TLS values of the library");
	CHECK(dyn_tls_zeroed(), "library .tbss zero in the main thread");
	CHECK(dyn_tls_bump(5) == 105 + 210, "library TLS written through the library");
	dyn_tls_ie = 1;
	CHECK(dyn_tls_bump(0) == 105 + 1, "library initial-exec TLS written from the program");
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, thread_main, (void *)(i + 1));
	int all = 1;
	for (int i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		all = all && *(long *)r;
		free(r);
	}
	CHECK(all, "each of 4 threads has its own copy of the library's TLS");
	CHECK(dyn_tls_gd == 105 && dyn_tls_ie == 1, "main thread's library TLS untouched by the threads");
	int m = dyn_mul3(14); /* lazily bound: the resolver runs at the first call at the latest */
	CHECK(m == 42 && dyn_ifunc_resolved(), "IFUNC resolved by the dynamic linker");
	uint64_t ldso = 0;
	dl_iterate_phdr(find_ldso, &ldso);
	CHECK(getauxval(AT_BASE) != 0 && getauxval(AT_BASE) == ldso, "AT_BASE is where the interpreter is");
	CHECK(getauxval(AT_ENTRY) == (uint64_t)(uintptr_t)_start, "AT_ENTRY is the program's entry");
	CHECK(getauxval(AT_PHDR) != 0 && getauxval(AT_PHNUM) > 0 && getauxval(AT_PHENT) == sizeof(ElfW(Phdr)),
	      "AT_PHDR/AT_PHNUM/AT_PHENT describe the program");
	CHECK(getauxval(AT_SECURE) == 0, "AT_SECURE is 0");
	return check_done();
}
