/*
 * Snapshots the program takes of itself with km_hcall.h (tests/e2e/snapshot.sh).
 *
 *   snap_modes [check]   the "keep" sequence with both snapshots pretended to be taken (the
 *                        hypercall is not made): the same output natively and under km
 *   snap_modes keep      state 1; snapshot "first" with KEEP_RUNNING to km's --snapshot file;
 *                        checks state 1, changes it to 2; snapshot "second" with KEEP_RUNNING to
 *                        "second.snap" (the hypercall's file name, relative to km's cwd); checks
 *                        2, changes it to 3, checks, exits 0. Resumed from the first snapshot it
 *                        must find state 1 and exits 0; from the second, state 2.
 *   snap_modes once      state 1; snapshot "once" without KEEP_RUNNING (km exits 0); resumed, it
 *                        checks state 1 and exits 0
 *   snap_modes file NAME the same, with the snapshot file named in the hypercall
 * State: a global, a 64 KiB heap block, an array on the stack, a TLS variable.
 * The hypercall's result: TAKEN (0) in the running program, RESUMED (1) in a resumed one; any
 * other result is printed ("snapshot failed: ...", exit 4); natively ENOSYS: exit 77.
 */
// E2E: run 0
#include "snap_common.h"

static long g_value;
static unsigned char *heap;
static __thread long tls_value;
static int pretend;

static void set_state(int gen, volatile uint64_t *local)
{
	int i;

	g_value = gen * 1111;
	tls_value = gen * 7777;
	for (i = 0; i < 65536; i++)
		heap[i] = (unsigned char)(gen * 31 + i * 7);
	for (i = 0; i < 16; i++)
		local[i] = (uint64_t)gen << 32 | (uint64_t)i;
}

static void check_state(int gen, volatile uint64_t *local, const char *when)
{
	int i, bad_heap = 0, bad_stack = 0;

	for (i = 0; i < 65536; i++)
		bad_heap += heap[i] != (unsigned char)(gen * 31 + i * 7);
	for (i = 0; i < 16; i++)
		bad_stack += local[i] != ((uint64_t)gen << 32 | (uint64_t)i);
	CHECK(g_value == gen * 1111 && tls_value == gen * 7777 && bad_heap == 0 && bad_stack == 0,
	      "%s: state %d (global %ld, TLS %ld, %d heap bytes and %d stack words differ)", when, gen,
	      g_value, tls_value, bad_heap, bad_stack);
}

static long snap(const char *label, uint64_t flags, const char *file, long *hc_ret)
{
	if (pretend) {
		*hc_ret = KM_SNAPSHOT_TAKEN;
		return KM_SNAPSHOT_TAKEN;
	}
	return snap_take(label, flags, file, hc_ret);
}

static int keep(void)
{
	volatile uint64_t local[16];
	long r, hc;

	set_state(1, local);
	printf("before the snapshots\n");
	r = snap("first", KM_SNAPSHOT_KEEP_RUNNING, NULL, &hc);
	if (r == KM_SNAPSHOT_RESUMED) {
		printf("resumed from snapshot 1\n");
		CHECK_EQ(hc, KM_SNAPSHOT_RESUMED, "hc_ret in the argument block");
		check_state(1, local, "resumed from snapshot 1");
		return check_done();
	}
	if (r != KM_SNAPSHOT_TAKEN)
		snap_failed(r);
	printf("snapshot 1 taken, still running\n");
	CHECK_EQ(hc, KM_SNAPSHOT_TAKEN, "hc_ret in the argument block");
	check_state(1, local, "after snapshot 1");
	set_state(2, local);

	r = snap("second", KM_SNAPSHOT_KEEP_RUNNING, "second.snap", &hc);
	if (r == KM_SNAPSHOT_RESUMED) {
		printf("resumed from snapshot 2\n");
		check_state(2, local, "resumed from snapshot 2");
		return check_done();
	}
	if (r != KM_SNAPSHOT_TAKEN)
		snap_failed(r);
	printf("snapshot 2 taken, still running\n");
	check_state(2, local, "after snapshot 2");
	set_state(3, local);
	check_state(3, local, "changed after the snapshots");
	printf("original run finished\n");
	return check_done();
}

static int once(const char *file)
{
	volatile uint64_t local[16];
	long r, hc;

	set_state(1, local);
	printf("before the snapshot\n");
	r = snap_take("once", 0, file, &hc);
	if (r == KM_SNAPSHOT_TAKEN) {
		printf("FAIL the snapshot hypercall returned 0 (taken) without KEEP_RUNNING\n");
		return 1;
	}
	if (r != KM_SNAPSHOT_RESUMED)
		snap_failed(r);
	printf("resumed\n");
	CHECK_EQ(hc, KM_SNAPSHOT_RESUMED, "hc_ret in the argument block");
	check_state(1, local, "resumed");
	return check_done();
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "check";

	heap = malloc(65536);
	if (strcmp(mode, "check") == 0) {
		pretend = 1;
		return keep();
	}
	if (strcmp(mode, "keep") == 0)
		return keep();
	if (strcmp(mode, "once") == 0)
		return once(NULL);
	if (strcmp(mode, "file") == 0 && argc > 2)
		return once(argv[2]);
	printf("usage: snap_modes [check | keep | once | file NAME]\n");
	return 2;
}
