/*
 * The vDSO image km embeds (runtime/vdso/, km_vdso_layout.h) as glibc's and musl's loaders read
 * it, the clock-line arithmetic km and the vDSO share (km_vdso_data.h), and how km redraws a
 * line (km_vdso_next_line, km_vdso.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <elf.h>
#include <stdlib.h>
#include <string.h>

#include "km_vdso.h"
#include "km_vdso_data.h"
#include "km_vdso_layout.h"

extern const uint8_t km_vdso_image_start[], km_vdso_image_end[];

static const uint8_t *img;
static size_t img_len;

static const void *at(uint64_t off, uint64_t len)
{
	assert_true(off <= img_len && len <= img_len - off);
	return img + off;
}

static const Elf64_Shdr *section(uint32_t type)
{
	const Elf64_Ehdr *eh = at(0, sizeof(Elf64_Ehdr));
	for (int i = 0; i < eh->e_shnum; i++) {
		const Elf64_Shdr *sh = at(eh->e_shoff + (uint64_t)i * sizeof(Elf64_Shdr), sizeof(Elf64_Shdr));
		if (sh->sh_type == type)
			return sh;
	}
	return NULL;
}

static int setup(void **state)
{
	(void)state;
	img = km_vdso_image_start;
	img_len = (size_t)(km_vdso_image_end - km_vdso_image_start);
	return 0;
}

/* One read/exec PT_LOAD from offset 0 at address 0 (the file is the image), nothing writable, no
 * relocation (nobody relocates a vDSO), within the room km gives it. */
static void test_image(void **state)
{
	(void)state;
	assert_true(img_len > sizeof(Elf64_Ehdr) && img_len <= KM_VDSO_IMAGE_MAX);
	const Elf64_Ehdr *eh = at(0, sizeof(Elf64_Ehdr));
	assert_memory_equal(eh->e_ident, ELFMAG, SELFMAG);
	assert_int_equal(eh->e_ident[EI_CLASS], ELFCLASS64);
	assert_int_equal(eh->e_type, ET_DYN);
	assert_int_equal(eh->e_machine, EM_X86_64);
	int loads = 0, dyn = 0;
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *ph = at(eh->e_phoff + (uint64_t)i * sizeof(Elf64_Phdr), sizeof(Elf64_Phdr));
		if (ph->p_type == PT_LOAD) {
			loads++;
			assert_int_equal(ph->p_offset, 0);
			assert_int_equal(ph->p_vaddr, 0);
			assert_int_equal(ph->p_flags, PF_R | PF_X);
			assert_true(ph->p_filesz == ph->p_memsz && ph->p_filesz <= img_len);
		}
		if (ph->p_type == PT_DYNAMIC) {
			dyn++;
			for (const Elf64_Dyn *d = at(ph->p_offset, ph->p_filesz); d->d_tag != DT_NULL; d++) {
				assert_true(d->d_tag != DT_RELA && d->d_tag != DT_REL && d->d_tag != DT_JMPREL &&
					    d->d_tag != DT_TEXTREL);
			}
		}
	}
	assert_int_equal(loads, 1);
	assert_int_equal(dyn, 1);
}

/* The name's version, by its .gnu.version index, through .gnu.version_d. */
static const char *version_name(const Elf64_Shdr *verdef, const char *strtab, uint16_t idx)
{
	uint64_t off = verdef->sh_offset;
	for (uint64_t n = 0; n < verdef->sh_info; n++) {
		const Elf64_Verdef *vd = at(off, sizeof(*vd));
		if (vd->vd_ndx == (idx & 0x7fff)) {
			const Elf64_Verdaux *va = at(off + vd->vd_aux, sizeof(*va));
			return strtab + va->vda_name;
		}
		off += vd->vd_next;
	}
	return "";
}

