/*
 * A guest for unit-testing syscall handlers without a VM: a real km_mm_t with a fixed layout, a
 * vCPU that is only a struct, a temporary directory, and helpers that move data in and out of
 * guest memory and call a family's handlers the way the dispatcher does.
 *
 * Layout: A = 16 read/write pages; B and B+PG are adjacent guest pages whose host memory is not
 * adjacent (a buffer there becomes two host pieces); RO = a read-only page; HOLE = unmapped.
 * Include after <cmocka.h>.
 */
#ifndef KM_TEST_GUEST_FIXTURE_H
#define KM_TEST_GUEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_syscall.h"

#define PG 4096ul
#define A 0x10000000ul
#define B 0x20000000ul
#define B_SPACER 0x28000000ul
#define RO 0x30000000ul
#define HOLE 0x40000000ul

typedef struct fx {
	km_guest_t g;
	km_vcpu_t v;
	const km_sys_def_t *defs; /* the family under test */
	char dir[64];             /* a fresh temporary directory */
} fx_t;

static int map_at(fx_t *f, uint64_t at, size_t len, int prot)
{
	int64_t r = km_mm_map(&f->g.mm, at, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0,
			      KM_VMA_ANON, NULL);
	return r == (int64_t)at ? 0 : -1;
}

static __attribute__((unused)) int fx_setup(void **state, const km_sys_def_t *defs)
{
	fx_t *f = calloc(1, sizeof(*f));
	km_err_t *err = NULL;
	if (f == NULL || km_mm_init(&f->g.mm, 64ul << 20, 46, &err) < 0)
		return -1;
	f->defs = defs;
	f->g.pid = getpid();
	f->g.exe_path = strdup("/opt/app/prog");
	f->v.g = &f->g;
	/* The spacer takes the guest-physical pages after B's, so B+PG gets host memory elsewhere. */
	if (map_at(f, A, 16 * PG, PROT_READ | PROT_WRITE) < 0 ||
	    map_at(f, B, PG, PROT_READ | PROT_WRITE) < 0 ||
	    map_at(f, B_SPACER, PG, PROT_READ | PROT_WRITE) < 0 ||
	    map_at(f, B + PG, PG, PROT_READ | PROT_WRITE) < 0 || map_at(f, RO, PG, PROT_READ) < 0)
		return -1;
	strcpy(f->dir, "/tmp/km-test-fx.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	*state = f;
	return 0;
}

static __attribute__((unused)) int fx_teardown(void **state)
{
	fx_t *f = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	km_mm_fini(&f->g.mm);
	free(f->g.exe_path);
	free(f);
	return 0;
}

static __attribute__((unused)) void *hva(fx_t *f, uint64_t gva)
{
	return km_gva_to_hva(&f->g.mm, gva, 0, KM_ACC_READ);
}

static void gput(fx_t *f, uint64_t gva, const void *p, size_t n)
{
	assert_int_equal(km_copy_to_guest(&f->g.mm, gva, p, n), 0);
}

static void gget(fx_t *f, uint64_t gva, void *p, size_t n)
{
	assert_int_equal(km_copy_from_guest(&f->g.mm, p, gva, n), 0);
}

static __attribute__((unused)) uint64_t gstr(fx_t *f, uint64_t gva, const char *s)
{
	gput(f, gva, s, strlen(s) + 1);
	return gva;
}

static __attribute__((unused)) int gint(fx_t *f, uint64_t gva)
{
	int x;
	gget(f, gva, &x, sizeof(x));
	return x;
}

/* Calls the handler for `nr` from the family under test, as the dispatcher would. */
static __attribute__((unused)) long sys(fx_t *f, int nr, const uint64_t *a)
{
	for (const km_sys_def_t *d = f->defs; d->name != NULL; d++)
		if (d->nr == nr)
			return d->fn(&f->v, a);
	fail_msg("no handler for syscall %d", nr);
	return 0;
}

#define SYS(nr, ...) sys(f, nr, (const uint64_t[6]){__VA_ARGS__})

#endif
