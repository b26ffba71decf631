/*
 * Many snapshot/resume cycles of one program (tests/e2e/snapshot.sh).
 *
 *   snap_cycle [check]   three cycles with getpid in place of the snapshot: the same output
 *                        natively and under km
 *   snap_cycle cycle N   prints "cycles: N", then snapshots itself (km exits 0). Every resumed run
 *                        counts the resume, checks the state the previous run left (a counter, a
 *                        256 KiB heap block, an anonymous mapping, TLS, a stack array, every
 *                        register through the fence), changes it, prints "resume K: state ok"
 *                        and snapshots again; the Nth resume prints "all N resumes ok" and exits 0.
 * A failed check prints FAIL lines and exits 1; natively the hypercall is ENOSYS: exit 77.
 */
// E2E: run 0
#include <sys/mman.h>

#include "snap_common.h"

static int resumes;
static unsigned char *heap, *anonmap;
static __thread long tls_gen;

static void set_state(int gen, volatile uint64_t *local)
{
	int i;

	for (i = 0; i < (256 << 10); i++)
		heap[i] = (unsigned char)(gen * 13 + i * 3 + (i >> 12));
	for (i = 0; i < 16; i++)
		anonmap[i * 4096 + gen % 4096] = (unsigned char)(gen + i);
	tls_gen = gen;
	for (i = 0; i < 32; i++)
		local[i] = (uint64_t)gen * 0x10001 + (uint64_t)i;
}

static int state_is(int gen, volatile uint64_t *local)
{
	int i, bad = 0;

	for (i = 0; i < (256 << 10); i++)
		bad += heap[i] != (unsigned char)(gen * 13 + i * 3 + (i >> 12));
	for (i = 0; i < 16; i++)
		bad += anonmap[i * 4096 + gen % 4096] != (unsigned char)(gen + i);
	for (i = 0; i < 32; i++)
		bad += local[i] != (uint64_t)gen * 0x10001 + (uint64_t)i;
	bad += tls_gen != gen;
	return bad;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "check";
	int real = strcmp(mode, "cycle") == 0 && argc > 2, total = real ? atoi(argv[2]) : 3;
	int level = snap_vec_level(), bad;
	volatile uint64_t local[32];
	char why[512];
	km_hc_args_t args;
	long r;

	if (!real && strcmp(mode, "check") != 0) {
		printf("usage: snap_cycle [check | cycle N]\n");
		return 2;
	}
	heap = malloc(256 << 10);
	anonmap = mmap(NULL, 16 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!heap || anonmap == MAP_FAILED || total < 1)
		return 2;
	set_state(0, local);
	printf("cycles: %d\n", total);
	for (;;) {
		memset(&args, 0, sizeof(args));
		snap_fence_prepare((unsigned long long)resumes + 1);
		fflush(stdout);
		r = snap_fence(level, real ? SNAP_HCALL_NR : SYS_getpid, &args);
		if (real && r != KM_SNAPSHOT_RESUMED) {
			if (r == KM_SNAPSHOT_TAKEN) {
				printf("FAIL the snapshot hypercall returned 0 (taken) without KEEP_RUNNING\n");
				return 1;
			}
			snap_failed(r);
		}
		if (!snap_fence_check(level, &args, why, sizeof(why)))
			CHECK(0, "resume %d: registers: %s", resumes + 1, why);
		if ((bad = state_is(resumes, local)) != 0)
			CHECK(0, "resume %d: %d bytes of the state left by the previous run differ", resumes + 1, bad);
		if (real && args.hc_ret != KM_SNAPSHOT_RESUMED)
			CHECK(0, "resume %d: hc_ret %lld", resumes + 1, (long long)args.hc_ret);
		if (check_failed)
			return check_done();
		resumes++;
		set_state(resumes, local);
		printf("resume %d: state ok\n", resumes);
		if (resumes == total) {
			printf("all %d resumes ok\n", total);
			return 0;
		}
	}
}
