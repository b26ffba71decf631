/* Checked access to guest structures for the syscall handlers: see km_sys_util.h. */
#include "km_sys_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(km_guest_msghdr_t) == 56, "x86-64 struct msghdr is 56 bytes");
_Static_assert(sizeof(struct iovec) == 16, "x86-64 struct iovec is 16 bytes");

/* Short strings are the rule: copying a whole page for each would cost more than the lookups. */
#define STR_CHUNK 256

typedef struct km_guest_iovec {
	uint64_t base;
	uint64_t len;
} km_guest_iovec_t;

/* Linux's access_ok(): the range must lie in user space, whatever is mapped there. */
static bool user_range(uint64_t gva, size_t len)
{
	return gva + len >= gva && gva + len <= KM_USER_TOP;
}

int km_copy_str(km_mm_t *mm, uint64_t gva, char *buf, size_t size)
{
	size_t off = 0;
	while (off < size) {
		uint64_t at = gva + off;
		if (at < gva)
			return -EFAULT;
		/* Never cross a page in one copy: the page after the NUL may be unmapped. */
		size_t n = KM_PAGE_SIZE - (at & (KM_PAGE_SIZE - 1));
		if (n > STR_CHUNK)
			n = STR_CHUNK;
		if (n > size - off)
			n = size - off;
		if (km_copy_from_guest(mm, buf + off, at, n) < 0)
			return -EFAULT;
		if (memchr(buf + off, 0, n) != NULL)
			return 0;
		off += n;
	}
	return -ENAMETOOLONG;
}

long km_fd_err_first(int fd, int access, bool positioned, long err)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -EBADF;
	int mode = fl & O_ACCMODE;
	if ((fl & O_PATH) || ((access & KM_ACC_READ) && mode == O_WRONLY) ||
	    ((access & KM_ACC_WRITE) && mode == O_RDONLY))
		return -EBADF;
	if (positioned && lseek(fd, 0, SEEK_CUR) < 0 && errno == ESPIPE)
		return -ESPIPE;
	return err;
}

long km_sock_err_first(int fd, long err)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -EBADF;
	return S_ISSOCK(st.st_mode) ? err : -ENOTSOCK;
}

ssize_t km_fd_path(int fd, char *buf, size_t size)
{
	char link[64];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, buf, size - 1);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

bool km_link_deleted(const char *link)
{
	static const char deleted[] = " (deleted)";
	size_t n = link != NULL ? strlen(link) : 0, d = sizeof(deleted) - 1;
	return n >= d && strcmp(link + n - d, deleted) == 0;
}

int km_fd_reopen(int fd, int flags)
{
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	return open(self, flags | O_CLOEXEC);
}

long km_fd_pair_out(km_guest_t *g, long r, uint64_t gva, const int fds[2])
{
	if (r < 0)
		return r;
	int lim = km_fd_limit(g);
	if (fds[0] >= lim || fds[1] >= lim)
		r = -EMFILE;
	else if (km_copy_to_guest(&g->mm, gva, fds, 2 * sizeof(int)) < 0)
		r = -EFAULT;
	if (r < 0) {
		close(fds[0]);
		close(fds[1]);
	}
	return r;
}

size_t km_guest_prefix(km_mm_t *mm, uint64_t gva, size_t len, int access)
{
	uint64_t end = gva + len < gva ? UINT64_MAX : gva + len;
	uint64_t at = gva;
	km_mm_rdlock(mm);
	while (at < end) {
		km_vma_t *v = km_vma_find(mm, at);
		if (v == NULL || km_gva_to_hva(mm, at, 0, access) == NULL)
			break;
		at = v->end;
	}
	km_mm_rdunlock(mm);
	return (at < end ? at : end) - gva;
}

int km_guest_check(km_mm_t *mm, uint64_t gva, size_t len, int access)
{
	if (len == 0)
		return 0;
	if (!user_range(gva, len) || km_guest_prefix(mm, gva, len, access) != len)
		return -EFAULT;
	return 0;
}

/* Host iovecs for [gva, gva+len), all accessible, stopping when `max` are used. Returns the
 * bytes covered. */
static size_t fill_iov(km_mm_t *mm, uint64_t gva, size_t len, int access, struct iovec *iov, int max,
		       int *niov)
{
	uint64_t at = gva, end = gva + len;
	int n = 0;
	km_mm_rdlock(mm);
	while (at < end) {
		km_vma_t *v = km_vma_find(mm, at);
		if (v == NULL)
			break;
		uint64_t stop = v->end < end ? v->end : end;
		uint8_t *h = km_gva_to_hva(mm, at, stop - at, access);
		if (h == NULL)
			break;
		if (n > 0 && (uint8_t *)iov[n - 1].iov_base + iov[n - 1].iov_len == h) {
			iov[n - 1].iov_len += stop - at;
		} else {
			if (n == max)
				break;
			iov[n].iov_base = h;
			iov[n].iov_len = stop - at;
			n++;
		}
		at = stop;
	}
	km_mm_rdunlock(mm);
	*niov = n;
	return at - gva;
}

