/* System information syscalls: uname, getrandom, sysinfo, getcpu, personality. */
#include <errno.h>
#include <sys/personality.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "km_guest.h"
#include "km_syscall.h"

#define MM(v) (&(v)->g->mm)

KM_SYSCALL(uname)
{
	struct utsname u;
	if (uname(&u) < 0)
		return -errno;
	return km_copy_to_guest(MM(v), a[0], &u, sizeof(u));
}

KM_SYSCALL(getrandom)
{
	struct iovec iov[8];
	size_t len = a[1] > (1u << 25) ? (1u << 25) : a[1]; /* Linux returns at most 32 MiB per call */
	if (a[2] & ~(uint64_t)(GRND_NONBLOCK | GRND_RANDOM | 0x4 /* GRND_INSECURE */))
		return -EINVAL;
	int n = km_gva_to_iov(MM(v), a[0], len, KM_ACC_WRITE, iov, 8);
	if (n < 0)
		return n == -EINVAL ? -EFAULT : n;
	long total = 0;
	for (int i = 0; i < n; i++) {
		ssize_t got = getrandom(iov[i].iov_base, iov[i].iov_len, (unsigned)a[2]);
		if (got < 0)
			return total > 0 ? total : -errno;
		total += got;
		if ((size_t)got < iov[i].iov_len)
			break;
	}
	return total;
}

KM_SYSCALL(sysinfo)
{
	struct sysinfo si;
	if (sysinfo(&si) < 0)
		return -errno;
	return km_copy_to_guest(MM(v), a[0], &si, sizeof(si));
}

KM_SYSCALL(getcpu)
{
	unsigned cpu, node;
	if (getcpu(&cpu, &node) < 0)
		return -errno;
	if (a[0] != 0 && km_copy_to_guest(MM(v), a[0], &cpu, sizeof(cpu)) < 0)
		return -EFAULT;
	if (a[1] != 0 && km_copy_to_guest(MM(v), a[1], &node, sizeof(node)) < 0)
		return -EFAULT;
	return 0;
}

KM_SYSCALL(personality)
{
	/* Only the Linux personality is offered; querying it is harmless. */
	if (a[0] == 0xffffffff || a[0] == PER_LINUX)
		return PER_LINUX;
	return -EINVAL;
}

const km_sys_def_t km_sys_misc_defs[] = {
    {SYS_uname, "uname", sys_uname, "p"},
    {SYS_getrandom, "getrandom", sys_getrandom, "pux"},
    {SYS_sysinfo, "sysinfo", sys_sysinfo, "p"},
    {SYS_getcpu, "getcpu", sys_getcpu, "ppp"},
    {SYS_personality, "personality", sys_personality, "x"},
    {0, NULL, NULL, NULL},
};
