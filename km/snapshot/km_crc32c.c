/* CRC32C: see km_crc32c.h. */
#include "km_crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#define POLY 0x82f63b78u

/* Software fallback, one byte at a time: for CPUs without SSE4.2 only. */
static uint32_t sw_table[256];

static void sw_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		sw_table[i] = c;
	}
}

static uint32_t sw_update(uint32_t reg, const uint8_t *p, size_t len)
{
	while (len--)
		reg = (reg >> 8) ^ sw_table[(reg ^ *p++) & 0xff];
	return reg;
}

__attribute__((target("sse4.2"))) static uint32_t hw_update(uint32_t reg, const uint8_t *p, size_t len)
{
	uint64_t r = reg;
	for (; len >= 8; p += 8, len -= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		r = __builtin_ia32_crc32di(r, w);
	}
	uint32_t r32 = (uint32_t)r;
	for (; len > 0; p++, len--)
		r32 = __builtin_ia32_crc32qi(r32, *p);
	return r32;
}

/* Appending a zero byte to the CRC register is linear over GF(2): a 32x32 bit matrix, kept as
 * 32 columns. Appending 2^k zero bytes is that matrix squared k times. */
static uint32_t mat_times(const uint32_t m[32], uint32_t v)
{
	uint32_t r = 0;
	for (int i = 0; v != 0; i++, v >>= 1)
		if (v & 1)
			r ^= m[i];
	return r;
}

static void mat_square(uint32_t dst[32], const uint32_t src[32])
{
	for (int i = 0; i < 32; i++)
		dst[i] = mat_times(src, src[i]);
}

/* The crc32 instruction takes 3 cycles but can start every cycle: three independent streams
 * over three lanes of a block run about 3 times as fast as one, and are joined by shifting the
 * first lane's register over 2 lanes of zeros and the second's over one (the register update is
 * linear: reg(r, A||B) = shift_|B|(reg(r, A)) ^ reg(0, B)). LANE: 3 lanes and 16 bytes are a
 * 4 KiB page. */
#define LANE 1360
static uint32_t shift1[4][256], shift2[4][256]; /* LANE and 2*LANE zero bytes, a byte at a time */

static uint32_t apply(const uint32_t t[4][256], uint32_t v)
{
	return t[0][v & 0xff] ^ t[1][(v >> 8) & 0xff] ^ t[2][(v >> 16) & 0xff] ^ t[3][v >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t hw_update3(uint32_t reg, const uint8_t *p, size_t len)
{
	for (; len >= 3 * LANE; p += 3 * LANE, len -= 3 * LANE) {
		uint64_t a = reg, b = 0, c = 0;
		for (size_t i = 0; i < LANE; i += 8) {
			uint64_t wa, wb, wc;
			memcpy(&wa, p + i, 8);
			memcpy(&wb, p + LANE + i, 8);
			memcpy(&wc, p + 2 * LANE + i, 8);
			a = __builtin_ia32_crc32di(a, wa);
			b = __builtin_ia32_crc32di(b, wb);
			c = __builtin_ia32_crc32di(c, wc);
		}
		reg = apply(shift2, (uint32_t)a) ^ apply(shift1, (uint32_t)b) ^ (uint32_t)c;
	}
	return hw_update(reg, p, len);
}

static uint32_t zero_pow[64][32]; /* [k]: the operator for 2^k zero bytes */
static pthread_once_t zero_once = PTHREAD_ONCE_INIT;
static bool zero_ready; /* set (release) once zero_pow is filled: later calls take no lock */

static void zero_pow_init(void)
{
	uint32_t bit[32], two[32], four[32];
	bit[0] = POLY; /* one zero bit: shift right, fold in the polynomial when bit 0 was set */
	for (int i = 1; i < 32; i++)
		bit[i] = 1u << (i - 1);
	mat_square(two, bit);
	mat_square(four, two);
	mat_square(zero_pow[0], four); /* 8 bits: one byte */
	for (int k = 1; k < 64; k++)
		mat_square(zero_pow[k], zero_pow[k - 1]);
	__atomic_store_n(&zero_ready, true, __ATOMIC_RELEASE);
}

/* The register after n zero bytes (raw: no inversions). */
static uint32_t shift_zeros(uint32_t reg, uint64_t n)
{
	if (!__atomic_load_n(&zero_ready, __ATOMIC_ACQUIRE))
		pthread_once(&zero_once, zero_pow_init);
	for (int k = 0; n != 0; k++, n >>= 1)
		if (n & 1)
			reg = mat_times(zero_pow[k], reg);
	return reg;
}

uint32_t km_crc32c_zeros(uint32_t crc, uint64_t n)
{
	return ~shift_zeros(~crc, n);
}

static bool have_sse42;
static pthread_once_t hw_once = PTHREAD_ONCE_INIT;
static bool hw_ready; /* set (release) once the choice and tables are made */

/* Operator m (32 columns) as 4 tables of 256, one per byte of the register. */
static void fill_table(uint32_t t[4][256], const uint32_t m[32])
{
	for (int k = 0; k < 4; k++) {
		t[k][0] = 0;
		for (uint32_t b = 1; b < 256; b++)
			t[k][b] = t[k][b & (b - 1)] ^ m[8 * k + __builtin_ctz(b)];
	}
}

/* The instruction itself shifts a register over a lane of zeros; the 2-lane shift is that
 * squared. About 10 us, paid by the first CRC (a resume checks the headers' at once). */
static void lane_tables(void)
{
	static const uint8_t zero_lane[LANE];
	uint32_t m1[32], m2[32];
	for (int i = 0; i < 32; i++)
		m1[i] = hw_update(1u << i, zero_lane, LANE);
	for (int i = 0; i < 32; i++)
		m2[i] = mat_times(m1, m1[i]);
	fill_table(shift1, m1);
	fill_table(shift2, m2);
}

static void hw_init(void)
{
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
	if (have_sse42) {
		lane_tables();
	} else {
		sw_init();
	}
	__atomic_store_n(&hw_ready, true, __ATOMIC_RELEASE);
}

void km_crc32c_init(void)
{
	pthread_once(&hw_once, hw_init);
	pthread_once(&zero_once, zero_pow_init);
}

uint32_t km_crc32c(uint32_t crc, const void *buf, size_t len)
{
	if (!__atomic_load_n(&hw_ready, __ATOMIC_ACQUIRE))
		pthread_once(&hw_once, hw_init);
	uint32_t reg = ~crc;
	reg = have_sse42 ? hw_update3(reg, buf, len) : sw_update(reg, buf, len);
	return ~reg;
}