ssize_t km_buf_iov(km_mm_t *mm, uint64_t gva, size_t len, int access, bool partial, struct iovec *iov,
		   int max, int *niov)
{
	*niov = 0;
	if (len == 0)
		return 0;
	if (!user_range(gva, len))
		return -EFAULT;
	int n = km_gva_to_iov(mm, gva, len, access, iov, max);
	if (n >= 0) {
		*niov = n;
		return (ssize_t)len;
	}
	size_t ok = km_guest_prefix(mm, gva, len, access);
	if (ok == 0 || (ok < len && !partial))
		return -EFAULT;
	return (ssize_t)fill_iov(mm, gva, ok, access, iov, max, niov);
}

/* Reads the guest's iovec array and checks it as Linux's import_iovec() does: negative lengths
 * first, then ranges; the total is capped at KM_MAX_RW_COUNT by shortening segments. */
static int load_iovs(km_mm_t *mm, uint64_t gva, uint64_t cnt, km_guest_iovec_t *g)
{
	if (km_copy_from_guest(mm, g, gva, cnt * sizeof(*g)) < 0)
		return -EFAULT;
	for (uint64_t i = 0; i < cnt; i++)
		if ((int64_t)g[i].len < 0)
			return -EINVAL;
	size_t total = 0;
	for (uint64_t i = 0; i < cnt; i++) {
		if (!user_range(g[i].base, g[i].len))
			return -EFAULT;
		if (g[i].len > KM_MAX_RW_COUNT - total)
			g[i].len = KM_MAX_RW_COUNT - total;
		total += g[i].len;
	}
	return 0;
}

static ssize_t map_iovs(km_mm_t *mm, const km_guest_iovec_t *g, uint64_t cnt, int access, bool partial,
			struct iovec *iov, int max, int *niov)
{
	ssize_t total = 0;
	int n = 0;
	for (uint64_t i = 0; i < cnt && n < max; i++) {
		if (g[i].len == 0)
			continue;
		int k;
		ssize_t got = km_buf_iov(mm, g[i].base, g[i].len, access, partial, iov + n, max - n, &k);
		if (got < 0) {
			if (partial && total > 0)
				break;
			return got;
		}
		n += k;
		total += got;
		if ((size_t)got < g[i].len)
			break;
	}
	*niov = n;
	return total;
}

ssize_t km_guest_iovs(km_mm_t *mm, uint64_t iov_gva, uint64_t cnt, int access, bool partial,
		      struct iovec *iov, int max, int *niov)
{
	*niov = 0;
	if (cnt > KM_IOV_MAX)
		return -EINVAL;
	if (cnt == 0)
		return 0;
	km_guest_iovec_t *g = malloc(cnt * sizeof(*g));
	if (g == NULL)
		return -ENOMEM;
	ssize_t rc = load_iovs(mm, iov_gva, cnt, g);
	if (rc == 0)
		rc = map_iovs(mm, g, cnt, access, partial, iov, max, niov);
	free(g);
	return rc;
}

int km_obuf_get(km_mm_t *mm, uint64_t gva, size_t len, size_t cap, km_obuf_t *ob)
{
	*ob = (km_obuf_t){.gva = gva};
	if (len == 0)
		return 0;
	if (!user_range(gva, len))
		return -EFAULT;
	size_t ok = km_guest_prefix(mm, gva, len, KM_ACC_WRITE);
	if (ok == 0)
		return -EFAULT;
	void *p = km_gva_to_hva(mm, gva, ok, KM_ACC_WRITE);
	if (p != NULL) {
		ob->p = p;
		ob->len = ok;
		return 0;
	}
	ob->len = ok < cap ? ok : cap;
	ob->p = malloc(ob->len);
	if (ob->p == NULL)
		return -ENOMEM;
	ob->bounced = true;
	return 0;
}

int km_obuf_put(km_mm_t *mm, km_obuf_t *ob, size_t n)
{
	int rc = 0;
	if (ob->bounced) {
		if (n > ob->len)
			n = ob->len;
		rc = km_copy_to_guest(mm, ob->gva, ob->p, n);
		free(ob->p);
	}
	ob->p = NULL;
	ob->bounced = false;
	return rc;
}

