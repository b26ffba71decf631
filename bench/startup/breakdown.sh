#!/bin/sh
# Start-up breakdown of one km run: bench/startup/breakdown.sh KM PROGRAM [ARGS...]
# Records km's syscalls and the KVM tracepoints that cost time on a start (CPUIDs, exits to km,
# shadow page-table walks) with perf, then prints where the time went (breakdown.py).
set -eu
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
perf record -q -o "$out/p.data" -e raw_syscalls:sys_enter,raw_syscalls:sys_exit,kvm:kvm_cpuid \
	-e kvm:kvm_userspace_exit,kvmmmu:kvm_mmu_pagetable_walk,kvmmmu:kvm_mmu_spte_requested \
	-e sched:sched_process_exec,sched:sched_process_exit -- "$@" >/dev/null 2>"$out/err"
perf script -i "$out/p.data" -F comm,tid,time,event,trace >"$out/p.txt" 2>/dev/null
python3 "$(dirname "$0")/breakdown.py" "$out/p.txt"
