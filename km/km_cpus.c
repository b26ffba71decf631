/* How many CPUs km may use: see km_cpus.h. */
#include "km_cpus.h"

#include <sched.h>
#include <unistd.h>

int km_usable_cpus(void)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	if (online < 1)
		online = 1;
	/* sysconf counts the host's CPUs; with fewer allowed, `auto`'s spare CPU may not exist and
	 * a spinning server would take the only one from the vCPU it serves. */
	cpu_set_t set;
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		int allowed = CPU_COUNT(&set);
		if (allowed > 0 && allowed < online)
			return allowed;
	}
	return (int)online;
}