/* A /proc pid component as procfs accepts it (no sign, no leading zero); -1 if not one. */
static long proc_pid(const char *s, const char **end)
{
	if (*s < '1' || *s > '9')
		return -1;
	long pid = 0;
	for (; *s >= '0' && *s <= '9'; s++) {
		pid = pid * 10 + (*s - '0');
		if (pid > (1l << 22)) /* beyond PID_MAX_LIMIT */
			return -1;
	}
	*end = s;
	return pid;
}

bool km_is_self_exe(km_guest_t *g, const char *path)
{
	if (g->exe_path == NULL || strncmp(path, "/proc/", 6) != 0)
		return false;
	const char *p = path + 6;
	if (strncmp(p, "self/", 5) == 0) {
		p += 5;
	} else if (strncmp(p, "thread-self/", 12) == 0) {
		p += 12;
	} else {
		const char *end;
		long pid = proc_pid(p, &end);
		if (pid < 0 || *end != '/' || (pid != getpid() && pid != g->pid))
			return false;
		p = end + 1;
	}
	return strcmp(p, "exe") == 0;
}

static int check_rights(const uint8_t *data, size_t len)
{
	for (size_t off = 0; off + sizeof(int) <= len; off += sizeof(int)) {
		int fd;
		memcpy(&fd, data + off, sizeof(fd));
		if (km_fd_check(fd) < 0)
			return -EBADF;
	}
	return 0;
}

int km_cmsg_check(const void *control, size_t len)
{
	const uint8_t *base = control;
	size_t off = 0;
	/* Walks the headers as the kernel's CMSG_FIRSTHDR/CMSG_NXTHDR/CMSG_OK do. */
	while (len - off >= sizeof(struct cmsghdr)) {
		struct cmsghdr h;
		memcpy(&h, base + off, sizeof(h));
		if (h.cmsg_len < sizeof(h) || h.cmsg_len > len - off)
			return -EINVAL;
		if (h.cmsg_level == SOL_SOCKET && h.cmsg_type == SCM_RIGHTS) {
			int rc = check_rights(base + off + CMSG_LEN(0), h.cmsg_len - CMSG_LEN(0));
			if (rc < 0)
				return rc;
		}
		size_t step = CMSG_ALIGN(h.cmsg_len);
		if (step > len - off)
			break;
		off += step;
	}
	return 0;
}

static int msg_name_in(km_mm_t *mm, bool send, km_msg_t *m)
{
	int len = m->g.name != 0 ? m->g.namelen : 0;
	if (len < 0)
		return -EINVAL;
	if (len > (int)sizeof(m->name))
		len = sizeof(m->name);
	m->guest_namelen = len;
	if (send) {
		if (len == 0)
			return 0;
		if (km_copy_from_guest(mm, &m->name, m->g.name, len) < 0)
			return -EFAULT;
		m->h.msg_name = &m->name;
		m->h.msg_namelen = len;
		return 0;
	}
	if (m->g.name == 0)
		return 0;
	if (km_guest_check(mm, m->g.name, len, KM_ACC_WRITE) < 0)
		return -EFAULT;
	m->h.msg_name = &m->name;
	m->h.msg_namelen = sizeof(m->name);
	return 0;
}

static int msg_iov_in(km_mm_t *mm, bool send, km_msg_t *m)
{
	if (m->g.iovlen > KM_IOV_MAX)
		return -EMSGSIZE;
	if (m->g.iovlen == 0)
		return 0;
	m->iov = malloc(KM_IOV_MAX * sizeof(*m->iov));
	if (m->iov == NULL)
		return -ENOMEM;
	int n;
	/* A datagram must go out whole or not at all, so sends take no partial buffers. */
	ssize_t rc = km_guest_iovs(mm, m->g.iov, m->g.iovlen, send ? KM_ACC_READ : KM_ACC_WRITE, !send,
				   m->iov, KM_IOV_MAX, &n);
	if (rc < 0)
		return (int)rc;
	m->h.msg_iov = m->iov;
	m->h.msg_iovlen = n;
	return 0;
}

/* The host must see a private copy: SCM_RIGHTS is checked for km's fds and then used. */
static int msg_control_send(km_mm_t *mm, km_msg_t *m)
{
	size_t len = m->g.controllen;
	if (len == 0)
		return 0;
	if (len > KM_CTL_MAX)
		return -ENOBUFS;
	m->control = malloc(len);
	if (m->control == NULL)
		return -ENOBUFS;
	if (km_copy_from_guest(mm, m->control, m->g.control, len) < 0)
		return -EFAULT;
	m->h.msg_control = m->control;
	m->h.msg_controllen = len;
	return km_cmsg_check(m->control, len);
}

