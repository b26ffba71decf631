#!/usr/bin/env python3
"""Start-up breakdown of one km run from `perf script -F comm,tid,time,event,trace` output of
raw_syscalls, kvm:kvm_cpuid, kvm:kvm_userspace_exit, kvmmmu:kvm_mmu_pagetable_walk and
sched:sched_process_exec/exit (bench/startup/breakdown.sh records it). Prints, in microseconds:
km's set-up (exec to first KVM_RUN) with its slowest syscalls, time inside KVM_RUN (guest +
hypervisor) with the CPUIDs and shadow-page walks it contained, and time in km between runs."""
import re
import sys

KVM_RUN = "ae80"
NAMES = {0: "read", 1: "write", 3: "close", 9: "mmap", 10: "mprotect", 11: "munmap", 16: "ioctl",
         28: "madvise", 56: "clone", 435: "clone3", 257: "openat", 17: "pread64", 262: "newfstatat",
         157: "prctl", 317: "seccomp", 231: "exit_group", 202: "futex"}
IOCTLS = {"ae01": "KVM_CREATE_VM", "c008ae05": "KVM_GET_SUPPORTED_CPUID", "4020ae46": "KVM_SET_USER_MEMORY_REGION",
          "ae41": "KVM_CREATE_VCPU", "4008ae90": "KVM_SET_CPUID2", "c004ae02": "KVM_GET_MSR_INDEX_LIST",
          "4008ae89": "KVM_SET_MSRS", "ae80": "KVM_RUN"}


def main(path):
    ev = []
    for line in open(path):
        m = re.match(r"\s*(.+?)\s+(\d+)\s+([\d.]+):\s+(\S+):\s*(.*)", line)
        if m:
            ev.append((int(m.group(2)), float(m.group(3)) * 1e6, m.group(4), m.group(5)))
    t0 = next(t for _, t, e, _ in ev if e == "sched:sched_process_exec")
    main_tid = next(tid for tid, _, e, _ in ev if e == "sched:sched_process_exec")
    open_sys, slow, runs = {}, [], []
    first_run = None
    cpuid = walks = faults = 0
    for tid, t, e, a in ev:
        if e == "raw_syscalls:sys_enter":
            nr = int(a.split()[1])
            args = a.split("(")[1].split(",")
            what = NAMES.get(nr, str(nr))
            if nr == 16:
                what = IOCTLS.get(args[1].strip(), "ioctl " + args[1].strip())
            open_sys[tid] = (t, what)
            if what == "KVM_RUN" and first_run is None and tid == main_tid:
                first_run = t
        elif e == "raw_syscalls:sys_exit" and tid in open_sys:
            start, what = open_sys.pop(tid)
            if what == "KVM_RUN":
                runs.append((start, t))
            elif first_run is None:
                slow.append((t - start, what))
        elif e == "kvm:kvm_cpuid":
            cpuid += 1
        elif e == "kvmmmu:kvm_mmu_pagetable_walk":
            walks += 1
        elif e == "kvmmmu:kvm_mmu_spte_requested":
            faults += 1
    end = max(t for _, t, _, _ in ev)
    last_run = runs[-1][1]
    in_run = sum(b - a for a, b in runs)
    print(f"exec to first KVM_RUN (km set-up): {first_run - t0:8.0f} us")
    print(f"  km syscalls in set-up: {sum(d for d, _ in slow):.0f} us in {len(slow)} calls; slowest:")
    for d, what in sorted(slow, reverse=True)[:8]:
        print(f"    {what:28s} {d:6.0f} us")
    print(f"first KVM_RUN to exit of km:       {end - first_run:8.0f} us")
    print(f"  inside KVM_RUN: {in_run:.0f} us in {len(runs)} runs (first {runs[0][1] - runs[0][0]:.0f} us)")
    print(f"  in km between runs (exits, exit): {end - first_run - in_run:.0f} us")
    print(f"  guest CPUIDs: {cpuid}; shadow page faults: {faults} ({walks} guest page-table walks)")
    print(f"  last KVM_RUN return to exit:    {end - last_run:.0f} us")
    print(f"total (exec to last event):        {end - t0:8.0f} us")


main(sys.argv[1])