/* Every name glibc and musl look for, at its fixed entry, version LINUX_2.6, a jump there. */
static void test_exports(void **state)
{
	(void)state;
	static const struct {
		const char *name;
		uint64_t off;
	} want[] = {
	    {"__vdso_clock_gettime", KM_VDSO_ENTRY_CLOCK_GETTIME}, {"clock_gettime", KM_VDSO_ENTRY_CLOCK_GETTIME},
	    {"__vdso_gettimeofday", KM_VDSO_ENTRY_GETTIMEOFDAY},   {"gettimeofday", KM_VDSO_ENTRY_GETTIMEOFDAY},
	    {"__vdso_time", KM_VDSO_ENTRY_TIME},                   {"time", KM_VDSO_ENTRY_TIME},
	    {"__vdso_getcpu", KM_VDSO_ENTRY_GETCPU},               {"getcpu", KM_VDSO_ENTRY_GETCPU},
	    {"__vdso_clock_getres", KM_VDSO_ENTRY_CLOCK_GETRES},   {"clock_getres", KM_VDSO_ENTRY_CLOCK_GETRES},
	};
	const Elf64_Shdr *dynsym = section(SHT_DYNSYM), *versym = section(SHT_GNU_versym),
			 *verdef = section(SHT_GNU_verdef);
	assert_non_null(dynsym);
	assert_non_null(versym);
	assert_non_null(verdef);
	assert_non_null(section(SHT_HASH)); /* musl reads DT_HASH or DT_GNU_HASH, glibc either */
	assert_non_null(section(SHT_GNU_HASH));
	const Elf64_Ehdr *eh = at(0, sizeof(Elf64_Ehdr));
	const Elf64_Shdr *strsh = at(eh->e_shoff + (uint64_t)dynsym->sh_link * sizeof(Elf64_Shdr), sizeof(Elf64_Shdr));
	const char *str = at(strsh->sh_offset, strsh->sh_size);
	size_t nsym = dynsym->sh_size / sizeof(Elf64_Sym);
	const Elf64_Sym *syms = at(dynsym->sh_offset, dynsym->sh_size);
	const uint16_t *vers = at(versym->sh_offset, nsym * sizeof(uint16_t));
	for (size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
		size_t i = 0;
		while (i < nsym && strcmp(str + syms[i].st_name, want[w].name) != 0)
			i++;
		assert_true(i < nsym);
		assert_int_equal(syms[i].st_value, want[w].off);
		assert_int_equal(ELF64_ST_TYPE(syms[i].st_info), STT_FUNC);
		assert_string_equal(version_name(verdef, str, vers[i]), "LINUX_2.6");
		const uint8_t *code = at(want[w].off, 16);
		assert_int_equal(code[0], 0xe9); /* jmp rel32: whatever code lies behind it */
	}
}

/* The line: flat before its start, exact over long spans (no 64-bit overflow). */
static void test_line(void **state)
{
	(void)state;
	/* 2.6 GHz: ns per tick 1e6 / 2600000 kHz, 32.32 */
	struct km_vdso_clock c = {.base_ns = 5000000000ull, .mult = (1000000ull << 32) / 2600000};
	assert_int_equal(km_vdso_line(1000, &c, 999), 5000000000ull);
	assert_int_equal(km_vdso_line(1000, &c, 1000), 5000000000ull);
	uint64_t ticks = 2600000000ull * 3600 * 24 * 30; /* a month of ticks */
	uint64_t ns = km_vdso_line(1000, &c, 1000 + ticks) - c.base_ns;
	uint64_t month = 1000000000ull * 3600 * 24 * 30;
	assert_true(ns <= month && month - ns < month / 1000000); /* within 1 ppm (mult's rounding) */
	uint64_t prev = 0;
	for (uint64_t t = 1000; t < 1000 + 100000; t += 7) {
		uint64_t v = km_vdso_line(1000, &c, t);
		assert_true(v >= prev);
		prev = v;
	}
}