static int msg_control_recv(km_mm_t *mm, km_msg_t *m)
{
	/* Without a buffer the host just sets MSG_CTRUNC, as Linux does for a NULL msg_control. */
	if (m->g.control == 0 || m->g.controllen == 0)
		return 0;
	size_t len = m->g.controllen < KM_CTL_MAX ? m->g.controllen : KM_CTL_MAX;
	if (km_guest_check(mm, m->g.control, len, KM_ACC_WRITE) < 0)
		return -EFAULT;
	m->control = malloc(len);
	if (m->control == NULL)
		return -ENOMEM;
	m->h.msg_control = m->control;
	m->h.msg_controllen = len;
	return 0;
}

int km_msg_in(km_mm_t *mm, uint64_t gva, bool send, km_msg_t *m)
{
	memset(m, 0, sizeof(*m));
	if (km_copy_from_guest(mm, &m->g, gva, sizeof(m->g)) < 0)
		return -EFAULT;
	/* Check what a receive writes back before anything is received and lost. */
	if (!send && km_guest_check(mm, gva, sizeof(m->g), KM_ACC_WRITE) < 0)
		return -EFAULT;
	int rc = msg_name_in(mm, send, m);
	if (rc == 0)
		rc = msg_iov_in(mm, send, m);
	if (rc == 0)
		rc = send ? msg_control_send(mm, m) : msg_control_recv(mm, m);
	return rc;
}

static int put_field(km_mm_t *mm, uint64_t gva, size_t off, const void *val, size_t len)
{
	return km_copy_to_guest(mm, gva + off, val, len) < 0 ? -EFAULT : 0;
}

int km_msg_out(km_mm_t *mm, uint64_t gva, km_msg_t *m)
{
	int rc = 0;
	if (m->g.name != 0) {
		size_t n = m->h.msg_namelen;
		if (n > (size_t)m->guest_namelen)
			n = m->guest_namelen;
		int32_t namelen = (int32_t)m->h.msg_namelen;
		if ((n > 0 && km_copy_to_guest(mm, m->g.name, &m->name, n) < 0) ||
		    put_field(mm, gva, offsetof(km_guest_msghdr_t, namelen), &namelen, sizeof(namelen)) < 0)
			rc = -EFAULT;
	}
	uint64_t controllen = m->control != NULL ? m->h.msg_controllen : 0;
	if ((controllen > 0 && km_copy_to_guest(mm, m->g.control, m->control, controllen) < 0) ||
	    put_field(mm, gva, offsetof(km_guest_msghdr_t, controllen), &controllen, sizeof(controllen)) < 0)
		rc = -EFAULT;
	int32_t flags = m->h.msg_flags;
	if (put_field(mm, gva, offsetof(km_guest_msghdr_t, flags), &flags, sizeof(flags)) < 0)
		rc = -EFAULT;
	return rc;
}

void km_msg_free(km_msg_t *m)
{
	free(m->iov);
	free(m->control);
	m->iov = NULL;
	m->control = NULL;
}

int km_sockaddr_in(km_mm_t *mm, uint64_t gva, int len, struct sockaddr_storage *ss)
{
	if (len < 0 || len > (int)sizeof(*ss))
		return -EINVAL;
	if (len > 0 && km_copy_from_guest(mm, ss, gva, len) < 0)
		return -EFAULT;
	return 0;
}

int km_sockaddr_out_prep(km_mm_t *mm, uint64_t addr, uint64_t lenp, km_sockaddr_out_t *o)
{
	memset(o, 0, sizeof(*o));
	o->addr = addr;
	o->lenp = lenp;
	int32_t len;
	if (km_copy_from_guest(mm, &len, lenp, sizeof(len)) < 0 ||
	    km_guest_check(mm, lenp, sizeof(len), KM_ACC_WRITE))
		return -EFAULT;
	if (len < 0)
		return -EINVAL;
	if (len > (int)sizeof(o->ss))
		len = sizeof(o->ss);
	if (km_guest_check(mm, addr, len, KM_ACC_WRITE) < 0)
		return -EFAULT;
	o->guest_len = len;
	o->len = sizeof(o->ss);
	return 0;
}

int km_sockaddr_out_put(km_mm_t *mm, km_sockaddr_out_t *o)
{
	size_t n = o->len < (socklen_t)o->guest_len ? o->len : (size_t)o->guest_len;
	if (n > 0 && km_copy_to_guest(mm, o->addr, &o->ss, n) < 0)
		return -EFAULT;
	int32_t len = (int32_t)o->len;
	return km_copy_to_guest(mm, o->lenp, &len, sizeof(len)) < 0 ? -EFAULT : 0;
}
