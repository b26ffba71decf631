/* KVM's dirty log: see km_dirtylog.h. */
#include "km_dirtylog.h"

#include <errno.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

int km_dirtylog_set(km_machine_t *m, int slot, uint64_t gpa, uint64_t size, void *host, bool on)
{
	return km_machine_set_slot(m, slot, gpa, size, host, on ? KVM_MEM_LOG_DIRTY_PAGES : 0);
}

int km_dirtylog_fetch(km_machine_t *m, int slot, uint64_t *bitmap)
{
	struct kvm_dirty_log d = {.slot = (uint32_t)slot, .dirty_bitmap = bitmap};
	return ioctl(m->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0 ? -errno : 0;
}
