/* The KVM virtual machine: see km_machine.h. */
#include "km_machine.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include "km_sys_util.h"

#define KM_CPUID_MAX 256

/* Capabilities whose absence makes km unusable, with what each is for. */
static const struct {
	int cap;
	const char *name;
} required_caps[] = {
	{KVM_CAP_SYNC_REGS, "KVM_CAP_SYNC_REGS (registers on every exit without extra ioctls)"},
	{KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT (stopping vCPUs)"},
	{KVM_CAP_XSAVE, "KVM_CAP_XSAVE (FPU/SSE/AVX state)"},
	{KVM_CAP_XCRS, "KVM_CAP_XCRS (enabling AVX in the guest)"},
	{KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
};

int km_fd_reserve(int fd)
{
	if (fd < 0 || fd >= KM_FD_RESERVED_BASE)
		return fd;
	int high = fcntl(fd, F_DUPFD_CLOEXEC, KM_FD_RESERVED_BASE);
	int saved = errno;
	close(fd);
	errno = saved;
	return high;
}

static pthread_rwlock_t fd_transient = PTHREAD_RWLOCK_INITIALIZER;

void km_fd_transient_begin(void)
{
	pthread_rwlock_rdlock(&fd_transient);
}

void km_fd_transient_end(void)
{
	pthread_rwlock_unlock(&fd_transient);
}

void km_fd_scan_begin(void)
{
	pthread_rwlock_wrlock(&fd_transient);
}

void km_fd_scan_end(void)
{
	pthread_rwlock_unlock(&fd_transient);
}

void km_fd_limit_init(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < KM_FD_RESERVED_BASE + 512 &&
	    rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max < KM_FD_RESERVED_BASE + 512 ? rl.rlim_max : KM_FD_RESERVED_BASE + 512;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int open_kvm(km_machine_t *m, const char *dev, int kvm_fd, km_err_t **err)
{
	km_fd_limit_init();
	m->kvm_fd = kvm_fd >= 0 ? kvm_fd : km_fd_reserve(open(dev, O_RDWR | O_CLOEXEC));
	if (m->kvm_fd < 0) {
		int e = errno;
		if (e == ENOENT)
			return km_err_set(err, e, "cannot open %s (is the kvm module loaded, and does this machine "
						  "expose virtualisation?)", dev);
		if (e == EACCES || e == EPERM)
			return km_err_set(err, e, "cannot open %s (add yourself to the kvm group or run as root)",
					  dev);
		return km_err_set(err, e, "cannot open %s", dev);
	}
	int version = ioctl(m->kvm_fd, KVM_GET_API_VERSION, 0);
	if (version != KVM_API_VERSION)
		return km_err_set(err, 0, "%s: KVM API version %d, km needs %d (is this a KVM device?)", dev,
				  version, KVM_API_VERSION);
	return 0;
}

static int check_caps(km_machine_t *m, const char *dev, km_err_t **err)
{
	for (size_t i = 0; i < sizeof(required_caps) / sizeof(required_caps[0]); i++)
		if (ioctl(m->vm_fd, KVM_CHECK_EXTENSION, required_caps[i].cap) <= 0)
			return km_err_set(err, 0, "%s lacks %s", dev, required_caps[i].name);
	if ((ioctl(m->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_SYNC_REGS) & KVM_SYNC_X86_REGS) == 0)
		return km_err_set(err, 0, "%s cannot sync general registers", dev);
	int run_size = ioctl(m->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size <= 0)
		return km_err_set(err, errno, "%s: KVM_GET_VCPU_MMAP_SIZE", dev);
	m->run_size = (size_t)run_size;
	return 0;
}

static struct kvm_cpuid_entry2 *cpuid_find(struct kvm_cpuid2 *c, uint32_t fn, uint32_t idx)
{
	for (uint32_t i = 0; i < c->nent; i++)
		if (c->entries[i].function == fn && c->entries[i].index == idx)
			return &c->entries[i];
	return NULL;
}

/* AMX tile data needs a per-process permission dance and a 8 KiB+ XSAVE area; static programs do
 * not need it, so it is not offered. */
#define XFEATURE_AMX_MASK ((1ull << 17) | (1ull << 18))

static int load_cpuid(km_machine_t *m, const char *dev, km_err_t **err)
{
	m->cpuid = calloc(1, sizeof(*m->cpuid) + KM_CPUID_MAX * sizeof(struct kvm_cpuid_entry2));
	if (m->cpuid == NULL)
		return km_err_set(err, ENOMEM, "allocating CPUID table");
	m->cpuid->nent = KM_CPUID_MAX;
	if (ioctl(m->kvm_fd, KVM_GET_SUPPORTED_CPUID, m->cpuid) < 0)
		return km_err_set(err, errno, "%s: KVM_GET_SUPPORTED_CPUID", dev);

	struct kvm_cpuid_entry2 *xs = cpuid_find(m->cpuid, 0xd, 0);
	m->xcr0 = 0x3; /* x87 | SSE at least */
	if (xs != NULL)
		m->xcr0 = ((uint64_t)xs->edx << 32 | xs->eax) & ~XFEATURE_AMX_MASK;
	if (xs != NULL) {
		xs->eax &= (uint32_t)m->xcr0;
		xs->edx &= (uint32_t)(m->xcr0 >> 32);
	}
	/* The XSAVE image ends with the highest enabled component (CPUID 0xD: size, offset). */
	m->xsave_size = 576;
	for (int i = 2; i < 63; i++) {
		struct kvm_cpuid_entry2 *c = cpuid_find(m->cpuid, 0xd, (uint32_t)i);
		if ((m->xcr0 & (1ull << i)) && c != NULL && c->eax + c->ebx > m->xsave_size)
			m->xsave_size = c->eax + c->ebx;
	}
	struct kvm_cpuid_entry2 *sz = cpuid_find(m->cpuid, 0x80000008, 0);
	m->phys_bits = sz != NULL ? (int)(sz->eax & 0xff) : 36;
	return 0;
}

static int create_vm(km_machine_t *m, const char *dev, km_err_t **err)
{
	do {
		m->vm_fd = ioctl(m->kvm_fd, KVM_CREATE_VM, 0);
	} while (m->vm_fd < 0 && errno == EINTR);
	if (m->vm_fd < 0)
		return km_err_set(err, errno, "%s: creating a VM (KVM_CREATE_VM)", dev);
	if ((m->vm_fd = km_fd_reserve(m->vm_fd)) < 0)
		return km_err_set(err, errno, "%s: moving the VM fd out of the guest's range", dev);
	return 0;
}

int km_machine_open(km_machine_t *m, const char *dev, int kvm_fd, km_err_t **err)
{
	memset(m, 0, sizeof(*m));
	m->kvm_fd = m->vm_fd = -1;
	if (open_kvm(m, dev, kvm_fd, err) < 0 || create_vm(m, dev, err) < 0)
		return -1;
	if (check_caps(m, dev, err) < 0 || load_cpuid(m, dev, err) < 0)
		return -1;
	return 0;
}

int km_machine_new_vm(km_machine_t *m, km_err_t **err)
{
	if (m->vm_fd >= 0)
		close(m->vm_fd); /* the parent's: closing drops only this process's reference */
	m->vm_fd = -1;
	return create_vm(m, "the KVM device", err);
}

void km_fd_transient_reset(void)
{
	pthread_rwlock_init(&fd_transient, NULL);
}

int km_machine_set_slot(km_machine_t *m, int slot, uint64_t gpa, uint64_t size, void *host, uint32_t flags)
{
	struct kvm_userspace_memory_region r = {
	    .slot = (uint32_t)slot,
	    .flags = flags,
	    .guest_phys_addr = gpa,
	    .memory_size = size,
	    .userspace_addr = (uint64_t)host,
	};
	return ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int km_machine_set_memory(km_machine_t *m, int slot, uint64_t gpa, uint64_t size, void *host, km_err_t **err)
{
	int rc = km_machine_set_slot(m, slot, gpa, size, host, 0);
	if (rc < 0)
		return km_err_set(err, -rc, "registering guest memory slot %d (%#lx bytes at guest-physical %#lx)",
				  slot, (unsigned long)size, (unsigned long)gpa);
	return 0;
}

void km_machine_close(km_machine_t *m)
{
	if (m->vm_fd >= 0)
		close(m->vm_fd);
	if (m->kvm_fd >= 0)
		close(m->kvm_fd);
	free(m->cpuid);
	m->vm_fd = m->kvm_fd = -1;
	m->cpuid = NULL;
}
