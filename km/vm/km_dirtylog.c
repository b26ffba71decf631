/* KVM's dirty log: see km_dirtylog.h. */
#include "km_dirtylog.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

int km_dirtylog_set(km_machine_t *m, int slot, uint64_t gpa, uint64_t size, void *host, bool on)
{
	struct kvm_userspace_memory_region r = {
	    .slot = (uint32_t)slot,
	    .flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)host,
	};
	return ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int km_dirtylog_fetch(km_machine_t *m, int slot, uint64_t *bitmap)
{
	struct kvm_dirty_log d = {.slot = (uint32_t)slot, .dirty_bitmap = bitmap};
	return ioctl(m->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0 ? -errno : 0;
}
