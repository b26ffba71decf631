/*
 * How many CPUs km's threads can run on, for --syscall-path=auto (km_syscall_poll.h): a server
 * thread that spins only pays off on a CPU the vCPU's own thread is not using.
 */
#ifndef KM_CPUS_H
#define KM_CPUS_H

/* The online CPUs this process's affinity (taskset, a container's cpuset) lets it use; the
 * online count if the affinity cannot be read. At least 1. */
int km_usable_cpus(void);

#endif
