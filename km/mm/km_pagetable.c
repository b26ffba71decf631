/* Guest page tables: see km_pagetable.h. */
#include "km_pagetable.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PTE_P (1ull << 0)
#define PTE_RW (1ull << 1)
#define PTE_US (1ull << 2)
#define PTE_A (1ull << 5)
#define PTE_D (1ull << 6)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)
#define PTE_ADDR 0x000ffffffffff000ull
#define PTE_HUGE_ADDR 0x000fffffffe00000ull
#define TABLE_FLAGS (PTE_P | PTE_RW | PTE_US | PTE_A)

#define PAGE 4096ull
#define HUGE (2ull << 20)

static uint64_t *table_at(km_pt_t *pt, uint64_t gpa)
{
	return (uint64_t *)(pt->host + gpa);
}

static uint64_t alloc_table(km_pt_t *pt)
{
	if (pt->nfree > 0) {
		uint64_t gpa = pt->free_pages[--pt->nfree];
		memset(table_at(pt, gpa), 0, PAGE);
		return gpa;
	}
	if (pt->pool_next + PAGE > pt->pool_gpa + pt->pool_size)
		return 0;
	uint64_t gpa = pt->pool_next;
	pt->pool_next += PAGE;
	return gpa; /* never used before: the pool is fresh anonymous memory, already zero */
}

static void free_table(km_pt_t *pt, uint64_t gpa)
{
	if (pt->nfree == pt->free_cap) {
		size_t cap = pt->free_cap ? pt->free_cap * 2 : 64;
		uint64_t *n = realloc(pt->free_pages, cap * sizeof(*n));
		if (n == NULL)
			return; /* leaks one table page of the pool; harmless */
		pt->free_pages = n;
		pt->free_cap = cap;
	}
	pt->free_pages[pt->nfree++] = gpa;
}

static uint64_t leaf_flags(int prot)
{
	if (prot == PROT_NONE)
		return 0;
	uint64_t f = PTE_P | PTE_A | PTE_D | ((prot & KM_PROT_KERNEL) ? 0 : PTE_US);
	if (prot & PROT_WRITE)
		f |= PTE_RW;
	if (!(prot & PROT_EXEC))
		f |= PTE_NX;
	return f;
}

int km_pt_init(km_pt_t *pt, uint8_t *host, uint64_t pool_gpa, uint64_t pool_size)
{
	memset(pt, 0, sizeof(*pt));
	pt->host = host;
	pt->pool_gpa = pt->pool_next = pool_gpa;
	pt->pool_size = pool_size;
	pt->cr3 = alloc_table(pt);
	return pt->cr3 ? 0 : -ENOMEM;
}

/* Index of gva in the table at `level` (4 = PML4 ... 1 = PT). */
static unsigned idx(uint64_t gva, int level)
{
	return (gva >> (12 + 9 * (level - 1))) & 511;
}

/* Next-level table for *e, created when `create`; 0 if absent (or no pool space). */
static uint64_t next_table(km_pt_t *pt, uint64_t *e, bool create)
{
	if (*e & PTE_P)
		return *e & PTE_ADDR;
	if (!create)
		return 0;
	uint64_t t = alloc_table(pt);
	if (t != 0)
		*e = t | TABLE_FLAGS;
	return t;
}

/* The PD entry covering gva, creating PML4/PDPT levels on demand; NULL if absent. */
static uint64_t *pd_entry(km_pt_t *pt, uint64_t gva, bool create)
{
	uint64_t t = pt->cr3;
	for (int level = 4; level > 2; level--) {
		t = next_table(pt, &table_at(pt, t)[idx(gva, level)], create);
		if (t == 0)
			return NULL;
	}
	return &table_at(pt, t)[idx(gva, 2)];
}

/* Turns a 2 MiB mapping into a table of 512 equal 4 KiB mappings. */
static int split_huge(km_pt_t *pt, uint64_t *pde)
{
	uint64_t t = alloc_table(pt);
	if (t == 0)
		return -ENOMEM;
	uint64_t base = *pde & PTE_HUGE_ADDR, flags = *pde & ~PTE_HUGE_ADDR & ~PTE_PS;
	uint64_t *ptes = table_at(pt, t);
	for (unsigned i = 0; i < 512; i++)
		ptes[i] = (base + i * PAGE) | flags;
	*pde = t | TABLE_FLAGS;
	return 0;
}

/* Replaces whatever *pde holds by `val`, returning a table it pointed to to the pool. */
static void set_pde(km_pt_t *pt, uint64_t *pde, uint64_t val)
{
	if ((*pde & PTE_P) && !(*pde & PTE_PS))
		free_table(pt, *pde & PTE_ADDR);
	*pde = val;
}

/* Sets 4 KiB entries for [gva, gva+len) inside one 2 MiB region; val(gpa) = gpa | flags, or 0. */
static int set_small(km_pt_t *pt, uint64_t *pde, uint64_t gva, uint64_t gpa, uint64_t len, uint64_t flags)
{
	if (!(*pde & PTE_P)) {
		if (flags == 0)
			return 0;
		uint64_t t = alloc_table(pt);
		if (t == 0)
			return -ENOMEM;
		*pde = t | TABLE_FLAGS;
	} else if (*pde & PTE_PS) {
		if (split_huge(pt, pde) < 0)
			return -ENOMEM;
	}
	uint64_t *ptes = table_at(pt, *pde & PTE_ADDR);
	for (uint64_t off = 0; off < len; off += PAGE)
		ptes[idx(gva + off, 1)] = flags ? (gpa + off) | flags : 0;
	return 0;
}

static int set_range(km_pt_t *pt, uint64_t gva, uint64_t gpa, uint64_t len, uint64_t flags)
{
	while (len > 0) {
		uint64_t chunk = HUGE - (gva & (HUGE - 1));
		if (chunk > len)
			chunk = len;
		uint64_t *pde = pd_entry(pt, gva, flags != 0);
		if (pde == NULL) {
			if (flags != 0)
				return -ENOMEM;
			/* Nothing mapped here at a higher level: skip the whole 2 MiB region. */
		} else if (chunk == HUGE && (gpa & (HUGE - 1)) == 0) {
			set_pde(pt, pde, flags ? gpa | flags | PTE_PS : 0);
		} else if (set_small(pt, pde, gva, gpa, chunk, flags) < 0) {
			return -ENOMEM;
		}
		gva += chunk;
		gpa += chunk;
		len -= chunk;
	}
	return 0;
}

int km_pt_map(km_pt_t *pt, uint64_t gva, uint64_t gpa, uint64_t len, int prot)
{
	return set_range(pt, gva, gpa, len, leaf_flags(prot));
}

int km_pt_unmap(km_pt_t *pt, uint64_t gva, uint64_t len)
{
	return set_range(pt, gva, 0, len, 0);
}

int64_t km_pt_walk(km_pt_t *pt, uint64_t gva, uint64_t *pte_flags)
{
	uint64_t *pde = pd_entry(pt, gva, false);
	if (pde == NULL || !(*pde & PTE_P))
		return -1;
	if (*pde & PTE_PS) {
		if (pte_flags)
			*pte_flags = *pde & ~PTE_HUGE_ADDR;
		return (int64_t)((*pde & PTE_HUGE_ADDR) + (gva & (HUGE - 1)));
	}
	uint64_t pte = table_at(pt, *pde & PTE_ADDR)[idx(gva, 1)];
	if (!(pte & PTE_P))
		return -1;
	if (pte_flags)
		*pte_flags = pte & ~PTE_ADDR;
	return (int64_t)((pte & PTE_ADDR) + (gva & (PAGE - 1)));
}
