/*
 * The futex operation numbers and flags of <linux/futex.h>, which musl-gcc cannot see (it has
 * no kernel headers), for the thread test guests, and a raw futex() call.
 */
#ifndef KM_TEST_FUTEX_OPS_H
#define KM_TEST_FUTEX_OPS_H

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FUTEX_WAIT 0
#define FUTEX_WAKE 1
#define FUTEX_REQUEUE 3
#define FUTEX_CMP_REQUEUE 4
#define FUTEX_WAKE_OP 5
#define FUTEX_LOCK_PI 6
#define FUTEX_UNLOCK_PI 7
#define FUTEX_TRYLOCK_PI 8
#define FUTEX_WAIT_BITSET 9
#define FUTEX_WAKE_BITSET 10
#define FUTEX_PRIVATE_FLAG 128
#define FUTEX_CLOCK_REALTIME 256
#define FUTEX_WAIT_PRIVATE (FUTEX_WAIT | FUTEX_PRIVATE_FLAG)
#define FUTEX_WAKE_PRIVATE (FUTEX_WAKE | FUTEX_PRIVATE_FLAG)
#define FUTEX_BITSET_MATCH_ANY 0xffffffff
#define FUTEX_WAITERS 0x80000000
#define FUTEX_TID_MASK 0x3fffffff

/* FUTEX_WAKE_OP's operation word: op, cmp, oparg, cmparg. */
#define FUTEX_OP_SET 0
#define FUTEX_OP_ADD 1
#define FUTEX_OP_CMP_EQ 0
#define FUTEX_OP_CMP_GT 4
#define FUTEX_OP(op, oparg, cmp, cmparg) \
	((((op) & 0xf) << 28) | (((cmp) & 0xf) << 24) | (((oparg) & 0xfff) << 12) | ((cmparg) & 0xfff))

/* futex(2) with all six arguments (val2 is the timeout pointer's slot for some operations). */
__attribute__((unused)) static long futex6(volatile int *uaddr, int op, int val, const void *ts_or_val2,
					   volatile int *uaddr2, int val3)
{
	return syscall(SYS_futex, uaddr, op, val, ts_or_val2, uaddr2, val3);
}

#endif