/* The seqlock reader: no lines without KM_VDSO_TSC; the clock asked for otherwise. */
static void test_read(void **state)
{
	(void)state;
	struct km_vdso_data d;
	memset(&d, 0, sizeof(d));
	uint64_t ns = 42;
	assert_int_equal(km_vdso_read(&d, KM_VCLK_MONOTONIC, &ns), 0);
	d.flags = KM_VDSO_TSC;
	d.tsc_base = ~0ull; /* every TSC is before it: the base */
	d.clk[KM_VCLK_MONOTONIC] = (struct km_vdso_clock){.base_ns = 123456789, .mult = 1ull << 32};
	d.clk[KM_VCLK_REALTIME] = (struct km_vdso_clock){.base_ns = 987654321, .mult = 1ull << 32};
	assert_int_equal(km_vdso_read(&d, KM_VCLK_MONOTONIC, &ns), 1);
	assert_int_equal(ns, 123456789);
	assert_int_equal(km_vdso_read(&d, KM_VCLK_REALTIME, &ns), 1);
	assert_int_equal(ns, 987654321);
}

/* 2.6 GHz; 100 ms of ticks; a line's value at a TSC. */
#define RATE ((1000000ull << 32) / 2600000)
#define PERIOD_TICKS 260000000ull

/* Whatever the host reads at a redraw (behind, ahead, by a little or a lot), a monotonic line
 * never goes back, across the redraw or along the new line, and steps only forward. */
static void test_next_line_monotonic(void **state)
{
	(void)state;
	static const int64_t gaps[] = {0, 1, -1, 40, -40, 49999, -49999, 50001, -50001, 999999, -999999,
				       1000001, -1000001, 3600000000000ll, -3600000000000ll};
	struct km_vdso_clock old = {.base_ns = 10000000000000000ull, .mult = RATE}; /* 115 days */
	uint64_t old_base = 5000000, t1 = old_base + PERIOD_TICKS;
	uint64_t e = km_vdso_line(old_base, &old, t1);
	for (size_t i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
		uint64_t h = (uint64_t)((int64_t)e + gaps[i]);
		struct km_vdso_clock n = km_vdso_next_line(&old, old_base, false, t1, h, RATE);
		uint64_t start = km_vdso_line(t1, &n, t1);
		assert_true(start >= e);                                 /* never back at the redraw */
		assert_true(start == e || (gaps[i] > 1000000 && start == h)); /* steps only far forward */
		assert_true(n.mult > 0);
		uint64_t prev = start;
		for (uint64_t t = t1; t < t1 + 2 * PERIOD_TICKS; t += PERIOD_TICKS / 64) {
			uint64_t v = km_vdso_line(t1, &n, t);
			assert_true(v >= prev);
			prev = v;
		}
		/* Slewed: one period later it is nearer the host's clock than it started, or on it. */
		uint64_t later = km_vdso_line(t1, &n, t1 + PERIOD_TICKS), host_later = h + 100000000;
		int64_t before = (int64_t)(start - h), after = (int64_t)(later - host_later);
		assert_true(llabs(after) <= llabs(before) + 2); /* 2 ns: the 32.32 rounding */
		if (llabs(before) <= 50000)
			assert_true(llabs(after) <= 2); /* within the slew: met, but for rounding */
	}
}

/* REALTIME follows the host's wall clock when it is set back by more than a step. */
static void test_next_line_wall(void **state)
{
	(void)state;
	struct km_vdso_clock old = {.base_ns = 1700000000000000000ull, .mult = RATE};
	uint64_t old_base = 5000000, t1 = old_base + PERIOD_TICKS;
	uint64_t e = km_vdso_line(old_base, &old, t1);
	struct km_vdso_clock n = km_vdso_next_line(&old, old_base, true, t1, e - 3600000000000ull, RATE);
	assert_int_equal(km_vdso_line(t1, &n, t1), e - 3600000000000ull);
	n = km_vdso_next_line(&old, old_base, true, t1, e - 500, RATE); /* small: slewed, not stepped */
	assert_int_equal(km_vdso_line(t1, &n, t1), e);
	assert_true(n.mult < RATE);
	n = km_vdso_next_line(NULL, 0, true, t1, 42, RATE); /* no old line: the host's value */
	assert_int_equal(km_vdso_line(t1, &n, t1), 42);
	assert_int_equal(n.mult, RATE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_image),
		cmocka_unit_test(test_exports),
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_next_line_monotonic),
		cmocka_unit_test(test_next_line_wall),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
